/**
 * What the inference routes need from a node: the registry, the gateway, settlements and the
 * live view of workers. The node implements it over its InferenceService (src/inference).
 */
import type { Tensor } from '../inference/tensor.ts'
import type { Receipt, SignedJob } from '../inference/job.ts'
import type { ChatMessage, CompletionRequest as GenerationRequest } from '../inference/lm/completion.ts'

export interface ModelView {
  name: string
  cid: string
  owner: string
  version: string
  /** Per call; for a language model, per output token. */
  price: bigint
  kind: 'tensor' | 'text' | 'lm'
  /** Language models: fee per prompt token, and the context window in tokens. */
  promptPrice?: bigint
  contextLength?: number
  inputs: Array<{ name: string; type: string; dims: Array<number | null> }>
  outputs: Array<{ name: string; type: string; dims: Array<number | null> }>
  /** Workers advertising it right now. */
  workers: number
  /** Height of the block that registered it (0: the genesis). */
  registeredAt: number
  /** That block's time (the genesis time for height 0), milliseconds since the epoch. */
  registeredTime: number
}

export interface WorkerView {
  did: string
  bonded: bigint
  ep: string
  /** The runtime its bond declares (its receipts must name it). */
  runtime: string
  streak: number
  quarantined: boolean
  schedulable: boolean
  jobs: number
  /** Advertised throughput summed over its models, jobs per second (0 when not advertising). */
  throughput: number
  /** Reputation, parts per million: seed 001 formula over the worker record (the epoch score decides pay). */
  reputation: number
  auditsPassed: number
  auditsFailed: number
  slashes: number
  live: boolean
}

export interface SettlementView {
  jobId: string
  receiptId: string
  worker: string
  height: number
  batchKey: string
  root: string
  index: number
  /** Leaves in the batch. */
  count: number
  proof: Array<{ hash: string; right: boolean }>
}

export interface InferOutcome {
  outputs: Record<string, Tensor>
  receipt: Receipt
  worker: string
  gateway: string
  latencyMs: number
  attempts: number
}

export type { ChatMessage }

/** A completion on a registered model (name or CID); see `GenerationRequest` for the fields. */
export interface CompletionRequest extends GenerationRequest {
  model: string
}

export interface CompletionOutcome {
  text: string
  receipts: Receipt[]
  /** 'stop': an end-of-sequence token or a stop string; 'length': max_tokens or the context window. */
  finishReason: 'length' | 'stop'
  promptTokens: number
  completionTokens: number
  /** The worker that generated it (language models: one job, one worker). */
  worker?: string
  /** Milliseconds from the request to the first generated token, as the gateway saw it. */
  ttftMs?: number
}

export interface InferenceApi {
  /** This node's DID (the gateway jobs name). */
  readonly did: string
  models(): Promise<ModelView[]>
  infer(request: { model: string; inputs: Record<string, Tensor>; job?: SignedJob }): Promise<InferOutcome>
  /**
   * Text generation. A language model (`kind: 'lm'`) runs the whole completion as one job on one
   * worker; the demo character model (`kind: 'text'`) runs greedily, one job per character, and
   * refuses sampling parameters. `onToken` streams each piece of text as it comes.
   */
  complete(request: CompletionRequest, onToken?: (piece: string) => void): Promise<CompletionOutcome>
  settlement(jobId: string): SettlementView | undefined
  workers(): WorkerView[]
  stats(): {
    jobs: number
    failures: number
    jobsPerSecond: number
    latencyMs: { p50: number; p99: number }
    audits: number
    auditsFailed: number
    canaries: number
    slashes: number
    pendingSettlement: number
    /** This node's worker: jobs running now (`paid` of them for clients, the rest audits), and jobs waiting for a slot. */
    worker: { running: number; queued: number; paid: number }
    /** Models the worker holds back after they failed to load or broke a sandbox limit (inference/bad-models.ts). */
    badModels: Array<{ cid: string; reason: string; failures: number; markedAt: number; retryAt: number }>
  }
  /** What `client` has deposited with this node as gateway, and what its jobs in flight hold. */
  deposit(client: string): { amount: bigint; unlocking: Array<{ amount: bigint; at: number }>; reserved: bigint }
  /** Stores an ONNX file, registers it on chain under the node's key, returns its CID. */
  publishModel(request: PublishModelRequest): Promise<{ cid: string; txHash: Uint8Array }>
  /** Model files this node is fetching now, or fetched recently (newest first). */
  fetches(): FetchView[]
  /**
   * Fetches a registered model's files (graph, tokenizer, configs) into this node's content
   * store from its peers, or joins the fetch already running; `onProgress` follows it. Resolves
   * with the finished fetch; throws when it fails (the files fetched so far stay: a later fetch
   * resumes).
   */
  fetchModel(model: string, onProgress?: (progress: FetchView) => void): Promise<FetchView>
}

/** A model's files being fetched into the content store, block by block from several peers. */
export interface FetchView {
  /** The model's CID (its graph) and registry name. */
  model: string
  name: string
  /** Bytes of the model's files here so far, of `totalBytes` (unknown until each file's root is read). */
  bytes: number
  totalBytes?: number
  /** Blocks each peer delivered, by DID. */
  fromPeers: Record<string, number>
  startedAt: number
  finishedAt?: number
  state: 'fetching' | 'done' | 'failed'
  error?: string
}

export interface PublishModelRequest {
  name: string
  price: bigint
  version: string
  kind: 'tensor' | 'text' | 'lm'
  /** Language models: fee per prompt token (`price` is per output token). */
  promptPrice?: bigint
  /** The ONNX file (empty when `dir` is given). */
  file: Uint8Array
  /** Text models: the tokenizer JSON (chars.ts), registered by CID and served like the weights. */
  codec?: Uint8Array
  /** Language models: the folder's other files by name (tokenizer.json, tokenizer_config.json, ...). */
  files?: Record<string, Uint8Array>
  /**
   * Language models: a folder on the node's own disk to publish instead of `file` and `files`
   * (a model of any size, without sending it through HTTP; operator only, like every publish).
   */
  dir?: string
}
