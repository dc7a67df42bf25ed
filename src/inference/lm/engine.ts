/**
 * Generation and its audit on one ONNX Runtime session of a decoder (`layout.ts`).
 *
 * `generate` runs the prompt through the graph with an empty cache (in chunks of `CHUNK_TOKENS`,
 * so a long prompt never asks for a [prompt × vocab] logits tensor at once), then one token per
 * run, feeding each run's `present.*` tensors back as the next run's `past_key_values.*` as ONNX
 * Runtime returned them. Tokens are drawn by the seeded sampler (`sampler.ts`), so a generation
 * is a function of its job.
 *
 * When a generation ends (`finishAfter`), checked after each token, in this order:
 *  1. 'eos': the token is an end-of-sequence id (generation_config U config U the tokenizer's
 *     eos_token); the token is part of the output;
 *  2. 'stop': the output's text - the `Detokenizer`'s text after this token (special tokens
 *     skipped; a character still incomplete at the end is not text yet) - contains a stop string
 *     that it did not contain before this token; the token is part of the output;
 *  3. 'length': the output has max_tokens tokens, or prompt + output fill the context window.
 * A prompt of n tokens needs n < context length (`ContextLengthError`); at most context - n
 * tokens are generated. The auditor (`verify`) applies the same rule, token by token.
 *
 * `verify` audits another worker's output by teacher forcing: one pass (chunked as above) over
 * prompt + claimed tokens, checking each claimed token against the logits before it with
 * `checkToken`, and the rule above at each position. When everything holds it returns the claim;
 * otherwise the correct generation: the claimed prefix before the first wrong position, then its
 * own tokens (a second pass over prompt + that prefix, then generation as above). That is a
 * deterministic function of the job and the prefix, so honest auditors agree on it.
 */
import * as ort from 'onnxruntime-node'
import { InvalidInputError, describeError } from '../../core/errors.ts'
import { ModelRunError } from '../runtime-facts.ts'
import { ContextLengthError } from './errors.ts'
import { decoderLayout, type DecoderLayout } from './layout.ts'
import type { Detokenizer, LmModelFiles } from './model-files.ts'
import { checkToken, sampleToken, type TokenTolerance } from './sampler.ts'
import type { FinishReason, GenerationInput, GenerationOutput } from './types.ts'
import type { TensorSpec } from '../tensor.ts'

/** Most positions per forward pass over a prompt or a claimed output (bounds the logits tensor). */
export const CHUNK_TOKENS = 256

export interface LmStats {
  promptTokens: number
  outputTokens: number
  /** From the start of the call to the first generated token (0 when none was generated). */
  ttftMicros: number
  /** The whole call. */
  computeMicros: number
  /** Forward passes run. */
  passes: number
}

export interface Generation extends GenerationOutput {
  stats: LmStats
}

export interface Verification extends Generation {
  /** The first position where the claim differs from the correct output; -1 when it is the correct output. */
  firstMismatch: number
}

export interface GenerateOptions {
  /** Called with each new token id, as soon as it is drawn. */
  onTokens?: (ids: readonly number[]) => void
  /** Calibration only: end-of-sequence tokens do not end the generation. @default false */
  ignoreEos?: boolean
  /** Tests only: recompute the whole sequence every step instead of keeping the cache. @default true */
  useCache?: boolean
}

export interface LmEngineOptions {
  /** A monotonic clock in microseconds. @default process.hrtime */
  micros?: () => number
  /** Positions per forward pass over a prompt or claimed output. Tests only: every worker uses the default. @default CHUNK_TOKENS */
  chunkTokens?: number
}

type Session = Pick<ort.InferenceSession, 'run' | 'inputMetadata' | 'outputMetadata'>
/** One call's clock start and forward passes (calls may overlap on one engine). */
interface Call {
  started: number
  passes: number
}
type Cache = ort.Tensor[]

const hrMicros = (): number => Number(process.hrtime.bigint() / 1000n)

function specsOf(metadata: readonly ort.InferenceSession.ValueMetadata[]): TensorSpec[] {
  return metadata.map((m) =>
    m.isTensor
      ? { name: m.name, type: m.type, dims: m.shape.map((d) => (typeof d === 'number' ? d : null)) }
      : { name: m.name, type: 'non-tensor', dims: [] },
  )
}

/** IEEE half -> float (logits of a float16 graph). */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1
  const exp = (h >> 10) & 0x1f
  const frac = h & 0x3ff
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024)
  if (exp === 31) return frac === 0 ? sign * Infinity : NaN
  return sign * 2 ** (exp - 15) * (1 + frac / 1024)
}

const int64 = (values: ArrayLike<number>, dims: number[]): ort.Tensor =>
  new ort.Tensor('int64', BigInt64Array.from(Array.from(values, BigInt)), dims)

/**
 * The generation-ending rule (see the module comment), fed one output token at a time. Generation
 * and audits both use it, so they end at the same token.
 */
export class FinishRule {
  readonly #eos: ReadonlySet<number>
  readonly #stop: readonly string[]
  readonly #longestStop: number
  readonly #detok: Detokenizer | undefined
  readonly #maxTokens: number
  #count = 0

  /** `maxTokens`: max_tokens already capped by the context window. */
  constructor(eos: ReadonlySet<number>, stop: readonly string[], maxTokens: number, detokenizer: () => Detokenizer) {
    this.#eos = eos
    this.#stop = stop
    this.#longestStop = Math.max(0, ...stop.map((s) => s.length))
    // decoding costs a little per token: only when a stop string needs the text
    this.#detok = stop.length > 0 ? detokenizer() : undefined
    this.#maxTokens = maxTokens
  }

  /** Why the output ends after `token`, or undefined when it goes on. */
  after(token: number): FinishReason | undefined {
    this.#count++
    const piece = this.#detok?.push(token) ?? ''
    if (this.#eos.has(token)) return 'eos'
    if (piece.length > 0) {
      // a new occurrence ends inside the new piece
      const text = this.#detok!.text
      const tail = text.slice(Math.max(0, text.length - piece.length - this.#longestStop + 1))
      if (this.#stop.some((s) => tail.includes(s))) return 'stop'
    }
    if (this.#count >= this.#maxTokens) return 'length'
    return undefined
  }
}

export class LmEngine {
  readonly layout: DecoderLayout
  readonly files: LmModelFiles
  readonly contextLength: number
  readonly #session: Session
  readonly #micros: () => number
  readonly #eos: ReadonlySet<number>
  readonly #chunk: number

  /** Throws `LmModelError('bad-graph')` when the session is not a decoder this engine drives. */
  constructor(session: Session, files: LmModelFiles, options: LmEngineOptions = {}) {
    this.#session = session
    this.files = files
    this.layout = decoderLayout(
      { inputs: specsOf(session.inputMetadata), outputs: specsOf(session.outputMetadata) },
      files.config,
    )
    this.contextLength = files.config.contextLength
    this.#eos = new Set(files.config.eosIds)
    this.#micros = options.micros ?? hrMicros
    this.#chunk = options.chunkTokens ?? CHUNK_TOKENS
    if (!Number.isSafeInteger(this.#chunk) || this.#chunk < 1)
      throw new InvalidInputError('chunkTokens must be a positive integer')
  }

  /** Generates from `input` (seed resolved). Throws `ContextLengthError`, `InvalidInputError`, `ModelRunError`. */
  async generate(input: GenerationInput, options: GenerateOptions = {}): Promise<Generation> {
    const started = this.#micros()
    this.#checkPrompt(input)
    return this.#continue(input, [], options, { started, passes: 0 })
  }

  /**
   * Audits `claimed` (another worker's output of the same job) by teacher forcing; see the module
   * comment. `tolerance`: how far the worker's logits may be from these (the registry's).
   */
  async verify(input: GenerationInput, claimed: GenerationOutput, tolerance: TokenTolerance): Promise<Verification> {
    const call: Call = { started: this.#micros(), passes: 0 }
    this.#checkPrompt(input)
    const n = input.promptIds.length
    const tokens = claimed.tokens
    const rule = this.#rule(input, [], {})
    const room = this.#room(input)
    const vocab = this.files.config.vocabSize
    // the first position that fails; `finish` is the correct finish when the claim ends right
    let bad = -1
    let finish: FinishReason | undefined
    const check = (i: number, logits: Float32Array): boolean => {
      const token = tokens[i]!
      if (i >= room || !checkToken(logits, input, i, token, tolerance)) {
        bad = i
        return false
      }
      const ends = rule.after(token)
      if (ends !== undefined && i < tokens.length - 1) {
        bad = i + 1 // the output should have ended with this token
        finish = ends
        return false
      }
      if (i === tokens.length - 1) {
        finish = ends
        if (ends === undefined)
          bad = tokens.length // it ended before the rule ends it
        else if (ends !== claimed.finish) bad = tokens.length // right tokens, wrong reason
      }
      return true
    }
    const invalid = tokens.findIndex((t) => !Number.isSafeInteger(t) || t < 0 || (vocab !== undefined && t >= vocab))
    if (tokens.length === 0) bad = 0
    else {
      // positions n-1 ... n+m-2 predict tokens 0 ... m-1 (the last claimed token is never fed)
      const upTo = invalid === -1 ? tokens.length : invalid
      const sequence = upTo === 0 ? [] : [...input.promptIds, ...tokens.slice(0, upTo - 1)]
      let past: Cache | undefined
      let done = false
      for (let from = 0; from < sequence.length && !done; from += this.#chunk) {
        const chunk = sequence.slice(from, from + this.#chunk)
        const { logits, present } = await this.#forward(chunk, past, from, call)
        past = present
        for (let row = 0; row < chunk.length && !done; row++) {
          const i = from + row - (n - 1)
          if (i < 0 || i >= upTo) continue
          if (!check(i, this.#row(logits, row))) done = true
        }
      }
      if (!done && invalid !== -1) bad = invalid
    }
    if (bad === -1) {
      const stats = this.#stats(input, tokens.length, 0, call)
      return { tokens: [...tokens], finish: claimed.finish, firstMismatch: -1, stats }
    }
    // the claim's tokens before `bad` are right; when the rule ended the output there, that is all
    const correct: GenerationOutput =
      finish !== undefined
        ? { tokens: tokens.slice(0, bad), finish }
        : await this.#continue(input, tokens.slice(0, bad), {}, call)
    return { ...correct, firstMismatch: bad, stats: this.#stats(input, correct.tokens.length, 0, call) }
  }

  #stats(input: GenerationInput, outputTokens: number, ttft: number, call: Call): LmStats {
    return {
      promptTokens: input.promptIds.length,
      outputTokens,
      ttftMicros: ttft,
      computeMicros: this.#micros() - call.started,
      passes: call.passes,
    }
  }

  /** Tokens the output may have: max_tokens, capped by the context window. */
  #room(input: GenerationInput): number {
    return Math.min(input.maxTokens, this.contextLength - input.promptIds.length)
  }

  #rule(input: GenerationInput, prefix: readonly number[], options: GenerateOptions): FinishRule {
    const rule = new FinishRule(options.ignoreEos === true ? new Set() : this.#eos, input.stop, this.#room(input), () =>
      this.files.tokenizer.detokenizer(),
    )
    for (const t of prefix) rule.after(t)
    return rule
  }

  #checkPrompt(input: GenerationInput): void {
    const n = input.promptIds.length
    if (n === 0) throw new InvalidInputError('the prompt has no tokens')
    if (n >= this.contextLength)
      throw new ContextLengthError(
        `the prompt has ${n} tokens; the model's context window is ${this.contextLength} tokens, prompt and output together, so the prompt may have at most ${this.contextLength - 1}`,
        { details: { promptTokens: n, contextLength: this.contextLength } },
      )
    const vocab = this.files.config.vocabSize
    const wrong = input.promptIds.find(
      (id) => !Number.isSafeInteger(id) || id < 0 || (vocab !== undefined && id >= vocab),
    )
    if (wrong !== undefined)
      throw new InvalidInputError(`prompt token ${wrong} is outside the model's vocabulary (${vocab} tokens)`)
    if (input.maxTokens < 1) throw new InvalidInputError('max_tokens must be at least 1')
  }

  /** Generates after prompt + `prefix` (output steps continue at prefix.length). */
  async #continue(
    input: GenerationInput,
    prefix: readonly number[],
    options: GenerateOptions,
    call: Call,
  ): Promise<Generation> {
    const rule = this.#rule(input, prefix, options)
    const tokens = [...prefix]
    const useCache = options.useCache ?? true
    let ttft = 0
    let past: Cache | undefined
    let pastLength = 0
    let feed = [...input.promptIds, ...prefix]
    let finish: FinishReason | undefined
    if (prefix.length >= this.#room(input)) finish = 'length' // nothing more fits (callers check this first)
    while (finish === undefined) {
      let logits: ort.Tensor | undefined
      let rows = 0
      for (let from = 0; from < feed.length; from += this.#chunk) {
        const chunk = feed.slice(from, from + this.#chunk)
        const out = await this.#forward(chunk, past, pastLength, call)
        past = out.present
        pastLength += chunk.length
        logits = out.logits
        rows = chunk.length
      }
      const step = tokens.length
      const token = sampleToken(this.#row(logits!, rows - 1), input, step)
      if (ttft === 0) ttft = Math.max(1, this.#micros() - call.started)
      tokens.push(token)
      options.onTokens?.([token])
      finish = rule.after(token)
      if (useCache) feed = [token]
      else {
        feed = [...input.promptIds, ...tokens]
        past = undefined
        pastLength = 0
      }
    }
    return { tokens, finish, stats: this.#stats(input, tokens.length, ttft, call) }
  }

  /** One run of the graph over `ids` after `pastLength` cached positions. */
  async #forward(
    ids: readonly number[],
    past: Cache | undefined,
    pastLength: number,
    call: Call,
  ): Promise<{ logits: ort.Tensor; present: Cache }> {
    const l = this.layout
    const feeds: Record<string, ort.Tensor> = { input_ids: int64(ids, [1, ids.length]) }
    const total = pastLength + ids.length
    if (l.attentionMask) feeds.attention_mask = new ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total])
    if (l.positionIds)
      feeds.position_ids = int64(
        Array.from(ids, (_, i) => pastLength + i),
        [1, ids.length],
      )
    if (l.useCacheBranch) feeds.use_cache_branch = new ort.Tensor('bool', Uint8Array.from([past ? 1 : 0]), [1])
    const cache = past ?? this.#emptyCache()
    l.layers.forEach((layer, i) => {
      feeds[layer.pastKey] = cache[2 * i]!
      feeds[layer.pastValue] = cache[2 * i + 1]!
    })
    let results: ort.InferenceSession.ReturnType
    call.passes++
    try {
      results = await this.#session.run(feeds)
    } catch (err) {
      throw new ModelRunError(`ONNX Runtime failed to run the language model: ${describeError(err)}`, { cause: err })
    }
    const logits = results.logits
    if (logits === undefined || logits.dims.length !== 3 || logits.dims[1] !== ids.length)
      throw new ModelRunError(`the language model returned logits of shape [${logits?.dims.join(', ')}]`)
    const present: Cache = []
    for (const layer of l.layers) {
      const k = results[layer.presentKey]
      const v = results[layer.presentValue]
      if (k === undefined || v === undefined)
        throw new ModelRunError(`the language model returned no ${layer.presentKey}`)
      present.push(k, v)
    }
    return { logits, present }
  }

  #emptyCache(): Cache {
    const dims = [1, this.layout.kvHeads, 0, this.layout.headDim]
    const empty =
      this.layout.kvType === 'float16'
        ? new ort.Tensor('float16', new Uint16Array(0), dims)
        : new ort.Tensor('float32', new Float32Array(0), dims)
    return this.layout.layers.flatMap(() => [empty, empty])
  }

  /** Row `row` of logits [1, seq, vocab] as float32 (a view for float32 graphs). */
  #row(logits: ort.Tensor, row: number): Float32Array {
    const vocab = logits.dims[2]!
    if (logits.type === 'float32') return (logits.data as Float32Array).subarray(row * vocab, (row + 1) * vocab)
    const half = (logits.data as Uint16Array).subarray(row * vocab, (row + 1) * vocab)
    return Float32Array.from(half, halfToFloat)
  }
}
