// The parallel verifier gives the same answers as checking on one thread: on random entry lists
// (property), for one corrupted hash or mixin in any slice, and for malformed entries.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { ManualClock } from '../../core/clock.ts'
import { AbortError, InvalidInputError } from '../../core/errors.ts'
import { PohChain, POH_HASH_MISMATCH, entryShapeError, verifyPohEntries, type PohEntry } from './entries.ts'
import { PohStoppedError } from './errors.ts'
import { PohVerifier, sliceByWork, verifyPohInline } from './verifier.ts'

const zero = new Uint8Array(32)
// Every list goes to the pool (threshold 0), cut into 2 workers × 3 slices.
const pool = new PohVerifier({ workers: 2, inlineThreshold: 0, slicesPerWorker: 3 })
before(() => pool.start())
after(() => pool.stop())

type Step = { tick: true } | { tick: false; hashes: number; mixin: number }

function build(start: Uint8Array, hashesPerTick: number, steps: readonly Step[]): PohEntry[] {
  const chain = new PohChain(start, hashesPerTick)
  for (const step of steps) {
    if (step.tick) chain.tick()
    else chain.record(new Uint8Array(32).fill(step.mixin), step.hashes)
  }
  return chain.drain()
}

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.constant<Step>({ tick: true }),
  fc.record({ tick: fc.constant<false>(false), hashes: fc.nat({ max: 40 }), mixin: fc.nat({ max: 255 }) }),
)

type Corruption = { kind: 'none' } | { kind: 'hash' | 'mixin' | 'count'; at: number; byte: number }
const corruptionArb: fc.Arbitrary<Corruption> = fc.oneof(
  fc.constant<Corruption>({ kind: 'none' }),
  fc.record({
    kind: fc.constantFrom<'hash' | 'mixin' | 'count'>('hash', 'mixin', 'count'),
    at: fc.nat(),
    byte: fc.nat({ max: 31 }),
  }),
)

function corrupt(entries: PohEntry[], c: Corruption): PohEntry[] {
  if (c.kind === 'none' || entries.length === 0) return entries
  const out = [...entries]
  const index = c.at % out.length
  const entry = out[index] as PohEntry
  if (c.kind === 'hash') {
    const hash = Uint8Array.from(entry.hash)
    hash[c.byte] = (hash[c.byte] as number) ^ 1
    out[index] = { ...entry, hash }
  } else if (c.kind === 'mixin' && entry.mixin !== undefined) {
    const mixin = Uint8Array.from(entry.mixin)
    mixin[c.byte] = (mixin[c.byte] as number) ^ 0x80
    out[index] = { ...entry, mixin }
  } else if (c.kind === 'count' && entry.mixin !== undefined) {
    out[index] = { ...entry, numHashes: entry.numHashes + 1 }
  }
  return out
}

test('the pool answers what one thread answers, on random lists with at most one fault', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.integer({ min: 1, max: 50 }),
      fc.array(stepArb, { maxLength: 40 }),
      corruptionArb,
      async (start, hashesPerTick, steps, corruption) => {
        const entries = corrupt(build(start, hashesPerTick, steps), corruption)
        const expected = verifyPohEntries(start, entries, hashesPerTick)
        assert.deepEqual(verifyPohInline(start, entries, hashesPerTick), expected)
        assert.deepEqual(await pool.verify(start, entries, hashesPerTick), expected)
      },
    ),
    { numRuns: 150 },
  )
})

test('a corrupted hash or mixin in any slice is found at its index', async () => {
  const steps: Step[] = []
  for (let i = 0; i < 36; i++) steps.push(i % 3 === 2 ? { tick: false, hashes: i, mixin: i } : { tick: true })
  const entries = build(zero, 17, steps)
  const good = await pool.verify(zero, entries, 17)
  assert.deepEqual(good, verifyPohEntries(zero, entries, 17))
  assert.equal(sliceByWork(entries, 6).length, 6)
  for (let index = 0; index < entries.length; index++) {
    const hashFault = corrupt(entries, { kind: 'hash', at: index, byte: index % 32 })
    assert.deepEqual(await pool.verify(zero, hashFault, 17), { ok: false, index, reason: POH_HASH_MISMATCH })
    if (entries[index]?.mixin !== undefined) {
      const mixinFault = corrupt(entries, { kind: 'mixin', at: index, byte: 31 - (index % 32) })
      assert.deepEqual(await pool.verify(zero, mixinFault, 17), { ok: false, index, reason: POH_HASH_MISMATCH })
    }
  }
})

test('the first of several faults is the one reported', async () => {
  const entries = build(
    zero,
    9,
    Array.from({ length: 30 }, (): Step => ({ tick: true })),
  )
  const twice = corrupt(corrupt(entries, { kind: 'hash', at: 25, byte: 0 }), { kind: 'hash', at: 7, byte: 0 })
  assert.deepEqual(await pool.verify(zero, twice, 9), { ok: false, index: 7, reason: POH_HASH_MISMATCH })
})

test('malformed entries are reported without hashing', async () => {
  const mixin = new Uint8Array(32)
  const hash = new Uint8Array(32)
  // Hashing entry 0 would take hours: the answer must come from the shape check alone.
  const huge: PohEntry = { numHashes: 1e12, mixin, hash }
  const malformed: PohEntry[] = [
    { numHashes: 5, hash }, // a tick with the wrong count
    { numHashes: 3, mixin: new Uint8Array(31), hash },
    { numHashes: -1, mixin, hash },
    { numHashes: 1.5, mixin, hash },
    { numHashes: 3, mixin, hash: new Uint8Array(33) },
  ]
  for (const bad of malformed) {
    const reason = entryShapeError(bad, 9)
    assert.ok(reason !== undefined)
    const list = [huge, huge, bad, huge]
    assert.deepEqual(await pool.verify(zero, list, 9), { ok: false, index: 2, reason })
    assert.deepEqual(verifyPohInline(zero, list, 9), { ok: false, index: 2, reason })
  }
})

test('an empty list is fine, and ends where it starts', async () => {
  assert.deepEqual(await pool.verify(zero, [], 9), { ok: true, end: zero, ticks: 0 })
})

test('slices are contiguous, non-empty and of about equal work', () => {
  fc.assert(
    fc.property(
      fc.array(fc.nat({ max: 1000 }), { maxLength: 60 }),
      fc.integer({ min: 1, max: 12 }),
      (counts, parts) => {
        const entries = counts.map((numHashes) => ({ numHashes, mixin: zero, hash: zero }))
        const slices = sliceByWork(entries, parts)
        assert.ok(slices.length <= Math.max(1, parts))
        let next = 0
        for (const { from, to } of slices) {
          assert.equal(from, next)
          assert.ok(to > from)
          next = to
        }
        assert.equal(next, entries.length)
      },
    ),
  )
  const even = Array.from({ length: 100 }, () => ({ numHashes: 10, mixin: zero, hash: zero }))
  assert.deepEqual(
    sliceByWork(even, 4).map((s) => s.to - s.from),
    [25, 25, 25, 25],
  )
})

test('small lists are checked inline; big ones need a started pool', async () => {
  const entries = build(
    zero,
    100,
    Array.from({ length: 5 }, (): Step => ({ tick: true })),
  )
  const idle = new PohVerifier({ workers: 1, inlineThreshold: 1000 })
  assert.deepEqual(await idle.verify(zero, entries, 100), verifyPohEntries(zero, entries, 100))
  const strict = new PohVerifier({ workers: 1, inlineThreshold: 10 })
  await assert.rejects(strict.verify(zero, entries, 100), PohStoppedError)
  await assert.rejects(strict.verify(new Uint8Array(31), entries, 100), InvalidInputError)
  await assert.rejects(strict.verify(zero, entries, 0), InvalidInputError)
  assert.throws(() => new PohVerifier({ workers: 0 }), InvalidInputError)
})

test('abort rejects with AbortError; stop rejects pending verifications', async () => {
  const entries = build(
    zero,
    20_000,
    Array.from({ length: 20 }, (): Step => ({ tick: true })),
  )
  const verifier = new PohVerifier({ workers: 1, inlineThreshold: 0 })
  verifier.start()
  const controller = new AbortController()
  const aborted = assert.rejects(verifier.verify(zero, entries, 20_000, { signal: controller.signal }), AbortError)
  controller.abort()
  await aborted
  await assert.rejects(verifier.verify(zero, entries, 20_000, { signal: controller.signal }), AbortError)
  const stopped = assert.rejects(verifier.verify(zero, entries, 20_000), PohStoppedError)
  await verifier.stop()
  await stopped
  assert.equal(verifier.running, false)
})

test('threads start when a list needs the pool, up to its size, and exit after idleMs without a slice', async () => {
  const clock = new ManualClock()
  const verifier = new PohVerifier({ workers: 2, inlineThreshold: 1000, slicesPerWorker: 2, idleMs: 30_000, clock })
  verifier.start()
  try {
    const small = build(zero, 100, [{ tick: true }])
    const big = build(
      zero,
      1000,
      Array.from({ length: 8 }, (): Step => ({ tick: true })),
    )
    assert.equal(verifier.threads, 0, 'a started verifier holds no thread before a list needs one')
    assert.deepEqual(await verifier.verify(zero, small, 100), verifyPohEntries(zero, small, 100))
    assert.equal(verifier.threads, 0, 'an inline list starts none')
    assert.deepEqual(await verifier.verify(zero, big, 1000), verifyPohEntries(zero, big, 1000))
    assert.equal(verifier.threads, 2, 'four slices: both threads, no more')
    clock.advance(29_999)
    assert.equal(verifier.threads, 2)
    clock.advance(1)
    assert.equal(verifier.threads, 0, 'idle for idleMs: the threads exit')
    assert.deepEqual(await verifier.verify(zero, big, 1000), verifyPohEntries(zero, big, 1000), 'and start again')
    assert.equal(verifier.threads, 2)
  } finally {
    await verifier.stop()
  }
  assert.equal(verifier.threads, 0)
  assert.equal(clock.pending, 0, 'stop cancels the idle timers')
})
