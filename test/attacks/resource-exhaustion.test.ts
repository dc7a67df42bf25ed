// Attacks that try to exhaust a node's API: too many event streams, connections held open by
// sending slowly or not at all, oversized bodies. The server is the real one (createApiServer over
// a real socket, with the node's EventBus and NodeMetrics on an in-process chain), its limits
// lowered so the test runs in seconds; the defaults are in src/api/constants.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { FastifyInstance } from 'fastify'
import { EventBus } from '../../src/api/events.ts'
import { NodeMetrics } from '../../src/api/metrics.ts'
import { createApiServer, type ApiServerOptions } from '../../src/api/server.ts'
import { actor, makeGenesis } from '../helpers/chain.ts'
import { waitFor } from '../helpers/chain-net.ts'
import { MemoryChain } from '../helpers/memory-chain.ts'
import {
  errorOf,
  openStream,
  rawRequest,
  rawSocket,
  readBody,
  type RawRequest,
  type RawResponse,
} from '../helpers/raw-http.ts'

const node = actor()
const genesis = makeGenesis([node], [[node, 1_000_000n]])

/** Fixed ports 15 600–15 609, used by no other test. */
const PORTS = { streams: 15_601, slowloris: 15_602, body: 15_603 } as const

async function serve(
  port: number,
  options: Partial<ApiServerOptions>,
): Promise<{ app: FastifyInstance; url: string; bus: EventBus; metrics: NodeMetrics }> {
  const bus = new EventBus()
  const metrics = new NodeMetrics({ processMetrics: false })
  metrics.attach(bus)
  const app = createApiServer({
    chain: new MemoryChain({ genesis, validators: [node] }),
    events: bus,
    metrics,
    ...options,
  })
  await app.listen({ host: '127.0.0.1', port })
  return { app, url: `http://127.0.0.1:${port}`, bus, metrics }
}

test('SSE flood: streams past a client’s share or the node’s cap get 503 TOO_MANY_STREAMS with Retry-After; others are still served', async (t) => {
  const { app, url, bus } = await serve(PORTS.streams, { maxEventStreams: 4, maxEventStreamsPerClient: 3 })
  const open: Array<Awaited<ReturnType<typeof openStream>>> = []
  /** A stream request that should be refused; a stream that opens instead is kept (and closed at the end). */
  const refused = async (req: RawRequest): Promise<RawResponse> => {
    const stream = await openStream(url, req)
    if (stream.response.statusCode === 200) {
      open.push(stream)
      assert.fail(`${req.path} from ${req.localAddress ?? '127.0.0.1'} opened a stream past the cap`)
    }
    const body = await readBody(stream.response)
    return { status: stream.response.statusCode ?? 0, headers: stream.response.headers, body }
  }
  try {
    // One client (127.0.0.1) takes its share of 3 streams.
    for (let i = 0; i < 3; i++) open.push(await openStream(url, { path: '/v1/events' }))
    assert.ok(open.every((s) => s.response.statusCode === 200))
    const greedy = await refused({ path: '/v1/events' })
    assert.equal(greedy.status, 503, greedy.body)
    assert.equal(errorOf(greedy).code, 'TOO_MANY_STREAMS')
    assert.equal(greedy.headers['retry-after'], '10')
    assert.match(errorOf(greedy).message, /127\.0\.0\.1 already has 3 event streams open/)
    t.diagnostic(`the node answers the 4th stream of one client: 503 ${errorOf(greedy).message}`)
    // Another client still gets one, up to the node's cap of 4; the next is refused whoever asks.
    open.push(await openStream(url, { path: '/v1/events', localAddress: '127.0.0.2' }))
    assert.equal(open[3]?.response.statusCode, 200)
    const flood = await refused({ path: '/v1/events', localAddress: '127.0.0.3' })
    assert.equal(flood.status, 503)
    assert.match(errorOf(flood).message, /already serves 4 event streams/)
    t.diagnostic(`and the 5th stream on the node: 503 ${errorOf(flood).message}`)
    // The other routes are not affected.
    assert.equal((await rawRequest(url, { path: '/v1/status' })).status, 200)
    // A stream that closes frees its slot.
    await open.shift()?.close()
    await waitFor('the node to notice the closed stream', () => bus.subscriberCount === 3, 5_000)
    const again = await openStream(url, { path: '/v1/events' })
    open.push(again)
    assert.equal(again.response.statusCode, 200)
  } finally {
    await Promise.all(open.map((s) => s.close()))
    await app.close()
  }
})

/** `promise`, or a rejection naming `what` after `ms` (so an unfixed server fails the test, not hangs it). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} still open after ${ms} ms`)), ms)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

test('slowloris: connections that send headers slowly, send nothing, trickle a body or sit idle are closed (408 where a request began)', async (t) => {
  const timeouts = { headersMs: 400, requestMs: 800, keepAliveMs: 300, idleMs: 1_500 }
  const { app, url } = await serve(PORTS.slowloris, { timeouts })
  const sockets: Array<Awaited<ReturnType<typeof rawSocket>>> = []
  const open = async (): Promise<Awaited<ReturnType<typeof rawSocket>>> => {
    const s = await rawSocket(url)
    sockets.push(s)
    return s
  }
  const timers: NodeJS.Timeout[] = []
  try {
    // Headers a byte at a time, never finished.
    const slow = await open()
    slow.socket.write('GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n')
    timers.push(setInterval(() => slow.socket.write('X'), 50))
    const slowMs = await within(slow.closed, timeouts.headersMs + 1_500, 'a connection dripping its headers')
    assert.match(slow.received(), /^HTTP\/1\.1 408 Request Timeout/, slow.received())
    t.diagnostic(
      `headers dripped: the node answered "${slow.received().split('\r\n')[0]}" after ${Math.round(slowMs)} ms`,
    )

    // A connection that never sends a byte.
    const silent = await open()
    const silentMs = await within(silent.closed, timeouts.idleMs + 1_500, 'a silent connection')
    t.diagnostic(`a connection that sent nothing was closed after ${Math.round(silentMs)} ms`)

    // Headers on time, then a body that trickles in.
    const trickle = await open()
    trickle.socket.write(
      'POST /v1/tx HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"tx":"',
    )
    timers.push(setInterval(() => trickle.socket.write('a'), 50))
    const trickleMs = await within(trickle.closed, timeouts.requestMs + 1_500, 'a connection trickling its body')
    assert.match(trickle.received(), /^HTTP\/1\.1 408 Request Timeout/, trickle.received())
    t.diagnostic(`body trickled: "${trickle.received().split('\r\n')[0]}" after ${Math.round(trickleMs)} ms`)

    // One request, then the keep-alive connection left open.
    const idle = await open()
    idle.socket.write('GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
    const idleMs = await within(idle.closed, timeouts.keepAliveMs + 1_500, 'an idle keep-alive connection')
    assert.match(idle.received(), /^HTTP\/1\.1 200 OK/)
    t.diagnostic(`an idle keep-alive connection was closed after ${Math.round(idleMs)} ms`)
  } finally {
    timers.forEach(clearInterval)
    for (const s of sockets) s.socket.destroy()
    await app.close()
  }
})

test('oversized body: a 1 MiB POST /v1/tx is 413 PAYLOAD_TOO_LARGE before it is parsed', async (t) => {
  const { app, url } = await serve(PORTS.body, {})
  try {
    const res = await rawRequest(url, {
      method: 'POST',
      path: '/v1/tx',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ tx: 'a'.repeat(1024 * 1024) }),
    })
    assert.equal(res.status, 413)
    assert.equal(errorOf(res).code, 'PAYLOAD_TOO_LARGE')
    t.diagnostic(`the node answers: 413 ${errorOf(res).message}`)
  } finally {
    await app.close()
  }
})
