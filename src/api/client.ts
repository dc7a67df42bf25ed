/**
 * A typed client of the node's HTTP API (fetch-based; Node ≥ 18 and browsers — the dashboard
 * uses it, so this module and everything it imports stay free of Node built-ins). Answers are
 * the API's JSON as documented in schemas.ts: amounts are decimal strings (`BigInt(x)` them),
 * bytes are hex. Every failure is an `ApiError`: the API's own error answer (`code`, `reason`),
 * or `UNREACHABLE` / `TIMEOUT` / `BAD_RESPONSE` when no usable answer came back.
 *
 *   const client = new DonghaeClient('http://127.0.0.1:26657', { token })
 *   await client.transfer({ to, amount: '1000' })               // operator route: needs the token
 *   for await (const e of client.events({ types: ['block'] })) showHeight(e.data.height)
 *   const { receipt } = await client.infer({ model: 'digits-mlp', inputs })
 *   await verifyReceiptJson(receipt)                            // WebCrypto; browsers and Node
 *
 * Published as `donghae/client`.
 */
import { AbortError, InvalidInputError } from '../core/errors.ts'
import { untrustedText } from '../core/untrusted-text.ts'
import { DEFAULT_REQUEST_TIMEOUT_MS } from './constants.ts'
import { ApiError } from './errors.ts'
import { EVENT_TYPES, type EventType, type NodeEvent } from './events.ts'
import type { DidRecordView, NatView, PeerView } from './net-api.ts'
import type {
  AccountJson,
  BlockJson,
  LightBlockJson,
  NodeInfoJson,
  OperatorJson,
  OperatorTransferJson,
  OperatorTransferRequestJson,
  ProofJson,
  StatusJson,
  SubmitTxJson,
  TxStatusJson,
} from './schemas.ts'
import { SseParser } from './sse.ts'
import type { ReceiptJson } from '../inference/job.ts'

export { ApiError } from './errors.ts'
export { verifyReceiptJson, ReceiptCheckUnsupportedError, type ReceiptCheck } from './receipts.ts'
export { EVENT_TYPES, type EventMap, type EventType, type NodeEvent } from './events.ts'
export type * from './schemas.ts'
export type { ReceiptJson } from '../inference/job.ts'
export type { DidRecordView, NatView, PeerView } from './net-api.ts'

export interface CallOptions {
  signal?: AbortSignal
}

export interface OperatorCallOptions extends CallOptions {
  /** The operator token for this call. @default the client's `token` */
  token?: string
}

export interface DonghaeClientOptions {
  /** Per-call limit; a call past it fails with code TIMEOUT. @default DEFAULT_REQUEST_TIMEOUT_MS */
  timeoutMs?: number
  /** Operator token (`<home>/api-token`), sent only to operator routes. */
  token?: string
}

// ---- inference JSON (routes/inference.ts) -----------------------------------------------------

export interface TensorJson {
  dims: number[]
  type: string
  data: Array<number | string | boolean>
}

export interface TensorSpecJson {
  name: string
  type: string
  /** null = any size (e.g. the batch). */
  dims: Array<number | null>
}

export interface ModelJson {
  id: string
  object: 'model'
  /** Registration time, Unix seconds. */
  created: number
  /** Height of the block that registered it (0: the genesis). */
  height: number
  owned_by: string
  cid: string
  version: string
  price: string
  kind: 'tensor' | 'text'
  inputs: TensorSpecJson[]
  outputs: TensorSpecJson[]
  workers: number
}

export interface InferRequestJson {
  model: string
  inputs: Record<string, TensorJson>
}

export interface InferResponseJson {
  outputs: Record<string, TensorJson>
  receipt: ReceiptJson
  worker: string
  gateway: string
  latencyMs: number
  attempts?: number
}

export interface WorkerJson {
  did: string
  bonded: string
  ep: string
  runtime?: string
  streak: number
  quarantined: boolean
  schedulable: boolean
  jobs: number
  /** Jobs per second. */
  throughput: number
  reputation: number
  auditsPassed?: number
  auditsFailed?: number
  slashes?: number
  live?: boolean
}

export interface InferenceStatsJson {
  jobs: number
  failures?: number
  jobsPerSecond: number
  latencyMs: { p50: number; p99: number }
  audits: number
  slashes: number
  /** Models the worker holds back after they broke a sandbox limit. */
  badModels?: Array<{ cid: string; reason: string; failures: number; markedAt: number; retryAt: number }>
  [more: string]: unknown
}

export interface DepositJson {
  client: string
  gateway: string
  amount: string
  reserved: string
  unlocking: Array<{ amount: string; at: number }>
}

export interface SettlementJson {
  jobId: string
  receiptId: string
  worker: string
  height: number
  /** State key of the batch record (prove it with GET /v1/state/proof). */
  batchKey: string
  root: string
  index: number
  count: number
  proof: Array<{ hash: string; right: boolean }>
}

export interface CompletionJson {
  id: string
  object: 'text_completion'
  created: number
  model: string
  choices: Array<{ index: number; text: string; finish_reason: string }>
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number }
  donghae: { receipts: string[]; workers: string[]; fee: string }
}

export interface NetJson {
  peerId: string
  addresses: string[]
  peers: PeerView[]
  nat: NatView
}

// ---- events ------------------------------------------------------------------------------------

export interface EventStreamOptions extends CallOptions {
  /** Only these types. @default all */
  types?: readonly EventType[]
  /** Resume after this event (SSE Last-Event-ID). */
  lastEventId?: number
  /** Reconnect after the connection drops (resuming with Last-Event-ID). @default true */
  reconnect?: boolean
  /** No bytes (not even a heartbeat) for this long means the connection is dead. @default 45 000 ms */
  idleTimeoutMs?: number
  /** Called whenever the stream (re)connects or loses its connection. */
  onStatus?(status: 'open' | 'closed', error?: unknown): void
  /** Called on each (re)connection with the seq of the node's latest event then: events up to it are replayed history. */
  onOpen?(info: { latestSeq: number }): void
}

/** Delay before reconnecting a dropped event stream, unless the server asked for another. */
const RECONNECT_MS = 2_000
const EVENT_IDLE_TIMEOUT_MS = 45_000

const TX_POLL_MS = 500

/** Longest error message kept from a node's answer. */
const MAX_REMOTE_MESSAGE = 1_000

function hex(bytes: Uint8Array): string {
  let out = ''
  for (const b of bytes) out += b.toString(16).padStart(2, '0')
  return out
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) return reject(new AbortError())
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(new AbortError())
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

export class DonghaeClient {
  /** The node's base URL, without a trailing slash. */
  readonly baseUrl: string
  readonly #timeoutMs: number
  #token: string | undefined

  constructor(baseUrl: string, options: DonghaeClientOptions = {}) {
    let url: URL
    try {
      url = new URL(baseUrl)
    } catch {
      throw new InvalidInputError(
        `node URL ${JSON.stringify(baseUrl)} is not a URL; expected e.g. http://127.0.0.1:26657`,
      )
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new InvalidInputError(`node URL ${baseUrl} must use http or https`)
    }
    this.baseUrl = url.href.replace(/\/+$/, '')
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
    this.#token = options.token
  }

  /** Sets (or clears) the operator token used by operator calls. */
  setToken(token: string | undefined): void {
    this.#token = token
  }

  // ---- chain ----

  /** Versions and uptime of the node's software. */
  info(options: CallOptions = {}): Promise<NodeInfoJson> {
    return this.#request('GET', '/v1/node', undefined, options)
  }

  status(options: CallOptions = {}): Promise<StatusJson> {
    return this.#request('GET', '/v1/status', undefined, options)
  }

  block(height: number, options: CallOptions = {}): Promise<BlockJson> {
    return this.#request('GET', `/v1/chain/blocks/${height}`, undefined, options)
  }

  account(did: string, options: CallOptions = {}): Promise<AccountJson> {
    return this.#request('GET', `/v1/accounts/${encodeURIComponent(did)}`, undefined, options)
  }

  /** Submits an encoded signed transaction (`encodeTx`); resolves once the mempool admitted it. */
  submitTx(bytes: Uint8Array, options: CallOptions = {}): Promise<SubmitTxJson> {
    return this.#request('POST', '/v1/tx', { tx: hex(bytes) }, options)
  }

  /** Where a transaction was committed; ApiError NOT_FOUND while it is pending or unknown. */
  tx(hash: string | Uint8Array, options: CallOptions = {}): Promise<TxStatusJson> {
    const text = typeof hash === 'string' ? hash : hex(hash)
    return this.#request('GET', `/v1/tx/${encodeURIComponent(text)}`, undefined, options)
  }

  /** Polls until the transaction is committed; ApiError TIMEOUT after `timeoutMs`. */
  async waitForTx(hash: string, options: CallOptions & { timeoutMs?: number } = {}): Promise<TxStatusJson> {
    const deadline = Date.now() + (options.timeoutMs ?? 60_000)
    for (;;) {
      try {
        return await this.tx(hash, options)
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 'NOT_FOUND')) throw err
      }
      if (Date.now() >= deadline)
        throw new ApiError({ status: 0, code: 'TIMEOUT', message: `transaction ${hash} was not committed in time` })
      await sleep(TX_POLL_MS, options.signal)
    }
  }

  /** A state proof of a raw key (hex) against the latest state root, or that of `height`. */
  proof(keyHex: string, options: CallOptions & { height?: number } = {}): Promise<ProofJson> {
    const at = options.height === undefined ? '' : `&height=${options.height}`
    return this.#request('GET', `/v1/state/proof?key=${encodeURIComponent(keyHex)}${at}`, undefined, options)
  }

  /** A header with its full commit certificate, for a light client to check (api/light-client.ts). */
  lightBlock(height: number, options: CallOptions = {}): Promise<LightBlockJson> {
    return this.#request('GET', `/v1/chain/headers/${height}`, undefined, options)
  }

  /** The chain's genesis document, as JSON (the genesis file's format). */
  genesis(options: CallOptions = {}): Promise<unknown> {
    return this.#request('GET', '/v1/chain/genesis', undefined, options)
  }

  // ---- network ----

  /** This node's addresses, peers and NAT state. */
  net(options: CallOptions = {}): Promise<NetJson> {
    return this.#request('GET', '/v1/net', undefined, options)
  }

  nat(options: CallOptions = {}): Promise<NatView> {
    return this.#request('GET', '/v1/net/nat', undefined, options)
  }

  /** A DID's record in the DHT, as the node finds it. */
  didRecord(did: string, options: CallOptions = {}): Promise<DidRecordView> {
    return this.#request('GET', `/v1/did/${encodeURIComponent(did)}`, undefined, options)
  }

  // ---- inference ----

  models(options: CallOptions = {}): Promise<{ object: 'list'; data: ModelJson[] }> {
    return this.#request('GET', '/v1/models', undefined, options)
  }

  workers(options: CallOptions = {}): Promise<{ workers: WorkerJson[] }> {
    return this.#request('GET', '/v1/inference/workers', undefined, options)
  }

  inferenceStats(options: CallOptions = {}): Promise<InferenceStatsJson> {
    return this.#request('GET', '/v1/inference/stats', undefined, options)
  }

  /** What `client` has deposited with this node as gateway, and what its jobs in flight hold. */
  deposit(client: string, options: CallOptions = {}): Promise<DepositJson> {
    return this.#request('GET', `/v1/inference/deposits/${encodeURIComponent(client)}`, undefined, options)
  }

  /** Runs a model through this node as gateway; the node pays (operator token). */
  infer(request: InferRequestJson, options: OperatorCallOptions = {}): Promise<InferResponseJson> {
    return this.#request('POST', '/v1/infer', request, options, this.#auth(options))
  }

  /** Where a job's receipt was settled on chain, with its Merkle proof in the batch (404 until then). */
  settlement(jobId: string, options: CallOptions = {}): Promise<SettlementJson> {
    return this.#request('GET', `/v1/jobs/${encodeURIComponent(jobId)}/settlement`, undefined, options)
  }

  /** OpenAI-compatible text completion (the node pays: operator token). */
  completions(
    request: { model: string; prompt: string; max_tokens?: number },
    options: OperatorCallOptions = {},
  ): Promise<CompletionJson> {
    return this.#request('POST', '/v1/completions', request, options, this.#auth(options))
  }

  /** Stores an ONNX file on the node and registers it on chain under the node's key (operator token). */
  publishModel(
    request: {
      name: string
      price: string
      version?: string
      kind?: 'tensor' | 'text'
      /** The ONNX file, base64. */
      file: string
      /** Text models: the tokenizer JSON, base64. */
      codec?: string
    },
    options: OperatorCallOptions = {},
  ): Promise<{ cid: string; txHash: string }> {
    return this.#request('POST', '/v1/operator/models', request, options, this.#auth(options))
  }

  // ---- operator ----

  /** Checks the operator token; answers the node's own account. */
  operator(options: OperatorCallOptions = {}): Promise<OperatorJson> {
    return this.#request('GET', '/v1/operator', undefined, options, this.#auth(options))
  }

  /** Sends tokens from the node's own account (operator token); resolves when the mempool took it. */
  transfer(request: OperatorTransferRequestJson, options: OperatorCallOptions = {}): Promise<OperatorTransferJson> {
    return this.#request('POST', '/v1/operator/transfer', request, options, this.#auth(options))
  }

  // ---- metrics and events ----

  /** The Prometheus text of GET /metrics. */
  async metrics(options: CallOptions = {}): Promise<string> {
    const response = await this.#fetch('GET', '/metrics', undefined, options, { accept: 'text/plain' })
    if (response.status !== 200) return this.#parse(response.status, response.body, `${this.baseUrl}/metrics`)
    return response.body
  }

  /**
   * The node's events (GET /v1/events) as an async iterator, over fetch streaming. It reconnects
   * after a dropped connection (resuming with Last-Event-ID) until the signal aborts or the loop
   * breaks; an API error answer (4xx) ends it with an ApiError.
   */
  async *events(options: EventStreamOptions = {}): AsyncGenerator<NodeEvent, void, undefined> {
    let lastId = options.lastEventId
    const query = options.types === undefined ? '' : `?types=${options.types.join(',')}`
    const parser = { retryMs: RECONNECT_MS }
    const aborted = (): boolean => options.signal?.aborted === true
    for (;;) {
      if (aborted()) return
      const connection = new AbortController()
      const signal =
        options.signal === undefined ? connection.signal : AbortSignal.any([options.signal, connection.signal])
      try {
        const response = await fetch(`${this.baseUrl}/v1/events${query}`, {
          signal,
          headers: {
            accept: 'text/event-stream',
            ...(lastId === undefined ? {} : { 'last-event-id': String(lastId) }),
          },
        })
        if (!response.ok) this.#parse(response.status, await response.text(), `${this.baseUrl}/v1/events`)
        if (response.body === null) throw new Error('the event stream has no body')
        options.onOpen?.({ latestSeq: Number(response.headers.get('x-donghae-latest-event') ?? 0) })
        options.onStatus?.('open')
        for await (const event of this.#read(response.body, connection, options, parser)) {
          lastId = event.seq
          yield event
        }
        options.onStatus?.('closed')
      } catch (err) {
        if (aborted()) return
        if (err instanceof ApiError && err.status >= 400 && err.status < 500) throw err
        options.onStatus?.('closed', err)
        if (options.reconnect === false)
          throw err instanceof ApiError
            ? err
            : new ApiError({
                status: 0,
                code: 'UNREACHABLE',
                message: `lost the event stream of ${this.baseUrl}`,
                cause: err,
              })
      } finally {
        connection.abort()
      }
      if (options.reconnect === false) return
      try {
        await sleep(parser.retryMs, options.signal)
      } catch {
        return
      }
    }
  }

  async *#read(
    body: ReadableStream<Uint8Array>,
    connection: AbortController,
    options: EventStreamOptions,
    state: { retryMs: number },
  ): AsyncGenerator<NodeEvent> {
    const parser = new SseParser()
    const decoder = new TextDecoder()
    const reader = body.getReader()
    const idleMs = options.idleTimeoutMs ?? EVENT_IDLE_TIMEOUT_MS
    let idle = setTimeout(() => connection.abort(), idleMs)
    try {
      for (;;) {
        const { value, done } = await reader.read()
        if (done) return
        clearTimeout(idle)
        idle = setTimeout(() => connection.abort(), idleMs)
        for (const message of parser.push(decoder.decode(value, { stream: true }))) {
          if (!(EVENT_TYPES as readonly string[]).includes(message.event)) continue
          yield { seq: Number(message.id), type: message.event, data: JSON.parse(message.data) } as NodeEvent
        }
        if (parser.retryMs !== undefined) state.retryMs = parser.retryMs
      }
    } finally {
      clearTimeout(idle)
      await reader.cancel().catch(() => undefined)
    }
  }

  // ---- transport ----

  #auth(options: OperatorCallOptions): Record<string, string> {
    const token = options.token ?? this.#token
    return token === undefined ? {} : { authorization: `Bearer ${token}` }
  }

  async #fetch(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    options: CallOptions,
    headers: Record<string, string>,
  ): Promise<{ status: number; body: string }> {
    if (options.signal?.aborted === true) throw new AbortError()
    const timeout = new AbortController()
    const timer = setTimeout(() => timeout.abort(), this.#timeoutMs)
    const signal = options.signal === undefined ? timeout.signal : AbortSignal.any([options.signal, timeout.signal])
    try {
      const response = await fetch(`${this.baseUrl}${path}`, {
        method,
        signal,
        headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      })
      return { status: response.status, body: await response.text() }
    } catch (err) {
      if (timeout.signal.aborted) {
        throw new ApiError({
          status: 0,
          code: 'TIMEOUT',
          message: `the node at ${this.baseUrl} did not answer ${method} ${path} within ${this.#timeoutMs} ms`,
          cause: err,
        })
      }
      if (signal.aborted) throw new AbortError(undefined, { cause: err })
      throw new ApiError({
        status: 0,
        code: 'UNREACHABLE',
        message: `cannot reach the node at ${this.baseUrl} (${networkDetail(err)})`,
        cause: err,
      })
    } finally {
      clearTimeout(timer)
    }
  }

  async #request<T>(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    options: CallOptions,
    headers: Record<string, string> = {},
  ): Promise<T> {
    const response = await this.#fetch(method, path, body, options, { accept: 'application/json', ...headers })
    return this.#parse<T>(response.status, response.body, `${this.baseUrl}${path}`)
  }

  #parse<T>(status: number, text: string, url: string): T {
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      throw new ApiError({
        status,
        code: 'BAD_RESPONSE',
        message: `${url} answered HTTP ${status} with a body that is not JSON; is it a Donghae node?`,
      })
    }
    if (status >= 200 && status < 300) return json as T
    const error = (json as { error?: { code?: unknown; message?: unknown; reason?: unknown } } | null)?.error
    if (typeof error?.code !== 'string' || typeof error.message !== 'string') {
      throw new ApiError({
        status,
        code: 'BAD_RESPONSE',
        message: `${url} answered HTTP ${status} without a Donghae error body`,
      })
    }
    // The node is someone else's program: its words are cut and stripped of control characters
    // before they reach a terminal or a page.
    throw new ApiError({
      status,
      code: untrustedText(error.code, 64),
      message: untrustedText(error.message, MAX_REMOTE_MESSAGE),
      reason: typeof error.reason === 'string' ? untrustedText(error.reason, 64) : undefined,
    })
  }
}

/** The most useful line of a fetch failure: undici puts the system error in `cause`. */
function networkDetail(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause
  if (typeof cause?.code === 'string') return cause.code
  if (typeof cause?.message === 'string') return cause.message
  return err instanceof Error ? err.message : String(err)
}
