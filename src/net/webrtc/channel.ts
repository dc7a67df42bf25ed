/**
 * Request/response with streamed partial answers over one data channel, e.g. "chat with the node's
 * language model" from a browser or another node.
 *
 * Every message is one text frame holding one JSON object (browser-friendly: `RTCDataChannel.send`
 * of a string, `JSON.parse` on receipt), at most `maxMessageBytes` (64 KiB) of UTF-8:
 *
 *   client -> server
 *     { "t": "req",    "id": <id>, "body": <any JSON> }   a request; ids are positive safe
 *                                                        integers, unique among the client's
 *                                                        requests in flight
 *     { "t": "cancel", "id": <id> }                      abandon a request (its handler's signal aborts)
 *   server -> client
 *     { "t": "progress", "id": <id>, "body": <any> }     zero or more partial answers (streamed tokens)
 *     { "t": "res",      "id": <id>, "body": <any> }     the final answer; ends the request
 *     { "t": "err",      "id": <id>, "error": { "code": <string>, "message": <string> } }
 *                                                        the request failed; ends it
 *
 * Limits: the server runs at most `maxInFlight` (8) requests per channel and answers more with
 * `err` code `BUSY`; a duplicate id in flight gets `err` code `DUPLICATE_ID`. A frame that is not
 * JSON, not an object of the shapes above, or larger than the limit is a protocol violation: the
 * server closes the channel (a peer that cannot frame is not worth a conversation). An answer or
 * progress body too large to send becomes `err` code `TOO_LARGE`. Handler failures become `err`
 * with the error's `code` and message when it is a `DonghaeError`, else `HANDLER_ERROR` with a
 * generic message (nothing internal leaks). `progress` waits while the channel's send buffer is
 * above `maxBufferedBytes`, so a slow reader slows the producer instead of growing memory.
 * When the channel closes, every handler's signal aborts and every client request rejects.
 */
import { DonghaeError } from '../../core/errors.ts'
import type { MessageChannel } from './peer.ts'

export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
export const DEFAULT_MAX_IN_FLIGHT = 8
export const DEFAULT_MAX_BUFFERED_BYTES = 1024 * 1024
export const DEFAULT_REQUEST_TIMEOUT_MS = 120_000

/** A request failed on the far side, or the channel broke. `code` is the server's error code. */
export class ChannelRequestError extends DonghaeError {
  static override readonly code: string = 'CHANNEL_REQUEST_FAILED'
  override name = 'ChannelRequestError'
  readonly remoteCode: string

  constructor(remoteCode: string, message: string) {
    super(message, { details: { remoteCode } })
    this.remoteCode = remoteCode
  }
}

type ClientFrame = { t: 'req'; id: number; body: unknown } | { t: 'cancel'; id: number }
type ServerFrame =
  | { t: 'progress'; id: number; body: unknown }
  | { t: 'res'; id: number; body: unknown }
  | { t: 'err'; id: number; error: { code: string; message: string } }

function byteLength(text: string): number {
  return Buffer.byteLength(text, 'utf8')
}

function parseFrame(text: string, maxBytes: number): Record<string, unknown> | undefined {
  if (text.length > maxBytes || Buffer.byteLength(text, 'utf8') > maxBytes) return undefined
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const record = value as Record<string, unknown>
  const id = record['id']
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id <= 0) return undefined
  return record
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

export interface RequestContext {
  /** Sends a partial answer; resolves once the channel's send buffer has room again. */
  progress(body: unknown): Promise<void>
  /** Aborts when the client cancels or the channel closes. */
  signal: AbortSignal
}

export type ChannelHandler = (request: unknown, context: RequestContext) => Promise<unknown>

export interface ServeChannelOptions {
  maxMessageBytes?: number
  maxInFlight?: number
  maxBufferedBytes?: number
}

export interface ChannelServer {
  /** Requests running now. */
  readonly inFlight: number
  /** Aborts every running request (the channel itself is left to its owner). */
  stop(): void
}

/** Serves requests arriving on `channel` with `handler` (see the file header for the protocol). */
export function serveChannel(
  channel: MessageChannel,
  handler: ChannelHandler,
  options: ServeChannelOptions = {},
): ChannelServer {
  const maxBytes = Math.min(options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES, channel.maxMessageSize() || Infinity)
  const maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT
  const maxBuffered = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES
  const running = new Map<number, AbortController>()

  const send = (frame: ServerFrame): boolean => {
    const text = JSON.stringify(frame)
    if (byteLength(text) > maxBytes) return false
    return channel.send(text)
  }
  const fail = (id: number, code: string, message: string): void => {
    send({ t: 'err', id, error: { code, message } })
  }
  const violation = (): void => {
    for (const controller of running.values()) controller.abort()
    running.clear()
    channel.close()
  }

  const run = async (id: number, body: unknown, controller: AbortController): Promise<void> => {
    const context: RequestContext = {
      signal: controller.signal,
      progress: async (partial) => {
        if (controller.signal.aborted) return
        if (!send({ t: 'progress', id, body: partial })) {
          if (channel.isOpen()) throw new ChannelRequestError('TOO_LARGE', 'a partial answer exceeds the message limit')
          return
        }
        while (channel.isOpen() && !controller.signal.aborted && channel.bufferedAmount() > maxBuffered) await sleep(5)
      },
    }
    try {
      const answer = await handler(body, context)
      if (controller.signal.aborted) return
      if (!send({ t: 'res', id, body: answer })) fail(id, 'TOO_LARGE', 'the answer exceeds the message limit')
    } catch (err) {
      if (controller.signal.aborted) return
      if (err instanceof ChannelRequestError) fail(id, err.remoteCode, err.message)
      else if (err instanceof DonghaeError) fail(id, err.code, err.message.slice(0, 1000))
      else fail(id, 'HANDLER_ERROR', 'the request failed')
    } finally {
      if (running.get(id) === controller) running.delete(id)
    }
  }

  channel.onMessage((text) => {
    const frame = parseFrame(text, maxBytes)
    if (frame === undefined) return violation()
    const id = frame['id'] as number
    if (frame['t'] === 'cancel') {
      running.get(id)?.abort()
      running.delete(id)
      return
    }
    if (frame['t'] !== 'req' || !('body' in frame)) return violation()
    if (running.has(id)) return fail(id, 'DUPLICATE_ID', 'a request with this id is already in flight')
    if (running.size >= maxInFlight) return fail(id, 'BUSY', `at most ${maxInFlight} requests in flight`)
    const controller = new AbortController()
    running.set(id, controller)
    void run(id, frame['body'], controller)
  })
  channel.onClosed(() => {
    for (const controller of running.values()) controller.abort()
    running.clear()
  })

  return {
    get inFlight() {
      return running.size
    },
    stop: () => {
      for (const controller of running.values()) controller.abort()
      running.clear()
    },
  }
}

export interface ChannelClientOptions {
  maxMessageBytes?: number
  maxInFlight?: number
  timeoutMs?: number
}

export interface RequestOptions {
  onProgress?: (body: unknown) => void
  signal?: AbortSignal
  timeoutMs?: number
}

interface Pending {
  resolve: (body: unknown) => void
  reject: (err: Error) => void
  onProgress: ((body: unknown) => void) | undefined
}

/** The calling side of the channel protocol. */
export class ChannelClient {
  readonly #channel: MessageChannel
  readonly #maxBytes: number
  readonly #maxInFlight: number
  readonly #timeoutMs: number
  readonly #pending = new Map<number, Pending>()
  #nextId = 1
  #closed = false

  constructor(channel: MessageChannel, options: ChannelClientOptions = {}) {
    this.#channel = channel
    this.#maxBytes = Math.min(
      options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      channel.maxMessageSize() || Infinity,
    )
    this.#maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
    channel.onMessage((text) => this.#receive(text))
    channel.onClosed(() => {
      this.#closed = true
      for (const pending of this.#pending.values()) {
        pending.reject(new ChannelRequestError('CLOSED', 'the data channel closed'))
      }
      this.#pending.clear()
    })
  }

  get inFlight(): number {
    return this.#pending.size
  }

  /** Sends `payload`; `onProgress` sees each partial answer; resolves with the final answer. */
  request(payload: unknown, options: RequestOptions = {}): Promise<unknown> {
    if (this.#closed || !this.#channel.isOpen()) {
      return Promise.reject(new ChannelRequestError('CLOSED', 'the data channel is closed'))
    }
    if (this.#pending.size >= this.#maxInFlight) {
      return Promise.reject(new ChannelRequestError('BUSY', `at most ${this.#maxInFlight} requests in flight`))
    }
    const id = this.#nextId++
    const text = JSON.stringify({ t: 'req', id, body: payload } satisfies ClientFrame)
    if (byteLength(text) > this.#maxBytes) {
      return Promise.reject(new ChannelRequestError('TOO_LARGE', 'the request exceeds the message limit'))
    }
    return new Promise<unknown>((resolve, reject) => {
      const cleanup = (): void => {
        cancelTimer()
        options.signal?.removeEventListener('abort', onAbort)
        this.#pending.delete(id)
      }
      const abandon = (err: Error): void => {
        if (!this.#pending.has(id)) return
        cleanup()
        this.#channel.send(JSON.stringify({ t: 'cancel', id } satisfies ClientFrame))
        reject(err)
      }
      const onAbort = (): void => abandon(new ChannelRequestError('ABORTED', 'the request was cancelled'))
      const timer = setTimeout(
        () => abandon(new ChannelRequestError('TIMEOUT', 'the request timed out')),
        options.timeoutMs ?? this.#timeoutMs,
      )
      const cancelTimer = (): void => clearTimeout(timer)
      if (options.signal?.aborted === true) {
        cancelTimer()
        reject(new ChannelRequestError('ABORTED', 'the request was cancelled'))
        return
      }
      options.signal?.addEventListener('abort', onAbort, { once: true })
      this.#pending.set(id, {
        resolve: (body) => {
          cleanup()
          resolve(body)
        },
        reject: (err) => {
          cleanup()
          reject(err)
        },
        onProgress: options.onProgress,
      })
      if (!this.#channel.send(text)) {
        this.#pending.get(id)?.reject(new ChannelRequestError('CLOSED', 'the data channel refused the message'))
      }
    })
  }

  #receive(text: string): void {
    const frame = parseFrame(text, this.#maxBytes)
    if (frame === undefined) return // not ours to police: the server side closes on violations
    const pending = this.#pending.get(frame['id'] as number)
    if (pending === undefined) return
    switch (frame['t']) {
      case 'progress':
        try {
          pending.onProgress?.(frame['body'])
        } catch {
          // a listener's failure is the listener's
        }
        return
      case 'res':
        pending.resolve(frame['body'])
        return
      case 'err': {
        const error = frame['error'] as { code?: unknown; message?: unknown } | undefined
        const code = typeof error?.code === 'string' ? error.code.slice(0, 64) : 'ERROR'
        const message = typeof error?.message === 'string' ? error.message.slice(0, 1000) : 'the request failed'
        pending.reject(new ChannelRequestError(code, message))
        return
      }
    }
  }

  /** Rejects every pending request and closes the channel. */
  close(): void {
    this.#channel.close()
  }
}
