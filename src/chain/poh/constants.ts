/** Defaults and fixed figures of proof of history. */

/** Bytes of a PoH hash (SHA-256). */
export const POH_HASH_LENGTH = 32

/** Solana's default PoH rate per core (12 500 hashes per tick × 160 ticks/s), the speed we aim for. */
export const TARGET_HASHES_PER_SECOND = 2_000_000

/**
 * Below this many hashes of work a verification runs on the calling thread: a worker round trip
 * costs tens of microseconds, about as much as ~100 hashes.
 * @default 20_000
 */
export const DEFAULT_INLINE_THRESHOLD = 20_000

/**
 * Slices per pool worker. More than one keeps workers busy when one is slowed by other load, and
 * lets a failure found early skip the slices after it.
 * @default 2
 */
export const DEFAULT_SLICES_PER_WORKER = 2

/** The generator checks for commands (record, reset, drain) every this many hashes. @default 256 */
export const GENERATOR_CHECK_EVERY = 256

/** Running flat out, the generator sends its entries to the main thread at least this often. @default 5 */
export const GENERATOR_FLUSH_MS = 5

/** ...or as soon as this many entries wait. @default 512 */
export const GENERATOR_MAX_BATCH = 512

/** How long `measureHashRate` hashes. @default 250 */
export const DEFAULT_CALIBRATION_MS = 250

/** Share of one core that producing ticks may take, in `calibrateHashesPerTick`. @default 0.5 */
export const DEFAULT_DUTY_CYCLE = 0.5
