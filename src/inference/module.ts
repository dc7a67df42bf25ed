/**
 * inference: the market's chain module — models, worker bonds, batch settlement of receipts,
 * audits and disputes, epoch rewards. Money is bigint base units; fractions are basis points
 * or parts per million; nothing here uses floating point.
 *
 * Transactions (`inference.<kind>`, bodies are dag-cbor maps):
 *   registerModel { cid, name, version, price, kind, inputs, outputs, tolerance, size }   owner = sender
 *   bond          { amount, ep }     balance → bond (sets the worker's execution provider)
 *   unbond        { amount }         bond → unbonding, withdrawable after `unbondingBlocks`
 *   withdraw      {}                 completed unbondings → balance
 *   settle        { receipts }       module-settle.ts
 *   audit         { original, audit }    module-audit.ts
 *   resolve       { jobId, quorum }      module-audit.ts
 *
 * Where the money goes: a settled fee goes to the worker less `protocolShareBps`, which goes to
 * the inference treasury (`inference/treasury`, counted in the supply, owned by no account). The
 * bank's fee pool is emptied into validators every block, so it cannot hold funds for audits
 * that come later; the treasury does, and pays auditors. At each epoch edge (height %
 * epochLength = 0) `workerRewardPerEpoch` is minted and split among the schedulable workers who
 * settled ≥ 1 job in the epoch, pro rata to `workerScore` (rewards.ts); the rounding dust goes
 * to the treasury, so the supply grows by exactly `workerRewardPerEpoch`. Slashed stake is paid
 * partly to the winning side of a dispute and the rest burned.
 *
 * State layout: module-state.ts. A chain without an `inference` genesis section and without
 * inference transactions writes nothing under `inference/`.
 */
import { takeMatured } from '../staking/staking.ts'
import { GenesisError, TxError } from '../chain/errors.ts'
import type { BlockContext, ChainModule, TxHandler } from '../chain/host.ts'
import type { ChainParams, GenesisDoc } from '../chain/genesis.ts'
import type { StateOverlay } from '../chain/state-view.ts'
import { credit, debit, mint, mintUnassigned } from '../bank/bank.ts'
import type { ExecutionProvider } from './job.ts'
import { amountOf, decodeModelSpec, epOf, fields } from './module-decode.ts'
import {
  ACTIVE_KEY,
  MAX_UNBONDING_ENTRIES,
  MODELS_KEY,
  TREASURY_KEY,
  activeWorkers,
  addToList,
  isSchedulable,
  modelByCid,
  modelByName,
  nameKey,
  newWorker,
  readAmount,
  workerRecord,
  workerUnbonding,
  writeAmount,
  writeModel,
  writeUnbonding,
  writeWorker,
  type InferenceParams,
  type ModelSpec,
} from './module-state.ts'
import { settleHandler } from './module-settle.ts'
import { auditHandler, resolveHandler } from './module-audit.ts'
import { splitProRata, workerScore } from './rewards.ts'

export {
  modelByCid,
  modelByName,
  listModels,
  workerRecord,
  listWorkers,
  isSchedulable,
  workerUnbonding,
  activeWorkers,
  treasuryBalance,
  settlementOf,
  settleBatch,
  batchCount,
  auditOf,
  disputeOf,
  batchKey,
  type InferenceParams,
  type ModelSpec,
  type ModelRecord,
  type TensorSpec,
  type Tolerance,
  type WorkerRecord,
  type UnbondingEntry,
  type JobSettlement,
  type SettleBatch,
  type AuditRecord,
  type DisputeRecord,
} from './module-state.ts'
export { inclusionProof, buildInclusionProof, verifyInclusion, type InclusionProof } from './module-settle.ts'
export { auditDecision, shouldAudit, majorityHash } from './module-audit.ts'
export { decodeModelSpec } from './module-decode.ts'
export { workerScore, type ScoreInputs } from './rewards.ts'

/** Registers a model for `owner`; the name's pointer moves to it. Throws TxError. */
function registerModel(state: StateOverlay, owner: string, spec: ModelSpec, height: number): void {
  if (modelByCid(state, spec.cid) !== undefined) throw new TxError('model-exists', `model ${spec.cid} is registered`)
  const current = modelByName(state, spec.name)
  if (current !== undefined && current.owner !== owner)
    throw new TxError('name-taken', `the name ${spec.name} belongs to ${current.owner}`)
  if (current !== undefined && current.version === spec.version)
    throw new TxError('version-exists', `${spec.name} ${spec.version} is registered; choose a new version`)
  writeModel(state, { ...spec, owner, registeredAt: height, calls: 0, feesTotal: 0n })
  state.write(nameKey(spec.name), spec.cid)
  addToList(state, MODELS_KEY, spec.cid)
}

const registerModelTx: TxHandler<ModelSpec> = {
  decodeBody: decodeModelSpec,
  apply(state, tx, spec, ctx) {
    registerModel(state, tx.sender, spec, ctx.height)
    ctx.emit({
      type: 'inference.model',
      attributes: {
        cid: spec.cid,
        name: spec.name,
        version: spec.version,
        owner: tx.sender,
        price: String(spec.price),
      },
    })
  },
}

const bondTx: TxHandler<{ amount: bigint; ep: ExecutionProvider }> = {
  decodeBody(body) {
    const b = fields(body, 'inference.bond', ['amount', 'ep'])
    return { amount: amountOf(b.amount, 'amount', { positive: true }), ep: epOf(b.ep, 'ep') }
  },
  apply(state, tx, body, ctx) {
    debit(state, tx.sender, body.amount)
    const record = workerRecord(state, tx.sender) ?? newWorker(body.ep)
    record.bonded += body.amount
    record.ep = body.ep
    writeWorker(state, tx.sender, record)
    ctx.emit({
      type: 'inference.bond',
      attributes: { worker: tx.sender, amount: String(body.amount), bonded: String(record.bonded), ep: body.ep },
    })
  },
}

function unbondTx(params: InferenceParams): TxHandler<{ amount: bigint }> {
  return {
    decodeBody: (body) => ({
      amount: amountOf(fields(body, 'inference.unbond', ['amount']).amount, 'amount', { positive: true }),
    }),
    apply(state, tx, body, ctx) {
      const record = workerRecord(state, tx.sender)
      if (record === undefined || record.bonded < body.amount)
        throw new TxError('insufficient-stake', `bonded ${record?.bonded ?? 0n} is less than ${body.amount}`)
      const entries = workerUnbonding(state, tx.sender)
      if (entries.length >= MAX_UNBONDING_ENTRIES)
        throw new TxError('too-many-unbondings', `at most ${MAX_UNBONDING_ENTRIES} unbondings at once; withdraw first`)
      record.bonded -= body.amount
      writeWorker(state, tx.sender, record)
      const completes = ctx.height + params.unbondingBlocks
      writeUnbonding(state, tx.sender, [...entries, { amount: body.amount, completes }])
      ctx.emit({
        type: 'inference.unbond',
        attributes: { worker: tx.sender, amount: String(body.amount), completes: String(completes) },
      })
    },
  }
}

const withdrawTx: TxHandler<Record<string, never>> = {
  decodeBody(body) {
    fields(body, 'inference.withdraw', [])
    return {}
  },
  apply(state, tx, _body, ctx) {
    const { amount, remaining } = takeMatured(workerUnbonding(state, tx.sender), ctx.height)
    writeUnbonding(state, tx.sender, remaining)
    credit(state, tx.sender, amount)
    ctx.emit({ type: 'inference.withdraw', attributes: { worker: tx.sender, amount: String(amount) } })
  },
}

// ---- genesis -----------------------------------------------------------------------------------

function loadGenesis(state: StateOverlay, genesis: GenesisDoc): void {
  const section = genesis.inference
  if (section === undefined) return
  for (const [i, m] of section.models.entries()) {
    const { owner, ...body } = m
    try {
      registerModel(state, owner, decodeModelSpec(body), 0)
    } catch (err) {
      throw new GenesisError(`genesis: inference.models[${i}]: ${(err as Error).message}`, { cause: err })
    }
  }
  for (const [i, w] of section.workers.entries()) {
    let ep: ExecutionProvider
    try {
      ep = epOf(w.ep, 'ep')
    } catch (err) {
      throw new GenesisError(`genesis: inference.workers[${i}]: ${(err as Error).message}`, { cause: err })
    }
    mintUnassigned(state, w.bond)
    writeWorker(state, w.did, { ...newWorker(ep), bonded: w.bond })
  }
}

// ---- epoch rewards -------------------------------------------------------------------------------

/** At an epoch edge: mint the epoch reward, split it by score, reset the epoch counters. */
function payEpoch(state: StateOverlay, ctx: BlockContext, params: InferenceParams): void {
  if (ctx.height % params.epochLength !== 0) return
  const active = activeWorkers(state)
  if (active.length === 0) return
  const scores = active
    .filter((did) => isSchedulable(state, did, ctx.height, params))
    .map((did) => {
      const w = workerRecord(state, did)
      const inputs = {
        calls: w?.epochJobs ?? 0,
        latencyMsTotal: w?.epochLatencyMs ?? 0n,
        auditsPassed: w?.auditsPassed ?? 0,
        auditsFailed: w?.auditsFailed ?? 0,
        lastActiveHeight: w?.lastActiveHeight ?? 0,
      }
      return { did, score: workerScore(inputs, ctx.height, params.recencyBlocks) }
    })
  const total = params.workerRewardPerEpoch
  const { shares, leftover } = splitProRata(total, scores)
  if (leftover < total) {
    for (const s of shares) if (s.amount > 0n) mint(state, s.did, s.amount)
    mintUnassigned(state, leftover)
    writeAmount(state, TREASURY_KEY, readAmount(state, TREASURY_KEY) + leftover)
    for (const s of shares) {
      const score = scores.find((x) => x.did === s.did)?.score ?? 0n
      ctx.emit({
        type: 'inference.reward',
        attributes: { worker: s.did, amount: String(s.amount), scorePpm: String(score) },
      })
    }
  }
  resetEpoch(state, active)
}

function resetEpoch(state: StateOverlay, active: readonly string[]): void {
  for (const did of active) {
    const record = workerRecord(state, did)
    if (record === undefined) continue
    record.epochJobs = 0
    record.epochLatencyMs = 0n
    writeWorker(state, did, record)
  }
  state.remove(ACTIVE_KEY)
}

/** Creates the inference module for a chain's parameters. */
export function inferenceModule(params: ChainParams): ChainModule {
  return {
    name: 'inference',
    txs: {
      registerModel: registerModelTx,
      bond: bondTx,
      unbond: unbondTx(params),
      withdraw: withdrawTx,
      settle: settleHandler(params),
      audit: auditHandler(params),
      resolve: resolveHandler(params),
    },
    initGenesis: loadGenesis,
    endBlock(state, ctx) {
      payEpoch(state, ctx, params)
    },
  }
}
