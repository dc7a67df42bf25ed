import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { encode } from '../../core/codec.ts'
import { sha256 } from '../../core/hash.ts'
import { equals, utf8 } from '../../core/bytes.ts'
import {
  checkDuplicateVoteEvidence,
  decodeConsensusMessage,
  encodeConsensusMessage,
  signProposal,
  signVote,
  verifyCommit,
  verifyProposal,
  verifyVote,
  voteSignBytes,
} from './messages.ts'
import { ConsensusMessageError, InvalidCommitError, InvalidEvidenceError } from './errors.ts'
import { testValidators } from './testing.ts'
import type { CommitCertificate, ConsensusMessage, UnsignedVote, Vote } from './types.ts'

const CHAIN = 'donghae-test'
const { keys, dids, set } = testValidators([1n, 1n, 1n, 1n])
const BLOCK = sha256(utf8('block'))
const OTHER = sha256(utf8('other'))

function precommit(i: number, blockId: Uint8Array | null = BLOCK, over: Partial<UnsignedVote> = {}): Vote {
  return signVote(keys[i]!, {
    chainId: CHAIN,
    height: 5,
    round: 2,
    type: 'precommit',
    blockId,
    validator: dids[i]!,
    ...over,
  })
}

function cert(precommits: Vote[]): CommitCertificate {
  return { height: 5, round: 2, blockId: BLOCK, precommits }
}

test('votes and proposals verify only under their own key, chain and kind', () => {
  const vote = precommit(0)
  assert.ok(verifyVote(vote, keys[0]!.publicKey))
  assert.equal(verifyVote(vote, keys[1]!.publicKey), false, 'another key')
  assert.equal(verifyVote({ ...vote, chainId: 'other-chain' }, keys[0]!.publicKey), false, 'another chain')
  assert.equal(verifyVote({ ...vote, round: 3 }, keys[0]!.publicKey), false, 'another round')
  assert.equal(verifyVote({ ...vote, type: 'prevote' }, keys[0]!.publicKey), false, 'another type')
  assert.equal(verifyVote({ ...vote, blockId: null }, keys[0]!.publicKey), false, 'nil instead of a block')
  assert.equal(verifyVote({ ...vote, height: 1.5 }, keys[0]!.publicKey), false, 'unencodable fields never throw')
  const proposal = signProposal(keys[1]!, {
    chainId: CHAIN,
    height: 5,
    round: 2,
    blockId: BLOCK,
    validRound: -1,
    proposer: dids[1]!,
  })
  assert.ok(verifyProposal(proposal, keys[1]!.publicKey))
  assert.equal(verifyProposal({ ...proposal, validRound: 0 }, keys[1]!.publicKey), false)
  // A vote's signature never verifies as a proposal signature (different signing kind).
  const asProposal = { ...proposal, signature: vote.signature }
  assert.equal(verifyProposal(asProposal, keys[0]!.publicKey), false)
})

test('verifyCommit accepts more than 2/3 of the power from distinct members', () => {
  verifyCommit(cert([precommit(0), precommit(1), precommit(2)]), set, CHAIN)
  verifyCommit(cert([precommit(0), precommit(1), precommit(2), precommit(3)]), set, CHAIN)
})

test('verifyCommit rejects 2/3 or less, duplicate signers, non-members, other chains and altered signatures', () => {
  const reject = (c: CommitCertificate, s = set, chain = CHAIN): void => {
    assert.throws(() => verifyCommit(c, s, chain), InvalidCommitError)
  }
  reject(cert([precommit(0), precommit(1)]))
  // Exactly 2/3 is not enough: three validators, two signers.
  const three = testValidators([1n, 1n, 1n])
  const twoOfThree = [0, 1].map((i) =>
    signVote(three.keys[i]!, {
      chainId: CHAIN,
      height: 5,
      round: 2,
      type: 'precommit',
      blockId: BLOCK,
      validator: three.dids[i]!,
    }),
  )
  reject(cert(twoOfThree), three.set)
  // Power, not heads: one validator with 3 of 5 power is not enough, 4 of 5 is.
  const weighted = testValidators([3n, 1n, 1n], 'weighted')
  const w = (i: number): Vote =>
    signVote(weighted.keys[i]!, {
      chainId: CHAIN,
      height: 5,
      round: 2,
      type: 'precommit',
      blockId: BLOCK,
      validator: weighted.dids[i]!,
    })
  reject(cert([w(0)]), weighted.set)
  verifyCommit(cert([w(0), w(1)]), weighted.set, CHAIN)
  reject(cert([precommit(0), precommit(1), precommit(1)]), set)
  reject(cert([precommit(0), precommit(0), precommit(1), precommit(2)].slice(0, 4)))
  const outsider = testValidators([1n], 'outsider')
  const foreign = signVote(outsider.keys[0]!, {
    chainId: CHAIN,
    height: 5,
    round: 2,
    type: 'precommit',
    blockId: BLOCK,
    validator: outsider.dids[0]!,
  })
  reject(cert([precommit(0), precommit(1), foreign]))
  reject(cert([precommit(0), precommit(1), precommit(2)]), set, 'another-chain')
  const altered = precommit(2)
  const signature = Uint8Array.from(altered.signature)
  signature[10] = (signature[10] ?? 0) ^ 1
  reject(cert([precommit(0), precommit(1), { ...altered, signature }]))
  reject(cert([precommit(0), precommit(1), precommit(2, OTHER)]), set)
  reject(cert([precommit(0), precommit(1), precommit(2, null)]), set)
  reject(cert([precommit(0), precommit(1), precommit(2, BLOCK, { round: 3 })]), set)
  reject(cert([precommit(0), precommit(1), precommit(2, BLOCK, { type: 'prevote' })]), set)
  reject({ ...cert([precommit(0), precommit(1), precommit(2)]), height: 6 })
})

test('duplicate-vote evidence needs two validly signed, conflicting votes of one member for one step', () => {
  const a = precommit(3, BLOCK)
  const b = precommit(3, OTHER)
  checkDuplicateVoteEvidence({ a, b }, set, CHAIN)
  checkDuplicateVoteEvidence({ a, b: precommit(3, null) }, set, CHAIN)
  const bad = (ev: { a: Vote; b: Vote }, chain = CHAIN): void => {
    assert.throws(() => checkDuplicateVoteEvidence(ev, set, chain), InvalidEvidenceError)
  }
  bad({ a, b: precommit(3, BLOCK) })
  bad({ a, b: precommit(2, OTHER) })
  bad({ a, b: precommit(3, OTHER, { round: 3 }) })
  bad({ a, b: precommit(3, OTHER, { type: 'prevote' }) })
  bad({ a, b }, 'another-chain')
  bad({ a, b: { ...b, signature: a.signature } })
})

const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 })
const sig = fc.uint8Array({ minLength: 64, maxLength: 64 })
const voteArb = fc.record({
  chainId: fc.string({ minLength: 1, maxLength: 20 }),
  height: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  round: fc.integer({ min: 0, max: 1000 }),
  type: fc.constantFrom('prevote' as const, 'precommit' as const),
  blockId: fc.option(bytes32, { nil: null }),
  validator: fc.constantFrom(...dids),
  signature: sig,
})
const messageArb: fc.Arbitrary<ConsensusMessage> = fc.oneof(
  voteArb.map((vote) => ({ kind: 'vote' as const, vote: { ...vote } })),
  fc
    .record({
      chainId: fc.string({ minLength: 1, maxLength: 20 }),
      height: fc.integer({ min: 1, max: 1e9 }),
      round: fc.integer({ min: 1, max: 1000 }),
      blockId: bytes32,
      proposer: fc.constantFrom(...dids),
      signature: sig,
      block: fc.uint8Array({ maxLength: 200 }),
    })
    .chain((p) =>
      fc.integer({ min: -1, max: p.round - 1 }).map((validRound) => {
        const { block, ...proposal } = p
        return { kind: 'proposal' as const, proposal: { ...proposal, validRound }, block: Uint8Array.from(block) }
      }),
    ),
)

test('the wire codec round-trips every well-formed message (property)', () => {
  fc.assert(
    fc.property(messageArb, (msg) => {
      const bytes = encodeConsensusMessage(msg)
      assert.deepEqual(decodeConsensusMessage(bytes), msg)
    }),
    { numRuns: 500 },
  )
})

function decodesOrRejects(bytes: Uint8Array): void {
  try {
    const msg = decodeConsensusMessage(bytes, { maxBytes: 4096 })
    // Whatever decodes must re-encode to the same canonical bytes.
    assert.ok(equals(encodeConsensusMessage(msg), bytes))
  } catch (err) {
    assert.ok(err instanceof ConsensusMessageError, `unexpected ${String(err)}`)
    assert.equal(err.action, 'reject')
  }
}

test('random bytes only ever give ConsensusMessageError, quickly (fuzz)', () => {
  const started = performance.now()
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), decodesOrRejects), { numRuns: 3000 })
  assert.ok(performance.now() - started < 20_000, 'the decoder does not hang')
})

test('mutated valid messages only ever decode or give ConsensusMessageError (fuzz)', () => {
  fc.assert(
    fc.property(
      messageArb,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
      (msg, flips) => {
        const bytes = Uint8Array.from(encodeConsensusMessage(msg))
        for (const [at, value] of flips) bytes[at % bytes.length] = value
        decodesOrRejects(bytes)
      },
    ),
    { numRuns: 2000 },
  )
})

test('structurally wrong messages are rejected with ConsensusMessageError', () => {
  const vote = precommit(0)
  const good = { kind: 'vote', vote: { ...vote } }
  const cases: unknown[] = [
    { ...good, extra: 1 },
    { kind: 'vote' },
    { kind: 'nope', vote: good.vote },
    { kind: 'vote', vote: { ...vote, type: 'commit' } },
    { kind: 'vote', vote: { ...vote, round: -1 } },
    { kind: 'vote', vote: { ...vote, height: 0 } },
    { kind: 'vote', vote: { ...vote, signature: new Uint8Array(63) } },
    { kind: 'vote', vote: { ...vote, blockId: new Uint8Array(0) } },
    { kind: 'vote', vote: { ...vote, validator: 'not-a-did' } },
    { kind: 'vote', vote: { ...vote, chainId: '' } },
    [good],
    'vote',
    {
      kind: 'proposal',
      block: new Uint8Array(1),
      proposal: {
        chainId: CHAIN,
        height: 1,
        round: 2,
        blockId: BLOCK,
        validRound: 2,
        proposer: dids[0],
        signature: vote.signature,
      },
    },
  ]
  for (const value of cases) {
    assert.throws(() => decodeConsensusMessage(encode(value)), ConsensusMessageError, JSON.stringify(value))
  }
  assert.throws(
    () => decodeConsensusMessage(encodeConsensusMessage({ kind: 'vote', vote }), { maxBytes: 10 }),
    ConsensusMessageError,
  )
  assert.equal(voteSignBytes(vote).length > 0, true)
})
