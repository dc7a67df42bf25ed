/** Defaults of the consensus engine. Timeouts grow linearly with the round, as in CometBFT. */

export interface TimeoutConfig {
  /** Wait for a proposal in round 0. @default 3000 */
  proposeMs: number
  /** Added to the propose timeout per round. @default 500 */
  proposeDeltaMs: number
  /** Wait after 2/3+ prevotes of any kind before precommitting nil, round 0. @default 1000 */
  prevoteMs: number
  /** @default 500 */
  prevoteDeltaMs: number
  /** Wait after 2/3+ precommits of any kind before moving to the next round, round 0. @default 1000 */
  precommitMs: number
  /** @default 500 */
  precommitDeltaMs: number
  /** Pause after a decision before round 0 of the next height; late precommits are collected meanwhile. @default 1000 */
  commitMs: number
  /** With no step change for this long, re-send what this node signed at the current height. @default 2000 */
  gossipMs: number
}

export const DEFAULT_TIMEOUTS: Readonly<TimeoutConfig> = Object.freeze({
  proposeMs: 3000,
  proposeDeltaMs: 500,
  prevoteMs: 1000,
  prevoteDeltaMs: 500,
  precommitMs: 1000,
  precommitDeltaMs: 500,
  commitMs: 1000,
  gossipMs: 2000,
})

export type TimeoutKind = 'propose' | 'prevote' | 'precommit'

/** The timeout of `kind` in `round`: base + delta·round. */
export function timeoutMs(config: TimeoutConfig, kind: TimeoutKind, round: number): number {
  switch (kind) {
    case 'propose':
      return config.proposeMs + config.proposeDeltaMs * round
    case 'prevote':
      return config.prevoteMs + config.prevoteDeltaMs * round
    case 'precommit':
      return config.precommitMs + config.precommitDeltaMs * round
  }
}

/** Sum of the three timeouts of one round: how long a round that ends in timeouts lasts at least. */
export function roundTimeoutMs(config: TimeoutConfig, round: number): number {
  return (
    timeoutMs(config, 'propose', round) + timeoutMs(config, 'prevote', round) + timeoutMs(config, 'precommit', round)
  )
}

/**
 * The least time round `round` lasts before the first honest validator enters the next one. A
 * validator leaves a round only on OnTimeoutPrecommit (started once it saw +2/3 precommits) or
 * on f+1 messages from a later round, which means an honest validator is already there; so the
 * first honest one to reach round r+1 waited out round r's precommit timeout. Its propose and
 * prevote steps can end at once (an invalid proposal is prevoted nil on arrival; a nil prevote
 * quorum needs no prevote timeout), so they do not count.
 */
export function minRoundMs(config: TimeoutConfig, round: number): number {
  return timeoutMs(config, 'precommit', round)
}

/**
 * Sum of `minRoundMs` over rounds 0..round-1: what a proposal at `round` must show PoH for. Any
 * more (the sum of all three timeouts, say) would ask honest proposers for ticks that no time
 * elapsed for, and their blocks' times could not match their PoH.
 */
export function skippedRoundsMs(config: TimeoutConfig, round: number): number {
  let total = 0
  for (let r = 0; r < round; r++) total += minRoundMs(config, r)
  return total
}

/** Highest round a message may name before it is ignored; bounds memory under a flood of future rounds. */
export const MAX_ROUND = 1_000_000

/** Messages further than this many rounds ahead of the local round are ignored (memory bound per height). */
export const MAX_ROUNDS_AHEAD = 1000

/** Distinct proposals kept per round (an equivocating proposer cannot grow memory without bound). */
export const MAX_PROPOSALS_PER_ROUND = 4

/** Messages waiting in the engine's queue before further peer messages are dropped. */
export const MAX_QUEUED_MESSAGES = 100_000

/** Longest block id accepted on the wire. */
export const MAX_BLOCK_ID_BYTES = 64

/** Longest chain id accepted on the wire. */
export const MAX_CHAIN_ID_LENGTH = 64

/** Longest validator DID accepted on the wire. */
export const MAX_DID_LENGTH = 128

/** Default largest encoded consensus message. @default 8 MiB */
export const DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
