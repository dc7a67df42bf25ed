// The fl chain module against the real state machine (bank, staking, fl): tasks and their
// escrow, joining until full, roles drawn per round, updates and votes with each refusal reason,
// passed and failed rounds (pay, slashes, the next global model), finishing and cancelling, the
// governed bounds. Adversarial cases: test/attacks/fl-chain.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { balanceOf, totalSupply } from '../../bank/bank.ts'
import { writeGoverned } from '../../governance/params.ts'
import {
  escrowBalance,
  listParticipants,
  listRounds,
  listTasks,
  readCid,
  readParticipant,
  readRound,
  readTask,
  readUpdate,
  readVote,
  roundUpdates,
} from './state.ts'
import { modelByCid, modelByName, MODELS, type ModelSpec } from '../../inference/chain/state.ts'
import { modelLineage } from '../../inference/chain/lineage.ts'
import { registerModel } from '../../inference/chain/registry.ts'
import { DEFAULT_PARAMS } from '../../chain/genesis.ts'
import { MAX_LINEAGE_CONTRIBUTORS } from './market.ts'
import {
  BALANCE,
  BOND,
  POOL,
  advanceTo,
  block,
  byDid,
  createTask,
  joinAll,
  model,
  onnx,
  refusedTx,
  runRounds,
  terms,
  tx,
  updateBody,
  uploadAll,
  voteAll,
  voteBody,
  world,
} from './test-kit.ts'

test('create escrows the pool and opens the task; its terms are checked, the rule’s condition included', () => {
  const w = world()
  const id = createTask(w)
  assert.equal(id, 1)
  const task = readTask(w.state, id)
  assert.equal(task?.status, 'open')
  assert.equal(task?.remaining, POOL)
  assert.deepEqual(task?.global, model('initial'))
  assert.equal(balanceOf(w.state, w.creator.did), BALANCE - 1n - POOL)
  assert.equal(escrowBalance(w.state), POOL)
  assert.deepEqual(readCid(w.state, model('initial').cid), {
    task: 1,
    round: 0,
    kind: 'initial',
    did: w.creator.did,
    bytes: 0,
  })
  // Krum with f = 3 needs 9 proposers: 12 participants with 4 voters leave 8
  refusedTx(w, w.creator, 'fl.create', terms({ voters: 4 }), 'malformed', /krum needs n ≥ 2f \+ 3|krum/)
  refusedTx(w, w.creator, 'fl.create', terms({ rule: 'bulyan', f: 2 }), 'malformed', /bulyan/)
  refusedTx(w, w.creator, 'fl.create', terms({ rule: 'sum' }), 'malformed', /rule/)
  refusedTx(w, w.creator, 'fl.create', terms({ voters: 2 }), 'malformed', /voters/)
  refusedTx(w, w.creator, 'fl.create', terms({ participants: 65 }), 'malformed', /participants/)
  refusedTx(w, w.creator, 'fl.create', terms({ widths: [64, 4096, 10] }), 'malformed', /parameters/)
  refusedTx(w, w.creator, 'fl.create', terms({ initial: { cid: 'nope', digest: 'ab' } }), 'malformed')
  refusedTx(w, w.creator, 'fl.create', terms({ extra: 1 }), 'malformed', /unknown field/)
  refusedTx(w, w.creator, 'fl.create', terms({ pool: 999 }), 'pool-too-small')
  refusedTx(w, w.creator, 'fl.create', terms({ uploadBlocks: 300, voteBlocks: 301 }), 'round-too-long')
  writeGoverned(w.state, 'fl.minRewardPool', 50_000n)
  writeGoverned(w.state, 'fl.maxRoundBlocks', 6n)
  refusedTx(w, w.creator, 'fl.create', terms(), 'pool-too-small', /50000/)
  refusedTx(w, w.creator, 'fl.create', terms({ pool: 50_000 }), 'round-too-long', /fl.maxRoundBlocks/)
  assert.equal(createTask(w, { pool: 50_000, uploadBlocks: 3, voteBlocks: 3 }), 2)
  assert.deepEqual(
    listTasks(w.state).map((t) => t.id),
    [2, 1],
  )
})

test('joining escrows the bond; the join that fills the task opens round 1 at the end of the next block', () => {
  const w = world()
  const id = createTask(w)
  const [a, b] = w.clients as [(typeof w.clients)[0], (typeof w.clients)[0]]
  refusedTx(w, a, 'fl.join', { task: id, bond: BOND - 1n }, 'bad-bond')
  refusedTx(w, a, 'fl.join', { task: 9, bond: BOND }, 'unknown-task')
  tx(w, a, 'fl.join', { task: id, bond: BOND })
  assert.equal(balanceOf(w.state, a.did), BALANCE - 3n - BOND, 'three fees and the bond')
  refusedTx(w, a, 'fl.join', { task: id, bond: BOND }, 'already-joined')
  assert.equal(readTask(w.state, id)?.joined, 1)
  const fill = block(
    w,
    w.clients.slice(1).map((c) => [c, 'fl.join', { task: id, bond: BOND }]),
  )
  assert.equal(fill.filter((e) => e.type === 'fl.joined').length, 11)
  const filledAt = w.height
  assert.equal(readTask(w.state, id)?.status, 'open', 'the round opens at the end of the next block')
  refusedTx(w, w.outsider, 'fl.join', { task: id, bond: BOND }, 'task-full')
  refusedTx(w, b, 'fl.join', { task: id, bond: BOND }, 'not-open')
  const round = readRound(w.state, id, 1)
  assert.ok(round !== undefined)
  assert.equal(round.start, filledAt + 1)
  assert.equal(round.uploadEnd, filledAt + 1 + 4)
  assert.equal(round.voteEnd, filledAt + 1 + 8)
  assert.equal(round.voters.length, 3)
  assert.equal(round.proposers.length, 9)
  assert.deepEqual([...round.voters, ...round.proposers].sort(), w.clients.map((c) => c.did).sort())
  assert.equal(readTask(w.state, id)?.status, 'running')
  assert.equal(escrowBalance(w.state), POOL + 12n * BOND)
})

test('a passed round: the aggregate becomes the global model, proposers and agreeing voters share the round’s pay, excluded proposers are slashed', () => {
  const w = world()
  const id = createTask(w)
  const round = joinAll(w, id)
  uploadAll(w, round)
  assert.equal(roundUpdates(w.state, readRound(w.state, id, 1)!).length, 9)
  const aggregate = model('aggregate r1')
  const excluded = round.proposers.slice(0, 2)
  const [v0, v1, v2] = round.voters as [string, string, string]
  const supply = totalSupply(w.state)
  voteAll(w, round, [
    [v0, voteBody(round, aggregate, { excluded, accuracyPpm: 910_000 })],
    [v1, voteBody(round, aggregate, { excluded: [...excluded].reverse(), accuracyPpm: 870_000 })],
    // a dissenting voter: another aggregate, so it is not paid
    [v2, voteBody(round, model('other'), { accuracyPpm: 990_000 })],
  ])
  const before = new Map(w.clients.map((c) => [c.did, balanceOf(w.state, c.did)]))
  const events = advanceTo(w, round.voteEnd)
  const settled = events.find((e) => e.type === 'fl.settled')
  assert.equal(settled?.attributes.status, 'passed')
  const r1 = readRound(w.state, id, 1)
  assert.equal(r1?.status, 'passed')
  assert.deepEqual(r1?.aggregate, aggregate)
  assert.equal(r1?.majority, 2)
  assert.equal(r1?.accuracyPpm, 870_000, 'the lower median of the majority')
  assert.deepEqual(r1?.excluded, excluded)
  // pay = 12 000 / 3 rounds = 4 000 for 7 proposers + 2 voters: 444 each, 4 left in the pool
  assert.equal(r1?.pay, 4_000n)
  assert.equal(r1?.payouts?.length, 9)
  assert.ok(r1?.payouts?.every((p) => p.amount === 444n))
  for (const did of [...round.proposers.slice(2), v0, v1])
    assert.equal(balanceOf(w.state, did), before.get(did)! + 444n)
  for (const did of [...excluded, v2]) assert.equal(balanceOf(w.state, did), before.get(did))
  for (const did of excluded) {
    const p = readParticipant(w.state, id, did)
    assert.equal(p?.bond, 500n, 'half the bond slashed')
    assert.equal(p?.slashed, 500n)
    assert.equal(p?.excluded, 1)
  }
  assert.equal(totalSupply(w.state), supply - 1_000n, 'slashed bond is burned')
  const task = readTask(w.state, id)
  assert.deepEqual(task?.global, aggregate)
  assert.equal(task?.remaining, POOL - 9n * 444n)
  assert.equal(task?.slashed, 1_000n)
  assert.equal(escrowBalance(w.state), task!.remaining + 12n * BOND - 1_000n)
  // round 2 opened at once, from the new global model, with roles drawn again
  const r2 = readRound(w.state, id, 2)
  assert.equal(r2?.start, round.voteEnd)
  assert.deepEqual(r2?.base, aggregate)
  assert.notEqual(r2?.seed, round.seed)
})

test('a failed round pays nothing and slashes its proposers and the voters who approved', () => {
  const w = world()
  const id = createTask(w)
  const round = joinAll(w, id)
  uploadAll(w, round, round.proposers.slice(0, 8)) // one proposer never uploads: slashed all the same
  const [v0, v1, v2] = round.voters as [string, string, string]
  voteAll(w, round, [
    [v0, voteBody(round, model('a'))],
    [v1, voteBody(round, model('b'))],
    [v2, voteBody(round, undefined, { accuracyPpm: 100_000 })],
  ])
  const events = advanceTo(w, round.voteEnd)
  assert.equal(events.find((e) => e.type === 'fl.settled')?.attributes.status, 'failed')
  const slashed = events.filter((e) => e.type === 'fl.slashed')
  assert.deepEqual(slashed.map((e) => e.attributes.did).sort(), [...round.proposers, v0, v1].sort())
  assert.equal(slashed.filter((e) => e.attributes.reason === 'approved-failed-round').length, 2)
  assert.equal(readParticipant(w.state, id, v2)?.bond, BOND, 'the voter who rejected keeps its bond')
  const task = readTask(w.state, id)
  assert.equal(task?.remaining, POOL, 'nothing paid')
  assert.deepEqual(task?.global, model('initial'), 'the global model stays')
  assert.equal(readRound(w.state, id, 1)?.status, 'failed')
})

test('the last round finishes the task: remaining bonds back to the participants, the pool’s rest to the creator', () => {
  const w = world()
  const id = createTask(w, { rounds: 2 })
  const creatorBefore = balanceOf(w.state, w.creator.did)
  let round = joinAll(w, id)
  for (let r = 1; r <= 2; r++) {
    uploadAll(w, round)
    const agg = model(`agg ${r}`)
    voteAll(
      w,
      round,
      round.voters.map((did) => [did, voteBody(round, agg)]),
    )
    const events = advanceTo(w, round.voteEnd)
    assert.equal(events.find((e) => e.type === 'fl.settled')?.attributes.status, 'passed')
    if (r === 2) assert.ok(events.some((e) => e.type === 'fl.finished'))
    else round = readRound(w.state, id, 2)!
  }
  const task = readTask(w.state, id)
  assert.equal(task?.status, 'finished')
  assert.equal(task?.round, 2)
  assert.deepEqual(task?.global, model('agg 2'))
  assert.equal(task?.remaining, 0n)
  // 6 000 per round to 12: 500 each, nothing left over
  assert.equal(task?.paid, POOL)
  assert.equal(balanceOf(w.state, w.creator.did), creatorBefore)
  assert.equal(escrowBalance(w.state), 0n)
  for (const p of listParticipants(w.state, id)) {
    assert.equal(p.bond, 0n)
    assert.equal(p.returned, BOND)
    assert.equal(p.paid, 1_000n)
  }
  assert.deepEqual(
    listRounds(w.state, task!).map((r) => r.status),
    ['passed', 'passed'],
  )
  // nothing more is due: the chain goes on quietly
  advanceTo(w, w.height + 20)
  assert.equal(readTask(w.state, id)?.status, 'finished')
})

test('a task not filled within its join window is cancelled: pool and bonds returned', () => {
  const w = world()
  const id = createTask(w, { joinBlocks: 5 })
  const joiners = w.clients.slice(0, 5)
  block(
    w,
    joiners.map((c) => [c, 'fl.join', { task: id, bond: BOND }]),
  )
  const events = advanceTo(w, 1 + 5)
  assert.ok(events.some((e) => e.type === 'fl.cancelled'))
  assert.equal(readTask(w.state, id)?.status, 'cancelled')
  assert.equal(escrowBalance(w.state), 0n)
  assert.equal(balanceOf(w.state, w.creator.did), BALANCE - 1n)
  for (const c of joiners) assert.equal(balanceOf(w.state, c.did), BALANCE - 1n)
  refusedTx(w, w.clients[6]!, 'fl.join', { task: id, bond: BOND }, 'not-open')
})

test('updates: only the round’s proposers, once, inside the upload window, within the size limit', () => {
  const w = world()
  const id = createTask(w, { uploadBlocks: 8 })
  const round = joinAll(w, id)
  const proposer = byDid(w, round.proposers[0]!)
  const voter = byDid(w, round.voters[0]!)
  refusedTx(w, w.outsider, 'fl.update', updateBody(id, 1, 'x'), 'not-participant')
  refusedTx(w, voter, 'fl.update', updateBody(id, 1, 'x'), 'not-proposer')
  refusedTx(w, proposer, 'fl.update', updateBody(id, 2, 'x'), 'wrong-round')
  refusedTx(w, proposer, 'fl.update', updateBody(id, 1, 'x', { bytes: 256 * 1024 + 1 }), 'too-large')
  refusedTx(w, proposer, 'fl.update', updateBody(id, 1, 'x', { digest: 'XY' }), 'malformed', /digest/)
  refusedTx(w, proposer, 'fl.update', updateBody(id, 1, 'initial'), 'duplicate-cid')
  tx(w, proposer, 'fl.update', updateBody(id, 1, 'mine'))
  assert.equal(readUpdate(w.state, id, 1, proposer.did)?.cid, updateBody(id, 1, 'mine').cid)
  assert.equal(readCid(w.state, updateBody(id, 1, 'mine').cid)?.kind, 'update')
  assert.equal(readParticipant(w.state, id, proposer.did)?.proposed, 1)
  refusedTx(w, proposer, 'fl.update', updateBody(id, 1, 'again'), 'duplicate-update')
  advanceTo(w, round.uploadEnd)
  refusedTx(w, byDid(w, round.proposers[1]!), 'fl.update', updateBody(id, 1, 'late'), 'upload-closed')
})

test('votes: only the round’s voters, once, after the upload window, excluding only proposers with an update', () => {
  const w = world()
  const id = createTask(w, { voteBlocks: 12 })
  const round = joinAll(w, id)
  uploadAll(w, round, round.proposers.slice(0, 8))
  const voter = byDid(w, round.voters[0]!)
  const agg = model('agg')
  refusedTx(w, voter, 'fl.vote', voteBody(round, agg), 'too-early')
  advanceTo(w, round.uploadEnd)
  refusedTx(w, byDid(w, round.proposers[0]!), 'fl.vote', voteBody(round, agg), 'not-voter')
  refusedTx(w, w.outsider, 'fl.vote', voteBody(round, agg), 'not-participant')
  refusedTx(w, voter, 'fl.vote', voteBody(round, agg, { excluded: [round.proposers[8]] }), 'bad-excluded')
  refusedTx(w, voter, 'fl.vote', voteBody(round, agg, { excluded: [round.voters[1]] }), 'bad-excluded')
  refusedTx(w, voter, 'fl.vote', voteBody(round, undefined, { approve: true }), 'malformed', /aggregate/)
  refusedTx(w, voter, 'fl.vote', voteBody(round, agg, { accuracyPpm: 1_000_001 }), 'malformed')
  tx(w, voter, 'fl.vote', voteBody(round, agg, { excluded: [round.proposers[3], round.proposers[1]] }))
  assert.deepEqual(readVote(w.state, id, 1, voter.did)?.excluded, [round.proposers[1], round.proposers[3]])
  assert.equal(readCid(w.state, agg.cid)?.kind, 'aggregate')
  refusedTx(w, voter, 'fl.vote', voteBody(round, agg), 'duplicate-vote')
  assert.equal(readParticipant(w.state, id, voter.did)?.voted, 1)
})

test('roles are drawn afresh each round from the opening block: over rounds everyone both proposes and votes', () => {
  const w = world()
  const id = createTask(w, { rounds: 6 })
  let round = joinAll(w, id)
  const voted = new Set<string>()
  for (let r = 1; r <= 6; r++) {
    round.voters.forEach((d) => voted.add(d))
    advanceTo(w, round.voteEnd)
    if (r < 6) round = readRound(w.state, id, r + 1)!
  }
  assert.ok(voted.size >= 8, `${voted.size} distinct voters in 6 rounds`)
})

// ---- into the market -----------------------------------------------------------------------------

const DEPOSIT = DEFAULT_PARAMS.modelDeposit

test('a task with a price: its global model enters the market after the final round, with its lineage', () => {
  const w = world()
  const id = createTask(w, { rounds: 2, price: 7 })
  const task = readTask(w.state, id)!
  assert.equal(task.price, 7n)
  assert.equal(task.deposit, DEPOSIT)
  assert.equal(escrowBalance(w.state), POOL + DEPOSIT, 'the deposit is escrowed with the pool')
  const creatorBefore = balanceOf(w.state, w.creator.did)
  const round = joinAll(w, id)
  // round 1 passes: nothing is registered yet, the task tracks the export the majority agreed on
  uploadAll(w, round)
  voteAll(
    w,
    round,
    round.voters.map((did) => [did, voteBody(round, model('agg 1'), { onnx: onnx('agg 1') })]),
  )
  const first = advanceTo(w, round.voteEnd)
  assert.equal(first.find((e) => e.type === 'fl.settled')?.attributes.onnx, onnx('agg 1').cid)
  assert.deepEqual(readRound(w.state, id, 1)?.onnx, onnx('agg 1'))
  assert.deepEqual(readTask(w.state, id)?.onnx, onnx('agg 1'))
  assert.equal(modelByCid(w.state, onnx('agg 1').cid), undefined, 'registered only when the task finishes')
  const events = runRounds(w, readRound(w.state, id, 2)!)
  const registered = events.find((e) => e.type === 'fl.registered')
  assert.deepEqual(registered?.attributes, {
    task: String(id),
    name: 'digits',
    version: `fl-${id}`,
    cid: onnx('agg 2').cid,
    round: '2',
  })
  assert.ok(events.findIndex((e) => e.type === 'fl.registered') < events.findIndex((e) => e.type === 'fl.finished'))
  const record = modelByCid(w.state, onnx('agg 2').cid)
  assert.equal(record?.name, 'digits')
  assert.equal(record?.version, `fl-${id}`)
  assert.equal(record?.owner, w.creator.did)
  assert.equal(record?.price, 7n)
  assert.equal(record?.deposit, DEPOSIT)
  assert.equal(record?.size, 9_000)
  assert.equal(record?.kind, 'tensor')
  assert.deepEqual(record?.inputs, [{ name: 'input', type: 'float32', dims: [null, 64] }])
  assert.deepEqual(record?.outputs, [{ name: 'probabilities', type: 'float32', dims: [null, 10] }])
  assert.equal(modelByName(w.state, 'digits')?.cid, onnx('agg 2').cid)
  const lineage = modelLineage(w.state, onnx('agg 2').cid)
  assert.equal(lineage?.source, 'fl')
  assert.equal(lineage?.task, String(id))
  assert.equal(lineage?.round, 2)
  assert.equal(lineage?.parent, model('initial').cid)
  assert.deepEqual(lineage?.contributors[0], { did: w.creator.did, role: 'creator' })
  // everyone was paid 1 000 (two rounds of 6 000 for 12): all twelve, by DID, each once
  const rest = lineage!.contributors.slice(1)
  assert.deepEqual(
    rest.map((c) => c.did),
    w.clients.map((c) => c.did).sort(),
  )
  const proposedOnce = new Set([1, 2].flatMap((r) => readRound(w.state, id, r)!.proposers))
  for (const c of rest) assert.equal(c.role, proposedOnce.has(c.did) ? 'trainer' : 'validator')
  assert.ok(lineage!.contributors.length <= MAX_LINEAGE_CONTRIBUTORS)
  const after = readTask(w.state, id)!
  assert.deepEqual(after.model, {
    cid: onnx('agg 2').cid,
    name: 'digits',
    version: `fl-${id}`,
    round: 2,
    registered: true,
  })
  // the deposit stays with the model; the escrow is empty
  assert.equal(balanceOf(w.state, w.creator.did), creatorBefore)
  assert.equal(escrowBalance(w.state), 0n)
})

test('a vote naming another ONNX export than the majority’s disagrees with it; three different exports fail the round', () => {
  const w = world()
  const id = createTask(w, { rounds: 2, price: 7 })
  const round = joinAll(w, id)
  uploadAll(w, round)
  const agg = model('agg 1')
  const [v0, v1, v2] = round.voters as [string, string, string]
  voteAll(w, round, [
    [v0, voteBody(round, agg, { onnx: onnx('agg 1') })],
    [v1, voteBody(round, agg, { onnx: onnx('agg 1') })],
    // the same aggregate, another export: not the majority's
    [v2, voteBody(round, agg, { onnx: onnx('forged') })],
  ])
  const before = balanceOf(w.state, v2)
  assert.deepEqual(readVote(w.state, id, 1, v2)?.onnx, onnx('forged'))
  advanceTo(w, round.voteEnd)
  const r1 = readRound(w.state, id, 1)!
  assert.equal(r1.status, 'passed')
  assert.equal(r1.majority, 2)
  assert.deepEqual(r1.onnx, onnx('agg 1'))
  assert.ok(!r1.payouts!.some((p) => p.did === v2), 'the dissenting voter is not paid')
  assert.equal(balanceOf(w.state, v2), before)
  assert.equal(readParticipant(w.state, id, v2)?.slashed, 0n, 'a dissent in a passed round is not slashed')

  // round 2: one aggregate, three exports (one of them a size lie): no majority, the approvers are slashed
  const r2 = readRound(w.state, id, 2)!
  uploadAll(w, r2)
  const agg2 = model('agg 2')
  const [a, b, c] = r2.voters as [string, string, string]
  voteAll(w, r2, [
    [a, voteBody(r2, agg2, { onnx: onnx('agg 2') })],
    [b, voteBody(r2, agg2, { onnx: onnx('agg 2', 9_001) })],
    [c, voteBody(r2, agg2)],
  ])
  const events = advanceTo(w, r2.voteEnd)
  assert.equal(events.find((e) => e.type === 'fl.settled')?.attributes.status, 'failed')
  for (const did of [a, b, c]) assert.ok(readParticipant(w.state, id, did)!.slashed > 0n)
  // the task finished on round 1's global model and its export
  const registered = events.find((e) => e.type === 'fl.registered')
  assert.equal(registered?.attributes.cid, onnx('agg 1').cid)
  assert.equal(registered?.attributes.round, '1')
  assert.equal(modelLineage(w.state, onnx('agg 1').cid)?.round, 1)
})

test('registration failure (the name is taken): only the event and the task’s record change; the deposit returns', () => {
  const w = world()
  const id = createTask(w, { rounds: 1, price: 7 })
  const creatorBefore = balanceOf(w.state, w.creator.did)
  // meanwhile the name is registered by someone else
  const spec: ModelSpec = {
    cid: model('squatter').cid,
    name: 'digits',
    version: 'v1',
    price: 1n,
    kind: 'tensor',
    inputs: [{ name: 'input', type: 'float32', dims: [null, 64] }],
    outputs: [{ name: 'probabilities', type: 'float32', dims: [null, 10] }],
    tolerance: { maxAbsPpm: 10_000, top1: true },
    size: 100,
  }
  registerModel(w.state, w.outsider.did, spec, w.height, DEPOSIT)
  const modelsBefore = MODELS.list(w.state).sort()
  const events = runRounds(w, joinAll(w, id))
  const failed = events.find((e) => e.type === 'fl.notRegistered')
  assert.equal(failed?.attributes.reason, 'name-taken')
  assert.equal(failed?.attributes.cid, onnx('agg 1').cid)
  assert.ok(!events.some((e) => e.type === 'fl.registered'))
  assert.ok(
    events.some((e) => e.type === 'fl.finished'),
    'the task finishes all the same',
  )
  assert.deepEqual(MODELS.list(w.state).sort(), modelsBefore, 'the registry is unchanged')
  assert.equal(modelByCid(w.state, onnx('agg 1').cid), undefined)
  assert.equal(modelLineage(w.state, onnx('agg 1').cid), undefined)
  assert.equal(modelByName(w.state, 'digits')?.owner, w.outsider.did)
  const task = readTask(w.state, id)!
  assert.equal(task.status, 'finished')
  assert.deepEqual(task.model, {
    cid: onnx('agg 1').cid,
    name: 'digits',
    version: `fl-${id}`,
    round: 1,
    registered: false,
    reason: 'name-taken',
  })
  assert.equal(balanceOf(w.state, w.creator.did), creatorBefore + DEPOSIT, 'the deposit is returned')
  assert.equal(escrowBalance(w.state), 0n)
})

test('market entries: create checks the price and the name; no export, no pass or no price: nothing registered', () => {
  const w = world()
  refusedTx(w, w.creator, 'fl.create', terms({ price: 0 }), 'malformed', /price/)
  refusedTx(w, w.creator, 'fl.create', terms({ price: -1 }), 'malformed', /price/)
  const spec: ModelSpec = {
    cid: model('taken').cid,
    name: 'taken',
    version: 'v1',
    price: 1n,
    kind: 'tensor',
    inputs: [],
    outputs: [],
    tolerance: { maxAbsPpm: 0, top1: false },
    size: 1,
  }
  registerModel(w.state, w.outsider.did, spec, w.height, DEPOSIT)
  refusedTx(w, w.creator, 'fl.create', terms({ name: 'taken', price: 5 }), 'name-taken')
  assert.equal(createTask(w, { name: 'taken' }), 1, 'without a price the name is only the task’s')
  // the majority named no export: nothing to serve
  const w2 = world()
  const a = createTask(w2, { rounds: 1, price: 5 })
  const noOnnx = runRounds(w2, joinAll(w2, a), (r) => voteBody(r, model('agg')))
  assert.equal(noOnnx.find((e) => e.type === 'fl.notRegistered')?.attributes.reason, 'no-onnx')
  // no round passed: the global model is the initial one
  const w3 = world()
  const b = createTask(w3, { rounds: 1, price: 5 })
  const creatorBefore = balanceOf(w3.state, w3.creator.did)
  const none = runRounds(w3, joinAll(w3, b), (r) => voteBody(r, undefined))
  assert.equal(none.find((e) => e.type === 'fl.notRegistered')?.attributes.reason, 'no-global-model')
  assert.equal(balanceOf(w3.state, w3.creator.did), creatorBefore + POOL + DEPOSIT)
  // no price: no market event at all
  const w4 = world()
  const c = createTask(w4, { rounds: 1 })
  const plain = runRounds(w4, joinAll(w4, c))
  assert.ok(!plain.some((e) => e.type === 'fl.registered' || e.type === 'fl.notRegistered'))
  assert.equal(readTask(w4.state, c)?.model, undefined)
  // a cancelled task returns its deposit
  const w5 = world()
  const d = createTask(w5, { joinBlocks: 3, price: 5 })
  advanceTo(w5, 1 + 3)
  assert.equal(readTask(w5.state, d)?.status, 'cancelled')
  assert.equal(balanceOf(w5.state, w5.creator.did), BALANCE - 1n)
  assert.equal(escrowBalance(w5.state), 0n)
})

test('votes: an ONNX export names an aggregate’s, not the aggregate itself', () => {
  const w = world()
  const id = createTask(w, { voteBlocks: 8 })
  const round = joinAll(w, id)
  uploadAll(w, round)
  advanceTo(w, round.uploadEnd)
  const voter = byDid(w, round.voters[0]!)
  refusedTx(w, voter, 'fl.vote', voteBody(round, undefined, { onnx: onnx('x') }), 'malformed', /aggregate/)
  refusedTx(
    w,
    voter,
    'fl.vote',
    voteBody(round, model('x'), { onnx: { cid: model('x').cid, bytes: 10 } }),
    'malformed',
    /ONNX/,
  )
  refusedTx(w, voter, 'fl.vote', voteBody(round, model('x'), { onnx: onnx('x', 0) }), 'malformed', /onnx.bytes/)
  refusedTx(
    w,
    voter,
    'fl.vote',
    voteBody(round, model('x'), { onnx: onnx('x', 256 * 1024 + 1) }),
    'malformed',
    /onnx.bytes/,
  )
  refusedTx(w, voter, 'fl.vote', voteBody(round, model('x'), { onnx: { cid: 'nope', bytes: 1 } }), 'malformed')
  refusedTx(w, voter, 'fl.vote', voteBody(round, model('x'), { onnx: { ...onnx('x'), x: 1 } }), 'malformed')
  // an export whose CID the chain already names otherwise (here: the initial model) still counts
  tx(w, voter, 'fl.vote', voteBody(round, model('x'), { onnx: { cid: model('initial').cid, bytes: 10 } }))
  assert.equal(readVote(w.state, id, 1, voter.did)?.onnx?.cid, model('initial').cid)
  assert.equal(readCid(w.state, model('initial').cid)?.kind, 'initial', 'the first naming stands')
})
