/** chain/poh: proof of history - entries, the worker-thread generator, the parallel verifier, calibration and round proofs. */
export {
  POH_HASH_LENGTH,
  POH_HASH_MISMATCH,
  extendPoh,
  verifyPohEntries,
  entryShapeError,
  countTicks,
  PohChain,
  type PohEntry,
  type PohCheck,
} from './entries.ts'
export { PohGenerator, type PohGeneratorOptions, type PohSignalOptions } from './generator.ts'
export { PohVerifier, verifyPohInline, type PohVerifierOptions, type VerifyOptions } from './verifier.ts'
export { PohHasher } from './hasher.ts'
export {
  measureHashRate,
  calibrateHashesPerTick,
  checkSustainable,
  assessPohRate,
  type MeasureHashRateOptions,
  type CalibrateOptions,
  type PohRate,
  type Sustainability,
} from './calibrate.ts'
export { ticksRequiredForRound, coversRound } from './round-proof.ts'
export { PohStoppedError, PohResetError, PohWorkerError } from './errors.ts'
export {
  TARGET_HASHES_PER_SECOND,
  DEFAULT_INLINE_THRESHOLD,
  DEFAULT_SLICES_PER_WORKER,
  DEFAULT_CALIBRATION_MS,
  DEFAULT_DUTY_CYCLE,
} from './constants.ts'
