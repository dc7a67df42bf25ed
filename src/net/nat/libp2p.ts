/**
 * The libp2p side of port mapping: a service that maps the node's TCP port with
 * `PortMappingManager` once libp2p listens, and tells libp2p's address manager about the
 * external address so identify announces it and peers dial it. A mapped address that is itself
 * private (a second NAT, e.g. carrier-grade) is added but not confirmed, so it is not announced.
 *
 *   services: { nat: natPortMapping({ mode: 'auto', logger }) }
 */
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { describeError } from '../../core/errors.ts'
import {
  PortMappingManager,
  type MappedChange,
  type MappingStatus,
  type NatChange,
  type PortMappingOptions,
} from './manager.ts'
import { isPublicAddress } from './netinfo.ts'

/** What this service needs from libp2p (a structural subset of its components). */
export interface NatServiceComponents {
  addressManager: {
    addPublicAddressMapping(
      internalIp: string,
      internalPort: number,
      externalIp: string,
      externalPort?: number,
      protocol?: 'tcp' | 'udp',
    ): void
    removePublicAddressMapping(
      internalIp: string,
      internalPort: number,
      externalIp: string,
      externalPort?: number,
      protocol?: 'tcp' | 'udp',
    ): void
    confirmObservedAddr(addr: Multiaddr, options?: { type?: 'ip-mapping'; ttl?: number }): void
  }
  transportManager: { getAddrs(): Multiaddr[] }
}

export interface NatServiceInit extends Omit<PortMappingOptions, 'internalPort' | 'protocol'> {
  /** @default the port of libp2p's first IPv4 TCP listen address */
  internalPort?: number
}

/** The TCP port libp2p listens on over IPv4, if any. */
export function tcpListenPort(addrs: readonly Multiaddr[]): number | undefined {
  for (const ma of addrs) {
    const m = /^\/ip4\/[^/]+\/tcp\/(\d+)(\/|$)/.exec(ma.toString())
    if (m !== null && Number(m[1]) > 0) return Number(m[1])
  }
  return undefined
}

/** `/ip4/<external address>/tcp/<external port>` of a mapping. */
export function externalMultiaddr(
  change: Pick<MappedChange, 'externalAddress' | 'externalPort' | 'protocol'>,
): Multiaddr {
  return multiaddr(`/ip4/${change.externalAddress}/${change.protocol}/${change.externalPort}`)
}

export class NatPortMappingService {
  readonly [Symbol.toStringTag] = 'donghae/nat'
  readonly #components: NatServiceComponents
  readonly #init: NatServiceInit
  #manager: PortMappingManager | undefined
  #applied: MappedChange | undefined
  #waitTimer: NodeJS.Timeout | undefined

  constructor(components: NatServiceComponents, init: NatServiceInit) {
    this.#components = components
    this.#init = init
  }

  start(): void {}

  /**
   * Called once libp2p has started; the transports may still be opening their listeners, so the
   * TCP port is awaited (briefly) before mapping starts. Mapping never delays libp2p's startup.
   */
  afterStart(): void {
    const log = this.#init.logger?.forComponent('donghae:net:nat')
    const deadline = Date.now() + 10_000
    const tryStart = (): void => {
      this.#waitTimer = undefined
      const port = this.#init.internalPort ?? tcpListenPort(this.#components.transportManager.getAddrs())
      if (port !== undefined) return this.#startManager(port)
      if (Date.now() < deadline) this.#waitTimer = setTimeout(tryStart, 50)
      else log?.warn('no IPv4 TCP listen address: nothing to map')
    }
    tryStart()
  }

  #startManager(port: number): void {
    const log = this.#init.logger?.forComponent('donghae:net:nat')
    this.#manager = new PortMappingManager({
      ...this.#init,
      internalPort: port,
      protocol: 'tcp',
      onChange: (change) => {
        this.#apply(change)
        this.#init.onChange?.(change)
      },
    })
    this.#manager.start().catch((err: unknown) => log?.error({ error: describeError(err) }, 'port mapping failed'))
  }

  async stop(): Promise<void> {
    clearTimeout(this.#waitTimer)
    await this.#manager?.stop()
    this.#manager = undefined
    this.#unapply()
  }

  status(): MappingStatus | undefined {
    return this.#manager?.status()
  }

  #apply(change: NatChange): void {
    this.#unapply()
    if (change.method === 'none') return
    const am = this.#components.addressManager
    am.addPublicAddressMapping(
      change.internalAddress,
      change.internalPort,
      change.externalAddress,
      change.externalPort,
      change.protocol,
    )
    this.#applied = change
    if (isPublicAddress(change.externalAddress)) {
      const ttl = change.leaseSeconds > 0 ? change.leaseSeconds * 1000 : 24 * 3600 * 1000
      am.confirmObservedAddr(externalMultiaddr(change), { type: 'ip-mapping', ttl })
    }
  }

  #unapply(): void {
    const a = this.#applied
    if (a === undefined) return
    this.#applied = undefined
    this.#components.addressManager.removePublicAddressMapping(
      a.internalAddress,
      a.internalPort,
      a.externalAddress,
      a.externalPort,
      a.protocol,
    )
  }
}

/** libp2p service factory: `services: { nat: natPortMapping({ mode: 'auto' }) }`. */
export function natPortMapping(init: NatServiceInit): (components: NatServiceComponents) => NatPortMappingService {
  return (components) => new NatPortMappingService(components, init)
}
