// BadModels on a manual clock: back-off doubling from 1 minute to 1 day, a fresh series after a
// long clean spell, the list for stats, forgetting, the bound, and refused options.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ManualClock } from '../core/clock.ts'
import { InvalidInputError } from '../core/errors.ts'
import { BAD_MODEL_DEFAULTS, BadModels } from './bad-models.ts'

const MINUTE = 60_000
const DAY = 86_400_000

test('a marked model is bad for one minute, then for 2, 4, 8 … minutes, never more than a day', () => {
  const clock = new ManualClock(1_000_000)
  const bad = new BadModels({ clock })
  assert.equal(bad.isBad('a'), false)
  const first = bad.mark('a', 'run-time')
  assert.deepEqual(first, {
    cid: 'a',
    reason: 'run-time',
    failures: 1,
    markedAt: 1_000_000,
    retryAt: 1_000_000 + MINUTE,
  })
  assert.equal(bad.isBad('a'), true)
  clock.advance(MINUTE - 1)
  assert.equal(bad.isBad('a'), true)
  clock.advance(1)
  assert.equal(bad.isBad('a'), false, 'retried once its back-off ends')
  const backoffs: number[] = []
  for (let i = 0; i < 13; i++) {
    const entry = bad.mark('a', 'memory')
    backoffs.push((entry.retryAt - clock.now()) / MINUTE)
    clock.advance(entry.retryAt - clock.now())
  }
  assert.deepEqual(backoffs, [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1440, 1440, 1440])
  assert.equal(bad.list()[0]?.reason, 'memory')
})

test('isBad takes the time to judge at; the clock is only the default', () => {
  const bad = new BadModels({ clock: new ManualClock(0) })
  bad.mark('a', 'crashed')
  assert.equal(bad.isBad('a', MINUTE - 1), true)
  assert.equal(bad.isBad('a', MINUTE), false)
})

test('after two clean days a new failure starts the series again at one minute', () => {
  const clock = new ManualClock(0)
  const bad = new BadModels({ clock })
  bad.mark('a', 'crashed')
  bad.mark('a', 'crashed')
  clock.advance(2 * DAY + 1)
  assert.equal(bad.mark('a', 'crashed').failures, 1)
  assert.equal(bad.mark('a', 'crashed').failures, 2)
})

test('list() gives every model for stats, soonest retry first; forgive() drops one', () => {
  const clock = new ManualClock(0)
  const bad = new BadModels({ clock })
  bad.mark('b', 'memory')
  bad.mark('b', 'memory') // 2 minutes
  bad.mark('a', 'unsafe') // 1 minute
  assert.deepEqual(
    bad.list().map((e) => [e.cid, e.reason, e.failures, e.retryAt]),
    [
      ['a', 'unsafe', 1, MINUTE],
      ['b', 'memory', 2, 2 * MINUTE],
    ],
  )
  bad.list()[0]!.failures = 99 // a copy: the table is not changed through it
  assert.equal(bad.list()[0]?.failures, 1)
  bad.forgive('a')
  assert.equal(bad.isBad('a'), false)
  assert.deepEqual(
    bad.list().map((e) => e.cid),
    ['b'],
  )
})

test('beyond maxEntries the model whose back-off ends first is forgotten', () => {
  const clock = new ManualClock(0)
  const bad = new BadModels({ clock, maxEntries: 2 })
  bad.mark('a', 'x')
  clock.advance(1)
  bad.mark('b', 'x')
  clock.advance(1)
  bad.mark('c', 'x')
  assert.deepEqual(
    bad.list().map((e) => e.cid),
    ['b', 'c'],
  )
})

test('options are checked; the defaults are 1 minute, 1 day, 4,096 models', () => {
  assert.deepEqual({ ...BAD_MODEL_DEFAULTS }, { baseMs: MINUTE, maxMs: DAY, maxEntries: 4_096 })
  const clock = new ManualClock(0)
  assert.throws(() => new BadModels({ clock, baseMs: 0 }), InvalidInputError)
  assert.throws(() => new BadModels({ clock, maxMs: 1.5 }), InvalidInputError)
  assert.throws(() => new BadModels({ clock, baseMs: 10, maxMs: 5 }), InvalidInputError)
})
