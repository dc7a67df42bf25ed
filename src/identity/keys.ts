/**
 * Ed25519 identity keys and their X25519 key-agreement twins, on node:crypto (OpenSSL).
 * One Ed25519 key is a node's DID, its libp2p PeerId and its chain account. Signatures are
 * always domain-separated (`../core/signing.ts`): `sign(kind, payload)`.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  randomBytes,
  sign as cryptoSign,
  verify as cryptoVerify,
  type KeyObject,
} from 'node:crypto'
import { concat, fromHex } from '../core/bytes.ts'
import { InvalidInputError } from '../core/errors.ts'
import { signingDigest } from '../core/signing.ts'
import { ed25519PublicKeyToX25519, isValidEd25519PublicKey } from './curve25519.ts'

export const SEED_LENGTH = 32
export const PUBLIC_KEY_LENGTH = 32
export const SIGNATURE_LENGTH = 64

// DER prefixes that wrap a raw 32-byte key as PKCS#8 (private) or SPKI (public), RFC 8410.
const ED25519_PKCS8 = fromHex('302e020100300506032b657004220420')
const ED25519_SPKI = fromHex('302a300506032b6570032100')
const X25519_PKCS8 = fromHex('302e020100300506032b656e04220420')
const X25519_SPKI = fromHex('302a300506032b656e032100')

function rawPublicKey(key: KeyObject): Uint8Array {
  const der = key.export({ format: 'der', type: 'spki' })
  return new Uint8Array(der.subarray(der.length - PUBLIC_KEY_LENGTH))
}

function assertLength(bytes: Uint8Array, length: number, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new InvalidInputError(`${what} must be ${length} bytes`)
  }
}

export class Ed25519KeyPair {
  readonly publicKey: Uint8Array
  readonly #seed: Uint8Array
  readonly #privateKey: KeyObject

  private constructor(seed: Uint8Array) {
    this.#seed = Uint8Array.from(seed)
    this.#privateKey = createPrivateKey({ key: Buffer.from(concat(ED25519_PKCS8, seed)), format: 'der', type: 'pkcs8' })
    this.publicKey = rawPublicKey(createPublicKey(this.#privateKey))
  }

  static generate(): Ed25519KeyPair {
    return new Ed25519KeyPair(randomBytes(SEED_LENGTH))
  }

  /** The key pair for a 32-byte RFC 8032 private key (seed). */
  static fromSeed(seed: Uint8Array): Ed25519KeyPair {
    assertLength(seed, SEED_LENGTH, 'an Ed25519 seed')
    return new Ed25519KeyPair(seed)
  }

  /** A copy of the 32-byte seed: the secret to store (encrypted) in the keystore. */
  exportSeed(): Uint8Array {
    return Uint8Array.from(this.#seed)
  }

  /** Signs `payload` for `kind` (domain-separated; see core/signing.ts). */
  sign(kind: string, payload: Uint8Array): Uint8Array {
    return new Uint8Array(cryptoSign(null, signingDigest(kind, payload), this.#privateKey))
  }

  /** The X25519 key pair derived from this key (RFC 8032 §5.1.5 scalar, as the did:key spec does). */
  toX25519(): X25519KeyPair {
    const h = createHash('sha512').update(this.#seed).digest()
    const scalar = new Uint8Array(h.subarray(0, 32))
    scalar[0] = (scalar[0] ?? 0) & 248
    scalar[31] = ((scalar[31] ?? 0) & 127) | 64
    return X25519KeyPair.fromPrivateKey(scalar)
  }
}

/** Verifies a domain-separated signature. Returns false (never throws) for any malformed input. */
export function verifySignature(
  publicKey: Uint8Array,
  kind: string,
  payload: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== PUBLIC_KEY_LENGTH) return false
  if (!(signature instanceof Uint8Array) || signature.length !== SIGNATURE_LENGTH) return false
  if (!(payload instanceof Uint8Array)) return false
  try {
    return cryptoVerify(null, signingDigest(kind, payload), ed25519PublicKeyObject(publicKey), signature)
  } catch {
    return false
  }
}

/** Verifies a signature over an already computed signing digest (see core/signing.ts). Never throws. */
export function verifySignatureDigest(publicKey: Uint8Array, digest: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== PUBLIC_KEY_LENGTH || signature.length !== SIGNATURE_LENGTH) return false
  try {
    return cryptoVerify(null, digest, ed25519PublicKeyObject(publicKey), signature)
  } catch {
    return false
  }
}

const publicKeyCache = new Map<string, KeyObject>()
const PUBLIC_KEY_CACHE_SIZE = 1024

/** node:crypto KeyObject for a raw Ed25519 public key, cached because parsing costs as much as verifying. */
function ed25519PublicKeyObject(publicKey: Uint8Array): KeyObject {
  const id = Buffer.from(publicKey).toString('base64')
  let key = publicKeyCache.get(id)
  if (key === undefined) {
    key = createPublicKey({ key: Buffer.from(concat(ED25519_SPKI, publicKey)), format: 'der', type: 'spki' })
    if (publicKeyCache.size >= PUBLIC_KEY_CACHE_SIZE) publicKeyCache.delete(publicKeyCache.keys().next().value ?? '')
    publicKeyCache.set(id, key)
  }
  return key
}

export { isValidEd25519PublicKey }

/** The X25519 public key of an Ed25519 public key (for encrypting to a DID). */
export function x25519PublicKeyOf(ed25519PublicKey: Uint8Array): Uint8Array {
  assertLength(ed25519PublicKey, PUBLIC_KEY_LENGTH, 'an Ed25519 public key')
  return ed25519PublicKeyToX25519(ed25519PublicKey)
}

export class X25519KeyPair {
  readonly publicKey: Uint8Array
  readonly #privateKey: KeyObject
  readonly #raw: Uint8Array

  private constructor(privateKey: Uint8Array) {
    this.#raw = Uint8Array.from(privateKey)
    this.#privateKey = createPrivateKey({
      key: Buffer.from(concat(X25519_PKCS8, privateKey)),
      format: 'der',
      type: 'pkcs8',
    })
    this.publicKey = rawPublicKey(createPublicKey(this.#privateKey))
  }

  static generate(): X25519KeyPair {
    return new X25519KeyPair(randomBytes(32))
  }

  static fromPrivateKey(privateKey: Uint8Array): X25519KeyPair {
    assertLength(privateKey, 32, 'an X25519 private key')
    return new X25519KeyPair(privateKey)
  }

  /** A copy of the raw 32-byte private scalar. */
  exportPrivateKey(): Uint8Array {
    return Uint8Array.from(this.#raw)
  }

  /** The X25519 shared secret with `peerPublicKey`; throws for low-order points (all-zero secret). */
  agree(peerPublicKey: Uint8Array): Uint8Array {
    assertLength(peerPublicKey, 32, 'an X25519 public key')
    let secret: Buffer
    try {
      const publicKey = createPublicKey({
        key: Buffer.from(concat(X25519_SPKI, peerPublicKey)),
        format: 'der',
        type: 'spki',
      })
      secret = diffieHellman({ privateKey: this.#privateKey, publicKey })
    } catch (err) {
      throw new InvalidInputError('X25519 key agreement failed: the peer key is not usable', { cause: err })
    }
    if (secret.every((b) => b === 0)) throw new InvalidInputError('X25519 peer key is a low-order point')
    return new Uint8Array(secret)
  }
}
