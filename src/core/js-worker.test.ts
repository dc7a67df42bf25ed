// jsWorkerUrl: a worker's TypeScript module graph as JavaScript data: modules, or the .ts URL
// where that cannot be done. The project's own workers (PoH, signature pool) run through it in
// their tests; here: fixtures that show each rule.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import { jsWorkerUrl } from './js-worker.ts'

/** The way without a compile cache: the worker's modules stripped on this thread. */
const STRIP = { compileCache: false } as const

async function fixture(files: Record<string, string>): Promise<{ dir: string; url: (name: string) => URL }> {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-js-worker-'))
  for (const [name, source] of Object.entries(files)) await writeFile(join(dir, name), source)
  return { dir, url: (name) => pathToFileURL(join(dir, name)) }
}

async function answer(url: URL): Promise<unknown> {
  const worker = new Worker(url)
  try {
    return await new Promise((resolve, reject) => {
      worker.once('message', resolve)
      worker.once('error', reject)
    })
  } finally {
    await worker.terminate()
  }
}

test('jsWorkerUrl: types stripped, relative .ts imports and re-exports linked, packages and builtins resolved; the worker runs', async () => {
  const { dir, url } = await fixture({
    'entry.ts': [
      "import { parentPort } from 'node:worker_threads'",
      "import type { Shape } from './shape.ts'",
      "import { area, type Unit } from './area.ts'",
      "import { twice } from './again.ts'",
      "import { base16 } from 'multiformats/bases/base16'",
      'const unit: Unit = "cm"',
      'const s: Shape = { w: 2, h: 3 }',
      'parentPort!.postMessage(`${twice(area(s))} ${unit} ${base16.encode(Uint8Array.of(104, 105))}`)',
    ].join('\n'),
    'shape.ts': 'export interface Shape { w: number; h: number }\n',
    'area.ts':
      "import type { Shape } from './shape.ts'\nexport type Unit = 'cm' | 'm'\nexport function area(s: Shape): number { return s.w * s.h }\n",
    'again.ts': "export { twice } from './twice.ts'\n",
    'twice.ts':
      "import { area } from './area.ts'\nexport const twice = (n: number): number => 2 * n + area({ w: 0, h: 0 })\n",
  })
  try {
    const js = jsWorkerUrl(url('entry.ts'), STRIP)
    assert.equal(js.protocol, 'data:')
    assert.equal(await answer(js), '12 cm f6869')
    assert.equal(jsWorkerUrl(url('entry.ts'), STRIP), js, 'converted once per process')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('jsWorkerUrl: an import cycle, import.meta or a dynamic import leaves the .ts URL (the thread runs as before)', async () => {
  const { dir, url } = await fixture({
    'cycle.ts': "import { b } from './b.ts'\nexport const a = 1 + b\n",
    'b.ts': "import { a } from './cycle.ts'\nexport const b = 2\nexport const c = () => a\n",
    'meta.ts': 'export const here: string = import.meta.url\n',
    'dynamic.ts': "export const later = () => import('./b.ts')\n",
    'plain.js': 'export const x = 1\n',
  })
  try {
    for (const name of ['cycle.ts', 'meta.ts', 'dynamic.ts', 'plain.js'])
      assert.equal(jsWorkerUrl(url(name), STRIP).href, url(name).href, name)
    const missing = url('missing.ts')
    assert.equal(
      jsWorkerUrl(missing, STRIP).href,
      missing.href,
      'a file that is not there: Node reports it when the worker starts',
    )
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test("jsWorkerUrl: the project's worker threads convert, and without Node's experimental-feature warning", () => {
  const script = [
    "import { jsWorkerUrl } from './src/core/js-worker.ts'",
    "for (const f of ['src/chain/poh/generator.worker.ts', 'src/chain/poh/verifier.worker.ts', 'src/identity/verify-pool.worker.ts'])",
    "  process.stdout.write(jsWorkerUrl(new URL(f, import.meta.url)).protocol + '\\n')",
  ].join('\n')
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    cwd: join(import.meta.dirname, '../..'),
  })
  assert.equal(run.status, 0, run.stderr)
  assert.deepEqual(
    run.stdout.trim().split('\n'),
    ['data:', 'data:', 'data:'],
    'each PoH and signature thread runs as JavaScript',
  )
  assert.equal(run.stderr, '', 'nothing on stderr')
})

test('jsWorkerUrl with a compile cache: the first start strips and fills the cache; from the second on neither the main thread nor the worker loads the stripper', async () => {
  const { dir, url } = await fixture({
    'entry.ts': [
      "import { parentPort } from 'node:worker_threads'",
      "import { area, type Unit } from './area.ts'",
      'const unit: Unit = "cm"',
      "const stripper = process.moduleLoadList.some((m: string) => m.includes('amaro'))",
      "parentPort!.once('message', () => parentPort!.postMessage({ answer: `${area(2, 3)} ${unit}`, stripper }))",
    ].join('\n'),
    'area.ts': "export type Unit = 'cm' | 'm'\nexport const area = (w: number, h: number): number => w * h\n",
  })
  const start = [
    "import module from 'node:module'",
    "import { Worker } from 'node:worker_threads'",
    `module.enableCompileCache(${JSON.stringify(join(dir, 'cache'))})`,
    `const { jsWorkerUrl } = await import(${JSON.stringify(new URL('./js-worker.ts', import.meta.url).href)})`,
    `const url = jsWorkerUrl(new URL(${JSON.stringify(url('entry.ts').href)}))`,
    'const worker = new Worker(url)',
    "worker.postMessage('ask')",
    "const answer = await new Promise((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject) })",
    "const stripper = process.moduleLoadList.some((m) => m.includes('amaro'))",
    // killed, as a node may be: nothing is written at exit
    'const out = JSON.stringify({ protocol: url.protocol, main: stripper, worker: answer })',
    "process.stdout.write(out, () => process.kill(process.pid, 'SIGKILL'))",
  ].join('\n')
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.NODE_COMPILE_CACHE // the test runner's cache: this test keeps its own
  const run = (): { protocol: string; main: boolean; worker: { answer: string; stripper: boolean } } => {
    const out = spawnSync(process.execPath, ['--input-type=module', '-e', start], { encoding: 'utf8', env })
    assert.equal(out.signal, 'SIGKILL', out.stderr)
    return JSON.parse(out.stdout) as ReturnType<typeof run>
  }
  try {
    const first = run()
    assert.deepEqual(first, { protocol: 'data:', main: true, worker: { answer: '6 cm', stripper: true } })
    for (const later of [run(), run()])
      assert.deepEqual(
        later,
        { protocol: 'data:', main: false, worker: { answer: '6 cm', stripper: false } },
        'every module came from the cache',
      )
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
