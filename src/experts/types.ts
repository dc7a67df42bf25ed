/**
 * AI-Block's records: the MetaBlock (a Mixture-of-Experts model's architecture, router rules,
 * tokenizer, shared weights and public validation set; a linear history, one per version) and the
 * parameter block (one router or one expert of one layer; blocks form a DAG through `dependsOn`).
 * The design is in docs/experts.md; this file is the contract the chain module, the model runtime,
 * the network layer and the API share.
 *
 * Weights are safetensors files in the content store (UnixFS CIDs). A linear layer's weight is
 * `[out, in]` (PyTorch's `nn.Linear`), float32, little-endian.
 *
 *   trunk file (MetaBlock.trunk):            router payload:          expert payload (swiglu):
 *     embed                [V, d]              weight  [E, d]           w1 [dFf, d]   gate
 *     layers.{i}.attn_norm [d]                                          w3 [dFf, d]   up
 *     layers.{i}.q         [H·hd, d]                                    w2 [d, dFf]   down
 *     layers.{i}.k         [Hkv·hd, d]                                expert payload (gelu|relu):
 *     layers.{i}.v         [Hkv·hd, d]                                  w1 [dFf, d], w2 [d, dFf]
 *     layers.{i}.o         [d, H·hd]
 *     layers.{i}.ffn_norm  [d]
 *     norm                 [d]
 *     head                 [V, d]   (absent when tieEmbeddings: the head is `embed`)
 *
 * hd = d / H. The forward is Mixtral's: pre-RMSNorm, rotary positions (rotate-half), grouped-query
 * attention, a routed FFN per layer (softmax over the router's logits, top-k, renormalized over
 * the k chosen for `softmax-topk-renorm`), final RMSNorm, head.
 */

/** What the router does with its logits. */
export type Gating = 'softmax-topk-renorm' | 'softmax-topk'
/** An expert's feed-forward network. */
export type ExpertFfn = 'swiglu' | 'gelu' | 'relu'

export interface MoeArchitecture {
  vocabSize: number
  dModel: number
  nLayers: number
  nHeads: number
  /** Key/value heads (grouped-query attention); divides nHeads. */
  nKvHeads: number
  /** An expert's hidden width. */
  dFf: number
  contextLength: number
  /** Rotary base (10000 for most models). */
  ropeTheta: number
  /** RMSNorm's epsilon in units of 1e-9 (1e-5 -> 10000): no float in chain state. */
  normEpsE9: number
  expertsPerLayer: number
  topK: number
  gating: Gating
  ffn: ExpertFfn
  tieEmbeddings: boolean
}

/** The public validation set: token ids (uint32 little-endian) cut into windows. */
export interface ValidationSet {
  /** UnixFS CID of the token file. */
  cid: string
  /** Windows evaluated; window w covers tokens [w·windowTokens, (w+1)·windowTokens]. */
  windows: number
  /** Tokens per window (each window predicts windowTokens tokens from the one before). */
  windowTokens: number
}

/** The body of `experts.meta`: a new family (version 1) or its next version. */
export interface MetaBlockBody {
  /** The family's name (the seed's chain_id for its parameter blocks), e.g. "moby-moe". */
  family: string
  /** 1 for a new family, else the latest version + 1. */
  version: number
  arch: MoeArchitecture
  /** tokenizer.json and tokenizer_config.json, by CID. */
  tokenizer: { json: string; config: string }
  /** The shared weights (embeddings, attention, norms, head): a safetensors CID. */
  trunk: string
  validation: ValidationSet
  /** Blocks of the previous version carried into this one (their shapes must fit this arch). */
  carry: string[]
  /** Free text: where the model came from (e.g. "mixtral import"). */
  note: string
}

/** A MetaBlock as the chain keeps it. */
export interface MetaRecord extends MetaBlockBody {
  /** sha256 of the body's dag-cbor, hex. */
  hash: string
  owner: string
  height: number
}

export type BlockType = 'router' | 'expert'

/**
 * A parameter block's header: the seed's fields. `index` is the block's position in its family's
 * DAG (the family's next index, and the next ones for the following blocks of a proposal).
 * `dependsOn` names block hashes (hex), a MetaBlock hash, or `#<index>` for another block of the
 * same proposal. Every block depends on its MetaBlock; an expert depends on its layer's router.
 */
export interface ParamBlockHeader {
  index: number
  /** The family (the MetaBlock family this block belongs to). */
  chainId: string
  /** The MetaBlock version it is built for. */
  version: number
  dependsOn: string[]
  blockType: BlockType
  /** `layer{L}.expert{J}` or `layer{L}.router`. */
  expertName: string
  layerId: number
  /** UnixFS CID of the safetensors payload. */
  payloadHash: string
  /** Size of the payload, bytes. */
  payloadBytes: number
  /** The payload's tensors: name -> dims (checked against the MetaBlock; the validators check the file). */
  shapes: Record<string, number[]>
  /** Proof-of-work nonce (see pow.ts). */
  nonce: bigint
  /** The miner's DID (did:key, Ed25519): the seed's miner_pub. Rewards go there. */
  miner: string
  /** The miner's signature over the header without nonce and signature (payloadSigningBytes). */
  payloadSig: Uint8Array
}

/** A validation score: mean cross-entropy and top-1 accuracy over the validation set. */
export interface PolScore {
  /** Mean negative log-likelihood per predicted token, micro-nats (lower is better). */
  lossMicroNats: bigint
  /** Top-1 accuracy, parts per million. */
  accuracyPpm: number
}

/** The body of `experts.propose`. */
export interface ProposeBody {
  family: string
  version: number
  /** 1-MAX_PROPOSAL_BLOCKS blocks; `#<index>` references resolve inside this list. */
  blocks: ParamBlockHeader[]
  /** The miner's claimed score of the model with these blocks in place. */
  claim: PolScore
}

/** The body of `experts.attest`: one validator's reproduction of a proposal's score. */
export interface AttestBody {
  /** Proposal id (hex). */
  proposal: string
  /** Score of the model with the proposal's blocks; absent when the payload is bad. */
  score?: PolScore
  /** Score of the current model (the ParamIndex the proposal would change). */
  baseline?: PolScore
  /** Why the payload could not be evaluated (file missing, shapes differ from the header). */
  fault?: string
}

/** The body of `experts.usage`: routing counts a gateway's generations recorded. */
export interface UsageBody {
  family: string
  version: number
  /** One entry per expert block used: calls (token routings) and their summed latency. */
  entries: Array<{ block: string; calls: number; latencyMs: number }>
  /** Generations these counts come from. */
  generations: number
}

export type ProposalStatus = 'pending' | 'accepted' | 'refused' | 'expired'

export interface ProposalRecord {
  id: string
  family: string
  version: number
  proposer: string
  blocks: string[]
  /** For each slot the proposal fills: the block it replaces ('' for an empty slot). */
  replaces: Record<string, string>
  claim: PolScore
  bond: bigint
  height: number
  deadline: number
  status: ProposalStatus
  /** Why it was refused or expired (e.g. 'forged-score', 'no-improvement', 'bad-payload', 'stale'). */
  reason: string
  /** The decided median scores (set when decided). */
  score?: PolScore
  baseline?: PolScore
}

/** An accepted (or proposed) parameter block as the chain keeps it. */
export interface BlockRecord {
  hash: string
  header: ParamBlockHeader
  proposal: string
  height: number
  status: ProposalStatus
  /** Accepted score of the model when this block joined (its quality). */
  score?: PolScore
}

/** Expert name helpers (`layer0.expert3`, `layer0.router`). */
export const EXPERT_NAME = /^layer(\d{1,4})\.(?:expert(\d{1,5})|router)$/

export function expertName(layer: number, expert: number): string {
  return `layer${layer}.expert${expert}`
}

export function routerName(layer: number): string {
  return `layer${layer}.router`
}

/** Parses `layer{L}.expert{J}` / `layer{L}.router`; undefined when it is neither. */
export function parseExpertName(name: string): { layer: number; expert: number | null } | undefined {
  const m = EXPERT_NAME.exec(name)
  if (m === null) return undefined
  return { layer: Number(m[1]), expert: m[2] === undefined ? null : Number(m[2]) }
}

/** The tensors a router or expert payload must hold under `arch`: name -> dims. */
export function payloadShapes(arch: MoeArchitecture, type: BlockType): Record<string, number[]> {
  if (type === 'router') return { weight: [arch.expertsPerLayer, arch.dModel] }
  const { dModel: d, dFf: f } = arch
  return arch.ffn === 'swiglu' ? { w1: [f, d], w2: [d, f], w3: [f, d] } : { w1: [f, d], w2: [d, f] }
}

/** The tensors the trunk file must hold under `arch`: name -> dims. */
export function trunkShapes(arch: MoeArchitecture): Record<string, number[]> {
  const d = arch.dModel
  const hd = d / arch.nHeads
  const out: Record<string, number[]> = { embed: [arch.vocabSize, d], norm: [d] }
  for (let i = 0; i < arch.nLayers; i++) {
    out[`layers.${i}.attn_norm`] = [d]
    out[`layers.${i}.q`] = [arch.nHeads * hd, d]
    out[`layers.${i}.k`] = [arch.nKvHeads * hd, d]
    out[`layers.${i}.v`] = [arch.nKvHeads * hd, d]
    out[`layers.${i}.o`] = [d, arch.nHeads * hd]
    out[`layers.${i}.ffn_norm`] = [d]
  }
  if (!arch.tieEmbeddings) out.head = [arch.vocabSize, d]
  return out
}
