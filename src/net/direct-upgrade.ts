/**
 * Upgrades a connection through a circuit relay to a direct WebRTC connection (hole punching).
 *
 * Two nodes behind NATs that map no port meet on a relay: one dials the other's
 * `/.../p2p/<relay>/p2p-circuit/p2p/<peer>` address. Once identify shows that the peer speaks
 * WebRTC signalling (`/webrtc-signaling/0.0.1`), the side that opened the relayed connection
 * dials `/.../p2p-circuit/webrtc/p2p/<peer>`: libp2p's WebRTC transport sends the SDP offer, the
 * answer and the ICE candidates over the relayed connection, and ICE (with the STUN servers of
 * `iceServers` giving each side its server-reflexive address) punches a UDP path through both
 * NATs. The result is an ordinary libp2p connection over DTLS/SCTP data channels that no longer
 * touches the relay; the relayed connection is then closed (as DCUtR does), so the peers keep
 * talking when the relay goes away.
 *
 * When ICE finds no path (both sides behind NATs whose mapping depends on the destination,
 * "symmetric" NATs, and no TURN server), the relayed connection stays in use and the upgrade is
 * tried again later, with a doubling delay.
 *
 *   services: { directUpgrade: directUpgrade({ logger }) }
 */
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import type { Connection, PeerId, Topology } from '@libp2p/interface'
import { describeError } from '../core/errors.ts'
import { systemClock, type Clock } from '../core/clock.ts'
import { silentLogger, type Logger } from '../core/logger.ts'
import { DIRECT_UPGRADE_RETRY_INITIAL_MS, DIRECT_UPGRADE_RETRY_MAX_MS, DIRECT_UPGRADE_TIMEOUT_MS } from './constants.ts'

/** libp2p's WebRTC signalling protocol (private-to-private; not exported by @libp2p/webrtc). */
export const WEBRTC_SIGNALING_PROTOCOL = '/webrtc-signaling/0.0.1'

/** What the service needs from libp2p (a structural subset of its components). */
export interface DirectUpgradeComponents {
  registrar: {
    register(protocol: string, topology: Topology): Promise<string>
    unregister(id: string): void
  }
  connectionManager: { getConnections(peer?: PeerId): Connection[] }
  /**
   * Dials the WebRTC address itself: the connection manager's dial queue would give up on one
   * address after 6 s (its `addressDialTimeout`), shorter than ICE may take across two NATs.
   */
  transportManager: { dial(addr: Multiaddr, options: { signal: AbortSignal }): Promise<Connection> }
}

export interface DirectUpgradeInit {
  /** Longest wait for one upgrade (signalling, ICE, DTLS, muxer). @default DIRECT_UPGRADE_TIMEOUT_MS */
  timeoutMs?: number
  /** First delay before a failed upgrade is tried again, doubling. @default DIRECT_UPGRADE_RETRY_INITIAL_MS */
  retryInitialMs?: number
  /** @default DIRECT_UPGRADE_RETRY_MAX_MS */
  retryMaxMs?: number
  clock?: Clock
  logger?: Logger
}

export interface DirectUpgradeResult {
  peer: string
  ok: boolean
  /** From the start of the WebRTC dial to a usable direct connection (or to the failure). */
  ms: number
  /** The direct connection's address (`.../p2p-circuit/webrtc/p2p/<peer>`: the route the signalling took). */
  address?: string
  error?: string
  at: number
}

/** A connection through a circuit relay (not one that only used a relay to signal, like WebRTC). */
export function isRelayed(conn: Pick<Connection, 'remoteAddr'>): boolean {
  const names = conn.remoteAddr.getComponents().map((c) => c.name)
  const circuit = names.lastIndexOf('p2p-circuit')
  return circuit !== -1 && !names.slice(circuit).includes('webrtc')
}

/** A WebRTC connection (its data channels run directly between the peers). */
export function isWebRtc(conn: Pick<Connection, 'remoteAddr'>): boolean {
  return conn.remoteAddr.getComponents().some((c) => c.name === 'webrtc')
}

/** `/.../p2p/<relay>/p2p-circuit/p2p/<peer>` -> `/.../p2p/<relay>/p2p-circuit/webrtc/p2p/<peer>`. */
export function webRtcAddressOf(relayed: Multiaddr, peer: PeerId): Multiaddr {
  const parts = relayed.getComponents()
  const circuit = parts.findLastIndex((c) => c.name === 'p2p-circuit')
  if (circuit === -1) throw new Error(`not a circuit address: ${relayed.toString()}`)
  return multiaddr(parts.slice(0, circuit + 1)).encapsulate(`/webrtc/p2p/${peer.toString()}`)
}

export class DirectUpgradeService {
  readonly [Symbol.toStringTag] = 'donghae/direct-upgrade'
  readonly #c: DirectUpgradeComponents
  readonly #init: DirectUpgradeInit
  readonly #clock: Clock
  readonly #log: Logger
  #topology: string | undefined
  #stopping = new AbortController()
  readonly #running = new Set<string>()
  readonly #failures = new Map<string, number>()
  readonly #retries = new Map<string, () => void>()
  #results: DirectUpgradeResult[] = []

  constructor(components: DirectUpgradeComponents, init: DirectUpgradeInit = {}) {
    this.#c = components
    this.#init = init
    this.#clock = init.clock ?? systemClock
    this.#log = (init.logger ?? silentLogger()).forComponent('donghae:net:direct-upgrade')
  }

  async start(): Promise<void> {
    this.#stopping = new AbortController()
    this.#topology = await this.#c.registrar.register(WEBRTC_SIGNALING_PROTOCOL, {
      notifyOnLimitedConnection: true,
      onConnect: (peer, conn) => this.#consider(peer, conn),
    })
  }

  stop(): void {
    this.#stopping.abort()
    if (this.#topology !== undefined) this.#c.registrar.unregister(this.#topology)
    this.#topology = undefined
    for (const cancel of this.#retries.values()) cancel()
    this.#retries.clear()
  }

  /** The latest upgrade attempts, newest first (at most 16). */
  results(): DirectUpgradeResult[] {
    return this.#results.slice()
  }

  /** Upgrades when `conn` is relayed, we opened it, and no direct connection to the peer exists. */
  #consider(peer: PeerId, conn: Connection): void {
    const id = peer.toString()
    if (this.#stopping.signal.aborted || this.#running.has(id) || this.#retries.has(id)) return
    if (conn.status !== 'open' || !isRelayed(conn) || conn.direction !== 'outbound') return
    if (this.#c.connectionManager.getConnections(peer).some((c) => c.status === 'open' && !isRelayed(c))) return
    this.#running.add(id)
    void this.#upgrade(peer, conn).finally(() => this.#running.delete(id))
  }

  async #upgrade(peer: PeerId, relayed: Connection): Promise<void> {
    const id = peer.toString()
    const target = webRtcAddressOf(relayed.remoteAddr, peer)
    const started = this.#clock.now()
    const timeoutMs = this.#init.timeoutMs ?? DIRECT_UPGRADE_TIMEOUT_MS
    const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), this.#stopping.signal])
    this.#log.debug({ peer: id, address: target.toString() }, 'upgrading a relayed connection to direct WebRTC')
    try {
      const direct = await this.#c.transportManager.dial(target, { signal })
      if (!isWebRtc(direct)) throw new Error(`got a connection that is not WebRTC: ${direct.remoteAddr.toString()}`)
      const ms = this.#clock.now() - started
      this.#failures.delete(id)
      this.#record({ peer: id, ok: true, ms, address: direct.remoteAddr.toString(), at: this.#clock.now() })
      this.#log.info(
        { peer: id, ms },
        'relayed connection upgraded to a direct WebRTC connection; closing the relayed one',
      )
      await relayed.close({ signal: AbortSignal.timeout(5_000) }).catch((err: unknown) => relayed.abort(err as Error))
    } catch (err) {
      if (this.#stopping.signal.aborted) return
      const error = signal.aborted
        ? `no direct connection within ${timeoutMs} ms (ICE found no path)`
        : describeError(err)
      this.#record({ peer: id, ok: false, ms: this.#clock.now() - started, error, at: this.#clock.now() })
      this.#retryLater(peer, relayed, error)
    }
  }

  #retryLater(peer: PeerId, relayed: Connection, error: string): void {
    const id = peer.toString()
    const failures = (this.#failures.get(id) ?? 0) + 1
    this.#failures.set(id, failures)
    const delay = Math.min(
      this.#init.retryMaxMs ?? DIRECT_UPGRADE_RETRY_MAX_MS,
      (this.#init.retryInitialMs ?? DIRECT_UPGRADE_RETRY_INITIAL_MS) * 2 ** Math.min(failures - 1, 20),
    )
    this.#log.warn(
      { peer: id, error, retryInMs: delay },
      'no direct WebRTC connection; staying on the relay and trying again later',
    )
    const cancel = this.#clock.setTimer(delay, () => {
      this.#retries.delete(id)
      if (relayed.status === 'open') this.#consider(peer, relayed)
      else this.#failures.delete(id)
    })
    this.#retries.set(id, cancel)
  }

  #record(result: DirectUpgradeResult): void {
    this.#results = [result, ...this.#results].slice(0, 16)
  }
}

/** libp2p service factory: `services: { directUpgrade: directUpgrade({ logger }) }`. */
export function directUpgrade(
  init: DirectUpgradeInit = {},
): (components: DirectUpgradeComponents) => DirectUpgradeService {
  return (components) => new DirectUpgradeService(components, init)
}
