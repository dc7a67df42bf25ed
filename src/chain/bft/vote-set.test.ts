import { test } from 'node:test'
import assert from 'node:assert/strict'
import { sha256 } from '../../core/hash.ts'
import { utf8 } from '../../core/bytes.ts'
import { checkDuplicateVoteEvidence, signVote } from './messages.ts'
import { testValidators } from './testing.ts'
import type { Vote, VoteType } from './types.ts'
import { HeightVoteSet, VoteSet } from './vote-set.ts'

const { keys, dids, set } = testValidators([1n, 1n, 1n, 1n])
const X = sha256(utf8('x'))
const Y = sha256(utf8('y'))

function v(i: number, blockId: Uint8Array | null, round = 0, type: VoteType = 'prevote'): Vote {
  return signVote(keys[i]!, { chainId: 'c', height: 1, round, type, blockId, validator: dids[i]! })
}

test('power counts once per validator; a repeat is a duplicate', () => {
  const s = new VoteSet(1, 0, 'prevote', set)
  assert.equal(s.add(v(0, X)).kind, 'added')
  assert.equal(s.add(v(0, X)).kind, 'duplicate')
  assert.equal(s.powerFor(X), 1n)
  assert.equal(s.add(v(1, X)).kind, 'added')
  assert.equal(s.hasQuorumFor(X), false, '2 of 4 is not more than 2/3')
  assert.equal(s.add(v(2, null)).kind, 'added')
  assert.equal(s.hasQuorumAny(), true, '3 of 4 voted')
  assert.equal(s.hasQuorumFor(X), false)
  assert.equal(s.add(v(3, X)).kind, 'added')
  assert.equal(s.hasQuorumFor(X), true)
  assert.deepEqual(s.quorumValues(), [X])
  assert.equal(s.votesFor(X).length, 3)
})

test('exactly 2/3 of the power is not a quorum', () => {
  const three = testValidators([1n, 1n, 1n])
  const s = new VoteSet(1, 0, 'precommit', three.set)
  for (const i of [0, 1]) {
    s.add(
      signVote(three.keys[i]!, {
        chainId: 'c',
        height: 1,
        round: 0,
        type: 'precommit',
        blockId: X,
        validator: three.dids[i]!,
      }),
    )
  }
  assert.equal(s.hasQuorumFor(X), false)
  assert.equal(s.hasQuorumAny(), false)
})

test('a second, different vote is evidence, not a vote', () => {
  const s = new VoteSet(1, 0, 'prevote', set)
  s.add(v(0, X))
  s.add(v(1, X))
  const result = s.add(v(1, Y))
  assert.equal(result.kind, 'conflict')
  assert.ok(result.kind === 'conflict' && result.evidence !== undefined)
  checkDuplicateVoteEvidence(result.evidence, set, 'c')
  assert.equal(s.powerFor(Y), 0n, 'not counted')
  assert.equal(s.totalVoted, 2n)
  assert.equal(s.novelty(v(1, Y)), 'same', 'the same conflicting vote again is just a repeat')
  const third = s.add(v(1, null))
  assert.deepEqual(third, { kind: 'conflict', evidence: undefined }, 'evidence is reported once per validator')
  assert.equal(s.evidence().length, 1)
  assert.equal(s.add(v(2, X, 1)).kind, 'ignored', 'another round')
})

test('a claimed block counts conflicting votes for it, each validator once', () => {
  const s = new VoteSet(1, 0, 'prevote', set)
  s.add(v(0, X))
  s.add(v(1, Y))
  s.add(v(2, Y))
  s.add(v(1, X)) // the equivocator's second vote
  assert.equal(s.powerFor(X), 1n)
  s.claim(X)
  assert.equal(s.powerFor(X), 2n)
  s.add(v(3, X))
  assert.equal(s.powerFor(X), 3n)
  assert.equal(s.hasQuorumFor(X), true)
  assert.deepEqual(
    s.votesFor(X).map((vote) => vote.validator),
    [dids[0], dids[1], dids[3]].sort(),
  )
  assert.equal(s.totalVoted, 4n, 'the "any" tally still counts each validator once')
})

test('HeightVoteSet: f+1 speakers in a later round name the round to skip to', () => {
  const h = new HeightVoteSet(1, set)
  h.add(v(1, null, 3))
  assert.equal(h.skipTarget(0), undefined, '1 of 4 is not more than 1/3')
  h.add(v(1, null, 3, 'precommit'))
  assert.equal(h.skipTarget(0), undefined, 'the same validator twice is still one')
  h.noteSpeaker(3, dids[2]!)
  assert.equal(h.skipTarget(0), 3)
  assert.equal(h.skipTarget(3), undefined, 'only rounds above the current one')
  h.add(v(0, X, 5))
  h.add(v(3, X, 5))
  assert.equal(h.skipTarget(0), 5, 'the highest such round')
})
