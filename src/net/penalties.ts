/**
 * Penalty scores of peers, leaky: each penalty adds one point and the score halves every
 * `halfLifeMs`, so an honest peer that once sent something invalid is forgiven, while a peer
 * sending invalid data faster than it leaks away reaches the limit. At the defaults
 * (`PENALTY_LIMIT` 20 points, `PENALTY_HALF_LIFE_MS` 5 minutes): 20 invalid messages in a burst
 * get a peer banned; one every 30 s forever settles near 15 points and does not; one every 20 s
 * reaches 20 after about 17 minutes. Scores that have leaked below a tenth of a point are
 * forgotten, so the table holds only recent offenders.
 */
import { PENALTY_HALF_LIFE_MS } from './constants.ts'

/** Scores kept at most (beyond it the smallest are forgotten). @default 4096 */
export const MAX_PENALIZED_PEERS = 4_096

export class PenaltyScores {
  readonly #halfLifeMs: number
  readonly #now: () => number
  readonly #scores = new Map<string, { points: number; at: number }>()

  constructor(options: { halfLifeMs?: number; now?: () => number } = {}) {
    this.#halfLifeMs = options.halfLifeMs ?? PENALTY_HALF_LIFE_MS
    this.#now = options.now ?? Date.now
  }

  /** The peer's score now. */
  score(peer: string): number {
    const entry = this.#scores.get(peer)
    if (entry === undefined) return 0
    return entry.points * 2 ** (-(this.#now() - entry.at) / this.#halfLifeMs)
  }

  /** Adds one point and returns the new score. */
  add(peer: string, points = 1): number {
    const score = this.score(peer) + points
    this.#scores.set(peer, { points: score, at: this.#now() })
    if (this.#scores.size > MAX_PENALIZED_PEERS) this.#prune()
    return score
  }

  /** Forgets a peer (it was banned: the ban is its punishment). */
  clear(peer: string): void {
    this.#scores.delete(peer)
  }

  get size(): number {
    return this.#scores.size
  }

  #prune(): void {
    for (const peer of this.#scores.keys()) if (this.score(peer) < 0.1) this.#scores.delete(peer)
    if (this.#scores.size <= MAX_PENALIZED_PEERS) return
    const smallest = [...this.#scores.keys()].sort((a, b) => this.score(a) - this.score(b))
    for (const peer of smallest.slice(0, this.#scores.size - MAX_PENALIZED_PEERS / 2)) this.#scores.delete(peer)
  }
}
