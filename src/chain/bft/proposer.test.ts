import { test } from 'node:test'
import assert from 'node:assert/strict'
import { utf8 } from '../../core/bytes.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { selectProposer } from './proposer.ts'
import { testValidators } from './testing.ts'

test('the proposer is a pure function of (set, height, round, seed)', () => {
  const { set } = testValidators([5n, 1n, 3n, 1n])
  const seed = utf8('chain-a')
  const order = Array.from({ length: 200 }, (_, i) => ({ h: 1 + (i % 20), r: Math.floor(i / 20) }))
  const forward = order.map(({ h, r }) => selectProposer(set, h, r, seed).did)
  const backward = [...order]
    .reverse()
    .map(({ h, r }) => selectProposer(set, h, r, seed).did)
    .reverse()
  assert.deepEqual(forward, backward, 'call order does not matter (a restarted node agrees)')
  const again = testValidators([5n, 1n, 3n, 1n])
  assert.deepEqual(
    order.map(({ h, r }) => selectProposer(again.set, h, r, seed).did),
    forward,
    'an equal set built again gives the same proposers',
  )
  const other = order.map(({ h, r }) => selectProposer(set, h, r, utf8('chain-b')).did)
  assert.notDeepEqual(other, forward, 'another seed gives another sequence')
})

test('over many (height, round) pairs each validator proposes in proportion to its power', () => {
  const powers = [1n, 2n, 3n, 4n, 10n].map((p) => p * 1_000_000_000_000n)
  const { set, dids } = testValidators(powers, 'stake')
  const counts = new Map<string, number>()
  const draws = 40_000
  for (let i = 0; i < draws; i++) {
    const did = selectProposer(set, 1 + Math.floor(i / 8), i % 8, utf8('proportional')).did
    counts.set(did, (counts.get(did) ?? 0) + 1)
  }
  const total = Number(powers.reduce((a, b) => a + b))
  dids.forEach((did, i) => {
    const expected = Number(powers[i]) / total
    const share = (counts.get(did) ?? 0) / draws
    assert.ok(
      Math.abs(share - expected) < 0.01,
      `validator ${i}: share ${share.toFixed(4)}, expected ${expected.toFixed(4)}`,
    )
  })
})

test('equal stake gives every validator a turn within a few rounds', () => {
  const { set, dids } = testValidators([1n, 1n, 1n, 1n, 1n, 1n, 1n])
  const seen = new Set<string>()
  for (let r = 0; r < 60; r++) seen.add(selectProposer(set, 7, r).did)
  assert.equal(seen.size, dids.length)
})

test('bad heights and rounds are refused', () => {
  const { set } = testValidators([1n])
  assert.throws(() => selectProposer(set, -1, 0), InvalidInputError)
  assert.throws(() => selectProposer(set, 1, 0.5), InvalidInputError)
})
