/**
 * Rate limits of a directory: a token bucket per client (an IP address, a gossip peer) charged
 * before any work is done, and one per DID charged only once the DID's signature has verified -
 * so a stranger cannot spend a DID's budget, and one key flooding registrations ends in 429s
 * after its burst while every other DID and client keeps its own budget.
 */
import { PeerBudgets } from '../core/budget.ts'
import { DirectoryRateLimitError } from './record.ts'

export interface RateLimit {
  /** Requests allowed in a burst (the bucket's size). */
  burst: number
  /** Milliseconds in which a full bucket refills. */
  perMs: number
}

export interface DirectoryLimits {
  /** Per DID: registrations and deletions. @default 5 per 5 minutes */
  perDid: RateLimit
  /** Per client (address or peer), any request that writes. @default 60 per minute */
  perClient: RateLimit
}

export const DEFAULT_DIRECTORY_LIMITS: DirectoryLimits = {
  perDid: { burst: 5, perMs: 5 * 60_000 },
  perClient: { burst: 60, perMs: 60_000 },
}

/** Milliseconds until a bucket at `level` holds one whole token again. */
function waitFor(level: number, limit: RateLimit): number {
  return Math.max(1, Math.ceil(((1 - level) * limit.perMs) / limit.burst))
}

export class DirectoryRateLimiter {
  readonly #perDid: PeerBudgets
  readonly #perClient: PeerBudgets
  readonly #limits: DirectoryLimits

  constructor(limits: DirectoryLimits = DEFAULT_DIRECTORY_LIMITS, now: () => number = Date.now) {
    this.#limits = limits
    this.#perDid = new PeerBudgets({ amount: limits.perDid.burst, perMs: limits.perDid.perMs }, now)
    this.#perClient = new PeerBudgets({ amount: limits.perClient.burst, perMs: limits.perClient.perMs }, now)
  }

  /** Charges one request to `client`; throws `DirectoryRateLimitError` (429) when its bucket is empty. */
  chargeClient(client: string): void {
    if (this.#perClient.available(client) < 1) {
      throw new DirectoryRateLimitError(
        'too many directory requests from this client',
        waitFor(this.#perClient.available(client), this.#limits.perClient),
      )
    }
    this.#perClient.charge(client, 1)
  }

  /** Throws (429) when `did` has no budget left; does not charge. */
  checkDid(did: string): void {
    if (this.#perDid.available(did) < 1) {
      throw new DirectoryRateLimitError(
        'too many directory updates for this DID',
        waitFor(this.#perDid.available(did), this.#limits.perDid),
      )
    }
  }

  /** Charges one update to `did` (after its signature verified). */
  chargeDid(did: string): void {
    this.#perDid.charge(did, 1)
  }
}
