/**
 * What one worker thread costs a process in resident memory, the three ways a thread can start
 * (src/core/js-worker.ts):
 *  - from its TypeScript file: the thread loads its own copy of Node's TypeScript stripper;
 *  - stripped on the main thread (`jsWorkerUrl` without a compile cache): the thread runs
 *    JavaScript `data:` modules, but the main thread loads the stripper to make them;
 *  - from Node's compile cache (`jsWorkerUrl` where the process keeps one, as every `donghae`
 *    command does): neither thread strips anything once the cache holds the modules (a first
 *    process, not counted, fills it).
 * The PoH verification thread, which a node starts under load. Each reading is a fresh Node
 * process (the project's one, as a node runs) that starts one thread, waits for it to answer
 * and settle, and reports the VmRSS the thread added and the process's VmRSS at the end; rounds
 * alternate the ways, and values are medians.
 *  - worker-thread-rss: what the thread adds, stripped on the main thread, against the `.ts` file;
 *  - worker-process-rss: the whole process with its thread, from the compile cache, against
 *    stripped on the main thread (whose stripper the first line does not count).
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { line, type BenchLine } from './harness.ts'

export const WORKER_RSS_BENCH_NAMES = ['worker-thread-rss', 'worker-process-rss']

const ENTRY = 'src/chain/poh/verifier.worker.ts'
const ENTRY_URL = new URL(`../${ENTRY}`, import.meta.url)
const JS_WORKER_URL = new URL('../src/core/js-worker.ts', import.meta.url)

type Way = 'ts' | 'stripped' | 'cached'

interface Reading {
  /** VmRSS the thread added, MB. */
  thread: number
  /** VmRSS of the process at the end, MB. */
  process: number
}

/** One fresh process's reading; `cache` is the compile cache's directory for the `cached` way. */
function reading(way: Way, cache: string): Reading {
  // a script file, not -e: a worker inherits --input-type, which stops it loading its file
  const dir = mkdtempSync(join(tmpdir(), 'donghae-worker-rss-'))
  const file = join(dir, 'reading.mjs')
  writeFileSync(
    file,
    [
      "import module from 'node:module'",
      "import { Worker } from 'node:worker_threads'",
      "import { setTimeout as sleep } from 'node:timers/promises'",
      // before the project's first module: the cache (or none) decides how its .ts is stripped
      way === 'cached' ? `module.enableCompileCache(${JSON.stringify(cache)})` : '',
      `const { jsWorkerUrl } = await import('${JS_WORKER_URL.href}')`,
      'const rss = () => process.memoryUsage().rss / 2 ** 20',
      `const file = new URL('${ENTRY_URL.href}')`,
      `const url = ${way === 'ts' ? 'file' : 'jsWorkerUrl(file)'}`,
      'await sleep(300)',
      'const before = rss()',
      'const worker = new Worker(url)',
      "worker.on('error', (err) => { console.error(err); process.exit(1) })",
      "await new Promise((resolve) => worker.once('online', resolve))",
      'await sleep(1500)',
      'console.log(JSON.stringify({ thread: rss() - before, process: rss(), protocol: url.protocol }))',
      'process.exit(0)',
    ].join('\n'),
  )
  try {
    // no compile cache but the one this reading asks for
    const env: NodeJS.ProcessEnv = { ...process.env }
    delete env.NODE_COMPILE_CACHE
    delete env.NODE_DISABLE_COMPILE_CACHE
    const run = spawnSync(process.execPath, [file], { encoding: 'utf8', env })
    if (run.status !== 0) throw new Error(`worker-rss reading failed: ${run.stderr.trim()}`)
    const out = JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as Reading & { protocol: string }
    if (way !== 'ts' && out.protocol !== 'data:') throw new Error(`${ENTRY} did not start through jsWorkerUrl`)
    return { thread: out.thread, process: out.process }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number

export function workerRssBenches(quick = false): BenchLine[] {
  const rounds = quick ? 1 : 5
  const cache = mkdtempSync(join(tmpdir(), 'donghae-worker-rss-cache-'))
  try {
    reading('cached', cache) // fills the cache: the first start strips, as a node's first start does
    const readings: Record<Way, Reading[]> = { ts: [], stripped: [], cached: [] }
    for (let r = 0; r < rounds; r++)
      for (const way of ['ts', 'stripped', 'cached'] as const) readings[way].push(reading(way, cache))
    const thread = (way: Way): number[] => readings[way].map((r) => r.thread)
    const whole = (way: Way): number[] => readings[way].map((r) => r.process)
    return [
      line({
        bench: 'worker-thread-rss',
        impl: `one PoH verification thread (${ENTRY}) stripped on the main thread (jsWorkerUrl, no compile cache): VmRSS it adds to a fresh process, median`,
        value: median(thread('stripped')),
        unit: 'MB',
        baseline: { impl: 'the same thread started from its .ts file', value: median(thread('ts')) },
        rounds: thread('stripped'),
      }),
      line({
        bench: 'worker-process-rss',
        impl: `a fresh process with one PoH verification thread from Node's compile cache (jsWorkerUrl, cache filled): its VmRSS, median`,
        value: median(whole('cached')),
        unit: 'MB',
        baseline: { impl: 'the same, the thread stripped on the main thread', value: median(whole('stripped')) },
        rounds: whole('cached'),
      }),
    ]
  } finally {
    rmSync(cache, { recursive: true, force: true })
  }
}
