/**
 * One chaos run: a devnet of real processes, the load, the schedule of faults, the checks.
 *
 *   setup - start every node - warm-up (load starts) - chaos (faults applied and lifted on
 *   time) - liveness (faults over: the chain must commit again within the bound) - load stops -
 *   settle (every receipt must settle within the bound) - final checks - shutdown
 *
 * The checks run all along (`invariants.ts`). With `failFast` the run ends at the first
 * violation (the shrinker's re-runs do). Progress goes to `progress` (the CLI prints it); the
 * result is a plain object the CLI prints as JSON.
 */
import { mkdir, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { createRng } from '../core/rng.ts'
import { DonghaeClient } from '../api/client.ts'
import { Cluster } from './cluster.ts'
import {
  CHECK_INTERVAL_MS,
  DEFAULT_LIVENESS_BOUND_MS,
  DISK_FULL_EXIT_GRACE_MS,
  DEFAULT_LOAD_RATE,
  DEFAULT_SETTLE_BOUND_MS,
  WARMUP_MS,
} from './constants.ts'
import { ChaosClusterError } from './errors.ts'
import { applyFault, type Capabilities } from './faults.ts'
import { InvariantChecker, type InvariantName, type Violation } from './invariants.ts'
import { startLoad, type LoadKind, type LoadStats } from './load.ts'
import { NetLab } from './netlab.ts'
import { describeFault, scheduleEndMs, type Fault, type FaultKind } from './schedule.ts'

export interface RunOptions {
  seed: number
  nodes: number
  /** The faults to apply (drawn from the seed, or a replayed/shrunk schedule). */
  schedule: readonly Fault[]
  /** Length of the chaos phase, ms (at least the schedule's end). */
  chaosMs: number
  /** The kinds enabled (for the report: each gets a count, zero or not). */
  kinds: readonly FaultKind[]
  load: readonly LoadKind[]
  /** Requests per second. @default DEFAULT_LOAD_RATE */
  rate?: number
  caps: Capabilities
  /** Where the nodes' homes and logs go; a fresh temp dir by default. */
  dir?: string
  basePort: number
  livenessBoundMs?: number
  settleBoundMs?: number
  warmupMs?: number
  failFast?: boolean
  /** The entry point the nodes run. @default this checkout's bin/donghae.js */
  bin?: string
  progress?: (line: string) => void
  signal?: AbortSignal
}

export interface RunResult {
  seed: number
  nodes: number
  chaosMs: number
  dir: string
  faultsApplied: Record<string, number>
  /** Faults that could not be applied, by kind (a command failed; the reason is in `errors`). */
  faultsFailed: Record<string, number>
  violations: Record<InvariantName, number>
  details: Violation[]
  load: LoadStats & { committed: number; receipts: number }
  heights: { start: number; end: number }
  /** ms from the last fault lifted to the chain committing again; null when it never did in the bound. */
  recoveryMs: number | null
  errors: string[]
  ok: boolean
}

const noop = (): void => {}

async function maxHeight(cluster: Cluster): Promise<number> {
  const heights = await Promise.all(
    cluster.nodes.map(async (n) =>
      n.state !== 'up'
        ? -1
        : new DonghaeClient(n.api, { timeoutMs: 3_000 }).status().then(
            (s) => s.height,
            () => -1,
          ),
    ),
  )
  return Math.max(-1, ...heights)
}

async function heightsOf(cluster: Cluster): Promise<number[]> {
  return Promise.all(
    cluster.nodes.map((n) =>
      new DonghaeClient(n.api, { timeoutMs: 3_000 }).status().then(
        (s) => s.height,
        () => -1,
      ),
    ),
  )
}

export async function runChaos(options: RunOptions): Promise<RunResult> {
  const begun = Date.now()
  const say = options.progress ?? noop
  const progress = (line: string): void => say(`[+${Math.round((Date.now() - begun) / 1000)}s] ${line}`)
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'donghae-chaos-')))
  await mkdir(dir, { recursive: true })
  const errors: string[] = []
  const faultsApplied = Object.fromEntries(options.kinds.map((k) => [k, 0])) as Record<string, number>
  const faultsFailed: Record<string, number> = {}
  const stop = new AbortController()
  options.signal?.addEventListener('abort', () => stop.abort(), { once: true })
  const failFast = (): void => {
    if (options.failFast === true && checker !== undefined && checker.violations().length > 0) stop.abort()
  }
  /**
   * Nodes in a disk-full fault (lifted at Infinity) or lifted from one lately: a clean exit there is
   * the expected failure (a node stops when its database refuses a write, store.ts).
   */
  const diskFull = new Map<number, number>()
  let checker: InvariantChecker | undefined
  /**
   * Per node, the end of the last fault on it (or of a start after a full disk): a fault waits
   * until the one before is fully lifted (a restart done).
   */
  const busy = new Map<number, Promise<void>>()

  const lab = options.caps.netns === undefined ? await NetLab.create(options.nodes) : undefined
  const cluster = new Cluster({
    dir,
    nodes: options.nodes,
    basePort: options.basePort,
    ...(lab === undefined ? {} : { lab }),
    ...(options.caps.faketime === undefined || !options.kinds.includes('skew')
      ? {}
      : { faketime: options.caps.faketime }),
    tmpfsData: options.caps.tmpfs === undefined && options.kinds.includes('disk-full'),
    ...(options.bin === undefined ? {} : { bin: options.bin }),
    onLogLine: (node, line) => {
      checker?.noteLogLine(node, line)
      failFast()
    },
    onExit: (exit) => {
      if (exit.expected) return
      const liftedAt = diskFull.get(exit.node)
      const clean = exit.signal === null && liftedAt !== undefined && Date.now() - liftedAt <= DISK_FULL_EXIT_GRACE_MS
      progress(
        `chaos: node${exit.node} exited (${exit.signal ?? `code ${exit.code}`})${clean ? ' on a full disk' : ''}`,
      )
      if (!clean)
        checker?.report(
          'node-crash',
          `${exit.node}@${Date.now()}`,
          `node${exit.node} exited on its own (${exit.signal ?? `code ${exit.code}`}); see its log`,
        )
      // stopped after its fault was lifted: the lift found it still up, so start it here, in
      // turn with the faults on that node (one drawn meanwhile waits for this start)
      else if (liftedAt !== Infinity && !stop.signal.aborted) {
        const node = exit.node
        const before = busy.get(node)
        const restart = (async () => {
          await before
          if (stop.signal.aborted || cluster.node(node).state !== 'down') return
          await cluster.start(node)
        })().catch((err: unknown) => {
          // a new disk-full fault on it meanwhile: that fault's lift starts it again
          if (diskFull.get(node) === Infinity) return
          checker?.report(
            'node-crash',
            `restart-${node}@${Date.now()}`,
            `node${node} could not be started again after a full disk: ${(err as Error).message}`,
          )
        })
        busy.set(node, restart)
      }
      failFast()
    },
  })
  let load: ReturnType<typeof startLoad> | undefined
  let checks: Promise<void> | undefined
  const heights = { start: 0, end: 0 }
  let recoveryMs: number | null = null
  let started = false
  try {
    await cluster.setup()
    const genesis = cluster.genesis
    if (genesis === undefined) throw new ChaosClusterError('the devnet has no genesis')
    checker = new InvariantChecker({
      validators: genesis.validators.map((v) => v.did),
      supply: {
        blockReward: genesis.params.blockReward,
        workerRewardPerEpoch: genesis.params.workerRewardPerEpoch,
        epochLength: genesis.params.epochLength,
      },
      onViolation: (v) => progress(`chaos: VIOLATION ${v.invariant}: ${v.detail}`),
    })
    progress(
      `chaos: ${options.nodes} nodes in ${dir}${lab === undefined ? ' on 127.0.0.1' : ` in namespaces (bridge ${lab.hostIp})`}`,
    )
    await Promise.all(cluster.nodes.map((n) => cluster.start(n.index)))
    started = true
    progress('chaos: every node started; warming up')
    const rng = createRng(options.seed)
    load = startLoad({
      targets: cluster.nodes.map((n) => ({ url: n.api, token: n.token })),
      kinds: options.load,
      rate: options.rate ?? DEFAULT_LOAD_RATE,
      rng: rng.fork('load'),
      signal: stop.signal,
    })
    const liveLoad = load
    const view = () => cluster.nodes.map((n) => ({ index: n.index, api: n.api, state: n.state }))
    const supplyRng = rng.fork('supply')
    checks = (async () => {
      while (!stop.signal.aborted) {
        await checker.check(view(), liveLoad.committed(), stop.signal).catch((err: unknown) => {
          if (!stop.signal.aborted) errors.push(`check: ${(err as Error).message}`)
        })
        const up = view().filter((n) => n.state === 'up')
        if (up.length > 0) await checker.sampleSupply(supplyRng.pick(up), stop.signal)
        failFast()
        await sleep(CHECK_INTERVAL_MS, undefined, { signal: stop.signal }).catch(noop)
      }
    })()
    await sleep(options.warmupMs ?? WARMUP_MS, undefined, { signal: stop.signal }).catch(noop)
    heights.start = await maxHeight(cluster)

    // ---- chaos ----
    const chaosMs = Math.max(options.chaosMs, scheduleEndMs(options.schedule))
    progress(`chaos: ${options.schedule.length} faults over ${Math.round(chaosMs / 1000)} s`)
    const t0 = Date.now()
    const running = options.schedule.map(async (fault) => {
      await sleep(Math.max(0, t0 + fault.atMs - Date.now()), undefined, { signal: stop.signal })
      const touched = [...new Set([fault.node, ...(fault.side ?? []), ...(fault.to === undefined ? [] : [fault.to])])]
      const before = touched.map((i) => busy.get(i))
      let done: () => void = noop
      const finished = new Promise<void>((resolve) => (done = resolve))
      for (const i of touched) busy.set(i, finished)
      try {
        await Promise.all(before)
        await runFault(fault)
      } finally {
        done()
      }
    })
    const runFault = async (fault: Fault): Promise<void> => {
      if (stop.signal.aborted) return
      let lift: () => Promise<void>
      try {
        if (fault.kind === 'disk-full') diskFull.set(fault.node, Infinity)
        lift = await applyFault(fault, { cluster, ...(lab === undefined ? {} : { lab }) })
        faultsApplied[fault.kind] = (faultsApplied[fault.kind] ?? 0) + 1
        progress(`chaos: ${describeFault(fault)}`)
      } catch (err) {
        if (fault.kind === 'disk-full') diskFull.delete(fault.node)
        faultsFailed[fault.kind] = (faultsFailed[fault.kind] ?? 0) + 1
        errors.push(`fault #${fault.id} ${fault.kind}: ${(err as Error).message}`)
        return
      }
      // lifted even when the run is stopping, so no node stays paused, cut off or full
      await sleep(fault.durationMs, undefined, { signal: stop.signal }).catch(noop)
      // a run that is stopping does not start nodes again (shutdown stops them anyway)
      if (stop.signal.aborted && (fault.kind === 'kill' || fault.kind === 'restart')) return
      try {
        await lift()
        if (fault.kind === 'kill' || fault.kind === 'restart' || fault.kind === 'disk-full')
          checker?.forgetConfirmed(fault.node)
      } catch (err) {
        checker?.report(
          'node-crash',
          `lift#${fault.id}`,
          `lifting #${fault.id} (${fault.kind} node${fault.node}) failed: ${(err as Error).message}`,
        )
      } finally {
        if (fault.kind === 'disk-full') diskFull.set(fault.node, Date.now())
      }
    }
    await Promise.allSettled(running)
    await sleep(Math.max(0, t0 + chaosMs - Date.now()), undefined, { signal: stop.signal }).catch(noop)

    // ---- liveness: faults over, the chain must move on and every node catch up ----
    if (!stop.signal.aborted) {
      const bound = options.livenessBoundMs ?? DEFAULT_LIVENESS_BOUND_MS
      const from = await maxHeight(cluster)
      const started = Date.now()
      progress(`chaos: faults over at height ${from}; liveness bound ${bound / 1000} s`)
      let caught = false
      while (Date.now() - started < bound && !stop.signal.aborted) {
        const hs = await heightsOf(cluster)
        if (recoveryMs === null && Math.max(...hs) >= from + 2) recoveryMs = Date.now() - started
        if (recoveryMs !== null && hs.every((h) => h >= from + 2)) {
          caught = true
          break
        }
        await sleep(1_000, undefined, { signal: stop.signal }).catch(noop)
      }
      if (!caught && !stop.signal.aborted) {
        const hs = await heightsOf(cluster)
        checker.report(
          'liveness',
          'end',
          `within ${bound / 1000} s of the last fault the chain did not pass height ${from + 1} on every node (heights ${hs.join(', ')})`,
        )
      }
    }
    await load.stop()
    // ---- settle: every receipt must settle ----
    if (!stop.signal.aborted) {
      const bound = options.settleBoundMs ?? DEFAULT_SETTLE_BOUND_MS
      const started = Date.now()
      let left = load.receipts()
      progress(`chaos: load stopped; waiting for ${left.length} receipts to settle (bound ${bound / 1000} s)`)
      while (left.length > 0 && Date.now() - started < bound && !stop.signal.aborted) {
        left = await checker.unsettled(left, view(), false, stop.signal)
        if (left.length > 0) await sleep(2_000, undefined, { signal: stop.signal }).catch(noop)
      }
      progress(
        `chaos: ${load.receipts().length - left.length} of ${load.receipts().length} receipts settled; final checks`,
      )
      if (!stop.signal.aborted) await checker.unsettled(left, view(), true, stop.signal)
      // the end: every transfer a client saw committed is looked up again on every node
      for (const n of cluster.nodes) checker.forgetConfirmed(n.index)
      await checker.check(view(), load.committed(), stop.signal)
    }
    heights.end = await maxHeight(cluster)
  } catch (err) {
    if (!stop.signal.aborted || !(err instanceof Error && err.name === 'AbortError'))
      errors.push((err as Error).message)
  } finally {
    progress('chaos: stopping the nodes')
    stop.abort()
    await load?.stop()
    await checks?.catch(noop)
    await cluster.shutdown().catch((err: unknown) => errors.push(`shutdown: ${(err as Error).message}`))
    for (const failed of (await lab?.teardown()) ?? []) errors.push(`teardown: ${failed}`)
  }
  const counts = checker?.counts() ?? ({} as Record<InvariantName, number>)
  const stats = load?.stats() ?? {
    sent: { tx: 0, infer: 0 },
    ok: { tx: 0, infer: 0 },
    failed: { tx: {}, infer: {} },
    inFlight: 0,
    skipped: 0,
  }
  const total = Object.values(counts).reduce((s, n) => s + n, 0)
  return {
    seed: options.seed,
    nodes: options.nodes,
    chaosMs: options.chaosMs,
    dir,
    faultsApplied,
    faultsFailed,
    violations: counts,
    details: checker?.violations() ?? [],
    load: { ...stats, committed: load?.committed().length ?? 0, receipts: load?.receipts().length ?? 0 },
    heights,
    recoveryMs,
    errors,
    ok: total === 0 && started,
  }
}
