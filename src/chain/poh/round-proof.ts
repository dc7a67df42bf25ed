/**
 * Proof of waiting for round changes: a proposal at round r > 0 carries PoH from the previous
 * block's PoH end with at least as many ticks as the timeouts of rounds 0..r-1 last, so a
 * Byzantine proposer cannot cut honest proposers' turns short without that sequential work.
 */
import { InvalidInputError } from '../../core/errors.ts'

function assertRate(ticksPerSecond: number): void {
  if (!Number.isSafeInteger(ticksPerSecond) || ticksPerSecond < 1) {
    throw new InvalidInputError('ticksPerSecond must be a positive integer', { details: { ticksPerSecond } })
  }
}

function timeoutOf(timeoutMsForRound: (round: number) => number, round: number): bigint {
  const ms = timeoutMsForRound(round)
  if (!Number.isSafeInteger(ms) || ms < 0) {
    throw new InvalidInputError('a round timeout must be a non-negative integer of milliseconds', {
      details: { round, ms },
    })
  }
  return BigInt(ms)
}

/**
 * Ticks covering the timeouts of rounds 0..round-1: floor(sum timeoutMs × ticksPerSecond / 1000),
 * in exact integer math; 0 for round 0. Calls `timeoutMsForRound` `round` times.
 */
export function ticksRequiredForRound(
  round: number,
  timeoutMsForRound: (round: number) => number,
  ticksPerSecond: number,
): number {
  if (!Number.isSafeInteger(round) || round < 0) {
    throw new InvalidInputError('round must be a non-negative integer', { details: { round } })
  }
  assertRate(ticksPerSecond)
  let totalMs = 0n
  for (let r = 0; r < round; r++) totalMs += timeoutOf(timeoutMsForRound, r)
  const ticks = (totalMs * BigInt(ticksPerSecond)) / 1000n
  if (ticks > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new InvalidInputError('the rounds timeouts add up to more ticks than a safe integer', { details: { round } })
  }
  return Number(ticks)
}

/**
 * Whether `ticks` ticks are enough for a proposal at `round`. Stops summing timeouts as soon as
 * the requirement exceeds `ticks`, so a huge round claimed by a peer costs little to refuse.
 */
export function coversRound(
  ticks: number,
  round: number,
  timeoutMsForRound: (round: number) => number,
  ticksPerSecond: number,
): boolean {
  if (!Number.isSafeInteger(round) || round < 0) return false
  assertRate(ticksPerSecond)
  const rate = BigInt(ticksPerSecond)
  const have = BigInt(Math.max(0, Math.floor(ticks)))
  let totalMs = 0n
  for (let r = 0; r < round; r++) {
    totalMs += timeoutOf(timeoutMsForRound, r)
    if ((totalMs * rate) / 1000n > have) return false
  }
  return true
}
