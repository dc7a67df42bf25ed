// A validator still deciding height h keeps round-0 messages of h + 1 (engine #holdNext): the
// others may have moved on, and the next proposal must not be lost. An attacker floods that
// store: votes for h + 1 signed by strangers, proposals for h + 1 from members that do not propose
// it, a Byzantine member's conflicting votes for h + 1 and its votes for later rounds, forged
// signatures. What it may cost the victim: no signature check for a stranger, a later round or a
// second message of a kind from one signer; at most one kept message per member and kind; and the
// real proposer's proposal is still the one the victim prevotes when h + 1 begins.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { utf8 } from '../../src/core/bytes.ts'
import { ManualClock } from '../../src/core/clock.ts'
import { decode, encode } from '../../src/core/codec.ts'
import { sha256 } from '../../src/core/hash.ts'
import { ConsensusEngine, type ConsensusApp } from '../../src/chain/bft/engine.ts'
import { signProposal, signVote, verifyProposal, verifyVote } from '../../src/chain/bft/messages.ts'
import { MemorySignStateStore, PrivValidator } from '../../src/chain/bft/privval.ts'
import { selectProposer } from '../../src/chain/bft/proposer.ts'
import { testValidators } from '../../src/chain/bft/testing.ts'
import type { ConsensusMessage, VoteType } from '../../src/chain/bft/types.ts'

const CHAIN = 'next-height-flood'
const { keys, dids, set } = testValidators([1n, 1n, 1n, 1n], 'flood')
const strangers = testValidators([1n, 1n, 1n, 1n, 1n, 1n, 1n, 1n], 'flood-stranger')

interface TBlock {
  height: number
  tag: string
}
const idOf = (b: TBlock): Uint8Array => sha256(encode(b))

/** A seed under which the victim (0) proposes neither height, and validator 3 does not propose height 2. */
function seed(): Uint8Array {
  for (let i = 0; ; i++) {
    const s = utf8(`flood-${i}`)
    const p1 = dids.indexOf(selectProposer(set, 1, 0, s).did)
    const p2 = dids.indexOf(selectProposer(set, 2, 0, s).did)
    if (p1 !== 0 && p2 !== 0 && p2 !== 3) return s
  }
}

test('attack: a flood of next-height messages costs no signature check beyond one per member and kind, and the real proposal is still prevoted', async () => {
  const proposerSeed = seed()
  const proposerOf = (height: number): number => dids.indexOf(selectProposer(set, height, 0, proposerSeed).did)
  const clock = new ManualClock(1_000_000)
  const sent: ConsensusMessage[] = []
  let checks = 0
  const app: ConsensusApp<TBlock> = {
    validatorSet: () => set,
    encodeBlock: (b) => encode(b),
    decodeBlock: (bytes) => decode<TBlock>(bytes),
    blockId: idOf,
    createBlock: (height) => ({ height, tag: 'victim' }),
    validateBlock: (b, height) => b.height === height,
    commit: () => {},
    proposerSeed: () => proposerSeed,
  }
  const engine = new ConsensusEngine<TBlock>({
    chainId: CHAIN,
    height: 1,
    app,
    privval: new PrivValidator(keys[0]!, new MemorySignStateStore()),
    clock,
    send: (msg) => sent.push(msg),
    verifyVote: (vote, key) => {
      checks++
      return verifyVote(vote, key)
    },
    verifyProposal: (proposal, key) => {
      checks++
      return verifyProposal(proposal, key)
    },
  })
  const deliver = async (...msgs: ConsensusMessage[]): Promise<void> => {
    for (const msg of msgs) engine.receive(msg, 'attacker')
    await engine.idle()
  }
  const vote = (
    signer: (typeof keys)[number],
    did: string,
    height: number,
    round: number,
    type: VoteType,
    b: TBlock | null,
  ): ConsensusMessage => ({
    kind: 'vote',
    vote: signVote(signer, {
      chainId: CHAIN,
      height,
      round,
      type,
      blockId: b === null ? null : idOf(b),
      validator: did,
    }),
  })
  const proposal = (i: number, height: number, b: TBlock): ConsensusMessage => ({
    kind: 'proposal',
    proposal: signProposal(keys[i]!, {
      chainId: CHAIN,
      height,
      round: 0,
      blockId: idOf(b),
      validRound: -1,
      proposer: dids[i]!,
    }),
    block: encode(b),
  })

  engine.start()
  await engine.idle()
  const X = { height: 1, tag: 'X' }
  await deliver(
    proposal(proposerOf(1), 1, X),
    vote(keys[1]!, dids[1]!, 1, 0, 'prevote', X),
    vote(keys[2]!, dids[2]!, 1, 0, 'prevote', X),
  )
  assert.equal(engine.status().height, 1, 'height 1 still being decided (no precommit quorum yet)')

  const junk: ConsensusMessage[] = []
  for (let n = 0; n < 250; n++) {
    const b = { height: 2, tag: `junk-${n}` }
    // strangers' votes and a non-proposer's proposals for height 2
    const s = n % strangers.keys.length
    junk.push(vote(strangers.keys[s]!, strangers.dids[s]!, 2, 0, 'prevote', b))
    junk.push(proposal(3, 2, b))
    // a Byzantine member: conflicting round-0 votes, and votes for later rounds
    junk.push(vote(keys[3]!, dids[3]!, 2, 0, n % 2 === 0 ? 'prevote' : 'precommit', b))
    junk.push(vote(keys[3]!, dids[3]!, 2, 1 + n, 'prevote', b))
  }
  checks = 0
  await deliver(...junk)
  assert.ok(checks <= 2, `${junk.length} junk messages cost ${checks} signature checks (one per kind for the member)`)

  // the real proposer of height 2 and the honest validators, who decided height 1 before the victim
  const W = { height: 2, tag: 'W' }
  await deliver(
    proposal(proposerOf(2), 2, W),
    vote(keys[1]!, dids[1]!, 2, 0, 'prevote', W),
    vote(keys[2]!, dids[2]!, 2, 0, 'prevote', W),
  )
  checks = 0
  await deliver(vote(keys[1]!, dids[1]!, 1, 0, 'precommit', X), vote(keys[2]!, dids[2]!, 1, 0, 'precommit', X))
  assert.equal(engine.status().height, 2)
  clock.advance(1_000) // the commit timeout
  await engine.idle()
  assert.ok(checks <= 2 + 2 * 4 + 1, `at most one kept message per member and kind is handled again (${checks} checks)`)
  const prevotes = sent.filter((m) => m.kind === 'vote' && m.vote.height === 2 && m.vote.type === 'prevote')
  assert.equal(prevotes.length, 1)
  const [ours] = prevotes
  assert.ok(ours?.kind === 'vote' && ours.vote.blockId !== null)
  assert.deepEqual(
    ours.vote.blockId,
    idOf(W),
    'the victim prevotes the real proposal of height 2, kept from before it got there',
  )
})
