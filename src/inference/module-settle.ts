/**
 * `inference.settle`: a batch of receipts paid at once, and the Merkle proofs that show a
 * receipt was settled.
 *
 * Each receipt is checked in order; one that fails is skipped with an
 * `inference.receipt_rejected` event and the others settle (a batch with no valid receipt is
 * refused). Cheap state checks run before the two signature checks, so a batch of junk costs
 * little. A settled receipt moves `fee` from the client: `fee × protocolShareBps / 10 000`
 * (rounded down) to the inference treasury, the rest to the worker. The receipts' ids form a
 * Merkle tree (core/merkle.ts) whose root and leaves are stored with the batch, so an inclusion
 * proof can be built from state alone (`inclusionProof`).
 */
import { toHex } from '../core/bytes.ts'
import { merkleProof, merkleRoot, verifyMerkleProof, type MerkleProof } from '../core/merkle.ts'
import { TxError } from '../chain/errors.ts'
import type { TxContext, TxHandler } from '../chain/host.ts'
import type { StateOverlay, StateReader } from '../chain/state-view.ts'
import { balanceOf, credit, debit } from '../bank/bank.ts'
import { jobId, receiptId, verifyReceipt, type Receipt } from './job.ts'
import { fields, receiptList } from './module-decode.ts'
import {
  ACTIVE_KEY,
  BPS,
  TREASURY_KEY,
  addSaturating,
  addToList,
  batchCount,
  batchCountKey,
  batchKey,
  jobKey,
  modelByCid,
  readAmount,
  settleBatch,
  settlementOf,
  workerRecord,
  writeAmount,
  writeModel,
  writeWorker,
  type InferenceParams,
  type JobSettlement,
  type SettleBatch,
} from './module-state.ts'

/** Why a receipt in a batch was skipped (the `reason` of `inference.receipt_rejected`). */
export type RejectReason =
  | 'wrong-chain'
  | 'already-settled'
  | 'unknown-model'
  | 'wrong-fee'
  | 'fee-above-max'
  | 'expired'
  | 'started-late'
  | 'not-bonded'
  | 'insufficient-funds'
  | 'bad-signature'

/** The first rule a receipt breaks, or null when it can settle now. */
export function rejectReason(
  state: StateReader,
  r: Receipt,
  ctx: Pick<TxContext, 'chainId' | 'time'>,
  params: Pick<InferenceParams, 'settleWindowMs'>,
): RejectReason | null {
  if (r.job.chainId !== ctx.chainId) return 'wrong-chain'
  if (settlementOf(state, toHex(jobId(r.job))) !== undefined) return 'already-settled'
  const model = modelByCid(state, r.job.model)
  if (model === undefined) return 'unknown-model'
  if (r.fee !== model.price) return 'wrong-fee'
  if (r.fee > r.job.maxFee) return 'fee-above-max'
  if (ctx.time > r.job.deadline + params.settleWindowMs) return 'expired'
  if (r.startedAt > r.job.deadline) return 'started-late'
  if ((workerRecord(state, r.worker)?.bonded ?? 0n) === 0n) return 'not-bonded'
  if (balanceOf(state, r.job.client) < r.fee) return 'insufficient-funds'
  if (!verifyReceipt(r)) return 'bad-signature'
  return null
}

/** Moves the fee and records the job; returns the protocol share. */
function settleOne(
  state: StateOverlay,
  r: Receipt,
  at: { height: number; batch: number; leaf: number; id: Uint8Array },
  params: InferenceParams,
): JobSettlement {
  const share = (r.fee * BigInt(params.protocolShareBps)) / BPS
  debit(state, r.job.client, r.fee)
  credit(state, r.worker, r.fee - share)
  writeAmount(state, TREASURY_KEY, readAmount(state, TREASURY_KEY) + share)
  const settlement: JobSettlement = {
    receiptId: at.id,
    height: at.height,
    batch: at.batch,
    leaf: at.leaf,
    worker: r.worker,
    client: r.job.client,
    model: r.job.model,
    fee: r.fee,
    share,
  }
  state.write(jobKey(toHex(jobId(r.job))), settlement)
  recordWork(state, r, at.height)
  return settlement
}

/** Worker and model counters for one settled receipt. */
function recordWork(state: StateOverlay, r: Receipt, height: number): void {
  const worker = workerRecord(state, r.worker)
  if (worker === undefined) return
  const latency = BigInt(r.finishedAt - r.startedAt)
  worker.jobs += 1
  worker.computeMicrosTotal = addSaturating(worker.computeMicrosTotal, BigInt(r.computeMicros))
  worker.latencyMsTotal = addSaturating(worker.latencyMsTotal, latency)
  worker.lastActiveHeight = height
  worker.epochJobs += 1
  worker.epochLatencyMs = addSaturating(worker.epochLatencyMs, latency)
  writeWorker(state, r.worker, worker)
  addToList(state, ACTIVE_KEY, r.worker)
  const model = modelByCid(state, r.job.model)
  if (model === undefined) return
  model.calls += 1
  model.feesTotal = addSaturating(model.feesTotal, r.fee)
  writeModel(state, model)
}

export function settleHandler(params: InferenceParams): TxHandler<{ receipts: Receipt[] }> {
  return {
    decodeBody(body) {
      const b = fields(body, 'inference.settle', ['receipts'])
      return { receipts: receiptList(b.receipts, 'receipts', params.maxReceiptsPerSettle) }
    },
    apply(state, _tx, body, ctx) {
      const batch = batchCount(state, ctx.height)
      const ids: Uint8Array[] = []
      const rejected: string[] = []
      for (const r of body.receipts) {
        const id = receiptId(r)
        const reason = rejectReason(state, r, ctx, params)
        if (reason !== null) {
          rejected.push(reason)
          ctx.emit({ type: 'inference.receipt_rejected', attributes: { receiptId: toHex(id), reason } })
          continue
        }
        const s = settleOne(state, r, { height: ctx.height, batch, leaf: ids.length, id }, params)
        ids.push(id)
        ctx.emit({ type: 'inference.settled', attributes: settledAttributes(s, toHex(jobId(r.job))) })
      }
      if (ids.length === 0)
        throw new TxError(
          'no-valid-receipts',
          `none of the ${body.receipts.length} receipts can settle (first reason: ${rejected[0] ?? 'none'})`,
        )
      const record: SettleBatch = { root: merkleRoot(ids), count: ids.length, receiptIds: ids }
      state.write(batchKey(ctx.height, batch), record)
      state.write(batchCountKey(ctx.height), batch + 1)
      ctx.emit({
        type: 'inference.batch',
        attributes: {
          height: String(ctx.height),
          batch: String(batch),
          root: toHex(record.root),
          count: String(ids.length),
          rejected: String(rejected.length),
        },
      })
    },
  }
}

function settledAttributes(s: JobSettlement, jobIdHex: string): Record<string, string> {
  return {
    jobId: jobIdHex,
    receiptId: toHex(s.receiptId),
    worker: s.worker,
    client: s.client,
    model: s.model,
    fee: s.fee.toString(),
    share: s.share.toString(),
    batch: String(s.batch),
    leaf: String(s.leaf),
  }
}

// ---- inclusion proofs ------------------------------------------------------------------------

/** The Merkle proof that `receiptIds[index]` is in a batch with those ids (what the chain stored). */
export function buildInclusionProof(receiptIds: readonly Uint8Array[], index: number): MerkleProof {
  return merkleProof(receiptIds, index)
}

/** True when `receiptIdBytes` is leaf `proof.index` under `root`. */
export function verifyInclusion(root: Uint8Array, receiptIdBytes: Uint8Array, proof: MerkleProof): boolean {
  return verifyMerkleProof(root, receiptIdBytes, proof)
}

export interface InclusionProof {
  settlement: JobSettlement
  root: Uint8Array
  proof: MerkleProof
}

/** Proof, from state alone, that a job's receipt was settled in its batch. */
export function inclusionProof(state: StateReader, jobIdHex: string): InclusionProof | undefined {
  const settlement = settlementOf(state, jobIdHex)
  if (settlement === undefined) return undefined
  const batch = settleBatch(state, settlement.height, settlement.batch)
  if (batch === undefined) return undefined
  return { settlement, root: batch.root, proof: buildInclusionProof(batch.receiptIds, settlement.leaf) }
}
