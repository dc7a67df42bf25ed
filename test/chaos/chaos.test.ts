// The chaos runner end to end, through the real CLI (`donghae chaos`), on a devnet of four real
// node processes:
//  (a) a short run with every fault this machine can do passes with no violation, and applies
//      each enabled kind at least once (kinds that need root are reported unavailable, never
//      skipped silently);
// (The runner's failing side, a build patched to double-sign, is test/long/chaos-broken-build.test.ts.)
// The seed is printed; DONGHAE_TEST_SEED replays it. The run is niced and uses ports 40000–42500.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BIN } from '../helpers/cli.ts'
import { createRng, testSeed } from '../helpers/random.ts'
import { chaos } from './run-chaos.ts'

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
        '0.5',
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
