/**
 * Audits and disputes: rules 2-4 of the verification notes (BOINC adaptive replication, quorum re-runs).
 *
 * Which results are audited: `shouldAudit` — always while the worker's streak (consecutive
 * passed audits, BOINC's CV) is below `auditThreshold`, then iff
 * sha256(laterBlockHash ‖ receiptId), read as a 256-bit big-endian integer, is below
 * ⌊2^256 / streak⌋: probability 1/streak, decided by a block the worker could not know.
 * The chain does not enforce the choice (block hashes are not in state): the audit service
 * applies it, and `inference.audit` accepts any bonded auditor's receipt for a settled job.
 *
 * The chain compares output hashes EXACTLY. Results from different execution providers (CoreML
 * vs CPU) may differ in the last bits; judging them against the model's stored tolerance
 * (max-abs, top-1) happens off chain, before anyone submits a mismatching audit. An auditor that
 * finds a cross-provider difference within tolerance submits nothing (no streak credit, no
 * dispute); only a difference beyond tolerance, or any difference on the same provider and
 * runtime, should become a dispute.
 *
 *   inference.audit   { original, audit }   same job, different workers, original settled.
 *     equal hashes    → original's streak += 1, auditsPassed += 1; the first confirming auditor
 *                       is paid min(auditReward, the job's protocol share, treasury) from the
 *                       treasury (capped by the share, so paying oneself jobs to audit them
 *                       cannot drain the treasury);
 *     different       → inference/dispute/<jobId> and an `inference.dispute` event.
 *   inference.resolve { jobId, quorum }     ≥ quorumSize receipts of distinct schedulable workers,
 *     neither side of the dispute; a strict majority of output hashes decides. Only a side that
 *     ran on the majority's execution provider and runtime is judged (exact hashes mean nothing
 *     across providers); each judged side that differs from it is slashed `workerSlashBps` of its bonded and unbonding stake, its streak
 *     reset, auditsFailed += 1, quarantined for `quarantineBlocks`; the other side gets
 *     `challengerRewardBps` of the slash and the rest is burned. Quorum members who agree with
 *     the majority get streak += 1. (If both sides lose, all of the slash is burned.)
 *
 * Limits, documented rather than hidden: the chain cannot check that the auditor and quorum were
 * drawn at random (that needs block hashes in state); an attacker owning quorumSize + 1 bonded
 * workers could frame an honest one, so the bond must be priced above what that would gain. The
 * settled fee of a job whose worker lost is not refunded to the client.
 */
import { concat, equals, toHex } from '../core/bytes.ts'
import { sha256 } from '../core/hash.ts'
import { TxError } from '../chain/errors.ts'
import { DEFAULT_PARAMS } from '../chain/genesis.ts'
import type { TxContext, TxHandler } from '../chain/host.ts'
import type { StateOverlay, StateReader } from '../chain/state-view.ts'
import { burn, credit } from '../bank/bank.ts'
import { jobId, receiptId, receiptValue, verifyReceipt, type Receipt } from './job.ts'
import { MAX_QUORUM, bytes32, fields, receiptList, receiptOf } from './module-decode.ts'
import {
  BPS,
  TREASURY_KEY,
  auditKey,
  auditOf,
  disputeKey,
  disputeOf,
  isSchedulable,
  readAmount,
  settlementOf,
  workerRecord,
  workerUnbonding,
  writeAmount,
  writeUnbonding,
  writeWorker,
  type AuditRecord,
  type DisputeRecord,
  type InferenceParams,
  type WorkerRecord,
} from './module-state.ts'

const TWO_256 = 1n << 256n

/** The audit rule as a pure function of the worker's streak (see the file header). */
export function shouldAudit(
  streak: number,
  receiptIdBytes: Uint8Array,
  laterBlockHash: Uint8Array,
  auditThreshold: number,
): boolean {
  if (streak < auditThreshold || streak <= 0) return true
  const draw = BigInt(`0x${toHex(sha256(concat(laterBlockHash, receiptIdBytes)))}`)
  return draw < TWO_256 / BigInt(streak)
}

/**
 * Whether the receipt `receiptIdBytes` by `workerDid` must be audited, given a later block's hash.
 * Pass the chain's own params; the default is DEFAULT_PARAMS, right only for default chains.
 */
export function auditDecision(
  state: StateReader,
  receiptIdBytes: Uint8Array,
  workerDid: string,
  laterBlockHash: Uint8Array,
  params: Pick<InferenceParams, 'auditThreshold'> = DEFAULT_PARAMS,
): boolean {
  const streak = workerRecord(state, workerDid)?.streak ?? 0
  return shouldAudit(streak, receiptIdBytes, laterBlockHash, params.auditThreshold)
}

function refuse(reason: string, message: string): never {
  throw new TxError(reason, message)
}

function verified(r: Receipt, what: string): void {
  if (!verifyReceipt(r)) refuse('bad-signature', `the ${what} receipt's signatures do not verify`)
}

function mustHaveWorker(state: StateReader, did: string, what: string): WorkerRecord {
  const record = workerRecord(state, did)
  if (record === undefined) refuse('not-bonded', `the ${what} ${did} is not a worker`)
  return record
}

// ---- inference.audit ---------------------------------------------------------------------------

interface AuditBody {
  original: Receipt
  audit: Receipt
}

function checkAudit(state: StateReader, body: AuditBody, params: InferenceParams, height: number): string {
  const { original, audit } = body
  const id = toHex(jobId(original.job))
  if (id !== toHex(jobId(audit.job))) refuse('job-mismatch', 'the two receipts are for different jobs')
  if (original.worker === audit.worker) refuse('same-worker', 'a worker cannot audit itself')
  const settlement = settlementOf(state, id)
  if (settlement === undefined) refuse('not-settled', `job ${id} has not been settled`)
  if (!equals(settlement.receiptId, receiptId(original)))
    refuse('not-settled-receipt', `the original receipt is not the one settled for job ${id}`)
  if (disputeOf(state, id) !== undefined) refuse('already-disputed', `job ${id} is already disputed`)
  if (!isSchedulable(state, audit.worker, height, params))
    refuse(
      'not-bonded',
      `auditor ${audit.worker} is not bonded with at least ${params.minWorkerBond} or is quarantined`,
    )
  mustHaveWorker(state, original.worker, 'original worker')
  verified(original, 'original')
  verified(audit, 'audit')
  return id
}

/** Equal hashes: the original's streak grows; the first confirming auditor is paid from the treasury. */
function passAudit(state: StateOverlay, body: AuditBody, id: string, ctx: TxContext, params: InferenceParams): void {
  if (auditOf(state, id) !== undefined) refuse('already-audited', `job ${id} already passed an audit`)
  const worker = mustHaveWorker(state, body.original.worker, 'original worker')
  worker.streak += 1
  worker.auditsPassed += 1
  writeWorker(state, body.original.worker, worker)
  const treasury = readAmount(state, TREASURY_KEY)
  const share = settlementOf(state, id)?.share ?? 0n
  const paid = [params.auditReward, share, treasury].reduce((a, b) => (a < b ? a : b))
  if (paid > 0n) {
    writeAmount(state, TREASURY_KEY, treasury - paid)
    credit(state, body.audit.worker, paid)
  }
  const record: AuditRecord = { auditor: body.audit.worker, height: ctx.height, receiptId: receiptId(body.audit) }
  state.write(auditKey(id), record)
  ctx.emit({
    type: 'inference.audit_passed',
    attributes: { jobId: id, worker: body.original.worker, auditor: body.audit.worker, reward: paid.toString() },
  })
}

export function auditHandler(params: InferenceParams): TxHandler<AuditBody> {
  return {
    decodeBody(body) {
      const b = fields(body, 'inference.audit', ['original', 'audit'])
      return { original: receiptOf(b.original, 'original'), audit: receiptOf(b.audit, 'audit') }
    },
    apply(state, _tx, body, ctx) {
      const id = checkAudit(state, body, params, ctx.height)
      if (equals(body.original.outputHash, body.audit.outputHash)) {
        passAudit(state, body, id, ctx, params)
        return
      }
      state.write(disputeKey(id), {
        original: receiptValue(body.original),
        audit: receiptValue(body.audit),
        height: ctx.height,
        resolved: null,
      })
      ctx.emit({
        type: 'inference.dispute',
        attributes: { jobId: id, worker: body.original.worker, auditor: body.audit.worker },
      })
    },
  }
}

// ---- inference.resolve -------------------------------------------------------------------------

interface ResolveBody {
  jobId: Uint8Array
  quorum: Receipt[]
}

/** The output hash held by a strict majority of `quorum`, or null. */
export function majorityHash(quorum: readonly Receipt[]): Uint8Array | null {
  const counts = new Map<string, { hash: Uint8Array; n: number }>()
  for (const r of quorum) {
    const key = toHex(r.outputHash)
    const entry = counts.get(key) ?? { hash: r.outputHash, n: 0 }
    entry.n += 1
    counts.set(key, entry)
  }
  for (const { hash, n } of counts.values()) if (2 * n > quorum.length) return hash
  return null
}

function checkQuorum(
  state: StateReader,
  dispute: DisputeRecord,
  body: ResolveBody,
  params: InferenceParams,
  height: number,
): void {
  const id = toHex(body.jobId)
  const excluded = new Set([dispute.original.worker, dispute.audit.worker])
  const seen = new Set<string>()
  for (const [i, r] of body.quorum.entries()) {
    if (toHex(jobId(r.job)) !== id) refuse('job-mismatch', `quorum[${i}] is for another job`)
    if (excluded.has(r.worker)) refuse('quorum-conflict', `quorum[${i}] is by a side of the dispute`)
    if (seen.has(r.worker)) refuse('quorum-duplicate', `quorum[${i}] repeats worker ${r.worker}`)
    seen.add(r.worker)
    if (!isSchedulable(state, r.worker, height, params))
      refuse('not-bonded', `quorum[${i}] worker ${r.worker} is not bonded or is quarantined`)
    verified(r, `quorum[${i}]`)
  }
  if (seen.size < params.quorumSize)
    refuse('quorum-too-small', `a quorum needs ${params.quorumSize} workers, got ${seen.size}`)
}

/** Cuts `workerSlashBps` from a worker's bonded and unbonding stake; returns the amount. */
function slashWorker(state: StateOverlay, did: string, params: InferenceParams, height: number): bigint {
  const record = workerRecord(state, did)
  if (record === undefined) return 0n
  const fraction = BigInt(params.workerSlashBps)
  const fromBonded = (record.bonded * fraction) / BPS
  let fromUnbonding = 0n
  const entries = workerUnbonding(state, did).map((e) => {
    const cut = (e.amount * fraction) / BPS
    fromUnbonding += cut
    return { amount: e.amount - cut, completes: e.completes }
  })
  writeUnbonding(
    state,
    did,
    entries.filter((e) => e.amount > 0n),
  )
  record.bonded -= fromBonded
  record.streak = 0
  record.auditsFailed += 1
  record.slashes += 1
  record.quarantinedUntil = Math.max(record.quarantinedUntil, height + params.quarantineBlocks)
  writeWorker(state, did, record)
  return fromBonded + fromUnbonding
}

/** Streak += 1 for everyone who agreed with the majority; the vindicated original also passed an audit. */
function creditAgreeing(state: StateOverlay, dids: readonly string[], vindicated: string | null): void {
  for (const did of dids) {
    const record = workerRecord(state, did)
    if (record === undefined) continue
    record.streak += 1
    if (did === vindicated) record.auditsPassed += 1
    writeWorker(state, did, record)
  }
}

/** Slashes the side(s) that differ from the majority, pays the other, credits the quorum. */
function settleDispute(
  state: StateOverlay,
  dispute: DisputeRecord,
  body: ResolveBody,
  majority: Uint8Array,
  ctx: TxContext,
  params: InferenceParams,
): string[] {
  const id = toHex(body.jobId)
  // Exact hashes are comparable only between runs on the same execution provider and runtime,
  // so a side is judged only when it ran where the majority ran; a side on another provider
  // (whose honest output may differ in the last bits) is neither slashed nor rewarded.
  const reference = body.quorum.find((r) => equals(r.outputHash, majority)) as Receipt
  const comparable = (r: Receipt): boolean => r.ep === reference.ep && r.runtime === reference.runtime
  const sides = [dispute.original, dispute.audit].filter(comparable)
  const losers = sides.filter((r) => !equals(r.outputHash, majority)).map((r) => r.worker)
  // The two sides' hashes differ, so at most one matches the majority.
  const winner = sides.find((r) => equals(r.outputHash, majority))?.worker ?? null
  let slashed = 0n
  for (const loser of losers) {
    const amount = slashWorker(state, loser, params, ctx.height)
    slashed += amount
    ctx.emit({
      type: 'inference.slashed',
      attributes: { worker: loser, amount: amount.toString(), jobId: id, reason: 'audit-mismatch' },
    })
  }
  const reward = winner === null ? 0n : (slashed * BigInt(params.challengerRewardBps)) / BPS
  if (winner !== null && reward > 0n) credit(state, winner, reward)
  burn(state, slashed - reward)
  const agreeing = body.quorum.filter((r) => equals(r.outputHash, majority)).map((r) => r.worker)
  const vindicated = winner === dispute.original.worker ? winner : null
  creditAgreeing(state, winner === null ? agreeing : [...agreeing, winner], vindicated)
  ctx.emit({
    type: 'inference.resolved',
    attributes: {
      jobId: id,
      majority: toHex(majority),
      slashed: losers.join(','),
      winner: winner ?? '',
      reward: reward.toString(),
      burned: (slashed - reward).toString(),
    },
  })
  return losers
}

export function resolveHandler(params: InferenceParams): TxHandler<ResolveBody> {
  return {
    decodeBody(body) {
      const b = fields(body, 'inference.resolve', ['jobId', 'quorum'])
      return { jobId: bytes32(b.jobId, 'jobId'), quorum: receiptList(b.quorum, 'quorum', MAX_QUORUM) }
    },
    apply(state, _tx, body, ctx) {
      const id = toHex(body.jobId)
      const dispute = disputeOf(state, id)
      if (dispute === undefined) refuse('no-dispute', `job ${id} has no dispute`)
      if (dispute.resolved !== null)
        refuse('already-resolved', `the dispute over job ${id} was resolved at height ${dispute.resolved.height}`)
      checkQuorum(state, dispute, body, params, ctx.height)
      const majority = majorityHash(body.quorum)
      if (majority === null)
        refuse('no-majority', `no output hash has a strict majority of the ${body.quorum.length} quorum receipts`)
      const losers = settleDispute(state, dispute, body, majority, ctx, params)
      state.write(disputeKey(id), {
        original: receiptValue(dispute.original),
        audit: receiptValue(dispute.audit),
        height: dispute.height,
        resolved: { height: ctx.height, majority, slashed: losers },
      })
    },
  }
}
