/**
 * One LevelDB database (classic-level) per node, divided into typed buckets by key prefix.
 * Writes that must land together go through one `WriteBatch`, which LevelDB applies as a single
 * log record: after a crash (even SIGKILL mid-write) a batch is wholly present or wholly absent.
 * Reads can be pinned to a `StoreSnapshot` for a consistent view across buckets.
 *
 * A failed write stops all writing (`WriteGate`). LevelDB buffers its log in the process: a write
 * that fails half-way (a full disk) leaves a torn record in the log, and the writes LevelDB then
 * accepts after it are appended out of step with the log's blocks, so on the next open its
 * recovery drops them, though each one was acknowledged (a validator's sign state among them: after
 * a crash it could sign twice). So after the first failed write every later one is refused with
 * `StoreWriteFailedError` until the database is opened again, and writes run one at a time, so
 * none is already on its way when one fails. `onWriteFailure` tells the owner, which should stop.
 */
import { ClassicLevel } from 'classic-level'
import { utf8 } from '../core/bytes.ts'
import { InvalidInputError, isDonghaeError } from '../core/errors.ts'
import { silentLogger, type Logger } from '../core/logger.ts'
import type { Codec } from './codecs.ts'
import {
  StoreClosedError,
  StoreCorruptionError,
  StoreError,
  StoreLockedError,
  StoreWriteFailedError,
} from './errors.ts'
import { checkFormat, type StoreFormat } from './format.ts'

const BUCKET_NAME = /^[a-z][a-z0-9._-]{0,62}$/

export interface StoreOptions {
  logger?: Logger
  /** Create the database if missing. @default true */
  createIfMissing?: boolean
  /**
   * Check the database's format record on open (write it on creation, migrate an older layout,
   * refuse a newer one with `StoreVersionError`; see format.ts). @default no check
   */
  format?: StoreFormat
}

export interface ReadOptions {
  snapshot?: StoreSnapshot
}

export interface IterateOptions<K> extends ReadOptions {
  /** Only keys whose encoded bytes start with this prefix. */
  prefix?: Uint8Array
  gte?: K
  lt?: K
  reverse?: boolean
  limit?: number
}

export interface WriteOptions {
  /** fsync before resolving (survives power loss, not only process death). @default false */
  sync?: boolean
}

type Db = ClassicLevel<Uint8Array, Uint8Array>
type LevelSnapshot = ReturnType<Db['snapshot']>

/** The smallest byte string greater than every string that starts with `prefix`. */
function prefixUpperBound(prefix: Uint8Array): Uint8Array | undefined {
  const out = Uint8Array.from(prefix)
  for (let i = out.length - 1; i >= 0; i--) {
    if ((out[i] ?? 0) < 0xff) {
      out[i] = (out[i] ?? 0) + 1
      return out.subarray(0, i + 1)
    }
  }
  return undefined
}

function wrapLevelError(err: unknown, what: string): Error {
  if (isDonghaeError(err)) return err
  const code = (err as { code?: string }).code
  if (code === 'LEVEL_DATABASE_NOT_OPEN')
    return new StoreClosedError(`cannot ${what}: the store is not open`, { cause: err })
  return new StoreError(`cannot ${what}: ${(err as Error).message}`, { cause: err })
}

export class StoreSnapshot {
  readonly #inner: LevelSnapshot
  constructor(inner: LevelSnapshot) {
    this.#inner = inner
  }
  /** @internal */
  get inner(): LevelSnapshot {
    return this.#inner
  }
  async close(): Promise<void> {
    await this.#inner.close()
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}

/**
 * One database's writes, one at a time; after one fails, none more (see the file's comment). Shared
 * by the database's `Store` views and buckets.
 */
class WriteGate {
  #tail: Promise<unknown> = Promise.resolve()
  #failed: StoreWriteFailedError | undefined
  readonly #listeners = new Set<(error: StoreWriteFailedError) => void>()

  get failed(): StoreWriteFailedError | undefined {
    return this.#failed
  }

  onFailure(listener: (error: StoreWriteFailedError) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** Runs `write` after every earlier write has finished, unless one failed. */
  run(what: string, write: () => Promise<void>): Promise<void> {
    const next = this.#tail.then(async () => {
      if (this.#failed !== undefined) {
        throw new StoreWriteFailedError(
          `cannot ${what}: the database refused a write earlier (${this.#failed.message}); nothing more is written until it is opened again`,
          { cause: this.#failed },
        )
      }
      try {
        await write()
      } catch (err) {
        const wrapped = wrapLevelError(err, what)
        // a closed store refused the write before touching the log: nothing is torn
        if (wrapped instanceof StoreClosedError) throw wrapped
        this.#failed = new StoreWriteFailedError(wrapped.message, { cause: err })
        for (const listener of [...this.#listeners]) listener(this.#failed)
        throw this.#failed
      }
    })
    this.#tail = next.catch(() => undefined)
    return next
  }
}

export class Bucket<K, V> {
  readonly name: string
  readonly #db: Db
  readonly #gate: WriteGate
  readonly #prefix: Uint8Array
  readonly #keys: Codec<K>
  readonly #values: Codec<V>

  /** @internal made by `Store.bucket` */
  constructor(db: Db, gate: WriteGate, name: string, keys: Codec<K>, values: Codec<V>) {
    this.name = name
    this.#db = db
    this.#gate = gate
    const nameBytes = utf8(name)
    this.#prefix = Uint8Array.of(nameBytes.length, ...nameBytes)
    this.#keys = keys
    this.#values = values
  }

  /** @internal the full LevelDB key for `key`. */
  rawKey(key: K): Uint8Array {
    const encoded = this.#keys.encode(key)
    const out = new Uint8Array(this.#prefix.length + encoded.length)
    out.set(this.#prefix)
    out.set(encoded, this.#prefix.length)
    return out
  }

  /** @internal */
  rawValue(value: V): Uint8Array {
    return this.#values.encode(value)
  }

  #decodeValue(bytes: Uint8Array, key: Uint8Array): V {
    try {
      return this.#values.decode(bytes)
    } catch (err) {
      throw new StoreCorruptionError(`value in bucket ${this.name} does not decode`, {
        cause: err,
        details: { bucket: this.name, keyLength: key.length },
      })
    }
  }

  async get(key: K, options: ReadOptions = {}): Promise<V | undefined> {
    const raw = this.rawKey(key)
    let bytes: Uint8Array | undefined
    try {
      bytes = await this.#db.get(raw, { snapshot: options.snapshot?.inner })
    } catch (err) {
      throw wrapLevelError(err, `read from bucket ${this.name}`)
    }
    return bytes === undefined ? undefined : this.#decodeValue(bytes, raw)
  }

  async has(key: K, options: ReadOptions = {}): Promise<boolean> {
    return (await this.get(key, options)) !== undefined
  }

  /** Writes one entry (atomic on its own; use a `WriteBatch` for several). */
  async put(key: K, value: V, options: WriteOptions = {}): Promise<void> {
    const raw = this.rawKey(key)
    const bytes = this.rawValue(value)
    await this.#gate.run(`write to bucket ${this.name}`, () =>
      this.#db.put(raw, bytes, { sync: options.sync ?? false }),
    )
  }

  async delete(key: K, options: WriteOptions = {}): Promise<void> {
    const raw = this.rawKey(key)
    await this.#gate.run(`delete from bucket ${this.name}`, () => this.#db.del(raw, { sync: options.sync ?? false }))
  }

  /** Entries in key order (or reverse), optionally limited to a key-bytes prefix or a range. */
  async *entries(options: IterateOptions<K> = {}): AsyncGenerator<[K, V]> {
    const prefix = options.prefix === undefined ? this.#prefix : concatBytes(this.#prefix, options.prefix)
    const gte = options.gte === undefined ? prefix : maxBytes(prefix, this.rawKey(options.gte))
    const upper = prefixUpperBound(prefix)
    const lt = options.lt === undefined ? upper : minBytes(upper, this.rawKey(options.lt))
    const iterator = this.#db.iterator({
      gte,
      ...(lt === undefined ? {} : { lt }),
      reverse: options.reverse ?? false,
      limit: options.limit ?? -1,
      snapshot: options.snapshot?.inner,
    })
    try {
      for await (const [rawKey, rawValue] of iterator) {
        const keyBytes = rawKey.subarray(this.#prefix.length)
        let key: K
        try {
          key = this.#keys.decode(keyBytes)
        } catch (err) {
          throw new StoreCorruptionError(`key in bucket ${this.name} does not decode`, { cause: err })
        }
        yield [key, this.#decodeValue(rawValue, rawKey)]
      }
    } catch (err) {
      throw wrapLevelError(err, `iterate bucket ${this.name}`)
    } finally {
      await iterator.close()
    }
  }

  async *keys(options: IterateOptions<K> = {}): AsyncGenerator<K> {
    for await (const [key] of this.entries(options)) yield key
  }
}

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0)
    if (d !== 0) return d
  }
  return a.length - b.length
}

function maxBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  return compareBytes(a, b) >= 0 ? a : b
}

function minBytes(a: Uint8Array | undefined, b: Uint8Array): Uint8Array {
  return a === undefined || compareBytes(b, a) < 0 ? b : a
}

type BatchOp = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array }

/** Operations on any buckets, applied all together or not at all. */
export class WriteBatch {
  readonly #store: Store
  #ops: BatchOp[] = []
  #written = false

  constructor(store: Store) {
    this.#store = store
  }

  get length(): number {
    return this.#ops.length
  }

  put<K, V>(bucket: Bucket<K, V>, key: K, value: V): this {
    this.#ops.push({ type: 'put', key: bucket.rawKey(key), value: bucket.rawValue(value) })
    return this
  }

  delete<K, V>(bucket: Bucket<K, V>, key: K): this {
    this.#ops.push({ type: 'del', key: bucket.rawKey(key) })
    return this
  }

  async write(options: WriteOptions = {}): Promise<void> {
    if (this.#written) throw new InvalidInputError('this batch was already written')
    this.#written = true
    await this.#store.applyBatch(this.#ops, options)
  }
}

export class Store {
  readonly path: string
  readonly #db: Db
  readonly #gate: WriteGate
  readonly #log: Logger
  readonly #buckets = new Map<string, Bucket<unknown, unknown>>()

  private constructor(path: string, db: Db, gate: WriteGate, log: Logger) {
    this.path = path
    this.#db = db
    this.#gate = gate
    this.#log = log
  }

  /** Opens (creating if needed) the database at `path`. */
  static async open(path: string, options: StoreOptions = {}): Promise<Store> {
    const log = (options.logger ?? silentLogger()).forComponent('donghae:store')
    const db: Db = new ClassicLevel<Uint8Array, Uint8Array>(path, {
      keyEncoding: 'view',
      valueEncoding: 'view',
      createIfMissing: options.createIfMissing ?? true,
    })
    try {
      await db.open()
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause
      if ((err as { code?: string }).code === 'LEVEL_LOCKED' || cause?.code === 'LEVEL_LOCKED') {
        throw new StoreLockedError(`the database at ${path} is in use by another process; stop it first`, {
          cause: err,
        })
      }
      throw new StoreError(`cannot open the database at ${path}: ${(err as Error).message}`, { cause: err })
    }
    log.debug({ path }, 'store opened')
    const gate = new WriteGate()
    if (options.format !== undefined) {
      // on a view of its own, so the buckets the check and the migrations define stay free
      const check = new Store(path, db, gate, log)
      try {
        await checkFormat(check, options.format, log)
      } catch (err) {
        await check.close()
        throw err
      }
    }
    return new Store(path, db, gate, log)
  }

  /** The failed write that stopped all writing to this database, if one has. */
  get writeFailure(): StoreWriteFailedError | undefined {
    return this.#gate.failed
  }

  /**
   * Calls `listener` once a write fails; from then on every write is refused until the database is
   * opened again (see the file's comment). The owner should stop and start again. Returns a function
   * that removes the listener.
   */
  onWriteFailure(listener: (error: StoreWriteFailedError) => void): () => void {
    return this.#gate.onFailure(listener)
  }

  get isOpen(): boolean {
    return this.#db.status === 'open'
  }

  /** A typed view of the entries whose keys start with this bucket's prefix. One bucket per name. */
  bucket<K, V>(name: string, keys: Codec<K>, values: Codec<V>): Bucket<K, V> {
    if (!BUCKET_NAME.test(name)) {
      throw new InvalidInputError(`bucket name ${JSON.stringify(name)} must match ${BUCKET_NAME.source}`)
    }
    if (this.#buckets.has(name)) throw new InvalidInputError(`bucket ${name} is already defined`)
    const bucket = new Bucket(this.#db, this.#gate, name, keys, values)
    this.#buckets.set(name, bucket as Bucket<unknown, unknown>)
    return bucket
  }

  /** Whether the database holds no entry at all (a database just created). */
  async isEmpty(): Promise<boolean> {
    try {
      const first = await this.#db.keys({ limit: 1 }).all()
      return first.length === 0
    } catch (err) {
      throw wrapLevelError(err, 'read the database')
    }
  }

  batch(): WriteBatch {
    return new WriteBatch(this)
  }

  /** @internal used by WriteBatch */
  async applyBatch(ops: BatchOp[], options: WriteOptions): Promise<void> {
    if (ops.length === 0) return
    await this.#gate.run('write batch', () => this.#db.batch(ops, { sync: options.sync ?? false }))
  }

  /** A consistent, read-only view of the whole database at this moment. Close it when done. */
  snapshot(): StoreSnapshot {
    try {
      return new StoreSnapshot(this.#db.snapshot())
    } catch (err) {
      throw wrapLevelError(err, 'take a snapshot')
    }
  }

  async close(): Promise<void> {
    if (this.#db.status === 'closed') return
    await this.#db.close()
    this.#log.debug({ path: this.path }, 'store closed')
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}
