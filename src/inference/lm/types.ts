/**
 * Generation as a job: how a language-model completion travels through the market as tensors.
 *
 * A completion is one job on one worker. Its inputs are three tensors, so the job's inputs
 * commitment, the worker protocol, receipts, settlement and audits work for it as for any model:
 *
 *   prompt_ids  int64 [1, n]   the prompt's token ids (chat template already applied)
 *   sampling    int64 [6]      [max_tokens, temperature  per mille, top_p  per mille, top_k, has_seed, seed]
 *   stop        uint8 [k]      stop strings, UTF-8, each followed by a 0 byte (k = 0: none)
 *
 * and its outputs two:
 *
 *   output_ids  int64 [1, m]   the generated token ids (m <= max_tokens; stop text included)
 *   finish      int32 [1]      0 = an end-of-sequence token, 1 = max_tokens, 2 = a stop string
 *
 * Sampling parameters are integers in thousandths (temperature 0.7 -> 700) so the job commits to
 * exact values: every worker and auditor samples with the same numbers. `has_seed = 0` means the
 * client gave no seed: the worker seeds the sampler from the job id (`seedFromJobId`), so a
 * generation is deterministic given its job and can be audited by teacher forcing.
 */
import { InvalidInputError } from '../../core/errors.ts'
import { utf8 } from '../../core/bytes.ts'
import { createTensor, type TensorMap, type TensorSpec } from '../tensor.ts'

/** The parameters a generation job commits to. */
export interface SamplingParams {
  maxTokens: number
  /** Thousandths; 0 is greedy (arg-max, lowest id on ties). */
  temperatureMilli: number
  /** Thousandths, 1-1000 (1000: no nucleus cut). */
  topPMilli: number
  /** 0: no top-k cut. */
  topK: number
  /** The client's seed; null: seeded from the job id. */
  seed: bigint | null
  stop: string[]
}

export interface GenerationInput extends Omit<SamplingParams, 'seed'> {
  promptIds: number[]
  /** The seed actually used (the client's, or `seedFromJobId`). */
  seed: bigint
}

export type FinishReason = 'eos' | 'length' | 'stop'
export const FINISH_CODES: Readonly<Record<FinishReason, number>> = Object.freeze({ eos: 0, length: 1, stop: 2 })

export interface GenerationOutput {
  tokens: number[]
  finish: FinishReason
}

/** Bounds on what a generation job may ask for (a model's own context length bounds it further). */
export const GENERATION_LIMITS = Object.freeze({
  maxStop: 4,
  maxStopBytes: 64,
  maxTokens: 32_768,
  maxTemperatureMilli: 5_000,
  maxTopK: 1_000_000,
})

/** The job inputs of every `lm` model (its registry record's `inputs`). */
export const LM_INPUTS: readonly TensorSpec[] = Object.freeze([
  { name: 'prompt_ids', type: 'int64', dims: [1, null] },
  { name: 'sampling', type: 'int64', dims: [6] },
  { name: 'stop', type: 'uint8', dims: [null] },
])

/** The job outputs of every `lm` model. */
export const LM_OUTPUTS: readonly TensorSpec[] = Object.freeze([
  { name: 'output_ids', type: 'int64', dims: [1, null] },
  { name: 'finish', type: 'int32', dims: [1] },
])

/** Checks sampling parameters; throws InvalidInputError naming the bad one. */
export function checkSampling(p: SamplingParams): void {
  const int = (v: number, name: string, min: number, max: number): void => {
    if (!Number.isSafeInteger(v) || v < min || v > max)
      throw new InvalidInputError(`${name} must be an integer in ${min}\u2013${max}, got ${v}`)
  }
  int(p.maxTokens, 'max_tokens', 1, GENERATION_LIMITS.maxTokens)
  int(p.temperatureMilli, 'temperature (thousandths)', 0, GENERATION_LIMITS.maxTemperatureMilli)
  int(p.topPMilli, 'top_p (thousandths)', 1, 1000)
  int(p.topK, 'top_k', 0, GENERATION_LIMITS.maxTopK)
  if (p.seed !== null && (p.seed < -(2n ** 63n) || p.seed >= 2n ** 63n))
    throw new InvalidInputError('seed must fit a signed 64-bit integer')
  if (p.stop.length > GENERATION_LIMITS.maxStop)
    throw new InvalidInputError(`at most ${GENERATION_LIMITS.maxStop} stop strings`)
  for (const s of p.stop) {
    if (s.length === 0 || s.includes('\0')) throw new InvalidInputError('stop strings must be non-empty, without NUL')
    if (utf8(s).length > GENERATION_LIMITS.maxStopBytes)
      throw new InvalidInputError(`a stop string is at most ${GENERATION_LIMITS.maxStopBytes} bytes`)
  }
}

/** The job inputs of a generation. */
export function generationTensors(promptIds: readonly number[], p: SamplingParams): TensorMap {
  checkSampling(p)
  const stopBytes = p.stop.flatMap((s) => [...utf8(s), 0])
  return {
    prompt_ids: createTensor('int64', [1, promptIds.length], BigInt64Array.from(promptIds, BigInt)),
    sampling: createTensor(
      'int64',
      [6],
      BigInt64Array.from([
        BigInt(p.maxTokens),
        BigInt(p.temperatureMilli),
        BigInt(p.topPMilli),
        BigInt(p.topK),
        p.seed === null ? 0n : 1n,
        p.seed ?? 0n,
      ]),
    ),
    stop: createTensor('uint8', [stopBytes.length], Uint8Array.from(stopBytes)),
  }
}

/** Reads a generation's job inputs back (shape checked against `LM_INPUTS` first by the caller). */
export function parseGenerationTensors(inputs: TensorMap): { promptIds: number[]; params: SamplingParams } {
  const prompt = inputs.prompt_ids
  const sampling = inputs.sampling
  const stop = inputs.stop
  if (prompt?.type !== 'int64' || sampling?.type !== 'int64' || sampling.data.length !== 6 || stop?.type !== 'uint8')
    throw new InvalidInputError('a generation needs prompt_ids int64 [1,n], sampling int64 [6] and stop uint8 [k]')
  const promptIds = Array.from(prompt.data, (v) => {
    if (v < 0n || v > 0x7fffffffn) throw new InvalidInputError(`token id ${v} is out of range`)
    return Number(v)
  })
  const s = sampling.data
  const small = (v: bigint, name: string): number => {
    if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidInputError(`${name} is out of range`)
    return Number(v)
  }
  if (stop.data.length > 0 && stop.data[stop.data.length - 1] !== 0)
    throw new InvalidInputError('each stop string must end with a 0 byte')
  const stopStrings: string[] = []
  let start = 0
  for (let i = 0; i < stop.data.length; i++) {
    if (stop.data[i] !== 0) continue
    stopStrings.push(new TextDecoder('utf-8', { fatal: true }).decode(stop.data.subarray(start, i)))
    start = i + 1
  }
  if (s[4] !== 0n && s[4] !== 1n) throw new InvalidInputError('has_seed must be 0 or 1')
  const params: SamplingParams = {
    maxTokens: small(s[0]!, 'max_tokens'),
    temperatureMilli: small(s[1]!, 'temperature'),
    topPMilli: small(s[2]!, 'top_p'),
    topK: small(s[3]!, 'top_k'),
    seed: s[4] === 1n ? s[5]! : null,
    stop: stopStrings,
  }
  checkSampling(params)
  return { promptIds, params }
}

/** The seed of a job that names none: the job id's first 8 bytes, as a signed 64-bit integer. */
export function seedFromJobId(jobId: Uint8Array): bigint {
  return new DataView(jobId.buffer, jobId.byteOffset, 8).getBigInt64(0, false)
}

/** What the runner is given: the job's inputs with the seed resolved. */
export function generationInput(inputs: TensorMap, jobId: Uint8Array): GenerationInput {
  const { promptIds, params } = parseGenerationTensors(inputs)
  return { ...params, promptIds, seed: params.seed ?? seedFromJobId(jobId) }
}

/** The job outputs of a generation. */
export function outputTensors(out: GenerationOutput): TensorMap {
  return {
    output_ids: createTensor('int64', [1, out.tokens.length], BigInt64Array.from(out.tokens, BigInt)),
    finish: createTensor('int32', [1], Int32Array.from([FINISH_CODES[out.finish]])),
  }
}

/** Reads a generation's outputs back; throws InvalidInputError when they are not one. */
export function parseOutputTensors(outputs: TensorMap): GenerationOutput {
  const ids = outputs.output_ids
  const finish = outputs.finish
  if (ids?.type !== 'int64' || ids.dims.length !== 2 || finish?.type !== 'int32' || finish.data.length !== 1)
    throw new InvalidInputError('generation outputs are output_ids int64 [1,m] and finish int32 [1]')
  const code = finish.data[0]
  const reason = (Object.keys(FINISH_CODES) as FinishReason[]).find((k) => FINISH_CODES[k] === code)
  if (reason === undefined) throw new InvalidInputError(`finish code ${code} is unknown`)
  return {
    tokens: Array.from(ids.data, (v) => {
      if (v < 0n || v > 0x7fffffffn) throw new InvalidInputError(`token id ${v} is out of range`)
      return Number(v)
    }),
    finish: reason,
  }
}

/** The files of an `lm` model besides its ONNX graph (registered by CID, fetched like the weights). */
export const LM_FILES = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'config.json'] as const
export type LmFileName = (typeof LM_FILES)[number]
/** Files a published language-model folder must have. */
export const LM_REQUIRED_FILES: readonly LmFileName[] = ['tokenizer.json', 'tokenizer_config.json']
export type LmFiles = Partial<Record<LmFileName, Uint8Array>>

/**
 * The job's inputs as the runner takes them: `has_seed = 1` with the seed resolved (the client's,
 * or `seedFromJobId`). The job still commits to the inputs the client sent.
 */
export function withResolvedSeed(inputs: TensorMap, jobId: Uint8Array): TensorMap {
  const sampling = inputs.sampling
  if (sampling?.type !== 'int64' || sampling.data.length !== 6) return inputs
  if (sampling.data[4] === 1n) return inputs
  const data = BigInt64Array.from(sampling.data)
  data[4] = 1n
  data[5] = seedFromJobId(jobId)
  return { ...inputs, sampling: createTensor('int64', [6], data) }
}
