import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomMoe, SMALL_MOE } from '../../../test/helpers/moe.ts'
import { ExpertBudgetError, ExpertUnavailableError } from '../errors.ts'
import { MoeEngine } from './engine.ts'
import { LocalExperts, StaticExperts, runExpert } from './local.ts'
import { gelu, matVec, relu, silu } from './math.ts'
import type { ExpertCall } from './provider.ts'
import { expertBytes } from './weights.ts'

const m = randomMoe(SMALL_MOE, 21)
const ONE = expertBytes(m.arch)

function local(experts: number, extra: Partial<ConstructorParameters<typeof LocalExperts>[0]> = {}) {
  const loads: string[] = []
  const provider = new LocalExperts({
    arch: m.arch,
    budgetBytes: experts * ONE,
    load: async (block) => {
      loads.push(block)
      const b = m.store.get(block)
      if (b === undefined) throw new Error(`no ${block}`)
      return b
    },
    ...extra,
  })
  return { provider, loads }
}

function call(layer: number, expert: number, rows = 1): ExpertCall {
  return {
    layer,
    expert,
    block: m.blocks[layer]![expert]!,
    input: Float32Array.from({ length: rows * m.arch.dModel }, (_, i) => Math.sin(i)),
    rows,
  }
}

test('runExpert computes SwiGLU, GELU and ReLU FFNs', () => {
  const d = m.arch.dModel
  const x = Float32Array.from({ length: d }, (_, i) => Math.cos(i))
  for (const ffn of ['swiglu', 'gelu', 'relu'] as const) {
    const w = { ...m.experts[0]![0]!, ffn }
    const a = matVec(w.w1, x, w.dFf, d)
    const act = Float32Array.from(a, (v, i) =>
      ffn === 'swiglu' ? silu(v) * matVec(w.w3!, x, w.dFf, d)[i]! : ffn === 'gelu' ? gelu(v) : relu(v),
    )
    assert.deepEqual(runExpert(w, x, 1), matVec(w.w2, act, d, w.dFf))
  }
})

test('a budget below one expert is refused', () => {
  assert.throws(() => local(0.5), ExpertBudgetError)
  assert.throws(() => local(0), ExpertBudgetError)
})

test('LocalExperts keeps the least recently used order, stays under the budget, and counts', async () => {
  const { provider, loads } = local(3)
  const seq = [0, 1, 2, 0, 3, 4, 0, 1]
  for (const e of seq) {
    await provider.runLayer([call(0, e)])
    assert.ok(provider.stats().residentBytes <= 3 * ONE)
  }
  // 0 1 2 | 0 hit | 3 (evicts 1) | 4 (evicts 2) | 0 hit | 1 (evicts 3)
  assert.deepEqual(
    loads,
    [0, 1, 2, 3, 4, 1].map((e) => m.blocks[0]![e]),
  )
  assert.deepEqual(
    provider.resident(),
    [4, 0, 1].map((e) => m.blocks[0]![e]),
  )
  const s = provider.stats()
  assert.equal(s.hits, 2)
  assert.equal(s.misses, 6)
  assert.equal(s.evictions, 3)
  assert.equal(s.peakResidentBytes, 3 * ONE)
})

test('runLayer answers like StaticExperts, in call order, resident experts first', async () => {
  const { provider, loads } = local(2)
  await provider.prefetch([m.blocks[0]![5]!])
  const calls = [call(0, 1, 3), call(0, 5, 2)]
  const answers = await provider.runLayer(calls)
  const want = await new StaticExperts(m.expertMap).runLayer(calls)
  assert.deepEqual(
    answers.map((a) => a!.output),
    want.map((a) => a!.output),
  )
  assert.equal(answers[0]!.host, 'local')
  assert.deepEqual(loads, [m.blocks[0]![5], m.blocks[0]![1]])
  assert.equal(provider.stats().hits, 1) // 5 was prefetched (prefetches count as neither)
  // a budget of one: the layer needs both, each is loaded in turn
  const one = local(1)
  const again = await one.provider.runLayer(calls)
  assert.deepEqual(
    again.map((a) => a!.output),
    want.map((a) => a!.output),
  )
  assert.equal(one.provider.stats().peakResidentBytes, ONE)
})

test('a payload that cannot be loaded is answered null; too few answers is an error', async () => {
  const { provider } = local(2)
  const missing: ExpertCall = { ...call(0, 1), block: 'nope' }
  const answers = await provider.runLayer([call(0, 0), missing])
  assert.notEqual(answers[0], null)
  assert.equal(answers[1], null)
  assert.equal(provider.stats().failures, 1)
  await assert.rejects(provider.runLayer([missing]), ExpertUnavailableError)
  const lenient = local(2, { kMin: 0 }).provider
  assert.deepEqual(await lenient.runLayer([missing]), [null])
})

test('pinned experts are never evicted; pinning past the budget is refused', async () => {
  const { provider } = local(2)
  await provider.pin(m.blocks[0]![0]!)
  for (const e of [1, 2, 3, 4]) await provider.runLayer([call(0, e)])
  assert.ok(provider.has(m.blocks[0]![0]!))
  await provider.pin(m.blocks[0]![1]!)
  await assert.rejects(provider.pin(m.blocks[0]![2]!), ExpertBudgetError)
  provider.unpin(m.blocks[0]![1]!)
  await provider.runLayer([call(0, 6)])
  assert.ok(provider.has(m.blocks[0]![0]!))
  assert.ok(!provider.has(m.blocks[0]![1]!))
})

test('expert groups are loaded, refreshed and evicted together when they fit', async () => {
  const { provider, loads } = local(4)
  const b = m.blocks[0]!
  provider.setGroups([[b[0]!, b[1]!]])
  await provider.runLayer([call(0, 0)])
  assert.deepEqual(new Set(loads), new Set([b[0], b[1]]))
  await provider.runLayer([call(0, 1)])
  assert.equal(provider.stats().hits, 1) // loaded with its group
  await provider.runLayer([call(0, 2)])
  await provider.runLayer([call(0, 3)])
  // the budget is full (0 1 2 3); 4 evicts the least recently used, 0, and its partner 1 with it
  await provider.runLayer([call(0, 4)])
  assert.deepEqual(provider.resident(), [b[2], b[3], b[4]])
  // a group larger than the budget is loaded one member at a time
  const small = local(1)
  small.provider.setGroups([[b[0]!, b[1]!]])
  await small.provider.runLayer([call(0, 0)])
  assert.deepEqual(small.loads, [b[0]])
})

test('a generation through LocalExperts with a budget of top-k per layer equals one with every expert loaded', async () => {
  const { provider } = local(m.arch.topK * m.arch.nLayers)
  const sampler = { temperatureMilli: 700, topPMilli: 1000, topK: 0, seed: 5n }
  const a = await new MoeEngine(m.arch, m.trunk, m.routers, provider).generate([1, 2, 3], { maxTokens: 8, sampler })
  const b = await new MoeEngine(m.arch, m.trunk, m.routers, new StaticExperts(m.expertMap)).generate([1, 2, 3], {
    maxTokens: 8,
    sampler,
  })
  assert.deepEqual(a.ids, b.ids)
  assert.ok(provider.stats().peakResidentBytes <= m.arch.topK * m.arch.nLayers * ONE)
})
