/**
 * libp2p's private-to-private WebRTC transport (`@libp2p/webrtc`'s `webRTC`), loaded when a node
 * first needs it rather than with every node: the package and what it imports (WebCrypto and
 * X.509 polyfills, ASN.1, the data-channel muxer) are about 6 MB of a node's resident memory, and
 * a node that peers reach directly never uses it.
 *
 * A node needs it in two cases, and the wrapper loads it then:
 *
 * - **it is reached through a relay** (it has a relay reservation: the circuit relay transport
 *   reports a listener with `/p2p-circuit` addresses). Then it must answer WebRTC signalling, so
 *   the real transport starts (registering `/webrtc-signaling/0.0.1`) and the node announces its
 *   `.../p2p-circuit/webrtc` addresses, as the real transport's listener would;
 * - **it dials a `/webrtc` address** (the direct-upgrade service dialling a peer it reached
 *   through a relay, or any dial of a `.../p2p-circuit/webrtc/p2p/<peer>` address).
 *
 * Until then it registers no protocol and announces no address, so a peer's identify shows no
 * WebRTC signalling and no peer tries to upgrade to it. Which addresses the transport takes is
 * the real one's rule (`@multiformats/multiaddr-matcher`'s `WebRTC`): `/webrtc`, optionally after
 * `/p2p/<relay>/p2p-circuit` or `/p2p/<peer>`, optionally followed by `/p2p/<peer>`.
 */
import type {
  CreateListenerOptions,
  DialTransportOptions,
  Connection,
  Listener,
  Startable,
  Transport,
} from '@libp2p/interface'
import { serviceCapabilities, serviceDependencies, transportSymbol } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { webRTC, WebRTCTransportComponents, WebRTCTransportInit } from '@libp2p/webrtc'

type RealTransport = Transport & Startable

/** True for the addresses libp2p's WebRTC transport dials and listens on (its `WebRTC` matcher). */
export function isWebRtcAddress(addr: Multiaddr): boolean {
  const names = addr.getComponents().map((c) => c.name)
  const at = names.lastIndexOf('webrtc')
  if (at < 0) return false
  const after = names.slice(at + 1)
  if (after.length > 1 || (after.length === 1 && after[0] !== 'p2p')) return false
  const before = names.slice(0, at)
  if (before.length === 0) return true
  if (before.at(-1) === 'p2p-circuit') return before.at(-2) === 'p2p'
  return before.at(-1) === 'p2p'
}

/** The `/p2p-circuit` addresses of a listener, as `.../p2p-circuit/webrtc` addresses. */
function circuitWebRtcAddrs(listener: Listener): Multiaddr[] {
  return listener
    .getAddrs()
    .filter((ma) => ma.getComponents().at(-1)?.name === 'p2p-circuit')
    .map((ma) => ma.encapsulate('/webrtc'))
}

/** Loads `@libp2p/webrtc`'s factory (an import, so that the package is read only here). */
export type WebRtcLoader = () => Promise<typeof webRTC>

const loadWebRtc: WebRtcLoader = async () => (await import('@libp2p/webrtc')).webRTC

export interface LazyWebRtcInit extends WebRTCTransportInit {
  /** @default an import of `@libp2p/webrtc` */
  load?: WebRtcLoader
}

/**
 * The transport libp2p holds from the start; the real one is made, and started if the node has
 * started, at `load()`.
 */
export class LazyWebRtcTransport implements Transport, Startable {
  readonly [transportSymbol] = true as const
  readonly [Symbol.toStringTag] = '@libp2p/webrtc'
  readonly [serviceCapabilities] = ['@libp2p/transport']
  readonly [serviceDependencies] = ['@libp2p/identify', '@libp2p/circuit-relay-v2-transport']
  readonly #components: WebRTCTransportComponents
  readonly #init: LazyWebRtcInit
  #real: Promise<RealTransport> | undefined
  #started = false

  constructor(components: WebRTCTransportComponents, init: LazyWebRtcInit = {}) {
    this.#components = components
    this.#init = init
  }

  /** The real transport, loaded and started once (a failed load is tried again by the next call). */
  async load(): Promise<RealTransport> {
    if (this.#real === undefined) {
      const loading = (async () => {
        const { load = loadWebRtc, ...init } = this.#init
        const real = (await load())(init)(this.#components) as RealTransport
        if (this.#started) await real.start?.()
        return real
      })()
      loading.catch(() => {
        if (this.#real === loading) this.#real = undefined
      })
      this.#real = loading
    }
    return this.#real
  }

  async start(): Promise<void> {
    this.#started = true
    if (this.#real !== undefined) await (await this.#real).start?.()
  }

  async stop(): Promise<void> {
    this.#started = false
    if (this.#real !== undefined) await (await this.#real.catch(() => undefined))?.stop?.()
  }

  async dial(ma: Multiaddr, options: DialTransportOptions): Promise<Connection> {
    return (await this.load()).dial(ma, options)
  }

  createListener(_options: CreateListenerOptions): Listener {
    return new LazyWebRtcListener(this, this.#components) as unknown as Listener
  }

  listenFilter(multiaddrs: Multiaddr[]): Multiaddr[] {
    return multiaddrs.filter(isWebRtcAddress)
  }

  dialFilter(multiaddrs: Multiaddr[]): Multiaddr[] {
    return multiaddrs.filter(isWebRtcAddress)
  }
}

/**
 * Listens on `/webrtc`: announces nothing until the node has a relay reservation, then loads the
 * transport (which registers the signalling protocol) and announces `.../p2p-circuit/webrtc`.
 */
class LazyWebRtcListener extends EventTarget {
  readonly #transport: LazyWebRtcTransport
  readonly #components: WebRTCTransportComponents
  #ready = false
  #closed = false

  constructor(transport: LazyWebRtcTransport, components: WebRTCTransportComponents) {
    super()
    this.#transport = transport
    this.#components = components
  }

  readonly #onTransportListening = (event: CustomEvent<Listener>): void => {
    if (this.#closed || circuitWebRtcAddrs(event.detail).length === 0) return
    if (this.#ready) {
      this.safeDispatchEvent('listening')
      return
    }
    void this.#transport.load().then(
      () => {
        if (this.#closed) return
        this.#ready = true
        this.safeDispatchEvent('listening')
      },
      () => {}, // the next reservation tries again; dials report their own error
    )
  }

  async listen(_addr: Multiaddr): Promise<void> {
    this.#components.events.addEventListener('transport:listening', this.#onTransportListening)
  }

  getAddrs(): Multiaddr[] {
    if (!this.#ready) return []
    return this.#components.transportManager
      .getListeners()
      .filter((l) => !(l instanceof LazyWebRtcListener))
      .flatMap(circuitWebRtcAddrs)
  }

  updateAnnounceAddrs(): void {}

  async close(): Promise<void> {
    this.#closed = true
    this.#components.events.removeEventListener('transport:listening', this.#onTransportListening)
    queueMicrotask(() => this.safeDispatchEvent('close'))
  }

  safeDispatchEvent(type: string, detail?: { detail?: unknown }): boolean {
    return this.dispatchEvent(new CustomEvent(type, detail))
  }
}

/** The transport factory libp2p takes, as `webRTC(init)` is. */
export function lazyWebRTC(init: LazyWebRtcInit = {}): (components: WebRTCTransportComponents) => Transport {
  return (components) => new LazyWebRtcTransport(components, init)
}
