/**
 * Chain state seen by modules: a key->value map of byte strings with copy-on-write overlays.
 * A block executes in an overlay over the committed state; each transaction runs in a child
 * overlay that is merged only if the transaction succeeds, so a failing transaction leaves no
 * trace. Modules use string keys under their own prefix ("bank/...") and dag-cbor values, read
 * back with `decodeTrusted`: every value in the state was encoded by the chain's own execution.
 */
import { encode, decodeTrusted } from '../core/codec.ts'
import { utf8, toHex } from '../core/bytes.ts'

export interface StateReader {
  get(key: Uint8Array): Uint8Array | undefined
  /** `get(utf8(key))`, for a reader that answers string keys faster (the state tree remembers them). */
  getNamed?(key: string): Uint8Array | undefined
}

interface Change {
  key: Uint8Array
  value: Uint8Array | undefined
}

export class StateOverlay implements StateReader {
  readonly #base: StateReader
  readonly #changes = new Map<string, Change>()

  constructor(base: StateReader) {
    this.#base = base
  }

  get(key: Uint8Array): Uint8Array | undefined {
    const change = this.#changes.get(toHex(key))
    return change === undefined ? this.#base.get(key) : change.value
  }

  set(key: Uint8Array, value: Uint8Array): void {
    this.#changes.set(toHex(key), { key, value })
  }

  delete(key: Uint8Array): void {
    this.#changes.set(toHex(key), { key, value: undefined })
  }

  /** A child overlay for one transaction; `merge()` it to keep its writes. */
  fork(): StateOverlay {
    return new StateOverlay(this)
  }

  /** Copies this overlay's writes into its parent (the base must be an overlay). */
  merge(): void {
    const parent = this.#base
    if (!(parent instanceof StateOverlay)) throw new Error('merge() needs a parent overlay')
    for (const { key, value } of this.#changes.values()) {
      if (value === undefined) parent.delete(key)
      else parent.set(key, value)
    }
    this.#changes.clear()
  }

  /** The writes, in insertion order (undefined = delete). */
  changes(): Array<[Uint8Array, Uint8Array | undefined]> {
    return [...this.#changes.values()].map(({ key, value }) => [key, value])
  }

  // Typed helpers over string keys and dag-cbor values.
  read<T>(key: string): T | undefined {
    const bytes = this.get(utf8(key))
    return bytes === undefined ? undefined : decodeTrusted<T>(bytes)
  }

  write(key: string, value: unknown): void {
    this.set(utf8(key), encode(value))
  }

  remove(key: string): void {
    this.delete(utf8(key))
  }
}

/** Read-only typed access for queries. */
export function readState<T>(state: StateReader, key: string): T | undefined {
  const bytes = state.getNamed !== undefined ? state.getNamed(key) : state.get(utf8(key))
  // state values were written by this chain's own execution (or a root it trusts commits to them)
  return bytes === undefined ? undefined : decodeTrusted<T>(bytes)
}
