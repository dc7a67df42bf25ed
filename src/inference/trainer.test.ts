import { test } from 'node:test'
import assert from 'node:assert/strict'
import { equals } from '../core/bytes.ts'
import { AbortError, InvalidInputError } from '../core/errors.ts'
import { createRng, datasetSize, mlpTrainer, splitDataset, type Dataset, type MlpOptions } from './trainer.ts'
import { OnnxRuntime } from './runtime.ts'
import { modelCid } from './demo-models.ts'
import { createTensor } from './tensor.ts'

/** Two noisy 2-D blobs per class around the corners of a square: learnable, not linearly trivial. */
function blobs(count: number, seed: number): Dataset {
  const rng = createRng(seed)
  const centres = [
    [0, 0],
    [4, 4],
    [0, 4],
    [4, 0],
  ]
  const features = new Float32Array(count * 2)
  const labels = new Int32Array(count)
  for (let i = 0; i < count; i++) {
    const c = i % 4
    features[i * 2] = centres[c]![0]! + rng.normal() * 0.6
    features[i * 2 + 1] = centres[c]![1]! + rng.normal() * 0.6
    labels[i] = c % 2 // XOR-like: diagonal corners share a class
  }
  return { features, labels, featureCount: 2, classCount: 2 }
}

const tiny: MlpOptions = { hidden: [8], epochs: 30, batchSize: 16, learningRate: 0.02, seed: 42, inputScale: 0.25 }

test('the PRNG is seeded: same seed, same stream; different seed, different stream', () => {
  const a = createRng(7)
  const b = createRng(7)
  const xs = Array.from({ length: 5 }, () => a.next())
  assert.deepEqual(
    xs,
    Array.from({ length: 5 }, () => b.next()),
  )
  assert.notDeepEqual(
    xs,
    Array.from({ length: 5 }, () => createRng(8).next()),
  )
  assert.ok(xs.every((x) => x >= 0 && x < 1))
  // Pinned: mulberry32(7) must not change, or every demo model would retrain differently.
  assert.equal(createRng(7).next(), xs[0])
  assert.equal(Math.round(createRng(0).next() * 2 ** 32), 1144304738)
  assert.throws(() => createRng(1.5), InvalidInputError)
})

test('training is reproducible bit for bit, and the seed matters', async () => {
  const data = blobs(200, 1)
  const a = await mlpTrainer.train(data, tiny)
  const b = await mlpTrainer.train(data, tiny)
  assert.deepEqual(a, b)
  assert.ok(equals(mlpTrainer.exportOnnx(a), mlpTrainer.exportOnnx(b)), 'same weights, same ONNX bytes, same CID')
  const c = await mlpTrainer.train(data, { ...tiny, seed: 43 })
  assert.notDeepEqual(a.layers[0]!.weight, c.layers[0]!.weight)
})

test('the MLP learns a problem no linear model can (XOR of blobs)', async () => {
  const { train, test: held } = splitDataset(blobs(400, 2), { seed: 3, testFraction: 0.25 })
  const losses: number[] = []
  const weights = await mlpTrainer.train(
    train,
    { ...tiny, epochs: 60 },
    { onEpoch: (_, loss) => void losses.push(loss) },
  )
  assert.equal(losses.length, 60)
  assert.ok(losses.at(-1)! < losses[0]!, 'the loss went down')
  assert.ok(mlpTrainer.evaluate(weights, held).accuracy >= 0.95)
})

test('fine-tuning starts from given weights; bad shapes and options are refused', async () => {
  const data = blobs(100, 4)
  const start = await mlpTrainer.train(data, { ...tiny, epochs: 0 })
  const zero = await mlpTrainer.train(data, { ...tiny, epochs: 0, initial: start })
  assert.deepEqual(zero, start)
  await assert.rejects(mlpTrainer.train(data, { ...tiny, hidden: [4], initial: start }), /initial weights have widths/)
  await assert.rejects(mlpTrainer.train(data, { ...tiny, batchSize: 0 }), InvalidInputError)
  await assert.rejects(mlpTrainer.train({ ...data, labels: data.labels.map(() => 5) }, tiny), /labels must be in 0..1/)
  const abort = new AbortController()
  abort.abort()
  await assert.rejects(mlpTrainer.train(data, tiny, { signal: abort.signal }), AbortError)
})

test('splitDataset is seeded and stratified', () => {
  const data = blobs(100, 5)
  const a = splitDataset(data, { seed: 9 })
  const b = splitDataset(data, { seed: 9 })
  assert.deepEqual(a, b)
  assert.equal(datasetSize(a.test), 20)
  assert.equal(datasetSize(a.train) + datasetSize(a.test), 100)
  assert.equal(a.test.labels.filter((y) => y === 0).length, 10)
  assert.notDeepEqual(splitDataset(data, { seed: 10 }).test, a.test)
})

test('the exported ONNX graph computes what the trainer computes (SGD too)', async () => {
  const data = blobs(120, 6)
  const weights = await mlpTrainer.train(data, {
    ...tiny,
    hidden: [6, 5],
    optimizer: 'sgd',
    learningRate: 0.05,
    l2: 1e-3,
  })
  const bytes = mlpTrainer.exportOnnx(weights, { inputName: 'x', outputName: 'p' })
  const rt = new OnnxRuntime({ executionProvider: 'cpu' })
  try {
    const cid = modelCid(bytes)
    await rt.load(cid, bytes)
    assert.deepEqual(rt.model(cid)!.inputs, [{ name: 'x', type: 'float32', dims: [null, 2] }])
    const rows = 16
    const features = data.features.slice(0, rows * 2)
    const { outputs } = await rt.run(cid, { x: createTensor('float32', [rows, 2], features) })
    const expected = mlpTrainer.predict(weights, features)
    const got = outputs.p!.data as Float32Array
    assert.equal(got.length, expected.length)
    got.forEach((v, i) => assert.ok(Math.abs(v - expected[i]!) < 1e-5, `value ${i}: ${v} vs ${expected[i]}`))
  } finally {
    await rt.close()
  }
})
