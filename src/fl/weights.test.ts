// Flat weight vectors: the MLP round-trips through one Float32Array in a fixed layout, updates
// add and subtract exactly as float32 should, the digest names the values (not the header), and
// the wire form is read back strictly: bad magic, a lying count, a wrong length or a NaN are
// refused with a typed error.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { DecodeError, EncodeError, InvalidInputError } from '../core/errors.ts'
import { sha256 } from '../core/hash.ts'
import { toHex } from '../core/bytes.ts'
import { createRng, mlpTrainer, type Dataset, type MlpWeights } from '../inference/trainer.ts'
import {
  VECTOR_HEADER_BYTES,
  applyUpdate,
  decodeVector,
  encodeVector,
  flattenMlp,
  parameterCount,
  unflattenMlp,
  updateOf,
  weightsDigest,
} from './weights.ts'

const tinyData: Dataset = {
  features: Float32Array.from({ length: 12 }, (_, i) => i),
  labels: Int32Array.of(0, 1, 2, 0),
  featureCount: 3,
  classCount: 3,
}

async function network(seed: number): Promise<MlpWeights> {
  return mlpTrainer.train(tinyData, { hidden: [4, 2], epochs: 0, seed, inputScale: 0.5 })
}

test('flattenMlp lays out each layer as weights then biases; unflattenMlp is its inverse', async () => {
  const w = await network(1)
  w.layers[0]!.bias.set([0.5, -0.5, 1, 2])
  const flat = flattenMlp(w)
  assert.equal(flat.length, 3 * 4 + 4 + 4 * 2 + 2 + 2 * 3 + 3)
  assert.equal(parameterCount(w), flat.length)
  assert.deepEqual([...flat.subarray(0, 12)], [...w.layers[0]!.weight])
  assert.deepEqual([...flat.subarray(12, 16)], [0.5, -0.5, 1, 2])
  assert.deepEqual([...flat.subarray(16, 24)], [...w.layers[1]!.weight])
  const back = unflattenMlp(flat, w)
  assert.deepEqual(back, w)
  flat[0] = 42
  assert.notEqual(back.layers[0]!.weight[0], 42, 'unflattenMlp copies the values')
  assert.throws(() => unflattenMlp(flat.subarray(1), w), InvalidInputError)
})

test('updateOf and applyUpdate: global + (local − global) is local; scale multiplies the step', async () => {
  const global = await network(1)
  const local = await network(2)
  const update = updateOf(local, global)
  const rebuilt = applyUpdate(global, update)
  flattenMlp(rebuilt).forEach((x, j) => assert.ok(Math.abs(x - flattenMlp(local)[j]!) <= 1e-6, `value ${j}`))
  assert.equal(rebuilt.inputScale, 0.5)
  const g = Float32Array.of(1, 2, 3)
  assert.deepEqual([...applyUpdate(g, Float32Array.of(1, 1, -1), 0.5)], [1.5, 2.5, 2.5])
  assert.deepEqual([...updateOf(Float32Array.of(4, 4), Float32Array.of(1, 5))], [3, -1])
  assert.throws(() => applyUpdate(g, Float32Array.of(1)), InvalidInputError)
  assert.throws(() => applyUpdate(g, g, Number.NaN), InvalidInputError)
  assert.throws(() => updateOf(g, Float32Array.of(1)), InvalidInputError)
})

test('weightsDigest is SHA-256 of the little-endian float32 values, and sees every bit', () => {
  const v = Float32Array.of(1, -2.5, 0)
  // 1.0f = 00 00 80 3f, -2.5f = 00 00 20 c0, 0 = 00 00 00 00 (little-endian)
  const le = Uint8Array.of(0, 0, 0x80, 0x3f, 0, 0, 0x20, 0xc0, 0, 0, 0, 0)
  assert.equal(weightsDigest(v), toHex(sha256(le)))
  assert.equal(
    weightsDigest(new Float32Array([9, 1, -2.5, 0]).subarray(1)),
    weightsDigest(v),
    'a view hashes its own values',
  )
  assert.notEqual(weightsDigest(Float32Array.of(1, -2.5, -0)), weightsDigest(v), '-0 and 0 differ')
})

test('encodeVector / decodeVector round-trip with a small header', () => {
  const rng = createRng(4)
  for (const length of [0, 1, 7, 1000]) {
    const v = Float32Array.from({ length }, () => rng.normal())
    const bytes = encodeVector(v)
    assert.equal(bytes.length, VECTOR_HEADER_BYTES + 4 * length)
    assert.deepEqual([...bytes.subarray(0, 4)], [0x44, 0x46, 0x56, 0x31])
    assert.deepEqual(decodeVector(bytes, length), v)
    // an unaligned view of the same bytes decodes alike
    const shifted = new Uint8Array(bytes.length + 1)
    shifted.set(bytes, 1)
    assert.deepEqual(decodeVector(shifted.subarray(1)), v)
  }
  assert.deepEqual([...encodeVector(Float32Array.of(1))], [0x44, 0x46, 0x56, 0x31, 1, 0, 0, 0, 0, 0, 0x80, 0x3f])
})

test('decodeVector refuses bad magic, short or long bodies, a wrong count and non-finite values', () => {
  const good = encodeVector(Float32Array.of(1, 2, 3))
  const mutate = (fn: (b: Uint8Array) => void): Uint8Array => {
    const b = good.slice()
    fn(b)
    return b
  }
  const refused = (bytes: Uint8Array, pattern: RegExp, expected?: number): void =>
    assert.throws(
      () => decodeVector(bytes, expected),
      (e: unknown) => e instanceof DecodeError && pattern.test(e.message),
    )
  refused(good.subarray(0, 5), /shorter than a vector header/)
  refused(
    mutate((b) => (b[0] = 0x45)),
    /bad magic/,
  )
  refused(good.subarray(0, good.length - 1), /header says 3 values, the body holds 11 bytes/)
  refused(
    mutate((b) => (b[4] = 4)),
    /header says 4 values/,
  )
  refused(good, /holds 3 values, 2 were expected/, 2)
  const nan = good.slice()
  new DataView(nan.buffer).setFloat32(VECTOR_HEADER_BYTES + 4, Number.NaN, true)
  refused(nan, /value 1 is not finite/)
  const inf = good.slice()
  new DataView(inf.buffer).setFloat32(VECTOR_HEADER_BYTES, -Infinity, true)
  refused(inf, /value 0 is not finite/)
  assert.throws(() => encodeVector(Float32Array.of(0, Infinity)), EncodeError)
  assert.throws(() => decodeVector('DFV1' as unknown as Uint8Array), DecodeError)
})
