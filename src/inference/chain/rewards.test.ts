import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  PPM,
  qualityPpm,
  recencyPpm,
  rewardFor,
  speedPpm,
  splitProRata,
  usagePpm,
  workerScore,
  type ScoreInputs,
} from './rewards.ts'

const PARAMS = { recencyBlocks: 60, minModelPrice: 1n }

test('the worked example of the header: fees 150, 0.8 s, 9/10 audits, recent → 3420 of a base of 1000', () => {
  const inputs: ScoreInputs = {
    usageFees: 150n,
    latencyMsTotal: 120_000n,
    latencyJobs: 150,
    auditsPassed: 9,
    auditsFailed: 1,
    lastActiveHeight: 990,
  }
  assert.equal(usagePpm(inputs.usageFees, 1n), 1_500_000n)
  assert.equal(speedPpm(inputs.latencyMsTotal, inputs.latencyJobs), 1_200_000n)
  assert.equal(qualityPpm(9, 1), 1_900_000n)
  assert.equal(recencyPpm(990, 1_000, 60), PPM)
  const score = workerScore(inputs, 1_000, PARAMS)
  assert.equal(score, 3_420_000n)
  assert.equal(rewardFor(1_000n, score), 3_420n)
})

test('each factor keeps to its bounds: usage ≤ 2, speed ≥ 0.5, quality 1 without audits, recency 0.8 when stale', () => {
  assert.equal(usagePpm(0n, 1n), 0n)
  assert.equal(usagePpm(1n, 1n), 10_000n)
  assert.equal(usagePpm(200n, 1n), 2_000_000n)
  assert.equal(usagePpm(1_000_000n, 1n), 2_000_000n)
  assert.equal(usagePpm(1_000n, 10n), 1_000_000n, 'counted in units of 100 × the minimum price')
  assert.equal(speedPpm(0n, 10), 2_000_000n, 'instant answers: 2.0')
  assert.equal(speedPpm(15_000n, 10), 500_000n, 'mean 1.5 s: exactly the floor')
  assert.equal(speedPpm(600_000n, 10), 500_000n, 'mean 60 s: still 0.5, a slow honest worker is paid')
  assert.equal(speedPpm(12_345n, 10), 2_000_000n - 1_234_500n)
  assert.equal(speedPpm(0n, 0), 500_000n)
  assert.equal(qualityPpm(0, 0), PPM)
  assert.equal(qualityPpm(0, 4), PPM)
  assert.equal(qualityPpm(4, 0), 2n * PPM)
  assert.equal(qualityPpm(1, 2), PPM + 333_333n)
  assert.equal(recencyPpm(100, 200, 100), PPM)
  assert.equal(recencyPpm(100, 201, 100), 800_000n)
})

test('a slow honest worker earns less than a fast one but never nothing', () => {
  const base = { usageFees: 100n, latencyJobs: 100, auditsPassed: 5, auditsFailed: 0, lastActiveHeight: 10 }
  const fast = workerScore({ ...base, latencyMsTotal: 10_000n }, 10, PARAMS)
  const slow = workerScore({ ...base, latencyMsTotal: 3_000_000n }, 10, PARAMS)
  assert.equal(fast, 1_900_000n * 2n)
  assert.equal(slow, 500_000n * 2n)
  assert.ok(slow > 0n && slow < fast)
})

test('splitProRata: shares in DID order, rounded down, and shares + leftover = total exactly', () => {
  const { shares, leftover } = splitProRata(1_000n, [
    { did: 'c', score: 1n },
    { did: 'a', score: 1n },
    { did: 'b', score: 1n },
  ])
  assert.deepEqual(
    shares.map((s) => [s.did, s.amount]),
    [
      ['a', 333n],
      ['b', 333n],
      ['c', 333n],
    ],
  )
  assert.equal(leftover, 1n)
  let seed = 7n
  for (let round = 0; round < 200; round++) {
    const scores = Array.from({ length: 1 + (round % 9) }, (_, i) => {
      seed = (seed * 6_364_136_223_846_793_005n + 1_442_695_040_888_963_407n) % 2n ** 64n
      return { did: `w${i}`, score: seed % 5_000_000n }
    })
    const total = 1n + (seed % 1_000_000n)
    const split = splitProRata(total, scores)
    const paid = split.shares.reduce((sum, s) => sum + s.amount, 0n)
    assert.equal(paid + split.leftover, total, `round ${round}`)
    assert.ok(split.leftover >= 0n && split.leftover < BigInt(scores.length) + 1n, `round ${round}`)
  }
  assert.deepEqual(splitProRata(500n, [{ did: 'a', score: 0n }]), {
    shares: [{ did: 'a', amount: 0n }],
    leftover: 500n,
  })
})
