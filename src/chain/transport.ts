/**
 * The chain's view of the network: gossip topics and request/response protocols between
 * nodes named by DID. Consensus, transaction gossip and block sync use only this interface, so
 * the same code runs over the in-memory hub (tests, single-process networks) and over libp2p.
 */
import { AbortError, DonghaeError } from '../core/errors.ts'

export type ChainTopic = 'consensus' | 'txs'

export type GossipHandler = (data: Uint8Array, from: string) => void
export type RequestHandler = (data: Uint8Array, from: string) => Promise<Uint8Array>

export interface RequestOptions {
  signal?: AbortSignal
  /** Many requests over one long-lived stream (cheaper per request; for small, frequent ones). */
  session?: boolean
}

export interface ChainTransport {
  /** This node's DID. */
  readonly self: string
  /** Sends to every connected peer (receivers drop duplicates). */
  publish(topic: ChainTopic, data: Uint8Array): void
  subscribe(topic: ChainTopic, handler: GossipHandler): () => void
  /**
   * Asks `peer` and waits for its answer. With `session`, the request travels on a stream kept
   * open for this peer and protocol (the serving side must `handle` it with `session` too).
   */
  request(peer: string, protocol: string, data: Uint8Array, options?: RequestOptions): Promise<Uint8Array>
  handle(protocol: string, handler: RequestHandler, options?: { session?: boolean }): void
  peers(): string[]
  /** Reports a peer that sent invalid data; transports may lower its score or disconnect it. */
  penalize(peer: string, reason: string): void
}

/** A request that could not be answered (peer gone, no handler, handler failed). */
export class TransportError extends DonghaeError {
  static override readonly code: string = 'TRANSPORT_ERROR'
  override name = 'TransportError'
}

/**
 * An in-process network: every transport joined to the hub is connected to every other one that
 * is up. Deliveries are asynchronous (a macrotask later), like a real network. `setUp(id, false)`
 * cuts a node off in both directions.
 */
export class MemoryHub {
  readonly #nodes = new Map<string, MemoryTransport>()
  readonly #down = new Set<string>()
  readonly penalties: Array<{ by: string; peer: string; reason: string }> = []

  join(self: string): MemoryTransport {
    const transport = new MemoryTransport(self, this)
    this.#nodes.set(self, transport)
    this.#down.delete(self)
    return transport
  }

  leave(self: string): void {
    this.#nodes.delete(self)
  }

  setUp(id: string, up: boolean): void {
    if (up) this.#down.delete(id)
    else this.#down.add(id)
  }

  /** @internal */
  reachable(from: string): MemoryTransport[] {
    if (this.#down.has(from)) return []
    return [...this.#nodes.values()].filter((t) => t.self !== from && !this.#down.has(t.self))
  }

  /** @internal */
  node(id: string): MemoryTransport | undefined {
    return this.#down.has(id) ? undefined : this.#nodes.get(id)
  }
}

export class MemoryTransport implements ChainTransport {
  readonly self: string
  readonly #hub: MemoryHub
  readonly #subscribers = new Map<ChainTopic, Set<GossipHandler>>()
  readonly #handlers = new Map<string, RequestHandler>()

  constructor(self: string, hub: MemoryHub) {
    this.self = self
    this.#hub = hub
  }

  publish(topic: ChainTopic, data: Uint8Array): void {
    for (const peer of this.#hub.reachable(this.self)) {
      setImmediate(() => peer.deliver(topic, data, this.self))
    }
  }

  /** @internal */
  deliver(topic: ChainTopic, data: Uint8Array, from: string): void {
    for (const handler of this.#subscribers.get(topic) ?? []) handler(data, from)
  }

  subscribe(topic: ChainTopic, handler: GossipHandler): () => void {
    let set = this.#subscribers.get(topic)
    if (set === undefined) {
      set = new Set()
      this.#subscribers.set(topic, set)
    }
    set.add(handler)
    return () => set.delete(handler)
  }

  async request(peer: string, protocol: string, data: Uint8Array, options: RequestOptions = {}): Promise<Uint8Array> {
    if (options.signal?.aborted === true) throw new AbortError()
    await new Promise((resolve) => setImmediate(resolve))
    const target = this.#hub.node(peer)
    if (target === undefined || this.#hub.node(this.self) === undefined)
      throw new TransportError(`peer ${peer} is unreachable`)
    const handler = target.handlerFor(protocol)
    if (handler === undefined) throw new TransportError(`peer ${peer} does not speak ${protocol}`)
    try {
      return await handler(data, this.self)
    } catch (err) {
      throw new TransportError(`peer ${peer} failed to answer ${protocol}: ${(err as Error).message}`, { cause: err })
    }
  }

  /** @internal */
  handlerFor(protocol: string): RequestHandler | undefined {
    return this.#handlers.get(protocol)
  }

  handle(protocol: string, handler: RequestHandler): void {
    this.#handlers.set(protocol, handler)
  }

  peers(): string[] {
    return this.#hub.reachable(this.self).map((t) => t.self)
  }

  penalize(peer: string, reason: string): void {
    this.#hub.penalties.push({ by: this.self, peer, reason })
  }
}
