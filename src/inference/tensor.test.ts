import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { encode } from '../core/codec.ts'
import { equals, toHex } from '../core/bytes.ts'
import { sha256 } from '../core/hash.ts'
import { DecodeError, InvalidInputError } from '../core/errors.ts'
import {
  checkAgainstSchema,
  compareTensorMaps,
  compareTensors,
  createTensor,
  decodeTensorMap,
  encodeTensorMap,
  hashTensorMap,
  tensorFromBytes,
  tensorFromJson,
  tensorMapFromJson,
  tensorMapToJson,
  tensorToB64Json,
  tensorToBinaryJson,
  tensorToJson,
  TensorLimitError,
  TensorSchemaError,
  type Tensor,
  type TensorMap,
} from './tensor.ts'

// Seeds are printed by fast-check on failure ("seed: …, path: …") so a failure can be replayed.

const f32 = (dims: number[], values: number[]): Tensor => createTensor('float32', dims, Float32Array.from(values))

test('JSON float32 values are rounded to float32 before hashing', () => {
  const fromJson = tensorFromJson({ dims: [1, 2], type: 'float32', data: [0.1, 1 / 3] }, 'input')
  assert.equal(fromJson.type, 'float32')
  assert.deepEqual([...fromJson.data], [Math.fround(0.1), Math.fround(1 / 3)])
  const direct = f32([1, 2], [0.1, 1 / 3])
  assert.equal(toHex(hashTensorMap({ input: fromJson })), toHex(hashTensorMap({ input: direct })))
})

test('float32 values print as the shortest decimal that reads back to the same float32', () => {
  const t = f32([6], [0.1, 1 / 3, 0.0623912587761879, 1e-30, -2.5, 3.4028234663852886e38])
  assert.deepEqual(tensorToJson(t).data, [0.1, 0.33333334, 0.06239126, 1e-30, -2.5, 3.4028235e38])
})

test('every type round-trips through JSON and the binary form', () => {
  const map: TensorMap = {
    f: f32([2], [1.5, -2.25]),
    i: createTensor('int32', [3], Int32Array.of(-(2 ** 31), 0, 2 ** 31 - 1)),
    l: createTensor('int64', [2], BigInt64Array.of(-(2n ** 63n), 2n ** 63n - 1n)),
    u: createTensor('uint8', [1, 2], Uint8Array.of(0, 255)),
    b: createTensor('bool', [2], Uint8Array.of(1, 0)),
    e: createTensor('float32', [0, 4], new Float32Array(0)),
  }
  const json = JSON.parse(JSON.stringify(tensorMapToJson(map)))
  assert.deepEqual(json.l.data, ['-9223372036854775808', '9223372036854775807'])
  assert.deepEqual(json.b.data, [true, false])
  const back = tensorMapFromJson(json)
  assert.deepEqual(back, map)
  const bytes = encodeTensorMap(map)
  assert.deepEqual(decodeTensorMap(bytes), map)
  assert.ok(equals(encodeTensorMap(decodeTensorMap(bytes)), bytes))
})

test('the binary form is { name: { data: little-endian bytes, dims, type } } in canonical dag-cbor (pinned vector)', () => {
  const map = { input: f32([1, 2], [1, -2]) }
  const expected = encode({
    input: { data: Uint8Array.of(0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0), dims: [1, 2], type: 'float32' },
  })
  assert.ok(equals(encodeTensorMap(map), expected))
  assert.equal(toHex(hashTensorMap(map)), toHex(sha256(expected)))
  // Pinned so that any change to the definition of inputsHash/outputHash is noticed.
  assert.equal(toHex(hashTensorMap(map)), '2b6aaf4eba49510dbaecd43510fc17956c0aa04ecb222458408994bb567911d4')
})

test('hashes do not depend on key order, subarray views or -0 vs +0', () => {
  const a = { x: f32([1], [0]), y: f32([1], [2]) }
  const b = { y: f32([1], [2]), x: f32([1], [-0]) }
  assert.equal(toHex(hashTensorMap(a)), toHex(hashTensorMap(b)))
  const backing = Float32Array.of(9, 2, 9)
  const view = { x: f32([1], [0]), y: createTensor('float32', [1], backing.subarray(1, 2)) }
  assert.equal(toHex(hashTensorMap(view)), toHex(hashTensorMap(a)))
})

test('every NaN encodes as 0x7fc00000', () => {
  const bits = Uint32Array.of(0x7fc00001, 0xffc00000, 0x7f800001)
  const weird = createTensor('float32', [3], new Float32Array(bits.buffer))
  const plain = f32([3], [NaN, NaN, NaN])
  assert.equal(toHex(hashTensorMap({ o: weird })), toHex(hashTensorMap({ o: plain })))
  assert.throws(() => decodeTensorMap(encodeTensorMap({ o: plain })), DecodeError) // inputs must be finite
  const back = decodeTensorMap(encodeTensorMap({ o: plain }), { allowNonFinite: true })
  assert.ok(Number.isNaN(back.o!.data[0]))
})

test('JSON and binary float32 round trips preserve hashes (property)', () => {
  const floats = fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { minLength: 1, maxLength: 40 })
  fc.assert(
    fc.property(floats, (values) => {
      const t = f32([values.length], values)
      const viaJson = tensorFromJson(JSON.parse(JSON.stringify(tensorToJson(t))), 't')
      assert.equal(toHex(hashTensorMap({ t: viaJson })), toHex(hashTensorMap({ t })))
      const bytes = encodeTensorMap({ t })
      assert.ok(equals(encodeTensorMap(decodeTensorMap(bytes)), bytes))
    }),
    { numRuns: 300 },
  )
})

test('tensorFromJson rejects malformed tensors with messages naming the tensor', () => {
  const bad: [unknown, RegExp][] = [
    [null, /tensor "x": must be an object/],
    [{ dims: [2], type: 'float32', data: [1] }, /tensor "x": has 1 values but dims \[2\] need 2/],
    [{ dims: [-1], type: 'float32', data: [] }, /dims must be non-negative integers/],
    [{ dims: [1.5], type: 'float32', data: [1] }, /dims must be non-negative integers/],
    [{ dims: [1, 1, 1, 1, 1, 1, 1, 1, 1], type: 'float32', data: [1] }, /at most 8/],
    [{ dims: [1], type: 'float64', data: [1] }, /type must be one of float32, int32, int64, uint8, bool/],
    [{ dims: [1], type: 'float32', data: ['1'] }, /data\[0\] must be a number/],
    [{ dims: [1], type: 'float32', data: [1e39] }, /data\[0\] = 1e\+39 is not a finite float32/],
    [{ dims: [1], type: 'float32', data: [[1]] }, /data\[0\] must be a number/],
    [{ dims: [1], type: 'float32', data: 'abc' }, /data must be a flat array/],
    [{ dims: [1], type: 'int32', data: [2 ** 31] }, /integer in -2147483648..2147483647/],
    [{ dims: [1], type: 'int32', data: [1.5] }, /integer/],
    [{ dims: [1], type: 'uint8', data: [256] }, /integer in 0..255/],
    [{ dims: [1], type: 'int64', data: ['9223372036854775808'] }, /must be an int64/],
    [{ dims: [1], type: 'int64', data: [2 ** 60] }, /must be an int64/],
    [{ dims: [1], type: 'int64', data: ['01'] }, /must be an int64/],
    [{ dims: [1], type: 'bool', data: ['yes'] }, /must be true or false/],
    [{ dims: [1], type: 'float32', data: [1], extra: 1 }, /unknown field "extra"/],
  ]
  for (const [raw, message] of bad) assert.throws(() => tensorFromJson(raw, 'x'), message, JSON.stringify(raw))
  for (const [raw] of bad) assert.throws(() => tensorFromJson(raw, 'x'), InvalidInputError)
  const ok = tensorFromJson({ dims: [3], type: 'int64', data: [5, '-7', '9223372036854775807'] }, 'x')
  assert.deepEqual([...ok.data], [5n, -7n, 2n ** 63n - 1n])
})

test('data_b64 and byte-string data: every type round-trips, and the hash is that of the array form', () => {
  const map: TensorMap = {
    f: f32([2, 2], [1.5, -2.25, 0, 3.4028234663852886e38]),
    i: createTensor('int32', [3], Int32Array.of(-(2 ** 31), 0, 2 ** 31 - 1)),
    l: createTensor('int64', [2], BigInt64Array.of(-(2n ** 63n), 2n ** 63n - 1n)),
    u: createTensor('uint8', [1, 2], Uint8Array.of(0, 255)),
    b: createTensor('bool', [2], Uint8Array.of(1, 0)),
    e: createTensor('float32', [0, 4], new Float32Array(0)),
  }
  for (const [name, t] of Object.entries(map)) {
    const b64 = JSON.parse(JSON.stringify(tensorToB64Json(t))) as { data_b64: string }
    assert.deepEqual(tensorFromJson(b64, name), t, name)
    assert.deepEqual(tensorFromJson(tensorToBinaryJson(t), name), t, name)
    // URL-safe, unpadded base64 reads the same
    const url = Buffer.from(b64.data_b64, 'base64').toString('base64url')
    assert.deepEqual(tensorFromJson({ ...b64, data_b64: url }, name), t, name)
    assert.equal(
      toHex(hashTensorMap({ [name]: tensorFromJson(b64, name) })),
      toHex(hashTensorMap({ [name]: tensorFromJson(tensorToJson(t), name) })),
    )
  }
  // the bytes are little-endian: float32 1.0 is 00 00 80 3f
  assert.equal(tensorToB64Json(f32([1], [1])).data_b64, Buffer.from([0, 0, 0x80, 0x3f]).toString('base64'))
  // any spelling of a float is accepted from a client (-0, a NaN payload in outputs); hashes are canonical
  const negZero = tensorFromJson(
    { dims: [1], type: 'float32', data_b64: Buffer.from([0, 0, 0, 0x80]).toString('base64') },
    'z',
  )
  assert.equal(toHex(hashTensorMap({ z: negZero })), toHex(hashTensorMap({ z: f32([1], [0]) })))
  const nanBytes = Buffer.from([1, 0, 0xc0, 0x7f]).toString('base64')
  assert.throws(
    () => tensorFromJson({ dims: [1], type: 'float32', data_b64: nanBytes }, 'n'),
    /data\[0\] = NaN is not a finite/,
  )
  const nan = tensorFromJson({ dims: [1], type: 'float32', data_b64: nanBytes }, 'n', { allowNonFinite: true })
  assert.ok(Number.isNaN(nan.data[0]))
  // a Node Buffer that is a view into a larger one (as CBOR decoders return) is read at its offset
  const backing = Buffer.from([9, 9, 9, 0, 0, 0x80, 0x3f, 9])
  assert.deepEqual([...tensorFromBytes('float32', [1], backing.subarray(3, 7), 'v').data], [1])
})

test('data_b64 and byte strings are refused with messages naming the tensor, before decoding when the length is wrong', () => {
  const x = (extra: Record<string, unknown>): Record<string, unknown> => ({ dims: [1, 2], type: 'float32', ...extra })
  const bad: [unknown, RegExp][] = [
    [
      x({ data_b64: 'AAAA' }),
      /tensor "x": data_b64 holds 3 bytes but float32 \[1,2\] needs 8 \(2 values of 4 bytes, little-endian\)/,
    ],
    [x({ data_b64: 'A'.repeat(1_000_000) }), /data_b64 holds 750000 bytes but float32 \[1,2\] needs 8/],
    [x({ data_b64: 'AAAAA' }), /not base64: a length of 5 characters is impossible/],
    [x({ data_b64: 'AAAAAA=' }), /not base64: a length of 7/],
    [x({ data_b64: 'AAAA.AAAAAA=' }), /not base64: it has characters outside/],
    [x({ data_b64: 'AAA+AAA_AAA=' }), /not base64/], // two alphabets mixed
    [x({ data_b64: 'AAAA=AAAAAA=' }), /not base64/],
    [x({ data_b64: 7 }), /data_b64 must be a base64 string/],
    [x({ data: [1, 2], data_b64: 'AAAAAAAAAAA=' }), /exactly one of data \(an array\) or data_b64/],
    [x({}), /exactly one of data/],
    [x({ data: new Uint8Array(9) }), /tensor "x": 9 bytes, but float32 \[1,2\] needs 8/],
    [{ dims: [2], type: 'bool', data: Uint8Array.of(1, 2) }, /data\[1\] = 2 is not a bool/],
    [{ dims: [2], type: 'bool', data_b64: 'AQI=' }, /data\[1\] = 2 is not a bool/],
  ]
  for (const [raw, message] of bad)
    assert.throws(() => tensorFromJson(raw, 'x'), message, JSON.stringify(raw).slice(0, 80))
  for (const [raw] of bad) assert.throws(() => tensorFromJson(raw, 'x'), InvalidInputError)
  // the limits apply to the dims before the string is read
  assert.throws(
    () => tensorFromJson({ dims: [300], type: 'int64', data_b64: 'AAAA' }, 'x', { limits: { maxBytes: 1000 } }),
    TensorLimitError,
  )
  assert.throws(() => tensorFromBytes('float32', [65536, 65536], new Uint8Array(4), 'x'), TensorLimitError)
  assert.throws(() => tensorFromBytes('complex64', [1], new Uint8Array(8), 'x'), /type must be one of/)
})

test('size limits reject oversized tensors with TensorLimitError before reading the data', () => {
  const limits = { maxElements: 100, maxBytes: 1000, maxTensors: 2 }
  // dims alone are enough to refuse: the data is never looked at.
  assert.throws(
    () => tensorFromJson({ dims: [1e6, 1e6], type: 'float32', data: [] }, 'x', { limits }),
    TensorLimitError,
  )
  assert.throws(
    () => tensorFromJson({ dims: [300], type: 'int64', data: [] }, 'x', { limits: { maxBytes: 1000 } }),
    TensorLimitError,
  )
  const small = { dims: [60], type: 'float32', data: new Array(60).fill(0) }
  assert.throws(() => tensorMapFromJson({ a: small, b: small }, { limits }), TensorLimitError) // 120 values in all
  assert.throws(() => tensorMapFromJson({ a: {}, b: {}, c: {} }, { limits }), TensorLimitError)
  const bytes = encodeTensorMap({ a: f32([60], new Array(60).fill(0)), b: f32([60], new Array(60).fill(0)) })
  assert.throws(() => decodeTensorMap(bytes, { limits }), TensorLimitError)
  assert.throws(
    () => decodeTensorMap(encodeTensorMap({ a: f32([200], new Array(200).fill(0)) }), { limits }),
    TensorLimitError,
  )
  assert.throws(() => tensorMapFromJson(JSON.parse(`{"__proto__": ${JSON.stringify(small)}}`)), /__proto__/)
})

test('decodeTensorMap accepts only canonical, well-formed maps', () => {
  const good = { data: new Uint8Array(4), dims: [1], type: 'float32' }
  const cases: [unknown, RegExp][] = [
    [[good], /must be a dag-cbor map/],
    [{ x: { ...good, extra: 1 } }, /fields must be exactly data, dims, type/],
    [{ x: { ...good, data: new Uint8Array(3) } }, /data must be 4 bytes/],
    [{ x: { ...good, type: 'float16' } }, /type must be one of/],
    [{ x: { ...good, dims: [-1] } }, /non-negative/],
    [{ x: { ...good, data: Uint8Array.of(0, 0, 0, 0x80) } }, /-0 or a non-canonical NaN/],
    [{ x: { ...good, data: Uint8Array.of(1, 0, 0xc0, 0x7f) } }, /-0 or a non-canonical NaN/],
    [{ x: { data: Uint8Array.of(2), dims: [1], type: 'bool' } }, /bool values must be 0 or 1/],
    [{ '': good }, /tensor names/],
  ]
  for (const [value, message] of cases) {
    assert.throws(
      () => decodeTensorMap(encode(value)),
      (err: unknown) => err instanceof DecodeError && message.test((err as Error).message),
      JSON.stringify(Object.keys(value as object)),
    )
  }
  assert.throws(() => decodeTensorMap(Uint8Array.of(0xff)), DecodeError)
})

const schema = [{ name: 'input', type: 'float32', dims: [null, 64] }]

test('checkAgainstSchema names the input and prints expected and actual shapes', () => {
  checkAgainstSchema({ input: f32([2, 64], new Array(128).fill(0)) }, schema)
  assert.throws(
    () => checkAgainstSchema({ input: f32([1, 63], new Array(63).fill(0)) }, schema),
    (err: unknown) =>
      err instanceof TensorSchemaError && err.message === 'input "input": expected float32 [N,64], got float32 [1,63]',
  )
  assert.throws(
    () => checkAgainstSchema({ input: createTensor('int32', [1, 64], new Int32Array(64)) }, schema),
    /input "input": expected float32 \[N,64\], got int32 \[1,64\]/,
  )
  assert.throws(() => checkAgainstSchema({ input: f32([64], new Array(64).fill(0)) }, schema), /got float32 \[64\]/)
  assert.throws(
    () => checkAgainstSchema({ input: f32([1, 64], new Array(64).fill(0)), pixels: f32([1], [0]) }, schema),
    /unknown input "pixels"; the model's inputs are "input" \(float32 \[N,64\]\)/,
  )
  assert.throws(() => checkAgainstSchema({}, schema), /missing input "input" \(float32 \[N,64\]\)/)
  assert.throws(() => checkAgainstSchema({}, schema, 'output'), /missing output "input"/)
})

test('compareTensors: tolerance, top-1 and near-ties', () => {
  const tol = { maxAbsPpm: 1000, top1: true }
  const a = f32([2, 3], [0.1, 0.7, 0.2, 0.5, 0.3, 0.2])
  assert.deepEqual(compareTensors(a, a, tol), { maxAbs: 0, top1Agree: true, ok: true })
  const close = f32([2, 3], [0.1005, 0.6995, 0.2, 0.5, 0.3, 0.2])
  const c = compareTensors(a, close, tol)
  assert.ok(c.ok && c.top1Agree && c.maxAbs > 0 && c.maxAbs < 0.001)
  const far = f32([2, 3], [0.1, 0.7, 0.2, 0.5, 0.31, 0.2])
  assert.equal(compareTensors(a, far, tol).ok, false)
  assert.equal(compareTensors(a, far, { maxAbsPpm: 20_000, top1: true }).ok, true)
  // A flipped winner with a clear margin in one result is a disagreement, even when maxAbs is allowed.
  const flipped = f32([2, 3], [0.1, 0.7, 0.2, 0.39, 0.41, 0.2])
  const f = compareTensors(a, flipped, { maxAbsPpm: 150_000, top1: true })
  assert.deepEqual([f.top1Agree, f.ok], [false, false])
  assert.equal(compareTensors(a, flipped, { maxAbsPpm: 150_000, top1: false }).ok, true)
  // A near-tie that flips within the tolerance is not held against anyone.
  const tieA = f32([1, 2], [0.5002, 0.4998])
  const tieB = f32([1, 2], [0.4999, 0.5001])
  assert.deepEqual(compareTensors(tieA, tieB, tol), {
    maxAbs: compareTensors(tieA, tieB, tol).maxAbs,
    top1Agree: true,
    ok: true,
  })
  // Shapes, types and NaNs.
  assert.equal(compareTensors(a, f32([3, 2], Array.from(a.data as Float32Array)), tol).ok, false)
  assert.equal(compareTensors(a, createTensor('int32', [2, 3], new Int32Array(6)), tol).ok, false)
  assert.equal(compareTensors(f32([1], [NaN]), f32([1], [NaN]), tol).maxAbs, 0)
  assert.equal(compareTensors(f32([1], [NaN]), f32([1], [0]), tol).maxAbs, Infinity)
  assert.equal(compareTensors(f32([1], [Infinity]), f32([1], [Infinity]), tol).maxAbs, 0)
})

test('compareTensorMaps fails on missing or extra outputs', () => {
  const tol = { maxAbsPpm: 1000, top1: false }
  const p = { probabilities: f32([1, 2], [0.4, 0.6]) }
  assert.equal(compareTensorMaps(p, p, tol).ok, true)
  assert.equal(compareTensorMaps(p, {}, tol).ok, false)
  assert.equal(compareTensorMaps(p, { ...p, extra: f32([1], [0]) }, tol).ok, false)
})
