/**
 * The arena's tunables and their defaults. Scores are parts per million (1 000 000 = a perfect
 * score), shares basis points (10 000 = all), money bigint base units. The two task policies that
 * governance tunes are read from state with `governedUint` (src/governance/params.ts) under the
 * names below; the rest are module constants (`arenaModule(params, tunables)` overrides them in
 * tests).
 */
import { governedDefault, TASK_POLICY } from '../governance/registry.ts'

/** Governed name of the smallest reward pool a task may escrow. */
export const GOV_MIN_REWARD_POOL = 'arena.minRewardPool'
/** Governed name of the most tasks open at once. */
export const GOV_MAX_TASKS_OPEN = 'arena.maxTasksOpen'

export interface ArenaTunables {
  /**
   * Yuma's kappa: the consensus score of a submission is the highest score that validators holding
   * more than kappa of the stake gave at least. @default 500_000 (ppm, the stake-weighted median)
   */
  kappaPpm: number
  /**
   * Lookup check: a submission whose score on one validation set exceeds its score on the other by
   * more than this (conservatively: the set's lower median against the other's upper median) is
   * flagged and scores 0. @default 100_000 (ppm, 10 points of accuracy)
   */
  lookupTolerancePpm: number
  /**
   * A validator's trust falls linearly with its mean distance to consensus and reaches 0 at this
   * distance. @default 200_000 (ppm)
   */
  trustSpanPpm: number
  /** Share of the pool for the top k1 trainers; the rest is for the validators. @default 7_000 (bps) */
  trainerShareBps: number
  /** Slash of a bond that did not do its part (no published weights, no revealed scores, lookup flag). @default 500 (bps, 5 %) */
  slashBps: number
  /** Smallest trainer bond on one task. @default 100n */
  minTrainerBond: bigint
  /** Smallest validator bond on one task. @default 100n */
  minValidatorBond: bigint
  /** Smallest reward pool while governance has not set `arena.minRewardPool`. @default 1_000n */
  defaultMinRewardPool: bigint
  /** Most tasks open at once while governance has not set `arena.maxTasksOpen`. @default 64n */
  defaultMaxTasksOpen: bigint
  /** Most trainers (submissions) on one task. @default 64 */
  maxTrainers: number
  /** Most validators on one task. @default 64 */
  maxValidators: number
  /** Longest a task may run, from creation to its reveal deadline, in blocks. @default 100_000 */
  maxTaskBlocks: number
  /** Largest k1 or k2. @default 64 */
  maxPaid: number
}

export const ARENA_DEFAULTS: Readonly<ArenaTunables> = Object.freeze({
  kappaPpm: 500_000,
  lookupTolerancePpm: 100_000,
  trustSpanPpm: 200_000,
  trainerShareBps: 7_000,
  slashBps: 500,
  minTrainerBond: 100n,
  minValidatorBond: 100n,
  // governance's registry holds these defaults and their bounds (src/governance/registry.ts)
  defaultMinRewardPool: governedDefault(TASK_POLICY.arenaMinRewardPool),
  defaultMaxTasksOpen: governedDefault(TASK_POLICY.arenaMaxTasksOpen),
  maxTrainers: 64,
  maxValidators: 64,
  maxTaskBlocks: 100_000,
  maxPaid: 64,
})

/** A perfect score. */
export const PPM = 1_000_000
export const BPS = 10_000
