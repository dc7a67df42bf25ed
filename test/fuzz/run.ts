/**
 * The long fuzz run: `npm run fuzz -- --minutes M [--target T[,T…]] [--seed S] [--grow-corpus K]`.
 * Reproduce a saved input: `npm run fuzz -- --target T --replay FILE`.
 *
 * One fuzzing thread (worker.ts) visits the targets round-robin; this thread is its watchdog. A
 * hang (no new input for HANG_MS: a synchronous loop that never returns) or a death (out of
 * memory: the thread's heap is capped) is charged to the input the thread was on, saved, and the
 * thread restarts. Every finding is saved under test/fuzz/crashes/ with a .txt beside it holding
 * the message and the command that reproduces it. Prints one progress line per slice and, at the
 * end, one JSON line: { inputs, perTarget, crashes, hangs, … }.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { parseArgs } from 'node:util'
import { Worker } from 'node:worker_threads'
import { CORPUS_DIR, CRASHES_DIR, FUZZ_DIR, fileNameOf, writeInput } from './corpus.ts'
import { runOne, OracleViolation } from './harness.ts'
import type { WorkerInit, WorkerMessage } from './worker.ts'

const HANG_MS = 60_000
const SHARED_INPUT_BYTES = 1 << 20
const HEAP_MB = 1_536

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '1' },
    target: { type: 'string' },
    seed: { type: 'string' },
    slice: { type: 'string', default: '20' },
    replay: { type: 'string' },
    'grow-corpus': { type: 'string', default: '0' },
  },
})

const REPO = join(FUZZ_DIR, '..', '..')
const { targets } = await import('./targets/index.ts')
const names = values.target === undefined ? targets.map((t) => t.name) : values.target.split(',')
for (const n of names)
  if (!targets.some((t) => t.name === n))
    throw new Error(`no fuzz target ${n}; the targets are ${targets.map((t) => t.name).join(', ')}`)

// The CLI target writes relative paths it is given (--out x): keep them out of the checkout.
const scratch = mkdtempSync(join(tmpdir(), 'donghae-fuzz-'))
process.chdir(scratch)

if (values.replay !== undefined) {
  const target = targets.find((t) => t.name === names[0]) as (typeof targets)[number]
  await target.open?.()
  const file = values.replay.startsWith('/') ? values.replay : join(REPO, values.replay)
  try {
    const signature = await runOne(target, new Uint8Array(readFileSync(file)))
    process.stdout.write(`${target.name} ${file}: ok (${signature})\n`)
  } catch (err) {
    process.stdout.write(
      `${target.name} ${file}: ${err instanceof OracleViolation ? `${err.kind}: ${err.message}` : String(err)}\n`,
    )
    if (err instanceof OracleViolation && err.cause instanceof Error) process.stdout.write(`${err.cause.stack ?? ''}\n`)
    process.exitCode = 1
  }
  await target.close?.()
  rmSync(scratch, { recursive: true, force: true })
  process.exit()
}

const minutes = Number(values.minutes)
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 32) : Number(values.seed)
const endAt = Date.now() + minutes * 60_000
const perTarget: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]))
const findings: Array<{ target: string; kind: string; message: string; file: string }> = []
const startedAt = Date.now()
const stamp = (): string => {
  const s = Math.floor((Date.now() - startedAt) / 1000)
  return `${String(Math.floor(s / 60)).padStart(3, '0')}:${String(s % 60).padStart(2, '0')}`
}
process.stdout.write(`fuzz: ${names.length} targets, ${minutes} min, seed ${seed}\n`)

function save(target: string, kind: string, message: string, input: Uint8Array): void {
  const file = writeInput(CRASHES_DIR, target, input)
  const repro = `npm run fuzz -- --target ${target} --replay ${relative(REPO, file)}`
  writeFileSync(file.replace(/\.bin$/, '.txt'), `${kind}: ${message}\nreproduce: ${repro}\n`)
  findings.push({ target, kind, message, file: relative(REPO, file) })
  process.stdout.write(
    `${stamp()} ${kind.toUpperCase()} in ${target}: ${message.slice(0, 300)}\n  saved ${relative(REPO, file)}; reproduce: ${repro}\n`,
  )
}

const keep: Record<string, Uint8Array[]> = {}

/** Runs the fuzzing thread until `endAt`; restarts it after a hang or a death. */
async function runThread(): Promise<void> {
  let startIndex = 0
  while (Date.now() < endAt - 1_000) {
    const shared = new SharedArrayBuffer(12 + SHARED_INPUT_BYTES)
    const header = new Int32Array(shared, 0, 3)
    const init: WorkerInit = {
      targets: names,
      endAt,
      sliceMs: Number(values.slice) * 1000,
      seed: seed + findings.length,
      startIndex,
      shared,
    }
    const worker = new Worker(new URL('./worker.ts', import.meta.url), {
      workerData: init,
      resourceLimits: { maxOldGenerationSizeMb: HEAP_MB },
    })
    const current = (): { target: string; input: Uint8Array } => ({
      target: names[Atomics.load(header, 1)] ?? 'unknown',
      input: new Uint8Array(shared, 12, Atomics.load(header, 2)).slice(),
    })
    const outcome = await new Promise<'done' | 'restart'>((resolve) => {
      let last = -1
      let lastChange = Date.now()
      const watchdog = setInterval(() => {
        const n = Atomics.load(header, 0)
        if (n !== last) {
          last = n
          lastChange = Date.now()
        } else if (Date.now() - lastChange > HANG_MS) {
          clearInterval(watchdog)
          const { target, input } = current()
          save(target, 'hang', `no input finished for ${HANG_MS / 1000} s`, input)
          void worker.terminate().then(() => resolve('restart'))
        }
      }, 1_000)
      worker.on('message', (m: WorkerMessage) => {
        if (m.type === 'slice') {
          perTarget[m.target] = (perTarget[m.target] ?? 0) + m.inputs
          const rate = Math.round(m.inputs / (m.ms / 1000))
          process.stdout.write(
            `${stamp()} ${m.target.padEnd(16)} +${m.inputs} inputs (${rate}/s) total ${perTarget[m.target]}, ${m.signatures} outcomes, corpus ${m.corpus}\n`,
          )
        } else if (m.type === 'finding') save(m.target, m.kind, m.message, m.input)
        else if (m.type === 'interesting') keep[m.target] = m.inputs
        else {
          clearInterval(watchdog)
          resolve('done')
        }
      })
      worker.on('error', (err) => {
        clearInterval(watchdog)
        const { target, input } = current()
        save(target, 'crash', `the fuzzing thread died: ${err.name}: ${err.message.split('\n')[0] ?? ''}`, input)
        resolve('restart')
      })
      worker.on('exit', () => {
        clearInterval(watchdog)
        resolve('restart')
      })
    })
    if (outcome === 'done') return
    startIndex = (Atomics.load(header, 1) + 1) % names.length
  }
}

mkdirSync(CRASHES_DIR, { recursive: true })
await runThread()
const grow = Number(values['grow-corpus'])
let grown = 0
if (grow > 0)
  for (const [target, inputs] of Object.entries(keep))
    for (const input of inputs.slice(0, grow)) {
      writeInput(CORPUS_DIR, target, input)
      grown++
    }
rmSync(scratch, { recursive: true, force: true })
const inputs = Object.values(perTarget).reduce((a, n) => a + n, 0)
const summary = {
  inputs,
  perTarget,
  crashes: findings.filter((f) => f.kind === 'crash').length,
  hangs: findings.filter((f) => f.kind === 'hang').length,
  findings,
  minutes,
  seed,
  corpusAdded: grown,
  names: fileNameOf.name === '' ? [] : undefined,
}
delete summary.names
process.stdout.write(`${JSON.stringify(summary)}\n`)
process.exit(findings.length === 0 ? 0 : 1)
