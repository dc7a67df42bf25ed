/**
 * An in-process network for tests and single-process networks (`donghae localnet`): every
 * transport joined to the hub is connected to every other one that is up, so nothing is relayed.
 * Deliveries are asynchronous (a macrotask later), like a real network. A `reject` verdict is
 * recorded as a penalty of the sender in `hub.penalties`. `setUp(id, false)` cuts a node off in
 * both directions.
 */
import { AbortError } from '../core/errors.ts'
import {
  combineVerdicts,
  OverBudgetError,
  TransportError,
  type GossipHandler,
  type HandleOptions,
  type PeerTransport,
  type RequestHandler,
  type RequestOptions,
} from '../core/transport.ts'
import { PeerBudgets } from '../core/budget.ts'

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

interface Served {
  handler: RequestHandler
  budgets?: PeerBudgets
}

export class MemoryTransport implements PeerTransport {
  readonly self: string
  readonly #hub: MemoryHub
  readonly #subscribers = new Map<string, Set<GossipHandler>>()
  readonly #handlers = new Map<string, Served>()

  constructor(self: string, hub: MemoryHub) {
    this.self = self
    this.#hub = hub
  }

  publish(topic: string, data: Uint8Array): void {
    for (const peer of this.#hub.reachable(this.self)) {
      setImmediate(() => void peer.deliver(topic, data, this.self))
    }
  }

  /** @internal Runs the topic's handlers; a reject penalizes the sender. */
  async deliver(topic: string, data: Uint8Array, from: string): Promise<void> {
    const handlers = [...(this.#subscribers.get(topic) ?? [])]
    if (handlers.length === 0) return
    const verdicts = await Promise.all(
      handlers.map(async (handler) => {
        try {
          return await handler(data, from)
        } catch {
          return 'ignore' as const
        }
      }),
    )
    if (combineVerdicts(verdicts) === 'reject') this.penalize(from, `rejected ${topic} gossip`)
  }

  subscribe(topic: string, handler: GossipHandler): () => void {
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
    const served = target.servedFor(protocol)
    if (served === undefined) throw new TransportError(`peer ${peer} does not speak ${protocol}`)
    if (served.budgets !== undefined && served.budgets.available(this.self) <= 0)
      throw new OverBudgetError(
        `peer ${peer} refused ${protocol}: over this node's byte budget; retry in ${served.budgets.waitMs(this.self)} ms`,
      )
    let answer: Uint8Array
    try {
      const onProgress = options.onProgress
      answer = await served.handler(
        data,
        this.self,
        onProgress === undefined ? undefined : (chunk) => onProgress(Uint8Array.from(chunk)),
      )
    } catch (err) {
      throw new TransportError(`peer ${peer} failed to answer ${protocol}: ${(err as Error).message}`, { cause: err })
    }
    served.budgets?.charge(this.self, answer.byteLength)
    return answer
  }

  /** @internal */
  servedFor(protocol: string): Served | undefined {
    return this.#handlers.get(protocol)
  }

  handle(protocol: string, handler: RequestHandler, options: HandleOptions = {}): void {
    this.#handlers.set(
      protocol,
      options.budget === undefined
        ? { handler }
        : { handler, budgets: new PeerBudgets({ amount: options.budget.bytes, perMs: options.budget.perMs }) },
    )
  }

  peers(): string[] {
    return this.#hub.reachable(this.self).map((t) => t.self)
  }

  penalize(peer: string, reason: string): void {
    this.#hub.penalties.push({ by: this.self, peer, reason })
  }
}
