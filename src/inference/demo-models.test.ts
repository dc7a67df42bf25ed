// The checked-in demo models (models/*.onnx), run in the real ONNX Runtime.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DAG_PB_CODE, parseCid, RAW_CODE, unixfsCid } from '../core/cid.ts'
import { charsDataset, charsInput, generateText, normalizeText } from './chars.ts'
import {
  CHARS_RECIPE,
  DEMO_LM_NAME,
  DEMO_MODELS_DIR,
  DIGITS_RECIPE,
  demoModels,
  readCharsSpec,
  readDemoModel,
  readDigitsDataset,
  type DemoModel,
} from './demo-models.ts'
import { OnnxRuntime } from './runtime.ts'
import { LM_TOLERANCE } from './lm/tokenizer.ts'
import { blobCid } from './blobs.ts'
import { TextCodec } from './text.ts'
import { createTensor } from './tensor.ts'
import { datasetSize, splitDataset } from './trainer.ts'

let models: DemoModel[]
let rt: OnnxRuntime

const byName = (name: string): DemoModel => models.find((m) => m.name === name)!

before(async () => {
  models = await demoModels()
  rt = new OnnxRuntime({ executionProvider: 'cpu' })
  for (const m of models) await rt.load(m.cid, await readDemoModel(m))
})

after(() => rt.close())

test('the manifest lists the three models with the UnixFS CIDs of their files', async () => {
  assert.deepEqual(
    models.map((m) => [m.name, m.kind, m.version]),
    [
      ['digits-mlp', 'tensor', '1'],
      ['chars-mlp', 'text', '1'],
      [DEMO_LM_NAME, 'lm', '1'],
    ],
  )
  for (const m of models) {
    const bytes = new Uint8Array(await readFile(m.file))
    assert.equal(m.size, bytes.length)
    assert.equal(m.cid, (await unixfsCid(bytes)).toString(), `${m.name}: the CID ipfs add --raw-leaves gives`)
    if (m.kind === 'lm') {
      assert.equal(parseCid(m.cid).code, DAG_PB_CODE, 'a file over one chunk has a dag-pb root')
      assert.deepEqual(m.tolerance, { ...LM_TOLERANCE })
      assert.ok(m.files?.['tokenizer.json'] !== undefined && m.files['tokenizer_config.json'] !== undefined)
      assert.equal(m.contextLength, 256)
      continue
    }
    // files of one chunk keep the raw CID of their bytes
    assert.equal(parseCid(m.cid).code, RAW_CODE)
    assert.deepEqual(m.tolerance, { maxAbsPpm: 10_000, top1: true })
    // The training reports name the same file.
    const report = JSON.parse(await readFile(join(DEMO_MODELS_DIR, `${m.name}.json`), 'utf8'))
    assert.equal(report.cid, m.cid, `${m.name}.json is stale: retrain with node models/train-*.ts`)
  }
  assert.deepEqual(JSON.parse(JSON.stringify(models)), models, 'plain JSON values')
})

test('digits-mlp: ≥ 95% accuracy on the held-out split, rows are probabilities', async () => {
  const { train, test: held } = splitDataset(await readDigitsDataset(), DIGITS_RECIPE.split)
  assert.equal(datasetSize(train) + datasetSize(held), 1797)
  const n = datasetSize(held)
  const { outputs } = await rt.run(byName('digits-mlp').cid, {
    input: createTensor('float32', [n, 64], held.features),
  })
  const p = outputs.probabilities!
  assert.deepEqual(p.dims, [n, 10])
  let correct = 0
  for (let r = 0; r < n; r++) {
    const row = [...(p.data as Float32Array).subarray(r * 10, r * 10 + 10)]
    assert.ok(row.every((v) => v >= 0 && v <= 1))
    assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5, `row ${r} sums to 1`)
    if (row.indexOf(Math.max(...row)) === held.labels[r]) correct++
  }
  const accuracy = correct / n
  assert.ok(accuracy >= 0.95, `test accuracy ${accuracy}`)
  const report = JSON.parse(await readFile(join(DEMO_MODELS_DIR, 'digits-mlp.json'), 'utf8'))
  assert.ok(Math.abs(report.results.testAccuracy - accuracy) < 1e-3, 'ONNX Runtime agrees with the training report')
})

test('chars-mlp: greedy generation gives text in the vocabulary, as the training run did', async () => {
  const spec = await readCharsSpec()
  const model = byName('chars-mlp')
  assert.deepEqual(model.text, spec)
  assert.equal(spec.context, CHARS_RECIPE.context)
  const run = async (inputs: Parameters<OnnxRuntime['run']>[1]) => (await rt.run(model.cid, inputs)).outputs
  const generated = await generateText(run, spec, 'The sea is ', 80)
  assert.equal([...generated].length, 80)
  assert.ok([...generated].every((c) => spec.vocab.includes(c)))
  const report = JSON.parse(await readFile(join(DEMO_MODELS_DIR, 'chars-mlp.json'), 'utf8'))
  assert.equal(generated, report.results.sample.continuation)
  // Odd prompts are normalized, not refused.
  assert.equal(normalizeText(spec, 'HÉLLO\tworld!!  ok'), 'h llo world ok')
  const out = await generateText(run, spec, '', 5)
  assert.equal([...out].length, 5)
})

test('chars encoding: one-hot, oldest character first, left-padded', async () => {
  const spec = await readCharsSpec()
  const width = spec.vocab.length
  const input = charsInput(spec, ['ab'])[spec.inputName]!
  assert.deepEqual(input.dims, [1, spec.context * width])
  const hot = [...(input.data as Float32Array)].flatMap((v, i) => (v === 1 ? [i] : []))
  const expected = [...Array<string>(spec.context - 2).fill(spec.padding), 'a', 'b'].map(
    (c, p) => p * width + spec.vocab.indexOf(c),
  )
  assert.deepEqual(hot, expected)
  const data = charsDataset(spec, 'ab')
  assert.equal(datasetSize(data), 2)
  assert.deepEqual([...data.labels], [spec.vocab.indexOf('a'), spec.vocab.indexOf('b')])
})

test('readDemoModel refuses a file that no longer matches its CID', async () => {
  const digits = byName('digits-mlp')
  await assert.rejects(readDemoModel({ ...digits, cid: byName('chars-mlp').cid }), /does not hash to/)
})

test('chars-mlp registers its tokenizer by CID; the codec reads it back and refuses one for another model', async () => {
  const chars = byName('chars-mlp')
  const json = new Uint8Array(await readFile(join(DEMO_MODELS_DIR, 'chars-mlp.json')))
  assert.equal(chars.codec, blobCid(json))
  assert.equal(byName('digits-mlp').codec, undefined)
  const codec = TextCodec.fromJson(json, chars.cid)
  assert.deepEqual(codec.spec, await readCharsSpec())
  assert.throws(() => TextCodec.fromJson(json, byName('digits-mlp').cid), /names model/)
  assert.throws(() => TextCodec.fromJson(new TextEncoder().encode('{"vocab":'), chars.cid), /not JSON/)
  assert.throws(() => TextCodec.fromJson(new TextEncoder().encode('{"vocab":["a"]}'), chars.cid), /vocab/)
})
