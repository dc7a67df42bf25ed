/**
 * Worker rewards and reputation: seed 001's formula in fixed point, with no floating point, and
 * its inputs taken from what a cheater cannot make up.
 *
 *   total = base × usage × speed × quality × recency
 *   usage   = min(fees / (100 × minModelPrice), 2.0)   fees paid by clients other than the
 *             worker itself, kept from epoch to epoch at `usageKeepBps` (seed 001's "calls / 100",
 *             counted in money so free or self-paid jobs buy nothing)
 *   speed   = max(0.5, 2.0 - response_time_s)        mean latency the jobs' GATEWAYS measured and
 *             signed into their settlements this epoch (0.5 with none: a worker's own timings are
 *             never used)
 *   quality = 1.0 + auditsPassed / (auditsPassed + auditsFailed)   (1.0 when never audited;
 *             only chain-drawn audits count)
 *   recency = 1.0 if active within `recencyBlocks` blocks, else 0.8 (applied: every worker with
 *             usage left is scored, not only this epoch's)
 *
 * Every factor is an integer in parts per million (1.0 = 1 000 000); the product is taken left
 * to right, rounding down after each multiplication, so every node computes the same score.
 *
 * Worked example (checked in rewards.test.ts): usage fees 150 with minModelPrice 1, mean gateway
 * latency 800 ms, 9 audits passed and 1 failed, last active 10 blocks ago with recencyBlocks 60:
 *   usage   = min(150 × 1 000 000 / 100, 2 000 000)   = 1 500 000   (1.5)
 *   speed   = max(500 000, 2 000 000 - 800 000)        = 1 200 000   (1.2)
 *   quality = 1 000 000 + 9 × 1 000 000 / 10           = 1 900 000   (1.9)
 *   recency                                            = 1 000 000   (1.0)
 *   score   = 1.5 × 1.2 = 1 800 000; × 1.9 = 3 420 000; × 1.0 = 3 420 000 ppm
 *
 * Washing does not pay: whatever the score, a worker is never paid more in rewards than
 * `rewardCapBps` of the fees outside clients paid it (its reward room), and every such fee gave
 * `protocolShareBps` > `rewardCapBps` to the treasury. A worker that pays itself through a second
 * key loses the difference on every job.
 *
 * At an epoch edge the epoch's reward is split pro rata to score (`splitProRata`): each share is
 * floor(total × score / sumscore) in DID order, then cut to the worker's reward room. What is not paid
 * is not minted.
 */

export const PPM = 1_000_000n
const MAX_USAGE = 2_000_000n
const MAX_SPEED = 2_000_000n
const MIN_SPEED = 500_000n
const STALE_RECENCY = 800_000n

/** What the score is computed from: one worker's counters at an epoch edge. */
export interface ScoreInputs {
  /** Fees paid by outside clients (kept across epochs, decaying). */
  usageFees: bigint
  /** Gateway-measured latency over `latencyJobs` jobs, milliseconds. */
  latencyMsTotal: bigint
  latencyJobs: number
  auditsPassed: number
  auditsFailed: number
  /** Height of the worker's last settled job. */
  lastActiveHeight: number
}

/** min(fees / (100 × minModelPrice), 2.0) in ppm. */
export function usagePpm(usageFees: bigint, minModelPrice: bigint): bigint {
  const unit = 100n * (minModelPrice > 0n ? minModelPrice : 1n)
  const usage = (usageFees * PPM) / unit
  return usage > MAX_USAGE ? MAX_USAGE : usage
}

/** max(0.5, 2.0 - mean latency in seconds) in ppm; the mean is total ms / jobs. */
export function speedPpm(latencyMsTotal: bigint, jobs: number): bigint {
  if (jobs <= 0) return MIN_SPEED
  const meanMicros = (latencyMsTotal * 1_000n) / BigInt(jobs)
  const speed = MAX_SPEED - meanMicros
  return speed < MIN_SPEED ? MIN_SPEED : speed
}

/** 1.0 + passed / (passed + failed) in ppm; 1.0 for a worker never audited. */
export function qualityPpm(auditsPassed: number, auditsFailed: number): bigint {
  const audits = BigInt(auditsPassed + auditsFailed)
  if (audits === 0n) return PPM
  return PPM + (BigInt(auditsPassed) * PPM) / audits
}

/** 1.0 when the worker was active within the last `recencyBlocks` blocks, else 0.8, in ppm. */
export function recencyPpm(lastActiveHeight: number, height: number, recencyBlocks: number): bigint {
  return height - lastActiveHeight <= recencyBlocks ? PPM : STALE_RECENCY
}

/** usage × speed × quality × recency in ppm (the multiplier of the base reward). */
export function workerScore(
  inputs: ScoreInputs,
  height: number,
  params: { recencyBlocks: number; minModelPrice: bigint },
): bigint {
  const { recencyBlocks } = params
  const factors = [
    usagePpm(inputs.usageFees, params.minModelPrice),
    speedPpm(inputs.latencyMsTotal, inputs.latencyJobs),
    qualityPpm(inputs.auditsPassed, inputs.auditsFailed),
    recencyPpm(inputs.lastActiveHeight, height, recencyBlocks),
  ]
  return factors.reduce((score, factor) => (score * factor) / PPM, PPM)
}

/** base × score (ppm), rounded down: the formula's `total` for one worker. */
export function rewardFor(base: bigint, scorePpm: bigint): bigint {
  return (base * scorePpm) / PPM
}

export interface Share {
  did: string
  amount: bigint
}

/**
 * Splits `total` pro rata to `scores`, in DID order, rounding each share down. Returns the shares
 * (zero shares included) and the leftover, with sumshares + leftover = total. With no positive
 * score, everything is leftover.
 */
export function splitProRata(
  total: bigint,
  scores: ReadonlyArray<{ did: string; score: bigint }>,
): { shares: Share[]; leftover: bigint } {
  const sorted = [...scores].sort((a, b) => (a.did < b.did ? -1 : a.did > b.did ? 1 : 0))
  const sum = sorted.reduce((acc, s) => acc + (s.score > 0n ? s.score : 0n), 0n)
  if (sum === 0n) return { shares: sorted.map((s) => ({ did: s.did, amount: 0n })), leftover: total }
  const shares = sorted.map((s) => ({ did: s.did, amount: s.score > 0n ? (total * s.score) / sum : 0n }))
  const paid = shares.reduce((acc, s) => acc + s.amount, 0n)
  return { shares, leftover: total - paid }
}
