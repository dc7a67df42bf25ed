/**
 * Reading parameters that governance can change (issue 15). Any module reads its governed
 * parameters here, below every module in the layer order, so a module lower than governance (the
 * inference registry's model allow-list) can honour them too. Only the governance module writes
 * them (`src/governance/params.ts` `writeGoverned`), when a passed proposal reaches its height.
 *
 * State: `gov/param/<name>` -> a uint64 (bigint) or a list of strings.
 *
 * The core chain parameters governance may change (`chain.*` here, `staking.*` in
 * src/staking/staking.ts) default to their genesis value: a reader passes the genesis parameter
 * as the fallback, `governedUint(state, name, BigInt(genesis.params.X))`, so a chain on which no
 * proposal touched them behaves (and hashes) exactly as before.
 */
import { utf8 } from '../core/bytes.ts'
import { asUint64 } from '../core/uint.ts'
import type { ChainParams } from './genesis.ts'
import { readState, type StateReader } from './state-view.ts'

export const governedKey = (name: string): string => `gov/param/${name}`

/** The governed value of a uint parameter, or `fallback` while governance has not set it. */
export function governedUint(state: StateReader, name: string, fallback: bigint): bigint {
  const value = readState<unknown>(state, governedKey(name))
  return value === undefined ? fallback : asUint64(value, name)
}

/** The governed value of a list parameter, or `fallback` while governance has not set it. */
export function governedList(state: StateReader, name: string, fallback: readonly string[]): readonly string[] {
  const value = readState<unknown>(state, governedKey(name))
  if (value === undefined) return fallback
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) return fallback
  return value as string[]
}

/** Whether an accepted proposal has set `name` (its value is no longer the default). */
export function isGoverned(state: StateReader, name: string): boolean {
  return state.get(utf8(governedKey(name))) !== undefined
}

/** Names of the governed core chain parameters read below governance (host, mempool, ChainApp). */
export const CHAIN_PARAMS = {
  /** The fee floor of every transaction (genesis `minFee`). */
  minFee: 'chain.minFee',
  /** Most transactions in a block (genesis `maxBlockTxs`; never above it, see the registry). */
  maxBlockTxs: 'chain.maxBlockTxs',
} as const

/**
 * The smallest fee a transaction needs on top of `state`: `chain.minFee`, or the genesis
 * `minFee` while governance has not set it. What the node's own transaction submitters pay.
 */
export function currentMinFee(state: StateReader, params: Pick<ChainParams, 'minFee'>): bigint {
  return governedUint(state, CHAIN_PARAMS.minFee, params.minFee)
}

/** The most transactions a block on top of `state` may carry: `chain.maxBlockTxs`, or the genesis value. */
export function currentMaxBlockTxs(state: StateReader, params: Pick<ChainParams, 'maxBlockTxs'>): number {
  const genesis = BigInt(params.maxBlockTxs)
  const value = governedUint(state, CHAIN_PARAMS.maxBlockTxs, genesis)
  // the registry keeps it at or below the genesis value; the cap holds even if it did not
  return Number(value < genesis ? value : genesis)
}
