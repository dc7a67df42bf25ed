/**
 * What the experts routes (AI-Block, seed 001) need from a node: the parameter DAG and its
 * ParamIndex as the chain holds them, usage, the distributed experts' hosts and their integrity,
 * MoE chat, and the operator's mining. The node implements it over its ExpertsService
 * (src/experts/service.ts).
 */
import type { BlockRecord, Gating, MetaRecord, PolScore, ProposalRecord } from '../experts/types.ts'
import type { TrainingStatus } from '../experts/service.ts'

export interface FamilyView {
  family: string
  version: number
  owner: string
  /** Layers × experts per layer, top-k, gating. */
  layers: number
  expertsPerLayer: number
  topK: number
  /** Accepted blocks in the current version's ParamIndex. */
  blocks: number
  /** The current model's accepted score (of the last accepted proposal), if any. */
  score?: PolScore
}

export interface ExpertView {
  family: string
  version: number
  name: string
  layer: number
  /** null for a router. */
  expert: number | null
  block: string
  miner: string
  /** Height at which it was accepted (0: genesis). */
  height: number
  payloadHash: string
  payloadBytes: number
  /** Routing calls the receipts recorded, all time. */
  calls: number
  /** Mean latency of those calls, ms (0 when none). */
  meanLatencyMs: number
  /** Height of the last recorded use (0: never). */
  lastUsedHeight: number
  /** Rewards paid to the miner for this block, base units. */
  rewards: bigint
  /** Nodes announcing that they host it (as this node last saw them). */
  hosts: string[]
  /** The state key of its ParamIndex entry: GET /v1/state/proof?key=<hex of its UTF-8 bytes> proves it. */
  indexKey: string
}

export interface DagView {
  family: string
  version: number
  meta: MetaRecord
  /** Every block of the version's DAG, in topological (index) order. */
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

export interface MoeChatRequest {
  prompt?: string
  messages?: Array<{ role: string; content: string }>
  family?: string
  use_moe?: boolean
  use_distributed?: boolean
  top_k_experts?: number
  max_tokens?: number
  temperature?: number
  seed?: number
}

export interface MoeChatAnswer {
  family: string
  version: number
  text: string
  promptTokens: number
  outputTokens: number
  finish: 'stop' | 'length'
  /** Per layer: the experts used (by routed tokens) and the nodes that served them. */
  layers: Array<{ layer: number; experts: Array<{ name: string; block: string; tokens: number; hosts: string[] }> }>
  /** Experts masked because no host answered in time. */
  masked: number
  elapsedMs: number
  /** Where the time went: the trunk and routers here, and waiting for the experts. */
  timing?: { trunkMs: number; expertMs: number }
}

export interface ExpertHostView {
  did: string
  /** Expert names it announces (family/version/name). */
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

export interface ExpertGroupView {
  /** Expert names often routed together (same token or adjacent layers). */
  experts: string[]
  /** Co-routings seen. */
  together: number
  /** Nodes that host the whole group. */
  hosts: string[]
}

export interface ReplicationSuggestion {
  expert: string
  block: string
  calls: number
  replicas: number
  /** Replicas the usage asks for. */
  wanted: number
}

export interface IntegrityStatus {
  auditPpm: number
  audits: number
  auditFailures: number
  quarantined: string[]
  masked: number
  failovers: number
}

/** The built-in trainer (idle-time fine-tuning and `propose --train`): the service's own record. */
export type TrainingView = TrainingStatus

export interface ProposeRequest {
  family?: string
  /** `layer0.expert3`. */
  expert: string
  /** A safetensors file on the node's disk. */
  weightsPath?: string
  /**
   * Train with the built-in trainer instead: steps, and the training tokens (uint32 LE) by CID or
   * as an absolute path on the node's disk (default: the training set the node knows for the
   * family; never the public validation set).
   */
  train?: { steps: number; dataset?: string }
}

export interface ProposeAnswer {
  proposal: string
  txHash: string
  block: string
  claim: PolScore
  powNonce: bigint
  powMs: number
}

export interface ForkAnswer {
  family: string
  version: number
  /** Blocks of the previous version carried into this one. */
  carried: number
  txHash: string
}

export interface ExpertsApi {
  families(): FamilyView[]
  meta(family: string, version?: number): MetaRecord | undefined
  list(query: { family?: string; layer?: number }): ExpertView[]
  show(family: string | undefined, name: string): ExpertView | undefined
  history(family: string | undefined, name: string): BlockRecord[]
  proposals(query: { status?: ProposalRecord['status']; limit?: number }): ProposalRecord[]
  proposal(id: string): ProposalRecord | undefined
  top(query: { family?: string; limit?: number }): ExpertView[]
  dag(family?: string, version?: number): DagView | undefined
  chat(request: MoeChatRequest, signal?: AbortSignal): Promise<MoeChatAnswer>
  hosts(): ExpertHostView[]
  host(did: string): ExpertHostView | undefined
  groups(): ExpertGroupView[]
  replicationSuggestions(): ReplicationSuggestion[]
  integrity(): IntegrityStatus
  training(): TrainingView
  quarantine(did: string): ExpertHostView
  recover(did: string): ExpertHostView
  propose(request: ProposeRequest, onProgress?: (line: string) => void): Promise<ProposeAnswer>
  /** Chunked upload: begin, append chunks in order, finish (proposes the block). */
  uploadBegin(request: { family?: string; expert: string; bytes: number }): { upload: string; chunkBytes: number }
  uploadChunk(upload: string, index: number, chunk: Uint8Array): { received: number }
  uploadFinish(upload: string): Promise<ProposeAnswer>
  /**
   * The family's next MetaBlock version with new router rules (top-k, gating): a fork of the
   * parameter DAG into which every current block is carried (their shapes still fit). Owner only.
   */
  fork(request: { family: string; topK?: number; gating?: Gating; note?: string }): Promise<ForkAnswer>
  /** Splits a safetensors MoE checkpoint folder on the node's disk into a MetaBlock and blocks. */
  importCheckpoint(
    request: { dir: string; family: string },
    onProgress?: (line: string) => void,
  ): Promise<{ family: string; version: number; blocks: number; proposal: string }>
}
