/**
 * PortMappingManager: keeps one port of this node open on the home router, the way Transmission
 * does it. Each attempt tries NAT-PMP first and UPnP IGD second (`mode` can pin one or turn
 * mapping off); a failed attempt is retried with exponential backoff; a mapping is renewed at
 * half its lease and checked periodically, so a router that restarted and forgot it is noticed
 * (NAT-PMP epoch regression, UPnP GetSpecificPortMappingEntry) and the port mapped again; `stop`
 * removes exactly the mapping it made, by its external port. Changes go to `onChange`; a
 * `{ method: 'none' }` change tells the node to fall back to a circuit relay.
 */
import { describeError, AbortError, InvalidInputError } from '../../core/errors.ts'
import { systemClock, type Clock } from '../../core/clock.ts'
import { silentLogger, type Logger } from '../../core/logger.ts'
import { NatPmpClient, EpochTracker, type TransportProtocol } from './natpmp.ts'
import { findGateway, mapUpnpPort, type UpnpGateway } from './upnp.ts'
import { chooseLanAddress, defaultRoute, type RouteSources } from './netinfo.ts'
import { GatewayNotFoundError, NatError } from './errors.ts'

export type NatMode = 'auto' | 'pmp' | 'upnp' | 'off'
export const NAT_MODES: readonly NatMode[] = ['auto', 'pmp', 'upnp', 'off']
export type MappingMethod = 'pmp' | 'upnp'

export interface MappedChange {
  method: MappingMethod
  externalAddress: string
  externalPort: number
  /** Lease granted by the router in seconds; 0 = permanent (renewed only by checks). */
  leaseSeconds: number
  internalAddress: string
  internalPort: number
  protocol: TransportProtocol
}

export interface UnmappedChange {
  method: 'none'
  /** One line for people: what was tried and what the router(s) answered. */
  reason: string
  /** Present when peers must reach this node some other way. */
  fallback?: 'circuit-relay'
}

export type NatChange = MappedChange | UnmappedChange

export interface PortMappingOptions {
  mode: NatMode
  internalPort: number
  /** @default 'tcp' */
  protocol?: TransportProtocol
  /** External port to ask for. @default internalPort */
  externalPort?: number
  /** Router address. @default the IPv4 default route's gateway */
  gateway?: string
  /** Our LAN address (UPnP NewInternalClient). @default the address facing the gateway */
  internalAddress?: string
  /** Lease to ask for, in seconds. @default 3600 */
  leaseSeconds?: number
  /** UPnP mapping description. @default 'donghae' */
  description?: string
  clock?: Clock
  logger?: Logger
  onChange?: (change: NatChange) => void
  /** Seconds between checks that the router still has the mapping. @default 300 */
  checkIntervalSeconds?: number
  /** First delay after a failed attempt, doubling each time. @default 5 */
  retryInitialSeconds?: number
  /** Longest delay between attempts. @default 600 */
  retryMaxSeconds?: number
  /**
   * NAT-PMP tries before failing over to UPnP in `auto` mode (250 ms doubling: 4 tries wait
   * 3.75 s; RFC 6886's full 9 tries would hold UPnP off for 128 s). `pmp` mode uses 9.
   * @default 4
   */
  autoPmpTries?: number
  /** NAT-PMP server port (tests). @default 5351 */
  pmpPort?: number
  /** How long to wait for SSDP answers. @default 3000 */
  ssdpTimeoutMs?: number
  /** Where the default route is read from (tests). */
  routeSources?: RouteSources
}

export type MappingState = 'idle' | 'mapping' | 'mapped' | 'unmapped' | 'off' | 'stopped'

export interface MappingStatus {
  mode: NatMode
  state: MappingState
  gateway?: string
  internalAddress?: string
  internalPort: number
  protocol: TransportProtocol
  mapping?: MappedChange & {
    renewAt?: number
    expiresAt?: number
    /** Clock time of the next check that the router still has the mapping. */
    checkAt?: number
    /** UPnP: the service type used (WANIPConnection:1/2, WANPPPConnection:1) and its control URL. */
    upnpService?: string
    upnpControlUrl?: string
  }
  /** Why the last attempt gave no mapping. */
  reason?: string
  /** When unmapped: the clock time of the next attempt. */
  nextAttemptAt?: number
  /** The last answer (or failure) of each method. */
  attempts: Partial<Record<MappingMethod, string>>
}

interface Active extends MappedChange {
  grantedAt: number
  pmp?: { client: NatPmpClient; epochs: EpochTracker }
  upnp?: UpnpGateway
}

const METHOD_NAMES: Record<MappingMethod, string> = { pmp: 'NAT-PMP', upnp: 'UPnP' }

function checkOptions(o: PortMappingOptions): void {
  if (!NAT_MODES.includes(o.mode)) throw new InvalidInputError(`NAT mode must be one of ${NAT_MODES.join(', ')}`)
  for (const [name, port] of [
    ['internalPort', o.internalPort],
    ['externalPort', o.externalPort ?? o.internalPort],
  ] as const) {
    if (!Number.isInteger(port) || port < 1 || port > 65_535) {
      throw new InvalidInputError(`${name} must be a port 1-65535, got ${port}`)
    }
  }
  const lease = o.leaseSeconds ?? 3600
  if (!Number.isInteger(lease) || lease < 2 || lease > 604_800) {
    throw new InvalidInputError(`leaseSeconds must be 2-604800, got ${lease}`)
  }
}

export class PortMappingManager {
  readonly #o: PortMappingOptions
  readonly #clock: Clock
  readonly #log: Logger
  readonly #protocol: TransportProtocol
  readonly #lease: number
  #state: MappingState = 'idle'
  #gateway: string | undefined
  #internalAddress: string | undefined
  #active: Active | undefined
  #reason: string | undefined
  #attempts: Partial<Record<MappingMethod, string>> = {}
  #failures = 0
  #queue: Promise<void> = Promise.resolve()
  #abort = new AbortController()
  #timers = new Map<'retry' | 'renew' | 'check', () => void>()
  #lastEmitted = ''
  #nextAttemptAt: number | undefined
  #checkAt: number | undefined

  constructor(options: PortMappingOptions) {
    checkOptions(options)
    this.#o = options
    this.#clock = options.clock ?? systemClock
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:net:nat')
    this.#protocol = options.protocol ?? 'tcp'
    this.#lease = options.leaseSeconds ?? 3600
  }

  /** Resolves once the first attempt has finished, mapped or not (see `status()` / `onChange`). */
  async start(): Promise<void> {
    if (this.#state !== 'idle') return
    if (this.#o.mode === 'off') {
      this.#state = 'off'
      this.#reason = 'port mapping is off (--nat off)'
      this.#emit({ method: 'none', reason: this.#reason, fallback: 'circuit-relay' })
      return
    }
    this.#state = 'mapping'
    await this.#enqueue(() => this.#attempt())
  }

  /** Cancels timers and removes the mapping this manager made (by its external port). */
  async stop(): Promise<void> {
    if (this.#state === 'stopped') return
    const wasRunning = this.#state !== 'idle' && this.#state !== 'off'
    this.#state = 'stopped'
    for (const cancel of this.#timers.values()) cancel()
    this.#timers.clear()
    this.#abort.abort()
    await this.#queue
    const active = this.#active
    this.#active = undefined
    if (active !== undefined) await this.#remove(active)
    if (wasRunning) this.#emit({ method: 'none', reason: 'stopped' })
  }

  status(): MappingStatus {
    const a = this.#active
    return {
      mode: this.#o.mode,
      state: this.#state,
      gateway: this.#gateway,
      internalAddress: this.#internalAddress,
      internalPort: this.#o.internalPort,
      protocol: this.#protocol,
      mapping:
        a === undefined
          ? undefined
          : {
              ...this.#change(a),
              renewAt: a.leaseSeconds > 0 ? a.grantedAt + (a.leaseSeconds * 1000) / 2 : undefined,
              expiresAt: a.leaseSeconds > 0 ? a.grantedAt + a.leaseSeconds * 1000 : undefined,
              checkAt: this.#checkAt,
              upnpService: a.upnp?.service.serviceType,
              upnpControlUrl: a.upnp?.service.controlUrl,
            },
      reason: this.#reason,
      nextAttemptAt: this.#state === 'unmapped' ? this.#nextAttemptAt : undefined,
      attempts: { ...this.#attempts },
    }
  }

  #stopped(): boolean {
    return this.#state === 'stopped'
  }

  #enqueue(task: () => Promise<void>): Promise<void> {
    const run = async (): Promise<void> => {
      if (this.#stopped()) return
      try {
        await task()
      } catch (err) {
        if (err instanceof AbortError && this.#stopped()) return
        this.#log.error({ error: describeError(err) }, 'port mapping task failed')
      }
    }
    this.#queue = this.#queue.then(run)
    return this.#queue
  }

  #schedule(name: 'retry' | 'renew' | 'check', seconds: number, task: () => Promise<void>): void {
    this.#timers.get(name)?.()
    if (this.#state === 'stopped') return
    if (name === 'check') this.#checkAt = this.#clock.now() + Math.max(0, seconds * 1000)
    const cancel = this.#clock.setTimer(Math.max(0, seconds * 1000), () => {
      this.#timers.delete(name)
      void this.#enqueue(task)
    })
    this.#timers.set(name, cancel)
  }

  #methods(): MappingMethod[] {
    if (this.#o.mode === 'pmp') return ['pmp']
    if (this.#o.mode === 'upnp') return ['upnp']
    return ['pmp', 'upnp']
  }

  async #resolveNetwork(): Promise<void> {
    if (this.#gateway !== undefined && this.#internalAddress !== undefined) return
    const route = await defaultRoute(this.#o.routeSources).catch((err: unknown) => {
      if (this.#o.gateway === undefined) throw err
      return undefined
    })
    this.#gateway = this.#o.gateway ?? route?.gateway
    if (this.#gateway === undefined) throw new GatewayNotFoundError('no gateway to ask for a port mapping')
    this.#internalAddress =
      this.#o.internalAddress ?? chooseLanAddress({ interface: route?.interface, gateway: this.#gateway })
    this.#log.debug({ gateway: this.#gateway, internalAddress: this.#internalAddress, route }, 'NAT gateway')
  }

  /** One attempt: each allowed method in order until one maps the port. */
  async #attempt(wantedPort = this.#o.externalPort ?? this.#o.internalPort): Promise<void> {
    this.#timers.get('retry')?.()
    const failures: string[] = []
    try {
      await this.#resolveNetwork()
    } catch (err) {
      if (err instanceof AbortError) throw err
      return this.#fail([describeError(err)])
    }
    for (const method of this.#methods()) {
      try {
        const active = method === 'pmp' ? await this.#mapPmp(wantedPort) : await this.#mapUpnp(wantedPort)
        this.#attempts[method] = `mapped ${active.externalAddress}:${active.externalPort}`
        return this.#mapped(active)
      } catch (err) {
        if (err instanceof AbortError) throw err
        const line = describeError(err)
        this.#attempts[method] = line
        failures.push(`${METHOD_NAMES[method]}: ${line}`)
        this.#log.debug({ method, error: line }, 'port mapping attempt failed')
      }
    }
    this.#fail(failures)
  }

  #fail(failures: string[]): void {
    if (this.#state === 'stopped') return
    const delay = Math.min(
      this.#o.retryMaxSeconds ?? 600,
      (this.#o.retryInitialSeconds ?? 5) * 2 ** Math.min(this.#failures, 20),
    )
    this.#failures++
    this.#active = undefined
    this.#state = 'unmapped'
    this.#reason = failures.join('; ')
    this.#log.warn({ reason: this.#reason, retryInSeconds: delay }, 'no port mapping available')
    this.#nextAttemptAt = this.#clock.now() + delay * 1000
    this.#emit({ method: 'none', reason: this.#reason, fallback: 'circuit-relay' })
    this.#schedule('retry', delay, () => this.#attempt())
  }

  #mapped(active: Active): void {
    if (this.#state === 'stopped') return
    this.#active = active
    this.#state = 'mapped'
    this.#reason = undefined
    this.#failures = 0
    this.#timers.get('retry')?.()
    this.#log.info(
      {
        method: active.method,
        external: `${active.externalAddress}:${active.externalPort}`,
        lease: active.leaseSeconds,
      },
      'port mapped',
    )
    this.#emit(this.#change(active))
    if (active.leaseSeconds > 0) {
      const renewAt = active.grantedAt + (active.leaseSeconds * 1000) / 2
      this.#schedule('renew', (renewAt - this.#clock.now()) / 1000, () => this.#renew())
    }
    this.#schedule('check', this.#o.checkIntervalSeconds ?? 300, () => this.#check())
  }

  #pmpClient(tries: number): NatPmpClient {
    return new NatPmpClient({
      gateway: this.#gateway as string,
      port: this.#o.pmpPort,
      clock: this.#clock,
      logger: this.#o.logger,
      tries,
    })
  }

  async #mapPmp(wantedPort: number): Promise<Active> {
    const tries = this.#o.mode === 'auto' ? (this.#o.autoPmpTries ?? 4) : undefined
    const client = this.#pmpClient(tries ?? 9)
    const epochs = new EpochTracker()
    const signal = this.#abort.signal
    const address = await client.externalAddress({ signal })
    epochs.observe(address.epoch, this.#clock.now())
    const granted = await client.map(
      {
        protocol: this.#protocol,
        internalPort: this.#o.internalPort,
        externalPort: wantedPort,
        lifetimeSeconds: this.#lease,
      },
      { signal },
    )
    epochs.observe(granted.epoch, this.#clock.now())
    return {
      method: 'pmp',
      externalAddress: address.address,
      externalPort: granted.externalPort,
      leaseSeconds: granted.lifetimeSeconds,
      internalAddress: this.#internalAddress ?? '',
      internalPort: this.#o.internalPort,
      protocol: this.#protocol,
      grantedAt: this.#clock.now(),
      pmp: { client, epochs },
    }
  }

  async #mapUpnp(wantedPort: number, known?: UpnpGateway): Promise<Active> {
    const internalAddress = this.#internalAddress
    if (internalAddress === undefined) throw new NatError('UPnP needs our LAN address and none was found')
    const signal = this.#abort.signal
    const gw =
      known ??
      (await findGateway({
        signal,
        logger: this.#o.logger,
        localAddress: internalAddress,
        gateway: this.#gateway,
        timeoutMs: this.#o.ssdpTimeoutMs ?? 3000,
      }))
    const externalAddress = await gw.externalAddress(signal)
    const mapped = await mapUpnpPort(gw, {
      wantedPort,
      internalPort: this.#o.internalPort,
      protocol: this.#protocol,
      internalClient: internalAddress,
      leaseSeconds: this.#lease,
      description: this.#o.description ?? 'donghae',
      signal,
    })
    return {
      method: 'upnp',
      externalAddress,
      externalPort: mapped.externalPort,
      leaseSeconds: mapped.leaseSeconds,
      internalAddress,
      internalPort: this.#o.internalPort,
      protocol: this.#protocol,
      grantedAt: this.#clock.now(),
      upnp: gw,
    }
  }

  /** Renews at half the lease: the same request again, for the external port we hold. */
  async #renew(): Promise<void> {
    const active = this.#active
    if (active === undefined) return
    const signal = this.#abort.signal
    try {
      if (active.pmp !== undefined) {
        const granted = await active.pmp.client.map(
          {
            protocol: this.#protocol,
            internalPort: active.internalPort,
            externalPort: active.externalPort,
            lifetimeSeconds: this.#lease,
          },
          { signal },
        )
        if (active.pmp.epochs.observe(granted.epoch, this.#clock.now())) {
          this.#log.info({ epoch: granted.epoch }, 'NAT-PMP router restarted; mapping re-created by the renewal')
        }
        return this.#mapped({
          ...active,
          externalPort: granted.externalPort,
          leaseSeconds: granted.lifetimeSeconds,
          grantedAt: this.#clock.now(),
        })
      }
      const remapped = await this.#mapUpnp(active.externalPort, active.upnp)
      return this.#mapped(remapped)
    } catch (err) {
      if (err instanceof AbortError) throw err
      this.#renewFailed(active, err)
    }
  }

  #renewFailed(active: Active, err: unknown): void {
    const expiresAt = active.grantedAt + active.leaseSeconds * 1000
    const left = (expiresAt - this.#clock.now()) / 1000
    this.#log.warn({ method: active.method, error: describeError(err), leaseLeftSeconds: left }, 'lease renewal failed')
    if (left > 2)
      this.#schedule('renew', Math.max(1, Math.min(left / 2, this.#o.retryInitialSeconds ?? 5)), () => this.#renew())
    else void this.#enqueue(() => this.#attempt(active.externalPort))
  }

  /** Periodic check: is the router still the one that granted the mapping, and does it still have it? */
  async #check(): Promise<void> {
    const active = this.#active
    if (active === undefined) return
    const signal = this.#abort.signal
    let lost: string | undefined
    try {
      if (active.pmp !== undefined) {
        const answer = await active.pmp.client.externalAddress({ signal, tries: 4 })
        if (active.pmp.epochs.observe(answer.epoch, this.#clock.now()))
          lost = `router restarted (NAT-PMP epoch ${answer.epoch})`
        else if (answer.address !== active.externalAddress)
          return this.#mapped({ ...active, externalAddress: answer.address })
      } else if (active.upnp !== undefined) {
        const entry = await active.upnp.getSpecificPortMappingEntry(active.externalPort, this.#protocol, signal)
        if (entry === undefined) lost = `the router no longer has port ${active.externalPort}`
        else if (entry.internalClient !== active.internalAddress || entry.internalPort !== active.internalPort) {
          lost = `port ${active.externalPort} now goes to ${entry.internalClient}:${entry.internalPort}`
        } else {
          const address = await active.upnp.externalAddress(signal)
          if (address !== active.externalAddress) return this.#mapped({ ...active, externalAddress: address })
        }
      }
    } catch (err) {
      if (err instanceof AbortError) throw err
      this.#log.warn({ method: active.method, error: describeError(err) }, 'mapping check failed; checking again soon')
      this.#schedule('check', this.#o.retryInitialSeconds ?? 5, () => this.#check())
      return
    }
    if (lost === undefined) {
      this.#schedule('check', this.#o.checkIntervalSeconds ?? 300, () => this.#check())
      return
    }
    this.#log.warn({ method: active.method, reason: lost }, 'mapping lost; mapping again')
    await this.#remap(active)
  }

  async #remap(active: Active): Promise<void> {
    try {
      const again =
        active.method === 'pmp'
          ? await this.#mapPmp(active.externalPort)
          : await this.#mapUpnp(active.externalPort, active.upnp)
      this.#mapped(again)
    } catch (err) {
      if (err instanceof AbortError) throw err
      // the same method failed: start over with every allowed method, in order
      this.#log.debug({ method: active.method, error: describeError(err) }, 'remap failed')
      await this.#attempt(active.externalPort)
    }
  }

  async #remove(active: Active): Promise<void> {
    const target = `${active.externalAddress}:${active.externalPort}`
    try {
      if (active.pmp !== undefined) {
        await this.#pmpClient(3).unmap({
          protocol: this.#protocol,
          internalPort: active.internalPort,
          externalPort: active.externalPort,
        })
      } else if (active.upnp !== undefined) {
        await active.upnp.deletePortMapping(active.externalPort, this.#protocol)
      }
      this.#log.info({ method: active.method, external: target }, 'port mapping removed')
    } catch (err) {
      this.#log.warn(
        { method: active.method, external: target, error: describeError(err) },
        'could not remove the mapping',
      )
    }
  }

  #change(a: Active): MappedChange {
    return {
      method: a.method,
      externalAddress: a.externalAddress,
      externalPort: a.externalPort,
      leaseSeconds: a.leaseSeconds,
      internalAddress: a.internalAddress,
      internalPort: a.internalPort,
      protocol: a.protocol,
    }
  }

  #emit(change: NatChange): void {
    const key = JSON.stringify(change)
    if (key === this.#lastEmitted) return
    this.#lastEmitted = key
    try {
      this.#o.onChange?.(change)
    } catch (err) {
      this.#log.error({ error: describeError(err) }, 'onChange listener threw')
    }
  }
}
