/**
 * The node's Prometheus metrics, declared in one place (prom-client, a Registry per node so two
 * nodes in one process never share series). Names carry the `donghae_` prefix and their unit.
 * Chain, peer, NAT and slash metrics follow the event bus (`attach(bus)`); job and audit
 * metrics are recorded by the inference service through `jobCompleted` and `audit`.
 * Served as text at GET /metrics (routes/metrics.ts); the text passes `promtool check metrics`
 * without warnings (test/attacks/node-http.test.ts runs it on a real node).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { EventBus, NodeEvent } from './events.ts'

export type JobRole = 'gateway' | 'worker'
export type AuditResult = 'pass' | 'fail' | 'dispute'
export const NAT_METHODS = ['pmp', 'upnp', 'none', 'off'] as const

/** Seconds from proposal to commit: sub-second on a LAN, a few seconds across the Internet. */
const FINALITY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30]
/** Inference latency: milliseconds for the demo models, seconds for large ones. */
const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

/** prom-client default metrics dropped from the registry (see the constructor). */
const GAUGES_NAMED_LIKE_COUNTERS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
]

export interface NodeMetricsOptions {
  /** Also export Node.js process metrics (CPU, memory, event loop lag) as donghae_process_..., donghae_nodejs_.... @default true */
  processMetrics?: boolean
  /** Labels on every series, e.g. { node: 'node0' }. */
  labels?: Record<string, string>
}

export class NodeMetrics {
  readonly registry = new Registry()
  readonly #height: Gauge
  readonly #txs: Counter
  readonly #finality: Histogram
  readonly #peers: Gauge
  readonly #jobs: Counter<'model' | 'role' | 'result'>
  readonly #latency: Histogram<'model' | 'role'>
  readonly #audits: Counter<'result'>
  readonly #slashes: Counter<'module' | 'reason'>
  readonly #nat: Gauge<'method'>
  #bus: EventBus | undefined

  constructor(options: NodeMetricsOptions = {}) {
    const registers = [this.registry]
    if (options.labels !== undefined) this.registry.setDefaultLabels(options.labels)
    this.#height = new Gauge({ name: 'donghae_chain_height', help: 'Latest committed block height', registers })
    this.#txs = new Counter({
      name: 'donghae_chain_txs_total',
      help: 'Transactions in blocks committed since the node started',
      registers,
    })
    this.#finality = new Histogram({
      name: 'donghae_finality_seconds',
      help: "Seconds from a block's proposal time to its commit on this node",
      buckets: FINALITY_BUCKETS,
      registers,
    })
    this.#peers = new Gauge({ name: 'donghae_peers', help: 'Connected libp2p peers', registers })
    this.#jobs = new Counter({
      name: 'donghae_jobs_total',
      help: 'Inference jobs finished, by model, role (gateway or worker) and result (ok or error)',
      labelNames: ['model', 'role', 'result'] as const,
      registers,
    })
    this.#latency = new Histogram({
      name: 'donghae_job_latency_seconds',
      help: 'Inference job latency: request to answer (gateway) or start to finish (worker)',
      labelNames: ['model', 'role'] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    })
    this.#audits = new Counter({
      name: 'donghae_audits_total',
      help: 'Audits of inference receipts, by result (pass, fail, dispute)',
      labelNames: ['result'] as const,
      registers,
    })
    this.#slashes = new Counter({
      name: 'donghae_slashes_total',
      help: 'Slashing events seen in committed blocks, by module (staking, inference) and reason',
      labelNames: ['module', 'reason'] as const,
      registers,
    })
    this.#nat = new Gauge({
      name: 'donghae_nat_state',
      help: 'Port mapping: 1 for the current method (pmp, upnp, none, off), 0 for the others',
      labelNames: ['method'] as const,
      registers,
    })
    const streams = (): number => this.#bus?.subscriberCount ?? 0
    new Gauge({
      name: 'donghae_event_streams',
      help: 'Open event-stream subscriptions (GET /v1/events clients)',
      registers,
      collect() {
        this.set(streams())
      },
    })
    if (options.processMetrics !== false) {
      // The event-loop delay histogram samples with a timer: prom-client's 10 ms wakes an idle node
      // 100 times a second; 50 ms (as the resource sampler's) is enough to see a blocked loop.
      collectDefaultMetrics({ register: this.registry, prefix: 'donghae_', eventLoopMonitoringPrecision: 50 })
      // prom-client's totals of active handles, requests and resources are gauges named *_total,
      // which Prometheus reserves for counters (`promtool check metrics` warns). The per-type
      // gauges stay: sum(donghae_nodejs_active_handles) is the total.
      for (const name of GAUGES_NAMED_LIKE_COUNTERS) this.registry.removeSingleMetric(`donghae_${name}`)
    }
  }

  blockCommitted(block: { height: number; txs: number }): void {
    this.#height.set(block.height)
    this.#txs.inc(block.txs)
  }

  finality(seconds: number): void {
    if (Number.isFinite(seconds) && seconds >= 0) this.#finality.observe(seconds)
  }

  peers(count: number): void {
    this.#peers.set(count)
  }

  nat(method: (typeof NAT_METHODS)[number]): void {
    for (const m of NAT_METHODS) this.#nat.set({ method: m }, m === method ? 1 : 0)
  }

  /** One finished inference job (call once per job and role). */
  jobCompleted(job: { model: string; latencySeconds: number; ok: boolean; role: JobRole }): void {
    this.#jobs.inc({ model: job.model, role: job.role, result: job.ok ? 'ok' : 'error' })
    if (Number.isFinite(job.latencySeconds) && job.latencySeconds >= 0)
      this.#latency.observe({ model: job.model, role: job.role }, job.latencySeconds)
  }

  audit(audit: { result: AuditResult }): void {
    this.#audits.inc({ result: audit.result })
  }

  slash(slash: { module: string; reason: string }): void {
    this.#slashes.inc({ module: slash.module, reason: slash.reason })
  }

  /** Follows the bus: blocks, finality, peers, NAT and slashes (jobs are recorded by `jobCompleted`). */
  attach(bus: EventBus): () => void {
    this.#bus = bus
    const stop = bus.on((event) => this.#onEvent(event))
    return () => {
      stop()
      if (this.#bus === bus) this.#bus = undefined
    }
  }

  #onEvent(event: NodeEvent): void {
    switch (event.type) {
      case 'block':
        return this.blockCommitted(event.data)
      case 'finality':
        return this.finality(event.data.seconds)
      case 'peer':
        return this.peers(event.data.peers)
      case 'nat':
        return this.nat(event.data.method)
      case 'slash':
        return this.slash(event.data)
      case 'job':
        return
    }
  }

  /** The Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics()
  }

  get contentType(): string {
    return this.registry.contentType
  }
}
