// Real node-datachannel PeerConnections in one process on loopback/host candidates (no STUN).
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import nodeDataChannel from 'node-datachannel'
import { ManualClock } from '../../core/clock.ts'
import { Ed25519KeyPair } from '../../identity/keys.ts'
import { ReplayCache, verifyOffer } from './signal.ts'
import {
  TooManyConnectionsError,
  WebRtcAnswerer,
  WebRtcOfferer,
  defaultPeerConnectionFactory,
  type PeerConnectionFactory,
  type WebRtcConnection,
} from './peer.ts'
import { ChannelClient, serveChannel } from './channel.ts'

after(() => nodeDataChannel.cleanup())

function counting(): { factory: PeerConnectionFactory; count: () => number } {
  let n = 0
  return {
    factory: (name, config) => {
      n++
      return defaultPeerConnectionFactory(name, config)
    },
    count: () => n,
  }
}

function pair(options: { maxConnections?: number; clock?: ManualClock } = {}) {
  const offererKey = Ed25519KeyPair.generate()
  const answererKey = Ed25519KeyPair.generate()
  const served: WebRtcConnection[] = []
  const answerer = new WebRtcAnswerer({
    key: answererKey,
    ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    onConnection: (connection) => {
      served.push(connection)
      serveChannel(connection.channel, async (request, { progress }) => {
        const prompt = (request as { prompt: string }).prompt
        const words = prompt.split(' ')
        for (const word of words) await progress({ token: word })
        return { text: prompt, tokens: words.length }
      })
    },
  })
  const offerer = new WebRtcOfferer({ key: offererKey })
  const replay = new ReplayCache()
  const post = async (offer: unknown): Promise<unknown> =>
    // what the lead's POST /receive-offer does: verify first, then answer; JSON both ways
    answerer.answer(verifyOffer(JSON.parse(JSON.stringify(offer)), { self: answerer.did, now: Date.now(), replay }))
  return { offerer, answerer, served, post }
}

test('offer → verify → answer → verify → open channel → streamed request → close', async (t) => {
  const { offerer, answerer, served, post } = pair()
  const t0 = performance.now()
  const connection = await offerer.connect(answerer.did, async (offer) => JSON.parse(JSON.stringify(await post(offer))))
  const setupMs = performance.now() - t0
  assert.equal(connection.peerDid, answerer.did)
  const client = new ChannelClient(connection.channel)
  const partials: unknown[] = []
  const answer = await client.request({ prompt: 'hello from the other node' }, { onProgress: (p) => partials.push(p) })
  assert.deepEqual(answer, { text: 'hello from the other node', tokens: 5 })
  assert.deepEqual(
    partials.map((p) => (p as { token: string }).token),
    ['hello', 'from', 'the', 'other', 'node'],
  )
  assert.equal(served.length, 1)
  assert.equal(served[0]?.peerDid, offerer.did)

  const rounds = 50
  const t1 = performance.now()
  for (let i = 0; i < rounds; i++) await client.request({ prompt: 'x' })
  const rttMs = (performance.now() - t1) / rounds
  t.diagnostic(
    `webrtc loopback: setup ${setupMs.toFixed(1)} ms (sign, verify, gather ×2, ICE, DTLS, SCTP), request round trip ${rttMs.toFixed(3)} ms (mean of ${rounds}, 1 progress + 1 answer each)`,
  )

  connection.close()
  await connection.closed
  await served[0]?.closed
  await assert.rejects(client.request({ prompt: 'late' }), /closed/)
  assert.equal(offerer.size, 0)
  assert.equal(answerer.size, 0)
  answerer.stop()
  offerer.stop()
})

test('a message queued behind others is taken, not refused: send is true and everything arrives', async () => {
  const offererKey = Ed25519KeyPair.generate()
  let received = 0
  const answerer = new WebRtcAnswerer({
    key: Ed25519KeyPair.generate(),
    onConnection: (connection) => connection.channel.onMessage((text) => (received += text.length)),
  })
  const offerer = new WebRtcOfferer({ key: offererKey })
  const replay = new ReplayCache()
  const connection = await offerer.connect(answerer.did, async (offer) =>
    answerer.answer(verifyOffer(offer, { self: answerer.did, now: Date.now(), replay })),
  )
  // 40 × 60 KiB at once: libdatachannel sends the first and queues the rest (its send() is then
  // false), which the channel protocol must not take for a refusal (serveChannel's TOO_LARGE)
  const payload = 'x'.repeat(60 * 1024)
  const taken = Array.from({ length: 40 }, () => connection.channel.send(payload))
  assert.deepEqual(taken, new Array(40).fill(true))
  assert.ok(connection.channel.bufferedAmount() > 0, 'some were queued')
  while (received < 40 * payload.length) await new Promise((resolve) => setTimeout(resolve, 10))
  assert.equal(received, 40 * payload.length)
  connection.close()
  assert.equal(connection.channel.send('late'), false, 'a closed channel takes nothing')
  answerer.stop()
  offerer.stop()
})

test('the answerer holds at most maxConnections and closes every connection on stop', async () => {
  const { offerer, answerer, served, post } = pair({ maxConnections: 2 })
  const a = await offerer.connect(answerer.did, post)
  const b = await offerer.connect(answerer.did, post)
  await assert.rejects(offerer.connect(answerer.did, post), TooManyConnectionsError)
  assert.equal(answerer.size, 2)
  assert.equal(offerer.size, 2, 'the refused attempt was closed on the offerer too')
  answerer.stop()
  assert.equal(answerer.size, 0)
  await Promise.all(served.map((c) => c.closed))
  await Promise.all([a.closed, b.closed]) // the offerer notices the far side going away
  await assert.rejects(post({}), /./)
  offerer.stop()
})

test('an idle connection is closed after idleTimeoutMs', async () => {
  const clock = new ManualClock(Date.now())
  const { offerer, answerer, served, post } = pair({ clock })
  const connection = await offerer.connect(answerer.did, post)
  while (served.length === 0) await new Promise((resolve) => setTimeout(resolve, 5))
  clock.advance(60_000)
  assert.equal(answerer.size, 1, 'not idle yet')
  clock.advance(5 * 60_000)
  assert.equal(answerer.size, 0)
  await connection.closed
  offerer.stop()
})

test('PeerConnections are created through the injectable factory, one per side', async () => {
  const count = counting()
  const answererKey = Ed25519KeyPair.generate()
  const answerer = new WebRtcAnswerer({ key: answererKey, factory: count.factory, onConnection: () => {} })
  const offerer = new WebRtcOfferer({ key: Ed25519KeyPair.generate(), factory: count.factory })
  const replay = new ReplayCache()
  const connection = await offerer.connect(answerer.did, async (offer) =>
    answerer.answer(verifyOffer(offer, { self: answerer.did, now: Date.now(), replay })),
  )
  assert.equal(count.count(), 2)
  connection.close()
  answerer.stop()
})
