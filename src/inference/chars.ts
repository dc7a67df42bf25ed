/**
 * The character-level text model's tokenizer: how text becomes the model's input tensor and how
 * its output becomes the next character. The model file's companion JSON (`chars-mlp.json`)
 * carries the `CharsModelSpec`; everything here follows from it:
 *
 *  1. normalize: lowercase; any character outside `vocab` becomes a space; runs of spaces collapse.
 *  2. take the last `context` characters, left-padded with `padding` when the text is shorter.
 *  3. one-hot: input[p × vocab.length + vocab.indexOf(c)] = 1 for the character c at position p
 *     (p = 0 is the oldest); every other value is 0. Shape [1, context × vocab.length] per text.
 *  4. the output row is a probability per vocab entry; greedy decoding takes the arg-max
 *     (the lowest index on ties) and appends it.
 */
import { AbortError, InvalidInputError } from '../core/errors.ts'
import type { Dataset } from './trainer.ts'
import type { Tensor, TensorMap } from './tensor.ts'

export interface CharsModelSpec {
  /** Characters the model knows, one per output class; index = class. */
  vocab: string[]
  /** How many previous characters the model sees. */
  context: number
  /** The character that stands for "before the start of the text". */
  padding: string
  inputName: string
  outputName: string
}

const MAX_CONTEXT = 256
const MAX_VOCAB = 256

/** Builds a spec whose vocabulary is every character of the normalized `text` plus a-z and the padding. */
export function buildCharsSpec(text: string, context: number, padding = ' '): CharsModelSpec {
  const chars = new Set([...collapse(text.toLowerCase()), ...'abcdefghijklmnopqrstuvwxyz', padding])
  return { vocab: [...chars].sort(), context, padding, inputName: 'input', outputName: 'probabilities' }
}

function collapse(text: string): string {
  return text.replace(/\s+/g, ' ').trim()
}

/** Validates a spec read from JSON. Throws `InvalidInputError`. */
export function parseCharsSpec(raw: unknown): CharsModelSpec {
  if (raw === null || typeof raw !== 'object') throw new InvalidInputError('a chars model spec must be an object')
  const r = raw as Record<string, unknown>
  const vocab = r.vocab
  if (!Array.isArray(vocab) || vocab.length < 2 || vocab.length > MAX_VOCAB)
    throw new InvalidInputError(`vocab must be a list of 2-${MAX_VOCAB} characters`)
  if (vocab.some((c) => typeof c !== 'string' || [...c].length !== 1) || new Set(vocab).size !== vocab.length)
    throw new InvalidInputError('vocab entries must be distinct single characters')
  const { context, padding } = r
  if (typeof context !== 'number' || !Number.isSafeInteger(context) || context < 1 || context > MAX_CONTEXT)
    throw new InvalidInputError(`context must be an integer in 1..${MAX_CONTEXT}`)
  if (typeof padding !== 'string' || !vocab.includes(padding)) throw new InvalidInputError('padding must be in vocab')
  const inputName = typeof r.inputName === 'string' ? r.inputName : 'input'
  const outputName = typeof r.outputName === 'string' ? r.outputName : 'probabilities'
  return { vocab: [...(vocab as string[])], context, padding, inputName, outputName }
}

/** Step 1: lowercase, unknown characters to spaces (or the padding), collapse runs of spaces. */
export function normalizeText(spec: CharsModelSpec, text: string): string {
  const known = new Set(spec.vocab)
  const fallback = known.has(' ') ? ' ' : spec.padding
  const mapped = [...text.toLowerCase()].map((c) => (known.has(c) ? c : /\s/.test(c) ? ' ' : fallback)).join('')
  return known.has(' ') ? mapped.replace(/ {2,}/g, ' ') : mapped
}

/** Steps 2-3 for one (already normalized) text, written into `out` at `offset`. */
function writeOneHot(spec: CharsModelSpec, text: string, out: Float32Array, offset: number): void {
  const chars = [...text].slice(-spec.context)
  const padded = [...Array<string>(spec.context - chars.length).fill(spec.padding), ...chars]
  const width = spec.vocab.length
  padded.forEach((c, p) => {
    const index = spec.vocab.indexOf(c)
    if (index < 0) throw new InvalidInputError(`character ${JSON.stringify(c)} is not in the vocabulary`)
    out[offset + p * width + index] = 1
  })
}

/** The model input for a batch of texts: float32 [texts.length, context × vocab.length]. */
export function charsInput(spec: CharsModelSpec, texts: readonly string[]): TensorMap {
  const width = spec.context * spec.vocab.length
  const data = new Float32Array(texts.length * width)
  texts.forEach((t, i) => writeOneHot(spec, normalizeText(spec, t), data, i * width))
  const tensor: Tensor = { type: 'float32', dims: [texts.length, width], data }
  return { [spec.inputName]: tensor }
}

/** Step 4: the arg-max character of output row `row`. */
export function greedyChar(spec: CharsModelSpec, probabilities: Float32Array, row = 0): string {
  const width = spec.vocab.length
  let best = 0
  for (let j = 1; j < width; j++) if (probabilities[row * width + j]! > probabilities[row * width + best]!) best = j
  return spec.vocab[best]!
}

/** What `generateText` needs: run the model on inputs, return its outputs. */
export type RunModel = (inputs: TensorMap) => Promise<TensorMap>

/** Greedy generation: appends `length` characters to the normalized prompt; returns only the new ones. */
export async function generateText(
  run: RunModel,
  spec: CharsModelSpec,
  prompt: string,
  length: number,
  options: { signal?: AbortSignal } = {},
): Promise<string> {
  let text = normalizeText(spec, prompt)
  let generated = ''
  for (let i = 0; i < length; i++) {
    if (options.signal?.aborted) throw new AbortError('text generation was cancelled')
    const outputs = await run(charsInput(spec, [text]))
    const probs = outputs[spec.outputName]
    if (probs?.type !== 'float32') throw new InvalidInputError(`the model gave no float32 "${spec.outputName}" output`)
    const next = greedyChar(spec, probs.data)
    text = (text + next).slice(-spec.context)
    generated += next
  }
  return generated
}

/**
 * Training examples from a text: for each position, the (padded) `context` characters before it
 * -> that character. The text is normalized first.
 */
export function charsDataset(spec: CharsModelSpec, text: string): Dataset {
  const chars = [...normalizeText(spec, text)]
  const width = spec.context * spec.vocab.length
  const features = new Float32Array(chars.length * width)
  const labels = new Int32Array(chars.length)
  chars.forEach((c, i) => {
    writeOneHot(spec, chars.slice(Math.max(0, i - spec.context), i).join(''), features, i * width)
    labels[i] = spec.vocab.indexOf(c)
  })
  return { features, labels, featureCount: width, classCount: spec.vocab.length }
}
