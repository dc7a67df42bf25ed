/**
 * libsodium's sealed boxes (`crypto_box_seal`: an ephemeral X25519 key, XSalsa20-Poly1305) through
 * sodium-native, loaded at the first seal or open. The wallet's payment envelopes and federated
 * learning's update keys use them; a node that does neither never loads sodium-native's module and
 * native library (docs/performance.md, "Memory of an idle node"). sodium-native is CommonJS, so
 * it loads synchronously.
 */
import { createRequire } from 'node:module'
import type Sodium from 'sodium-native'

/** Bytes a sealed box adds to its message: the ephemeral public key (32) and the MAC (16). */
export const SEAL_BYTES = 48

const require = createRequire(import.meta.url)
let loaded: typeof Sodium | undefined

function sodium(): typeof Sodium {
  loaded ??= require('sodium-native') as typeof Sodium
  return loaded
}

/** `message` sealed to an X25519 public key. Throws libsodium's error for a low-order key. */
export function sealBox(message: Uint8Array, publicKey: Uint8Array): Uint8Array {
  const out = Buffer.alloc(message.length + SEAL_BYTES)
  sodium().crypto_box_seal(out, Buffer.from(message), Buffer.from(publicKey))
  return new Uint8Array(out.buffer, out.byteOffset, out.length)
}

/** The message of a sealed box; undefined when the box is not for this key pair or was damaged. */
export function openBox(box: Uint8Array, publicKey: Uint8Array, secretKey: Uint8Array): Uint8Array | undefined {
  if (box.length < SEAL_BYTES) return undefined
  const out = Buffer.alloc(box.length - SEAL_BYTES)
  const ok = sodium().crypto_box_seal_open(out, Buffer.from(box), Buffer.from(publicKey), Buffer.from(secretKey))
  return ok ? new Uint8Array(out.buffer, out.byteOffset, out.length) : undefined
}
