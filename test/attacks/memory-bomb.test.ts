// Attack: a model that allocates without bound. (1) A Loop that emits 1 MiB per iteration for 2^40
// iterations: the process grows steadily until the node's poll of its resident memory kills it.
// (2) One Expand to 2^40 floats (4 TiB): the allocation fails at once (the address-space rlimit on
// Linux, or the kernel refusing it) and the run fails with the memory limit. Either way the node
// keeps its event loop, answers a typed error, and serves the good model.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { modelCid } from '../../src/inference/demo-models.ts'
import { ModelLimitError } from '../../src/inference/errors.ts'
import { createTensor } from '../../src/inference/tensor.ts'
import { SandboxedRunner } from '../../src/inference/runner/sandbox.ts'
import { expandModel, growingLoopModel } from '../helpers/onnx-models.ts'
import { LAG_BOUND_MS, digitsModel, watchLag, type GoodModel } from '../helpers/sandbox.ts'

const MiB = 2 ** 20
const MAX_RSS = 384 * MiB
let root: string
let digits: GoodModel
let runner: SandboxedRunner
const limits: string[] = []
const x = { x: createTensor('float32', [1], Float32Array.of(1)) }

before(async () => {
  digits = await digitsModel()
  root = await mkdtemp(join(tmpdir(), 'donghae-attack-'))
  runner = new SandboxedRunner({
    executionProvider: 'cpu',
    sandboxRoot: root,
    // the run-time limit is out of the way: memory must be what stops these models
    limits: { maxRssBytes: MAX_RSS, runTimeMs: 60_000, addressSpaceBytes: 16 * 2 ** 30, memoryPollMs: 50 },
    onLimit: (_cid, e) => limits.push(e.limit),
  })
  await runner.load(digits.cid, digits.bytes)
})

after(async () => {
  await runner.close()
  await rm(root, { recursive: true, force: true })
})

test('allocates without bound (a growing Loop): the memory poll kills the process at the bound; the node keeps serving', async () => {
  const model = growingLoopModel(1 << 18) // 1 MiB of float32 per iteration
  const cid = modelCid(model)
  await runner.load(cid, model)
  const good = runner.processes().find((p) => p.cid === digits.cid)?.pid
  const lag = watchLag()
  const err = await runner.run(cid, x).catch((e: unknown) => e)
  assert.ok(err instanceof ModelLimitError, String(err))
  assert.equal(err.limit, 'memory')
  assert.ok(Number(err.details.rssBytes) > MAX_RSS, JSON.stringify(err.details))
  assert.match(err.message, /over the 384 MiB memory limit/)
  assert.ok(limits.includes('memory'))
  assert.deepEqual((await runner.run(digits.cid, digits.inputs)).outputs, digits.expected)
  assert.ok(lag.stop() < LAG_BOUND_MS, `event loop lag ${lag.maxMs()} ms`)
  assert.equal(
    runner.processes().find((p) => p.cid === digits.cid)?.pid,
    good,
    "the good model's process was not touched",
  )
  await runner.unload(cid)
})

test('allocates without bound (one 4 TiB Expand): the allocation fails under the memory limit; the node keeps serving', async () => {
  const model = expandModel(2 ** 40)
  const cid = modelCid(model)
  await runner.load(cid, model)
  const lag = watchLag()
  const err = await runner.run(cid, x).catch((e: unknown) => e)
  assert.ok(err instanceof ModelLimitError, String(err))
  assert.equal(err.limit, 'memory')
  assert.equal(err.details.allocation, true)
  assert.deepEqual((await runner.run(digits.cid, digits.inputs)).outputs, digits.expected)
  assert.ok(lag.stop() < LAG_BOUND_MS, `event loop lag ${lag.maxMs()} ms`)
})
