/**
 * The node's WebRTC side (issue 13, parts 3 and 5): it answers signed offers that arrive over
 * HTTP (api/routes/webrtc.ts) and serves its language model on each data channel.
 *
 *   POST /v1/webrtc/offer -> receiveOffer(offer, client)
 *     1. per-client budget (IPv6 by /64)              429 SIGNAL_RATE_LIMITED
 *     2. session cap                                  503 WEBRTC_TOO_MANY_CONNECTIONS
 *     3. verifyOffer: signature, freshness, target,   401 / 403 / 409 / 413 / 400 (signal.ts)
 *        replay, SDP shape and size
 *     4. WebRtcAnswerer.open: the PeerConnection exists only now; the signed answer goes back
 *   data channel 'donghae' (channel.ts frames) -> serveChannel(handler)
 *     { op: 'info' }  -> { did, models }
 *     { op: 'chat', model?, messages | prompt, max_tokens?, temperature? }
 *                     -> progress { token } per piece, then { text, finishReason, completionTokens,
 *                       promptTokens, model }
 *
 * A chat is a completion on the node's InferenceApi, as the operator's own POST
 * /v1/chat/completions is: the node signs the job and pays for it from its deposit with itself.
 * What a stranger can spend is bounded by the offer budget, the session cap, `chatInFlight`
 * requests per channel, `maxChats` generations at once for the whole node (beyond it: `BUSY`) and
 * the generation limits (max_tokens). A cancel ends the request at once
 * (no more frames); the job itself runs to its end (the InferenceApi takes no signal), bounded by
 * its max_tokens.
 *
 * Sessions are named by 16 random bytes (hex): the id the offerer gets in `Location` is the only
 * capability for PATCH (trickle) and DELETE, so it must not be guessable.
 */
import { randomBytes } from 'node:crypto'
import { PeerBudgets } from '../core/budget.ts'
import { systemClock, type Clock } from '../core/clock.ts'
import { AbortError } from '../core/errors.ts'
import { silentLogger, type Logger } from '../core/logger.ts'
import { NotFoundError } from '../api/errors.ts'
import type { CompletionRequest, InferenceApi } from '../api/inference-api.ts'
import { parseChatCompletion, parseCompletion, ParamError } from '../api/openai.ts'
import { toHttpError } from '../api/server.ts'
import type {
  WebRtcApi,
  WebRtcCandidate,
  WebRtcChatAnswer,
  WebRtcInfo,
  WebRtcModelView,
  WebRtcSessionView,
} from '../api/webrtc-api.ts'
import { ChannelRequestError, serveChannel, type RequestContext } from '../net/webrtc/channel.ts'
import {
  DEFAULT_MAX_CONNECTIONS,
  TooManyConnectionsError,
  WebRtcAnswerer,
  type AnsweredOffer,
  type PeerConnectionFactory,
  type WebRtcAnswererOptions,
  type WebRtcConnection,
} from '../net/webrtc/peer.ts'
import {
  BadCandidateError,
  OfferRateLimitedError,
  ReplayCache,
  verifyOffer,
  type SignalSigner,
  type SignedAnswer,
} from '../net/webrtc/signal.ts'

/** Offers one client (an IPv4 address, an IPv6 /64) may make: a burst, refilled over `perMs`. @default 20 per minute */
export const DEFAULT_OFFER_LIMIT = Object.freeze({ burst: 20, perMs: 60_000 })
/** Sessions held at once, pending ones included. @default 32 */
export const DEFAULT_MAX_SESSIONS = DEFAULT_MAX_CONNECTIONS
/** Requests one data channel may have running at once. @default 2 */
export const DEFAULT_CHAT_IN_FLIGHT = 2
/** Chats the node runs at once for all its sessions (a cancelled one counts until its job ends). @default 4 */
export const DEFAULT_MAX_CHATS = 4
/** Trickled candidates one session takes (PATCH), all requests together. @default 64 */
export const MAX_TRICKLED_CANDIDATES = 64
/** Closed sessions still listed by `sessions()`. */
const RECENT_CLOSED = 32
/** What a trickled candidate looks like: `candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> ...`. */
const CANDIDATE =
  /^candidate:[A-Za-z0-9+/]{1,32} [0-9]{1,3} (udp|tcp|UDP|TCP) [0-9]{1,10} [0-9A-Za-z.:_-]{1,253} [0-9]{1,5} typ (host|srflx|prflx|relay)( [ -~]*)?$/
const MID = /^[A-Za-z0-9_.-]{1,32}$/

export interface NodeWebRtcOptions {
  /** The node's identity key: offers must be made out to its DID, and it signs the answers. */
  key: SignalSigner
  /** What `chat` runs on; without it `info` lists no model and `chat` is refused. */
  inference?: Pick<InferenceApi, 'models' | 'complete'>
  /** STUN servers (config iceServers). @default none */
  iceServers?: string[]
  /** @default DEFAULT_MAX_SESSIONS */
  maxSessions?: number
  /** @default DEFAULT_OFFER_LIMIT */
  offerLimit?: { burst: number; perMs: number }
  /** @default DEFAULT_CHAT_IN_FLIGHT */
  chatInFlight?: number
  /** @default DEFAULT_MAX_CHATS */
  maxChats?: number
  clock?: Clock
  /** Makes the PeerConnections (tests count them). */
  factory?: PeerConnectionFactory
  /** Timeouts and libdatachannel options of the answerer. */
  peer?: Pick<
    WebRtcAnswererOptions,
    'gatherTimeoutMs' | 'connectTimeoutMs' | 'idleTimeoutMs' | 'remoteCandidateDelayMs' | 'rtcConfig'
  >
  logger?: Logger
}

interface Session {
  view: WebRtcSessionView
  handle: AnsweredOffer
  candidates: number
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

const CHAT_FIELDS = new Set(['op', 'model', 'messages', 'prompt', 'max_tokens', 'temperature'])

/** A `chat` request checked as the OpenAI routes check theirs (same limits, same messages). */
export function parseChatRequest(body: Record<string, unknown>): {
  model?: string
  request: Omit<CompletionRequest, 'model'>
} {
  for (const key of Object.keys(body))
    if (!CHAT_FIELDS.has(key))
      throw new ParamError(key, `unknown field ${JSON.stringify(key)}; chat takes ${[...CHAT_FIELDS].join(', ')}`)
  const { model, messages, prompt, max_tokens: maxTokens, temperature } = body
  if (model !== undefined && (typeof model !== 'string' || model.length === 0 || model.length > 128))
    throw new ParamError('model', 'model must be the name or CID of a registered model (info lists them)')
  if ((messages === undefined) === (prompt === undefined))
    throw new ParamError('messages', 'give either messages or prompt')
  const common = {
    model: model ?? '-',
    ...(maxTokens === undefined ? {} : { max_tokens: maxTokens }),
    ...(temperature === undefined ? {} : { temperature }),
  }
  const parsed =
    messages !== undefined ? parseChatCompletion({ ...common, messages }) : parseCompletion({ ...common, prompt })
  const request: Omit<CompletionRequest, 'model'> = {
    ...(parsed.messages === undefined ? { prompt: parsed.prompt ?? '' } : { messages: parsed.messages }),
    ...(parsed.maxTokens === undefined ? {} : { maxTokens: parsed.maxTokens }),
    ...(parsed.temperature === undefined ? {} : { temperature: parsed.temperature }),
  }
  return { ...(typeof model === 'string' ? { model } : {}), request }
}

/** Rejects with AbortError when `signal` aborts first. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  work.catch(() => {}) // abandoned on abort: its failure is nobody's
  if (signal.aborted) return Promise.reject(new AbortError('the request was cancelled'))
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new AbortError('the request was cancelled'))
    signal.addEventListener('abort', onAbort, { once: true })
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(err instanceof Error ? err : new Error(String(err)))
      },
    )
  })
}

/**
 * The data channel's request handler: `info` and `chat` over `inference`. Failures are answered
 * with the HTTP API's error codes and messages (BAD_REQUEST, INFERENCE_REJECTED, ...; internals
 * never leak), through `toHttpError`.
 */
export function channelHandler(
  did: string,
  inference: Pick<InferenceApi, 'models' | 'complete'> | undefined,
  limits: { maxChats?: number } = {},
): (body: unknown, context: RequestContext) => Promise<unknown> {
  const maxChats = limits.maxChats ?? DEFAULT_MAX_CHATS
  let chats = 0
  const chatModels = async (): Promise<WebRtcModelView[]> => {
    const all = inference === undefined ? [] : await inference.models()
    const usable = [...all.filter((m) => m.kind === 'lm'), ...all.filter((m) => m.kind === 'text')]
    return usable.map((m) => ({
      name: m.name,
      kind: m.kind as 'lm' | 'text',
      ...(m.contextLength === undefined ? {} : { contextLength: m.contextLength }),
      workers: m.workers,
    }))
  }
  const chat = async (body: Record<string, unknown>, context: RequestContext): Promise<WebRtcChatAnswer> => {
    const { model: named, request } = parseChatRequest(body)
    if (inference === undefined) throw new ChannelRequestError('NOT_FOUND', 'this node runs no inference service')
    const model = named ?? (await inference.models()).find((m) => m.kind === 'lm')?.name
    if (model === undefined) throw new ChannelRequestError('NOT_FOUND', 'no language model is registered')
    if (chats >= maxChats)
      throw new ChannelRequestError('BUSY', `this node runs at most ${maxChats} chats at once; try again shortly`)
    // progress frames in order, each waiting for room in the channel's send buffer
    let sent = Promise.resolve()
    const onToken = (piece: string): void => {
      if (piece.length > 0 && !context.signal.aborted) sent = sent.then(() => context.progress({ token: piece }))
    }
    chats++
    const release = (): void => void chats--
    const work = inference.complete({ model, ...request }, onToken)
    work.then(release, release) // a cancelled chat holds its slot until its job ends
    const outcome = await untilAborted(work, context.signal)
    await sent
    return {
      text: outcome.text,
      finishReason: outcome.finishReason,
      completionTokens: outcome.completionTokens,
      promptTokens: outcome.promptTokens,
      model,
    }
  }
  return async (body, context) => {
    try {
      if (!isRecord(body)) throw new ParamError('op', 'a request is an object { op, \u2026 }')
      if (body['op'] === 'info') return { did, models: await chatModels() } satisfies WebRtcInfo
      if (body['op'] === 'chat') return await chat(body, context)
      throw new ParamError('op', 'op must be info or chat')
    } catch (err) {
      if (err instanceof ChannelRequestError || context.signal.aborted) throw err
      const { body: answer } = toHttpError(err)
      throw new ChannelRequestError(answer.error.code, answer.error.message)
    }
  }
}

/** `WebRtcApi` over net/webrtc: verified offers, bounded sessions, the model on the channel. */
export class NodeWebRtc implements WebRtcApi {
  readonly did: string
  readonly #answerer: WebRtcAnswerer
  readonly #clock: Clock
  readonly #replay = new ReplayCache()
  readonly #offers: PeerBudgets
  readonly #offerLimit: { burst: number; perMs: number }
  readonly #maxSessions: number
  readonly #log: Logger
  readonly #handler: ReturnType<typeof channelHandler>
  readonly #chatInFlight: number
  readonly #sessions = new Map<string, Session>()
  readonly #byConnection = new Map<number, Session>()
  readonly #closed: WebRtcSessionView[] = []
  #stopped = false

  constructor(options: NodeWebRtcOptions) {
    this.#clock = options.clock ?? systemClock
    this.#maxSessions = options.maxSessions ?? DEFAULT_MAX_SESSIONS
    this.#chatInFlight = options.chatInFlight ?? DEFAULT_CHAT_IN_FLIGHT
    const limit = options.offerLimit ?? DEFAULT_OFFER_LIMIT
    this.#offerLimit = limit
    this.#offers = new PeerBudgets({ amount: limit.burst, perMs: limit.perMs }, () => this.#clock.now())
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:webrtc')
    this.#answerer = new WebRtcAnswerer({
      ...options.peer,
      key: options.key,
      iceServers: options.iceServers ?? [],
      clock: this.#clock,
      maxConnections: this.#maxSessions,
      ...(options.factory === undefined ? {} : { factory: options.factory }),
      onConnection: (connection) => this.#serve(connection),
    })
    this.did = this.#answerer.did
    this.#handler = channelHandler(
      this.did,
      options.inference,
      options.maxChats === undefined ? {} : { maxChats: options.maxChats },
    )
  }

  async receiveOffer(offer: unknown, client: string): Promise<{ id: string; answer: SignedAnswer }> {
    if (this.#stopped) throw new TooManyConnectionsError('this node is stopping')
    const level = this.#offers.available(client)
    if (level < 1) {
      const waitMs = Math.ceil(((1 - level) * this.#offerLimit.perMs) / this.#offerLimit.burst)
      throw new OfferRateLimitedError('too many WebRTC offers from this address; try again later', waitMs)
    }
    this.#offers.charge(client, 1)
    // full: refuse before the signature check, which would also spend the offer's nonce
    if (this.#answerer.size >= this.#maxSessions)
      throw new TooManyConnectionsError(`this node holds its maximum of ${this.#maxSessions} WebRTC sessions`)
    const verified = verifyOffer(offer, { self: this.did, now: this.#clock.now(), replay: this.#replay })
    const handle = await this.#answerer.open(verified)
    const id = randomBytes(16).toString('hex')
    const session: Session = {
      view: { id, peer: verified.did, state: 'connecting', openedAt: this.#clock.now(), requests: 0 },
      handle,
      candidates: 0,
    }
    this.#sessions.set(id, session)
    this.#byConnection.set(handle.id, session)
    void handle.closed.then(() => this.#forget(session))
    this.#log.debug({ session: id, peer: verified.did }, 'answered a WebRTC offer')
    return { id, answer: handle.answer }
  }

  addCandidates(id: string, candidates: WebRtcCandidate[]): void {
    const session = this.#live(id)
    if (session.candidates + candidates.length > MAX_TRICKLED_CANDIDATES)
      throw new BadCandidateError(`a session takes at most ${MAX_TRICKLED_CANDIDATES} trickled candidates`)
    for (const { candidate, mid } of candidates) {
      const line = candidate.startsWith('a=') ? candidate.slice(2) : candidate
      if (line === '') continue // end of candidates
      if (line.length > 512 || !CANDIDATE.test(line) || !MID.test(mid))
        throw new BadCandidateError(
          'a candidate is `candidate:<foundation> <component> <udp|tcp> <priority> <address> <port> typ <type> \u2026` with its mid',
        )
    }
    for (const { candidate, mid } of candidates) {
      const line = candidate.startsWith('a=') ? candidate.slice(2) : candidate
      if (line === '') continue
      session.candidates++
      session.handle.addRemoteCandidate(line, mid)
    }
  }

  close(id: string): void {
    this.#live(id).handle.close()
  }

  sessions(): WebRtcSessionView[] {
    return [...[...this.#sessions.values()].map((s) => ({ ...s.view })), ...this.#closed.map((v) => ({ ...v }))]
  }

  /** Live sessions (pending ones included). */
  get size(): number {
    return this.#sessions.size
  }

  /** Closes every session and refuses further offers. */
  stop(): void {
    this.#stopped = true
    this.#answerer.stop()
  }

  #live(id: string): Session {
    const session = this.#sessions.get(id)
    if (session === undefined) throw new NotFoundError(`no live WebRTC session ${id.slice(0, 64)}`)
    return session
  }

  #forget(session: Session): void {
    if (!this.#sessions.delete(session.view.id)) return
    this.#byConnection.delete(session.handle.id)
    session.view.state = 'closed'
    this.#closed.unshift({ ...session.view })
    this.#closed.splice(RECENT_CLOSED)
    this.#log.debug({ session: session.view.id, requests: session.view.requests }, 'WebRTC session closed')
  }

  #serve(connection: WebRtcConnection): void {
    const session = this.#byConnection.get(connection.id)
    // A channel can only open once the offerer holds our answer, so the session exists by then.
    if (session === undefined) return connection.close()
    session.view.state = 'connected'
    const server = serveChannel(
      connection.channel,
      (body, context) => {
        session.view.requests++
        return this.#handler(body, context)
      },
      { maxInFlight: this.#chatInFlight },
    )
    void connection.closed.then(() => server.stop())
  }
}
