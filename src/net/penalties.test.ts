import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PenaltyScores, MAX_PENALIZED_PEERS } from './penalties.ts'
import { PENALTY_HALF_LIFE_MS, PENALTY_LIMIT } from './constants.ts'

test('penalty scores leak: half every half-life; a burst reaches the limit, a slow trickle never does', () => {
  let now = 0
  const scores = new PenaltyScores({ now: () => now })
  for (let i = 0; i < 10; i++) scores.add('p')
  assert.equal(scores.score('p'), 10)
  now += PENALTY_HALF_LIFE_MS
  assert.ok(Math.abs(scores.score('p') - 5) < 1e-9)
  let burst = 0
  for (let i = 0; i < PENALTY_LIMIT; i++) burst = scores.add('burst')
  assert.ok(burst >= PENALTY_LIMIT)
  // One penalty every 30 s forever settles near 15 points.
  let trickle = 0
  for (let i = 0; i < 1_000; i++) {
    trickle = scores.add('trickle')
    now += 30_000
  }
  assert.ok(trickle > 14 && trickle < PENALTY_LIMIT, `trickle settles at ${trickle.toFixed(1)}`)
  scores.clear('burst')
  assert.equal(scores.score('burst'), 0)
})

test('penalty scores: the table stays bounded and forgets what has leaked away', () => {
  let now = 0
  const scores = new PenaltyScores({ now: () => now })
  for (let i = 0; i < MAX_PENALIZED_PEERS; i++) scores.add(`old-${i}`)
  now += 10 * PENALTY_HALF_LIFE_MS
  scores.add('new')
  assert.ok(scores.size < 10, `${scores.size} kept`)
  for (let i = 0; i < MAX_PENALIZED_PEERS * 2; i++) scores.add(`fresh-${i}`)
  assert.ok(scores.size <= MAX_PENALIZED_PEERS + 1)
})
