// Keeps `npm run bench` from rotting: a very short run must print well-formed JSON lines with
// positive figures, and every comparison must carry the baseline it was measured against.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'

const run = fileURLToPath(new URL('../../bench/run.ts', import.meta.url))

test('bench/run.ts prints one JSON object per line with figures and same-run baselines', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [run, '--round-ms', '5', '--rounds', '1'])
  const lines = stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
  assert.equal(lines[0]?.bench, 'meta')
  const results = lines.slice(1)
  for (const name of ['ed25519-sign', 'ed25519-verify', 'sha256-chain']) {
    assert.ok(
      results.some((r) => r.bench === name),
      `missing ${name}`,
    )
  }
  for (const r of results) {
    // Rates must be positive; a latency or spread may legitimately be 0 ms at this sampling.
    const positive = r.unit !== 'ms'
    assert.ok(
      typeof r.value === 'number' && Number.isFinite(r.value) && (positive ? r.value > 0 : r.value >= 0),
      JSON.stringify(r),
    )
    if (r.baseline !== undefined) assert.ok(typeof r.ratio === 'number' && r.ratio > 0)
  }
  assert.ok(results.some((r) => r.impl === '@chainsafe/as-sha256 digest' && r.baseline !== undefined))
})
