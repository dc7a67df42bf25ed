/**
 * Reading parameters that governance can change (issue 15). Any module reads its governed
 * parameters here, below every module in the layer order, so a module lower than governance (the
 * inference registry's model allow-list) can honour them too. Only the governance module writes
 * them (`src/governance/params.ts` `writeGoverned`), when a passed proposal reaches its height.
 *
 * State: `gov/param/<name>` → a uint64 (bigint) or a list of strings.
 */
import { utf8 } from '../core/bytes.ts'
import { asUint64 } from '../core/uint.ts'
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
