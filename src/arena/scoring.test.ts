// Arena scoring (scoring.ts): the κ-quantile consensus, clipping, the A/B lookup check,
// duplicates, trainer and validator pay, and the two attacks the seed names: a lazy validator
// (random scores, or last round's scores) earns less than every honest one, and splitting one
// stake into ten identities earns no more. Seeded; a failing seed is printed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRng } from '../inference/trainer.ts'
import { utf8 } from '../core/bytes.ts'
import { sha256 } from '../core/hash.ts'
import { ARENA_DEFAULTS } from './constants.ts'
import { drawAssignments } from './assignment.ts'
import {
  clippedMean,
  duplicatesOf,
  kappaQuantile,
  scoreTask,
  upperMedian,
  type ScoreEntry,
  type SubmissionInput,
  type TaskScoring,
  type ValidatorInput,
} from './scoring.ts'

const RULES = ARENA_DEFAULTS
const w = (value: number, weight: bigint) => ({ value, weight })

test('kappaQuantile: the highest score more than κ of the stake reaches (a coalition of half cannot raise it)', () => {
  assert.equal(kappaQuantile([w(10, 1n), w(20, 1n), w(30, 1n), w(40, 1n)], 500_000), 20)
  assert.equal(kappaQuantile([w(10, 3n), w(90, 1n)], 500_000), 10)
  assert.equal(kappaQuantile([w(90, 3n), w(10, 1n)], 500_000), 90)
  assert.equal(kappaQuantile([w(90, 1n), w(10, 1n)], 500_000), 10, 'exactly half the stake does not set it')
  assert.equal(kappaQuantile([w(70, 1n)], 500_000), 70)
  assert.equal(kappaQuantile([], 500_000), undefined)
  assert.equal(kappaQuantile([w(5, 0n)], 500_000), undefined)
  assert.equal(kappaQuantile([w(10, 1n), w(20, 1n), w(30, 1n), w(40, 1n)], 200_000), 40)
  assert.equal(upperMedian([w(10, 1n), w(20, 1n), w(30, 1n), w(40, 1n)]), 30)
  assert.equal(upperMedian([w(90, 1n), w(10, 1n)]), 90)
})

test('clipping: scores above consensus count as consensus; the mean is stake-weighted and rounded down', () => {
  assert.equal(clippedMean([w(800_000, 1n), w(810_000, 1n), w(1_000_000, 1n)], 810_000), 806_666)
  assert.equal(clippedMean([], 5), 0)
})

test('duplicates: the earliest commitment keeps the digest, copies point at it', () => {
  const subs: SubmissionInput[] = [
    { index: 2, trainer: 'c', digest: 'aa' },
    { index: 0, trainer: 'a', digest: 'aa' },
    { index: 1, trainer: 'b', digest: 'bb' },
    { index: 3, trainer: 'd', digest: 'bb' },
  ]
  assert.deepEqual([...duplicatesOf(subs)].sort(), [
    [2, 0],
    [3, 1],
  ])
})

// ---- a simulated task ------------------------------------------------------------------------------

interface Sim {
  submissions: SubmissionInput[]
  validators: ValidatorInput[]
  entries: ScoreEntry[]
}

const digest = (s: string): string => Buffer.from(sha256(utf8(s))).toString('hex')

/**
 * `quality[i]` is submission i's true accuracy (ppm); set B reads `bOffset` lower. Honest
 * validator scores are quality + set offset + noise within ±`noise`. `lazy` maps a validator to
 * its scoring function (set-blind).
 */
function simulate(options: {
  seed: number
  quality: number[]
  validators: Array<{ did: string; stake: bigint; lazy?: (submission: number) => number; revealed?: boolean }>
  bOffset?: number
  noise?: number
}): Sim {
  const rng = createRng(options.seed)
  const submissions = options.quality.map((_, i) => ({ index: i, trainer: `t${i}`, digest: digest(`w${i}`) }))
  const seed = sha256(utf8(`draw ${options.seed}`))
  const draw = drawAssignments(
    seed,
    submissions.map((s) => s.index),
    options.validators.map((v) => v.did),
  )
  const entries: ScoreEntry[] = []
  for (const v of options.validators) {
    for (const a of draw.get(v.did) ?? []) {
      const q = options.quality[a.submission] ?? 0
      const honest =
        q - (a.set === 'B' ? (options.bOffset ?? 0) : 0) + Math.round((rng.next() * 2 - 1) * (options.noise ?? 0))
      const score = v.lazy === undefined ? honest : v.lazy(a.submission)
      entries.push({ validator: v.did, submission: a.submission, set: a.set, scorePpm: clamp(score) })
    }
  }
  return {
    submissions,
    validators: options.validators.map((v) => ({ did: v.did, stake: v.stake, revealed: v.revealed ?? true })),
    entries,
  }
}

const clamp = (x: number): number => Math.max(0, Math.min(1_000_000, Math.round(x)))

function run(sim: Sim, pool = 1_000_000n, k1 = 3, k2 = 4): TaskScoring {
  return scoreTask({ ...sim, pool, k1, k2, rules: RULES })
}

const payOf = (r: TaskScoring, did: string): bigint => r.validators.find((v) => v.did === did)?.payout ?? 0n
const totalPaid = (r: TaskScoring): bigint =>
  r.submissions.reduce((s, x) => s + x.payout, 0n) + r.validators.reduce((s, v) => s + v.payout, 0n)

function qualities(seed: number, n = 6): number[] {
  const rng = createRng(seed ^ 0xa5a5)
  return Array.from({ length: n }, () => 700_000 + Math.floor(rng.next() * 250_000))
}

test('payouts: the top k1 by consensus score share the trainer part pro rata; nothing exceeds the pool', () => {
  const validators = ['v1', 'v2', 'v3', 'v4'].map((did) => ({ did, stake: 1_000n }))
  const r = run(simulate({ seed: 1, quality: [900_000, 800_000, 700_000, 600_000], validators }), 1_000_000n, 2, 4)
  const ranked = r.submissions.filter((s) => s.status === 'ranked').sort((a, b) => a.rank - b.rank)
  assert.deepEqual(
    ranked.map((s) => s.index),
    [0, 1, 2, 3],
  )
  assert.deepEqual(
    ranked.map((s) => s.payout > 0n),
    [true, true, false, false],
  )
  assert.ok((ranked[0]?.payout ?? 0n) > (ranked[1]?.payout ?? 0n), 'a better model earns more')
  assert.equal(r.trainerPool, 700_000n)
  assert.ok(totalPaid(r) <= 1_000_000n)
  assert.equal(totalPaid(r) + r.refund, 1_000_000n)
})

test('a validator that inflates a submission is clipped at consensus and loses trust', () => {
  const honest = ['v1', 'v2', 'v3'].map((did) => ({ did, stake: 1_000n }))
  const r = run(
    simulate({
      seed: 2,
      quality: [600_000, 900_000],
      validators: [...honest, { did: 'shill', stake: 1_000n, lazy: () => 1_000_000 }],
    }),
  )
  const s0 = r.submissions[0]!
  assert.ok(s0.consensusPpm <= 600_000, `consensus ${s0.consensusPpm}`)
  assert.ok(s0.scorePpm <= 600_000)
  const shill = r.validators.find((v) => v.did === 'shill')!
  for (const v of honest) assert.ok(shill.trustPpm < r.validators.find((x) => x.did === v.did)!.trustPpm)
})

test('lazy validator with random scores earns less than each honest validator (20 seeds)', (t) => {
  const lines: string[] = []
  for (let seed = 1; seed <= 20; seed++) {
    const rng = createRng(seed * 7919)
    const validators = [
      ...['h1', 'h2', 'h3'].map((did) => ({ did, stake: 1_000n })),
      { did: 'lazy', stake: 1_000n, lazy: () => Math.floor(rng.next() * 1_000_001) },
    ]
    const r = run(simulate({ seed, quality: qualities(seed), validators, bOffset: 15_000, noise: 5_000 }))
    const lazy = payOf(r, 'lazy')
    for (const h of ['h1', 'h2', 'h3'])
      assert.ok(lazy < payOf(r, h), `seed ${seed}: lazy ${lazy} ≥ ${h} ${payOf(r, h)}`)
    assert.ok(totalPaid(r) <= 1_000_000n, `seed ${seed}`)
    if (seed <= 3)
      lines.push(`seed ${seed}: ${r.validators.map((v) => `${v.did} trust ${v.trustPpm} pay ${v.payout}`).join('; ')}`)
  }
  for (const line of lines) t.diagnostic(line)
})

test("lazy validator copying last round's revealed scores earns less than each honest validator (20 seeds)", (t) => {
  for (let seed = 1; seed <= 20; seed++) {
    const honest = ['h1', 'h2', 'h3'].map((did) => ({ did, stake: 1_000n }))
    // round 1: everyone honest; its revealed scores are public afterwards
    const round1 = simulate({
      seed,
      quality: qualities(seed),
      validators: [...honest, { did: 'lazy', stake: 1_000n }],
      noise: 5_000,
    })
    const last = new Map(round1.entries.filter((e) => e.validator === 'h1').map((e) => [e.submission, e.scorePpm]))
    // round 2: new submissions; the lazy one replays h1's round-1 scores by position
    const r = run(
      simulate({
        seed: seed + 1_000,
        quality: qualities(seed + 1_000),
        validators: [...honest, { did: 'lazy', stake: 1_000n, lazy: (s) => last.get(s) ?? 0 }],
        noise: 5_000,
      }),
    )
    for (const h of ['h1', 'h2', 'h3'])
      assert.ok(payOf(r, 'lazy') < payOf(r, h), `seed ${seed}: lazy ${payOf(r, 'lazy')} ≥ ${h} ${payOf(r, h)}`)
    if (seed === 1)
      t.diagnostic(`seed 1: ${r.validators.map((v) => `${v.did} trust ${v.trustPpm} pay ${v.payout}`).join('; ')}`)
  }
})

test('a validator that did not reveal has no weight and no pay', () => {
  const validators = [
    ...['h1', 'h2', 'h3'].map((did) => ({ did, stake: 1_000n })),
    { did: 'silent', stake: 1_000n, revealed: false },
  ]
  const r = run(simulate({ seed: 3, quality: qualities(3), validators, noise: 5_000 }))
  const silent = r.validators.find((v) => v.did === 'silent')!
  assert.equal(silent.trustPpm, 0)
  assert.equal(silent.weight, 0n)
  assert.equal(silent.payout, 0n)
  assert.ok(payOf(r, 'h1') > 0n)
})

test('sybil: one validator stake split into ten identities earns no more (figures)', (t) => {
  const quality = qualities(4)
  const honest = ['h1', 'h2', 'h3'].map((did) => ({ did, stake: 1_000n }))
  // set-blind scores so that the split identities score exactly as the whole one does
  const one = (k2: number) =>
    run(
      simulate({ seed: 4, quality, validators: [...honest, { did: 'x', stake: 1_000n }], noise: 0 }),
      1_000_000n,
      3,
      k2,
    )
  const split = (k2: number) =>
    run(
      simulate({
        seed: 4,
        quality,
        validators: [...honest, ...Array.from({ length: 10 }, (_, i) => ({ did: `x${i}`, stake: 100n }))],
        noise: 0,
      }),
      1_000_000n,
      3,
      k2,
    )
  const sybilPay = (r: TaskScoring) =>
    r.validators.filter((v) => v.did.startsWith('x')).reduce((s, v) => s + v.payout, 0n)
  for (const k2 of [2, 4, 13]) {
    const whole = sybilPay(one(k2))
    const parts = sybilPay(split(k2))
    t.diagnostic(
      `k2=${k2}: validator pool 300000; one identity of stake 1000 earns ${whole}; ten of stake 100 earn ${parts} together`,
    )
    assert.ok(parts <= whole, `k2=${k2}: split ${parts} > whole ${whole}`)
  }
  // Where a plain top-k2 cut would reward splitting: nine small validators (stake 50) hold slots
  // that ten identities of stake 100 can take. Pay is divided by every validator's weight, so
  // the pieces still earn less than the whole.
  const small = Array.from({ length: 9 }, (_, i) => ({ did: `s${i}`, stake: 50n }))
  const crowd = (attacker: Array<{ did: string; stake: bigint }>) =>
    run(
      simulate({ seed: 5, quality, validators: [{ did: 'h1', stake: 1_000n }, ...small, ...attacker], noise: 0 }),
      1_000_000n,
      3,
      10,
    )
  const whole = sybilPay(crowd([{ did: 'x', stake: 1_000n }]))
  const parts = sybilPay(crowd(Array.from({ length: 10 }, (_, i) => ({ did: `x${i}`, stake: 100n }))))
  t.diagnostic(`one honest (1000) + nine small (50) validators, k2=10: one identity earns ${whole}, ten earn ${parts}`)
  assert.ok(parts <= whole, `split ${parts} > whole ${whole}`)
})

test('sybil: ten trainer identities submitting the same weights are paid once (figures)', (t) => {
  const validators = ['v1', 'v2', 'v3', 'v4'].map((did) => ({ did, stake: 1_000n }))
  const base = simulate({ seed: 6, quality: [950_000, 800_000, 700_000, 650_000], validators, noise: 0 })
  const alone = run(base, 1_000_000n, 3, 4)
  // the attacker (submission 0) adds nine identities submitting its very weights
  const copies = Array.from({ length: 9 }, (_, i) => ({ index: 4 + i, trainer: `t0-sybil${i}`, digest: digest('w0') }))
  const crowded = run({ ...base, submissions: [...base.submissions, ...copies] }, 1_000_000n, 3, 4)
  const attacker = (r: TaskScoring) =>
    r.submissions.filter((s) => s.trainer.startsWith('t0')).reduce((s, x) => s + x.payout, 0n)
  t.diagnostic(
    `trainer pool 700000: one identity earns ${attacker(alone)}; ten with the same weights ${attacker(crowded)}`,
  )
  assert.equal(attacker(crowded), attacker(alone))
  assert.ok(crowded.submissions.filter((s) => s.status === 'duplicate').every((s) => s.payout === 0n))
})

test('lookup: a model far better on one set than the other is flagged and scores 0', () => {
  const validators = ['v1', 'v2', 'v3', 'v4'].map((did) => ({ did, stake: 1_000n }))
  const sim = simulate({ seed: 7, quality: [850_000, 850_000], validators, noise: 2_000 })
  // submission 1 memorised set A: perfect there
  const entries = sim.entries.map((e) => (e.submission === 1 && e.set === 'A' ? { ...e, scorePpm: 1_000_000 } : e))
  const r = run({ ...sim, entries })
  assert.equal(r.submissions[1]?.status, 'lookup')
  assert.equal(r.submissions[1]?.payout, 0n)
  assert.equal(r.submissions[0]?.status, 'ranked')
})

test('lookup: one lazy validator cannot get an honest submission flagged', () => {
  for (const lazyScore of [0, 1_000_000]) {
    const validators = [
      ...['h1', 'h2', 'h3'].map((did) => ({ did, stake: 1_000n })),
      { did: 'lazy', stake: 1_000n, lazy: () => lazyScore },
    ]
    const r = run(simulate({ seed: 8, quality: [850_000, 800_000, 750_000], validators, noise: 5_000 }))
    assert.ok(
      r.submissions.every((s) => s.status === 'ranked'),
      `lazy ${lazyScore}: ${r.submissions.map((s) => s.status).join(',')}`,
    )
  }
})
