import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRng } from '../../../test/helpers/random.ts'
import { dot, gelu, matMul, matVec, relu, rmsNorm, rope, silu, softmax } from './math.ts'

const rng = createRng(7)
const rand = (n: number): Float32Array => Float32Array.from({ length: n }, () => 2 * rng.next() - 1)

/** The documented order: four lanes by i mod 4, ((s0 + s1) + (s2 + s3)), then the tail. */
function refDot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length
  const n4 = n - (n % 4)
  const lanes = [0, 0, 0, 0]
  for (let i = 0; i < n4; i++) lanes[i % 4]! += a[i]! * b[i]!
  let s = lanes[0]! + lanes[1]! + (lanes[2]! + lanes[3]!)
  for (let i = n4; i < n; i++) s += a[i]! * b[i]!
  return s
}

test('dot follows the documented summation order exactly, and is close to a plain sum', () => {
  for (const n of [0, 1, 3, 4, 7, 64, 129]) {
    const a = rand(n)
    const b = rand(n)
    assert.equal(dot(a, 0, b, 0, n), refDot(a, b))
    let plain = 0
    for (let i = 0; i < n; i++) plain += a[i]! * b[i]!
    assert.ok(Math.abs(dot(a, 0, b, 0, n) - plain) < 1e-12)
  }
})

test('matMul and matVec equal a naive row-by-row product, bit for bit', () => {
  const rows = 5
  const out = 13
  const inn = 37
  const w = rand(out * inn)
  const x = rand(rows * inn)
  const y = matMul(w, x, rows, out, inn)
  for (let r = 0; r < rows; r++) {
    const xr = x.subarray(r * inn, (r + 1) * inn)
    const yr = matVec(w, xr, out, inn)
    for (let o = 0; o < out; o++) {
      const want = Math.fround(refDot(w.subarray(o * inn, (o + 1) * inn), xr))
      assert.equal(y[r * out + o], want)
      assert.equal(yr[o], want)
    }
  }
})

test('a row of a batch does not depend on the other rows', () => {
  const w = rand(8 * 16)
  const x = rand(3 * 16)
  const batch = matMul(w, x, 3, 8, 16)
  const one = matMul(w, x.subarray(16, 32), 1, 8, 16)
  assert.deepEqual(batch.subarray(8, 16), one)
})

test('rmsNorm matches its definition', () => {
  const d = 10
  const x = rand(2 * d)
  const w = rand(d)
  const y = rmsNorm(x, w, 2, d, 1e-5)
  for (let r = 0; r < 2; r++) {
    let ss = 0
    for (let i = 0; i < d; i++) ss += x[r * d + i]! ** 2
    const s = 1 / Math.sqrt(ss / d + 1e-5)
    for (let i = 0; i < d; i++) assert.equal(y[r * d + i], Math.fround(x[r * d + i]! * s * w[i]!))
  }
})

test('rope rotates pairs (i, i + hd/2) by position · θ^(−2i/hd), keeping norms; position 0 is the identity', () => {
  const hd = 8
  const heads = 2
  const x = rand(3 * heads * hd)
  const y = rope(Float32Array.from(x), 3, heads, hd, 5, 10000)
  for (let r = 0; r < 3; r++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < hd / 2; i++) {
        const off = (r * heads + h) * hd
        const a = (5 + r) * (1 / 10000 ** ((2 * i) / hd))
        const x1 = x[off + i]!
        const x2 = x[off + i + hd / 2]!
        assert.ok(Math.abs(y[off + i]! - (x1 * Math.cos(a) - x2 * Math.sin(a))) < 1e-6)
        assert.ok(Math.abs(y[off + i + hd / 2]! - (x2 * Math.cos(a) + x1 * Math.sin(a))) < 1e-6)
      }
  assert.deepEqual(rope(x.slice(0, heads * hd), 1, heads, hd, 0, 10000), x.subarray(0, heads * hd))
})

test('softmax sums to 1, handles −∞, and all −∞ gives zeros', () => {
  const x = Float64Array.from([1, 2, -Infinity, 3])
  softmax(x)
  assert.ok(Math.abs(x.reduce((a, b) => a + b, 0) - 1) < 1e-15)
  assert.equal(x[2], 0)
  assert.ok(x[3]! > x[1]! && x[1]! > x[0]!)
  const z = Float64Array.from([-Infinity, -Infinity])
  softmax(z)
  assert.deepEqual([...z], [0, 0])
  const part = Float32Array.from([9, 0, 0, 9])
  softmax(part, 1, 2)
  assert.deepEqual([...part], [9, 0.5, 0.5, 9])
})

test('activations', () => {
  assert.equal(silu(0), 0)
  assert.ok(Math.abs(silu(1) - 1 / (1 + Math.exp(-1))) < 1e-15)
  assert.ok(Math.abs(gelu(1) - 0.8411919906) < 1e-9)
  assert.equal(gelu(0), 0)
  assert.equal(relu(-2), 0)
  assert.equal(relu(2), 2)
  assert.equal(Object.is(relu(-0), 0), true)
})
