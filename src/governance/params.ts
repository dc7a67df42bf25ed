/**
 * Parameters that governance can change (issue 15, part 5). A module that lets governance tune
 * one of its parameters declares it as a `GovernedParam` (the registry of every one is
 * `GOVERNED_PARAMS` in registry.ts) and reads it with `governedUint` / `governedList`, falling
 * back to its genesis or built-in default while no accepted proposal has set it. Only the
 * governance module writes these keys (`writeGoverned`), when a proposal that passed reaches the
 * height it names.
 *
 * State: `gov/param/<name>` -> a uint64 (bigint) or a list of strings.
 *
 * A core chain parameter (`chain.*`, `staking.*`) names the genesis parameter it governs
 * (`genesis`): its default is the chain's genesis value, not a constant (`defaultOf`), and its
 * bounds may depend on the genesis too (`genesisBounds`, e.g. `chain.maxBlockTxs` never above the
 * genesis value). The governance module, built with the chain's genesis parameters, checks a
 * proposal against those; a check without them (the CLI's) applies the fixed bounds only.
 */
import { InvalidInputError } from '../core/errors.ts'
import type { ChainParams } from '../chain/genesis.ts'
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
  /**
   * The genesis parameter (ChainParams) this one governs: its default is the chain's genesis
   * value, which the readers pass as their fallback.
   */
  genesis?: keyof ChainParams
  /**
   * Bounds that depend on the chain's genesis, narrowing `min`/`max` (uint); `rule` says why in
   * words (shown with the bounds, and in the refusal).
   */
  genesisBounds?: {
    of(params: ChainParams): { min?: bigint; max?: bigint }
    rule: string
  }
}

/** The bounds of a uint parameter: the fixed ones, narrowed by the genesis-dependent ones when `params` are given. */
export function effectiveBounds(spec: GovernedParam, params?: ChainParams): { min: bigint; max: bigint | undefined } {
  let min = spec.min ?? 0n
  let max = spec.max
  const narrow = params === undefined ? undefined : spec.genesisBounds?.of(params)
  if (narrow?.min !== undefined && narrow.min > min) min = narrow.min
  if (narrow?.max !== undefined && (max === undefined || narrow.max < max)) max = narrow.max
  return { min, max }
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

function checkUint(spec: GovernedParam, value: unknown, params?: ChainParams): bigint {
  let n: bigint
  try {
    n = asUint64(value, spec.name)
  } catch (err) {
    throw new InvalidInputError(`${spec.name} takes a whole number`, { cause: err })
  }
  if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max))
    throw new InvalidInputError(`${spec.name} must be in ${spec.min ?? 0n}..${spec.max ?? 'max'}, not ${n}`)
  const { min, max } = effectiveBounds(spec, params)
  if (n < min || (max !== undefined && n > max))
    throw new InvalidInputError(
      `${spec.name} must be in ${min}..${max ?? 'max'} on this chain (${spec.genesisBounds?.rule ?? ''}), not ${n}`,
    )
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
 * InvalidInputError naming the parameter and the rule it breaks. With the chain's genesis
 * `params`, the genesis-dependent bounds apply too (`genesisBounds`).
 */
export function checkGovernedValue(spec: GovernedParam, value: unknown, params?: ChainParams): bigint | string[] {
  return spec.kind === 'uint' ? checkUint(spec, value, params) : checkList(spec, value)
}
