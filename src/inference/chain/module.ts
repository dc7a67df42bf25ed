/**
 * inference: the market's chain module - models, worker bonds and declarations, client
 * deposits, settlement of receipts, chain-drawn audits and disputes, epoch rewards. Money is
 * bigint base units; fractions are basis points or parts per million; no floating point touches
 * state or rewards (the tolerance comparison of two output maps is a deterministic predicate).
 *
 * Transactions (`inference.<kind>`, bodies are dag-cbor maps):
 *   registerModel, retireModel, reportModel, bond, unbond, withdraw, serve    registry.ts
 *   deposit, undeposit, reclaim                                              deposits.ts
 *   settle                                                                   settle.ts
 *   challenge, audit, resolve                                                audit.ts
 *
 * Where the money goes: a client's deposit pays each settled fee; the worker gets the fee less
 * `protocolShareBps`, which goes to the inference treasury (`inference/treasury`, counted in the
 * supply, owned by no account) and pays auditors. At each epoch edge (height % epochLength = 0)
 * up to `workerRewardPerEpoch` is minted for workers pro rata to `workerScore`, each cut to its
 * reward room (rewards.ts); what is not paid is not minted. Slashed stake refunds the client and
 * rewards the winning side of a dispute; the rest is burned.
 *
 * Every block records its parent's id under `inference/bh/<height - 1>` (a window of
 * BLOCK_HASH_WINDOW), which is where the chain's own audit draws get their randomness.
 *
 * State layout: state.ts. A chain without an `inference` genesis section and without inference
 * transactions writes nothing under `inference/` but those block ids.
 */
import { GenesisError } from '../../chain/errors.ts'
import type { BlockContext, ChainModule } from '../../chain/host.ts'
import type { ChainParams, GenesisDoc } from '../../chain/genesis.ts'
import type { StateOverlay, StateReader } from '../../chain/state-view.ts'
import { mint, mintUnassigned } from '../../bank/bank.ts'
import type { ExecutionProvider } from '../job.ts'
import { canonicalCid, decodeModelSpec, epOf } from './decode.ts'
import { depositTx, reclaimTx, undepositTx } from './deposits.ts'
import {
  bondTx,
  registerModel,
  registerModelTx,
  reportModelTx,
  retireModelTx,
  serveTx,
  unbondTx,
  withdrawTx,
} from './registry.ts'
import { settleHandler } from './settle.ts'
import { pruneSettled } from './prune.ts'
import { auditHandler, challengeHandler, resolveHandler } from './audit.ts'
import { splitProRata, workerScore } from './rewards.ts'
import {
  BLOCK_HASH_WINDOW,
  BPS,
  batchCount,
  blockHashKey,
  isSchedulable,
  listWorkers,
  minBig,
  newWorker,
  servingSet,
  sinceKey,
  writeWorker,
  type InferenceParams,
} from './state.ts'

// ---- genesis -----------------------------------------------------------------------------------

function loadGenesis(state: StateOverlay, genesis: GenesisDoc): void {
  const section = genesis.inference
  if (section === undefined) return
  for (const [i, m] of section.models.entries()) {
    const { owner, ...body } = m
    try {
      registerModel(state, owner, decodeModelSpec(body), 0, 0n)
    } catch (err) {
      throw new GenesisError(`genesis: inference.models[${i}]: ${(err as Error).message}`, { cause: err })
    }
  }
  for (const [i, w] of section.workers.entries()) {
    let ep: ExecutionProvider
    let models: string[]
    try {
      ep = epOf(w.ep, 'ep')
      models = (w.models ?? []).map((cid, j) => canonicalCid(cid, `models[${j}]`))
    } catch (err) {
      throw new GenesisError(`genesis: inference.workers[${i}]: ${(err as Error).message}`, { cause: err })
    }
    mintUnassigned(state, w.bond)
    writeWorker(state, w.did, { ...newWorker(ep, w.runtime ?? ''), bonded: w.bond })
    for (const cid of models) {
      if (!section.models.some((m) => m.cid === cid))
        throw new GenesisError(`genesis: inference.workers[${i}] serves ${cid}, which is not a genesis model`)
      servingSet(cid).add(state, w.did)
      state.write(sinceKey(cid, w.did), 0)
    }
  }
}

// ---- block ids -------------------------------------------------------------------------------

/** Records the parent's id for the draws, and forgets the one that left the window. */
function recordBlockId(state: StateOverlay, ctx: BlockContext): void {
  if (ctx.height < 2) return
  state.write(blockHashKey(ctx.height - 1), ctx.parentId)
  if (ctx.height - 1 > BLOCK_HASH_WINDOW) state.remove(blockHashKey(ctx.height - 1 - BLOCK_HASH_WINDOW))
}

// ---- epoch rewards -------------------------------------------------------------------------------

/**
 * At an epoch edge: fold the epoch's fees into usage and reward room, score every worker that has
 * usage left (recency applies to those idle of late), split the epoch reward, pay each share up to
 * the worker's room, reset the epoch counters.
 */
function payEpoch(state: StateOverlay, ctx: BlockContext, params: InferenceParams): void {
  if (ctx.height % params.epochLength !== 0) return
  const workers = listWorkers(state)
  if (workers.length === 0) return
  const keep = BigInt(params.usageKeepBps)
  const cap = BigInt(params.rewardCapBps)
  const records = new Map(
    workers.map((w) => {
      const { did, ...record } = w
      record.usage = (record.usage * keep) / BPS + record.epochFees
      record.rewardRoom += (record.epochFees * cap) / BPS
      return [did, record]
    }),
  )
  const scores = [...records]
    .filter(([did, r]) => r.usage > 0n && isSchedulable(state, did, ctx.height, params))
    .map(([did, r]) => ({
      did,
      score: workerScore(
        {
          usageFees: r.usage,
          latencyMsTotal: r.epochLatencyMs,
          latencyJobs: r.epochLatencyJobs,
          auditsPassed: r.auditsPassed,
          auditsFailed: r.auditsFailed,
          lastActiveHeight: r.lastActiveHeight,
        },
        ctx.height,
        params,
      ),
    }))
  const { shares } = splitProRata(params.workerRewardPerEpoch, scores)
  for (const share of shares) {
    const record = records.get(share.did)
    if (record === undefined) continue
    const paid = minBig(share.amount, record.rewardRoom)
    if (paid === 0n) continue
    record.rewardRoom -= paid
    mint(state, share.did, paid)
    const score = scores.find((x) => x.did === share.did)?.score ?? 0n
    ctx.emit({
      type: 'inference.reward',
      attributes: { worker: share.did, amount: String(paid), share: String(share.amount), scorePpm: String(score) },
    })
  }
  for (const [did, record] of records) {
    record.epochFees = 0n
    record.epochLatencyMs = 0n
    record.epochLatencyJobs = 0
    writeWorker(state, did, record)
  }
}

/** Creates the inference module for a chain's parameters. */
export function inferenceModule(params: ChainParams): ChainModule {
  return {
    name: 'inference',
    txs: {
      registerModel: registerModelTx(params),
      retireModel: retireModelTx,
      reportModel: reportModelTx(params),
      bond: bondTx(params),
      unbond: unbondTx(params),
      withdraw: withdrawTx,
      serve: serveTx,
      deposit: depositTx(params),
      undeposit: undepositTx(params),
      reclaim: reclaimTx,
      settle: settleHandler(params),
      challenge: challengeHandler(params),
      audit: auditHandler(params),
      resolve: resolveHandler(params),
    },
    initGenesis: loadGenesis,
    beginBlock(state, ctx) {
      recordBlockId(state, ctx)
      if (params.pruneFromHeight > 0 && ctx.height >= params.pruneFromHeight) pruneSettled(state, ctx, params)
    },
    endBlock(state, ctx) {
      payEpoch(state, ctx, params)
    },
    wantsBlock: (state, height) => settledRecently(state, height, params.disputeWindowBlocks),
  }
}

/**
 * A settlement in the last two dispute windows: its audit slots, challenge window and any dispute's
 * quorum run by height, so a chain without empty blocks keeps making blocks until they have passed
 * (two windows: a dispute opened at the end of the first has its own). Settlements are counted
 * per height (`batchCount`), so this reads at most 2 × disputeWindowBlocks keys.
 */
function settledRecently(state: StateReader, height: number, window: number): boolean {
  for (let h = height - 1; h >= Math.max(1, height - 2 * window); h--) if (batchCount(state, h) > 0) return true
  return false
}
