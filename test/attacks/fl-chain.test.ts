// Attacks on the FL Alliance (issue 15, part 3), against the real fl module through a real state
// machine (bank, staking, fl, signed transactions) and the node's blob rules (src/node/fl.ts):
// an outsider's update, a proposer voting, a vote for a digest nobody can reproduce, an update
// blob over the limit, a second update in one round and a copied one, and the settlement
// arithmetic on random rounds (never more than the round's share of the pool, never more slashed
// than bonded). Into the market (part 4): a forged ONNX export beside the honest aggregate, a
// frontrunner naming the honest export's CID as its own aggregate, the node's export check, and
// market terms the chain refuses at `fl.create`. Each refused transaction costs its sender the fee
// and changes nothing else.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { balanceOf } from '../../src/bank/bank.ts'
import { settleRound, slashOf } from '../../src/fl/chain/settlement.ts'
import {
  escrowBalance,
  readCid,
  readParticipant,
  readRound,
  readTask,
  readUpdate,
  readVote,
  type VoteRecord,
} from '../../src/fl/chain/state.ts'
import {
  BOND,
  advanceTo,
  byDid,
  createTask,
  joinAll,
  model,
  refusedTx,
  runRounds,
  terms,
  tx,
  updateBody,
  uploadAll,
  voteAll,
  voteBody,
  world,
} from '../../src/fl/chain/test-kit.ts'
import { encodeModel, encodeOnnx, flBlobCid, sealUpdate } from '../../src/fl/blob.ts'
import { modelByCid } from '../../src/inference/chain/state.ts'
import { modelLineage } from '../../src/inference/chain/lineage.ts'
import { FlBlobRefusedError } from '../../src/api/fl-api.ts'
import { NodeFl } from '../../src/node/fl.ts'
import { weightsDigest } from '../../src/fl/weights.ts'
import { MAX_FL_BLOB_BYTES } from '../../src/fl/chain/decode.ts'
import { createRng, testSeed } from '../helpers/random.ts'

function nodeOver(w: ReturnType<typeof world>): { node: NodeFl; store: Map<string, Uint8Array> } {
  const store = new Map<string, Uint8Array>()
  const node = new NodeFl({
    chain: { state: () => w.state, height: () => w.height },
    files: {
      put: async (bytes) => {
        store.set(flBlobCid(bytes), bytes)
        return flBlobCid(bytes)
      },
      get: async (cid) => store.get(cid),
      fetch: async (cid) => {
        throw new Error(`no peer has ${cid}`)
      },
    },
    fetchTimeoutMs: 50,
  })
  return { node, store }
}

test('an outsider’s update is refused, names nothing on chain, and the node will not store its blob', async () => {
  const w = world()
  const id = createTask(w)
  const round = joinAll(w, id)
  const sealed = sealUpdate({
    task: id,
    round: 1,
    proposer: w.outsider.did,
    voters: round.voters,
    update: new Float32Array(2_410).fill(0.5),
  })
  const before = balanceOf(w.state, w.outsider.did)
  const body = { task: id, round: 1, cid: sealed.cid, digest: sealed.digest, bytes: sealed.bytes.length, samples: 100 }
  refusedTx(w, w.outsider, 'fl.update', body, 'not-participant')
  assert.equal(balanceOf(w.state, w.outsider.did), before - 1n, 'the fee only')
  assert.equal(readUpdate(w.state, id, 1, w.outsider.did), undefined)
  assert.equal(readCid(w.state, sealed.cid), undefined)
  assert.equal(readRound(w.state, id, 1)?.updates, 0)
  const { node, store } = nodeOver(w)
  await assert.rejects(
    node.putBlob(sealed.bytes),
    (err: unknown) => err instanceof FlBlobRefusedError && err.statusCode === 403,
  )
  assert.equal(store.size, 0)
  await assert.rejects(
    node.getBlob(sealed.cid),
    (err: unknown) => err instanceof FlBlobRefusedError && err.statusCode === 404,
  )
})

test('a proposer cannot vote, and a voter cannot propose', () => {
  const w = world()
  const id = createTask(w, { uploadBlocks: 6, voteBlocks: 6 })
  const round = joinAll(w, id)
  uploadAll(w, round)
  advanceTo(w, round.uploadEnd)
  const proposer = byDid(w, round.proposers[0]!)
  refusedTx(w, proposer, 'fl.vote', voteBody(round, model('mine')), 'not-voter')
  assert.equal(readVote(w.state, id, 1, proposer.did), undefined)
  assert.equal(readRound(w.state, id, 1)?.votes, 0)
  const voter = byDid(w, round.voters[0]!)
  refusedTx(w, voter, 'fl.update', updateBody(id, 1, 'voter update'), 'not-proposer')
})

test('a vote for a digest nobody can reproduce earns nothing; the node refuses a blob unlike its digest; a liar approving a failed round is slashed', async () => {
  const w = world()
  const id = createTask(w)
  const round = joinAll(w, id)
  uploadAll(w, round)
  const [honest1, honest2, liar] = round.voters as [string, string, string]
  const honest = model('the aggregate everyone computes')
  // the liar names an aggregate blob whose weights do not hash to the digest it votes for
  const forged = encodeModel({ task: id, round: 1, weights: new Float32Array(2_410).fill(1) })
  const lie = { cid: flBlobCid(forged), digest: weightsDigest(new Float32Array(2_410)) }
  voteAll(w, round, [
    [honest1, voteBody(round, honest)],
    [honest2, voteBody(round, honest)],
    [liar, voteBody(round, lie)],
  ])
  const { node, store } = nodeOver(w)
  await assert.rejects(
    node.putBlob(forged),
    (err: unknown) => err instanceof FlBlobRefusedError && err.statusCode === 400,
  )
  assert.equal(store.size, 0, 'a blob unlike the digest its vote names is not stored')
  const liarBefore = balanceOf(w.state, liar)
  advanceTo(w, round.voteEnd)
  const r1 = readRound(w.state, id, 1)
  assert.equal(r1?.status, 'passed')
  assert.deepEqual(r1?.aggregate, honest, 'the majority’s aggregate, not the lie')
  assert.equal(balanceOf(w.state, liar), liarBefore, 'the liar is not paid')
  assert.ok(r1?.payouts?.some((p) => p.did === honest1))
  assert.equal(readParticipant(w.state, id, liar)?.slashed, 0n, 'a dissent in a passed round is not slashed')

  // round 2: the honest voters are split by a lie that no majority backs: the round fails, and
  // every voter who approved something is slashed, the liar with them
  const r2 = readRound(w.state, id, 2)!
  uploadAll(w, r2)
  const [a, b, c] = r2.voters as [string, string, string]
  voteAll(w, r2, [
    [a, voteBody(r2, model('one'))],
    [b, voteBody(r2, lie)],
    [c, voteBody(r2, undefined, { accuracyPpm: 0 })],
  ])
  const events = advanceTo(w, r2.voteEnd)
  assert.equal(events.find((e) => e.type === 'fl.settled')?.attributes.status, 'failed')
  assert.ok(readParticipant(w.state, id, b)!.slashed > 0n, 'the lying voter is slashed')
  assert.ok(readParticipant(w.state, id, a)!.slashed > 0n)
  assert.equal(readParticipant(w.state, id, c)!.slashed, 0n, 'the voter who rejected is not')
})

test('an update blob over the limit: the transaction is refused, the node answers 413', async () => {
  const w = world()
  const id = createTask(w)
  const round = joinAll(w, id)
  const proposer = byDid(w, round.proposers[0]!)
  refusedTx(w, proposer, 'fl.update', updateBody(id, 1, 'huge', { bytes: MAX_FL_BLOB_BYTES + 1 }), 'too-large')
  assert.equal(readUpdate(w.state, id, 1, proposer.did), undefined)
  const { node } = nodeOver(w)
  await assert.rejects(
    node.putBlob(new Uint8Array(MAX_FL_BLOB_BYTES + 1)),
    (err: unknown) => err instanceof FlBlobRefusedError && err.statusCode === 413,
  )
  // a blob named with one size and uploaded with another is not the named blob
  const sealed = sealUpdate({
    task: id,
    round: 1,
    proposer: proposer.did,
    voters: round.voters,
    update: new Float32Array(2_410),
  })
  tx(w, proposer, 'fl.update', { task: id, round: 1, cid: sealed.cid, digest: sealed.digest, bytes: 10, samples: 1 })
  await assert.rejects(
    node.putBlob(sealed.bytes),
    (err: unknown) => err instanceof FlBlobRefusedError && err.statusCode === 403,
  )
})

test('a second update in one round is refused, and so is another proposer’s blob passed off as one’s own', async () => {
  const w = world()
  const id = createTask(w, { uploadBlocks: 8 })
  const round = joinAll(w, id)
  const [p0, p1] = [byDid(w, round.proposers[0]!), byDid(w, round.proposers[1]!)]
  const sealed = sealUpdate({
    task: id,
    round: 1,
    proposer: p0.did,
    voters: round.voters,
    update: new Float32Array(2_410).fill(0.1),
  })
  const body = { task: id, round: 1, cid: sealed.cid, digest: sealed.digest, bytes: sealed.bytes.length, samples: 80 }
  tx(w, p0, 'fl.update', body)
  const { node } = nodeOver(w)
  assert.equal((await node.putBlob(sealed.bytes)).kind, 'update')
  refusedTx(w, p0, 'fl.update', updateBody(id, 1, 'second'), 'duplicate-update')
  refusedTx(w, p1, 'fl.update', body, 'duplicate-cid')
  assert.equal(readUpdate(w.state, id, 1, p0.did)?.cid, sealed.cid)
  assert.equal(readUpdate(w.state, id, 1, p1.did), undefined)
  assert.equal(readRound(w.state, id, 1)?.updates, 1)
})

test('settlement on random rounds never pays more than the round’s share of the pool nor slashes more than the bond', () => {
  const rng = createRng(testSeed())
  const dids = Array.from({ length: 64 }, (_, i) => `did:key:z${String(i).padStart(3, '0')}`)
  for (let trial = 0; trial < 2_000; trial++) {
    const n = rng.int(4, 64)
    const voterCount = rng.int(3, n - 1)
    const order = [...dids.slice(0, n)].sort(() => rng.next() - 0.5)
    const voters = order.slice(0, voterCount)
    const proposers = order.slice(voterCount)
    const uploaded = new Set(proposers.filter(() => rng.next() < 0.9))
    const digests = ['a', 'b', 'c'].map((x) => model(x))
    const votes: Pick<VoteRecord, 'did' | 'approve' | 'aggregate' | 'accuracyPpm' | 'excluded'>[] = voters
      .filter(() => rng.next() < 0.9)
      .map((did) => {
        const approve = rng.next() < 0.8
        return {
          did,
          approve,
          ...(approve || rng.next() < 0.5 ? { aggregate: digests[rng.int(0, rng.next() < 0.7 ? 0 : 2)]! } : {}),
          accuracyPpm: rng.int(0, 1_000_000),
          excluded: [...uploaded].filter(() => rng.next() < 0.05),
        }
      })
    const pool = BigInt(rng.int(0, 10_000_000))
    const bonds = new Map(order.map((did) => [did, BigInt(rng.int(0, 5_000))]))
    const out = settleRound({
      pool,
      roundsLeft: rng.int(1, 20),
      proposers,
      voters,
      uploaded,
      votes,
      bonds,
      slashPpm: rng.int(0, 1_000_000),
    })
    const paid = out.payouts.reduce((s, p) => s + p.amount, 0n)
    const at = `seed ${rng.seed} trial ${trial}`
    assert.ok(out.pay <= pool, at)
    assert.ok(paid <= out.pay, `${at}: paid ${paid} > round pay ${out.pay}`)
    assert.equal(out.poolAfter, pool - paid, at)
    assert.ok(
      out.payouts.every((p) => p.amount >= 0n),
      at,
    )
    assert.equal(new Set(out.payouts.map((p) => p.did)).size, out.payouts.length, `${at}: nobody paid twice`)
    for (const s of out.slashes) assert.ok(s.amount > 0n && s.amount <= (bonds.get(s.did) ?? 0n), at)
    assert.equal(new Set(out.slashes.map((s) => s.did)).size, out.slashes.length, `${at}: nobody slashed twice`)
    if (!out.passed) assert.equal(paid, 0n, at)
    else {
      const paidSet = new Set(out.payouts.map((p) => p.did))
      assert.ok(
        out.slashes.every((s) => !paidSet.has(s.did)),
        `${at}: a slashed proposer is not paid`,
      )
      assert.ok(out.majority * 2 > voters.length, at)
    }
  }
  assert.equal(slashOf(1_000n, 500_000), 500n)
})

test('a whole task: the escrow always equals the pool left plus the bonds held, and ends at zero', () => {
  const w = world()
  const id = createTask(w, { rounds: 3 })
  let round = joinAll(w, id)
  const check = (): void => {
    const task = readTask(w.state, id)!
    const bonds = w.clients.reduce((s, c) => s + (readParticipant(w.state, id, c.did)?.bond ?? 0n), 0n)
    assert.equal(escrowBalance(w.state), task.remaining + bonds)
  }
  for (let r = 1; r <= 3; r++) {
    uploadAll(w, round)
    check()
    const excluded = r === 2 ? [round.proposers[0]] : []
    voteAll(
      w,
      round,
      round.voters.map((did, i) => [
        did,
        voteBody(round, i < 2 || r !== 3 ? model(`agg ${r}`) : undefined, { excluded }),
      ]),
    )
    advanceTo(w, round.voteEnd)
    check()
    if (r < 3) round = readRound(w.state, id, r + 1)!
  }
  assert.equal(readTask(w.state, id)?.status, 'finished')
  assert.equal(escrowBalance(w.state), 0n)
  assert.ok(w.clients.every((c) => readParticipant(w.state, id, c.did)!.bond === 0n))
  assert.equal(BOND, 1_000n)
})

test('a forged ONNX export earns nothing and is not stored; a frontrunner cannot block the honest export, which the market registers', async () => {
  const w = world()
  const id = createTask(w, { rounds: 1, price: 5 })
  const round = joinAll(w, id)
  uploadAll(w, round)
  const [honest1, honest2, liar] = round.voters as [string, string, string]
  const shape = { task: id, round: 1, widths: [64, 32, 10], inputDivisor: 16 }
  const weights = Float32Array.from({ length: 2_410 }, (_, i) => ((i % 97) - 48) / 1_000)
  const aggregateBlob = encodeModel({ task: id, round: 1, weights })
  const aggregate = { cid: flBlobCid(aggregateBlob), digest: weightsDigest(weights) }
  const exportBytes = encodeOnnx({ ...shape, weights })
  assert.deepEqual(exportBytes, encodeOnnx({ ...shape, weights: weights.slice() }), 'the export is deterministic')
  const honest = { cid: flBlobCid(exportBytes), bytes: exportBytes.length }
  // a real ONNX file, of other weights
  const forgedBytes = encodeOnnx({ ...shape, weights: new Float32Array(2_410).fill(0.25) })
  const forged = { cid: flBlobCid(forgedBytes), bytes: forgedBytes.length }
  advanceTo(w, round.uploadEnd)
  // the liar votes first: the honest export's CID as its aggregate (it can compute it too), a forged export
  tx(
    w,
    byDid(w, liar),
    'fl.vote',
    voteBody(round, { cid: honest.cid, digest: weightsDigest(new Float32Array(2_410)) }, { onnx: forged }),
  )
  // the honest voters' votes still stand
  tx(w, byDid(w, honest1), 'fl.vote', voteBody(round, aggregate, { onnx: honest }))
  tx(w, byDid(w, honest2), 'fl.vote', voteBody(round, aggregate, { onnx: honest }))
  assert.equal(readRound(w.state, id, 1)?.votes, 3)

  const { node, store } = nodeOver(w)
  await assert.rejects(
    node.putBlob(exportBytes),
    (err: unknown) => err instanceof FlBlobRefusedError && err.statusCode === 409,
    'the export waits for its aggregate',
  )
  assert.equal((await node.putBlob(aggregateBlob)).kind, 'aggregate')
  assert.deepEqual(await node.putBlob(exportBytes), { cid: honest.cid, bytes: honest.bytes, kind: 'onnx' })
  await assert.rejects(
    node.putBlob(forgedBytes),
    (err: unknown) => err instanceof FlBlobRefusedError && err.statusCode === 400,
    'the forged export is not the export of an aggregate its vote names',
  )
  assert.equal(store.has(forged.cid), false)
  assert.deepEqual(await node.getBlob(honest.cid), exportBytes, 'workers fetch the export by its CID')

  const events = advanceTo(w, round.voteEnd)
  const r1 = readRound(w.state, id, 1)!
  assert.equal(r1.status, 'passed')
  assert.equal(r1.majority, 2)
  assert.deepEqual(r1.onnx, honest)
  assert.equal(readParticipant(w.state, id, liar)?.paid, 0n, 'the liar is not paid')
  assert.ok(readParticipant(w.state, id, honest1)!.paid > 0n)
  assert.equal(events.find((e) => e.type === 'fl.registered')?.attributes.cid, honest.cid)
  assert.equal(modelByCid(w.state, honest.cid)?.size, exportBytes.length)
  assert.equal(modelByCid(w.state, forged.cid), undefined)
  const contributors = modelLineage(w.state, honest.cid)?.contributors ?? []
  assert.ok(contributors.some((c) => c.did === honest1))
  assert.ok(!contributors.some((c) => c.did === liar), 'an unpaid voter shares no usage fees')
})

test('market terms at fl.create: a price below the market’s minimum or zero change nothing but a fee; the deposit is escrowed until the end', () => {
  const w = world({ params: { minModelPrice: 10n } })
  const before = balanceOf(w.state, w.creator.did)
  refusedTx(w, w.creator, 'fl.create', terms({ price: 9 }), 'price-too-low')
  refusedTx(w, w.creator, 'fl.create', terms({ price: 0 }), 'malformed', /price/)
  refusedTx(w, w.creator, 'fl.create', terms({ price: 'ten' }), 'malformed', /price/)
  assert.equal(
    balanceOf(w.state, w.creator.did),
    before - 1n,
    'the refused one’s fee (malformed ones are not included)',
  )
  assert.equal(readTask(w.state, 1), undefined)
  assert.equal(escrowBalance(w.state), 0n)
  // a creator that cannot cover pool + deposit is refused before anything moves
  const poor = w.clients[0]!
  refusedTx(w, poor, 'fl.create', terms({ pool: 999_000, price: 10 }), 'insufficient-funds')
  const id = createTask(w, { rounds: 2, price: 10 })
  const deposit = readTask(w.state, id)!.deposit
  assert.ok(deposit > 0n)
  const round = joinAll(w, id)
  const check = (): void => {
    const task = readTask(w.state, id)!
    const bonds = w.clients.reduce((s, c) => s + (readParticipant(w.state, id, c.did)?.bond ?? 0n), 0n)
    assert.equal(escrowBalance(w.state), task.remaining + bonds + (task.status === 'finished' ? 0n : deposit))
  }
  check()
  runRounds(w, round)
  check()
  assert.equal(readTask(w.state, id)?.model?.registered, true)
  assert.equal(escrowBalance(w.state), 0n)
})
