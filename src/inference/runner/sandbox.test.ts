// The sandboxed runner against real child processes and the real ONNX Runtime: same answers as
// in-process ONNX Runtime, one empty directory and a minimal environment per model process,
// typed errors for bad input, eviction, unload and close. The attacks are in test/attacks/.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { access, mkdtemp, readFile, readdir, readlink, rm } from 'node:fs/promises'
import { spawn } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { join } from 'node:path'
import module from 'node:module'
import { tmpdir } from 'node:os'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { DEMO_MODELS_DIR, modelCid } from '../demo-models.ts'
import { ModelLimitError, UnsafeModelError } from '../errors.ts'
import { ModelCidMismatchError, ModelNotLoadedError, RuntimeClosedError } from '../runtime.ts'
import { TensorSchemaError, createTensor } from '../tensor.ts'
import { SandboxedRunner } from './sandbox.ts'
import type { ModelBytes } from '../components.ts'
import { childCommand, sandboxEnv } from './process.ts'
import { SANDBOX_ENV_KEYS } from './constants.ts'
import { digitsModel, type GoodModel } from '../../../test/helpers/sandbox.ts'
import { encodeModel, expandModel, externalTensor, identityGraph } from '../../../test/helpers/onnx-models.ts'

const linux = process.platform === 'linux'
let root: string
let digits: GoodModel
let runner: SandboxedRunner

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'donghae-sandbox-test-'))
  digits = await digitsModel()
  runner = new SandboxedRunner({ executionProvider: 'cpu', sandboxRoot: root })
  await runner.load(digits.cid, digits.bytes)
})

after(async () => {
  await runner.close()
  await rm(root, { recursive: true, force: true })
})

test('runs digits-mlp in a child process with the same answer, bit for bit, as in-process ONNX Runtime', async () => {
  assert.ok(runner.has(digits.cid))
  assert.equal(runner.model(digits.cid)?.ep, 'cpu')
  const [view] = runner.processes()
  assert.ok(view !== undefined && view.pid !== undefined && view.pid !== process.pid)
  const result = await runner.run(digits.cid, digits.inputs)
  assert.deepEqual(result.outputs, digits.expected)
  assert.equal(result.ep, 'cpu')
  assert.ok(result.computeMicros > 0)
  const rows = { input: createTensor('float32', [3, 64], new Float32Array(192).fill(2)) }
  assert.deepEqual((await runner.run(digits.cid, rows)).outputs.probabilities?.dims, [3, 10])
})

test(
  'each model process works in its own empty directory under the sandbox root, with a minimal environment',
  // Justified: the child's directory and environment are read from /proc, which only Linux has;
  // on Linux (CI included) the test always runs.
  { skip: !linux && 'reads /proc' },
  async () => {
    const pid = runner.processes()[0]?.pid as number
    const cwd = await readlink(`/proc/${pid}/cwd`)
    assert.ok(cwd.startsWith(join(root, 'donghae-model-')), cwd)
    assert.deepEqual(await readdir(cwd), [])
    const environ = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0').filter((e) => e !== '')
    const keys = environ.map((e) => e.slice(0, e.indexOf('=')))
    // PWD: set by the shell that applies the address-space rlimit before exec
    const allowed = [...SANDBOX_ENV_KEYS, 'TMPDIR', 'TMP', 'TEMP', 'ORT_DISABLE_TELEMETRY', 'PWD', 'NODE_COMPILE_CACHE']
    for (const key of keys) assert.ok(allowed.includes(key), `unexpected ${key}`)
    assert.ok(!keys.includes('HOME'))
    const cache = module.getCompileCacheDir()
    if (cache !== undefined) assert.ok(environ.includes(`NODE_COMPILE_CACHE=${cache}`), "the node's compile cache")
  },
)

test("sandboxEnv keeps only the library paths and the node's compile cache, and points temp directories into the sandbox", () => {
  const parent = { HOME: '/home/op', DONGHAE_PASSWORD: 'hunter2', PATH: '/usr/bin', LD_LIBRARY_PATH: '/cuda' }
  const box = { TMPDIR: '/tmp/box', TMP: '/tmp/box', TEMP: '/tmp/box', ORT_DISABLE_TELEMETRY: '1' }
  assert.deepEqual(sandboxEnv(parent, '/tmp/box', false), { PATH: '/usr/bin', LD_LIBRARY_PATH: '/cuda', ...box })
  assert.deepEqual(sandboxEnv(parent, '/tmp/box', '/var/cache/node'), {
    PATH: '/usr/bin',
    LD_LIBRARY_PATH: '/cuda',
    NODE_COMPILE_CACHE: '/var/cache/node',
    ...box,
  })
})

test('the child starts under ulimit -v on Linux only, and not when the bound is 0', () => {
  const config = { ep: 'cpu' as const, intraOpThreads: 1, maxFrameBytes: 1, maxOutputBytes: 1 }
  const limited = childCommand(config, 2 ** 33, 'linux')
  assert.equal(limited.file, '/bin/sh')
  assert.ok(limited.args.includes(String(2 ** 23)))
  assert.equal(childCommand(config, 0, 'linux').file, process.execPath)
  assert.equal(childCommand(config, 2 ** 33, 'darwin').file, process.execPath)
})

test('inputs that do not match the schema are refused before anything is sent', async () => {
  const wrong = { input: createTensor('float32', [1, 63], new Float32Array(63)) }
  await assert.rejects(runner.run(digits.cid, wrong), TensorSchemaError)
  await assert.rejects(runner.run('bafkreih-not-loaded', digits.inputs), ModelNotLoadedError)
})

test('bytes that do not hash to the CID, and a file with external data, load nothing and leave no process', async () => {
  const chars = new Uint8Array(await readFile(join(DEMO_MODELS_DIR, 'chars-mlp.onnx')))
  const before = runner.processes().length
  await assert.rejects(runner.load(digits.cid.replace(/.$/, 'a'), chars), ModelCidMismatchError)
  const unsafe = encodeModel({ graph: identityGraph({ initializer: [externalTensor('w', 'keystore.json', 4)] }) })
  const err = await runner.load(modelCid(unsafe), unsafe).catch((e: unknown) => e)
  assert.ok(err instanceof UnsafeModelError)
  assert.equal(err.path, 'graph.initializer[0] "w"')
  assert.equal(runner.has(modelCid(unsafe)), false)
  assert.equal(runner.processes().length, before)
})

test('calibration runs in the model process', async () => {
  const calibration = await runner.calibrate(digits.cid, digits.inputs, { durationMs: 50 })
  assert.ok(calibration.runs >= 3 && calibration.jobsPerSecond > 0 && calibration.batch === 1)
})

test('inspect reads a schema in a one-off process and refuses external data there too', async () => {
  const chars = new Uint8Array(await readFile(join(DEMO_MODELS_DIR, 'chars-mlp.onnx')))
  const schema = await runner.inspect(chars)
  assert.ok(schema.inputs.length === 1 && schema.outputs.length === 1)
  const unsafe = encodeModel({ graph: identityGraph({ initializer: [externalTensor('w', 'password', 4)] }) })
  await assert.rejects(runner.inspect(unsafe), UnsafeModelError)
})

test('an output over the bound is refused by the child, which lives on', async () => {
  const small = new SandboxedRunner({ executionProvider: 'cpu', sandboxRoot: root, limits: { maxOutputBytes: 1024 } })
  try {
    const big = expandModel(1024) // 4 KiB of output
    await small.load(modelCid(big), big)
    const pid = small.processes()[0]?.pid
    const err = await small
      .run(modelCid(big), { x: createTensor('float32', [1], Float32Array.of(1)) })
      .catch((e: unknown) => e)
    assert.ok(err instanceof ModelLimitError && err.limit === 'output-size', String(err))
    assert.equal(err.status, 502)
    assert.deepEqual(
      small.processes().map((p) => [p.pid, p.restarts]),
      [[pid, 0]],
    )
  } finally {
    await small.close()
  }
})

test('the memory poll runs while a process can grow (loading, or a request) and stops when every model waits for work', async () => {
  const polled = new SandboxedRunner({ executionProvider: 'cpu', sandboxRoot: root, limits: { memoryPollMs: 20 } })
  const stopped = async (what: string): Promise<void> => {
    for (const end = Date.now() + 5_000; polled.polling; await sleep(10))
      assert.ok(Date.now() < end, `the poll did not stop ${what}`)
  }
  try {
    await polled.load(digits.cid, digits.bytes)
    await stopped('after the load')
    assert.deepEqual((await polled.run(digits.cid, digits.inputs)).outputs, digits.expected)
    assert.equal(polled.polling, true, 'a request starts the poll')
    await stopped('after the request')
    assert.equal(polled.processes().length, 1, 'the model process lives on, idle')
  } finally {
    await polled.close()
  }
})

/**
 * Loads a copy of the model's bytes; the returned flag turns true once the copy is collected.
 * In a function of its own: a suspended async function keeps the temporaries of its calls.
 */
async function loadCopy(
  target: SandboxedRunner,
  model: GoodModel,
  reload: () => Promise<ModelBytes | undefined>,
): Promise<{ collected: boolean }> {
  const flag = { collected: false }
  const bytes = Uint8Array.from(model.bytes)
  collectedCopies.register(bytes, flag)
  await target.load(model.cid, bytes, { reload })
  return flag
}
const collectedCopies = new FinalizationRegistry<{ collected: boolean }>((flag) => {
  flag.collected = true
})

test('with reload, the runner keeps no copy of the bytes and reads them again to replace a dead process; without the blobs the model is dropped', async () => {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const own = new SandboxedRunner({ executionProvider: 'cpu', sandboxRoot: root })
  try {
    let reloads = 0
    let stored = true
    const reload = async (): Promise<ModelBytes | undefined> => {
      reloads++
      return stored ? { bytes: Uint8Array.from(digits.bytes) } : undefined
    }
    const copy = await loadCopy(own, digits, reload)
    for (let i = 0; i < 50 && !copy.collected; i++) {
      gc()
      await sleep(20)
    }
    assert.ok(copy.collected, 'the runner still holds the bytes it was given')

    const first = own.processes()[0]?.pid as number
    process.kill(first, 'SIGKILL')
    for (let i = 0; i < 200 && own.processes()[0]?.restarts !== 1; i++) await sleep(25)
    assert.equal(reloads, 1)
    assert.deepEqual((await own.run(digits.cid, digits.inputs)).outputs, digits.expected)
    assert.notEqual(own.processes()[0]?.pid, first)

    stored = false
    process.kill(own.processes()[0]?.pid as number, 'SIGKILL')
    for (let i = 0; i < 200 && own.has(digits.cid); i++) await sleep(25)
    assert.equal(reloads, 2)
    assert.equal(own.has(digits.cid), false)
    await assert.rejects(own.run(digits.cid, digits.inputs), ModelNotLoadedError)
  } finally {
    await own.close()
  }
})

test('beyond maxSessions the least recently used model process is closed; unload and close end them', async () => {
  const one = new SandboxedRunner({ executionProvider: 'cpu', sandboxRoot: root, maxSessions: 1 })
  const chars = new Uint8Array(await readFile(join(DEMO_MODELS_DIR, 'chars-mlp.onnx')))
  await one.load(digits.cid, digits.bytes)
  await one.load(modelCid(chars), chars)
  assert.equal(one.has(digits.cid), false)
  assert.equal(one.has(modelCid(chars)), true)
  await one.unload(modelCid(chars))
  assert.equal(one.has(modelCid(chars)), false)
  await one.close()
  await assert.rejects(one.load(digits.cid, digits.bytes), RuntimeClosedError)
  const left = (await readdir(root)).filter((n) => n.startsWith('donghae-model-'))
  assert.equal(left.length, 1, `only the shared runner's directory remains: ${left.join(', ')}`)
})

test('a node that dies without closing its runner leaves no process and no directory behind', async () => {
  const script = [
    `import { SandboxedRunner } from ${JSON.stringify(new URL('./sandbox.ts', import.meta.url).href)}`,
    `import { readFile } from 'node:fs/promises'`,
    `const bytes = new Uint8Array(await readFile(${JSON.stringify(join(DEMO_MODELS_DIR, 'digits-mlp.onnx'))}))`,
    `const runner = new SandboxedRunner({ executionProvider: 'cpu', sandboxRoot: ${JSON.stringify(root)} })`,
    `await runner.load(${JSON.stringify(digits.cid)}, bytes)`,
    `process.stdout.write(JSON.stringify(runner.processes()[0]) + '\\n')`,
    `setInterval(() => {}, 1000)`,
  ].join('\n')
  const node = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  const line = await new Promise<string>((resolve) => node.stdout.once('data', (d: Buffer) => resolve(d.toString())))
  const { pid } = JSON.parse(line) as { pid: number }
  const dir = linux ? await readlink(`/proc/${pid}/cwd`) : undefined
  node.kill('SIGKILL')
  const gone = async (): Promise<boolean> => {
    try {
      process.kill(pid, 0)
      return false
    } catch {
      return (
        dir === undefined ||
        (await access(dir).then(
          () => false,
          () => true,
        ))
      )
    }
  }
  for (let i = 0; i < 100 && !(await gone()); i++) await sleep(50)
  assert.ok(await gone(), `the model process ${pid} or its directory ${String(dir)} outlived the node`)
})
