/**
 * What the inference routes need from a node: the registry, the gateway, settlements and the
 * live view of workers. The node implements it over its InferenceService (src/inference).
 */
import type { Tensor } from '../inference/tensor.ts'
import type { Receipt, SignedJob } from '../inference/job.ts'

export interface ModelView {
  name: string
  cid: string
  owner: string
  version: string
  price: bigint
  kind: 'tensor' | 'text'
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

export interface CompletionOutcome {
  text: string
  receipts: Receipt[]
  finishReason: 'length' | 'stop'
  promptTokens: number
}

export interface InferenceApi {
  /** This node's DID (the gateway jobs name). */
  readonly did: string
  models(): Promise<ModelView[]>
  infer(request: { model: string; inputs: Record<string, Tensor>; job?: SignedJob }): Promise<InferOutcome>
  /** Greedy text generation on a text model; `onToken` streams each piece as it comes. */
  complete(
    request: { model: string; prompt: string; maxTokens: number },
    onToken?: (piece: string) => void,
  ): Promise<CompletionOutcome>
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
}

export interface PublishModelRequest {
  name: string
  price: bigint
  version: string
  kind: 'tensor' | 'text'
  /** The ONNX file. */
  file: Uint8Array
  /** Text models: the tokenizer JSON (chars.ts), registered by CID and served like the weights. */
  codec?: Uint8Array
}
