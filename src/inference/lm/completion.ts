/**
 * The gateway's side of a completion on a language model: the model's own tokenizer and chat
 * template turn the request into prompt token ids, the job runs on one worker (gateway.ts), and
 * the tokens it streams back become text pieces for the client.
 *
 *   request -> chat template / prompt -> token ids -> job (prompt_ids, sampling, stop)
 *        <- text pieces <- incremental detokenizer <- token ids streamed by the worker
 *
 * The text a client receives stops before a stop string (OpenAI's behaviour), although the
 * output tokens - what the receipt commits to and what is charged - include the tokens that
 * completed it: that is where the worker had to stop, and what an auditor checks.
 */
import { InferenceError } from '../errors.ts'
import type { Receipt } from '../job.ts'
import type { TensorMap } from '../tensor.ts'
import type { ModelRecord } from '../chain/state.ts'
import { generationTensors, parseOutputTensors, type FinishReason, type SamplingParams } from './types.ts'
import type { ChatMessage } from './model-files.ts'

export type { ChatMessage }

/** What a completion needs of a model's tokenizer files (`model-files.ts` implements it). */
export interface CompletionTokenizer {
  /** Token ids of plain text, without special tokens added. */
  encode(text: string): number[]
  /** The chat template rendered with a generation prompt, as token ids. */
  encodeChat(messages: readonly ChatMessage[]): number[]
  /** A stateful decoder: ids in, text pieces out, never splitting a character. */
  decoder(): { push(ids: readonly number[]): string; flush(): string }
  /** Defaults from generation_config.json. */
  defaults: { maxNewTokens?: number; temperature?: number; topP?: number; topK?: number }
}

/** A completion: a plain `prompt`, or chat `messages` (the model's chat template renders them). */
export interface CompletionRequest {
  prompt?: string
  messages?: readonly ChatMessage[]
  /** @default the model's generation_config max_new_tokens, else 64 */
  maxTokens?: number
  /** 0 (greedy) to 5, rounded to thousandths. @default the model's generation_config, else 1 */
  temperature?: number
  /** (0, 1], rounded to thousandths. @default 1 */
  topP?: number
  /** 0: no cut. @default 0 */
  topK?: number
  /** Omitted: the sampler is seeded from the job id (the answer is still reproducible from the job). */
  seed?: bigint
  stop?: readonly string[]
}

export interface CompletionResult {
  text: string
  finishReason: 'stop' | 'length'
  /** Why the worker stopped (an end-of-sequence token, max_tokens, a stop string). */
  finish: FinishReason
  promptTokens: number
  completionTokens: number
  receipt: Receipt
  worker: string
  /** Milliseconds from the call to the first token piece (or the answer, when nothing streamed). */
  ttftMs: number
}

/** What a completion runs jobs through (the gateway). */
export interface CompletionGateway {
  infer(request: {
    model: string
    inputs: TensorMap
    onTokens?(ids: readonly number[]): void
  }): Promise<{ outputs: TensorMap; receipt: Receipt; worker: string }>
}

export const DEFAULT_MAX_TOKENS = 64

const thousandths = (value: number, name: string, min: number, max: number): number => {
  if (!Number.isFinite(value) || value < min || value > max)
    throw new InferenceError('bad-input', `${name} must be a number in ${min}\u2013${max}, got ${value}`)
  return Math.round(value * 1000)
}

/** The job's sampling parameters from a request, the model's generation_config filling the gaps. */
export function samplingOf(request: CompletionRequest, defaults: CompletionTokenizer['defaults']): SamplingParams {
  const maxTokens = request.maxTokens ?? defaults.maxNewTokens ?? DEFAULT_MAX_TOKENS
  if (!Number.isSafeInteger(maxTokens) || maxTokens < 1)
    throw new InferenceError('bad-input', `max_tokens must be a positive integer, got ${maxTokens}`)
  const topK = request.topK ?? defaults.topK ?? 0
  if (!Number.isSafeInteger(topK) || topK < 0)
    throw new InferenceError('bad-input', `top_k must be a non-negative integer, got ${topK}`)
  const topPMilli = thousandths(request.topP ?? defaults.topP ?? 1, 'top_p', 0.001, 1)
  return {
    maxTokens,
    temperatureMilli: thousandths(request.temperature ?? defaults.temperature ?? 1, 'temperature', 0, 5),
    topPMilli,
    topK,
    seed: request.seed ?? null,
    stop: [...(request.stop ?? [])],
  }
}

/**
 * Runs one completion: one job on one worker. `onPiece` gets text as the worker streams tokens;
 * the returned text is the verified output's (the same, once the receipt checked out).
 */
export async function complete(
  gateway: CompletionGateway,
  model: ModelRecord,
  tokenizer: CompletionTokenizer,
  request: CompletionRequest,
  onPiece?: (piece: string) => void,
  now: () => number = () => performance.now(),
): Promise<CompletionResult> {
  const started = now()
  if ((request.prompt === undefined) === (request.messages === undefined))
    throw new InferenceError('bad-input', 'give either a prompt or messages')
  const promptIds =
    request.messages !== undefined ? tokenizer.encodeChat(request.messages) : tokenizer.encode(request.prompt ?? '')
  if (promptIds.length === 0) throw new InferenceError('bad-input', 'the prompt is empty')
  const context = model.contextLength ?? 0
  if (promptIds.length >= context)
    throw new InferenceError(
      'bad-input',
      `the prompt is ${promptIds.length} tokens; ${model.name}'s context window is ${context} tokens (prompt plus output)`,
    )
  const sampling = samplingOf(request, tokenizer.defaults)
  let inputs: TensorMap
  try {
    inputs = generationTensors(promptIds, sampling)
  } catch (err) {
    throw new InferenceError('bad-input', (err as Error).message, { cause: err })
  }
  const stream = new StopFilter(sampling.stop, tokenizer.decoder())
  let ttftMs: number | undefined
  const answer = await gateway.infer({
    model: model.cid,
    inputs,
    ...(onPiece === undefined
      ? {}
      : {
          onTokens: (ids: readonly number[]) => {
            ttftMs ??= now() - started
            const piece = stream.push(ids)
            if (piece.length > 0) onPiece(piece)
          },
        }),
  })
  const out = parseOutputTensors(answer.outputs)
  // the verified output decides the text; what streamed was its prefix
  const whole = new StopFilter(sampling.stop, tokenizer.decoder())
  const text = whole.push(out.tokens) + whole.flush()
  if (onPiece !== undefined) {
    const rest = stream.flush()
    if (rest.length > 0) onPiece(rest)
  }
  return {
    text,
    finishReason: out.finish === 'length' ? 'length' : 'stop',
    finish: out.finish,
    promptTokens: promptIds.length,
    completionTokens: out.tokens.length,
    receipt: answer.receipt,
    worker: answer.worker,
    ttftMs: ttftMs ?? now() - started,
  }
}

/**
 * Text pieces of a token stream, cut before the first stop string: a piece that might be the
 * start of a stop string is held back until the next piece decides it.
 */
export class StopFilter {
  readonly #stop: readonly string[]
  readonly #decoder: { push(ids: readonly number[]): string; flush(): string }
  #held = ''
  #stopped = false

  constructor(stop: readonly string[], decoder: { push(ids: readonly number[]): string; flush(): string }) {
    this.#stop = stop
    this.#decoder = decoder
  }

  push(ids: readonly number[]): string {
    if (this.#stopped) return ''
    return this.#emit(this.#held + this.#decoder.push(ids), false)
  }

  flush(): string {
    if (this.#stopped) return ''
    return this.#emit(this.#held + this.#decoder.flush(), true)
  }

  #emit(text: string, final: boolean): string {
    let cut = -1
    for (const s of this.#stop) {
      const at = text.indexOf(s)
      if (at !== -1 && (cut === -1 || at < cut)) cut = at
    }
    if (cut !== -1) {
      this.#stopped = true
      this.#held = ''
      return text.slice(0, cut)
    }
    if (final) {
      this.#held = ''
      return text
    }
    // hold back the longest tail that is a prefix of some stop string
    let keep = 0
    for (const s of this.#stop)
      for (let n = Math.min(s.length - 1, text.length); n > keep; n--)
        if (text.endsWith(s.slice(0, n))) {
          keep = n
          break
        }
    this.#held = text.slice(text.length - keep)
    return text.slice(0, text.length - keep)
  }
}
