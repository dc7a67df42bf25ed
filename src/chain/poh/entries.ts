/**
 * Proof-of-history entries: the shared, synchronous definition that the worker-thread generator,
 * the parallel verifier and the simulator all agree on.
 *
 * From a start hash h, an entry { numHashes, mixin?, hash } means: apply `h = sha256(h)`
 * numHashes times, then, if `mixin` is present, `h = sha256(h || mixin)` once; `hash` is the
 * resulting h, and the next entry starts from it. A **tick** is an entry without a mixin whose
 * numHashes equals the chain's hashesPerTick; any other entry must carry a mixin (the Merkle
 * root of the transactions it orders). Ticks count elapsed time; mixins fix transaction order.
 */
import { POH_HASH_LENGTH } from './constants.ts'
import { PohHasher } from './hasher.ts'
import { equals } from '../../core/bytes.ts'

export { POH_HASH_LENGTH } from './constants.ts'

/** The `reason` of a PoH check that fails because an entry's hash does not follow. */
export const POH_HASH_MISMATCH = 'hash does not follow from the previous entry'

export interface PohEntry {
  numHashes: number
  mixin?: Uint8Array
  hash: Uint8Array
}

let sharedHasher: PohHasher | undefined

/** Applies `count` sequential hashes, then the mixin (if any). Runs in WASM memory (PohHasher). */
export function extendPoh(start: Uint8Array, count: number, mixin?: Uint8Array): Uint8Array {
  sharedHasher ??= new PohHasher()
  sharedHasher.set(start)
  sharedHasher.hashN(count)
  if (mixin !== undefined) sharedHasher.mix(mixin)
  return sharedHasher.hash
}

export type PohCheck = { ok: true; end: Uint8Array; ticks: number } | { ok: false; index: number; reason: string }

/**
 * Checks entries one after another from `start` on this thread. Also checks the shape rules:
 * mixins are 32 bytes, a mixin-less entry has exactly hashesPerTick hashes.
 */
export function verifyPohEntries(start: Uint8Array, entries: readonly PohEntry[], hashesPerTick: number): PohCheck {
  let h = start
  let ticks = 0
  for (let index = 0; index < entries.length; index++) {
    const entry = entries[index] as PohEntry
    const shape = entryShapeError(entry, hashesPerTick)
    if (shape !== undefined) return { ok: false, index, reason: shape }
    if (entry.mixin === undefined) ticks++
    h = extendPoh(h, entry.numHashes, entry.mixin)
    if (!equals(h, entry.hash)) return { ok: false, index, reason: POH_HASH_MISMATCH }
  }
  return { ok: true, end: h, ticks }
}

/** Why an entry is malformed regardless of hashing, or undefined when it is well-formed. */
export function entryShapeError(entry: PohEntry, hashesPerTick: number): string | undefined {
  if (!Number.isSafeInteger(entry.numHashes) || entry.numHashes < 0) return 'numHashes must be a non-negative integer'
  if (!(entry.hash instanceof Uint8Array) || entry.hash.length !== POH_HASH_LENGTH) return 'hash must be 32 bytes'
  if (entry.mixin === undefined) {
    if (entry.numHashes !== hashesPerTick) return `a tick must have exactly ${hashesPerTick} hashes`
  } else if (!(entry.mixin instanceof Uint8Array) || entry.mixin.length !== POH_HASH_LENGTH) {
    return 'mixin must be 32 bytes'
  }
  return undefined
}

/** Number of ticks among well-formed entries. */
export function countTicks(entries: readonly PohEntry[]): number {
  let ticks = 0
  for (const entry of entries) if (entry.mixin === undefined) ticks++
  return ticks
}

/** A synchronous PoH chain on the calling thread (the simulator, tests, and tiny hashesPerTick). */
export class PohChain {
  readonly hashesPerTick: number
  #hash: Uint8Array
  #entries: PohEntry[] = []

  constructor(start: Uint8Array, hashesPerTick: number) {
    this.#hash = Uint8Array.from(start)
    this.hashesPerTick = hashesPerTick
  }

  get hash(): Uint8Array {
    return this.#hash
  }

  tick(count = 1): void {
    for (let i = 0; i < count; i++) this.#push(this.hashesPerTick)
  }

  /** Records a mixin after `numHashes` plain hashes (default 0). */
  record(mixin: Uint8Array, numHashes = 0): PohEntry {
    return this.#push(numHashes, mixin)
  }

  /** The entries produced since the last drain. */
  drain(): PohEntry[] {
    const out = this.#entries
    this.#entries = []
    return out
  }

  #push(numHashes: number, mixin?: Uint8Array): PohEntry {
    this.#hash = extendPoh(this.#hash, numHashes, mixin)
    const entry: PohEntry =
      mixin === undefined ? { numHashes, hash: this.#hash } : { numHashes, mixin, hash: this.#hash }
    this.#entries.push(entry)
    return entry
  }
}
