/**
 * The model safety check: refuses an ONNX file before ONNX Runtime parses it when the file could
 * make ONNX Runtime read data from outside the file, or is larger in structure than a model needs.
 *
 * ONNX Runtime reads a tensor's "external data" from a file named in the tensor
 * (`external_data: { location }`) relative to the working directory when the model comes from
 * bytes; it refuses absolute paths and `..`, nothing else. So a model whose output is
 * `Identity(w)`, `w` stored in `api-token`, would answer with the operator's token. Any tensor
 * with `data_location = EXTERNAL` or a non-empty `external_data` is refused, wherever it sits:
 *
 *   graph.initializer, graph.sparse_initializer (values, indices), node attributes holding
 *   tensors (`t`, `tensors`, `sparse_tensor`, `sparse_tensors`: Constant.value,
 *   ConstantOfShape.value, ...), subgraphs in attributes (`g`, `graphs`: If, Loop, Scan, at any
 *   depth), model-local functions (their nodes, and their attribute defaults), training info.
 *
 * `EPContext` nodes (com.microsoft) are refused too: with `embed_mode = 0` their attribute is a
 * path to a compiled blob that an execution provider loads from disk.
 *
 * Why a walk over the protobuf wire format rather than `onnx.ModelProto.decode` (onnx-proto):
 * protobufjs keeps only the last occurrence of a singular sub-message where ONNX Runtime's C++
 * parser merges every occurrence (a second `graph` field would hide the first one's
 * initializers), and it drops fields its IR 8 schema does not know (`FunctionProto.attribute_proto`,
 * IR 9). The walk below visits every occurrence of every field that can lead to a tensor, using
 * the field numbers of the current `onnx.proto`, skips everything else by length without copying
 * it, and recurses only as deep as `maxGraphDepth` allows.
 *
 * The sandboxed runner also runs every session in an empty working directory
 * (`runner/sandbox.ts`), so a file is out of reach even if this check missed a place.
 */
import { UnsafeModelError } from './errors.ts'

/** Structural bounds of a model file. */
export interface ModelCheckLimits {
  /** Nesting of graphs: the main graph is 1, a Loop body inside it 2, ... @default 16 */
  maxGraphDepth: number
  /** Nodes across every graph, subgraph and function. @default 200_000 */
  maxNodes: number
}

export const MODEL_CHECK_DEFAULTS: Readonly<ModelCheckLimits> = Object.freeze({
  maxGraphDepth: 16,
  maxNodes: 200_000,
})

/** Operators refused wherever they appear, as `domain:op_type`. */
export const REFUSED_OPERATORS: ReadonlySet<string> = new Set(['com.microsoft:EPContext'])

// Field numbers of onnx/onnx.proto (IR 11); only those on a path to a tensor, plus names.
const MODEL = { graph: 7, trainingInfo: 20, functions: 25 } as const
const GRAPH = { node: 1, initializer: 5, sparseInitializer: 15 } as const
const NODE = { name: 3, opType: 4, attribute: 5, domain: 7 } as const
const ATTRIBUTE = { name: 1, t: 5, g: 6, tensors: 10, graphs: 11, sparseTensor: 22, sparseTensors: 23 } as const
const TENSOR = { name: 8, externalData: 13, dataLocation: 14 } as const
const SPARSE = { values: 1, indices: 2 } as const
const TRAINING = { initialization: 1, algorithm: 2 } as const
const FUNCTION = { name: 1, node: 7, domain: 10, attributeProto: 11 } as const

const WIRE_VARINT = 0
const WIRE_FIXED64 = 1
const WIRE_BYTES = 2
const WIRE_FIXED32 = 5
const DATA_LOCATION_DEFAULT = 0
const SHOWN_NAME_CHARS = 64
const UTF8 = new TextDecoder('utf-8', { fatal: false })

interface Field {
  field: number
  wire: number
  /** The varint's value (wire type 0). */
  value: number
  /** The payload's bounds (wire type 2). */
  start: number
  end: number
}

class Malformed extends Error {}

/** The fields of the message in `bytes[start, end)`, in order (every occurrence). */
function fieldsOf(bytes: Uint8Array, start: number, end: number): Field[] {
  const out: Field[] = []
  let pos = start
  const varint = (): number => {
    let result = 0
    let scale = 1
    for (let i = 0; i < 10; i++) {
      if (pos >= end) throw new Malformed('truncated varint')
      const b = bytes[pos++] as number
      result += (b & 0x7f) * scale
      if ((b & 0x80) === 0) return result
      scale *= 128
    }
    throw new Malformed('varint longer than 10 bytes')
  }
  while (pos < end) {
    const tag = varint()
    const field = Math.floor(tag / 8)
    const wire = tag % 8
    if (field === 0) throw new Malformed('field number 0')
    switch (wire) {
      case WIRE_VARINT:
        out.push({ field, wire, value: varint(), start: pos, end: pos })
        break
      case WIRE_FIXED64:
        pos += 8
        break
      case WIRE_FIXED32:
        pos += 4
        break
      case WIRE_BYTES: {
        const length = varint()
        if (length > end - pos) throw new Malformed('length-delimited field runs past its message')
        out.push({ field, wire, value: length, start: pos, end: pos + length })
        pos += length
        break
      }
      default:
        throw new Malformed(`wire type ${wire} (groups are not used by ONNX)`)
    }
    if (pos > end) throw new Malformed('fixed-width field runs past its message')
  }
  return out
}

/** Every length-delimited occurrence of `field` (a field with another wire type is unknown to the parser). */
function messages(fields: readonly Field[], field: number): Field[] {
  return fields.filter((f) => f.field === field && f.wire === WIRE_BYTES)
}

function text(bytes: Uint8Array, fields: readonly Field[], field: number): string {
  const found = messages(fields, field).at(-1)
  if (found === undefined) return ''
  return UTF8.decode(bytes.subarray(found.start, found.end))
}

function shown(name: string): string {
  return name === ''
    ? ''
    : ` ${JSON.stringify(name.length > SHOWN_NAME_CHARS ? `${name.slice(0, SHOWN_NAME_CHARS)}\u2026` : name)}`
}

class ModelWalk {
  readonly #bytes: Uint8Array
  readonly #limits: ModelCheckLimits
  #nodes = 0

  constructor(bytes: Uint8Array, limits: ModelCheckLimits) {
    this.#bytes = bytes
    this.#limits = limits
  }

  model(): void {
    const fields = fieldsOf(this.#bytes, 0, this.#bytes.length)
    messages(fields, MODEL.graph).forEach((g) => this.#graph(g, 'graph', 1))
    messages(fields, MODEL.trainingInfo).forEach((t, i) => {
      const inner = fieldsOf(this.#bytes, t.start, t.end)
      messages(inner, TRAINING.initialization).forEach((g) => this.#graph(g, `training_info[${i}].initialization`, 1))
      messages(inner, TRAINING.algorithm).forEach((g) => this.#graph(g, `training_info[${i}].algorithm`, 1))
    })
    messages(fields, MODEL.functions).forEach((f, i) => this.#function(f, i))
  }

  #function(at: Field, index: number): void {
    const fields = fieldsOf(this.#bytes, at.start, at.end)
    const name = text(this.#bytes, fields, FUNCTION.name)
    const path = `functions[${index}](${text(this.#bytes, fields, FUNCTION.domain)}:${name})`
    messages(fields, FUNCTION.node).forEach((n, i) => this.#node(n, `${path}.node[${i}]`, 1))
    messages(fields, FUNCTION.attributeProto).forEach((a, i) => this.#attribute(a, `${path}.attribute_proto[${i}]`, 1))
  }

  #graph(at: Field, path: string, depth: number): void {
    if (depth > this.#limits.maxGraphDepth)
      throw new UnsafeModelError(
        path,
        `${path} nests graphs ${depth} deep; at most ${this.#limits.maxGraphDepth} are accepted`,
        { details: { bound: 'maxGraphDepth', limit: this.#limits.maxGraphDepth } },
      )
    const fields = fieldsOf(this.#bytes, at.start, at.end)
    messages(fields, GRAPH.initializer).forEach((t, i) => this.#tensor(t, `${path}.initializer[${i}]`))
    messages(fields, GRAPH.sparseInitializer).forEach((s, i) => this.#sparse(s, `${path}.sparse_initializer[${i}]`))
    messages(fields, GRAPH.node).forEach((n, i) => this.#node(n, `${path}.node[${i}]`, depth))
  }

  #node(at: Field, path: string, depth: number): void {
    if (++this.#nodes > this.#limits.maxNodes)
      throw new UnsafeModelError(path, `${path}: the model has more than ${this.#limits.maxNodes} nodes`, {
        details: { bound: 'maxNodes', limit: this.#limits.maxNodes },
      })
    const fields = fieldsOf(this.#bytes, at.start, at.end)
    const op = text(this.#bytes, fields, NODE.opType)
    const domain = text(this.#bytes, fields, NODE.domain)
    const here = `${path}(${op})`
    if (REFUSED_OPERATORS.has(`${domain}:${op}`))
      throw new UnsafeModelError(here, `${here}: ${domain}:${op} loads files from disk and is not accepted`)
    messages(fields, NODE.attribute).forEach((a) => this.#attribute(a, here, depth))
  }

  /** `owner` is the node (or function) path; the attribute adds `.name`. */
  #attribute(at: Field, owner: string, depth: number): void {
    const fields = fieldsOf(this.#bytes, at.start, at.end)
    const path = `${owner}.${text(this.#bytes, fields, ATTRIBUTE.name)}`
    messages(fields, ATTRIBUTE.t).forEach((t) => this.#tensor(t, path))
    messages(fields, ATTRIBUTE.tensors).forEach((t, i) => this.#tensor(t, `${path}[${i}]`))
    messages(fields, ATTRIBUTE.sparseTensor).forEach((s) => this.#sparse(s, path))
    messages(fields, ATTRIBUTE.sparseTensors).forEach((s, i) => this.#sparse(s, `${path}[${i}]`))
    messages(fields, ATTRIBUTE.g).forEach((g) => this.#graph(g, path, depth + 1))
    messages(fields, ATTRIBUTE.graphs).forEach((g, i) => this.#graph(g, `${path}[${i}]`, depth + 1))
  }

  #sparse(at: Field, path: string): void {
    const fields = fieldsOf(this.#bytes, at.start, at.end)
    messages(fields, SPARSE.values).forEach((t) => this.#tensor(t, `${path}.values`))
    messages(fields, SPARSE.indices).forEach((t) => this.#tensor(t, `${path}.indices`))
  }

  #tensor(at: Field, path: string): void {
    const fields = fieldsOf(this.#bytes, at.start, at.end)
    const external =
      messages(fields, TENSOR.externalData).length > 0 ||
      fields.some((f) => f.field === TENSOR.dataLocation && f.wire === WIRE_VARINT && f.value !== DATA_LOCATION_DEFAULT)
    if (!external) return
    const here = `${path}${shown(text(this.#bytes, fields, TENSOR.name))}`
    throw new UnsafeModelError(
      here,
      `${here} stores its data outside the model file (external data), which is not accepted; embed the weights in the .onnx file`,
    )
  }
}

/**
 * Throws `UnsafeModelError` (limit `unsafe`, `path` naming the place) when `bytes` carry external
 * data anywhere, a refused operator, more graph nesting or nodes than `limits` allow, or are not a
 * well-formed protobuf message (then `details.malformed` is true). Reads the bytes without copying them.
 */
export function checkModel(bytes: Uint8Array, limits: Partial<ModelCheckLimits> = {}): void {
  const bounds = { ...MODEL_CHECK_DEFAULTS, ...limits }
  try {
    new ModelWalk(bytes, bounds).model()
  } catch (err) {
    if (err instanceof Malformed)
      throw new UnsafeModelError('model', `the file is not a well-formed ONNX model: ${err.message}`, {
        cause: err,
        details: { malformed: true },
      })
    throw err
  }
}
