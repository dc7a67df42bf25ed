/**
 * A typed client of the node's HTTP API (fetch-based; Node >= 18 and browsers - the dashboard
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
 *   const image = { dims: [1, 3, 640, 640], type: 'float32', data: pixels }    // a Float32Array
 *   const { outputs } = await client.inferBinary({ model: 'yolo', inputs: { images: image } })  // CBOR
 *   await client.inferRaw('yolo', image)                        // application/octet-stream
 *
 * Published as `donghae/client`.
 */
import { AbortError, InvalidInputError } from '../core/errors.ts'
import { untrustedText } from '../core/untrusted-text.ts'
import { DEFAULT_REQUEST_TIMEOUT_MS } from './constants.ts'
import { CBOR_MEDIA_TYPE, decodeCbor, encodeCbor } from './cbor.ts'
import { ApiError } from './errors.ts'
import { EVENT_TYPES, type EventType, type NodeEvent } from './events.ts'
import type { DidRecordView, NatView, PeerView } from './net-api.ts'
import type { WebRtcSessionView } from './webrtc-api.ts'
import type { DirectoryEntryView, DirectoryResolution, DirectoryWriteResult, OwnRegistration } from './directory-api.ts'
import type {
  DeliveryView,
  LedgerVerification,
  WalletHistoryQuery,
  WalletPaymentView,
  WalletSendBody,
  WalletSummary,
} from './wallet-api.ts'
import type { DeletionJson, RegistrationJson } from '../directory/record.ts'
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
  SubmitTxsJson,
  TxStatusJson,
} from './schemas.ts'
import { SseParser } from './sse.ts'
import type { ReceiptJson } from '../inference/job.ts'
import type { FetchView } from './inference-api.ts'

export { ApiError } from './errors.ts'
export { verifyReceiptJson, ReceiptCheckUnsupportedError, type ReceiptCheck } from './receipts.ts'
export { EVENT_TYPES, type EventMap, type EventType, type NodeEvent } from './events.ts'
export type * from './schemas.ts'
export type { ReceiptJson } from '../inference/job.ts'
export type { DidRecordView, NatView, PeerView } from './net-api.ts'
export type { WebRtcSessionView } from './webrtc-api.ts'
export type { DirectoryEntryView, DirectoryResolution, DirectoryWriteResult, OwnRegistration } from './directory-api.ts'
export type {
  DeliveryView,
  LedgerVerification,
  WalletHistoryQuery,
  WalletPaymentView,
  WalletSendBody,
  WalletSummary,
} from './wallet-api.ts'
export type { DeletionJson, RegistrationJson } from '../directory/record.ts'

/** GET /v1/directory/search's parameters (routes/directory.ts). */
export interface DirectorySearchJson {
  /** Free text; every term must match. */
  query?: string
  category?: string
  tag?: string
  /** 1 to 50. @default 20 */
  limit?: number
  /** The previous page's `cursor`. */
  cursor?: string
}

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

/** A tensor's values as base64 of their little-endian bytes (`tensorToB64`). */
export interface TensorB64Json {
  dims: number[]
  type: string
  data_b64: string
}

export type TensorTypeName = 'float32' | 'int32' | 'int64' | 'uint8' | 'bool'

/** A tensor as typed-array values (bool: a Uint8Array of 0 and 1), for the binary forms. */
export interface BinaryTensor {
  dims: number[]
  type: TensorTypeName
  data: Float32Array | Int32Array | BigInt64Array | Uint8Array
}

const TYPE_SIZES: Readonly<Record<TensorTypeName, number>> = { float32: 4, int32: 4, int64: 8, uint8: 1, bool: 1 }

/** The little-endian bytes of a tensor's values (a view, on the little-endian machines browsers and Node run on). */
export function tensorBytesOf(t: BinaryTensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)
}

/** A tensor from little-endian bytes (copied); throws InvalidInputError when they do not fill `dims`. */
export function tensorFromBytes(type: string, dims: number[], bytes: Uint8Array): BinaryTensor {
  if (!Object.hasOwn(TYPE_SIZES, type)) throw new InvalidInputError(`unknown tensor type ${JSON.stringify(type)}`)
  if (!Array.isArray(dims) || !dims.every((d) => Number.isSafeInteger(d) && d >= 0))
    throw new InvalidInputError('dims must be an array of non-negative integers')
  if (!(bytes instanceof Uint8Array)) throw new InvalidInputError('tensor data must be bytes')
  const size = TYPE_SIZES[type as TensorTypeName]
  const count = dims.reduce((n, d) => n * d, 1)
  if (bytes.length !== count * size)
    throw new InvalidInputError(`${bytes.length} bytes do not fill ${type} [${dims.join(',')}] (${count * size} bytes)`)
  const copy = new Uint8Array(bytes) // aligned and owned (a Node Buffer may be a view into a larger one)
  const data =
    type === 'float32'
      ? new Float32Array(copy.buffer)
      : type === 'int32'
        ? new Int32Array(copy.buffer)
        : type === 'int64'
          ? new BigInt64Array(copy.buffer)
          : copy
  return { dims: [...dims], type: type as TensorTypeName, data }
}

function base64Of(bytes: Uint8Array): string {
  let binary = ''
  for (let i = 0; i < bytes.length; i += 0x8000)
    binary += String.fromCharCode(...bytes.subarray(i, Math.min(i + 0x8000, bytes.length)))
  return btoa(binary)
}

function bytesOfBase64(text: string): Uint8Array {
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'))
  const out = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i)
  return out
}

/** The base64 JSON form of a tensor (POST /v1/infer accepts it wherever it takes a tensor). */
export function tensorToB64(t: BinaryTensor): TensorB64Json {
  return { dims: [...t.dims], type: t.type, data_b64: base64Of(tensorBytesOf(t)) }
}

/** A tensor from its base64 JSON form (as answers with `output_encoding: 'b64'` carry). */
export function tensorFromB64(t: TensorB64Json): BinaryTensor {
  return tensorFromBytes(t.type, t.dims, bytesOfBase64(t.data_b64))
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
  /** Per call; language models: per output token. */
  price: string
  /** Language models: fee per prompt token. */
  promptPrice?: string
  /** Language models: the context window, tokens. */
  contextLength?: number
  kind: 'tensor' | 'text' | 'lm'
  inputs: TensorSpecJson[]
  outputs: TensorSpecJson[]
  workers: number
}

export interface InferRequestJson {
  model: string
  inputs: Record<string, TensorJson | TensorB64Json>
  /** A job signed by the client (then the client pays, and no token is needed). */
  job?: ReceiptJson['job']
}

export interface InferBinaryRequest {
  model: string
  inputs: Record<string, BinaryTensor>
  job?: ReceiptJson['job']
}

/** An inference answer with the outputs as typed arrays. */
export interface InferBinaryResponse extends Omit<InferResponseJson, 'outputs'> {
  outputs: Record<string, BinaryTensor>
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
  system_fingerprint?: string
  choices: Array<{ index: number; text: string; finish_reason: 'stop' | 'length' }>
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number }
  donghae: { receipts: string[]; workers: string[]; worker?: string; fee: string; ttftMs?: number }
}

/** POST /v1/completions parameters (OpenAI's, plus top_k). */
export interface CompletionRequestJson {
  model: string
  prompt: string
  max_tokens?: number
  temperature?: number
  top_p?: number
  top_k?: number
  seed?: number
  stop?: string | string[]
}

/** One message of a chat (POST /v1/chat/completions). */
export interface ChatMessageJson {
  role: 'system' | 'developer' | 'user' | 'assistant'
  content: string
}

/** POST /v1/chat/completions parameters (OpenAI's, plus top_k); `stream` is set by `chatStream`. */
export interface ChatRequestJson {
  model: string
  messages: ChatMessageJson[]
  max_tokens?: number
  temperature?: number
  top_p?: number
  top_k?: number
  seed?: number
  stop?: string | string[]
}

/** Donghae's part of a completion answer: receipts, worker, fee, time to first token. */
export interface CompletionExtraJson {
  receipts: string[]
  /** A language model's completion is one job: its whole receipt. */
  receipt?: ReceiptJson
  workers: string[]
  worker?: string
  /** Base units, a decimal string. */
  fee: string
  /** Milliseconds from the request to the first generated token, as the gateway saw it. */
  ttftMs?: number
}

/** What `chatStream` resolves with once the stream ends. */
export interface ChatStreamResult {
  id: string
  model: string
  /** The whole answer (the pieces `onText` was given, joined). */
  text: string
  finishReason: 'stop' | 'length' | undefined
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | undefined
  donghae: CompletionExtraJson | undefined
}

/**
 * A model's files being fetched into a node's content store, block by block from several peers
 * (GET /v1/inference/fetches, POST /v1/operator/models/{model}/fetch, the `model.fetch` event).
 */
export type FetchJson = FetchView

export interface StreamCallOptions extends OperatorCallOptions {
  /** No bytes (not even a heartbeat) for this long ends the call with TIMEOUT. @default 45 000 ms */
  idleTimeoutMs?: number
}

// ---- experts JSON (routes/experts.ts): bigint values are decimal strings, bytes hex ----

export interface ScoreJson {
  lossMicroNats: string
  accuracyPpm: number
}

export interface ExpertFamilyJson {
  family: string
  version: number
  owner: string
  layers: number
  expertsPerLayer: number
  topK: number
  blocks: number
  score?: ScoreJson
}

export interface ExpertJson {
  family: string
  version: number
  name: string
  layer: number
  expert: number | null
  block: string
  miner: string
  height: number
  payloadHash: string
  payloadBytes: number
  calls: number
  meanLatencyMs: number
  lastUsedHeight: number
  rewards: string
  hosts: string[]
  /** The raw state key of its ParamIndex entry: `client.proof(indexKey)`. */
  indexKey: string
}

export interface ExpertMetaJson {
  family: string
  version: number
  arch: {
    vocabSize: number
    dModel: number
    nLayers: number
    nHeads: number
    nKvHeads: number
    dFf: number
    contextLength: number
    ropeTheta: number
    normEpsE9: number
    expertsPerLayer: number
    topK: number
    gating: string
    ffn: string
    tieEmbeddings: boolean
  }
  tokenizer: { json: string; config: string }
  trunk: string
  validation: { cid: string; windows: number; windowTokens: number }
  carry: string[]
  note: string
  hash: string
  owner: string
  height: number
}

export type ProposalStatusJson = 'pending' | 'accepted' | 'refused' | 'expired'

export interface ProposalJson {
  id: string
  family: string
  version: number
  proposer: string
  blocks: string[]
  replaces: Record<string, string>
  claim: ScoreJson
  bond: string
  height: number
  deadline: number
  status: ProposalStatusJson
  reason: string
  score?: ScoreJson
  baseline?: ScoreJson
}

export interface ExpertBlockJson {
  hash: string
  header: {
    index: number
    chainId: string
    version: number
    dependsOn: string[]
    blockType: string
    expertName: string
    layerId: number
    payloadHash: string
    payloadBytes: number
    shapes: Record<string, number[]>
    nonce: string
    miner: string
    payloadSig: string
  }
  proposal: string
  height: number
  status: ProposalStatusJson
  score?: ScoreJson
}

export interface ExpertDagJson {
  family: string
  version: number
  meta: ExpertMetaJson
  blocks: Array<{
    hash: string
    name: string
    layer: number
    type: 'router' | 'expert'
    index: number
    current: boolean
    dependsOn: string[]
  }>
}

export interface ExpertStatsJson {
  family: string
  version: number
  name: string
  block: string
  miner: string
  calls: number
  meanLatencyMs: number
  lastUsedHeight: number
  rewards: string
  hosts: number
}

export interface MoeChatRequestJson {
  prompt?: string
  messages?: Array<{ role: string; content: string }>
  family?: string
  use_distributed?: boolean
  top_k_experts?: number
  max_tokens?: number
  temperature?: number
  seed?: number
}

export interface MoeChatJson {
  family: string
  version: number
  text: string
  promptTokens: number
  outputTokens: number
  finish: 'stop' | 'length'
  layers: Array<{ layer: number; experts: Array<{ name: string; block: string; tokens: number; hosts: string[] }> }>
  masked: number
  elapsedMs: number
}

export interface ExpertHostJson {
  did: string
  experts: string[]
  calls: number
  failures: number
  meanLatencyMs: number
  quarantined: boolean
  quarantinedUntil: number | null
  auditsPassed: number
  auditsFailed: number
  lastSeen: number | null
}

export interface ExpertGroupJson {
  experts: string[]
  together: number
  hosts: string[]
}

export interface ReplicationSuggestionJson {
  expert: string
  block: string
  calls: number
  replicas: number
  wanted: number
}

export interface IntegrityStatusJson {
  auditPpm: number
  audits: number
  auditFailures: number
  quarantined: string[]
  masked: number
  failovers: number
}

export interface TrainingJson {
  enabled: boolean
  running: boolean
  expert?: string
  steps: number
  paused: number
  rounds: number
  lastYieldMs: number | null
  maxYieldMs: number
  /** Decimal micro-nats, or null before a round. */
  lastGainMicroNats: string | null
  proposals: string[]
}

export interface ProposeRequestJson {
  family?: string
  /** `layer0.expert3`. */
  expert: string
  /** An absolute path to a safetensors file on the node's own disk. */
  weightsPath?: string
  train?: { steps: number; dataset?: string }
}

export interface ProposeResultJson {
  proposal: string
  txHash: string
  block: string
  claim: ScoreJson
  powNonce: string
  powMs: number
}

export interface ImportResultJson {
  family: string
  version: number
  blocks: number
  proposal: string
}

/** Options of the experts' SSE calls: `onProgress` gets each progress line. */
export type ExpertsStreamOptions = StreamCallOptions & { onProgress?: (line: string) => void }

/** A query string of the defined values. */
function queryOf(values: Record<string, string | number | undefined>): string {
  const parts = Object.entries(values)
    .filter((e): e is [string, string | number] => e[1] !== undefined)
    .map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`)
  return parts.length === 0 ? '' : `?${parts.join('&')}`
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

  /**
   * Submits 1 to MAX_SUBMIT_TXS encoded signed transactions in one request; resolves with one
   * result per transaction, in order (its hash, or the status and error it was refused with).
   */
  submitTxs(txs: readonly Uint8Array[], options: CallOptions = {}): Promise<SubmitTxsJson> {
    return this.#request('POST', '/v1/txs', { txs: txs.map(hex) }, options)
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

  // ---- DID directory (routes/directory.ts; a node with directory=true) ----

  /** Registers or updates a DID with a registration signed by its key (`signRegistration`, `registrationToJson`). */
  directoryRegister(record: RegistrationJson, options: CallOptions = {}): Promise<DirectoryWriteResult> {
    return this.#request('POST', '/v1/directory/register', record, options)
  }

  /** Deletes a DID's entry with a deletion signed by its key (`signDeletion`, `deletionToJson`). */
  directoryDelete(deletion: DeletionJson, options: CallOptions = {}): Promise<DirectoryWriteResult> {
    return this.#request('DELETE', '/v1/directory/register', deletion, options)
  }

  /** Ranked search with category and tag filters; pass `cursor` back for the next page. */
  directorySearch(
    query: DirectorySearchJson,
    options: CallOptions = {},
  ): Promise<{ entries: DirectoryEntryView[]; cursor?: string }> {
    const params = new URLSearchParams()
    for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value))
    const text = params.toString()
    return this.#request('GET', `/v1/directory/search${text === '' ? '' : `?${text}`}`, undefined, options)
  }

  /** One DID's live entry; ApiError NOT_FOUND when it has none. */
  directoryEntry(did: string, options: CallOptions = {}): Promise<DirectoryEntryView> {
    return this.#request('GET', `/v1/directory/entries/${encodeURIComponent(did)}`, undefined, options)
  }

  /** One DID's entry checked against its DID record in the DHT. */
  directoryResolve(did: string, options: CallOptions = {}): Promise<DirectoryResolution> {
    return this.#request('GET', `/v1/directory/resolve/${encodeURIComponent(did)}`, undefined, options)
  }

  /** Registers the node itself, signed with its key (operator). */
  directoryRegisterOwn(request: OwnRegistration, options: OperatorCallOptions = {}): Promise<DirectoryWriteResult> {
    return this.#request('POST', '/v1/operator/directory/register', request, options, this.#auth(options))
  }

  /** Deletes the node's own entry (operator). */
  directoryDeleteOwn(options: OperatorCallOptions = {}): Promise<DirectoryWriteResult> {
    return this.#request('DELETE', '/v1/operator/directory/register', undefined, options, this.#auth(options))
  }

  // ---- the wallet (routes/wallet.ts; all operator routes) ----

  /** Balance, pending payments, deliveries and the ledger's head (operator). */
  walletSummary(options: OperatorCallOptions = {}): Promise<WalletSummary> {
    return this.#request('GET', '/v1/operator/wallet', undefined, options, this.#auth(options))
  }

  /** Payments newest first, memos decrypted (operator). */
  walletHistory(
    query: WalletHistoryQuery = {},
    options: OperatorCallOptions = {},
  ): Promise<{ payments: WalletPaymentView[]; cursor?: string }> {
    const params = new URLSearchParams()
    if (query.limit !== undefined) params.set('limit', String(query.limit))
    if (query.cursor !== undefined) params.set('cursor', query.cursor)
    if (query.direction !== undefined) params.set('direction', query.direction)
    const search = params.size === 0 ? '' : `?${params.toString()}`
    return this.#request('GET', `/v1/operator/wallet/payments${search}`, undefined, options, this.#auth(options))
  }

  /** One payment by its id (hex) (operator). */
  walletPayment(id: string, options: OperatorCallOptions = {}): Promise<WalletPaymentView> {
    return this.#request(
      'GET',
      `/v1/operator/wallet/payments/${encodeURIComponent(id)}`,
      undefined,
      options,
      this.#auth(options),
    )
  }

  /** Pays a DID; the answer is the payment, pending (operator). */
  walletSend(body: WalletSendBody, options: OperatorCallOptions = {}): Promise<WalletPaymentView> {
    return this.#request('POST', '/v1/operator/wallet/send', body, options, this.#auth(options))
  }

  /** Envelopes still waiting for their recipients (operator). */
  walletDeliveries(options: OperatorCallOptions = {}): Promise<{ deliveries: DeliveryView[] }> {
    return this.#request('GET', '/v1/operator/wallet/deliveries', undefined, options, this.#auth(options))
  }

  /** Re-reads and verifies the node's ledger; a tampered one is an ApiError 409 LEDGER_TAMPERED (operator). */
  walletVerify(options: OperatorCallOptions = {}): Promise<LedgerVerification> {
    return this.#request('POST', '/v1/operator/wallet/verify', undefined, options, this.#auth(options))
  }

  // ---- WebRTC signalling (routes/webrtc.ts) ----

  /** The node's WebRTC sessions, live ones then the recently closed (operator). */
  webrtcSessions(options: OperatorCallOptions = {}): Promise<{ sessions: WebRtcSessionView[] }> {
    return this.#request('GET', '/v1/webrtc/sessions', undefined, options, this.#auth(options))
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

  /** Runs a model through this node as gateway; the node pays (operator token) unless `job` is given. */
  infer(request: InferRequestJson, options: OperatorCallOptions = {}): Promise<InferResponseJson> {
    return this.#request('POST', '/v1/infer', request, options, this.#auth(options))
  }

  /**
   * `infer` with the tensors as bytes: a CBOR body answered in CBOR (up to 16 MiB of tensor data),
   * or with `encoding: 'b64'` JSON with `data_b64` both ways (up to 8 MiB of JSON).
   */
  async inferBinary(
    request: InferBinaryRequest,
    options: OperatorCallOptions & { encoding?: 'cbor' | 'b64' } = {},
  ): Promise<InferBinaryResponse> {
    const job = request.job === undefined ? {} : { job: request.job }
    if (options.encoding === 'b64') {
      const inputs = Object.fromEntries(Object.entries(request.inputs).map(([k, t]) => [k, tensorToB64(t)]))
      const answer = await this.#request<
        Omit<InferResponseJson, 'outputs'> & { outputs: Record<string, TensorB64Json> }
      >(
        'POST',
        '/v1/infer',
        { model: request.model, inputs, output_encoding: 'b64', ...job },
        options,
        this.#auth(options),
      )
      return { ...answer, outputs: mapValues(answer.outputs, tensorFromB64) }
    }
    const inputs = mapValues(request.inputs, (t) => ({ dims: t.dims, type: t.type, data: tensorBytesOf(t) }))
    const body = encodeCbor({ model: request.model, inputs, ...job })
    return this.#binaryAnswer('/v1/infer', body, CBOR_MEDIA_TYPE, options, this.#auth(options))
  }

  /**
   * Runs a single-input model on one tensor sent as raw bytes (POST /v1/infer/{model},
   * application/octet-stream); the node pays (operator token). The answer comes back in CBOR.
   */
  inferRaw(
    model: string,
    tensor: BinaryTensor,
    options: OperatorCallOptions & { name?: string } = {},
  ): Promise<InferBinaryResponse> {
    const headers = {
      ...this.#auth(options),
      'x-tensor-dims': tensor.dims.join(','),
      'x-tensor-type': tensor.type,
      ...(options.name === undefined ? {} : { 'x-tensor-name': options.name }),
    }
    return this.#binaryAnswer(
      `/v1/infer/${encodeURIComponent(model)}`,
      tensorBytesOf(tensor),
      'application/octet-stream',
      options,
      headers,
    )
  }

  async #binaryAnswer(
    path: string,
    body: Uint8Array,
    contentType: string,
    options: CallOptions,
    headers: Record<string, string>,
  ): Promise<InferBinaryResponse> {
    const url = `${this.baseUrl}${path}`
    const response = await this.#send('POST', path, options, {
      headers: { ...headers, 'content-type': contentType, accept: `${CBOR_MEDIA_TYPE}, application/json;q=0.5` },
      body,
    })
    if (!response.contentType.startsWith(CBOR_MEDIA_TYPE)) {
      if (response.status >= 200 && response.status < 300)
        throw new ApiError({
          status: response.status,
          code: 'BAD_RESPONSE',
          message: `${url} did not answer in CBOR; does the node take binary tensors?`,
        })
      return this.#parse(response.status, new TextDecoder().decode(response.bytes), url) // throws the API's error
    }
    let answer: Omit<InferResponseJson, 'outputs'> & {
      outputs: Record<string, { dims: number[]; type: string; data: Uint8Array }>
    }
    try {
      answer = decodeCbor(response.bytes) as typeof answer
      return { ...answer, outputs: mapValues(answer.outputs, (t) => tensorFromBytes(t.type, t.dims, t.data)) }
    } catch (err) {
      throw new ApiError({
        status: response.status,
        code: 'BAD_RESPONSE',
        message: `${url} answered with CBOR that is not an inference answer (${untrustedText(String((err as Error).message), 200)})`,
        cause: err,
      })
    }
  }

  /** Where a job's receipt was settled on chain, with its Merkle proof in the batch (404 until then). */
  settlement(jobId: string, options: CallOptions = {}): Promise<SettlementJson> {
    return this.#request('GET', `/v1/jobs/${encodeURIComponent(jobId)}/settlement`, undefined, options)
  }

  /** OpenAI-compatible text completion (the node pays: operator token). */
  completions(request: CompletionRequestJson, options: OperatorCallOptions = {}): Promise<CompletionJson> {
    return this.#request('POST', '/v1/completions', request, options, this.#auth(options))
  }

  /**
   * OpenAI-compatible chat completion, streamed (the node pays: operator token): `onText` gets
   * each piece as the worker generates it; resolves with the whole text, the usage, and
   * Donghae's receipts, worker, fee and time to first token. A failure before the stream opens is
   * the API's error; one after is an ApiError with the stream's error code.
   */
  async chatStream(
    request: ChatRequestJson,
    options: StreamCallOptions & { onText?: (piece: string) => void } = {},
  ): Promise<ChatStreamResult> {
    const result: ChatStreamResult = {
      id: '',
      model: request.model,
      text: '',
      finishReason: undefined,
      usage: undefined,
      donghae: undefined,
    }
    const body = { ...request, stream: true, stream_options: { include_usage: true } }
    await this.#stream('/v1/chat/completions', body, options, (data) => {
      const chunk = data as {
        id?: string
        model?: string
        choices?: Array<{ delta?: { content?: string }; finish_reason?: string | null }>
        usage?: ChatStreamResult['usage'] | null
        donghae?: CompletionExtraJson
      }
      if (typeof chunk.id === 'string') result.id = chunk.id
      if (typeof chunk.model === 'string') result.model = chunk.model
      for (const choice of chunk.choices ?? []) {
        const piece = choice.delta?.content
        if (typeof piece === 'string' && piece !== '') {
          result.text += piece
          options.onText?.(piece)
        }
        if (choice.finish_reason === 'stop' || choice.finish_reason === 'length')
          result.finishReason = choice.finish_reason
      }
      if (chunk.usage !== undefined && chunk.usage !== null) result.usage = chunk.usage
      if (chunk.donghae !== undefined) result.donghae = chunk.donghae
    })
    return result
  }

  /** Model files the node is fetching from its peers, or fetched recently (newest first). */
  fetches(options: CallOptions = {}): Promise<{ fetches: FetchJson[] }> {
    return this.#request('GET', '/v1/inference/fetches', undefined, options)
  }

  /**
   * Has the node fetch a registered model's files (by name or CID) into its content store from
   * its peers, or join the fetch running (operator token). `onProgress` follows it (at most 10
   * times a second); resolves with the finished fetch. A failed fetch is an ApiError with code
   * FETCH_FAILED (the files fetched so far stay: calling again resumes); an unknown model is
   * NOT_FOUND.
   */
  async fetchModel(
    model: string,
    options: StreamCallOptions & { onProgress?: (progress: FetchJson) => void } = {},
  ): Promise<FetchJson> {
    let last: FetchJson | undefined
    await this.#stream(`/v1/operator/models/${encodeURIComponent(model)}/fetch`, undefined, options, (data) => {
      last = data as FetchJson
      options.onProgress?.(last)
    })
    if (last?.state !== 'done')
      throw new ApiError({
        status: 200,
        code: 'BAD_RESPONSE',
        message: `the fetch stream of ${this.baseUrl} ended without the finished fetch`,
      })
    return last
  }

  /** Stores an ONNX file on the node and registers it on chain under the node's key (operator token). */
  publishModel(
    request: {
      name: string
      price: string
      version?: string
      kind?: 'tensor' | 'text' | 'lm'
      /** Language models: fee per prompt token. */
      promptPrice?: string
      /** The ONNX file, base64 (tensor and text models; a language model may send it with `files`). */
      file?: string
      /** Text models: the tokenizer JSON, base64. */
      codec?: string
      /** Language models: the folder's other files by name, base64. */
      files?: Record<string, string>
      /** Language models: a folder on the node's own disk (absolute path) to publish instead. */
      dir?: string
    },
    options: OperatorCallOptions = {},
  ): Promise<{ cid: string; txHash: string }> {
    return this.#request('POST', '/v1/operator/models', request, options, this.#auth(options))
  }

  // ---- experts (AI-Block) ----

  /** MoE families on chain. */
  expertFamilies(options: CallOptions = {}): Promise<{ families: ExpertFamilyJson[] }> {
    return this.#request('GET', '/v1/experts/families', undefined, options)
  }

  /** A family's MetaBlock (latest version unless `version`). */
  expertMeta(family: string, options: CallOptions & { version?: number } = {}): Promise<ExpertMetaJson> {
    const q = queryOf({ version: options.version })
    return this.#request('GET', `/v1/experts/meta/${encodeURIComponent(family)}${q}`, undefined, options)
  }

  /** The current routers and experts of a family's ParamIndex, with usage. */
  experts(
    query: { family?: string; layer?: number } = {},
    options: CallOptions = {},
  ): Promise<{ experts: ExpertJson[] }> {
    return this.#request('GET', `/v1/experts${queryOf(query)}`, undefined, options)
  }

  /** One current router or expert (`layer0.expert3`); its `indexKey` proves with `proof`. */
  expert(name: string, options: CallOptions & { family?: string } = {}): Promise<ExpertJson> {
    const q = queryOf({ family: options.family })
    return this.#request('GET', `/v1/experts/show/${encodeURIComponent(name)}${q}`, undefined, options)
  }

  /** Every block proposed for one slot, oldest first. */
  expertHistory(name: string, options: CallOptions & { family?: string } = {}): Promise<{ blocks: ExpertBlockJson[] }> {
    const q = queryOf({ family: options.family })
    return this.#request('GET', `/v1/experts/history/${encodeURIComponent(name)}${q}`, undefined, options)
  }

  /** The accept/reject log, newest first. */
  expertProposals(
    query: { status?: ProposalStatusJson; limit?: number } = {},
    options: CallOptions = {},
  ): Promise<{ proposals: ProposalJson[] }> {
    return this.#request('GET', `/v1/experts/proposals${queryOf(query)}`, undefined, options)
  }

  /** One proposal (NOT_FOUND when unknown). */
  expertProposal(id: string, options: CallOptions = {}): Promise<ProposalJson> {
    return this.#request('GET', `/v1/experts/proposals/${encodeURIComponent(id)}`, undefined, options)
  }

  /**
   * Polls a proposal until it is decided (accepted, refused or expired); ApiError TIMEOUT after
   * `timeoutMs`. `onPoll` sees each answer.
   */
  async waitForProposal(
    id: string,
    options: CallOptions & { timeoutMs?: number; intervalMs?: number; onPoll?: (p: ProposalJson) => void } = {},
  ): Promise<ProposalJson> {
    const deadline = Date.now() + (options.timeoutMs ?? 600_000)
    for (;;) {
      let found: ProposalJson | undefined
      try {
        found = await this.expertProposal(id, options)
      } catch (err) {
        // the node may not have seen the proposal's block yet
        if (!(err instanceof ApiError && err.code === 'NOT_FOUND')) throw err
      }
      if (found !== undefined) {
        options.onPoll?.(found)
        if (found.status !== 'pending') return found
      }
      if (Date.now() >= deadline)
        throw new ApiError({ status: 0, code: 'TIMEOUT', message: `proposal ${id} was not decided in time` })
      await sleep(options.intervalMs ?? 2_000, options.signal)
    }
  }

  /** The most used experts. */
  topExperts(
    query: { family?: string; limit?: number } = {},
    options: CallOptions = {},
  ): Promise<{ experts: ExpertJson[] }> {
    return this.#request('GET', `/v1/experts/top${queryOf(query)}`, undefined, options)
  }

  /** One expert's usage and rewards. */
  expertStats(name: string, options: CallOptions & { family?: string } = {}): Promise<ExpertStatsJson> {
    const q = queryOf({ family: options.family })
    return this.#request('GET', `/v1/experts/stats/${encodeURIComponent(name)}${q}`, undefined, options)
  }

  /** A family version's parameter DAG (default: the first family, its current version). */
  expertDag(query: { family?: string; version?: number } = {}, options: CallOptions = {}): Promise<ExpertDagJson> {
    return this.#request('GET', `/v1/experts/dag${queryOf(query)}`, undefined, options)
  }

  /** Chat with a family's MoE model (operator token: the node pays the usage receipts). */
  moeChat(request: MoeChatRequestJson, options: OperatorCallOptions = {}): Promise<MoeChatJson> {
    return this.#request('POST', '/v1/experts/chat', request, options, this.#auth(options))
  }

  /** Nodes hosting experts, as the node sees them. */
  expertHosts(options: CallOptions = {}): Promise<{ nodes: ExpertHostJson[] }> {
    return this.#request('GET', '/v1/p2p/nodes', undefined, options)
  }

  expertGroups(options: CallOptions = {}): Promise<{ groups: ExpertGroupJson[] }> {
    return this.#request('GET', '/v1/p2p/expert_groups', undefined, options)
  }

  replicationSuggestions(options: CallOptions = {}): Promise<{ suggestions: ReplicationSuggestionJson[] }> {
    return this.#request('GET', '/v1/p2p/replication_suggestions', undefined, options)
  }

  forkExperts(
    body: { family: string; topK?: number; gating?: 'softmax-topk-renorm' | 'softmax-topk'; note?: string },
    options: OperatorCallOptions = {},
  ): Promise<{ family: string; version: number; carried: number; txHash: string }> {
    return this.#request('POST', '/v1/operator/experts/fork', body, options, this.#auth(options))
  }

  expertTraining(options: CallOptions = {}): Promise<TrainingJson> {
    return this.#request('GET', '/v1/experts/training', undefined, options)
  }

  integrityStatus(options: CallOptions = {}): Promise<IntegrityStatusJson> {
    return this.#request('GET', '/v1/security/integrity_status', undefined, options)
  }

  expertHost(did: string, options: CallOptions = {}): Promise<ExpertHostJson> {
    return this.#request('GET', `/v1/security/node_status/${encodeURIComponent(did)}`, undefined, options)
  }

  /** Quarantines an expert host (operator token). */
  quarantineNode(did: string, options: OperatorCallOptions = {}): Promise<ExpertHostJson> {
    const path = `/v1/security/quarantine_node/${encodeURIComponent(did)}`
    return this.#request('POST', path, undefined, options, this.#auth(options))
  }

  /** Lifts an expert host's quarantine (operator token). */
  recoverNode(did: string, options: OperatorCallOptions = {}): Promise<ExpertHostJson> {
    const path = `/v1/security/recover_node/${encodeURIComponent(did)}`
    return this.#request('POST', path, undefined, options, this.#auth(options))
  }

  /** Runs one of the experts' SSE routes: progress lines to `onProgress`, resolves with the result. */
  async #expertsStream<T>(path: string, body: unknown, options: ExpertsStreamOptions): Promise<T> {
    let result: { value: T } | undefined
    await this.#stream(path, body, options, (data) => {
      const message = data as { progress?: unknown; result?: T }
      if (typeof message.progress === 'string') options.onProgress?.(message.progress)
      else if (message.result !== undefined) result = { value: message.result }
    })
    if (result === undefined)
      throw new ApiError({
        status: 200,
        code: 'BAD_RESPONSE',
        message: `${this.baseUrl}${path} ended without a result`,
      })
    return result.value
  }

  /**
   * Mines a block on the node (operator token): weights from the node's disk (`weightsPath`,
   * absolute) or its trainer, then score, proof of work, proposal. Resolves with the proposal;
   * follow its decision with `waitForProposal`.
   */
  proposeExpert(request: ProposeRequestJson, options: ExpertsStreamOptions = {}): Promise<ProposeResultJson> {
    return this.#expertsStream('/v1/operator/experts/propose', request, options)
  }

  /**
   * Uploads a safetensors file's bytes in chunks and proposes it (operator token; the seed's
   * POST /upload_moe_experts): begin, PUT each chunk in order, finish. `onProgress` also gets a
   * line per chunk sent.
   */
  async uploadExpert(
    request: { family?: string; expert: string; file: Uint8Array },
    options: ExpertsStreamOptions = {},
  ): Promise<ProposeResultJson> {
    const begin = {
      expert: request.expert,
      bytes: request.file.length,
      ...(request.family === undefined ? {} : { family: request.family }),
    }
    const { upload, chunkBytes, chunks } = await this.#request<{ upload: string; chunkBytes: number; chunks: number }>(
      'POST',
      '/v1/operator/experts/uploads',
      begin,
      options,
      this.#auth(options),
    )
    const base = `/v1/operator/experts/uploads/${encodeURIComponent(upload)}`
    for (let n = 0; n < chunks; n++) {
      const chunk = request.file.subarray(n * chunkBytes, (n + 1) * chunkBytes)
      const response = await this.#send('PUT', `${base}/chunks/${n}`, options, {
        headers: { ...this.#auth(options), accept: 'application/json', 'content-type': 'application/octet-stream' },
        body: chunk,
      })
      this.#parse(response.status, new TextDecoder().decode(response.bytes), `${this.baseUrl}${base}/chunks/${n}`)
      options.onProgress?.(`sent chunk ${n + 1}/${chunks}`)
    }
    return this.#expertsStream(`${base}/finish`, undefined, options)
  }

  /** Imports a MoE checkpoint folder on the node's disk (`dir`, absolute) as a family (operator token). */
  importExperts(
    request: { dir: string; family: string },
    options: ExpertsStreamOptions = {},
  ): Promise<ImportResultJson> {
    return this.#expertsStream('/v1/operator/experts/import', request, options)
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

  /**
   * POST to an operator route that answers server-sent events (completions, model fetches):
   * `onData` gets each `data:` message's JSON until `data: [DONE]`; an `event: error` message
   * throws its error as an ApiError. The answer's head must come within the client's timeout,
   * then some bytes (a heartbeat will do) every `idleTimeoutMs`.
   */
  async #stream(
    path: string,
    body: unknown,
    options: StreamCallOptions,
    onData: (data: unknown) => void,
  ): Promise<void> {
    const aborted = (): boolean => options.signal?.aborted === true
    if (aborted()) throw new AbortError()
    const url = `${this.baseUrl}${path}`
    const connection = new AbortController()
    const signal =
      options.signal === undefined ? connection.signal : AbortSignal.any([options.signal, connection.signal])
    let timedOut: string | undefined
    const expire = (why: string) => (): void => {
      timedOut = why
      connection.abort()
    }
    let timer = setTimeout(expire(`did not answer POST ${path} within ${this.#timeoutMs} ms`), this.#timeoutMs)
    const idleMs = options.idleTimeoutMs ?? EVENT_IDLE_TIMEOUT_MS
    /** What `onData` threw (a caller's own error, passed on as it is). */
    let thrown: unknown
    const failure = (err: unknown): unknown => {
      if (err instanceof ApiError || (thrown !== undefined && err === thrown)) return err
      if (timedOut !== undefined)
        return new ApiError({
          status: 0,
          code: 'TIMEOUT',
          message: `the node at ${this.baseUrl} ${timedOut}`,
          cause: err,
        })
      if (aborted()) return new AbortError(undefined, { cause: err })
      return new ApiError({
        status: 0,
        code: 'UNREACHABLE',
        message: `lost the answer of ${url} (${networkDetail(err)})`,
        cause: err,
      })
    }
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined
    try {
      let response: Response
      try {
        response = await fetch(url, {
          method: 'POST',
          signal,
          headers: {
            accept: 'text/event-stream',
            ...this.#auth(options),
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        })
      } catch (err) {
        if (timedOut === undefined && !aborted())
          throw new ApiError({
            status: 0,
            code: 'UNREACHABLE',
            message: `cannot reach the node at ${this.baseUrl} (${networkDetail(err)})`,
            cause: err,
          })
        throw err
      }
      const type = (response.headers.get('content-type') ?? '').toLowerCase()
      if (!response.ok || !type.startsWith('text/event-stream')) {
        const text = await response.text()
        this.#parse(response.status, text, url) // throws the API's error
        throw new ApiError({ status: response.status, code: 'BAD_RESPONSE', message: `${url} did not answer a stream` })
      }
      if (response.body === null)
        throw new ApiError({ status: response.status, code: 'BAD_RESPONSE', message: `${url} answered no stream` })
      const parser = new SseParser()
      const decoder = new TextDecoder()
      reader = response.body.getReader()
      for (;;) {
        clearTimeout(timer)
        timer = setTimeout(expire(`sent nothing for ${idleMs} ms on ${path}`), idleMs)
        const { value, done } = await reader.read()
        if (done) break
        for (const message of parser.push(decoder.decode(value, { stream: true }))) {
          if (message.event === 'error') throw streamError(response.status, message.data, url)
          if (message.data === '[DONE]') return
          let data: unknown
          try {
            data = JSON.parse(message.data)
          } catch (err) {
            throw new ApiError({
              status: response.status,
              code: 'BAD_RESPONSE',
              message: `${url} sent a message that is not JSON`,
              cause: err,
            })
          }
          try {
            onData(data)
          } catch (err) {
            thrown = err
            throw err
          }
        }
      }
      throw new ApiError({
        status: response.status,
        code: 'UNREACHABLE',
        message: `the answer of ${url} ended before its end ([DONE])`,
      })
    } catch (err) {
      throw failure(err)
    } finally {
      clearTimeout(timer)
      await reader?.cancel().catch(() => undefined)
      connection.abort()
    }
  }

  #auth(options: OperatorCallOptions): Record<string, string> {
    const token = options.token ?? this.#token
    return token === undefined ? {} : { authorization: `Bearer ${token}` }
  }

  async #fetch(
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    body: unknown,
    options: CallOptions,
    headers: Record<string, string>,
  ): Promise<{ status: number; body: string }> {
    const response = await this.#send(method, path, options, {
      headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    return { status: response.status, body: new TextDecoder().decode(response.bytes) }
  }

  /** One HTTP exchange, the whole answer read within the client's timeout. */
  async #send(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    options: CallOptions,
    init: { headers: Record<string, string>; body?: string | Uint8Array },
  ): Promise<{ status: number; contentType: string; bytes: Uint8Array }> {
    if (options.signal?.aborted === true) throw new AbortError()
    const timeout = new AbortController()
    const timer = setTimeout(() => timeout.abort(), this.#timeoutMs)
    const signal = options.signal === undefined ? timeout.signal : AbortSignal.any([options.signal, timeout.signal])
    try {
      const response = await fetch(`${this.baseUrl}${path}`, {
        method,
        signal,
        headers: init.headers,
        ...(init.body === undefined ? {} : { body: init.body as NonNullable<RequestInit['body']> }),
      })
      return {
        status: response.status,
        contentType: (response.headers.get('content-type') ?? '').toLowerCase(),
        bytes: new Uint8Array(await response.arrayBuffer()),
      }
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
    method: 'GET' | 'POST' | 'DELETE',
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

/** The ApiError an `event: error` message of a stream carries (`{ "error": { code, message, reason? } }`). */
function streamError(status: number, data: string, url: string): ApiError {
  let error: { code?: unknown; message?: unknown; reason?: unknown } | undefined
  try {
    error = (JSON.parse(data) as { error?: typeof error } | null)?.error
  } catch {
    error = undefined
  }
  if (typeof error?.code !== 'string' || typeof error.message !== 'string')
    return new ApiError({ status, code: 'BAD_RESPONSE', message: `${url} ended its stream with an unreadable error` })
  return new ApiError({
    status,
    code: untrustedText(error.code, 64),
    message: untrustedText(error.message, MAX_REMOTE_MESSAGE),
    reason: typeof error.reason === 'string' ? untrustedText(error.reason, 64) : undefined,
  })
}

function mapValues<A, B>(record: Record<string, A>, fn: (value: A) => B): Record<string, B> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, fn(v)]))
}

/** The most useful line of a fetch failure: undici puts the system error in `cause`. */
function networkDetail(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause
  if (typeof cause?.code === 'string') return cause.code
  if (typeof cause?.message === 'string') return cause.message
  return err instanceof Error ? err.message : String(err)
}
