// Keeps `npm run bench`'s harness from rotting in every CI run: two cheap suites must print
// well-formed JSON lines with positive figures and same-run baselines. Every suite's quick run is
// test/long/bench-all.test.ts (`npm run test:long`: minutes of node processes).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'

const run = fileURLToPath(new URL('../bench/run.ts', import.meta.url))

async function bench(only: string): Promise<Array<Record<string, unknown>>> {
  const { stdout } = await promisify(execFile)(process.execPath, [
    run,
    '--round-ms',
    '5',
    '--rounds',
    '1',
    '--only',
    only,
  ])
  const lines = stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
  assert.equal(lines[0]?.bench, 'meta')
  return lines.slice(1)
}

test('bench/run.ts --only: one JSON object per line, positive figures, same-run baselines', async () => {
  const results = [...(await bench('ed25519')), ...(await bench('sha256'))]
  for (const name of ['ed25519-sign', 'ed25519-verify', 'sha256-chain']) {
    assert.ok(
      results.some((r) => r.bench === name),
      `missing ${name}`,
    )
  }
  for (const r of results) {
    assert.ok(typeof r.value === 'number' && Number.isFinite(r.value) && r.value > 0, JSON.stringify(r))
    if (r.baseline !== undefined) assert.ok(typeof r.ratio === 'number' && r.ratio > 0)
  }
  assert.ok(results.some((r) => r.impl === '@chainsafe/as-sha256 digest' && r.baseline !== undefined))
  assert.ok(
    results.every((r) => String(r.bench).includes('ed25519') || String(r.bench).includes('sha256')),
    '--only keeps to the suites named',
  )
})
