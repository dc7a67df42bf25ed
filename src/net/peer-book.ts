/**
 * The peer book's datastore (`<data>/p2p`): LevelDB, as libp2p's own, with two changes.
 *
 * - **Unchanged peer records are not written again.** libp2p merges the remote peer's record on
 *   every stream it negotiates (to note the protocol), and its peer store writes the record on
 *   every merge, with `updated` set to the current time, changed or not: about five writes a
 *   second per peer on a busy devnet node. A put under `/peers/` whose record equals the stored
 *   one except for `updated` is dropped while the stored `updated` is younger than `refreshMs`;
 *   `updated` only decides when a peer without recent addresses expires (days), so it stays
 *   right to within `refreshMs`.
 * - **The last records read or written are kept in memory** (up to PEER_BOOK_CACHE_ENTRIES):
 *   each merge reads the record (libp2p's peer store, then the check above), so two LevelDB
 *   reads per negotiated stream were an idle node's steadiest disk work. Every write goes through
 *   this class (put, delete, batch), so the copy is never stale.
 * - **A 256 KB write buffer** (PEER_BOOK_LEVEL_OPTIONS), so what is still written is flushed and
 *   compacted down to the live records every minute or so. With LevelDB's 4 MB default every
 *   overwritten version reached a table file and stayed until a rare compaction: megabytes an
 *   hour, mapped into the node's memory when read (docs/reliability.md).
 *
 * Records are compared on their protobuf fields (libp2p's `Peer` message, where `updated` is
 * field 8, a varint); a record that does not parse is written as given.
 */
import { LevelDatastore } from 'datastore-level'
import type { Batch, Key } from 'interface-datastore'

/** LevelDB options of the peer book. */
export const PEER_BOOK_LEVEL_OPTIONS = { writeBufferSize: 256 * 1024 } as const

/** How stale the stored `updated` of an unchanged record may get before it is written again. */
export const PEER_RECORD_REFRESH_MS = 10 * 60_000

/** Peer records kept in memory (the peers a node talks to; each a few hundred bytes to a few KB). */
export const PEER_BOOK_CACHE_ENTRIES = 512

const PEERS_PREFIX = '/peers/'
const UPDATED_FIELD = 8

export interface PeerBookOptions {
  /** @default PEER_RECORD_REFRESH_MS */
  refreshMs?: number
  /** @default Date.now */
  now?: () => number
}

/** A record split into its fields other than `updated`, and `updated`; undefined if it does not parse. */
export function splitPeerRecord(bytes: Uint8Array): { rest: Uint8Array; updated: number | undefined } | undefined {
  const kept: Uint8Array[] = []
  let updated: number | undefined
  let at = 0
  const varint = (): number | undefined => {
    let value = 0
    for (let shift = 0; shift < 64; shift += 7) {
      if (at >= bytes.length) return undefined
      const byte = bytes[at++] as number
      value += (byte & 0x7f) * 2 ** shift
      if ((byte & 0x80) === 0) return value
    }
    return undefined
  }
  while (at < bytes.length) {
    const start = at
    const tag = varint()
    if (tag === undefined) return undefined
    const wire = tag % 8
    const field = Math.floor(tag / 8)
    if (wire === 0) {
      const value = varint()
      if (value === undefined) return undefined
      if (field === UPDATED_FIELD) {
        updated = value
        continue
      }
    } else if (wire === 2) {
      const length = varint()
      if (length === undefined || at + length > bytes.length) return undefined
      at += length
    } else {
      return undefined
    }
    kept.push(bytes.subarray(start, at))
  }
  const rest = new Uint8Array(kept.reduce((n, part) => n + part.length, 0))
  let offset = 0
  for (const part of kept) {
    rest.set(part, offset)
    offset += part.length
  }
  return { rest, updated }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0
}

export class PeerBookDatastore extends LevelDatastore {
  readonly #refreshMs: number
  readonly #now: () => number
  /** The latest stored bytes of recently used peer records, least recently used first. */
  readonly #cache = new Map<string, Uint8Array>()
  /** Writes begun (a read that started before one may return older bytes: they are not kept). */
  #writes = 0
  /** Puts dropped because the record was unchanged (for tests and diagnostics). */
  skipped = 0
  /** Peer-record reads that went to LevelDB (the rest came from memory). */
  levelReads = 0

  constructor(path: string, options: PeerBookOptions = {}) {
    super(path, PEER_BOOK_LEVEL_OPTIONS)
    this.#refreshMs = options.refreshMs ?? PEER_RECORD_REFRESH_MS
    this.#now = options.now ?? Date.now
  }

  override async get(key: Key, options?: Parameters<LevelDatastore['get']>[1]): Promise<Uint8Array> {
    const name = key.toString()
    if (!name.startsWith(PEERS_PREFIX)) return super.get(key, options)
    const cached = this.#cache.get(name)
    if (cached !== undefined) {
      this.#remember(name, cached)
      return cached
    }
    this.levelReads++
    const writes = this.#writes
    const stored = await super.get(key, options)
    if (writes === this.#writes) this.#remember(name, stored)
    return stored
  }

  override async put(key: Key, value: Uint8Array, options?: Parameters<LevelDatastore['put']>[2]): Promise<Key> {
    const name = key.toString()
    if (!name.startsWith(PEERS_PREFIX)) return super.put(key, value, options)
    if (await this.#unchanged(key, value)) {
      this.skipped++
      return key
    }
    this.#forget(name) // a failed write leaves nothing stale behind
    const written = await super.put(key, value, options)
    this.#writes++ // a read that ran beside the write is not kept; this record is
    this.#remember(name, value)
    return written
  }

  override async delete(key: Key, options?: Parameters<LevelDatastore['delete']>[1]): Promise<void> {
    this.#forget(key.toString())
    try {
      await super.delete(key, options)
    } finally {
      this.#forget(key.toString()) // a read that ran beside the delete may have kept the record
    }
  }

  override batch(): Batch {
    const batch = super.batch()
    const commit = batch.commit.bind(batch)
    batch.commit = async (options) => {
      // rare (libp2p uses put and delete): forget everything rather than track the batch's keys,
      // before and after (a read that ran beside the commit may have kept an older record)
      this.#forget()
      try {
        await commit(options)
      } finally {
        this.#forget()
      }
    }
    return batch
  }

  override async close(): Promise<void> {
    this.#forget()
    await super.close()
  }

  /** Drops one record (or all) from memory and marks a write, so reads under way keep nothing. */
  #forget(name?: string): void {
    this.#writes++
    if (name === undefined) this.#cache.clear()
    else this.#cache.delete(name)
  }

  #remember(name: string, bytes: Uint8Array): void {
    this.#cache.delete(name)
    this.#cache.set(name, bytes)
    if (this.#cache.size > PEER_BOOK_CACHE_ENTRIES) this.#cache.delete(this.#cache.keys().next().value as string)
  }

  async #unchanged(key: Key, value: Uint8Array): Promise<boolean> {
    const next = splitPeerRecord(value)
    if (next === undefined) return false
    let stored: Uint8Array
    try {
      stored = await this.get(key)
    } catch {
      return false // not stored yet (or unreadable): write it
    }
    const previous = splitPeerRecord(stored)
    if (previous?.updated === undefined) return false
    return this.#now() - previous.updated < this.#refreshMs && sameBytes(previous.rest, next.rest)
  }
}
