/**
 * The circuit-relay fallback: when the router gives no port mapping, the node reserves a slot on a
 * connected peer that runs a circuit-relay-v2 server, so that its
 * `/.../p2p/<relay>/p2p-circuit/p2p/<self>` address is announced and peers outside reach it through
 * the relay.
 *
 * The reservation is made by listening on `/p2p/<relay>/p2p-circuit` after libp2p has started (a
 * `/p2p-circuit` listen address at startup holds libp2p 3's `start()` until some relay answers).
 * The relay transport then keeps the reservation refreshed and withdraws the address when the
 * relay goes away; this service notices that and looks for another relay. Relays are connected
 * peers (not over a relay themselves) whose identify lists the hop protocol, public addresses
 * first; one that fails is tried again later with a doubling delay, others in the meantime.
 *
 *   services: { relayFallback: relayFallback({ logger }) }   // then natChanged(change) or want()
 */
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { RELAY_V2_HOP_CODEC } from '@libp2p/circuit-relay-v2'
import type { Connection, IdentifyResult, PeerId, TopologyFilter } from '@libp2p/interface'
import { describeError } from '../core/errors.ts'
import { systemClock, type Clock } from '../core/clock.ts'
import { silentLogger, type Logger } from '../core/logger.ts'
import type { NatChange } from './nat/manager.ts'
import { isPublicAddress } from './nat/netinfo.ts'
import { RELAY_RESERVATION_TIMEOUT_MS, RELAY_RETRY_INITIAL_MS, RELAY_RETRY_MAX_MS } from './constants.ts'

/** What the service needs from libp2p (a structural subset of its components). */
export interface RelayFallbackComponents {
  peerId: PeerId
  transportManager: {
    listen(addrs: Multiaddr[]): Promise<void>
    getAddrs(): Multiaddr[]
    getListeners(): Array<{ getAddrs(): Multiaddr[]; close(): Promise<void> }>
  }
  connectionManager: { getConnections(peer?: PeerId): Connection[] }
  peerStore: { get(peer: PeerId): Promise<{ protocols: string[] }> }
  events: {
    addEventListener(type: string, listener: (event: CustomEvent) => void): void
    removeEventListener(type: string, listener: (event: CustomEvent) => void): void
  }
}

export interface RelayFallbackInit {
  /** Reserve from the start (`true`), or only once `want()` / `natChanged()` asks. @default false */
  always?: boolean
  /** Longest wait for one relay's reservation. @default RELAY_RESERVATION_TIMEOUT_MS */
  reservationTimeoutMs?: number
  /** First delay before a failed relay is tried again, doubling. @default RELAY_RETRY_INITIAL_MS */
  retryInitialMs?: number
  /** @default RELAY_RETRY_MAX_MS */
  retryMaxMs?: number
  clock?: Clock
  logger?: Logger
}

export type RelayState = 'off' | 'searching' | 'reserved'

export interface RelayFailure {
  peer: string
  error: string
  at: number
}

export interface RelayStatus {
  /** `off`: no relay wanted; `searching`: wanted, none reserved yet; `reserved`: see `relay`. */
  state: RelayState
  /** Why a relay is wanted (e.g. the port-mapping failure). */
  reason?: string
  /** The relay holding our slot and the address announced through it. */
  relay?: { peer: string; address: string }
  /** Failed reservations, newest first (at most 8). */
  failures: RelayFailure[]
}

type Listener = ReturnType<RelayFallbackComponents['transportManager']['getListeners']>[number]

interface Backoff {
  failures: number
  retryAt: number
}

/**
 * `circuitRelayTransport({ discoveryFilter: NO_RELAY_DISCOVERY })`: the transport's own relay
 * discovery never hears of a relay, so this service alone chooses relays. (That discovery also
 * queues a reservation job for every relay met; a reservation asked for while such a job is
 * finishing joins the finished job and waits forever - libp2p's queue drops finished jobs a
 * microtask late.)
 */
export const NO_RELAY_DISCOVERY: TopologyFilter = { has: () => true, add: () => {}, remove: () => {} }

/** The relay peer id of a circuit address `/.../p2p/<relay>/p2p-circuit...`. */
export function relayOf(addr: Multiaddr): string | undefined {
  const parts = addr.getComponents()
  const circuit = parts.findIndex((c) => c.name === 'p2p-circuit')
  if (circuit < 1) return undefined
  const relay = parts[circuit - 1]
  return relay?.name === 'p2p' ? relay.value : undefined
}

function isRelayed(conn: Connection): boolean {
  return conn.remoteAddr.getComponents().some((c) => c.name === 'p2p-circuit')
}

function hasPublicIp(addr: Multiaddr): boolean {
  const ip = addr.getComponents().find((c) => c.name === 'ip4' || c.name === 'ip6')
  return ip?.value !== undefined && isPublicAddress(ip.value)
}

/**
 * Why a reservation failed, in one line. libp2p's listen error lists each address with the
 * underlying error and its stack (`  /p2p/.../p2p-circuit: Error: reservation failed with status ...`);
 * the text is only shown to people, never branched on.
 */
function failureLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err)
  const cause = /\/p2p-circuit: (?:[A-Za-z]*Error: )?(.+)$/m.exec(text)?.[1]
  return cause ?? describeError(err)
}

export class RelayFallbackService {
  readonly [Symbol.toStringTag] = 'donghae/relay-fallback'
  readonly #c: RelayFallbackComponents
  readonly #init: RelayFallbackInit
  readonly #clock: Clock
  readonly #log: Logger
  #reason: string | undefined
  #running = false
  /** Aborted at stop: ends a reservation wait that libp2p's own stop does not. */
  #stopping = new AbortController()
  #searching: Promise<void> | undefined
  #again = false
  #cancelRetry: (() => void) | undefined
  #backoff = new Map<string, Backoff>()
  #failures: RelayFailure[] = []
  #announced: string | undefined
  #waitingLogged = false
  /** The circuit listeners opened by `#reserve` (one per attempt; libp2p keeps failed ones). */
  readonly #listeners = new Set<Listener>()

  constructor(components: RelayFallbackComponents, init: RelayFallbackInit = {}) {
    this.#c = components
    this.#init = init
    this.#clock = init.clock ?? systemClock
    this.#log = (init.logger ?? silentLogger()).forComponent('donghae:net:relay')
  }

  start(): void {}

  afterStart(): void {
    this.#running = true
    this.#stopping = new AbortController()
    for (const type of ['peer:identify', 'transport:listening', 'transport:close']) {
      this.#c.events.addEventListener(type, this.#onEvent)
    }
    if (this.#init.always === true) this.want('asked for (relay always)')
    else if (this.#reason !== undefined) this.#kick()
  }

  stop(): void {
    this.#running = false
    this.#stopping.abort()
    for (const type of ['peer:identify', 'transport:listening', 'transport:close']) {
      this.#c.events.removeEventListener(type, this.#onEvent)
    }
    this.#cancelRetry?.()
    this.#cancelRetry = undefined
  }

  /** Follows the port-mapping manager: no mapping (or a non-public one) -> a relay is wanted. */
  natChanged(change: NatChange): void {
    if (change.method === 'none') {
      if (change.fallback === 'circuit-relay') this.want(`no port mapping available: ${change.reason}`)
    } else if (isPublicAddress(change.externalAddress)) {
      this.unwant(`port mapped at ${change.externalAddress}:${change.externalPort}`)
    } else {
      this.want(`the mapped address ${change.externalAddress} is not public (another NAT upstream)`)
    }
  }

  /** Asks for a relay reservation (kept, refreshed and replaced until `unwant`). */
  want(reason: string): void {
    const first = this.#reason === undefined
    this.#reason = reason
    if (!first) return
    this.#log.info({ reason }, 'looking for a circuit relay')
    this.#kick()
  }

  /** No relay needed any more: the reservation is given up and its address withdrawn. */
  unwant(reason: string): void {
    if (this.#reason === undefined) return
    this.#reason = undefined
    this.#cancelRetry?.()
    this.#cancelRetry = undefined
    if (this.#current() !== undefined) this.#log.info({ reason }, 'circuit relay no longer needed; reservation dropped')
    this.#announced = undefined
    // Closing a circuit listener cancels the transport's reservations and withdraws their addresses.
    this.#closeEmpty(true)
  }

  status(): RelayStatus {
    const current = this.#current()
    return {
      state: this.#reason === undefined ? 'off' : current === undefined ? 'searching' : 'reserved',
      ...(this.#reason === undefined ? {} : { reason: this.#reason }),
      ...(current === undefined ? {} : { relay: current }),
      failures: this.#failures.slice(),
    }
  }

  readonly #onEvent = (event: CustomEvent): void => {
    if (this.#reason === undefined || !this.#running) return
    if (event.type === 'peer:identify' && !(event.detail as IdentifyResult).protocols.includes(RELAY_V2_HOP_CODEC))
      return
    this.#kick()
  }

  /** The relay we hold a slot on and our address through it, from the transport's own addresses. */
  #current(): { peer: string; address: string } | undefined {
    // the circuit addresses themselves, not the `/p2p-circuit/webrtc` ones WebRTC derives from them
    const addrs = this.#c.transportManager
      .getAddrs()
      .filter((a) => relayOf(a) !== undefined && a.getComponents().at(-1)?.name === 'p2p-circuit')
    const best = addrs.find(hasPublicIp) ?? addrs[0]
    if (best === undefined) return undefined
    return { peer: relayOf(best) as string, address: `${best.toString()}/p2p/${this.#c.peerId.toString()}` }
  }

  /** Closes the circuit listeners this service opened that hold no reservation (a failed or lost one). */
  #closeEmpty(all = false): void {
    for (const listener of this.#listeners) {
      if (!all && listener.getAddrs().length > 0) continue
      this.#listeners.delete(listener)
      void listener.close().catch(() => {})
    }
  }

  /** Runs a search now, or once the running one ends. */
  #kick(): void {
    if (!this.#running || this.#reason === undefined) return
    if (this.#searching !== undefined) {
      this.#again = true
      return
    }
    this.#cancelRetry?.()
    this.#cancelRetry = undefined
    this.#searching = this.#search()
      .catch((err: unknown) => this.#log.error({ error: describeError(err) }, 'relay search failed'))
      .finally(() => {
        this.#searching = undefined
        if (this.#again) {
          this.#again = false
          this.#kick()
        }
      })
  }

  async #search(): Promise<void> {
    const held = this.#current()
    if (held !== undefined) return this.#reserved(held)
    // No reservation is held, so closing the dead listeners (which cancels the transport's
    // reservations) loses nothing.
    this.#closeEmpty()
    if (this.#announced !== undefined) {
      this.#log.warn({ relay: this.#announced }, 'circuit relay reservation lost; looking for another relay')
      this.#announced = undefined
    }
    const candidates = await this.#candidates()
    for (const peer of candidates) {
      if (!this.#running || this.#reason === undefined) return
      const got = await this.#reserve(peer)
      if (got !== undefined) return this.#reserved(got)
    }
    this.#scheduleRetry(candidates.length)
  }

  #reserved(current: { peer: string; address: string }): void {
    if (this.#announced === current.address) return
    this.#announced = current.address
    this.#waitingLogged = false
    this.#log.info({ relay: current.peer, address: current.address }, 'circuit relay reservation made')
  }

  /** Connected peers, over a direct connection, that serve the relay hop protocol: public ones first. */
  async #candidates(): Promise<PeerId[]> {
    const now = this.#clock.now()
    const seen = new Set<string>()
    const scored: Array<{ peer: PeerId; public: boolean }> = []
    for (const conn of this.#c.connectionManager.getConnections()) {
      const id = conn.remotePeer.toString()
      if (seen.has(id) || conn.status !== 'open' || isRelayed(conn) || conn.limits !== undefined) continue
      seen.add(id)
      if ((this.#backoff.get(id)?.retryAt ?? 0) > now) continue
      const protocols = await this.#c.peerStore.get(conn.remotePeer).then(
        (p) => p.protocols,
        (): string[] => [],
      )
      if (protocols.includes(RELAY_V2_HOP_CODEC))
        scored.push({ peer: conn.remotePeer, public: hasPublicIp(conn.remoteAddr) })
    }
    return scored.sort((a, b) => Number(b.public) - Number(a.public)).map((s) => s.peer)
  }

  async #reserve(peer: PeerId): Promise<{ peer: string; address: string } | undefined> {
    const id = peer.toString()
    const timeoutMs = this.#init.reservationTimeoutMs ?? RELAY_RESERVATION_TIMEOUT_MS
    const done = new AbortController()
    const signal = AbortSignal.any([done.signal, this.#stopping.signal])
    const before = new Set(this.#c.transportManager.getListeners())
    try {
      this.#log.debug({ relay: id }, 'asking for a circuit relay reservation')
      const listening = this.#c.transportManager.listen([multiaddr(`/p2p/${id}/p2p-circuit`)])
      for (const l of this.#c.transportManager.getListeners()) if (!before.has(l)) this.#listeners.add(l)
      await Promise.race([
        listening,
        this.#clock.sleep(timeoutMs, { signal }).then(() => {
          throw new Error(`no reservation within ${timeoutMs} ms`)
        }),
      ])
      const current = this.#current()
      if (current?.peer !== id) throw new Error('the relay answered but gave no address to announce')
      this.#backoff.delete(id)
      return current
    } catch (err) {
      if (this.#running) this.#failed(id, failureLine(err))
      return undefined
    } finally {
      done.abort()
    }
  }

  #failed(peer: string, error: string): void {
    const now = this.#clock.now()
    const failures = (this.#backoff.get(peer)?.failures ?? 0) + 1
    const delay = Math.min(
      this.#init.retryMaxMs ?? RELAY_RETRY_MAX_MS,
      (this.#init.retryInitialMs ?? RELAY_RETRY_INITIAL_MS) * 2 ** Math.min(failures - 1, 20),
    )
    this.#backoff.set(peer, { failures, retryAt: now + delay })
    this.#failures = [{ peer, error, at: now }, ...this.#failures].slice(0, 8)
    this.#log.warn({ relay: peer, error, retryInMs: delay }, 'circuit relay reservation failed; trying another relay')
  }

  /** Nothing reserved: try again when the first relay's backoff ends (new relays kick in sooner). */
  #scheduleRetry(candidates: number): void {
    if (!this.#running || this.#reason === undefined) return
    const now = this.#clock.now()
    const next = Math.min(...[...this.#backoff.values()].map((b) => b.retryAt).filter((t) => t > now))
    if (candidates === 0 && this.#backoff.size === 0 && !this.#waitingLogged) {
      this.#waitingLogged = true
      this.#log.warn({ reason: this.#reason }, 'no circuit relay among the connected peers yet; waiting for one')
    }
    if (!Number.isFinite(next)) return
    this.#cancelRetry = this.#clock.setTimer(next - now, () => {
      this.#cancelRetry = undefined
      this.#kick()
    })
  }
}

/** libp2p service factory: `services: { relayFallback: relayFallback({ logger }) }`. */
export function relayFallback(
  init: RelayFallbackInit = {},
): (components: RelayFallbackComponents) => RelayFallbackService {
  return (components) => new RelayFallbackService(components, init)
}
