/**
 * A language model's generation through the network, against the same generation run directly in
 * this process, on a worker thread (same prompt tokens, same seed and sampling: the same tokens):
 *  - lm-gateway-tokens-per-second: output tokens per second of one streamed chat completion,
 *    HTTP `POST /v1/chat/completions` (`stream: true`, SSE) → a gateway process that is not a
 *    worker → `/donghae/infer/3.0.0` over libp2p → a worker process → its sandboxed model process
 *    (the default runner) and the tokens streamed back, ÷ `LmEngine.generate` on an ONNX Runtime
 *    session in this process (`DirectEngine`). Two rates, p50 of `ROUNDS` interleaved rounds each: tokens ÷ (last
 *    token − first token) (the decode rate, as a client watching the stream sees it: first and
 *    last SSE content chunk), and tokens ÷ the whole request (HTTP sent → `data: [DONE]`;
 *    directly: the `generate` call). Target ratio ≥ 0.9.
 *  - lm-gateway-ttft: time to first token added by the network, µs: HTTP request sent → first SSE
 *    content chunk, minus the direct engine's call → first token, p50 (and p99 beside). Target
 *    ≤ 20 ms at p50.
 *  - lm-gateway-direct (quick mode only): the direct baseline alone; the network part is skipped.
 *
 * The network is inference.bench.ts's `BenchNetwork` (4 validators on loopback; node0 the gateway,
 * node1 the worker); its genesis registers the demo LM (models/lm) when the file is there. The
 * prompt is a chat message through the model's template; the sampling is the first that runs to
 * `MAX_TOKENS` without an end-of-sequence token — greedy, else the generation_config defaults with
 * the first of `SEEDS` seeds — else the longest (the lines give `outputTokens`). It is checked
 * directly first, and every HTTP answer is checked to be the direct text and token count.
 *
 * Each round: the HTTP request, then the direct run, which runs in a worker thread of this process
 * (`DirectEngine`: its garbage is collected on that thread, not during a request). Beside the
 * p50s, the lines carry the fastest round of each side (on a shared machine the least disturbed),
 * the SSE chunks per answer, and the CPU time per generation of each process
 * (`cpuMsPerGeneration`, Linux), which other load disturbs far less than wall time. A request the
 * network fails is counted in `failures` and run again; a wrong answer ends the bench.
 *
 *   node bench/run.ts --only lm-gateway
 */
import { Agent, request as httpRequest } from 'node:http'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { PerformanceObserver, performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { Worker, isMainThread, parentPort, workerData, type MessagePort } from 'node:worker_threads'
import * as ort from 'onnxruntime-node'
import { DEMO_LM_DIR, DEMO_LM_NAME, DEMO_MODELS_DIR } from '../src/inference/demo-models.ts'
import { LmEngine } from '../src/inference/lm/engine.ts'
import { samplingOf, type ChatMessage, type CompletionRequest } from '../src/inference/lm/completion.ts'
import { parseLmFiles, readLmFolder, type LmModelFiles } from '../src/inference/lm/model-files.ts'
import { completionTokenizer } from '../src/inference/lm/tokenizer.ts'
import { generationTensors, type GenerationInput } from '../src/inference/lm/types.ts'
import { lmInput } from '../src/inference/runtime.ts'
import { MODEL_PROCESS_NICE } from '../src/inference/runner/constants.ts'
import { line, type BenchLine } from './harness.ts'
import { BenchNetwork, percentile, waitUntil, type NodeProcess } from './inference.bench.ts'

export const LM_GATEWAY_BENCH_NAMES = ['lm-gateway-tokens-per-second', 'lm-gateway-ttft', 'lm-gateway-direct']
const LM_DIR = join(DEMO_MODELS_DIR, DEMO_LM_DIR)
const MESSAGES: ChatMessage[] = [{ role: 'user', content: 'Call me Ishmael. Tell me of the whale.' }]
const MAX_TOKENS = 160
/** The generation_config.json defaults, sent explicitly (seeded samplings; the first try is greedy). */
const SAMPLING = { temperature: 0.8, top_p: 0.95, top_k: 40 }
const SEEDS = 64
/** Timed rounds (one direct generation, then one through the network), after `WARMUP` untimed ones. */
const ROUNDS = 30
const WARMUP = 3
const TTFT_TARGET_MS = 20
const RATIO_TARGET = 0.9

// ---- one streamed chat completion over HTTP -----------------------------------------------------

/** What the client saw of one streamed completion; times are `performance.now()` in this process. */
export interface Streamed {
  sent: number
  /** Arrival of the first and the last SSE chunk with non-empty content. */
  firstContent: number
  lastContent: number
  /** Arrival of `data: [DONE]`. */
  done: number
  /** SSE chunks with content (tokens reach the client in fewer chunks than tokens when they come together). */
  chunks: number
  text: string
  finishReason: string | null
  completionTokens: number
  promptTokens: number
  /** The gateway's own time to first token (`donghae.ttftMs`). */
  gatewayTtftMs: number
  /** The worker's compute time of the job (the receipt's `computeMicros`). */
  computeMicros: number
  /** Garbage-collection pauses of this process during the request, ms (filled in at the end). */
  gcMs?: number
}

interface ChunkJson {
  choices?: Array<{ delta?: { content?: string }; finish_reason?: string | null }>
  usage?: { completion_tokens: number; prompt_tokens: number } | null
  donghae?: { ttftMs?: number; receipt?: { computeMicros?: number } }
  error?: { message?: string }
}

function streamCompletion(agent: Agent, url: string, token: string, body: string): Promise<Streamed> {
  const headers = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    authorization: `Bearer ${token}`,
  }
  return new Promise((resolve, reject) => {
    const out: Streamed = {
      sent: performance.now(),
      firstContent: 0,
      lastContent: 0,
      done: 0,
      chunks: 0,
      text: '',
      finishReason: null,
      completionTokens: -1,
      promptTokens: -1,
      gatewayTtftMs: Number.NaN,
      computeMicros: Number.NaN,
    }
    const req = httpRequest(url, { method: 'POST', agent, headers }, (res) => {
      let buffer = ''
      res.setEncoding('utf8')
      res.on('data', (text: string) => {
        const at = performance.now()
        buffer += text
        for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
          const event = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const data = event
            .split('\n')
            .find((l) => l.startsWith('data: '))
            ?.slice(6)
          if (data === undefined) continue
          if (data === '[DONE]') {
            out.done = at
            continue
          }
          const chunk = JSON.parse(data) as ChunkJson
          if (chunk.error !== undefined) return reject(new Error(`the completion failed: ${chunk.error.message}`))
          const choice = chunk.choices?.[0]
          const content = choice?.delta?.content ?? ''
          if (content.length > 0) {
            if (out.firstContent === 0) out.firstContent = at
            out.lastContent = at
            out.chunks++
            out.text += content
          }
          if (choice?.finish_reason !== undefined && choice.finish_reason !== null)
            out.finishReason = choice.finish_reason
          if (chunk.usage !== undefined && chunk.usage !== null) {
            out.completionTokens = chunk.usage.completion_tokens
            out.promptTokens = chunk.usage.prompt_tokens
          }
          if (chunk.donghae !== undefined) {
            out.gatewayTtftMs = chunk.donghae.ttftMs ?? Number.NaN
            out.computeMicros = chunk.donghae.receipt?.computeMicros ?? Number.NaN
          }
        }
      })
      res.on('end', () =>
        res.statusCode === 200 && out.done > 0
          ? resolve(out)
          : reject(new Error(`chat completion: HTTP ${res.statusCode}: ${buffer.slice(0, 300)}`)),
      )
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

// ---- the direct baseline ----------------------------------------------------------------------

export interface DirectRun {
  tokens: number
  /** From the call to the first and the last token, and to its return, ms. */
  firstMs: number
  lastMs: number
  totalMs: number
  /** CPU time of this process during the call (every thread; the main thread waits), ms. */
  cpuMs: number
}

async function directRun(engine: LmEngine, input: GenerationInput): Promise<DirectRun> {
  let first = 0
  let last = 0
  const cpu = process.cpuUsage()
  const start = performance.now()
  const g = await engine.generate(input, {
    onTokens: () => {
      last = performance.now()
      if (first === 0) first = last
    },
  })
  const end = performance.now()
  const used = process.cpuUsage(cpu)
  return {
    tokens: g.tokens.length,
    firstMs: first - start,
    lastMs: last - start,
    totalMs: end - start,
    cpuMs: (used.user + used.system) / 1000,
  }
}

export interface Job {
  /** The request's sampling fields (OpenAI names). */
  sampling: { temperature: number; top_p: number; top_k: number; seed: number }
  input: GenerationInput
  /** The direct generation's text (what every streamed answer must be). */
  text: string
  tokens: number
}

/** The first sampling whose generation runs to MAX_TOKENS (else the longest), with its input and text. */
async function pickJob(engine: LmEngine, files: LmModelFiles): Promise<Job> {
  const tokenizer = completionTokenizer(files)
  let best: Job | undefined
  // greedy first (a small model's greedy output rarely ends early), then seeded samplings
  const candidates = [{ ...SAMPLING, temperature: 0, seed: 1 }]
  for (let seed = 1; seed <= SEEDS; seed++) candidates.push({ ...SAMPLING, seed })
  for (const c of candidates) {
    const request: CompletionRequest = {
      messages: MESSAGES,
      maxTokens: MAX_TOKENS,
      temperature: c.temperature,
      topP: c.top_p,
      topK: c.top_k,
      seed: BigInt(c.seed),
    }
    // exactly what the gateway sends (completion.ts) and the worker's runtime reads (runtime.ts)
    const input = lmInput(generationTensors(tokenizer.encodeChat(MESSAGES), samplingOf(request, tokenizer.defaults)))
    const g = await engine.generate(input)
    if (best === undefined || g.tokens.length > best.tokens) {
      const decoder = tokenizer.decoder()
      const text = decoder.push(g.tokens) + decoder.flush()
      best = { sampling: c, input, text, tokens: g.tokens.length }
    }
    if (g.tokens.length === MAX_TOKENS) break
  }
  return best!
}

function openSession(): Promise<ort.InferenceSession> {
  // the options OnnxRuntime opens every session with (runtime.ts), on one thread as the sandbox does
  return ort.InferenceSession.create(join(LM_DIR, 'model.onnx'), {
    executionProviders: ['cpu'],
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
  })
}

/**
 * The direct baseline: `LmEngine` on its own ONNX Runtime session in a worker thread of this
 * process. A generation leaves hundreds of MB of KV-cache tensors behind; on the main thread their
 * collection would pause the client in the middle of a measured request (10–50 ms, read as
 * network TTFT), and collecting them by force before each request leaves the heap shrunk, which
 * slows the next direct run. The worker thread's heap is its own: its generations run back to
 * back in the steady state a worker's model process has, and the client's thread stays clean.
 */
export class DirectEngine {
  readonly #worker: Worker
  readonly #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>()
  #next = 0

  private constructor(worker: Worker) {
    this.#worker = worker
    worker.on('message', (m: { id: number; value?: unknown; error?: string }) => {
      const p = this.#pending.get(m.id)
      this.#pending.delete(m.id)
      if (m.error === undefined) p?.resolve(m.value)
      else p?.reject(new Error(`lm-gateway bench, direct engine: ${m.error}`))
    })
    worker.on('error', (err) => {
      for (const p of this.#pending.values()) p.reject(err)
      this.#pending.clear()
    })
  }

  static open(): DirectEngine {
    return new DirectEngine(new Worker(new URL(import.meta.url), { workerData: { lmGatewayDirect: true } }))
  }

  #call<T>(message: Record<string, unknown>): Promise<T> {
    const id = this.#next++
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.#worker.postMessage({ ...message, id })
    })
  }

  /** Picks the job (see `pickJob`). */
  job(): Promise<Job> {
    return this.#call({ op: 'job' })
  }

  run(input: GenerationInput): Promise<DirectRun> {
    return this.#call({ op: 'run', input })
  }

  async close(): Promise<void> {
    await this.#call({ op: 'close' }).catch(() => {})
    await this.#worker.terminate()
  }
}

/** The worker thread's side of `DirectEngine`. */
async function serveDirect(port: MessagePort): Promise<void> {
  const files = parseLmFiles(await readLmFolder(LM_DIR))
  const session = await openSession()
  const engine = new LmEngine(session, files)
  let queue = Promise.resolve()
  port.on('message', (m: { id: number; op: string; input?: GenerationInput }) => {
    queue = queue.then(async () => {
      try {
        const value =
          m.op === 'job'
            ? await pickJob(engine, files)
            : m.op === 'run'
              ? await directRun(engine, m.input as GenerationInput)
              : await session.release()
        port.postMessage({ id: m.id, value })
      } catch (err) {
        port.postMessage({ id: m.id, error: String(err) })
      }
    })
  })
}

if (!isMainThread && (workerData as { lmGatewayDirect?: boolean } | null)?.lmGatewayDirect === true)
  await serveDirect(parentPort as MessagePort)

// ---- the suite --------------------------------------------------------------------------------

const sorted = (values: readonly number[]): number[] => [...values].sort((a, b) => a - b)
const p50 = (values: readonly number[]): number => percentile(sorted(values), 50)
const p99 = (values: readonly number[]): number => percentile(sorted(values), 99)
const fixed = (x: number, digits = 3): number => Number(x.toFixed(digits))

export async function lmGatewayBenches(quick = false): Promise<BenchLine[]> {
  const direct = DirectEngine.open()
  try {
    const job = await direct.job()
    if (quick) return [await quickLine(direct, job)]
    return await networkBenches(direct, job)
  } finally {
    await direct.close()
  }
}

async function quickLine(direct: DirectEngine, job: Job): Promise<BenchLine> {
  const runs: DirectRun[] = []
  for (let i = 0; i < 3; i++) runs.push(await direct.run(job.input))
  const rates = runs.map((r) => job.tokens / ((r.lastMs - r.firstMs) / 1000))
  return {
    ...line({
      bench: 'lm-gateway-direct',
      impl: `LmEngine.generate in a worker thread of the bench process: ${job.tokens} tokens ÷ (last − first token), p50`,
      value: p50(rates),
      unit: 'tokens/s',
      rounds: rates,
    }),
    ttftUs: Math.round(p50(runs.map((r) => r.firstMs)) * 1000),
    skipped: {
      benches: LM_GATEWAY_BENCH_NAMES.slice(0, 2),
      reason:
        'quick mode: the network part starts 4 node processes (30–60 s on 2 busy cores); run `node bench/run.ts --only lm-gateway`',
    },
  } as BenchLine
}

// ---- CPU time of the processes ------------------------------------------------------------------

/** CPU milliseconds a process has used, every thread (Linux: schedstat, ns; NaN elsewhere). */
async function cpuMsOf(pid: number): Promise<number> {
  try {
    let ns = 0
    for (const tid of await readdir(`/proc/${pid}/task`))
      ns += Number((await readFile(`/proc/${pid}/task/${tid}/schedstat`, 'utf8')).split(' ')[0])
    return ns / 1e6
  } catch {
    return Number.NaN
  }
}

/** The sandbox processes of a worker: its children running child.ts. */
async function modelProcessesOf(pid: number): Promise<number[]> {
  const out: number[] = []
  try {
    for (const tid of await readdir(`/proc/${pid}/task`)) {
      const children = (await readFile(`/proc/${pid}/task/${tid}/children`, 'utf8')).trim()
      for (const child of children === '' ? [] : children.split(' ').map(Number))
        if ((await readFile(`/proc/${child}/cmdline`, 'utf8')).includes('child.ts')) out.push(child)
    }
  } catch {
    // not Linux, or the process is gone
  }
  return out
}

/** CPU ms each role used between two readings. */
type CpuUse = Record<string, number>

async function cpuSnapshot(pids: Record<string, number[]>): Promise<CpuUse> {
  const out: CpuUse = {}
  for (const [role, list] of Object.entries(pids)) {
    const each = await Promise.all(list.map(cpuMsOf))
    // the model process that worked is the one that used the most (the LM's; the others idle)
    out[role] = role === 'modelProcess' ? Math.max(...each) : each.reduce((a, b) => a + b, 0) / each.length
  }
  return out
}

/** The network answered other tokens than the direct generation (the bench stops). */
class WrongAnswerError extends Error {}

/** The bench's network with the LM served, and the streamed request of `job` to its gateway. */
export interface LmNetwork {
  net: BenchNetwork
  /** One streamed chat completion of the job, checked to be the direct generation. */
  request(): Promise<Streamed>
  close(): Promise<void>
}

export async function startLmNetwork(job: Job): Promise<LmNetwork> {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-bench-lm-gateway-'))
  const net = await BenchNetwork.create(dir)
  const agent = new Agent({ keepAlive: true })
  // a bench that dies (an uncaught error) leaves no node running
  const orphans = (): void => net.nodes.forEach((n) => n.child?.kill('SIGKILL'))
  process.once('exit', orphans)
  const close = async (): Promise<void> => {
    process.off('exit', orphans)
    agent.destroy()
    await net.close()
    await rm(dir, { recursive: true, force: true })
  }
  try {
    await Promise.all(net.nodes.map((_, i) => net.start(i, i === 1)))
    const gateway = net.nodes[0] as NodeProcess
    await waitUntil(
      `the gateway to see a worker serving ${DEMO_LM_NAME}`,
      async () => (await net.workersSeenBy(gateway, DEMO_LM_NAME)) >= 1,
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; the worker's log ends: ${net.nodes[1]?.log.slice(-1_500)}`)
    })
    const token = (await readFile(join(gateway.home, 'api-token'), 'utf8')).trim()
    const url = `${gateway.api}/v1/chat/completions`
    const body = JSON.stringify({
      model: DEMO_LM_NAME,
      messages: MESSAGES,
      max_tokens: MAX_TOKENS,
      ...job.sampling,
      stream: true,
      stream_options: { include_usage: true },
    })
    const request = async (): Promise<Streamed> => {
      const s = await streamCompletion(agent, url, token, body)
      if (s.text !== job.text || s.completionTokens !== job.tokens || s.promptTokens !== job.input.promptIds.length)
        throw new WrongAnswerError(
          `lm-gateway bench: the network's answer (${s.completionTokens} tokens: ${JSON.stringify(s.text.slice(0, 80))}…) is not the direct generation's (${job.tokens} tokens: ${JSON.stringify(job.text.slice(0, 80))}…)`,
        )
      return s
    }
    await sleep(2_000) // start-up work (calibration, first adverts) out of the way
    return { net, request, close }
  } catch (err) {
    await close()
    throw err
  }
}

async function networkBenches(engine: DirectEngine, job: Job): Promise<BenchLine[]> {
  const network = await startLmNetwork(job)
  try {
    for (let i = 0; i < WARMUP; i++) {
      await engine.run(job.input)
      await network.request().catch((err: unknown) => {
        if (err instanceof WrongAnswerError) throw err
      })
    }
    const load1 = loadavg()[0] ?? 0
    const direct: DirectRun[] = []
    const http: Streamed[] = []
    const pid = (i: number): number => network.net.nodes[i]?.child?.pid ?? -1
    const roles = {
      gateway: [pid(0)],
      worker: [pid(1)],
      validator: [pid(2), pid(3)],
      modelProcess: await modelProcessesOf(pid(1)),
    }
    const cpu: CpuUse[] = []
    const pauses: Array<{ start: number; ms: number }> = []
    const gc = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) pauses.push({ start: e.startTime, ms: e.duration })
    })
    gc.observe({ entryTypes: ['gc'] })
    // a request the network fails (a reset stream, no worker) is counted and the round run again;
    // a wrong answer ends the bench
    const failures: Record<string, number> = {}
    for (let r = 0; r < ROUNDS; r++) {
      const before = await cpuSnapshot(roles)
      try {
        http.push(await network.request())
      } catch (err) {
        if (err instanceof WrongAnswerError) throw err
        const reason = (err as Error).message.slice(0, 200)
        failures[reason] = (failures[reason] ?? 0) + 1
        if (Object.values(failures).reduce((a, b) => a + b, 0) > ROUNDS / 2)
          throw new Error(`lm-gateway bench: too many failed requests: ${JSON.stringify(failures)}`)
        r--
        continue
      }
      const after = await cpuSnapshot(roles)
      const d = await engine.run(job.input)
      if (d.tokens !== job.tokens)
        throw new Error(`lm-gateway bench: a direct run gave ${d.tokens} tokens, not ${job.tokens}`)
      direct.push(d)
      cpu.push({
        ...Object.fromEntries(Object.keys(after).map((k) => [k, (after[k] ?? 0) - (before[k] ?? 0)])),
        direct: d.cpuMs,
      })
    }
    await sleep(10) // the last entries
    gc.disconnect()
    for (const s of http)
      s.gcMs = pauses.filter((p) => p.start + p.ms > s.sent && p.start < s.done).reduce((ms, p) => ms + p.ms, 0)
    return resultLines(job, direct, http, cpu, load1, failures)
  } finally {
    await network.close()
  }
}

function resultLines(
  job: Job,
  direct: DirectRun[],
  http: Streamed[],
  cpu: CpuUse[],
  load1: number,
  failures: Record<string, number>,
): BenchLine[] {
  const n = job.tokens
  const perSecond = (ms: number): number => n / (ms / 1000)
  const decodeDirect = direct.map((d) => perSecond(d.lastMs - d.firstMs))
  // an answer whose tokens all came in one chunk has no decode span (left out, and counted)
  const spanned = http.filter((s) => s.lastContent > s.firstContent)
  const decodeHttp = spanned.map((s) => perSecond(s.lastContent - s.firstContent))
  const wholeDirect = direct.map((d) => perSecond(d.totalMs))
  const wholeHttp = http.map((s) => perSecond(s.done - s.sent))
  const ttftDirect = direct.map((d) => d.firstMs * 1000)
  const ttftHttp = http.map((s) => (s.firstContent - s.sent) * 1000)
  const ratio = p50(decodeHttp) / p50(decodeDirect)
  const wholeRatio = p50(wholeHttp) / p50(wholeDirect)
  const added50 = p50(ttftHttp) - p50(ttftDirect)
  const added99 = p99(ttftHttp) - p99(ttftDirect)
  const context = {
    failures,
    cores: availableParallelism(),
    load1: fixed(load1, 2),
    outputTokens: n,
    maxTokens: MAX_TOKENS,
    promptTokens: job.input.promptIds.length,
    sampling: job.sampling,
    note: `${availableParallelism()} CPU cores shared by the bench process (client and direct baseline), 4 node processes and the worker's model process (nice ${MODEL_PROCESS_NICE})`,
  }
  const path =
    'HTTP POST /v1/chat/completions (stream) → gateway process (not a worker) → libp2p → worker process → sandboxed model process, tokens streamed back as SSE'
  return [
    {
      ...line({
        bench: 'lm-gateway-tokens-per-second',
        impl: `${path}: ${n} output tokens ÷ (last − first SSE content chunk), p50 of ${decodeHttp.length}`,
        value: p50(decodeHttp),
        unit: 'tokens/s',
        baseline: {
          impl: 'LmEngine.generate in a worker thread of the bench process, same job: tokens ÷ (last − first token), p50',
          value: p50(decodeDirect),
        },
        target: {
          value: RATIO_TARGET,
          met: ratio >= RATIO_TARGET && wholeRatio >= RATIO_TARGET,
          note: 'network ÷ direct ≥ 0.9, both rates',
        },
        rounds: decodeHttp,
      }),
      wholeRequest: {
        value: Math.round(p50(wholeHttp)),
        baseline: Math.round(p50(wholeDirect)),
        ratio: fixed(wholeRatio),
        impl: 'tokens ÷ (HTTP sent → data: [DONE]), against tokens ÷ the generate call, p50',
      },
      directRounds: decodeDirect.map(Math.round),
      best: {
        value: Math.round(Math.max(...decodeHttp)),
        baseline: Math.round(Math.max(...decodeDirect)),
        ratio: fixed(Math.max(...decodeHttp) / Math.max(...decodeDirect)),
        impl: 'fastest round of each (the least disturbed by other load, as harness.ts)',
      },
      sseChunksP50: p50(http.map((s) => s.chunks)),
      answersInOneChunk: http.length - spanned.length,
      cpuMsPerGeneration: Object.fromEntries(
        Object.keys(cpu[0] ?? {}).map((role) => [role, fixed(p50(cpu.map((c) => c[role] ?? Number.NaN)), 1)]),
      ),
      cpuNote:
        "CPU ms per generation, p50 (Linux schedstat, every thread): direct = this process during a measured direct run; modelProcess = the worker's sandbox process, gateway and worker = their node processes, validator = a plain validator (consensus alone, the idle cost the other two also pay) during the request",
      workerComputeMsP50: fixed(p50(http.map((s) => s.computeMicros / 1000)), 1),
      clientGcMsMax: fixed(Math.max(...http.map((s) => s.gcMs ?? 0)), 1),
      directTotalMsP50: fixed(p50(direct.map((d) => d.totalMs)), 1),
      ...context,
    } as BenchLine,
    {
      ...line({
        bench: 'lm-gateway-ttft',
        impl: `${path}: HTTP sent → first SSE content chunk, minus the direct engine's call → first token, p50`,
        value: added50,
        unit: 'µs',
        baseline: {
          impl: "LmEngine.generate's call → first token, in a worker thread of the bench process, p50",
          value: p50(ttftDirect),
        },
        target: { value: TTFT_TARGET_MS * 1000, met: added50 <= TTFT_TARGET_MS * 1000, note: 'added TTFT ≤ 20 ms p50' },
        rounds: ttftHttp.map((t, i) => t - (ttftDirect[i] ?? 0)),
      }),
      addedP99: Math.round(added99),
      http: { p50: Math.round(p50(ttftHttp)), p99: Math.round(p99(ttftHttp)) },
      direct: { p50: Math.round(p50(ttftDirect)), p99: Math.round(p99(ttftDirect)) },
      gatewayTtftUsP50: Math.round(p50(http.map((s) => s.gatewayTtftMs * 1000))),
      bestAdded: Math.round(Math.min(...ttftHttp.map((t, i) => t - (ttftDirect[i] ?? 0)))),
      ...context,
    } as BenchLine,
  ]
}

// (the direct engine's worker thread loads this file as its main module too: it only serves)
if (import.meta.main === true && isMainThread) {
  for (const l of await lmGatewayBenches(process.argv.includes('--quick')))
    process.stdout.write(`${JSON.stringify(l)}\n`)
}
