/**
 * A set of strings in chain state with one key per entry, so adding or removing one member writes
 * three keys whatever the set's size (a whole list rewritten on every change would make each
 * registration cost more than the last):
 *
 *   <prefix>/n             count
 *   <prefix>/i/<index>     member at index (0 … count−1)
 *   <prefix>/at/<member>   its index
 *
 * Removal moves the last member into the freed index. Order is insertion order disturbed by
 * removals; callers that need a canonical order sort what `members` returns.
 */
import { readState, type StateOverlay, type StateReader } from '../../chain/state-view.ts'

export class EntrySet {
  readonly #prefix: string

  constructor(prefix: string) {
    this.#prefix = prefix
  }

  size(state: StateReader): number {
    return readState<number>(state, `${this.#prefix}/n`) ?? 0
  }

  has(state: StateReader, member: string): boolean {
    return readState<number>(state, this.#at(member)) !== undefined
  }

  /** Adds `member`; false if it was there already. */
  add(state: StateOverlay, member: string): boolean {
    if (this.has(state, member)) return false
    const n = this.size(state)
    state.write(this.#index(n), member)
    state.write(this.#at(member), n)
    state.write(`${this.#prefix}/n`, n + 1)
    return true
  }

  /** Removes `member`; false if it was not there. */
  remove(state: StateOverlay, member: string): boolean {
    const at = readState<number>(state, this.#at(member))
    if (at === undefined) return false
    const last = this.size(state) - 1
    if (at !== last) {
      const moved = readState<string>(state, this.#index(last)) as string
      state.write(this.#index(at), moved)
      state.write(this.#at(moved), at)
    }
    state.remove(this.#index(last))
    state.remove(this.#at(member))
    if (last === 0) state.remove(`${this.#prefix}/n`)
    else state.write(`${this.#prefix}/n`, last)
    return true
  }

  /** Every member, in index order. */
  members(state: StateReader): string[] {
    const n = this.size(state)
    const out: string[] = []
    for (let i = 0; i < n; i++) {
      const member = readState<string>(state, this.#index(i))
      if (member !== undefined) out.push(member)
    }
    return out
  }

  #index(i: number): string {
    return `${this.#prefix}/i/${i}`
  }

  #at(member: string): string {
    return `${this.#prefix}/at/${member}`
  }
}
