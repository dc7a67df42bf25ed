import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomMoe, SMALL_MOE } from '../../../test/helpers/moe.ts'
import { createRng } from '../../../test/helpers/random.ts'
import { TokenSetError } from '../errors.ts'
import { addWindowLoss, evaluateModel, parseValidationTokens, scoreOf } from './evaluate.ts'
import { LocalExperts } from './local.ts'
import { expertBytes } from './weights.ts'

const m = randomMoe(SMALL_MOE, 31)
const rng = createRng(99)
const tokens = Uint32Array.from({ length: 4 * 16 + 1 }, () => rng.int(0, m.arch.vocabSize - 1))
const base = { arch: m.arch, trunk: m.trunk, routers: m.routers, tokens, windows: 4, windowTokens: 16 }

test('the score is deterministic, the same through any provider, and plausible', async () => {
  const a = await evaluateModel({ ...base, experts: m.expertMap })
  const b = await evaluateModel({ ...base, experts: m.expertMap })
  assert.deepEqual(a, b)
  const local = new LocalExperts({
    arch: m.arch,
    budgetBytes: 2 * expertBytes(m.arch),
    load: async (blk) => m.store.get(blk)!,
  })
  assert.deepEqual(await evaluateModel({ ...base, provider: local }), a)
  // a random model is near uniform: ln 64 ≈ 4.16 nats
  assert.ok(a.lossMicroNats > 2_000_000n && a.lossMicroNats < 8_000_000n, `${a.lossMicroNats}`)
  assert.ok(a.accuracyPpm >= 0 && a.accuracyPpm <= 1_000_000)
})

test('changing one expert changes the score', async () => {
  const before = await evaluateModel({ ...base, experts: m.expertMap })
  const changed = new Map(m.expertMap)
  const w = m.experts[0]![0]!
  changed.set(m.blocks[0]![0]!, { ...w, w2: w.w2.map((v) => v * 3) })
  const after = await evaluateModel({ ...base, experts: changed })
  assert.notEqual(after.lossMicroNats, before.lossMicroNats)
})

test('scoreOf rounds half up', () => {
  assert.deepEqual(scoreOf({ nll: 1.0000005, correct: 1, count: 1 }), {
    lossMicroNats: 1_000_001n,
    accuracyPpm: 1_000_000,
  })
  assert.deepEqual(scoreOf({ nll: 3, correct: 1, count: 3 }), { lossMicroNats: 1_000_000n, accuracyPpm: 333_333 })
  assert.deepEqual(scoreOf({ nll: 0, correct: 2, count: 3 }).accuracyPpm, 666_667)
  assert.throws(() => scoreOf({ nll: 0, correct: 0, count: 0 }), TokenSetError)
})

test('addWindowLoss: NLL of a known distribution; ties go to the lowest id; non-finite logits are capped', () => {
  const sums = { nll: 0, correct: 0, count: 0 }
  addWindowLoss(sums, Float32Array.from([0, 0, 0, 0]), [2], 4)
  assert.ok(Math.abs(sums.nll - Math.log(4)) < 1e-12)
  assert.equal(sums.correct, 0)
  addWindowLoss(sums, Float32Array.from([1, 1, 0, 0]), [0], 4)
  assert.equal(sums.correct, 1)
  const bad = { nll: 0, correct: 0, count: 0 }
  addWindowLoss(bad, Float32Array.from([NaN, 0]), [0], 2)
  assert.equal(bad.nll, 1000)
})

test('windows must fit the token set and the context', async () => {
  await assert.rejects(evaluateModel({ ...base, experts: m.expertMap, windows: 5 }), TokenSetError)
  await assert.rejects(evaluateModel({ ...base, experts: m.expertMap, windowTokens: 65 }), TokenSetError)
  await assert.rejects(evaluateModel({ ...base, experts: m.expertMap, windows: 0 }), TokenSetError)
})

test('parseValidationTokens reads uint32 LE and checks the vocabulary', () => {
  const bytes = new Uint8Array([1, 0, 0, 0, 63, 0, 0, 0])
  assert.deepEqual(parseValidationTokens(bytes, 64), Uint32Array.from([1, 63]))
  assert.throws(() => parseValidationTokens(bytes, 63), TokenSetError)
  assert.throws(() => parseValidationTokens(bytes.subarray(0, 7), 64), TokenSetError)
  // an unaligned view works
  const shifted = new Uint8Array(9)
  shifted.set(bytes, 1)
  assert.deepEqual(parseValidationTokens(shifted.subarray(1), 64), Uint32Array.from([1, 63]))
})
