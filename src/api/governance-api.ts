/**
 * What the governance routes (routes/governance.ts) need from a node: proposals with their tally
 * so far, and the governed parameters' effective values. The node implements it over its chain
 * state (src/node/governance.ts `NodeGovernance`). Amounts and voting power are decimal strings,
 * as everywhere in the API; a uint parameter's value is a decimal string, a list's an array.
 *
 *     GET /v1/gov/proposals?status&limit&before   -> { height, proposals: ProposalView[] } newest first
 *     GET /v1/gov/proposals/:id                   -> ProposalView with votes, deposits and the tally | 404
 *     GET /v1/gov/params?height                   -> GovParamsView (at a past height from each parameter's history)
 */
export type ProposalStatusView = 'deposit' | 'voting' | 'passed' | 'applied' | 'rejected' | 'vetoed' | 'expired'
export type VoteOptionView = 'yes' | 'no' | 'abstain' | 'veto'
export type ParamValueView = string | string[]

export interface TallyView {
  yes: string
  no: string
  abstain: string
  veto: string
  /** Bonded stake of the validators that may vote (not jailed or tombstoned). */
  totalPower: string
  /** Votes (abstain included) over total power, basis points. */
  turnoutBps: number
  /** True once the voting period ended (the tally the decision used); false: so far. */
  final: boolean
  /** What the tally decides (so far, or finally). */
  outcome: 'passed' | 'rejected' | 'vetoed'
  /** Why it fails: 'quorum' | 'threshold' | 'veto'. */
  reason?: string
}

export interface ProposalView {
  id: number
  proposer: string
  title: string
  description: string
  changes: Array<{ param: string; value: ParamValueView }>
  status: ProposalStatusView
  submitHeight: number
  depositEndHeight: number
  totalDeposit: string
  /** What the deposit must reach for voting to start (the current governance.minDeposit). */
  minDeposit: string
  requestedApplyHeight?: number
  votingStartHeight?: number
  votingEndHeight?: number
  applyHeight?: number
  decidedHeight?: number
  appliedHeight?: number
  reason?: string
  /** While voting: the tally so far over the current validators; after: the final one. */
  tally?: TallyView
  /** One proposal only: every voter's latest vote and its weight now. */
  votes?: Array<{ voter: string; option: VoteOptionView; power: string }>
  /** One proposal only, while deposits are held. */
  deposits?: Array<{ did: string; amount: string }>
}

export interface ParamView {
  name: string
  kind: 'uint' | 'list'
  /** The effective value at `height`. */
  value: ParamValueView
  default: ParamValueView
  /** True when an accepted proposal set it (at or before `height`). */
  governed: boolean
  /** The last change at or before `height`: the height it applied at and its proposal. */
  changedAt?: number
  proposal?: number
  min?: string
  max?: string
  maxItems?: number
  maxItemChars?: number
  description: string
}

export interface GovParamsView {
  /** The height the values are for. */
  height: number
  params: ParamView[]
  /** The genesis parameters (ChainParams), fixed: not governable. Amounts as decimal strings. */
  fixed: Record<string, string | number>
}

export interface ProposalQuery {
  status?: ProposalStatusView
  /** @default 50, at most 100 */
  limit?: number
  /** Only ids below this (the next page's cursor: the last id of this one). */
  before?: number
}

export interface GovernanceApi {
  proposals(query: ProposalQuery): { height: number; proposals: ProposalView[] }
  proposal(id: number): ProposalView | undefined
  /** The parameters at `height` (default: the latest); throws InvalidInputError above the head. */
  params(height?: number): GovParamsView
}
