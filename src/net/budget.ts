/**
 * Per-peer byte budgets for request protocols: a token bucket per peer holding at most
 * `budget.bytes`, refilled at `budget.bytes` per `budget.perMs`. A request is served while its
 * peer's bucket is not empty; its answer's size is then taken from the bucket, which may go into
 * debt (one large answer is allowed, and pays for the wait after it). Buckets of peers that have
 * refilled completely are forgotten, so the table holds only recently active peers.
 */
import type { ByteBudget } from '../core/transport.ts'

/** Buckets kept at most; beyond it the fullest (least recently charged) are dropped. @default 4096 */
export const MAX_BUDGET_PEERS = 4_096

export class ByteBudgets {
  readonly #budget: ByteBudget
  readonly #now: () => number
  readonly #buckets = new Map<string, { level: number; at: number }>()

  constructor(budget: ByteBudget, now: () => number = Date.now) {
    if (!(budget.bytes > 0) || !(budget.perMs > 0)) throw new RangeError('a byte budget needs bytes > 0 and perMs > 0')
    this.#budget = budget
    this.#now = now
  }

  /** Bytes `peer` may still ask for now (≤ 0: over budget). */
  available(peer: string): number {
    const bucket = this.#buckets.get(peer)
    if (bucket === undefined) return this.#budget.bytes
    const refill = ((this.#now() - bucket.at) * this.#budget.bytes) / this.#budget.perMs
    return Math.min(this.#budget.bytes, bucket.level + refill)
  }

  /** Milliseconds until `peer` has budget again (0 when it has some now). */
  waitMs(peer: string): number {
    const level = this.available(peer)
    return level > 0 ? 0 : Math.ceil(((1 - level) * this.#budget.perMs) / this.#budget.bytes)
  }

  /** Takes `bytes` from `peer`'s bucket. */
  charge(peer: string, bytes: number): void {
    const level = this.available(peer) - bytes
    this.#buckets.delete(peer)
    this.#buckets.set(peer, { level, at: this.#now() })
    if (this.#buckets.size > MAX_BUDGET_PEERS) this.#prune()
  }

  #prune(): void {
    for (const [peer] of this.#buckets) {
      if (this.#buckets.size <= MAX_BUDGET_PEERS / 2) return
      if (this.available(peer) >= this.#budget.bytes) this.#buckets.delete(peer)
    }
    // Everyone is in debt: forget the oldest (insertion order is charge order).
    for (const [peer] of this.#buckets) {
      if (this.#buckets.size <= MAX_BUDGET_PEERS / 2) return
      this.#buckets.delete(peer)
    }
  }
}
