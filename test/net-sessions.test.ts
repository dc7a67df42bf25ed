// Request sessions over real libp2p sockets on loopback: many requests share one stream, answers
// find their requests out of order, refusals and timeouts fail only their own request, a dropped
// connection fails what was waiting and the next request opens a new session, and a peer that
// breaks the frame format or sends a malformed request is penalized (nobody else is).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { lpStream } from '@libp2p/utils'
import { createHost, type DonghaeHost } from '../src/net/host.ts'
import { Libp2pTransport } from '../src/net/libp2p-transport.ts'
import { TransportError } from '../src/core/transport.ts'
import { Ed25519KeyPair } from '../src/identity/keys.ts'
import { DecodeError } from '../src/core/errors.ts'

const PROTOCOL = '/donghae-test/echo/1.0.0'

async function pair(): Promise<{
  a: DonghaeHost
  b: DonghaeHost
  ta: Libp2pTransport
  tb: Libp2pTransport
  penalties: string[]
  close(): Promise<void>
}> {
  const options = { host: '127.0.0.1', port: 0, quic: false, webSockets: false, mdns: false } as const
  const a = await createHost({ key: Ed25519KeyPair.generate(), ...options })
  const b = await createHost({ key: Ed25519KeyPair.generate(), ...options })
  await a.start()
  await b.start()
  const ta = new Libp2pTransport(a, { chainId: 'sessions' })
  const tb = new Libp2pTransport(b, { chainId: 'sessions' })
  const penalties: string[] = []
  const penalize = tb.penalize.bind(tb)
  tb.penalize = (peer, reason) => {
    penalties.push(reason)
    penalize(peer, reason)
  }
  await a.dial(b.getMultiaddrs()[0] as never)
  return {
    a,
    b,
    ta,
    tb,
    penalties,
    close: async () => {
      ta.stop()
      tb.stop()
      await Promise.all([a.stop(), b.stop()])
    },
  }
}

function streamsFor(host: DonghaeHost, protocol: string): number {
  return host
    .getConnections()
    .flatMap((c) => c.streams)
    .filter((s) => s.protocol === protocol).length
}

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)

test('one stream carries many requests; answers out of order reach their own requests', async () => {
  const net = await pair()
  try {
    net.tb.handle(
      PROTOCOL,
      async (data, from) => {
        assert.equal(from, net.ta.self, 'the handler is told who asked')
        const n = Number(text(data))
        await sleep((n * 7) % 23) // later requests often finish first
        return bytes(`answer ${n}`)
      },
      { session: true },
    )
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, n) => net.ta.request(net.tb.self, PROTOCOL, bytes(String(n)), { session: true })),
    )
    assert.deepEqual(
      answers.map(text),
      Array.from({ length: 100 }, (_, n) => `answer ${n}`),
    )
    for (let n = 0; n < 20; n++) await net.ta.request(net.tb.self, PROTOCOL, bytes(String(n)), { session: true })
    assert.equal(streamsFor(net.a, PROTOCOL), 1, 'every request went over the same stream')
    assert.deepEqual(net.penalties, [])
  } finally {
    await net.close()
  }
})

test('a refused request and a timed-out request fail alone; the session goes on', async () => {
  const net = await pair()
  try {
    net.tb.handle(
      PROTOCOL,
      async (data) => {
        const word = text(data)
        if (word === 'refuse') throw new DecodeError('no thank you') // blames the request
        if (word === 'busy') throw new Error('cannot serve now') // this node's own trouble
        if (word === 'hang') await sleep(2_000)
        return bytes(word.toUpperCase())
      },
      { session: true },
    )
    const request = (word: string, signal?: AbortSignal): Promise<Uint8Array> =>
      net.ta.request(net.tb.self, PROTOCOL, bytes(word), { session: true, ...(signal ? { signal } : {}) })
    // Each outcome gets its handler at once: on a loaded machine the timed-out request can fail
    // before the refusal arrives, and a rejection nobody is waiting for yet fails the whole test.
    const outcomes = Promise.all([
      assert.rejects(
        request('refuse'),
        (err: Error) => err instanceof TransportError && /no thank you/.test(err.message),
      ),
      assert.rejects(
        request('busy'),
        (err: Error) => err instanceof TransportError && /cannot serve now/.test(err.message),
      ),
      assert.rejects(request('hang', AbortSignal.timeout(200)), (err: Error) => err instanceof TransportError),
      request('fine'),
    ])
    const [, , , fine] = await outcomes
    assert.equal(text(fine), 'FINE')
    assert.equal(text(await request('again')), 'AGAIN', 'the session still works after both')
    assert.equal(streamsFor(net.a, PROTOCOL), 1)
    assert.equal(net.penalties.length, 1, 'only the request refused as malformed counts against its sender')
  } finally {
    await net.close()
  }
})

test('a dropped connection fails the waiting requests; the next request opens a new session', async () => {
  const net = await pair()
  try {
    net.tb.handle(
      PROTOCOL,
      async (data) => {
        if (text(data) === 'slow') await sleep(5_000)
        return data
      },
      { session: true },
    )
    assert.equal(text(await net.ta.request(net.tb.self, PROTOCOL, bytes('first'), { session: true })), 'first')
    const waiting = assert.rejects(
      net.ta.request(net.tb.self, PROTOCOL, bytes('slow'), { session: true }),
      (err: Error) => err instanceof TransportError && /session ended/.test(err.message),
    )
    await sleep(100)
    await net.b.hangUp(net.a.peerId)
    await waiting
    while (net.a.getConnections(net.b.peerId).some((c) => c.status === 'open')) await sleep(20)
    await net.a.dial(net.b.getMultiaddrs()[0] as never)
    assert.equal(text(await net.ta.request(net.tb.self, PROTOCOL, bytes('after'), { session: true })), 'after')
  } finally {
    await net.close()
  }
})

test('a malformed session frame is penalized and ends that session', async () => {
  const net = await pair()
  try {
    let calls = 0
    net.tb.handle(
      PROTOCOL,
      async (data) => {
        calls++
        return data
      },
      { session: true },
    )
    const stream = await net.a.dialProtocol(net.b.peerId, PROTOCOL)
    const lp = lpStream(stream)
    await lp.write(new Uint8Array([1, 2])) // shorter than the 5-byte header
    await assert.rejects(lp.read({ signal: AbortSignal.timeout(5_000) }))
    assert.equal(calls, 0)
    assert.equal(net.penalties.length, 1)
    assert.match(net.penalties[0] ?? '', /shorter than its header/)
    // an answer sent as a request is refused the same way
    const again = lpStream(await net.a.dialProtocol(net.b.peerId, PROTOCOL))
    await again.write(new Uint8Array([0, 0, 0, 1, 1, 42]))
    await assert.rejects(again.read({ signal: AbortSignal.timeout(5_000) }))
    assert.equal(net.penalties.length, 2)
    assert.equal(text(await net.ta.request(net.tb.self, PROTOCOL, bytes('ok'), { session: true })), 'ok')
  } finally {
    await net.close()
  }
})
