/**
 * The long run's fuzzing thread: visits the targets round-robin, a slice of time each, and reports
 * to the runner (run.ts). Before each input it copies the input into shared memory and bumps a
 * counter, so the runner's watchdog can name the input of a hang or an out-of-memory death.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { createRng } from '../helpers/random.ts'
import { CORPUS_DIR, REGRESSIONS_DIR, readInputs } from './corpus.ts'
import { fuzzLoop, newState, type TargetState } from './harness.ts'
import { targetNamed } from './targets/index.ts'

export interface WorkerInit {
  targets: string[]
  /** performance.timeOrigin-based wall time (Date.now()) at which to stop. */
  endAt: number
  sliceMs: number
  seed: number
  /** The target to start with (after a restart, the one after the target that hung or died). */
  startIndex: number
  /** [0]: inputs started, [1]: target index, [2]: input length; then the input bytes. */
  shared: SharedArrayBuffer
}

export type WorkerMessage =
  | { type: 'slice'; target: string; inputs: number; ms: number; signatures: number; corpus: number }
  | { type: 'finding'; target: string; kind: 'crash' | 'hang'; message: string; input: Uint8Array }
  | { type: 'interesting'; target: string; inputs: Uint8Array[] }
  | { type: 'done' }

const init = workerData as WorkerInit
const header = new Int32Array(init.shared, 0, 3)
const body = new Uint8Array(init.shared, 12)
const post = (m: WorkerMessage): void => parentPort?.postMessage(m)
const rng = createRng(init.seed)
const states = new Map<string, TargetState>()

async function main(): Promise<void> {
  for (let round = 0; Date.now() < init.endAt; round++) {
    for (const [index, name] of init.targets.entries()) {
      if (Date.now() >= init.endAt) break
      if (round === 0 && index < init.startIndex) continue
      const target = targetNamed(name)
      await target.open?.()
      let state = states.get(name)
      if (state === undefined) {
        const seeds = [...readInputs(CORPUS_DIR, name), ...readInputs(REGRESSIONS_DIR, name)].map((x) => x.input)
        state = newState(seeds.length > 0 ? seeds : await target.seeds())
        states.set(name, state)
      }
      const started = performance.now()
      const sliceEnd = started + Math.min(init.sliceMs, init.endAt - Date.now())
      const stats = await fuzzLoop(target, state, {
        until: sliceEnd,
        rng,
        beforeInput(input) {
          const n = Math.min(input.length, body.length)
          body.set(input.subarray(0, n))
          Atomics.store(header, 2, n)
          Atomics.store(header, 1, index)
          Atomics.add(header, 0, 1)
        },
      })
      for (const f of stats.findings) post({ type: 'finding', ...f })
      post({
        type: 'slice',
        target: name,
        inputs: stats.inputs,
        ms: performance.now() - started,
        signatures: stats.signatures,
        corpus: stats.corpus,
      })
    }
  }
  for (const [name, state] of states) {
    // the smallest inputs that found outcomes the seeds did not, for the runner to keep
    const fresh = state.corpus.slice(1).filter((x) => x.length <= 4096)
    fresh.sort((a, b) => a.length - b.length)
    post({ type: 'interesting', target: name, inputs: fresh.slice(0, 64) })
    await targetNamed(name).close?.()
  }
  post({ type: 'done' })
}

await main()
