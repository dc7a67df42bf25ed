// Attack: a model that never finishes. A Loop with a trip count of 2^62 over a trivial body: in
// process, `session.run` would hold the node's thread (and consensus with it) for ever. In the
// sandbox the run-time limit kills the model's process, the job fails with a typed error, the
// process is replaced, and other models answer throughout.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { modelCid } from '../../src/inference/demo-models.ts'
import { ModelLimitError } from '../../src/inference/errors.ts'
import { createTensor } from '../../src/inference/tensor.ts'
import { SandboxedRunner } from '../../src/inference/runner/sandbox.ts'
import { endlessLoopModel } from '../helpers/onnx-models.ts'
import { LAG_BOUND_MS, digitsModel, watchLag, type GoodModel } from '../helpers/sandbox.ts'

const RUN_TIME_MS = 1_500
let root: string
let digits: GoodModel

before(async () => {
  digits = await digitsModel()
  root = await mkdtemp(join(tmpdir(), 'donghae-attack-'))
})

after(() => rm(root, { recursive: true, force: true }))

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

test('never finishes: the run-time limit kills the process, the job fails with run-time, the process is replaced, other models answer meanwhile', async () => {
  const limits: string[] = []
  const runner = new SandboxedRunner({
    executionProvider: 'cpu',
    sandboxRoot: root,
    limits: { runTimeMs: RUN_TIME_MS },
    onLimit: (_cid, e) => limits.push(e.limit),
  })
  const endless = endlessLoopModel()
  const cid = modelCid(endless)
  const x = { x: createTensor('float32', [1], Float32Array.of(1)) }
  const lag = watchLag()
  try {
    await runner.load(digits.cid, digits.bytes)
    await runner.load(cid, endless)
    const first = runner.processes().find((p) => p.cid === cid)?.pid as number
    const stalled = runner.run(cid, x).catch((e: unknown) => e)
    // while the endless run holds its process, the good model is served from its own
    for (let i = 0; i < 5; i++) {
      assert.deepEqual((await runner.run(digits.cid, digits.inputs)).outputs, digits.expected)
      await sleep(100)
    }
    const err = await stalled
    assert.ok(err instanceof ModelLimitError, String(err))
    assert.equal(err.limit, 'run-time')
    assert.equal(err.reason, 'model-limit')
    assert.match(err.message, /longer than 1500 ms/)
    assert.deepEqual(limits, ['run-time'])
    assert.equal(alive(first), false, 'the stalled process is gone')
    // replaced: the model stays loaded and a fresh process takes its place
    assert.equal(runner.has(cid), true)
    for (let i = 0; i < 100 && runner.processes().find((p) => p.cid === cid)?.pid === first; i++) await sleep(50)
    const replaced = runner.processes().find((p) => p.cid === cid)
    assert.ok(
      replaced !== undefined && replaced.restarts === 1 && replaced.pid !== first && alive(replaced.pid as number),
    )
    assert.deepEqual((await runner.run(digits.cid, digits.inputs)).outputs, digits.expected)
  } finally {
    await runner.close()
  }
  assert.ok(lag.stop() < LAG_BOUND_MS, `event loop lag ${lag.maxMs()} ms`)
})
