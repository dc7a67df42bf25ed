import { test } from 'node:test'
import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { randomMoe, SMALL_MOE } from '../../../test/helpers/moe.ts'
import { createRng } from '../../../test/helpers/random.ts'
import { evaluateModel } from './evaluate.ts'
import { StaticExperts } from './local.ts'
import { train, type TrainInput } from './trainer.ts'

const m = randomMoe({ ...SMALL_MOE, nLayers: 1, contextLength: 16 }, 41)
// a learnable training set: a repeating pattern
const tokens = Uint32Array.from({ length: 8 * 12 + 1 }, (_, i) => (i * 7) % 13)
const base: TrainInput = {
  arch: m.arch,
  trunk: m.trunk,
  routers: m.routers,
  provider: new StaticExperts(m.expertMap),
  layer: 0,
  expert: 0,
  weights: m.experts[0]![0]!,
  tokens,
  windowTokens: 12,
  steps: 12,
  seed: 7,
}

test('after N steps the training loss decreased (never rising), and the score of the model improves on it', async () => {
  // pick the expert most used on this set so the step matters
  const r = await train(base)
  assert.equal(r.losses.length, 13)
  for (let s = 1; s < r.losses.length; s++) assert.ok(r.losses[s]! <= r.losses[s - 1]!)
  assert.ok(r.losses[12]! < r.losses[0]!, `loss ${r.losses[0]} → ${r.losses[12]}`)
  assert.ok(r.accepted > 0)
  assert.ok(r.windows.length > 0)
  // the new weights give the trained loss when evaluated as a model
  const experts = new Map(m.expertMap)
  experts.set(m.blocks[0]![0]!, r.weights)
  const windows = 8
  const before = await evaluateModel({
    arch: m.arch,
    trunk: m.trunk,
    routers: m.routers,
    experts: m.expertMap,
    tokens,
    windows,
    windowTokens: 12,
  })
  const after = await evaluateModel({
    arch: m.arch,
    trunk: m.trunk,
    routers: m.routers,
    experts,
    tokens,
    windows,
    windowTokens: 12,
  })
  assert.ok(after.lossMicroNats < before.lossMicroNats)
  // deterministic under a seed
  const again = await train(base)
  assert.deepEqual(again.losses, r.losses)
  assert.deepEqual(again.weights, r.weights)
})

test('a pause request is honoured within 50 ms, and training resumes after it', async () => {
  const rng = createRng(3)
  const long = Uint32Array.from({ length: 16 * 12 + 1 }, () => rng.int(0, 63))
  let yieldNow = false
  let asked = 0
  let paused = -1
  let stepsAtPause = -1
  let steps = 0
  const run = train({
    ...base,
    tokens: long,
    steps: 6,
    shouldYield: () => yieldNow,
    onPause: () => {
      if (paused < 0) {
        paused = performance.now()
        stepsAtPause = steps
      }
    },
    onStep: () => steps++,
  })
  await sleep(30)
  yieldNow = true
  asked = performance.now()
  await sleep(120)
  assert.ok(paused > 0, 'the trainer paused')
  assert.ok(paused - asked < 50, `paused after ${(paused - asked).toFixed(1)} ms`)
  assert.equal(steps, stepsAtPause, 'no step completes while paused')
  yieldNow = false
  const r = await run
  assert.equal(r.losses.length, 7)
})

test('training stops on abort', async () => {
  const ac = new AbortController()
  const run = train({ ...base, steps: 1000, signal: ac.signal })
  await sleep(20)
  ac.abort()
  await assert.rejects(run, { name: 'AbortError' })
})
