/**
 * Content-addressed blobs (model weights): files named by their CID (CIDv1, raw codec,
 * sha2-256) in one directory, written atomically, and verified against the CID on every read
 * and every fetch. Peers serve them on `/donghae/blob/1.0.0`: request = the CID string, answer =
 * dag-cbor `{ bytes }` or `{ error }`. A peer that answers with bytes that do not hash to the
 * CID is reported and the next peer is asked.
 *
 * Design note: ARCHITECTURE.md suggests Helia's bitswap. The demo models are 10–100 KiB, one
 * frame each, so a single request/response with CID verification does the same job without a
 * second block store; bitswap becomes worth it for large, chunked weights (experts, later).
 */
import { mkdir, readFile, rename, writeFile, readdir } from 'node:fs/promises'
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

export class BlobStore {
  readonly dir: string
  readonly #log: Logger
  readonly #cache = new Map<string, Uint8Array>()

  constructor(dir: string, options: { logger?: Logger } = {}) {
    this.dir = dir
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:blobs')
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true })
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
    return cid
  }

  async has(cid: string): Promise<boolean> {
    return (await this.get(cid)) !== undefined
  }

  /** The blob's bytes, or undefined when absent or corrupt (a corrupt file is ignored and logged). */
  async get(cid: string): Promise<Uint8Array | undefined> {
    const cached = this.#cache.get(cid)
    if (cached !== undefined) return cached
    const parsed = parseCid(cid)
    let bytes: Uint8Array
    try {
      bytes = new Uint8Array(await readFile(join(this.dir, parsed.toString())))
    } catch {
      return undefined
    }
    if (!verifyCid(parsed, bytes)) {
      this.#log.warn({ cid }, 'stored blob does not match its CID; ignoring it')
      return undefined
    }
    this.#cache.set(cid, bytes)
    return bytes
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
