// Attack: file theft through ONNX "external data". The model's output is Identity(w), and w's
// bytes live in the file `api-token`, which ONNX Runtime resolves against the working directory.
// A node running in its home (as the launchd agent does) would answer with its operator token.
// Defences: the safety check refuses the model and names the place; and with the check bypassed,
// the sandbox process works in an empty directory, so the file is not there to read.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { modelCid } from '../../src/inference/demo-models.ts'
import { ModelLimitError, UnsafeModelError } from '../../src/inference/errors.ts'
import { OnnxRuntime } from '../../src/inference/runtime.ts'
import { SandboxedRunner } from '../../src/inference/runner/sandbox.ts'
import { fileTheftModel } from '../helpers/onnx-models.ts'
import { LAG_BOUND_MS, digitsModel, watchLag, type GoodModel } from '../helpers/sandbox.ts'

const SECRET = 'dh-api-token-7f3a9c1e5b2d4f60'
let home: string
let previousCwd: string
let digits: GoodModel
const theft = fileTheftModel('api-token', SECRET.length)
const theftCid = modelCid(theft)

before(async () => {
  digits = await digitsModel()
  // the node's home: its token beside the sandboxes, and the process's working directory
  home = await mkdtemp(join(tmpdir(), 'donghae-attack-home-'))
  await writeFile(join(home, 'api-token'), SECRET, { mode: 0o600 })
  previousCwd = process.cwd()
  process.chdir(home)
})

after(async () => {
  process.chdir(previousCwd)
  await rm(home, { recursive: true, force: true })
})

const text = (data: ArrayLike<number>): string => Buffer.from(Uint8Array.from(data)).toString('utf8')

test('file theft: the model is a working exploit when ONNX Runtime runs in the node process without the check', async () => {
  const inProcess = new OnnxRuntime({ executionProvider: 'cpu', unsafeSkipModelCheck: true })
  try {
    await inProcess.load(theftCid, theft)
    const { outputs } = await inProcess.run(theftCid, {})
    assert.equal(text(outputs.secret?.data as Uint8Array), SECRET, 'the attack must work where nothing stops it')
  } finally {
    await inProcess.close()
  }
})

test('file theft: the safety check refuses the model and names the initializer; the node keeps serving', async () => {
  const runner = new SandboxedRunner({ executionProvider: 'cpu', sandboxRoot: home })
  const lag = watchLag()
  try {
    await runner.load(digits.cid, digits.bytes)
    const err = await runner.load(theftCid, theft).catch((e: unknown) => e)
    assert.ok(err instanceof UnsafeModelError, String(err))
    assert.ok(err instanceof ModelLimitError && err.limit === 'unsafe')
    assert.equal(err.path, 'graph.initializer[0] "w"')
    assert.match(err.message, /external data/)
    assert.equal(runner.has(theftCid), false)
    assert.deepEqual((await runner.run(digits.cid, digits.inputs)).outputs, digits.expected)
  } finally {
    await runner.close()
  }
  assert.ok(lag.stop() < LAG_BOUND_MS, `event loop lag ${lag.maxMs()} ms`)
})

test('file theft: with the check bypassed, the sandbox’s empty working directory keeps every secret out of reach', async () => {
  const limits: ModelLimitError[] = []
  const runner = new SandboxedRunner({
    executionProvider: 'cpu',
    sandboxRoot: home,
    unsafeSkipModelCheck: true,
    onLimit: (_cid, e) => limits.push(e),
  })
  const lag = watchLag()
  try {
    await runner.load(digits.cid, digits.bytes)
    // the token in the parent's cwd, the same file one level up, and by absolute path
    for (const location of ['api-token', '../api-token', join(home, 'api-token')]) {
      const model = fileTheftModel(location, SECRET.length)
      const answer = await runner
        .load(modelCid(model), model)
        .then(() => runner.run(modelCid(model), {}))
        .then(
          (r) => text(r.outputs.secret?.data as Uint8Array),
          (e: unknown) => e,
        )
      assert.ok(answer instanceof Error, `${location}: the model must fail to load, it answered ${String(answer)}`)
      assert.ok(!answer.message.includes(SECRET), `${location}: the secret leaked into the error`)
      assert.equal(runner.has(modelCid(model)), false)
    }
    assert.deepEqual((await runner.run(digits.cid, digits.inputs)).outputs, digits.expected)
  } finally {
    await runner.close()
  }
  assert.ok(lag.stop() < LAG_BOUND_MS, `event loop lag ${lag.maxMs()} ms`)
})
