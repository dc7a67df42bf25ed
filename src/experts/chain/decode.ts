/**
 * Strict decoders for the experts module's transaction bodies: every field typed and bounded,
 * unknown fields refused. Each throws TxError('malformed', ...) naming the field. Rules that need
 * state (versions, dependencies, shapes against the MetaBlock, signatures, work) are the
 * handlers' (module.ts), so that such a transaction is included as failed with its reason.
 */
import { asUint64 } from '../../core/uint.ts'
import { amountOf, canonicalCid, didOf, fields, malformed, text, uint } from '../../inference/chain/decode.ts'
import type {
  AttestBody,
  BlockType,
  ExpertFfn,
  Gating,
  MetaBlockBody,
  MoeArchitecture,
  ParamBlockHeader,
  PolScore,
  ProposeBody,
  UsageBody,
  ValidationSet,
} from '../types.ts'

export { malformed, refuse } from '../../inference/chain/decode.ts'

/** A family name: like a model name, 1-64 lowercase letters, digits, ".", "_" or "-". */
export const FAMILY_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/
export const HASH_PATTERN = /^[0-9a-f]{64}$/
/** Most blocks one proposal may carry (more is refused with 'too-many-blocks'). */
export const MAX_PROPOSAL_BLOCKS = 64
/** Most blocks the decoder reads at all (past this the body is malformed). */
export const MAX_DECODED_BLOCKS = 4 * MAX_PROPOSAL_BLOCKS
export const MAX_LAYERS = 256
export const MAX_EXPERTS = 1_024
export const MAX_DIM = 65_536
export const MAX_HEADS = 1_024
export const MAX_VOCAB = 1 << 21
export const MAX_CONTEXT = 1 << 20
export const MAX_DEPENDENCIES = 16
export const MAX_TENSORS = 8
export const MAX_TENSOR_DIMS = 8
export const MAX_CARRY = 4_096
export const MAX_USAGE_ENTRIES = 256
export const MAX_CALLS_PER_ENTRY = 1_000_000
export const MAX_VALIDATION_WINDOWS = 1_000_000
/** Largest payload a block may declare (16 GiB). */
export const MAX_PAYLOAD_BYTES = 2 ** 34
export const MAX_NOTE = 256
export const MAX_FAULT = 256
export const PPM_MAX = 1_000_000

const GATINGS: readonly Gating[] = ['softmax-topk-renorm', 'softmax-topk']
const FFNS: readonly ExpertFfn[] = ['swiglu', 'gelu', 'relu']

function bounded(value: unknown, field: string, min: number, max: number): number {
  const n = uint(value, field)
  if (n < min || n > max) malformed(`${field} must be ${min}-${max}`)
  return n
}

export function hashOf(value: unknown, field: string): string {
  if (typeof value !== 'string' || !HASH_PATTERN.test(value)) malformed(`${field} must be a hex sha256 (64 characters)`)
  return value
}

export function familyOf(value: unknown, field = 'family'): string {
  if (typeof value !== 'string' || !FAMILY_PATTERN.test(value))
    malformed(`${field} must be 1-64 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit`)
  return value
}

function versionOf(value: unknown, field = 'version'): number {
  return bounded(value, field, 1, 1_000_000)
}

export function decodeArch(value: unknown): MoeArchitecture {
  const a = fields(value, 'arch', [
    'vocabSize',
    'dModel',
    'nLayers',
    'nHeads',
    'nKvHeads',
    'dFf',
    'contextLength',
    'ropeTheta',
    'normEpsE9',
    'expertsPerLayer',
    'topK',
    'gating',
    'ffn',
    'tieEmbeddings',
  ])
  const arch: MoeArchitecture = {
    vocabSize: bounded(a.vocabSize, 'arch.vocabSize', 2, MAX_VOCAB),
    dModel: bounded(a.dModel, 'arch.dModel', 1, MAX_DIM),
    nLayers: bounded(a.nLayers, 'arch.nLayers', 1, MAX_LAYERS),
    nHeads: bounded(a.nHeads, 'arch.nHeads', 1, MAX_HEADS),
    nKvHeads: bounded(a.nKvHeads, 'arch.nKvHeads', 1, MAX_HEADS),
    dFf: bounded(a.dFf, 'arch.dFf', 1, MAX_DIM),
    contextLength: bounded(a.contextLength, 'arch.contextLength', 2, MAX_CONTEXT),
    ropeTheta: bounded(a.ropeTheta, 'arch.ropeTheta', 1, 1_000_000_000),
    normEpsE9: bounded(a.normEpsE9, 'arch.normEpsE9', 1, 1_000_000_000),
    expertsPerLayer: bounded(a.expertsPerLayer, 'arch.expertsPerLayer', 1, MAX_EXPERTS),
    topK: bounded(a.topK, 'arch.topK', 1, MAX_EXPERTS),
    gating: a.gating as Gating,
    ffn: a.ffn as ExpertFfn,
    tieEmbeddings: a.tieEmbeddings as boolean,
  }
  if (!GATINGS.includes(arch.gating)) malformed(`arch.gating must be one of ${GATINGS.join(', ')}`)
  if (!FFNS.includes(arch.ffn)) malformed(`arch.ffn must be one of ${FFNS.join(', ')}`)
  if (typeof arch.tieEmbeddings !== 'boolean') malformed('arch.tieEmbeddings must be a boolean')
  if (arch.dModel % arch.nHeads !== 0) malformed('arch.dModel must be a multiple of arch.nHeads')
  if (arch.nHeads % arch.nKvHeads !== 0) malformed('arch.nHeads must be a multiple of arch.nKvHeads')
  if (arch.topK > arch.expertsPerLayer) malformed('arch.topK must not exceed arch.expertsPerLayer')
  return arch
}

function validationOf(value: unknown, arch: MoeArchitecture): ValidationSet {
  const v = fields(value, 'validation', ['cid', 'windows', 'windowTokens'])
  const windowTokens = bounded(v.windowTokens, 'validation.windowTokens', 1, MAX_CONTEXT)
  if (windowTokens >= arch.contextLength)
    malformed('validation.windowTokens must be below arch.contextLength (a window is read with one token before it)')
  return {
    cid: canonicalCid(v.cid, 'validation.cid'),
    windows: bounded(v.windows, 'validation.windows', 1, MAX_VALIDATION_WINDOWS),
    windowTokens,
  }
}

/** An `experts.meta` body (also a genesis MetaBlock). */
export function decodeMeta(body: unknown): MetaBlockBody {
  const b = fields(body, 'experts.meta', [
    'family',
    'version',
    'arch',
    'tokenizer',
    'trunk',
    'validation',
    'carry',
    'note',
  ])
  const arch = decodeArch(b.arch)
  const t = fields(b.tokenizer, 'tokenizer', ['json', 'config'])
  if (!Array.isArray(b.carry) || b.carry.length > MAX_CARRY)
    malformed(`carry must list at most ${MAX_CARRY} block hashes`)
  const carry = b.carry.map((h: unknown, i) => hashOf(h, `carry[${i}]`))
  if (new Set(carry).size !== carry.length) malformed('carry repeats a block')
  if (typeof b.note !== 'string' || b.note.length > MAX_NOTE)
    malformed(`note must be a string of at most ${MAX_NOTE} characters`)
  return {
    family: familyOf(b.family),
    version: versionOf(b.version),
    arch,
    tokenizer: { json: canonicalCid(t.json, 'tokenizer.json'), config: canonicalCid(t.config, 'tokenizer.config') },
    trunk: canonicalCid(b.trunk, 'trunk'),
    validation: validationOf(b.validation, arch),
    carry,
    note: b.note,
  }
}

function shapesOf(value: unknown, field: string): Record<string, number[]> {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array)
    malformed(`${field} must map tensor names to dims`)
  const entries = Object.entries(value as Record<string, unknown>)
  if (entries.length === 0 || entries.length > MAX_TENSORS) malformed(`${field} must name 1-${MAX_TENSORS} tensors`)
  const out: Record<string, number[]> = {}
  for (const [name, dims] of entries) {
    if (!/^[A-Za-z0-9_.]{1,64}$/.test(name))
      malformed(`${field}: ${JSON.stringify(name.slice(0, 80))} is not a tensor name`)
    if (!Array.isArray(dims) || dims.length === 0 || dims.length > MAX_TENSOR_DIMS)
      malformed(`${field}.${name} must list 1-${MAX_TENSOR_DIMS} dims`)
    out[name] = dims.map((d: unknown, j) => bounded(d, `${field}.${name}[${j}]`, 1, MAX_VOCAB))
  }
  return out
}

/** One parameter block header (as a proposal or the genesis carries it). */
export function decodeHeader(value: unknown, at = 'block'): ParamBlockHeader {
  const h = fields(value, at, [
    'index',
    'chainId',
    'version',
    'dependsOn',
    'blockType',
    'expertName',
    'layerId',
    'payloadHash',
    'payloadBytes',
    'shapes',
    'nonce',
    'miner',
    'payloadSig',
  ])
  if (h.blockType !== 'router' && h.blockType !== 'expert') malformed(`${at}.blockType must be "router" or "expert"`)
  if (!Array.isArray(h.dependsOn) || h.dependsOn.length === 0 || h.dependsOn.length > MAX_DEPENDENCIES)
    malformed(`${at}.dependsOn must list 1-${MAX_DEPENDENCIES} dependencies`)
  const dependsOn = h.dependsOn.map((d: unknown, j) => {
    if (typeof d !== 'string' || !(HASH_PATTERN.test(d) || /^#(0|[1-9][0-9]{0,15})$/.test(d)))
      malformed(`${at}.dependsOn[${j}] must be a hex sha256 or #<index>`)
    return d
  })
  if (new Set(dependsOn).size !== dependsOn.length) malformed(`${at}.dependsOn repeats a dependency`)
  if (!(h.payloadSig instanceof Uint8Array) || h.payloadSig.length !== 64)
    malformed(`${at}.payloadSig must be 64 bytes`)
  let nonce: bigint
  try {
    nonce = asUint64(h.nonce, `${at}.nonce`)
  } catch (err) {
    return malformed((err as Error).message, err)
  }
  return {
    index: uint(h.index, `${at}.index`),
    chainId: familyOf(h.chainId, `${at}.chainId`),
    version: versionOf(h.version, `${at}.version`),
    dependsOn,
    blockType: h.blockType as BlockType,
    expertName: text(h.expertName, `${at}.expertName`, 32),
    layerId: uint(h.layerId, `${at}.layerId`),
    payloadHash: canonicalCid(h.payloadHash, `${at}.payloadHash`),
    payloadBytes: bounded(h.payloadBytes, `${at}.payloadBytes`, 1, MAX_PAYLOAD_BYTES),
    shapes: shapesOf(h.shapes, `${at}.shapes`),
    nonce,
    miner: didOf(h.miner, `${at}.miner`),
    payloadSig: h.payloadSig,
  }
}

export function decodeScore(value: unknown, field: string): PolScore {
  const s = fields(value, field, ['lossMicroNats', 'accuracyPpm'])
  return {
    lossMicroNats: amountOf(s.lossMicroNats, `${field}.lossMicroNats`),
    accuracyPpm: bounded(s.accuracyPpm, `${field}.accuracyPpm`, 0, PPM_MAX),
  }
}

/** An `experts.propose` body: every header must name the body's family and version. */
export function decodePropose(body: unknown): ProposeBody {
  const b = fields(body, 'experts.propose', ['family', 'version', 'blocks', 'claim'])
  const family = familyOf(b.family)
  const version = versionOf(b.version)
  if (!Array.isArray(b.blocks) || b.blocks.length === 0 || b.blocks.length > MAX_DECODED_BLOCKS)
    malformed(`blocks must list 1-${MAX_PROPOSAL_BLOCKS} parameter blocks`)
  const blocks = b.blocks.map((h: unknown, i) => decodeHeader(h, `blocks[${i}]`))
  blocks.forEach((h, i) => {
    if (h.chainId !== family || h.version !== version)
      malformed(`blocks[${i}] is for ${h.chainId} v${h.version}, the proposal for ${family} v${version}`)
  })
  return { family, version, blocks, claim: decodeScore(b.claim, 'claim') }
}

/** An `experts.attest` body: a score (and baseline), or a fault. */
export function decodeAttest(body: unknown): AttestBody {
  const b = fields(body, 'experts.attest', ['proposal', 'score', 'baseline', 'fault'])
  const proposal = hashOf(b.proposal, 'proposal')
  if (b.fault !== undefined) {
    if (b.score !== undefined || b.baseline !== undefined) malformed('an attestation with a fault carries no score')
    return { proposal, fault: text(b.fault, 'fault', MAX_FAULT) }
  }
  if (b.score === undefined) malformed('an attestation carries a score or a fault')
  return {
    proposal,
    score: decodeScore(b.score, 'score'),
    ...(b.baseline === undefined ? {} : { baseline: decodeScore(b.baseline, 'baseline') }),
  }
}

/** An `experts.usage` body. */
export function decodeUsage(body: unknown): UsageBody {
  const b = fields(body, 'experts.usage', ['family', 'version', 'entries', 'generations'])
  if (!Array.isArray(b.entries) || b.entries.length === 0 || b.entries.length > MAX_USAGE_ENTRIES)
    malformed(`entries must list 1-${MAX_USAGE_ENTRIES} blocks`)
  const entries = b.entries.map((raw: unknown, i) => {
    const e = fields(raw, `entries[${i}]`, ['block', 'calls', 'latencyMs'])
    return {
      block: hashOf(e.block, `entries[${i}].block`),
      calls: bounded(e.calls, `entries[${i}].calls`, 1, MAX_CALLS_PER_ENTRY),
      latencyMs: bounded(e.latencyMs, `entries[${i}].latencyMs`, 0, 1_000_000_000_000),
    }
  })
  if (new Set(entries.map((e) => e.block)).size !== entries.length) malformed('entries repeat a block')
  return {
    family: familyOf(b.family),
    version: versionOf(b.version),
    entries,
    generations: bounded(b.generations, 'generations', 0, 1_000_000_000),
  }
}
