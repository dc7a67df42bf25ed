/**
 * Who is audited, and by whom: pure functions of chain state that the chain module enforces and
 * the auditor component follows (the same code, so they always agree).
 *
 * The randomness is the id of a block committed after the result was settled: a job settled at
 * height b is judged by `seed = sha256(id(b + AUDIT_DELAY_BLOCKS) || receiptId)`, which the worker
 * could not know when it answered. The chain records recent block ids in its own state, so it
 * checks every draw itself; nobody who submits an audit can choose the auditor or the quorum.
 *
 * - **Whether**: always while the worker's streak (consecutive passed audits, BOINC's CV) is
 *   below `auditThreshold`; after that with probability max(1/streak, auditFloorPpm, stake
 *   floor): BOINC's 1/CV keeps overhead low, the floor keeps a worker that cheats rarely within
 *   reach, and the stake floor (`stakeFloorPpm`) makes cheating a losing bet whatever the ratio
 *   of fee to bond: a cheated job is audited often enough that its expected slash is at least
 *   `AUDIT_LOSS_MARGIN` times its fee, the most a worker can gain by not doing the work. A
 *   client may also challenge one of its own settled jobs (a canary's gateway does so when the
 *   answer is wrong), which forces the audit.
 * - **Auditors**: the workers that declared they serve the model, are schedulable, and are not
 *   the original worker, ranked by sha256(seed || "auditor" || did), those whose declared provider
 *   and runtime equal the original's first (exact comparison possible). The i-th of the first
 *   `auditCandidates` may answer from `i × auditSlotBlocks` blocks after the first slot, so an
 *   auditor that is offline delays an audit but cannot stop it.
 * - **Quorum** (after a mismatch): the same seed ranks the remaining workers by
 *   sha256(seed || "quorum" || did) within ONE provider group, so that honest members agree bit for
 *   bit: the original's group if it has enough members, else the auditor's, else the largest.
 *   The first `quorumSize + QUORUM_SPARES` are members; any `quorumSize` of them decide.
 */
import { concat, toHex, utf8 } from '../../core/bytes.ts'
import { sha256 } from '../../core/hash.ts'
import type { ChainParams } from '../../chain/genesis.ts'

/** A receipt settled at height b is judged by the id of block b + this. */
export const AUDIT_DELAY_BLOCKS = 2
/** A cheated job's expected slash is at least this many times its fee (see `stakeFloorPpm`). */
export const AUDIT_LOSS_MARGIN = 2n
/** Quorum members drawn beyond `quorumSize`, so that one offline member does not stall a dispute. */
export const QUORUM_SPARES = 2

const TWO_256 = 1n << 256n
const PPM = 1_000_000n
const BPS = 10_000n
const AUDITOR = utf8('auditor')
const QUORUM = utf8('quorum')

export type AuditParams = Pick<
  ChainParams,
  'auditThreshold' | 'auditFloorPpm' | 'auditCandidates' | 'auditSlotBlocks' | 'quorumSize' | 'workerSlashBps'
>

export interface Candidate {
  did: string
  ep: string
  runtime: string
}

/** The seed of every draw about one settled receipt. */
export function auditSeed(laterBlockId: Uint8Array, receiptIdBytes: Uint8Array): Uint8Array {
  return sha256(concat(laterBlockId, receiptIdBytes))
}

/** What the audit rule weighs about one settled job. */
export interface AuditOdds {
  /** The worker's audit streak when the job settled. */
  streak: number
  /** The job's fee: the most the worker gains by not doing the work. */
  fee: bigint
  /** The worker's bond when the job settled. */
  bonded: bigint
}

/**
 * The least audit probability, parts per million, at which a cheated job costs its worker more
 * than it gains: p × slash >= AUDIT_LOSS_MARGIN × fee, where slash = bonded × workerSlashBps /
 * 10 000 is what one lost dispute takes. The gain of a job not run is at most its fee (a worker
 * saves its compute, which it would not sell below cost); the loss of one caught is the slash
 * plus the fee refunded, the streak (audited always again for `auditThreshold` jobs) and the
 * quarantine's lost jobs, so counting the slash alone understates it. A worker whose bond is large
 * beside its fees (the usual case) gets a tiny figure and the other floors decide; one whose bond
 * is small, or shrinks by slashes, is audited more, up to always.
 */
export function stakeFloorPpm(fee: bigint, bonded: bigint, workerSlashBps: number): number {
  const slashTimesBps = bonded * BigInt(workerSlashBps)
  if (fee <= 0n) return 0
  if (slashTimesBps <= 0n) return 1_000_000
  // ppm = ceil(margin × fee × 10^6 / (bonded × bps / 10^4))
  const ppm = (AUDIT_LOSS_MARGIN * fee * PPM * BPS + slashTimesBps - 1n) / slashTimesBps
  return ppm >= PPM ? 1_000_000 : Number(ppm)
}

type RuleParams = Pick<AuditParams, 'auditThreshold' | 'auditFloorPpm' | 'workerSlashBps'>

/** The audit rule (see the file header) for one settled job, drawn from `seed`. */
export function shouldAudit(odds: AuditOdds, seed: Uint8Array, params: RuleParams): boolean {
  const { streak } = odds
  if (streak < params.auditThreshold || streak <= 0) return true
  const draw = BigInt(`0x${toHex(sha256(seed))}`)
  const floor = Math.max(params.auditFloorPpm, stakeFloorPpm(odds.fee, odds.bonded, params.workerSlashBps))
  return draw * BigInt(streak) < TWO_256 || draw * PPM < TWO_256 * BigInt(floor)
}

function rank(seed: Uint8Array, label: Uint8Array, did: string): string {
  return toHex(sha256(concat(seed, label, utf8(did))))
}

function byRank<T extends Candidate>(seed: Uint8Array, label: Uint8Array, items: readonly T[]): T[] {
  return items
    .map((c) => ({ c, r: rank(seed, label, c.did) }))
    .sort((a, b) => (a.r < b.r ? -1 : a.r > b.r ? 1 : 0))
    .map((x) => x.c)
}

const sameGroup = (a: Pick<Candidate, 'ep' | 'runtime'>, b: Pick<Candidate, 'ep' | 'runtime'>): boolean =>
  a.ep === b.ep && a.runtime === b.runtime

/**
 * The drawn auditors of a receipt, in order, from `candidates` (serving, schedulable, not the
 * original worker): the original's provider group first.
 */
export function drawAuditors(
  seed: Uint8Array,
  candidates: readonly Candidate[],
  original: Pick<Candidate, 'ep' | 'runtime'>,
  params: Pick<AuditParams, 'auditCandidates'>,
): Candidate[] {
  const ranked = byRank(seed, AUDITOR, candidates)
  const same = ranked.filter((c) => sameGroup(c, original))
  const other = ranked.filter((c) => !sameGroup(c, original))
  return [...same, ...other].slice(0, params.auditCandidates)
}

/**
 * Whether the i-th drawn auditor may submit at `height`: the first slot opens at `opensAt`, the
 * i-th at `opensAt + i × auditSlotBlocks`; all close together at the end of the last slot.
 */
export function auditorMayAnswer(
  index: number,
  height: number,
  opensAt: number,
  params: Pick<AuditParams, 'auditCandidates' | 'auditSlotBlocks'>,
): boolean {
  if (index < 0 || index >= params.auditCandidates) return false
  return height >= opensAt + index * params.auditSlotBlocks && height < auditWindowEnd(opensAt, params)
}

/** The first height at which no drawn auditor may answer any more. */
export function auditWindowEnd(
  opensAt: number,
  params: Pick<AuditParams, 'auditCandidates' | 'auditSlotBlocks'>,
): number {
  return opensAt + params.auditCandidates * params.auditSlotBlocks
}

/**
 * The quorum of a dispute: candidates (serving, schedulable, neither side), one provider group,
 * ranked; `quorumSize + QUORUM_SPARES` members. Empty when no group has `quorumSize` members.
 */
export function drawQuorum(
  seed: Uint8Array,
  candidates: readonly Candidate[],
  original: Pick<Candidate, 'ep' | 'runtime'>,
  auditor: Pick<Candidate, 'ep' | 'runtime'>,
  params: Pick<AuditParams, 'quorumSize'>,
): Candidate[] {
  const groups = new Map<string, Candidate[]>()
  for (const c of candidates) {
    const key = `${c.ep}\u0000${c.runtime}`
    groups.set(key, [...(groups.get(key) ?? []), c])
  }
  const enough = (g: Candidate[] | undefined): g is Candidate[] => g !== undefined && g.length >= params.quorumSize
  const keyOf = (c: Pick<Candidate, 'ep' | 'runtime'>): string => `${c.ep}\u0000${c.runtime}`
  let group = groups.get(keyOf(original))
  if (!enough(group)) group = groups.get(keyOf(auditor))
  if (!enough(group)) {
    const largest = [...groups.entries()].sort((a, b) => b[1].length - a[1].length || (a[0] < b[0] ? -1 : 1))[0]
    group = largest?.[1]
  }
  if (!enough(group)) return []
  return byRank(seed, QUORUM, group).slice(0, params.quorumSize + QUORUM_SPARES)
}
