/**
 * Trains the digits classifier and writes models/digits-mlp.onnx and models/digits-mlp.json.
 *
 *   node models/train-digits.ts
 *
 * Reproducible: the recipe (split seed, weight seed, epochs...) is DIGITS_RECIPE in
 * src/inference/demo-models.ts, and the same recipe gives the same bytes, hence the same CID.
 * Prints a JSON summary on stdout.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as prettier from 'prettier'
import { DEMO_MODELS_DIR, DIGITS_RECIPE, modelCid, readDigitsDataset } from '../src/inference/demo-models.ts'
import { datasetSize, mlpTrainer, splitDataset } from '../src/inference/trainer.ts'

const round = (x: number): number => Math.round(x * 10_000) / 10_000

/** Writes JSON as the repository's Prettier settings format it, so `npm run format:check` stays clean. */
async function writeJson(path: string, value: unknown): Promise<void> {
  const options = { ...(await prettier.resolveConfig(path)), parser: 'json' }
  await writeFile(path, await prettier.format(JSON.stringify(value), options))
}

const started = performance.now()
const { train, test } = splitDataset(await readDigitsDataset(), DIGITS_RECIPE.split)
const weights = await mlpTrainer.train(train, DIGITS_RECIPE.mlp)
const trainingSeconds = (performance.now() - started) / 1000
const trainScore = mlpTrainer.evaluate(weights, train)
const testScore = mlpTrainer.evaluate(weights, test)

const bytes = mlpTrainer.exportOnnx(weights, {
  graphName: 'digits_mlp',
  docString:
    'Handwritten digits (UCI optdigits test set via scikit-learn). Input: float32 [N,64], 8x8 pixel counts 0-16 row by row. Output: float32 [N,10] class probabilities.',
  metadata: { data: 'UCI Optical Recognition of Handwritten Digits, CC BY 4.0, doi:10.24432/C50P49' },
})
const cid = modelCid(bytes)
await writeFile(join(DEMO_MODELS_DIR, 'digits-mlp.onnx'), bytes)

const results = {
  trainExamples: datasetSize(train),
  testExamples: datasetSize(test),
  trainAccuracy: round(trainScore.accuracy),
  testAccuracy: round(testScore.accuracy),
  testLoss: round(testScore.loss),
}
const report = {
  name: 'digits-mlp',
  version: '1',
  cid,
  size: bytes.length,
  input: { name: 'input', type: 'float32', dims: [null, 64], values: 'raw pixel counts 0-16, row by row' },
  output: { name: 'probabilities', type: 'float32', dims: [null, 10] },
  recipe: DIGITS_RECIPE,
  results,
}
await writeJson(join(DEMO_MODELS_DIR, 'digits-mlp.json'), report)
console.log(JSON.stringify({ ...report, recipe: undefined, trainingSeconds: round(trainingSeconds) }, null, 2))
