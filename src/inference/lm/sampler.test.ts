import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { InvalidInputError } from '../../core/errors.ts'
import { checkToken, sampleToken, uniformAt, type SamplerParams } from './sampler.ts'

// Seeds are printed by fast-check on failure ("seed: …, path: …") so a failure can be replayed.

/** The sampler as sampler.ts defines it, written the slow, obvious way: a full sort. */
function reference(logits: Float32Array, p: SamplerParams, step: number): { token: number; order: number[] } {
  const all = Array.from({ length: logits.length }, (_, i) => i)
  if (p.temperatureMilli === 0) {
    let best = 0
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i
    return { token: best, order: [best] }
  }
  const t = p.temperatureMilli / 1000
  const z = Array.from(logits, (v) => v / t)
  const max = Math.max(...z)
  const e = z.map((v) => Math.exp(v - max))
  const sorted = all.sort((a, b) => (z[a] === z[b] ? a - b : z[b]! > z[a]! ? 1 : -1))
  const k = p.topK === 0 ? sorted.length : Math.min(p.topK, sorted.length)
  const kept = sorted.slice(0, k)
  let mass = 0
  for (const id of [...kept].sort((a, b) => a - b)) mass += e[id]!
  let order = kept
  let massN = mass
  if (p.topPMilli < 1000) {
    const goal = (p.topPMilli / 1000) * mass
    let c = 0
    let r = 0
    while (r < kept.length && c < goal) c += e[kept[r++]!]!
    order = kept.slice(0, r)
    massN = c
  }
  const target = uniformAt(p.seed, step) * massN
  let c = 0
  for (const id of order) {
    c += e[id]!
    if (c > target) return { token: id, order }
  }
  return { token: order[order.length - 1]!, order }
}

const logitsArb = fc
  .array(fc.float({ min: -20, max: 20, noNaN: true, noDefaultInfinity: true }), { minLength: 1, maxLength: 300 })
  .map((a) => Float32Array.from(a))
const paramsArb: fc.Arbitrary<SamplerParams> = fc.record({
  temperatureMilli: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 5000 })),
  topPMilli: fc.oneof(fc.constant(1000), fc.integer({ min: 1, max: 1000 })),
  topK: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 400 })),
  seed: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
})
const stepArb = fc.integer({ min: 0, max: 100_000 })

test('uniformAt: the top 53 bits of sha256(seed ‖ step), big-endian, in [0, 1)', () => {
  // pinned: a change here changes every seeded generation in the network
  assert.equal(uniformAt(0n, 0), 0.08563971163405593)
  assert.equal(uniformAt(123456789n, 41), 0.6029110281343807)
  assert.equal(uniformAt(-1n, 7), uniformAt(2n ** 64n - 1n, 7)) // the seed is the int64's bytes
  assert.notEqual(uniformAt(1n, 0), uniformAt(1n, 1))
  fc.assert(
    fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), stepArb, (seed, step) => {
      const u = uniformAt(seed, step)
      return u >= 0 && u < 1 && Number.isInteger(u * 2 ** 53)
    }),
  )
  assert.throws(() => uniformAt(0n, -1), InvalidInputError)
})

test('sampleToken equals the full-sort definition, whatever shortcut it takes', () => {
  fc.assert(
    fc.property(logitsArb, paramsArb, stepArb, (logits, p, step) => {
      assert.equal(sampleToken(logits, p, step), reference(logits, p, step).token)
    }),
    { numRuns: 500 },
  )
})

test('sampleToken on a large vocabulary with most mass in a few tokens takes the shortcut and agrees', () => {
  const logits = new Float32Array(50_000).fill(-10)
  for (let i = 0; i < 20; i++) logits[i * 997] = 5 - i * 0.1
  for (let step = 0; step < 10; step++) {
    const p = { temperatureMilli: 1000, topPMilli: 900, topK: 0, seed: 42n }
    assert.equal(sampleToken(logits, p, step), reference(logits, p, step).token)
    const q = { temperatureMilli: 1500, topPMilli: 1000, topK: 0, seed: 42n }
    assert.equal(sampleToken(logits, q, step), reference(logits, q, step).token)
  }
})

test('sampleToken is deterministic and respects top_k and top_p', () => {
  fc.assert(
    fc.property(logitsArb, paramsArb, stepArb, (logits, p, step) => {
      const token = sampleToken(logits, p, step)
      assert.equal(sampleToken(Float32Array.from(logits), { ...p }, step), token)
      if (p.temperatureMilli === 0) return
      // top_k: fewer than k tokens rank strictly before it
      const t = p.temperatureMilli / 1000
      const z = (i: number): number => logits[i]! / t
      const ahead = Array.from(logits, (_, i) => i).filter((i) => z(i) > z(token) || (z(i) === z(token) && i < token))
      if (p.topK > 0) assert.ok(ahead.length < p.topK)
      // top_p: the tokens ranked before it hold less than p of the kept mass
      assert.ok(reference(logits, p, step).order.includes(token))
    }),
    { numRuns: 300 },
  )
})

test('temperature 0 is the arg-max, lowest id on ties; NaN never wins', () => {
  const p = { temperatureMilli: 0, topPMilli: 1, topK: 1, seed: 1n }
  assert.equal(sampleToken(Float32Array.from([1, 3, 3, 2]), p, 0), 1)
  assert.equal(sampleToken(Float32Array.from([NaN, 0, -1]), p, 0), 1)
  // no finite softmax: falls back to the arg-max
  const q = { ...p, temperatureMilli: 700 }
  assert.equal(sampleToken(Float32Array.from([0, Infinity, 1]), q, 3), 1)
  assert.equal(sampleToken(Float32Array.from([NaN, NaN]), q, 3), 0)
})

test('sampleToken: different seeds draw different tokens from a flat distribution', () => {
  const logits = new Float32Array(1000)
  const p = (seed: bigint): SamplerParams => ({ temperatureMilli: 1000, topPMilli: 1000, topK: 0, seed })
  const a = Array.from({ length: 20 }, (_, s) => sampleToken(logits, p(1n), s))
  const b = Array.from({ length: 20 }, (_, s) => sampleToken(logits, p(2n), s))
  assert.notDeepEqual(a, b)
  assert.ok(new Set(a).size > 10)
})

test('checkToken accepts the sampled token, with and without tolerance', () => {
  fc.assert(
    fc.property(logitsArb, paramsArb, stepArb, (logits, p, step) => {
      const token = sampleToken(logits, p, step)
      assert.ok(checkToken(logits, p, step, token, { maxAbsPpm: 0 }))
      assert.ok(checkToken(logits, p, step, token, { maxAbsPpm: 1000 }))
    }),
    { numRuns: 400 },
  )
})

test('checkToken accepts what a worker with logits within the tolerance drew', () => {
  const perturbedArb = fc
    .tuple(logitsArb, fc.integer({ min: 1, max: 300_000 }), fc.integer())
    .map(([logits, ppm, salt]) => {
      const eps = ppm / 1e6
      // deterministic pseudo-random perturbation in [−eps, eps], rounded back to float32 (so the
      // bound is applied to the float32 values the auditor sees: shrink by one ulp's worth)
      const worker = Float32Array.from(logits, (v, i) => {
        const r = Math.sin((i + 1) * 12.9898 + salt) * 43758.5453
        const d = (r - Math.floor(r)) * 2 - 1
        const w = Math.fround(v + d * eps * 0.999)
        return Math.abs(w - v) <= eps ? w : v
      })
      return { logits, worker, ppm }
    })
  let differed = 0
  fc.assert(
    fc.property(perturbedArb, paramsArb, stepArb, ({ logits, worker, ppm }, p, step) => {
      const token = sampleToken(worker, p, step)
      if (token !== sampleToken(logits, p, step)) differed++
      assert.ok(checkToken(logits, p, step, token, { maxAbsPpm: ppm }), `token ${token}`)
    }),
    { numRuns: 3000 },
  )
  // the property has teeth: the worker's draw often differs from the auditor's
  assert.ok(differed >= 30, `only ${differed} draws differed`)
})

test('checkToken refuses a token whose interval lies far from u', () => {
  // well-separated logits: no near-ties within the tolerance
  const arb = fc
    .tuple(fc.integer({ min: 2, max: 60 }), fc.integer(), fc.integer({ min: 300, max: 3000 }))
    .map(([n, salt, temperatureMilli]) => {
      const logits = Float32Array.from({ length: n }, (_, i) => ((i * 7919 + salt) % n) * 0.5)
      return { logits, temperatureMilli }
    })
  fc.assert(
    fc.property(arb, fc.bigInt({ min: 0n, max: 2n ** 62n }), stepArb, ({ logits, temperatureMilli }, seed, step) => {
      const p = { temperatureMilli, topPMilli: 1000, topK: 0, seed }
      const u = uniformAt(seed, step)
      const t = temperatureMilli / 1000
      const e = Array.from(logits, (v) => Math.exp(v / t))
      const total = e.reduce((a, b) => a + b, 0)
      const order = Array.from(logits, (_, i) => i).sort((a, b) => e[b]! - e[a]! || a - b)
      let c = 0
      for (const id of order) {
        const start = c / total
        c += e[id]!
        const end = c / total
        const far = u < start - 0.01 || u >= end + 0.01
        if (far) assert.ok(!checkToken(logits, p, step, id, { maxAbsPpm: 1000 }), `token ${id} at [${start}, ${end})`)
      }
    }),
    { numRuns: 300 },
  )
})

test('checkToken, greedy: within 2ε of the maximum', () => {
  const p = { temperatureMilli: 0, topPMilli: 1000, topK: 0, seed: 0n }
  const logits = Float32Array.from([1, 0.999, 0.5])
  assert.ok(checkToken(logits, p, 0, 0, { maxAbsPpm: 0 }))
  assert.ok(!checkToken(logits, p, 0, 1, { maxAbsPpm: 0 }))
  assert.ok(!checkToken(logits, p, 0, 1, { maxAbsPpm: 400 }))
  assert.ok(checkToken(logits, p, 0, 1, { maxAbsPpm: 600 }))
  assert.ok(!checkToken(logits, p, 0, 2, { maxAbsPpm: 10_000 }))
  assert.ok(!checkToken(logits, p, 0, 3, { maxAbsPpm: 10_000 })) // out of the vocabulary
  assert.ok(!checkToken(logits, p, 0, -1, { maxAbsPpm: 10_000 }))
})

test('checkToken: top_k and top_p exclude tokens no worker keeps', () => {
  const logits = Float32Array.from([4, 3, 2, 1, 0])
  const p = { temperatureMilli: 1000, topPMilli: 1000, topK: 2, seed: 5n }
  assert.ok(!checkToken(logits, p, 0, 2, { maxAbsPpm: 1000 }))
  assert.ok(!checkToken(logits, { ...p, topK: 0, topPMilli: 500 }, 0, 3, { maxAbsPpm: 1000 }))
})
