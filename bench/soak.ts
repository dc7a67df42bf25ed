/**
 * Soak (issue 17, part 3): a devnet of N node processes (`donghae devnet`) under steady mixed load
 * for a long time, sampled every `--sample-seconds`; a leak or a drift fails the run.
 *
 *   node bench/soak.ts --minutes 60                       # the hour of the issue
 *   node bench/soak.ts --minutes 6 --sample-seconds 15    # a short check
 *
 * Load: the chaos runner's generator (src/chaos/load.ts: transfers seen to commit and inference
 * jobs on digits-mlp, `--rate` requests a second over the nodes' operator APIs) plus a latency
 * probe of its own, one request at a time (an inference answer, then a transfer to its commit).
 * Each sample (a JSON line in `<out>/samples.jsonl`, written as it is taken, so a stopped run
 * keeps its data) holds for every node: resident memory of the node process (its own figure,
 * GET /v1/node/resources) and of its process tree (the node and its model sandboxes, from
 * /proc), CPU, event-loop delay (the largest of the node's 5-second p99s in the sample) and
 * height; and for the network: block time (node0's height over the sample) and the probe's
 * latency p50/p99 by kind. At the end `<out>/summary.json` and `<out>/soak.svg`.
 *
 * Verdict, on the second half of the run (the first half is warm-up: caches, JIT, the models'
 * sandboxes and the peer tables fill):
 *  - leak: a node's RSS least-squares slope over `--max-rss-slope` MB/h, when the fitted rise
 *    over the half is also over `--rss-noise` MB (GC and the allocator move RSS by about that
 *    much, so a short run can only catch a fast leak);
 *  - drift: a probe kind's p99 fitted to rise over the half by more than `--max-p99-drift` of its
 *    median and by more than `--p99-noise` ms;
 *  - stall: a sample in which node0's height did not move while load was running;
 *  - a node process exited.
 * Exit code 1 on any of them; the last stdout line is the summary as JSON.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { ApiError } from '../src/api/errors.ts'
import { DonghaeClient } from '../src/api/client.ts'
import type { ResourcesView } from '../src/api/resources-api.ts'
import { createRng } from '../src/core/rng.ts'
import { startLoad, type LoadHandle, type LoadStats } from '../src/chaos/load.ts'
import { soakSvg } from './soak-plot.ts'

const BIN = fileURLToPath(new URL('../bin/donghae.js', import.meta.url))
const ROOT = fileURLToPath(new URL('..', import.meta.url))

export interface SoakThresholds {
  maxRssSlopeMbPerHour: number
  rssNoiseMb: number
  maxP99Drift: number
  p99NoiseMs: number
}

/** Defaults of the verdict (see the module comment). */
export const SOAK_DEFAULTS: Readonly<SoakThresholds> = {
  /** A node whose RSS grows faster than this over the second half leaks. @default 20 MB/h */
  maxRssSlopeMbPerHour: 20,
  /** …provided the fitted rise over the half is more than this. @default 16 MB */
  rssNoiseMb: 16,
  /** p99 latency rising by more than this share of its median over the second half drifts. @default 0.5 */
  maxP99Drift: 0.5,
  /** …provided the rise is more than this. @default 100 ms */
  p99NoiseMs: 100,
}

/** Receives the probe's transfers. */
const PROBE_SINK = 'did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp'
const PROBE_GAP_MS = 1_000
const PROBE_POLL_MS = 100
const PROBE_TX_TIMEOUT_MS = 60_000

export interface NodeSample {
  node: string
  rssMb: number | null
  /** The node process and its children (model sandboxes), from /proc; null off Linux. */
  treeRssMb: number | null
  /** V8 heap in use and memory outside it (Buffers, native), from GET /metrics. */
  heapUsedMb: number | null
  /** V8 heap committed (what the heap holds of RSS, used or not). */
  heapTotalMb: number | null
  externalMb: number | null
  /** The node process's anonymous memory and its allocator-visible part, from /proc/<pid>/smaps_rollup; null off Linux. */
  anonMb: number | null
  /** Resident pages of mapped files and shared memory (RssFile + RssShmem, /proc/<pid>/status): clean pages the kernel can drop; null off Linux. */
  fileMb?: number | null
  cpu: number | null
  eventLoopP99Ms: number | null
  eventLoopMaxMs: number | null
  height: number
}

export interface LatencyFigures {
  n: number
  failed: number
  p50: number | null
  p99: number | null
}

export interface SoakSample {
  at: string
  /** Minutes since the load started. */
  minute: number
  nodes: NodeSample[]
  blocks: number
  /** Seconds per block over the sample (node0), null when no block was made. */
  blockTimeS: number | null
  latency: { infer: LatencyFigures; tx: LatencyFigures }
  load: { sent: number; ok: number; failed: number }
}

export interface HalfSlope {
  slopeMbPerHour: number | null
  riseMb: number | null
}

export interface Fit {
  from: number
  to: number
  intercept: number
  slopePerMinute: number
}

export interface SoakSummary {
  name: 'soak'
  pass: boolean
  failures: string[]
  nodes: number
  minutes: number
  rate: number
  samples: number
  thresholds: Readonly<SoakThresholds>
  /** The malloc each node process runs on (src/cli/node-process.ts): from /proc/<pid>/maps; null off Linux. */
  allocator: Record<string, 'jemalloc' | 'glibc' | null>
  rss: Array<{ node: string; slopeMbPerHour: number | null; riseMb: number | null; meanMb: number | null; fit?: Fit }>
  /** Where each node's RSS slope comes from, over the same half: anonymous memory (heaps, malloc) and mapped files. */
  rssSplit: Array<{ node: string; anon: HalfSlope; file: HalfSlope }>
  p99: Record<'infer' | 'tx', { slopeMsPerHour: number | null; riseMs: number | null; medianMs: number | null }>
  eventLoopP99Ms: Record<string, number | null>
  blockTimeS: { firstHalf: number | null; secondHalf: number | null }
  load: LoadStats | undefined
  out: string
}

// ---- statistics ----------------------------------------------------------------------------------

function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[i] as number
}

function figures(values: number[], failed: number): LatencyFigures {
  const sorted = [...values].sort((a, b) => a - b)
  const round = (v: number | null): number | null => (v === null ? null : Math.round(v * 10) / 10)
  return { n: values.length, failed, p50: round(quantile(sorted, 0.5)), p99: round(quantile(sorted, 0.99)) }
}

/** Least squares y = a + b·x over the points; undefined for fewer than 3 points. */
export function linearFit(points: ReadonlyArray<[number, number]>): { intercept: number; slope: number } | undefined {
  if (points.length < 3) return undefined
  const n = points.length
  const mx = points.reduce((s, [x]) => s + x, 0) / n
  const my = points.reduce((s, [, y]) => s + y, 0) / n
  let sxx = 0
  let sxy = 0
  for (const [x, y] of points) {
    sxx += (x - mx) ** 2
    sxy += (x - mx) * (y - my)
  }
  if (sxx === 0) return undefined
  const slope = sxy / sxx
  return { intercept: my - slope * mx, slope }
}

const median = (values: number[]): number | null =>
  quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  )
const mean = (values: number[]): number | null =>
  values.length === 0 ? null : values.reduce((s, v) => s + v, 0) / values.length
const r1 = (v: number | null): number | null => (v === null ? null : Math.round(v * 10) / 10)

/** The verdict on a run's samples (pure: unit-testable, and rerun on a samples.jsonl by hand). */
export function judge(
  samples: readonly SoakSample[],
  minutes: number,
  thresholds: Readonly<SoakThresholds> = SOAK_DEFAULTS,
): Pick<SoakSummary, 'pass' | 'failures' | 'rss' | 'rssSplit' | 'p99' | 'eventLoopP99Ms' | 'blockTimeS'> {
  const failures: string[] = []
  const half = minutes / 2
  const second = samples.filter((s) => s.minute >= half)
  const first = samples.filter((s) => s.minute < half)
  const span = second.length > 0 ? (second.at(-1) as SoakSample).minute - (second[0] as SoakSample).minute : 0
  const names = samples[0]?.nodes.map((n) => n.node) ?? []
  const rss = names.map((node, i) => {
    const points = second.flatMap((s): Array<[number, number]> => {
      const v = s.nodes[i]?.rssMb
      return v === null || v === undefined ? [] : [[s.minute, v]]
    })
    const fit = linearFit(points)
    const slopeMbPerHour = fit === undefined ? null : fit.slope * 60
    const riseMb = fit === undefined ? null : fit.slope * span
    if (
      slopeMbPerHour !== null &&
      riseMb !== null &&
      slopeMbPerHour > thresholds.maxRssSlopeMbPerHour &&
      riseMb > thresholds.rssNoiseMb
    )
      failures.push(
        `${node} leaks: RSS +${slopeMbPerHour.toFixed(1)} MB/h over the second half (+${riseMb.toFixed(1)} MB)`,
      )
    return {
      node,
      slopeMbPerHour: r1(slopeMbPerHour),
      riseMb: r1(riseMb),
      meanMb: r1(mean(points.map(([, y]) => y))),
      ...(fit === undefined || points.length === 0
        ? {}
        : {
            fit: {
              from: (points[0] as [number, number])[0],
              to: (points.at(-1) as [number, number])[0],
              intercept: fit.intercept,
              slopePerMinute: fit.slope,
            },
          }),
    }
  })
  const halfSlope = (i: number, pick: (n: NodeSample) => number | null | undefined): HalfSlope => {
    const fit = linearFit(
      second.flatMap((s): Array<[number, number]> => {
        const n = s.nodes[i]
        const v = n === undefined ? undefined : pick(n)
        return v === null || v === undefined ? [] : [[s.minute, v]]
      }),
    )
    return {
      slopeMbPerHour: r1(fit === undefined ? null : fit.slope * 60),
      riseMb: r1(fit === undefined ? null : fit.slope * span),
    }
  }
  const rssSplit = names.map((node, i) => ({
    node,
    anon: halfSlope(i, (n) => n.anonMb),
    file: halfSlope(i, (n) => n.fileMb),
  }))
  const p99 = {} as SoakSummary['p99']
  for (const kind of ['infer', 'tx'] as const) {
    const points = second.flatMap((s): Array<[number, number]> => {
      const v = s.latency[kind].p99
      return v === null ? [] : [[s.minute, v]]
    })
    const fit = linearFit(points)
    const medianMs = median(points.map(([, y]) => y))
    const riseMs = fit === undefined ? null : fit.slope * span
    if (
      riseMs !== null &&
      medianMs !== null &&
      riseMs > thresholds.p99NoiseMs &&
      riseMs > thresholds.maxP99Drift * medianMs
    )
      failures.push(`${kind} p99 drifts: +${riseMs.toFixed(0)} ms over the second half (median ${medianMs} ms)`)
    p99[kind] = { slopeMsPerHour: r1(fit === undefined ? null : fit.slope * 60), riseMs: r1(riseMs), medianMs }
  }
  for (const s of samples.slice(1))
    if (s.blocks === 0) failures.push(`the chain made no block in the sample ending at minute ${s.minute.toFixed(1)}`)
  const eventLoopP99Ms = Object.fromEntries(
    names.map((node, i) => {
      const values = second.flatMap((s) => {
        const v = s.nodes[i]?.eventLoopP99Ms
        return v === null || v === undefined ? [] : [v]
      })
      return [node, r1(median(values))]
    }),
  )
  const blockTime = (list: readonly SoakSample[]): number | null => {
    const blocks = list.reduce((n, s) => n + s.blocks, 0)
    const seconds = list.reduce((n, s) => n + (s.blockTimeS ?? 0) * s.blocks, 0)
    return blocks === 0 ? null : Math.round((seconds / blocks) * 100) / 100
  }
  return {
    pass: failures.length === 0,
    failures,
    rss,
    rssSplit,
    p99,
    eventLoopP99Ms,
    blockTimeS: { firstHalf: blockTime(first), secondHalf: blockTime(second) },
  }
}

// ---- the devnet ------------------------------------------------------------------------------------

interface DevnetNode {
  node: string
  did: string
  api: string
  home: string
  pid: number
}

async function startDevnet(
  home: string,
  nodes: number,
  basePort: number,
  params: readonly string[] = [],
): Promise<{ child: ChildProcess; nodes: DevnetNode[] }> {
  const child = spawn(
    process.execPath,
    [
      BIN,
      '--home',
      home,
      'devnet',
      '--nodes',
      String(nodes),
      '--base-port',
      String(basePort),
      ...params.flatMap((p) => ['--param', p]),
      '--json',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DONGHAE_API_RATE_LIMIT: '1000000' } },
  )
  let stderr = ''
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-4_000)))
  const info = await new Promise<{ nodes: DevnetNode[] }>((resolveLine, reject) => {
    let buffer = ''
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk
      const line = buffer.split('\n').find((l) => l.startsWith('{'))
      if (line !== undefined) resolveLine(JSON.parse(line) as { nodes: DevnetNode[] })
    })
    child.once('exit', (code) => reject(new Error(`the devnet exited with ${String(code)} before it ran:\n${stderr}`)))
  })
  return { child, nodes: info.nodes }
}

async function stopDevnet(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((done) => child.once('exit', () => done()))
  child.kill('SIGINT')
  await exited
}

/** Resident memory of a process and its descendants, MB, from /proc (null where /proc has none). */
async function treeRssMb(pid: number): Promise<number | null> {
  const rssKb = async (p: number): Promise<number> => {
    const status = await readFile(`/proc/${p}/status`, 'utf8')
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
  }
  const walk = async (p: number): Promise<number> => {
    let total = await rssKb(p).catch(() => 0)
    const children = await readFile(`/proc/${p}/task/${p}/children`, 'utf8').catch(() => '')
    for (const c of children.trim().split(/\s+/).filter(Boolean)) total += await walk(Number(c))
    return total
  }
  try {
    await readFile(`/proc/${pid}/status`, 'utf8')
  } catch {
    return null
  }
  return Math.round((await walk(pid)) / 102.4) / 10
}

/** Anonymous memory of one process (heaps of V8 and of malloc, thread stacks), MB, from smaps_rollup. */
async function anonMb(pid: number): Promise<number | null> {
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '')
  const kb = /^Anonymous:\s+(\d+) kB/m.exec(rollup)?.[1]
  return kb === undefined ? null : Math.round(Number(kb) / 102.4) / 10
}

/** Resident pages of mapped files and shared memory of one process, MB, from /proc/<pid>/status. */
async function fileMb(pid: number): Promise<number | null> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '')
  const kb = (name: string): number | undefined => {
    const v = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]
    return v === undefined ? undefined : Number(v)
  }
  const file = kb('RssFile')
  return file === undefined ? null : Math.round((file + (kb('RssShmem') ?? 0)) / 102.4) / 10
}

/** Whether a process runs on jemalloc (preloaded by `donghae devnet` where installed); null off Linux. */
async function allocatorOf(pid: number): Promise<'jemalloc' | 'glibc' | null> {
  const maps = await readFile(`/proc/${pid}/maps`, 'utf8').catch(() => undefined)
  return maps === undefined ? null : maps.includes('libjemalloc.so') ? 'jemalloc' : 'glibc'
}

/** A gauge of the Prometheus text, in MB (null when absent). */
function metricMb(text: string, name: string): number | null {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text)
  return match === null ? null : Math.round(Number(match[1]) / 104_857.6) / 10
}

// ---- the latency probe -----------------------------------------------------------------------------

interface Probe {
  stop(): Promise<void>
  /** Latencies and failures recorded since the last take. */
  take(): { infer: LatencyFigures; tx: LatencyFigures }
}

function startProbe(clients: DonghaeClient[], seed: number): Probe {
  const rng = createRng(seed)
  const abort = new AbortController()
  const signal = abort.signal
  let got = { infer: [] as number[], tx: [] as number[] }
  let failed = { infer: 0, tx: 0 }
  const infer = async (client: DonghaeClient): Promise<void> => {
    const data = Array.from({ length: 64 }, () => rng.int(0, 16))
    const started = performance.now()
    await client.infer({ model: 'digits-mlp', inputs: { input: { type: 'float32', dims: [1, 64], data } } }, { signal })
    got.infer.push(performance.now() - started)
  }
  const transfer = async (client: DonghaeClient): Promise<void> => {
    const started = performance.now()
    const { hash } = await client.transfer({ to: PROBE_SINK, amount: '1' }, { signal })
    for (;;) {
      try {
        await client.tx(hash, { signal })
        got.tx.push(performance.now() - started)
        return
      } catch (err) {
        if (signal.aborted || (err instanceof ApiError && err.code !== 'NOT_FOUND' && err.status !== 0)) throw err
      }
      if (performance.now() - started > PROBE_TX_TIMEOUT_MS) throw new Error(`transfer ${hash} not committed in time`)
      await sleep(PROBE_POLL_MS, undefined, { signal })
    }
  }
  const loop = (async () => {
    for (let i = 0; !signal.aborted; i++) {
      const client = clients[Math.floor(i / 2) % clients.length] as DonghaeClient
      const kind = i % 2 === 0 ? 'infer' : 'tx'
      try {
        await (kind === 'infer' ? infer(client) : transfer(client))
      } catch {
        if (!signal.aborted) failed[kind]++
      }
      await sleep(PROBE_GAP_MS, undefined, { signal }).catch(() => undefined)
    }
  })()
  return {
    async stop() {
      abort.abort()
      await loop
    },
    take() {
      const out = { infer: figures(got.infer, failed.infer), tx: figures(got.tx, failed.tx) }
      got = { infer: [], tx: [] }
      failed = { infer: 0, tx: 0 }
      return out
    },
  }
}

// ---- the run ---------------------------------------------------------------------------------------

async function until(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return
    await sleep(500)
  }
  throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`)
}

function loadTotals(stats: LoadStats): { sent: number; ok: number; failed: number } {
  const failed = Object.values(stats.failed).reduce(
    (n, byCode) => n + Object.values(byCode).reduce((m, v) => m + v, 0),
    0,
  )
  return { sent: stats.sent.tx + stats.sent.infer, ok: stats.ok.tx + stats.ok.infer, failed }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '60' },
      'sample-seconds': { type: 'string', default: '60' },
      nodes: { type: 'string', default: '4' },
      rate: { type: 'string', default: '2' },
      'base-port': { type: 'string', default: '47000' },
      seed: { type: 'string' },
      param: { type: 'string', multiple: true },
      out: { type: 'string' },
      'max-rss-slope': { type: 'string', default: String(SOAK_DEFAULTS.maxRssSlopeMbPerHour) },
      'rss-noise': { type: 'string', default: String(SOAK_DEFAULTS.rssNoiseMb) },
      'max-p99-drift': { type: 'string', default: String(SOAK_DEFAULTS.maxP99Drift) },
      'p99-noise': { type: 'string', default: String(SOAK_DEFAULTS.p99NoiseMs) },
      help: { type: 'boolean' },
    },
  })
  if (values.help === true) {
    process.stdout.write(
      'node bench/soak.ts [--minutes 60] [--sample-seconds 60] [--nodes 4] [--rate 2] [--base-port 47000] [--seed N]\n' +
        '                   [--param key=value ...]  (chain parameters of the devnet, e.g. settleWindowMs=300000)\n' +
        '                   [--out DIR] [--max-rss-slope 20] [--rss-noise 16] [--max-p99-drift 0.5] [--p99-noise 100]\n',
    )
    return 0
  }
  const minutes = Number(values.minutes)
  const sampleMs = Number(values['sample-seconds']) * 1_000
  const count = Number(values.nodes)
  const rate = Number(values.rate)
  if (!(minutes > 0) || !(sampleMs >= 5_000) || !(count >= 1 && count <= 16) || !(rate > 0))
    throw new Error('--minutes > 0, --sample-seconds ≥ 5, --nodes 1–16 and --rate > 0')
  const thresholds = {
    maxRssSlopeMbPerHour: Number(values['max-rss-slope']),
    rssNoiseMb: Number(values['rss-noise']),
    maxP99Drift: Number(values['max-p99-drift']),
    p99NoiseMs: Number(values['p99-noise']),
  }
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 32) : Number(values.seed)
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  const out = resolve(values.out ?? join(ROOT, 'test-artifacts', `soak-${stamp}`))
  await mkdir(out, { recursive: true })
  const log = (line: string): void => void process.stderr.write(`soak: ${line}\n`)
  log(
    `${count} nodes, ${minutes} min, a sample every ${sampleMs / 1000} s, load ${rate}/s, seed ${seed}${(values.param ?? []).map((p) => `, ${p}`).join('')}; out ${out}`,
  )

  const home = await mkdtemp(join(tmpdir(), 'donghae-soak-'))
  const stopping = new AbortController()
  const onSignal = (): void => stopping.abort()
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  let devnet: ChildProcess | undefined
  let load: LoadHandle | undefined
  let probe: Probe | undefined
  const samples: SoakSample[] = []
  const failures: string[] = []
  try {
    const started = await startDevnet(home, count, Number(values['base-port']), values.param ?? [])
    devnet = started.child
    const nodes = started.nodes
    const allocator = Object.fromEntries(
      await Promise.all(nodes.map(async (n) => [n.node, await allocatorOf(n.pid)] as const)),
    )
    log(`allocator: ${nodes.map((n) => `${n.node} ${allocator[n.node] ?? '?'}`).join(', ')}`)
    const tokens = await Promise.all(nodes.map(async (n) => (await readFile(join(n.home, 'api-token'), 'utf8')).trim()))
    const clients = nodes.map((n, i) => new DonghaeClient(n.api, { token: tokens[i] as string, timeoutMs: 30_000 }))
    const exits: string[] = []
    await until(
      'digits-mlp served',
      async () => ((await clients[0]!.models()).data.find((m) => m.id === 'digits-mlp')?.workers ?? 0) >= 1,
      120_000,
    )
    load = startLoad({
      targets: nodes.map((n, i) => ({ url: n.api, token: tokens[i] as string })),
      kinds: ['tx', 'infer'],
      rate,
      rng: createRng(seed),
    })
    probe = startProbe(clients, seed + 1)
    const t0 = Date.now()
    let lastAt = t0
    let lastHeight = (await clients[0]!.status()).height
    let lastLoad = loadTotals(load.stats())
    const end = t0 + minutes * 60_000
    while (Date.now() < end && !stopping.signal.aborted) {
      await sleep(Math.min(sampleMs, end - Date.now()), undefined, { signal: stopping.signal }).catch(() => undefined)
      const now = Date.now()
      const nodeSamples = await Promise.all(
        nodes.map(async (n, i): Promise<NodeSample> => {
          const view = await fetch(`${n.api}/v1/node/resources`)
            .then((r) => (r.ok ? (r.json() as Promise<ResourcesView>) : undefined))
            .catch(() => undefined)
          const window = view?.samples.filter((s) => s.at > lastAt) ?? []
          const latest = view?.samples.at(-1)
          const height = await clients[i]!.status()
            .then((s) => s.height)
            .catch(() => -1)
          const loops = window.map((s) => s.eventLoopDelayMs)
          const metrics = await clients[i]!.metrics().catch(() => '')
          return {
            node: n.node,
            rssMb: latest === undefined ? null : Math.round(latest.rssBytes / 104_857.6) / 10,
            treeRssMb: await treeRssMb(n.pid),
            heapUsedMb: metricMb(metrics, 'donghae_nodejs_heap_size_used_bytes'),
            heapTotalMb: metricMb(metrics, 'donghae_nodejs_heap_size_total_bytes'),
            externalMb: metricMb(metrics, 'donghae_nodejs_external_memory_bytes'),
            anonMb: await anonMb(n.pid),
            fileMb: await fileMb(n.pid),
            cpu: r1(mean(window.map((s) => s.cpu))),
            eventLoopP99Ms: loops.length === 0 ? null : r1(Math.max(...loops)),
            eventLoopMaxMs: window.length === 0 ? null : r1(Math.max(...window.map((s) => s.eventLoopMaxMs))),
            height,
          }
        }),
      )
      for (const n of nodes)
        if (!(await treeRssMb(n.pid).then((v) => v !== null)) && !exits.includes(n.node)) exits.push(n.node)
      const height = nodeSamples[0]?.height ?? -1
      const blocks = Math.max(0, height - lastHeight)
      const totals = loadTotals(load.stats())
      const sample: SoakSample = {
        at: new Date(now).toISOString(),
        minute: Math.round(((now - t0) / 60_000) * 100) / 100,
        nodes: nodeSamples,
        blocks,
        blockTimeS: blocks === 0 ? null : Math.round(((now - lastAt) / 1000 / blocks) * 100) / 100,
        latency: probe.take(),
        load: {
          sent: totals.sent - lastLoad.sent,
          ok: totals.ok - lastLoad.ok,
          failed: totals.failed - lastLoad.failed,
        },
      }
      samples.push(sample)
      await appendFile(join(out, 'samples.jsonl'), `${JSON.stringify(sample)}\n`)
      log(
        `min ${sample.minute.toFixed(1)}: rss ${nodeSamples.map((n) => n.rssMb).join('/')} MB (heap used/committed ${nodeSamples
          .map((n) => `${n.heapUsedMb}/${n.heapTotalMb}`)
          .join(
            ' ',
          )}, anon ${nodeSamples.map((n) => n.anonMb).join('/')}, files ${nodeSamples.map((n) => n.fileMb).join('/')}), loop p99 ${nodeSamples
          .map((n) => n.eventLoopP99Ms)
          .join('/')} ms, infer p50/p99 ${sample.latency.infer.p50}/${sample.latency.infer.p99} ms, tx ${
          sample.latency.tx.p50
        }/${sample.latency.tx.p99} ms, ${blocks} blocks, load ${sample.load.ok}/${sample.load.sent} ok`,
      )
      lastAt = now
      if (height >= 0) lastHeight = height
      lastLoad = totals
    }
    for (const node of exits) failures.push(`${node} exited during the run`)
    const ran = samples.at(-1)?.minute ?? 0
    await probe.stop()
    probe = undefined
    await load.stop()
    const verdict = judge(samples, ran, thresholds)
    const summary: SoakSummary = {
      name: 'soak',
      ...verdict,
      pass: verdict.pass && failures.length === 0,
      failures: [...failures, ...verdict.failures],
      nodes: count,
      minutes: ran,
      rate,
      samples: samples.length,
      thresholds,
      allocator,
      load: load.stats(),
      out,
    }
    load = undefined
    await writeFile(join(out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`)
    await writeFile(join(out, 'soak.svg'), soakSvg(samples, summary))
    process.stdout.write(`${JSON.stringify(summary)}\n`)
    log(summary.pass ? 'pass' : `FAIL: ${summary.failures.join('; ')}`)
    return summary.pass ? 0 : 1
  } finally {
    await probe?.stop()
    await load?.stop()
    if (devnet !== undefined) await stopDevnet(devnet)
    await rm(home, { recursive: true, force: true })
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url))
  process.exitCode = await main()
