// The arena's deterministic evaluator: validation sets round-trip and open against their
// commitment; an exported MLP reads back bit for bit; other graphs are refused.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { toHex } from '../core/bytes.ts'
import { buildOnnxModel } from '../inference/onnx-export.ts'
import { createRng, mlpTrainer, type Dataset } from '../inference/trainer.ts'
import { CommitmentMismatchError, UnsupportedModelError } from './errors.ts'
import {
  accuracyPpm,
  decodeValidationSet,
  encodeValidationSet,
  mlpFromOnnx,
  openValidationSet,
  scoreWeights,
  validationCommit,
} from './evaluate.ts'

function blobs(seed: number, n = 120): Dataset {
  const rng = createRng(seed)
  const features = new Float32Array(n * 4)
  const labels = new Int32Array(n)
  for (let i = 0; i < n; i++) {
    const c = rng.int(3)
    labels[i] = c
    for (let j = 0; j < 4; j++) features[i * 4 + j] = (j === c ? 2 : 0) + rng.normal() * 0.3
  }
  return { features, labels, featureCount: 4, classCount: 3 }
}

test('validation sets: encode, decode, open against the commitment', () => {
  const d = blobs(1)
  const bytes = encodeValidationSet(d)
  assert.deepEqual(decodeValidationSet(bytes), d)
  assert.deepEqual(openValidationSet(bytes, toHex(validationCommit(bytes))), d)
  assert.throws(() => openValidationSet(bytes, '00'.repeat(32)), CommitmentMismatchError)
})

test('an exported MLP reads back exactly and scores the same as the trainer', async () => {
  const d = blobs(2)
  const weights = await mlpTrainer.train(d, { hidden: [8], epochs: 30, seed: 3, inputScale: 0.5, learningRate: 0.01 })
  const back = mlpFromOnnx(mlpTrainer.exportOnnx(weights))
  assert.deepEqual(back, weights)
  const ppm = scoreWeights(mlpTrainer.exportOnnx(weights), d)
  assert.equal(ppm, accuracyPpm(weights, d))
  const correct = Math.round(mlpTrainer.evaluate(weights, d).accuracy * d.labels.length)
  assert.equal(ppm, Math.floor((correct * 1_000_000) / d.labels.length))
  assert.ok(ppm > 500_000, `accuracy ${ppm}`)
})

test('graphs that are not a plain MLP are refused', () => {
  assert.throws(() => mlpFromOnnx(new Uint8Array([1, 2, 3, 4, 5])), UnsupportedModelError)
  const odd = buildOnnxModel({
    name: 'odd',
    inputs: [{ name: 'input', dims: ['N', 2] }],
    outputs: [{ name: 'probabilities', dims: ['N', 2] }],
    initializers: [
      { name: 'w0', dims: [2, 2], data: new Float32Array(4) },
      { name: 'b0', dims: [2], data: new Float32Array(2) },
    ],
    nodes: [
      { op: 'MatMul', inputs: ['input', 'w0'], outputs: ['m'] },
      { op: 'Add', inputs: ['m', 'b0'], outputs: ['a'] },
      { op: 'Sigmoid', inputs: ['a'], outputs: ['probabilities'] },
    ],
  })
  assert.throws(() => mlpFromOnnx(odd), UnsupportedModelError)
})
