/**
 * Checks the language model in models/lm/ (written by models/train-lm.py) the way a Hugging Face
 * ONNX export is used: ONNX Runtime with Optimum's decoder-with-past layout, the tokenizer through
 * @huggingface/tokenizers, the chat template through @huggingface/jinja, and Donghae's own model
 * safety check. Prints a JSON report; exits 1 when any check fails.
 *
 *   node models/check-lm.ts
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Template } from '@huggingface/jinja'
import { Tokenizer } from '@huggingface/tokenizers'
import * as ort from 'onnxruntime-node'
import { checkModel } from '../src/inference/onnx-check.ts'

const ROOT = join(import.meta.dirname, '..')
const DIR = join(ROOT, 'models', 'lm')
const BOOK = join(ROOT, 'node_modules', '@stdlib', 'datasets-moby-dick', 'data')
const STEPS = 30
const LOGITS_TOLERANCE = 1e-4

interface Config {
  vocab_size: number
  num_hidden_layers: number
  num_attention_heads: number
  hidden_size: number
  max_position_embeddings: number
  bos_token_id: number
  eos_token_id: number
  pad_token_id: number
}
interface GenerationConfig {
  eos_token_id: number[]
  temperature: number
  top_k: number
  top_p: number
  repetition_penalty: number
}
interface Training {
  special_token_ids: Record<string, number>
  tokenizer_probe: { text: string; ids: number[] }
  data: { heldout_chapters: string[]; heldout_ids_sha256: string }
}

const readJson = async <T>(path: string): Promise<T> => JSON.parse(await readFile(path, 'utf8')) as T

const failures: string[] = []
function expect(ok: boolean, what: string): boolean {
  if (!ok) failures.push(what)
  return ok
}

const config = await readJson<Config>(join(DIR, 'config.json'))
const generation = await readJson<GenerationConfig>(join(DIR, 'generation_config.json'))
const training = await readJson<Training>(join(DIR, 'training.json'))
const tokenizerJson = await readJson<object>(join(DIR, 'tokenizer.json'))
const tokenizerConfig = await readJson<{ chat_template: string; bos_token: string; eos_token: string }>(
  join(DIR, 'tokenizer_config.json'),
)
const modelBytes = new Uint8Array(await readFile(join(DIR, 'model.onnx')))

const LAYERS = config.num_hidden_layers
const HEADS = config.num_attention_heads
const HEAD_DIM = config.hidden_size / HEADS
const VOCAB = config.vocab_size

// 5. Donghae's model safety check (before ONNX Runtime parses the file, as the runner does).
let safety: string
try {
  checkModel(modelBytes)
  safety = 'pass'
} catch (err) {
  safety = `refused: ${(err as Error).message}`
  expect(false, `checkModel: ${safety}`)
}

// 1. The session and its layout.
const session = await ort.InferenceSession.create(modelBytes)
const describe = (m: ort.InferenceSession.ValueMetadata): string =>
  m.isTensor ? `${m.name} ${m.type} [${m.shape.join(', ')}]` : `${m.name} (not a tensor)`
const expectedInputs = [
  'input_ids int64 [batch_size, sequence_length]',
  'attention_mask int64 [batch_size, past_sequence_length + sequence_length]',
  'position_ids int64 [batch_size, sequence_length]',
]
const expectedOutputs = [`logits float32 [batch_size, sequence_length, ${VOCAB}]`]
for (let i = 0; i < LAYERS; i++) {
  for (const kv of ['key', 'value']) {
    expectedInputs.push(`past_key_values.${i}.${kv} float32 [batch_size, ${HEADS}, past_sequence_length, ${HEAD_DIM}]`)
    expectedOutputs.push(
      `present.${i}.${kv} float32 [batch_size, ${HEADS}, past_sequence_length + sequence_length, ${HEAD_DIM}]`,
    )
  }
}
const inputs = session.inputMetadata.map(describe)
const outputs = session.outputMetadata.map(describe)
expect(JSON.stringify(inputs) === JSON.stringify(expectedInputs), 'input layout differs from Optimum decoder-with-past')
expect(
  JSON.stringify(outputs) === JSON.stringify(expectedOutputs),
  'output layout differs from Optimum decoder-with-past',
)

// ONNX Runtime plumbing.
type Past = Record<string, ort.Tensor>
const i64 = (values: number[], dims: number[]): ort.Tensor =>
  new ort.Tensor(
    'int64',
    BigInt64Array.from(values, (v) => BigInt(v)),
    dims,
  )
function emptyPast(batch: number): Past {
  const past: Past = {}
  for (let i = 0; i < LAYERS; i++)
    for (const kv of ['key', 'value'])
      past[`past_key_values.${i}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [batch, HEADS, 0, HEAD_DIM])
  return past
}
interface Step {
  /** logits of every row's last position */
  last: Float32Array[]
  present: Past
  dims: Record<string, readonly number[]>
}
async function forward(ids: number[][], mask: number[][], positions: number[][], past: Past): Promise<Step> {
  const b = ids.length
  const t = ids[0]!.length
  const s = mask[0]!.length
  const out = await session.run({
    input_ids: i64(ids.flat(), [b, t]),
    attention_mask: i64(mask.flat(), [b, s]),
    position_ids: i64(positions.flat(), [b, t]),
    ...past,
  })
  const logits = out.logits!.data as Float32Array
  const last = Array.from({ length: b }, (_, r) => logits.slice((r * t + t - 1) * VOCAB, (r * t + t) * VOCAB))
  const present: Past = {}
  const dims: Record<string, readonly number[]> = {}
  for (const [name, tensor] of Object.entries(out)) {
    dims[name] = tensor.dims
    if (name.startsWith('present.')) present[name.replace('present.', 'past_key_values.')] = tensor as ort.Tensor
  }
  return { last, present, dims }
}
const argmax = (x: Float32Array): number => x.reduce((best, v, i) => (v > x[best]! ? i : best), 0)
const maxDiff = (a: Float32Array, b: Float32Array): number => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0)
const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i)
const ones = (n: number): number[] => new Array<number>(n).fill(1)

type Choose = (logits: Float32Array, seq: readonly number[]) => number

/** Decoding with the key/value cache: prefill with an empty past, then one token per step (greedy by default). */
async function greedyCached(prompt: number[], steps: number, stop: Set<number> = new Set(), choose: Choose = argmax) {
  const seq = [...prompt]
  let cur = [...prompt]
  let past = emptyPast(1)
  const tokens: number[] = []
  const logits: Float32Array[] = []
  let prefillDims: Record<string, readonly number[]> = {}
  let stoppedBy: number | undefined
  for (let i = 0; i < steps && seq.length < config.max_position_embeddings; i++) {
    const step = await forward([cur], [ones(seq.length)], [range(seq.length - cur.length, seq.length)], past)
    if (i === 0) prefillDims = step.dims
    const next = choose(step.last[0]!, seq)
    if (stop.has(next)) {
      stoppedBy = next
      break
    }
    tokens.push(next)
    logits.push(step.last[0]!)
    seq.push(next)
    cur = [next]
    past = step.present
  }
  return { tokens, logits, prefillDims, stoppedBy }
}

/** Greedy decoding recomputing the whole sequence at every step (empty past every time). */
async function greedyFull(prompt: number[], steps: number) {
  const seq = [...prompt]
  const tokens: number[] = []
  const logits: Float32Array[] = []
  for (let i = 0; i < steps; i++) {
    const step = await forward([seq], [ones(seq.length)], [range(0, seq.length)], emptyPast(1))
    const next = argmax(step.last[0]!)
    tokens.push(next)
    logits.push(step.last[0]!)
    seq.push(next)
  }
  return { tokens, logits }
}

// 3. Tokenizer.
const tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig)
const chapter1 = (await readJson<{ text: string }>(join(BOOK, 'chapter_1.json'))).text
const paragraph = chapter1.split('\n\n')[0]!
const encoded = tokenizer.encode(paragraph).ids
const roundTrip = tokenizer.decode(encoded) === paragraph
expect(roundTrip, 'tokenizer round trip of the first paragraph of chapter 1')
const dialogue = (await readJson<{ text: string }>(join(BOOK, 'chapter_100.json'))).text
  .split('\n\n')
  .slice(0, 6)
  .join('\n\n')
expect(tokenizer.decode(tokenizer.encode(dialogue).ids) === dialogue, 'tokenizer round trip of chapter 100 (dialogue)')
const specialIds: Record<string, number[]> = {}
for (const [token, id] of Object.entries(training.special_token_ids)) {
  specialIds[token] = tokenizer.encode(token).ids
  expect(JSON.stringify(specialIds[token]) === JSON.stringify([id]), `${token} encodes to [${id}]`)
}
const probe = tokenizer.encode(training.tokenizer_probe.text).ids
expect(JSON.stringify(probe) === JSON.stringify(training.tokenizer_probe.ids), 'JS ids equal the trainer ids (probe)')
// the held-out chapters, as the trainer streamed them: <|endoftext|> then the chapter
const eot = training.special_token_ids['<|endoftext|>']!
const heldout: number[] = []
for (const chapter of training.data.heldout_chapters) {
  const text = (await readJson<{ text: string }>(join(BOOK, `chapter_${chapter}.json`))).text.trim()
  heldout.push(eot, ...tokenizer.encode(text).ids)
}
const heldoutHash = createHash('sha256').update(heldout.join(',')).digest('hex')
expect(heldoutHash === training.data.heldout_ids_sha256, 'JS ids equal the trainer ids (held-out chapters)')

// 4. Chat template.
const template = new Template(tokenizerConfig.chat_template)
const conversation = [
  { role: 'user', content: 'Who art thou?' },
  { role: 'assistant', content: 'Call me Ishmael.' },
  { role: 'user', content: 'And where is the white whale?' },
]
const rendered = template.render({
  messages: conversation,
  add_generation_prompt: true,
  bos_token: tokenizerConfig.bos_token,
  eos_token: tokenizerConfig.eos_token,
})
const expectedRendered =
  '<|endoftext|><|user|>\nWho art thou?<|end|>\n<|assistant|>\nCall me Ishmael.<|end|>\n' +
  '<|user|>\nAnd where is the white whale?<|end|>\n<|assistant|>\n'
expect(rendered === expectedRendered, 'chat template rendering')
const renderedIds = tokenizer.encode(rendered).ids
const sp = training.special_token_ids
const countOf = (id: number | undefined): number => renderedIds.filter((x: number) => x === id).length
expect(
  countOf(sp['<|endoftext|>']) === 1 &&
    countOf(sp['<|user|>']) === 2 &&
    countOf(sp['<|assistant|>']) === 2 &&
    countOf(sp['<|end|>']) === 3,
  'special tokens of the rendered chat are single ids',
)

// 2. Cached vs. recomputed greedy decoding.
const prompt = tokenizer.encode('Call me Ishmael. Some years ago').ids
const cached = await greedyCached(prompt, STEPS)
const full = await greedyFull(prompt, STEPS)
const sameTokens = JSON.stringify(cached.tokens) === JSON.stringify(full.tokens)
expect(sameTokens, 'cached and recomputed greedy tokens match')
const stepDiffs = cached.logits.map((l, i) => maxDiff(l, full.logits[i]!))
const worstDiff = Math.max(...stepDiffs)
expect(worstDiff <= LOGITS_TOLERANCE, `logits agree within ${LOGITS_TOLERANCE}`)
const presentDims = cached.prefillDims['present.0.key']
expect(
  JSON.stringify(presentDims) === JSON.stringify([1, HEADS, prompt.length, HEAD_DIM]),
  'present after prefill is [1, heads, prompt, head_dim]',
)

// Left padding: a batch of [pad pad pad prompt] and [prompt + 3 tokens]; the padded row must give the
// unpadded logits (masked keys), at prefill and at the next cached step. Positions as transformers.js
// computes them: cumsum(mask) - 1, and 1 where masked.
const PAD = 3
const padRow = [...new Array<number>(PAD).fill(config.pad_token_id), ...prompt]
const padMask = [...new Array<number>(PAD).fill(0), ...ones(prompt.length)]
const padPos = [...new Array<number>(PAD).fill(1), ...range(0, prompt.length)]
const otherRow = [...prompt, ...cached.tokens.slice(0, PAD)]
const batched = await forward(
  [padRow, otherRow],
  [padMask, ones(otherRow.length)],
  [padPos, range(0, otherRow.length)],
  emptyPast(2),
)
const padPrefillDiff = maxDiff(batched.last[0]!, cached.logits[0]!)
const fullOther = await greedyFull(otherRow, 1)
const otherRowDiff = maxDiff(batched.last[1]!, fullOther.logits[0]!)
const next = [[cached.tokens[0]!], [fullOther.tokens[0]!]]
const batchedStep = await forward(
  next,
  [[...padMask, 1], ones(otherRow.length + 1)],
  [[prompt.length], [otherRow.length]],
  batched.present,
)
const padStepDiff = maxDiff(batchedStep.last[0]!, cached.logits[1]!)
expect(
  Math.max(padPrefillDiff, otherRowDiff, padStepDiff) <= LOGITS_TOLERANCE,
  'left-padded batch gives the unpadded logits',
)

// A greedy chat answer, stopping at generation_config's eos ids.
const stop = new Set(generation.eos_token_id)
const question = 'What is the whale?'
const chatPrompt = tokenizer.encode(
  template.render({
    messages: [{ role: 'user', content: question }],
    add_generation_prompt: true,
    bos_token: tokenizerConfig.bos_token,
    eos_token: tokenizerConfig.eos_token,
  }),
).ids
const answer = await greedyCached(chatPrompt, 80, stop)

/** mulberry32: a seeded uniform [0, 1) generator. */
function mulberry32(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
/** generation_config.json's sampling: repetition penalty, temperature, top-k, then top-p. */
function sampler(seed: number): Choose {
  const random = mulberry32(seed)
  return (logits, seq) => {
    const x = Float64Array.from(logits)
    for (const id of new Set(seq))
      x[id] = x[id]! > 0 ? x[id]! / generation.repetition_penalty : x[id]! * generation.repetition_penalty
    const top = Array.from(x.keys())
      .sort((a, b) => x[b]! - x[a]! || a - b)
      .slice(0, generation.top_k)
    const weights = top.map((id) => Math.exp((x[id]! - x[top[0]!]!) / generation.temperature))
    const total = weights.reduce((a, b) => a + b, 0)
    let kept = 0
    let mass = 0
    while (kept < top.length && mass < generation.top_p * total) mass += weights[kept++]!
    let r = random() * mass
    for (let i = 0; i < kept; i++) if ((r -= weights[i]!) <= 0) return top[i]!
    return top[kept - 1]!
  }
}
const sampled = []
for (const seed of [1, 2, 3]) {
  const out = await greedyCached(chatPrompt, 80, stop, sampler(seed))
  sampled.push({
    seed,
    answer: tokenizer.decode(out.tokens),
    tokens: out.tokens.length,
    stoppedBy: out.stoppedBy ?? null,
  })
}

const report = {
  ok: failures.length === 0,
  failures,
  model: { bytes: modelBytes.length, safety, layers: LAYERS, heads: HEADS, headDim: HEAD_DIM, vocab: VOCAB },
  layout: { inputs, outputs },
  kvCache: {
    prompt: tokenizer.decode(prompt),
    steps: STEPS,
    sameTokens,
    maxLogitsDiff: worstDiff,
    lastStepLogitsDiff: stepDiffs.at(-1),
    continuation: tokenizer.decode(cached.tokens),
    leftPadding: { prefill: padPrefillDiff, otherRow: otherRowDiff, cachedStep: padStepDiff },
  },
  tokenizer: {
    paragraphChars: paragraph.length,
    paragraphTokens: encoded.length,
    roundTrip,
    specialIds,
    probeMatchesTrainer: JSON.stringify(probe) === JSON.stringify(training.tokenizer_probe.ids),
    heldoutTokens: heldout.length,
    heldoutMatchesTrainer: heldoutHash === training.data.heldout_ids_sha256,
  },
  chatTemplate: { rendered, tokens: renderedIds.length },
  chat: {
    question,
    greedy: tokenizer.decode(answer.tokens),
    tokens: answer.tokens.length,
    stoppedBy: answer.stoppedBy ?? null,
    sampled: { settings: generation, answers: sampled },
  },
}
console.log(JSON.stringify(report, null, 2))
process.exitCode = report.ok ? 0 : 1
