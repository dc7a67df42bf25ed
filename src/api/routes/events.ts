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

export interface EventRoutesOptions {
  events: EventBus
  /** @default SSE_HEARTBEAT_MS */
  heartbeatMs?: number
  /** Events a slow client may fall behind by. @default DEFAULT_SUBSCRIBER_BUFFER */
  bufferSize?: number
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

export const eventRoutes: FastifyPluginAsync<EventRoutesOptions> = async (app, options) => {
  const open = new Set<AbortController>()
  app.addHook('preClose', async () => {
    for (const stream of open) stream.abort()
  })
  app.route({
    method: 'GET',
    url: '/v1/events',
    schema: {
      summary: 'Server-sent events: blocks, finality, jobs, peers, NAT changes, slashing',
      description:
        'text/event-stream. Each message has `id` (a sequence number), `event` (the type) and `data` (JSON). Comments (`: heartbeat`) keep the connection alive. Send `Last-Event-ID` to resume.',
      tags: ['events'],
      querystring: EventsQuery,
      response: ERROR_RESPONSES,
    },
    handler: async (request, reply) => {
      const types = parseEventTypes((request.query as Type.Static<typeof EventsQuery>).types)
      const after = lastEventId(request.headers['last-event-id'])
      reply.hijack()
      const raw = reply.raw
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
          subscription.close()
          open.delete(stream)
          if (!raw.destroyed) raw.end()
        })
      return reply
    },
  })
}
