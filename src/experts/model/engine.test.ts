import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomMoe, SMALL_MOE, type RandomMoe } from '../../../test/helpers/moe.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { ContextLengthError } from '../../inference/lm/errors.ts'
import type { SamplerParams } from '../../inference/lm/sampler.ts'
import { MoeEngine } from './engine.ts'
import { StaticExperts, runExpert } from './local.ts'
import { dot, matVec, rmsNorm, rope, softmax } from './math.ts'
import type { ExpertAnswer, ExpertCall, ExpertProvider } from './provider.ts'

const GREEDY: SamplerParams = { temperatureMilli: 0, topPMilli: 1000, topK: 0, seed: 0n }
const SAMPLED: SamplerParams = { temperatureMilli: 900, topPMilli: 950, topK: 20, seed: 42n }

/**
 * The forward written the obvious way: every position of the sequence recomputed from scratch,
 * one row at a time, no cache. `masked(layer, expert)`: experts treated as not answering.
 */
function naiveLogits(m: RandomMoe, ids: number[], k: number, masked = (_l: number, _e: number) => false): Float32Array {
  const a = m.arch
  const d = a.dModel
  const hd = d / a.nHeads
  const kvw = a.nKvHeads * hd
  const eps = a.normEpsE9 / 1e9
  let xs = ids.map((id) => m.trunk.embed.slice(id * d, (id + 1) * d))
  for (let l = 0; l < a.nLayers; l++) {
    const L = m.trunk.layers[l]!
    const hs = xs.map((x) => rmsNorm(x, L.attnNorm, 1, d, eps))
    const qs = hs.map((h, p) => rope(matVec(L.q, h, a.nHeads * hd, d), 1, a.nHeads, hd, p, a.ropeTheta))
    const ks = hs.map((h, p) => rope(matVec(L.k, h, kvw, d), 1, a.nKvHeads, hd, p, a.ropeTheta))
    const vs = hs.map((h) => matVec(L.v, h, kvw, d))
    xs = xs.map((x, p) => {
      const att = new Float32Array(a.nHeads * hd)
      for (let h = 0; h < a.nHeads; h++) {
        const g = Math.floor(h / (a.nHeads / a.nKvHeads)) * hd
        const s = new Float64Array(p + 1)
        for (let t = 0; t <= p; t++) s[t] = dot(qs[p]!, h * hd, ks[t]!, g, hd) * (1 / Math.sqrt(hd))
        softmax(s)
        for (let j = 0; j < hd; j++) {
          let acc = 0
          for (let t = 0; t <= p; t++) acc += s[t]! * vs[t]![g + j]!
          att[h * hd + j] = acc
        }
      }
      const o = matVec(L.o, att, d, a.nHeads * hd)
      const y = Float32Array.from(x, (v, i) => v + o[i]!)
      const h2 = rmsNorm(y, L.ffnNorm, 1, d, eps)
      const probs = Float64Array.from(matVec(m.routers[l]!.weight, h2, a.expertsPerLayer, d))
      softmax(probs)
      const order = [...probs.keys()].sort((i, j) => probs[j]! - probs[i]! || i - j).slice(0, k)
      const total = order.reduce((s2, j) => s2 + probs[j]!, 0)
      let gates = order.map((j) => (a.gating === 'softmax-topk-renorm' ? probs[j]! / total : probs[j]!))
      const all = gates.reduce((s2, g) => s2 + g, 0)
      const keep = order.map((j) => !masked(l, j))
      const kept = gates.reduce((s2, g, i) => s2 + (keep[i] ? g : 0), 0)
      if (kept === 0) return y
      gates = gates.map((g, i) => (keep[i] ? (kept === all ? g : g * (all / kept)) : 0))
      const outs = order.map((j) => runExpert(m.experts[l]![j]!, h2, 1))
      for (let i = 0; i < d; i++) {
        let acc = 0
        outs.forEach((o2, r) => {
          if (keep[r]) acc += gates[r]! * o2[i]!
        })
        y[i] = y[i]! + acc
      }
      return y
    })
  }
  const last = rmsNorm(xs[xs.length - 1]!, m.trunk.norm, 1, d, eps)
  return matVec(m.trunk.head, last, a.vocabSize, d)
}

/** Runs experts from memory; `drop(call)` answers null; records the calls. */
class TestProvider implements ExpertProvider {
  readonly calls: ExpertCall[] = []
  readonly #inner: StaticExperts
  readonly #drop: (c: ExpertCall) => boolean
  constructor(m: RandomMoe, drop: (c: ExpertCall) => boolean = () => false) {
    this.#inner = new StaticExperts(m.expertMap, { kMin: 0 })
    this.#drop = drop
  }
  async runLayer(calls: readonly ExpertCall[]): Promise<Array<ExpertAnswer | null>> {
    this.calls.push(...calls)
    const answers = await this.#inner.runLayer(calls)
    return answers.map((a, i) => (this.#drop(calls[i]!) ? null : a))
  }
}

const prompt = [3, 14, 15, 9, 26, 5, 35]

for (const [label, arch] of [
  ['swiglu, renorm', SMALL_MOE],
  [
    'gelu, softmax-topk, tied, MHA',
    { ...SMALL_MOE, ffn: 'gelu', gating: 'softmax-topk', tieEmbeddings: true, nKvHeads: 4 },
  ],
  ['relu, top-3', { ...SMALL_MOE, ffn: 'relu', topK: 3 }],
] as const)
  test(`KV-cached generation gives exactly the logits of a full recompute (${label})`, async () => {
    const m = randomMoe(arch, 11)
    const engine = new MoeEngine(m.arch, m.trunk, m.routers, new TestProvider(m))
    const steps: Float32Array[] = []
    const g = await engine.generate(prompt, {
      maxTokens: 6,
      sampler: SAMPLED,
      onLogits: (logits) => steps.push(Float32Array.from(logits)),
    })
    assert.equal(g.ids.length, 6)
    assert.equal(g.finish, 'length')
    steps.forEach((logits, s) => {
      const seq = [...prompt, ...g.ids.slice(0, s)]
      assert.deepEqual(logits, naiveLogits(m, seq, m.arch.topK), `step ${s}`)
    })
    // teacher forcing gives the same rows
    const all = await engine.logitsFor([...prompt, ...g.ids.slice(0, 5)])
    const V = m.arch.vocabSize
    steps.forEach((logits, s) =>
      assert.deepEqual(all.subarray((prompt.length - 1 + s) * V, (prompt.length + s) * V), logits),
    )
  })

test('routing: every row goes to exactly top-k distinct experts; top_k_experts overrides; stats add up', async () => {
  const m = randomMoe(SMALL_MOE, 3)
  for (const k of [1, 2, 4]) {
    const p = new TestProvider(m)
    const engine = new MoeEngine(m.arch, m.trunk, m.routers, p)
    const g = await engine.generate(prompt, { maxTokens: 4, sampler: GREEDY, topK: k })
    const rows = prompt.length + g.ids.length - 1
    for (let l = 0; l < m.arch.nLayers; l++) {
      const counts = g.routing.expertTokens[l]!
      assert.equal(
        counts.reduce((a, b) => a + b, 0),
        rows * k,
      )
      const layerCalls = p.calls.filter((c) => c.layer === l)
      assert.equal(
        layerCalls.reduce((s, c) => s + c.rows, 0),
        rows * k,
      )
    }
    assert.equal(g.routing.masked, 0)
    assert.equal(g.routing.hosts.local, p.calls.length)
  }
})

test('the router picks the highest-probability experts (ties: the lower index)', async () => {
  const m = randomMoe(SMALL_MOE, 5)
  const E = m.arch.expertsPerLayer
  const d = m.arch.dModel
  const picks = async (weight: Float32Array, k: number): Promise<number[]> => {
    const p = new TestProvider(m)
    await new MoeEngine(m.arch, m.trunk, [{ weight }, ...m.routers.slice(1)], p).logitsFor([1], { topK: k })
    return p.calls.filter((c) => c.layer === 0).map((c) => c.expert)
  }
  // every logit 0: a tie among all, the lowest indices win
  assert.deepEqual(await picks(new Float32Array(E * d), 2), [0, 1])
  assert.deepEqual(await picks(new Float32Array(E * d), 3), [0, 1, 2])
  // expert 5's logit is u·h and expert 3's is −u·h: one of them is above 0, the rest tie at 0
  const w = new Float32Array(E * d)
  for (let i = 0; i < d; i++) {
    w[5 * d + i] = i % 3 === 0 ? 2 : -1
    w[3 * d + i] = -w[5 * d + i]!
  }
  const top = await picks(w, 1)
  assert.equal(top.length, 1)
  assert.ok(top[0] === 5 || top[0] === 3)
  assert.deepEqual(await picks(w, 2), [0, top[0]])
})

test('a masked expert: its gate goes to the others (renormalized), and it is counted', async () => {
  const m = randomMoe(SMALL_MOE, 8)
  const drop = (c: { layer: number; expert: number }): boolean => c.layer === 1 && c.expert === 3
  const p = new TestProvider(m, drop)
  const engine = new MoeEngine(m.arch, m.trunk, m.routers, p)
  const ids = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
  const logits = await engine.teacherForce(ids)
  const V = m.arch.vocabSize
  for (let n = 1; n <= ids.length; n++)
    assert.deepEqual(
      logits.logits.subarray((n - 1) * V, n * V),
      naiveLogits(m, ids.slice(0, n), 2, (l, e) => drop({ layer: l, expert: e })),
    )
  const routedTo3 = p.calls.filter(drop).reduce((s, c) => s + c.rows, 0)
  assert.ok(routedTo3 > 0, 'the test routes some rows to the dropped expert')
  assert.equal(logits.routing.masked, routedTo3)
  // and it changes the result
  const full = await new MoeEngine(m.arch, m.trunk, m.routers, new TestProvider(m)).logitsFor(ids)
  assert.notDeepEqual(full, logits.logits)
})

test('empty slots are never routed to', async () => {
  const m = randomMoe(SMALL_MOE, 9)
  const blocks = m.blocks.map((row) => row.map((b, j) => (j < 5 ? '' : b)))
  const p = new TestProvider(m)
  const engine = new MoeEngine(m.arch, m.trunk, m.routers, p, { blocks })
  await engine.generate(prompt, { maxTokens: 3, sampler: GREEDY })
  assert.ok(p.calls.every((c) => c.expert >= 5))
})

test('generation is deterministic, stops at a stop id, and checks its input', async () => {
  const m = randomMoe(SMALL_MOE, 4)
  const run = (): Promise<{ ids: number[]; logits: Float32Array[] }> => {
    const logits: Float32Array[] = []
    const engine = new MoeEngine(m.arch, m.trunk, m.routers, new TestProvider(m))
    return engine
      .generate(prompt, { maxTokens: 10, sampler: SAMPLED, onLogits: (l) => logits.push(Float32Array.from(l)) })
      .then((g) => ({ ids: g.ids, logits }))
  }
  const a = await run()
  const b = await run()
  assert.deepEqual(a, b)
  const engine = new MoeEngine(m.arch, m.trunk, m.routers, new TestProvider(m))
  const streamed: number[] = []
  const stopped = await engine.generate(prompt, {
    maxTokens: 10,
    sampler: SAMPLED,
    stopIds: [a.ids[3]!],
    onToken: (t) => streamed.push(t),
  })
  const at = a.ids.indexOf(a.ids[3]!)
  assert.deepEqual(stopped.ids, a.ids.slice(0, at + 1))
  assert.equal(stopped.finish, 'stop')
  assert.deepEqual(streamed, stopped.ids)
  // the context window caps the output
  const long = Array.from({ length: m.arch.contextLength - 2 }, (_, i) => i % m.arch.vocabSize)
  const capped = await engine.generate(long, { maxTokens: 10, sampler: GREEDY })
  assert.equal(capped.ids.length, 2)
  assert.equal(capped.finish, 'length')
  await assert.rejects(engine.generate([...long, 1, 2], { maxTokens: 1, sampler: GREEDY }), ContextLengthError)
  await assert.rejects(engine.generate([m.arch.vocabSize], { maxTokens: 1, sampler: GREEDY }), InvalidInputError)
  await assert.rejects(engine.generate([1], { maxTokens: 1, sampler: GREEDY, topK: 9 }), InvalidInputError)
  await assert.rejects(engine.generate([], { maxTokens: 1, sampler: GREEDY }), InvalidInputError)
  const ac = new AbortController()
  ac.abort()
  await assert.rejects(engine.generate([1], { maxTokens: 1, sampler: GREEDY, signal: ac.signal }), {
    name: 'AbortError',
  })
})
