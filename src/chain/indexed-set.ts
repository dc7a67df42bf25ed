/**
 * A set of strings in chain state with one key per entry, so adding or removing an item writes a
 * few small keys instead of rewriting a whole list (a list under one key costs every change the
 * size of the list, in the state tree and in each block's write batch):
 *
 *   <prefix>/n           number of items
 *   <prefix>/i/<index>   the item at index (0 <= index < n)
 *   <prefix>/at/<item>   its index
 *
 * Removal swaps the last item into the freed index (swap-remove), so indexes stay dense and every
 * operation writes at most five keys. Iteration order is insertion order until a removal moves
 * the last item; callers that need an order sort what `list` returns.
 */
import { InvalidInputError } from '../core/errors.ts'
import { readState, type StateOverlay, type StateReader } from './state-view.ts'

/** Longest item accepted (a did:key is 56 characters, a CIDv1 about 60). @default 256 */
export const MAX_ITEM_LENGTH = 256

export class IndexedSet {
  readonly prefix: string

  constructor(prefix: string) {
    if (prefix.length === 0 || prefix.endsWith('/')) throw new InvalidInputError('an indexed set needs a prefix')
    this.prefix = prefix
  }

  size(state: StateReader): number {
    return readState<number>(state, this.#countKey()) ?? 0
  }

  has(state: StateReader, item: string): boolean {
    return this.indexOf(state, item) !== undefined
  }

  /** The item's index, or undefined when it is not in the set. */
  indexOf(state: StateReader, item: string): number | undefined {
    return readState<number>(state, this.#atKey(item))
  }

  /** The item at `index`, or undefined outside 0..size-1. */
  at(state: StateReader, index: number): string | undefined {
    return readState<string>(state, this.#itemKey(index))
  }

  /** Adds `item`; false when it was already there. */
  add(state: StateOverlay, item: string): boolean {
    checkItem(item)
    if (this.has(state, item)) return false
    const n = this.size(state)
    state.write(this.#itemKey(n), item)
    state.write(this.#atKey(item), n)
    state.write(this.#countKey(), n + 1)
    return true
  }

  /** Removes `item` (the last item takes its index); false when it was not there. */
  delete(state: StateOverlay, item: string): boolean {
    const index = this.indexOf(state, item)
    if (index === undefined) return false
    const last = this.size(state) - 1
    if (index !== last) {
      const moved = this.at(state, last) as string
      state.write(this.#itemKey(index), moved)
      state.write(this.#atKey(moved), index)
    }
    state.remove(this.#itemKey(last))
    state.remove(this.#atKey(item))
    if (last === 0) state.remove(this.#countKey())
    else state.write(this.#countKey(), last)
    return true
  }

  /** Up to `count` items from index `start`. */
  page(state: StateReader, start: number, count: number): string[] {
    const end = Math.min(this.size(state), start + count)
    const out: string[] = []
    for (let i = Math.max(0, start); i < end; i++) out.push(this.at(state, i) as string)
    return out
  }

  /** Every item, in index order. */
  list(state: StateReader): string[] {
    return this.page(state, 0, this.size(state))
  }

  #countKey(): string {
    return `${this.prefix}/n`
  }

  #itemKey(index: number): string {
    return `${this.prefix}/i/${index}`
  }

  #atKey(item: string): string {
    return `${this.prefix}/at/${item}`
  }
}

function checkItem(item: string): void {
  if (typeof item !== 'string' || item.length === 0 || item.length > MAX_ITEM_LENGTH)
    throw new InvalidInputError(`an indexed-set item must be a string of 1-${MAX_ITEM_LENGTH} characters`)
}
