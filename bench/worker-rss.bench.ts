/**
 * What one worker thread adds to a process's resident memory, started from its TypeScript file
 * (baseline: the thread loads its own copy of Node's TypeScript stripper) and through
 * `jsWorkerUrl` (src/core/js-worker.ts: the same modules as JavaScript). The PoH generator's
 * thread, which an idle node keeps, and the signature pool's, which it starts under load.
 * Each reading is a fresh Node process (the project's one, as a node runs) that starts one
 * thread, waits for it to answer and settle, and reports its VmRSS growth; rounds alternate
 * the two ways, and the value is the median.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { line, type BenchLine } from './harness.ts'

export const WORKER_RSS_BENCH_NAMES = ['worker-thread-rss']

const ENTRY = 'src/chain/poh/verifier.worker.ts'
const ENTRY_URL = new URL(`../${ENTRY}`, import.meta.url)
const JS_WORKER_URL = new URL('../src/core/js-worker.ts', import.meta.url)

/** Resident memory a thread added in a fresh process, MB. */
function reading(asJavaScript: boolean): number {
  // a script file, not -e: a worker inherits --input-type, which stops it loading its file
  const dir = mkdtempSync(join(tmpdir(), 'donghae-worker-rss-'))
  const file = join(dir, 'reading.mjs')
  writeFileSync(
    file,
    [
      "import { Worker } from 'node:worker_threads'",
      "import { setTimeout as sleep } from 'node:timers/promises'",
      `import { jsWorkerUrl } from '${JS_WORKER_URL.href}'`,
      'const rss = () => process.memoryUsage().rss / 2 ** 20',
      `const file = new URL('${ENTRY_URL.href}')`,
      `const url = ${asJavaScript ? 'jsWorkerUrl(file)' : 'file'}`,
      'await sleep(300)',
      'const before = rss()',
      'const worker = new Worker(url)',
      "worker.on('error', (err) => { console.error(err); process.exit(1) })",
      "await new Promise((resolve) => worker.once('online', resolve))",
      'await sleep(1500)',
      'console.log(JSON.stringify({ mb: rss() - before, protocol: url.protocol }))',
      'process.exit(0)',
    ].join('\n'),
  )
  try {
    const run = spawnSync(process.execPath, [file], { encoding: 'utf8' })
    if (run.status !== 0) throw new Error(`worker-rss reading failed: ${run.stderr.trim()}`)
    const out = JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as { mb: number; protocol: string }
    if (asJavaScript && out.protocol !== 'data:') throw new Error(`${ENTRY} did not convert to JavaScript`)
    return out.mb
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number

export function workerRssBenches(quick = false): BenchLine[] {
  const rounds = quick ? 1 : 5
  const ts: number[] = []
  const js: number[] = []
  for (let r = 0; r < rounds; r++) {
    ts.push(reading(false))
    js.push(reading(true))
  }
  return [
    line({
      bench: 'worker-thread-rss',
      impl: `one PoH verification thread (${ENTRY}) run as JavaScript through jsWorkerUrl: VmRSS it adds to a fresh process, median`,
      value: median(js),
      unit: 'MB',
      baseline: { impl: 'the same thread started from its .ts file', value: median(ts) },
      rounds: js,
    }),
  ]
}
