/**
 * The chain's draws over its own state: who may audit a settled job and who sits on the quorum of
 * its dispute (the rules are in policy/audits.ts). The chain module checks audits and
 * resolutions against these; the auditor component calls the same functions to know whom to ask.
 *
 * A worker is a candidate when it declared the model BEFORE the job settled (declarations made
 * once the deciding block id is known cannot steer the draw), is schedulable now, and is not a
 * side of the audit.
 */
import type { StateReader } from '../../chain/state-view.ts'
import {
  AUDIT_DELAY_BLOCKS,
  auditSeed,
  drawAuditors,
  drawQuorum,
  shouldAudit,
  type AuditParams,
  type Candidate,
} from '../policy/audits.ts'
import {
  blockHashAt,
  isSchedulable,
  servingSince,
  servingWorkers,
  workerRecord,
  type InferenceParams,
  type JobSettlement,
} from './state.ts'

type DrawParams = AuditParams & Pick<InferenceParams, 'minWorkerBond'>

/**
 * Block ids a node knows before they are in state: the chain records block h's id when block
 * h + 1 begins, but a node that has committed block h knows it already, so its auditor and
 * workers can act one block sooner. The chain module itself never uses it.
 */
export type RecentBlockIds = (height: number) => Uint8Array | undefined

/** The seed of a settled job's draws, once block `height + AUDIT_DELAY_BLOCKS` is known. */
export function settlementSeed(
  state: StateReader,
  settlement: JobSettlement,
  recent?: RecentBlockIds,
): Uint8Array | undefined {
  const height = settlement.height + AUDIT_DELAY_BLOCKS
  const later = blockHashAt(state, height) ?? recent?.(height)
  return later === undefined ? undefined : auditSeed(later, settlement.receiptId)
}

/** First height at which the drawn auditors may answer (a challenge opens it after itself). */
export function auditOpensAt(settlement: JobSettlement): number {
  const first = settlement.height + AUDIT_DELAY_BLOCKS + 1
  return settlement.challenged === null ? first : Math.max(first, settlement.challenged + 1)
}

/** Whether the settled job is to be audited: challenged, or drawn by the streak rule. */
export function isAudited(
  state: StateReader,
  settlement: JobSettlement,
  params: DrawParams,
  recent?: RecentBlockIds,
): boolean | undefined {
  if (settlement.challenged !== null) return true
  const seed = settlementSeed(state, settlement, recent)
  return seed === undefined ? undefined : shouldAudit(settlement, seed, params)
}

/** A worker serving a model, as the draws see it at one height. */
interface RosterEntry {
  did: string
  since: number | undefined
  schedulable: boolean
  candidate: Candidate | undefined
}

/**
 * The workers serving each model at one height, read from one state: a caller drawing for many
 * jobs of one block (the auditor, every commit) passes one cache for all of them and reads each
 * worker's records once instead of once per job. Valid for that state and height only.
 */
export type RosterCache = Map<string, readonly RosterEntry[]>

function roster(
  state: StateReader,
  model: string,
  height: number,
  params: DrawParams,
  cache: RosterCache | undefined,
): readonly RosterEntry[] {
  const key = `${height}\u0000${model}`
  const hit = cache?.get(key)
  if (hit !== undefined) return hit
  const entries = servingWorkers(state, model).map((did) => {
    const record = workerRecord(state, did)
    return {
      did,
      since: servingSince(state, model, did),
      schedulable: isSchedulable(state, did, height, params),
      candidate: record === undefined ? undefined : { did, ep: record.ep, runtime: record.runtime },
    }
  })
  cache?.set(key, entries)
  return entries
}

function candidates(
  state: StateReader,
  settlement: JobSettlement,
  height: number,
  exclude: ReadonlySet<string>,
  params: DrawParams,
  cache?: RosterCache,
): Candidate[] {
  return roster(state, settlement.model, height, params, cache).flatMap(({ did, since, schedulable, candidate }) => {
    if (exclude.has(did)) return []
    if (since === undefined || since >= settlement.height) return []
    if (!schedulable || candidate === undefined) return []
    return [candidate]
  })
}

/** The drawn auditors of a settled job, in slot order (empty until the seed is known). */
export function auditorsOf(
  state: StateReader,
  settlement: JobSettlement,
  height: number,
  params: DrawParams,
  recent?: RecentBlockIds,
  cache?: RosterCache,
): Candidate[] {
  const seed = settlementSeed(state, settlement, recent)
  if (seed === undefined) return []
  const pool = candidates(state, settlement, height, new Set([settlement.worker]), params, cache)
  return drawAuditors(seed, pool, settlement, params)
}

/** The drawn quorum of the dispute between the settled worker and `auditor` (empty: none can be drawn). */
export function quorumOf(
  state: StateReader,
  settlement: JobSettlement,
  auditor: Candidate,
  height: number,
  params: DrawParams,
  recent?: RecentBlockIds,
): Candidate[] {
  const seed = settlementSeed(state, settlement, recent)
  if (seed === undefined) return []
  const pool = candidates(state, settlement, height, new Set([settlement.worker, auditor.did]), params)
  return drawQuorum(seed, pool, settlement, auditor, params)
}
