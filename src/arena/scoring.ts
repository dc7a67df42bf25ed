/**
 * How an Arena task is scored and paid (seed 003, FLock's AI Arena; the consensus is Bittensor's
 * Yuma simplified). Pure and integer: scores are ppm, stake and money bigint, no floating point.
 *
 * 1. Duplicates. Submissions with the same weights digest: the earliest commitment keeps its
 *    place, the copies are 'duplicate' and get nothing (they are not even assigned for scoring).
 * 2. Consensus per submission. Its validators' scores, weighted by their task bond: the consensus
 *    C is the highest score that validators holding more than kappa of that stake gave at least
 *    (kappa = 0.5: a stake-weighted median that a coalition of half the stake cannot raise). Scores
 *    above C are clipped to C; the submission's consensus score R is the stake-weighted mean of
 *    the clipped scores (rounded down). So one validator that inflates a submission gains it
 *    nothing past what the majority saw; one that deflates it moves R by its stake share only.
 * 3. Lookup check (A/B). Each validator scored a submission on one of two hidden validation sets.
 *    A model that memorised one set scores far better there than on the other. Conservatively, so
 *    that one lazy validator cannot frame an honest trainer: with lowQ(S) the highest score more
 *    than half of S's stake gave at least and highQ(S) the lowest score more than half of S's stake
 *    gave at most, the submission is flagged 'lookup' (R = 0) when lowQ(A) - highQ(B) or
 *    lowQ(B) - highQ(A) exceeds the tolerance. Checked only when both sets were scored.
 * 4. Trainers. Submissions with R > 0 ranked by R, then by earlier commitment; the top k1 share
 *    the trainers' part of the pool in proportion to R (a better model earns more; equal scores
 *    earn equally).
 * 5. Validators. Trust = 1 - (mean |score - C| over the validator's submissions) / trustSpan,
 *    floored at 0; a validator that revealed nothing has trust 0. Weight = trust × stake. The top
 *    k2 by weight are paid `validatorPool × weight / (sum of every validator's weight)`; what the
 *    others would have had is not paid (it returns to the creator). Dividing by every validator's
 *    weight, not only the paid ones', makes splitting a stake pointless: ten identities with a
 *    tenth of the stake each have a tenth of the weight each, rank lower, and at best earn together
 *    what the one identity would have (scoring.test.ts states the figures).
 *
 * Rounding: every share is rounded down; the leftover of each part returns to the creator.
 */
import { BPS, PPM, type ArenaTunables } from './constants.ts'

export type ValidationSetName = 'A' | 'B'

export interface SubmissionInput {
  /** The submission's index in its task (commitment order: lower is earlier). */
  index: number
  trainer: string
  /** Hex sha256 of the weights file. */
  digest: string
}

export interface ValidatorInput {
  did: string
  /** The validator's bond on this task. */
  stake: bigint
  /** Whether it revealed scores matching its commitment. */
  revealed: boolean
}

export interface ScoreEntry {
  validator: string
  submission: number
  set: ValidationSetName
  /** 0..1 000 000. */
  scorePpm: number
}

export type SubmissionStatus = 'ranked' | 'unranked' | 'duplicate' | 'lookup' | 'unscored'

export interface SubmissionOutcome {
  index: number
  trainer: string
  digest: string
  status: SubmissionStatus
  /** The consensus (kappa-quantile) score, ppm. */
  consensusPpm: number
  /** The stake-weighted mean of clipped scores: what the ranking uses (0 when flagged). */
  scorePpm: number
  /** Conservative per-set consensus: lower and upper stake-weighted medians of each set. */
  sets: { A?: { low: number; high: number }; B?: { low: number; high: number } }
  /** 1-based rank among scored submissions (0: not ranked). */
  rank: number
  payout: bigint
  /** The earlier submission this one copies (duplicates only). */
  duplicateOf?: number
}

export interface ValidatorOutcome {
  did: string
  stake: bigint
  revealed: boolean
  /** Mean |score - consensus|, ppm (0 when it scored nothing). */
  distancePpm: number
  trustPpm: number
  /** trust × stake / 1e6. */
  weight: bigint
  payout: bigint
}

export interface TaskScoring {
  submissions: SubmissionOutcome[]
  validators: ValidatorOutcome[]
  trainerPool: bigint
  validatorPool: bigint
  /** What the pool did not pay (returned to the creator). */
  refund: bigint
}

export type ScoringRules = Pick<ArenaTunables, 'kappaPpm' | 'lookupTolerancePpm' | 'trustSpanPpm' | 'trainerShareBps'>

// ---- quantiles ------------------------------------------------------------------------------

interface Weighted {
  value: number
  weight: bigint
}

/**
 * The highest value that entries holding more than `kappaPpm` of the weight reach or exceed
 * (Yuma's consensus; kappa = 0.5 gives the lower stake-weighted median). Undefined when empty or weightless.
 */
export function kappaQuantile(entries: readonly Weighted[], kappaPpm: number): number | undefined {
  const total = entries.reduce((s, e) => s + e.weight, 0n)
  if (total === 0n) return undefined
  const sorted = [...entries].sort((a, b) => b.value - a.value)
  let cum = 0n
  for (const e of sorted) {
    cum += e.weight
    if (cum * BigInt(PPM) > total * BigInt(kappaPpm)) return e.value
  }
  return sorted[sorted.length - 1]?.value
}

/** The lowest value that entries holding more than half the weight reach or stay below. */
export function upperMedian(entries: readonly Weighted[]): number | undefined {
  const flipped = kappaQuantile(
    entries.map((e) => ({ value: -e.value, weight: e.weight })),
    PPM / 2,
  )
  return flipped === undefined ? undefined : -flipped
}

/** sum weight × min(value, cap) / sum weight, rounded down. */
export function clippedMean(entries: readonly Weighted[], cap: number): number {
  const total = entries.reduce((s, e) => s + e.weight, 0n)
  if (total === 0n) return 0
  const sum = entries.reduce((s, e) => s + e.weight * BigInt(Math.min(e.value, cap)), 0n)
  return Number(sum / total)
}

// ---- duplicates -------------------------------------------------------------------------------

/** Index -> the earlier index with the same digest, for every copy (earliest commitment keeps). */
export function duplicatesOf(submissions: readonly SubmissionInput[]): Map<number, number> {
  const first = new Map<string, number>()
  const copies = new Map<number, number>()
  for (const s of [...submissions].sort((a, b) => a.index - b.index)) {
    const earlier = first.get(s.digest)
    if (earlier === undefined) first.set(s.digest, s.index)
    else copies.set(s.index, earlier)
  }
  return copies
}

// ---- splitting money ------------------------------------------------------------------------

/** `amount × weight / total` for each entry, rounded down (total may exceed the entries' sum). */
function prorata(amount: bigint, weights: readonly bigint[], total: bigint): bigint[] {
  if (total === 0n) return weights.map(() => 0n)
  return weights.map((w) => (amount * w) / total)
}

// ---- the whole task -------------------------------------------------------------------------

function setBounds(entries: readonly Weighted[]): { low: number; high: number } | undefined {
  const low = kappaQuantile(entries, PPM / 2)
  const high = upperMedian(entries)
  return low === undefined || high === undefined ? undefined : { low, high }
}

function scoreSubmission(
  s: SubmissionInput,
  entries: ReadonlyArray<ScoreEntry & { weight: bigint }>,
  rules: ScoringRules,
): SubmissionOutcome {
  const base = { index: s.index, trainer: s.trainer, digest: s.digest, rank: 0, payout: 0n }
  const all = entries.map((e) => ({ value: e.scorePpm, weight: e.weight }))
  const consensus = kappaQuantile(all, rules.kappaPpm)
  if (consensus === undefined) return { ...base, status: 'unscored', consensusPpm: 0, scorePpm: 0, sets: {} }
  const a = setBounds(entries.filter((e) => e.set === 'A').map((e) => ({ value: e.scorePpm, weight: e.weight })))
  const b = setBounds(entries.filter((e) => e.set === 'B').map((e) => ({ value: e.scorePpm, weight: e.weight })))
  const sets = { ...(a === undefined ? {} : { A: a }), ...(b === undefined ? {} : { B: b }) }
  const lookup =
    a !== undefined &&
    b !== undefined &&
    (a.low - b.high > rules.lookupTolerancePpm || b.low - a.high > rules.lookupTolerancePpm)
  const score = lookup ? 0 : clippedMean(all, consensus)
  return { ...base, status: lookup ? 'lookup' : 'unranked', consensusPpm: consensus, scorePpm: score, sets }
}

function trustOf(distance: number, span: number): number {
  if (span <= 0) return distance === 0 ? PPM : 0
  return Math.max(0, PPM - Math.floor((distance * PPM) / span))
}

/**
 * Scores a task: `entries` are the revealed scores (each validator's assignment; entries of
 * validators that did not reveal are ignored), k1 trainers and k2 validators are paid from `pool`.
 */
export function scoreTask(input: {
  submissions: readonly SubmissionInput[]
  validators: readonly ValidatorInput[]
  entries: readonly ScoreEntry[]
  pool: bigint
  k1: number
  k2: number
  rules: ScoringRules
}): TaskScoring {
  const { rules } = input
  const stake = new Map(input.validators.filter((v) => v.revealed).map((v) => [v.did, v.stake]))
  const copies = duplicatesOf(input.submissions)
  const entries = input.entries.flatMap((e) => {
    const weight = stake.get(e.validator)
    return weight === undefined || copies.has(e.submission) ? [] : [{ ...e, weight }]
  })
  const submissions = [...input.submissions]
    .sort((a, b) => a.index - b.index)
    .map((s): SubmissionOutcome => {
      const earlier = copies.get(s.index)
      if (earlier !== undefined)
        return {
          index: s.index,
          trainer: s.trainer,
          digest: s.digest,
          status: 'duplicate',
          consensusPpm: 0,
          scorePpm: 0,
          sets: {},
          rank: 0,
          payout: 0n,
          duplicateOf: earlier,
        }
      return scoreSubmission(
        s,
        entries.filter((e) => e.submission === s.index),
        rules,
      )
    })

  const trainerPool = (input.pool * BigInt(rules.trainerShareBps)) / BigInt(BPS)
  const validatorPool = input.pool - trainerPool

  // trainers: the top k1 by consensus score, then by earlier commitment
  const ranked = submissions
    .filter((s) => s.status === 'unranked' && s.scorePpm > 0)
    .sort((a, b) => b.scorePpm - a.scorePpm || a.index - b.index)
  ranked.forEach((s, i) => {
    s.rank = i + 1
    s.status = 'ranked'
  })
  const paid = ranked.slice(0, Math.max(0, input.k1))
  const scores = paid.map((s) => BigInt(s.scorePpm))
  prorata(
    trainerPool,
    scores,
    scores.reduce((x, y) => x + y, 0n),
  ).forEach((amount, i) => ((paid[i] as SubmissionOutcome).payout = amount))

  // validators: trust from the distance to consensus, weight = trust × stake
  const consensus = new Map(submissions.filter((s) => s.status !== 'duplicate').map((s) => [s.index, s.consensusPpm]))
  const validators = input.validators.map((v): ValidatorOutcome => {
    const own = v.revealed ? entries.filter((e) => e.validator === v.did && consensus.has(e.submission)) : []
    const distance =
      own.length === 0
        ? 0
        : Math.floor(
            own.reduce((sum, e) => sum + Math.abs(e.scorePpm - (consensus.get(e.submission) ?? 0)), 0) / own.length,
          )
    const trust = own.length === 0 ? 0 : trustOf(distance, rules.trustSpanPpm)
    const weight = (BigInt(trust) * v.stake) / BigInt(PPM)
    return {
      did: v.did,
      stake: v.stake,
      revealed: v.revealed,
      distancePpm: distance,
      trustPpm: trust,
      weight,
      payout: 0n,
    }
  })
  const totalWeight = validators.reduce((s, v) => s + v.weight, 0n)
  const chosen = validators
    .filter((v) => v.weight > 0n)
    .sort((a, b) => (a.weight === b.weight ? (a.did < b.did ? -1 : 1) : a.weight > b.weight ? -1 : 1))
    .slice(0, Math.max(0, input.k2))
  prorata(
    validatorPool,
    chosen.map((v) => v.weight),
    totalWeight,
  ).forEach((amount, i) => ((chosen[i] as ValidatorOutcome).payout = amount))

  const paidOut = submissions.reduce((s, x) => s + x.payout, 0n) + validators.reduce((s, v) => s + v.payout, 0n)
  return { submissions, validators, trainerPool, validatorPool, refund: input.pool - paidOut }
}
