/**
 * Language models (src/inference/lm/), on the demo model (models/lm, models/train-lm.py):
 *  - lm-audit-ratio: an audit by teacher forcing (`LmEngine.verify`: one forward pass over prompt +
 *    claimed tokens) ÷ generating the same output (`LmEngine.generate`: prefill, then one pass
 *    per token), fastest round of each (as harness.ts: the least disturbed by other load), medians
 *    beside; goal ≤ 0.1. The output is as long as the context
 *    window allows up to 256 tokens (the demo's window is 256, prompt included); end-of-sequence
 *    ids are switched off so every round has the same length.
 *  - lm-memory-ratio: resident memory a loaded language model adds to its sandbox process ÷ its
 *    file size: the LM process's RSS minus that of a process serving digits-mlp (ONNX Runtime and
 *    Node loaded, a tiny model), after load and after one full-length generation.
 *  - lm-direct-tokens-per-second: a plain ONNX Runtime loop (greedy, KV cache fed back, nothing
 *    else) in this process: the baseline later figures (sandbox, other runtimes) compare with; the
 *    same generation through `LmEngine` (seeded sampler) and through `SandboxedRunner` (child
 *    process, tokens streamed) are printed beside it.
 *
 *   node bench/run.ts --only lm-
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import * as ort from 'onnxruntime-node'
import { DEMO_MODELS_DIR, modelCid } from '../src/inference/demo-models.ts'
import { LmEngine } from '../src/inference/lm/engine.ts'
import { parseLmFiles, readLmFolder, type LmModelFiles } from '../src/inference/lm/model-files.ts'
import { generationTensors, parseOutputTensors, type GenerationInput } from '../src/inference/lm/types.ts'
import { readRss } from '../src/inference/runner/process.ts'
import { SandboxedRunner } from '../src/inference/runner/sandbox.ts'
import { line, type BenchLine } from './harness.ts'

export const LM_BENCH_NAMES = ['lm-audit-ratio', 'lm-memory-ratio', 'lm-direct-tokens-per-second']
const LM_DIR = join(DEMO_MODELS_DIR, 'lm')
const PROMPT_TEXT = 'Call me Ishmael. Some years ago'
const MAX_OUTPUT = 256
const AUDIT_TARGET = 0.1

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

async function timed<T>(f: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now()
  const value = await f()
  return { value, ms: performance.now() - start }
}

function openSession(path: string): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(path, {
    executionProviders: ['cpu'],
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  })
}

/** Greedy decoding with nothing but ONNX Runtime calls: tokens per second of decode, prefill included. */
async function directLoop(
  session: ort.InferenceSession,
  engine: LmEngine,
  prompt: number[],
  tokens: number,
): Promise<number> {
  const { layout } = engine
  const empty = new ort.Tensor('float32', new Float32Array(0), [1, layout.kvHeads, 0, layout.headDim])
  let past: ort.Tensor[] = layout.layers.flatMap(() => [empty, empty])
  let feed = prompt
  let length = 0
  const start = performance.now()
  for (let t = 0; t < tokens; t++) {
    const total = length + feed.length
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(feed, BigInt), [1, feed.length]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
      position_ids: new ort.Tensor(
        'int64',
        BigInt64Array.from(feed, (_, i) => BigInt(length + i)),
        [1, feed.length],
      ),
    }
    layout.layers.forEach((l, i) => {
      feeds[l.pastKey] = past[2 * i]!
      feeds[l.pastValue] = past[2 * i + 1]!
    })
    const out = await session.run(feeds)
    past = layout.layers.flatMap((l) => [out[l.presentKey]!, out[l.presentValue]!])
    const logits = out.logits!
    const vocab = logits.dims[2]!
    const row = (logits.data as Float32Array).subarray((feed.length - 1) * vocab, feed.length * vocab)
    let best = 0
    for (let i = 1; i < vocab; i++) if (row[i]! > row[best]!) best = i
    length = total
    feed = [best]
  }
  return tokens / ((performance.now() - start) / 1000)
}

export async function lmBenches(quick = false): Promise<BenchLine[]> {
  const bytes = new Uint8Array(await readFile(join(LM_DIR, 'model.onnx')))
  const rawFiles = await readLmFolder(LM_DIR)
  const parsed = parseLmFiles(rawFiles)
  // no end-of-sequence ids: every generation runs to its full length
  const files: LmModelFiles = { ...parsed, config: { ...parsed.config, eosIds: [] } }
  const session = await openSession(join(LM_DIR, 'model.onnx'))
  const engine = new LmEngine(session, files)
  const promptIds = files.tokenizer.encode(PROMPT_TEXT)
  const outputTokens = Math.min(quick ? 32 : MAX_OUTPUT, engine.contextLength - promptIds.length)
  const input: GenerationInput = {
    promptIds,
    maxTokens: outputTokens,
    temperatureMilli: 800,
    topPMilli: 950,
    topK: 40,
    seed: 1851n,
    stop: [],
  }
  const rounds = quick ? 2 : 7
  const out: BenchLine[] = []
  try {
    // (a) audit ÷ generation
    await engine.generate(input) // warm-up
    const generateMs: number[] = []
    const verifyMs: number[] = []
    let passes = 0
    for (let r = 0; r < rounds; r++) {
      const g = await timed(() => engine.generate(input))
      const v = await timed(() => engine.verify(input, g.value, { maxAbsPpm: 10_000 }))
      if (v.value.firstMismatch !== -1)
        throw new Error(`the audit refused an honest output at ${v.value.firstMismatch}`)
      passes = v.value.stats.passes
      generateMs.push(g.ms)
      verifyMs.push(v.ms)
    }
    const gen = Math.min(...generateMs) * 1000
    const ver = Math.min(...verifyMs) * 1000
    out.push({
      ...line({
        bench: 'lm-audit-ratio',
        impl: `LmEngine.verify (teacher forcing, ${passes} forward pass) of a ${outputTokens}-token output after a ${promptIds.length}-token prompt, fastest round`,
        value: ver,
        unit: 'µs',
        baseline: {
          impl: 'LmEngine.generate of the same job (prefill + one pass per token), fastest round',
          value: gen,
        },
        target: {
          value: AUDIT_TARGET,
          met: ver / gen <= AUDIT_TARGET,
          note: 'an audit costs at most 0.1 of generating',
        },
        rounds: verifyMs.map((ms) => ms * 1000),
      }),
      generateRounds: generateMs.map((ms) => Math.round(ms * 1000)),
      medianRatio: Number((median(verifyMs) / median(generateMs)).toFixed(3)),
    } as BenchLine)

    // (c) tokens per second: plain ONNX Runtime, LmEngine, the sandbox
    const direct: number[] = []
    for (let r = 0; r < rounds; r++) direct.push(await directLoop(session, engine, promptIds, outputTokens))
    const viaEngine = generateMs.map((ms) => outputTokens / (ms / 1000))

    // (b) memory, and the sandbox's tokens per second
    const cid = modelCid(bytes)
    const digitsBytes = new Uint8Array(await readFile(join(DEMO_MODELS_DIR, 'digits-mlp.onnx')))
    const lmRunner = new SandboxedRunner({ executionProvider: 'cpu' })
    const baseRunner = new SandboxedRunner({ executionProvider: 'cpu' })
    try {
      await baseRunner.load(modelCid(digitsBytes), digitsBytes)
      await lmRunner.load(cid, bytes, { files: rawFiles })
      const rss = async (runner: SandboxedRunner): Promise<number> => (await readRss(runner.processes()[0]!.pid!)) ?? 0
      const base = await rss(baseRunner)
      const loaded = await rss(lmRunner)
      const job = generationTensors(promptIds, { ...input, seed: input.seed })
      const sandboxRates: number[] = []
      for (let r = 0; r < rounds; r++) {
        const t = await timed(() => lmRunner.run(cid, job, { onTokens: () => {} }))
        sandboxRates.push(parseOutputTensors(t.value.outputs).tokens.length / (t.ms / 1000))
      }
      const generated = await rss(lmRunner)
      const kib = (n: number): number => n / 1024
      out.push({
        ...line({
          bench: 'lm-memory-ratio',
          impl: `resident memory of the sandbox process serving the demo LM minus one serving digits-mlp, after load`,
          value: kib(loaded - base),
          unit: 'KiB',
          baseline: { impl: 'model.onnx size', value: kib(bytes.length) },
          rounds: [kib(loaded - base), kib(generated - base)],
        }),
        afterGenerationRatio: Number(((generated - base) / bytes.length).toFixed(3)),
        processRssKiB: {
          digits: Math.round(kib(base)),
          lmLoaded: Math.round(kib(loaded)),
          lmAfterGeneration: Math.round(kib(generated)),
        },
      } as BenchLine)
      out.push({
        ...line({
          bench: 'lm-direct-tokens-per-second',
          impl: `ONNX Runtime alone in this process: greedy, KV cache fed back, ${outputTokens} tokens after a ${promptIds.length}-token prompt, 1 thread, best round`,
          value: Math.max(...direct),
          unit: 'tokens/s',
          rounds: direct,
        }),
        lmEngineTokensPerSecond: Math.round(Math.max(...viaEngine)),
        sandboxTokensPerSecond: Math.round(Math.max(...sandboxRates)),
      } as BenchLine)
    } finally {
      await lmRunner.close()
      await baseRunner.close()
    }
  } finally {
    await session.release()
  }
  return out
}

if (import.meta.main) {
  for (const l of await lmBenches(process.argv.includes('--quick'))) process.stdout.write(`${JSON.stringify(l)}\n`)
}
