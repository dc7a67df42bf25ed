/**
 * The weights of a Mixture-of-Experts model in memory: the trunk (embeddings, attention, norms,
 * head), one router per layer and the experts, parsed from their safetensors files and checked
 * against the shapes the architecture requires (`trunkShapes`, `payloadShapes` in ../types.ts).
 * A file must hold exactly those tensors: one missing, extra or of another shape is a
 * `WeightShapeError` naming the tensor and both shapes.
 */
import { readSafetensors, writeSafetensors, type DecodedTensor } from '../safetensors.ts'
import { payloadShapes, trunkShapes, type ExpertFfn, type MoeArchitecture } from '../types.ts'
import { ArchitectureError, WeightShapeError } from '../errors.ts'

export interface TrunkLayer {
  attnNorm: Float32Array
  /** [H·hd, d] */
  q: Float32Array
  /** [Hkv·hd, d] */
  k: Float32Array
  v: Float32Array
  /** [d, H·hd] */
  o: Float32Array
  ffnNorm: Float32Array
}

export interface MoeTrunk {
  /** [V, d] */
  embed: Float32Array
  layers: TrunkLayer[]
  norm: Float32Array
  /** [V, d]; the same array as `embed` when the embeddings are tied. */
  head: Float32Array
}

export interface RouterWeights {
  /** [E, d] */
  weight: Float32Array
}

export interface ExpertWeights {
  ffn: ExpertFfn
  dModel: number
  dFf: number
  /** [dFf, d]: the gate (swiglu) or the up projection (gelu, relu). */
  w1: Float32Array
  /** [d, dFf]: down. */
  w2: Float32Array
  /** [dFf, d]: up (swiglu only). */
  w3?: Float32Array
}

const positive = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v > 0

/** Throws `ArchitectureError` when `arch`'s numbers do not make a model this runtime runs. */
export function checkArchitecture(arch: MoeArchitecture): void {
  const bad = (field: string, why: string): never => {
    throw new ArchitectureError(`architecture: ${field} ${why}`, { details: { field } })
  }
  for (const f of [
    'vocabSize',
    'dModel',
    'nLayers',
    'nHeads',
    'nKvHeads',
    'dFf',
    'contextLength',
    'expertsPerLayer',
    'topK',
  ] as const)
    if (!positive(arch[f])) bad(f, 'must be a positive integer')
  if (arch.dModel % arch.nHeads !== 0) bad('nHeads', `must divide dModel (${arch.dModel})`)
  if ((arch.dModel / arch.nHeads) % 2 !== 0) bad('nHeads', 'must leave an even head dimension (rotary positions)')
  if (arch.nHeads % arch.nKvHeads !== 0) bad('nKvHeads', `must divide nHeads (${arch.nHeads})`)
  if (arch.topK > arch.expertsPerLayer) bad('topK', `must be at most expertsPerLayer (${arch.expertsPerLayer})`)
  if (!(typeof arch.ropeTheta === 'number' && arch.ropeTheta > 1 && Number.isFinite(arch.ropeTheta)))
    bad('ropeTheta', 'must be a finite number above 1')
  if (!(Number.isSafeInteger(arch.normEpsE9) && arch.normEpsE9 >= 0)) bad('normEpsE9', 'must be a non-negative integer')
  if (arch.gating !== 'softmax-topk-renorm' && arch.gating !== 'softmax-topk') bad('gating', 'is not known')
  if (arch.ffn !== 'swiglu' && arch.ffn !== 'gelu' && arch.ffn !== 'relu') bad('ffn', 'is not known')
}

/** RMSNorm's epsilon as a number. */
export function normEps(arch: MoeArchitecture): number {
  return arch.normEpsE9 / 1e9
}

/** Memory of one loaded expert's weights, bytes (float32). */
export function expertBytes(arch: MoeArchitecture): number {
  const matrices = arch.ffn === 'swiglu' ? 3 : 2
  return matrices * arch.dModel * arch.dFf * 4
}

/** Memory of the loaded trunk, bytes (float32). */
export function trunkBytes(arch: MoeArchitecture): number {
  let floats = 0
  for (const dims of Object.values(trunkShapes(arch))) floats += dims.reduce((a, b) => a * b, 1)
  return floats * 4
}

const dimsText = (d: readonly number[] | null): string => (d === null ? 'absent' : `[${d.join(', ')}]`)

/** Checks `tensors` holds exactly `expected` (name -> dims); `what` names the file in messages. */
export function checkTensors(
  what: string,
  tensors: ReadonlyMap<string, DecodedTensor>,
  expected: Record<string, number[]>,
): void {
  const fail = (tensor: string, want: number[] | null, got: number[] | null): never => {
    throw new WeightShapeError(
      `${what}: tensor ${tensor} is ${dimsText(got)}; the architecture needs ${dimsText(want)}`,
      {
        details: { tensor, expected: want, actual: got },
      },
    )
  }
  for (const [name, dims] of Object.entries(expected)) {
    const t = tensors.get(name)
    if (t === undefined) fail(name, dims, null)
    else if (t.shape.length !== dims.length || t.shape.some((v, i) => v !== dims[i])) fail(name, dims, t.shape)
  }
  for (const [name, t] of tensors) if (!(name in expected)) fail(name, null, t.shape)
}

function decodeChecked(
  what: string,
  bytes: Uint8Array,
  expected: Record<string, number[]>,
): Map<string, DecodedTensor> {
  const tensors = readSafetensors(bytes)
  checkTensors(what, tensors, expected)
  return tensors
}

/** Parses the trunk file. Throws `SafetensorsError`, `WeightShapeError`, `ArchitectureError`. */
export function parseTrunk(arch: MoeArchitecture, bytes: Uint8Array): MoeTrunk {
  checkArchitecture(arch)
  const t = decodeChecked('trunk', bytes, trunkShapes(arch))
  const get = (name: string): Float32Array => t.get(name)!.data
  const layers: TrunkLayer[] = []
  for (let i = 0; i < arch.nLayers; i++)
    layers.push({
      attnNorm: get(`layers.${i}.attn_norm`),
      q: get(`layers.${i}.q`),
      k: get(`layers.${i}.k`),
      v: get(`layers.${i}.v`),
      o: get(`layers.${i}.o`),
      ffnNorm: get(`layers.${i}.ffn_norm`),
    })
  const embed = get('embed')
  return { embed, layers, norm: get('norm'), head: arch.tieEmbeddings ? embed : get('head') }
}

/** Parses a router payload. Throws `SafetensorsError`, `WeightShapeError`. */
export function parseRouter(arch: MoeArchitecture, bytes: Uint8Array): RouterWeights {
  const t = decodeChecked('router', bytes, payloadShapes(arch, 'router'))
  return { weight: t.get('weight')!.data }
}

/** Parses an expert payload. Throws `SafetensorsError`, `WeightShapeError`. */
export function parseExpert(arch: MoeArchitecture, bytes: Uint8Array): ExpertWeights {
  const t = decodeChecked('expert', bytes, payloadShapes(arch, 'expert'))
  const out: ExpertWeights = {
    ffn: arch.ffn,
    dModel: arch.dModel,
    dFf: arch.dFf,
    w1: t.get('w1')!.data,
    w2: t.get('w2')!.data,
  }
  if (arch.ffn === 'swiglu') out.w3 = t.get('w3')!.data
  return out
}

/** An expert's weights as a payload file (the inverse of `parseExpert`). */
export function encodeExpert(weights: ExpertWeights): Uint8Array {
  const { dModel: d, dFf: f } = weights
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {
    w1: { shape: [f, d], data: weights.w1 },
    w2: { shape: [d, f], data: weights.w2 },
  }
  if (weights.w3 !== undefined) tensors.w3 = { shape: [f, d], data: weights.w3 }
  return writeSafetensors(tensors)
}

/** A router's weights as a payload file. */
export function encodeRouter(arch: MoeArchitecture, weights: RouterWeights): Uint8Array {
  return writeSafetensors({ weight: { shape: [arch.expertsPerLayer, arch.dModel], data: weights.weight } })
}

/** Bytes of an expert's arrays (what it holds in memory). */
export function weightsBytes(weights: ExpertWeights): number {
  return weights.w1.byteLength + weights.w2.byteLength + (weights.w3?.byteLength ?? 0)
}
