// The chaos schedule and its shrinker, without processes: a schedule is a pure function of its
// seed; every enabled kind is drawn in a short run; a lane never overlaps its own faults; the
// shrinker finds the one fault that matters, and says so when the empty schedule already fails.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FAULT_KINDS, drawSchedule, parseSchedule, type Fault } from '../../src/chaos/schedule.ts'
import { shrinkSchedule } from '../../src/chaos/shrink.ts'
import { testSeed } from '../helpers/random.ts'

test('the same seed draws the same schedule; another seed another one', () => {
  const seed = testSeed()
  const options = { nodes: 4, chaosMs: 120_000, kinds: FAULT_KINDS }
  assert.deepEqual(drawSchedule(seed, options), drawSchedule(seed, options))
  assert.notDeepEqual(drawSchedule(seed, options), drawSchedule(seed + 1, options))
})

test('a 45-second run draws every enabled kind, for any seed', () => {
  const first = testSeed()
  for (let seed = first; seed < first + 300; seed++) {
    const schedule = drawSchedule(seed, { nodes: 4, chaosMs: 45_000, kinds: FAULT_KINDS })
    const kinds = new Set(schedule.map((f) => f.kind))
    assert.equal(kinds.size, FAULT_KINDS.length, `seed ${seed}: ${[...kinds].join(',')}`)
    for (const f of schedule) assert.ok(f.atMs + f.durationMs <= 45_000, `seed ${seed}: #${f.id} ends inside the run`)
  }
})

test('faults of one lane never overlap; seven nodes get two lanes on disjoint nodes', () => {
  const seed = testSeed()
  for (const nodes of [4, 7]) {
    const schedule = drawSchedule(seed, { nodes, chaosMs: 600_000, kinds: FAULT_KINDS })
    const lanes = nodes === 7 ? 2 : 1
    for (let lane = 0; lane < lanes; lane++) {
      const own = schedule.filter((f) => f.node % lanes === lane)
      for (let i = 1; i < own.length; i++) {
        const a = own[i - 1] as Fault
        const b = own[i] as Fault
        assert.ok(a.atMs + a.durationMs <= b.atMs, `seed ${seed}: #${a.id} and #${b.id} overlap in lane ${lane}`)
      }
    }
    for (const f of schedule) {
      if (f.kind === 'partition') assert.ok(f.side?.includes(f.node))
      if (f.kind === 'loss') assert.ok(f.to !== undefined && f.to !== f.node && (f.percent ?? 0) >= 30)
      if (f.kind === 'skew') assert.ok(f.skewMs !== undefined && f.skewMs !== 0)
    }
  }
})

test('a schedule survives its JSON; a malformed one is refused with the field named', () => {
  const schedule = drawSchedule(testSeed(), { nodes: 4, chaosMs: 60_000, kinds: FAULT_KINDS })
  assert.deepEqual(parseSchedule(JSON.parse(JSON.stringify({ schedule })), 4), schedule)
  assert.throws(() => parseSchedule([{ kind: 'kill', atMs: 0, durationMs: 5, node: 9 }], 4), /node must be/)
  assert.throws(() => parseSchedule([{ kind: 'melt', atMs: 0, durationMs: 5, node: 0 }], 4), /kind must be/)
})

test('shrinking keeps the fault that makes the run fail, within the budget', async () => {
  const schedule = drawSchedule(testSeed(), { nodes: 4, chaosMs: 300_000, kinds: FAULT_KINDS })
  assert.ok(schedule.length >= 8)
  const culprit = schedule[5] as Fault
  const runs: Fault[][] = []
  const result = await shrinkSchedule(schedule, {
    maxRuns: 20,
    fails: async (subset) => {
      runs.push(subset)
      return subset.some((f) => f.id === culprit.id)
    },
  })
  assert.deepEqual(
    result.schedule.map((f) => f.id),
    [culprit.id],
  )
  assert.equal(result.schedule[0]?.atMs, culprit.atMs, 'the result keeps the drawn times')
  assert.deepEqual(runs[0], [], 'the empty schedule is tried first')
  assert.ok(
    runs.slice(1).every((r) => r[0]?.atMs === 0),
    're-runs start their first fault at once',
  )
  assert.ok(result.runs <= 20)

  const broken = await shrinkSchedule(schedule, { maxRuns: 5, fails: async () => true })
  assert.deepEqual(broken, { schedule: [], runs: 1, complete: true }, 'failing without faults is said at once')

  const budget = await shrinkSchedule(schedule, { maxRuns: 2, fails: async (s) => s.length > 3 })
  assert.equal(budget.complete, false)
  assert.ok(budget.runs <= 2)
})
