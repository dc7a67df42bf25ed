/**
 * `inference.settle { receipts, latencies }`: receipts paid at once, and the Merkle proofs that
 * show a receipt was settled.
 *
 * Who may settle a receipt: the job's gateway, at any time within `settleWindowMs` after the
 * deadline, reporting the latency it measured (`latencies[i]`, ms: what speed rewards use); or
 * the worker itself once `gatewayGraceMs` have passed after the deadline (its gateway vanished),
 * with the gateway's dispatch signature as proof that the job was sent to it. Nobody else. A
 * receipt settles only with the dispatch to its own worker, so a worker that was sent a job and
 * answered "busy" cannot settle a made-up result for the job another worker then ran.
 *
 * Each receipt is checked in order; one that fails is skipped with an
 * `inference.receipt_rejected` event and the others settle (a batch with no valid receipt is
 * refused). Cheap state checks run before signature checks, so a batch of junk costs little, and
 * signatures the transaction already proves are not checked again (the job's when the sender is
 * its client; the dispatch when the sender is the gateway).
 *
 * The receipts' signatures are listed by the handler's `signatures` (labels `<i>:worker`,
 * `<i>:job`, `<i>:dispatch` for receipt i), so a node verifies them on its signature pool at
 * mempool admission (or, for a block's transaction it never saw, while validating the block), and
 * execution skips those it verified valid for this very transaction (`ctx.verified`). Anything
 * else, a forged signature included, is verified here, inline: the outcome is the same either way.
 *
 * A settled receipt takes `fee` from the client's deposit for the gateway:
 * `fee × protocolShareBps / 10 000` (rounded down) to the inference treasury, the rest to the
 * worker. A properly dispatched receipt that the deposit cannot pay proves the gateway dispatched
 * more than the deposit held: the gateway is recorded as overdrawn, and workers refuse it for
 * `overdraftBanBlocks`.
 */
import { toHex } from '../../core/bytes.ts'
import { merkleProof, merkleRoot, verifyMerkleProof, type MerkleProof } from '../../core/merkle.ts'
import { TxError } from '../../chain/errors.ts'
import type { BodySignature, TxContext, TxHandler } from '../../chain/host.ts'
import { signingDigest } from '../../core/signing.ts'
import { ed25519PublicKeyFromDid } from '../../identity/did-key.ts'
import { governedUint } from '../../chain/governed.ts'
import { LINEAGE_SHARE_BPS, LINEAGE_SHARE_PARAM, type ModelLineage } from './lineage.ts'
import type { StateOverlay, StateReader } from '../../chain/state-view.ts'
import { credit } from '../../bank/bank.ts'
import {
  DISPATCH_SIGNING_KIND,
  JOB_SIGNING_KIND,
  RECEIPT_SIGNING_KIND,
  dispatchSignBytes,
  jobId,
  jobSignBytes,
  receiptId,
  receiptSignBytes,
  verifyDispatch,
  verifyJob,
  verifyWorkerSignature,
  type Receipt,
} from '../job.ts'
import { fields, receiptList, uintList } from './decode.ts'
import { spendDeposit } from './deposits.ts'
import {
  BPS,
  TREASURY_KEY,
  addSaturating,
  batchCount,
  batchCountKey,
  batchKey,
  depositOf,
  depositTotal,
  feeFor,
  jobKey,
  modelByCid,
  overdrawnKey,
  readAmount,
  servingSet,
  settleBatch,
  settlementOf,
  workerRecord,
  writeAmount,
  writeModel,
  writeWorker,
  type InferenceParams,
  type JobSettlement,
  type ModelRecord,
  type SettleBatch,
  type WorkerRecord,
} from './state.ts'

/** Why a receipt in a batch was skipped (the `reason` of `inference.receipt_rejected`). */
export type RejectReason =
  | 'wrong-chain'
  | 'already-settled'
  | 'unknown-model'
  | 'model-inactive'
  | 'wrong-fee'
  | 'fee-above-max'
  | 'expired'
  | 'started-late'
  | 'not-yours'
  | 'too-early'
  | 'not-dispatched'
  | 'not-bonded'
  | 'not-serving'
  | 'ep-mismatch'
  | 'deposit-exhausted'
  | 'bad-signature'

/** Who submits the settlement, as far as one receipt is concerned. */
export type Settler = 'gateway' | 'worker'

/** Where receipt `index` of a transaction stands with the signatures verified before execution. */
export interface Preverified {
  index: number
  verified: ReadonlySet<string>
}

/**
 * The signatures of `r` that the transaction does not already prove; those `pre` says were
 * verified valid for this transaction are not verified again.
 */
function signaturesHold(r: Receipt, sender: string, pre?: Preverified): boolean {
  const done = (which: string): boolean => pre?.verified.has(`${pre.index}:${which}`) === true
  if (!done('worker') && !verifyWorkerSignature(r)) return false
  if (r.job.client !== sender && !done('job') && !verifyJob(r.job)) return false
  return r.job.gateway === sender || done('dispatch') || verifyDispatch(r)
}

function signatureOf(label: string, did: string, kind: string, bytes: Uint8Array, signature: Uint8Array) {
  try {
    return { label, item: { publicKey: ed25519PublicKeyFromDid(did), digest: signingDigest(kind, bytes), signature } }
  } catch {
    return undefined // not a did:key: verified (and refused) in execution
  }
}

/** Every signature `signaturesHold` may check for these receipts settled by `sender`. */
export function receiptSignatures(receipts: readonly Receipt[], sender: string): BodySignature[] {
  const out: Array<BodySignature | undefined> = []
  receipts.forEach((r, i) => {
    out.push(signatureOf(`${i}:worker`, r.worker, RECEIPT_SIGNING_KIND, receiptSignBytes(r), r.signature))
    if (r.job.client !== sender)
      out.push(signatureOf(`${i}:job`, r.job.client, JOB_SIGNING_KIND, jobSignBytes(r.job), r.job.signature))
    if (r.job.gateway !== sender && r.dispatch !== null)
      out.push(
        signatureOf(
          `${i}:dispatch`,
          r.job.gateway,
          DISPATCH_SIGNING_KIND,
          dispatchSignBytes(jobId(r.job), r.worker),
          r.dispatch,
        ),
      )
  })
  return out.filter((s): s is BodySignature => s !== undefined)
}

/**
 * The first rule receipt `r` breaks when `sender` settles it, or null when it can settle now.
 * Pure reads; `overdrawn` is set when the refusal proves the gateway over-dispatched.
 */
export function rejectReason(
  state: StateReader,
  r: Receipt,
  sender: string,
  ctx: Pick<TxContext, 'chainId' | 'time'>,
  params: Pick<InferenceParams, 'settleWindowMs' | 'gatewayGraceMs'>,
  records: Pick<Touched, 'worker' | 'model'> = {
    worker: (did) => workerRecord(state, did),
    model: (cid) => modelByCid(state, cid),
  },
  pre?: Preverified,
): { reason: RejectReason; overdrawn?: boolean } | null {
  const job = r.job
  if (job.chainId !== ctx.chainId) return { reason: 'wrong-chain' }
  if (settlementOf(state, toHex(jobId(job))) !== undefined) return { reason: 'already-settled' }
  const model = records.model(job.model)
  if (model === undefined) return { reason: 'unknown-model' }
  if (model.status !== 'active') return { reason: 'model-inactive' }
  if (r.fee !== feeFor(model, r.usage)) return { reason: 'wrong-fee' }
  if (r.fee > job.maxFee) return { reason: 'fee-above-max' }
  if (ctx.time > job.deadline + params.settleWindowMs) return { reason: 'expired' }
  if (r.startedAt > job.deadline) return { reason: 'started-late' }
  if (sender !== job.gateway && sender !== r.worker) return { reason: 'not-yours' }
  if (sender !== job.gateway && ctx.time <= job.deadline + params.gatewayGraceMs) return { reason: 'too-early' }
  if (r.dispatch === null) return { reason: 'not-dispatched' }
  const worker = records.worker(r.worker)
  if (worker === undefined || worker.bonded === 0n) return { reason: 'not-bonded' }
  if (!servingSet(job.model).has(state, r.worker)) return { reason: 'not-serving' }
  if (r.ep !== worker.ep || r.runtime !== worker.runtime) return { reason: 'ep-mismatch' }
  const covered = depositTotal(depositOf(state, job.client, job.gateway)) >= r.fee
  if (!signaturesHold(r, sender, pre)) return { reason: 'bad-signature' }
  if (!covered) return { reason: 'deposit-exhausted', overdrawn: true }
  return null
}

/**
 * Worker and model records touched by one settle transaction, decoded once and written once at
 * the end (a batch of 96 receipts from a handful of workers would otherwise decode and re-encode
 * the same records 96 times).
 */
class Touched {
  readonly workers = new Map<string, WorkerRecord | undefined>()
  readonly models = new Map<string, ModelRecord | undefined>()
  readonly #state: StateOverlay

  constructor(state: StateOverlay) {
    this.#state = state
  }

  worker(did: string): WorkerRecord | undefined {
    if (!this.workers.has(did)) this.workers.set(did, workerRecord(this.#state, did))
    return this.workers.get(did)
  }

  model(cid: string): ModelRecord | undefined {
    if (!this.models.has(cid)) this.models.set(cid, modelByCid(this.#state, cid))
    return this.models.get(cid)
  }

  flush(): void {
    for (const [did, record] of this.workers) if (record !== undefined) writeWorker(this.#state, did, record)
    for (const record of this.models.values()) if (record !== undefined) writeModel(this.#state, record)
  }
}

/**
 * A model that came from an arena task or an FL round carries its lineage (lineage.ts): its
 * contributors share `inference.lineageShareBps` (governed; default LINEAGE_SHARE_BPS) of what the
 * worker earns from each job on it, equally; the rest of the division stays with the worker.
 * Returns what was paid to them.
 */
function payLineage(state: StateOverlay, model: ModelRecord | undefined, earned: bigint): bigint {
  const contributors = (model as { lineage?: ModelLineage } | undefined)?.lineage?.contributors ?? []
  if (contributors.length === 0 || earned === 0n) return 0n
  const bps = governedUint(state, LINEAGE_SHARE_PARAM, LINEAGE_SHARE_BPS)
  const each = (earned * (bps > BPS ? BPS : bps)) / BPS / BigInt(contributors.length)
  if (each === 0n) return 0n
  for (const c of contributors) credit(state, c.did, each)
  return each * BigInt(contributors.length)
}

/** Moves the fee and records the job. */
function settleOne(
  state: StateOverlay,
  touched: Touched,
  r: Receipt,
  at: { height: number; batch: number; leaf: number; id: Uint8Array; job: string; latencyMs: number | null },
  params: InferenceParams,
): JobSettlement {
  const share = (r.fee * BigInt(params.protocolShareBps)) / BPS
  spendDeposit(state, r.job.client, r.job.gateway, r.fee)
  credit(state, r.worker, r.fee - share - payLineage(state, touched.model(r.job.model), r.fee - share))
  writeAmount(state, TREASURY_KEY, readAmount(state, TREASURY_KEY) + share)
  const worker = touched.worker(r.worker)
  const settlement: JobSettlement = {
    receiptId: at.id,
    height: at.height,
    batch: at.batch,
    leaf: at.leaf,
    worker: r.worker,
    client: r.job.client,
    gateway: r.job.gateway,
    model: r.job.model,
    fee: r.fee,
    share,
    outputHash: r.outputHash,
    ep: r.ep,
    runtime: r.runtime,
    streak: worker?.streak ?? 0,
    bonded: worker?.bonded ?? 0n,
    challenged: null,
  }
  state.write(jobKey(at.job), settlement)
  recordWork(touched, r, at.height, at.latencyMs)
  return settlement
}

/**
 * Worker and model counters for one settled receipt. Usage counts only fees from clients other
 * than the worker; latency only what a gateway measured.
 */
function recordWork(touched: Touched, r: Receipt, height: number, latencyMs: number | null): void {
  const worker = touched.worker(r.worker)
  if (worker !== undefined) {
    worker.jobs += 1
    worker.lastActiveHeight = height
    if (r.job.client !== r.worker) worker.epochFees = addSaturating(worker.epochFees, r.fee)
    if (latencyMs !== null) {
      worker.latencyMsTotal = addSaturating(worker.latencyMsTotal, BigInt(latencyMs))
      worker.latencyJobs += 1
      worker.epochLatencyMs = addSaturating(worker.epochLatencyMs, BigInt(latencyMs))
      worker.epochLatencyJobs += 1
    }
  }
  const model = touched.model(r.job.model)
  if (model === undefined) return
  model.calls += 1
  model.feesTotal = addSaturating(model.feesTotal, r.fee)
}

interface SettleBody {
  receipts: Receipt[]
  latencies: number[]
}

export function settleHandler(params: InferenceParams): TxHandler<SettleBody> {
  return {
    decodeBody(body) {
      const b = fields(body, 'inference.settle', ['receipts', 'latencies'])
      const receipts = receiptList(b.receipts, 'receipts', params.maxReceiptsPerSettle)
      const latencies = uintList(b.latencies, 'latencies', params.maxReceiptsPerSettle)
      if (latencies.length !== receipts.length)
        throw new TxError('malformed', `latencies must have one entry per receipt (${receipts.length})`)
      return { receipts, latencies }
    },
    signatures(tx, body) {
      return receiptSignatures(body.receipts, tx.sender)
    },
    apply(state, tx, body, ctx) {
      const batch = batchCount(state, ctx.height)
      const touched = new Touched(state)
      const ids: Uint8Array[] = []
      const jobIds: Uint8Array[] = []
      let lastDeadline = 0
      const rejected: string[] = []
      let overdrafts = 0
      body.receipts.forEach((r, i) => {
        const id = receiptId(r)
        const pre = ctx.verified === undefined ? undefined : { index: i, verified: ctx.verified }
        const verdict = rejectReason(state, r, tx.sender, ctx, params, touched, pre)
        if (verdict !== null) {
          rejected.push(verdict.reason)
          if (verdict.overdrawn === true) {
            overdrafts++
            state.write(overdrawnKey(r.job.gateway), ctx.height)
            ctx.emit({
              type: 'inference.overdrawn',
              attributes: {
                gateway: r.job.gateway,
                client: r.job.client,
                worker: r.worker,
                jobId: toHex(jobId(r.job)),
              },
            })
          }
          ctx.emit({ type: 'inference.receipt_rejected', attributes: { receiptId: toHex(id), reason: verdict.reason } })
          return
        }
        const latencyMs = tx.sender === r.job.gateway ? Math.min(body.latencies[i] as number, params.maxJobTtlMs) : null
        const job = jobId(r.job)
        const hex = toHex(job)
        const s = settleOne(
          state,
          touched,
          r,
          { height: ctx.height, batch, leaf: ids.length, id, job: hex, latencyMs },
          params,
        )
        ids.push(id)
        jobIds.push(job)
        lastDeadline = Math.max(lastDeadline, r.job.deadline)
        ctx.emit({ type: 'inference.settled', attributes: settledAttributes(s, hex) })
      })
      touched.flush()
      // A batch that settles nothing fails, unless it proved an overdraft (that record must stay).
      if (ids.length === 0 && overdrafts > 0) return
      if (ids.length === 0)
        throw new TxError(
          'no-valid-receipts',
          `none of the ${body.receipts.length} receipts can settle (first reason: ${rejected[0] ?? 'none'})`,
        )
      const record: SettleBatch = { root: merkleRoot(ids), count: ids.length, receiptIds: ids, jobIds, lastDeadline }
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
    gateway: s.gateway,
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
