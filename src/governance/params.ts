/**
 * Parameters that governance can change (issue 15, part 5). A module that lets governance tune
 * one of its parameters declares it as a `GovernedParam` (the registry of every one is
 * `GOVERNED_PARAMS` in registry.ts) and reads it with `governedUint` / `governedList`, falling
 * back to its genesis or built-in default while no accepted proposal has set it. Only the
 * governance module writes these keys (`writeGoverned`), when a proposal that passed reaches the
 * height it names.
 *
 * State: `gov/param/<name>` → a uint64 (bigint) or a list of strings.
 */
import { InvalidInputError } from '../core/errors.ts'
import type { StateOverlay } from '../chain/state-view.ts'
import { asUint64 } from '../core/uint.ts'

export interface GovernedParam {
  /** `<module>.<name>`, e.g. `arena.minRewardPool`. */
  name: string
  kind: 'uint' | 'list'
  /** Bounds a proposal must respect (uint). */
  min?: bigint
  max?: bigint
  /** Longest list and longest item (list). */
  maxItems?: number
  maxItemChars?: number
  /** What every item must look like (list), and the words that say so in an error. */
  itemPattern?: RegExp
  itemDescription?: string
  description: string
}

/** A governed value: a uint64, or a list of strings. */
export type GovernedValue = bigint | readonly string[]

// the readers live below every module (src/chain/governed.ts); re-exported for the modules above
export { governedKey, governedList, governedUint, isGoverned } from '../chain/governed.ts'
import { governedKey } from '../chain/governed.ts'

/** Sets a governed parameter (the governance module only, when a passed proposal applies). */
export function writeGoverned(state: StateOverlay, name: string, value: GovernedValue): void {
  state.write(governedKey(name), typeof value === 'bigint' ? value : [...value])
}

function checkUint(spec: GovernedParam, value: unknown): bigint {
  let n: bigint
  try {
    n = asUint64(value, spec.name)
  } catch (err) {
    throw new InvalidInputError(`${spec.name} takes a whole number`, { cause: err })
  }
  if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max))
    throw new InvalidInputError(`${spec.name} must be in ${spec.min ?? 0n}..${spec.max ?? 'max'}, not ${n}`)
  return n
}

function checkList(spec: GovernedParam, value: unknown): string[] {
  const maxItems = spec.maxItems ?? 64
  const maxChars = spec.maxItemChars ?? 128
  if (!Array.isArray(value) || value.length > maxItems)
    throw new InvalidInputError(`${spec.name} takes a list of at most ${maxItems} items`)
  const items = value.map((item: unknown, i) => {
    if (typeof item !== 'string' || item.length === 0 || item.length > maxChars)
      throw new InvalidInputError(`${spec.name}[${i}] must be a string of 1-${maxChars} characters`)
    if (spec.itemPattern !== undefined && !spec.itemPattern.test(item))
      throw new InvalidInputError(
        `${spec.name}[${i}] must be ${spec.itemDescription ?? `like ${String(spec.itemPattern)}`}`,
      )
    return item
  })
  if (new Set(items).size !== items.length) throw new InvalidInputError(`${spec.name} repeats an item`)
  return items
}

/**
 * `value` checked against `spec` (kind, bounds, list length and items), typed; throws
 * InvalidInputError naming the parameter and the rule it breaks.
 */
export function checkGovernedValue(spec: GovernedParam, value: unknown): bigint | string[] {
  return spec.kind === 'uint' ? checkUint(spec, value) : checkList(spec, value)
}
