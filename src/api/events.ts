/**
 * The node's event bus: what happened (a block, finality, a job, a peer, a NAT change, a slash,
 * a model fetch's progress), published once and fanned out to in-process listeners (metrics)
 * and to subscribers (the SSE stream at GET /v1/events). Each subscriber has a bounded buffer: a
 * subscriber that does not keep up loses its oldest events (and is told how many), so a slow
 * HTTP client never grows the node's memory. No Node-only imports: the dashboard and the client use these types too.
 *
 *   const bus = new EventBus()
 *   bus.publish('block', { height, id, time, txs, proposer })
 *   for await (const event of bus.subscribe({ types: ['block'], signal })) ...
 */
import { InvalidInputError } from '../core/errors.ts'
import type { FetchView } from './inference-api.ts'

/** Every event type and its payload (the `data` of an SSE message). */
export interface EventMap {
  /** A block was committed. `id` is hex; `time` is the block's time in Unix milliseconds. */
  block: { height: number; id: string; time: number; txs: number; proposer: string }
  /** Seconds from the block's proposal time to its commit on this node. */
  finality: { height: number; seconds: number }
  /** An inference job this node served (as gateway or worker); `fee` is a decimal string. */
  job: { id: string; model: string; worker: string; latencyMs: number; ok: boolean; fee: string }
  /** A peer connected or disconnected; `peers` is the count after the change. */
  peer: { peerId: string; did: string; connected: boolean; peers: number }
  /** The port-mapping state changed (method, external address, or the circuit relay in use). */
  nat: {
    method: 'pmp' | 'upnp' | 'none' | 'off'
    externalAddress?: string
    reason?: string
    relay?: { peer: string; address: string }
  }
  /** A validator (staking) or worker (inference) was slashed; `amount` is a decimal string. */
  slash: { module: string; validator?: string; worker?: string; amount: string; reason: string }
  /**
   * A model's files being fetched into this node's content store (GET /v1/inference/fetches has
   * the same views): published as the fetch progresses, a few times a second at most, and once
   * when it ends (`state` done or failed).
   */
  'model.fetch': FetchView
}

export type EventType = keyof EventMap

export const EVENT_TYPES: readonly EventType[] = ['block', 'finality', 'job', 'peer', 'nat', 'slash', 'model.fetch']

/** One published event. `seq` grows by one per event on this bus (the SSE `id`). */
export type NodeEvent<T extends EventType = EventType> = {
  [K in T]: { seq: number; type: K; data: EventMap[K] }
}[T]

export type EventListener = (event: NodeEvent) => void

export interface SubscribeOptions {
  /** Only these types. @default every type */
  types?: readonly EventType[]
  /** Events held for this subscriber before the oldest are dropped. @default DEFAULT_SUBSCRIBER_BUFFER */
  bufferSize?: number
  /** Events after this seq still in the bus's history are delivered first (SSE Last-Event-ID). */
  after?: number
  /** Ends the subscription. */
  signal?: AbortSignal
}

/**
 * Events a subscriber may fall behind by before the oldest are dropped.
 * @default 256
 */
export const DEFAULT_SUBSCRIBER_BUFFER = 256

/**
 * Recent events kept for subscribers that resume (Last-Event-ID).
 * @default 256
 */
export const DEFAULT_HISTORY = 256

/** A pull-based view of the bus: `for await` over it, or `next()`; `close()` (or the signal) ends it. */
export class Subscription implements AsyncIterableIterator<NodeEvent> {
  readonly #types: ReadonlySet<EventType> | undefined
  readonly #capacity: number
  readonly #buffer: NodeEvent[] = []
  readonly #unsubscribe: () => void
  #waiter: ((result: IteratorResult<NodeEvent>) => void) | undefined
  #closed = false
  #dropped = 0

  constructor(types: readonly EventType[] | undefined, capacity: number, unsubscribe: () => void) {
    this.#types = types === undefined ? undefined : new Set(types)
    this.#capacity = Math.max(1, capacity)
    this.#unsubscribe = unsubscribe
  }

  /** Events dropped since the last call (the subscriber was too slow); resets the count. */
  takeDropped(): number {
    const n = this.#dropped
    this.#dropped = 0
    return n
  }

  /** Called by the bus. */
  offer(event: NodeEvent): void {
    if (this.#closed || (this.#types !== undefined && !this.#types.has(event.type))) return
    const waiter = this.#waiter
    if (waiter !== undefined) {
      this.#waiter = undefined
      waiter({ value: event, done: false })
      return
    }
    this.#buffer.push(event)
    if (this.#buffer.length > this.#capacity) {
      this.#buffer.shift()
      this.#dropped += 1
    }
  }

  next(): Promise<IteratorResult<NodeEvent>> {
    const event = this.#buffer.shift()
    if (event !== undefined) return Promise.resolve({ value: event, done: false })
    if (this.#closed) return Promise.resolve({ value: undefined, done: true })
    return new Promise((resolve) => (this.#waiter = resolve))
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#buffer.length = 0
    this.#unsubscribe()
    const waiter = this.#waiter
    this.#waiter = undefined
    waiter?.({ value: undefined, done: true })
  }

  return(): Promise<IteratorResult<NodeEvent>> {
    this.close()
    return Promise.resolve({ value: undefined, done: true })
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<NodeEvent> {
    return this
  }
}

export class EventBus {
  readonly #listeners = new Set<EventListener>()
  readonly #history: NodeEvent[] = []
  readonly #historySize: number
  #seq = 0
  #subscriptions = 0

  constructor(options: { history?: number } = {}) {
    this.#historySize = options.history ?? DEFAULT_HISTORY
  }

  /** Listeners and subscriptions now attached (an open SSE stream is one). */
  get listenerCount(): number {
    return this.#listeners.size
  }

  /** Subscriptions open now (each SSE client holds one). */
  get subscriberCount(): number {
    return this.#subscriptions
  }

  /** The seq of the latest event (0 before any). */
  get seq(): number {
    return this.#seq
  }

  publish<T extends EventType>(type: T, data: EventMap[T]): void {
    const event = { seq: ++this.#seq, type, data } as NodeEvent
    this.#history.push(event)
    if (this.#history.length > this.#historySize) this.#history.shift()
    for (const listener of this.#listeners) {
      try {
        listener(event)
      } catch {
        // A listener's failure is its own; the others and the publisher carry on.
      }
    }
  }

  /** Calls `listener` synchronously for every event; returns the function that stops it. */
  on(listener: EventListener): () => void {
    this.#listeners.add(listener)
    return () => void this.#listeners.delete(listener)
  }

  subscribe(options: SubscribeOptions = {}): Subscription {
    let stop = (): void => {}
    this.#subscriptions += 1
    const subscription = new Subscription(options.types, options.bufferSize ?? DEFAULT_SUBSCRIBER_BUFFER, () => {
      this.#subscriptions -= 1
      stop()
      options.signal?.removeEventListener('abort', onAbort)
    })
    const onAbort = (): void => subscription.close()
    if (options.after !== undefined) {
      for (const event of this.#history) if (event.seq > options.after) subscription.offer(event)
    }
    stop = this.on((event) => subscription.offer(event))
    if (options.signal?.aborted === true) subscription.close()
    else options.signal?.addEventListener('abort', onAbort, { once: true })
    return subscription
  }
}

/** Parses `?types=block,job`: the listed types, or a message saying what is allowed. */
export function parseEventTypes(text: string | undefined): EventType[] | undefined {
  if (text === undefined || text.trim() === '') return undefined
  const types = text.split(',').map((t) => t.trim())
  for (const type of types) {
    if (!(EVENT_TYPES as readonly string[]).includes(type)) {
      throw new InvalidInputError(`unknown event type ${JSON.stringify(type)}; known types: ${EVENT_TYPES.join(', ')}`)
    }
  }
  return types as EventType[]
}
