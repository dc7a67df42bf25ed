/**
 * Governance inside a running node: the `GovernanceApi` the HTTP routes serve, read from the
 * node's committed chain state - proposals with their tally so far (over the validators that
 * will decide the next height), and every governed parameter's effective value, now or at a
 * past height (from the history the governance module keeps of each parameter).
 *
 * Wiring (src/node/full-node.ts): `new NodeGovernance({ state: () => node.app.state,
 * height: () => node.app.head.height, genesis })`, passed to the API server as `governance`.
 */
import { InvalidInputError } from '../core/errors.ts'
import type { ChainParams, GenesisDoc } from '../chain/genesis.ts'
import type { StateReader } from '../chain/state-view.ts'
import { validatorRecord, validatorSetAt } from '../staking/staking.ts'
import { defaultOf, GOVERNED_PARAMS, type RegisteredParam } from '../governance/registry.ts'
import {
  changeAt,
  decide,
  depositsOf,
  govRules,
  listProposals,
  paramHistory,
  readProposal,
  tallyVotes,
  votesOf,
  type ParamChange,
  type Outcome,
  type ProposalRecord,
  type Tally,
} from '../governance/chain/state.ts'
import type {
  GovernanceApi,
  GovParamsView,
  ParamValueView,
  ParamView,
  ProposalQuery,
  ProposalView,
  TallyView,
} from '../api/governance-api.ts'

export interface NodeGovernanceOptions {
  /** The committed state (the node's `app.state`). */
  state: () => StateReader
  /** The latest committed height (the node's `app.head.height`). */
  height: () => number
  genesis: GenesisDoc
}

/** Largest page of GET /v1/gov/proposals. */
export const MAX_PROPOSALS_PAGE = 100

const valueView = (value: ParamChange['value'] | readonly string[]): ParamValueView =>
  typeof value === 'bigint' ? value.toString() : [...value]

function tallyView(tally: Tally, outcome: Outcome, final: boolean): TallyView {
  const voted = tally.yes + tally.no + tally.abstain + tally.veto
  return {
    yes: tally.yes.toString(),
    no: tally.no.toString(),
    abstain: tally.abstain.toString(),
    veto: tally.veto.toString(),
    totalPower: tally.totalPower.toString(),
    turnoutBps: tally.totalPower === 0n ? 0 : Number((voted * 10_000n) / tally.totalPower),
    final,
    outcome: outcome.status,
    ...(outcome.status === 'passed' ? {} : { reason: outcome.reason }),
  }
}

/** The outcome a decided proposal had (its status and reason). */
function finalOutcome(p: ProposalRecord): Outcome {
  if (p.status === 'rejected' || p.status === 'vetoed')
    return { status: p.status, reason: (p.reason ?? 'threshold') as 'quorum' | 'threshold' | 'veto' }
  return { status: 'passed' }
}

function paramView(spec: RegisteredParam, height: number, state: StateReader, genesis: ChainParams): ParamView {
  const change = changeAt(paramHistory(state, spec.name), height)
  // a core chain parameter's default is this chain's genesis value
  const fallback = defaultOf(spec, genesis)
  return {
    name: spec.name,
    kind: spec.kind,
    value: valueView(change?.value ?? fallback),
    default: valueView(fallback),
    governed: change !== undefined,
    ...(change === undefined ? {} : { changedAt: change.height, proposal: change.proposal }),
    ...(spec.min === undefined ? {} : { min: spec.min.toString() }),
    ...(spec.max === undefined ? {} : { max: spec.max.toString() }),
    ...(spec.maxItems === undefined ? {} : { maxItems: spec.maxItems }),
    ...(spec.maxItemChars === undefined ? {} : { maxItemChars: spec.maxItemChars }),
    description: spec.description,
  }
}

export class NodeGovernance implements GovernanceApi {
  readonly #state: () => StateReader
  readonly #height: () => number
  readonly #genesis: GenesisDoc

  constructor(options: NodeGovernanceOptions) {
    this.#state = options.state
    this.#height = options.height
    this.#genesis = options.genesis
  }

  proposals(query: ProposalQuery): { height: number; proposals: ProposalView[] } {
    const state = this.#state()
    const limit = Math.min(query.limit ?? 50, MAX_PROPOSALS_PAGE)
    const records = listProposals(state, { ...query, limit })
    return { height: this.#height(), proposals: records.map((p) => this.#view(state, p, false)) }
  }

  proposal(id: number): ProposalView | undefined {
    const state = this.#state()
    const p = readProposal(state, id)
    return p === undefined ? undefined : this.#view(state, p, true)
  }

  params(height?: number): GovParamsView {
    const head = this.#height()
    const at = height ?? head
    if (at > head) throw new InvalidInputError(`height ${at} is above the latest committed height ${head}`)
    const state = this.#state()
    return {
      height: at,
      params: GOVERNED_PARAMS.map((spec) => paramView(spec, at, state, this.#genesis.params)),
      fixed: Object.fromEntries(
        Object.entries(this.#genesis.params).map(([k, v]) => [k, typeof v === 'bigint' ? v.toString() : (v as number)]),
      ),
    }
  }

  /** The validators that decide the next height (what a tally at the end of it would count). */
  #validators(state: StateReader): ReadonlyArray<{ did: string }> {
    return validatorSetAt(state, this.#height() + 1, this.#genesis.params).validators
  }

  #view(state: StateReader, p: ProposalRecord, detail: boolean): ProposalView {
    const view: ProposalView = {
      id: p.id,
      proposer: p.proposer,
      title: p.title,
      description: p.description,
      changes: p.changes.map((c) => ({ param: c.param, value: valueView(c.value) })),
      status: p.status,
      submitHeight: p.submitHeight,
      depositEndHeight: p.depositEndHeight,
      totalDeposit: p.totalDeposit.toString(),
      minDeposit: govRules(state).minDeposit.toString(),
      ...(p.requestedApplyHeight === undefined ? {} : { requestedApplyHeight: p.requestedApplyHeight }),
      ...(p.votingStartHeight === undefined ? {} : { votingStartHeight: p.votingStartHeight }),
      ...(p.votingEndHeight === undefined ? {} : { votingEndHeight: p.votingEndHeight }),
      ...(p.applyHeight === undefined ? {} : { applyHeight: p.applyHeight }),
      ...(p.decidedHeight === undefined ? {} : { decidedHeight: p.decidedHeight }),
      ...(p.appliedHeight === undefined ? {} : { appliedHeight: p.appliedHeight }),
      ...(p.reason === undefined ? {} : { reason: p.reason }),
    }
    if (p.tally !== undefined) view.tally = tallyView(p.tally, finalOutcome(p), true)
    else if (p.status === 'voting') {
      const tally = tallyVotes(state, p.id, this.#validators(state))
      view.tally = tallyView(tally, decide(tally, govRules(state)), false)
    }
    if (detail) {
      view.votes = votesOf(state, p.id).map((v) => ({
        ...v,
        power: (validatorRecord(state, v.voter)?.bonded ?? 0n).toString(),
      }))
      view.deposits = depositsOf(state, p.id).map((d) => ({ did: d.did, amount: d.amount.toString() }))
    }
    return view
  }
}
