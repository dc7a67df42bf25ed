import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { Ed25519KeyPair } from './keys.ts'
import { VerifyPool, type VerifyItem } from './verify-pool.ts'
import { signingDigest } from '../core/signing.ts'
import { utf8 } from '../core/bytes.ts'
import { ManualClock } from '../core/clock.ts'
import { InvalidInputError } from '../core/errors.ts'

const keys = [Ed25519KeyPair.generate(), Ed25519KeyPair.generate()]

function item(i: number, valid: boolean): VerifyItem {
  const key = keys[i % keys.length] as Ed25519KeyPair
  const payload = utf8(`message ${i}`)
  const signature = key.sign('test', payload)
  return { publicKey: key.publicKey, digest: signingDigest('test', valid ? payload : utf8(`other ${i}`)), signature }
}

test('the worker pool gives the same answers as inline verification, in order, across batches', async () => {
  const pool = new VerifyPool({ workers: 2, maxBatch: 16, maxWaitMs: 2, coldInlineMax: 0 })
  pool.start()
  try {
    const expected = Array.from({ length: 200 }, (_, i) => i % 7 !== 3)
    const results = await pool.verifyAll(expected.map((ok, i) => item(i, ok)))
    assert.deepEqual(results, expected)
    assert.ok(pool.stats.batches >= 200 / 16, 'requests were batched')
    assert.equal(pool.stats.verified, 200)
  } finally {
    await pool.stop()
  }
})

test('malformed items are false without reaching a worker; a stopped pool answers inline', async () => {
  const pool = new VerifyPool({ workers: 1 })
  const good = item(1, true)
  assert.equal(await pool.verify(good), true, 'not started: inline')
  pool.start()
  assert.equal(await pool.verify({ ...good, signature: good.signature.subarray(1) }), false)
  assert.equal(await pool.verify({ ...good, publicKey: new Uint8Array(32).fill(0xff) }), false)
  fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 64, maxLength: 64 }), async (signature) => {
      assert.equal(await pool.verify({ ...good, signature }), false)
    }),
    { numRuns: 50 },
  )
  const pending = pool.verify(good)
  await pool.stop()
  assert.equal(await pending, true, 'an item in flight at stop is still answered')
})

test('threads start on first use and exit after idleMs without work; the next batch starts one again', async () => {
  const clock = new ManualClock()
  const pool = new VerifyPool({ workers: 2, maxWaitMs: 1, idleMs: 30_000, coldInlineMax: 0, clock })
  pool.start()
  try {
    assert.equal(pool.running, true)
    assert.equal(pool.threads, 0, 'a started pool holds no thread before its first batch')
    assert.equal(await pool.verify(item(1, true)), true)
    assert.equal(pool.threads, 1, 'one batch needs one thread')
    assert.equal(pool.stats.spawned, 1)
    clock.advance(29_999)
    assert.equal(pool.threads, 1, 'not idle long enough')
    assert.equal(await pool.verify(item(2, false)), false, 'work on the thread restarts its idle time')
    clock.advance(29_999)
    assert.equal(pool.threads, 1)
    clock.advance(1)
    assert.equal(pool.threads, 0, 'idle for idleMs: the thread exits')
    assert.equal(await pool.verify(item(3, true)), true, 'the next batch starts a thread again')
    assert.equal(pool.threads, 1)
    assert.equal(pool.stats.spawned, 2)
    assert.equal(pool.stats.verified, 3)
  } finally {
    await pool.stop()
  }
  assert.equal(pool.threads, 0)
  assert.equal(clock.pending, 0, 'stop cancels the idle timers')
})

test('a busy pool grows to its size, never beyond; idleMs 0 keeps threads until stop', async () => {
  const pool = new VerifyPool({
    workers: 2,
    maxBatch: 8,
    maxWaitMs: 1,
    idleMs: 0,
    coldInlineMax: 0,
    clock: new ManualClock(),
  })
  pool.start()
  try {
    const expected = Array.from({ length: 64 }, (_, i) => i % 5 !== 0)
    assert.deepEqual(await pool.verifyAll(expected.map((ok, i) => item(i, ok))), expected)
    assert.equal(pool.threads, 2, 'eight batches at once: both threads')
    assert.equal(pool.stats.spawned, 2)
  } finally {
    await pool.stop()
  }
})

test('a few signatures a second that find no thread alive are verified inline; beyond that budget a thread starts, which later small ones use', async () => {
  const clock = new ManualClock()
  const pool = new VerifyPool({ workers: 2, maxBatch: 64, maxWaitMs: 1, idleMs: 30_000, coldInlineMax: 4, clock })
  pool.start()
  try {
    assert.deepEqual(await pool.verifyAll([item(1, true), item(2, false), item(3, true)]), [true, false, true])
    assert.equal(pool.threads, 0, 'three signatures, no thread started for them')
    assert.equal(pool.stats.coldInline, 3)
    assert.equal(await pool.verify(item(4, true)), true)
    assert.equal(pool.threads, 0, 'the fourth in the same second still fits the budget')
    assert.equal(await pool.verify(item(5, false)), false)
    assert.equal(pool.threads, 1, 'the fifth in one second starts a thread: a thin steady stream soon has one')
    assert.equal(pool.stats.coldInline, 4)
    assert.equal(await pool.verify(item(6, true)), true)
    assert.equal(pool.stats.coldInline, 4, 'with a thread alive even one signature goes to it')
    clock.advance(30_000)
    assert.equal(pool.threads, 0)
    const many = Array.from({ length: 20 }, (_, i) => i % 3 !== 0)
    assert.deepEqual(await pool.verifyAll(many.map((ok, i) => item(i, ok))), many)
    assert.equal(pool.threads, 1, 'twenty at once, over the budget: a thread')
    assert.equal(pool.stats.coldInline, 4)
    clock.advance(30_000)
    assert.equal(await pool.verify(item(31, true)), true)
    assert.equal(pool.threads, 0, 'cold again, a new second: inline')
    assert.equal(pool.stats.coldInline, 5)
    assert.equal(pool.stats.verified, 27)
  } finally {
    await pool.stop()
  }
})

test('coldInlineMax must be a non-negative integer: NaN or a negative budget would check everything inline', () => {
  for (const coldInlineMax of [Number.NaN, -1, 1.5, Infinity])
    assert.throws(() => new VerifyPool({ coldInlineMax }), InvalidInputError, String(coldInlineMax))
  assert.doesNotThrow(() => new VerifyPool({ coldInlineMax: 0 }))
})
