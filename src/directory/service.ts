/**
 * A node's directory service (issue 13): the SQLite index, gossip with other directories and a
 * sweep timer on the injected clock. The HTTP routes and the CLI call `register`, `delete`,
 * `search` and `get`; errors are `DirectoryError`s carrying the HTTP `statusCode`.
 */
import { join } from 'node:path'
import { repeat, systemClock, type Clock } from '../core/clock.ts'
import type { PeerTransport } from '../core/transport.ts'
import { DirectoryGossip } from './gossip.ts'
import type { DirectoryLimits } from './limits.ts'
import type { SignedRegistration } from './record.ts'
import {
  DIRECTORY_DB_FILE,
  DirectoryIndex,
  type DeleteOutcome,
  type RegisterOutcome,
  type SearchPage,
  type SearchQuery,
  type WriteOptions,
} from './store.ts'

export const DEFAULT_SWEEP_INTERVAL_MS = 60_000

export interface DirectoryServiceOptions {
  /** The node's data directory (the index lives in `directory.sqlite` there); omitted: in memory. */
  dataDir?: string
  clock?: Clock
  /** Gossip with other directories; omitted: this directory stands alone. */
  transport?: Pick<PeerTransport, 'publish' | 'subscribe'>
  limits?: DirectoryLimits
  /** @default 60 s */
  sweepIntervalMs?: number
  onError?(err: unknown): void
}

/** The SQLite file of a node's directory. */
export function directoryDbPath(dataDir: string): string {
  return join(dataDir, DIRECTORY_DB_FILE)
}

export class DirectoryService {
  readonly index: DirectoryIndex
  readonly #gossip: DirectoryGossip | undefined
  readonly #clock: Clock
  readonly #sweepIntervalMs: number
  readonly #onError: (err: unknown) => void
  #stop: AbortController | undefined

  constructor(options: DirectoryServiceOptions = {}) {
    this.#clock = options.clock ?? systemClock
    this.index = new DirectoryIndex({
      path: options.dataDir === undefined ? ':memory:' : directoryDbPath(options.dataDir),
      clock: this.#clock,
      ...(options.limits === undefined ? {} : { limits: options.limits }),
    })
    this.#gossip =
      options.transport === undefined
        ? undefined
        : new DirectoryGossip(options.transport, this.index, { now: () => this.#clock.now() })
    this.#sweepIntervalMs = options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS
    this.#onError = options.onError ?? (() => {})
  }

  get running(): boolean {
    return this.#stop !== undefined
  }

  start(): void {
    if (this.#stop !== undefined) return
    this.#stop = new AbortController()
    this.#gossip?.start()
    repeat(this.#clock, this.#sweepIntervalMs, () => void this.index.sweep(), {
      signal: this.#stop.signal,
      onError: this.#onError,
    })
  }

  /** Stops gossip and the sweep timer and closes the index. */
  stop(): void {
    this.#stop?.abort()
    this.#stop = undefined
    this.#gossip?.stop()
    this.index.close()
  }

  /** Verifies, stores and gossips a registration (see `DirectoryIndex.register`). */
  register(raw: unknown, options: WriteOptions = {}): RegisterOutcome {
    const outcome = this.index.register(raw, options)
    this.#gossip?.publishRegistration(outcome.record)
    return outcome
  }

  /** Verifies, applies and gossips a signed deletion. */
  delete(raw: unknown, options: WriteOptions = {}): DeleteOutcome {
    const outcome = this.index.delete(raw, options)
    this.#gossip?.publishDeletion(outcome.deletion)
    return outcome
  }

  search(query: SearchQuery): SearchPage {
    return this.index.search(query)
  }

  get(did: string): SignedRegistration | undefined {
    return this.index.get(did)
  }

  count(): number {
    return this.index.count()
  }
}
