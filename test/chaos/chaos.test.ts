// The chaos runner end to end, through the real CLI (`donghae chaos`), on a devnet of four real
// node processes:
//  (a) a short run with every fault this machine can do passes with no violation, and applies
//      each enabled kind at least once (kinds that need root are reported unavailable, never
//      skipped silently);
//  (b) the runner can fail: the same runner, run from a copy of the checkout patched to sign two
//      different prevotes per round (test/chaos/broken-build.ts), reports double-sign violations,
//      exits 1, prints its seed and the smallest failing schedule, and leaves the logs.
// The seed is printed; DONGHAE_TEST_SEED replays it. Both runs are niced and use ports 40000–45000.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BIN } from '../helpers/cli.ts'
import { createRng, testSeed } from '../helpers/random.ts'
import { brokenBuild, DOUBLE_PREVOTE } from './broken-build.ts'

interface ChaosJson {
  seed: number
  nodes: number
  minutes: number
  faults: string[]
  faultsApplied: Record<string, number>
  faultsFailed: Record<string, number>
  errors: string[]
  violations: Record<string, number>
  ok: boolean
  logs: string
  load: { committed: number; receipts: number }
  shrunk?: unknown[]
  details: Array<{ invariant: string; detail: string }>
}

interface Run {
  code: number | null
  stdout: string
  stderr: string
  json: ChaosJson
}

/** `donghae chaos …` under nice, as a user runs it; the last stdout line parsed. */
function chaos(bin: string, args: readonly string[], timeoutMs: number): Promise<Run> {
  const child = spawn('nice', ['-n', '10', process.execPath, bin, 'chaos', ...args, '--json'], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c))
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
  const timer = setTimeout(() => child.kill('SIGINT'), timeoutMs)
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      const last = stdout.trim().split('\n').at(-1) ?? ''
      try {
        resolve({ code, stdout, stderr, json: JSON.parse(last) as ChaosJson })
      } catch {
        reject(new Error(`no JSON line (exit ${code}); stderr:\n${stderr.slice(-4_000)}`))
      }
    })
  })
}

const ROOT_ONLY = ['partition', 'loss', 'disk-full']

test('chaos (a): a short run with every available fault passes with no violation', async (t) => {
  const seed = testSeed() % 2 ** 31
  t.diagnostic(`seed ${seed} (DONGHAE_TEST_SEED=${seed} replays it)`)
  const base = 40_000 + createRng(seed).int(0, 40) * 50
  const dir = await mkdtemp(join(tmpdir(), 'donghae-chaos-a-'))
  try {
    const run = await chaos(
      BIN,
      [
        '--nodes',
        '4',
        '--minutes',
        '0.75',
        '--warmup',
        '5',
        '--seed',
        String(seed),
        '--base-port',
        String(base),
        '--dir',
        dir,
      ],
      200_000,
    )
    t.diagnostic(
      run.stderr
        .split('\n')
        .filter((l) => !l.startsWith('  #'))
        .slice(-12)
        .join('\n'),
    )
    const { json } = run
    assert.equal(json.seed, seed)
    assert.equal(json.nodes, 4)
    const rootKinds = ROOT_ONLY.filter((k) => !json.faults.includes(k))
    for (const kind of rootKinds)
      assert.match(run.stderr, new RegExp(`fault ${kind} unavailable here, skipped: `), `${kind} skipped loudly`)
    if (process.getuid?.() === 0) assert.deepEqual(rootKinds, [], 'as root every fault runs')
    for (const kind of json.faults) assert.ok((json.faultsApplied[kind] ?? 0) > 0, `${kind} applied at least once`)
    assert.deepEqual(json.faultsFailed, {}, `every fault applied: ${JSON.stringify(json.errors)}`)
    assert.deepEqual(json.errors, [])
    assert.deepEqual(
      Object.entries(json.violations).filter(([, n]) => n > 0),
      [],
      `no violations: ${JSON.stringify(json.details)}`,
    )
    assert.ok(json.load.committed > 0, 'clients saw transfers committed')
    assert.ok(json.load.receipts > 0, 'clients got receipts')
    assert.equal(run.code, 0)
    assert.equal(json.ok, true)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('chaos (b): a build whose validators sign two prevotes per round is caught, shrunk and reported', async (t) => {
  const seed = (testSeed() + 1) % 2 ** 31
  t.diagnostic(`seed ${seed}`)
  const base = 42_500 + createRng(seed).int(0, 40) * 50
  const copy = await brokenBuild(DOUBLE_PREVOTE)
  const dir = await mkdtemp(join(tmpdir(), 'donghae-chaos-b-'))
  try {
    const run = await chaos(
      join(copy, 'bin', 'donghae.js'),
      [
        '--nodes',
        '4',
        '--minutes',
        '0.5',
        '--faults',
        'kill,pause',
        '--seed',
        String(seed),
        '--base-port',
        String(base),
        '--dir',
        dir,
        '--warmup',
        '5',
        '--fail-fast',
        '--shrink-runs',
        '2',
      ],
      200_000,
    )
    t.diagnostic(run.stderr.split('\n').slice(-12).join('\n'))
    assert.equal(run.code, 1, 'a failing run exits 1')
    assert.equal(run.json.ok, false)
    assert.ok(
      (run.json.violations['double-sign'] ?? 0) > 0,
      `double-sign counted: ${JSON.stringify(run.json.violations)}`,
    )
    assert.match(run.stderr, new RegExp(`FAILED with seed ${seed}`))
    assert.match(run.stderr, /smallest failing schedule \(\d+ faults/)
    assert.ok(Array.isArray(run.json.shrunk), 'the JSON carries the shrunk schedule')
    assert.ok(existsSync(join(dir, 'node0', 'node.log')), 'the logs are left')
    assert.match(run.stderr, new RegExp(`node logs left in ${dir}`))
  } finally {
    await rm(dir, { recursive: true, force: true })
    await rm(copy, { recursive: true, force: true })
  }
})
