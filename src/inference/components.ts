/**
 * What the inference components need from the node, each as narrow as the component uses it.
 * Time, randomness, logging and cancellation are injected, so the same components run in a node
 * (system clock, the OS's randomness, libp2p) and in the simulation (a manual clock, a seeded
 * generator, the in-memory transport) - the simulation drives this code rather than copying it.
 */
import type { Clock } from '../core/clock.ts'
import type { Logger } from '../core/logger.ts'
import type { Rng } from '../core/rng.ts'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import type { ChainEvent } from '../chain/host.ts'
import type { ChainParams } from '../chain/genesis.ts'
import type { StateReader } from '../chain/state-view.ts'
import type { PeerTransport } from '../core/transport.ts'
import type { ExecutionProvider } from './job.ts'
import type { TensorMap } from './tensor.ts'
import type { LmFiles } from './lm/types.ts'

/** The committed chain as the components read it. */
export interface ChainView {
  readonly chainId: string
  readonly params: ChainParams
  /** Committed state (replaced on every commit; never mutated). */
  state(): StateReader
  height(): number
  /** Time of the committed head, ms: the chain's clock for deadlines and windows. */
  time(): number
  /** Called after every commit, in order. Returns an unsubscribe function. */
  onCommit(listener: (height: number, events: readonly ChainEvent[]) => void): () => void
  /** Ids of recently committed blocks (before the chain records them in state; see chain/draws.ts). */
  blockId(height: number): Uint8Array | undefined
}

/** Signs with the node key and submits (the node's single own-transaction queue). */
export type SubmitTx = (kind: string, body: unknown) => Promise<{ hash: Uint8Array }>

/** Request/response between nodes named by DID (a `Pick` of the node's transport). */
export type InferenceTransport = Pick<PeerTransport, 'self' | 'request' | 'handle' | 'peers' | 'penalize'>

/** Gossip for slot adverts (validated before they are relayed: see `advertValidator`). */
export type AdvertBus = Pick<PeerTransport, 'publish' | 'subscribe'>

export interface InferenceComponents {
  key: Ed25519KeyPair
  chain: ChainView
  submitTx: SubmitTx
  transport: InferenceTransport
  adverts: AdvertBus
  clock: Clock
  rng: Rng
  logger: Logger
  signal: AbortSignal
}

/** What the worker needs from an ONNX Runtime (in-process `OnnxRuntime`, or a sandboxed runner). */
/** Options of a run of a language model (ignored by other models). */
export interface RunOptions {
  /** Called with each batch of new token ids as they are generated. */
  onTokens?(ids: readonly number[]): void
  /**
   * An audit: the outputs another worker claimed. The runner checks every claimed token in one
   * forward pass over prompt + claimed tokens (teacher forcing) against the seeded sampler within
   * the model's tolerance; it returns the claimed outputs when all pass, otherwise the correct
   * generation (the claimed prefix up to the first wrong token, then its own tokens).
   */
  claimed?: TensorMap
  /** Tolerance of the teacher-forcing check (the model's registry tolerance). */
  tolerance?: { maxAbsPpm: number }
}

/** What a language-model run measured. */
export interface LmRunStats {
  promptTokens: number
  outputTokens: number
  /** Microseconds from the start of the run to the first generated token (0 for an audit). */
  ttftMicros: number
  /** Audits: the index of the first claimed token that failed the check, or -1 when all passed. */
  firstMismatch?: number
}

/** A model's bytes and, for a language model, its files. */
export interface ModelBytes {
  bytes: Uint8Array
  files?: LmFiles | undefined
}

/** What `ModelRunner.load` takes besides the bytes. */
export interface ModelLoadOptions {
  /** A language model's tokenizer and configuration (`lm/types.ts`), absent for other models. */
  files?: LmFiles
  /**
   * Where a runner that keeps models in processes of their own reads a model again to replace a
   * process that died (the node's blob store); without it such a runner keeps a copy of the bytes.
   */
  reload?: () => Promise<ModelBytes | undefined>
}

export interface ModelRunner {
  readonly ep: ExecutionProvider
  readonly runtime: string
  /** `files`: a language model's tokenizer and configuration (`lm/types.ts`), absent for other models. */
  load(cid: string, bytes: Uint8Array, options?: ModelLoadOptions): Promise<void>
  has(cid: string): boolean
  /** Frees a loaded model (to make room for another); it can be loaded again. */
  unload?(cid: string): Promise<void>
  /**
   * `ep`: the provider the run actually used (a session may have fallen back to CPU). For a
   * language model `inputs` are a generation's (`lm/types.ts`, seed resolved by the caller with
   * `has_seed = 1`); see `RunOptions` for streaming and audits by teacher forcing.
   */
  run(
    cid: string,
    inputs: TensorMap,
    options?: RunOptions,
  ): Promise<{ outputs: TensorMap; computeMicros: number; ep?: ExecutionProvider; lm?: LmRunStats }>
  calibrate(cid: string, inputs: TensorMap, options: { durationMs: number }): Promise<{ jobsPerSecond: number }>
}

/**
 * Worker misbehaviour, for tests and demonstrations of the audit system only: 'cheat' returns
 * wrong outputs on a `rate` share of jobs; 'lazy' never runs the model and returns random outputs;
 * 'slow' answers correctly but only after `ms` (to be killed mid-job).
 */
export type WorkerBehaviour =
  { kind: 'honest' } | { kind: 'cheat'; rate: number } | { kind: 'lazy' } | { kind: 'slow'; ms: number }

export interface JobEvent {
  id: string
  model: string
  worker: string
  latencyMs: number
  ok: boolean
  fee: string
  role: 'gateway' | 'worker'
  /** A worker's run: paid, or a re-run the chain drew it for. */
  purpose?: 'job' | 'audit' | 'quorum'
  error?: string
}

export type AuditEvent = { result: 'pass' | 'fail' | 'dispute'; worker: string; jobId: string }
