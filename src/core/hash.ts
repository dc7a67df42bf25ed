/** SHA-256 helpers (node:crypto, OpenSSL's assembly). */
import { createHash } from 'node:crypto'

export const SHA256_LENGTH = 32

export function sha256(...parts: readonly Uint8Array[]): Uint8Array {
  const hash = createHash('sha256')
  for (const part of parts) hash.update(part)
  return new Uint8Array(hash.digest())
}

/** Applies `h = sha256(h)` `count` times: the sequential chain that proof of history is built on. */
export function sha256Chain(start: Uint8Array, count: number): Uint8Array {
  let h = start
  for (let i = 0; i < count; i++) h = createHash('sha256').update(h).digest()
  return new Uint8Array(h)
}
