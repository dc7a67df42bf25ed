/**
 * Proof of history:
 *  - `poh-generate`: sequential hashes/s on one core with the generator's loop (PohHasher), against
 *    node:crypto createHash in the same run and Solana's 2 M hashes/s; and the real PohGenerator
 *    worker running flat out, against the same loop on the main thread (what the worker costs);
 *  - `poh-verify`: hashes/s checked by the PohVerifier worker pool against checking the same
 *    entries on one thread with the same loop.
 * Asynchronous, unlike the other benches, because the generator and the pool answer through
 * worker messages.
 */
import { createHash, randomBytes } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { performance } from 'node:perf_hooks'
import { simdEnabled } from '@chainsafe/as-sha256'
import { PohGenerator } from '../src/chain/poh/generator.ts'
import { PohHasher } from '../src/chain/poh/hasher.ts'
import { PohVerifier, verifyPohInline } from '../src/chain/poh/verifier.ts'
import { TARGET_HASHES_PER_SECOND, DEFAULT_SLICES_PER_WORKER } from '../src/chain/poh/constants.ts'
import type { PohEntry } from '../src/chain/poh/entries.ts'
import { line, measure, type BenchLine, type Measurement, type MeasureOptions } from './harness.ts'

export const POH_BENCH_NAMES = ['poh-generate', 'poh-verify']

/** `measure` for asynchronous operations: grows n until a round lasts a quarter of roundMs, then times rounds. */
async function measureAsync(op: (n: number) => Promise<void>, options: MeasureOptions): Promise<Measurement> {
  const roundMs = options.roundMs ?? 300
  let n = 1
  for (;;) {
    const start = performance.now()
    await op(n)
    const elapsed = performance.now() - start
    if (elapsed >= roundMs / 4 || n >= 2 ** 20) {
      n = Math.max(1, Math.round((n * roundMs) / Math.max(elapsed, 0.001)))
      break
    }
    n *= 4
  }
  const rounds: number[] = []
  for (let i = 0; i < (options.rounds ?? 5); i++) {
    const start = performance.now()
    await op(n)
    rounds.push(n / ((performance.now() - start) / 1000))
  }
  return { perSecond: Math.max(...rounds), rounds }
}

/** About `totalHashes` of PoH in 64 entries, one in eight with a mixin. */
function makeEntries(start: Uint8Array, totalHashes: number): { entries: PohEntry[]; hashesPerTick: number } {
  const count = 64
  const hashesPerTick = Math.max(1, Math.ceil(totalHashes / count))
  const hasher = new PohHasher(start)
  const entries: PohEntry[] = []
  for (let i = 0; i < count; i++) {
    if (i % 8 === 7) {
      const mixin = randomBytes(32)
      hasher.hashN(hashesPerTick >> 1)
      hasher.mix(mixin)
      entries.push({ numHashes: hashesPerTick >> 1, mixin: new Uint8Array(mixin), hash: hasher.hash })
    } else {
      hasher.hashN(hashesPerTick)
      entries.push({ numHashes: hashesPerTick, hash: hasher.hash })
    }
  }
  return { entries, hashesPerTick }
}

function hashesIn(entries: readonly PohEntry[]): number {
  let total = 0
  for (const entry of entries) total += entry.numHashes + (entry.mixin === undefined ? 0 : 1)
  return total
}

async function generatorRate(hashesPerTick: number, options: MeasureOptions): Promise<Measurement> {
  const generator = new PohGenerator({ hashesPerTick })
  generator.start()
  try {
    await generator.waitForTicks(1) // the worker is up and its loop compiled
    await generator.drain()
    return await measureAsync(async (n) => {
      await generator.drain()
      await generator.waitForTicks(n)
    }, options)
  } finally {
    await generator.stop()
  }
}

export async function pohBenches(options: MeasureOptions): Promise<BenchLine[]> {
  const out: BenchLine[] = []
  const start = randomBytes(32)

  const nodeCreateHash = measure((n) => {
    let h: Uint8Array = start
    for (let i = 0; i < n; i++) h = createHash('sha256').update(h).digest()
  }, options)
  const hasher = new PohHasher(start)
  const loop = measure((n) => hasher.hashN(n), options)
  const loopImpl = `PohHasher (@chainsafe/as-sha256 WASM${simdEnabled ? ' simd build' : ''}, hash kept in WASM memory)`
  out.push(
    line({
      bench: 'poh-generate',
      impl: loopImpl,
      value: loop.perSecond,
      unit: 'hashes/s',
      baseline: { impl: 'node:crypto createHash', value: nodeCreateHash.perSecond },
      target: {
        value: TARGET_HASHES_PER_SECOND,
        met: loop.perSecond >= TARGET_HASHES_PER_SECOND,
        note: "Solana's default PoH rate per core",
      },
      rounds: loop.rounds,
    }),
  )

  // Ticks of ~1 ms keep the main thread's share of the work (decoding entries) small.
  const tickHashes = Math.max(64, Math.round(loop.perSecond / 1000))
  const ticks = await generatorRate(tickHashes, options)
  out.push(
    line({
      bench: 'poh-generate',
      impl: `PohGenerator worker thread, flat out, ${tickHashes} hashes/tick`,
      value: ticks.perSecond * tickHashes,
      unit: 'hashes/s',
      baseline: { impl: loopImpl, value: loop.perSecond },
      target: {
        value: TARGET_HASHES_PER_SECOND,
        met: ticks.perSecond * tickHashes >= TARGET_HASHES_PER_SECOND,
        note: "Solana's default PoH rate per core",
      },
      rounds: ticks.rounds.map((r) => r * tickHashes),
    }),
  )

  // Enough work that one inline check lasts about a round.
  const roundMs = options.roundMs ?? 300
  const { entries, hashesPerTick } = makeEntries(start, Math.max(4096, (loop.perSecond * roundMs) / 1000))
  const work = hashesIn(entries)
  const inline = measure((n) => {
    for (let i = 0; i < n; i++)
      if (!verifyPohInline(start, entries, hashesPerTick).ok) throw new Error('bad bench entries')
  }, options)
  const workers = availableParallelism()
  const verifier = new PohVerifier({ workers, inlineThreshold: 0 })
  verifier.start()
  try {
    const pooled = await measureAsync(async (n) => {
      for (let i = 0; i < n; i++) {
        if (!(await verifier.verify(start, entries, hashesPerTick)).ok) throw new Error('bad bench entries')
      }
    }, options)
    out.push(
      line({
        bench: 'poh-verify',
        impl: `PohVerifier pool, ${workers} workers × ${DEFAULT_SLICES_PER_WORKER} slices, ${entries.length} entries`,
        value: pooled.perSecond * work,
        unit: 'hashes/s',
        baseline: { impl: 'verifyPohInline (calling thread, same loop)', value: inline.perSecond * work },
        rounds: pooled.rounds.map((r) => r * work),
      }),
    )
  } finally {
    await verifier.stop()
  }
  return out
}
