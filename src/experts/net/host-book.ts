/**
 * What the coordinator knows of each expert host: calls, failures, latency, suspension,
 * quarantine and audit results. One job: the per-host record and the rules that change it.
 *
 *   - A success resets the host's run of failures and feeds its latency.
 *   - A failure (error, refusal, timeout, bad answer) raises its failure counters and feeds a
 *     full call timeout into its latency; `failuresToSuspend` failures in a row suspend it for
 *     `suspendMs` (it is skipped while suspended; one more failure after that suspends it again).
 *   - Quarantine (a failed audit, or the operator) excludes a host for `quarantineMs`; `recover`
 *     lifts quarantine and suspension at once.
 *
 * Latency is an exponential moving average (weight `LATENCY_WEIGHT` for the newest sample), so a
 * host that slows down is noticed within a few calls. Hosts with no sample yet count as 0 ms:
 * a new replica gets tried.
 */
import type { Clock } from '../../core/clock.ts'

export const LATENCY_WEIGHT = 0.3
/** Hosts with a record at most; beyond it the least recently seen are dropped. */
export const MAX_HOST_RECORDS = 4_096

export interface HostStats {
  did: string
  calls: number
  failures: number
  consecutiveFailures: number
  /** Moving average of call latency (failures count as a full call timeout); undefined before any call. */
  meanLatencyMs: number | undefined
  /** Time (ms) until which the host is skipped for failing; 0 when it is not. */
  suspendedUntil: number
  /** Time (ms) until which the host is quarantined; 0 when it is not. */
  quarantinedUntil: number
  auditsPassed: number
  auditsFailed: number
  /** Time (ms) of its last answer; 0 before any. */
  lastSeen: number
}

export interface HostBookOptions {
  clock: Clock
  failuresToSuspend: number
  suspendMs: number
  quarantineMs: number
  /** The latency a failure counts as. */
  failureLatencyMs: number
}

export class HostBook {
  readonly #options: HostBookOptions
  readonly #hosts = new Map<string, HostStats>()

  constructor(options: HostBookOptions) {
    this.#options = options
  }

  success(did: string, latencyMs: number): void {
    const host = this.#record(did)
    host.calls++
    host.consecutiveFailures = 0
    host.lastSeen = this.#options.clock.now()
    this.#latency(host, latencyMs)
  }

  /** A latency sample without an outcome (a hedged call that lost the race, so far). */
  sample(did: string, latencyMs: number): void {
    this.#latency(this.#record(did), latencyMs)
  }

  /** Records a failure; true when the host is suspended by it. */
  failure(did: string): boolean {
    const host = this.#record(did)
    host.calls++
    host.failures++
    host.consecutiveFailures++
    this.#latency(host, this.#options.failureLatencyMs)
    if (host.consecutiveFailures < this.#options.failuresToSuspend) return false
    host.suspendedUntil = this.#options.clock.now() + this.#options.suspendMs
    return true
  }

  auditPassed(did: string): void {
    this.#record(did).auditsPassed++
  }

  auditFailed(did: string): void {
    this.#record(did).auditsFailed++
  }

  quarantine(did: string, ms: number = this.#options.quarantineMs): void {
    this.#record(did).quarantinedUntil = this.#options.clock.now() + ms
  }

  /** Lifts quarantine and suspension (the operator vouches for the host). */
  recover(did: string): void {
    const host = this.#hosts.get(did)
    if (host === undefined) return
    host.quarantinedUntil = 0
    host.suspendedUntil = 0
    host.consecutiveFailures = 0
  }

  isQuarantined(did: string): boolean {
    return (this.#hosts.get(did)?.quarantinedUntil ?? 0) > this.#options.clock.now()
  }

  /** Neither quarantined nor suspended now. */
  usable(did: string): boolean {
    const host = this.#hosts.get(did)
    if (host === undefined) return true
    const now = this.#options.clock.now()
    return host.quarantinedUntil <= now && host.suspendedUntil <= now
  }

  get(did: string): HostStats | undefined {
    const host = this.#hosts.get(did)
    return host === undefined ? undefined : { ...host }
  }

  all(): HostStats[] {
    return [...this.#hosts.values()].map((h) => ({ ...h })).sort((a, b) => (a.did < b.did ? -1 : a.did > b.did ? 1 : 0))
  }

  /** Orders hosts by lowest mean latency, then fewest failures, then DID. */
  compare(a: string, b: string): number {
    const ha = this.#hosts.get(a)
    const hb = this.#hosts.get(b)
    const la = ha?.meanLatencyMs ?? 0
    const lb = hb?.meanLatencyMs ?? 0
    if (la !== lb) return la - lb
    const fa = ha?.failures ?? 0
    const fb = hb?.failures ?? 0
    if (fa !== fb) return fa - fb
    return a < b ? -1 : a > b ? 1 : 0
  }

  #latency(host: HostStats, ms: number): void {
    host.meanLatencyMs =
      host.meanLatencyMs === undefined ? ms : host.meanLatencyMs + LATENCY_WEIGHT * (ms - host.meanLatencyMs)
  }

  #record(did: string): HostStats {
    let host = this.#hosts.get(did)
    if (host === undefined) {
      host = {
        did,
        calls: 0,
        failures: 0,
        consecutiveFailures: 0,
        meanLatencyMs: undefined,
        suspendedUntil: 0,
        quarantinedUntil: 0,
        auditsPassed: 0,
        auditsFailed: 0,
        lastSeen: 0,
      }
      if (this.#hosts.size >= MAX_HOST_RECORDS) this.#dropStalest()
      this.#hosts.set(did, host)
    }
    return host
  }

  #dropStalest(): void {
    const now = this.#options.clock.now()
    let stalest: HostStats | undefined
    for (const host of this.#hosts.values()) {
      if (host.quarantinedUntil > now) continue // a quarantine is not forgotten early
      if (stalest === undefined || host.lastSeen < stalest.lastSeen) stalest = host
    }
    if (stalest !== undefined) this.#hosts.delete(stalest.did)
  }
}
