/**
 * A compact, fixed-width encoding of PoH entries for passing them between threads in one buffer
 * (structured-cloning an array of objects with typed arrays costs more than hashing small entries).
 *
 * ```
 * header   32 B   the hash the first entry starts from
 * entry i  80 B   at 32 + 80·i:
 *   [0, 8)    numHashes, float64 little-endian (any safe integer)
 *   [8]       flags: bit 0 = has a mixin
 *   [9, 16)   zero
 *   [16, 48)  hash
 *   [48, 80)  mixin (zero when absent)
 * ```
 *
 * Only well-formed entries (see `entryShapeError`) can be encoded; callers check shapes first.
 */
import { POH_HASH_LENGTH, POH_HASH_MISMATCH, type PohCheck, type PohEntry } from './entries.ts'
import type { PohHasher } from './hasher.ts'

export const WIRE_HEADER_BYTES = POH_HASH_LENGTH
export const WIRE_ENTRY_BYTES = 80
const FLAG_MIXIN = 1
const HASH_AT = 16
const MIXIN_AT = 48

function entryOffset(index: number): number {
  return WIRE_HEADER_BYTES + index * WIRE_ENTRY_BYTES
}

/** Encodes `start` and well-formed `entries`; `shared` puts them in a SharedArrayBuffer for a worker pool. */
export function encodePohEntries(
  start: Uint8Array,
  entries: readonly PohEntry[],
  shared = false,
): ArrayBuffer | SharedArrayBuffer {
  const size = entryOffset(entries.length)
  const buffer = shared ? new SharedArrayBuffer(size) : new ArrayBuffer(size)
  const bytes = new Uint8Array(buffer)
  const view = new DataView(buffer)
  bytes.set(start.subarray(0, POH_HASH_LENGTH))
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i] as PohEntry
    const at = entryOffset(i)
    view.setFloat64(at, entry.numHashes, true)
    bytes.set(entry.hash, at + HASH_AT)
    if (entry.mixin !== undefined) {
      bytes[at + 8] = FLAG_MIXIN
      bytes.set(entry.mixin, at + MIXIN_AT)
    }
  }
  return buffer
}

/** Number of entries in an encoded buffer. */
export function encodedEntryCount(buffer: ArrayBufferLike): number {
  return Math.max(0, Math.floor((buffer.byteLength - WIRE_HEADER_BYTES) / WIRE_ENTRY_BYTES))
}

/** Decodes a buffer made by `encodePohEntries`; every array returned is a copy. */
export function decodePohEntries(buffer: ArrayBufferLike): { start: Uint8Array; entries: PohEntry[] } {
  const bytes = new Uint8Array(buffer)
  const view = new DataView(buffer)
  const count = encodedEntryCount(buffer)
  const entries: PohEntry[] = new Array<PohEntry>(count)
  for (let i = 0; i < count; i++) {
    const at = entryOffset(i)
    const numHashes = view.getFloat64(at, true)
    const hash = bytes.slice(at + HASH_AT, at + HASH_AT + POH_HASH_LENGTH)
    entries[i] =
      (bytes[at + 8] as number) & FLAG_MIXIN
        ? { numHashes, mixin: bytes.slice(at + MIXIN_AT, at + MIXIN_AT + POH_HASH_LENGTH), hash }
        : { numHashes, hash }
  }
  return { start: bytes.slice(0, POH_HASH_LENGTH), entries }
}

/**
 * Checks encoded entries [from, to) by hashing. The slice starts from the hash the entry before it
 * claims (or the header for from = 0), so slices can be checked independently and in parallel.
 * Indexes in the result are indexes in the whole buffer. Shapes are not checked here.
 */
export function checkEncodedSlice(hasher: PohHasher, buffer: ArrayBufferLike, from: number, to: number): PohCheck {
  const bytes = new Uint8Array(buffer)
  const view = new DataView(buffer)
  hasher.set(bytes, from === 0 ? 0 : entryOffset(from - 1) + HASH_AT)
  let ticks = 0
  for (let index = from; index < to; index++) {
    const at = entryOffset(index)
    hasher.hashN(view.getFloat64(at, true))
    if ((bytes[at + 8] as number) & FLAG_MIXIN) hasher.mix(bytes, at + MIXIN_AT)
    else ticks++
    if (!hasher.equals(bytes, at + HASH_AT)) return { ok: false, index, reason: POH_HASH_MISMATCH }
  }
  return { ok: true, end: hasher.hash, ticks }
}
