// The model safety check: external data is refused in every place an ONNX file can hold a tensor,
// with the place named; the structural bounds hold; malformed bytes are refused, never thrown past.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import fc from 'fast-check'
import { checkModel, MODEL_CHECK_DEFAULTS } from './onnx-check.ts'
import { ModelLimitError, UnsafeModelError } from './errors.ts'
import { DEMO_MODELS_DIR } from './demo-models.ts'
import {
  ATTR,
  BOOL,
  FLOAT,
  encodeModel,
  externalTensor,
  floats,
  identityGraph,
  int64s,
  onnx,
  valueInfo,
} from '../../test/helpers/onnx-models.ts'
import type onnxProto from 'onnx-proto'

type Graph = onnxProto.onnx.IGraphProto
type Node = onnxProto.onnx.INodeProto

const bad = (name = 'w'): onnxProto.onnx.ITensorProto => externalTensor(name, 'api-token', 8)

/** Asserts that `bytes` are refused with exactly `path`. */
function refused(bytes: Uint8Array, path: string, limits = {}): UnsafeModelError {
  let caught: unknown
  try {
    checkModel(bytes, limits)
  } catch (err) {
    caught = err
  }
  assert.ok(caught instanceof UnsafeModelError, `expected UnsafeModelError, got ${String(caught)}`)
  assert.equal(caught.path, path)
  assert.ok(caught.message.includes(path), caught.message)
  return caught
}

const withNode = (node: Node, graph: Graph = {}): Uint8Array =>
  encodeModel({ graph: identityGraph({ ...graph, node: [node] }) })

/** A Loop node (trip count 1) whose body holds `extra`. */
function loopWith(extra: Graph): Node {
  const body: Graph = {
    name: 'body',
    input: [valueInfo('i', onnx.TensorProto.DataType.INT64, []), valueInfo('c', BOOL, [])],
    output: [valueInfo('c_out', BOOL, [])],
    ...extra,
    node: [{ opType: 'Identity', input: ['c'], output: ['c_out'] }, ...(extra.node ?? [])],
  }
  return { opType: 'Loop', input: ['M', 'cond'], output: [], attribute: [{ name: 'body', type: ATTR.GRAPH, g: body }] }
}

/** A length-delimited protobuf field: tag, length, payload. Appending one to a message merges it in. */
function field(n: number, payload: Uint8Array): Uint8Array {
  const varint = (v: number): number[] => {
    const out: number[] = []
    while (v >= 0x80) {
      out.push((v & 0x7f) | 0x80)
      v = Math.floor(v / 128)
    }
    out.push(v)
    return out
  }
  return Uint8Array.from([...varint(n * 8 + 2), ...varint(payload.length), ...payload])
}

const concat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => [...p]))

test('the demo models and a plain graph pass', async () => {
  for (const name of ['digits-mlp', 'chars-mlp'])
    checkModel(new Uint8Array(await readFile(join(DEMO_MODELS_DIR, `${name}.onnx`))))
  checkModel(encodeModel({ graph: identityGraph({ initializer: [floats('w', [1, 2])] }) }))
})

test('external data in graph.initializer is refused with its name; the error is a typed unsafe-model limit', () => {
  const err = refused(
    encodeModel({ graph: identityGraph({ initializer: [floats('ok', [1]), bad('w')] }) }),
    'graph.initializer[1] "w"',
  )
  assert.ok(err instanceof ModelLimitError)
  assert.equal(err.limit, 'unsafe')
  assert.equal(err.reason, 'unsafe-model')
  assert.equal(err.status, 422)
  assert.equal(err.code, 'UNSAFE_MODEL')
})

test('data_location = EXTERNAL alone, and external_data alone, each count as external data', () => {
  const locationOnly = { name: 'a', dims: [1], dataType: FLOAT, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL }
  refused(encodeModel({ graph: identityGraph({ initializer: [locationOnly] }) }), 'graph.initializer[0] "a"')
  const entriesOnly = { name: 'b', dims: [1], dataType: FLOAT, externalData: [{ key: 'location', value: 'password' }] }
  refused(encodeModel({ graph: identityGraph({ initializer: [entriesOnly] }) }), 'graph.initializer[0] "b"')
})

test('sparse initializers: external values and external indices are refused', () => {
  const values = { values: bad('v'), indices: int64s('i', [0]), dims: [4] }
  refused(
    encodeModel({ graph: identityGraph({ sparseInitializer: [values] }) }),
    'graph.sparse_initializer[0].values "v"',
  )
  const indices = { values: floats('v', [1]), indices: bad('i'), dims: [4] }
  refused(
    encodeModel({ graph: identityGraph({ sparseInitializer: [indices] }) }),
    'graph.sparse_initializer[0].indices "i"',
  )
})

test('node attributes holding tensors: Constant.value, ConstantOfShape.value, tensors lists, sparse tensors', () => {
  const constant = { opType: 'Constant', output: ['c'], attribute: [{ name: 'value', type: ATTR.TENSOR, t: bad('c') }] }
  refused(withNode(constant), 'graph.node[1](Constant).value "c"')
  const ofShape = {
    opType: 'ConstantOfShape',
    input: ['s'],
    output: ['z'],
    attribute: [{ name: 'value', type: ATTR.TENSOR, t: bad('fill') }],
  }
  refused(withNode(ofShape), 'graph.node[1](ConstantOfShape).value "fill"')
  const list = {
    opType: 'Custom',
    output: ['c'],
    attribute: [{ name: 'weights', type: ATTR.TENSORS, tensors: [floats('a', [1]), bad('b')] }],
  }
  refused(withNode(list), 'graph.node[1](Custom).weights[1] "b"')
  const sparse = {
    opType: 'Constant',
    output: ['c'],
    attribute: [
      {
        name: 'sparse_value',
        type: ATTR.SPARSE_TENSOR,
        sparseTensor: { values: bad('sv'), indices: int64s('si', [0]), dims: [2] },
      },
    ],
  }
  refused(withNode(sparse), 'graph.node[1](Constant).sparse_value.values "sv"')
  const sparseList = {
    opType: 'Custom',
    output: ['c'],
    attribute: [
      {
        name: 'many',
        type: ATTR.SPARSE_TENSORS,
        sparseTensors: [{ values: floats('v', [1]), indices: bad('si'), dims: [2] }],
      },
    ],
  }
  refused(withNode(sparseList), 'graph.node[1](Custom).many[0].indices "si"')
})

test('subgraphs: a Loop body initializer, an If branch two levels down, a Scan body Constant, a graphs list', () => {
  refused(withNode(loopWith({ initializer: [bad('w')] })), 'graph.node[1](Loop).body.initializer[0] "w"')
  const inner = loopWith({ initializer: [bad('deep')] })
  const ifNode = {
    opType: 'If',
    input: ['c'],
    output: ['o'],
    attribute: [
      { name: 'then_branch', type: ATTR.GRAPH, g: { name: 't', node: [inner] } },
      { name: 'else_branch', type: ATTR.GRAPH, g: { name: 'e' } },
    ],
  }
  refused(withNode(ifNode), 'graph.node[1](If).then_branch.node[0](Loop).body.initializer[0] "deep"')
  const constant = { opType: 'Constant', output: ['k'], attribute: [{ name: 'value', type: ATTR.TENSOR, t: bad('k') }] }
  const scan = {
    opType: 'Scan',
    input: ['x'],
    output: ['o'],
    attribute: [{ name: 'body', type: ATTR.GRAPH, g: { name: 's', node: [constant] } }],
  }
  refused(withNode(scan), 'graph.node[1](Scan).body.node[0](Constant).value "k"')
  const graphs = {
    opType: 'Custom',
    output: ['o'],
    attribute: [
      { name: 'branches', type: ATTR.GRAPHS, graphs: [{ name: 'a' }, { name: 'b', initializer: [bad('x')] }] },
    ],
  }
  refused(withNode(graphs), 'graph.node[1](Custom).branches[1].initializer[0] "x"')
})

test('model-local functions: a node attribute in the body, and an attribute default (attribute_proto, IR 9)', () => {
  const constant = { opType: 'Constant', output: ['k'], attribute: [{ name: 'value', type: ATTR.TENSOR, t: bad('k') }] }
  const fn = { name: 'F', domain: 'local', input: [], output: ['k'], node: [constant] }
  refused(encodeModel({ graph: identityGraph(), functions: [fn] }), 'functions[0](local:F).node[0](Constant).value "k"')
  // onnx-proto's schema (IR 8) has no FunctionProto.attribute_proto (field 11): write it by hand
  const attribute = onnx.AttributeProto.encode({ name: 'w', type: ATTR.TENSOR, t: bad('d') }).finish()
  const benign = onnx.FunctionProto.encode({
    name: 'G',
    domain: 'local',
    output: ['y'],
    node: [{ opType: 'Identity', input: ['x'], output: ['y'] }],
  }).finish()
  const model = concat(encodeModel({ graph: identityGraph() }), field(25, concat(benign, field(11, attribute))))
  assert.equal(onnx.ModelProto.decode(model).functions.length, 1, 'the model parses; onnx-proto drops field 11')
  refused(model, 'functions[0](local:G).attribute_proto[0].w "d"')
})

test('a second graph field is checked too (ONNX Runtime merges repeated sub-messages; protobufjs keeps the last)', () => {
  const hostile = encodeModel({ graph: identityGraph({ initializer: [bad('hidden')] }) })
  const benignGraph = onnx.GraphProto.encode(identityGraph()).finish()
  const model = concat(hostile, field(7, benignGraph))
  assert.equal(
    onnx.ModelProto.decode(model).graph?.initializer?.length ?? 0,
    0,
    'a decode-based check would see nothing',
  )
  refused(model, 'graph.initializer[0] "hidden"')
})

test('training info graphs are checked', () => {
  const model = encodeModel({
    graph: identityGraph(),
    trainingInfo: [{ initialization: { name: 'init', initializer: [bad('t')] } }],
  })
  refused(model, 'training_info[0].initialization.initializer[0] "t"')
})

test('EPContext nodes are refused: they name files an execution provider loads', () => {
  const node = {
    opType: 'EPContext',
    domain: 'com.microsoft',
    input: ['x'],
    output: ['z'],
    attribute: [{ name: 'ep_cache_context', type: ATTR.STRING, s: new TextEncoder().encode('keystore.json') }],
  }
  refused(withNode(node), 'graph.node[1](EPContext)')
})

test('graph nesting and node count are bounded; the defaults are documented figures', () => {
  assert.deepEqual({ ...MODEL_CHECK_DEFAULTS }, { maxGraphDepth: 16, maxNodes: 200_000 })
  const nested = withNode(loopWith({ node: [loopWith({})] }))
  checkModel(nested, { maxGraphDepth: 3 })
  const err = refused(nested, 'graph.node[1](Loop).body.node[1](Loop).body', { maxGraphDepth: 2 })
  assert.equal(err.details.bound, 'maxGraphDepth')
  const many = encodeModel({ graph: identityGraph({ node: [{ opType: 'Identity', input: ['y'], output: ['z'] }] }) })
  checkModel(many, { maxNodes: 2 })
  assert.equal(refused(many, 'graph.node[1]', { maxNodes: 1 }).details.bound, 'maxNodes')
})

test('malformed bytes are refused as not well-formed, never thrown past as another error', () => {
  refused(Uint8Array.of(0x3a, 0x10, 1, 2), 'model') // field 7, length 16, 2 bytes present
  refused(Uint8Array.of(0x0b), 'model') // a group
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
      try {
        checkModel(bytes)
      } catch (err) {
        assert.ok(err instanceof UnsafeModelError, String(err))
      }
    }),
    { numRuns: 2_000 },
  )
})
