/**
 * Which experts are routed together. Every layer step (one `runLayer`) records its experts:
 * each pair of experts of the step counts once, and so does each pair of an expert of this step
 * with one of the step before when that step was the previous layer of the same forward pass
 * (layer L after layer L-1; any other order starts a new pass). Rows of one call may belong to
 * several tokens (a prompt's prefill), so a pair means "routed in the same step", which for
 * decoding is the same token.
 *
 * Groups are the pairs seen most often (experts worth placing on one host: a token then crosses
 * the network once for both). Counts are bounded: past `maxPairs` the rarest pairs are dropped.
 */

export interface ExpertRef {
  block: string
  layer: number
  expert: number
}

export interface PairCount {
  a: ExpertRef
  b: ExpertRef
  count: number
}

export const DEFAULT_MAX_PAIRS = 50_000

function ref(call: ExpertRef): ExpertRef {
  return { block: call.block, layer: call.layer, expert: call.expert }
}

export class CoUsage {
  readonly #maxPairs: number
  readonly #pairs = new Map<string, PairCount>()
  readonly #calls = new Map<string, number>()
  #previous: { layer: number; experts: ExpertRef[] } | undefined
  /** Layer steps recorded. */
  steps = 0

  constructor(options: { maxPairs?: number } = {}) {
    this.#maxPairs = options.maxPairs ?? DEFAULT_MAX_PAIRS
  }

  record(calls: readonly ExpertRef[]): void {
    const experts = [...new Map(calls.map((c) => [c.block, ref(c)])).values()]
    if (experts.length === 0) return
    this.steps++
    for (const e of experts) this.#calls.set(e.block, (this.#calls.get(e.block) ?? 0) + 1)
    for (let i = 0; i < experts.length; i++)
      for (let j = i + 1; j < experts.length; j++) this.#count(experts[i] as ExpertRef, experts[j] as ExpertRef)
    const layer = (experts[0] as ExpertRef).layer
    const previous = this.#previous
    if (previous !== undefined && previous.layer === layer - 1)
      for (const p of previous.experts) for (const e of experts) this.#count(p, e)
    this.#previous = { layer, experts }
  }

  /** Calls per block (each step that routed to it counts one). */
  usage(): Array<{ block: string; calls: number }> {
    return [...this.#calls].map(([block, calls]) => ({ block, calls }))
  }

  /** Pairs seen at least `minCount` times, most frequent first. */
  pairs(minCount = 1): PairCount[] {
    return [...this.#pairs.values()]
      .filter((p) => p.count >= minCount)
      .sort((x, y) => y.count - x.count || (x.a.block + x.b.block < y.a.block + y.b.block ? -1 : 1))
      .map((p) => ({ a: { ...p.a }, b: { ...p.b }, count: p.count }))
  }

  #count(x: ExpertRef, y: ExpertRef): void {
    if (x.block === y.block) return
    const [a, b] = x.block < y.block ? [x, y] : [y, x]
    const key = `${a.block} ${b.block}`
    const pair = this.#pairs.get(key)
    if (pair !== undefined) {
      pair.count++
      return
    }
    if (this.#pairs.size >= this.#maxPairs) this.#prune()
    this.#pairs.set(key, { a, b, count: 1 })
  }

  #prune(): void {
    const counts = [...this.#pairs.values()].map((p) => p.count).sort((x, y) => x - y)
    const cut = counts[Math.floor(counts.length / 2)] ?? 1
    for (const [key, pair] of this.#pairs) if (pair.count <= cut) this.#pairs.delete(key)
  }
}
