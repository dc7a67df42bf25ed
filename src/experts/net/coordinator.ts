/**
 * `RemoteExperts`: an `ExpertProvider` whose experts run on the peers that host them (hivemind's
 * DMoE, with replicas). For each layer the engine hands it the rows routed to each expert; each
 * call goes to one host over `/donghae/experts/call/1` (protocol.ts).
 *
 * Routing and failover rules:
 *   1. When `local` can run the expert here, it does (host 'local'); if it fails, or takes more
 *      than `callTimeoutMs` while other hosts are known (its weights may still be on their way),
 *      the call goes to the network as below.
 *   2. Candidates are the directory's hosts of the block (directory.ts), less quarantined hosts;
 *      suspended hosts come last (a last resort before masking), the one whose suspension ends
 *      first before the others. Then they are ordered: hosts that can also serve other calls of this layer, or
 *      that answered the previous layer of this forward pass, first (co-location: fewer hops per
 *      token); then lowest mean latency; then fewest failures; then DID.
 *   3. A call waits at most `callTimeoutMs` for a host. On an error, a refusal, a timeout or a
 *      bad answer (wrong size, a value that is not finite) it goes at once to the next candidate
 *      (`failovers` counts these), up to `maxAttempts` hosts. The failed host's failure counters
 *      rise; `failuresToSuspend` failures in a row suspend it for `suspendMs`. A host that says it
 *      does not host the block is dropped from the directory's cache; a host that refuses for
 *      its byte budget is skipped without blame. With `hedgeMinMs` set, a host that is merely
 *      slow (no answer after max(`hedgeMinMs`, `HEDGE_FACTOR` × its mean latency), at most a quarter
 *      of `callTimeoutMs`) gets the next
 *      candidate beside it and the first answer wins ("The Tail at Scale"'s hedged requests):
 *      a host that stops answering without closing its connection costs a hedge delay, not a
 *      call deadline.
 *   4. The layer returns when every call has answered or run out of hosts, or, once
 *      `layerDeadlineMs` has passed, as soon as `kMin` calls have answered (calls still running
 *      are abandoned). Calls without an answer are `null` (`masked` counts them): the engine
 *      masks them and renormalizes the gate. Fewer than `min(kMin, calls)` answers is a
 *      `TooFewExpertsError`.
 *
 * Audits: with probability `auditPpm`/1e6 (drawn from the injected `rng`) a remote answer is
 * recomputed in the background by a second opinion - `local` when it can, else another replica
 * - and compared value by value (max |a - b| <= `toleranceMicro`/1e6). A mismatch asks a third
 * opinion (local or another replica); the side that disagrees with the two others is
 * quarantined for `quarantineMs` and its `auditsFailed` rises. Without a third opinion, or when
 * all three disagree, the audit is inconclusive and nobody is blamed. Audits do not delay the
 * layer; `idle()` waits for them.
 */
import { systemClock, type Clock } from '../../core/clock.ts'
import { AbortError } from '../../core/errors.ts'
import { cryptoRng, type Rng } from '../../core/rng.ts'
import { OverBudgetError, type PeerTransport } from '../../core/transport.ts'
import type { ExpertAnswer, ExpertCall, ExpertProvider } from '../model/provider.ts'
import { CoUsage, type ExpertRef } from './co-usage.ts'
import type { ExpertHosts } from './directory.ts'
import { ExpertDeadlineError, NotHostedError, TooFewExpertsError } from './errors.ts'
import { HostBook, type HostStats } from './host-book.ts'
import {
  EXPERT_CALL_PROTOCOL,
  decodeCallAnswer,
  encodeCallRequest,
  floatsToBytes,
  MAX_DEADLINE_MS,
} from './protocol.ts'

/** A hedge waits this many times the host's mean latency (see `hedgeMinMs`). */
export const HEDGE_FACTOR = 4

/** Runs an expert in this process, or returns undefined when this node does not host it. */
export type LocalExpertRunner = (call: ExpertCall, signal: AbortSignal) => Promise<Float32Array> | undefined

export interface RemoteExpertsOptions {
  transport: Pick<PeerTransport, 'request'>
  directory: ExpertHosts
  /** The MetaBlock family and version the calls belong to (sent with every call). */
  family: string
  version: number
  local?: LocalExpertRunner
  /** Fewest answered calls a layer needs. @default 1 */
  kMin?: number
  /** @default 1000 */
  callTimeoutMs?: number
  /** @default 2 × callTimeoutMs */
  layerDeadlineMs?: number
  /** Hosts tried per call. @default 3 */
  maxAttempts?: number
  /**
   * Hedged requests: a call that has not answered after max(`hedgeMinMs`, 4 × the host's mean
   * latency), at most `callTimeoutMs` / 4, also goes to the next candidate, and the first answer wins (the loser is abandoned
   * without blame; its time so far feeds its latency). Undefined: no hedging, a host gets the
   * whole call deadline before the next is asked.
   */
  hedgeMinMs?: number
  /** @default 3 */
  failuresToSuspend?: number
  /** @default 30 s */
  suspendMs?: number
  /** @default 5 minutes */
  quarantineMs?: number
  /** Audit probability, parts per million. @default 0 */
  auditPpm?: number
  /** Audit tolerance: max |a - b| in millionths. @default 1000 (1e-3) */
  toleranceMicro?: number
  /** Bound of a directory lookup. @default callTimeoutMs */
  lookupTimeoutMs?: number
  rng?: Rng
  clock?: Clock
}

export interface AuditCounts {
  run: number
  passed: number
  failed: number
  inconclusive: number
}

export interface RemoteExpertsStats {
  hosts: HostStats[]
  /** Calls moved to another host after a failure, or given a second host by hedging. */
  failovers: number
  /** Calls given a second host because the first was slow (counted in `failovers` too). */
  hedges: number
  /** Calls that ended without an answer (masked by the engine). */
  masked: number
  layers: number
  audits: AuditCounts
}

export interface ExpertGroup {
  experts: [ExpertRef, ExpertRef]
  /** Steps that routed to both. */
  count: number
  /** count / layer steps recorded. */
  share: number
  /** Hosts known to hold both experts (usable ones). */
  hosts: string[]
}

export interface ReplicationSuggestion {
  block: string
  calls: number
  /** This block's share of all calls. */
  share: number
  replicas: number
  /** ceil(share · hosts · factor), at least 1 and at most the number of hosts. */
  wanted: number
  missing: number
}

interface Opinion {
  host: string
  output: Float32Array
}

/** The largest absolute difference between two tensors (Infinity when their sizes differ). */
/** The refusing peer's error code, when the transport kept it. */
function remoteCode(err: unknown): string | undefined {
  const details = (err as { details?: { remoteCode?: unknown } } | null)?.details
  return typeof details?.remoteCode === 'string' ? details.remoteCode : undefined
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY
  let max = 0
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs((a[i] as number) - (b[i] as number))
    if (!(d <= max)) max = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d
  }
  return max
}

/** Settles with `promise`, or rejects with `signal`'s reason as soon as it aborts. */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error)
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(err as Error)
      },
    )
  })
}

function aborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true
}

function causes(err: unknown): unknown[] {
  const out: unknown[] = []
  for (let e = err, i = 0; e !== undefined && e !== null && i < 5; e = (e as { cause?: unknown }).cause, i++)
    out.push(e)
  return out
}

export class RemoteExperts implements ExpertProvider {
  readonly #transport: Pick<PeerTransport, 'request'>
  readonly #directory: ExpertHosts
  readonly #family: string
  readonly #version: number
  readonly #local: LocalExpertRunner | undefined
  readonly #kMin: number
  readonly #callTimeoutMs: number
  readonly #layerDeadlineMs: number
  readonly #maxAttempts: number
  readonly #hedgeMinMs: number | undefined
  readonly #auditPpm: number
  readonly #tolerance: number
  readonly #lookupTimeoutMs: number
  readonly #quarantineMs: number
  readonly #rng: Rng
  readonly #clock: Clock
  readonly #book: HostBook
  readonly #coUsage = new CoUsage()
  /** Hosts that answered, per block (bounded per block). */
  readonly #served = new Map<string, Set<string>>()
  readonly #audits = new Set<Promise<void>>()
  readonly #closing = new AbortController()
  #previous: { layer: number; hosts: Set<string> } | undefined
  #failovers = 0
  #hedges = 0
  #masked = 0
  #layers = 0
  readonly #auditCounts: AuditCounts = { run: 0, passed: 0, failed: 0, inconclusive: 0 }

  constructor(options: RemoteExpertsOptions) {
    this.#transport = options.transport
    this.#directory = options.directory
    this.#family = options.family
    this.#version = options.version
    this.#local = options.local
    this.#kMin = options.kMin ?? 1
    this.#callTimeoutMs = Math.min(options.callTimeoutMs ?? 1_000, MAX_DEADLINE_MS)
    this.#layerDeadlineMs = options.layerDeadlineMs ?? 2 * this.#callTimeoutMs
    this.#maxAttempts = options.maxAttempts ?? 3
    this.#hedgeMinMs = options.hedgeMinMs
    this.#auditPpm = options.auditPpm ?? 0
    this.#tolerance = (options.toleranceMicro ?? 1_000) / 1e6
    this.#lookupTimeoutMs = options.lookupTimeoutMs ?? this.#callTimeoutMs
    this.#quarantineMs = options.quarantineMs ?? 5 * 60_000
    this.#rng = options.rng ?? cryptoRng()
    this.#clock = options.clock ?? systemClock
    this.#book = new HostBook({
      clock: this.#clock,
      failuresToSuspend: options.failuresToSuspend ?? 3,
      suspendMs: options.suspendMs ?? 30_000,
      quarantineMs: this.#quarantineMs,
      failureLatencyMs: this.#callTimeoutMs,
    })
  }

  async runLayer(calls: readonly ExpertCall[], signal?: AbortSignal): Promise<Array<ExpertAnswer | null>> {
    if (signal?.aborted === true) throw new AbortError()
    if (calls.length === 0) return []
    this.#layers++
    this.#coUsage.record(calls)
    const layerAbort = new AbortController()
    const onAbort = (): void => layerAbort.abort(new AbortError())
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      const candidates = await this.#candidates(calls, layerAbort.signal)
      const results = await this.#runAll(calls, candidates, layerAbort)
      if (aborted(signal)) throw new AbortError()
      const answered = results.filter((r) => r !== null).length
      this.#masked += calls.length - answered
      const layer = (calls[0] as ExpertCall).layer
      this.#previous = { layer, hosts: new Set(results.flatMap((r) => (r === null ? [] : [r.host]))) }
      const needed = Math.min(this.#kMin, calls.length)
      if (answered < needed)
        throw new TooFewExpertsError(
          `only ${answered} of ${calls.length} experts of layer ${layer} answered; ${needed} needed`,
          {
            details: { layer, answered, needed, calls: calls.length },
          },
        )
      return results
    } finally {
      signal?.removeEventListener('abort', onAbort)
      layerAbort.abort()
    }
  }

  /** Quarantines `did` (operator action) for `ms` (default `quarantineMs`). */
  quarantine(did: string, ms: number = this.#quarantineMs): void {
    this.#book.quarantine(did, ms)
  }

  /** Lifts `did`'s quarantine and suspension. */
  recover(did: string): void {
    this.#book.recover(did)
  }

  isQuarantined(did: string): boolean {
    return this.#book.isQuarantined(did)
  }

  stats(): RemoteExpertsStats {
    return {
      hosts: this.#book.all(),
      failovers: this.#failovers,
      hedges: this.#hedges,
      masked: this.#masked,
      layers: this.#layers,
      audits: { ...this.#auditCounts },
    }
  }

  host(did: string): HostStats | undefined {
    return this.#book.get(did)
  }

  /** Experts often routed together (same step or adjacent layers), with the hosts holding both. */
  groups(options: { minCount?: number; limit?: number } = {}): ExpertGroup[] {
    const steps = Math.max(1, this.#coUsage.steps)
    return this.#coUsage
      .pairs(options.minCount ?? 2)
      .slice(0, options.limit ?? 20)
      .map((p) => {
        const b = new Set(this.#hostsOfBlock(p.b.block))
        return {
          experts: [p.a, p.b] as [ExpertRef, ExpertRef],
          count: p.count,
          share: p.count / steps,
          hosts: this.#hostsOfBlock(p.a.block).filter((h) => b.has(h)),
        }
      })
  }

  /**
   * Blocks that take a large share of the calls but have few replicas: wanted =
   * ceil(share · hosts · factor) (at least 1, at most `hosts`), listed when the known replicas
   * fall short, most missing first. `usage` defaults to this coordinator's own counts; `hosts`
   * to the number of usable hosts it knows.
   */
  replicationSuggestions(
    usage?: ReadonlyArray<{ block: string; calls: number }>,
    options: { factor?: number; hosts?: number } = {},
  ): ReplicationSuggestion[] {
    const entries = usage ?? this.#coUsage.usage()
    const factor = options.factor ?? 2
    const total = entries.reduce((sum, e) => sum + Math.max(0, e.calls), 0)
    if (total === 0) return []
    const known = new Set<string>()
    for (const e of entries) for (const h of this.#hostsOfBlock(e.block)) known.add(h)
    for (const h of this.#book.all()) if (this.#book.usable(h.did)) known.add(h.did)
    const hosts = Math.max(1, options.hosts ?? known.size)
    const out: ReplicationSuggestion[] = []
    for (const e of entries) {
      const share = Math.max(0, e.calls) / total
      const replicas = this.#hostsOfBlock(e.block).length
      const wanted = Math.min(hosts, Math.max(1, Math.ceil(share * hosts * factor)))
      if (replicas < wanted)
        out.push({ block: e.block, calls: e.calls, share, replicas, wanted, missing: wanted - replicas })
    }
    return out.sort((a, b) => b.missing - a.missing || b.share - a.share || (a.block < b.block ? -1 : 1))
  }

  /** Resolves when the audits under way have finished. */
  async idle(): Promise<void> {
    while (this.#audits.size > 0) await Promise.all([...this.#audits])
  }

  /** Abandons audits under way. */
  close(): void {
    this.#closing.abort(new AbortError('the coordinator was closed'))
  }

  // --- routing -------------------------------------------------------------------------------

  async #candidates(calls: readonly ExpertCall[], signal: AbortSignal): Promise<string[][]> {
    const lists = await Promise.all(
      calls.map(async (call) => {
        try {
          const hosts = await this.#directory.hostsOf(call.block, { signal, timeoutMs: this.#lookupTimeoutMs })
          // quarantined hosts are out; suspended ones stay, last: a replica that was slow once
          // under load is still better than masking the expert
          return hosts.filter((h) => !this.#book.isQuarantined(h))
        } catch {
          return []
        }
      }),
    )
    // Co-location: a host that can serve several calls of this layer, or served the previous
    // layer of this pass, comes first.
    const layer = (calls[0] as ExpertCall).layer
    const previous =
      this.#previous !== undefined && this.#previous.layer === layer - 1 ? this.#previous.hosts : undefined
    const together = new Map<string, number>()
    for (const list of lists) for (const h of new Set(list)) together.set(h, (together.get(h) ?? 0) + 1)
    const score = (h: string): number => (together.get(h) ?? 0) + (previous?.has(h) === true ? 1 : 0)
    // a suspended host comes after every usable one, and among suspended hosts the one whose
    // suspension ends first comes first: the host that failed last (the one just killed) is
    // the last resort, not a replica suspended long ago for a single slip
    const suspendedUntil = (h: string): number => (this.#book.usable(h) ? 0 : (this.#book.get(h)?.suspendedUntil ?? 0))
    return lists.map((list) =>
      [...new Set(list)].sort(
        (a, b) => suspendedUntil(a) - suspendedUntil(b) || score(b) - score(a) || this.#book.compare(a, b),
      ),
    )
  }

  #runAll(
    calls: readonly ExpertCall[],
    candidates: string[][],
    layerAbort: AbortController,
  ): Promise<Array<ExpertAnswer | null>> {
    const needed = Math.min(this.#kMin, calls.length)
    const results: Array<ExpertAnswer | null> = calls.map(() => null)
    let answered = 0
    let settled = 0
    let deadlinePassed = false
    return new Promise((resolve) => {
      let done = false
      const finish = (): void => {
        if (done) return
        done = true
        cancelDeadline()
        resolve([...results])
      }
      const check = (): void => {
        if (settled === calls.length || (deadlinePassed && answered >= needed) || layerAbort.signal.aborted) finish()
      }
      const cancelDeadline = this.#clock.setTimer(this.#layerDeadlineMs, () => {
        deadlinePassed = true
        check()
      })
      layerAbort.signal.addEventListener('abort', finish, { once: true })
      calls.forEach((call, i) => {
        void this.#runCall(call, candidates[i] ?? [], layerAbort.signal)
          .then((answer) => {
            if (done) return
            results[i] = answer
            if (answer !== null) answered++
          })
          .finally(() => {
            settled++
            check()
          })
      })
    })
  }

  async #runCall(call: ExpertCall, candidates: readonly string[], signal: AbortSignal): Promise<ExpertAnswer | null> {
    const started = this.#clock.now()
    // with replicas to fall back on, the local runtime gets one call deadline (its weights may
    // still be on their way here); alone, it gets what the layer allows
    const local = await this.#runLocal(call, signal, candidates.length > 0 ? this.#callTimeoutMs : undefined)
    if (local !== undefined) return { output: local, host: 'local', latencyMs: this.#clock.now() - started }
    let request: Uint8Array
    try {
      request = this.#encode(call)
    } catch {
      return null
    }
    return new Promise<ExpertAnswer | null>((resolve) => {
      const running = new Map<string, { abort: AbortController; at: number }>()
      let next = 0
      let attempts = 0
      let done = false
      let cancelHedge = (): void => {}
      const finish = (answer: ExpertAnswer | null): void => {
        if (done) return
        done = true
        cancelHedge()
        for (const [host, r] of running) {
          // the race was lost: its time so far feeds its latency, without blame
          this.#book.sample(host, this.#clock.now() - r.at)
          r.abort.abort()
        }
        resolve(answer)
      }
      /** Starts the next candidate; false when none is left. */
      const launch = (): boolean => {
        while (next < candidates.length && attempts < this.#maxAttempts && !signal.aborted) {
          const host = candidates[next++] as string
          if (this.#book.isQuarantined(host) || running.has(host)) continue // quarantined beside this call
          if (attempts > 0) this.#failovers++
          attempts++
          start(host)
          return true
        }
        return false
      }
      const start = (host: string): void => {
        const abort = new AbortController()
        const at = this.#clock.now()
        running.set(host, { abort, at })
        cancelHedge()
        const hedgeMs = this.#hedgeDelay(host)
        if (hedgeMs !== undefined)
          cancelHedge = this.#clock.setTimer(hedgeMs, () => {
            if (done) return
            if (launch()) this.#hedges++
          })
        this.#callHost(host, call, request, AbortSignal.any([abort.signal, signal])).then(
          (output) => {
            running.delete(host)
            if (done) return
            const latencyMs = this.#clock.now() - at
            this.#book.success(host, latencyMs)
            this.#noteServed(call.block, host)
            this.#maybeAudit(call, request, host, output)
            finish({ output, host, latencyMs })
          },
          (err: unknown) => {
            running.delete(host)
            if (done || abort.signal.aborted) return
            if (!signal.aborted) this.#failed(call.block, host, err) // else the layer is over: not the host's fault
            if (!launch() && running.size === 0) finish(null)
          },
        )
      }
      if (!launch()) finish(null)
    })
  }

  /**
   * When a call to `host` gets a second host beside it (a hedged request): `HEDGE_FACTOR` × its
   * mean latency, at least `hedgeMinMs` and at most a quarter of the call deadline; never when
   * hedging is off or the deadline is shorter than 4 × `hedgeMinMs`. A host with no latency yet
   * counts as `hedgeMinMs`.
   */
  #hedgeDelay(host: string): number | undefined {
    if (this.#hedgeMinMs === undefined) return undefined
    const mean = this.#book.get(host)?.meanLatencyMs ?? this.#hedgeMinMs
    // a host whose latency is mostly failures still gets its hedge within a quarter deadline
    const ms = Math.min(Math.max(this.#hedgeMinMs, Math.ceil(mean * HEDGE_FACTOR)), Math.floor(this.#callTimeoutMs / 4))
    return ms >= this.#hedgeMinMs ? ms : undefined
  }

  /** The local runtime's answer, or undefined (not hosted here, failed, or past `withinMs`). */
  async #runLocal(call: ExpertCall, signal: AbortSignal, withinMs?: number): Promise<Float32Array | undefined> {
    let running: Promise<Float32Array> | undefined
    try {
      running = this.#local?.(call, signal)
    } catch {
      return undefined
    }
    if (running === undefined) return undefined
    const bound = new AbortController()
    const cancel =
      withinMs === undefined ? () => {} : this.#clock.setTimer(withinMs, () => bound.abort(new AbortError()))
    try {
      // past the bound the computation goes on (its weights stay loaded for the next call)
      const output = await raceAbort(running, AbortSignal.any([signal, bound.signal]))
      return output.length === call.input.length ? output : undefined
    } catch {
      return undefined
    } finally {
      cancel()
    }
  }

  #encode(call: ExpertCall): Uint8Array {
    const dModel = call.rows > 0 ? call.input.length / call.rows : 0
    return encodeCallRequest({
      family: this.#family,
      version: this.#version,
      block: call.block,
      layer: call.layer,
      expert: call.expert,
      rows: call.rows,
      dModel,
      input: floatsToBytes(call.input),
      deadlineMs: this.#callTimeoutMs,
    })
  }

  async #callHost(host: string, call: ExpertCall, request: Uint8Array, signal: AbortSignal): Promise<Float32Array> {
    const abort = new AbortController()
    const cancel = this.#clock.setTimer(this.#callTimeoutMs, () =>
      abort.abort(new ExpertDeadlineError(`host did not answer within ${this.#callTimeoutMs} ms`)),
    )
    const both = AbortSignal.any([abort.signal, signal])
    try {
      const answer = await raceAbort(
        this.#transport.request(host, EXPERT_CALL_PROTOCOL, request, { signal: both, session: true }),
        both,
      )
      return decodeCallAnswer(answer, call.rows, call.input.length / call.rows)
    } finally {
      cancel()
      abort.abort()
    }
  }

  #failed(block: string, host: string, err: unknown): void {
    const chain = causes(err)
    if (chain.some((e) => e instanceof OverBudgetError)) return // asked too much: not the host's fault
    // in memory the error itself arrives; over libp2p its code does (sessions.ts decodeRefusal)
    if (chain.some((e) => e instanceof NotHostedError || remoteCode(e) === NotHostedError.code))
      this.#directory.forget(block, host)
    this.#book.failure(host)
  }

  #noteServed(block: string, host: string): void {
    this.#directory.learn(block, host)
    let hosts = this.#served.get(block)
    if (hosts === undefined) {
      hosts = new Set()
      this.#served.set(block, hosts)
    }
    hosts.add(host)
    if (hosts.size > 64) hosts.delete(hosts.values().next().value as string)
  }

  #hostsOfBlock(block: string): string[] {
    const all = new Set([...this.#directory.cached(block), ...(this.#served.get(block) ?? [])])
    return [...all].filter((h) => !this.#book.isQuarantined(h)).sort()
  }

  // --- audits --------------------------------------------------------------------------------

  #maybeAudit(call: ExpertCall, request: Uint8Array, host: string, output: Float32Array): void {
    if (this.#auditPpm <= 0 || this.#rng.next() * 1e6 >= this.#auditPpm) return
    const audit = this.#audit(call, request, host, output).catch(() => {
      this.#auditCounts.inconclusive++
    })
    this.#audits.add(audit)
    void audit.finally(() => this.#audits.delete(audit))
  }

  async #audit(call: ExpertCall, request: Uint8Array, suspect: string, output: Float32Array): Promise<void> {
    this.#auditCounts.run++
    const close = (a: Float32Array, b: Float32Array): boolean => maxAbsDiff(a, b) <= this.#tolerance
    const second = await this.#opinion(call, request, [suspect])
    if (second === undefined) {
      this.#auditCounts.inconclusive++
      return
    }
    if (close(output, second.output)) {
      this.#auditCounts.passed++
      this.#book.auditPassed(suspect)
      return
    }
    const third = await this.#opinion(call, request, [suspect, second.host])
    if (third === undefined) {
      this.#auditCounts.inconclusive++
      return
    }
    const withSuspect = close(third.output, output)
    const withSecond = close(third.output, second.output)
    if (withSecond && !withSuspect) {
      this.#convict(suspect, [second.host, third.host])
    } else if (withSuspect && !withSecond) {
      this.#convict(second.host, [suspect, third.host])
    } else {
      this.#auditCounts.inconclusive++
    }
  }

  #convict(liar: string, honest: string[]): void {
    this.#auditCounts.failed++
    if (liar !== 'local') {
      this.#book.auditFailed(liar)
      this.#book.quarantine(liar)
    }
    for (const h of honest) if (h !== 'local') this.#book.auditPassed(h)
  }

  /** One more computation of `call` by someone not in `exclude`: local first, else a usable replica. */
  async #opinion(call: ExpertCall, request: Uint8Array, exclude: readonly string[]): Promise<Opinion | undefined> {
    const signal = this.#closing.signal
    if (!exclude.includes('local')) {
      const local = await this.#runLocal(call, signal)
      if (local !== undefined) return { host: 'local', output: local }
    }
    let hosts: string[]
    try {
      hosts = await this.#directory.hostsOf(call.block, { signal, timeoutMs: this.#lookupTimeoutMs })
    } catch {
      return undefined
    }
    const candidates = hosts
      .filter((h) => !exclude.includes(h) && this.#book.usable(h))
      .sort((a, b) => this.#book.compare(a, b))
    let attempts = 0
    for (const host of candidates) {
      if (signal.aborted || attempts++ >= this.#maxAttempts) break
      const at = this.#clock.now()
      try {
        const output = await this.#callHost(host, call, request, signal)
        this.#book.success(host, this.#clock.now() - at)
        return { host, output }
      } catch (err) {
        if (signal.aborted) break
        this.#failed(call.block, host, err)
      }
    }
    return undefined
  }
}
