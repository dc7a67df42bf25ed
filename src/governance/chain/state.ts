/**
 * The governance module's state: keys, records, the rules read from the governed parameters,
 * and the tally shared by the module's end of block and the API's "tally so far". Every key is
 * under `gov/`; values are dag-cbor; money and voting power are bigint, shares basis points.
 *
 *   next                         the next proposal id (ids are 1, 2, 3 ...)
 *   proposal/<id>                ProposalRecord
 *   deposit/<id>/<did>           bigint: what that account has deposited on the proposal
 *   depositors/<id>/...            IndexedSet of the proposal's depositors (refunds walk it)
 *   vote/<id>/<did>              VoteOption: the validator's latest vote (a new vote replaces it)
 *   voters/<id>/...                IndexedSet of the proposal's voters (the API lists them)
 *   due/deposit/<h>/...            IndexedSet of ids whose deposit period ends at height h
 *   due/voting/<h>/...             IndexedSet of ids whose voting period ends at height h
 *   due/apply/<h>/...              IndexedSet of passed ids whose changes apply at height h
 *   escrow                       bigint: every deposit held (taken from accounts, still in the supply)
 *   plog/<param>/n, /<i>         ParamChangeRecord: the history of a parameter's changes
 *   param/<name>                 the governed value itself (params.ts)
 */
import { asSafeUint, asUint64 } from '../../core/uint.ts'
import { readState, type StateOverlay, type StateReader } from '../../chain/state-view.ts'
import { IndexedSet } from '../../chain/indexed-set.ts'
import { validatorRecord } from '../../staking/staking.ts'
import { governedUint } from '../params.ts'
import { GOV, governedDefault } from '../registry.ts'

export type ProposalStatus = 'deposit' | 'voting' | 'passed' | 'applied' | 'rejected' | 'vetoed' | 'expired'
export const PROPOSAL_STATUSES: readonly ProposalStatus[] = [
  'deposit',
  'voting',
  'passed',
  'applied',
  'rejected',
  'vetoed',
  'expired',
]

export const VOTE_OPTIONS = ['yes', 'no', 'abstain', 'veto'] as const
export type VoteOption = (typeof VOTE_OPTIONS)[number]

export interface ParamChange {
  param: string
  value: bigint | string[]
}

/** Voting power by option and the power that could vote (bonded stake of eligible validators). */
export interface Tally {
  yes: bigint
  no: bigint
  abstain: bigint
  veto: bigint
  totalPower: bigint
}

export interface ProposalRecord {
  id: number
  proposer: string
  title: string
  description: string
  changes: ParamChange[]
  /** The height the proposer asked the changes to apply at; absent = the earliest allowed. */
  requestedApplyHeight?: number
  submitHeight: number
  /** Last height of the deposit period (a proposal still short of the minimum then expires). */
  depositEndHeight: number
  totalDeposit: bigint
  status: ProposalStatus
  /** Set when the deposit reached the minimum: voting runs votingStartHeight..votingEndHeight. */
  votingStartHeight?: number
  votingEndHeight?: number
  /** Where the changes apply if the proposal passes (fixed when voting starts). */
  applyHeight?: number
  /** The final tally (set at the end of voting). */
  tally?: Tally
  /** Why it was rejected, vetoed or expired: 'quorum' | 'threshold' | 'veto' | 'deposit'. */
  reason?: string
  /** Height of the decision (end of voting or of the deposit period) and of the application. */
  decidedHeight?: number
  appliedHeight?: number
}

export interface ParamChangeRecord {
  height: number
  proposal: number
  value: bigint | string[]
}

/** Governance's own rules, read from the governed parameters at use time. */
export interface GovRules {
  votingPeriodBlocks: number
  depositPeriodBlocks: number
  minDeposit: bigint
  /** What a proposal must bring itself: minDeposit × minInitialDepositBps / 10 000, at least 1. */
  minInitialDeposit: bigint
  minApplyDelayBlocks: number
  quorumBps: bigint
  thresholdBps: bigint
  vetoBps: bigint
}

/** Most accounts that may deposit on one proposal (refunds walk them at the end). */
export const MAX_DEPOSITORS = 32
/** Latest a change may apply: this many blocks after the end of its voting. */
export const MAX_APPLY_DELAY_BLOCKS = 1_000_000
const BPS = 10_000n

export const NEXT_KEY = 'gov/next'
export const ESCROW_KEY = 'gov/escrow'
export const proposalKey = (id: number): string => `gov/proposal/${id}`
export const depositKey = (id: number, did: string): string => `gov/deposit/${id}/${did}`
export const voteKey = (id: number, did: string): string => `gov/vote/${id}/${did}`
export const depositorsSet = (id: number): IndexedSet => new IndexedSet(`gov/depositors/${id}`)
export const votersSet = (id: number): IndexedSet => new IndexedSet(`gov/voters/${id}`)
export const depositDue = (height: number): IndexedSet => new IndexedSet(`gov/due/deposit/${height}`)
export const votingDue = (height: number): IndexedSet => new IndexedSet(`gov/due/voting/${height}`)
export const applyDue = (height: number): IndexedSet => new IndexedSet(`gov/due/apply/${height}`)
const plogCountKey = (param: string): string => `gov/plog/${param}/n`
const plogKey = (param: string, i: number): string => `gov/plog/${param}/${i}`

export function govRules(state: StateReader): GovRules {
  const read = (name: string): bigint => governedUint(state, name, governedDefault(name))
  const minDeposit = read(GOV.minDeposit)
  const initial = (minDeposit * read(GOV.minInitialDepositBps)) / BPS
  return {
    votingPeriodBlocks: Number(read(GOV.votingPeriodBlocks)),
    depositPeriodBlocks: Number(read(GOV.depositPeriodBlocks)),
    minDeposit,
    minInitialDeposit: initial > 0n ? initial : 1n,
    minApplyDelayBlocks: Number(read(GOV.minApplyDelayBlocks)),
    quorumBps: read(GOV.quorumBps),
    thresholdBps: read(GOV.thresholdBps),
    vetoBps: read(GOV.vetoBps),
  }
}

// ---- amounts -------------------------------------------------------------------------------------

export function readAmount(state: StateReader, key: string): bigint {
  const value = readState<unknown>(state, key)
  return value === undefined ? 0n : asUint64(value, key)
}

export function writeAmount(state: StateOverlay, key: string, amount: bigint): void {
  if (amount === 0n) state.remove(key)
  else state.write(key, amount)
}

/** Every deposit the module holds. */
export function escrowBalance(state: StateReader): bigint {
  return readAmount(state, ESCROW_KEY)
}

export function depositOf(state: StateReader, id: number, did: string): bigint {
  return readAmount(state, depositKey(id, did))
}

/** The proposal's deposits by account, in the order they were first made. */
export function depositsOf(state: StateReader, id: number): Array<{ did: string; amount: bigint }> {
  return depositorsSet(id)
    .list(state)
    .map((did) => ({ did, amount: depositOf(state, id, did) }))
}

// ---- proposals -----------------------------------------------------------------------------------

/** The id the next proposal gets. */
export function nextProposalId(state: StateReader): number {
  return readState<number>(state, NEXT_KEY) ?? 1
}

function optionalHeight(raw: Record<string, unknown>, field: string): Record<string, number> {
  return raw[field] === undefined ? {} : { [field]: asSafeUint(raw[field], field) }
}

function changeOf(raw: unknown): ParamChange {
  const c = raw as { param: string; value: unknown }
  return { param: c.param, value: Array.isArray(c.value) ? (c.value as string[]) : asUint64(c.value, c.param) }
}

function tallyOf(raw: unknown): Tally {
  const t = raw as Record<string, unknown>
  return {
    yes: asUint64(t.yes, 'yes'),
    no: asUint64(t.no, 'no'),
    abstain: asUint64(t.abstain, 'abstain'),
    veto: asUint64(t.veto, 'veto'),
    totalPower: asUint64(t.totalPower, 'totalPower'),
  }
}

export function readProposal(state: StateReader, id: number): ProposalRecord | undefined {
  const raw = readState<Record<string, unknown>>(state, proposalKey(id))
  if (raw === undefined) return undefined
  return {
    id: raw.id as number,
    proposer: raw.proposer as string,
    title: raw.title as string,
    description: raw.description as string,
    changes: (raw.changes as unknown[]).map(changeOf),
    ...optionalHeight(raw, 'requestedApplyHeight'),
    submitHeight: raw.submitHeight as number,
    depositEndHeight: raw.depositEndHeight as number,
    totalDeposit: asUint64(raw.totalDeposit, 'totalDeposit'),
    status: raw.status as ProposalStatus,
    ...optionalHeight(raw, 'votingStartHeight'),
    ...optionalHeight(raw, 'votingEndHeight'),
    ...optionalHeight(raw, 'applyHeight'),
    ...(raw.tally === undefined ? {} : { tally: tallyOf(raw.tally) }),
    ...(raw.reason === undefined ? {} : { reason: raw.reason as string }),
    ...optionalHeight(raw, 'decidedHeight'),
    ...optionalHeight(raw, 'appliedHeight'),
  }
}

export function writeProposal(state: StateOverlay, record: ProposalRecord): void {
  // dag-cbor has no undefined: leave absent fields out
  const clean = Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined))
  state.write(proposalKey(record.id), clean)
}

/**
 * Proposals newest first: at most `limit`, with ids below `before` (a cursor), of `status` if
 * given. Reads at most `limit × 20` records, so a filter over a long history answers a short page.
 */
export function listProposals(
  state: StateReader,
  query: { status?: ProposalStatus; limit?: number; before?: number } = {},
): ProposalRecord[] {
  const limit = query.limit ?? 50
  const out: ProposalRecord[] = []
  const start = Math.min(query.before ?? Number.MAX_SAFE_INTEGER, nextProposalId(state)) - 1
  for (let id = start, read = 0; id >= 1 && out.length < limit && read < limit * 20; id--, read++) {
    const p = readProposal(state, id)
    if (p !== undefined && (query.status === undefined || p.status === query.status)) out.push(p)
  }
  return out
}

// ---- votes and the tally -------------------------------------------------------------------------

export function readVote(state: StateReader, id: number, did: string): VoteOption | undefined {
  return readState<VoteOption>(state, voteKey(id, did))
}

/** Every vote recorded on a proposal, by voter (the latest of each voter). */
export function votesOf(state: StateReader, id: number): Array<{ voter: string; option: VoteOption }> {
  return votersSet(id)
    .list(state)
    .map((voter) => ({ voter, option: readVote(state, id, voter) as VoteOption }))
}

/**
 * The tally over `validators` (the set deciding the current height): each validator that is not
 * jailed or tombstoned counts its bonded stake now towards `totalPower`, and towards its vote's
 * option if it voted. A vote of an account outside that set counts nothing; a vote changed
 * during the period counts once, as its latest option.
 */
export function tallyVotes(state: StateReader, id: number, validators: ReadonlyArray<{ did: string }>): Tally {
  const tally: Tally = { yes: 0n, no: 0n, abstain: 0n, veto: 0n, totalPower: 0n }
  for (const { did } of new Map(validators.map((v) => [v.did, v])).values()) {
    const record = validatorRecord(state, did)
    if (record === undefined || record.tombstoned || record.jailedUntil !== 0 || record.bonded === 0n) continue
    tally.totalPower += record.bonded
    const option = readVote(state, id, did)
    if (option !== undefined) tally[option] += record.bonded
  }
  return tally
}

export type Outcome = { status: 'passed' } | { status: 'rejected' | 'vetoed'; reason: 'quorum' | 'threshold' | 'veto' }

/**
 * Cosmos SDK x/gov's rules, in integers: fewer votes (abstain included) than `quorumBps` of the
 * total power -> rejected 'quorum'; veto above `vetoBps` of all votes -> vetoed; yes above
 * `thresholdBps` of yes + no + veto -> passed; else (all abstain included) rejected 'threshold'.
 */
export function decide(tally: Tally, rules: Pick<GovRules, 'quorumBps' | 'thresholdBps' | 'vetoBps'>): Outcome {
  const voted = tally.yes + tally.no + tally.abstain + tally.veto
  if (tally.totalPower === 0n || voted * BPS < rules.quorumBps * tally.totalPower)
    return { status: 'rejected', reason: 'quorum' }
  if (tally.veto * BPS > rules.vetoBps * voted) return { status: 'vetoed', reason: 'veto' }
  const decisive = tally.yes + tally.no + tally.veto
  if (decisive > 0n && tally.yes * BPS > rules.thresholdBps * decisive) return { status: 'passed' }
  return { status: 'rejected', reason: 'threshold' }
}

// ---- the history of each parameter ---------------------------------------------------------------

export function paramHistory(state: StateReader, param: string): ParamChangeRecord[] {
  const n = readState<number>(state, plogCountKey(param)) ?? 0
  const out: ParamChangeRecord[] = []
  for (let i = 0; i < n; i++) {
    const raw = readState<Record<string, unknown>>(state, plogKey(param, i))
    if (raw !== undefined)
      out.push({
        height: raw.height as number,
        proposal: raw.proposal as number,
        value: changeOf({ param, value: raw.value }).value,
      })
  }
  return out
}

export function appendParamHistory(state: StateOverlay, param: string, entry: ParamChangeRecord): void {
  const n = readState<number>(state, plogCountKey(param)) ?? 0
  state.write(plogKey(param, n), entry)
  state.write(plogCountKey(param), n + 1)
}

/** The last change of `param` at or before `height` (what its value was then), or undefined. */
export function changeAt(history: readonly ParamChangeRecord[], height: number): ParamChangeRecord | undefined {
  for (let i = history.length - 1; i >= 0; i--) {
    const entry = history[i] as ParamChangeRecord
    if (entry.height <= height) return entry
  }
  return undefined
}
