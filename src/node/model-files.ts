/**
 * Where a node keeps model files (weights, tokenizers): on a libp2p node, the content store
 * (net/content-store.ts: UnixFS DAGs over Helia's bitswap, fetched from several peers at once,
 * resumable, bounded by the disk budget); without libp2p, the single-frame blob store of
 * inference/blobs.ts (raw CIDs, at most MAX_BLOB_BYTES a file).
 *
 * CIDs: a file of at most 256 KiB has the same CID in both (the raw CID of its bytes); a larger
 * file is named by its UnixFS root in the content store (`unixfsCid`).
 */
import type { Libp2p } from '@libp2p/interface'
import { unixfsCid } from '../core/cid.ts'
import type { Logger } from '../core/logger.ts'
import type { PeerTransport } from '../core/transport.ts'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BlobStore, blobCid } from '../inference/blobs.ts'
import type { BlobSource } from '../inference/models.ts'
import { ContentStore, type FetchProgress } from '../net/content-store.ts'
import type { FetchView } from '../api/inference-api.ts'
import type { ModelRecord } from '../inference/chain/state.ts'
import { describeError } from '../core/errors.ts'

/** Model files by CID: stored here, or fetched from peers and verified. */
export interface ModelFiles extends BlobSource {
  /** Stores the bytes (kept whatever the disk budget: this node publishes or imported them) and returns their CID. */
  put(bytes: Uint8Array): Promise<string>
  /** Stores a file from disk, read as a stream, and returns its CID. */
  putFile(path: string): Promise<string>
  /** The CID `put` gives these bytes, without storing them. */
  cidOf(bytes: Uint8Array): Promise<string>
  fetch(cid: string, peers: readonly string[]): Promise<Uint8Array>
  pin(cid: string): () => void
  /** The content store, on a libp2p node (fetch progress, pins, usage). */
  readonly content?: ContentStore
  close(): Promise<void>
}

export interface ModelFilesOptions {
  /** Content store in `<dataDir>` (blocks in `blocks/`), or blobs in `<dataDir>/blobs`. */
  dataDir: string
  /** The node's libp2p host; without it, the blob store over `transport`. */
  libp2p?: Libp2p
  /** Disk budget of the content store, bytes (config modelStorage). */
  budgetBytes?: number
  transport: PeerTransport
  logger: Logger
}

export async function openModelFiles(options: ModelFilesOptions): Promise<ModelFiles> {
  if (options.libp2p !== undefined) {
    const store = await ContentStore.open({
      libp2p: options.libp2p,
      dir: options.dataDir,
      logger: options.logger,
      ...(options.budgetBytes === undefined ? {} : { budgetBytes: options.budgetBytes }),
    })
    return contentFiles(store)
  }
  const blobs = new BlobStore(join(options.dataDir, 'blobs'), { logger: options.logger })
  await blobs.init()
  blobs.serve(options.transport)
  return blobFiles(blobs, options.transport)
}

/** Model files in a content store. */
export function contentFiles(store: ContentStore): ModelFiles {
  const source = store.fileSource()
  return {
    content: store,
    put: async (bytes) => (await store.addFile(bytes)).cid,
    putFile: async (path) => (await store.addFile(path)).cid,
    cidOf: async (bytes) => (await unixfsCid(bytes)).toString(),
    get: source.get,
    fetch: source.fetch,
    pin: source.pin,
    close: () => store.close(),
  }
}

/** Model files in the blob store (nodes without libp2p). */
export function blobFiles(blobs: BlobStore, transport: Pick<PeerTransport, 'request' | 'penalize'>): ModelFiles {
  return {
    put: (bytes) => blobs.put(bytes),
    putFile: async (path) => blobs.put(new Uint8Array(await readFile(path))),
    cidOf: async (bytes) => blobCid(bytes),
    get: (cid) => blobs.get(cid),
    fetch: (cid, peers) => blobs.fetch(cid, peers, transport),
    pin: (cid) => blobs.pin(cid),
    close: async () => {},
  }
}

/** The model's files to fetch: its graph, its tokenizer, a language model's other files. */
export function filesOf(model: Pick<ModelRecord, 'cid' | 'codec' | 'files'>): string[] {
  return [
    ...new Set([model.cid, ...(model.codec === undefined ? [] : [model.codec]), ...Object.values(model.files ?? {})]),
  ]
}

/** Views of the fetches kept for `fetches()`. */
const KEPT_FETCHES = 32
/** Least time between two progress reports of one fetch (its start and its end always go out). */
const REPORT_MS = 100

/**
 * Fetches of registered models' files (the API's `fetchModel` and `fetches`): every file of a
 * model at once, their progress summed into one view; a second fetch of a model being fetched
 * joins the first. Without a content store (no libp2p) the files come whole from the blob store.
 */
/** Least time between two `model.fetch` events of one fetch, ms (its start and end always go out). */
const EVENT_MS = 1_000

export class ModelFetches {
  readonly #files: ModelFiles
  readonly #peers: () => string[]
  readonly #views: FetchView[] = []
  readonly #running = new Map<string, { done: Promise<FetchView>; listeners: Set<(view: FetchView) => void> }>()

  readonly #onFetch: ((view: FetchView) => void) | undefined
  readonly #published = new Map<string, number>()

  /**
   * `peers`: the peers to fetch from when there is no content store (the blob store asks them in
   * turn). `onFetch`: every fetch's progress for the node's event stream, at most once a second
   * per fetch besides its start and its end.
   */
  constructor(files: ModelFiles, peers: () => string[], onFetch?: (view: FetchView) => void) {
    this.#files = files
    this.#peers = peers
    this.#onFetch = onFetch
  }

  #publish(view: FetchView): void {
    if (this.#onFetch === undefined) return
    const last = this.#published.get(view.model)
    const now = Date.now()
    if (view.state === 'fetching' && last !== undefined && now - last < EVENT_MS) return
    if (view.state === 'fetching') this.#published.set(view.model, now)
    else this.#published.delete(view.model)
    this.#onFetch(copy(view))
  }

  /** Fetches under way and recent ones, newest first. */
  list(): FetchView[] {
    return this.#views.map(copy)
  }

  fetch(
    model: Pick<ModelRecord, 'cid' | 'name' | 'codec' | 'files'>,
    onProgress?: (view: FetchView) => void,
  ): Promise<FetchView> {
    const joined = this.#running.get(model.cid)
    if (joined !== undefined) {
      if (onProgress !== undefined) joined.listeners.add(onProgress)
      return joined.done
    }
    const listeners = new Set<(view: FetchView) => void>(onProgress === undefined ? [] : [onProgress])
    const report = (view: FetchView): void => {
      this.#keep(view)
      this.#publish(view)
      for (const listener of listeners) listener(copy(view))
    }
    const done = this.#run(model, report).finally(() => this.#running.delete(model.cid))
    this.#running.set(model.cid, { done, listeners })
    return done
  }

  #keep(view: FetchView): void {
    const at = this.#views.findIndex((v) => v.model === view.model)
    if (at >= 0) this.#views.splice(at, 1)
    this.#views.unshift(copy(view))
    this.#views.length = Math.min(this.#views.length, KEPT_FETCHES)
  }

  async #run(
    model: Pick<ModelRecord, 'cid' | 'name' | 'codec' | 'files'>,
    report: (view: FetchView) => void,
  ): Promise<FetchView> {
    const cids = filesOf(model)
    const view: FetchView = {
      model: model.cid,
      name: model.name,
      bytes: 0,
      fromPeers: {},
      startedAt: Date.now(),
      state: 'fetching',
    }
    report(view)
    try {
      const content = this.#files.content
      if (content === undefined) {
        for (const cid of cids) {
          const bytes = (await this.#files.get(cid)) ?? (await this.#files.fetch(cid, this.#peers()))
          view.bytes += bytes.byteLength
        }
        view.totalBytes = view.bytes
      } else {
        const files = new Map<string, FetchProgress>()
        let reported = 0
        const sum = (): void => {
          const all = [...files.values()]
          view.bytes = all.reduce((n, p) => n + p.bytes, 0)
          const totals = all.map((p) => p.totalBytes)
          if (all.length === cids.length && totals.every((t) => t !== undefined))
            view.totalBytes = totals.reduce((n: number, t) => n + (t ?? 0), 0)
          const from: Record<string, number> = {}
          for (const p of all) for (const [peer, n] of Object.entries(p.fromPeers)) from[peer] = (from[peer] ?? 0) + n
          view.fromPeers = from
        }
        await Promise.all(
          cids.map(async (cid) => {
            const result = await content.fetch(cid, {
              onProgress: (p) => {
                files.set(cid, p)
                sum()
                if (Date.now() - reported < REPORT_MS) return
                reported = Date.now()
                report(view)
              },
            })
            const { bytes } = result
            files.set(cid, {
              cid,
              bytes,
              totalBytes: bytes,
              blocks: result.blocks,
              fetchedBlocks: result.fetchedBlocks,
              fetchedBytes: result.fetchedBytes,
              fromPeers: result.fromPeers,
            })
            sum()
          }),
        )
      }
      view.state = 'done'
      view.finishedAt = Date.now()
      report(view)
      return copy(view)
    } catch (err) {
      view.state = 'failed'
      view.error = describeError(err)
      view.finishedAt = Date.now()
      report(view)
      throw err
    }
  }
}

function copy(view: FetchView): FetchView {
  return { ...view, fromPeers: { ...view.fromPeers } }
}
