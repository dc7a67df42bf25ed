// Request/response protocols between real libp2p hosts on loopback: who gets penalized (only
// peers that send invalid data, never a requester that gave up), penalties that leak away over
// time, and a per-peer byte budget on the blob protocol. Then hostile HTTP request bodies on the
// inference routes (CBOR with huge declared lengths or deep nesting, base64 that decodes larger
// than its dims, lying or missing content lengths) against the real API server over a socket.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { decode, encode } from '../../src/core/codec.ts'
import { ManualClock } from '../../src/core/clock.ts'
import { utf8 } from '../../src/core/bytes.ts'
import { OverBudgetError, TransportError } from '../../src/core/transport.ts'
import { Ed25519KeyPair } from '../../src/identity/keys.ts'
import { createHost, type DonghaeHost } from '../../src/net/host.ts'
import { BAN_MS, PENALTY_HALF_LIFE_MS, PENALTY_LIMIT } from '../../src/net/constants.ts'
import { Libp2pTransport } from '../../src/net/libp2p-transport.ts'
import { BLOB_BUDGET, BLOB_PROTOCOL, BlobStore, MAX_BLOB_BYTES } from '../../src/inference/blobs.ts'
import { request as httpRequest } from 'node:http'
import { connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { createApiServer } from '../../src/api/server.ts'
import { generateApiToken } from '../../src/api/auth.ts'
import { fakeInference, type FakeInference } from '../../src/api/fake-inference.ts'
import { MAX_INFER_BINARY_BYTES, MAX_INFER_JSON_BYTES } from '../../src/api/constants.ts'
import { encodeCbor } from '../../src/api/cbor.ts'
import { waitFor } from '../helpers/chain-net.ts'
import { actor, makeGenesis } from '../helpers/chain.ts'
import { MemoryChain } from '../helpers/memory-chain.ts'
import { createRng, testSeed } from '../helpers/random.ts'

const SLOW = '/donghae-test/slow/1.0.0'
const STRICT = '/donghae-test/strict/1.0.0'
const rng = createRng(testSeed())
let nextPort = 19_500 + rng.int(0, 50) * 8 // 19500-19999: this file's range

interface Peer {
  host: DonghaeHost
  transport: Libp2pTransport
}

async function peer(clock?: ManualClock): Promise<Peer> {
  const host = await createHost({
    key: Ed25519KeyPair.generate(),
    host: '127.0.0.1',
    port: nextPort++,
    quic: false,
    webSockets: false,
    mdns: false,
  })
  await host.start()
  const transport = new Libp2pTransport(host, { chainId: 'requests', ...(clock === undefined ? {} : { clock }) })
  transport.start()
  return { host, transport }
}

async function close(...peers: Peer[]): Promise<void> {
  for (const p of peers) {
    p.transport.stop()
    await p.host.stop()
  }
}

function openStreams(host: DonghaeHost, protocol: string): number {
  return host
    .getConnections()
    .flatMap((c) => c.streams)
    .filter((s) => s.protocol === protocol).length
}

/** A handler that refuses requests that are not dag-cbor (DecodeError: the request is at fault). */
const strict = async (data: Uint8Array): Promise<Uint8Array> => encode({ echo: decode(data, { maxBytes: 1024 }) })

test('attack: a requester that gives up on a slow answer (its timeout, or a cancel) was penalized like a peer sending junk — now only malformed requests count', async (t) => {
  t.diagnostic(`seed ${rng.seed}`)
  const [server, client] = [await peer(), await peer()]
  try {
    let served = 0
    server.transport.handle(SLOW, async (data) => {
      await sleep(400)
      served++
      return data
    })
    server.transport.handle(STRICT, strict)
    await client.host.dial(server.host.getMultiaddrs()[0] as never)
    await assert.rejects(
      client.transport.request(server.transport.self, SLOW, utf8('a'), { signal: AbortSignal.timeout(100) }),
      TransportError,
    )
    const cancel = new AbortController()
    const cancelled = client.transport.request(server.transport.self, SLOW, utf8('b'), { signal: cancel.signal })
    setTimeout(() => cancel.abort(), 50)
    await assert.rejects(cancelled, TransportError)
    await waitFor(
      'the server to finish both and find nobody to answer',
      () => served === 2 && openStreams(server.host, SLOW) === 0,
    )
    assert.equal(server.transport.penaltyScore(client.transport.self), 0, 'giving up is not misbehaving')

    // A request its handler refuses as malformed is penalized, and only that.
    assert.deepEqual(decode(await client.transport.request(server.transport.self, STRICT, encode(7))), { echo: 7 })
    await assert.rejects(client.transport.request(server.transport.self, STRICT, randomBytes(40)), TransportError)
    await waitFor(
      'the server to count the malformed request',
      () => server.transport.penaltyScore(client.transport.self) > 0,
    )
    assert.ok(server.transport.penaltyScore(client.transport.self) <= 1)
  } finally {
    await close(server, client)
  }
})

test('attack: penalties never expired, so an honest peer that sent a few bad requests now and then was banned in the end — now they halve every 5 minutes', async () => {
  const clock = new ManualClock(1_700_000_000_000)
  const [server, client] = [await peer(clock), await peer()]
  try {
    server.transport.handle(STRICT, strict)
    await client.host.dial(server.host.getMultiaddrs()[0] as never)
    const bad = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        if (server.host.getConnections(client.host.peerId).length === 0)
          await client.host.dial(server.host.getMultiaddrs()[0] as never)
        await assert.rejects(client.transport.request(server.transport.self, STRICT, randomBytes(40)))
      }
      await waitFor('the penalties to be counted', () => server.transport.penaltyScore(client.transport.self) >= n / 4)
    }
    await bad(PENALTY_LIMIT - 5)
    clock.advance(2 * PENALTY_HALF_LIFE_MS) // a quarter is left: 3.75 points
    await bad(PENALTY_LIMIT - 5) // 18.75 points: without the decay it would be 30, and banned
    const score = server.transport.penaltyScore(client.transport.self)
    assert.ok(score > PENALTY_LIMIT - 2 && score < PENALTY_LIMIT, `score ${score.toFixed(2)}`)
    assert.equal(server.host.getConnections(client.host.peerId).length > 0, true, 'still connected')
    // A burst beyond the limit is still a ban.
    await assert.rejects(client.transport.request(server.transport.self, STRICT, randomBytes(40)))
    await assert.rejects(client.transport.request(server.transport.self, STRICT, randomBytes(40)))
    await waitFor(
      'the peer to be banned and disconnected',
      () => server.host.getConnections(client.host.peerId).length === 0,
    )
    assert.ok(BAN_MS > 0)
  } finally {
    await close(server, client)
  }
})

test('attack: a peer downloads the same model file again and again to use up the node’s bandwidth — refused past its byte budget (OverBudgetError), not penalized, others still served', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-blob-budget-'))
  const [server, greedy, other] = [await peer(), await peer(), await peer()]
  try {
    const store = new BlobStore(join(dir, 'blobs'))
    await store.init()
    const blob = randomBytes(1024 * 1024)
    const cid = await store.put(blob)
    store.serve(server.transport)
    await greedy.host.dial(server.host.getMultiaddrs()[0] as never)
    await other.host.dial(server.host.getMultiaddrs()[0] as never)
    let served = 0
    let refusal: unknown
    const started = Date.now()
    for (; served < 100; served++) {
      try {
        await greedy.transport.request(server.transport.self, BLOB_PROTOCOL, utf8(cid))
      } catch (err) {
        refusal = err
        break
      }
    }
    assert.ok(refusal instanceof OverBudgetError, String(refusal))
    assert.match((refusal as Error).message, /byte budget/)
    const budgetBlobs = BLOB_BUDGET.bytes / blob.length
    // the bucket refills while the downloads run (slowly on a loaded machine): that much more is fair
    const refilled = Math.ceil(((Date.now() - started) * BLOB_BUDGET.bytes) / BLOB_BUDGET.perMs / blob.length)
    assert.ok(
      served >= budgetBlobs && served <= budgetBlobs + refilled + 4,
      `${served} downloads of 1 MiB before the refusal (budget ${budgetBlobs}, refilled ${refilled})`,
    )
    assert.equal(server.transport.penaltyScore(greedy.transport.self), 0, 'asking is not misbehaving')
    const answer = decode(await other.transport.request(server.transport.self, BLOB_PROTOCOL, utf8(cid))) as {
      bytes?: Uint8Array
    }
    assert.equal(answer.bytes?.length, blob.length, 'another peer is still served')
    // the bucket refills as time passes (about 1 MiB a second): spend it again, then fetch at once
    for (let i = 0; i < 20; i++)
      if (
        !(await greedy.transport.request(server.transport.self, BLOB_PROTOCOL, utf8(cid)).then(
          () => true,
          () => false,
        ))
      )
        break
    const mine = new BlobStore(join(dir, 'greedy'))
    await mine.init()
    await assert.rejects(mine.fetch(cid, [server.transport.self], greedy.transport), /byte budget/)
  } finally {
    await close(server, greedy, other)
    await rm(dir, { recursive: true, force: true })
  }
})

test('a model file of 12 MiB (under MAX_BLOB_BYTES, over libp2p’s default 4 MiB read buffer) is fetched whole and checked against its CID', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-blob-large-'))
  const [server, client] = [await peer(), await peer()]
  try {
    const store = new BlobStore(join(dir, 'served'))
    await store.init()
    const blob = randomBytes(12 * 1024 * 1024)
    assert.ok(blob.length < MAX_BLOB_BYTES)
    const cid = await store.put(blob)
    store.serve(server.transport)
    await client.host.dial(server.host.getMultiaddrs()[0] as never)
    const mine = new BlobStore(join(dir, 'fetched'))
    await mine.init()
    const fetched = await mine.fetch(cid, [server.transport.self], client.transport)
    assert.equal(fetched.length, blob.length)
    assert.ok(Buffer.from(fetched).equals(blob), 'the same bytes')
    assert.ok(Buffer.from((await mine.get(cid)) as Uint8Array).equals(blob), 'and stored under its CID')
  } finally {
    await close(server, client)
    await rm(dir, { recursive: true, force: true })
  }
})

// ---- hostile HTTP bodies on the inference routes ----------------------------------------------

const API_TOKEN = generateApiToken()
const apiNode = actor()

async function inferenceServer(): Promise<{ app: FastifyInstance; port: number; api: FakeInference }> {
  const api = fakeInference()
  const app = createApiServer({
    chain: new MemoryChain({ genesis: makeGenesis([apiNode], []), validators: [apiNode] }),
    inference: api,
    operatorToken: API_TOKEN,
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, port: (app.server.address() as AddressInfo).port, api }
}

interface Answer {
  /** 0: the server reset the connection before its answer could be read (it stopped reading). */
  status: number
  body: string
  ms: number
  /** Body bytes written before the server answered or closed. */
  sent: number
}

/**
 * One request with a binary body: whole (with content-length), or as `chunks` with chunked
 * transfer encoding (no length), stopping once the server answers. A server that refuses a body
 * mid-upload answers and closes; the client may see the reset before the answer (status 0).
 */
function send(
  port: number,
  req: { path: string; headers: Record<string, string>; body?: Uint8Array; chunks?: Iterable<Uint8Array> },
): Promise<Answer> {
  const started = performance.now()
  let sent = 0
  return new Promise((resolve, reject) => {
    let settled = false
    const settle = (status: number, body: string): void => {
      if (settled) return
      settled = true
      resolve({ status, body, ms: performance.now() - started, sent })
    }
    const r = httpRequest(
      { host: '127.0.0.1', port, method: 'POST', path: req.path, headers: req.headers, agent: false },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (body += c))
        res.on('end', () => settle(res.statusCode ?? 0, body))
        res.on('close', () => settle(res.statusCode ?? 0, body))
      },
    )
    r.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ECONNRESET') setTimeout(() => settle(0, err.code ?? ''), 100)
      else if (!settled) reject(err)
    })
    if (req.chunks === undefined) {
      sent = req.body?.length ?? 0
      r.end(req.body)
      return
    }
    const chunks = req.chunks[Symbol.iterator]()
    const next = (): void => {
      if (settled || r.destroyed) return
      const { value, done } = chunks.next()
      if (done === true) {
        r.end()
        return
      }
      sent += value.length
      if (r.write(value)) setImmediate(next)
      else r.once('drain', next)
    }
    next()
  })
}

const messageOf = (a: Answer): string => (JSON.parse(a.body) as { error: { message: string } }).error.message
const cbor = { 'content-type': 'application/cbor' }

/** A client-signed job's shape (the route is public with one, so a stranger reaches the parser). */
const JOB_PREFIX = encodeCbor({ model: 'tiny', job: {} })

test('attack: CBOR bodies declaring a 4 GiB string, a 2^32-item array or 16 M items are refused before anything is built, without a token', async (t) => {
  const { app, port, api } = await inferenceServer()
  try {
    const heapBefore = process.memoryUsage().heapUsed
    const cases: Array<[string, Uint8Array, RegExp]> = [
      [
        'a byte string claiming 4 GiB',
        Buffer.from('5affffffff00', 'hex'),
        /a string of 4294967295 bytes, but only 1 bytes follow/,
      ],
      ['an array claiming 2^32 items', Buffer.from('9b00000001000000007f', 'hex'), /an array of 4294967296 items/],
      ['a map claiming 2^53 entries', Buffer.from('bb001fffffffffffff00', 'hex'), /a map of 9007199254740991 items/],
      ['a length beyond 2^53', Buffer.from('5b00ffffffffffffff', 'hex'), /beyond 2\^53/],
      // a real array of 16 M one-byte zeros: 16 MiB of body, 128 MiB as a JS array
      [
        '16 M items',
        Buffer.concat([Buffer.from('9a00f42400', 'hex'), Buffer.alloc(16_000_000)]),
        /more than 4259840 items/,
      ],
      [
        'a map key claiming to be 4 GiB of text',
        Buffer.concat([JOB_PREFIX.subarray(0, 1), Buffer.from('7affffffff', 'hex')]),
        /a string of 4294967295 bytes/,
      ],
    ]
    for (const [what, body, pattern] of cases) {
      const answer = await send(port, { path: '/v1/infer', headers: cbor, body })
      t.diagnostic(`${what}: ${answer.status} in ${answer.ms.toFixed(0)} ms: ${messageOf(answer)}`)
      assert.equal(answer.status, 400, `${what}: ${answer.body}`)
      assert.match(messageOf(answer), pattern, what)
    }
    const grown = (process.memoryUsage().heapUsed - heapBefore) / 1024 / 1024
    t.diagnostic(`heap grew ${grown.toFixed(1)} MiB`)
    assert.ok(grown < 100, `the heap grew ${grown.toFixed(0)} MiB`)
    assert.equal(api.calls.infer.length, 0)
  } finally {
    await app.close()
  }
})

test('attack: deeply nested CBOR (a million levels) and deeply nested JSON are 400, not a stack overflow; the server keeps serving', async (t) => {
  const { app, port } = await inferenceServer()
  try {
    const deepCbor = Buffer.concat([Buffer.alloc(1_000_000, 0x81), Buffer.from([0x00])])
    const cborAnswer = await send(port, { path: '/v1/infer', headers: cbor, body: deepCbor })
    assert.equal(cborAnswer.status, 400, cborAnswer.body)
    assert.match(messageOf(cborAnswer), /nested deeper than 16 levels/)
    const tagged = await send(port, { path: '/v1/infer', headers: cbor, body: Buffer.from('d81c81d81d00', 'hex') })
    assert.equal(tagged.status, 400)
    assert.match(messageOf(tagged), /tags are not accepted \(tag 28\)/, 'no shared references, records or typed arrays')
    const depth = 3_000_000
    const deepJson = `{"model":"tiny","job":{},"inputs":${'['.repeat(depth)}${']'.repeat(depth)}}`
    assert.ok(deepJson.length < MAX_INFER_JSON_BYTES)
    const jsonAnswer = await send(port, {
      path: '/v1/infer',
      headers: { 'content-type': 'application/json' },
      body: Buffer.from(deepJson),
    })
    t.diagnostic(`JSON nested ${depth} deep: ${jsonAnswer.status} ${jsonAnswer.body.slice(0, 120)}`)
    assert.equal(jsonAnswer.status, 400)
    const alive = await send(port, {
      path: '/v1/infer',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_TOKEN}` },
      body: Buffer.from(
        JSON.stringify({ model: 'tiny', inputs: { x: { dims: [1, 2], type: 'float32', data: [1, 2] } } }),
      ),
    })
    assert.equal(alive.status, 200, alive.body)
  } finally {
    await app.close()
  }
})

test('attack: base64 that decodes to far more than the dims say (7 MB for 8 bytes) is refused by its length, before it is decoded', async (t) => {
  const { app, port, api } = await inferenceServer()
  try {
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${API_TOKEN}` }
    const big = 'QUFB'.repeat(1_750_000) // 7 MB of base64: 5.25 MB of bytes
    const answer = await send(port, {
      path: '/v1/infer',
      headers,
      body: Buffer.from(
        JSON.stringify({ model: 'tiny', inputs: { x: { dims: [1, 2], type: 'float32', data_b64: big } } }),
      ),
    })
    t.diagnostic(`${answer.status} in ${answer.ms.toFixed(0)} ms: ${messageOf(answer)}`)
    assert.equal(answer.status, 400)
    assert.match(messageOf(answer), /data_b64 holds 5250000 bytes but float32 \[1,2\] needs 8/)
    // dims that ask for more than the tensor limit are refused before the string is looked at
    const huge = await send(port, {
      path: '/v1/infer',
      headers,
      body: Buffer.from(
        JSON.stringify({ model: 'tiny', inputs: { x: { dims: [65536, 65536], type: 'float32', data_b64: 'AAAA' } } }),
      ),
    })
    assert.equal(huge.status, 413)
    assert.match(messageOf(huge), /exceed the limit of 4194304 values/)
    // the right length, but padding in the middle and characters outside the alphabet
    for (const text of ['AAAA=AAAAAA=', 'AAAA AAAAAA=', 'AAAA\u0000AAAAAA']) {
      const bad = await send(port, {
        path: '/v1/infer',
        headers,
        body: Buffer.from(
          JSON.stringify({ model: 'tiny', inputs: { x: { dims: [1, 2], type: 'float32', data_b64: text } } }),
        ),
      })
      assert.equal(bad.status, 400, JSON.stringify(text))
      assert.match(messageOf(bad), /not base64/)
    }
    assert.equal(api.calls.infer.length, 0)
  } finally {
    await app.close()
  }
})

test('attack: a body claiming 100 GiB is 413 before a byte of it is read; a chunked body with no length is cut at the limit; a stranger’s raw upload is 401 unread', async (t) => {
  const { app, port, api } = await inferenceServer()
  try {
    // only the head is sent: the answer must not wait for the body
    const head = async (path: string, headers: string): Promise<string> => {
      const socket = connect(port, '127.0.0.1')
      socket.setEncoding('utf8')
      socket.write(`POST ${path} HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n${headers}content-length: 107374182400\r\n\r\n`)
      let text = ''
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no answer; got ${JSON.stringify(text)}`)), 5_000)
        socket.on('data', (c: string) => {
          text += c
          if (text.includes('\r\n\r\n') && text.includes('}')) {
            clearTimeout(timer)
            resolve()
          }
        })
        socket.on('error', reject)
      })
      socket.destroy()
      return text
    }
    const cborHead = await head('/v1/infer', 'content-type: application/cbor\r\n')
    assert.match(cborHead, /^HTTP\/1\.1 413/)
    assert.match(cborHead, /16\.06 MiB limit of POST \/v1\/infer/)
    const jsonHead = await head('/v1/infer', 'content-type: application/json\r\n')
    assert.match(jsonHead, /^HTTP\/1\.1 413/)
    assert.match(jsonHead, /8 MiB limit/)
    const rawHead = await head('/v1/infer/yolo', 'content-type: application/octet-stream\r\n')
    assert.match(rawHead, /^HTTP\/1\.1 401/, 'the token is checked before the body')

    // chunked: 1 MiB pieces, twice the limit's worth; refused once past the limit (413, or a reset when the
    // server closed before this client read its answer: either way it stopped reading)
    const piece = Buffer.alloc(1024 * 1024)
    const pieces = 2 * Math.ceil(MAX_INFER_BINARY_BYTES / piece.length)
    for (const [path, headers] of [
      ['/v1/infer', cbor],
      ['/v1/infer/yolo', { 'content-type': 'application/octet-stream', authorization: `Bearer ${API_TOKEN}` }],
    ] as const) {
      const chunked = await send(port, { path, headers, chunks: Array.from({ length: pieces }, () => piece) })
      t.diagnostic(
        `${path}, chunked: ${chunked.status} after ${(chunked.sent / 1024 / 1024).toFixed(0)} MiB sent: ${chunked.body.slice(0, 200)}`,
      )
      assert.ok(chunked.status === 413 || chunked.status === 0, `${path}: ${chunked.status} ${chunked.body}`)
      if (chunked.status === 413) assert.match(messageOf(chunked), /16\.06 MiB limit/)
      assert.ok(
        chunked.sent < pieces * piece.length,
        `${path}: the server stopped reading (${chunked.sent} bytes sent)`,
      )
    }
    const alive = await send(port, {
      path: '/v1/infer',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_TOKEN}` },
      body: Buffer.from(
        JSON.stringify({ model: 'tiny', inputs: { x: { dims: [1, 2], type: 'float32', data: [1, 2] } } }),
      ),
    })
    assert.equal(alive.status, 200, alive.body)
    assert.equal(api.calls.infer.length, 1)
  } finally {
    await app.close()
  }
})
