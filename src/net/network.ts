/**
 * Keeping a node connected and findable: reconnects to peers remembered in the persisted peer
 * store, dials bootstrap peers whenever it has too few connections, walks the DHT from random
 * keys to meet new peers (and so learns of peers its peers know: peer exchange through the DHT),
 * and publishes its signed DID record (addresses and service endpoints) in the DHT, refreshing it
 * before it expires.
 */
import { randomBytes } from 'node:crypto'
import { multiaddr } from '@multiformats/multiaddr'
import type { PeerId } from '@libp2p/interface'
import { describeError } from '../core/errors.ts'
import { systemClock, type Clock } from '../core/clock.ts'
import { silentLogger, type Logger } from '../core/logger.ts'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import {
  decodeDidRecord,
  didRecordKey,
  encodeDidRecord,
  signDidRecord,
  type ServiceEndpoint,
  type SignedDidRecord,
} from './did-records.ts'
import type { DonghaeHost } from './host.ts'
import { dhtGet } from './dht-get.ts'
import { dhtPut } from './dht-put.ts'

export interface NetworkServiceOptions {
  host: DonghaeHost
  key: Ed25519KeyPair
  bootstrap?: string[]
  /** Keep at least this many connections. @default 8 */
  targetPeers?: number
  /**
   * Discovery pulse. @default 10 s. While pulses meet no new peer and lose none (a network smaller
   * than `targetPeers`), the pause doubles up to `MAX_PULSE_BACKOFF` times this: an idle node in
   * a small network stops walking the DHT every 10 s.
   */
  intervalMs?: number
  /** Service endpoints published in the DID record (e.g. the HTTP API). */
  services?: () => ServiceEndpoint[]
  /** DID records live this long; they are refreshed at half-life. @default 1 hour */
  recordTtlMs?: number
  clock?: Clock
  logger?: Logger
}

/** How long publishing a DID record may take (the lookup, then PUT_VALUE to the k closest). */
export const DID_PUT_BUDGET_MS = 10_000

/** The longest pause between discovery pulses, as a multiple of `intervalMs` (16 × 10 s). */
export const MAX_PULSE_BACKOFF = 16

export class NetworkService {
  readonly #opts: NetworkServiceOptions
  readonly #host: DonghaeHost
  readonly #clock: Clock
  readonly #log: Logger
  readonly #abort = new AbortController()
  #timer: (() => void) | undefined
  #lastPublish = 0
  #seq = 0
  /** Connections after the last pulse, and the current pause multiple. */
  #lastConnected = 0
  #backoff = 1
  #lostPeer = false
  #pulsing = false

  constructor(options: NetworkServiceOptions) {
    this.#opts = options
    this.#host = options.host
    this.#clock = options.clock ?? systemClock
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:net:discovery')
  }

  start(): void {
    this.#host.addEventListener('peer:disconnect', this.#onDisconnect)
    void this.#pulse()
  }

  stop(): void {
    this.#abort.abort()
    this.#host.removeEventListener('peer:disconnect', this.#onDisconnect)
    this.#timer?.()
    this.#timer = undefined
  }

  /** A lost peer ends a long pause: the next pulse comes after the base interval. */
  readonly #onDisconnect = (): void => {
    this.#lostPeer = true
    if (this.#pulsing || this.#backoff === 1 || this.#abort.signal.aborted) return
    this.#backoff = 1
    this.#timer?.()
    this.#timer = this.#clock.setTimer(this.#opts.intervalMs ?? 10_000, () => void this.#pulse())
  }

  async #pulse(): Promise<void> {
    const before = this.#host.getPeers().length
    this.#pulsing = true
    try {
      await this.#connect()
      const ttl = this.#opts.recordTtlMs ?? 3_600_000
      if (this.#clock.now() - this.#lastPublish > ttl / 2 || this.#lastPublish === 0) await this.publishDid()
    } catch (err) {
      if (!this.#abort.signal.aborted) this.#log.debug({ err: describeError(err) }, 'discovery pulse failed')
    }
    this.#pulsing = false
    if (this.#abort.signal.aborted) return
    // met a peer, or lost one since the last pulse: look again soon; otherwise wait longer each time
    const after = this.#host.getPeers().length
    const changed = after > before || before < this.#lastConnected || this.#lostPeer
    this.#lostPeer = false
    this.#backoff = changed ? 1 : Math.min(MAX_PULSE_BACKOFF, this.#backoff * 2)
    this.#lastConnected = after
    this.#timer = this.#clock.setTimer((this.#opts.intervalMs ?? 10_000) * this.#backoff, () => void this.#pulse())
  }

  /** Known peers first, then bootstrap, then a random DHT walk, until the target is reached. */
  async #connect(): Promise<void> {
    const target = this.#opts.targetPeers ?? 8
    const signal = this.#abort.signal
    const connected = (): number => this.#host.getPeers().length
    if (connected() >= target) return
    for (const peer of await this.#host.peerStore.all()) {
      if (connected() >= target || signal.aborted) return
      if (peer.id.equals(this.#host.peerId) || peer.addresses.length === 0 || this.#isConnected(peer.id)) continue
      await this.#dial(peer.id)
    }
    for (const address of this.#opts.bootstrap ?? []) {
      if (connected() >= target || signal.aborted) return
      try {
        await this.#host.dial(multiaddr(address), { signal: AbortSignal.any([signal, AbortSignal.timeout(5_000)]) })
      } catch (err) {
        this.#log.debug({ address, err: describeError(err) }, 'bootstrap dial failed')
      }
    }
    if (connected() === 0 || signal.aborted) return
    // Random walk: the peers closest to a random key are spread over the whole network.
    for await (const event of this.#host.services.dht.getClosestPeers(randomBytes(32), {
      signal: AbortSignal.any([signal, AbortSignal.timeout(10_000)]),
    })) {
      if (connected() >= target) break
      if (event.name === 'FINAL_PEER' && !this.#isConnected(event.peer.id) && !event.peer.id.equals(this.#host.peerId))
        await this.#dial(event.peer.id)
    }
  }

  #isConnected(peer: PeerId): boolean {
    return this.#host.getConnections(peer).length > 0
  }

  async #dial(peer: PeerId): Promise<void> {
    try {
      await this.#host.dial(peer, { signal: AbortSignal.any([this.#abort.signal, AbortSignal.timeout(5_000)]) })
    } catch (err) {
      this.#log.debug({ peer: peer.toString(), err: describeError(err) }, 'dial failed')
    }
  }

  /**
   * Signs and stores this node's DID record in the DHT (src/net/dht-put.ts: within
   * DID_PUT_BUDGET_MS, at the peers the lookup found by half of it if it has not ended by then).
   */
  async publishDid(): Promise<SignedDidRecord> {
    const now = this.#clock.now()
    this.#seq = Math.max(this.#seq + 1, now)
    const record = signDidRecord(this.#opts.key, {
      addresses: this.#host.getMultiaddrs().map(String),
      services: this.#opts.services?.() ?? [],
      seq: this.#seq,
      expires: now + (this.#opts.recordTtlMs ?? 3_600_000),
    })
    const put = await dhtPut(this.#host.services.dht, didRecordKey(record.did), encodeDidRecord(record), {
      budgetMs: DID_PUT_BUDGET_MS,
      signal: this.#abort.signal,
      clock: this.#clock,
      onEvent: (event) => {
        if (event.name === 'QUERY_ERROR') this.#log.debug({ err: event.error.message }, 'DID record put: a peer failed')
      },
    })
    // a record nobody stored is published again at the next pulse, not after half its life
    if (put.acks > 0) this.#lastPublish = now
    else this.#log.debug({ sentTo: put.sentTo, fellBack: put.fellBack }, 'DID record put: no peer stored it')
    return record
  }

  /**
   * The newest valid DID record of `did` in the DHT: the lookup stops once DHT_GET_QUORUM peers
   * agree on one, or returns the best answer seen when its 10 s end first (src/net/dht-get.ts);
   * undefined when no peer sent a valid one.
   */
  async resolveDid(did: string, options: { signal?: AbortSignal } = {}): Promise<SignedDidRecord | undefined> {
    const signal = AbortSignal.any([
      this.#abort.signal,
      AbortSignal.timeout(10_000),
      ...(options.signal === undefined ? [] : [options.signal]),
    ])
    const found = await dhtGet(this.#host.services.dht, didRecordKey(did), {
      accept: (bytes) => {
        try {
          const record = decodeDidRecord(bytes)
          return record.did === did ? record : undefined
        } catch {
          return undefined // invalid records never count (the DHT's validator should already have refused them)
        }
      },
      better: (a, b) => a.seq > b.seq,
      signal,
    })
    if (found.value === undefined && found.error !== undefined)
      this.#log.debug({ did, err: describeError(found.error) }, 'DID lookup failed')
    return found.value
  }
}
