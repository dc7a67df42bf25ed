/**
 * Models and workers on chain.
 *
 *   registerModel { cid, name, version, price, kind, inputs, outputs, tolerance, size, codec? }
 *       owner = sender; price >= minModelPrice; `modelDeposit` moves from the owner's balance
 *       into the model record and stays there while the model is registered.
 *   retireModel   { cid }             the owner takes the model off the market and its deposit back
 *   reportModel   { cid, reason }     a schedulable worker that serves nothing but honest models
 *       says this one breaks its runner's limits; when `quorumSize` distinct workers have
 *       reported it, the model is `bad`: no longer served or settled, and its deposit is burned
 *       (not paid to the reporters, so reporting earns nothing).
 *   bond          { amount, ep, runtime }   balance -> bond; the bond declares the execution
 *       provider and runtime every receipt of the worker must name (a change resets its streak)
 *   unbond        { amount }          bond -> unbonding, withdrawable after `unbondingBlocks`
 *   withdraw      {}                  completed unbondings -> balance
 *   serve         { ep, runtime, add, remove }   declares provider/runtime and which models the
 *       worker serves; only declared workers settle jobs on a model and are drawn to audit it.
 */
import type { TxHandler } from '../../chain/host.ts'
import { governedList } from '../../chain/governed.ts'
import type { StateOverlay } from '../../chain/state-view.ts'
import { burn, credit, debit } from '../../bank/bank.ts'
import { takeMatured } from '../../staking/staking.ts'
import type { ExecutionProvider } from '../job.ts'
import {
  amountOf,
  canonicalCid,
  cidList,
  decodeModelSpec,
  epOf,
  fields,
  MAX_SERVE_CHANGES,
  refuse,
  runtimeOf,
  text,
} from './decode.ts'
import {
  MAX_UNBONDING_ENTRIES,
  MODELS,
  isSchedulable,
  modelByCid,
  modelByName,
  nameKey,
  newWorker,
  reportSet,
  servingSet,
  sinceKey,
  workerRecord,
  workerUnbonding,
  writeModel,
  writeUnbonding,
  writeWorker,
  type InferenceParams,
  type ModelRecord,
  type ModelSpec,
  type WorkerRecord,
} from './state.ts'

/** The governed parameter listing the models the network serves (declared in src/governance/registry.ts). */
export const MODEL_ALLOW_LIST = 'inference.modelAllowList'

/** Registers a model for `owner` with `deposit` already taken; the name's pointer moves to it. */
export function registerModel(
  state: StateOverlay,
  owner: string,
  spec: ModelSpec,
  height: number,
  deposit: bigint,
): ModelRecord {
  if (modelByCid(state, spec.cid) !== undefined) refuse('model-exists', `model ${spec.cid} is registered`)
  // governance's model allow-list (src/governance/registry.ts): empty allows every model
  const allowed = governedList(state, MODEL_ALLOW_LIST, [])
  if (allowed.length > 0 && !allowed.includes(spec.name) && !allowed.includes(spec.cid))
    refuse('model-not-allowed', `${spec.name} (${spec.cid}) is not on the network's model allow-list`)
  const current = modelByName(state, spec.name)
  if (current !== undefined && current.owner !== owner)
    refuse('name-taken', `the name ${spec.name} belongs to ${current.owner}`)
  if (current !== undefined && current.version === spec.version)
    refuse('version-exists', `${spec.name} ${spec.version} is registered; choose a new version`)
  const record: ModelRecord = {
    ...spec,
    owner,
    registeredAt: height,
    calls: 0,
    feesTotal: 0n,
    deposit,
    status: 'active',
  }
  writeModel(state, record)
  state.write(nameKey(spec.name), spec.cid)
  MODELS.add(state, spec.cid)
  return record
}

export function registerModelTx(params: InferenceParams): TxHandler<ModelSpec> {
  return {
    decodeBody: decodeModelSpec,
    spends: () => params.modelDeposit,
    apply(state, tx, spec, ctx) {
      if (spec.price < params.minModelPrice)
        refuse('price-too-low', `price ${spec.price} is below the minimum ${params.minModelPrice}`)
      debit(state, tx.sender, params.modelDeposit)
      registerModel(state, tx.sender, spec, ctx.height, params.modelDeposit)
      ctx.emit({
        type: 'inference.model',
        attributes: {
          cid: spec.cid,
          name: spec.name,
          version: spec.version,
          owner: tx.sender,
          price: String(spec.price),
          deposit: String(params.modelDeposit),
        },
      })
    },
  }
}

function activeModel(state: StateOverlay, cid: string): ModelRecord {
  const model = modelByCid(state, cid)
  if (model === undefined) refuse('unknown-model', `model ${cid} is not registered`)
  if (model.status !== 'active') refuse('model-inactive', `model ${cid} is ${model.status}`)
  return model
}

export const retireModelTx: TxHandler<{ cid: string }> = {
  decodeBody: (body) => ({ cid: canonicalCid(fields(body, 'inference.retireModel', ['cid']).cid, 'cid') }),
  apply(state, tx, body, ctx) {
    const model = activeModel(state, body.cid)
    if (model.owner !== tx.sender) refuse('not-owner', `model ${body.cid} belongs to ${model.owner}`)
    credit(state, tx.sender, model.deposit)
    writeModel(state, { ...model, deposit: 0n, status: 'retired' })
    ctx.emit({ type: 'inference.model_retired', attributes: { cid: body.cid, refunded: String(model.deposit) } })
  },
}

export function reportModelTx(params: InferenceParams): TxHandler<{ cid: string; reason: string }> {
  return {
    decodeBody(body) {
      const b = fields(body, 'inference.reportModel', ['cid', 'reason'])
      return { cid: canonicalCid(b.cid, 'cid'), reason: text(b.reason, 'reason', 64) }
    },
    apply(state, tx, body, ctx) {
      const model = activeModel(state, body.cid)
      if (!isSchedulable(state, tx.sender, ctx.height, params))
        refuse('not-bonded', `only a schedulable worker may report a model; ${tx.sender} is not one`)
      const reports = reportSet(body.cid)
      if (!reports.add(state, tx.sender)) refuse('already-reported', `${tx.sender} already reported ${body.cid}`)
      ctx.emit({
        type: 'inference.model_reported',
        attributes: { cid: body.cid, worker: tx.sender, reason: body.reason },
      })
      if (reports.size(state) < params.quorumSize) return
      burn(state, model.deposit)
      writeModel(state, { ...model, deposit: 0n, status: 'bad' })
      ctx.emit({ type: 'inference.model_bad', attributes: { cid: body.cid, burned: String(model.deposit) } })
    },
  }
}

/** A declaration of provider and runtime; a change of either starts the worker's record afresh. */
function declare(record: WorkerRecord, ep: ExecutionProvider, runtime: string): WorkerRecord {
  if (record.ep === ep && record.runtime === runtime) return record
  return { ...record, ep, runtime, streak: 0 }
}

export function bondTx(params: InferenceParams): TxHandler<{ amount: bigint; ep: ExecutionProvider; runtime: string }> {
  return {
    decodeBody(body) {
      const b = fields(body, 'inference.bond', ['amount', 'ep', 'runtime'])
      return {
        amount: amountOf(b.amount, 'amount', { positive: true }),
        ep: epOf(b.ep, 'ep'),
        runtime: runtimeOf(b.runtime, 'runtime'),
      }
    },
    spends: (body) => body.amount,
    apply(state, tx, body, ctx) {
      debit(state, tx.sender, body.amount)
      const record = declare(workerRecord(state, tx.sender) ?? newWorker(body.ep, body.runtime), body.ep, body.runtime)
      record.bonded += body.amount
      if (record.bonded < params.minWorkerBond)
        refuse(
          'bond-too-small',
          `a worker's bond must reach ${params.minWorkerBond}; this one would be ${record.bonded}`,
        )
      writeWorker(state, tx.sender, record)
      ctx.emit({
        type: 'inference.bond',
        attributes: {
          worker: tx.sender,
          amount: String(body.amount),
          bonded: String(record.bonded),
          ep: body.ep,
          runtime: body.runtime,
        },
      })
    },
  }
}

export function unbondTx(params: InferenceParams): TxHandler<{ amount: bigint }> {
  return {
    decodeBody: (body) => ({
      amount: amountOf(fields(body, 'inference.unbond', ['amount']).amount, 'amount', { positive: true }),
    }),
    apply(state, tx, body, ctx) {
      const record = workerRecord(state, tx.sender)
      if (record === undefined || record.bonded < body.amount)
        refuse('insufficient-stake', `bonded ${record?.bonded ?? 0n} is less than ${body.amount}`)
      const entries = workerUnbonding(state, tx.sender)
      if (entries.length >= MAX_UNBONDING_ENTRIES)
        refuse('too-many-unbondings', `at most ${MAX_UNBONDING_ENTRIES} unbondings at once; withdraw first`)
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

export const withdrawTx: TxHandler<Record<string, never>> = {
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

interface ServeBody {
  ep: ExecutionProvider
  runtime: string
  add: string[]
  remove: string[]
}

export const serveTx: TxHandler<ServeBody> = {
  decodeBody(body) {
    const b = fields(body, 'inference.serve', ['ep', 'runtime', 'add', 'remove'])
    return {
      ep: epOf(b.ep, 'ep'),
      runtime: runtimeOf(b.runtime, 'runtime'),
      add: cidList(b.add, 'add', MAX_SERVE_CHANGES),
      remove: cidList(b.remove, 'remove', MAX_SERVE_CHANGES),
    }
  },
  apply(state, tx, body, ctx) {
    const record = workerRecord(state, tx.sender)
    if (record === undefined) refuse('not-bonded', `${tx.sender} has no worker bond; bond first`)
    writeWorker(state, tx.sender, declare(record, body.ep, body.runtime))
    for (const cid of body.add) {
      activeModel(state, cid)
      if (servingSet(cid).add(state, tx.sender)) state.write(sinceKey(cid, tx.sender), ctx.height)
    }
    for (const cid of body.remove) if (servingSet(cid).delete(state, tx.sender)) state.remove(sinceKey(cid, tx.sender))
    ctx.emit({
      type: 'inference.serve',
      attributes: {
        worker: tx.sender,
        ep: body.ep,
        runtime: body.runtime,
        add: body.add.join(','),
        remove: body.remove.join(','),
      },
    })
  },
}
