// The chain application over real LevelDB stores: four validators' apps build, validate and
// commit blocks (consensus is stood in for by certificates signed here; the engine is tested in
// src/chain/bft and the simulator), tampered blocks are refused, restart resumes, sync verifies.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { equals } from '../src/core/bytes.ts'
import { merkleRoot } from '../src/core/merkle.ts'
import { toHex } from '../src/core/bytes.ts'
import { encodeTx, signTx, txHash } from '../src/chain/tx.ts'
import { BlockError } from '../src/chain/errors.ts'
import { InlinePohService } from '../src/chain/poh-service.ts'
import { countTicks } from '../src/chain/poh/entries.ts'
import { proposerFor, ticksRequiredFor } from '../src/chain/runtime.ts'
import { signVote } from '../src/chain/bft/messages.ts'
import type { Block } from '../src/chain/block.ts'
import { balanceOf } from '../src/bank/bank.ts'
import { retainedProofKeys, validatorRecord, validatorSetFromValue, validatorSetKey } from '../src/staking/staking.ts'
import { verifyProof } from '../src/chain/state/proof.ts'
import { actor, makeGenesis, type Actor } from './helpers/chain.ts'
import { certify, openTestChain, removeDir, type TestChain } from './helpers/chain-app.ts'
import { ManualClock } from '../src/core/clock.ts'
import { proposalBuildMs } from '../src/chain/app.ts'

const validators = [actor(), actor(), actor(), actor()]
const alice = actor()
const bob = actor()
const genesis = makeGenesis(validators, [[alice, 1_000_000n], ...validators.map((v) => [v, 1_000n] as [Actor, bigint])])

async function network(): Promise<Array<{ who: Actor; chain: TestChain }>> {
  return Promise.all(validators.map(async (who) => ({ who, chain: await openTestChain(genesis, who) })))
}

async function closeAll(nodes: Array<{ chain: TestChain }>): Promise<void> {
  for (const { chain } of nodes) {
    await chain.close()
    await removeDir(chain.dir)
  }
}

/** Proposer builds height h; every node validates; 3 of 4 sign; every node commits. */
async function step(nodes: Array<{ who: Actor; chain: TestChain }>, signers = validators.slice(0, 3)): Promise<Block> {
  const first = (nodes[0] as { chain: TestChain }).chain
  const height = first.app.head.height + 1
  const proposerDid = proposerFor(genesis)(first.app.validatorSet(height), height, 0)
  const proposer = nodes.find((n) => n.who.did === proposerDid) as { chain: TestChain }
  for (const n of nodes) n.chain.clock.advance(1_000)
  const block = await proposer.chain.app.createBlock(height, 0)
  const id = proposer.chain.app.blockId(block)
  const bytes = proposer.chain.app.encodeBlock(block)
  for (const n of nodes) {
    const received = n.chain.app.decodeBlock(bytes)
    assert.ok(
      await n.chain.app.validateBlock(received, height, 0),
      `node ${n.who.did.slice(-6)} accepts height ${height}`,
    )
  }
  const cert = certify(block, id, signers)
  for (const n of nodes) await n.chain.app.commit(n.chain.app.decodeBlock(bytes), cert)
  return block
}

/** The proposer of round 0 at `height`, and one node that is not it. */
function proposerAndOther(
  nodes: Array<{ who: Actor; chain: TestChain }>,
  height: number,
): { proposer: { who: Actor; chain: TestChain }; other: { who: Actor; chain: TestChain } } {
  const first = (nodes[0] as { chain: TestChain }).chain
  const proposerDid = proposerFor(genesis)(first.app.validatorSet(height), height, 0)
  const proposer = nodes.find((n) => n.who.did === proposerDid) as { who: Actor; chain: TestChain }
  return { proposer, other: nodes.find((n) => n !== proposer) as { who: Actor; chain: TestChain } }
}

function transfer(nonce: bigint, amount: bigint): Uint8Array {
  return encodeTx(
    signTx(alice.key, {
      chainId: genesis.chainId,
      nonce,
      fee: 1n,
      kind: 'bank.transfer',
      body: { to: bob.did, amount },
    }),
  )
}

test('four apps build and commit blocks with transactions and agree on every state root', async () => {
  const nodes = await network()
  try {
    for (const n of nodes) n.chain.mempool.add(transfer(0n, 100n), n.chain.app.state)
    for (const n of nodes) n.chain.mempool.add(transfer(1n, 50n), n.chain.app.state)
    for (let i = 0; i < 5; i++) await step(nodes)
    const roots = nodes.map((n) => n.chain.app.head.stateRoot)
    for (const root of roots) assert.ok(equals(root, roots[0] as Uint8Array))
    for (const n of nodes) {
      assert.equal(n.chain.app.head.height, 5)
      assert.equal(balanceOf(n.chain.app.state, bob.did), 150n)
      assert.equal(n.chain.mempool.size, 0, 'included transactions left the mempool')
    }
    const first = nodes[0] as { chain: TestChain }
    const height = await first.chain.app.txHeight(
      (await first.chain.app.getBlock(1))?.txs.length
        ? (await import('../src/chain/tx.ts')).txHash(transfer(0n, 100n))
        : new Uint8Array(32),
    )
    assert.equal(height, 1, 'the transaction index says where it was committed')
  } finally {
    await closeAll(nodes)
  }
})

test('tampered proposals are refused with the reason, and nothing is committed', async () => {
  const nodes = await network()
  try {
    await step(nodes)
    const [a, b] = nodes as [{ who: Actor; chain: TestChain }, { who: Actor; chain: TestChain }]
    const height = 2
    const proposerDid = proposerFor(genesis)(a.chain.app.validatorSet(height), height, 0)
    const proposer = nodes.find((n) => n.who.did === proposerDid) as { chain: TestChain }
    proposer.chain.mempool.add(transfer(0n, 10n), proposer.chain.app.state)
    for (const n of nodes) n.chain.clock.advance(1_000)
    const good = await proposer.chain.app.createBlock(height, 0)
    const validator = proposer === a ? b : a
    const reject = async (mutate: (block: Block) => void, why: RegExp): Promise<void> => {
      const copy = validator.chain.app.decodeBlock(proposer.chain.app.encodeBlock(good))
      mutate(copy)
      await assert.rejects(
        validator.chain.app.checkBlock(copy, height, 0),
        (err: unknown) => err instanceof BlockError && why.test(err.message),
        String(why),
      )
    }
    await reject((blk) => (blk.header.stateRoot = new Uint8Array(32).fill(7)), /state root/)
    await reject((blk) => (blk.header.parentId = new Uint8Array(32).fill(1)), /extend/)
    await reject(
      (blk) => (blk.header.proposer = (validators.find((v) => v.did !== proposerDid) as Actor).did),
      /is not the proposer/,
    )
    await reject((blk) => (blk.header.time = validator.chain.clock.now() + 60_000), /future/)
    await reject((blk) => (blk.lastCommit = null), /lastCommitHash|missing/)
    await reject((blk) => {
      const entry = blk.poh[0]
      if (entry !== undefined) entry.hash = new Uint8Array(32).fill(9)
    }, /PoH|pohEnd/)
    await reject((blk) => {
      const cert = blk.lastCommit
      if (cert !== null) cert.precommits = cert.precommits.slice(0, 2)
    }, /lastCommitHash|commit/)
    await reject((blk) => (blk.txs[0] = transfer(0n, 999n)), /mixin|txRoot/)
    assert.equal(validator.chain.app.head.height, 1)
    // A certificate signed by too few validators cannot commit a block either.
    const id = proposer.chain.app.blockId(good)
    await assert.rejects(validator.chain.app.applySynced(good, certify(good, id, validators.slice(0, 2))), BlockError)
  } finally {
    await closeAll(nodes)
  }
})

test('a transaction whose body fails is committed as failed on every node: fee charged, reason indexed, effects discarded', async () => {
  const nodes = await network()
  try {
    await step(nodes)
    // Ante checks pass (signature, nonce, fee, payable); the body fails: alice has no stake to unbond.
    const unbond = encodeTx(
      signTx(alice.key, { chainId: genesis.chainId, nonce: 0n, fee: 5n, kind: 'staking.unbond', body: { amount: 1n } }),
    )
    for (const n of nodes) n.chain.mempool.add(unbond, n.chain.app.state)
    const balance = balanceOf((nodes[0] as { chain: TestChain }).chain.app.state, alice.did)
    const block = await step(nodes)
    assert.equal(block.txs.length, 1, 'the proposer included it')
    for (const n of nodes) {
      assert.deepEqual(await n.chain.app.txOutcome(txHash(unbond)), {
        height: 2,
        ok: false,
        reason: 'insufficient-stake',
      })
      assert.equal(balanceOf(n.chain.app.state, alice.did), balance - 5n)
      assert.equal(validatorRecord(n.chain.app.state, alice.did), undefined)
      assert.equal(n.chain.mempool.size, 0)
    }
    // A node syncing the chain replays the failure the same way.
    const fresh = await openTestChain(genesis, undefined)
    try {
      const source = (nodes[0] as { chain: TestChain }).chain.app
      fresh.clock.advance(10_000)
      for (let h = 1; h <= 2; h++) {
        const cert = await source.getCommit(h)
        assert.ok(cert)
        await fresh.app.applySynced((await source.getBlock(h)) as Block, cert)
      }
      assert.deepEqual(await fresh.app.txOutcome(txHash(unbond)), {
        height: 2,
        ok: false,
        reason: 'insufficient-stake',
      })
      assert.ok(equals(fresh.app.head.stateRoot, source.head.stateRoot))
    } finally {
      await fresh.close()
      await removeDir(fresh.dir)
    }
  } finally {
    await closeAll(nodes)
  }
})

test('a block carrying a transaction that fails its ante checks (an unfunded sender) is invalid', async () => {
  const nodes = await network()
  try {
    await step(nodes)
    const height = 2
    const { proposer, other: validator } = proposerAndOther(nodes, height)
    for (const n of nodes) n.chain.clock.advance(1_000)
    const good = await proposer.chain.app.createBlock(height, 0)
    // A Byzantine proposer puts in a well-signed transaction from an account that cannot pay its fee.
    const unfunded = actor()
    const junk = encodeTx(
      signTx(unfunded.key, {
        chainId: genesis.chainId,
        nonce: 0n,
        fee: 2n ** 64n - 1n,
        kind: 'bank.transfer',
        body: { to: bob.did, amount: 1n },
      }),
    )
    const root = merkleRoot([txHash(junk)])
    const poh = await new InlinePohService(genesis.params.hashesPerTick).produce(good.header.pohStart, 1, [root])
    const forged: Block = {
      ...good,
      txs: [junk],
      batches: [1],
      poh,
      header: {
        ...good.header,
        txRoot: root,
        pohEnd: (poh.at(-1) as { hash: Uint8Array }).hash,
        pohTicks: countTicks(poh),
      },
    }
    await assert.rejects(
      validator.chain.app.checkBlock(forged, height, 0),
      (err: unknown) =>
        err instanceof BlockError && /transaction 0 is invalid \(insufficient-funds\)/.test(err.message),
    )
    assert.equal(validator.chain.app.head.height, 1)
    assert.notEqual(toHex(validator.chain.app.blockId(forged)), toHex(validator.chain.app.blockId(good)))
  } finally {
    await closeAll(nodes)
  }
})

test('a proposal at a late round reached sooner than its nominal timeouts (PoH extended flat out) is valid everywhere', async () => {
  // Rounds can end before their timeouts add up (a nil prevote quorum, f+1 messages from a later
  // round); the proposer then extends its PoH to the ticks the round requires. Its block must
  // claim the time those ticks prove, or every validator refuses it, and every later round too.
  const ticksRequired = ticksRequiredFor(genesis)
  const nodes = await Promise.all(
    validators.map(async (who) => ({
      who,
      chain: await openTestChain(genesis, who, undefined, undefined, ticksRequired),
    })),
  )
  try {
    await step(nodes)
    const first = (nodes[0] as { chain: TestChain }).chain
    const height = first.app.head.height + 1
    const round = 4
    const proposerDid = proposerFor(genesis)(first.app.validatorSet(height), height, round)
    const proposer = nodes.find((n) => n.who.did === proposerDid) as { chain: TestChain }
    // only 2 s of wall time since the parent, far less than rounds 0–3's timeouts
    for (const n of nodes) n.chain.clock.advance(2_000)
    const parentTime = first.app.head.time
    const block = await proposer.chain.app.createBlock(height, round)
    const proven = (block.header.pohTicks * 1000) / genesis.params.ticksPerSecond
    assert.ok(proven > 2_000 + 1_000, `the PoH proves ${proven} ms, more than the 2 s that passed (plus the slack)`)
    const bytes = proposer.chain.app.encodeBlock(block)
    for (const n of nodes) {
      assert.ok(
        await n.chain.app.validateBlock(n.chain.app.decodeBlock(bytes), height, round),
        `node ${n.who.did.slice(-6)} accepts the round-${round} proposal (time +${block.header.time - parentTime} ms)`,
      )
    }
  } finally {
    await closeAll(nodes)
  }
})

test('a restarted app resumes at its committed head with the same state root', async () => {
  const nodes = await network()
  try {
    for (let i = 0; i < 3; i++) await step(nodes)
    const n = nodes[0] as { who: Actor; chain: TestChain }
    const head = n.chain.app.head
    await n.chain.close()
    const reopened = await openTestChain(genesis, n.who, n.chain.dir)
    assert.equal(reopened.app.head.height, 3)
    assert.ok(equals(reopened.app.head.stateRoot, head.stateRoot))
    n.chain = reopened
    await step(nodes)
    assert.equal(reopened.app.head.height, 4)
  } finally {
    await closeAll(nodes)
  }
})

test('sync: a fresh node verifies fetched blocks against each height’s validator set', async () => {
  const nodes = await network()
  const fresh = await openTestChain(genesis, undefined)
  try {
    for (const n of nodes) n.chain.mempool.add(transfer(0n, 7n), n.chain.app.state)
    for (let i = 0; i < 4; i++) await step(nodes)
    const source = (nodes[0] as { chain: TestChain }).chain.app
    fresh.clock.advance(10_000)
    for (let h = 1; h <= 4; h++) {
      const block = (await source.getBlock(h)) as Block
      const cert = await source.getCommit(h)
      assert.ok(cert)
      if (h === 3) {
        // A forged certificate (signatures by non-validators) is refused.
        const outsiders = [actor(), actor(), actor()]
        await assert.rejects(fresh.app.applySynced(block, certify(block, cert.blockId, outsiders)), BlockError)
      }
      await fresh.app.applySynced(block, cert)
    }
    assert.ok(equals(fresh.app.head.stateRoot, source.head.stateRoot))
    assert.equal(balanceOf(fresh.app.state, bob.did), 7n)
  } finally {
    await fresh.close()
    await removeDir(fresh.dir)
    await closeAll(nodes)
  }
})

test('double-sign evidence submitted in a block slashes and jails the offender on every node', async () => {
  const nodes = await network()
  try {
    await step(nodes)
    const offender = validators[3] as Actor
    const vote = { chainId: genesis.chainId, height: 1, round: 0, type: 'prevote' as const, validator: offender.did }
    const a = signVote(offender.key, { ...vote, blockId: new Uint8Array(32).fill(1) })
    const b = signVote(offender.key, { ...vote, blockId: new Uint8Array(32).fill(2) })
    const evidence = encodeTx(
      signTx(alice.key, { chainId: genesis.chainId, nonce: 0n, fee: 1n, kind: 'staking.evidence', body: { a, b } }),
    )
    for (const n of nodes) n.chain.mempool.add(evidence, n.chain.app.state)
    await step(nodes)
    for (const n of nodes) {
      const record = validatorRecord(n.chain.app.state, offender.did)
      assert.equal(record?.bonded, 9_500n)
      assert.equal(record?.tombstoned, true)
    }
  } finally {
    await closeAll(nodes)
  }
})

test('epoch edges: the next validator set is kept with its proof, served after a restart, and checks against that block’s state root', async () => {
  const solo = validators[0] as Actor
  const short = makeGenesis([solo], [[alice, 1_000n]], { epochLength: 2 })
  let chain = await openTestChain(short, solo)
  const dir = chain.dir
  try {
    for (let height = 1; height <= 5; height++) {
      chain.clock.advance(1_000)
      const block = await chain.app.createBlock(height, 0)
      await chain.app.commit(block, certify(block, chain.app.blockId(block), [solo]))
    }
    assert.deepEqual(retainedProofKeys(3, short.params), [], 'only epoch edges')
    assert.deepEqual(retainedProofKeys(4, short.params), [validatorSetKey(2)])
    await chain.close()
    chain = await openTestChain(short, solo, dir)
    for (const [edge, epoch] of [
      [2, 1],
      [4, 2],
    ] as const) {
      const kept = await chain.app.provenAt(edge, validatorSetKey(epoch))
      const header = (await chain.app.getBlock(edge))?.header
      assert.ok(kept !== undefined && header !== undefined, `height ${edge} kept its proof`)
      assert.ok(equals(kept.root, header.stateRoot))
      assert.ok(verifyProof(header.stateRoot, validatorSetKey(epoch), kept.value, kept.proof), `set ${epoch} proven`)
      assert.deepEqual(
        validatorSetFromValue(kept.value as Uint8Array).validators.map((v) => v.did),
        [solo.did],
      )
    }
    assert.equal(await chain.app.provenAt(3, validatorSetKey(2)), undefined, 'nothing kept between edges')
    const live = await chain.app.provenAt(5, validatorSetKey(3))
    assert.ok(live !== undefined && equals(live.root, chain.app.head.stateRoot), 'the head proves anything')
    assert.equal(await chain.app.provenAt(6, validatorSetKey(3)), undefined, 'no future')
  } finally {
    await chain.close()
    await removeDir(dir)
  }
})

test('a node whose clock is behind refuses a proposal from its future, and follows the same block once it is committed', async () => {
  const nodes = await network()
  try {
    await step(nodes)
    const height = 2
    const { proposer, other: behind } = proposerAndOther(nodes, height)
    // everybody's clock moves 1 s, the proposer's (and the rest's) 20 s more: `behind` is 20 s slow
    for (const n of nodes) n.chain.clock.advance(n === behind ? 1_000 : 21_000)
    const block = await proposer.chain.app.createBlock(height, 0)
    const bytes = proposer.chain.app.encodeBlock(block)
    const received = behind.chain.app.decodeBlock(bytes)
    assert.equal(await behind.chain.app.validateBlock(received, height, 0), false, 'as a proposal: too far ahead')
    await assert.rejects(behind.chain.app.checkBlock(received, height, 0), /too far in the future/)
    assert.equal(
      await behind.chain.app.validateBlock(received, height, 0, { committed: true }),
      true,
      'with a commit certificate its own clock does not judge it',
    )
    // the other rules still hold for a committed block
    const wrongRound = behind.chain.app.decodeBlock(bytes)
    await assert.rejects(behind.chain.app.checkBlock(wrongRound, height + 1, 0, { committed: true }), BlockError)
    const cert = certify(block, proposer.chain.app.blockId(block), validators.slice(0, 3))
    await behind.chain.app.commit(received, cert)
    assert.equal(behind.chain.app.head.height, height)
  } finally {
    await closeAll(nodes)
  }
})

/** A manual clock that moves `stepMs` on each time it is read: building that takes time. */
class SteppingClock extends ManualClock {
  stepMs = 0
  override now(): number {
    const t = super.now()
    if (this.stepMs > 0) this.advance(this.stepMs)
    return t
  }
}

test('a proposal closes once its build budget is spent, and what is left goes into the next block', async () => {
  const nodes = await Promise.all(
    validators.map(async (who) => ({
      who,
      chain: await openTestChain(genesis, who, undefined, new SteppingClock(genesis.genesisTime + 1_000)),
    })),
  )
  try {
    const txs = Array.from({ length: 60 }, (_, n) => transfer(BigInt(n), 1n))
    for (const n of nodes) for (const tx of txs) n.chain.mempool.add(tx, n.chain.app.state)
    const { proposer } = proposerAndOther(nodes, 1)
    for (const n of nodes) n.chain.clock.advance(1_000)
    const clock = proposer.chain.clock as SteppingClock
    // each look at the clock finds 100 ms more gone: the 250 ms of round 0 are spent after a few
    assert.equal(proposalBuildMs(genesis.params, 0), 250)
    clock.stepMs = 100
    const first = await proposer.chain.app.createBlock(1, 0)
    clock.stepMs = 0
    assert.ok(first.txs.length > 0 && first.txs.length < txs.length, `${first.txs.length} of ${txs.length} taken`)
    const id = proposer.chain.app.blockId(first)
    const bytes = proposer.chain.app.encodeBlock(first)
    for (const n of nodes) assert.ok(await n.chain.app.validateBlock(n.chain.app.decodeBlock(bytes), 1, 0))
    const cert = certify(first, id, validators.slice(0, 3))
    for (const n of nodes) await n.chain.app.commit(n.chain.app.decodeBlock(bytes), cert)
    for (const n of nodes) assert.equal(n.chain.mempool.size, txs.length - first.txs.length, 'the rest still pending')
    const second = await step(nodes)
    assert.equal(second.txs.length, txs.length - first.txs.length, 'a clock that stands still takes them all')
    for (const n of nodes) assert.equal(balanceOf(n.chain.app.state, bob.did), BigInt(txs.length))
  } finally {
    await closeAll(nodes)
  }
})
