/**
 * The built-in trainer of one expert: a zeroth-order evolution strategy, so a node trains with
 * nothing but forward passes (the same engine it serves with).
 *
 * Each step draws a Gaussian direction eps (a seeded PRNG: a seed gives the same run everywhere)
 * and evaluates the training loss at theta + sigmaeps and theta - sigmaeps (antithetic pair); the gradient estimate
 * g = (L+ - L-)/(2sigma) gives a third candidate theta - eta·g·eps. The best of the three replaces theta only when
 * its loss is below theta's: the training loss never rises. The loss is the mean NLL of the training
 * windows whose tokens route through the expert at least once (found by one pass with the starting
 * weights; the expert cannot change the routing of its own layer or below, so the other windows'
 * losses do not depend on it).
 *
 * Inference comes first: the trainer checks `shouldYield()` before every layer of every window
 * (one unit of work: a layer's trunk and experts for one window, a few ms on small models) and
 * gives the event loop a turn there (`setImmediate`); while `shouldYield()` is true it waits,
 * polling every `pollMs`.
 */
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises'
import { AbortError, InvalidInputError } from '../../core/errors.ts'
import type { MoeArchitecture } from '../types.ts'
import { MoeEngine } from './engine.ts'
import { checkWindows, evaluateWindows, type LossSums } from './evaluate.ts'
import { runExpert } from './local.ts'
import type { ExpertAnswer, ExpertCall, ExpertProvider } from './provider.ts'
import type { ExpertWeights, MoeTrunk, RouterWeights } from './weights.ts'

export interface TrainInput {
  arch: MoeArchitecture
  trunk: MoeTrunk
  routers: readonly RouterWeights[]
  /** Runs the other experts. */
  provider: ExpertProvider
  /** Expert block per layer per expert. @default `layer{L}.expert{J}` */
  blocks?: readonly (readonly string[])[]
  layer: number
  expert: number
  /** The starting weights (not modified). */
  weights: ExpertWeights
  /** Training tokens, cut into windows as the validation set is (evaluate.ts). */
  tokens: Uint32Array
  windowTokens: number
  /** @default as many as the tokens hold */
  windows?: number
  steps: number
  /** Perturbation scale sigma. @default 0.02 */
  sigma?: number
  /** Step size eta of the gradient-estimate candidate. @default 0.05 */
  learningRate?: number
  seed: number
  /** True while inference needs the machine: the trainer pauses. */
  shouldYield?: () => boolean
  /** Called when the trainer pauses for `shouldYield`. */
  onPause?: () => void
  /** While paused, how often `shouldYield` is polled. @default 5 */
  pollMs?: number
  /** Called after each step with its loss. */
  onStep?: (step: number, loss: number) => void
  signal?: AbortSignal
}

export interface TrainResult {
  weights: ExpertWeights
  /** losses[0]: the starting loss; losses[s]: after step s (mean NLL, nats). */
  losses: number[]
  /** Steps whose change was kept. */
  accepted: number
  /** The training windows used (those routing through the expert). */
  windows: number[]
}

/** A seeded standard normal generator (mulberry32 + Box-Muller). */
export class GaussianRng {
  #state: number
  #spare: number | undefined

  constructor(seed: number) {
    this.#state = seed >>> 0
  }

  uniform(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0
    let t = this.#state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  normal(): number {
    if (this.#spare !== undefined) {
      const s = this.#spare
      this.#spare = undefined
      return s
    }
    const u = 1 - this.uniform() // (0, 1]
    const v = this.uniform()
    const r = Math.sqrt(-2 * Math.log(u))
    this.#spare = r * Math.sin(2 * Math.PI * v)
    return r * Math.cos(2 * Math.PI * v)
  }
}

/** Pauses while `shouldYield()` holds; gives the event loop a turn at every checkpoint. */
class Yielder {
  readonly #should: () => boolean
  readonly #onPause: (() => void) | undefined
  readonly #pollMs: number

  constructor(should: () => boolean, onPause: (() => void) | undefined, pollMs: number) {
    this.#should = should
    this.#onPause = onPause
    this.#pollMs = pollMs
  }

  async checkpoint(signal: AbortSignal | undefined): Promise<void> {
    await nextTurn()
    if (this.#should()) {
      this.#onPause?.()
      while (this.#should()) {
        if (signal?.aborted === true) break
        await sleep(this.#pollMs)
      }
    }
    if (signal?.aborted === true) throw new AbortError('training was aborted')
  }
}

/** Serves the trained expert from the current candidate, the rest from the base provider. */
class CandidateProvider implements ExpertProvider {
  candidate: ExpertWeights
  readonly #base: ExpertProvider
  readonly #layer: number
  readonly #expert: number
  readonly #yielder: Yielder

  constructor(base: ExpertProvider, layer: number, expert: number, start: ExpertWeights, yielder: Yielder) {
    this.#base = base
    this.#layer = layer
    this.#expert = expert
    this.candidate = start
    this.#yielder = yielder
  }

  async runLayer(calls: readonly ExpertCall[], signal?: AbortSignal): Promise<Array<ExpertAnswer | null>> {
    await this.#yielder.checkpoint(signal)
    const mine = (c: ExpertCall): boolean => c.layer === this.#layer && c.expert === this.#expert
    const others = calls.filter((c) => !mine(c))
    const answered = others.length === 0 ? [] : await this.#base.runLayer(others, signal)
    let o = 0
    return calls.map((c) =>
      mine(c) ? { output: runExpert(this.candidate, c.input, c.rows), host: 'local', latencyMs: 0 } : answered[o++]!,
    )
  }
}

function flatten(w: ExpertWeights): Float32Array {
  const parts = [w.w1, w.w2, ...(w.w3 === undefined ? [] : [w.w3])]
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0))
  let off = 0
  for (const p of parts) {
    out.set(p, off)
    off += p.length
  }
  return out
}

function unflatten(like: ExpertWeights, flat: Float32Array): ExpertWeights {
  const n1 = like.w1.length
  const n2 = like.w2.length
  const out: ExpertWeights = {
    ffn: like.ffn,
    dModel: like.dModel,
    dFf: like.dFf,
    w1: flat.slice(0, n1),
    w2: flat.slice(n1, n1 + n2),
  }
  if (like.w3 !== undefined) out.w3 = flat.slice(n1 + n2)
  return out
}

/** Trains one expert (see the module comment). Throws `InvalidInputError`, `TokenSetError`, `AbortError`. */
export async function train(input: TrainInput): Promise<TrainResult> {
  const { arch, layer, expert, tokens, windowTokens } = input
  if (!Number.isSafeInteger(layer) || layer < 0 || layer >= arch.nLayers)
    throw new InvalidInputError(`layer must be in 0\u2013${arch.nLayers - 1}`)
  if (!Number.isSafeInteger(expert) || expert < 0 || expert >= arch.expertsPerLayer)
    throw new InvalidInputError(`expert must be in 0\u2013${arch.expertsPerLayer - 1}`)
  if (!Number.isSafeInteger(input.steps) || input.steps < 0)
    throw new InvalidInputError('steps must be a non-negative integer')
  const windows = input.windows ?? Math.floor((tokens.length - 1) / windowTokens)
  checkWindows(arch, tokens, windows, windowTokens)
  const sigma = input.sigma ?? 0.02
  const lr = input.learningRate ?? 0.05
  const yielder = new Yielder(input.shouldYield ?? (() => false), input.onPause, input.pollMs ?? 5)
  const provider = new CandidateProvider(input.provider, layer, expert, input.weights, yielder)
  const engine = new MoeEngine(arch, input.trunk, input.routers, provider, { blocks: input.blocks })
  const signal = input.signal

  // the windows that route through the expert, and the starting loss over them
  const used: number[] = []
  const first: LossSums = { nll: 0, correct: 0, count: 0 }
  await evaluateWindows(
    engine,
    tokens,
    Array.from({ length: windows }, (_, w) => w),
    windowTokens,
    first,
    {
      signal,
      onRouting: (w, routing) => {
        if (routing.expertTokens[layer]![expert]! > 0) used.push(w)
      },
    },
  )
  const lossOf = async (weights: ExpertWeights): Promise<number> => {
    provider.candidate = weights
    const sums: LossSums = { nll: 0, correct: 0, count: 0 }
    await evaluateWindows(engine, tokens, used, windowTokens, sums, { signal })
    return sums.nll / sums.count
  }
  let theta = flatten(input.weights)
  let current = input.weights
  const losses: number[] = []
  if (used.length === 0) {
    // no window reaches the expert: its loss cannot move
    const flat = first.nll / first.count
    for (let s = 0; s <= input.steps; s++) losses.push(flat)
    return { weights: current, losses, accepted: 0, windows: used }
  }
  let loss = await lossOf(current)
  losses.push(loss)
  const rng = new GaussianRng(input.seed)
  const eps = new Float32Array(theta.length)
  let accepted = 0
  for (let step = 1; step <= input.steps; step++) {
    for (let i = 0; i < eps.length; i++) eps[i] = rng.normal()
    const plus = theta.map((v, i) => v + sigma * eps[i]!)
    const minus = theta.map((v, i) => v - sigma * eps[i]!)
    const lPlus = await lossOf(unflatten(current, plus))
    const lMinus = await lossOf(unflatten(current, minus))
    const g = (lPlus - lMinus) / (2 * sigma)
    const moved = theta.map((v, i) => v - lr * g * eps[i]!)
    const lMoved = await lossOf(unflatten(current, moved))
    let best: Float32Array | undefined
    let bestLoss = loss
    for (const [cand, l] of [
      [moved, lMoved],
      [plus, lPlus],
      [minus, lMinus],
    ] as const)
      if (l < bestLoss) {
        best = cand
        bestLoss = l
      }
    if (best !== undefined) {
      theta = best
      current = unflatten(current, best)
      loss = bestLoss
      accepted++
    }
    losses.push(loss)
    input.onStep?.(step, loss)
  }
  provider.candidate = current
  return { weights: current, losses, accepted, windows: used }
}
