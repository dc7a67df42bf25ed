/**
 * The node's resource use over time, for the dashboard's Resources page (GET /v1/node/resources,
 * api/resources-api.ts): every `intervalMs` (5 s) one sample of CPU, resident memory, event-loop
 * delay and block interval goes into a ring buffer that keeps the last `windowMs` (1 h: 720
 * samples). The sources are the ones behind the process metrics at GET /metrics:
 * `process.cpuUsage()` (process_cpu_seconds_total), `process.memoryUsage.rss()`
 * (process_resident_memory_bytes) and a `perf_hooks.monitorEventLoopDelay` histogram
 * (nodejs_eventloop_lag_p99_seconds), read and reset at each sample; block times come from the
 * node's commits (`blockCommitted`).
 *
 * Cheap by construction: one timer every 5 s doing a few arithmetic operations, and the delay
 * histogram's own timer every 50 ms (measured on an idle process: under 0.1 % of a core; at
 * prom-client's 10 ms it is about five times that). The histogram records each period of its
 * timer, so the sampler reports what exceeds the period: how late the loop was. (prom-client's
 * p99 at /metrics includes its 10 ms period.)
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'
import type { Clock } from '../core/clock.ts'
import type { ResourceSample, ResourcesApi, ResourcesView } from '../api/resources-api.ts'

export const RESOURCE_INTERVAL_MS = 5_000
export const RESOURCE_WINDOW_MS = 60 * 60_000
/** Period of the event-loop delay histogram's timer, ms (prom-client's default metrics use 10). */
const EVENT_LOOP_RESOLUTION_MS = 50

/** Where the figures come from: the process by default, fakes in tests. */
export interface ResourceSources {
  /** CPU time used by the process so far (user + system), µs. */
  cpuMicros(): number
  /** Resident set size now, bytes. */
  rssBytes(): number
  /** Event-loop delay since the last `reset`: 99th percentile and max, ms. */
  eventLoop(): { p99Ms: number; maxMs: number }
  /** Starts a new delay interval. */
  resetEventLoop(): void
  /** Stops whatever the sources run (the delay histogram). */
  close(): void
}

/** The process's own figures (the sources of GET /metrics' process metrics). */
export function processSources(): ResourceSources {
  const histogram = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS })
  histogram.enable()
  // the delay beyond the timer's period, ms
  const ms = (ns: number): number => (Number.isFinite(ns) ? Math.max(0, ns / 1e6 - EVENT_LOOP_RESOLUTION_MS) : 0)
  return {
    cpuMicros: () => {
      const used = process.cpuUsage()
      return used.user + used.system
    },
    rssBytes: () => process.memoryUsage.rss(),
    eventLoop: () =>
      histogram.count === 0
        ? { p99Ms: 0, maxMs: 0 }
        : { p99Ms: ms(histogram.percentile(99)), maxMs: ms(histogram.max) },
    resetEventLoop: () => histogram.reset(),
    close: () => histogram.disable(),
  }
}

/** Wall-clock timers that never keep the process alive. */
const unrefClock: Pick<Clock, 'now' | 'setTimer'> = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    const timer = setTimeout(fn, ms)
    timer.unref()
    return () => clearTimeout(timer)
  },
}

export interface ResourceSamplerOptions {
  /** @default RESOURCE_INTERVAL_MS */
  intervalMs?: number
  /** @default RESOURCE_WINDOW_MS */
  windowMs?: number
  /** @default wall-clock time with unref'd timers */
  clock?: Pick<Clock, 'now' | 'setTimer'>
  /** @default processSources() (made at `start`) */
  sources?: ResourceSources
}

export class ResourceSampler implements ResourcesApi {
  readonly intervalMs: number
  readonly windowMs: number
  readonly #clock: Pick<Clock, 'now' | 'setTimer'>
  #sources: ResourceSources | undefined
  readonly #ring: Array<ResourceSample | undefined>
  /** Where the next sample goes, and how many the ring holds. */
  #next = 0
  #size = 0
  #cancel: (() => void) | undefined
  #last: { at: number; cpuMicros: number } | undefined
  #height = 0
  #lastCommitAt: number | undefined
  #lastGapMs: number | undefined
  #gapSumMs = 0
  #gapCount = 0

  constructor(options: ResourceSamplerOptions = {}) {
    this.intervalMs = options.intervalMs ?? RESOURCE_INTERVAL_MS
    this.windowMs = options.windowMs ?? RESOURCE_WINDOW_MS
    if (!(this.intervalMs > 0) || !(this.windowMs >= this.intervalMs))
      throw new RangeError('the resource sampler needs intervalMs > 0 and windowMs >= intervalMs')
    this.#clock = options.clock ?? unrefClock
    this.#sources = options.sources
    this.#ring = new Array<ResourceSample | undefined>(Math.ceil(this.windowMs / this.intervalMs)).fill(undefined)
  }

  /** Starts sampling: the first sample comes one interval from now. */
  start(): void {
    if (this.#cancel !== undefined) return
    this.#sources ??= processSources()
    this.#sources.resetEventLoop()
    this.#last = { at: this.#clock.now(), cpuMicros: this.#sources.cpuMicros() }
    const tick = (): void => {
      this.sample()
      this.#cancel = this.#clock.setTimer(this.intervalMs, tick)
    }
    this.#cancel = this.#clock.setTimer(this.intervalMs, tick)
  }

  stop(): void {
    this.#cancel?.()
    this.#cancel = undefined
    this.#sources?.close()
  }

  /** A block committed at `at` (default now): the height and the block interval follow it. */
  blockCommitted(height: number, at = this.#clock.now()): void {
    this.#height = Math.max(this.#height, height)
    if (this.#lastCommitAt !== undefined && at >= this.#lastCommitAt) {
      const gap = at - this.#lastCommitAt
      this.#lastGapMs = gap
      this.#gapSumMs += gap
      this.#gapCount++
    }
    this.#lastCommitAt = at
  }

  /** Takes one sample now (the timer's work; tests call it directly). */
  sample(): ResourceSample {
    const sources = (this.#sources ??= processSources())
    const at = this.#clock.now()
    const cpuMicros = sources.cpuMicros()
    const last = this.#last ?? { at, cpuMicros }
    const elapsedMs = at - last.at
    const loop = sources.eventLoop()
    sources.resetEventLoop()
    let blockIntervalMs: number | null = null
    if (this.#gapCount > 0) blockIntervalMs = this.#gapSumMs / this.#gapCount
    else if (this.#lastCommitAt !== undefined && this.#lastGapMs !== undefined)
      blockIntervalMs = Math.max(this.#lastGapMs, at - this.#lastCommitAt)
    this.#gapSumMs = 0
    this.#gapCount = 0
    const sample: ResourceSample = {
      at,
      cpu: elapsedMs > 0 ? Math.max(0, cpuMicros - last.cpuMicros) / (elapsedMs * 1000) : 0,
      rssBytes: sources.rssBytes(),
      eventLoopDelayMs: loop.p99Ms,
      eventLoopMaxMs: loop.maxMs,
      blockIntervalMs,
      height: this.#height,
    }
    this.#last = { at, cpuMicros }
    this.#ring[this.#next] = sample
    this.#next = (this.#next + 1) % this.#ring.length
    this.#size = Math.min(this.#size + 1, this.#ring.length)
    return sample
  }

  resources(since?: number): ResourcesView {
    const samples: ResourceSample[] = []
    const first = (this.#next - this.#size + this.#ring.length) % this.#ring.length
    for (let i = 0; i < this.#size; i++) {
      const sample = this.#ring[(first + i) % this.#ring.length] as ResourceSample
      if (since === undefined || sample.at > since) samples.push(sample)
    }
    return { intervalMs: this.intervalMs, windowMs: this.windowMs, samples }
  }
}
