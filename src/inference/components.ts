/**
 * What the inference components need from the node, each as narrow as the component uses it.
 * Time, randomness, logging and cancellation are injected, so the same components run in a node
 * (system clock, the OS's randomness, libp2p) and in the simulation (a manual clock, a seeded
 * generator, the in-memory transport) — the simulation drives this code rather than copying it.
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
export interface ModelRunner {
  readonly ep: ExecutionProvider
  readonly runtime: string
  load(cid: string, bytes: Uint8Array): Promise<void>
  has(cid: string): boolean
  /** `ep`: the provider the run actually used (a session may have fallen back to CPU). */
  run(cid: string, inputs: TensorMap): Promise<{ outputs: TensorMap; computeMicros: number; ep?: ExecutionProvider }>
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
