/**
 * The inference market's own cost (issue 5), on real node processes over loopback (libp2p TCP,
 * gossipsub slot adverts, `/donghae/infer/2.0.0`), against ONNX Runtime called directly in this
 * process on the same model file and the same input rows:
 *  - infer-direct-onnx: `OnnxRuntime.run` on digits-mlp, batch 1 (the baseline);
 *  - infer-overhead-http: one request at a time, HTTP `POST /v1/infer` from this process to a
 *    gateway that is not a worker → a worker in another process → verified receipt → HTTP answer,
 *    minus the direct run (p50 and p99); the figure compared with the 1 ms target;
 *  - infer-overhead-gateway: the same requests as the gateway measures them (`latencyMs` of the
 *    answer: job, pick, libp2p round trip, receipt checks; no HTTP or JSON), minus the direct run;
 *  - infer-throughput-1-worker, infer-throughput-2-workers: closed-loop load through the gateway
 *    with one, then two worker processes; the second line's ratio is the scaling;
 *  - infer-audit-share-live: the gateway's audits ÷ jobs (`/v1/inference/stats`) at the end.
 *
 * The network: 4 validators (BFT keeps finalizing while one restarts). node0 is the gateway
 * (DONGHAE_WORKER=0), node1 a worker, node2 starts as a plain validator and is restarted as a
 * worker for the 2-worker run, node3 a plain validator. The API's per-IP rate limit (1,200 a
 * minute) would cap one client at 20 jobs/s, so the load comes from many loopback source
 * addresses (127.0.x.y, Linux only), each sending fewer than 1,000 requests: many clients.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { Agent, request as httpRequest } from 'node:http'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { gunzipSync } from 'node:zlib'
import { peerIdFromDid } from '../src/identity/peer-id.ts'
import { didFromEd25519PublicKey } from '../src/identity/did-key.ts'
import { LOCALNET_PASSWORD, loadOrCreateGenesis, loadOrCreateKeys } from '../src/cli/local-network.ts'
import { OnnxRuntime } from '../src/inference/runtime.ts'
import { DEMO_MODELS_DIR, modelCid } from '../src/inference/demo-models.ts'
import { createTensor, tensorToJson } from '../src/inference/tensor.ts'
import { line, type BenchLine, type MeasureOptions } from './harness.ts'

export const INFERENCE_BENCH_NAMES = [
  'infer-direct-onnx',
  'infer-batch-compute',
  'infer-overhead-http',
  'infer-overhead-gateway',
  'infer-throughput-1-worker',
  'infer-throughput-2-workers',
  'infer-audit-share-live',
]
const BIN = fileURLToPath(new URL('../bin/donghae.js', import.meta.url))
const MODEL = 'digits-mlp'
const NODES = 4
/** Rows per call in the batch measurement. */
const BATCH = 8
/** Requests in flight during the throughput runs (the workers have 2 slots each). */
const CONCURRENCY = 16
/** Fewer than the API's 1,200 requests per minute and client address. */
const REQUESTS_PER_ADDRESS = 1_000
const START_TIMEOUT_MS = 90_000

/** Sequential requests timed for the latency figures, after `WARMUP` untimed ones. */
const LATENCY_REQUESTS = 1_000
const WARMUP_REQUESTS = 100
/** Seconds of closed-loop load per throughput run (after one second of warm-up). */
const LOAD_SECONDS = 10

export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0
}

/** The digits data set's pixel rows (64 values each). */
async function digitRows(): Promise<number[][]> {
  const text = gunzipSync(await readFile(join(DEMO_MODELS_DIR, 'data', 'digits.csv.gz'))).toString('utf8')
  return text
    .trim()
    .split('\n')
    .map((l) => l.split(',').map(Number))
    .filter((v) => v.length === 65)
    .map((v) => v.slice(0, 64))
}

const inputOf = (pixels: number[]) => ({ input: createTensor('float32', [1, 64], Float32Array.from(pixels)) })

// ---- HTTP from many loopback clients ----------------------------------------------------------

interface Answer {
  status: number
  body: Record<string, unknown>
}

/** Keep-alive HTTP from a rotating set of loopback source addresses (one per 1,000 requests). */
class LoadClient {
  readonly #agent = new Agent({ keepAlive: true, maxSockets: Infinity })
  readonly #rotate = process.platform === 'linux'
  #sent = 0

  #source(): string {
    if (!this.#rotate) return '127.0.0.1'
    const k = Math.floor(this.#sent++ / REQUESTS_PER_ADDRESS)
    return `127.0.${2 + Math.floor(k / 250)}.${1 + (k % 250)}`
  }

  post(url: string, body: string, token: string): Promise<Answer> {
    const headers = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      authorization: `Bearer ${token}`,
    }
    const options = { method: 'POST', agent: this.#agent, localAddress: this.#source(), headers }
    return new Promise((resolve, reject) => {
      const req = httpRequest(url, options, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: parseBody(Buffer.concat(chunks)) }))
        res.on('error', reject)
      })
      req.on('error', reject)
      req.end(body)
    })
  }

  close(): void {
    this.#agent.destroy()
  }
}

function parseBody(bytes: Buffer): Record<string, unknown> {
  try {
    return JSON.parse(bytes.toString('utf8')) as Record<string, unknown>
  } catch {
    return { error: { reason: 'not-json', message: bytes.toString('utf8').slice(0, 200) } }
  }
}

export async function getJson<T>(url: string): Promise<T | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000) })
    return res.ok ? ((await res.json()) as T) : undefined
  } catch {
    return undefined
  }
}

export async function waitUntil(what: string, check: () => Promise<boolean>, ms = START_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check()) return
    await sleep(100)
  }
  throw new Error(`inference bench: timed out after ${ms / 1000} s waiting for ${what}`)
}

// ---- the network ------------------------------------------------------------------------------

export interface NodeProcess {
  home: string
  api: string
  child?: ChildProcess
  /** The tail of its stderr, for the error message when it fails. */
  log: string
}

/** `NODES` validator processes on loopback; each can be (re)started as a worker or not. */
export class BenchNetwork {
  readonly nodes: NodeProcess[]
  readonly #dir: string

  private constructor(dir: string, nodes: NodeProcess[]) {
    this.#dir = dir
    this.nodes = nodes
  }

  static async create(dir: string): Promise<BenchNetwork> {
    const base = 14_000 + Math.floor(Math.random() * 400) * 8 // below the ephemeral range (32768+)
    const keys = await loadOrCreateKeys(dir, NODES, () => {})
    await loadOrCreateGenesis(dir, keys, [], 'donghae-bench')
    await writeFile(join(dir, 'password'), LOCALNET_PASSWORD, { mode: 0o600 })
    const p2p = (i: number): string => {
      const did = didFromEd25519PublicKey((keys[i] as (typeof keys)[number]).publicKey)
      return `/ip4/127.0.0.1/tcp/${base + 100 + 2 * i}/p2p/${peerIdFromDid(did).toString()}`
    }
    const nodes: NodeProcess[] = []
    for (let i = 0; i < NODES; i++) {
      const home = join(dir, `node${i}`)
      const config = {
        moniker: `node${i}`,
        apiHost: '127.0.0.1',
        apiPort: base + i,
        listenHost: '127.0.0.1',
        p2pPort: base + 100 + 2 * i,
        bootstrap: [p2p(i === 0 ? 1 : 0)],
        mdns: false,
        nat: 'off',
        logLevel: 'warn',
      }
      await writeFile(join(home, 'config.json'), `${JSON.stringify(config)}\n`, { mode: 0o600 })
      nodes.push({ home, api: `http://127.0.0.1:${base + i}`, log: '' })
    }
    return new BenchNetwork(dir, nodes)
  }

  /** Starts node `i`; `process` adds Node flags and environment (what `donghae devnet` gives its nodes). */
  async start(
    i: number,
    worker: boolean,
    process_: { flags?: readonly string[]; env?: Readonly<Record<string, string>> } = {},
  ): Promise<void> {
    const node = this.nodes[i] as NodeProcess
    const args = ['--home', node.home, 'node', '--genesis', join(this.#dir, 'genesis.json')]
    const argv = [...(process_.flags ?? []), BIN, ...args, '--password-file', join(this.#dir, 'password'), '--json']
    const child = spawn(process.execPath, argv, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process_.env, ...process.env, DONGHAE_PASSWORD: undefined, DONGHAE_WORKER: worker ? '1' : '0' },
    })
    node.child = child
    child.stderr?.setEncoding('utf8').on('data', (c: string) => (node.log = (node.log + c).slice(-4_000)))
    await new Promise<void>((resolve, reject) => {
      let buffer = ''
      child.stdout?.setEncoding('utf8').on('data', (c: string) => {
        buffer += c
        if (buffer.includes('\n')) resolve()
      })
      child.once('exit', (code) => reject(new Error(`node${i} exited (${String(code)}) during start: ${node.log}`)))
    })
  }

  async stop(i: number): Promise<void> {
    const child = this.nodes[i]?.child
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    await exited.finally(() => clearTimeout(timer))
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.map((_, i) => this.stop(i)))
  }

  /** The processes whose CPU time is read: this one (the client) and each node's. */
  processes(): CpuProcesses {
    const out: CpuProcesses = { client: undefined }
    this.nodes.forEach((node, i) => (out[`node${i}`] = node.child?.pid ?? -1))
    return out
  }

  /** Waits until node `i` (just restarted) has the gateway's height, then lets it settle for a second. */
  async caughtUp(i: number): Promise<void> {
    const height = async (node: NodeProcess | undefined): Promise<number> =>
      (await getJson<{ height: number }>(`${node?.api ?? ''}/v1/status`))?.height ?? -1
    await waitUntil(`node${i} to catch up`, async () => (await height(this.nodes[i])) >= (await height(this.nodes[0])))
    await sleep(1_000)
  }

  /** Workers serving `model` (by name) that `node`'s gateway currently knows. */
  async workersSeenBy(node: NodeProcess, model = MODEL): Promise<number> {
    const models = await getJson<{ data: Array<{ id: string; workers: number }> }>(`${node.api}/v1/models`)
    return models?.data.find((m) => m.id === model)?.workers ?? -1
  }
}

// ---- measurements -----------------------------------------------------------------------------

/** ONNX Runtime in this process on the same model file: the baseline. */
interface Direct {
  /** Microseconds of one `OnnxRuntime.run` on these pixels. */
  time(pixels: number[]): Promise<number>
  /**
   * Rows run one per call and `size` per call: microseconds per row each way (median of rounds),
   * and how many rows came out of the batched run not bit-identical to their single run.
   */
  batch(rows: number[][], size: number): Promise<{ singleUs: number; batchedUs: number; differing: number }>
  close(): Promise<void>
}

async function openDirect(): Promise<Direct> {
  const runtime = new OnnxRuntime()
  const bytes = new Uint8Array(await readFile(join(DEMO_MODELS_DIR, `${MODEL}.onnx`)))
  const cid = modelCid(bytes)
  await runtime.load(cid, bytes)
  return {
    async time(pixels) {
      const inputs = inputOf(pixels)
      const start = performance.now()
      await runtime.run(cid, inputs)
      return (performance.now() - start) * 1000
    },
    async batch(rows, size) {
      const single: Float32Array[] = []
      const singleRounds: number[] = []
      const batchedRounds: number[] = []
      let differing = 0
      for (let round = 0; round < 5; round++) {
        let start = performance.now()
        for (const [i, pixels] of rows.entries()) {
          const { outputs } = await runtime.run(cid, inputOf(pixels))
          single[i] = outputs.probabilities?.data as Float32Array
        }
        singleRounds.push(((performance.now() - start) * 1000) / rows.length)
        start = performance.now()
        const batched: Float32Array[] = []
        for (let at = 0; at + size <= rows.length; at += size) {
          const data = Float32Array.from(rows.slice(at, at + size).flat())
          const { outputs } = await runtime.run(cid, { input: createTensor('float32', [size, 64], data) })
          const out = outputs.probabilities?.data as Float32Array
          for (let j = 0; j < size; j++) batched.push(out.subarray(j * 10, (j + 1) * 10))
        }
        batchedRounds.push(((performance.now() - start) * 1000) / batched.length)
        if (round === 0)
          differing = batched.filter((row, i) => row.some((v, k) => !Object.is(v, single[i]?.[k]))).length
      }
      const median = (v: number[]): number =>
        percentile(
          [...v].sort((a, b) => a - b),
          50,
        )
      return { singleUs: median(singleRounds), batchedUs: median(batchedRounds), differing }
    },
    close: () => runtime.close(),
  }
}

interface Target {
  url: string
  token: string
  rows: number[][]
  client: LoadClient
}

/** Answers other than 200 by status and reason (e.g. `502 failed`; status 0: no answer), with the first message. */
type Failures = Record<string, { count: number; first: string }>

function countFailure(failures: Failures, answer: Answer): void {
  const error = answer.body.error as { reason?: string; message?: string } | undefined
  const key = `${answer.status} ${error?.reason ?? 'error'}`
  const seen = failures[key]
  if (seen !== undefined) seen.count++
  else failures[key] = { count: 1, first: (error?.message ?? '').slice(0, 300) }
}

const rowOf = (target: Target, i: number): number[] => target.rows[i % target.rows.length] as number[]

/** POST /v1/infer on row i; a request that gets no answer comes back as status 0. */
async function inferOnce(target: Target, i: number): Promise<Answer> {
  const pixels = rowOf(target, i)
  const body = JSON.stringify({ model: MODEL, inputs: { input: tensorToJson(inputOf(pixels).input) } })
  try {
    return await target.client.post(target.url, body, target.token)
  } catch (err) {
    return { status: 0, body: { error: { reason: 'network', message: (err as Error).message } } }
  }
}

interface Latencies {
  /** Direct ONNX Runtime runs on the same rows, interleaved with the requests, microseconds, sorted. */
  direct: number[]
  /** HTTP round trips seen by the client, microseconds, sorted. */
  http: number[]
  /** The gateway's `latencyMs` of the same jobs, microseconds, sorted. */
  gateway: number[]
  failures: Failures
  load1: number
}

/** One request at a time, each after a direct run on the same row; failed requests are counted, not timed. */
async function sequential(target: Target, direct: Direct): Promise<Latencies> {
  const out: Latencies = { direct: [], http: [], gateway: [], failures: {}, load1: loadavg()[0] ?? 0 }
  for (let i = 0; i < WARMUP_REQUESTS; i++) await Promise.all([inferOnce(target, i), direct.time(rowOf(target, i))])
  for (let i = 0; i < LATENCY_REQUESTS; i++) {
    out.direct.push(await direct.time(rowOf(target, i)))
    const start = performance.now()
    const answer = await inferOnce(target, i)
    const elapsed = performance.now() - start
    if (answer.status !== 200) countFailure(out.failures, answer)
    else {
      out.http.push(elapsed * 1000)
      out.gateway.push((answer.body.latencyMs as number) * 1000)
    }
  }
  for (const list of [out.direct, out.http, out.gateway]) list.sort((a, b) => a - b)
  return out
}

interface Throughput {
  jobsPerSecond: number
  perSecond: number[]
  failures: Failures
  /**
   * CPU milliseconds each process used during the counted seconds, per completed job (idle use
   * included: on a busy machine, subtracting it gives figures noisier than the figure itself).
   */
  cpuMsPerJob: Record<string, number>
  load1: number
}

/** Wall time over which the processes' idle CPU use is read, before the first request. */
const IDLE_WINDOW_MS = 3_000

/**
 * `CONCURRENCY` clients, each sending its next request when the last one is answered: one second
 * of warm-up, then `seconds` counted, with every process's CPU time read at both ends.
 */
async function closedLoop(target: Target, seconds: number, processes: CpuProcesses): Promise<Throughput> {
  const load1 = loadavg()[0] ?? 0
  const begin = performance.now() + 1_000
  const end = begin + seconds * 1_000
  const cpuBegin = sleep(1_000).then(() => cpuMs(processes))
  const cpuEnd = sleep(1_000 + seconds * 1_000).then(() => cpuMs(processes))
  const done: number[] = []
  const failures: Failures = {}
  const client = async (c: number): Promise<void> => {
    for (let i = c; performance.now() < end; i += CONCURRENCY) {
      const answer = await inferOnce(target, i)
      const now = performance.now()
      if (answer.status !== 200) countFailure(failures, answer)
      else if (now >= begin && now < end) done.push(now - begin)
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, c) => client(c)))
  const perSecond = Array.from(
    { length: seconds },
    (_, s) => done.filter((t) => t >= s * 1000 && t < (s + 1) * 1000).length,
  )
  const before = await cpuBegin
  const cpuMsPerJob = mapValues(await cpuEnd, (ms, role) =>
    round3((ms - (before[role] ?? 0)) / Math.max(1, done.length)),
  )
  return { jobsPerSecond: done.length / seconds, perSecond, failures, cpuMsPerJob, load1 }
}

// ---- CPU time per process ----------------------------------------------------------------------

/** Processes to account for, by role: a pid, or undefined for this process. */
type CpuProcesses = Record<string, number | undefined>

/** The kernel's clock ticks per second (`getconf CLK_TCK`): 100 on the Linux builds in use. */
const CLOCK_TICKS = 100

const round3 = (x: number): number => Math.round(x * 1000) / 1000

function mapValues(record: Record<string, number>, f: (value: number, key: string) => number): Record<string, number> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, f(v, k)]))
}

/** CPU milliseconds (user + system, every thread) each process has used; from /proc on Linux, else NaN. */
async function cpuMs(processes: CpuProcesses): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const [role, pid] of Object.entries(processes)) {
    if (pid === undefined) {
      const usage = process.cpuUsage()
      out[role] = (usage.user + usage.system) / 1000
      continue
    }
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      out[role] = ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS
    } catch {
      out[role] = Number.NaN
    }
  }
  return out
}

/** Each process's CPU use over `ms` of wall time, in CPU ms per wall ms. */
async function cpuRates(processes: CpuProcesses, ms: number): Promise<Record<string, number>> {
  const before = await cpuMs(processes)
  await sleep(ms)
  const after = await cpuMs(processes)
  return Object.fromEntries(Object.keys(after).map((k) => [k, ((after[k] ?? 0) - (before[k] ?? 0)) / ms]))
}

// ---- result lines ------------------------------------------------------------------------------

const spread = (values: readonly number[]): Record<string, number> => ({
  p50: Math.round(percentile(values, 50)),
  p99: Math.round(percentile(values, 99)),
  samples: values.length,
})

function overheadLine(bench: string, impl: string, path: number[], latency: Latencies): BenchLine {
  const { direct, failures } = latency
  const p50 = percentile(path, 50) - percentile(direct, 50)
  const p99 = percentile(path, 99) - percentile(direct, 99)
  const target = bench === 'infer-overhead-http'
  return {
    ...line({
      bench,
      impl,
      value: p50,
      unit: 'µs',
      baseline: { impl: 'OnnxRuntime.run in the bench process, p50', value: percentile(direct, 50) },
      ...(target
        ? {
            target: {
              value: 1_000,
              met: p50 <= 1_000,
              note: 'whole path − direct ONNX Runtime, p50 ≤ 1 ms on loopback',
            },
          }
        : {}),
      rounds: [p50],
    }),
    overheadP99: Math.round(p99),
    path: spread(path),
    failures,
    load1: Number(latency.load1.toFixed(2)),
  } as BenchLine
}

interface Roles {
  /** What each process is in this run (node2 is a worker only in the 2-worker run). */
  roles: Record<string, string>
  /** Each process's CPU use before the first request, % of one core (consensus, PoH, adverts). */
  idleCpuPercent: Record<string, number>
}

function throughputLine(
  bench: string,
  workers: number,
  run: Throughput,
  context: Roles,
  baseline?: Throughput,
): BenchLine {
  return {
    ...line({
      bench,
      impl: `closed loop, ${CONCURRENCY} requests in flight → gateway (not a worker) → ${workers} worker process(es), jobs/s`,
      value: run.jobsPerSecond,
      unit: 'jobs/s',
      ...(baseline === undefined ? {} : { baseline: { impl: '1 worker process', value: baseline.jobsPerSecond } }),
      rounds: run.perSecond,
    }),
    failures: run.failures,
    cpuMsPerJob: run.cpuMsPerJob,
    ...context,
    load1: Number(run.load1.toFixed(2)),
    note: `${availableParallelism()} CPU cores shared by the client and 4 node processes (and whatever else runs): the ratio measures the cores as much as the market`,
  } as BenchLine
}

function auditLine(stats: Stats): BenchLine {
  const share = stats.jobs === 0 ? 0 : stats.audits / stats.jobs
  return {
    ...line({
      bench: 'infer-audit-share-live',
      impl: "gateway's audits ÷ jobs once the throughput runs' receipts are settled (/v1/inference/stats), ppm",
      value: share * 1_000_000,
      unit: 'ppm',
      target: {
        value: 100_000,
        met: share <= 0.1,
        note: 'BOINC re-runs 5–10%. Every result is audited while its worker’s streak < auditThreshold (10), then 1 in streak; an audit needs a second worker, so only the 2-worker run’s results can be',
      },
      rounds: [share * 1_000_000],
    }),
    share: Number(share.toFixed(4)),
    jobs: stats.jobs,
    audits: stats.audits,
    auditsFailed: stats.auditsFailed,
  } as BenchLine
}

function directLine(direct: number[], interleaved: boolean): BenchLine {
  return {
    ...line({
      bench: 'infer-direct-onnx',
      impl: `OnnxRuntime.run in the bench process, ${MODEL} batch 1, digits rows${interleaved ? ', each run just before the request on its row' : ''}, p50`,
      value: percentile(direct, 50),
      unit: 'µs',
      rounds: [percentile(direct, 50)],
    }),
    ...spread(direct),
  } as BenchLine
}

/**
 * What worker-side batching would save: ONNX Runtime's compute per row at batch 1 and at batch
 * `BATCH`, and whether batched rows are bit-identical to single runs (audits compare output hashes
 * exactly, so a batch that changed the last bits would get honest workers slashed).
 */
async function batchLine(direct: Direct, rows: number[][]): Promise<BenchLine> {
  const { singleUs, batchedUs, differing } = await direct.batch(rows.slice(0, 256), BATCH)
  return {
    ...line({
      bench: 'infer-batch-compute',
      impl: `OnnxRuntime.run in the bench process, ${MODEL}, ${BATCH} rows per call, µs per row (median of 5 rounds of 256 rows)`,
      value: Math.round(batchedUs),
      unit: 'µs/row',
      baseline: { impl: 'the same rows one per call', value: Math.round(singleUs) },
      rounds: [Math.round(batchedUs)],
    }),
    ratio: Number((singleUs / batchedUs).toFixed(2)),
    rowsNotBitIdentical: differing,
    rows: 256,
    note: 'compute only: a job also costs two signatures, a verification, encoding and transport on the worker (see cpuMsPerJob in the throughput lines)',
  } as BenchLine
}

// ---- the suite ---------------------------------------------------------------------------------

const HTTP_PATH =
  'HTTP POST /v1/infer → gateway process (not a worker) → libp2p → worker process → verified receipt → HTTP answer, one at a time, minus direct ONNX Runtime, p50'
const SKIPPED =
  'quick mode: the network part starts 4 node processes and restarts one (30–60 s on 2 busy cores); run `node bench/run.ts --only infer`'
const GATEWAY_PATH =
  "the same jobs' latencyMs as the gateway measures it (job, pick, libp2p round trip, worker, receipt checks; no HTTP/JSON), minus direct ONNX Runtime, p50"

export async function inferenceBenches(_options: MeasureOptions, quick = false): Promise<BenchLine[]> {
  const rows = await digitRows()
  const direct = await openDirect()
  try {
    const batch = await batchLine(direct, rows)
    if (quick) return [await quickLine(direct, rows), batch]
    return [batch, ...(await networkBenches(direct, rows))]
  } finally {
    await direct.close()
  }
}

/** Quick mode: the direct runs only, and a note of what was skipped. */
async function quickLine(direct: Direct, rows: number[][]): Promise<BenchLine> {
  const times: number[] = []
  for (let i = 0; i < 200; i++) times.push(await direct.time(rows[i % rows.length] as number[]))
  const skipped = { benches: INFERENCE_BENCH_NAMES.slice(2), reason: SKIPPED }
  return {
    ...directLine(
      times.slice(20).sort((a, b) => a - b),
      false,
    ),
    skipped,
  } as BenchLine
}

async function networkBenches(direct: Direct, rows: number[][]): Promise<BenchLine[]> {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-bench-infer-'))
  const net = await BenchNetwork.create(dir)
  const client = new LoadClient()
  try {
    await Promise.all(net.nodes.map((_, i) => net.start(i, i === 1)))
    const gateway = net.nodes[0] as NodeProcess
    await waitUntil('the gateway to see 1 worker', async () => (await net.workersSeenBy(gateway)) === 1)
    const token = (await readFile(join(gateway.home, 'api-token'), 'utf8')).trim()
    const target: Target = { url: `${gateway.api}/v1/infer`, token, rows, client }
    await sleep(2_000) // start-up work (calibration, first adverts) out of the idle reading
    const idle = await cpuRates(net.processes(), IDLE_WINDOW_MS)
    const roles = { client: 'bench process', node0: 'gateway', node1: 'worker', node2: 'validator', node3: 'validator' }
    const latency = await sequential(target, direct)
    const one = await closedLoop(target, LOAD_SECONDS, net.processes())
    await net.stop(2)
    await net.start(2, true)
    await waitUntil('the gateway to see 2 workers', async () => (await net.workersSeenBy(gateway)) === 2)
    await net.caughtUp(2)
    await drained(gateway)
    const two = await closedLoop(target, LOAD_SECONDS, net.processes())
    const idleCpuPercent = mapValues(idle, (rate) => Math.round(rate * 100))
    return [
      directLine(latency.direct, true),
      overheadLine('infer-overhead-http', HTTP_PATH, latency.http, latency),
      overheadLine('infer-overhead-gateway', GATEWAY_PATH, latency.gateway, latency),
      throughputLine('infer-throughput-1-worker', 1, one, { roles, idleCpuPercent }),
      throughputLine(
        'infer-throughput-2-workers',
        2,
        two,
        { roles: { ...roles, node2: 'worker' }, idleCpuPercent },
        one,
      ),
      auditLine(await settledStats(gateway)),
    ]
  } finally {
    client.close()
    await net.close()
    await rm(dir, { recursive: true, force: true })
  }
}

interface Stats {
  jobs: number
  audits: number
  auditsFailed: number
  pendingSettlement: number
}

/** Waits until the gateway has no receipt left to settle (the previous run's backlog). */
async function drained(gateway: NodeProcess): Promise<void> {
  const url = `${gateway.api}/v1/inference/stats`
  await waitUntil(
    'settlement of every receipt',
    async () => (await getJson<Stats>(url))?.pendingSettlement === 0,
    60_000,
  )
}

/**
 * The gateway's counters once every receipt is settled and the audits it drew have run (they
 * start two blocks after settlement; the count is read when it stops moving).
 */
async function settledStats(gateway: NodeProcess): Promise<Stats> {
  const url = `${gateway.api}/v1/inference/stats`
  const read = async (): Promise<Stats | undefined> => getJson<Stats>(url)
  await drained(gateway)
  let last = await read()
  for (let i = 0; i < 20; i++) {
    await sleep(1_500)
    const now = await read()
    if (now !== undefined && last !== undefined && now.audits === last.audits && now.audits > 0) break
    last = now
  }
  if (last === undefined) throw new Error('inference bench: /v1/inference/stats did not answer')
  return last
}

if (import.meta.main === true) {
  for (const l of await inferenceBenches({}, process.argv.includes('--quick')))
    process.stdout.write(`${JSON.stringify(l)}\n`)
}
