/**
 * Does batching Ed25519 verification across worker threads pay? The same signatures are verified
 * inline on the main thread (baseline) and through VerifyPool, in the same run.
 */
import { randomBytes } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { performance } from 'node:perf_hooks'
import { signingDigest } from '../src/core/signing.ts'
import { Ed25519KeyPair, verifySignatureDigest } from '../src/identity/keys.ts'
import { VerifyPool, type VerifyItem } from '../src/identity/verify-pool.ts'
import { line, type BenchLine, type MeasureOptions } from './harness.ts'

export const VERIFY_POOL_BENCH_NAMES = ['ed25519-verify-batch']

export async function verifyPoolBenches(options: MeasureOptions): Promise<BenchLine[]> {
  const keys = Array.from({ length: 16 }, () => Ed25519KeyPair.generate())
  const count = Math.max(200, Math.round((options.roundMs ?? 300) * 10))
  const items: VerifyItem[] = Array.from({ length: count }, (_, i) => {
    const key = keys[i % keys.length] as Ed25519KeyPair
    const payload = randomBytes(64)
    return { publicKey: key.publicKey, digest: signingDigest('bench', payload), signature: key.sign('bench', payload) }
  })
  const rounds = options.rounds ?? 5
  const inline: number[] = []
  const pooled: number[] = []
  const workers = Math.max(1, availableParallelism() - 1)
  const pool = new VerifyPool({ workers })
  pool.start()
  try {
    await pool.verifyAll(items.slice(0, 100)) // start the workers
    for (let r = 0; r < rounds; r++) {
      let start = performance.now()
      for (const item of items) verifySignatureDigest(item.publicKey, item.digest, item.signature)
      inline.push(count / ((performance.now() - start) / 1000))
      start = performance.now()
      const results = await pool.verifyAll(items)
      pooled.push(count / ((performance.now() - start) / 1000))
      if (results.some((ok) => !ok)) throw new Error('pool rejected a valid signature')
    }
  } finally {
    await pool.stop()
  }
  const best = (xs: number[]): number => Math.max(...xs)
  return [
    line({
      bench: 'ed25519-verify-batch',
      impl: `VerifyPool, ${workers} worker(s), batches of 64 (main thread free meanwhile)`,
      value: best(pooled),
      unit: 'ops/s',
      baseline: { impl: 'inline on the main thread', value: best(inline) },
      rounds: pooled,
    }),
  ]
}
