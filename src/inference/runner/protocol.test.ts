// The sandbox wire: frames split and joined at any byte, bounds enforced before buffering,
// tensors round-trip, malformed tensors are refused, errors come back as their typed classes; a
// generation's tokens are gathered into frames without reordering or losing any.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { InvalidInputError } from '../../core/errors.ts'
import { ModelLimitError, UnsafeModelError } from '../errors.ts'
import { ContextLengthError, LmModelError } from '../lm/errors.ts'
import { ModelCidMismatchError, ModelRunError } from '../runtime.ts'
import { TensorSchemaError, createTensor } from '../tensor.ts'
import {
  FrameError,
  FrameReader,
  TokenBatcher,
  encodeFrame,
  errorFromWire,
  errorToWire,
  joinTokenFrames,
  packTensors,
  unpackTensors,
} from './protocol.ts'

const bytesOf = (parts: Buffer[]): Buffer => Buffer.concat(parts)

test('frames survive any split of the byte stream, several per chunk or one byte at a time', () => {
  const payload = Uint8Array.from({ length: 100_000 }, (_, i) => i % 251)
  const stream = Buffer.concat([
    bytesOf(encodeFrame({ op: 'a', id: 1 })),
    bytesOf(encodeFrame({ op: 'b', id: 2 }, [payload])),
  ])
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 8 }), (cuts) => {
      const points = [0, ...[...new Set(cuts)].sort((a, b) => a - b), stream.length]
      const reader = new FrameReader(1 << 20)
      const frames = points.slice(1).flatMap((end, i) => reader.push(stream.subarray(points[i], end)))
      assert.deepEqual(
        frames.map((f) => f.header),
        [
          { op: 'a', id: 1 },
          { op: 'b', id: 2 },
        ],
      )
      assert.deepEqual(new Uint8Array(frames[1]!.payload), payload)
    }),
    { numRuns: 200 },
  )
})

test('a large frame (a model file) is filled in one buffer as it arrives, between small frames', () => {
  const model = Uint8Array.from({ length: 3 * 1024 * 1024 + 17 }, (_, i) => (i * 7) % 256)
  const stream = Buffer.concat([
    bytesOf(encodeFrame({ op: 'a', id: 1 })),
    bytesOf(encodeFrame({ op: 'load', id: 2 }, [model, Uint8Array.from([1, 2, 3])])),
    bytesOf(encodeFrame({ op: 'tokens', id: 3, ids: [5] })),
  ])
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 12 }), (cuts) => {
      const points = [0, ...[...new Set(cuts)].sort((a, b) => a - b), stream.length]
      const reader = new FrameReader(8 << 20)
      const frames = points.slice(1).flatMap((end, i) => reader.push(stream.subarray(points[i], end)))
      assert.deepEqual(
        frames.map((f) => f.header.op),
        ['a', 'load', 'tokens'],
      )
      assert.equal(frames[1]!.payload.length, model.length + 3)
      assert.ok(Buffer.from(frames[1]!.payload.subarray(0, model.length)).equals(Buffer.from(model)))
      assert.deepEqual([...frames[1]!.payload.subarray(model.length)], [1, 2, 3])
      assert.deepEqual(frames[2]!.header.ids, [5])
    }),
    { numRuns: 30 },
  )
})

test('a frame over the bound is refused from its length prefix, before its body arrives', () => {
  const reader = new FrameReader(1_000)
  const frame = bytesOf(encodeFrame({ op: 'run' }, [new Uint8Array(2_000)]))
  assert.throws(
    () => reader.push(frame.subarray(0, 8)),
    (err: unknown) => err instanceof FrameError && err.tooLarge,
  )
  assert.throws(() => new FrameReader(100).push(Buffer.from([10, 0, 0, 0, 50, 0, 0, 0])), FrameError)
})

test('tensors of every type round-trip through a frame, unaligned in the buffer', () => {
  const map = {
    f: createTensor('float32', [2, 2], Float32Array.of(1.5, -0, Number.NaN, 3)),
    i: createTensor('int32', [3], Int32Array.of(-1, 0, 7)),
    l: createTensor('int64', [1], BigInt64Array.of(-(2n ** 62n))),
    u: createTensor('uint8', [1], Uint8Array.of(255)),
    b: createTensor('bool', [2], Uint8Array.of(0, 1)),
  }
  const { tensors, parts } = packTensors(map)
  const frame = bytesOf(encodeFrame({ op: 'run', tensors }, parts))
  const shifted = Buffer.concat([Buffer.from([0]), frame]).subarray(1) // odd byteOffset
  const [decoded] = new FrameReader(1 << 20).push(shifted)
  const back = unpackTensors(decoded!.header.tensors, decoded!.payload)
  assert.deepEqual(back, map)
})

test('malformed tensors in a frame are a FrameError, never a RangeError', () => {
  const payload = new Uint8Array(6)
  assert.throws(() => unpackTensors([{ name: 'x', type: 'float32', dims: [2], length: 6 }], payload), FrameError)
  assert.throws(() => unpackTensors([{ name: 'x', type: 'float32', dims: [2], length: 8 }], payload), FrameError)
  assert.throws(() => unpackTensors([{ name: 'x', type: 'complex', dims: [1], length: 4 }], payload), FrameError)
  assert.throws(() => unpackTensors([{ name: 'x', type: 'uint8', dims: [5], length: 6 }], payload), FrameError)
  assert.throws(() => unpackTensors('nope', payload), FrameError)
})

test('errors cross the wire as their typed classes, with limit and path', () => {
  const unsafe = errorFromWire(errorToWire(new UnsafeModelError('graph.initializer[0] "w"', 'external data')))
  assert.ok(unsafe instanceof UnsafeModelError)
  assert.equal(unsafe.path, 'graph.initializer[0] "w"')
  assert.equal(unsafe.limit, 'unsafe')
  const limit = errorFromWire(errorToWire(new ModelLimitError('output-size', 'too big', { details: { bytes: 9 } })))
  assert.ok(limit instanceof ModelLimitError)
  assert.equal(limit.limit, 'output-size')
  assert.equal(limit.details.bytes, 9)
  assert.ok(errorFromWire(errorToWire(new ModelCidMismatchError('x'))) instanceof ModelCidMismatchError)
  assert.ok(errorFromWire(errorToWire(new TensorSchemaError('x'))) instanceof TensorSchemaError)
  assert.ok(errorFromWire(errorToWire(new InvalidInputError('x'))) instanceof InvalidInputError)
  const lm = errorFromWire(
    errorToWire(new LmModelError('missing-file', 'no tokenizer', { details: { file: 'tokenizer.json' } })),
  )
  assert.ok(lm instanceof LmModelError)
  assert.deepEqual([lm.problem, lm.details.file], ['missing-file', 'tokenizer.json'])
  const context = errorFromWire(errorToWire(new ContextLengthError('long', { details: { contextLength: 256 } })))
  assert.ok(context instanceof ContextLengthError && context instanceof InvalidInputError)
  assert.equal(context.details.contextLength, 256)
  const unknown = errorFromWire({ name: 'Whatever', message: 'm' })
  assert.ok(unknown instanceof ModelRunError)
  assert.ok(errorFromWire({ name: 'ModelLimitError', message: 'm', limit: 'bogus' as never }) instanceof ModelRunError)
})

test('a generation’s tokens: the leading ones at once, later ones gathered per frame window, none after flush', async () => {
  let clock = 0
  const sent: number[][] = []
  const batcher = new TokenBatcher((ids) => sent.push(ids), { frameMs: 5, leading: 2, now: () => clock })
  batcher.push([1])
  clock = 0.5
  batcher.push([2])
  assert.deepEqual(sent, [[1], [2]]) // the leading tokens never wait
  clock = 1
  batcher.push([3])
  clock = 3
  batcher.push([4])
  assert.deepEqual(sent, [[1], [2]])
  clock = 5.5
  batcher.push([5])
  assert.deepEqual(sent, [[1], [2], [3, 4, 5]])
  clock = 20 // a slow token goes at once
  batcher.push([6])
  clock = 21
  batcher.push([7, 8])
  batcher.flush() // the run ends: what is held goes before the reply
  batcher.flush()
  assert.deepEqual(sent, [[1], [2], [3, 4, 5], [6], [7, 8]])
  // a token held when no other comes goes when its window ends (the timer, between forward passes)
  clock = 22
  batcher.push([9])
  await new Promise((resolve) => setTimeout(resolve, 30))
  assert.deepEqual(sent.at(-1), [9])
  assert.deepEqual(sent.flat(), [1, 2, 3, 4, 5, 6, 7, 8, 9])
})

test('tokens frames of one request read together are joined, in order; other frames are untouched', () => {
  const frame = (header: Record<string, unknown>) => ({
    header: { op: 'tokens', ...header },
    payload: new Uint8Array(),
  })
  const joined = joinTokenFrames([
    frame({ id: 1, ids: [1] }),
    frame({ id: 1, ids: [2, 3] }),
    frame({ op: 'ok', id: 1 }),
    frame({ id: 2, ids: [4] }),
    frame({ id: 1, ids: [5] }),
    frame({ id: 1, ids: 'bad' }),
  ])
  assert.deepEqual(
    joined.map((f) => f.header),
    [
      { op: 'tokens', id: 1, ids: [1, 2, 3] },
      { op: 'ok', id: 1 },
      { op: 'tokens', id: 2, ids: [4] },
      { op: 'tokens', id: 1, ids: [5] },
      { op: 'tokens', id: 1, ids: 'bad' },
    ],
  )
})
