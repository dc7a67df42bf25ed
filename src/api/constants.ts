/** Defaults of the HTTP API, shared by the server, the client and the CLI. */

/**
 * Where the CLI and the client look for a node when no URL is given.
 * @default 'http://127.0.0.1:26657'
 */
export const DEFAULT_NODE_URL = 'http://127.0.0.1:26657'

/** Environment variable that overrides DEFAULT_NODE_URL (the `--node` flag overrides both). */
export const NODE_URL_ENV = 'DONGHAE_NODE'

/**
 * Requests per client IP and time window. Generous: a wallet polling for a commit every 500 ms
 * stays far below it.
 * @default { max: 1200, timeWindowMs: 60 000 }
 */
export const DEFAULT_RATE_LIMIT = Object.freeze({ max: 1200, timeWindowMs: 60_000 })

/**
 * Largest request body. A transaction is at most 64 KiB encoded, 128 KiB as hex; anything much
 * larger is refused with 413 before it is parsed.
 * @default 256 KiB
 */
export const MAX_BODY_BYTES = 256 * 1024

/**
 * How long a client call waits for the node before failing with code TIMEOUT.
 * @default 10 000 ms
 */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000

/**
 * `--wait`: how often the CLI asks whether a transaction is committed, and for how long.
 * @default 500 ms, 60 s
 */
export const WAIT_POLL_INTERVAL_MS = 500
export const DEFAULT_WAIT_TIMEOUT_MS = 60_000

/** Largest state key a proof may be asked for, in bytes. */
export const MAX_PROOF_KEY_BYTES = 1024
