/**
 * Per-peer budgets: a token bucket per peer holding at most `budget.amount`, refilled at
 * `budget.amount` per `budget.perMs`. A peer may act while its bucket is not empty; what it
 * costs is then taken from the bucket, which may go into debt (one large answer is allowed, and
 * pays for the wait after it). Used for the bytes a peer may fetch (net/) and the gossip a peer
 * may have ignored (chain/runtime.ts). Buckets that have refilled completely are forgotten, so
 * the table holds only recently active peers.
 */

/** Buckets kept at most; beyond it the full ones, then the oldest, are dropped. @default 4096 */
export const MAX_BUDGET_PEERS = 4_096

export interface Budget {
  amount: number
  perMs: number
}

export class PeerBudgets {
  readonly #budget: Budget
  readonly #now: () => number
  readonly #buckets = new Map<string, { level: number; at: number }>()

  constructor(budget: Budget, now: () => number = Date.now) {
    if (!(budget.amount > 0) || !(budget.perMs > 0)) throw new RangeError('a budget needs amount > 0 and perMs > 0')
    this.#budget = budget
    this.#now = now
  }

  /** What `peer` may still spend now (<= 0: over budget). */
  available(peer: string): number {
    const bucket = this.#buckets.get(peer)
    if (bucket === undefined) return this.#budget.amount
    const refill = ((this.#now() - bucket.at) * this.#budget.amount) / this.#budget.perMs
    return Math.min(this.#budget.amount, bucket.level + refill)
  }

  /** Milliseconds until `peer` has budget again (0 when it has some now). */
  waitMs(peer: string): number {
    const level = this.available(peer)
    return level > 0 ? 0 : Math.ceil(((1 - level) * this.#budget.perMs) / this.#budget.amount)
  }

  /** Takes `amount` from `peer`'s bucket. */
  charge(peer: string, amount: number): void {
    const level = this.available(peer) - amount
    this.#buckets.delete(peer)
    this.#buckets.set(peer, { level, at: this.#now() })
    if (this.#buckets.size > MAX_BUDGET_PEERS) this.#prune()
  }

  #prune(): void {
    for (const [peer] of this.#buckets) {
      if (this.#buckets.size <= MAX_BUDGET_PEERS / 2) return
      if (this.available(peer) >= this.#budget.amount) this.#buckets.delete(peer)
    }
    // Everyone is in debt: forget the oldest (insertion order is charge order).
    for (const [peer] of this.#buckets) {
      if (this.#buckets.size <= MAX_BUDGET_PEERS / 2) return
      this.#buckets.delete(peer)
    }
  }
}
