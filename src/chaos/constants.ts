/** Tunables of the chaos runner, with their defaults. The CLI's options override the ones it names. */

/** Requests per second the load generator sends, all kinds together. @default 2 */
export const DEFAULT_LOAD_RATE = 2
/** The demo model inference jobs run (every devnet registers it at genesis). @default 'digits-mlp' */
export const DEFAULT_INFER_MODEL = 'digits-mlp'
/** Requests the generator keeps running at once; ticks beyond are skipped and counted. @default 16 */
export const LOAD_MAX_IN_FLIGHT = 16
/** Limit of one API call from the load generator. @default 15_000 */
export const LOAD_REQUEST_TIMEOUT_MS = 15_000
/** How long a client waits to see its transfer committed before it counts it failed. @default 60_000 */
export const TX_COMMIT_TIMEOUT_MS = 60_000
/** Poll interval for a transaction's status. @default 500 */
export const TX_POLL_MS = 500

/** How long the chain may take to commit again once the faults stop (the liveness bound). @default 60_000 */
export const DEFAULT_LIVENESS_BOUND_MS = 60_000
/** How long a receipt may take to be settled once the load stops. @default 60_000 */
export const DEFAULT_SETTLE_BOUND_MS = 60_000
/** Interval of the continuous checks. @default 2_000 */
export const CHECK_INTERVAL_MS = 2_000
/** Limit of one API call from the checker. @default 5_000 */
export const CHECK_REQUEST_TIMEOUT_MS = 5_000
/** Quiet time before the first fault, so the devnet settles and the load starts. @default 10_000 */
export const WARMUP_MS = 10_000

/** Shortest and longest duration of one drawn fault. @default [3_000, 15_000] */
export const FAULT_MIN_MS = 3_000
export const FAULT_MAX_MS = 15_000
/** Clock offsets a skew fault draws from, ms (either sign); under the 5 s a block's time may lead a validator's clock (maxFutureMs) and over it. */
export const SKEW_CHOICES_MS: readonly number[] = [500, 2_000, 5_000, 20_000]
/** Share of packets a one-way loss fault drops, percent. @default [30, 100] */
export const LOSS_MIN_PERCENT = 30
export const LOSS_MAX_PERCENT = 100
/**
 * A node that stops on its own with an exit code this soon after a disk-full fault on it was lifted
 * still counts as stopping on the full disk (its database refused a write during the fault; the
 * orderly stop that follows takes a while), and is started again. @default 30_000
 */
export const DISK_FULL_EXIT_GRACE_MS = 30_000
/** Size of the tmpfs a node's data dir lives on when disk-full is enabled (root). @default 256 */
export const DATA_TMPFS_MB = 256

/** Re-runs the shrinker may spend. @default 6 */
export const DEFAULT_SHRINK_RUNS = 6
/** How long each shrink re-run applies its faults, at most. @default 60_000 */
export const SHRINK_RUN_MS = 60_000

/** Ports: node i serves its API on base + i and p2p on base + 100 + 2i (as `donghae devnet`). */
export const P2P_PORT_OFFSET = 100
/** libfaketime's preload library on Debian (`apt-get install faketime`). */
export const LIBFAKETIME_PATHS: readonly string[] = [
  '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/faketime/libfaketime.so.1',
]
