/**
 * Request sessions: many requests and their answers over one long-lived libp2p stream per peer
 * and protocol, instead of a new stream per request.
 *
 * Opening a stream costs a yamux stream and a multistream-select negotiation each time: about
 * 1.5 ms per request on loopback, against about 0.3 ms for a request on a stream already open
 * (measured with two hosts in one process). The inference path pays that on every job, so it
 * speaks its protocol in sessions; block sync and blobs, whose answers are large and rare, keep
 * a stream per request.
 *
 * Every frame is length-prefixed: `id` (u32, big-endian) || `kind` (u8) || payload, where kind is
 * 0 for a request, 1 for its answer, 2 for an error (UTF-8 message) and 3 for a partial answer
 * (any number of them, in order, before the answer: a generation's tokens as they come). Answers come back in any
 * order; an error's payload is `encodeRefusal` (the error's code, a newline, its message). A side
 * that serves a session runs up to `MAX_IN_FLIGHT` requests at once and stops
 * reading until one finishes. A broken stream fails the requests waiting on it, and the next
 * request opens a new one.
 */
import { lpStream, type LengthPrefixedStream } from '@libp2p/utils'
import type { PeerId, Stream } from '@libp2p/interface'
import { describeError } from '../core/errors.ts'
import type { Logger } from '../core/logger.ts'
import { OverBudgetError, TransportError, type RequestHandler } from '../core/transport.ts'
import type { PeerBudgets } from '../core/budget.ts'
import type { DonghaeHost } from './host.ts'
import { FRAME_READ_OPTIONS } from './constants.ts'

const REQUEST = 0
const ANSWER = 1
const ERROR = 2
const PROGRESS = 3
const HEADER_BYTES = 5
/** Requests one session serves at once before it stops reading new ones. */
export const MAX_IN_FLIGHT = 64
/** A session with nothing in flight for this long is closed. */
export const SESSION_IDLE_MS = 60_000

function frame(id: number, kind: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + payload.byteLength)
  new DataView(out.buffer).setUint32(0, id)
  out[4] = kind
  out.set(payload, HEADER_BYTES)
  return out
}

function parseFrame(bytes: Uint8Array): { id: number; kind: number; payload: Uint8Array } {
  if (bytes.byteLength < HEADER_BYTES)
    throw new TransportError(`a session frame of ${bytes.byteLength} bytes is shorter than its header`)
  const id = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0)
  const kind = bytes[4] as number
  if (kind > PROGRESS) throw new TransportError(`unknown session frame kind ${kind}`)
  return { id, kind, payload: bytes.subarray(HEADER_BYTES) }
}

/** Whether a handler's error blames the request (to be penalized): it is marked `action: 'reject'` (DecodeError...). */
export function blamesRequest(err: unknown): boolean {
  return err instanceof Error && (err as { action?: unknown }).action === 'reject'
}

/**
 * Whether a stream's error means the peer sent invalid data: a frame over the size limit, a
 * broken session frame, or a request its handler refused as malformed. Timeouts, aborts,
 * resets and a handler's own failures are not.
 */
export function isPeerFault(err: unknown): boolean {
  if (err instanceof TransportError || blamesRequest(err)) return true
  return err instanceof Error && err.name === 'InvalidDataLengthError'
}

/** A refusal on the wire: the error's stable code, a newline, its message (UTF-8). */
export function encodeRefusal(err: unknown): Uint8Array {
  const code = err instanceof TransportError ? err.code : TransportError.code
  return new TextEncoder().encode(`${code}\n${describeError(err)}`)
}

/**
 * The typed error a refusal stands for (`OverBudgetError` for OVER_BUDGET, else TransportError).
 * The peer's own code stays in `details.remoteCode` (e.g. EXPERT_NOT_HOSTED), for callers that
 * tell refusals apart; it is the peer's word, not a verdict.
 */
export function decodeRefusal(payload: Uint8Array): TransportError {
  const text = new TextDecoder().decode(payload)
  const newline = text.indexOf('\n')
  const code = newline === -1 ? '' : text.slice(0, newline)
  const message = `the peer refused the request: ${newline === -1 ? text : text.slice(newline + 1)}`
  const details = /^[A-Z][A-Z0-9_]{0,63}$/.test(code) ? { details: { remoteCode: code } } : {}
  return code === OverBudgetError.code ? new OverBudgetError(message, details) : new TransportError(message, details)
}

interface Pending {
  resolve(answer: Uint8Array): void
  reject(err: Error): void
  progress?(chunk: Uint8Array): void
}

/** The requesting side of one stream. */
class Session {
  readonly #stream: Stream
  readonly #lp: LengthPrefixedStream<Stream>
  readonly #pending = new Map<number, Pending>()
  readonly #onClosed: () => void
  #nextId = 0
  #closed = false
  #idle: ReturnType<typeof setTimeout> | undefined

  constructor(stream: Stream, onClosed: () => void) {
    this.#stream = stream
    this.#lp = lpStream(stream, { ...FRAME_READ_OPTIONS })
    this.#onClosed = onClosed
    void this.#readLoop()
    this.#armIdle()
  }

  get closed(): boolean {
    return this.#closed
  }

  async request(data: Uint8Array, signal: AbortSignal, onProgress?: (chunk: Uint8Array) => void): Promise<Uint8Array> {
    if (this.#closed) throw new TransportError('the session is closed')
    const id = this.#nextId
    this.#nextId = (this.#nextId + 1) >>> 0
    clearTimeout(this.#idle)
    const answer = new Promise<Uint8Array>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, ...(onProgress === undefined ? {} : { progress: onProgress }) })
    })
    answer.catch(() => {}) // it may be rejected (abort, closed) while the write is still pending
    const onAbort = (): void => this.#settle(id)?.reject(signal.reason as Error)
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      if (signal.aborted) onAbort()
      else await this.#lp.write(frame(id, REQUEST, data), { signal })
      return await answer
    } catch (err) {
      this.#settle(id)
      throw err
    } finally {
      signal.removeEventListener('abort', onAbort)
      if (this.#pending.size === 0) this.#armIdle()
    }
  }

  close(reason: Error = new TransportError('the session was closed')): void {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#idle)
    this.#onClosed()
    for (const [id, pending] of [...this.#pending]) {
      this.#pending.delete(id)
      pending.reject(reason)
    }
    void this.#stream.close().catch(() => this.#stream.abort(reason))
  }

  #settle(id: number): Pending | undefined {
    const pending = this.#pending.get(id)
    this.#pending.delete(id)
    return pending
  }

  #armIdle(): void {
    clearTimeout(this.#idle)
    this.#idle = setTimeout(() => {
      if (this.#pending.size === 0) this.close()
    }, SESSION_IDLE_MS)
    this.#idle.unref()
  }

  async #readLoop(): Promise<void> {
    try {
      for (;;) {
        const { id, kind, payload } = parseFrame((await this.#lp.read()).subarray())
        if (kind === REQUEST) throw new TransportError('the serving side sent a request')
        if (kind === PROGRESS) {
          this.#pending.get(id)?.progress?.(payload)
          continue
        }
        // An answer to a request already given up (timed out) is dropped.
        const pending = this.#settle(id)
        if (kind === ANSWER) pending?.resolve(payload)
        else pending?.reject(decodeRefusal(payload))
      }
    } catch (err) {
      this.close(err instanceof TransportError ? err : new TransportError(`session ended: ${describeError(err)}`))
    }
  }
}

/** The sessions one node has open to its peers, one per peer and protocol. */
export class SessionPool {
  readonly #host: DonghaeHost
  readonly #sessions = new Map<string, Session | Promise<Session>>()

  constructor(host: DonghaeHost) {
    this.#host = host
  }

  async request(
    peer: PeerId,
    protocol: string,
    data: Uint8Array,
    signal: AbortSignal,
    onProgress?: (chunk: Uint8Array) => void,
  ): Promise<Uint8Array> {
    const session = await this.#open(peer, protocol, signal)
    return session.request(data, signal, onProgress)
  }

  /** Closes every session (the node is stopping). */
  close(): void {
    for (const entry of [...this.#sessions.values()]) if (!(entry instanceof Promise)) entry.close()
    this.#sessions.clear()
  }

  async #open(peer: PeerId, protocol: string, signal: AbortSignal): Promise<Session> {
    const key = `${peer.toString()} ${protocol}`
    const existing = this.#sessions.get(key)
    if (existing !== undefined) {
      const session = await existing
      if (!session.closed) return session
    }
    const opening = this.#host.dialProtocol(peer, protocol, { signal }).then((stream) => {
      const session: Session = new Session(stream, () => {
        if (this.#sessions.get(key) === session) this.#sessions.delete(key)
      })
      this.#sessions.set(key, session)
      return session
    })
    this.#sessions.set(key, opening)
    try {
      return await opening
    } catch (err) {
      if (this.#sessions.get(key) === opening) this.#sessions.delete(key)
      throw err
    }
  }
}

/**
 * Serves one incoming session stream until it closes: each request runs `handler` and its answer
 * (or error) goes back with the request's id. A frame that breaks the format ends the session
 * and is reported through `onInvalid`; a request the handler refuses is answered with an error
 * frame, and reported only when the refusal blames the request (`isPeerFault`).
 */
export async function serveSession(
  stream: Stream,
  from: string,
  handler: RequestHandler,
  options: { onInvalid(reason: string): void; log: Logger; budgets?: PeerBudgets },
): Promise<void> {
  const lp = lpStream(stream, { ...FRAME_READ_OPTIONS })
  let inFlight = 0
  let freed: (() => void) | undefined
  const { budgets } = options
  const answer = async (id: number, payload: Uint8Array): Promise<void> => {
    let reply: Uint8Array
    if (budgets !== undefined && budgets.available(from) <= 0) {
      const refusal = new OverBudgetError(`over the session's byte budget; retry in ${budgets.waitMs(from)} ms`)
      reply = frame(id, ERROR, encodeRefusal(refusal))
    } else {
      try {
        const progress = (chunk: Uint8Array): void => {
          budgets?.charge(from, chunk.byteLength)
          lp.write(frame(id, PROGRESS, chunk)).catch(() => {})
        }
        const answer = await handler(payload, from, progress)
        budgets?.charge(from, answer.byteLength)
        reply = frame(id, ANSWER, answer)
      } catch (err) {
        if (blamesRequest(err)) options.onInvalid(`request refused: ${describeError(err)}`)
        reply = frame(id, ERROR, encodeRefusal(err))
      }
    }
    await lp.write(reply).catch((err: unknown) => options.log.debug({ err: describeError(err) }, 'answer not sent'))
  }
  try {
    for (;;) {
      if (inFlight >= MAX_IN_FLIGHT) await new Promise<void>((resolve) => (freed = resolve))
      const { id, kind, payload } = parseFrame((await lp.read()).subarray())
      if (kind !== REQUEST) throw new TransportError('the requesting side sent an answer')
      inFlight++
      void answer(id, payload).finally(() => {
        inFlight--
        freed?.()
        freed = undefined
      })
    }
  } catch (err) {
    if (isPeerFault(err)) {
      options.onInvalid(describeError(err))
      stream.abort(err as Error)
      return
    }
    // The requester closed its side (or the connection went): finish what is in flight, then close.
    while (inFlight > 0) await new Promise<void>((resolve) => (freed = resolve))
    await stream.close().catch(() => {})
  }
}
