import { test } from 'node:test'
import assert from 'node:assert/strict'
import { equals, utf8 } from '../../core/bytes.ts'
import { ManualClock } from '../../core/clock.ts'
import { decode, encode } from '../../core/codec.ts'
import type { DonghaeError } from '../../core/errors.ts'
import { sha256 } from '../../core/hash.ts'
import { ConsensusEngine, type ConsensusApp } from './engine.ts'
import { InvalidCommitError } from './errors.ts'
import { checkDuplicateVoteEvidence, signProposal, signVote, verifyCommit } from './messages.ts'
import { MemorySignStateStore, PrivValidator } from './privval.ts'
import { selectProposer } from './proposer.ts'
import { testValidators } from './testing.ts'
import type { CommitCertificate, ConsensusMessage, DuplicateVoteEvidence, Vote, VoteType } from './types.ts'

// Validator 0 ("A") runs the engine under test; the test plays validators 1..3 by signing their messages.
const CHAIN = 'engine-test'
const { keys, dids, set } = testValidators([1n, 1n, 1n, 1n], 'engine')
const A = 0

interface TBlock {
  height: number
  round: number
  tag: string
}

const blockId = (b: TBlock): Uint8Array => sha256(encode(b))

/** A proposer seed under which the proposer of each listed (height, round) satisfies `want`. */
function findSeed(want: Array<[height: number, round: number, ok: (proposer: number) => boolean]>): Uint8Array {
  for (let i = 0; i < 10_000; i++) {
    const seed = utf8(`seed-${i}`)
    const ok = want.every(([h, r, pred]) => pred(dids.indexOf(selectProposer(set, h, r, seed).did)))
    if (ok) return seed
  }
  throw new Error('no seed found')
}
const notA = (p: number): boolean => p !== A
const isA = (p: number): boolean => p === A

interface HarnessOptions {
  seed: Uint8Array
  privval?: PrivValidator | null
  store?: MemorySignStateStore
  height?: number
  /** No empty blocks: `work()` says whether the height has work. */
  waitForWork?: { intervalMs: number; work(): boolean; onWait?(height: number): void; onWake?(height: number): void }
  /** The app's validity rule; by default a block of the right height not tagged 'bad'. */
  validateBlock?: ConsensusApp<TBlock>['validateBlock']
}

function harness(options: HarnessOptions) {
  const clock = new ManualClock(1_000_000)
  const sent: ConsensusMessage[] = []
  const committed: { block: TBlock; cert: CommitCertificate }[] = []
  const rejects: DonghaeError[] = []
  const evidence: DuplicateVoteEvidence[] = []
  const created: { height: number; round: number; lastCommit: CommitCertificate | undefined }[] = []
  const app: ConsensusApp<TBlock> = {
    validatorSet: () => set,
    encodeBlock: (b) => encode(b),
    decodeBlock: (bytes) => {
      const b = decode<TBlock>(bytes)
      if (typeof b.tag !== 'string' || typeof b.height !== 'number') throw new Error('not a test block')
      return b
    },
    blockId,
    createBlock: (height, round, lastCommit) => {
      created.push({ height, round, lastCommit })
      return { height, round, tag: `A-${height}-${round}` }
    },
    validateBlock: options.validateBlock ?? ((b, height) => b.height === height && b.tag !== 'bad'),
    commit: (block, cert) => {
      committed.push({ block, cert })
    },
    proposerSeed: () => options.seed,
  }
  const store = options.store ?? new MemorySignStateStore()
  const privval = options.privval === null ? undefined : (options.privval ?? new PrivValidator(keys[A]!, store))
  const engine = new ConsensusEngine<TBlock>({
    chainId: CHAIN,
    height: options.height ?? 1,
    app,
    ...(privval === undefined ? {} : { privval }),
    clock,
    send: (msg) => sent.push(msg),
    onReject: (_peer, err) => rejects.push(err),
    onEvidence: (ev) => evidence.push(ev),
    ...(options.waitForWork === undefined
      ? {}
      : {
          waitForWork: {
            intervalMs: options.waitForWork.intervalMs,
            hasWork: options.waitForWork.work,
            ...(options.waitForWork.onWait === undefined ? {} : { onWait: options.waitForWork.onWait }),
            ...(options.waitForWork.onWake === undefined ? {} : { onWake: options.waitForWork.onWake }),
          },
        }),
  })
  const proposerOf = (round: number, height = 1): number =>
    dids.indexOf(selectProposer(set, height, round, options.seed).did)
  const h = {
    clock,
    engine,
    sent,
    committed,
    rejects,
    evidence,
    created,
    store,
    async start() {
      engine.start()
      await engine.idle()
    },
    async deliver(...msgs: ConsensusMessage[]) {
      for (const msg of msgs) engine.receive(msg, 'peer')
      await engine.idle()
    },
    /** Moves the clock in small steps so timers set while handling events fire on time too. */
    async advance(ms: number) {
      for (let left = ms; left > 0; left -= 10) {
        clock.advance(Math.min(10, left))
        await engine.idle()
      }
    },
    proposal(round: number, block: TBlock, validRound = -1, height = 1): ConsensusMessage {
      const p = proposerOf(round, height)
      const proposal = signProposal(keys[p]!, {
        chainId: CHAIN,
        height,
        round,
        blockId: blockId(block),
        validRound,
        proposer: dids[p]!,
      })
      return { kind: 'proposal', proposal, block: encode(block) }
    },
    vote(i: number, type: VoteType, round: number, block: TBlock | null, height = 1): ConsensusMessage {
      return { kind: 'vote', vote: vote(i, type, round, block, height) }
    },
    /** Distinct values A voted for at (round, type): block tags or 'nil'. */
    votesOfA(type: VoteType, round: number, height = 1): string[] {
      const values = new Set<string>()
      for (const msg of sent) {
        if (msg.kind !== 'vote') continue
        const v = msg.vote
        if (v.validator !== dids[A] || v.type !== type || v.round !== round || v.height !== height) continue
        values.add(v.blockId === null ? 'nil' : tagOf(v.blockId))
      }
      return [...values]
    },
  }
  return h
}

const known = new Map<string, string>()
function block(tag: string, round = 0, height = 1): TBlock {
  const b = { height, round, tag }
  known.set(Buffer.from(blockId(b)).toString('hex'), tag)
  return b
}
function tagOf(id: Uint8Array): string {
  return known.get(Buffer.from(id).toString('hex')) ?? 'A-made'
}
function vote(i: number, type: VoteType, round: number, b: TBlock | null, height = 1): Vote {
  return signVote(keys[i]!, {
    chainId: CHAIN,
    height,
    round,
    type,
    blockId: b === null ? null : blockId(b),
    validator: dids[i]!,
  })
}

const X = block('X')
const Y = block('Y')
const Z = block('Z', 1)

/** Drives A into a lock on X at round 0 and on to round 1. */
async function lockOnXThenRound1(h: ReturnType<typeof harness>): Promise<void> {
  await h.start()
  await h.deliver(h.proposal(0, X))
  assert.deepEqual(h.votesOfA('prevote', 0), ['X'])
  await h.deliver(h.vote(1, 'prevote', 0, X), h.vote(2, 'prevote', 0, X))
  assert.deepEqual(h.votesOfA('precommit', 0), ['X'], 'rule 5: lock and precommit')
  assert.equal(h.engine.status().lockedRound, 0)
  assert.equal(h.engine.status().validRound, 0)
  await h.deliver(h.vote(1, 'precommit', 0, null), h.vote(2, 'precommit', 0, null))
  await h.advance(1000)
  assert.equal(h.engine.status().round, 1, 'rule 7 + timeout: next round')
}

test('a locked validator prevotes nil for a different value (rule 2)', async () => {
  const h = harness({
    seed: findSeed([
      [1, 0, notA],
      [1, 1, notA],
    ]),
  })
  await lockOnXThenRound1(h)
  await h.deliver(h.proposal(1, Y))
  assert.deepEqual(h.votesOfA('prevote', 1), ['nil'])
  assert.equal(h.engine.status().lockedRound, 0)
})

test('a locked validator prevotes its locked value again when it is re-proposed', async () => {
  const h = harness({
    seed: findSeed([
      [1, 0, notA],
      [1, 1, notA],
    ]),
  })
  await lockOnXThenRound1(h)
  await h.deliver(h.proposal(1, X, 0))
  assert.deepEqual(h.votesOfA('prevote', 1), ['X'])
})

test('the lock is released only by rule 3: a re-proposal with a later polka', async () => {
  const h = harness({
    seed: findSeed([
      [1, 0, notA],
      [1, 1, notA],
      [1, 2, notA],
      [1, 3, notA],
    ]),
  })
  await lockOnXThenRound1(h)
  // Round 1: a re-proposal of Y claiming a polka at round 0 that never happened: wait, then nil.
  await h.deliver(h.proposal(1, Y, 0))
  assert.deepEqual(h.votesOfA('prevote', 1), [], 'rule 3 needs the polka; without it A waits')
  await h.advance(3500)
  assert.deepEqual(h.votesOfA('prevote', 1), ['nil'], 'propose timeout of round 1 (3 s + 0.5 s)')
  // Two prevotes for Y: 2/3+ of any kind, so the prevote timeout (1.5 s in round 1) makes A
  // precommit nil. Only then does the third prevote for Y arrive: a polka for Y in round 1, but
  // A is past the prevote step, so rule 5 does not relock it (it only records Y as valid).
  await h.deliver(h.vote(1, 'prevote', 1, Y), h.vote(2, 'prevote', 1, Y))
  await h.advance(1500)
  assert.deepEqual(h.votesOfA('precommit', 1), ['nil'], 'prevote timeout')
  await h.deliver(h.vote(3, 'prevote', 1, Y))
  assert.equal(h.engine.status().validRound, 1)
  await h.deliver(h.vote(1, 'precommit', 1, null), h.vote(2, 'precommit', 1, null))
  await h.advance(1500)
  assert.equal(h.engine.status().round, 2)
  assert.equal(h.engine.status().lockedRound, 0, 'still locked on X from round 0')
  // Round 2: a new proposal of Y (validRound −1) does not unlock.
  await h.deliver(h.proposal(2, Y))
  assert.deepEqual(h.votesOfA('prevote', 2), ['nil'])
  await h.deliver(h.vote(1, 'prevote', 2, null), h.vote(2, 'prevote', 2, null))
  await h.deliver(h.vote(1, 'precommit', 2, null), h.vote(2, 'precommit', 2, null))
  await h.advance(2000)
  assert.equal(h.engine.status().round, 3)
  // Round 3: Y re-proposed with validRound 1, where A has seen 2/3+ prevotes for Y: rule 3 unlocks.
  await h.deliver(h.proposal(3, Y, 1))
  assert.deepEqual(h.votesOfA('prevote', 3), ['Y'])
  assert.equal(h.engine.status().lockedRound, 0, 'rule 3 does not move the lock; it only allows the prevote')
})

test('decides in a later round, and decides an earlier round when its precommits arrive late (rule 8)', async () => {
  const h = harness({
    seed: findSeed([
      [1, 0, notA],
      [1, 1, notA],
      [1, 2, notA],
    ]),
  })
  await h.start()
  await h.advance(3000)
  assert.deepEqual(h.votesOfA('prevote', 0), ['nil'])
  await h.deliver(h.vote(1, 'prevote', 0, null), h.vote(2, 'prevote', 0, null))
  await h.deliver(h.vote(1, 'precommit', 0, null), h.vote(2, 'precommit', 0, null))
  await h.advance(1000)
  assert.equal(h.engine.status().round, 1)
  await h.deliver(h.proposal(1, Z))
  await h.deliver(h.vote(1, 'prevote', 1, Z), h.vote(2, 'prevote', 1, Z))
  assert.deepEqual(h.votesOfA('precommit', 1), ['Z'])
  await h.deliver(h.vote(1, 'precommit', 1, Z), h.vote(3, 'precommit', 1, Z))
  assert.equal(h.committed.length, 1)
  const { block: decided, cert } = h.committed[0]!
  assert.equal(decided.tag, 'Z')
  assert.equal(cert.round, 1)
  verifyCommit(cert, set, CHAIN)
  assert.equal(h.engine.status().height, 2)
  assert.equal(h.engine.status().step, 'newHeight')

  // Late precommit for height 1 lands in lastCommit; the next block carries it.
  await h.deliver(h.vote(2, 'precommit', 1, Z))
  assert.equal(h.engine.lastCommit()?.precommits.length, 4)

  // A second engine at round 2 gets round 0's proposal and precommits late: it decides round 0.
  const late = harness({
    seed: findSeed([
      [1, 0, notA],
      [1, 1, notA],
      [1, 2, notA],
    ]),
  })
  await late.start()
  await late.deliver(late.vote(1, 'prevote', 2, null), late.vote(2, 'prevote', 2, null))
  assert.equal(late.engine.status().round, 2, 'skipped to round 2 on f+1')
  await late.deliver(late.proposal(0, X))
  await late.deliver(...[1, 2, 3].map((i) => late.vote(i, 'precommit', 0, X)))
  assert.equal(late.committed[0]?.block.tag, 'X')
  assert.equal(late.committed[0]?.cert.round, 0)
})

test('f+1 messages from a higher round make the validator skip to it (rule 9)', async () => {
  const h = harness({
    seed: findSeed([
      [1, 0, notA],
      [1, 5, notA],
    ]),
  })
  await h.start()
  await h.deliver(h.vote(1, 'prevote', 5, null), h.vote(1, 'precommit', 5, null))
  assert.equal(h.engine.status().round, 0, 'one validator (1/4) is not enough, even with two messages')
  await h.deliver(h.vote(2, 'precommit', 5, null))
  assert.equal(h.engine.status().round, 5, '2 of 4 is more than 1/3')
  assert.equal(h.engine.status().step, 'propose')
})

test('timeouts: propose, prevote and precommit fire on time and grow with the round (rule 10)', async () => {
  const h = harness({
    seed: findSeed([
      [1, 0, notA],
      [1, 1, notA],
    ]),
  })
  await h.start()
  await h.advance(2990)
  assert.deepEqual(h.votesOfA('prevote', 0), [])
  await h.advance(20)
  assert.deepEqual(h.votesOfA('prevote', 0), ['nil'], 'propose timeout: 3 s')
  await h.deliver(h.vote(1, 'prevote', 0, X), h.vote(2, 'prevote', 0, null))
  await h.advance(990)
  assert.deepEqual(h.votesOfA('precommit', 0), [], '2/3+ prevotes of mixed values: wait for the prevote timeout')
  await h.advance(20)
  assert.deepEqual(h.votesOfA('precommit', 0), ['nil'], 'prevote timeout: 1 s')
  await h.deliver(h.vote(1, 'precommit', 0, X), h.vote(2, 'precommit', 0, null))
  await h.advance(990)
  assert.equal(h.engine.status().round, 0)
  await h.advance(20)
  assert.equal(h.engine.status().round, 1, 'precommit timeout: 1 s')
  await h.advance(3470)
  assert.deepEqual(h.votesOfA('prevote', 1), [])
  await h.advance(40)
  assert.deepEqual(h.votesOfA('prevote', 1), ['nil'], 'round 1 propose timeout: 3.5 s')
})

test('the proposer proposes, and its next block carries the late precommits (lastCommit)', async () => {
  const h = harness({
    seed: findSeed([
      [1, 0, isA],
      [2, 0, isA],
    ]),
  })
  await h.start()
  const proposal = h.sent.find((m) => m.kind === 'proposal')
  assert.ok(proposal !== undefined && proposal.kind === 'proposal')
  assert.deepEqual(h.created[0], { height: 1, round: 0, lastCommit: undefined })
  const own = decode<TBlock>(proposal.block)
  assert.equal(own.tag, 'A-1-0')
  assert.deepEqual(h.votesOfA('prevote', 0), ['A-made'])
  await h.deliver(h.vote(1, 'prevote', 0, own), h.vote(2, 'prevote', 0, own))
  await h.deliver(h.vote(1, 'precommit', 0, own), h.vote(2, 'precommit', 0, own))
  assert.equal(h.committed.length, 1)
  assert.equal(h.committed[0]?.cert.precommits.length, 3)
  await h.deliver(h.vote(3, 'precommit', 0, own))
  await h.advance(1000)
  assert.equal(h.created[1]?.height, 2)
  assert.equal(h.created[1]?.lastCommit?.precommits.length, 4, 'the late precommit is in the certificate')
})

test('invalid blocks get a nil prevote; bad signatures, non-members and wrong proposers are rejected', async () => {
  const seed = findSeed([[1, 0, notA]])
  const h = harness({ seed })
  await h.start()
  const wrongProposer = dids.findIndex((_, i) => i !== A && i !== dids.indexOf(selectProposer(set, 1, 0, seed).did))
  const p = signProposal(keys[wrongProposer]!, {
    chainId: CHAIN,
    height: 1,
    round: 0,
    blockId: blockId(X),
    validRound: -1,
    proposer: dids[wrongProposer]!,
  })
  await h.deliver({ kind: 'proposal', proposal: p, block: encode(X) })
  const forged = h.vote(1, 'prevote', 0, X)
  assert.ok(forged.kind === 'vote')
  const signature = Uint8Array.from(forged.vote.signature)
  signature[0] = (signature[0] ?? 0) ^ 0xff
  await h.deliver({ kind: 'vote', vote: { ...forged.vote, signature } })
  const outsider = testValidators([1n], 'outsider')
  const foreign = signVote(outsider.keys[0]!, {
    chainId: CHAIN,
    height: 1,
    round: 0,
    type: 'prevote',
    blockId: null,
    validator: outsider.dids[0]!,
  })
  await h.deliver({ kind: 'vote', vote: foreign })
  await h.deliver({ kind: 'vote', vote: { ...vote(1, 'prevote', 0, null), chainId: 'other' } })
  assert.equal(h.rejects.length, 4)
  assert.ok(h.rejects.every((e) => (e as DonghaeError & { action: string }).action === 'reject'))
  await h.deliver(h.proposal(0, { height: 1, round: 0, tag: 'bad' }))
  assert.deepEqual(h.votesOfA('prevote', 0), ['nil'], 'an invalid block gets nil at once')
})

test('a second, different vote from one validator is reported as evidence and not counted', async () => {
  const h = harness({ seed: findSeed([[1, 0, notA]]) })
  await h.start()
  await h.deliver(h.vote(3, 'prevote', 0, X), h.vote(3, 'prevote', 0, Y), h.vote(3, 'prevote', 0, X))
  assert.equal(h.evidence.length, 1)
  checkDuplicateVoteEvidence(h.evidence[0]!, set, CHAIN)
  await h.deliver(h.vote(1, 'prevote', 0, Y), h.vote(2, 'prevote', 0, Y))
  assert.deepEqual(h.votesOfA('precommit', 0), [], "Y has 2 of 4: the equivocator's Y vote does not count")
})

test('a flood of junk does not stall the engine', async () => {
  const h = harness({ seed: findSeed([[1, 0, notA]]) })
  await h.start()
  const outsider = testValidators([1n], 'junk')
  const junk: ConsensusMessage[] = []
  for (let i = 0; i < 3000; i++) {
    const bogus = vote(1 + (i % 3), 'prevote', 0, null)
    junk.push({ kind: 'vote', vote: { ...bogus, signature: new Uint8Array(64).fill(i % 256) } })
    junk.push({
      kind: 'vote',
      vote: signVote(outsider.keys[0]!, { ...bogus, validator: outsider.dids[0]! }),
    })
    junk.push({ kind: 'vote', vote: { ...bogus, height: 1000 + i } })
  }
  const started = performance.now()
  for (const msg of junk) h.engine.receive(msg, 'spammer')
  await h.deliver(h.proposal(0, X))
  await h.deliver(...[1, 2, 3].flatMap((i) => [h.vote(i, 'prevote', 0, X), h.vote(i, 'precommit', 0, X)]))
  assert.equal(h.committed.length, 1, 'decided despite the junk')
  assert.equal(h.rejects.length, 6000, 'forged and foreign votes are all reported')
  assert.ok(performance.now() - started < 10_000)
})

test('an observer (no private validator) follows and decides', async () => {
  const h = harness({ seed: findSeed([[1, 0, () => true]]), privval: null })
  await h.start()
  await h.deliver(h.proposal(0, X))
  await h.deliver(...[1, 2, 3].map((i) => h.vote(i, 'precommit', 0, X)))
  assert.equal(h.committed[0]?.block.tag, 'X')
  assert.equal(h.sent.length, 0)
})

test('after a restart the lock, the round and the signed votes come back from the private validator', async () => {
  const seed = findSeed([
    [1, 0, notA],
    [1, 1, notA],
  ])
  const store = new MemorySignStateStore()
  const before = harness({ seed, store })
  await before.start()
  await before.deliver(before.proposal(0, X))
  await before.deliver(before.vote(1, 'prevote', 0, X), before.vote(2, 'prevote', 0, X))
  assert.deepEqual(before.votesOfA('precommit', 0), ['X'])
  before.engine.stop()

  const after = harness({ seed, store })
  await after.start()
  assert.equal(after.engine.status().lockedRound, 0)
  assert.equal(after.engine.status().validRound, 0, 'the locked block came back too')
  assert.equal(after.engine.status().step, 'precommit')
  assert.deepEqual(after.votesOfA('prevote', 0), ['X'], 'signed votes are sent again')
  assert.deepEqual(after.votesOfA('precommit', 0), ['X'])
  await after.deliver(after.vote(1, 'precommit', 0, null), after.vote(2, 'precommit', 0, null))
  await after.advance(1000)
  assert.equal(after.engine.status().round, 1)
  await after.deliver(after.proposal(1, Y))
  assert.deepEqual(after.votesOfA('prevote', 1), ['nil'], 'still locked on X')
})

test('a synced block is committed only with a certificate that verifies', async () => {
  const h = harness({ seed: findSeed([[1, 0, notA]]) })
  await h.start()
  const cert = (signers: number[], b: TBlock, height: number): CommitCertificate => ({
    height,
    round: 3,
    blockId: blockId(b),
    precommits: signers.map((i) => vote(i, 'precommit', 3, b, height)),
  })
  h.engine.receiveCommit(X, cert([1, 2], X, 1))
  await h.engine.idle()
  assert.equal(h.committed.length, 0)
  assert.ok(h.rejects[0] instanceof InvalidCommitError)
  h.engine.receiveCommit(X, cert([1, 2, 3], X, 1))
  await h.engine.idle()
  assert.equal(h.committed.length, 1)
  assert.ok(equals(h.committed[0]!.cert.blockId, blockId(X)))
  assert.equal(h.engine.status().height, 2)
})

test('a synced block refused as a proposal by this node alone is decided from its certificate, validated as committed', async () => {
  const asked: Array<{ tag: string; committed: boolean }> = []
  // 'ahead': refused as a proposal (this node's clock is behind), fine once decided; 'bad': never
  const h = harness({
    seed: findSeed([[1, 0, notA]]),
    validateBlock: (b, height, _round, options) => {
      asked.push({ tag: b.tag, committed: options?.committed === true })
      return b.height === height && b.tag !== 'bad' && (b.tag !== 'ahead' || options?.committed === true)
    },
  })
  await h.start()
  const ahead = block('ahead')
  await h.deliver(h.proposal(0, ahead))
  assert.deepEqual(h.votesOfA('prevote', 0), ['nil'], 'refused as proposed')
  const cert = (b: TBlock): CommitCertificate => ({
    height: 1,
    round: 0,
    blockId: blockId(b),
    precommits: [1, 2, 3].map((i) => vote(i, 'precommit', 0, b, 1)),
  })
  const bad = block('bad')
  h.engine.receiveCommit(bad, cert(bad), 'peer')
  await h.engine.idle()
  assert.equal(h.committed.length, 0, 'a block invalid as decided is still refused')
  assert.match(h.rejects.at(-1)?.message ?? '', /synced block is invalid/)
  h.engine.receiveCommit(ahead, cert(ahead), 'peer')
  await h.engine.idle()
  assert.equal(h.committed.length, 1, 'the proposal verdict kept for the height does not refuse the commit')
  assert.equal(tagOf(blockId(h.committed[0]!.block)), 'ahead')
  assert.deepEqual(asked, [
    { tag: 'ahead', committed: false },
    { tag: 'bad', committed: true },
    { tag: 'ahead', committed: true },
  ])
})

// ---- no empty blocks (CometBFT create_empty_blocks = false, create_empty_blocks_interval) ----

/** Decides height 1 on X, proposed by another validator, then lets the commit timeout pass. */
/** X proposed at height 1, prevoted and precommitted by validators 1 and 2 (with A: a quorum). */
async function reachDecision(h: ReturnType<typeof harness>): Promise<void> {
  await h.deliver(h.proposal(0, X))
  await h.deliver(h.vote(1, 'prevote', 0, X), h.vote(2, 'prevote', 0, X))
  await h.deliver(h.vote(1, 'precommit', 0, X), h.vote(2, 'precommit', 0, X))
}

async function decideHeight1(h: ReturnType<typeof harness>): Promise<void> {
  await reachDecision(h)
  assert.equal(h.committed.length, 1)
  await h.advance(1_000) // the commit timeout
}

test('no empty blocks: a height with no work waits before round 0, with no timeout running', async () => {
  const seed = findSeed([[2, 0, isA]])
  const h = harness({ seed, waitForWork: { intervalMs: 0, work: () => false } })
  await h.start()
  assert.equal(h.engine.status().step, 'newHeight', 'height 1 waits too: nothing to decide')
  assert.equal(h.created.length, 0)
  await h.advance(30_000)
  assert.equal(h.engine.status().step, 'newHeight')
  assert.equal(h.created.length, 0, 'no block is made while there is no work')
  assert.equal(h.sent.length, 0, 'no vote either: no propose timeout ran')
})

test('no empty blocks: work available starts round 0 at once, and the proposer proposes', async () => {
  const seed = findSeed([[1, 0, isA]])
  let work = false
  const h = harness({ seed, waitForWork: { intervalMs: 0, work: () => work } })
  await h.start()
  h.engine.workAvailable()
  await h.engine.idle()
  assert.equal(h.created.length, 0, 'a hint without work (a transaction behind a nonce gap) wakes nothing')
  work = true
  h.engine.workAvailable()
  await h.engine.idle()
  assert.deepEqual(
    h.created.map((c) => [c.height, c.round]),
    [[1, 0]],
  )
  assert.ok(h.sent.some((m) => m.kind === 'proposal' && m.proposal.height === 1 && m.proposal.round === 0))
})

test("no empty blocks: another validator's proposal or vote wakes a waiting height (it had work)", async () => {
  const seed = findSeed([
    [1, 0, notA],
    [2, 0, notA],
  ])
  const h = harness({ seed, waitForWork: { intervalMs: 0, work: () => false } })
  await h.start()
  await decideHeight1(h)
  assert.equal(h.engine.status().height, 2)
  assert.equal(h.engine.status().step, 'newHeight')
  await h.deliver(h.vote(1, 'prevote', 0, null, 2))
  assert.equal(h.engine.status().step, 'propose', 'a vote of this height starts round 0')
  assert.deepEqual(h.votesOfA('prevote', 0, 2), [], 'and A waits for the proposal, not for its own work')
  await h.deliver(h.proposal(0, block('W', 0, 2), -1, 2))
  assert.deepEqual(h.votesOfA('prevote', 0, 2), ['W'])
})

test('no empty blocks: the empty-block interval proposes an empty block when nothing comes', async () => {
  const seed = findSeed([[1, 0, isA]])
  const h = harness({ seed, waitForWork: { intervalMs: 5_000, work: () => false } })
  await h.start()
  await h.advance(4_990)
  assert.equal(h.created.length, 0)
  await h.advance(20)
  assert.deepEqual(
    h.created.map((c) => [c.height, c.round]),
    [[1, 0]],
    'the interval passed: round 0 starts and A proposes',
  )
})

/** `waitForWork` with no interval whose wait and wake calls are recorded as 'wait h' / 'wake h'. */
function recordedWaits(work: () => boolean): {
  events: string[]
  waitForWork: NonNullable<HarnessOptions['waitForWork']>
} {
  const events: string[] = []
  return {
    events,
    waitForWork: {
      intervalMs: 0,
      work,
      onWait: (height) => events.push(`wait ${height}`),
      onWake: (height) => events.push(`wake ${height}`),
    },
  }
}

test('no empty blocks: the app hears when a height starts to wait and when it wakes (PoH rests between)', async () => {
  const seed = findSeed([
    [1, 0, notA],
    [2, 0, isA],
  ])
  let work = false
  const { events, waitForWork } = recordedWaits(() => work)
  const h = harness({ seed, waitForWork })
  await h.start()
  assert.deepEqual(events, ['wait 1'], 'height 1 has nothing to decide')
  await h.deliver(h.proposal(0, X))
  assert.deepEqual(events, ['wait 1', 'wake 1'], "another validator's proposal wakes it")
  await h.deliver(h.vote(1, 'prevote', 0, X), h.vote(2, 'prevote', 0, X))
  await h.deliver(h.vote(1, 'precommit', 0, X), h.vote(2, 'precommit', 0, X))
  await h.advance(1_000) // the commit timeout: height 2 waits
  assert.deepEqual(events, ['wait 1', 'wake 1', 'wait 2'])
  work = true
  h.engine.workAvailable()
  await h.engine.idle()
  assert.deepEqual(events, ['wait 1', 'wake 1', 'wait 2', 'wake 2'])
  assert.deepEqual(
    h.created.map((c) => [c.height, c.round]),
    [[2, 0]],
    'woken by its own work, A proposes height 2',
  )
})

test('no empty blocks: a height with work at its start neither waits nor wakes', async () => {
  const seed = findSeed([[1, 0, isA]])
  const { events, waitForWork } = recordedWaits(() => true)
  const h = harness({ seed, waitForWork })
  await h.start()
  assert.equal(h.created.length, 1, 'round 0 starts at once')
  assert.deepEqual(events, [], 'PoH goes on ticking: nothing to tell')
})

test('no empty blocks: a vote of the next height that comes during the commit timeout means it does not wait', async () => {
  const seed = findSeed([
    [1, 0, notA],
    [2, 0, notA],
  ])
  const h = harness({ seed, waitForWork: { intervalMs: 0, work: () => false } })
  await h.start()
  await reachDecision(h)
  assert.equal(h.engine.status().height, 2)
  // validator 1 had work and already started height 2; its vote arrives before A's commit timeout ends
  await h.deliver(h.vote(1, 'prevote', 0, null, 2))
  await h.advance(1_000)
  assert.equal(h.engine.status().step, 'propose', 'A starts round 0 instead of waiting for work of its own')
})

test('no empty blocks: the commit timeout ends once every precommit is in (skip_timeout_commit)', async () => {
  const seed = findSeed([
    [1, 0, notA],
    [2, 0, isA],
  ])
  const h = harness({ seed, waitForWork: { intervalMs: 0, work: () => true } })
  await h.start()
  await h.advance(1_500) // a height slower to decide than the commit timeout (a loaded one)
  await reachDecision(h)
  assert.equal(h.committed.length, 1, 'decided with A and two others')
  assert.equal(h.created.length, 0, 'a precommit is still missing: the commit timeout runs')
  await h.deliver(h.vote(3, 'precommit', 0, X))
  assert.deepEqual(
    h.created.map((c) => [c.height, c.round, c.lastCommit?.precommits.length]),
    [[2, 0, 4]],
    'the last precommit ends the wait: A proposes height 2 at once, with all four in its certificate',
  )
  await h.advance(1_000)
  assert.equal(h.created.length, 1, 'the timeout that still fires starts nothing twice')
})

test('no empty blocks: a height decided quickly is followed no sooner than the commit timeout after it began', async () => {
  const seed = findSeed([
    [1, 0, notA],
    [2, 0, isA],
  ])
  const h = harness({ seed, waitForWork: { intervalMs: 0, work: () => true } })
  await h.start()
  await h.advance(600)
  await reachDecision(h)
  await h.deliver(h.vote(3, 'precommit', 0, X))
  assert.equal(h.created.length, 0, 'every precommit is in 600 ms after height 1 began: the floor is 1 000 ms')
  await h.advance(399)
  assert.equal(h.created.length, 0)
  await h.advance(1)
  assert.deepEqual(
    h.created.map((c) => [c.height, c.round, c.lastCommit?.precommits.length]),
    [[2, 0, 4]],
    'height 2 begins 1 000 ms after height 1 began, before the pause from the decision (at 1 600 ms) ends',
  )
  await h.advance(1_000)
  assert.equal(h.created.length, 1, 'the pause that still ends starts nothing twice')
})

test('no empty blocks: with every precommit in at the decision, a height without work waits once, at the floor', async () => {
  const seed = findSeed([
    [1, 0, notA],
    [2, 0, notA],
  ])
  const { events, waitForWork } = recordedWaits(() => false)
  const h = harness({ seed, waitForWork })
  await h.start()
  await h.deliver(h.proposal(0, X)) // wakes height 1: its round 0 begins at 0 ms
  await h.advance(600)
  await h.deliver(h.vote(1, 'prevote', 0, X), h.vote(2, 'prevote', 0, X), h.vote(3, 'precommit', 0, X))
  await h.deliver(h.vote(1, 'precommit', 0, X), h.vote(2, 'precommit', 0, X))
  assert.equal(h.committed.length, 1)
  assert.deepEqual(events, ['wait 1', 'wake 1'], 'decided at 600 ms: height 2 is not begun before 1 000 ms')
  await h.advance(400)
  assert.deepEqual(events, ['wait 1', 'wake 1', 'wait 2'], 'height 2 waits for work 1 000 ms after height 1 began')
  await h.advance(1_000)
  assert.equal(h.engine.status().step, 'newHeight', 'the commit timeout does not start round 0 of a waiting height')
  assert.deepEqual(events, ['wait 1', 'wake 1', 'wait 2'])
})

test('empty blocks: the commit timeout runs out even when every precommit is in (it is the block interval)', async () => {
  const seed = findSeed([
    [1, 0, notA],
    [2, 0, isA],
  ])
  const h = harness({ seed })
  await h.start()
  await h.deliver(h.proposal(0, X))
  await h.deliver(h.vote(1, 'prevote', 0, X), h.vote(2, 'prevote', 0, X), h.vote(3, 'precommit', 0, X))
  await h.deliver(h.vote(1, 'precommit', 0, X), h.vote(2, 'precommit', 0, X))
  assert.equal(h.committed.length, 1)
  assert.equal(h.created.length, 0)
  await h.advance(1_000)
  assert.equal(h.created[0]?.height, 2)
})

test("next height's round-0 messages that come before this height is decided are handled when it begins", async () => {
  const seed = findSeed([
    [1, 0, notA],
    [2, 0, notA],
  ])
  const h = harness({ seed })
  await h.start()
  await h.deliver(h.proposal(0, X))
  await h.deliver(h.vote(1, 'prevote', 0, X), h.vote(2, 'prevote', 0, X))
  // the others decided height 1 and are on height 2 before A has their precommits
  const W = block('W', 0, 2)
  await h.deliver(h.proposal(0, W, -1, 2), h.vote(1, 'prevote', 0, W, 2), h.vote(2, 'prevote', 0, W, 2))
  assert.equal(h.engine.status().height, 1)
  await h.deliver(h.vote(1, 'precommit', 0, X), h.vote(2, 'precommit', 0, X))
  assert.equal(h.engine.status().height, 2)
  await h.advance(1_000)
  assert.deepEqual(h.votesOfA('prevote', 0, 2), ['W'], 'the proposal kept from before is prevoted')
  assert.deepEqual(h.votesOfA('precommit', 0, 2), ['W'], 'with the two kept prevotes: a polka, A locks and precommits')
})

test("next height's messages are kept only from members, correctly signed, and a proposal only from its proposer", async () => {
  const seed = findSeed([
    [1, 0, notA],
    [2, 0, (p) => p !== A && p !== 3],
  ])
  const h = harness({ seed })
  await h.start()
  await h.deliver(h.proposal(0, X))
  const W = block('W', 0, 2)
  const forged = h.vote(1, 'prevote', 0, W, 2)
  if (forged.kind === 'vote') forged.vote = { ...forged.vote, signature: new Uint8Array(64) }
  const outsider = testValidators([1n], 'outsider')
  const stranger: ConsensusMessage = {
    kind: 'vote',
    vote: signVote(outsider.keys[0]!, {
      chainId: CHAIN,
      height: 2,
      round: 0,
      type: 'prevote',
      blockId: blockId(W),
      validator: outsider.dids[0]!,
    }),
  }
  const notProposer: ConsensusMessage = {
    kind: 'proposal',
    proposal: signProposal(keys[3]!, {
      chainId: CHAIN,
      height: 2,
      round: 0,
      blockId: blockId(W),
      validRound: -1,
      proposer: dids[3]!,
    }),
    block: encode(W),
  }
  const rejectsBefore = h.rejects.length
  await h.deliver(forged, stranger, notProposer)
  assert.equal(h.rejects.length, rejectsBefore + 1, 'the forged signature is refused at once')
  await h.deliver(h.vote(1, 'prevote', 0, X), h.vote(2, 'prevote', 0, X))
  await h.deliver(h.vote(1, 'precommit', 0, X), h.vote(2, 'precommit', 0, X))
  assert.equal(h.engine.status().height, 2)
  await h.advance(1_000)
  assert.deepEqual(h.votesOfA('prevote', 0, 2), [], 'nothing kept: A still waits for the proposal of height 2')
})
