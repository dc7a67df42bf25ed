/**
 * How fast this machine runs the PoH loop, and what that means for the chain's parameters.
 * `hashesPerTick` is a chain-wide constant: set it so the slowest expected validator still
 * produces `ticksPerSecond` ticks; each node checks at start that it can keep that rate.
 */
import { performance } from 'node:perf_hooks'
import { InvalidInputError } from '../../core/errors.ts'
import type { Logger } from '../../core/logger.ts'
import { DEFAULT_CALIBRATION_MS, DEFAULT_DUTY_CYCLE } from './constants.ts'
import { PohHasher } from './hasher.ts'

export interface MeasureHashRateOptions {
  /** How long to hash. @default 250 */
  durationMs?: number
}

export interface PohRate {
  hashesPerTick: number
  ticksPerSecond: number
}

export interface Sustainability {
  /** Whether the measured rate covers the chain's rate (utilization <= maxUtilization). */
  sustainable: boolean
  /** hashesPerTick × ticksPerSecond ÷ measured rate: the share of one core ticking takes. */
  utilization: number
}

const CHUNK = 4096

/**
 * Sequential hashes per second on one core, with the generator's own loop. Runs on the calling
 * thread and blocks it for `durationMs`.
 */
export function measureHashRate(options: MeasureHashRateOptions = {}): number {
  const durationMs = options.durationMs ?? DEFAULT_CALIBRATION_MS
  if (!(durationMs > 0)) throw new InvalidInputError('durationMs must be positive', { details: { durationMs } })
  const hasher = new PohHasher(new Uint8Array(32))
  hasher.hashN(CHUNK) // warm-up: compile the loop before timing it
  let hashes = 0
  const start = performance.now()
  let elapsed = 0
  do {
    hasher.hashN(CHUNK)
    hashes += CHUNK
    elapsed = performance.now() - start
  } while (elapsed < durationMs)
  return (hashes * 1000) / elapsed
}

export interface CalibrateOptions {
  ticksPerSecond: number
  /** Share of one core producing ticks may take, in (0, 1]. @default 0.5 */
  dutyCycle?: number
  /** A rate already measured; measured now when absent. */
  hashRate?: number
  /** Passed to `measureHashRate`. */
  durationMs?: number
}

/** hashesPerTick such that producing `ticksPerSecond` ticks takes about `dutyCycle` of one core here. */
export function calibrateHashesPerTick(options: CalibrateOptions): number {
  const { ticksPerSecond, dutyCycle = DEFAULT_DUTY_CYCLE } = options
  if (!(ticksPerSecond > 0) || !Number.isFinite(ticksPerSecond)) {
    throw new InvalidInputError('ticksPerSecond must be a positive number', { details: { ticksPerSecond } })
  }
  if (!(dutyCycle > 0 && dutyCycle <= 1)) {
    throw new InvalidInputError('dutyCycle must be in (0, 1]', { details: { dutyCycle } })
  }
  const rate = options.hashRate ?? measureHashRate({ durationMs: options.durationMs })
  return Math.max(1, Math.floor((rate * dutyCycle) / ticksPerSecond))
}

/** Whether a machine hashing at `measuredRate` can keep the chain's tick rate. */
export function checkSustainable(
  rate: PohRate,
  measuredRate: number,
  options: { maxUtilization?: number } = {},
): Sustainability {
  const { maxUtilization = 1 } = options
  const needed = rate.hashesPerTick * rate.ticksPerSecond
  const utilization = measuredRate > 0 ? needed / measuredRate : Number.POSITIVE_INFINITY
  return { sustainable: utilization <= maxUtilization, utilization }
}

/**
 * Measures this machine, checks it against the chain's rate and logs a warning when it cannot
 * keep it (for a node's start-up). Blocks the calling thread for `durationMs`.
 */
export function assessPohRate(
  rate: PohRate,
  options: MeasureHashRateOptions & { logger: Logger; maxUtilization?: number },
): Sustainability & { hashRate: number } {
  const hashRate = measureHashRate(options)
  const check = checkSustainable(rate, hashRate, options)
  const log = options.logger.forComponent('donghae:chain:poh')
  const fields = { ...rate, hashRate: Math.round(hashRate), utilization: Number(check.utilization.toFixed(3)) }
  if (!check.sustainable) {
    log.warn(fields, 'this machine hashes too slowly to keep the chain PoH rate; its ticks will fall behind')
  } else {
    log.info(fields, 'PoH rate check passed')
  }
  return { ...check, hashRate }
}
