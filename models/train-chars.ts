/**
 * Trains the character-level text model and writes models/chars-mlp.onnx and
 * models/chars-mlp.json (the tokenizer the text API reads: vocab, context, encoding).
 *
 *   node models/train-chars.ts
 *
 * Reproducible: the recipe is CHARS_RECIPE in src/inference/demo-models.ts. Prints a JSON
 * summary on stdout, including a greedy sample.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as prettier from 'prettier'
import { buildCharsSpec, charsDataset, greedyChar, normalizeText, charsInput } from '../src/inference/chars.ts'
import { CHARS_RECIPE, DEMO_MODELS_DIR, modelCid } from '../src/inference/demo-models.ts'
import { datasetSize, mlpTrainer, type MlpWeights } from '../src/inference/trainer.ts'
import type { CharsModelSpec } from '../src/inference/chars.ts'

const round = (x: number): number => Math.round(x * 10_000) / 10_000

/** Writes JSON as the repository's Prettier settings format it, so `npm run format:check` stays clean. */
async function writeJson(path: string, value: unknown): Promise<void> {
  const options = { ...(await prettier.resolveConfig(path)), parser: 'json' }
  await writeFile(path, await prettier.format(JSON.stringify(value), options))
}

/** Greedy continuation with the JS forward pass (the ONNX file computes the same function). */
function sample(spec: CharsModelSpec, weights: MlpWeights, prompt: string, length: number): string {
  let text = normalizeText(spec, prompt)
  for (let i = 0; i < length; i++) {
    const input = charsInput(spec, [text])[spec.inputName]!
    text += greedyChar(spec, mlpTrainer.predict(weights, input.data as Float32Array))
  }
  return text
}

const started = performance.now()
const corpus = await readFile(join(DEMO_MODELS_DIR, CHARS_RECIPE.text), 'utf8')
const spec = buildCharsSpec(corpus, CHARS_RECIPE.context)
const data = charsDataset(spec, corpus)
const weights = await mlpTrainer.train(data, CHARS_RECIPE.mlp)
const trainingSeconds = (performance.now() - started) / 1000
const score = mlpTrainer.evaluate(weights, data)

const width = spec.context * spec.vocab.length
const bytes = mlpTrainer.exportOnnx(weights, {
  graphName: 'chars_mlp',
  docString: `Character-level text model. Input: float32 [N,${width}], one-hot of the last ${spec.context} characters (see chars-mlp.json). Output: float32 [N,${spec.vocab.length}] next-character probabilities.`,
  metadata: { data: 'models/data/east-sea.txt, written for Donghae, CC0 1.0' },
})
const cid = modelCid(bytes)
await writeFile(join(DEMO_MODELS_DIR, 'chars-mlp.onnx'), bytes)

const prompt = 'The sea is '
const companion = {
  name: 'chars-mlp',
  version: '1',
  file: 'chars-mlp.onnx',
  cid,
  ...spec,
  input: { name: spec.inputName, type: 'float32', dims: [null, width] },
  output: { name: spec.outputName, type: 'float32', dims: [null, spec.vocab.length] },
  normalize: 'lowercase; any character not in vocab becomes a space (whitespace too); runs of spaces collapse to one',
  encoding:
    'take the last `context` characters of the normalized text, left-padded with `padding`; input[p * vocab.length + vocab.indexOf(char)] = 1 for the character at position p (p = 0 is the oldest), 0 elsewhere',
  decoding:
    'output row = one probability per vocab entry; greedy decoding appends vocab[argmax] (lowest index on ties)',
  source: { text: CHARS_RECIPE.text, licence: 'CC0-1.0', author: 'written for Donghae' },
  recipe: CHARS_RECIPE,
  results: {
    examples: datasetSize(data),
    trainAccuracy: round(score.accuracy),
    trainLoss: round(score.loss),
    sample: { prompt, continuation: sample(spec, weights, prompt, 80).slice(normalizeText(spec, prompt).length) },
  },
}
await writeJson(join(DEMO_MODELS_DIR, 'chars-mlp.json'), companion)
console.log(
  JSON.stringify(
    {
      name: companion.name,
      cid,
      size: bytes.length,
      vocab: spec.vocab.length,
      context: spec.context,
      ...companion.results,
      trainingSeconds: round(trainingSeconds),
    },
    null,
    2,
  ),
)
