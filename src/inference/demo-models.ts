/**
 * The two demo models trained in this repository (`models/`), their training recipes, their data
 * readers, and their registry entries.
 *
 *   digits-mlp  tensor  input float32 [N,64] raw 8×8 pixels 0-16 -> probabilities float32 [N,10]
 *   chars-mlp   text    input float32 [N,context×vocab] one-hot -> probabilities float32 [N,vocab]
 *
 * The recipes live here (not in the training scripts) so the scripts and the tests that check
 * the checked-in files use the very same split and settings.
 */
import { blobCid } from './blobs.ts'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { gunzip } from 'node:zlib'
import { parseCid, unixfsCid, verifyFileCid } from '../core/cid.ts'
import { LM_FILES, LM_INPUTS, LM_OUTPUTS, type LmFiles } from './lm/types.ts'
import { LM_TOLERANCE, contextLengthOf } from './lm/tokenizer.ts'
import { InvalidInputError } from '../core/errors.ts'
import { parseCharsSpec, type CharsModelSpec } from './chars.ts'
import type { Dataset, MlpOptions, SplitOptions } from './trainer.ts'
import type { Tolerance } from './tensor.ts'

const gunzipAsync = promisify(gunzip)

/** The repository's `models/` folder. */
export const DEMO_MODELS_DIR = fileURLToPath(new URL('../../models/', import.meta.url))

export const DIGITS_FEATURES = 64
export const DIGITS_CLASSES = 10
const DIGITS_MAX_PIXEL = 16

/** How `models/train-digits.ts` trains `digits-mlp.onnx`. */
export const DIGITS_RECIPE: { data: string; split: SplitOptions; mlp: MlpOptions } = {
  data: 'data/digits.csv.gz',
  split: { seed: 20_240, testFraction: 0.2 },
  mlp: {
    hidden: [32],
    epochs: 60,
    batchSize: 32,
    learningRate: 0.003,
    optimizer: 'adam',
    l2: 1e-4,
    seed: 1,
    inputScale: 1 / DIGITS_MAX_PIXEL,
  },
}

/** How `models/train-chars.ts` trains `chars-mlp.onnx`. */
export const CHARS_RECIPE: { text: string; context: number; mlp: MlpOptions } = {
  text: 'data/east-sea.txt',
  context: 10,
  mlp: { hidden: [128], epochs: 40, batchSize: 32, learningRate: 0.003, optimizer: 'adam', seed: 2 },
}

/**
 * Cross-execution-provider tolerance of both demo models: outputs are probabilities in [0, 1];
 * fp32 CPU and CUDA agree to ~1e-6, CoreML may compute in fp16 (~1e-3 relative on the logits),
 * so 0.01 absolute with the same top-1 class (near-ties excepted, see `compareTensors`).
 */
export const DEMO_TOLERANCE: Readonly<Tolerance> = Object.freeze({ maxAbsPpm: 10_000, top1: true })

/** Reads `models/data/digits.csv.gz` (64 pixels 0-16 then the label, one row per image). */
export async function readDigitsDataset(options: { path?: string; signal?: AbortSignal } = {}): Promise<Dataset> {
  const path = options.path ?? join(DEMO_MODELS_DIR, DIGITS_RECIPE.data)
  const csv = (await gunzipAsync(await readFile(path, { signal: options.signal }))).toString('utf8')
  const rows = csv.split('\n').filter((line) => line.length > 0)
  const features = new Float32Array(rows.length * DIGITS_FEATURES)
  const labels = new Int32Array(rows.length)
  rows.forEach((line, r) => {
    const values = line.split(',').map(Number)
    if (values.length !== DIGITS_FEATURES + 1 || values.some((v) => !Number.isInteger(v) || v < 0 || v > 16))
      throw new InvalidInputError(`${path} line ${r + 1}: expected 64 pixels 0-16 and a label`)
    const label = values[DIGITS_FEATURES]!
    if (label >= DIGITS_CLASSES) throw new InvalidInputError(`${path} line ${r + 1}: label ${label} is not a digit`)
    features.set(values.slice(0, DIGITS_FEATURES), r * DIGITS_FEATURES)
    labels[r] = label
  })
  return { features, labels, featureCount: DIGITS_FEATURES, classCount: DIGITS_CLASSES }
}

/** The companion JSON of the chars model, validated. */
export async function readCharsSpec(options: { path?: string; signal?: AbortSignal } = {}): Promise<CharsModelSpec> {
  const path = options.path ?? join(DEMO_MODELS_DIR, 'chars-mlp.json')
  const text = await readFile(path, { encoding: 'utf8', signal: options.signal })
  return parseCharsSpec(JSON.parse(text))
}

/** A registry entry for a demo model (the fields of `inference.registerModel`, less the price). */
export interface DemoModel {
  name: string
  version: string
  kind: 'tensor' | 'text' | 'lm'
  /** Absolute path of the ONNX file. */
  file: string
  /** CIDv1, raw codec, sha2-256 of the file bytes. */
  cid: string
  /** File size, bytes. */
  size: number
  inputs: { name: string; type: string; dims: (number | null)[] }[]
  outputs: { name: string; type: string; dims: (number | null)[] }[]
  tolerance: Tolerance
  description: string
  /** Text models only: the tokenizer (see chars.ts). */
  text?: CharsModelSpec
  /** Text models only: CID of the tokenizer's JSON file (`<name>.json`), registered with the model. */
  codec?: string
  /** Language models only: the folder's tokenizer and config files by name -> CID, and the context window. */
  files?: Record<string, string>
  contextLength?: number
}

/** The demo language model's folder (models/lm, trained by models/train-lm.py). */
export const DEMO_LM_DIR = 'lm'
/** Its registry name. */
export const DEMO_LM_NAME = 'moby-lm'

/** The demo language model's entry; undefined when its folder is absent. */
async function lmEntry(dir: string, signal?: AbortSignal): Promise<DemoModel | undefined> {
  const folder = join(dir, DEMO_LM_DIR)
  let graph: Uint8Array
  try {
    graph = new Uint8Array(await readFile(join(folder, 'model.onnx'), { signal }))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  const files: Record<string, string> = {}
  const contents: LmFiles = {}
  for (const name of LM_FILES) {
    let bytes: Uint8Array
    try {
      bytes = new Uint8Array(await readFile(join(folder, name), { signal }))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
      throw err
    }
    contents[name] = bytes
    files[name] = (await unixfsCid(bytes)).toString()
  }
  return {
    name: DEMO_LM_NAME,
    version: '1',
    kind: 'lm',
    file: join(folder, 'model.onnx'),
    cid: (await unixfsCid(graph)).toString(),
    size: graph.length,
    inputs: LM_INPUTS.map((t) => ({ ...t, dims: [...t.dims] })),
    outputs: LM_OUTPUTS.map((t) => ({ ...t, dims: [...t.dims] })),
    tolerance: { ...LM_TOLERANCE },
    description: 'Small GPT-style language model trained on Moby-Dick (models/README.md), with a chat template',
    files,
    contextLength: contextLengthOf(contents),
  }
}

/** The CID Donghae gives a model file: CIDv1, raw codec, sha2-256 (a blob's CID, see blobs.ts). */
export const modelCid = blobCid

async function entry(
  dir: string,
  fields: Omit<DemoModel, 'file' | 'cid' | 'size'>,
  signal?: AbortSignal,
): Promise<DemoModel> {
  const file = join(dir, `${fields.name}.onnx`)
  const bytes = await readFile(file, { signal })
  return { ...fields, file, cid: modelCid(bytes), size: bytes.length }
}

/**
 * Registry entries for the demo models, with CIDs computed from the files in `dir`
 * (default: the repository's `models/`). Plain JSON values, ready to serialise.
 */
export async function demoModels(options: { dir?: string; signal?: AbortSignal } = {}): Promise<DemoModel[]> {
  const dir = options.dir ?? DEMO_MODELS_DIR
  const text = await readCharsSpec({ path: join(dir, 'chars-mlp.json'), signal: options.signal })
  const width = text.context * text.vocab.length
  const digits = await entry(
    dir,
    {
      name: 'digits-mlp',
      version: '1',
      kind: 'tensor',
      inputs: [{ name: 'input', type: 'float32', dims: [null, DIGITS_FEATURES] }],
      outputs: [{ name: 'probabilities', type: 'float32', dims: [null, DIGITS_CLASSES] }],
      tolerance: { ...DEMO_TOLERANCE },
      description:
        'Handwritten digit classifier: 8×8 images, raw pixel counts 0\u201316 row by row \u2192 10 probabilities',
    },
    options.signal,
  )
  const chars = await entry(
    dir,
    {
      name: 'chars-mlp',
      version: '1',
      kind: 'text',
      inputs: [{ name: text.inputName, type: 'float32', dims: [null, width] }],
      outputs: [{ name: text.outputName, type: 'float32', dims: [null, text.vocab.length] }],
      tolerance: { ...DEMO_TOLERANCE },
      description: `Character-level text model: one-hot of the last ${text.context} characters \u2192 next-character probabilities`,
      text,
      codec: blobCid(new Uint8Array(await readFile(join(dir, 'chars-mlp.json'), { signal: options.signal }))),
    },
    options.signal,
  )
  const lm = await lmEntry(dir, options.signal)
  return lm === undefined ? [digits, chars] : [digits, chars, lm]
}

/** Reads a demo model's file and checks it still hashes to its CID. */
export async function readDemoModel(
  model: Pick<DemoModel, 'file' | 'cid'>,
  options: { signal?: AbortSignal } = {},
): Promise<Uint8Array> {
  const bytes = new Uint8Array(await readFile(model.file, { signal: options.signal }))
  if (!(await verifyFileCid(parseCid(model.cid), bytes)))
    throw new InvalidInputError(`${model.file} does not hash to ${model.cid}; retrain or refresh the manifest`)
  return bytes
}
