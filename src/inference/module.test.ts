import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { toHex } from '../core/bytes.ts'
import { sha256 } from '../core/hash.ts'
import { cidOfBytes, RAW_CODE } from '../core/cid.ts'
import { merkleRoot } from '../core/merkle.ts'
import { decodeTx, encodeTx, signTx } from '../chain/tx.ts'
import { GenesisError, TxError } from '../chain/errors.ts'
import { StateMachine, type ChainEvent } from '../chain/host.ts'
import { StateOverlay } from '../chain/state-view.ts'
import { SparseMerkleTree } from '../chain/state/smt.ts'
import {
  genesisHash,
  genesisToJson,
  parseGenesis,
  DEFAULT_PARAMS,
  type GenesisDoc,
  type GenesisModel,
} from '../chain/genesis.ts'
import { bankModule, balanceOf, feeCollector, totalSupply } from '../bank/bank.ts'
import { stakingModule, validatorSetAt } from '../staking/staking.ts'
import { actor, makeGenesis, type Actor } from '../../test/helpers/chain.ts'
import { jobId, jobIdHex, receiptId, receiptValue, signJob, signReceipt, type Receipt, type SignedJob } from './job.ts'
import {
  auditDecision,
  auditOf,
  disputeOf,
  inclusionProof,
  inferenceModule,
  isSchedulable,
  listModels,
  listWorkers,
  modelByCid,
  modelByName,
  settleBatch,
  settlementOf,
  shouldAudit,
  treasuryBalance,
  verifyInclusion,
  workerRecord,
  workerUnbonding,
} from './module.ts'
import { writeWorker, newWorker } from './module-state.ts'
import { splitProRata, workerScore } from './rewards.ts'

const [val, owner, client, poor, outsider] = [actor(), actor(), actor(), actor(), actor()]
const workers = [actor(), actor(), actor(), actor(), actor(), actor()] as [Actor, Actor, Actor, Actor, Actor, Actor]
const [w1, w2, w3, w4, w5, w6] = workers
const T0 = 1_700_000_000_000
const PRICE = 100n
const OUT_A = sha256(new TextEncoder().encode('answer A'))
const OUT_B = sha256(new TextEncoder().encode('answer B'))
const OUT_C = sha256(new TextEncoder().encode('answer C'))

const params = {
  epochLength: 10,
  unbondingBlocks: 5,
  blockReward: 0n,
  minWorkerBond: 1_000n,
  protocolShareBps: 1_000,
  settleWindowMs: 60_000,
  auditReward: 5n,
  workerSlashBps: 1_000,
  challengerRewardBps: 5_000,
  quarantineBlocks: 50,
  workerRewardPerEpoch: 1_000n,
  recencyBlocks: 100,
}
const cid = (seed: string): string => cidOfBytes(new TextEncoder().encode(seed), RAW_CODE).toString()
const MODEL = cid('mnist-v1')

function modelBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cid: MODEL,
    name: 'mnist',
    version: '1',
    price: PRICE,
    kind: 'tensor',
    inputs: [{ name: 'x', type: 'float32', dims: [null, 784] }],
    outputs: [{ name: 'y', type: 'float32', dims: [null, 10] }],
    tolerance: { maxAbsPpm: 1_000, top1: true },
    size: 2_000,
    ...overrides,
  }
}

const genesis: GenesisDoc = {
  ...makeGenesis(
    [val],
    [
      [client, 1_000_000n],
      [poor, 50n],
      [owner, 1_000n],
      [outsider, 10_000n],
      ...workers.map((w): [Actor, bigint] => [w, 1_000n]),
    ],
    params,
  ),
  inference: {
    models: [{ owner: owner.did, ...modelBody() } as GenesisModel],
    workers: [w1, w2, w3, w4, w5].map((w) => ({ did: w.did, bond: 10_000n, ep: 'cpu' })),
  },
}

interface Setup {
  machine: StateMachine
  state: StateOverlay
  nonces: Map<string, bigint>
}

function setup(doc: GenesisDoc = genesis): Setup {
  const machine = new StateMachine({
    chainId: doc.chainId,
    modules: [bankModule, stakingModule(doc.params), inferenceModule(doc.params)],
    fees: feeCollector,
    minFee: doc.params.minFee,
  })
  const state = new StateOverlay(SparseMerkleTree.empty())
  machine.initGenesis(state, doc)
  return { machine, state, nonces: new Map() }
}

const timeAt = (height: number): number => T0 + height * 1_000

function info(s: Setup, height: number) {
  return {
    chainId: genesis.chainId,
    height,
    time: timeAt(height),
    proposer: val.did,
    validators: validatorSetAt(s.state, height, genesis.params),
    lastCommitSigners: null,
  }
}

/**
 * Signs, encodes and decodes (as a block would carry it) and delivers a transaction; returns its
 * events. A body that fails is included as failed (nonce used, fee of 1 charged): its TxError is thrown.
 */
function send(s: Setup, who: Actor, kind: string, body: unknown, height: number): ChainEvent[] {
  const nonce = s.nonces.get(who.did) ?? 0n
  const tx = decodeTx(encodeTx(signTx(who.key, { chainId: genesis.chainId, nonce, fee: 1n, kind, body })))
  const events: ChainEvent[] = []
  const result = s.machine.deliver(s.state, tx, { ...info(s, height), txHash: new Uint8Array(32) }, (e) =>
    events.push(e),
  )
  s.nonces.set(who.did, nonce + 1n)
  if (!result.ok) throw result.error
  return events
}

function refused(fn: () => unknown, reason: string): void {
  assert.throws(fn, (err: unknown) => err instanceof TxError && err.reason === reason, reason)
}

function endBlock(s: Setup, height: number): ChainEvent[] {
  const events: ChainEvent[] = []
  const ctx = { ...info(s, height), emit: (e: ChainEvent) => events.push(e) }
  s.machine.beginBlock(s.state, ctx)
  s.machine.endBlock(s.state, ctx)
  return events
}

function job(by: Actor = client, overrides: Partial<Omit<SignedJob, 'client' | 'signature'>> = {}): SignedJob {
  return signJob(by.key, {
    chainId: genesis.chainId,
    model: MODEL,
    inputsHash: randomBytes(32),
    maxFee: 200n,
    deadline: T0 + 100_000,
    salt: randomBytes(16),
    ...overrides,
  })
}

function receipt(by: Actor, j: SignedJob, overrides: Partial<Omit<Receipt, 'worker' | 'signature' | 'job'>> = {}) {
  return signReceipt(by.key, {
    job: j,
    outputHash: OUT_A,
    fee: PRICE,
    ep: 'cpu',
    runtime: 'onnxruntime-node/1.22.0',
    startedAt: T0 + 1_000,
    finishedAt: T0 + 1_250,
    computeMicros: 200_000,
    ...overrides,
  })
}

const settleBody = (receipts: Receipt[]) => ({ receipts: receipts.map(receiptValue) })
const reasons = (events: ChainEvent[]) =>
  events.filter((e) => e.type === 'inference.receipt_rejected').map((e) => e.attributes.reason)

/** Settles one job of `worker` with output `out`; returns the receipt. */
function settled(s: Setup, worker: Actor, out: Uint8Array, height: number): Receipt {
  const r = receipt(worker, job(), { outputHash: out })
  send(s, outsider, 'inference.settle', settleBody([r]), height)
  return r
}

// ---- genesis --------------------------------------------------------------------------------------

test('genesis registers models and bonds workers (bonds minted into the supply, not taken from balances)', () => {
  const s = setup()
  assert.equal(modelByName(s.state, 'mnist')?.cid, MODEL)
  assert.equal(modelByCid(s.state, MODEL)?.owner, owner.did)
  assert.equal(listWorkers(s.state).length, 5)
  assert.equal(workerRecord(s.state, w1.did)?.bonded, 10_000n)
  assert.equal(balanceOf(s.state, w1.did), 1_000n)
  assert.ok(isSchedulable(s.state, w1.did, 1, genesis.params))
  assert.ok(!isSchedulable(s.state, w6.did, 1, genesis.params))
  const balances = 1_000_000n + 50n + 1_000n + 10_000n + 6n * 1_000n
  assert.equal(totalSupply(s.state), balances + 10_000n + 5n * 10_000n)
})

test('genesis JSON: inference section and params round-trip; an older document parses with defaults and the same hash', () => {
  const json = genesisToJson(genesis)
  const back = parseGenesis(JSON.parse(JSON.stringify(json)))
  assert.deepEqual(back, genesis)
  assert.deepEqual(genesisToJson(back), json)
  const old = { ...makeGenesis([val], [[client, 5n]]) }
  const oldJson = genesisToJson(old) as { params: Record<string, unknown> }
  assert.equal('minWorkerBond' in oldJson.params, false, 'defaults are not written')
  assert.equal('inference' in (oldJson as object), false)
  const parsed = parseGenesis(JSON.parse(JSON.stringify(oldJson)))
  assert.equal(parsed.params.minWorkerBond, DEFAULT_PARAMS.minWorkerBond)
  assert.equal(parsed.params.quorumSize, 3)
  assert.equal(toHex(genesisHash(parsed)), toHex(genesisHash(old)))
  assert.throws(
    () => parseGenesis({ ...oldJson, params: { ...oldJson.params, protocolShareBps: 20_000 } }),
    GenesisError,
  )
  assert.throws(
    () => parseGenesis({ ...oldJson, inference: { models: [], workers: [{ did: 'x', bond: '1', ep: 'cpu' }] } }),
    GenesisError,
  )
})

test('a chain without an inference section writes nothing under inference/', () => {
  const plain = makeGenesis([val], [[client, 5n]])
  const s = setup(plain)
  const keys = s.state.changes().map(([k]) => new TextDecoder().decode(k))
  assert.equal(
    keys.some((k) => k.startsWith('inference/')),
    false,
  )
})

test('a genesis model with a bad schema is refused when the module loads it', () => {
  const bad: GenesisDoc = {
    ...genesis,
    inference: { models: [{ ...genesis.inference!.models[0]!, kind: 'video' }], workers: [] },
  }
  assert.throws(() => setup(bad), GenesisError)
})

// ---- models ---------------------------------------------------------------------------------------

test('registerModel: the owner is the sender, names are unique, the owner may publish new versions', () => {
  const s = setup()
  const other = cid('other')
  refused(() => send(s, outsider, 'inference.registerModel', modelBody({ cid: other }), 1), 'name-taken')
  refused(() => send(s, owner, 'inference.registerModel', modelBody(), 1), 'model-exists')
  refused(() => send(s, owner, 'inference.registerModel', modelBody({ cid: other }), 1), 'version-exists')
  const v2 = cid('mnist-v2')
  const events = send(s, owner, 'inference.registerModel', modelBody({ cid: v2, version: '2', price: 150n }), 1)
  assert.equal(events[0]?.type, 'inference.model')
  assert.equal(modelByName(s.state, 'mnist')?.cid, v2)
  assert.equal(modelByCid(s.state, MODEL)?.version, '1', 'the old version stays registered')
  send(s, outsider, 'inference.registerModel', modelBody({ cid: other, name: 'resnet', kind: 'text' }), 2)
  assert.equal(modelByName(s.state, 'resnet')?.owner, outsider.did)
  assert.deepEqual(
    listModels(s.state).map((m) => m.cid),
    [MODEL, v2, other].sort(),
  )
  // a text model may name its tokenizer by CID; the record keeps it
  const tokenizer = cid('resnet-tokenizer')
  send(
    s,
    outsider,
    'inference.registerModel',
    modelBody({ cid: cid('t1'), name: 'talk', kind: 'text', codec: tokenizer }),
    2,
  )
  assert.equal(modelByName(s.state, 'talk')?.codec, tokenizer)
  assert.equal(modelByName(s.state, 'resnet')?.codec, undefined)
  for (const bad of [
    modelBody({ cid: cid('x6'), name: 'x6', codec: tokenizer }), // a tensor model has no tokenizer
    modelBody({ cid: cid('x7'), name: 'x7', kind: 'text', codec: 'not-a-cid' }),
    modelBody({ cid: 'bafy-not-a-cid', name: 'x1' }),
    modelBody({ cid: cid('x2'), name: 'Bad Name' }),
    modelBody({ cid: cid('x3'), name: 'x3', inputs: [{ name: 'x', type: 'float31', dims: [1] }] }),
    modelBody({ cid: cid('x4'), name: 'x4', tolerance: { maxAbsPpm: -1, top1: true } }),
    { ...modelBody({ cid: cid('x5'), name: 'x5' }), extra: 1 },
  ]) {
    refused(() => send(s, outsider, 'inference.registerModel', bad, 3), 'malformed')
  }
})

// ---- bonds ----------------------------------------------------------------------------------------

test('bond, unbond (slashable, not schedulable below the minimum), withdraw after unbondingBlocks', () => {
  const s = setup()
  send(s, w6, 'inference.bond', { amount: 900n, ep: 'coreml' }, 1)
  assert.equal(workerRecord(s.state, w6.did)?.ep, 'coreml')
  assert.equal(isSchedulable(s.state, w6.did, 1, genesis.params), false, '900 < minWorkerBond')
  refused(() => send(s, w6, 'inference.bond', { amount: 200n, ep: 'cpu' }, 1), 'insufficient-funds')
  send(s, outsider, 'bank.transfer', { to: w6.did, amount: 1_000n }, 1)
  send(s, w6, 'inference.bond', { amount: 1_000n, ep: 'cpu' }, 1)
  assert.equal(isSchedulable(s.state, w6.did, 1, genesis.params), true)
  // Three fees: the two bonds and the one that failed for lack of funds (a failed body pays its fee).
  assert.equal(balanceOf(s.state, w6.did), 1_000n - 900n - 1_000n + 1_000n - 3n)
  send(s, w6, 'inference.unbond', { amount: 1_500n }, 2)
  assert.equal(workerRecord(s.state, w6.did)?.bonded, 400n)
  assert.deepEqual(workerUnbonding(s.state, w6.did), [{ amount: 1_500n, completes: 7 }])
  assert.equal(isSchedulable(s.state, w6.did, 2, genesis.params), false)
  refused(() => send(s, w6, 'inference.unbond', { amount: 401n }, 3), 'insufficient-stake')
  refused(() => send(s, w6, 'inference.withdraw', {}, 6), 'nothing-to-withdraw')
  const before = balanceOf(s.state, w6.did)
  send(s, w6, 'inference.withdraw', {}, 7)
  assert.equal(balanceOf(s.state, w6.did), before + 1_500n - 1n)
  assert.deepEqual(workerUnbonding(s.state, w6.did), [])
  refused(() => send(s, w6, 'inference.bond', { amount: 0n, ep: 'cpu' }, 8), 'malformed')
  refused(() => send(s, w6, 'inference.bond', { amount: 1n, ep: 'tpu' }, 8), 'malformed')
})

// ---- settlement -----------------------------------------------------------------------------------

test('settle moves the fee client → worker less the protocol share (to the treasury), once per job', () => {
  const s = setup()
  const supply = totalSupply(s.state)
  const j = job()
  const r = receipt(w1, j)
  const clientBefore = balanceOf(s.state, client.did)
  const workerBefore = balanceOf(s.state, w1.did)
  const events = send(s, outsider, 'inference.settle', settleBody([r]), 3)
  assert.deepEqual(
    events.map((e) => e.type),
    ['inference.settled', 'inference.batch'],
  )
  assert.equal(balanceOf(s.state, client.did), clientBefore - PRICE)
  assert.equal(balanceOf(s.state, w1.did), workerBefore + 90n)
  assert.equal(treasuryBalance(s.state), 10n)
  assert.equal(totalSupply(s.state), supply, 'settlement and tx fees move tokens, they do not create them')
  const settlement = settlementOf(s.state, jobIdHex(j))
  assert.deepEqual(settlement, {
    receiptId: receiptId(r),
    height: 3,
    batch: 0,
    leaf: 0,
    worker: w1.did,
    client: client.did,
    model: MODEL,
    fee: PRICE,
    share: 10n,
  })
  const worker = workerRecord(s.state, w1.did)
  assert.equal(worker?.jobs, 1)
  assert.equal(worker?.latencyMsTotal, 250n)
  assert.equal(worker?.computeMicrosTotal, 200_000n)
  assert.equal(worker?.lastActiveHeight, 3)
  assert.equal(modelByCid(s.state, MODEL)?.calls, 1)
  assert.equal(modelByCid(s.state, MODEL)?.feesTotal, PRICE)
  // The same job again, even through another worker's receipt: refused alone, skipped in a batch.
  refused(() => send(s, outsider, 'inference.settle', settleBody([r]), 4), 'no-valid-receipts')
  const fresh = receipt(w2, job())
  const again = send(s, outsider, 'inference.settle', settleBody([receipt(w2, j), fresh]), 4)
  assert.deepEqual(reasons(again), ['already-settled'])
  assert.equal(balanceOf(s.state, client.did), clientBefore - 2n * PRICE, 'charged once per job')
  assert.equal(settleBatch(s.state, 4, 0)?.count, 1)
})

test('receipts that break a rule are skipped with their reason, and nothing is charged for them', () => {
  const s = setup()
  const tampered = { ...receipt(w1, job()), outputHash: OUT_B }
  const forgedJob = receipt(w1, { ...job(), maxFee: 10_000n })
  const unknownModel = cid('nope')
  const cases: Array<[Receipt, string]> = [
    [receipt(w1, job(poor)), 'insufficient-funds'],
    [receipt(w1, job(client, { deadline: T0 - 100_000 })), 'expired'],
    [receipt(w1, job(client, { maxFee: 50n })), 'fee-above-max'],
    [receipt(w1, job(), { fee: 99n }), 'wrong-fee'],
    [receipt(w1, job(client, { model: unknownModel })), 'unknown-model'],
    [receipt(outsider, job()), 'not-bonded'],
    [receipt(w1, job(client, { chainId: 'elsewhere' })), 'wrong-chain'],
    [receipt(w1, job(client, { deadline: T0 + 500 })), 'started-late'],
    [tampered, 'bad-signature'],
    [forgedJob, 'bad-signature'],
  ]
  const good = receipt(w2, job())
  const balances = () => [client, poor, w1, w2].map((a) => balanceOf(s.state, a.did))
  const before = balances()
  const events = send(
    s,
    outsider,
    'inference.settle',
    settleBody([...cases.map(([r]) => r), good]),
    3, // block time T0 + 3 000; the "expired" job's deadline + window is T0 − 40 000
  )
  assert.deepEqual(
    reasons(events),
    cases.map(([, reason]) => reason),
  )
  const rejectedIds = events.filter((e) => e.type === 'inference.receipt_rejected').map((e) => e.attributes.receiptId)
  assert.deepEqual(
    rejectedIds,
    cases.map(([r]) => toHex(receiptId(r))),
  )
  const after = balances()
  assert.deepEqual(after, [(before[0] as bigint) - PRICE, before[1], before[2], (before[3] as bigint) + 90n])
  for (const [r] of cases) assert.equal(settlementOf(s.state, jobIdHex(r.job)), undefined)
  // A batch of nothing but bad receipts is refused outright and leaves no trace.
  const changes = s.state.changes().length
  refused(() => send(s, outsider, 'inference.settle', settleBody(cases.map(([r]) => r)), 4), 'no-valid-receipts')
  assert.equal(s.state.changes().length, changes)
  refused(() => send(s, outsider, 'inference.settle', { receipts: [] }, 4), 'malformed')
  refused(
    () => send(s, outsider, 'inference.settle', { receipts: [{ ...receiptValue(good), ep: 'tpu' }] }, 4),
    'malformed',
  )
  const tooMany = Array.from({ length: DEFAULT_PARAMS.maxReceiptsPerSettle + 1 }, () => receiptValue(good))
  refused(
    () =>
      s.machine.check(
        s.state,
        signTx(outsider.key, {
          chainId: genesis.chainId,
          nonce: 5n,
          fee: 1n,
          kind: 'inference.settle',
          body: { receipts: tooMany },
        }),
        { exactNonce: false },
      ),
    'malformed',
  )
})

test('the inclusion proof of a settled receipt verifies against the batch root stored on chain', () => {
  const s = setup()
  const receipts = [w1, w2, w3, w4, w5].map((w) => receipt(w, job()))
  send(s, outsider, 'inference.settle', settleBody(receipts), 3)
  send(s, outsider, 'inference.settle', settleBody([receipt(w1, job())]), 3)
  const batch = settleBatch(s.state, 3, 0)
  assert.equal(batch?.count, 5)
  assert.deepEqual(batch?.root, merkleRoot(receipts.map(receiptId)))
  assert.equal(settleBatch(s.state, 3, 1)?.count, 1, 'a second settle in the same block is batch 1')
  for (const [i, r] of receipts.entries()) {
    const proof = inclusionProof(s.state, jobIdHex(r.job))
    assert.ok(proof !== undefined)
    assert.equal(proof.settlement.leaf, i)
    assert.ok(verifyInclusion(proof.root, receiptId(r), proof.proof))
    assert.ok(!verifyInclusion(proof.root, receiptId(receipts[(i + 1) % 5] as Receipt), proof.proof))
  }
  assert.equal(inclusionProof(s.state, toHex(jobId(job()))), undefined)
})

// ---- audits ---------------------------------------------------------------------------------------

test('a passing audit raises the streak and pays the auditor from the treasury, once per job', () => {
  const s = setup()
  const original = settled(s, w1, OUT_A, 3)
  const audit = receipt(w2, original.job, { outputHash: OUT_A })
  const auditorBefore = balanceOf(s.state, w2.did)
  const events = send(s, w2, 'inference.audit', { original: receiptValue(original), audit: receiptValue(audit) }, 4)
  assert.equal(events[0]?.type, 'inference.audit_passed')
  assert.equal(workerRecord(s.state, w1.did)?.streak, 1)
  assert.equal(workerRecord(s.state, w1.did)?.auditsPassed, 1)
  assert.equal(
    balanceOf(s.state, w2.did),
    auditorBefore + 5n - 1n,
    'auditReward 5 (≤ the job share 10), less the tx fee',
  )
  assert.equal(treasuryBalance(s.state), 5n)
  assert.equal(auditOf(s.state, jobIdHex(original.job))?.auditor, w2.did)
  const body = (o: Receipt, a: Receipt) => ({ original: receiptValue(o), audit: receiptValue(a) })
  refused(() => send(s, w3, 'inference.audit', body(original, receipt(w3, original.job)), 5), 'already-audited')
  refused(() => send(s, w3, 'inference.audit', body(original, receipt(w1, original.job)), 5), 'same-worker')
  refused(() => send(s, w3, 'inference.audit', body(original, receipt(w3, job())), 5), 'job-mismatch')
  const unsettled = receipt(w1, job())
  refused(() => send(s, w3, 'inference.audit', body(unsettled, receipt(w3, unsettled.job)), 5), 'not-settled')
  refused(
    () => send(s, w3, 'inference.audit', body(receipt(w4, original.job), receipt(w3, original.job)), 5),
    'not-settled-receipt',
  )
  refused(() => send(s, outsider, 'inference.audit', body(original, receipt(outsider, original.job)), 5), 'not-bonded')
})

/** w1's result `originalOut` is settled, then w2 audits it with `auditOut`: a dispute. */
function dispute(s: Setup, originalOut: Uint8Array, auditOut: Uint8Array, height: number): Receipt {
  const original = settled(s, w1, originalOut, height)
  const audit = receipt(w2, original.job, { outputHash: auditOut })
  const body = { original: receiptValue(original), audit: receiptValue(audit) }
  const events = send(s, w2, 'inference.audit', body, height + 1)
  assert.equal(events[0]?.type, 'inference.dispute')
  return original
}

test('dispute + quorum: the cheating worker is slashed, streak 0, quarantined; the challenger is paid', () => {
  const s = setup()
  send(s, w1, 'inference.unbond', { amount: 2_000n }, 2) // unbonding stake stays slashable
  const original = dispute(s, OUT_B, OUT_A, 3)
  const id = jobIdHex(original.job)
  assert.ok(disputeOf(s.state, id)?.resolved === null)
  const supply = totalSupply(s.state)
  const challengerBefore = balanceOf(s.state, w2.did)
  const quorum = [w3, w4, w5].map((w) => receiptValue(receipt(w, original.job, { outputHash: OUT_A })))
  const events = send(s, outsider, 'inference.resolve', { jobId: jobId(original.job), quorum }, 6)
  const slash = events.find((e) => e.type === 'inference.slashed')
  assert.deepEqual(slash?.attributes, { worker: w1.did, amount: '1000', jobId: id, reason: 'audit-mismatch' })
  const cheater = workerRecord(s.state, w1.did)
  assert.equal(cheater?.bonded, 7_200n, '10% of the 8 000 bonded')
  assert.deepEqual(workerUnbonding(s.state, w1.did), [{ amount: 1_800n, completes: 7 }], '10% of the 2 000 unbonding')
  assert.equal(cheater?.streak, 0)
  assert.equal(cheater?.auditsFailed, 1)
  assert.equal(cheater?.slashes, 1)
  assert.equal(cheater?.quarantinedUntil, 56)
  assert.equal(isSchedulable(s.state, w1.did, 55, genesis.params), false)
  assert.equal(isSchedulable(s.state, w1.did, 56, genesis.params), true)
  assert.equal(balanceOf(s.state, w2.did), challengerBefore + 500n, 'half of the 1 000 slashed')
  assert.equal(totalSupply(s.state), supply - 500n, 'the other half is burned')
  for (const w of [w3, w4, w5]) assert.equal(workerRecord(s.state, w.did)?.streak, 1)
  assert.equal(disputeOf(s.state, id)?.resolved?.slashed[0], w1.did)
  refused(() => send(s, outsider, 'inference.resolve', { jobId: jobId(original.job), quorum }, 7), 'already-resolved')
  // A quarantined worker cannot sit on a quorum or audit, but its receipts still settle.
  const later = settled(s, w1, OUT_A, 8)
  assert.ok(settlementOf(s.state, jobIdHex(later.job)) !== undefined)
})

test('an honest worker whose auditor lied is vindicated: the lying auditor is slashed', () => {
  const s = setup()
  const original = dispute(s, OUT_A, OUT_C, 3)
  const honestBefore = balanceOf(s.state, w1.did)
  const quorum = [w3, w4, w5].map((w) => receiptValue(receipt(w, original.job, { outputHash: OUT_A })))
  const events = send(s, outsider, 'inference.resolve', { jobId: jobId(original.job), quorum }, 6)
  assert.deepEqual(
    events.filter((e) => e.type === 'inference.slashed').map((e) => e.attributes.worker),
    [w2.did],
  )
  assert.equal(workerRecord(s.state, w2.did)?.bonded, 9_000n)
  assert.equal(workerRecord(s.state, w2.did)?.quarantinedUntil, 56)
  assert.equal(workerRecord(s.state, w1.did)?.bonded, 10_000n)
  assert.equal(workerRecord(s.state, w1.did)?.streak, 1)
  assert.equal(workerRecord(s.state, w1.did)?.auditsPassed, 1)
  assert.equal(balanceOf(s.state, w1.did), honestBefore + 500n)
})

test('resolve refuses a quorum that is too small, split, partial or repeated, and changes nothing', () => {
  const s = setup()
  const original = dispute(s, OUT_B, OUT_A, 3)
  const r = (w: Actor, out: Uint8Array) => receiptValue(receipt(w, original.job, { outputHash: out }))
  const resolve = (quorum: unknown[]) => () =>
    send(s, outsider, 'inference.resolve', { jobId: jobId(original.job), quorum }, 6)
  const changes = s.state.changes().length
  refused(resolve([r(w3, OUT_A), r(w4, OUT_A)]), 'quorum-too-small')
  refused(resolve([r(w3, OUT_A), r(w4, OUT_B), r(w5, OUT_C)]), 'no-majority')
  refused(resolve([r(w3, OUT_A), r(w4, OUT_A), r(w1, OUT_A)]), 'quorum-conflict')
  refused(resolve([r(w3, OUT_A), r(w3, OUT_A), r(w4, OUT_A)]), 'quorum-duplicate')
  refused(resolve([r(w3, OUT_A), r(w4, OUT_A), r(outsider, OUT_A)]), 'not-bonded')
  refused(resolve([r(w3, OUT_A), r(w4, OUT_A), receiptValue(receipt(w5, job()))]), 'job-mismatch')
  refused(
    () => send(s, outsider, 'inference.resolve', { jobId: jobId(job()), quorum: [r(w3, OUT_A)] }, 6),
    'no-dispute',
  )
  assert.equal(s.state.changes().length, changes)
  assert.equal(workerRecord(s.state, w1.did)?.bonded, 10_000n)
})

test('auditDecision: always below the threshold, about 1/streak above it', () => {
  const s = setup()
  const id = receiptId(receipt(w1, job()))
  for (let streak = 0; streak < 10; streak++) {
    for (let i = 0; i < 50; i++) assert.equal(shouldAudit(streak, id, randomBytes(32), 10), true)
  }
  const draws = 20_000
  for (const streak of [10, 25, 100]) {
    let audited = 0
    for (let i = 0; i < draws; i++) {
      const later = sha256(new TextEncoder().encode(`block ${streak} ${i}`))
      if (shouldAudit(streak, id, later, 10)) audited += 1
    }
    const p = 1 / streak
    const sigma = Math.sqrt(draws * p * (1 - p))
    assert.ok(Math.abs(audited - draws * p) < 5 * sigma, `streak ${streak}: ${audited} of ${draws}`)
  }
  // The state wrapper reads the worker's streak.
  writeWorker(s.state, w6.did, { ...newWorker('cpu'), streak: 1_000_000 })
  const hits = Array.from({ length: 200 }, (_, i) =>
    auditDecision(s.state, id, w6.did, sha256(Uint8Array.of(i)), genesis.params),
  ).filter(Boolean).length
  assert.ok(hits <= 2)
  assert.equal(auditDecision(s.state, id, w1.did, sha256(Uint8Array.of(1)), genesis.params), true, 'streak 0')
})

// ---- epoch rewards ----------------------------------------------------------------------------------

test('epoch rewards: minted amount split by score among schedulable active workers, exactly', () => {
  const s = setup()
  // w1: 3 fast jobs; w2: 1 slow job (paid anyway); w3: 2 jobs, then quarantined (not paid); w4: idle.
  const plan: Array<[Actor, number, number]> = [
    [w1, 3, 100],
    [w2, 1, 30_000],
    [w3, 2, 200],
  ]
  for (const [w, n, latency] of plan) {
    const receipts = Array.from({ length: n }, () => receipt(w, job(), { finishedAt: T0 + 1_000 + latency }))
    send(s, outsider, 'inference.settle', settleBody(receipts), 2)
  }
  writeWorker(s.state, w3.did, { ...(workerRecord(s.state, w3.did) ?? newWorker('cpu')), quarantinedUntil: 100 })
  for (let h = 3; h < 10; h++) endBlock(s, h)
  const supply = totalSupply(s.state)
  const treasury = treasuryBalance(s.state)
  const before = workers.map((w) => balanceOf(s.state, w.did))
  const expected = splitProRata(1_000n, [
    {
      did: w1.did,
      score: workerScore(
        { calls: 3, latencyMsTotal: 300n, auditsPassed: 0, auditsFailed: 0, lastActiveHeight: 2 },
        10,
        100,
      ),
    },
    {
      did: w2.did,
      score: workerScore(
        { calls: 1, latencyMsTotal: 30_000n, auditsPassed: 0, auditsFailed: 0, lastActiveHeight: 2 },
        10,
        100,
      ),
    },
  ])
  const events = endBlock(s, 10)
  const gains = workers.map((w, i) => balanceOf(s.state, w.did) - (before[i] as bigint))
  const paid = gains.reduce((a, b) => a + b, 0n)
  const dust = treasuryBalance(s.state) - treasury
  assert.equal(paid + dust, 1_000n, 'the parts add up to the minted amount')
  assert.equal(totalSupply(s.state), supply + 1_000n)
  assert.equal(gains[0], expected.shares.find((x) => x.did === w1.did)?.amount)
  assert.ok((gains[1] as bigint) > 0n, 'the slow worker is paid')
  assert.ok((gains[0] as bigint) > (gains[1] as bigint))
  assert.equal(gains[2], 0n, 'quarantined')
  assert.equal(gains[3], 0n, 'idle')
  assert.equal(dust, expected.leftover)
  assert.equal(events.filter((e) => e.type === 'inference.reward').length, 2)
  assert.equal(workerRecord(s.state, w1.did)?.epochJobs, 0, 'epoch counters reset')
  assert.equal(workerRecord(s.state, w1.did)?.jobs, 3, 'lifetime counters kept')
  // Nothing served in the next epoch: nothing minted.
  for (let h = 11; h < 20; h++) endBlock(s, h)
  const supply2 = totalSupply(s.state)
  endBlock(s, 20)
  assert.equal(totalSupply(s.state), supply2)
})
