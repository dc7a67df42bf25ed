// The event stream (GET /v1/events), /metrics and the dashboard's static serving, over a real
// socket, with the typed client reading the stream as a browser would (fetch streaming).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { DonghaeClient, type NodeEvent } from '../src/api/client.ts'
import { ApiError } from '../src/api/errors.ts'
import { EventBus } from '../src/api/events.ts'
import { NodeMetrics } from '../src/api/metrics.ts'
import { createApiServer, type ApiServerOptions } from '../src/api/server.ts'
import { actor, makeGenesis } from './helpers/chain.ts'
import { MemoryChain } from './helpers/memory-chain.ts'

const node = actor()
const genesis = makeGenesis([node], [[node, 1_000_000n]])

async function listen(options: Partial<ApiServerOptions>): Promise<{ app: FastifyInstance; url: string }> {
  const app = createApiServer({ chain: new MemoryChain({ genesis, validators: [node] }), ...options })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` }
}

const block = (height: number) => ({
  height,
  id: 'ab'.repeat(32),
  time: 1_700_000_000_000 + height,
  txs: 1,
  proposer: node.did,
})

/** Collects `count` events from the iterator, then stops it. */
async function take(events: AsyncGenerator<NodeEvent>, count: number): Promise<NodeEvent[]> {
  const out: NodeEvent[] = []
  for await (const event of events) {
    out.push(event)
    if (out.length === count) break
  }
  return out
}

test('GET /v1/events: typed SSE messages, ?types filter, Last-Event-ID resume, heartbeats', async () => {
  const bus = new EventBus()
  const { app, url } = await listen({ events: bus, eventHeartbeatMs: 50 })
  const client = new DonghaeClient(url)
  try {
    const blocksOnly = client.events({ types: ['block', 'slash'], reconnect: false })
    const all = client.events({ reconnect: false })
    const firstBlocks = take(blocksOnly, 2)
    const firstAll = take(all, 3)
    // Both streams are open once the server has subscribed them; publish after that.
    await waitUntil(() => subscribers(bus) >= 2)
    bus.publish('peer', { peerId: '12D3KooW', did: node.did, connected: true, peers: 1 })
    bus.publish('block', block(1))
    bus.publish('finality', { height: 1, seconds: 0.2 })
    bus.publish('slash', { module: 'staking', validator: node.did, amount: '5', reason: 'downtime' })
    assert.deepEqual(
      (await firstBlocks).map((e) => e.type),
      ['block', 'slash'],
    )
    const got = await firstAll
    assert.deepEqual(
      got.map((e) => [e.seq, e.type]),
      [
        [1, 'peer'],
        [2, 'block'],
        [3, 'finality'],
      ],
    )
    assert.deepEqual(got[1]?.data, block(1))
    // Resume after seq 2: the bus still remembers 3 and 4.
    const resumed = await take(client.events({ lastEventId: 2, reconnect: false }), 2)
    assert.deepEqual(
      resumed.map((e) => e.seq),
      [3, 4],
    )
    // Heartbeats: raw bytes arrive although nothing is published.
    const raw = await fetch(`${url}/v1/events?types=job`)
    assert.equal(raw.status, 200)
    assert.match(raw.headers.get('content-type') ?? '', /^text\/event-stream/)
    assert.equal(raw.headers.get('cache-control'), 'no-cache, no-transform')
    const reader = raw.body?.getReader() as ReadableStreamDefaultReader<Uint8Array>
    let text = ''
    while (!text.includes(': heartbeat')) text += new TextDecoder().decode((await reader.read()).value)
    assert.match(text, /^retry: \d+\n/)
    await reader.cancel()
    // A bad filter is a JSON 400 before any stream starts; the client surfaces it as ApiError.
    await assert.rejects(take(client.events({ types: ['blocks' as 'block'] }), 1), (err) => {
      assert.ok(err instanceof ApiError)
      assert.deepEqual([err.status, err.code], [400, 'BAD_REQUEST'])
      assert.match(err.message, /unknown event type "blocks"/)
      return true
    })
  } finally {
    await app.close()
  }
})

test('closing the server ends open event streams (no hang); the client reconnects when the node comes back', async () => {
  const bus = new EventBus()
  const first = await listen({ events: bus })
  const port = Number(new URL(first.url).port)
  const client = new DonghaeClient(first.url)
  const statuses: string[] = []
  const abort = new AbortController()
  const seen: number[] = []
  const reading = (async () => {
    for await (const e of client.events({ signal: abort.signal, onStatus: (s) => statuses.push(s) })) {
      seen.push(e.seq)
      if (seen.length === 2) abort.abort()
    }
  })()
  await waitUntil(() => subscribers(bus) >= 1)
  bus.publish('block', block(1))
  await waitUntil(() => seen.length === 1)
  const closing = Date.now()
  await first.app.close()
  assert.ok(Date.now() - closing < 5_000, 'close did not wait for the stream')
  const second = createApiServer({ chain: new MemoryChain({ genesis, validators: [node] }), events: bus })
  await second.listen({ host: '127.0.0.1', port })
  try {
    await waitUntil(() => statuses.filter((s) => s === 'open').length >= 2, 10_000)
    bus.publish('block', block(2))
    await reading
    assert.deepEqual(seen, [1, 2], 'resumed after seq 1 without a duplicate')
    assert.deepEqual(statuses.slice(0, 3), ['open', 'closed', 'open'])
  } finally {
    abort.abort()
    await second.close()
  }
})

test('GET /metrics: Prometheus text with the donghae_ series, open to anyone', async () => {
  const bus = new EventBus()
  const metrics = new NodeMetrics()
  metrics.attach(bus)
  bus.publish('block', block(42))
  const { app, url } = await listen({ events: bus, metrics, operatorToken: 'secret-token-0123456789' })
  try {
    const res = await fetch(`${url}/metrics`)
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
    const text = await res.text()
    assert.match(text, /^donghae_chain_height 42$/m)
    for (const name of [
      'donghae_finality_seconds',
      'donghae_peers',
      'donghae_jobs_total',
      'donghae_job_latency_seconds',
      'donghae_audits_total',
      'donghae_slashes_total',
      'donghae_nat_state',
    ])
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name)
    assert.match(await new DonghaeClient(url).metrics(), /^donghae_chain_height 42$/m, 'the client reads it too')
  } finally {
    await app.close()
  }
})

test('the dashboard: / and its assets, index.html for pages, JSON 404 under /v1 /docs /metrics; unbuilt says how to build', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-web-'))
  await mkdir(join(dir, 'assets'))
  await writeFile(join(dir, 'index.html'), '<!doctype html><title>dash</title>')
  await writeFile(join(dir, 'assets', 'app.js'), 'console.log(1)')
  const { app, url } = await listen({ dashboardDir: dir })
  const html = { accept: 'text/html,application/xhtml+xml' }
  try {
    const root = await fetch(`${url}/`, { headers: html })
    assert.equal(root.status, 200)
    assert.match(root.headers.get('content-type') ?? '', /text\/html/)
    assert.match(await root.text(), /<title>dash<\/title>/)
    const asset = await fetch(`${url}/assets/app.js`)
    assert.equal(asset.status, 200)
    assert.match(asset.headers.get('content-type') ?? '', /javascript/)
    const page = await fetch(`${url}/chain`, { headers: html })
    assert.equal(page.status, 200, 'a page the dashboard routes itself gets index.html')
    assert.match(await page.text(), /dash/)
    for (const path of ['/v1/nothing', '/docs/nothing', '/metrics/x', '/assets/missing.js']) {
      const res = await fetch(`${url}${path}`, { headers: path.startsWith('/assets') ? {} : html })
      assert.equal(res.status, 404, path)
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'NOT_FOUND', path)
    }
    const json = await fetch(`${url}/elsewhere`)
    assert.equal(json.status, 404, 'non-browser clients get the JSON 404')
    assert.equal((await fetch(`${url}/v1/status`)).status, 200, 'the API still answers')
  } finally {
    await app.close()
  }
  await rm(join(dir, 'index.html'))
  const unbuilt = await listen({ dashboardDir: dir })
  try {
    const res = await fetch(`${unbuilt.url}/`, { headers: html })
    assert.equal(res.status, 404)
    assert.match(((await res.json()) as { error: { message: string } }).error.message, /npm run build:web/)
  } finally {
    await unbuilt.app.close()
    await rm(dir, { recursive: true, force: true })
  }
})

/** Streams (and other listeners) attached to the bus now. */
function subscribers(bus: EventBus): number {
  return bus.listenerCount
}

async function waitUntil(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting')
    await new Promise((r) => setTimeout(r, 10))
  }
}
