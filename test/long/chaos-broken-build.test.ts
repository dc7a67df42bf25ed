// The chaos runner can fail: the same runner, run from a copy of the checkout patched to sign two
// different prevotes per round (test/chaos/broken-build.ts), reports double-sign violations, exits
// 1, prints its seed and the smallest failing schedule, and leaves the logs. About two minutes of
// four node processes, so a long test (`npm run test:long`); the passing side is test/chaos.
// The seed is printed; DONGHAE_TEST_SEED replays it. Niced, ports 42500–45000.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRng, testSeed } from '../helpers/random.ts'
import { brokenBuild, DOUBLE_PREVOTE } from '../chaos/broken-build.ts'
import { chaos } from '../chaos/run-chaos.ts'

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
