/** SHA-256 helpers (node:crypto, OpenSSL's assembly). */
import { createHash, hash } from 'node:crypto'

export const SHA256_LENGTH = 32
/** Up to this many bytes in all, the parts of a hash are joined and hashed in one call. */
const ONE_SHOT_CONCAT_BYTES = 1024

export function sha256(...parts: readonly Uint8Array[]): Uint8Array {
  // one part (most calls: state paths, transaction ids, gossip ids): the one-shot `hash` makes no
  // Hash object and is about twice as fast on small inputs
  if (parts.length === 1) return new Uint8Array(hash('sha256', parts[0] as Uint8Array, 'buffer'))
  // a few small parts (the state tree's leaf and inner nodes: 65 bytes): one copy and the one-shot
  // hash cost less than a Hash object with an update per part
  let total = 0
  for (const part of parts) total += part.byteLength
  if (total <= ONE_SHOT_CONCAT_BYTES) {
    const joined = Buffer.allocUnsafe(total)
    let at = 0
    for (const part of parts) {
      joined.set(part, at)
      at += part.byteLength
    }
    return new Uint8Array(hash('sha256', joined, 'buffer'))
  }
  const h = createHash('sha256')
  for (const part of parts) h.update(part)
  return new Uint8Array(h.digest())
}

/** Applies `h = sha256(h)` `count` times: the sequential chain that proof of history is built on. */
export function sha256Chain(start: Uint8Array, count: number): Uint8Array {
  let h = start
  for (let i = 0; i < count; i++) h = hash('sha256', h, 'buffer')
  return new Uint8Array(h)
}
