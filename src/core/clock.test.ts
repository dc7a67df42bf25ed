import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ManualClock, systemClock } from './clock.ts'
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
