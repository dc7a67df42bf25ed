import { test } from 'node:test'
import assert from 'node:assert/strict'
import { InvalidInputError } from '../../core/errors.ts'
import { coversRound, ticksRequiredForRound } from './round-proof.ts'

const linear = (round: number): number => 1000 + 500 * round
const constant = (ms: number) => (): number => ms

test('round 0 needs no ticks', () => {
  assert.equal(ticksRequiredForRound(0, linear, 10), 0)
})

test('ticks cover the timeouts of the rounds before', () => {
  assert.equal(ticksRequiredForRound(1, linear, 10), 10) // 1000 ms
  assert.equal(ticksRequiredForRound(2, linear, 10), 25) // 1000 + 1500 ms
  assert.equal(ticksRequiredForRound(3, linear, 160), 720) // 4500 ms × 160/s
  // 4 × 1234 ms × 3/s ÷ 1000 = 14.8, floored
  assert.equal(ticksRequiredForRound(4, constant(1234), 3), 14)
  assert.equal(ticksRequiredForRound(5, constant(0), 160), 0)
})

test('the sum is exact for large values, and refused past safe integers', () => {
  const ms = Number.MAX_SAFE_INTEGER
  assert.equal(ticksRequiredForRound(1, constant(ms), 1000), ms)
  // 3 × (2^53 − 1) ÷ 1000, floored: the product is past 2^53, the answer is not
  assert.equal(ticksRequiredForRound(3, constant(ms), 1), 27_021_597_764_222)
  assert.throws(() => ticksRequiredForRound(2, constant(ms), 1000), InvalidInputError)
})

test('bad inputs are typed errors', () => {
  assert.throws(() => ticksRequiredForRound(-1, linear, 10), InvalidInputError)
  assert.throws(() => ticksRequiredForRound(1.5, linear, 10), InvalidInputError)
  assert.throws(() => ticksRequiredForRound(1, linear, 0), InvalidInputError)
  assert.throws(() => ticksRequiredForRound(2, () => -1, 10), InvalidInputError)
  assert.throws(() => ticksRequiredForRound(2, () => 0.5, 10), InvalidInputError)
})

test('coversRound agrees with ticksRequiredForRound and stops early for huge rounds', () => {
  for (let round = 0; round < 6; round++) {
    const need = ticksRequiredForRound(round, linear, 10)
    assert.equal(coversRound(need, round, linear, 10), true)
    if (need > 0) assert.equal(coversRound(need - 1, round, linear, 10), false)
  }
  let calls = 0
  const counted = (): number => {
    calls++
    return 1000
  }
  assert.equal(coversRound(25, Number.MAX_SAFE_INTEGER, counted, 10), false)
  assert.ok(calls <= 3)
  assert.equal(coversRound(1_000_000, -1, linear, 10), false)
})
