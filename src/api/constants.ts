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

/**
 * Event streams (GET /v1/events) open at once, from all clients; one more is 503
 * TOO_MANY_STREAMS with Retry-After. Each costs a socket and a bounded buffer.
 * @default 64
 */
export const MAX_EVENT_STREAMS = 64

/**
 * Event streams open at once from one client address (a dashboard tab holds one), so one client
 * cannot take every slot.
 * @default 8
 */
export const MAX_EVENT_STREAMS_PER_CLIENT = 8

/**
 * Largest body of POST /v1/operator/models (an ONNX file as base64).
 * @default 64 MiB (operator only; a larger model is published from a folder on the node, `dir`)
 */
export const MAX_MODEL_BODY_BYTES = 64 * 1024 * 1024

/**
 * Largest JSON body of POST /v1/infer. Enough for a 640×640 RGB float32 image as `data_b64`
 * (4.9 MB raw, 6.6 MB as base64) or ~1-4 M values as a JSON number array (a 1×3×64×96 float
 * tensor is ~0.4 MB); bigger tensors go as CBOR or application/octet-stream.
 * @default 8 MiB
 */
export const MAX_INFER_JSON_BYTES = 8 * 1024 * 1024

/**
 * Largest CBOR body of POST /v1/infer and raw body of POST /v1/infer/{model}: the tensor limit
 * (inference/tensor.ts DEFAULT_TENSOR_LIMITS.maxBytes, 16 MiB, itself bounded by the worker
 * protocol's message size) plus 64 KiB for names, dims, the job and CBOR heads. Checked before the
 * body is read when it declares its length, and while it arrives when it does not.
 * @default 16 MiB + 64 KiB
 */
export const MAX_INFER_BINARY_BYTES = 16 * 1024 * 1024 + 64 * 1024

/**
 * Largest body of POST /v1/completions and /v1/chat/completions (a long chat history).
 * @default 1 MiB
 */
export const MAX_COMPLETION_BODY_BYTES = 1024 * 1024

/**
 * A streamed completion sends its SSE head with its first piece, so that a request the network
 * refuses at once (no worker, no deposit) is still a plain HTTP error; after this long without a
 * piece (a long prompt, a model loading) the stream opens anyway and sends a comment line every
 * SSE_HEARTBEAT_MS (routes/events.ts) until the first piece, so idle timeouts do not cut it.
 * @default 2 000 ms
 */
export const COMPLETION_STREAM_OPEN_MS = 2_000

/**
 * Connection and request timeouts of the API's HTTP server (Node's http.Server):
 *  - `headersMs`: the request line and headers must arrive within this (slowloris); then 408;
 *  - `requestMs`: the whole request, body included, must arrive within this; then 408 (a 20 MiB
 *    model upload needs about 3 Mbit/s);
 *  - `keepAliveMs`: an idle keep-alive connection is closed after this;
 *  - `idleMs`: a socket with no traffic either way for this long is destroyed (event streams send
 *    a heartbeat every SSE_HEARTBEAT_MS, well inside it; a completion that computes longer than
 *    this without streaming is cut, so stream long ones).
 * @default { headersMs: 10 000, requestMs: 60 000, keepAliveMs: 10 000, idleMs: 120 000 }
 */
export const DEFAULT_API_TIMEOUTS = Object.freeze({
  headersMs: 10_000,
  requestMs: 60_000,
  keepAliveMs: 10_000,
  idleMs: 120_000,
})

export type ApiTimeouts = { readonly [K in keyof typeof DEFAULT_API_TIMEOUTS]: number }
