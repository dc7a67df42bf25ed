// Consensus simulator: hundreds of seeded adversarial schedules must show no safety, validity
// or liveness failure, and a weakened quorum must be caught. Failing seeds are printed; replay one
// with `donghae sim consensus --nodes N --byzantine F --seed S --count 1 --trace`.
// DONGHAE_SIM_SEED moves the first seed of every batch (default: fixed, so CI is reproducible).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { utf8 } from '../../core/bytes.ts'
import { sha256 } from '../../core/hash.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { DEFAULT_TIMEOUTS } from '../bft/constants.ts'
import { selectProposer } from '../bft/proposer.ts'
import { testValidators } from '../bft/testing.ts'
import { runCli } from '../../../test/helpers/cli.ts'
import { BLOCK_DEFECTS, checkSimBlock, makeSimBlock, ticksRequired, type SimChainParams } from './app.ts'
import { SimClock } from './scheduler.ts'
import { runSchedule, runSchedules, type RunSchedulesOptions, type Summary } from './simulator.ts'

const BASE = Number(process.env.DONGHAE_SIM_SEED ?? 1)

async function batch(t: { diagnostic(msg: string): void }, options: Omit<RunSchedulesOptions, 'seed'>, offset: number) {
  const seed = BASE + offset
  const summary = await runSchedules({ ...options, seed })
  t.diagnostic(
    `n=${options.nodes} f=${options.byzantine} seeds ${seed}..${seed + options.count - 1}: ` +
      `${summary.schedulesPerSecond} schedules/s, heights ${summary.heights.min}..${summary.heights.max}, max round ${summary.maxRound}`,
  )
  return summary
}

function assertClean(summary: Summary): void {
  const hint = `failing seeds ${summary.failingSeeds.join(', ')}: ${JSON.stringify(summary.firstFailure)}`
  assert.equal(summary.safetyViolations, 0, hint)
  assert.equal(summary.validityViolations, 0, hint)
  assert.equal(summary.livenessFailures, 0, hint)
  assert.deepEqual(summary.failingSeeds, [], hint)
  assert.ok(summary.heights.min >= 3, 'every schedule committed heights after GST')
}

test('n=4, f=1: 200 adversarial schedules, no safety, validity or liveness failure', async (t) => {
  const summary = await batch(t, { nodes: 4, byzantine: 1, count: 200 }, 0)
  assertClean(summary)
  assert.equal(summary.schedules, 200)
  for (const [behaviour, n] of Object.entries(summary.behaviours)) assert.ok(n > 10, `${behaviour} was exercised`)
  const { crashes, partitions, dropped, evidence, syncs, rejected } = summary.totals
  for (const [what, n] of Object.entries({ crashes, partitions, dropped, evidence, syncs, rejected })) {
    assert.ok(n > 0, `${what} happened`)
  }
})

test('n=7, f=2: 100 adversarial schedules, no safety, validity or liveness failure', async (t) => {
  assertClean(await batch(t, { nodes: 7, byzantine: 2, count: 100 }, 10_000))
})

test('twins: Byzantine validators run as two honest engines with one key (n=4 and n=7)', async (t) => {
  assertClean(await batch(t, { nodes: 4, byzantine: 1, count: 60, behaviours: ['twins'] }, 20_000))
  assertClean(await batch(t, { nodes: 7, byzantine: 2, count: 30, behaviours: ['twins'] }, 30_000))
})

test('the checker can fail: with a quorum of only 1/2 the simulator finds conflicting commits', async (t) => {
  const weak = (power: bigint, total: bigint): boolean => 2n * power >= total
  const found: number[] = []
  for (let seed = BASE; seed < BASE + 80 && found.length === 0; seed++) {
    const result = await runSchedule(seed, {
      nodes: 4,
      byzantine: 1,
      quorum: weak,
      behaviours: ['twins', 'equivocate'],
    })
    assert.ok(!result.ok)
    if (result.safetyViolations.some((v) => v.kind === 'conflicting-commit')) found.push(seed)
  }
  t.diagnostic(`first seed with two honest nodes committing different blocks at one height: ${found[0]}`)
  assert.equal(found.length, 1, 'a fork was found')
})

test('a schedule is a pure function of its seed', async () => {
  const a = await runSchedule(BASE + 7, { nodes: 4, byzantine: 1 })
  const b = await runSchedule(BASE + 7, { nodes: 4, byzantine: 1 })
  assert.deepEqual(a, b)
  const c = await runSchedule(BASE + 8, { nodes: 4, byzantine: 1 })
  assert.notDeepEqual(c.plan, a.plan)
})

test('the simulated clock runs events in (time, scheduling) order and honours cancellation', () => {
  const clock = new SimClock(100)
  const order: string[] = []
  clock.setTimer(20, () => order.push('b'))
  clock.setTimer(10, () => {
    order.push('a')
    clock.setTimer(10, () => order.push('b2'))
  })
  const cancel = clock.setTimer(15, () => order.push('never'))
  cancel()
  assert.equal(clock.pending, 2)
  while (clock.step()) {
    /* run everything */
  }
  assert.deepEqual(order, ['a', 'b', 'b2'])
  assert.equal(clock.now(), 120)
})

test('Byzantine power must stay below 1/3', async () => {
  await assert.rejects(runSchedule(1, { nodes: 3, byzantine: 1 }), InvalidInputError)
  await assert.rejects(runSchedules({ nodes: 6, byzantine: 2, seed: 1, count: 1 }), InvalidInputError)
})

test('the block rule: parent, PoH continuity, ticks for skipped rounds, proposer', () => {
  const { set, dids } = testValidators([1n, 1n, 1n, 1n], 'sim-app')
  const params: SimChainParams = {
    chainId: 'sim-app',
    set,
    timeouts: DEFAULT_TIMEOUTS,
    hashesPerTick: 2,
    ticksPerSecond: 10,
    proposerSeed: utf8('sim-app'),
    genesis: { id: sha256(utf8('g')), pohEnd: sha256(utf8('p')) },
  }
  const proposer = (round: number): string => selectProposer(set, 1, round, params.proposerSeed).did
  const payload = utf8('payload')
  const good = makeSimBlock(params, params.genesis, 1, 2, proposer(2), payload)
  assert.equal(checkSimBlock(params, good, params.genesis, 1, 2), undefined)
  assert.equal(checkSimBlock(params, good, params.genesis, 1, 5), undefined, 're-proposed in a later round')
  assert.match(checkSimBlock(params, good, params.genesis, 1, 1) ?? '', /later round/)
  assert.equal(ticksRequired(params, 2), 25, 'the precommit timeouts of rounds 0 and 1 (1 s + 1.5 s) at 10 ticks/s')
  for (const defect of BLOCK_DEFECTS) {
    const bad = makeSimBlock(params, params.genesis, 1, 2, proposer(2), payload, defect)
    assert.notEqual(checkSimBlock(params, bad, params.genesis, 1, 2), undefined, defect)
  }
  const other = dids.find((d) => d !== proposer(2)) as string
  assert.match(
    checkSimBlock(params, makeSimBlock(params, params.genesis, 1, 2, other, payload), params.genesis, 1, 2) ?? '',
    /proposer/,
  )
  const elsewhere = { id: params.genesis.id, pohEnd: sha256(utf8('elsewhere')) }
  assert.match(checkSimBlock(params, good, elsewhere, 1, 2) ?? '', /PoH does not start/)
})

test('CLI: donghae sim consensus prints the summary as JSON and exits 0', async () => {
  const result = await runCli([
    'sim',
    'consensus',
    '--nodes',
    '4',
    '--byzantine',
    '1',
    '--seed',
    '1',
    '--count',
    '20',
    '--json',
  ])
  assert.equal(result.code, 0, result.stderr)
  const summary = JSON.parse(result.stdout) as Summary
  assert.equal(summary.schedules, 20)
  assert.equal(summary.safetyViolations, 0)
  assert.equal(summary.livenessFailures, 0)
  assert.equal(summary.validityViolations, 0)
  assert.deepEqual(summary.failingSeeds, [])
  assert.equal(summary.seed, 1)
  assert.ok(summary.heights.min >= 3 && summary.heights.max >= summary.heights.min)
  assert.ok(summary.heights.total >= 20 * 3)
})

test('CLI: too much Byzantine power is a one-line error with exit 1', async () => {
  const result = await runCli(['sim', 'consensus', '--nodes', '4', '--byzantine', '2', '--count', '1'])
  assert.equal(result.code, 1)
  const lines = result.stderr.trim().split('\n')
  assert.equal(lines.length, 1, result.stderr)
  assert.match(lines[0] ?? '', /^donghae: byzantine validators must hold less than 1\/3/)
  const bad = await runCli(['sim', 'consensus', '--count', 'many'])
  assert.equal(bad.code, 1)
  assert.match(bad.stderr, /--count must be an integer/)
})
