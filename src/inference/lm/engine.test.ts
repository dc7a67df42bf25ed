import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import * as ort from 'onnxruntime-node'
import { utf8 } from '../../core/bytes.ts'
import { InvalidInputError } from '../../core/errors.ts'
import { LmEngine, type Generation } from './engine.ts'
import { ContextLengthError } from './errors.ts'
import { parseLmFiles, readLmFolder } from './model-files.ts'
import type { GenerationInput, LmFiles } from './types.ts'

// Real ONNX Runtime sessions on the demo language model (models/train-lm.py). Its weights may be
// retrained: nothing here depends on which tokens it generates.
const LM_DIR = fileURLToPath(new URL('../../../models/lm/', import.meta.url))
const rawFiles = await readLmFolder(LM_DIR)
const files = parseLmFiles(rawFiles)
const session = await ort.InferenceSession.create(`${LM_DIR}model.onnx`, {
  executionProviders: ['cpu'],
  intraOpNumThreads: 1,
  executionMode: 'sequential',
})
after(() => session.release())
const engine = new LmEngine(session, files)
const tol = { maxAbsPpm: 10_000 }
const prompt = files.tokenizer.encode('The whale')

const job = (over: Partial<GenerationInput> = {}): GenerationInput => ({
  promptIds: prompt,
  maxTokens: 32,
  temperatureMilli: 1000,
  topPMilli: 1000,
  topK: 0,
  seed: 1851n,
  stop: [],
  ...over,
})

/** An engine whose end-of-sequence ids are `eos` (the demo model rarely ends by itself). */
function withEos(eos: number[]): LmEngine {
  const g = JSON.parse(new TextDecoder().decode(rawFiles['generation_config.json'])) as Record<string, unknown>
  const c = JSON.parse(new TextDecoder().decode(rawFiles['config.json'])) as Record<string, unknown>
  const t = JSON.parse(new TextDecoder().decode(rawFiles['tokenizer_config.json'])) as Record<string, unknown>
  g.eos_token_id = eos
  delete c.eos_token_id
  delete t.eos_token
  const changed: LmFiles = {
    ...rawFiles,
    'generation_config.json': utf8(JSON.stringify(g)),
    'config.json': utf8(JSON.stringify(c)),
    'tokenizer_config.json': utf8(JSON.stringify(t)),
  }
  return new LmEngine(session, parseLmFiles(changed))
}

test('generation with the KV cache equals recomputing the whole sequence every step', async () => {
  for (const over of [
    { temperatureMilli: 0 },
    { temperatureMilli: 900, topK: 40, topPMilli: 950 },
    { temperatureMilli: 1500, seed: -5n },
  ]) {
    const cached = await engine.generate(job({ ...over, maxTokens: 48 }))
    const full = await engine.generate(job({ ...over, maxTokens: 48 }), { useCache: false })
    assert.deepEqual(cached.tokens, full.tokens)
    assert.equal(cached.finish, full.finish)
    assert.equal(cached.stats.passes, cached.tokens.length) // one prefill, then one pass per token
  }
})

test('prompts and audits longer than a chunk run in chunks, with the same tokens', async () => {
  const chunked = new LmEngine(session, files, { chunkTokens: 16 })
  const long = files.tokenizer.encode(
    'Call me Ishmael. Some years ago, never mind how long precisely, having little money',
  )
  assert.ok(long.length > 16)
  const input = job({ promptIds: long, maxTokens: 40 })
  const whole = await engine.generate(input)
  const inChunks = await chunked.generate(input)
  assert.deepEqual(inChunks.tokens, whole.tokens)
  assert.equal(inChunks.stats.passes, Math.ceil(long.length / 16) + whole.tokens.length - 1)
  const v = await chunked.verify(input, whole, tol)
  assert.equal(v.firstMismatch, -1)
  assert.equal(v.stats.passes, Math.ceil((long.length + whole.tokens.length - 1) / 16))
})

test('the same seed draws the same tokens; another seed, others', async () => {
  const a = await engine.generate(job({ seed: 7n }))
  const b = await engine.generate(job({ seed: 7n }))
  const c = await engine.generate(job({ seed: 8n }))
  assert.deepEqual(a.tokens, b.tokens)
  assert.notDeepEqual(a.tokens, c.tokens)
})

test('onTokens gets every token as it is drawn; stats count them', async () => {
  const seen: number[] = []
  let calls = 0
  const g = await engine.generate(job(), {
    onTokens: (ids) => {
      calls++
      seen.push(...ids)
    },
  })
  assert.deepEqual(seen, g.tokens)
  assert.equal(calls, g.tokens.length)
  assert.equal(g.stats.promptTokens, prompt.length)
  assert.equal(g.stats.outputTokens, g.tokens.length)
  assert.ok(g.stats.ttftMicros > 0 && g.stats.ttftMicros <= g.stats.computeMicros)
})

test('max_tokens ends a generation with finish "length"', async () => {
  const g = await engine.generate(job({ maxTokens: 5 }))
  assert.equal(g.tokens.length, 5)
  assert.equal(g.finish, 'length')
})

test('an end-of-sequence token ends the generation and is part of the output', async () => {
  const free = await engine.generate(job({ temperatureMilli: 0, maxTokens: 12 }))
  const eos = free.tokens[3]!
  const first = free.tokens.indexOf(eos)
  const g = await withEos([eos]).generate(job({ temperatureMilli: 0, maxTokens: 12 }))
  assert.deepEqual(g.tokens, free.tokens.slice(0, first + 1))
  assert.equal(g.finish, 'eos')
})

test('a stop string ends the generation at the token that completes it', async () => {
  const free = await engine.generate(job({ maxTokens: 40 }))
  const text = files.tokenizer.decode(free.tokens)
  // five characters from the middle of the text (wherever its tokens start and end)
  const stop = text.slice(7, 12)
  assert.ok(stop.length === 5 && !stop.includes('\uFFFD'))
  const g = await engine.generate(job({ maxTokens: 40, stop: ['\u2603 never', stop] }))
  assert.equal(g.finish, 'stop')
  assert.deepEqual(g.tokens, free.tokens.slice(0, g.tokens.length))
  assert.ok(files.tokenizer.decode(g.tokens).includes(stop))
  assert.ok(!files.tokenizer.decode(g.tokens.slice(0, -1)).includes(stop))
  // the audit applies the same rule
  const v = await engine.verify(job({ maxTokens: 40, stop: [stop] }), g, tol)
  assert.equal(v.firstMismatch, -1)
  // an output that went on past its stop string is cut there
  const on = await engine.verify(job({ maxTokens: 40, stop: [stop] }), { tokens: free.tokens, finish: 'length' }, tol)
  assert.equal(on.firstMismatch, g.tokens.length)
  assert.deepEqual(on.tokens, g.tokens)
  assert.equal(on.finish, 'stop')
})

test('the context window: a prompt that fills it is refused; output is capped by it', async () => {
  const n = engine.contextLength
  await assert.rejects(
    engine.generate(job({ promptIds: Array.from({ length: n }, () => prompt[0]!) })),
    (e: unknown) =>
      e instanceof ContextLengthError &&
      e.details.promptTokens === n &&
      e.details.contextLength === n &&
      new RegExp(`${n} tokens`).test(e.message),
  )
  const near = Array.from({ length: n - 3 }, (_, i) => prompt[i % prompt.length]!)
  const g = await engine.generate(job({ promptIds: near, maxTokens: 100 }))
  assert.equal(g.tokens.length, 3)
  assert.equal(g.finish, 'length')
  await assert.rejects(engine.generate(job({ promptIds: [] })), InvalidInputError)
  await assert.rejects(engine.generate(job({ promptIds: [1 << 30] })), /vocabulary/)
})

test('verify: an honest output passes in one forward pass', async () => {
  for (const over of [{}, { temperatureMilli: 0 }, { temperatureMilli: 700, topK: 40, topPMilli: 900 }]) {
    const g = await engine.generate(job({ ...over, maxTokens: 64 }))
    const v = await engine.verify(job({ ...over, maxTokens: 64 }), g, tol)
    assert.equal(v.firstMismatch, -1)
    assert.deepEqual(v.tokens, g.tokens)
    assert.equal(v.finish, g.finish)
    assert.equal(v.stats.passes, 1)
    assert.equal(v.stats.ttftMicros, 0)
  }
})

/** The least likely token at output step `i` of `g` (teacher forcing by hand: a generation of prompt + prefix). */
async function unlikely(g: Generation, i: number): Promise<number> {
  const prefix = [...prompt, ...g.tokens.slice(0, i)]
  const out = await session.run({
    input_ids: new ort.Tensor('int64', BigInt64Array.from(prefix, BigInt), [1, prefix.length]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(prefix.length).fill(1n), [1, prefix.length]),
    position_ids: new ort.Tensor(
      'int64',
      BigInt64Array.from(prefix, (_, k) => BigInt(k)),
      [1, prefix.length],
    ),
    ...Object.fromEntries(
      engine.layout.layers.flatMap((l) => [
        [
          l.pastKey,
          new ort.Tensor('float32', new Float32Array(0), [1, engine.layout.kvHeads, 0, engine.layout.headDim]),
        ],
        [
          l.pastValue,
          new ort.Tensor('float32', new Float32Array(0), [1, engine.layout.kvHeads, 0, engine.layout.headDim]),
        ],
      ]),
    ),
  })
  const vocab = out.logits!.dims[2]!
  const row = (out.logits!.data as Float32Array).subarray((prefix.length - 1) * vocab, prefix.length * vocab)
  let worst = 0
  for (let t = 1; t < vocab; t++) if (row[t]! < row[worst]!) worst = t
  return worst
}

test('verify: one swapped token is caught at its index, and the correct output returned', async () => {
  const input = job({ maxTokens: 48 })
  const honest = await engine.generate(input)
  for (const at of [0, 17, honest.tokens.length - 1]) {
    const forged = [...honest.tokens]
    forged[at] = await unlikely(honest, at)
    const v = await engine.verify(input, { tokens: forged, finish: honest.finish }, tol)
    assert.equal(v.firstMismatch, at)
    assert.deepEqual(v.tokens, honest.tokens)
    assert.equal(v.finish, honest.finish)
  }
})

test('verify: outputs that end wrongly', async () => {
  const input = job({ maxTokens: 20, temperatureMilli: 0 })
  const honest = await engine.generate(input)
  // too short: it ended before anything ends it
  const short = await engine.verify(input, { tokens: honest.tokens.slice(0, 10), finish: 'eos' }, tol)
  assert.equal(short.firstMismatch, 10)
  assert.deepEqual(short.tokens, honest.tokens)
  // the right tokens with the wrong reason
  const reason = await engine.verify(input, { tokens: honest.tokens, finish: 'stop' }, tol)
  assert.equal(reason.firstMismatch, honest.tokens.length)
  assert.deepEqual(reason.tokens, honest.tokens)
  assert.equal(reason.finish, 'length')
  // longer than max_tokens
  const longer = await engine.generate(job({ maxTokens: 25, temperatureMilli: 0 }))
  const over = await engine.verify(input, longer, tol)
  assert.equal(over.firstMismatch, 20)
  assert.deepEqual(over.tokens, honest.tokens)
  // past an end-of-sequence token
  const eos = honest.tokens[4]!
  const withEnd = withEos([eos])
  const ended = await withEnd.verify(input, honest, tol)
  assert.equal(ended.firstMismatch, honest.tokens.indexOf(eos) + 1)
  assert.equal(ended.finish, 'eos')
  assert.deepEqual(ended.tokens, honest.tokens.slice(0, honest.tokens.indexOf(eos) + 1))
  // empty, and ids outside the vocabulary
  const empty = await engine.verify(input, { tokens: [], finish: 'eos' }, tol)
  assert.equal(empty.firstMismatch, 0)
  assert.deepEqual(empty.tokens, honest.tokens)
  const outside = await engine.verify(input, { tokens: [...honest.tokens.slice(0, 3), 1 << 30], finish: 'length' }, tol)
  assert.equal(outside.firstMismatch, 3)
  assert.deepEqual(outside.tokens, honest.tokens)
})
