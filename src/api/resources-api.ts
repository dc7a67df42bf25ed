/**
 * What the resources route (routes/resources.ts) needs from a node: the samples of its resource
 * use that the node takes every few seconds (src/node/resources.ts `ResourceSampler`), from the
 * same sources as the process metrics at GET /metrics (CPU time, resident memory, event-loop
 * delay) plus the block interval from the node's commits. The dashboard's Resources page plots
 * them.
 *
 *     GET /v1/node/resources?since   -> ResourcesView, the samples taken after `since` (Unix ms), oldest first
 */
export interface ResourceSample {
  /** When the sample was taken, Unix ms; it covers the interval since the previous one. */
  at: number
  /** CPU time (user + system) over the interval, in cores: 1 = one core busy all the time. */
  cpu: number
  /** Resident set size at `at`, bytes (donghae_process_resident_memory_bytes). */
  rssBytes: number
  /** Event-loop delay over the interval, 99th percentile, ms: how late a timer ran (donghae_nodejs_eventloop_lag_p99_seconds less its 10 ms period). */
  eventLoopDelayMs: number
  /** Longest event-loop delay over the interval, ms. */
  eventLoopMaxMs: number
  /**
   * Mean time between the blocks committed in the interval, ms; with none committed in it, the
   * time since the last commit when that is longer than the last interval (a stall shows). Null
   * before the node has seen two commits.
   */
  blockIntervalMs: number | null
  /** The node's chain height at `at`. */
  height: number
}

export interface ResourcesView {
  /** How often the node samples, ms. */
  intervalMs: number
  /** How far back the node keeps samples, ms. */
  windowMs: number
  samples: ResourceSample[]
}

export interface ResourcesApi {
  /** The samples taken after `since` (Unix ms; all kept ones without it), oldest first. */
  resources(since?: number): ResourcesView
}
