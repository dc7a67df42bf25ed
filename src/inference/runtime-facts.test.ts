// What a node knows about ONNX Runtime without loading it (runtime-facts.ts): the node process
// chooses the provider and names the runtime, and only model processes load the binding.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { ONNXRUNTIME_VERSION, RUNTIME_NAME, chooseExecutionProvider } from './runtime-facts.ts'

const SRC = fileURLToPath(new URL('..', import.meta.url))

/** Runs `code` (an ES module) in a fresh Node process; what it wrote to stdout, as JSON. */
function inFreshProcess(code: string): unknown {
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60_000 })
  assert.equal(run.status, 0, run.stderr)
  return JSON.parse(run.stdout)
}

const BINDING = /onnxruntime/i

test("the node's side of the runner names the runtime and chooses a provider without loading ONNX Runtime", () => {
  const loaded = inFreshProcess(`
    const { SandboxedRunner } = await import(${JSON.stringify(`${SRC}inference/runner/sandbox.ts`)})
    await import(${JSON.stringify(`${SRC}node/full-node.ts`)})
    await import(${JSON.stringify(`${SRC}cli/local-network.ts`)})
    const runner = new SandboxedRunner({})
    process.stdout.write(JSON.stringify({ ep: runner.ep, runtime: runner.runtime, shared: process.report.getReport().sharedObjects }))
  `) as { ep: string; runtime: string; shared: string[] }
  assert.equal(loaded.runtime, RUNTIME_NAME)
  assert.equal(loaded.ep, chooseExecutionProvider({ platform: process.platform }))
  const binding = loaded.shared.filter((file) => BINDING.test(file))
  assert.deepEqual(binding, [], 'no ONNX Runtime library in the node process')
  // the check can see it: the runtime itself loads the binding
  const withRuntime = inFreshProcess(`
    await import(${JSON.stringify(`${SRC}inference/runtime.ts`)})
    process.stdout.write(JSON.stringify(process.report.getReport().sharedObjects))
  `) as string[]
  assert.ok(
    withRuntime.some((file) => BINDING.test(file)),
    'runtime.ts loads the binding (so the check above can fail)',
  )
})

test("the runtime's name carries the version the binding reports", () => {
  const reported = inFreshProcess(`
    const ort = await import('onnxruntime-node')
    process.stdout.write(JSON.stringify(ort.env.versions.node ?? ort.env.versions.common))
  `)
  assert.equal(ONNXRUNTIME_VERSION, reported)
  assert.equal(RUNTIME_NAME, `onnxruntime-node/${reported as string} ${process.platform}-${process.arch}`)
})

test('without a CUDA provider library on disk, auto is the CPU (Linux, Windows) and the binding is not asked', () => {
  const backends = inFreshProcess(`
    const { chooseExecutionProvider } = await import(${JSON.stringify(`${SRC}inference/runtime-facts.ts`)})
    const ep = chooseExecutionProvider({ platform: 'linux', cudaLibraryPresent: false })
    const shared = process.report.getReport().sharedObjects
    process.stdout.write(JSON.stringify({ ep, binding: shared.filter((f) => /onnxruntime/i.test(f)) }))
  `)
  assert.deepEqual(backends, { ep: 'cpu', binding: [] })
  // with the library present, the binding is asked, and its answer decides
  assert.equal(
    chooseExecutionProvider({
      platform: 'linux',
      cudaLibraryPresent: true,
      backends: [{ name: 'cpu', bundled: true }],
    }),
    'cpu',
  )
  assert.equal(
    chooseExecutionProvider({
      platform: 'linux',
      cudaLibraryPresent: true,
      backends: [{ name: 'cuda', bundled: false }],
    }),
    'cuda',
  )
})
