/**
 * Content-addressed blobs (model weights): files named by their CID (CIDv1, raw codec,
 * sha2-256) in one directory, written atomically, and verified against the CID on every read
 * and every fetch. Peers serve them on `/donghae/blob/1.0.0`: request = the CID string, answer =
 * dag-cbor `{ bytes }` or `{ error }`. A peer that answers with bytes that do not hash to the
 * CID is reported and the next peer is asked.
 *
 * Bounded, least recently used first: the files on disk by `maxStoreBytes` (4 GiB) and the copies
 * kept in memory by `maxCacheBytes` (64 MiB). `put`, and a `get` that finds the blob, make it the
 * most recently used; beyond a bound the least recently used blobs are dropped (the memory copy,
 * or the file). A blob a caller `pin`s (the worker pins each model it serves, and its tokenizer)
 * is never dropped from either until every pin is released; pins are counted and live in memory
 * only. Recency starts from the files' modification times when the store opens (`init`).
 *
 * Design note: the design brief suggests Helia's bitswap. The demo models are 10-100 KiB, one
 * frame each, so a single request/response with CID verification does the same job without a
 * second block store; bitswap becomes worth it for large, chunked weights (experts, later).
 */
import { mkdir, readFile, rename, writeFile, readdir, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { decode, encode } from '../core/codec.ts'
import { RAW_CODE, cidOfBytes, parseCid, verifyCid } from '../core/cid.ts'
import { describeError, InvalidInputError } from '../core/errors.ts'
import { fromUtf8, utf8 } from '../core/bytes.ts'
import { silentLogger, type Logger } from '../core/logger.ts'
import type { PeerTransport } from '../core/transport.ts'

export const BLOB_PROTOCOL = '/donghae/blob/1.0.0'
/** Largest blob served or fetched. @default 15 MiB (below the 16 MiB frame limit) */
export const MAX_BLOB_BYTES = 15 * 1024 * 1024
/** Bytes of blobs one peer may fetch from this node: 64 MiB a minute (four of the largest). */
export const BLOB_BUDGET = { bytes: 64 * 1024 * 1024, perMs: 60_000 }

/** The CID (string) of a blob. */
export function blobCid(bytes: Uint8Array): string {
  return cidOfBytes(bytes, RAW_CODE).toString()
}

/** Defaults of `BlobStoreOptions`. */
export const BLOB_STORE_DEFAULTS = Object.freeze({
  maxStoreBytes: 4 * 1024 ** 3,
  maxCacheBytes: 64 * 1024 ** 2,
})

export interface BlobStoreOptions {
  logger?: Logger
  /** Bytes of blob files kept on disk; the least recently used unpinned ones are deleted beyond it. @default 4 GiB */
  maxStoreBytes?: number
  /** Bytes of blobs kept in memory; the least recently used unpinned ones are dropped beyond it. @default 64 MiB */
  maxCacheBytes?: number
}

/** Sizes by CID in recency order (least recently used first), with their total. */
class Recency {
  readonly #sizes = new Map<string, number>()
  bytes = 0

  touch(cid: string, size: number): void {
    this.delete(cid)
    this.#sizes.set(cid, size)
    this.bytes += size
  }

  delete(cid: string): void {
    const size = this.#sizes.get(cid)
    if (size === undefined) return
    this.#sizes.delete(cid)
    this.bytes -= size
  }

  has(cid: string): boolean {
    return this.#sizes.has(cid)
  }

  /** The CIDs to drop, oldest first, to come under `max` without touching `keep`. */
  over(max: number, keep: (cid: string) => boolean): string[] {
    const out: string[] = []
    let bytes = this.bytes
    for (const [cid, size] of this.#sizes) {
      if (bytes <= max) break
      if (keep(cid)) continue
      out.push(cid)
      bytes -= size
    }
    return out
  }
}

function boundOf(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new InvalidInputError(`${name} must be a non-negative integer`)
  return value
}

export class BlobStore {
  readonly dir: string
  readonly #log: Logger
  readonly #maxStore: number
  readonly #maxCache: number
  readonly #cache = new Map<string, Uint8Array>()
  readonly #cached = new Recency()
  readonly #stored = new Recency()
  readonly #pins = new Map<string, number>()

  constructor(dir: string, options: BlobStoreOptions = {}) {
    this.dir = dir
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:blobs')
    this.#maxStore = boundOf('maxStoreBytes', options.maxStoreBytes ?? BLOB_STORE_DEFAULTS.maxStoreBytes)
    this.#maxCache = boundOf('maxCacheBytes', options.maxCacheBytes ?? BLOB_STORE_DEFAULTS.maxCacheBytes)
  }

  /** Creates the directory and reads what is there, oldest modification first. */
  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true })
    const files = await Promise.all(
      (await this.list()).map(async (cid) => {
        const info = await stat(join(this.dir, cid)).catch(() => undefined)
        return info === undefined ? undefined : { cid, size: info.size, mtime: info.mtimeMs }
      }),
    )
    for (const f of files.filter((f) => f !== undefined).sort((a, b) => a.mtime - b.mtime))
      this.#stored.touch(f.cid, f.size)
    await this.#evict()
  }

  /**
   * Keeps `cid` in the store and in memory until the returned function is called (pins count:
   * each `pin` needs its own release). Pinning a blob that is not here yet keeps it once it is.
   */
  pin(cid: string): () => void {
    this.#pins.set(cid, (this.#pins.get(cid) ?? 0) + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const left = (this.#pins.get(cid) ?? 1) - 1
      if (left > 0) this.#pins.set(cid, left)
      else this.#pins.delete(cid)
    }
  }

  isPinned(cid: string): boolean {
    return this.#pins.has(cid)
  }

  /** Bytes on disk and in memory (for stats and tests). */
  usage(): { storeBytes: number; cacheBytes: number } {
    return { storeBytes: this.#stored.bytes, cacheBytes: this.#cached.bytes }
  }

  /** Stores bytes under their CID (idempotent) and returns the CID. */
  async put(bytes: Uint8Array): Promise<string> {
    if (bytes.length > MAX_BLOB_BYTES)
      throw new InvalidInputError(`blob of ${bytes.length} bytes exceeds the ${MAX_BLOB_BYTES}-byte limit`)
    const cid = blobCid(bytes)
    if (await this.has(cid)) return cid
    const tmp = join(this.dir, `.${cid}.${randomBytes(4).toString('hex')}.tmp`)
    await writeFile(tmp, bytes)
    await rename(tmp, join(this.dir, cid))
    this.#stored.touch(cid, bytes.length) // not kept in memory: the caller may reuse its array
    await this.#evict()
    return cid
  }

  async has(cid: string): Promise<boolean> {
    return (await this.get(cid)) !== undefined
  }

  /** The blob's bytes, or undefined when absent or corrupt (a corrupt file is ignored and logged). */
  async get(cid: string): Promise<Uint8Array | undefined> {
    const cached = this.#cache.get(cid)
    if (cached !== undefined) {
      this.#cached.touch(cid, cached.length)
      this.#stored.touch(cid, cached.length)
      return cached
    }
    const parsed = parseCid(cid)
    let bytes: Uint8Array
    try {
      bytes = new Uint8Array(await readFile(join(this.dir, parsed.toString())))
    } catch {
      this.#stored.delete(cid) // deleted meanwhile (evicted, or by hand)
      return undefined
    }
    if (!verifyCid(parsed, bytes)) {
      this.#log.warn({ cid }, 'stored blob does not match its CID; ignoring it')
      return undefined
    }
    this.#stored.touch(cid, bytes.length)
    this.#remember(cid, bytes)
    return bytes
  }

  #remember(cid: string, bytes: Uint8Array): void {
    this.#cache.set(cid, bytes)
    this.#cached.touch(cid, bytes.length)
    for (const old of this.#cached.over(this.#maxCache, (c) => this.#pins.has(c))) {
      this.#cache.delete(old)
      this.#cached.delete(old)
    }
  }

  /** Deletes the least recently used unpinned files beyond `maxStoreBytes`. */
  async #evict(): Promise<void> {
    for (const cid of this.#stored.over(this.#maxStore, (c) => this.#pins.has(c))) {
      this.#stored.delete(cid)
      this.#cache.delete(cid)
      this.#cached.delete(cid)
      await unlink(join(this.dir, cid)).catch(() => {})
      this.#log.debug({ cid }, 'blob evicted')
    }
    if (this.#stored.bytes > this.#maxStore)
      this.#log.warn({ bytes: this.#stored.bytes, max: this.#maxStore }, 'pinned blobs exceed the store bound')
  }

  async list(): Promise<string[]> {
    return (await readdir(this.dir)).filter((n) => !n.startsWith('.'))
  }

  /** Serves this store's blobs to peers. */
  serve(transport: Pick<PeerTransport, 'handle'>): void {
    transport.handle(
      BLOB_PROTOCOL,
      async (data) => {
        let cid: string
        try {
          cid = parseCid(fromUtf8(data)).toString()
        } catch (err) {
          return encode({ error: describeError(err) })
        }
        const bytes = await this.get(cid)
        return encode(bytes === undefined ? { error: 'not found' } : { bytes })
      },
      { budget: BLOB_BUDGET },
    )
  }

  /**
   * Fetches a blob from the first peer in `peers` that has it and whose bytes match the CID,
   * and stores it. Throws when none does.
   */
  async fetch(
    cid: string,
    peers: readonly string[],
    transport: Pick<PeerTransport, 'request' | 'penalize'>,
  ): Promise<Uint8Array> {
    const have = await this.get(cid)
    if (have !== undefined) return have
    const parsed = parseCid(cid)
    const failures: string[] = []
    for (const peer of peers) {
      try {
        const answer = decode(await transport.request(peer, BLOB_PROTOCOL, utf8(parsed.toString()))) as {
          bytes?: unknown
          error?: unknown
        }
        if (!(answer.bytes instanceof Uint8Array)) {
          failures.push(`${peer.slice(-8)}: ${String(answer.error ?? 'no bytes')}`)
          continue
        }
        if (!verifyCid(parsed, answer.bytes)) {
          transport.penalize(peer, `blob ${cid} does not match its CID`)
          failures.push(`${peer.slice(-8)}: bytes do not match the CID`)
          continue
        }
        await this.put(answer.bytes)
        this.#log.info({ cid, from: peer, bytes: answer.bytes.length }, 'blob fetched and verified')
        return answer.bytes
      } catch (err) {
        failures.push(`${peer.slice(-8)}: ${describeError(err)}`)
      }
    }
    throw new InvalidInputError(
      `blob ${cid} could not be fetched from ${peers.length} peer(s)${failures.length > 0 ? `: ${failures.join('; ')}` : ''}`,
    )
  }
}
