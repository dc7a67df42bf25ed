/**
 * Model files of any size: content-addressed as UnixFS DAGs (kubo's `ipfs add --cid-version 1
 * --raw-leaves`: 256 KiB raw leaves, 174 links per node, CIDv1; see `unixfsCid` in core/cid.ts),
 * stored in Helia's blockstore (`blockstore-fs` in `<dir>/blocks`, an index in LevelDB in
 * `<dir>/blocks-index`) and served with Helia's bitswap on the node's own libp2p host - no HTTP
 * gateways, no delegated routers, nothing but the peers the host is connected to. Any bitswap
 * peer can fetch a published file by its CID, a stock Helia or kubo node included.
 *
 * A fetch walks the DAG with many blocks in flight, each asked of one connected peer, so several
 * peers serve one file at once (content/exchange.ts); every block is hashed on arrival and kept
 * only if it is the block its CID names. Blocks already on disk are not fetched again, so a fetch
 * interrupted by a crash or a restart resumes where it stopped.
 *
 * Disk budget: a record per file (content/records.ts) counts its bytes; a fetch reserves what the
 * root declares before fetching the rest, and a file that does not fit even after evicting the
 * least recently used files that nobody holds is refused with `ContentBudgetError`. Files the
 * operator or the publisher `pin`s, files `lease`d in memory (a worker serving a model), and files
 * being fetched are never evicted.
 */
import { createReadStream } from 'node:fs'
import { mkdir, readFile, readdir, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { FsBlockstore } from 'blockstore-fs'
import { LevelDatastore } from 'datastore-level'
import { importBytes, importer, type ImportCandidate } from 'ipfs-unixfs-importer'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Libp2p, PeerId } from '@libp2p/interface'
import type { Helia, createHeliaLight as CreateHeliaLight } from 'helia'
import { base32upper } from 'multiformats/bases/base32'
import * as Digest from 'multiformats/hashes/digest'
import { CID, DAG_PB_CODE, KUBO_LAYOUT, RAW_CODE, parseCid, unixfsCid, unixfsImportOptions } from '../core/cid.ts'
import { DonghaeError, InvalidInputError, describeError } from '../core/errors.ts'
import { silentLogger, type Logger } from '../core/logger.ts'
import { PeerBudgets } from '../core/budget.ts'
import { didFromPeerId, peerIdFromDid } from '../identity/peer-id.ts'
import { assertStorable, blockMatches, decodeFile, decodeNode, isInline, type DagLink } from './content/dag.ts'
import {
  ContentBudgetError,
  ContentFormatError,
  ContentNotFoundError,
  ContentUnavailableError,
} from './content/errors.ts'
import { BlockExchange, isBitswapParts, blockKey, type BlockSession, type SessionOptions } from './content/exchange.ts'
import { DagRecords, type DagRecord } from './content/records.ts'

export { ContentBudgetError, ContentFormatError, ContentNotFoundError, ContentUnavailableError }

/**
 * helia's `createHeliaLight`, loaded without helia's index: the index also imports `createHelia`'s
 * parts (@helia/libp2p and @helia/http: auto-TLS with an ACME client, axios, node-forge, undici,
 * UPnP...), about 20 MB of heap in every node for code this store never runs (docs/performance.md).
 * The class sits next to the index (helia 7: `dist/src/helia.js`, `version.js`); if a later helia
 * moves it, the index is loaded as before.
 */
async function loadHeliaLight(): Promise<typeof CreateHeliaLight> {
  try {
    const index = import.meta.resolve('helia')
    const [{ Helia }, { name, version }] = (await Promise.all([
      import(new URL('./helia.js', index).href),
      import(new URL('./version.js', index).href),
    ])) as [{ Helia: new (init: object) => Helia }, { name: string; version: string }]
    if (typeof Helia !== 'function' || typeof name !== 'string' || typeof version !== 'string') throw new Error('moved')
    return (init = {}) => new Helia({ name, version, ...init })
  } catch {
    return (await import('helia')).createHeliaLight
  }
}

/**
 * Bounds what each peer can make this node send: @helia/bitswap 4 answers every want of every
 * connected peer, so a peer asking for the same blocks again and again would have this node
 * upload for ever. Its message handler (`peerWantLists.receiveMessage`, where wants become sends)
 * is wrapped: block wants are charged to the peer's bucket, and a message arriving while the
 * bucket is empty is dropped whole (cancels included: the peer is over budget either way).
 */
function limitServing(bitswap: unknown, budget: { bytes: number; perMs: number }, log: Logger): void {
  const lists = (bitswap as { peerWantLists?: { receiveMessage?: unknown } }).peerWantLists
  if (typeof lists?.receiveMessage !== 'function')
    throw new DonghaeError('this version of @helia/bitswap has no want-list handler where the content store expects it')
  const budgets = new PeerBudgets({ amount: budget.bytes, perMs: budget.perMs })
  const receive = (lists.receiveMessage as (peer: PeerId, message: unknown) => void).bind(lists)
  let dropped = 0
  lists.receiveMessage = (peer: PeerId, message: unknown): void => {
    const entries = (message as { wantlist?: { entries?: Array<{ cancel?: boolean; wantType?: string }> } }).wantlist
      ?.entries
    // a HAVE is answered with a few bytes (or the block, when it is tiny); a block want with a chunk
    const wants = entries?.filter((e) => e.cancel !== true && e.wantType !== 'WantHave').length ?? 0
    const key = peer.toString()
    if (wants > 0 && budgets.available(key) <= 0) {
      if (dropped++ % 100 === 0) log.info({ peer: key, retryMs: budgets.waitMs(key) }, 'peer over its serving budget')
      return
    }
    if (wants > 0) budgets.charge(key, wants * WANT_CHARGE_BYTES)
    receive(peer, message)
  }
}

/** Defaults of `ContentStoreOptions`. */
export const CONTENT_STORE_DEFAULTS = Object.freeze({
  /** 16 GiB: a 7B-parameter model in 16-bit floats, and change. */
  budgetBytes: 16 * 1024 ** 3,
  /**
   * Bytes one peer may make this node serve over bitswap: 2 GiB a minute (34 MB/s; a fetch from
   * several peers gets that from each). Each block a peer wants is charged at a full chunk when
   * its want arrives; wants beyond the budget are dropped (the peer's fetch asks elsewhere).
   */
  serveBudget: Object.freeze({ bytes: 2 * 1024 ** 3, perMs: 60_000 }),
})

/** What one wanted block is charged against a peer's serving budget: a whole chunk and its framing. */
const WANT_CHARGE_BYTES = 262_144 + 1_024

export interface ContentStoreOptions {
  /** The node's libp2p host: bitswap is served and spoken over it (it is not started or stopped here). */
  libp2p: Libp2p
  /** Blocks go to `<dir>/blocks`, the index to `<dir>/blocks-index`. */
  dir: string
  /** Disk budget of the blocks, bytes. @default CONTENT_STORE_DEFAULTS.budgetBytes */
  budgetBytes?: number
  /** Bytes one peer may make this node serve, per `perMs`. @default CONTENT_STORE_DEFAULTS.serveBudget */
  serveBudget?: { bytes: number; perMs: number }
  /** Tuning of fetches (blocks in flight, timeouts: see content/exchange.ts). */
  fetch?: Omit<SessionOptions, 'peers' | 'signal'>
  logger?: Logger
}

export interface FetchProgress {
  cid: string
  /** Bytes of blocks here so far (found on disk or fetched). */
  bytes: number
  /** Bytes of all the DAG's blocks, as its root declares. */
  totalBytes?: number
  blocks: number
  /** Known once every dag-pb node has been read. */
  totalBlocks?: number
  fetchedBlocks: number
  fetchedBytes: number
  /** Blocks each peer delivered (DID, or PeerId for a peer without one). */
  fromPeers: Record<string, number>
}

export interface FetchResult {
  cid: string
  /** The file's size (a directory: the bytes of its blocks). */
  size: number
  blocks: number
  bytes: number
  /** Blocks that came over the network (the rest were on disk already). */
  fetchedBlocks: number
  fetchedBytes: number
  fromPeers: Record<string, number>
  /** Peers dropped from the fetch for sending blocks that match nothing they were asked for. */
  invalidFrom: Record<string, number>
  ms: number
}

export interface FetchOptions extends Omit<SessionOptions, 'peers' | 'signal'> {
  signal?: AbortSignal
  onProgress?(progress: FetchProgress): void
  /** Ask only these peers (DIDs or PeerIds). @default every connected bitswap peer, as they come and go */
  peers?: readonly string[]
}

export interface AddResult {
  cid: string
  size: number
}

/** The worker's view (inference/models.ts `BlobSource`): whole files by CID, fetched from peers. */
export interface FileSource {
  get(cid: string): Promise<Uint8Array | undefined>
  fetch(cid: string, peers: readonly string[]): Promise<Uint8Array>
  pin(cid: string): () => void
}

/** A peer's name in results: its DID when it has one. */
function peerName(peer: string): string {
  try {
    return didFromPeerId(peer)
  } catch {
    return peer
  }
}

function peerFromText(text: string): PeerId {
  try {
    return text.startsWith('did:') ? peerIdFromDid(text) : peerIdFromString(text)
  } catch (err) {
    throw new InvalidInputError(`not a peer: ${text.slice(0, 80)}`, { cause: err })
  }
}

async function collect(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = []
  for await (const chunk of chunks) parts.push(chunk)
  const one = parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts)
  return new Uint8Array(one.buffer, one.byteOffset, one.byteLength)
}

/** Bytes a file of `size` takes as blocks, at most (leaves plus ~64 bytes of links per leaf). */
function blockBytesOf(size: number): number {
  return size + Math.ceil(size / KUBO_LAYOUT.chunkSize) * 64 + 4_096
}

/**
 * Where a block lives under `<dir>/blocks`, as blockstore-fs lays it out by default (its
 * `NextToLast`): the base32 upper-case multihash plus `.data`, in a directory named by the name's
 * last two characters. Given to the blockstore explicitly so that a block is read here in one
 * `readFile` (the blockstore's `get` streams it in 64 KiB pieces).
 */
const NEXT_TO_LAST = {
  extension: '.data',
  encode(cid: CID): { dir: string; file: string } {
    const name = base32upper.encode(cid.multihash.bytes)
    return { dir: name.slice(-2), file: `${name}.data` }
  },
  decode(path: string): CID {
    const name = basename(path, '.data')
    return CID.createV1(RAW_CODE, Digest.decode(base32upper.decode(name)))
  },
}

function blockPath(cid: CID): string {
  const { dir, file } = NEXT_TO_LAST.encode(cid)
  return join(dir, file)
}

/**
 * blockstore-fs reading a block in one piece (bitswap serves blocks whole) and checking it against
 * its CID: a block damaged on disk is not found, so bitswap answers DONT_HAVE rather than serve it.
 */
class BlockFiles extends FsBlockstore {
  constructor(path: string) {
    super(path, { shardingStrategy: NEXT_TO_LAST })
  }

  override async *get(cid: CID): AsyncGenerator<Uint8Array> {
    let bytes: Uint8Array | undefined
    try {
      bytes = await readFile(join(this.path, blockPath(cid)))
    } catch {
      bytes = undefined
    }
    if (bytes === undefined || !blockMatches(cid, bytes))
      throw Object.assign(new Error(`block ${cid.toString()} is not here`), { name: 'NotFoundError' })
    yield bytes
  }
}

/** Leaves read ahead of the one being returned. */
const READ_AHEAD = 16

interface WalkState {
  blocks: number
  bytes: number
  fetchedBlocks: number
  fetchedBytes: number
  /** Blocks named so far (the root and every link of the dag-pb nodes read). */
  named: number
  /** dag-pb nodes named but not read yet. */
  nodesLeft: number
}

export class ContentStore {
  readonly dir: string
  readonly budgetBytes: number
  readonly #blocks: BlockFiles
  readonly #datastore: LevelDatastore
  readonly #helia: Helia
  readonly #exchange: BlockExchange
  readonly #records: DagRecords
  readonly #log: Logger
  readonly #fetchDefaults: Omit<SessionOptions, 'peers' | 'signal'>
  readonly #leases = new Map<string, number>()
  readonly #active = new Map<string, Promise<FetchResult>>()
  /** Bytes promised to files being added (they have no record yet). */
  #reserved = 0
  /** The budget's queue: room is found and claimed one caller at a time. */
  #budgetTurn: Promise<void> = Promise.resolve()
  #closed = false

  private constructor(
    options: ContentStoreOptions,
    parts: {
      blocks: BlockFiles
      datastore: LevelDatastore
      helia: Helia
      exchange: BlockExchange
      records: DagRecords
    },
    log: Logger,
  ) {
    this.dir = options.dir
    this.budgetBytes = options.budgetBytes ?? CONTENT_STORE_DEFAULTS.budgetBytes
    this.#blocks = parts.blocks
    this.#datastore = parts.datastore
    this.#helia = parts.helia
    this.#exchange = parts.exchange
    this.#records = parts.records
    this.#log = log
    this.#fetchDefaults = options.fetch ?? {}
  }

  /** Opens the store in `options.dir` and starts serving its blocks over bitswap. */
  static async open(options: ContentStoreOptions): Promise<ContentStore> {
    const budget = options.budgetBytes ?? CONTENT_STORE_DEFAULTS.budgetBytes
    if (!Number.isSafeInteger(budget) || budget < 0)
      throw new InvalidInputError('budgetBytes must be a non-negative whole number of bytes')
    const log = (options.logger ?? silentLogger()).forComponent('donghae:net:content')
    await mkdir(options.dir, { recursive: true })
    const blocks = new BlockFiles(join(options.dir, 'blocks'))
    await blocks.open()
    const datastore = new LevelDatastore(join(options.dir, 'blocks-index'))
    await datastore.open()
    const createHeliaLight = await loadHeliaLight()
    const { withBitswap } = await import('@helia/bitswap')
    const helia = createHeliaLight({ blockstore: blocks, datastore, blockBrokers: [], routers: [] })
    Object.defineProperty(helia, 'libp2p', { value: options.libp2p, enumerable: true })
    withBitswap(helia as never)
    try {
      await helia.start()
      // @helia/bitswap 4 keeps its Bitswap on the block broker the mixin adds (`.bitswap.network`)
      const brokers = (helia as unknown as { blockBrokers?: Array<{ name?: string; bitswap?: unknown }> }).blockBrokers
      const bitswap = brokers?.find((b) => b.name === 'bitswap')?.bitswap
      if (!isBitswapParts(bitswap))
        throw new DonghaeError('this version of @helia/bitswap has no network layer where the content store expects it')
      limitServing(bitswap, options.serveBudget ?? CONTENT_STORE_DEFAULTS.serveBudget, log)
      const exchange = new BlockExchange(bitswap, options.libp2p, log)
      const records = await DagRecords.load(datastore)
      return new ContentStore(options, { blocks, datastore, helia, exchange, records }, log)
    } catch (err) {
      await helia.stop().catch(() => {})
      await datastore.close().catch(() => {})
      throw err
    }
  }

  /** Stops serving, aborts fetches under way (what they fetched stays), closes the files. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#exchange.stop()
    await Promise.allSettled([...this.#active.values()])
    await this.#helia.stop()
    await this.#datastore.close()
    await this.#blocks.close()
  }

  /** Bytes the files take (a file being fetched or one left half-fetched: what its root declares), of the budget. */
  usage(): { bytes: number; budgetBytes: number; files: number; pinned: number } {
    const entries = this.#records.entries()
    return {
      bytes: this.#records.bytes() + this.#reserved,
      budgetBytes: this.budgetBytes,
      files: entries.length,
      pinned: entries.filter(([, r]) => r.pinned).length,
    }
  }

  // ---- adding ---------------------------------------------------------------------------------

  /**
   * Adds a file (its bytes, or a path read as a stream) as a UnixFS DAG and returns its CID - the
   * one `ipfs add --cid-version 1 --raw-leaves` gives. Pinned unless `pin: false`.
   */
  async addFile(input: Uint8Array | string, options: { pin?: boolean } = {}): Promise<AddResult> {
    this.#assertOpen()
    const pin = options.pin ?? true
    const size = typeof input === 'string' ? (await stat(input)).size : input.byteLength
    const content = (): Uint8Array | AsyncIterable<Uint8Array> =>
      typeof input === 'string' ? createReadStream(input) : input
    // a file that is here already (a model imported again at every start) is hashed, not written again
    const cid = (await unixfsCid(content())).toString()
    const record = this.#records.get(cid)
    if (record?.complete === true && (await this.has(cid))) {
      await this.#records.put(cid, { ...record, pinned: record.pinned || pin, lastUsed: Date.now() })
      return { cid, size }
    }
    const estimate = blockBytesOf(size)
    await this.#makeRoom(Math.max(0, estimate - (record?.bytes ?? 0)), cid, () => void (this.#reserved += estimate))
    try {
      const counter = this.#countingSink()
      const result = await importBytes(content(), counter, await unixfsImportOptions())
      if (result.cid.toString() !== cid)
        throw new ContentFormatError(`${String(input).slice(0, 80)} changed while it was added`)
      await this.#record(cid, { bytes: counter.bytes, fileSize: size, complete: true }, pin)
      this.#log.debug({ cid, size }, 'file added')
      return { cid, size }
    } finally {
      this.#reserved -= estimate
    }
  }

  /**
   * Adds the files of a directory (not its subdirectories, nor names starting with '.') as a
   * UnixFS directory, sorted by name as kubo does, and returns its CID and each file's.
   */
  async addDirectory(
    dir: string,
    options: { pin?: boolean } = {},
  ): Promise<{ cid: string; files: Record<string, AddResult> }> {
    this.#assertOpen()
    const names: string[] = []
    const sizes = new Map<string, number>()
    for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (!entry.isFile() || entry.name.startsWith('.')) continue
      names.push(entry.name)
      sizes.set(entry.name, (await stat(join(dir, entry.name))).size)
    }
    const total = [...sizes.values()].reduce((a, b) => a + b, 0)
    const estimate = blockBytesOf(total) + names.length * 4_096
    await this.#makeRoom(estimate, undefined, () => void (this.#reserved += estimate))
    try {
      const counter = this.#countingSink()
      const source: ImportCandidate[] =
        names.length === 0
          ? [{ path: 'dir' }]
          : names.map((name) => ({ path: `dir/${name}`, content: createReadStream(join(dir, name)) }))
      const files: Record<string, AddResult> = {}
      let root: string | undefined
      for await (const entry of importer(source, counter, await unixfsImportOptions())) {
        if (entry.path === 'dir') root = entry.cid.toString()
        else if (entry.path?.startsWith('dir/') === true) {
          const name = entry.path.slice(4)
          files[name] = { cid: entry.cid.toString(), size: sizes.get(name) ?? 0 }
        }
      }
      if (root === undefined) throw new ContentFormatError(`importing ${dir} gave no directory`)
      await this.#record(root, { bytes: counter.bytes, complete: true }, options.pin ?? true)
      return { cid: root, files }
    } finally {
      this.#reserved -= estimate
    }
  }

  /** Writes blocks through Helia's blockstore (so bitswap peers waiting for one get it), counting bytes. */
  #countingSink(): { bytes: number; put(cid: CID, block: Uint8Array): Promise<CID> } {
    const blockstore = this.#helia.blockstore
    const sink = {
      bytes: 0,
      async put(cid: CID, block: Uint8Array): Promise<CID> {
        sink.bytes += block.byteLength
        await blockstore.put(cid, block)
        return cid
      },
    }
    return sink
  }

  async #record(cid: string, fields: Omit<DagRecord, 'pinned' | 'lastUsed'>, pin: boolean): Promise<void> {
    const previous = this.#records.get(cid)
    await this.#records.put(cid, { ...fields, pinned: pin || previous?.pinned === true, lastUsed: Date.now() })
  }

  // ---- reading --------------------------------------------------------------------------------

  /** True when every block of the file (or directory) is on disk. */
  async has(cid: string): Promise<boolean> {
    this.#assertOpen()
    const root = parseCid(cid)
    assertStorable(root)
    const stack: CID[] = [root]
    while (stack.length > 0) {
      const next = stack.pop() as CID
      if (isInline(next)) continue
      if (next.code !== DAG_PB_CODE) {
        if (!(await this.#blocks.has(next))) return false
        continue
      }
      const bytes = await this.#readBlock(next)
      if (bytes === undefined) return false
      const node = decodeNode(next, bytes)
      const leaves = node.links.filter((l) => l.cid.code !== DAG_PB_CODE && !isInline(l.cid))
      const present = await Promise.all(leaves.map((l) => this.#blocks.has(l.cid)))
      if (present.includes(false)) return false
      for (const l of node.links) if (l.cid.code === DAG_PB_CODE) stack.push(l.cid)
    }
    return true
  }

  /** The whole file, every block checked against its CID. */
  async read(cid: string): Promise<Uint8Array> {
    return collect(this.stream(cid))
  }

  /** The file's bytes in order, every block checked against its CID as it is read. */
  async *stream(cid: string): AsyncGenerator<Uint8Array> {
    this.#assertOpen()
    const root = parseCid(cid)
    assertStorable(root)
    let size = 0
    for await (const chunk of this.#content(root, cid)) {
      size += chunk.byteLength
      yield chunk
    }
    const declared = this.#records.get(root.toString())?.fileSize
    if (declared !== undefined && declared !== size)
      throw new ContentFormatError(`${cid} holds ${size} bytes where ${declared} were recorded`)
    this.#touch(root.toString())
  }

  /** A UnixFS file's bytes: a node's own data, then its children's in order, leaves read ahead. */
  async *#content(cid: CID, file: string): AsyncGenerator<Uint8Array> {
    const bytes = await this.#readBlock(cid)
    if (bytes === undefined)
      throw new ContentNotFoundError(`block ${cid.toString()} of ${file} is not here (or did not match its CID)`)
    if (cid.code !== DAG_PB_CODE) {
      yield bytes
      return
    }
    const node = decodeFile(cid, bytes)
    if (node.data !== undefined && node.data.byteLength > 0) yield node.data
    const ahead = new Map<number, Promise<Uint8Array | undefined>>()
    for (let i = 0; i < node.links.length; i++) {
      for (let j = i; j < Math.min(node.links.length, i + READ_AHEAD); j++) {
        const link = node.links[j] as CID
        if (!ahead.has(j) && link.code !== DAG_PB_CODE) ahead.set(j, this.#readBlock(link))
      }
      const link = node.links[i] as CID
      const leaf = ahead.get(i)
      ahead.delete(i)
      if (leaf === undefined) {
        yield* this.#content(link, file)
        continue
      }
      const data = await leaf
      if (data === undefined)
        throw new ContentNotFoundError(`block ${link.toString()} of ${file} is not here (or did not match its CID)`)
      yield data
    }
  }

  /** A block from disk, if it is there and hashes to its CID (a corrupt one is deleted: fetching repairs it). */
  async #readBlock(cid: CID): Promise<Uint8Array | undefined> {
    if (isInline(cid)) return cid.multihash.digest
    let bytes: Uint8Array
    try {
      bytes = await readFile(join(this.#blocks.path, blockPath(cid)))
    } catch {
      return undefined
    }
    if (blockMatches(cid, bytes)) return bytes
    this.#log.warn({ cid: cid.toString() }, 'block on disk does not match its CID; deleting it')
    await this.#blocks.delete(cid).catch(() => {})
    return undefined
  }

  #touch(cid: string): void {
    const record = this.#records.get(cid)
    if (record === undefined) return
    void this.#records.put(cid, { ...record, lastUsed: Date.now() }).catch(() => {})
  }

  // ---- pins -----------------------------------------------------------------------------------

  /** Keeps the file whatever the budget, across restarts (before it is here, too: once it is). */
  async pin(cid: string): Promise<void> {
    this.#assertOpen()
    const key = parseCid(cid).toString()
    const record = this.#records.get(key) ?? { bytes: 0, complete: false, pinned: true, lastUsed: Date.now() }
    await this.#records.put(key, { ...record, pinned: true })
  }

  /** Lets the budget evict the file again (nothing is deleted now). */
  async unpin(cid: string): Promise<void> {
    this.#assertOpen()
    const key = parseCid(cid).toString()
    const record = this.#records.get(key)
    if (record !== undefined) await this.#records.put(key, { ...record, pinned: false })
  }

  isPinned(cid: string): boolean {
    return this.#records.get(cid)?.pinned === true
  }

  /** Keeps the file from eviction until the returned function is called; leases count and live in memory. */
  lease(cid: string): () => void {
    this.#leases.set(cid, (this.#leases.get(cid) ?? 0) + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const left = (this.#leases.get(cid) ?? 1) - 1
      if (left > 0) this.#leases.set(cid, left)
      else this.#leases.delete(cid)
    }
  }

  /** The worker's `BlobSource` (inference/models.ts) over this store. */
  fileSource(): FileSource {
    return {
      get: async (cid) => {
        if (!(await this.has(cid))) return undefined
        return this.read(cid).catch((err: unknown) => {
          this.#log.warn({ cid, err: describeError(err) }, 'stored file unreadable; it will be fetched again')
          return undefined
        })
      },
      // the peers the worker names are the transport's connected peers: the fetch asks every
      // connected bitswap peer instead, including those that connect while it runs
      fetch: async (cid) => {
        await this.fetch(cid)
        return this.read(cid)
      },
      pin: (cid) => this.lease(cid),
    }
  }

  // ---- budget ---------------------------------------------------------------------------------

  /**
   * Makes `extra` bytes fit the budget, evicting the least recently used files nobody holds, or
   * throws `ContentBudgetError` (evicting nothing) when even that is not enough; then `claim`s the
   * room (a record, a reservation). One at a time, so two claims never count the same free bytes.
   */
  async #makeRoom(extra: number, keep: string | undefined, claim: () => Promise<void> | void): Promise<void> {
    const turn = this.#budgetTurn.then(async () => {
      await this.#fit(extra, keep)
      await claim()
    })
    this.#budgetTurn = turn.catch(() => {})
    await turn
  }

  async #fit(extra: number, keep: string | undefined): Promise<void> {
    const used = this.#records.bytes() + this.#reserved
    if (used + extra <= this.budgetBytes) return
    const evictable = this.#records
      .entries()
      .filter(([cid, r]) => cid !== keep && !r.pinned && !this.#leases.has(cid) && !this.#active.has(cid))
      .sort((a, b) => a[1].lastUsed - b[1].lastUsed)
    const freeable = evictable.reduce((sum, [, r]) => sum + r.bytes, 0)
    if (used - freeable + extra > this.budgetBytes)
      throw new ContentBudgetError(
        `${extra} more bytes do not fit the content store's budget of ${this.budgetBytes} bytes ` +
          `(${used} used, ${freeable} evictable); raise the modelStorage budget or unpin files`,
        {
          details: {
            needed: extra,
            available: Math.max(0, this.budgetBytes - used + freeable),
            budget: this.budgetBytes,
          },
        },
      )
    const victims: string[] = []
    let left = used + extra
    for (const [cid, r] of evictable) {
      if (left <= this.budgetBytes) break
      victims.push(cid)
      left -= r.bytes
    }
    await this.#evict(victims)
  }

  /** Deletes the files' records and their blocks that no other file uses. */
  async #evict(cids: string[]): Promise<void> {
    const doomed = new Map<string, CID>()
    for (const cid of cids) {
      for (const [key, block] of await this.#blocksOf(parseCid(cid))) doomed.set(key, block)
      await this.#records.delete(cid)
    }
    for (const [cid] of this.#records.entries())
      for (const key of (await this.#blocksOf(parseCid(cid))).keys()) doomed.delete(key)
    for (const block of doomed.values()) await this.#blocks.delete(block).catch(() => {})
    this.#log.info({ files: cids, blocks: doomed.size }, 'files evicted for the disk budget')
  }

  /** The blocks of a DAG that are on disk or named by its dag-pb nodes on disk (leaves are not read). */
  async #blocksOf(root: CID): Promise<Map<string, CID>> {
    const out = new Map<string, CID>()
    const stack = [root]
    while (stack.length > 0) {
      const cid = stack.pop() as CID
      if (isInline(cid)) continue
      out.set(blockKey(cid), cid)
      if (cid.code !== DAG_PB_CODE) continue
      const bytes = await this.#readBlock(cid)
      if (bytes === undefined) continue
      for (const link of decodeNode(cid, bytes).links) stack.push(link.cid)
    }
    return out
  }

  // ---- fetching -------------------------------------------------------------------------------

  /**
   * Fetches the whole DAG of `cid` into the store from connected bitswap peers (or `peers`), many
   * blocks in flight from several peers, each block verified; blocks already here are kept.
   * Refused with `ContentBudgetError` before any block beyond the root is fetched when the file does
   * not fit; fails with `ContentUnavailableError` when the peers stop delivering. A second fetch of
   * a CID being fetched joins the first.
   */
  fetch(cid: string, options: FetchOptions = {}): Promise<FetchResult> {
    this.#assertOpen()
    const root = parseCid(cid)
    assertStorable(root)
    const key = root.toString()
    const running = this.#active.get(key)
    if (running !== undefined) return running
    const promise = this.#fetch(root, options).finally(() => this.#active.delete(key))
    this.#active.set(key, promise)
    return promise
  }

  async #fetch(root: CID, options: FetchOptions): Promise<FetchResult> {
    const started = performance.now()
    const key = root.toString()
    const given = options.peers?.map(peerFromText)
    const session = this.#exchange.session({
      ...this.#fetchDefaults,
      ...pickSession(options),
      peers: given === undefined ? () => this.#exchange.bitswapPeers() : () => given,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    })
    const state: WalkState = { blocks: 0, bytes: 0, fetchedBlocks: 0, fetchedBytes: 0, named: 1, nodesLeft: 0 }
    try {
      // the root first, held in memory until the file is known to fit
      let rootBytes = await this.#readBlock(root)
      const rootLocal = rootBytes !== undefined
      if (rootBytes === undefined) rootBytes = (await session.get(root, { first: true })).bytes
      if (!blockMatches(root, rootBytes)) throw new ContentFormatError(`block ${key} does not match its CID`)
      const node = decodeNode(root, rootBytes)
      const declared = node.declaredBytes ?? blockBytesOf(node.fileSize ?? rootBytes.byteLength)
      // the record reserves what the root declares, before anything is written (and across a crash)
      const previous = this.#records.get(key)
      await this.#makeRoom(Math.max(0, declared - (previous?.bytes ?? 0)), key, async () => {
        const now = this.#records.get(key) // pinned meanwhile?
        if (now?.complete !== true)
          await this.#records.put(key, {
            bytes: Math.max(declared, now?.bytes ?? 0),
            ...(node.fileSize === undefined ? {} : { fileSize: node.fileSize }),
            complete: false,
            pinned: now?.pinned === true,
            lastUsed: Date.now(),
          })
      })
      if (!rootLocal) {
        await this.#helia.blockstore.put(root, rootBytes)
        state.fetchedBlocks++
        state.fetchedBytes += rootBytes.byteLength
      }
      state.blocks++
      state.bytes += rootBytes.byteLength
      const progress = (): void => {
        options.onProgress?.({
          cid: key,
          bytes: state.bytes,
          totalBytes: declared,
          blocks: state.blocks,
          ...(state.nodesLeft === 0 ? { totalBlocks: state.named } : {}),
          fetchedBlocks: state.fetchedBlocks,
          fetchedBytes: state.fetchedBytes,
          fromPeers: namesOf(session),
        })
      }
      const pending: DagLink[] = []
      this.#expand(node.links, pending, state)
      progress()
      const limit = (options.maxInFlight ?? this.#fetchDefaults.maxInFlight ?? 48) * 2
      await walk(pending, limit, async (link) => {
        await this.#visit(link, session, state, pending, declared)
        progress()
      })
      await this.#records.put(key, {
        bytes: state.bytes,
        ...(node.fileSize === undefined ? {} : { fileSize: node.fileSize }),
        complete: true,
        pinned: this.#records.get(key)?.pinned === true,
        lastUsed: Date.now(),
      })
      const result: FetchResult = {
        cid: key,
        size: node.fileSize ?? state.bytes,
        blocks: state.blocks,
        bytes: state.bytes,
        fetchedBlocks: state.fetchedBlocks,
        fetchedBytes: state.fetchedBytes,
        fromPeers: namesOf(session),
        invalidFrom: invalidOf(session),
        ms: Math.round(performance.now() - started),
      }
      this.#log.info(
        { cid: key, bytes: state.bytes, fetchedBlocks: state.fetchedBlocks, peers: result.fromPeers, ms: result.ms },
        'file fetched and verified',
      )
      return result
    } catch (err) {
      // what was fetched stays, and its record keeps the room: fetching again resumes
      if (err instanceof ContentUnavailableError)
        Object.assign(err.details, { cid: key, fetchedBlocks: state.fetchedBlocks, invalidFrom: invalidOf(session) })
      throw err
    } finally {
      session.close()
    }
  }

  /**
   * Queues links to visit: dag-pb nodes first (they name the rest), then leaves in a shuffled
   * order, so that nodes fetching the same file at once hold different blocks and can serve each
   * other rather than all waiting on the same ones.
   */
  #expand(links: DagLink[], pending: DagLink[], state: WalkState): void {
    const nodes = links.filter((l) => l.cid.code === DAG_PB_CODE)
    const leaves = links.filter((l) => l.cid.code !== DAG_PB_CODE)
    for (let i = leaves.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1))
      ;[leaves[i], leaves[j]] = [leaves[j] as DagLink, leaves[i] as DagLink]
    }
    state.named += links.length
    state.nodesLeft += nodes.length
    pending.unshift(...nodes)
    pending.push(...leaves)
  }

  /** One block: found on disk, else fetched and stored; a dag-pb node's links are queued. */
  async #visit(
    link: DagLink,
    session: BlockSession,
    state: WalkState,
    pending: DagLink[],
    declared: number,
  ): Promise<void> {
    const { cid } = link
    const isNode = cid.code === DAG_PB_CODE
    let bytes: Uint8Array | undefined
    if (isInline(cid)) bytes = cid.multihash.digest
    else if (isNode) bytes = await this.#readBlock(cid)
    else if (await this.#blocks.has(cid)) {
      state.blocks++
      state.bytes += link.size ?? (await this.#readBlock(cid))?.byteLength ?? 0
      return
    }
    if (bytes === undefined) {
      bytes = (await session.get(cid, { first: isNode })).bytes
      if (!blockMatches(cid, bytes)) throw new ContentFormatError(`block ${cid.toString()} does not match its CID`)
      await this.#helia.blockstore.put(cid, bytes)
      state.fetchedBlocks++
      state.fetchedBytes += bytes.byteLength
    }
    state.blocks++
    state.bytes += bytes.byteLength
    if (state.bytes > declared + Math.ceil(declared / 100) + 1024 * 1024)
      throw new ContentFormatError(`the DAG is larger than its root declares (${declared} bytes)`)
    if (isNode) {
      state.nodesLeft--
      this.#expand(decodeNode(cid, bytes).links, pending, state)
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new DonghaeError('the content store is closed')
  }
}

function pickSession(options: FetchOptions): Omit<SessionOptions, 'peers' | 'signal'> {
  const out: Omit<SessionOptions, 'peers' | 'signal'> = {}
  if (options.perPeer !== undefined) out.perPeer = options.perPeer
  if (options.maxInFlight !== undefined) out.maxInFlight = options.maxInFlight
  if (options.blockTimeoutMs !== undefined) out.blockTimeoutMs = options.blockTimeoutMs
  if (options.stallMs !== undefined) out.stallMs = options.stallMs
  if (options.retryMs !== undefined) out.retryMs = options.retryMs
  return out
}

function invalidOf(session: BlockSession): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [peer, t] of session.tally) if (t.invalid > 0) out[peerName(peer)] = t.invalid
  return out
}

function namesOf(session: BlockSession): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [peer, t] of session.tally) if (t.blocks > 0) out[peerName(peer)] = t.blocks
  return out
}

/**
 * Runs `visit` over `pending` (which visits may grow) with at most `limit` at once; the first
 * failure rejects (visits under way finish on their own).
 */
function walk<T>(pending: T[], limit: number, visit: (item: T) => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    let active = 0
    let failed = false
    const next = (): void => {
      if (failed) return
      while (active < limit && pending.length > 0) {
        const item = pending.shift() as T
        active++
        visit(item).then(
          () => {
            active--
            next()
          },
          (err: unknown) => {
            failed = true
            reject(err)
          },
        )
      }
      if (active === 0 && pending.length === 0) resolve()
    }
    next()
  })
}
