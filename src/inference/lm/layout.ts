/**
 * The graph layout of a decoder with a KV cache, as Hugging Face Optimum exports it
 * (`model.onnx` / `decoder_with_past_model.onnx` / `decoder_model_merged.onnx`):
 *
 *   inputs   input_ids        int64 [batch, seq]
 *            attention_mask   int64 [batch, past + seq]              (optional)
 *            position_ids     int64 [batch, seq]                     (optional)
 *            past_key_values.{i}.key|value  float32|float16 [batch, kv_heads, past, head_dim]
 *            use_cache_branch bool [1]                               (merged decoders only)
 *   outputs  logits           float32|float16 [batch, seq, vocab]
 *            present.{i}.key|value          as the past, with past + seq positions
 *
 * The number of key/value heads and the head size come from the graph's input metadata when they
 * are fixed numbers there, else from config.json (grouped-query attention: num_key_value_heads;
 * head_dim, or hidden_size / num_attention_heads).
 */
import type { TensorSpec } from '../tensor.ts'
import { LmModelError } from './errors.ts'
import type { LmConfig } from './model-files.ts'

export type KvType = 'float32' | 'float16'

export interface DecoderLayout {
  attentionMask: boolean
  positionIds: boolean
  /** A merged decoder's branch switch (false on the first pass, with an empty past). */
  useCacheBranch: boolean
  /** Per layer, the names of its past inputs and present outputs. */
  layers: { pastKey: string; pastValue: string; presentKey: string; presentValue: string }[]
  kvType: KvType
  logitsType: KvType
  kvHeads: number
  headDim: number
}

const PAST = /^past_key_values\.(\d+)\.(key|value)$/
const PRESENT = /^present(?:_key_values)?\.(\d+)\.(key|value)$/
const KNOWN_INPUTS = new Set(['input_ids', 'attention_mask', 'position_ids', 'use_cache_branch'])

function bad(message: string): LmModelError {
  return new LmModelError('bad-graph', message)
}

function floatType(spec: TensorSpec, what: string): KvType {
  if (spec.type === 'float32' || spec.type === 'float16') return spec.type
  throw bad(`${what} ${JSON.stringify(spec.name)} is ${spec.type}; float32 or float16 is supported`)
}

/** Per-layer names, checked complete (0..n-1, key and value each). */
function byLayer(specs: readonly TensorSpec[], pattern: RegExp, what: string): Map<number, Record<string, TensorSpec>> {
  const layers = new Map<number, Record<string, TensorSpec>>()
  for (const spec of specs) {
    const m = pattern.exec(spec.name)
    if (m === null) continue
    const layer = Number(m[1])
    const entry = layers.get(layer) ?? {}
    entry[m[2]!] = spec
    layers.set(layer, entry)
  }
  for (let i = 0; i < layers.size; i++) {
    const entry = layers.get(i)
    if (entry?.key === undefined || entry.value === undefined)
      throw bad(`the graph's ${what} are incomplete: layer ${i} lacks its key or value`)
  }
  return layers
}

/**
 * The layout of a decoder graph from its declared inputs and outputs (a session's metadata, or
 * `OnnxRuntime.inspect`). `config` supplies the attention shape where the graph leaves it symbolic.
 * Throws `LmModelError('bad-graph')` naming what is missing or unsupported.
 */
export function decoderLayout(
  schema: { inputs: readonly TensorSpec[]; outputs: readonly TensorSpec[] },
  config: Partial<Pick<LmConfig, 'kvHeads' | 'headDim'>> = {},
): DecoderLayout {
  const input = (name: string): TensorSpec | undefined => schema.inputs.find((s) => s.name === name)
  const ids = input('input_ids')
  if (ids === undefined || ids.type !== 'int64' || ids.dims.length !== 2)
    throw bad('a language model graph needs an input_ids int64 [batch, sequence] input')
  const unknown = schema.inputs.filter((s) => !KNOWN_INPUTS.has(s.name) && !PAST.test(s.name)).map((s) => s.name)
  if (unknown.length > 0) throw bad(`the graph has inputs this runtime does not feed: ${unknown.join(', ')}`)
  for (const name of ['attention_mask', 'position_ids']) {
    const s = input(name)
    if (s !== undefined && s.type !== 'int64') throw bad(`${name} must be int64, the graph has ${s.type}`)
  }
  const branch = input('use_cache_branch')
  if (branch !== undefined && branch.type !== 'bool') throw bad('use_cache_branch must be bool')
  const logits = schema.outputs.find((s) => s.name === 'logits')
  if (logits === undefined) throw bad('a language model graph needs a logits output')
  const past = byLayer(schema.inputs, PAST, 'past_key_values inputs')
  const present = byLayer(schema.outputs, PRESENT, 'present outputs')
  if (past.size === 0)
    throw bad(
      'the graph has no past_key_values inputs: a decoder without a KV cache (decoder_model.onnx) is not served',
    )
  if (present.size !== past.size)
    throw bad(`the graph has ${past.size} layers of past_key_values but ${present.size} of present outputs`)
  const first = past.get(0)!.key!
  const kvType = floatType(first, 'past input')
  for (const [, layer] of [...past, ...present])
    for (const spec of Object.values(layer))
      if (floatType(spec, 'cache tensor') !== kvType) throw bad('every past and present tensor must have one type')
  if (first.dims.length !== 4)
    throw bad(`past inputs must be [batch, kv_heads, past, head_dim]; ${first.name} has ${first.dims.length} dims`)
  const kvHeads = (typeof first.dims[1] === 'number' ? first.dims[1] : undefined) ?? config.kvHeads
  const headDim = (typeof first.dims[3] === 'number' ? first.dims[3] : undefined) ?? config.headDim
  if (kvHeads === undefined || headDim === undefined || !Number.isSafeInteger(headDim))
    throw bad(
      'the graph leaves the cache shape symbolic and config.json does not give it (num_key_value_heads, head_dim or hidden_size / num_attention_heads)',
    )
  return {
    attentionMask: input('attention_mask') !== undefined,
    positionIds: input('position_ids') !== undefined,
    useCacheBranch: branch !== undefined,
    layers: [...past.keys()]
      .sort((a, b) => a - b)
      .map((i) => ({
        pastKey: past.get(i)!.key!.name,
        pastValue: past.get(i)!.value!.name,
        presentKey: present.get(i)!.key!.name,
        presentValue: present.get(i)!.value!.name,
      })),
    kvType,
    logitsType: floatType(logits, 'output'),
    kvHeads,
    headDim,
  }
}
