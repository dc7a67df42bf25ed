/**
 * Audits and disputes, with the auditor and the quorum drawn by the chain (policy/audits.ts,
 * chain/draws.ts): nobody who submits a transaction here chooses who judges whom.
 *
 *   challenge { jobId }      the job's client forces an audit of its own settled job (a canary's
 *       gateway does so when the answer is wrong); costs `challengeFee`, paid back if the worker
 *       is found wrong. Within `disputeWindowBlocks` of the settlement, once per job.
 *   audit     { jobId, audit, outputs }   the drawn auditor's receipt for the job, in its slot.
 *       The original's provider and runtime are those it declared when it settled; the auditor's
 *       those it declares now. Same provider and runtime -> output hashes compared exactly.
 *       Different -> judged by the model's tolerance (max-abs, top-1) on the two output maps,
 *       which `outputs` carries ([original, audit], each checked against its hash): a side on
 *       another provider is judged, never skipped.
 *         agree    -> original's streak += 1, auditsPassed += 1; the auditor is paid
 *                    min(auditReward, treasury) from the treasury;
 *         disagree -> a dispute, judged by the quorum drawn from the same seed.
 *       One audit per job.
 *   resolve   { jobId, quorum, outputs }  >= quorumSize receipts of drawn quorum members (others
 *       are ignored), within `disputeWindowBlocks` of the dispute; a strict majority of their
 *       output hashes decides. Each side is judged against the majority: exactly when it is in
 *       the quorum's provider group, by tolerance otherwise (`outputs` carries the maps). A side
 *       that loses is slashed `workerSlashBps` of its bonded and unbonding stake, its streak
 *       reset, auditsFailed += 1, quarantined for `quarantineBlocks`; from the slash the client
 *       gets the job's fee back (and a challenge's fee), the winning side `challengerRewardBps`
 *       of the rest, and the remainder is burned. Quorum members who agree with the majority get
 *       streak += 1 (a chain-drawn audit of them too).
 */
import { cutEntries, shareOf } from '../../core/uint.ts'
import { equals, toHex } from '../../core/bytes.ts'
import { sha256 } from '../../core/hash.ts'
import type { TxContext, TxHandler } from '../../chain/host.ts'
import type { StateOverlay, StateReader } from '../../chain/state-view.ts'
import { burn, credit, debit } from '../../bank/bank.ts'
import { jobId, receiptId, receiptValue, verifyWorkerSignature, type Receipt } from '../job.ts'
import { compareTensorMaps, decodeTensorMap, type TensorMap } from '../tensor.ts'
import { auditorMayAnswer, auditWindowEnd, type Candidate } from '../policy/audits.ts'
import { bytes32, fields, MAX_QUORUM, outputList, receiptList, receiptOf, refuse } from './decode.ts'
import { auditOpensAt, auditorsOf, isAudited, quorumOf } from './draws.ts'
import {
  BPS,
  TREASURY_KEY,
  auditKey,
  auditOf,
  disputeKey,
  disputeOf,
  jobKey,
  minBig,
  modelByCid,
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
  type JobSettlement,
  type Tolerance,
  type WorkerRecord,
} from './state.ts'

function settled(state: StateReader, id: string): JobSettlement {
  const settlement = settlementOf(state, id)
  if (settlement === undefined) refuse('not-settled', `job ${id} has not been settled`)
  return settlement
}

/** The output maps carried by a transaction, by the hex of their hash. */
function outputsByHash(outputs: readonly Uint8Array[]): Map<string, Uint8Array> {
  return new Map(outputs.map((bytes) => [toHex(sha256(bytes)), bytes]))
}

function outputMap(outputs: Map<string, Uint8Array>, hash: Uint8Array, what: string): TensorMap {
  const bytes = outputs.get(toHex(hash))
  if (bytes === undefined) refuse('outputs-required', `judging ${what} across providers needs its outputs`)
  try {
    return decodeTensorMap(bytes, { allowNonFinite: true })
  } catch (err) {
    return refuse('malformed', `the outputs of ${what} do not decode: ${(err as Error).message}`)
  }
}

/** Whether a result agrees with a reference: exactly in the same group, by tolerance across groups. */
function agrees(
  side: { hash: Uint8Array; group: string },
  reference: { hash: Uint8Array; group: string },
  outputs: Map<string, Uint8Array>,
  tolerance: Tolerance,
  what: string,
): boolean {
  if (equals(side.hash, reference.hash)) return true
  if (side.group === reference.group) return false
  const a = outputMap(outputs, side.hash, what)
  const b = outputMap(outputs, reference.hash, 'the reference')
  return compareTensorMaps(a, b, tolerance).ok
}

const groupOf = (x: { ep: string; runtime: string }): string => `${x.ep}\u0000${x.runtime}`

// ---- inference.challenge --------------------------------------------------------------------------

export function challengeHandler(params: InferenceParams): TxHandler<{ jobId: Uint8Array }> {
  return {
    decodeBody: (body) => ({ jobId: bytes32(fields(body, 'inference.challenge', ['jobId']).jobId, 'jobId') }),
    spends: () => params.challengeFee,
    apply(state, tx, body, ctx) {
      const id = toHex(body.jobId)
      const settlement = settled(state, id)
      if (settlement.client !== tx.sender)
        refuse('not-client', `only the job's client ${settlement.client} may challenge it`)
      if (settlement.challenged !== null)
        refuse('already-challenged', `job ${id} was challenged at ${settlement.challenged}`)
      if (auditOf(state, id) !== undefined) refuse('already-audited', `job ${id} has been audited`)
      if (ctx.height > settlement.height + params.disputeWindowBlocks)
        refuse(
          'too-late',
          `job ${id} settled at ${settlement.height}; challenges close after ${params.disputeWindowBlocks} blocks`,
        )
      debit(state, tx.sender, params.challengeFee)
      writeAmount(state, TREASURY_KEY, readAmount(state, TREASURY_KEY) + params.challengeFee)
      state.write(jobKey(id), { ...settlement, challenged: ctx.height })
      ctx.emit({ type: 'inference.challenge', attributes: { jobId: id, client: tx.sender, worker: settlement.worker } })
    },
  }
}

// ---- inference.audit ---------------------------------------------------------------------------

interface AuditBody {
  jobId: Uint8Array
  audit: Receipt
  outputs: Uint8Array[]
}

/** The drawn auditor whose receipt this is, in its slot; throws otherwise. */
function checkAuditor(
  state: StateReader,
  settlement: JobSettlement,
  audit: Receipt,
  ctx: TxContext,
  params: InferenceParams,
): Candidate {
  const audited = isAudited(state, settlement, params)
  if (audited === undefined)
    refuse('too-early', `the block that draws job ${toHex(jobId(audit.job))}'s audit is not committed yet`)
  if (!audited) refuse('not-drawn-for-audit', 'the chain did not draw this job for an audit')
  const drawn = auditorsOf(state, settlement, ctx.height, params)
  const index = drawn.findIndex((c) => c.did === audit.worker)
  const opensAt = auditOpensAt(settlement)
  if (index < 0) refuse('not-drawn-auditor', `${audit.worker} is not a drawn auditor of this job`)
  if (ctx.height >= auditWindowEnd(opensAt, params)) refuse('audit-window-closed', 'the audit window has closed')
  if (!auditorMayAnswer(index, ctx.height, opensAt, params))
    refuse('not-your-slot', `auditor ${index + 1} may answer from height ${opensAt + index * params.auditSlotBlocks}`)
  return drawn[index] as Candidate
}

function passAudit(
  state: StateOverlay,
  settlement: JobSettlement,
  audit: Receipt,
  id: string,
  ctx: TxContext,
  params: InferenceParams,
): void {
  const worker = workerRecord(state, settlement.worker)
  if (worker !== undefined) {
    worker.streak += 1
    worker.auditsPassed += 1
    writeWorker(state, settlement.worker, worker)
  }
  const treasury = readAmount(state, TREASURY_KEY)
  const paid = minBig(params.auditReward, treasury)
  if (paid > 0n) {
    writeAmount(state, TREASURY_KEY, treasury - paid)
    credit(state, audit.worker, paid)
  }
  ctx.emit({
    type: 'inference.audit_passed',
    attributes: { jobId: id, worker: settlement.worker, auditor: audit.worker, reward: paid.toString() },
  })
}

export function auditHandler(params: InferenceParams): TxHandler<AuditBody> {
  return {
    decodeBody(body) {
      const b = fields(body, 'inference.audit', ['jobId', 'audit', 'outputs'])
      return {
        jobId: bytes32(b.jobId, 'jobId'),
        audit: receiptOf(b.audit, 'audit'),
        outputs: outputList(b.outputs, 'outputs', 2),
      }
    },
    apply(state, _tx, body, ctx) {
      const id = toHex(body.jobId)
      const { audit } = body
      if (toHex(jobId(audit.job)) !== id) refuse('job-mismatch', 'the audit receipt is for another job')
      const settlement = settled(state, id)
      if (auditOf(state, id) !== undefined) refuse('already-audited', `job ${id} already has its audit`)
      const auditor = checkAuditor(state, settlement, audit, ctx, params)
      if (audit.ep !== auditor.ep || audit.runtime !== auditor.runtime)
        refuse(
          'ep-mismatch',
          `the audit receipt names ${audit.ep} ${audit.runtime}; the auditor declared ${auditor.ep} ${auditor.runtime}`,
        )
      if (!verifyWorkerSignature(audit)) refuse('bad-signature', "the audit receipt's signature does not verify")
      const model = modelByCid(state, settlement.model)
      if (model === undefined) refuse('unknown-model', `model ${settlement.model} is gone`)
      const pass = agrees(
        { hash: settlement.outputHash, group: groupOf(settlement) },
        { hash: audit.outputHash, group: groupOf(auditor) },
        outputsByHash(body.outputs),
        model.tolerance,
        'the original',
      )
      const record: AuditRecord = {
        auditor: audit.worker,
        height: ctx.height,
        receiptId: receiptId(audit),
        passed: pass,
      }
      state.write(auditKey(id), record)
      if (pass) {
        passAudit(state, settlement, audit, id, ctx, params)
        return
      }
      const dispute: Omit<DisputeRecord, 'audit'> & { audit: unknown } = {
        audit: receiptValue(audit),
        height: ctx.height,
        auditEp: auditor.ep as DisputeRecord['auditEp'],
        auditRuntime: auditor.runtime,
        resolved: null,
      }
      state.write(disputeKey(id), dispute)
      ctx.emit({
        type: 'inference.dispute',
        attributes: { jobId: id, worker: settlement.worker, auditor: audit.worker },
      })
    },
  }
}

// ---- inference.resolve -------------------------------------------------------------------------

interface ResolveBody {
  jobId: Uint8Array
  quorum: Receipt[]
  outputs: Uint8Array[]
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

/** The receipts of drawn members (one each, signed, on their declared provider); throws if too few. */
function memberReceipts(
  state: StateReader,
  settlement: JobSettlement,
  dispute: DisputeRecord,
  body: ResolveBody,
  ctx: TxContext,
  params: InferenceParams,
): { receipts: Receipt[]; group: string } {
  const auditor = { did: dispute.audit.worker, ep: dispute.auditEp, runtime: dispute.auditRuntime }
  const members = new Map(quorumOf(state, settlement, auditor, ctx.height, params).map((c) => [c.did, c]))
  const id = toHex(body.jobId)
  const receipts: Receipt[] = []
  for (const r of body.quorum) {
    const member = members.get(r.worker)
    if (member === undefined || receipts.some((x) => x.worker === r.worker)) continue
    if (toHex(jobId(r.job)) !== id || r.ep !== member.ep || r.runtime !== member.runtime) continue
    if (!verifyWorkerSignature(r)) continue
    receipts.push(r)
  }
  if (receipts.length < params.quorumSize)
    refuse('quorum-too-small', `a quorum needs ${params.quorumSize} receipts of drawn members, got ${receipts.length}`)
  return { receipts, group: groupOf(receipts[0] as Receipt) }
}

/** Cuts `workerSlashBps` from a worker's bonded and unbonding stake; returns the amount. */
function slashWorker(state: StateOverlay, did: string, params: InferenceParams, height: number): bigint {
  const record = workerRecord(state, did)
  if (record === undefined) return 0n
  const fromBonded = shareOf(record.bonded, params.workerSlashBps)
  const unbonding = cutEntries(workerUnbonding(state, did), params.workerSlashBps)
  writeUnbonding(state, did, unbonding.kept)
  record.bonded -= fromBonded
  record.streak = 0
  record.auditsFailed += 1
  record.slashes += 1
  record.quarantinedUntil = Math.max(record.quarantinedUntil, height + params.quarantineBlocks)
  writeWorker(state, did, record)
  return fromBonded + unbonding.cut
}

function credited(state: StateOverlay, did: string, change: (r: WorkerRecord) => void): void {
  const record = workerRecord(state, did)
  if (record === undefined) return
  change(record)
  writeWorker(state, did, record)
}

/** Slashes the losing side(s), refunds the client, rewards the winner, credits the quorum. */
function settleDispute(
  state: StateOverlay,
  settlement: JobSettlement,
  dispute: DisputeRecord,
  verdict: { majority: Uint8Array; losers: string[]; winner: string | null; agreeing: string[] },
  ctx: TxContext,
  params: InferenceParams,
): void {
  const id = toHex(jobId(dispute.audit.job))
  let slashed = 0n
  for (const loser of verdict.losers) {
    const amount = slashWorker(state, loser, params, ctx.height)
    slashed += amount
    ctx.emit({
      type: 'inference.slashed',
      attributes: { worker: loser, amount: amount.toString(), jobId: id, reason: 'audit-mismatch' },
    })
  }
  let pool = slashed
  if (verdict.losers.includes(settlement.worker)) {
    const refund = minBig(settlement.fee, pool)
    credit(state, settlement.client, refund)
    pool -= refund
    if (settlement.challenged !== null) {
      const treasury = readAmount(state, TREASURY_KEY)
      const back = minBig(params.challengeFee, treasury)
      writeAmount(state, TREASURY_KEY, treasury - back)
      credit(state, settlement.client, back)
    }
  }
  const reward = verdict.winner === null ? 0n : (pool * BigInt(params.challengerRewardBps)) / BPS
  if (verdict.winner !== null && reward > 0n) credit(state, verdict.winner, reward)
  burn(state, pool - reward)
  for (const did of verdict.agreeing) credited(state, did, (r) => (r.streak += 1))
  if (verdict.winner === settlement.worker)
    credited(state, settlement.worker, (r) => {
      r.streak += 1
      r.auditsPassed += 1
    })
  ctx.emit({
    type: 'inference.resolved',
    attributes: {
      jobId: id,
      majority: toHex(verdict.majority),
      slashed: verdict.losers.join(','),
      winner: verdict.winner ?? '',
      reward: reward.toString(),
      burned: (pool - reward).toString(),
    },
  })
}

export function resolveHandler(params: InferenceParams): TxHandler<ResolveBody> {
  return {
    decodeBody(body) {
      const b = fields(body, 'inference.resolve', ['jobId', 'quorum', 'outputs'])
      return {
        jobId: bytes32(b.jobId, 'jobId'),
        quorum: receiptList(b.quorum, 'quorum', MAX_QUORUM),
        outputs: outputList(b.outputs, 'outputs', 3),
      }
    },
    apply(state, _tx, body, ctx) {
      const id = toHex(body.jobId)
      const dispute = disputeOf(state, id)
      if (dispute === undefined) refuse('no-dispute', `job ${id} has no dispute`)
      if (dispute.resolved !== null)
        refuse('already-resolved', `the dispute over job ${id} was resolved at height ${dispute.resolved.height}`)
      if (ctx.height > dispute.height + params.disputeWindowBlocks)
        refuse(
          'dispute-lapsed',
          `the dispute over job ${id} lapsed at height ${dispute.height + params.disputeWindowBlocks}`,
        )
      const settlement = settled(state, id)
      const model = modelByCid(state, settlement.model)
      if (model === undefined) refuse('unknown-model', `model ${settlement.model} is gone`)
      const { receipts, group } = memberReceipts(state, settlement, dispute, body, ctx, params)
      const majority = majorityHash(receipts)
      if (majority === null)
        refuse('no-majority', `no output hash has a strict majority of the ${receipts.length} quorum receipts`)
      const outputs = outputsByHash(body.outputs)
      const reference = { hash: majority, group }
      const sides = [
        { did: settlement.worker, hash: settlement.outputHash, group: groupOf(settlement), what: 'the original' },
        {
          did: dispute.audit.worker,
          hash: dispute.audit.outputHash,
          group: groupOf({ ep: dispute.auditEp, runtime: dispute.auditRuntime }),
          what: 'the audit',
        },
      ].map((s) => ({ ...s, ok: agrees(s, reference, outputs, model.tolerance, s.what) }))
      const losers = sides.filter((s) => !s.ok).map((s) => s.did)
      const winners = sides.filter((s) => s.ok).map((s) => s.did)
      const agreeing = receipts.filter((r) => equals(r.outputHash, majority)).map((r) => r.worker)
      settleDispute(
        state,
        settlement,
        dispute,
        { majority, losers, winner: winners.length === 1 ? (winners[0] as string) : null, agreeing },
        ctx,
        params,
      )
      state.write(disputeKey(id), {
        audit: receiptValue(dispute.audit),
        height: dispute.height,
        auditEp: dispute.auditEp,
        auditRuntime: dispute.auditRuntime,
        resolved: { height: ctx.height, majority, slashed: losers },
      })
    },
  }
}
