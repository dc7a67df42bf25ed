/**
 * The two small pieces of Curve25519 arithmetic that node:crypto does not expose:
 * checking that 32 bytes are a valid Ed25519 point (RFC 8032 §5.1.3 decoding), and the
 * birational map from an Ed25519 public key to its X25519 (Montgomery u) public key
 * (RFC 7748 §4.1: u = (1 + y) / (1 - y)). Neither touches secrets, so bigint is fine here.
 */
const P = 2n ** 255n - 19n
const D = mod(-121665n * invert(121666n))
const SQRT_M1 = pow(2n, (P - 1n) / 4n)

function mod(a: bigint): bigint {
  const r = a % P
  return r < 0n ? r + P : r
}

function pow(base: bigint, exponent: bigint): bigint {
  let result = 1n
  let b = mod(base)
  let e = exponent
  while (e > 0n) {
    if ((e & 1n) === 1n) result = mod(result * b)
    b = mod(b * b)
    e >>= 1n
  }
  return result
}

function invert(a: bigint): bigint {
  return pow(a, P - 2n)
}

function littleEndianToBigint(bytes: Uint8Array): bigint {
  let n = 0n
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i] ?? 0)
  return n
}

function bigintToLittleEndian(n: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length)
  let v = n
  for (let i = 0; i < length; i++) {
    out[i] = Number(v & 0xffn)
    v >>= 8n
  }
  return out
}

function decodeY(publicKey: Uint8Array): { y: bigint; sign: number } {
  const copy = Uint8Array.from(publicKey)
  const sign = (copy[31] ?? 0) >> 7
  copy[31] = (copy[31] ?? 0) & 0x7f
  return { y: littleEndianToBigint(copy), sign }
}

/** True when `publicKey` is the canonical encoding of a point on edwards25519. */
export function isValidEd25519PublicKey(publicKey: Uint8Array): boolean {
  if (publicKey.length !== 32) return false
  const { y, sign } = decodeY(publicKey)
  if (y >= P) return false
  const y2 = mod(y * y)
  const u = mod(y2 - 1n)
  const v = mod(D * y2 + 1n)
  const v3 = mod(v * v * v)
  let x = mod(u * v3 * pow(u * v3 * v3 * v, (P - 5n) / 8n))
  const vx2 = mod(v * x * x)
  if (vx2 !== u) {
    if (vx2 !== mod(-u)) return false
    x = mod(x * SQRT_M1)
  }
  return !(x === 0n && sign === 1)
}

/** The X25519 public key (Montgomery u-coordinate) of an Ed25519 public key. */
export function ed25519PublicKeyToX25519(publicKey: Uint8Array): Uint8Array {
  const { y } = decodeY(publicKey)
  const u = mod((1n + y) * invert(mod(1n - y)))
  return bigintToLittleEndian(u, 32)
}
