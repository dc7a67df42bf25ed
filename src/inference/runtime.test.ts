// Interop tests against the real ONNX Runtime (onnxruntime-node) with the checked-in demo models.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { toHex } from '../core/bytes.ts'
import { InvalidInputError } from '../core/errors.ts'
import { createLogger } from '../core/logger.ts'
import { charsInput } from './chars.ts'
import {
  DEMO_MODELS_DIR,
  DIGITS_RECIPE,
  demoModels,
  modelCid,
  readCharsSpec,
  readDigitsDataset,
} from './demo-models.ts'
import {
  OnnxRuntime,
  ModelCidMismatchError,
  ModelLoadError,
  ModelNotLoadedError,
  RuntimeClosedError,
  RUNTIME_NAME,
  calibrate,
  chooseExecutionProvider,
  cudaLibraryInstalled,
} from './runtime.ts'
import { createTensor, hashTensorMap, TensorSchemaError, type TensorMap } from './tensor.ts'
import { splitDataset } from './trainer.ts'
import { readLmFolder } from './lm/model-files.ts'

let digits: { bytes: Uint8Array; cid: string }
let chars: { bytes: Uint8Array; cid: string }
let rt: OnnxRuntime

async function modelFile(name: string): Promise<{ bytes: Uint8Array; cid: string }> {
  const bytes = new Uint8Array(await readFile(join(DEMO_MODELS_DIR, `${name}.onnx`)))
  return { bytes, cid: modelCid(bytes) }
}

function pixels(rows: number, value = 5): TensorMap {
  return { input: createTensor('float32', [rows, 64], new Float32Array(rows * 64).fill(value)) }
}

before(async () => {
  digits = await modelFile('digits-mlp')
  chars = await modelFile('chars-mlp')
  rt = new OnnxRuntime({ executionProvider: 'cpu' })
  await rt.load(digits.cid, digits.bytes)
})

after(() => rt.close())

test('auto picks CoreML on macOS, CUDA only when its library is there, else the CPU', () => {
  const withCuda = [
    { name: 'cpu', bundled: true },
    { name: 'cuda', bundled: false },
  ]
  assert.equal(chooseExecutionProvider({ platform: 'darwin', backends: withCuda }), 'coreml')
  assert.equal(chooseExecutionProvider({ platform: 'linux', backends: withCuda, cudaLibraryPresent: false }), 'cpu')
  assert.equal(chooseExecutionProvider({ platform: 'linux', backends: withCuda, cudaLibraryPresent: true }), 'cuda')
  assert.equal(chooseExecutionProvider({ platform: 'linux', backends: [{ name: 'cuda', bundled: true }] }), 'cuda')
  assert.equal(chooseExecutionProvider({ platform: 'linux', backends: [{ name: 'cpu', bundled: true }] }), 'cpu')
  assert.equal(chooseExecutionProvider({ platform: 'win32', requested: 'cpu', backends: withCuda }), 'cpu')
  assert.equal(chooseExecutionProvider({ platform: 'linux', requested: 'coreml' }), 'coreml')
  // With the real binding: the npm package lists CUDA but does not bundle its provider library.
  const usable = ort
    .listSupportedBackends()
    .some((b) => b.name === 'cuda' && (b.bundled || cudaLibraryInstalled('linux')))
  assert.equal(chooseExecutionProvider({ platform: 'linux' }), usable ? 'cuda' : 'cpu')
})

test('runs the digits model and reports what a receipt needs', async () => {
  assert.ok(rt.has(digits.cid))
  assert.equal(rt.runtime, RUNTIME_NAME)
  assert.match(RUNTIME_NAME, /^onnxruntime-node\/\d+\.\d+\.\d+ [a-z0-9]+-[a-z0-9]+$/)
  const info = rt.model(digits.cid)!
  assert.equal(info.ep, 'cpu')
  assert.deepEqual(info.inputs, [{ name: 'input', type: 'float32', dims: [null, 64] }])
  assert.deepEqual(info.outputs, [{ name: 'probabilities', type: 'float32', dims: [null, 10] }])
  const result = await rt.run(digits.cid, pixels(3))
  assert.equal(result.ep, 'cpu')
  assert.ok(Number.isSafeInteger(result.computeMicros) && result.computeMicros >= 0)
  const p = result.outputs.probabilities!
  assert.deepEqual([p.type, p.dims], ['float32', [3, 10]])
  for (let r = 0; r < 3; r++) {
    const sum = [...(p.data as Float32Array).subarray(r * 10, r * 10 + 10)].reduce((a, b) => a + b, 0)
    assert.ok(Math.abs(sum - 1) < 1e-5, `row ${r} sums to ${sum}`)
  }
})

test('the same inputs give bit-identical outputs (the outputHash is reproducible)', async () => {
  const { test: held } = splitDataset(await readDigitsDataset(), DIGITS_RECIPE.split)
  const inputs = { input: createTensor('float32', [5, 64], held.features.slice(0, 5 * 64)) }
  const first = await rt.run(digits.cid, inputs)
  const second = await rt.run(digits.cid, inputs)
  assert.equal(toHex(hashTensorMap(first.outputs)), toHex(hashTensorMap(second.outputs)))
  const other = new OnnxRuntime({ executionProvider: 'cpu' })
  try {
    await other.load(digits.cid, digits.bytes)
    const third = await other.run(digits.cid, inputs)
    assert.equal(toHex(hashTensorMap(third.outputs)), toHex(hashTensorMap(first.outputs)))
  } finally {
    await other.close()
  }
})

test('inputs that do not fit the model are refused before ONNX Runtime sees them', async () => {
  const wrongShape = { input: createTensor('float32', [1, 63], new Float32Array(63)) }
  await assert.rejects(rt.run(digits.cid, wrongShape), (err: unknown) => {
    assert.ok(err instanceof TensorSchemaError)
    assert.equal((err as Error).message, 'input "input": expected float32 [N,64], got float32 [1,63]')
    return true
  })
  const wrongType = { input: createTensor('int32', [1, 64], new Int32Array(64)) }
  await assert.rejects(rt.run(digits.cid, wrongType), /expected float32 \[N,64\], got int32 \[1,64\]/)
  const wrongName = { pixels: createTensor('float32', [1, 64], new Float32Array(64)) }
  await assert.rejects(rt.run(digits.cid, wrongName), /unknown input "pixels"/)
  await assert.rejects(rt.run(digits.cid, {}), /missing input "input"/)
  await assert.rejects(rt.run(digits.cid, { ...pixels(1), extra: pixels(1).input! }), TensorSchemaError)
})

test('load refuses bytes that do not hash to the CID, and caches nothing', async () => {
  const fresh = new OnnxRuntime({ executionProvider: 'cpu' })
  try {
    await assert.rejects(fresh.load(digits.cid, chars.bytes), ModelCidMismatchError)
    const tampered = digits.bytes.slice()
    tampered[tampered.length - 1]! ^= 1
    await assert.rejects(fresh.load(digits.cid, tampered), (err: unknown) => {
      assert.ok(err instanceof ModelCidMismatchError && err instanceof InvalidInputError)
      assert.equal((err as ModelCidMismatchError).code, 'MODEL_CID_MISMATCH')
      return true
    })
    assert.equal(fresh.has(digits.cid), false)
    await assert.rejects(fresh.run(digits.cid, pixels(1)), ModelNotLoadedError)
    await assert.rejects(fresh.load('not-a-cid', digits.bytes), InvalidInputError)
    // Bytes that match their CID but are not a model: ONNX Runtime refuses them, nothing is cached.
    const junk = new TextEncoder().encode('not an onnx model')
    await assert.rejects(fresh.load(modelCid(junk), junk), ModelLoadError)
    assert.equal(fresh.has(modelCid(junk)), false)
  } finally {
    await fresh.close()
  }
})

test('sessions are cached per CID with an LRU bound', async () => {
  const small = new OnnxRuntime({ executionProvider: 'cpu', maxSessions: 1 })
  try {
    await Promise.all([small.load(digits.cid, digits.bytes), small.load(digits.cid, digits.bytes)])
    assert.ok(small.has(digits.cid))
    await small.load(chars.cid, chars.bytes)
    assert.ok(small.has(chars.cid))
    assert.equal(small.has(digits.cid), false, 'the least recently used session was closed')
    const spec = await readCharsSpec()
    const out = await small.run(chars.cid, charsInput(spec, ['the sea']))
    assert.deepEqual(out.outputs.probabilities!.dims, [1, spec.vocab.length])
  } finally {
    await small.close()
  }
})

test('a provider that cannot start falls back to the CPU, says so, and receipts name the CPU', async (t) => {
  // Justified skip: this test needs CUDA to fail to start; on a machine where it works there is
  // no fallback to observe (here, and in CI, the CUDA provider library is never installed).
  if (chooseExecutionProvider({ platform: process.platform }) === 'cuda') return t.skip('CUDA works on this machine') // justified above
  const lines: string[] = []
  const logger = createLogger({ level: 'warn', destination: { write: (line: string) => void lines.push(line) } })
  const cuda = new OnnxRuntime({ executionProvider: 'cuda', logger })
  try {
    assert.equal(cuda.ep, 'cuda')
    await cuda.load(digits.cid, digits.bytes)
    assert.equal(cuda.model(digits.cid)!.ep, 'cpu')
    assert.equal(cuda.ep, 'cpu')
    assert.equal((await cuda.run(digits.cid, pixels(1))).ep, 'cpu')
    const warning = lines.map((l) => JSON.parse(l)).find((l) => l.msg.includes('falling back to cpu'))
    assert.ok(warning, 'the fallback is logged')
    assert.equal(warning.component, 'donghae:inference:runtime')
  } finally {
    await cuda.close()
  }
})

test('calibration measures jobs per second and the median compute time', async () => {
  const c = await rt.calibrate(digits.cid, pixels(1), { durationMs: 30 })
  assert.ok(c.jobsPerSecond > 0 && Number.isFinite(c.jobsPerSecond))
  assert.ok(c.p50Micros >= 0)
  assert.equal(c.batch, 1)
  assert.ok(c.runs >= 3)
  const batched = await calibrate(rt, digits.cid, pixels(8), { durationMs: 0, minRuns: 2 })
  assert.deepEqual([batched.batch, batched.runs], [8, 2])
  const aborted = new AbortController()
  aborted.abort()
  await assert.rejects(rt.calibrate(digits.cid, pixels(1), { durationMs: 10, signal: aborted.signal }), /cancelled/)
})

test('the demo manifest matches what ONNX Runtime reads from the files', async () => {
  const models = await demoModels()
  const probe = new OnnxRuntime({ executionProvider: 'cpu' })
  try {
    for (const m of models) {
      // a language model is loaded with its folder's tokenizer and configs; its jobs are generations
      const files = m.kind === 'lm' ? await readLmFolder(dirname(m.file)) : undefined
      await probe.load(m.cid, new Uint8Array(await readFile(m.file)), files === undefined ? {} : { files })
      const info = probe.model(m.cid)!
      assert.deepEqual(info.inputs, m.inputs, m.name)
      assert.deepEqual(info.outputs, m.outputs, m.name)
      assert.equal(info.size, m.size)
    }
  } finally {
    await probe.close()
  }
})

test("inspect reads a model file's schema without caching a session", async () => {
  const probe = new OnnxRuntime({ executionProvider: 'cpu' })
  try {
    const schema = await probe.inspect(chars.bytes)
    assert.deepEqual(schema.inputs[0]!.dims, [null, 300])
    assert.equal(probe.has(chars.cid), false)
    await assert.rejects(probe.inspect(new TextEncoder().encode('nope')), ModelLoadError)
  } finally {
    await probe.close()
  }
})

test('a closed runtime refuses work', async () => {
  const closing = new OnnxRuntime({ executionProvider: 'cpu' })
  await closing.load(digits.cid, digits.bytes)
  await closing.close()
  assert.equal(closing.has(digits.cid), false)
  await assert.rejects(closing.run(digits.cid, pixels(1)), RuntimeClosedError)
  await assert.rejects(closing.load(digits.cid, digits.bytes), RuntimeClosedError)
})
