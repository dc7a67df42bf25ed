/**
 * Experts run in this process. `LocalExperts` loads an expert's payload on demand through
 * `load(block)` (the content store), parses it and keeps it in a least-recently-used cache under a
 * memory budget, so a node serves a model far larger than its memory: a generation needs only the
 * experts its tokens route to. `StaticExperts` runs experts already in memory (evaluation,
 * training, tests). `runExpert` is the feed-forward network itself, shared with the network
 * server.
 *
 * Cache rules:
 *  - a budget below one expert (`expertBytes(arch)`) is an `ExpertBudgetError`;
 *  - before an expert is inserted, the least recently used unpinned experts are evicted until it
 *    fits; pinned experts are never evicted (pinning more than the budget is refused);
 *  - expert groups (`setGroups`): a miss on a member loads the whole group when the group fits the
 *    budget, a use of one member refreshes all, and evicting one evicts the others with it;
 *  - `runLayer` runs the calls whose experts are resident first, so a layer's misses never evict
 *    an expert the same layer still needs when the budget holds them all;
 *  - an expert that cannot be loaded or parsed is answered `null` (the engine masks it); fewer
 *    than `kMin` answers is an `ExpertUnavailableError`.
 */
import { performance } from 'node:perf_hooks'
import { AbortError } from '../../core/errors.ts'
import { ExpertBudgetError, ExpertUnavailableError } from '../errors.ts'
import type { MoeArchitecture } from '../types.ts'
import { matMul } from './math.ts'
import type { ExpertAnswer, ExpertCall, ExpertProvider } from './provider.ts'
import { expertBytes, parseExpert, weightsBytes, type ExpertWeights } from './weights.ts'

/**
 * An expert's output rows: SwiGLU w2 · (silu(w1 x) (.) (w3 x)), else w2 · act(w1 x) with act GELU
 * (tanh) or ReLU. `input` is row-major [rows, dModel]; the result is [rows, dModel].
 */
export function runExpert(weights: ExpertWeights, input: Float32Array, rows: number): Float32Array {
  const { dModel: d, dFf: f } = weights
  const h = matMul(weights.w1, input, rows, f, d)
  if (weights.ffn === 'swiglu') {
    const up = matMul(weights.w3!, input, rows, f, d)
    for (let i = 0; i < h.length; i++) {
      const g = h[i]!
      h[i] = (g / (1 + Math.exp(-g))) * up[i]!
    }
  } else if (weights.ffn === 'gelu') {
    const c = Math.sqrt(2 / Math.PI)
    for (let i = 0; i < h.length; i++) {
      const v = h[i]!
      h[i] = 0.5 * v * (1 + Math.tanh(c * (v + 0.044715 * v * v * v)))
    }
  } else for (let i = 0; i < h.length; i++) h[i] = h[i]! > 0 ? h[i]! : 0
  return matMul(weights.w2, h, rows, d, f)
}

function checkSignal(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new AbortError('the generation was aborted')
}

function requireAnswers(layer: number, answers: Array<ExpertAnswer | null>, kMin: number): void {
  const answered = answers.filter((a) => a !== null).length
  const needed = Math.min(kMin, answers.length)
  if (answered < needed)
    throw new ExpertUnavailableError(
      `layer ${layer}: ${answered} of ${answers.length} experts answered; ${needed} needed`,
      {
        details: { layer, answered, needed },
      },
    )
}

/** Experts already in memory, by block. A block it does not hold is answered `null`. */
export class StaticExperts implements ExpertProvider {
  readonly #experts: ReadonlyMap<string, ExpertWeights>
  readonly #kMin: number

  constructor(experts: ReadonlyMap<string, ExpertWeights>, options: { kMin?: number } = {}) {
    this.#experts = experts
    this.#kMin = options.kMin ?? 1
  }

  async runLayer(calls: readonly ExpertCall[], signal?: AbortSignal): Promise<Array<ExpertAnswer | null>> {
    const answers = calls.map((c): ExpertAnswer | null => {
      checkSignal(signal)
      const w = this.#experts.get(c.block)
      if (w === undefined) return null
      const start = performance.now()
      const output = runExpert(w, c.input, c.rows)
      return { output, host: 'local', latencyMs: performance.now() - start }
    })
    if (calls.length > 0) requireAnswers(calls[0]!.layer, answers, this.#kMin)
    return answers
  }
}

export interface LocalExpertsOptions {
  arch: MoeArchitecture
  /** An expert payload's bytes by block (the content store). */
  load: (block: string) => Promise<Uint8Array>
  /** Most bytes of expert weights kept in memory. */
  budgetBytes: number
  /** Fewest answers per layer call (capped at the calls made). @default 1 */
  kMin?: number
}

export interface LocalExpertsStats {
  /** `runLayer` requests served from memory. */
  hits: number
  /** `runLayer` requests that had to load (or wait for a load). */
  misses: number
  /** Experts dropped to make room. */
  evictions: number
  /** Payloads loaded and parsed (misses, group members, prefetches). */
  loads: number
  /** Payloads that could not be loaded or parsed. */
  failures: number
  residentBytes: number
  peakResidentBytes: number
}

interface Entry {
  weights: ExpertWeights
  bytes: number
}

export class LocalExperts implements ExpertProvider {
  readonly arch: MoeArchitecture
  readonly budgetBytes: number
  readonly #load: (block: string) => Promise<Uint8Array>
  readonly #kMin: number
  /** Resident experts, least recently used first (Map order). */
  readonly #lru = new Map<string, Entry>()
  readonly #loading = new Map<string, Promise<ExpertWeights>>()
  readonly #pinned = new Set<string>()
  #groupOf = new Map<string, readonly string[]>()
  #resident = 0
  #stats = { hits: 0, misses: 0, evictions: 0, loads: 0, failures: 0, peakResidentBytes: 0 }

  constructor(options: LocalExpertsOptions) {
    this.arch = options.arch
    this.#load = options.load
    this.#kMin = options.kMin ?? 1
    const one = expertBytes(options.arch)
    if (!(Number.isSafeInteger(options.budgetBytes) && options.budgetBytes >= one))
      throw new ExpertBudgetError(
        `the expert memory budget (${options.budgetBytes} bytes) must hold at least one expert (${one} bytes)`,
        { details: { budgetBytes: options.budgetBytes, expertBytes: one } },
      )
    this.budgetBytes = options.budgetBytes
  }

  stats(): LocalExpertsStats {
    return { ...this.#stats, residentBytes: this.#resident }
  }

  /** Resident blocks, least recently used first. */
  resident(): string[] {
    return [...this.#lru.keys()]
  }

  has(block: string): boolean {
    return this.#lru.has(block)
  }

  /**
   * Expert groups: each inner list is loaded and evicted together when it fits the budget. A block
   * belongs to one group at most (a later group wins). Replaces earlier groups.
   */
  setGroups(groups: readonly (readonly string[])[]): void {
    const map = new Map<string, readonly string[]>()
    for (const g of groups) {
      const members = [...new Set(g)]
      if (members.length < 2) continue
      for (const b of members) map.set(b, members)
    }
    this.#groupOf = map
  }

  /** Loads `blocks` (in order) without counting hits or misses: warm the cache with hot experts. */
  async prefetch(blocks: readonly string[], signal?: AbortSignal): Promise<void> {
    for (const b of blocks) {
      checkSignal(signal)
      await this.#acquire(b, false)
    }
  }

  /** Loads `block` and keeps it resident until `unpin`. Throws `ExpertBudgetError` past the budget. */
  async pin(block: string): Promise<void> {
    const w = await this.#acquire(block, false)
    if (this.#pinned.has(block)) return
    let pinned = 0
    for (const b of this.#pinned) pinned += this.#lru.get(b)?.bytes ?? 0
    const bytes = weightsBytes(w)
    if (pinned + bytes > this.budgetBytes)
      throw new ExpertBudgetError(
        `pinning ${block} would pin ${pinned + bytes} bytes, over the budget of ${this.budgetBytes}`,
        {
          details: { block, pinnedBytes: pinned + bytes, budgetBytes: this.budgetBytes },
        },
      )
    if (!this.#lru.has(block)) this.#insert(block, w, new Set())
    this.#pinned.add(block)
  }

  unpin(block: string): void {
    this.#pinned.delete(block)
  }

  /** The weights of `block`, loading them when they are not resident. */
  get(block: string): Promise<ExpertWeights> {
    return this.#acquire(block, false)
  }

  async runLayer(calls: readonly ExpertCall[], signal?: AbortSignal): Promise<Array<ExpertAnswer | null>> {
    const answers: Array<ExpertAnswer | null> = new Array<ExpertAnswer | null>(calls.length).fill(null)
    // resident experts first: a miss then never evicts an expert this layer still needs
    const order = calls
      .map((_, i) => i)
      .sort((a, b) => Number(!this.has(calls[a]!.block)) - Number(!this.has(calls[b]!.block)) || a - b)
    for (const i of order) {
      checkSignal(signal)
      const call = calls[i]!
      const start = performance.now()
      let weights: ExpertWeights
      try {
        weights = await this.#acquire(call.block, true)
      } catch (err) {
        if (err instanceof ExpertBudgetError || err instanceof AbortError) throw err
        continue // masked by the engine
      }
      const output = runExpert(weights, call.input, call.rows)
      answers[i] = { output, host: 'local', latencyMs: performance.now() - start }
    }
    if (calls.length > 0) requireAnswers(calls[0]!.layer, answers, this.#kMin)
    return answers
  }

  async #acquire(block: string, counted: boolean): Promise<ExpertWeights> {
    const entry = this.#lru.get(block)
    if (entry !== undefined) {
      if (counted) this.#stats.hits++
      this.#touch(block)
      return entry.weights
    }
    if (counted) this.#stats.misses++
    const pending = this.#loading.get(block)
    if (pending !== undefined) return pending
    const group = this.#groupOf.get(block)
    const members =
      group !== undefined && group.length * expertBytes(this.arch) <= this.budgetBytes
        ? group.filter((b) => b !== block && !this.#lru.has(b) && !this.#loading.has(b))
        : []
    const own = this.#fetch(block).then(
      (w) => ({ w }),
      (err: unknown) => ({ err }),
    )
    const others = members.map((b) => this.#fetch(b).catch(() => undefined))
    const [result, ...loaded] = await Promise.all([own, ...others])
    this.#loading.delete(block)
    for (const b of members) this.#loading.delete(b)
    if ('err' in result) throw result.err
    const weights = result.w
    const protect = new Set([block, ...(group ?? [])])
    members.forEach((b, i) => {
      const w = loaded[i]
      if (w !== undefined && !this.#lru.has(b) && this.#fits(w, protect)) this.#insert(b, w, protect)
    })
    if (!this.#lru.has(block)) this.#insert(block, weights, protect)
    this.#touch(block)
    return weights
  }

  #fetch(block: string): Promise<ExpertWeights> {
    const p = (async () => {
      let bytes: Uint8Array
      try {
        bytes = await this.#load(block)
        this.#stats.loads++
        return parseExpert(this.arch, bytes)
      } catch (err) {
        this.#stats.failures++
        throw err
      }
    })()
    this.#loading.set(block, p)
    return p
  }

  /** Whether `w` can be made to fit by evicting what is neither pinned nor protected. */
  #fits(w: ExpertWeights, protect: ReadonlySet<string>): boolean {
    let kept = 0
    for (const [b, e] of this.#lru) if (this.#pinned.has(b) || protect.has(b)) kept += e.bytes
    return kept + weightsBytes(w) <= this.budgetBytes
  }

  #insert(block: string, weights: ExpertWeights, protect: ReadonlySet<string>): void {
    const bytes = weightsBytes(weights)
    while (this.#resident + bytes > this.budgetBytes) {
      let victim: string | undefined
      for (const b of this.#lru.keys())
        if (!this.#pinned.has(b) && !protect.has(b)) {
          victim = b
          break
        }
      if (victim === undefined)
        throw new ExpertBudgetError(
          `no room for ${block} (${bytes} bytes): pinned and in-use experts hold ${this.#resident} of ${this.budgetBytes} bytes`,
          { details: { block, residentBytes: this.#resident, budgetBytes: this.budgetBytes } },
        )
      for (const b of this.#groupOf.get(victim) ?? [victim])
        if (b === victim || (this.#lru.has(b) && !this.#pinned.has(b) && !protect.has(b))) this.#evict(b)
    }
    this.#lru.set(block, { weights, bytes })
    this.#resident += bytes
    if (this.#resident > this.#stats.peakResidentBytes) this.#stats.peakResidentBytes = this.#resident
  }

  #evict(block: string): void {
    const e = this.#lru.get(block)
    if (e === undefined) return
    this.#lru.delete(block)
    this.#resident -= e.bytes
    this.#stats.evictions++
  }

  /** Marks `block` (and its group) most recently used. */
  #touch(block: string): void {
    for (const b of this.#groupOf.get(block) ?? [])
      if (b !== block) {
        const e = this.#lru.get(b)
        if (e !== undefined) {
          this.#lru.delete(b)
          this.#lru.set(b, e)
        }
      }
    const e = this.#lru.get(block)
    if (e !== undefined) {
      this.#lru.delete(block)
      this.#lru.set(block, e)
    }
  }
}
