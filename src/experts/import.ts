/**
 * `donghae experts import DIR`: a Hugging Face Mixture-of-Experts checkpoint (config.json plus one
 * or more safetensors files) split into what an AI-Block family is made of - the architecture, the
 * trunk (shared weights, renamed to the names of types.ts), one router payload per layer and one
 * expert payload per layer × expert (w1/w2/w3). Every payload is a float32 safetensors file
 * (F16/BF16 checkpoints are widened).
 *
 * Schemes (recognized by their tensor names):
 * - **mixtral**: `model.layers.{i}.block_sparse_moe.{gate,experts.{j}.w1|w2|w3}.weight`; softmax,
 *   top-k, renormalized; SwiGLU. Runnable by our forward.
 * - **qwen-moe** (Qwen1.5/2/3-MoE): `model.layers.{i}.mlp.{gate,experts.{j}.gate_proj|up_proj|down_proj}.weight`
 *   -> w1, w3, w2; `norm_topk_prob` picks the gating. A shared expert (`mlp.shared_expert*`) is
 *   refused: our forward has none. Attention biases or q/k norms (Qwen2/3) are not in our forward:
 *   they are skipped and the import is not runnable.
 * - **switch** (Switch Transformer, T5-style encoder-decoder): the sparse blocks' routers
 *   (`...mlp.router.classifier.weight`) and experts (`...mlp.experts.expert_{j}.wi|wo.weight` -> w1,
 *   w2; ReLU, top-1, not renormalized) become blocks - encoder blocks first, then decoder blocks -
 *   but the trunk cannot run in our decoder-only forward: `runnable: false`, no trunk.
 *
 * The whole checkpoint is read into memory: meant for small models and tests, not a 90 GB Mixtral.
 */

import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { InvalidInputError } from '../core/errors.ts'
import { readSafetensors, writeSafetensors, type DecodedTensor } from './safetensors.ts'
import { payloadShapes, trunkShapes, type Gating, type MoeArchitecture } from './types.ts'

export type CheckpointScheme = 'mixtral' | 'qwen-moe' | 'switch'

/** A checkpoint this importer cannot turn into an AI-Block family. `details.tensor` names the culprit. */
export class CheckpointImportError extends InvalidInputError {
  static override readonly code: string = 'EXPERTS_IMPORT_INVALID'
  override name = 'CheckpointImportError'
}

export interface ImportedCheckpoint {
  scheme: CheckpointScheme
  arch: MoeArchitecture
  /** Whether our forward (types.ts) computes what the source model computes. */
  runnable: boolean
  /** Why not, when `runnable` is false. */
  reason?: string
  /** The trunk in our names (safetensors, F32); absent when the trunk cannot run here (switch). */
  trunk?: Uint8Array
  /** routers[L]: `weight` [E, d]. */
  routers: Uint8Array[]
  /** experts[L][J]: w1/w2(/w3). */
  experts: Uint8Array[][]
  /** Where each of our layers came from (source tensor prefix), in layer order. */
  layerSources: string[]
  /** Source tensors not imported, sorted. */
  skipped: string[]
}

type Tensors = Map<string, DecodedTensor>
type Config = Record<string, unknown>
type Out = Record<string, { shape: number[]; data: Float32Array }>

function fail(message: string, details: Record<string, unknown> = {}): never {
  throw new CheckpointImportError(message, { details })
}

/** Tensors harmless to drop: they recompute what the forward computes anyway. */
const IGNORABLE = /(^|\.)rotary_emb\.inv_freq$/

// ---------------------------------------------------------------------------------------------
// Reading the folder

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new CheckpointImportError(`${what} not found or unreadable: ${path}`, { cause: err, details: { path } })
  }
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new CheckpointImportError(`${what} is not valid JSON: ${path}`, { cause: err, details: { path } })
  }
}

const SHARD_NAME = /^[^/\\]+\.safetensors$/

/** config.json and every tensor of the checkpoint in `dir` (single file or sharded with an index). */
export async function readCheckpoint(dir: string): Promise<{ config: Config; tensors: Tensors }> {
  const config = await readJson(join(dir, 'config.json'), 'config.json')
  if (!isObject(config)) fail('config.json is not a JSON object')
  const entries = await readdir(dir)
  const tensors: Tensors = new Map()
  if (entries.includes('model.safetensors.index.json')) {
    const index = await readJson(join(dir, 'model.safetensors.index.json'), 'model.safetensors.index.json')
    const map = isObject(index) ? index.weight_map : undefined
    if (!isObject(map)) fail('model.safetensors.index.json has no weight_map object')
    const files = new Set<string>()
    for (const [name, file] of Object.entries(map)) {
      if (typeof file !== 'string' || !SHARD_NAME.test(file) || file.startsWith('.')) {
        fail(`model.safetensors.index.json: ${name} maps to an invalid shard name`, { tensor: name })
      }
      files.add(file)
    }
    for (const file of [...files].sort()) {
      const shard = readShard(await readFile(join(dir, file)), file)
      for (const [name, t] of shard) {
        if (map[name] !== file)
          fail(`${file}: tensor ${name} is not assigned to this shard by the index`, { tensor: name, file })
        tensors.set(name, t)
      }
    }
    for (const name of Object.keys(map)) {
      if (!tensors.has(name)) fail(`tensor ${name} is in the index but not in ${String(map[name])}`, { tensor: name })
    }
  } else {
    const files = entries.filter((e) => SHARD_NAME.test(e)).sort()
    if (files.length === 0) fail(`no *.safetensors file in ${dir}`)
    for (const file of files) {
      for (const [name, t] of readShard(await readFile(join(dir, file)), file)) {
        if (tensors.has(name)) fail(`tensor ${name} appears in more than one file (${file})`, { tensor: name, file })
        tensors.set(name, t)
      }
    }
  }
  return { config, tensors }
}

function readShard(bytes: Uint8Array, file: string): Tensors {
  try {
    return readSafetensors(bytes)
  } catch (err) {
    if (err instanceof InvalidInputError)
      throw new CheckpointImportError(`${file}: ${err.message}`, { cause: err, details: { file } })
    throw err
  }
}

// ---------------------------------------------------------------------------------------------
// Config values

function int(config: Config, key: string, fallback?: number): number {
  const v = config[key] ?? fallback
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    fail(`config.json: ${key} must be a positive integer${v === undefined ? ' (missing)' : ''}`, { key })
  }
  return v
}

function num(config: Config, key: string, fallback: number): number {
  const v = config[key] ?? fallback
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    fail(`config.json: ${key} must be a positive number`, { key })
  return v
}

function bool(config: Config, key: string, fallback: boolean): boolean {
  const v = config[key] ?? fallback
  if (typeof v !== 'boolean') fail(`config.json: ${key} must be true or false`, { key })
  return v
}

function epsE9(eps: number, key: string): number {
  const e = Math.round(eps * 1e9)
  if (e < 1 || !Number.isSafeInteger(e))
    fail(`config.json: ${key} ${eps} is not representable in units of 1e-9`, { key })
  return e
}

// ---------------------------------------------------------------------------------------------
// Recognizing the scheme

const MIXTRAL_GATE = /^model\.layers\.(\d+)\.block_sparse_moe\.gate\.weight$/
const QWEN_GATE = /^model\.layers\.(\d+)\.mlp\.gate\.weight$/
const QWEN_SHARED = /^model\.layers\.\d+\.mlp\.shared_expert/
const SWITCH_ROUTER = /^(encoder|decoder)\.block\.(\d+)\.layer\.(\d+)\.mlp\.router\.classifier\.weight$/

/** The naming scheme of a checkpoint's tensors. */
export function detectScheme(names: Iterable<string>): CheckpointScheme {
  let mixtral = false
  let qwen = false
  let sw = false
  for (const n of names) {
    if (MIXTRAL_GATE.test(n)) mixtral = true
    else if (QWEN_GATE.test(n) || QWEN_SHARED.test(n)) qwen = true
    else if (SWITCH_ROUTER.test(n)) sw = true
  }
  const found = [mixtral && 'mixtral', qwen && 'qwen-moe', sw && 'switch'].filter(
    (s): s is CheckpointScheme => s !== false,
  )
  if (found.length === 0)
    fail('no Mixture-of-Experts router found: not a Mixtral, Qwen-MoE or Switch Transformer checkpoint')
  if (found.length > 1) fail(`tensor names of several schemes (${found.join(', ')}): refusing to guess`)
  return found[0] as CheckpointScheme
}

// ---------------------------------------------------------------------------------------------
// Taking tensors

class Taker {
  readonly used = new Set<string>()
  readonly tensors: Tensors
  constructor(tensors: Tensors) {
    this.tensors = tensors
  }

  /** The tensor `name`, checked to have `shape`. */
  take(name: string, shape: number[]): { shape: number[]; data: Float32Array } {
    const t = this.tensors.get(name)
    if (t === undefined) fail(`tensor ${name} is missing`, { tensor: name })
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      fail(`tensor ${name} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`, {
        tensor: name,
        shape: t.shape,
        expected: shape,
      })
    }
    this.used.add(name)
    return { shape: [...shape], data: t.data }
  }

  has(name: string): boolean {
    return this.tensors.has(name)
  }

  leftover(): string[] {
    return [...this.tensors.keys()].filter((n) => !this.used.has(n)).sort()
  }
}

function shapeOf(shapes: Record<string, number[]>, key: string): number[] {
  return shapes[key] as number[]
}

interface DecoderNames {
  embed: string
  norm: string
  head: string
  layer: (i: number) => string
  router: (i: number) => string
  expert: (i: number, j: number) => { w1: string; w2: string; w3: string }
}

const MIXTRAL_NAMES: DecoderNames = {
  embed: 'model.embed_tokens.weight',
  norm: 'model.norm.weight',
  head: 'lm_head.weight',
  layer: (i) => `model.layers.${i}`,
  router: (i) => `model.layers.${i}.block_sparse_moe.gate.weight`,
  expert: (i, j) => {
    const p = `model.layers.${i}.block_sparse_moe.experts.${j}`
    return { w1: `${p}.w1.weight`, w2: `${p}.w2.weight`, w3: `${p}.w3.weight` }
  },
}

const QWEN_NAMES: DecoderNames = {
  ...MIXTRAL_NAMES,
  router: (i) => `model.layers.${i}.mlp.gate.weight`,
  expert: (i, j) => {
    const p = `model.layers.${i}.mlp.experts.${j}`
    return { w1: `${p}.gate_proj.weight`, w2: `${p}.down_proj.weight`, w3: `${p}.up_proj.weight` }
  },
}

/** Mixtral and Qwen-MoE: decoder-only, Llama attention, routed SwiGLU experts. */
function importDecoder(scheme: 'mixtral' | 'qwen-moe', config: Config, tensors: Tensors): ImportedCheckpoint {
  const qwen = scheme === 'qwen-moe'
  const shared = [...tensors.keys()].filter((n) => QWEN_SHARED.test(n))
  if (shared.length > 0) {
    fail(
      `shared experts are not supported by our forward (a Qwen-MoE shared expert: ${shared[0]}); only routed experts can be imported`,
      {
        tensor: shared[0],
      },
    )
  }
  const names = qwen ? QWEN_NAMES : MIXTRAL_NAMES
  const dModel = int(config, 'hidden_size')
  const nHeads = int(config, 'num_attention_heads')
  const nKvHeads = int(config, 'num_key_value_heads', nHeads)
  if (dModel % nHeads !== 0)
    fail(`config.json: hidden_size ${dModel} is not a multiple of num_attention_heads ${nHeads}`, {
      key: 'hidden_size',
    })
  if (nHeads % nKvHeads !== 0)
    fail(`config.json: num_key_value_heads ${nKvHeads} does not divide num_attention_heads ${nHeads}`, {
      key: 'num_key_value_heads',
    })
  const headDim = config.head_dim
  if (headDim !== undefined && headDim !== null && headDim !== dModel / nHeads) {
    fail(
      `config.json: head_dim ${String(headDim)} differs from hidden_size / num_attention_heads (${dModel / nHeads}); our forward needs them equal`,
      { key: 'head_dim' },
    )
  }
  let contextLength = int(config, 'max_position_embeddings')
  const window = config.sliding_window
  const useWindow = qwen ? config.use_sliding_window === true : true
  // Inside the window sliding attention is full attention: cap the context at the window.
  if (useWindow && typeof window === 'number' && Number.isSafeInteger(window) && window > 0 && window < contextLength)
    contextLength = window
  const ropeTheta = num(config, 'rope_theta', qwen ? 10000 : 1e6)
  if (!Number.isSafeInteger(ropeTheta))
    fail(`config.json: rope_theta ${ropeTheta} is not an integer`, { key: 'rope_theta' })
  const gating: Gating = qwen
    ? bool(config, 'norm_topk_prob', false)
      ? 'softmax-topk-renorm'
      : 'softmax-topk'
    : 'softmax-topk-renorm'
  const arch: MoeArchitecture = {
    vocabSize: int(config, 'vocab_size'),
    dModel,
    nLayers: int(config, 'num_hidden_layers'),
    nHeads,
    nKvHeads,
    dFf: int(config, qwen ? 'moe_intermediate_size' : 'intermediate_size'),
    contextLength,
    ropeTheta,
    normEpsE9: epsE9(num(config, 'rms_norm_eps', qwen ? 1e-6 : 1e-5), 'rms_norm_eps'),
    expertsPerLayer: int(config, qwen ? 'num_experts' : 'num_local_experts'),
    topK: int(config, 'num_experts_per_tok'),
    gating,
    ffn: 'swiglu',
    tieEmbeddings: bool(config, 'tie_word_embeddings', false),
  }
  if (arch.topK > arch.expertsPerLayer)
    fail(`config.json: num_experts_per_tok ${arch.topK} exceeds the experts per layer (${arch.expertsPerLayer})`, {
      key: 'num_experts_per_tok',
    })

  const reasons: string[] = []
  const act = config.hidden_act
  if (act !== undefined && act !== 'silu' && act !== 'swish')
    reasons.push(`hidden_act ${String(act)} (our SwiGLU uses silu)`)
  if (config.rope_scaling !== undefined && config.rope_scaling !== null)
    reasons.push('rope_scaling (our rotary positions are unscaled)')

  const take = new Taker(tensors)
  const ts = trunkShapes(arch)
  const trunk: Out = {
    embed: take.take(names.embed, shapeOf(ts, 'embed')),
    norm: take.take(names.norm, shapeOf(ts, 'norm')),
  }
  if (arch.tieEmbeddings) {
    // A tied checkpoint may still store the head: it must be the embedding.
    if (take.has(names.head)) {
      const head = take.take(names.head, [arch.vocabSize, dModel])
      if (!head.data.every((x, i) => Object.is(x, trunk.embed?.data[i])))
        reasons.push(`${names.head} differs from the embedding though tie_word_embeddings is true`)
    }
  } else {
    trunk.head = take.take(names.head, shapeOf(ts, 'head'))
  }
  const routers: Uint8Array[] = []
  const experts: Uint8Array[][] = []
  const layerSources: string[] = []
  const ex = payloadShapes(arch, 'expert')
  for (let i = 0; i < arch.nLayers; i++) {
    const p = names.layer(i)
    layerSources.push(p)
    const attn = `${p}.self_attn`
    trunk[`layers.${i}.attn_norm`] = take.take(`${p}.input_layernorm.weight`, shapeOf(ts, `layers.${i}.attn_norm`))
    trunk[`layers.${i}.q`] = take.take(`${attn}.q_proj.weight`, shapeOf(ts, `layers.${i}.q`))
    trunk[`layers.${i}.k`] = take.take(`${attn}.k_proj.weight`, shapeOf(ts, `layers.${i}.k`))
    trunk[`layers.${i}.v`] = take.take(`${attn}.v_proj.weight`, shapeOf(ts, `layers.${i}.v`))
    trunk[`layers.${i}.o`] = take.take(`${attn}.o_proj.weight`, shapeOf(ts, `layers.${i}.o`))
    trunk[`layers.${i}.ffn_norm`] = take.take(
      `${p}.post_attention_layernorm.weight`,
      shapeOf(ts, `layers.${i}.ffn_norm`),
    )
    const gate = names.router(i)
    if (!take.has(gate)) {
      const dense = [...tensors.keys()].find((n) => n.startsWith(`${p}.mlp.`) || n.startsWith(`${p}.block_sparse_moe.`))
      fail(
        `layer ${i} has no router (${gate})${dense === undefined ? '' : `; a dense feed-forward layer (${dense}) is not supported`}`,
        { tensor: gate },
      )
    }
    routers.push(writeSafetensors({ weight: take.take(gate, [arch.expertsPerLayer, dModel]) }))
    const row: Uint8Array[] = []
    for (let j = 0; j < arch.expertsPerLayer; j++) {
      const n = names.expert(i, j)
      row.push(
        writeSafetensors({
          w1: take.take(n.w1, shapeOf(ex, 'w1')),
          w2: take.take(n.w2, shapeOf(ex, 'w2')),
          w3: take.take(n.w3, shapeOf(ex, 'w3')),
        }),
      )
    }
    experts.push(row)
  }
  const skipped = take.leftover()
  const relevant = skipped.filter((n) => !IGNORABLE.test(n))
  if (relevant.length > 0) {
    const shown = relevant.slice(0, 3).join(', ')
    reasons.push(
      `tensors our forward does not use: ${shown}${relevant.length > 3 ? ` and ${relevant.length - 3} more` : ''}`,
    )
  }
  return {
    scheme,
    arch,
    runnable: reasons.length === 0,
    ...(reasons.length === 0 ? {} : { reason: reasons.join('; ') }),
    trunk: writeSafetensors(trunk),
    routers,
    experts,
    layerSources,
    skipped,
  }
}

/** Switch Transformer: the sparse blocks' routers and experts; the encoder-decoder trunk stays out. */
function importSwitch(config: Config, tensors: Tensors): ImportedCheckpoint {
  const sparse: Array<{ stack: string; block: number; layer: number }> = []
  for (const n of tensors.keys()) {
    const m = SWITCH_ROUTER.exec(n)
    if (m !== null) sparse.push({ stack: m[1] as string, block: Number(m[2]), layer: Number(m[3]) })
  }
  // encoder blocks first, then decoder blocks, each in block order
  sparse.sort((a, b) => (a.stack === b.stack ? a.block - b.block : a.stack === 'encoder' ? -1 : 1))
  const dModel = int(config, 'd_model')
  const nHeads = int(config, 'num_heads')
  const arch: MoeArchitecture = {
    vocabSize: int(config, 'vocab_size'),
    dModel,
    nLayers: sparse.length,
    nHeads,
    nKvHeads: nHeads,
    dFf: int(config, 'd_ff'),
    // relative position buckets, no maximum: the T5 default length
    contextLength: int(config, 'n_positions', 512),
    ropeTheta: 10000,
    normEpsE9: epsE9(num(config, 'layer_norm_epsilon', 1e-6), 'layer_norm_epsilon'),
    expertsPerLayer: int(config, 'num_experts'),
    topK: 1,
    gating: 'softmax-topk',
    ffn: 'relu',
    tieEmbeddings: bool(config, 'tie_word_embeddings', true),
  }
  const take = new Taker(tensors)
  const ex = payloadShapes(arch, 'expert')
  const routers: Uint8Array[] = []
  const experts: Uint8Array[][] = []
  const layerSources: string[] = []
  for (const s of sparse) {
    const p = `${s.stack}.block.${s.block}.layer.${s.layer}.mlp`
    layerSources.push(`${s.stack}.block.${s.block}`)
    routers.push(
      writeSafetensors({ weight: take.take(`${p}.router.classifier.weight`, [arch.expertsPerLayer, dModel]) }),
    )
    const row: Uint8Array[] = []
    for (let j = 0; j < arch.expertsPerLayer; j++) {
      const e = `${p}.experts.expert_${j}`
      row.push(
        writeSafetensors({
          w1: take.take(`${e}.wi.weight`, shapeOf(ex, 'w1')),
          w2: take.take(`${e}.wo.weight`, shapeOf(ex, 'w2')),
        }),
      )
    }
    experts.push(row)
  }
  return {
    scheme: 'switch',
    arch,
    runnable: false,
    reason:
      'a Switch Transformer is an encoder-decoder with relative position biases; our forward is decoder-only (its routers and experts import as blocks, its trunk does not)',
    routers,
    experts,
    layerSources,
    skipped: take.leftover(),
  }
}

/** The core of the import on tensors already read (names as the checkpoint has them). */
export function importTensors(
  config: Record<string, unknown>,
  tensors: Map<string, DecodedTensor>,
): ImportedCheckpoint {
  const scheme = detectScheme(tensors.keys())
  return scheme === 'switch' ? importSwitch(config, tensors) : importDecoder(scheme, config, tensors)
}

/** Reads the checkpoint in `dir` and splits it into trunk, routers and experts. */
export async function importCheckpoint(dir: string): Promise<ImportedCheckpoint> {
  const { config, tensors } = await readCheckpoint(dir)
  return importTensors(config, tensors)
}
