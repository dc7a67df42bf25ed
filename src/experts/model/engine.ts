/**
 * Generation on a Mixture-of-Experts model whose experts live elsewhere: this engine computes the
 * trunk (embeddings, attention, norms, head) and each layer's router, and hands the rows routed
 * to each expert to an `ExpertProvider` (local.ts runs them in this process; the coordinator
 * calls the peers that host them).
 *
 * The forward is Mixtral's, computed with the kernels of math.ts (so every node gets the same
 * numbers): for each layer, h = RMSNorm(x)·attn_norm; q, k, v = h·W^T; rotary positions on q and k;
 * grouped-query causal attention (softmax of q·k/sqrthd over the positions so far); x += o(attn);
 * h = RMSNorm(x)·ffn_norm; the router's logits h·R^T -> softmax (empty slots excluded) -> the top
 * k experts (ties: lower index) -> gates (renormalized over the k for `softmax-topk-renorm`); the
 * rows are grouped by expert into one `ExpertCall` each, the provider runs the layer's calls, and
 * x += sum gate · expert(h), summed in rank order. An answer that is `null` is masked: the row's
 * other gates are scaled so they sum to what the k gates summed to (a row with every expert
 * masked adds nothing). Then the final RMSNorm and the head give the logits.
 *
 * `generate` keeps a KV cache: the prompt goes through as one batch of rows, then one row per
 * generated token. Every row is computed on its own (math.ts), so this gives exactly the logits
 * of recomputing the whole sequence each step. Tokens are drawn by the seeded sampler of the
 * dense LMs (`sampleToken`). A generation ends after a stop id ('stop', the id is part of the
 * output) or after max_tokens, capped by the context window ('length').
 *
 * `logitsFor` is the teacher-forced forward over a window (evaluation, training).
 */
import { performance } from 'node:perf_hooks'
import { AbortError, InvalidInputError } from '../../core/errors.ts'
import { ContextLengthError } from '../../inference/lm/errors.ts'
import { sampleToken, type SamplerParams } from '../../inference/lm/sampler.ts'
import { expertName, type MoeArchitecture } from '../types.ts'
import { addInPlace, dot, matMul, rmsNorm, rope, softmax } from './math.ts'
import type { ExpertAnswer, ExpertCall, ExpertProvider } from './provider.ts'
import { checkArchitecture, normEps, type MoeTrunk, type RouterWeights } from './weights.ts'

export type MoeFinish = 'stop' | 'length'

export interface MoeGenerateOptions {
  /** Most tokens generated (capped by the context window). */
  maxTokens: number
  sampler: SamplerParams
  /** Token ids that end the generation (kept in the output). */
  stopIds?: readonly number[]
  /** Experts per token (top_k_experts), 1 ... arch.expertsPerLayer. @default arch.topK */
  topK?: number
  signal?: AbortSignal
  /** Called with each token as soon as it is drawn. */
  onToken?: (id: number) => void
  /** Tests and audits: the logits each token was drawn from (a view, valid during the call). */
  onLogits?: (logits: Float32Array, step: number) => void
}

export interface ForwardOptions {
  /** @default arch.topK */
  topK?: number
  signal?: AbortSignal
}

/** How a generation (or forward) was routed. */
export interface RoutingStats {
  /** [layer][expert]: rows (token routings) sent to the expert. */
  expertTokens: number[][]
  /** Expert calls answered, by host ('local' or a DID). */
  hosts: Record<string, number>
  /** Token routings masked because their expert did not answer. */
  masked: number
  /** Per expert block: token routings answered, the summed latency of its calls, the hosts that answered. */
  blocks: Record<string, { calls: number; latencyMs: number; hosts: string[] }>
  /** Time in the trunk and routers (this process), ms. */
  trunkMs: number
  /** Time waiting for the provider's answers, ms. */
  expertMs: number
}

export interface MoeGeneration {
  /** The output ids (prompt excluded). */
  ids: number[]
  finish: MoeFinish
  promptTokens: number
  routing: RoutingStats
  /** The whole call, ms. */
  totalMs: number
}

export interface MoeEngineOptions {
  /**
   * Expert block per layer per expert (the ParamSet's `experts`); '' marks an empty slot, never
   * routed to. @default `layer{L}.expert{J}` for every slot
   */
  blocks?: readonly (readonly string[])[]
  /** A monotonic clock in ms, for the stats only. @default performance.now */
  now?: () => number
}

export function emptyRoutingStats(arch: MoeArchitecture): RoutingStats {
  return {
    expertTokens: Array.from({ length: arch.nLayers }, () => new Array<number>(arch.expertsPerLayer).fill(0)),
    hosts: {},
    masked: 0,
    blocks: {},
    trunkMs: 0,
    expertMs: 0,
  }
}

/** Keys and values of every layer for positions 0 ... length-1 (row-major [position, Hkv·hd]). */
class KvCache {
  readonly k: Float32Array[]
  readonly v: Float32Array[]
  length = 0

  constructor(layers: number, positions: number, width: number) {
    this.k = Array.from({ length: layers }, () => new Float32Array(positions * width))
    this.v = Array.from({ length: layers }, () => new Float32Array(positions * width))
  }
}

interface Pass {
  topK: number
  signal: AbortSignal | undefined
  stats: RoutingStats
}

/**
 * Top-k of probs[off ... off+n) by value, ties to the lower index (probabilities that are 0 -
 * empty slots - are never picked); writes the picked indices to `out` and returns how many.
 */
function topK(probs: Float64Array, n: number, k: number, excluded: readonly boolean[], out: Int32Array): number {
  let count = 0
  for (let s = 0; s < k; s++) {
    let best = -1
    let bestValue = -Infinity
    for (let j = 0; j < n; j++) {
      if (excluded[j] === true) continue
      let taken = false
      for (let t = 0; t < count; t++) if (out[t] === j) taken = true
      if (taken) continue
      if (probs[j]! > bestValue) {
        best = j
        bestValue = probs[j]!
      }
    }
    if (best === -1) break
    out[count++] = best
  }
  return count
}

export class MoeEngine {
  readonly arch: MoeArchitecture
  readonly #trunk: MoeTrunk
  readonly #routers: readonly RouterWeights[]
  readonly #provider: ExpertProvider
  readonly #blocks: readonly (readonly string[])[]
  readonly #empty: readonly boolean[][]
  readonly #now: () => number
  readonly #eps: number
  readonly #headDim: number
  readonly #kvWidth: number

  constructor(
    arch: MoeArchitecture,
    trunk: MoeTrunk,
    routers: readonly RouterWeights[],
    provider: ExpertProvider,
    options: MoeEngineOptions = {},
  ) {
    checkArchitecture(arch)
    if (routers.length !== arch.nLayers || trunk.layers.length !== arch.nLayers)
      throw new InvalidInputError(
        `the model has ${arch.nLayers} layers; got ${trunk.layers.length} trunk layers and ${routers.length} routers`,
      )
    const blocks =
      options.blocks ??
      Array.from({ length: arch.nLayers }, (_, l) =>
        Array.from({ length: arch.expertsPerLayer }, (_, j) => expertName(l, j)),
      )
    if (blocks.length !== arch.nLayers || blocks.some((row) => row.length !== arch.expertsPerLayer))
      throw new InvalidInputError(`blocks must name ${arch.expertsPerLayer} experts for each of ${arch.nLayers} layers`)
    this.arch = arch
    this.#trunk = trunk
    this.#routers = routers
    this.#provider = provider
    this.#blocks = blocks
    this.#empty = blocks.map((row) => row.map((b) => b === ''))
    this.#now = options.now ?? (() => performance.now())
    this.#eps = normEps(arch)
    this.#headDim = arch.dModel / arch.nHeads
    this.#kvWidth = arch.nKvHeads * this.#headDim
  }

  /** Generates after `promptIds`. Throws `ContextLengthError`, `InvalidInputError`, `AbortError`, the provider's errors. */
  async generate(promptIds: readonly number[], options: MoeGenerateOptions): Promise<MoeGeneration> {
    const started = this.#now()
    const n = promptIds.length
    this.#checkIds(promptIds, 'prompt')
    if (n >= this.arch.contextLength)
      throw new ContextLengthError(
        `the prompt has ${n} tokens; the model's context window is ${this.arch.contextLength} tokens, prompt and output together`,
        { details: { promptTokens: n, contextLength: this.arch.contextLength } },
      )
    if (!Number.isSafeInteger(options.maxTokens) || options.maxTokens < 1)
      throw new InvalidInputError('max_tokens must be a positive integer')
    const room = Math.min(options.maxTokens, this.arch.contextLength - n)
    const pass = this.#pass(options)
    const stop = new Set(options.stopIds ?? [])
    const cache = new KvCache(this.arch.nLayers, n + room, this.#kvWidth)
    const ids: number[] = []
    let feed: readonly number[] = promptIds
    let finish: MoeFinish | undefined
    while (finish === undefined) {
      const logits = await this.#forward(feed, cache, pass, false)
      const step = ids.length
      options.onLogits?.(logits, step)
      const token = sampleToken(logits, options.sampler, step)
      ids.push(token)
      options.onToken?.(token)
      if (stop.has(token)) finish = 'stop'
      else if (ids.length >= room) finish = 'length'
      feed = [token]
    }
    return { ids, finish, promptTokens: n, routing: pass.stats, totalMs: this.#now() - started }
  }

  /** Logits [ids.length, vocab] of a teacher-forced pass over `ids` (row i predicts token i + 1). */
  async logitsFor(ids: readonly number[], options: ForwardOptions = {}): Promise<Float32Array> {
    return (await this.teacherForce(ids, options)).logits
  }

  /** `logitsFor` with the pass's routing. */
  async teacherForce(
    ids: readonly number[],
    options: ForwardOptions = {},
  ): Promise<{ logits: Float32Array; routing: RoutingStats }> {
    this.#checkIds(ids, 'window')
    if (ids.length > this.arch.contextLength)
      throw new ContextLengthError(
        `a window of ${ids.length} tokens is longer than the context window (${this.arch.contextLength})`,
        {
          details: { promptTokens: ids.length, contextLength: this.arch.contextLength },
        },
      )
    const pass = this.#pass(options)
    const cache = new KvCache(this.arch.nLayers, ids.length, this.#kvWidth)
    const logits = await this.#forward(ids, cache, pass, true)
    return { logits, routing: pass.stats }
  }

  #pass(options: ForwardOptions): Pass {
    const k = options.topK ?? this.arch.topK
    if (!Number.isSafeInteger(k) || k < 1 || k > this.arch.expertsPerLayer)
      throw new InvalidInputError(`top_k_experts must be an integer in 1\u2013${this.arch.expertsPerLayer}`)
    return { topK: k, signal: options.signal, stats: emptyRoutingStats(this.arch) }
  }

  #checkIds(ids: readonly number[], what: string): void {
    if (ids.length === 0) throw new InvalidInputError(`the ${what} has no tokens`)
    const vocab = this.arch.vocabSize
    const wrong = ids.find((id) => !Number.isSafeInteger(id) || id < 0 || id >= vocab)
    if (wrong !== undefined)
      throw new InvalidInputError(`${what} token ${wrong} is outside the model's vocabulary (${vocab} tokens)`)
  }

  /** Runs `ids` at positions cache.length ..., appending to the cache; logits of every row or the last. */
  async #forward(ids: readonly number[], cache: KvCache, pass: Pass, allRows: boolean): Promise<Float32Array> {
    const { dModel: d, nHeads: H, nKvHeads: Hkv, vocabSize: V, ropeTheta } = this.arch
    const hd = this.#headDim
    const kvw = this.#kvWidth
    const n = ids.length
    const pos0 = cache.length
    const stats = pass.stats
    let t0 = this.#now()
    const x = new Float32Array(n * d)
    for (let r = 0; r < n; r++) x.set(this.#trunk.embed.subarray(ids[r]! * d, (ids[r]! + 1) * d), r * d)
    for (let l = 0; l < this.arch.nLayers; l++) {
      if (pass.signal?.aborted === true) throw new AbortError('the generation was aborted')
      const layer = this.#trunk.layers[l]!
      const h = rmsNorm(x, layer.attnNorm, n, d, this.#eps)
      const q = matMul(layer.q, h, n, H * hd, d)
      const k = matMul(layer.k, h, n, kvw, d)
      const v = matMul(layer.v, h, n, kvw, d)
      rope(q, n, H, hd, pos0, ropeTheta)
      rope(k, n, Hkv, hd, pos0, ropeTheta)
      cache.k[l]!.set(k, pos0 * kvw)
      cache.v[l]!.set(v, pos0 * kvw)
      const att = this.#attention(q, cache.k[l]!, cache.v[l]!, n, pos0)
      addInPlace(x, matMul(layer.o, att, n, d, H * hd))
      const h2 = rmsNorm(x, layer.ffnNorm, n, d, this.#eps)
      const routed = this.#route(l, h2, n, pass)
      const t1 = this.#now()
      stats.trunkMs += t1 - t0
      const answers = routed.calls.length === 0 ? [] : await this.#provider.runLayer(routed.calls, pass.signal)
      t0 = this.#now()
      stats.expertMs += t0 - t1
      this.#combine(x, n, routed, answers, stats)
    }
    cache.length = pos0 + n
    const first = allRows ? 0 : n - 1
    const rows = n - first
    const last = rmsNorm(x.subarray(first * d), this.#trunk.norm, rows, d, this.#eps)
    const logits = matMul(this.#trunk.head, last, rows, V, d)
    stats.trunkMs += this.#now() - t0
    return logits
  }

  /** Causal grouped-query attention of n query rows at positions pos0 ... over the cache. */
  #attention(q: Float32Array, kc: Float32Array, vc: Float32Array, n: number, pos0: number): Float32Array {
    const { nHeads: H, nKvHeads: Hkv } = this.arch
    const hd = this.#headDim
    const kvw = this.#kvWidth
    const group = H / Hkv
    const scale = 1 / Math.sqrt(hd)
    const out = new Float32Array(n * H * hd)
    const scores = new Float64Array(pos0 + n)
    const acc = new Float64Array(hd)
    for (let r = 0; r < n; r++) {
      const upTo = pos0 + r + 1
      for (let h = 0; h < H; h++) {
        const qOff = (r * H + h) * hd
        const kvOff = Math.floor(h / group) * hd
        for (let t = 0; t < upTo; t++) scores[t] = dot(q, qOff, kc, t * kvw + kvOff, hd) * scale
        softmax(scores, 0, upTo)
        acc.fill(0)
        for (let t = 0; t < upTo; t++) {
          const p = scores[t]!
          const vOff = t * kvw + kvOff
          for (let j = 0; j < hd; j++) acc[j]! += p * vc[vOff + j]!
        }
        for (let j = 0; j < hd; j++) out[qOff + j] = acc[j]!
      }
    }
    return out
  }

  /** The router's choice for each row, and the calls grouping the rows by expert. */
  #route(layer: number, h: Float32Array, n: number, pass: Pass): Routed {
    const { dModel: d, expertsPerLayer: E } = this.arch
    const k = pass.topK
    const empty = this.#empty[layer]!
    const logits = matMul(this.#routers[layer]!.weight, h, n, E, d)
    const probs = new Float64Array(E)
    const picked = new Int32Array(k)
    const slotExpert = new Int32Array(n * k).fill(-1)
    const gates = new Float64Array(n * k)
    const perExpert: number[][] = Array.from({ length: E }, () => [])
    for (let r = 0; r < n; r++) {
      for (let j = 0; j < E; j++) probs[j] = empty[j] === true ? -Infinity : logits[r * E + j]!
      softmax(probs)
      const count = topK(probs, E, k, empty, picked)
      let sum = 0
      for (let s = 0; s < count; s++) sum += probs[picked[s]!]!
      for (let s = 0; s < count; s++) {
        const j = picked[s]!
        slotExpert[r * k + s] = j
        gates[r * k + s] = this.arch.gating === 'softmax-topk-renorm' ? probs[j]! / sum : probs[j]!
        perExpert[j]!.push(r * k + s)
      }
    }
    const calls: ExpertCall[] = []
    /** For each call, the slots (row · k + rank) it serves, in row order. */
    const callSlots: number[][] = []
    for (let j = 0; j < E; j++) {
      const slots = perExpert[j]!
      if (slots.length === 0) continue
      const input = new Float32Array(slots.length * d)
      slots.forEach((slot, i) => {
        const r = Math.floor(slot / k)
        input.set(h.subarray(r * d, (r + 1) * d), i * d)
      })
      calls.push({ layer, expert: j, block: this.#blocks[layer]![j]!, input, rows: slots.length })
      callSlots.push(slots)
      pass.stats.expertTokens[layer]![j]! += slots.length
    }
    return { k, slotExpert, gates, calls, callSlots }
  }

  /** x += sum gate · answer per row (rank order), masked experts' gates given to the others. */
  #combine(
    x: Float32Array,
    n: number,
    routed: Routed,
    answers: ReadonlyArray<ExpertAnswer | null>,
    stats: RoutingStats,
  ): void {
    const d = this.arch.dModel
    const { k, gates, calls, callSlots } = routed
    // slot -> (answer output, row in it); null output: masked
    const slotOut: Array<Float32Array | null> = new Array<Float32Array | null>(n * k).fill(null)
    const slotRow = new Int32Array(n * k)
    calls.forEach((call, c) => {
      const a = answers[c] ?? null
      const slots = callSlots[c]!
      if (a === null) {
        stats.masked += slots.length
        return
      }
      if (a.output.length !== call.rows * d)
        throw new InvalidInputError(
          `expert ${call.block} answered ${a.output.length} values for ${call.rows} rows of ${d}`,
        )
      stats.hosts[a.host] = (stats.hosts[a.host] ?? 0) + 1
      const b = (stats.blocks[call.block] ??= { calls: 0, latencyMs: 0, hosts: [] })
      b.calls += call.rows
      b.latencyMs += a.latencyMs
      if (!b.hosts.includes(a.host)) b.hosts.push(a.host)
      slots.forEach((slot, i) => {
        slotOut[slot] = a.output
        slotRow[slot] = i
      })
    })
    const acc = new Float64Array(d)
    const w = new Float64Array(k)
    for (let r = 0; r < n; r++) {
      let all = 0
      let kept = 0
      for (let s = 0; s < k; s++) {
        const slot = r * k + s
        if (routed.slotExpert[slot] === -1) continue
        all += gates[slot]!
        if (slotOut[slot] !== null) kept += gates[slot]!
      }
      if (kept === 0) continue
      const scale = kept === all ? 1 : all / kept
      for (let s = 0; s < k; s++) w[s] = slotOut[r * k + s] === null ? 0 : gates[r * k + s]! * scale
      acc.fill(0)
      for (let s = 0; s < k; s++) {
        const out = slotOut[r * k + s]
        if (out === null || out === undefined) continue
        const g = w[s]!
        const off = slotRow[r * k + s]! * d
        for (let i = 0; i < d; i++) acc[i]! += g * out[off + i]!
      }
      for (let i = 0, xo = r * d; i < d; i++) x[xo + i] = x[xo + i]! + acc[i]!
    }
  }
}

interface Routed {
  k: number
  /** [n · k]: the expert of each row's rank, -1 when fewer than k were available. */
  slotExpert: Int32Array
  gates: Float64Array
  calls: ExpertCall[]
  callSlots: number[][]
}
