/**
 * governance: stake-weighted proposals that change governed parameters (issue 15, part 5),
 * after Cosmos SDK x/gov. The parameters a proposal may change, their bounds and defaults are
 * the registry (registry.ts); the values live under `gov/param/<name>` (params.ts) and the
 * modules that own them read them at use time. Money is bigint base units; shares are integer
 * basis points; nothing here uses floating point.
 *
 * Transactions (`governance.<kind>`, dag-cbor bodies decoded strictly by decode.ts; a change of
 * an unregistered parameter or a value out of its bounds is refused at the edge):
 *
 *   propose  { title, description, changes: [{ param, value }], applyAtHeight?, deposit }.
 *            Anyone may propose. The deposit moves from the sender into escrow (`spends`); it
 *            must be at least `minInitialDepositBps` of `governance.minDeposit`
 *            ('deposit-too-small'). The proposal gets the next id (1, 2, ...). With the whole
 *            minimum deposited, voting starts at once; else it waits in the deposit period
 *            (`governance.depositPeriodBlocks`) for `governance.deposit`s. `applyAtHeight` must
 *            leave `governance.minApplyDelayBlocks` after the end of voting
 *            ('apply-height-too-early', also checked when voting starts) and at most
 *            MAX_APPLY_DELAY_BLOCKS ('apply-height-too-late'); absent, the changes apply at the
 *            earliest allowed height. Emits `governance.proposed` (and `governance.voting`).
 *
 *   deposit  { proposal, amount }: tops up a proposal in its deposit or voting period
 *            ('unknown-proposal', 'not-open'); at most MAX_DEPOSITORS accounts per proposal
 *            ('too-many-depositors'). Reaching the minimum starts voting. Emits `governance.deposit`.
 *
 *   vote     { proposal, option: yes | no | abstain | veto }: by a validator of the current set
 *            only ('not-validator'), while the proposal is in its voting period ('not-voting').
 *            A new vote replaces the voter's previous one. Emits `governance.vote`.
 *
 * Voting period: from the block where the deposit reached the minimum (`votingStartHeight`) to
 * `votingEndHeight` = start + `governance.votingPeriodBlocks`, votes in that last block included.
 *
 * End of block at `votingEndHeight`: the tally (state.ts `tallyVotes`, `decide`) weighs each
 * vote by the voter's bonded stake at that moment, over the validators deciding that height
 * (jailed and tombstoned ones count nothing); total power is their bonded stake.
 *   votes (abstain included) < quorumBps of total power  -> rejected 'quorum', deposits refunded
 *   veto > vetoBps of all votes                          -> vetoed, deposits burned
 *   yes > thresholdBps of yes + no + veto                -> passed, deposits refunded, changes scheduled
 *   otherwise                                            -> rejected 'threshold', deposits refunded
 * Emits `governance.tally`. A proposal still short of the minimum at the end of its deposit
 * period expires with its deposits refunded (`governance.expired`).
 *
 * Core chain parameters (`chain.*`, `staking.*`, registry.ts) default to the genesis value: the
 * module is built with the chain's genesis parameters, checks their genesis-dependent bounds at
 * the edge, and reports the genesis value as `previous` of their first change.
 *
 * Beginning of block at `applyHeight`: each change of each passed proposal scheduled there (in id
 * order; a later id wins on the same parameter) is written with `writeGoverned` and logged in the
 * parameter's history; emits `governance.param` { proposal, param, value, previous } per change
 * and `governance.applied`. The state after block H-1 holds the old values, after block H the
 * new ones: this block's transactions and end-of-block hooks read the new value, while
 * `beginBlock` hooks of the modules registered before governance still read the old one.
 *
 * State layout: state.ts.
 */
import type { BlockContext, ChainEvent, ChainModule, TxContext, TxHandler } from '../../chain/host.ts'
import type { ChainParams } from '../../chain/genesis.ts'
import type { StateOverlay, StateReader } from '../../chain/state-view.ts'
import { burn, credit, debit } from '../../bank/bank.ts'
import { refuse } from '../../inference/chain/decode.ts'
import { governedList, governedUint, writeGoverned } from '../params.ts'
import { defaultOf, registeredParam } from '../registry.ts'
import {
  decodeDeposit,
  decodePropose,
  decodeVote,
  type DepositBody,
  type ProposeBody,
  type VoteBody,
} from './decode.ts'
import {
  ESCROW_KEY,
  MAX_APPLY_DELAY_BLOCKS,
  MAX_DEPOSITORS,
  NEXT_KEY,
  appendParamHistory,
  applyDue,
  decide,
  depositDue,
  depositKey,
  depositOf,
  depositorsSet,
  escrowBalance,
  govRules,
  listProposals,
  nextProposalId,
  readProposal,
  readVote,
  tallyVotes,
  voteKey,
  votersSet,
  votingDue,
  writeAmount,
  writeProposal,
  type GovRules,
  type ParamChange,
  type ProposalRecord,
} from './state.ts'

export { GOVERNED_PARAMS, registeredParam, governedDefault, defaultOf } from '../registry.ts'

type Emit = (event: ChainEvent) => void

const valueText = (value: ParamChange['value']): string =>
  typeof value === 'bigint' ? value.toString() : JSON.stringify(value)

/** The requested height fits a voting period starting at `start` (or throws). */
function checkApplyHeight(requested: number | undefined, start: number, rules: GovRules, latestStart = start): number {
  const earliest = start + rules.votingPeriodBlocks + rules.minApplyDelayBlocks
  if (requested === undefined) return earliest
  if (requested < earliest)
    refuse(
      'apply-height-too-early',
      `applyAtHeight ${requested} is before ${earliest}: voting ends at ${start + rules.votingPeriodBlocks} and changes wait ${rules.minApplyDelayBlocks} blocks more`,
    )
  const latest = latestStart + rules.votingPeriodBlocks + MAX_APPLY_DELAY_BLOCKS
  if (requested > latest) refuse('apply-height-too-late', `applyAtHeight ${requested} is after ${latest}`)
  return requested
}

function addDeposit(state: StateOverlay, p: ProposalRecord, did: string, amount: bigint): void {
  const depositors = depositorsSet(p.id)
  if (!depositors.has(state, did) && depositors.size(state) >= MAX_DEPOSITORS)
    refuse(
      'too-many-depositors',
      `proposal ${p.id} already has ${MAX_DEPOSITORS} depositors; top up an existing deposit`,
    )
  debit(state, did, amount)
  depositors.add(state, did)
  writeAmount(state, depositKey(p.id, did), depositOf(state, p.id, did) + amount)
  writeAmount(state, ESCROW_KEY, escrowBalance(state) + amount)
  p.totalDeposit += amount
}

/** Moves a proposal whose deposit reached the minimum into its voting period (from `height`). */
function startVoting(state: StateOverlay, p: ProposalRecord, height: number, rules: GovRules, emit: Emit): void {
  const applyHeight = checkApplyHeight(p.requestedApplyHeight, height, rules)
  depositDue(p.depositEndHeight).delete(state, String(p.id))
  p.status = 'voting'
  p.votingStartHeight = height
  p.votingEndHeight = height + rules.votingPeriodBlocks
  p.applyHeight = applyHeight
  votingDue(p.votingEndHeight).add(state, String(p.id))
  emit({
    type: 'governance.voting',
    attributes: { id: String(p.id), votingEnd: String(p.votingEndHeight), applyHeight: String(applyHeight) },
  })
}

/** Pays every deposit back (`burnThem`: destroys them instead) and empties the proposal's escrow. */
function settleDeposits(state: StateOverlay, p: ProposalRecord, burnThem: boolean): void {
  const depositors = depositorsSet(p.id)
  for (const did of depositors.list(state)) {
    const amount = depositOf(state, p.id, did)
    if (!burnThem) credit(state, did, amount)
    state.remove(depositKey(p.id, did))
    depositors.delete(state, did)
  }
  writeAmount(state, ESCROW_KEY, escrowBalance(state) - p.totalDeposit)
  if (burnThem) burn(state, p.totalDeposit)
}

function openProposal(state: StateOverlay, id: number): ProposalRecord {
  const p = readProposal(state, id)
  if (p === undefined) refuse('unknown-proposal', `there is no proposal ${id}`)
  return p
}

/** Ids of a due set, numerically, emptying the set. */
function takeDue(state: StateOverlay, set: ReturnType<typeof depositDue>): number[] {
  const ids = set.list(state)
  for (const id of ids) set.delete(state, id)
  return ids.map(Number).sort((a, b) => a - b)
}

const proposeHandler = (params: ChainParams): TxHandler<ProposeBody> => ({
  decodeBody: (body) => decodePropose(body, params),
  spends: (body) => body.deposit,
  apply(state, tx, body, ctx) {
    const rules = govRules(state)
    if (body.deposit < rules.minInitialDeposit)
      refuse('deposit-too-small', `a proposal must deposit at least ${rules.minInitialDeposit} itself`)
    // voting starts now at the earliest, at the end of the deposit period at the latest
    checkApplyHeight(body.applyAtHeight, ctx.height, rules, ctx.height + rules.depositPeriodBlocks)
    const id = nextProposalId(state)
    state.write(NEXT_KEY, id + 1)
    const p: ProposalRecord = {
      id,
      proposer: tx.sender,
      title: body.title,
      description: body.description,
      changes: body.changes,
      ...(body.applyAtHeight === undefined ? {} : { requestedApplyHeight: body.applyAtHeight }),
      submitHeight: ctx.height,
      depositEndHeight: ctx.height + rules.depositPeriodBlocks,
      totalDeposit: 0n,
      status: 'deposit',
    }
    addDeposit(state, p, tx.sender, body.deposit)
    ctx.emit({
      type: 'governance.proposed',
      attributes: {
        id: String(id),
        proposer: tx.sender,
        deposit: body.deposit.toString(),
        changes: body.changes.map((c) => c.param).join(','),
      },
    })
    if (p.totalDeposit >= rules.minDeposit) startVoting(state, p, ctx.height, rules, ctx.emit)
    else depositDue(p.depositEndHeight).add(state, String(id))
    writeProposal(state, p)
  },
})

const deposit: TxHandler<DepositBody> = {
  decodeBody: decodeDeposit,
  spends: (body) => body.amount,
  apply(state, tx, body, ctx) {
    const p = openProposal(state, body.proposal)
    if (p.status !== 'deposit' && p.status !== 'voting')
      refuse('not-open', `proposal ${p.id} is ${p.status}; deposits are taken in its deposit and voting periods`)
    const rules = govRules(state)
    addDeposit(state, p, tx.sender, body.amount)
    ctx.emit({
      type: 'governance.deposit',
      attributes: {
        id: String(p.id),
        depositor: tx.sender,
        amount: body.amount.toString(),
        total: p.totalDeposit.toString(),
      },
    })
    if (p.status === 'deposit' && p.totalDeposit >= rules.minDeposit) startVoting(state, p, ctx.height, rules, ctx.emit)
    writeProposal(state, p)
  },
}

const vote: TxHandler<VoteBody> = {
  decodeBody: decodeVote,
  apply(state, tx, body, ctx: TxContext) {
    if (!ctx.validators.validators.some((v) => v.did === tx.sender))
      refuse('not-validator', `${tx.sender} is not in the validator set of height ${ctx.height}; only validators vote`)
    const p = openProposal(state, body.proposal)
    if (p.status !== 'voting') refuse('not-voting', `proposal ${p.id} is ${p.status}, not in its voting period`)
    const previous = readVote(state, p.id, tx.sender)
    state.write(voteKey(p.id, tx.sender), body.option)
    votersSet(p.id).add(state, tx.sender)
    ctx.emit({
      type: 'governance.vote',
      attributes: {
        id: String(p.id),
        voter: tx.sender,
        option: body.option,
        ...(previous === undefined ? {} : { previous }),
      },
    })
  },
}

/** Proposals still short of the minimum deposit at the end of their deposit period expire. */
function expireDeposits(state: StateOverlay, ctx: BlockContext): void {
  for (const id of takeDue(state, depositDue(ctx.height))) {
    const p = readProposal(state, id)
    if (p?.status !== 'deposit') continue
    settleDeposits(state, p, false)
    p.status = 'expired'
    p.reason = 'deposit'
    p.decidedHeight = ctx.height
    writeProposal(state, p)
    ctx.emit({ type: 'governance.expired', attributes: { id: String(id), refunded: p.totalDeposit.toString() } })
  }
}

/** Tallies the proposals whose voting period ends at this height. */
function tallyDue(state: StateOverlay, ctx: BlockContext): void {
  const due = takeDue(state, votingDue(ctx.height))
  if (due.length === 0) return
  const rules = govRules(state)
  for (const id of due) {
    const p = readProposal(state, id)
    if (p?.status !== 'voting') continue
    const tally = tallyVotes(state, id, ctx.validators.validators)
    const outcome = decide(tally, rules)
    settleDeposits(state, p, outcome.status === 'vetoed')
    p.status = outcome.status
    p.tally = tally
    p.decidedHeight = ctx.height
    if (outcome.status === 'passed') applyDue(p.applyHeight as number).add(state, String(id))
    else p.reason = outcome.reason
    writeProposal(state, p)
    ctx.emit({
      type: 'governance.tally',
      attributes: {
        id: String(id),
        status: outcome.status,
        ...(outcome.status === 'passed' ? { applyHeight: String(p.applyHeight) } : { reason: outcome.reason }),
        yes: tally.yes.toString(),
        no: tally.no.toString(),
        abstain: tally.abstain.toString(),
        veto: tally.veto.toString(),
        totalPower: tally.totalPower.toString(),
        deposit: p.totalDeposit.toString(),
      },
    })
  }
}

/** Writes the changes of the passed proposals scheduled at this height. */
function applyDueChanges(state: StateOverlay, ctx: BlockContext, params: ChainParams): void {
  for (const id of takeDue(state, applyDue(ctx.height))) {
    const p = readProposal(state, id)
    if (p?.status !== 'passed') continue
    for (const change of p.changes) {
      const spec = registeredParam(change.param)
      if (spec === undefined) continue // a parameter no longer registered: nothing reads it
      const fallback = defaultOf(spec, params)
      const previous =
        spec.kind === 'uint'
          ? governedUint(state, spec.name, fallback as bigint)
          : governedList(state, spec.name, fallback as readonly string[])
      writeGoverned(state, change.param, change.value)
      appendParamHistory(state, change.param, { height: ctx.height, proposal: id, value: change.value })
      ctx.emit({
        type: 'governance.param',
        attributes: {
          proposal: String(id),
          param: change.param,
          value: valueText(change.value),
          previous: valueText(typeof previous === 'bigint' ? previous : [...previous]),
        },
      })
    }
    p.status = 'applied'
    p.appliedHeight = ctx.height
    writeProposal(state, p)
    ctx.emit({ type: 'governance.applied', attributes: { id: String(id), height: String(ctx.height) } })
  }
}

/** Proposals looked at by `wantsBlock`, newest first (each lives for its periods only, so the open ones are recent). */
const OPEN_SCAN = 64

/** A proposal collecting deposits, in its vote, or passed and waiting for its height: its periods run by height. */
function hasOpenProposal(state: StateReader): boolean {
  return listProposals(state, { limit: OPEN_SCAN }).some(
    (p) => p.status === 'deposit' || p.status === 'voting' || p.status === 'passed',
  )
}

export function governanceModule(params: ChainParams): ChainModule {
  return {
    name: 'governance',
    txs: { propose: proposeHandler(params), deposit, vote },
    beginBlock: (state, ctx) => applyDueChanges(state, ctx, params),
    endBlock(state, ctx) {
      expireDeposits(state, ctx)
      tallyDue(state, ctx)
    },
    wantsBlock: hasOpenProposal,
  }
}
