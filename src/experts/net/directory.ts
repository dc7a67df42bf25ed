/**
 * Who hosts which expert. A node that serves an expert block announces it in the DHT as a
 * provider of the block's host key, a raw-codec CIDv1 of sha256("donghae/experts/host/" + block)
 * (`expertHostKey`), and announces it again every `reannounceMs` while it hosts it. A node that
 * needs the expert asks the DHT for the key's providers (`hostsOf`, bounded by a count and a
 * timeout) and keeps the hosts it found in a cache; a cached host expires `ttlMs` after it was
 * last seen (found again, `learn`ed from an answer or a chain assignment), so a host that stopped
 * announcing drops out even though the DHT keeps provider records for a day. `withdraw` stops
 * announcing a block (the DHT's records age out on their own).
 *
 * The DHT is behind `ExpertRouting`, so the directory runs over libp2p's kad-DHT
 * (`libp2pRouting`) and over an in-memory table in tests. A lookup asks the DHT at most every
 * `minQueryIntervalMs` per block while the cache holds hosts, and concurrent lookups of one block
 * share a query: the coordinator asks on every token.
 */
import type { KadDHT } from '@libp2p/kad-dht'
import { cidOfBytes, RAW_CODE, type CID } from '../../core/cid.ts'
import { utf8 } from '../../core/bytes.ts'
import { repeat, systemClock, type Clock } from '../../core/clock.ts'
import { describeError } from '../../core/errors.ts'

export const EXPERT_HOST_KEY_PREFIX = 'donghae/experts/host/'
/**
 * Ten minutes: a provider record lives a day on the ~20 peers closest to its key, so a newcomer
 * taking one of those places hides it from nobody; announcing every minute cost an idle node a
 * burst of DHT streams (a lookup and ADD_PROVIDER per hosted block) that was half its idle CPU.
 */
export const DEFAULT_REANNOUNCE_MS = 10 * 60_000
export const DEFAULT_HOST_TTL_MS = 3 * 60_000
export const DEFAULT_LOOKUP_TIMEOUT_MS = 5_000
export const DEFAULT_MAX_HOSTS = 20
export const DEFAULT_MIN_QUERY_INTERVAL_MS = 15_000
/** Hosts cached per block at most (the most recently seen are kept). */
export const MAX_CACHED_HOSTS = 64
/** Blocks with a cache entry at most (the least recently used are dropped). */
export const MAX_CACHED_BLOCKS = 16_384

/** The DHT key under which the hosts of expert `block` are providers. */
export function expertHostKey(block: string): CID {
  return cidOfBytes(utf8(EXPERT_HOST_KEY_PREFIX + block), RAW_CODE)
}

/** The part of a DHT the directory uses. Provider identities are DIDs. */
export interface ExpertRouting {
  provide(key: CID, signal: AbortSignal): Promise<void>
  findProviders(key: CID, signal: AbortSignal): AsyncIterable<string>
  /** Stops re-providing `key` (libp2p re-provides on its own schedule too). */
  cancel?(key: CID): Promise<void>
}

/** The DHT of a libp2p host as `ExpertRouting`; `peerDid` maps a PeerId to a DID ('' when it cannot). */
export function libp2pRouting(
  host: { services: { dht: KadDHT } },
  peerDid: (peerId: unknown) => string,
): ExpertRouting {
  const dht = host.services.dht
  return {
    async provide(key, signal) {
      for await (const event of dht.provide(key, { signal })) void event
    },
    async *findProviders(key, signal) {
      const seen = new Set<string>()
      for await (const event of dht.findProviders(key, { signal })) {
        if (event.name !== 'PROVIDER') continue
        for (const provider of event.providers) {
          const did = peerDid(provider.id)
          if (did === '' || seen.has(did)) continue
          seen.add(did)
          yield did
        }
      }
    },
    async cancel(key) {
      await dht.cancelReprovide(key)
    },
  }
}

export interface HostsOfOptions {
  signal?: AbortSignal
  /** Bound of the DHT query. @default DirectoryOptions.lookupTimeoutMs */
  timeoutMs?: number
  /** Stop the query after this many providers. @default DirectoryOptions.maxHosts */
  maxHosts?: number
  /** Ask the DHT even when the cache was filled recently. */
  fresh?: boolean
}

/** What the coordinator needs of a directory. */
export interface ExpertHosts {
  hostsOf(block: string, options?: HostsOfOptions): Promise<string[]>
  /** Hosts of `block` in the cache, without asking the DHT. */
  cached(block: string): string[]
  learn(block: string, did: string): void
  forget(block: string, did: string): void
}

export interface DirectoryOptions {
  routing: ExpertRouting
  /** This node's DID: never listed as a host of anything (it runs its own experts locally). */
  self?: string
  clock?: Clock
  reannounceMs?: number
  ttlMs?: number
  lookupTimeoutMs?: number
  maxHosts?: number
  minQueryIntervalMs?: number
  onError?(err: unknown, what: string): void
}

interface CacheEntry {
  /** did -> last seen (ms). */
  hosts: Map<string, number>
  queriedAt: number
}

export class ExpertDirectory implements ExpertHosts {
  readonly #routing: ExpertRouting
  readonly #self: string | undefined
  readonly #clock: Clock
  readonly #reannounceMs: number
  readonly #ttlMs: number
  readonly #lookupTimeoutMs: number
  readonly #maxHosts: number
  readonly #minQueryIntervalMs: number
  readonly #onError: (err: unknown, what: string) => void
  readonly #announced = new Set<string>()
  readonly #cache = new Map<string, CacheEntry>()
  readonly #lookups = new Map<string, Promise<void>>()
  #abort: AbortController | undefined
  #provides = 0

  constructor(options: DirectoryOptions) {
    this.#routing = options.routing
    this.#self = options.self
    this.#clock = options.clock ?? systemClock
    this.#reannounceMs = options.reannounceMs ?? DEFAULT_REANNOUNCE_MS
    this.#ttlMs = options.ttlMs ?? DEFAULT_HOST_TTL_MS
    this.#lookupTimeoutMs = options.lookupTimeoutMs ?? DEFAULT_LOOKUP_TIMEOUT_MS
    this.#maxHosts = options.maxHosts ?? DEFAULT_MAX_HOSTS
    this.#minQueryIntervalMs = options.minQueryIntervalMs ?? DEFAULT_MIN_QUERY_INTERVAL_MS
    this.#onError = options.onError ?? (() => {})
  }

  /** Completed provide operations (re-announcements included). */
  get provides(): number {
    return this.#provides
  }

  /** Starts re-announcing the announced blocks every `reannounceMs`. */
  start(): void {
    if (this.#abort !== undefined) return
    const abort = new AbortController()
    this.#abort = abort
    repeat(this.#clock, this.#reannounceMs, () => this.reannounce(), {
      signal: abort.signal,
      onError: (err) => this.#onError(err, 'reannounce'),
    })
  }

  stop(): void {
    this.#abort?.abort()
    this.#abort = undefined
  }

  /** Announces that this node hosts `block` (now, and on every re-announcement until withdrawn). */
  async announce(block: string, signal?: AbortSignal): Promise<void> {
    this.#announced.add(block)
    await this.#provide(block, signal)
  }

  /** Announces every announced block again (what the timer runs). */
  async reannounce(signal?: AbortSignal): Promise<void> {
    await Promise.all([...this.#announced].map((block) => this.#provide(block, signal)))
  }

  /** Stops announcing `block`. */
  async withdraw(block: string): Promise<void> {
    if (!this.#announced.delete(block)) return
    await this.#routing.cancel?.(expertHostKey(block)).catch((err: unknown) => this.#onError(err, 'withdraw'))
  }

  announced(): string[] {
    return [...this.#announced].sort()
  }

  /** A host of `block` learned elsewhere (it answered a call, or the chain assigns it). */
  learn(block: string, did: string): void {
    if (did === this.#self || did === '') return
    const entry = this.#entry(block)
    entry.hosts.delete(did)
    entry.hosts.set(did, this.#clock.now())
    if (entry.hosts.size > MAX_CACHED_HOSTS) {
      const oldest = entry.hosts.keys().next().value
      if (oldest !== undefined) entry.hosts.delete(oldest)
    }
  }

  /** Drops `did` as a host of `block` (it said it does not host it). */
  forget(block: string, did: string): void {
    this.#cache.get(block)?.hosts.delete(did)
  }

  cached(block: string): string[] {
    const entry = this.#cache.get(block)
    if (entry === undefined) return []
    const cutoff = this.#clock.now() - this.#ttlMs
    for (const [did, seen] of entry.hosts) if (seen <= cutoff) entry.hosts.delete(did)
    return [...entry.hosts.keys()]
  }

  /**
   * Hosts of `block`: the DHT's providers (at most `maxHosts`, within `timeoutMs`) merged with the
   * cache. The DHT is asked only when the cache is empty, `fresh` is set, or the last query is
   * older than `minQueryIntervalMs`. A failed query leaves the cache as the answer.
   */
  async hostsOf(block: string, options: HostsOfOptions = {}): Promise<string[]> {
    const entry = this.#cache.get(block)
    const known = this.cached(block)
    const due =
      options.fresh === true ||
      entry === undefined ||
      known.length === 0 ||
      this.#clock.now() - entry.queriedAt >= this.#minQueryIntervalMs
    if (!due) return known
    let lookup = this.#lookups.get(block)
    if (lookup === undefined) {
      lookup = this.#query(block, options).finally(() => this.#lookups.delete(block))
      this.#lookups.set(block, lookup)
    }
    // hosts already known answer at once and the DHT refreshes them in the background: a
    // generation never waits on a lookup it does not need (stale while revalidate)
    if (known.length > 0 && options.fresh !== true) {
      lookup.catch(() => {})
      return known
    }
    // nothing known: wait for the lookup, but never past its bound, whatever the DHT does
    let cancel = (): void => {}
    const bound = new Promise<void>((resolve) => {
      cancel = this.#clock.setTimer(options.timeoutMs ?? this.#lookupTimeoutMs, resolve)
    })
    try {
      await Promise.race([lookup, bound])
    } finally {
      cancel()
    }
    return this.cached(block)
  }

  async #query(block: string, options: HostsOfOptions): Promise<void> {
    const limit = options.maxHosts ?? this.#maxHosts
    const abort = new AbortController()
    const cancelTimer = this.#clock.setTimer(options.timeoutMs ?? this.#lookupTimeoutMs, () => abort.abort())
    const signal = options.signal === undefined ? abort.signal : AbortSignal.any([abort.signal, options.signal])
    let found = 0
    try {
      for await (const did of this.#routing.findProviders(expertHostKey(block), signal)) {
        if (did === this.#self) continue
        this.learn(block, did)
        if (++found >= limit) break
      }
    } catch (err) {
      if (!signal.aborted) this.#onError(err, 'findProviders')
    } finally {
      cancelTimer()
      abort.abort()
      this.#entry(block).queriedAt = this.#clock.now()
    }
  }

  async #provide(block: string, signal?: AbortSignal): Promise<void> {
    const abort = new AbortController()
    const cancelTimer = this.#clock.setTimer(this.#lookupTimeoutMs * 2, () => abort.abort())
    try {
      await this.#routing.provide(
        expertHostKey(block),
        signal === undefined ? abort.signal : AbortSignal.any([abort.signal, signal]),
      )
      this.#provides++
    } catch (err) {
      this.#onError(err, `provide: ${describeError(err)}`)
    } finally {
      cancelTimer()
    }
  }

  #entry(block: string): CacheEntry {
    let entry = this.#cache.get(block)
    if (entry === undefined) {
      entry = { hosts: new Map(), queriedAt: Number.NEGATIVE_INFINITY }
      if (this.#cache.size >= MAX_CACHED_BLOCKS) {
        const oldest = this.#cache.keys().next().value
        if (oldest !== undefined) this.#cache.delete(oldest)
      }
      this.#cache.set(block, entry)
    }
    return entry
  }
}
