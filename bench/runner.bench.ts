/**
 * What the sandbox costs a job (issue 9): `digits-mlp`, batch 1, on the same digits rows, through
 *  - `OnnxRuntime.run` in this process (today's runner, the baseline), and
 *  - `SandboxedRunner.run`: frames over a pipe to the model's own child process and back,
 * measured in the same run, in alternating blocks so both see the same load. One line,
 * `infer-runner-sandbox`: the p50 difference in µs (the sandbox's cost per job) against the
 * 150 µs budget, with p50 and p99 of both.
 *
 *   node bench/run.ts --only runner
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { availableParallelism, loadavg } from 'node:os'
import { performance } from 'node:perf_hooks'
import { DEMO_MODELS_DIR, modelCid, readDigitsDataset } from '../src/inference/demo-models.ts'
import { OnnxRuntime } from '../src/inference/runtime.ts'
import { SandboxedRunner } from '../src/inference/runner/sandbox.ts'
import { createTensor, type TensorMap } from '../src/inference/tensor.ts'
import { line, type BenchLine } from './harness.ts'

export const RUNNER_BENCH_NAMES = ['infer-runner-sandbox']
const MODEL = 'digits-mlp'
const BUDGET_US = 150
/** Jobs per block; blocks alternate between the runners. */
const BLOCK = 100

interface Runner {
  run(cid: string, inputs: TensorMap): Promise<unknown>
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0
}

const spread = (us: number[]): { p50: number; p99: number; samples: number } => {
  const sorted = [...us].sort((a, b) => a - b)
  return { p50: Math.round(percentile(sorted, 50)), p99: Math.round(percentile(sorted, 99)), samples: us.length }
}

async function block(runner: Runner, cid: string, rows: TensorMap[], from: number, out: number[]): Promise<void> {
  for (let i = 0; i < BLOCK; i++) {
    const inputs = rows[(from + i) % rows.length] as TensorMap
    const start = performance.now()
    await runner.run(cid, inputs)
    out.push((performance.now() - start) * 1000)
  }
}

export async function runnerBenches(quick = false): Promise<BenchLine[]> {
  const bytes = new Uint8Array(await readFile(join(DEMO_MODELS_DIR, `${MODEL}.onnx`)))
  const cid = modelCid(bytes)
  const { features } = await readDigitsDataset()
  const rows = Array.from({ length: 256 }, (_, r) => ({
    input: createTensor('float32', [1, 64], features.slice(r * 64, r * 64 + 64)),
  }))
  const inProcess = new OnnxRuntime({ executionProvider: 'cpu' })
  const sandboxed = new SandboxedRunner({ executionProvider: 'cpu' })
  try {
    await inProcess.load(cid, bytes)
    await sandboxed.load(cid, bytes)
    const blocks = quick ? 2 : 20
    const warm: number[] = []
    await block(inProcess, cid, rows, 0, warm)
    await block(sandboxed, cid, rows, 0, warm)
    const direct: number[] = []
    const sandbox: number[] = []
    for (let b = 0; b < blocks; b++) {
      await block(inProcess, cid, rows, b * BLOCK, direct)
      await block(sandboxed, cid, rows, b * BLOCK, sandbox)
    }
    const d = spread(direct)
    const s = spread(sandbox)
    const cost = s.p50 - d.p50
    return [
      {
        ...line({
          bench: 'infer-runner-sandbox',
          impl: `SandboxedRunner.run (child process per model, binary frames over a pipe) − OnnxRuntime.run in process, ${MODEL} batch 1, per-job wall time p50`,
          value: Math.max(cost, 1),
          unit: 'µs',
          baseline: { impl: 'OnnxRuntime.run in the bench process, p50', value: d.p50 },
          target: { value: BUDGET_US, met: cost <= BUDGET_US, note: 'the sandbox may cost at most 150 µs p50 per job' },
          rounds: [cost],
        }),
        sandbox: s,
        inProcess: d,
        p99CostUs: s.p99 - d.p99,
        load1: Number(loadavg()[0]?.toFixed(2)),
        cpus: availableParallelism(),
      } as BenchLine,
    ]
  } finally {
    await sandboxed.close()
    await inProcess.close()
  }
}
