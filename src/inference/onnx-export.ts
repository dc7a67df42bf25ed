/**
 * Writing ONNX files with `onnx-proto` (the ONNX protobuf schema compiled by protobufjs).
 *
 * `buildOnnxModel` turns a small graph description (float32 inputs and outputs, float32
 * initializers, nodes) into ModelProto bytes; `mlpToOnnx` describes a trained MLP as
 *
 *   input -Mul(scale)- MatMul(W0) - Add(b0) - Relu - ... - MatMul(Wn) - Add(bn) - Softmax - probabilities
 *
 * The bytes depend only on the weights and options (no timestamps, no host names), so the same
 * training run always yields the same file and therefore the same CID.
 */
import type onnxProto from 'onnx-proto'
import { onnxSchema } from './onnx-schema.ts'
import { InvalidInputError } from '../core/errors.ts'
import type { MlpWeights } from './trainer.ts'

/** IR version 8 (ONNX 1.10), the newest this schema knows; ONNX Runtime reads it. */
export const ONNX_IR_VERSION = 8
/** The default-domain opset the exported graphs use. */
export const ONNX_OPSET = 13

/** A graph input or output: float32, each dim a size or a symbolic name (`'N'` for the batch). */
export interface OnnxValue {
  name: string
  dims: readonly (number | string)[]
}

export interface OnnxInitializer {
  name: string
  dims: readonly number[]
  data: Float32Array
}

export interface OnnxNode {
  op: string
  inputs: readonly string[]
  outputs: readonly string[]
  /** Integer attributes (e.g. Softmax `axis`). */
  attributes?: Readonly<Record<string, number>>
}

export interface OnnxGraph {
  name: string
  inputs: readonly OnnxValue[]
  outputs: readonly OnnxValue[]
  initializers: readonly OnnxInitializer[]
  nodes: readonly OnnxNode[]
}

export interface OnnxModelOptions {
  /** @default 'donghae' */
  producerName?: string
  /** @default '0' */
  producerVersion?: string
  /** @default 1 */
  modelVersion?: number
  docString?: string
  /** Free-form key/value pairs stored in the file (training recipe, data source). Sorted by key. */
  metadata?: Readonly<Record<string, string>>
}

function littleEndianFloats(data: Float32Array): Uint8Array {
  const out = new Uint8Array(data.length * 4)
  const view = new DataView(out.buffer)
  data.forEach((v, i) => view.setFloat32(i * 4, v, true))
  return out
}

function valueInfo(v: OnnxValue): onnxProto.onnx.IValueInfoProto {
  const dim = v.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }))
  return { name: v.name, type: { tensorType: { elemType: onnxSchema().TensorProto.DataType.FLOAT, shape: { dim } } } }
}

function initializer(t: OnnxInitializer): onnxProto.onnx.ITensorProto {
  const count = t.dims.reduce((a, b) => a * b, 1)
  if (count !== t.data.length)
    throw new InvalidInputError(`initializer ${t.name}: ${t.data.length} values do not fill [${t.dims.join(',')}]`)
  return {
    name: t.name,
    dims: [...t.dims],
    dataType: onnxSchema().TensorProto.DataType.FLOAT,
    rawData: littleEndianFloats(t.data),
  }
}

function node(n: OnnxNode, index: number): onnxProto.onnx.INodeProto {
  const attribute = Object.entries(n.attributes ?? {}).map(([name, i]) => ({
    name,
    i,
    type: onnxSchema().AttributeProto.AttributeType.INT,
  }))
  return {
    name: `${n.op.toLowerCase()}_${index}`,
    opType: n.op,
    input: [...n.inputs],
    output: [...n.outputs],
    attribute,
  }
}

/** Serialises a float32 graph as an ONNX ModelProto. */
export function buildOnnxModel(graph: OnnxGraph, options: OnnxModelOptions = {}): Uint8Array {
  const metadata = Object.entries(options.metadata ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  const model: onnxProto.onnx.IModelProto = {
    irVersion: ONNX_IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: options.producerName ?? 'donghae',
    producerVersion: options.producerVersion ?? '0',
    modelVersion: options.modelVersion ?? 1,
    docString: options.docString ?? '',
    metadataProps: metadata.map(([key, value]) => ({ key, value })),
    graph: {
      name: graph.name,
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
      initializer: graph.initializers.map(initializer),
      node: graph.nodes.map(node),
    },
  }
  const onnx = onnxSchema()
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish()
}

export interface MlpExportOptions extends OnnxModelOptions {
  /** @default 'input' */
  inputName?: string
  /** @default 'probabilities' */
  outputName?: string
  /** @default 'mlp' */
  graphName?: string
}

/** The graph of an MLP: scaling, dense layers with ReLU between them, softmax on the last axis. */
export function mlpGraph(weights: MlpWeights, options: MlpExportOptions = {}): OnnxGraph {
  const first = weights.layers[0]
  const last = weights.layers[weights.layers.length - 1]
  if (!first || !last) throw new InvalidInputError('the network has no layers')
  const inputName = options.inputName ?? 'input'
  const initializers: OnnxInitializer[] = []
  const nodes: OnnxNode[] = []
  let current = inputName
  if (weights.inputScale !== 1) {
    initializers.push({ name: 'input_scale', dims: [], data: Float32Array.of(weights.inputScale) })
    nodes.push({ op: 'Mul', inputs: [current, 'input_scale'], outputs: ['scaled'] })
    current = 'scaled'
  }
  weights.layers.forEach((layer, k) => {
    initializers.push({ name: `w${k}`, dims: [layer.inputs, layer.outputs], data: layer.weight })
    initializers.push({ name: `b${k}`, dims: [layer.outputs], data: layer.bias })
    nodes.push({ op: 'MatMul', inputs: [current, `w${k}`], outputs: [`matmul${k}`] })
    nodes.push({ op: 'Add', inputs: [`matmul${k}`, `b${k}`], outputs: [`dense${k}`] })
    current = `dense${k}`
    if (k < weights.layers.length - 1) {
      nodes.push({ op: 'Relu', inputs: [current], outputs: [`relu${k}`] })
      current = `relu${k}`
    }
  })
  const outputName = options.outputName ?? 'probabilities'
  nodes.push({ op: 'Softmax', inputs: [current], outputs: [outputName], attributes: { axis: -1 } })
  return {
    name: options.graphName ?? 'mlp',
    inputs: [{ name: inputName, dims: ['N', first.inputs] }],
    outputs: [{ name: outputName, dims: ['N', last.outputs] }],
    initializers,
    nodes,
  }
}

/** An MLP as ONNX bytes. */
export function mlpToOnnx(weights: MlpWeights, options: MlpExportOptions = {}): Uint8Array {
  return buildOnnxModel(mlpGraph(weights, options), options)
}
