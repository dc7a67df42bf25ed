// `donghae devnet` started directly (not through `npm start`, whose prestart builds the dashboard)
// finds no dashboard and builds it before the nodes start, with a progress line, and its node
// serves it at `/`; started again, the build is up to date and nothing is said about it. The
// dashboard goes to a temporary directory (DONGHAE_DASHBOARD_DIR, which the devnet's build and
// its nodes both read), so the checkout's web/dist is left alone.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRng, testSeed } from '../helpers/random.ts'
import { exited, firstJsonLine, spawnDevnet } from '../helpers/processes.ts'

interface DevnetInfo {
  nodes: Array<{ api: string }>
}

async function runOnce(
  home: string,
  base: number,
  env: NodeJS.ProcessEnv,
): Promise<{ stderr: string; page: string; status: number }> {
  const { child, stderr } = spawnDevnet(home, 1, base, env)
  try {
    const info = (await firstJsonLine(child)) as DevnetInfo
    const api = info.nodes[0]?.api ?? ''
    const res = await fetch(`${api}/`, { headers: { accept: 'text/html' } })
    return { stderr: stderr(), page: await res.text(), status: res.status }
  } catch (err) {
    throw new Error(`${String(err)}\n${stderr().slice(-3000)}`, { cause: err })
  } finally {
    child.kill('SIGTERM')
    await exited(child)
  }
}

test('devnet started directly builds the missing dashboard, then finds it', async () => {
  const rng = createRng(testSeed())
  const dir = await mkdtemp(join(tmpdir(), 'donghae-devnet-dashboard-'))
  const dashboard = join(dir, 'dashboard')
  const env = { ...process.env, DONGHAE_DASHBOARD_DIR: dashboard }
  const base = 9_000 + rng.int(0, 60) * 8 // 9000-9580: this file's range
  try {
    const first = await runOnce(join(dir, 'net'), base, env)
    assert.match(first.stderr, /devnet: dashboard: building .*dashboard \(not built yet\)…/)
    assert.match(first.stderr, /devnet: dashboard: built in \d+\.\d s/)
    assert.doesNotMatch(first.stderr, /not built \(|npm run build:web/)
    assert.ok(existsSync(join(dashboard, 'index.html')))
    // the build comes before the first node starts
    assert.ok(first.stderr.indexOf('built in') < first.stderr.indexOf('[1/1] starting node0'), first.stderr)
    assert.equal(first.status, 200)
    assert.match(first.page, /<div id="app">/)

    const second = await runOnce(join(dir, 'net'), base, env)
    assert.doesNotMatch(second.stderr, /dashboard:|no dashboard/, 'an up-to-date build is found silently')
    assert.equal(second.status, 200)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
