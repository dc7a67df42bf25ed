/**
 * A parameter block's proof of work (seed 001 §8.2 `nonce`): sha256(payloadSigningBytes || nonce
 * as a big-endian u64) must start with `bits` zero bits (`polDifficultyBits`). It prices a
 * proposal in CPU on top of its bond; the useful work is the training the validators check
 * (proof of learning).
 */
import { sha256 } from '../core/hash.ts'
import { payloadSigningBytes } from './block.ts'
import type { ParamBlockHeader } from './types.ts'

/** Tries between yields to the event loop. */
export const POW_YIELD_EVERY = 4_096

function nonceBytes(nonce: bigint): Uint8Array {
  const out = new Uint8Array(8)
  new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, nonce))
  return out
}

function digestWith(prefix: Uint8Array, nonce: bigint): Uint8Array {
  return sha256(prefix, nonceBytes(nonce))
}

/** sha256(payloadSigningBytes(header) || nonce as u64 big-endian). */
export function powDigest(header: Omit<ParamBlockHeader, 'payloadSig'>): Uint8Array {
  return digestWith(payloadSigningBytes(header), BigInt(header.nonce))
}

/** Whether `digest` starts with at least `bits` zero bits. */
export function meetsDifficulty(digest: Uint8Array, bits: number): boolean {
  if (bits <= 0) return true
  if (bits > digest.length * 8) return false
  const whole = Math.floor(bits / 8)
  for (let i = 0; i < whole; i++) if (digest[i] !== 0) return false
  const rest = bits % 8
  if (rest === 0) return true
  return (digest[whole] ?? 0) >> (8 - rest) === 0
}

export interface PowStamp {
  nonce: bigint
  tries: number
  ms: number
}

/** Searches nonces from `start` synchronously, at most `maxTries`; undefined when none is found. */
export function findNonce(
  header: Omit<ParamBlockHeader, 'payloadSig' | 'nonce'>,
  bits: number,
  options: { start?: bigint; maxTries?: number } = {},
): bigint | undefined {
  const prefix = payloadSigningBytes(header)
  const max = options.maxTries ?? Number.MAX_SAFE_INTEGER
  let nonce = options.start ?? 0n
  for (let i = 0; i < max; i++, nonce++) if (meetsDifficulty(digestWith(prefix, nonce), bits)) return nonce
  return undefined
}

/**
 * Finds a nonce for `header` at `bits` difficulty, yielding to the event loop every
 * POW_YIELD_EVERY tries; `signal` aborts (the promise rejects with its reason).
 */
export async function stampPow(
  header: Omit<ParamBlockHeader, 'payloadSig' | 'nonce'>,
  bits: number,
  signal?: AbortSignal,
): Promise<PowStamp> {
  const started = performance.now()
  const prefix = payloadSigningBytes(header)
  let nonce = 0n
  let tries = 0
  for (;;) {
    signal?.throwIfAborted()
    for (let i = 0; i < POW_YIELD_EVERY; i++, nonce++) {
      tries++
      if (meetsDifficulty(digestWith(prefix, nonce), bits))
        return { nonce, tries, ms: Math.round(performance.now() - started) }
    }
    await new Promise<void>((resolve) => setImmediate(resolve))
  }
}
