// Language models in both runners, against the real ONNX Runtime on the demo language model
// (models/train-lm.py): the sandboxed runner generates in its child process and streams tokens,
// with the same outputs as in-process ONNX Runtime; audits by teacher forcing; typed errors cross
// the pipe. The generation itself is tested in lm/engine.test.ts.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { fileURLToPath } from 'node:url'
import { InvalidInputError } from '../../core/errors.ts'
import { modelCid } from '../demo-models.ts'
import { ContextLengthError, LmModelError } from '../lm/errors.ts'
import { parseLmFiles, readLmFolder } from '../lm/model-files.ts'
import {
  LM_INPUTS,
  generationTensors,
  outputTensors,
  parseOutputTensors,
  type LmFiles,
  type SamplingParams,
} from '../lm/types.ts'
import { OnnxRuntime } from '../runtime.ts'
import { createTensor } from '../tensor.ts'
import { SandboxedRunner } from './sandbox.ts'

const LM_DIR = fileURLToPath(new URL('../../../models/lm/', import.meta.url))
let root: string
let bytes: Uint8Array
let cid: string
let files: LmFiles
let context: number
let vocab: number
let inProcess: OnnxRuntime
let sandboxed: SandboxedRunner

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'donghae-sandbox-lm-test-'))
  bytes = new Uint8Array(await readFile(join(LM_DIR, 'model.onnx')))
  cid = modelCid(bytes)
  files = await readLmFolder(LM_DIR)
  const { config } = parseLmFiles(files)
  context = config.contextLength
  vocab = config.vocabSize!
  inProcess = new OnnxRuntime({ executionProvider: 'cpu' })
  sandboxed = new SandboxedRunner({ executionProvider: 'cpu', sandboxRoot: root })
  await Promise.all([inProcess.load(cid, bytes, { files }), sandboxed.load(cid, bytes, { files })])
})

after(async () => {
  await sandboxed.close()
  await inProcess.close()
  await rm(root, { recursive: true, force: true })
})

const params = (over: Partial<SamplingParams> = {}): SamplingParams => ({
  maxTokens: 24,
  temperatureMilli: 800,
  topPMilli: 950,
  topK: 40,
  seed: 42n,
  stop: [],
  ...over,
})
const PROMPT = [1, 2, 3, 4, 5, 6, 7, 8].map((i) => i * 101) // ids of the demo's 2048-token vocabulary

test('a language model is served with the generation schema and its context window', () => {
  for (const runner of [inProcess, sandboxed]) {
    const info = runner.model(cid)!
    assert.deepEqual(info.inputs, [...LM_INPUTS])
    assert.equal(info.contextLength, context)
  }
})

test('the sandbox streams tokens before the run resolves, and answers as in-process ONNX Runtime does', async () => {
  const inputs = generationTensors(PROMPT, params())
  const direct = await inProcess.run(cid, inputs)
  // Frames that reach the node together are handed on as one piece, so on a loaded machine (the
  // node's loop busy while the whole generation runs) one run may arrive in a single piece: up to
  // three runs, each checked in full, and at least one must arrive in pieces.
  const pieces: number[] = []
  for (let attempt = 0; attempt < 3 && !pieces.some((n) => n > 1); attempt++) {
    const streamed: number[] = []
    let calls = 0
    let settled = false
    const run = sandboxed.run(cid, inputs, {
      onTokens: (ids) => {
        assert.ok(!settled, 'a token arrived after the run resolved')
        calls++
        streamed.push(...ids)
      },
    })
    void run.finally(() => (settled = true))
    const viaSandbox = await run
    pieces.push(calls)
    assert.deepEqual(viaSandbox.outputs, direct.outputs)
    const out = parseOutputTensors(viaSandbox.outputs)
    assert.deepEqual(streamed, out.tokens)
    assert.equal(out.finish, 'length')
    assert.deepEqual(viaSandbox.lm?.promptTokens, PROMPT.length)
    assert.equal(viaSandbox.lm?.outputTokens, 24)
    assert.ok((viaSandbox.lm?.ttftMicros ?? 0) > 0)
    assert.ok(viaSandbox.computeMicros >= (viaSandbox.lm?.ttftMicros ?? 0))
    assert.equal(viaSandbox.ep, 'cpu')
  }
  assert.ok(
    pieces.some((n) => n > 1),
    `onTokens was called ${pieces.join(', ')} times in ${pieces.length} runs`,
  )
})

test('an audit by teacher forcing passes an honest output and corrects a forged one, in both runners', async () => {
  const inputs = generationTensors(PROMPT, params({ maxTokens: 32 }))
  const honest = parseOutputTensors((await inProcess.run(cid, inputs)).outputs)
  const forged = { ...honest, tokens: [...honest.tokens] }
  // far from the honest token: outside top_k 40 but for a fluke of the weights
  forged.tokens[9] = (forged.tokens[9]! + Math.floor(vocab / 2)) % vocab
  for (const runner of [inProcess, sandboxed]) {
    const tolerance = { maxAbsPpm: 10_000 }
    const pass = await runner.run(cid, inputs, { claimed: outputTensors(honest), tolerance })
    assert.equal(pass.lm?.firstMismatch, -1)
    assert.deepEqual(parseOutputTensors(pass.outputs), honest)
    const fail = await runner.run(cid, inputs, { claimed: outputTensors(forged), tolerance })
    assert.equal(fail.lm?.firstMismatch, 9)
    assert.deepEqual(parseOutputTensors(fail.outputs), honest)
  }
})

test('typed errors: unresolved seed, a prompt over the context window, bad files', async () => {
  const unseeded = generationTensors(PROMPT, params({ seed: null }))
  const long = generationTensors(
    Array.from({ length: context }, () => 7),
    params(),
  )
  for (const runner of [inProcess, sandboxed]) {
    await assert.rejects(
      runner.run(cid, unseeded),
      (e: unknown) => e instanceof InvalidInputError && /has_seed/.test(e.message),
    )
    await assert.rejects(
      runner.run(cid, long),
      (e: unknown) => e instanceof ContextLengthError && e.details.contextLength === context,
    )
    // files without a tokenizer: a language model that cannot be served, not a tensor model
    const noTokenizer: LmFiles = { ...files, 'tokenizer.json': undefined }
    const other = new Uint8Array(bytes) // same bytes: same CID, so load it under a fresh runner
    const fresh =
      runner === inProcess
        ? new OnnxRuntime({ executionProvider: 'cpu' })
        : new SandboxedRunner({ executionProvider: 'cpu', sandboxRoot: root })
    try {
      await assert.rejects(
        fresh.load(cid, other, { files: noTokenizer }),
        (e: unknown) =>
          e instanceof LmModelError && e.problem === 'missing-file' && e.details.file === 'tokenizer.json',
      )
      assert.equal(fresh.has(cid), false)
    } finally {
      await fresh.close()
    }
  }
})

test('calibration of a language model measures short greedy generations, whatever the sample inputs', async () => {
  // what the worker passes: zeros-and-ones filling the schema (models.ts sampleInputs), not a valid job
  const sample = {
    prompt_ids: createTensor('int64', [1, 1], new BigInt64Array(1)),
    sampling: createTensor('int64', [6], BigInt64Array.from([0n, 2n, 4n, 1n, 3n, 0n])),
    stop: createTensor('uint8', [1], new Uint8Array(1)),
  }
  for (const runner of [inProcess, sandboxed]) {
    const c = await runner.calibrate(cid, sample, { durationMs: 50 })
    assert.ok(c.jobsPerSecond > 0 && Number.isFinite(c.jobsPerSecond))
    assert.ok(c.runs >= 3)
  }
})
