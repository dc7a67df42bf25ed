import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ManualClock, repeatWhileDue, systemClock } from './clock.ts'
import { AbortError } from './errors.ts'

test('ManualClock fires timers in time order, then creation order, only when advanced', () => {
  const clock = new ManualClock(1000)
  const fired: string[] = []
  clock.setTimer(20, () => fired.push('b'))
  clock.setTimer(10, () => fired.push('a'))
  clock.setTimer(20, () => fired.push('c'))
  const cancel = clock.setTimer(15, () => fired.push('cancelled'))
  cancel()
  clock.advance(9)
  assert.deepEqual(fired, [])
  clock.advance(11)
  assert.deepEqual(fired, ['a', 'b', 'c'])
  assert.equal(clock.now(), 1020)
  assert.equal(clock.pending, 0)
})

test('ManualClock runs timers scheduled by timers within the same advance', () => {
  const clock = new ManualClock()
  const times: number[] = []
  clock.setTimer(5, () => {
    times.push(clock.now())
    clock.setTimer(5, () => times.push(clock.now()))
  })
  clock.advance(10)
  assert.deepEqual(times, [5, 10])
})

test('sleep resolves when time passes and rejects with AbortError when aborted', async () => {
  const clock = new ManualClock()
  const done = clock.sleep(50)
  clock.advance(50)
  await done
  const controller = new AbortController()
  const aborted = clock.sleep(50, { signal: controller.signal })
  controller.abort()
  await assert.rejects(aborted, AbortError)
  assert.equal(clock.pending, 0, 'an aborted sleep leaves no timer behind')
  await assert.rejects(systemClock.sleep(10, { signal: AbortSignal.abort() }), AbortError)
})

test('repeatWhileDue runs every interval while work is left, holds no timer when none is, and starts again on wake', async () => {
  const clock = new ManualClock()
  const controller = new AbortController()
  let work = 0
  const runs: number[] = []
  const errors: unknown[] = []
  const due = repeatWhileDue(
    clock,
    100,
    () => {
      runs.push(clock.now())
      if (work === 99) throw new Error('boom')
      work = Math.max(0, work - 1)
      return work > 0
    },
    { signal: controller.signal, onError: (err) => errors.push(err) },
  )
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve))
  }
  const step = async (ms: number): Promise<void> => {
    clock.advance(ms)
    await settle()
  }
  assert.equal(due.active, false, 'nothing until the first wake')
  await step(1_000)
  assert.deepEqual(runs, [])
  work = 2
  due.wake()
  due.wake() // a second wake while scheduled adds no run
  assert.equal(clock.pending, 1)
  await step(100)
  await step(100)
  assert.deepEqual(runs, [1_100, 1_200], 'one run per interval until the work is done')
  assert.equal(due.active, false)
  assert.equal(clock.pending, 0, 'no work, no timer')
  await step(1_000)
  assert.equal(runs.length, 2)
  // an error counts as work left: the schedule goes on
  work = 99
  due.wake()
  await step(100)
  assert.equal(errors.length, 1)
  assert.equal(due.active, true)
  work = 1
  await step(100)
  assert.equal(due.active, false)
  // a wake during a run that finds nothing keeps the schedule going (the run looked too early)
  let release!: () => void
  const slow = repeatWhileDue(
    clock,
    100,
    async () => {
      await new Promise<void>((resolve) => (release = resolve))
      return false
    },
    { signal: controller.signal, onError: (err) => errors.push(err) },
  )
  slow.wake()
  await step(100)
  slow.wake()
  release()
  await settle()
  assert.equal(slow.active, true, 'woken while running: scheduled again')
  await step(100)
  release()
  await settle()
  assert.equal(slow.active, false)
  // an abort ends both for good
  due.wake()
  controller.abort()
  assert.equal(clock.pending, 0)
  assert.equal(due.active, false)
  due.wake()
  assert.equal(clock.pending, 0)
})
