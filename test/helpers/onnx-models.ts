/**
 * ONNX models built with onnx-proto for the safety check's unit tests and the attack tests
 * (test/attacks/): tensors with external data in every place a model can hold one, and hostile
 * models that run forever, allocate without bound or take the runtime down.
 */
import onnxProto from 'onnx-proto'

export const { onnx } = onnxProto
export const FLOAT = onnx.TensorProto.DataType.FLOAT
export const UINT8 = onnx.TensorProto.DataType.UINT8
export const INT64 = onnx.TensorProto.DataType.INT64
export const BOOL = onnx.TensorProto.DataType.BOOL
export const ATTR = onnx.AttributeProto.AttributeType

export function valueInfo(
  name: string,
  elemType: number,
  dims?: readonly (number | string)[],
): onnxProto.onnx.IValueInfoProto {
  const shape =
    dims === undefined
      ? {}
      : { shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } }
  return { name, type: { tensorType: { elemType, ...shape } } }
}

/** A float tensor of `values`, embedded in the file. */
export function floats(
  name: string,
  values: readonly number[],
  dims: readonly number[] = [values.length],
): onnxProto.onnx.ITensorProto {
  return { name, dims: [...dims], dataType: FLOAT, floatData: [...values] }
}

/** An int64 tensor of `values`, embedded in the file. */
export function int64s(
  name: string,
  values: readonly (number | bigint)[],
  dims: readonly number[] = [values.length],
): onnxProto.onnx.ITensorProto {
  const data = BigInt64Array.from(values, (v) => BigInt(v))
  return { name, dims: [...dims], dataType: INT64, rawData: new Uint8Array(data.buffer) }
}

/** A uint8 tensor of `length` bytes whose data ONNX Runtime would read from the file `location`. */
export function externalTensor(name: string, location: string, length: number): onnxProto.onnx.ITensorProto {
  return {
    name,
    dims: [length],
    dataType: UINT8,
    dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
    externalData: [{ key: 'location', value: location }],
  }
}

export function encodeModel(model: onnxProto.onnx.IModelProto): Uint8Array {
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 13 }], ...model }),
  ).finish()
}

/** A graph y = Identity(x) over float[1], with `extra` merged in (initializers, more nodes). */
export function identityGraph(extra: onnxProto.onnx.IGraphProto = {}): onnxProto.onnx.IGraphProto {
  return {
    name: 'g',
    input: [valueInfo('x', FLOAT, [1])],
    output: [valueInfo('y', FLOAT, [1])],
    ...extra,
    node: [{ opType: 'Identity', input: ['x'], output: ['y'] }, ...(extra.node ?? [])],
  }
}

/**
 * File theft: output `secret` = Identity(initializer `w`), `w` read by ONNX Runtime from
 * `location` (relative to the working directory) as `length` raw bytes.
 */
export function fileTheftModel(location: string, length: number): Uint8Array {
  return encodeModel({
    graph: {
      name: 'theft',
      initializer: [externalTensor('w', location, length)],
      node: [{ opType: 'Identity', input: ['w'], output: ['secret'] }],
      output: [valueInfo('secret', UINT8, [length])],
    },
  })
}

/**
 * Never finishes: a Loop with a trip count of 2^62 whose body copies a float[1]; y = x when it
 * ends (it does not).
 */
export function endlessLoopModel(tripCount = 2n ** 62n): Uint8Array {
  const body: onnxProto.onnx.IGraphProto = {
    name: 'body',
    input: [valueInfo('i', INT64, []), valueInfo('cond_in', BOOL, []), valueInfo('v_in', FLOAT, [1])],
    output: [valueInfo('cond_out', BOOL, []), valueInfo('v_out', FLOAT, [1])],
    node: [
      { opType: 'Identity', input: ['cond_in'], output: ['cond_out'] },
      { opType: 'Identity', input: ['v_in'], output: ['v_out'] },
    ],
  }
  return encodeModel({
    graph: {
      name: 'endless',
      input: [valueInfo('x', FLOAT, [1])],
      output: [valueInfo('y', FLOAT, [1])],
      initializer: [int64s('M', [tripCount], []), { name: 'cond', dims: [], dataType: BOOL, int32Data: [1] }],
      node: [
        {
          opType: 'Loop',
          input: ['M', 'cond', 'x'],
          output: ['y'],
          attribute: [{ name: 'body', type: ATTR.GRAPH, g: body }],
        },
      ],
    },
  })
}

/**
 * Allocates without bound: a Loop of 2^40 iterations whose body emits a float[`chunk`] scan
 * output each time; ONNX Runtime keeps every iteration's output until the loop ends, so the
 * process grows by 4 × `chunk` bytes per iteration.
 */
export function growingLoopModel(chunk = 1 << 18): Uint8Array {
  const body: onnxProto.onnx.IGraphProto = {
    name: 'body',
    input: [valueInfo('i', INT64, []), valueInfo('cond_in', BOOL, [])],
    output: [valueInfo('cond_out', BOOL, []), valueInfo('scan', FLOAT, [chunk])],
    initializer: [int64s('shape', [chunk]), floats('one', [1])],
    node: [
      { opType: 'Identity', input: ['cond_in'], output: ['cond_out'] },
      { opType: 'Expand', input: ['one', 'shape'], output: ['scan'] },
    ],
  }
  return encodeModel({
    graph: {
      name: 'growing',
      input: [valueInfo('x', FLOAT, [1])],
      output: [valueInfo('y', FLOAT, ['n', chunk])],
      initializer: [int64s('M', [2n ** 40n], []), { name: 'cond', dims: [], dataType: BOOL, int32Data: [1] }],
      node: [
        {
          opType: 'Loop',
          input: ['M', 'cond'],
          output: ['y'],
          attribute: [{ name: 'body', type: ATTR.GRAPH, g: body }],
        },
      ],
    },
  })
}

/** y = Expand(x, [n]): a float[n] output (n × 4 bytes) from a float[1] input. */
export function expandModel(n: number): Uint8Array {
  return encodeModel({
    graph: {
      name: 'expand',
      input: [valueInfo('x', FLOAT, [1])],
      output: [valueInfo('y', FLOAT, ['n'])],
      initializer: [int64s('shape', [n])],
      node: [{ opType: 'Expand', input: ['x', 'shape'], output: ['y'] }],
    },
  })
}

/** y = Expand(x, shape): a float output of the shape given as an input (int64[1]). */
export function expandInputModel(): Uint8Array {
  return encodeModel({
    graph: {
      name: 'expand-input',
      input: [valueInfo('x', FLOAT, [1]), valueInfo('shape', INT64, [1])],
      output: [valueInfo('y', FLOAT, ['n'])],
      node: [{ opType: 'Expand', input: ['x', 'shape'], output: ['y'] }],
    },
  })
}
