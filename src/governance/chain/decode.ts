/**
 * Strict decoders for the governance module's transaction bodies: every field typed and bounded,
 * unknown fields refused. Shapes throw TxError('malformed', ...) naming the field; a change that
 * names no registered parameter is 'unknown-param', a value outside the parameter's bounds
 * 'param-out-of-bounds' (for a core chain parameter, bounds that depend on the chain's genesis
 * included: `chain.maxBlockTxs` never above its genesis value). All of them are refused at the edge: such a transaction is invalid and
 * never included. Rules that need state (deposits, periods, heights, who votes) are the
 * handlers' (module.ts).
 */
import { TxError } from '../../chain/errors.ts'
import type { ChainParams } from '../../chain/genesis.ts'
import { amountOf, fields, malformed, text } from '../../inference/chain/decode.ts'
import { checkGovernedValue } from '../params.ts'
import { registeredParam } from '../registry.ts'
import { VOTE_OPTIONS, type ParamChange, type VoteOption } from './state.ts'

export const MAX_TITLE_CHARS = 140
export const MAX_DESCRIPTION_CHARS = 5_000
/** Most parameter changes one proposal carries. */
export const MAX_CHANGES = 16

export interface ProposeBody {
  title: string
  description: string
  changes: ParamChange[]
  applyAtHeight?: number
  deposit: bigint
}

export interface DepositBody {
  proposal: number
  amount: bigint
}

export interface VoteBody {
  proposal: number
  option: VoteOption
}

function height(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1)
    malformed(`${field} must be a height \u2265 1`)
  return value
}

function proposalId(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1)
    malformed('proposal must be a proposal id (1, 2, \u2026)')
  return value
}

function changeOf(raw: unknown, i: number, params: ChainParams | undefined): ParamChange {
  const c = fields(raw, `changes[${i}]`, ['param', 'value'])
  const param = text(c.param, `changes[${i}].param`, 128)
  const spec = registeredParam(param)
  if (spec === undefined)
    throw new TxError('unknown-param', `changes[${i}]: ${JSON.stringify(param)} is not a governed parameter`)
  try {
    return { param, value: checkGovernedValue(spec, c.value, params) }
  } catch (err) {
    throw new TxError('param-out-of-bounds', `changes[${i}]: ${(err as Error).message}`, { cause: err })
  }
}

/**
 * A `governance.propose` body. With the chain's genesis `params` (the module always passes them)
 * the genesis-dependent bounds are checked too.
 */
export function decodePropose(body: unknown, params?: ChainParams): ProposeBody {
  const b = fields(body, 'governance.propose', ['title', 'description', 'changes', 'applyAtHeight', 'deposit'])
  if (!Array.isArray(b.changes) || b.changes.length === 0 || b.changes.length > MAX_CHANGES)
    malformed(`changes must list 1-${MAX_CHANGES} parameter changes`)
  const changes = b.changes.map((raw, i) => changeOf(raw, i, params))
  if (new Set(changes.map((c) => c.param)).size !== changes.length) malformed('changes name a parameter twice')
  return {
    title: text(b.title, 'title', MAX_TITLE_CHARS),
    description: text(b.description, 'description', MAX_DESCRIPTION_CHARS),
    changes,
    ...(b.applyAtHeight === undefined ? {} : { applyAtHeight: height(b.applyAtHeight, 'applyAtHeight') }),
    deposit: amountOf(b.deposit, 'deposit', { positive: true }),
  }
}

/** A `governance.deposit` body. */
export function decodeDeposit(body: unknown): DepositBody {
  const b = fields(body, 'governance.deposit', ['proposal', 'amount'])
  return { proposal: proposalId(b.proposal), amount: amountOf(b.amount, 'amount', { positive: true }) }
}

/** A `governance.vote` body. */
export function decodeVote(body: unknown): VoteBody {
  const b = fields(body, 'governance.vote', ['proposal', 'option'])
  if (typeof b.option !== 'string' || !(VOTE_OPTIONS as readonly string[]).includes(b.option))
    malformed(`option must be one of ${VOTE_OPTIONS.join(', ')}`)
  return { proposal: proposalId(b.proposal), option: b.option as VoteOption }
}
