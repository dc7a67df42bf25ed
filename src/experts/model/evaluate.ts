/**
 * The Proof-of-Learning score: a model's mean cross-entropy and top-1 accuracy on the public
 * validation set, computed the same on every node (math.ts), so validators reproduce a miner's
 * claim exactly.
 *
 * Window w (0 <= w < windows) is the tokens [w·T, (w+1)·T] (T = windowTokens, T + 1 tokens): a
 * teacher-forced pass over its first T tokens, row i predicting token i + 1. For each predicted
 * token: NLL = logsumexp(logits) - logit[target] in float64 (max, then sum exp(l - max) in id order,
 * then max + log sum), a NaN or infinite NLL counted as `MAX_NLL_NATS`; correct when the arg-max
 * (lowest id on ties) is the target. The NLLs are summed in float64 in window order, then
 * position order. Score: lossMicroNats = floor(mean · 10^6 + ½) (half up) as a bigint, accuracyPpm =
 * floor((correct · 10^6 + count/2) / count). Every layer routes to the architecture's top-k.
 */
import { AbortError } from '../../core/errors.ts'
import { argMax } from '../../inference/lm/sampler.ts'
import { TokenSetError } from '../errors.ts'
import type { MoeArchitecture, PolScore } from '../types.ts'
import { MoeEngine, type RoutingStats } from './engine.ts'
import { StaticExperts } from './local.ts'
import type { ExpertProvider } from './provider.ts'
import type { ExpertWeights, MoeTrunk, RouterWeights } from './weights.ts'

/** The NLL counted for a prediction whose logits are not finite, nats. */
export const MAX_NLL_NATS = 1000

export interface EvaluateInput {
  arch: MoeArchitecture
  trunk: MoeTrunk
  routers: readonly RouterWeights[]
  /** Where the experts run; or `experts`, in memory by block. */
  provider?: ExpertProvider
  experts?: ReadonlyMap<string, ExpertWeights>
  /** Expert block per layer per expert ('' for an empty slot). @default `layer{L}.expert{J}` */
  blocks?: readonly (readonly string[])[]
  tokens: Uint32Array
  windows: number
  windowTokens: number
  signal?: AbortSignal
}

/** Sums over predicted tokens, kept exactly as the score needs them. */
export interface LossSums {
  nll: number
  correct: number
  count: number
}

/** Adds the NLL and top-1 hits of `logits` ([targets.length, vocab]) against `targets`. */
export function addWindowLoss(sums: LossSums, logits: Float32Array, targets: ArrayLike<number>, vocab: number): void {
  for (let i = 0; i < targets.length; i++) {
    const row = logits.subarray(i * vocab, (i + 1) * vocab)
    const target = targets[i]!
    let max = -Infinity
    for (let j = 0; j < vocab; j++) if (row[j]! > max) max = row[j]!
    let sum = 0
    for (let j = 0; j < vocab; j++) sum += Math.exp(row[j]! - max)
    let nll = max + Math.log(sum) - row[target]!
    if (!Number.isFinite(nll)) nll = MAX_NLL_NATS
    sums.nll += nll
    sums.count++
    if (argMax(row) === target) sums.correct++
  }
}

/** The score of summed losses (see the module comment). */
export function scoreOf(sums: LossSums): PolScore {
  if (sums.count === 0) throw new TokenSetError('no token was evaluated')
  const mean = sums.nll / sums.count
  return {
    lossMicroNats: BigInt(Math.floor(mean * 1e6 + 0.5)),
    accuracyPpm: Math.floor((sums.correct * 1_000_000 + Math.floor(sums.count / 2)) / sums.count),
  }
}

/** Throws `TokenSetError` unless `tokens` holds `windows` windows of `windowTokens` for `arch`. */
export function checkWindows(arch: MoeArchitecture, tokens: Uint32Array, windows: number, windowTokens: number): void {
  if (!Number.isSafeInteger(windows) || windows < 1) throw new TokenSetError('windows must be a positive integer')
  if (!Number.isSafeInteger(windowTokens) || windowTokens < 1 || windowTokens > arch.contextLength)
    throw new TokenSetError(`windowTokens must be an integer in 1\u2013${arch.contextLength} (the context window)`)
  const need = windows * windowTokens + 1
  if (tokens.length < need)
    throw new TokenSetError(
      `${windows} windows of ${windowTokens} tokens need ${need} tokens; the set has ${tokens.length}`,
      {
        details: { need, have: tokens.length },
      },
    )
}

/** Window `w`'s input ids and targets. */
export function windowOf(
  tokens: Uint32Array,
  w: number,
  windowTokens: number,
): { ids: number[]; targets: Uint32Array } {
  const start = w * windowTokens
  return {
    ids: Array.from(tokens.subarray(start, start + windowTokens)),
    targets: tokens.subarray(start + 1, start + windowTokens + 1),
  }
}

/** Runs windows `which` (in order) through `engine`, adding their losses to `sums`; each window's routing to `onRouting`. */
export async function evaluateWindows(
  engine: MoeEngine,
  tokens: Uint32Array,
  which: Iterable<number>,
  windowTokens: number,
  sums: LossSums,
  options: { signal?: AbortSignal; onRouting?: (w: number, routing: RoutingStats) => void } = {},
): Promise<void> {
  for (const w of which) {
    if (options.signal?.aborted === true) throw new AbortError('the evaluation was aborted')
    const { ids, targets } = windowOf(tokens, w, windowTokens)
    const { logits, routing } = await engine.teacherForce(ids, { signal: options.signal })
    options.onRouting?.(w, routing)
    addWindowLoss(sums, logits, targets, engine.arch.vocabSize)
  }
}

/** The Proof-of-Learning score of a model (see the module comment). */
export async function evaluateModel(input: EvaluateInput): Promise<PolScore> {
  const { arch, tokens, windows, windowTokens } = input
  checkWindows(arch, tokens, windows, windowTokens)
  const provider = input.provider ?? new StaticExperts(input.experts ?? new Map())
  const engine = new MoeEngine(arch, input.trunk, input.routers, provider, { blocks: input.blocks })
  const sums: LossSums = { nll: 0, correct: 0, count: 0 }
  const all = Array.from({ length: windows }, (_, w) => w)
  await evaluateWindows(engine, tokens, all, windowTokens, sums, { signal: input.signal })
  return scoreOf(sums)
}

/** A token file (uint32 little-endian) checked against the vocabulary. Throws `TokenSetError`. */
export function parseValidationTokens(bytes: Uint8Array, vocabSize: number): Uint32Array {
  if (bytes.byteLength % 4 !== 0)
    throw new TokenSetError(`a token file has 4 bytes per token; this one has ${bytes.byteLength} bytes`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const out = new Uint32Array(bytes.byteLength / 4)
  for (let i = 0; i < out.length; i++) {
    const t = view.getUint32(4 * i, true)
    if (t >= vocabSize)
      throw new TokenSetError(`token ${i} is ${t}, outside the vocabulary (${vocabSize} tokens)`, {
        details: { index: i, token: t, vocabSize },
      })
    out[i] = t
  }
  return out
}
