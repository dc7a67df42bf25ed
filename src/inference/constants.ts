/**
 * Tunables of the inference components, with their defaults. The node's config table
 * (src/core/config.ts) exposes the ones an operator may want to change; chain-wide rules are
 * chain parameters (src/chain/genesis.ts), not these.
 */

/** The worker protocol: one request session per worker (see src/net/sessions.ts). */
export const INFER_PROTOCOL = '/donghae/infer/3.0.0'

/** Jobs a worker runs at once. @default 2 */
export const DEFAULT_SLOTS = 2
/** Jobs a worker queues per slot before it answers "busy". @default 8 */
export const MAX_QUEUE_PER_SLOT = 8
/** Attempts a gateway makes on different workers before it gives up. @default 4 */
export const ATTEMPTS = 4
/** How long a gateway waits for one worker's answer. @default 8 000 ms */
export const JOB_TIMEOUT_MS = 8_000
/**
 * What a gateway adds to `JOB_TIMEOUT_MS` per token of a generation (prompt and max_tokens): a
 * long answer streams for a while. @default 250 ms (4 tokens a second on the slowest worker)
 */
export const TOKEN_TIMEOUT_MS = 250
/** Deadline a gateway gives the jobs it signs. @default 30 000 ms */
export const DEFAULT_DEADLINE_MS = 30_000
/** A gateway polls for a free slot this often while every worker is busy. @default 5 ms */
export const SLOT_POLL_MS = 5
/** Receipts per `inference.settle` (at most the chain's `maxReceiptsPerSettle`). @default 64 */
export const SETTLE_BATCH = 64
/** A settler flushes its queue this often. @default 500 ms */
export const SETTLE_INTERVAL_MS = 500
/** A submitted settlement not seen committed after this long is sent again. @default 60 000 ms */
export const SETTLE_TIMEOUT_MS = 60_000
/** Jobs a gateway keeps (with their inputs) for audits. @default 4 096 */
export const KEEP_FOR_AUDIT = 4_096
/** Share of gateway jobs followed by a canary, parts per million. @default 5 000 (0.5 %) */
export const DEFAULT_CANARY_PPM = 5_000
/**
 * A worker advertises its capacity this often while it does not change (a heartbeat within the
 * gateway's TTL, `ADVERT_TTL_MS`), and within `ADVERT_COALESCE_MS` of a change: a job started or
 * ended, a model loaded, dropped or re-calibrated, the worker became schedulable on chain. Every
 * advert is a signature, a gossip message relayed through the mesh and a verification at each
 * peer, so an idle network keeps them rare (issue 16: a node idles at about 0 % of a core). A
 * worker that died unannounced stays in gateways' tables for up to the TTL; a job sent to it
 * fails at once (no connection) and is retried on another worker. @default 10 s
 */
export const ADVERT_INTERVAL_MS = 10_000
export const ADVERT_COALESCE_MS = 100
/**
 * The longest wait for "the next commits" after a transaction (then state is read again): a chain
 * without empty blocks may make no further block for a minute. @default 5 000 ms
 */
export const COMMIT_WAIT_MS = 5_000
/** A worker looks for receipts its gateway left unsettled this often (besides every fifth commit). @default 5 000 ms */
export const ORPHAN_CHECK_MS = 5_000
/** A worker looks for registered models to load this often. @default 2 000 ms */
export const MODEL_SYNC_MS = 2_000
/** And re-calibrates the ones it serves this often. @default 5 min */
export const CALIBRATE_MS = 5 * 60_000
/** A worker keeps the receipts it signed (to settle them itself) at most this many. @default 16 384 */
export const MAX_KEPT_RECEIPTS = 16_384
/** Largest request or answer on the worker protocol. @default 16 MiB */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024
/**
 * A gateway keeps its own deposit (for the jobs it pays for itself: operator requests, canaries)
 * topped up to this many calls of the model it serves at the highest price, when its balance allows.
 */
export const SELF_DEPOSIT_CALLS = 1_000n
/** A typical generation, for sizing the node's own deposit by a language model's token prices. */
export const TYPICAL_PROMPT_TOKENS = 128
export const TYPICAL_OUTPUT_TOKENS = 128
