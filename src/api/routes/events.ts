/**
 * GET /v1/events: the node's event bus as server-sent events. Each message is
 *
 *   id: <seq>
 *   event: <type>          block | finality | job | peer | nat | slash
 *   data: <JSON payload>   (api/events.ts: EventMap)
 *
 * `?types=block,job` narrows the stream; a reconnecting client's `Last-Event-ID` replays the
 * events it missed that the bus still remembers. A comment line (`: heartbeat`) goes out every
 * `heartbeatMs` so proxies keep the connection and clients notice a dead node. A client too slow
 * to read loses its oldest events (`: dropped N events`), never the node's memory.
 */
import { once } from 'node:events'
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import type Type from 'typebox'
import { DonghaeError } from '../../core/errors.ts'
import { MAX_EVENT_STREAMS, MAX_EVENT_STREAMS_PER_CLIENT } from '../constants.ts'
import { parseEventTypes, type EventBus, type NodeEvent, type Subscription } from '../events.ts'
import { ERROR_RESPONSES, EventsQuery } from '../schemas.ts'

/**
 * Interval of the SSE heartbeat comment.
 * @default 15 000 ms
 */
export const SSE_HEARTBEAT_MS = 15_000

/** Response header with the seq of the bus's latest event when the stream opened: events up to it are replayed history. */
export const LATEST_EVENT_HEADER = 'x-donghae-latest-event'

/** Client reconnection delay the stream asks for (the SSE `retry:` field), ms. */
const SSE_RETRY_MS = 2_000

/** Seconds a client refused for too many streams is told to wait (`Retry-After`). */
export const STREAMS_RETRY_AFTER_S = 10

/** Every event-stream slot is taken (503 with Retry-After). */
export class TooManyStreamsError extends DonghaeError {
  static override readonly code: string = 'TOO_MANY_STREAMS'
  override name = 'TooManyStreamsError'
}

export interface EventRoutesOptions {
  events: EventBus
  /** @default SSE_HEARTBEAT_MS */
  heartbeatMs?: number
  /** Events a slow client may fall behind by. @default DEFAULT_SUBSCRIBER_BUFFER */
  bufferSize?: number
  /** Streams open at once, from all clients. @default MAX_EVENT_STREAMS */
  maxStreams?: number
  /** Streams open at once from one client address. @default MAX_EVENT_STREAMS_PER_CLIENT */
  maxStreamsPerClient?: number
}

export function formatEvent(event: NodeEvent): string {
  return `id: ${event.seq}\nevent: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`
}

function lastEventId(header: string | string[] | undefined): number | undefined {
  const text = Array.isArray(header) ? header[0] : header
  return text !== undefined && /^[0-9]{1,15}$/.test(text) ? Number(text) : undefined
}

/** Writes the subscription to the socket until either side ends; waits for 'drain' under backpressure. */
async function pump(reply: FastifyReply, subscription: Subscription, signal: AbortSignal): Promise<void> {
  const raw = reply.raw
  for await (const event of subscription) {
    if (raw.destroyed) return
    const dropped = subscription.takeDropped()
    const text = (dropped > 0 ? `: dropped ${dropped} events\n\n` : '') + formatEvent(event)
    if (!raw.write(text)) await once(raw, 'drain', { signal })
  }
}

/** Counts open streams per client address and refuses one past either cap. */
class StreamSlots {
  readonly max: number
  readonly maxPerClient: number
  readonly #perClient = new Map<string, number>()
  #total = 0

  constructor(max: number, maxPerClient: number) {
    this.max = max
    this.maxPerClient = maxPerClient
  }

  /** Takes a slot for `client`, or throws TooManyStreamsError; the returned function gives it back once. */
  take(client: string): () => void {
    const mine = this.#perClient.get(client) ?? 0
    if (this.#total >= this.max)
      throw new TooManyStreamsError(
        `this node already serves ${this.max} event streams (the most it serves at once); retry in ${STREAMS_RETRY_AFTER_S} s`,
      )
    if (mine >= this.maxPerClient)
      throw new TooManyStreamsError(
        `${client} already has ${this.maxPerClient} event streams open (the most one client may); close one, or retry in ${STREAMS_RETRY_AFTER_S} s`,
      )
    this.#total++
    this.#perClient.set(client, mine + 1)
    let given = false
    return () => {
      if (given) return
      given = true
      this.#total--
      const left = (this.#perClient.get(client) ?? 1) - 1
      if (left === 0) this.#perClient.delete(client)
      else this.#perClient.set(client, left)
    }
  }
}

export const eventRoutes: FastifyPluginAsync<EventRoutesOptions> = async (app, options) => {
  const open = new Set<AbortController>()
  const slots = new StreamSlots(
    options.maxStreams ?? MAX_EVENT_STREAMS,
    options.maxStreamsPerClient ?? MAX_EVENT_STREAMS_PER_CLIENT,
  )
  app.addHook('preClose', async () => {
    for (const stream of open) stream.abort()
  })
  app.route({
    method: 'GET',
    url: '/v1/events',
    schema: {
      summary: 'Server-sent events: blocks, finality, jobs, peers, NAT changes, slashing',
      description:
        "text/event-stream. Each message has `id` (a sequence number), `event` (the type) and `data` (JSON). Comments (`: heartbeat`) keep the connection alive. Send `Last-Event-ID` to resume. 503 TOO_MANY_STREAMS with `Retry-After` when every stream slot (or this client's share) is taken.",
      tags: ['events'],
      querystring: EventsQuery,
      response: ERROR_RESPONSES,
    },
    handler: async (request, reply) => {
      const types = parseEventTypes((request.query as Type.Static<typeof EventsQuery>).types)
      const after = lastEventId(request.headers['last-event-id'])
      let release: () => void
      try {
        release = slots.take(request.ip)
      } catch (err) {
        void reply.header('retry-after', String(STREAMS_RETRY_AFTER_S))
        throw err
      }
      reply.hijack()
      const raw = reply.raw
      raw.once('close', release)
      raw.writeHead(200, {
        ...(reply.getHeaders() as Record<string, string>),
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
        [LATEST_EVENT_HEADER]: String(options.events.seq),
      })
      raw.write(`retry: ${SSE_RETRY_MS}\n: connected to ${options.events.seq}\n\n`)
      const stream = new AbortController()
      open.add(stream)
      raw.once('close', () => stream.abort())
      raw.on('error', () => stream.abort())
      const subscription = options.events.subscribe({
        ...(types === undefined ? {} : { types }),
        ...(after === undefined ? {} : { after }),
        ...(options.bufferSize === undefined ? {} : { bufferSize: options.bufferSize }),
        signal: stream.signal,
      })
      const heartbeat = setInterval(() => {
        if (!raw.destroyed && !raw.writableEnded) raw.write(': heartbeat\n\n')
      }, options.heartbeatMs ?? SSE_HEARTBEAT_MS)
      pump(reply, subscription, stream.signal)
        .catch((err: unknown) => {
          if (!stream.signal.aborted) request.log.debug({ err }, 'event stream ended')
        })
        .finally(() => {
          clearInterval(heartbeat)
          release()
          subscription.close()
          open.delete(stream)
          if (!raw.destroyed) raw.end()
        })
      return reply
    },
  })
}
