/**
 * Deterministic evaluation of submitted weights on a hidden validation set, and the sets' bytes.
 *
 * A validation set travels as canonical dag-cbor { featureCount, classCount, features (float32
 * little-endian bytes), labels (int32 little-endian bytes) }; its commitment on chain is the
 * sha256 of those bytes, so a validator checks the set it was given before scoring with it.
 *
 * The built-in evaluator reads an MLP ONNX file of the shape `mlpToOnnx` writes (optional input
 * Mul, MatMul + Add per layer with Relu between, Softmax) back into weights and scores it with the
 * built-in trainer's float64 forward pass: the same bytes give the same score on every machine.
 * The score is the top-1 accuracy in ppm, floor(correct × 1 000 000 / examples). Other ONNX
 * graphs throw UnsupportedModelError (docs/arena.md: what an external trainer must export).
 */
import type onnxProto from 'onnx-proto'
import { onnxSchema } from '../inference/onnx-schema.ts'
import { encode, decode } from '../core/codec.ts'
import { InvalidInputError } from '../core/errors.ts'
import { sha256 } from '../core/hash.ts'
import { toHex } from '../core/bytes.ts'
import { checkDataset, mlpTrainer, type Dataset, type DenseLayer, type MlpWeights } from '../inference/trainer.ts'
import { PPM } from './constants.ts'
import { CommitmentMismatchError, UnsupportedModelError } from './errors.ts'

// ---- validation sets ------------------------------------------------------------------------

function littleEndian(view: Float32Array | Int32Array): Uint8Array {
  const out = new Uint8Array(view.length * 4)
  const dv = new DataView(out.buffer)
  view.forEach((v, i) => (view instanceof Float32Array ? dv.setFloat32(i * 4, v, true) : dv.setInt32(i * 4, v, true)))
  return out
}

export function encodeValidationSet(d: Dataset): Uint8Array {
  checkDataset(d)
  return encode({
    featureCount: d.featureCount,
    classCount: d.classCount,
    features: littleEndian(d.features),
    labels: littleEndian(d.labels),
  })
}

export function decodeValidationSet(bytes: Uint8Array): Dataset {
  const raw = decode<{ featureCount: number; classCount: number; features: Uint8Array; labels: Uint8Array } | null>(
    bytes,
  )
  // a task creator chooses these bytes: refuse a wrong shape with a typed error (found by fuzzing)
  if (
    raw === null ||
    typeof raw !== 'object' ||
    !(raw.features instanceof Uint8Array) ||
    !(raw.labels instanceof Uint8Array) ||
    raw.features.byteLength % 4 !== 0 ||
    raw.labels.byteLength % 4 !== 0
  )
    throw new InvalidInputError('a validation set is { featureCount, classCount, features, labels } with 4-byte values')
  const fv = new DataView(raw.features.buffer, raw.features.byteOffset, raw.features.byteLength)
  const lv = new DataView(raw.labels.buffer, raw.labels.byteOffset, raw.labels.byteLength)
  const d: Dataset = {
    featureCount: raw.featureCount,
    classCount: raw.classCount,
    features: Float32Array.from({ length: raw.features.byteLength / 4 }, (_, i) => fv.getFloat32(i * 4, true)),
    labels: Int32Array.from({ length: raw.labels.byteLength / 4 }, (_, i) => lv.getInt32(i * 4, true)),
  }
  checkDataset(d)
  return d
}

/** The commitment a task carries for a validation set. */
export function validationCommit(bytes: Uint8Array): Uint8Array {
  return sha256(bytes)
}

/** Decodes a validation set after checking it against the task's commitment (hex). */
export function openValidationSet(bytes: Uint8Array, commitHex: string): Dataset {
  if (toHex(validationCommit(bytes)) !== commitHex)
    throw new CommitmentMismatchError(
      'this validation set does not hash to the task\u2019s commitment; ask the creator for the right file',
    )
  return decodeValidationSet(bytes)
}

// ---- MLP weights from ONNX ------------------------------------------------------------------

function floats(t: onnxProto.onnx.ITensorProto, name: string): Float32Array {
  if (t.dataType !== onnxSchema().TensorProto.DataType.FLOAT) throw new UnsupportedModelError(`${name} is not float32`)
  if (t.rawData && t.rawData.length > 0) {
    const raw = t.rawData
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength)
    return Float32Array.from({ length: raw.byteLength / 4 }, (_, i) => dv.getFloat32(i * 4, true))
  }
  return Float32Array.from(t.floatData ?? [])
}

/** Reads an `mlpToOnnx` file back into MLP weights; UnsupportedModelError for any other graph. */
export function mlpFromOnnx(bytes: Uint8Array): MlpWeights {
  let model: onnxProto.onnx.ModelProto
  try {
    model = onnxSchema().ModelProto.decode(bytes)
  } catch (err) {
    throw new UnsupportedModelError('the weights file is not an ONNX model', { cause: err })
  }
  const graph = model.graph
  if (!graph) throw new UnsupportedModelError('the ONNX model has no graph')
  const init = new Map((graph.initializer ?? []).map((t) => [t.name ?? '', t]))
  const layers: DenseLayer[] = []
  for (let k = 0; init.has(`w${k}`); k++) {
    const w = init.get(`w${k}`) as onnxProto.onnx.ITensorProto
    const b = init.get(`b${k}`)
    const dims = (w.dims ?? []).map(Number)
    if (b === undefined || dims.length !== 2)
      throw new UnsupportedModelError(`layer ${k} needs w${k} [in,out] and b${k}`)
    const [inputs, outputs] = dims as [number, number]
    const weight = floats(w, `w${k}`)
    const bias = floats(b, `b${k}`)
    if (weight.length !== inputs * outputs || bias.length !== outputs)
      throw new UnsupportedModelError(`layer ${k}'s tensors do not match their shapes`)
    if (k > 0 && layers[k - 1]?.outputs !== inputs)
      throw new UnsupportedModelError(`layer ${k} does not follow layer ${k - 1}`)
    layers.push({ inputs, outputs, weight, bias })
  }
  if (layers.length === 0) throw new UnsupportedModelError('no dense layers (w0, b0, \u2026) in the model')
  const scale = init.get('input_scale')
  const ops = (graph.node ?? []).map((n) => n.opType ?? '')
  const expected = [
    ...(scale === undefined ? [] : ['Mul']),
    ...layers.flatMap((_, k) => (k === layers.length - 1 ? ['MatMul', 'Add'] : ['MatMul', 'Add', 'Relu'])),
    'Softmax',
  ]
  if (ops.length !== expected.length || ops.some((op, i) => op !== expected[i]))
    throw new UnsupportedModelError(
      `the graph is not a plain MLP (${ops.join(' \u2192 ')}); export it as docs/arena.md says`,
    )
  return { inputScale: scale === undefined ? 1 : (floats(scale, 'input_scale')[0] ?? 1), layers }
}

// ---- scoring ------------------------------------------------------------------------------------

/** Top-1 accuracy of `weights` on `set`, ppm (rounded down). */
export function accuracyPpm(weights: MlpWeights, set: Dataset): number {
  const n = set.labels.length
  if (n === 0) return 0
  const probs = mlpTrainer.predict(weights, set.features)
  let correct = 0
  for (let r = 0; r < n; r++) {
    let best = 0
    for (let j = 1; j < set.classCount; j++)
      if ((probs[r * set.classCount + j] as number) > (probs[r * set.classCount + best] as number)) best = j
    if (best === set.labels[r]) correct++
  }
  return Math.floor((correct * PPM) / n)
}

/** The score of a weights file (ONNX bytes) on a validation set. */
export function scoreWeights(bytes: Uint8Array, set: Dataset): number {
  return accuracyPpm(mlpFromOnnx(bytes), set)
}
