// The worker-thread generator: its entries verify, mixins land where recorded, drains are in
// order, reset continues from the new hash, and stop leaves nothing running. No timing asserts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ManualClock } from '../../core/clock.ts'
import { AbortError, InvalidInputError } from '../../core/errors.ts'
import { verifyPohEntries, type PohEntry } from './entries.ts'
import { PohStoppedError } from './errors.ts'
import { PohGenerator } from './generator.ts'

const HPT = 64
const zero = new Uint8Array(32)

async function withGenerator(
  options: { ticksPerSecond?: number; startHash?: Uint8Array; maxTicks?: number },
  body: (g: PohGenerator) => Promise<void>,
): Promise<void> {
  const g = new PohGenerator({ hashesPerTick: HPT, ...options })
  g.start()
  try {
    await body(g)
  } finally {
    await g.stop()
  }
}

test('entries produced flat out verify from the start hash', async () => {
  const start = new Uint8Array(32).fill(3)
  await withGenerator({ startHash: start }, async (g) => {
    await g.waitForTicks(50)
    const entries = await g.drain()
    assert.ok(entries.length >= 50)
    const check = verifyPohEntries(start, entries, HPT)
    assert.deepEqual(check, { ok: true, end: entries.at(-1)?.hash, ticks: entries.length })
    assert.deepEqual(g.hash, entries.at(-1)?.hash)
  })
})

test('paced entries verify too', async () => {
  await withGenerator({ ticksPerSecond: 200 }, async (g) => {
    await g.waitForTicks(4)
    const entries = await g.drain()
    assert.equal(verifyPohEntries(zero, entries, HPT).ok, true)
  })
})

test('record places each mixin in order, after the plain hashes since the previous entry', async () => {
  const mixins = [1, 2, 3].map((n) => new Uint8Array(32).fill(n))
  for (const ticksPerSecond of [0, 1000]) {
    await withGenerator({ ticksPerSecond }, async (g) => {
      const recorded: PohEntry[] = []
      for (const mixin of mixins) {
        await g.waitForTicks(recorded.length + 2)
        recorded.push(await g.record(mixin))
      }
      const both = await Promise.all([g.record(new Uint8Array(32).fill(8)), g.record(new Uint8Array(32).fill(9))])
      const entries = await g.drain()
      const check = verifyPohEntries(zero, entries, HPT)
      assert.equal(check.ok, true)
      const withMixins = entries.filter((e) => e.mixin !== undefined)
      assert.deepEqual(
        withMixins.map((e) => e.mixin),
        [...mixins, new Uint8Array(32).fill(8), new Uint8Array(32).fill(9)],
      )
      for (const entry of [...recorded, ...both]) {
        assert.ok(entries.includes(entry), 'record() answers the drained entry')
      }
      for (const entry of withMixins) assert.ok(entry.numHashes < HPT)
    })
  }
})

test('drains return consecutive runs of the one chain', async () => {
  await withGenerator({}, async (g) => {
    const runs: PohEntry[][] = []
    for (let i = 0; i < 4; i++) {
      await g.waitForTicks(10)
      assert.ok(g.ticks >= 10)
      if (i === 1) await g.record(new Uint8Array(32).fill(i))
      runs.push(await g.drain())
      assert.equal(g.ticks, 0, 'a drain restarts the tick count')
    }
    let start: Uint8Array = zero
    for (const run of runs) {
      const check = verifyPohEntries(start, run, HPT)
      assert.equal(check.ok, true)
      if (check.ok) start = check.end
    }
    assert.deepEqual(verifyPohEntries(zero, runs.flat(), HPT).ok, true)
  })
})

test('a reset with rest makes no tick until a reset without it, which counts from its own start', async () => {
  await withGenerator({ ticksPerSecond: 1000, maxTicks: 1_000 }, async (g) => {
    await g.waitForTicks(5)
    const start = new Uint8Array(32).fill(0x5e)
    g.reset(start, { rest: true })
    // at 1000 ticks a second a ticking loop would make ~150 meanwhile
    await new Promise((resolve) => setTimeout(resolve, 150))
    await g.ready()
    assert.deepEqual(await g.drain(), [], 'no tick while resting, and none from before the reset')
    assert.equal(g.ticks, 0)
    g.reset(start)
    await g.waitForTicks(5)
    const ticks = await g.drain()
    assert.ok(ticks.length >= 5)
    assert.equal(verifyPohEntries(start, ticks, HPT).ok, true, 'the ticks continue from the start hash')
  })
})

test('an unlimited generator (maxTicks 0) rests too when told, and ticks again after a reset', async () => {
  await withGenerator({ ticksPerSecond: 1000 }, async (g) => {
    const start = new Uint8Array(32).fill(0x77)
    g.reset(start, { rest: true })
    await new Promise((resolve) => setTimeout(resolve, 100))
    await g.ready()
    assert.deepEqual(await g.drain(), [])
    g.reset(start)
    await g.waitForTicks(3)
    assert.equal(verifyPohEntries(start, await g.drain(), HPT).ok, true)
  })
})

test('with maxTicks the paced loop rests after that many ticks, until a record or a reset', async () => {
  await withGenerator({ ticksPerSecond: 1000, maxTicks: 10 }, async (g) => {
    await g.waitForTicks(10)
    // at 1000 ticks a second an unlimited loop would make ~200 more meanwhile
    await new Promise((resolve) => setTimeout(resolve, 200))
    const rested = await g.drain()
    assert.equal(rested.length, 10, 'no tick after the tenth')
    const mixed = await g.record(new Uint8Array(32).fill(5))
    assert.equal(mixed.numHashes, 0, 'a record while resting carries no plain hashes')
    const fresh = new Uint8Array(32).fill(0xab)
    g.reset(fresh)
    await g.waitForTicks(10)
    await new Promise((resolve) => setTimeout(resolve, 100))
    const again = await g.drain()
    assert.equal(again.length, 10, 'a reset starts ten more, and only ten')
    assert.equal(verifyPohEntries(fresh, again, HPT).ok, true)
  })
  assert.throws(() => new PohGenerator({ hashesPerTick: HPT, maxTicks: -1 }), InvalidInputError)
})

test('reset discards pending entries and continues from the new hash', async () => {
  const fresh = new Uint8Array(32).fill(0xee)
  await withGenerator({}, async (g) => {
    await g.waitForTicks(20)
    g.reset(fresh)
    assert.equal(g.ticks, 0)
    assert.deepEqual(g.hash, fresh)
    await g.waitForTicks(5)
    await g.record(new Uint8Array(32).fill(1))
    const entries = await g.drain()
    assert.equal(verifyPohEntries(fresh, entries, HPT).ok, true)
  })
})

test('reset before start sets where the worker begins', async () => {
  const g = new PohGenerator({ hashesPerTick: HPT })
  const fresh = new Uint8Array(32).fill(0x42)
  g.reset(fresh)
  g.start()
  try {
    await g.waitForTicks(3)
    assert.equal(verifyPohEntries(fresh, await g.drain(), HPT).ok, true)
  } finally {
    await g.stop()
  }
})

test('bad input, aborts and calls on a stopped generator are typed errors', async () => {
  assert.throws(() => new PohGenerator({ hashesPerTick: 0 }), InvalidInputError)
  assert.throws(() => new PohGenerator({ hashesPerTick: 5, ticksPerSecond: -1 }), InvalidInputError)
  const g = new PohGenerator({ hashesPerTick: HPT, ticksPerSecond: 1 })
  await assert.rejects(g.record(zero), PohStoppedError)
  await assert.rejects(g.waitForTicks(1), PohStoppedError)
  assert.deepEqual(await g.drain(), [])
  g.start()
  await assert.rejects(g.record(new Uint8Array(31)), InvalidInputError)
  assert.throws(() => g.reset(new Uint8Array(33)), InvalidInputError)
  const controller = new AbortController()
  const waiting = g.waitForTicks(1_000_000, { signal: controller.signal })
  controller.abort()
  await assert.rejects(waiting, AbortError)
  const pending = assert.rejects(g.waitForTicks(1_000_000), PohStoppedError)
  await g.stop()
  await pending
  await g.stop() // twice is fine
})

test('stop leaves no running handles', async () => {
  const ports = (): number => process.getActiveResourcesInfo().filter((r) => r === 'MessagePort').length
  const before = ports()
  await withGenerator({ ticksPerSecond: 500 }, async (g) => {
    await g.waitForTicks(2)
  })
  assert.equal(ports(), before)
})

test('a process that starts and stops a generator exits on its own', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-poh-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const script = join(dir, 'run.mjs')
  await writeFile(
    script,
    `const { PohGenerator } = await import(${JSON.stringify(new URL('./generator.ts', import.meta.url).href)})
    const g = new PohGenerator({ hashesPerTick: 64, ticksPerSecond: 100 })
    g.start()
    await g.waitForTicks(2)
    await g.record(new Uint8Array(32))
    await g.stop()
    `,
  )
  // A leaked worker or timer would keep the child alive until this timeout kills it.
  const child = await promisify(execFile)(process.execPath, [script], { timeout: 60_000 })
  assert.equal(child.stderr, '')
})

test('a generator resting for idleMs ends its thread; a reset without rest (or a record) starts one from where it was', async () => {
  const clock = new ManualClock()
  const g = new PohGenerator({ hashesPerTick: HPT, ticksPerSecond: 1000, maxTicks: 1_000, idleMs: 30_000, clock })
  g.start()
  try {
    await g.waitForTicks(3)
    const head = new Uint8Array(32).fill(0x31)
    g.reset(head, { rest: true })
    clock.advance(20_000)
    g.reset(head) // a break in the rest: the 30 s count again from the next rest
    g.reset(head, { rest: true })
    await g.ready()
    clock.advance(29_999)
    assert.equal(g.threadAlive, true, 'rested 29.999 s since the last break')
    clock.advance(1)
    assert.equal(g.threadAlive, false, 'rested 30 s: the thread ends')
    assert.equal(g.running, true, 'the generator itself still runs')
    assert.deepEqual(await g.drain(), [], 'a drain answers at once, with nothing')

    // a record starts a thread that rests on: the entry carries no plain hashes
    const mixed = await g.record(new Uint8Array(32).fill(9))
    assert.equal(g.threadAlive, true)
    assert.equal(mixed.numHashes, 0)
    assert.equal(verifyPohEntries(head, [mixed], HPT).ok, true, 'recorded on the chain from where it rested')
    clock.advance(30_000)
    assert.equal(g.threadAlive, false, 'and it ends again after 30 s more')

    const next = new Uint8Array(32).fill(0x32)
    g.reset(next)
    assert.equal(g.threadAlive, true, 'a reset without rest starts a thread at once')
    await g.waitForTicks(5)
    const ticks = await g.drain()
    assert.ok(ticks.length >= 5)
    assert.equal(verifyPohEntries(next, ticks, HPT).ok, true, 'its ticks continue from the reset hash')
    clock.advance(60_000)
    assert.equal(g.threadAlive, true, 'a ticking generator keeps its thread')
  } finally {
    await g.stop()
  }
  assert.equal(clock.pending, 0, 'stop leaves no timer')
  assert.equal(g.threadAlive, false)
  assert.throws(() => new PohGenerator({ hashesPerTick: HPT, idleMs: -1 }), InvalidInputError)
})

test('with threadDelayMs a thread starts only once ticks were asked for that long without a reset; resting asks for none', async () => {
  const clock = new ManualClock()
  const g = new PohGenerator({ hashesPerTick: HPT, ticksPerSecond: 1000, threadDelayMs: 500, idleMs: 20_000, clock })
  g.start()
  try {
    assert.equal(g.threadAlive, false, 'started: no thread yet')
    assert.deepEqual(await g.drain(), [], 'a drain answers at once, with nothing')
    clock.advance(499)
    const first = new Uint8Array(32).fill(0x41)
    g.reset(first) // a quick height: the next one asks again, from its own time
    clock.advance(499)
    assert.equal(g.threadAlive, false, 'no height lasted 500 ms')
    g.reset(first, { rest: true }) // the height waits for work: no ticks asked for
    clock.advance(10_000)
    assert.equal(g.threadAlive, false, 'a resting generator starts no thread')

    const head = new Uint8Array(32).fill(0x42)
    g.reset(head)
    clock.advance(499)
    assert.equal(g.threadAlive, false)
    clock.advance(1)
    assert.equal(g.threadAlive, true, 'asked for ticks 500 ms: the thread starts')
    await g.waitForTicks(3)
    const ticks = await g.drain()
    assert.ok(ticks.length >= 3)
    assert.equal(verifyPohEntries(head, ticks, HPT).ok, true, 'it ticks from the latest reset')

    const next = new Uint8Array(32).fill(0x43)
    g.reset(next)
    assert.equal(g.threadAlive, true, 'a running thread takes resets as before')
    g.reset(next, { rest: true })
    clock.advance(20_000)
    assert.equal(g.threadAlive, false, 'rested 20 s: the thread ends')
    g.reset(next)
    assert.equal(g.threadAlive, false, 'and the next height waits its 500 ms again')
    const mixin = new Uint8Array(32).fill(7)
    await g.record(mixin)
    assert.equal(g.threadAlive, true, 'a record starts one at once')
    const entries = await g.drain()
    assert.equal(verifyPohEntries(next, entries, HPT).ok, true, 'on the chain from the latest reset')
    assert.deepEqual(entries.find((e) => e.mixin !== undefined)?.mixin, mixin)
  } finally {
    await g.stop()
  }
  assert.equal(clock.pending, 0, 'stop leaves no timer')
  assert.throws(() => new PohGenerator({ hashesPerTick: HPT, threadDelayMs: -1 }), InvalidInputError)

  // stopped while a reset waits for its thread: the wait ends with it, and no thread starts
  const waiting = new PohGenerator({ hashesPerTick: HPT, ticksPerSecond: 1000, threadDelayMs: 500, clock })
  waiting.start()
  waiting.reset(new Uint8Array(32).fill(0x44))
  assert.equal(clock.pending, 1, 'the delay is armed')
  await waiting.stop()
  assert.equal(clock.pending, 0, 'stop disarms it')
  clock.advance(1_000)
  assert.equal(waiting.threadAlive, false, 'no thread after stop')
})
