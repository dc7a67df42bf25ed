// The dashboard's WebRTC offerer (web/src/webrtc-client.ts) against the node's own code: its
// hand-written dag-cbor equals @ipld/dag-cbor byte for byte (property test), its did:key equals
// identity/did-key.ts, an offer it signs passes the node's verifyOffer, an answer the node signs
// passes its verifyAnswer (and every tampering is refused with the node's code), and a whole
// connection (node-datachannel's RTCPeerConnection polyfill standing in for the browser's) reaches
// a WebRtcAnswerer through a real HTTP signalling server and streams a chat over channel.ts frames.
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import fc from 'fast-check'
import nodeDataChannel from 'node-datachannel'
import { RTCPeerConnection } from 'node-datachannel/polyfill'
import { base58btc } from 'multiformats/bases/base58'
import { encode } from '../src/core/codec.ts'
import { Ed25519KeyPair } from '../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../src/identity/did-key.ts'
import {
  ANSWER_SIGNING_KIND,
  OFFER_SIGNING_KIND,
  MAX_SDP_BYTES,
  ReplayCache,
  signAnswer,
  verifyOffer,
} from '../src/net/webrtc/signal.ts'
import { CHANNEL_LABEL, WebRtcAnswerer } from '../src/net/webrtc/peer.ts'
import { serveChannel } from '../src/net/webrtc/channel.ts'
import * as client from '../web/src/webrtc-client.ts'

after(() => nodeDataChannel.cleanup())

const FINGERPRINT = Array.from({ length: 32 }, (_, i) => (i * 7).toString(16).padStart(2, '0').toUpperCase()).join(':')
const SDP = [
  'v=0',
  'o=- 1 1 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0',
  'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
  'c=IN IP4 0.0.0.0',
  'a=mid:0',
  `a=fingerprint:sha-256 ${FINGERPRINT}`,
  'a=setup:actpass',
  'a=sctp-port:5000',
  'a=candidate:1 1 UDP 2122317823 127.0.0.1 50000 typ host',
  '',
].join('\r\n')

test('the constants are the node’s', () => {
  assert.equal(client.OFFER_SIGNING_KIND, OFFER_SIGNING_KIND)
  assert.equal(client.ANSWER_SIGNING_KIND, ANSWER_SIGNING_KIND)
  assert.equal(client.CHANNEL_LABEL, CHANNEL_LABEL)
  assert.equal(client.MAX_SDP_BYTES, MAX_SDP_BYTES)
})

const sameBytes = (a: Uint8Array, b: Uint8Array): void =>
  assert.equal(Buffer.from(a).toString('hex'), Buffer.from(b).toString('hex'))

test('encodeFlatMap is @ipld/dag-cbor, byte for byte (offers, answers, every length and integer width)', () => {
  const field = fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'grapheme', maxLength: 40 }))
  const integer = fc.oneof(
    fc.constantFrom(0, 23, 24, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER),
    fc.maxSafeNat(),
  )
  fc.assert(
    fc.property(field, field, field, field, integer, (did, nonce, sdp, target, timestamp) => {
      const offer = { did, nonce, sdp, target, timestamp }
      sameBytes(client.encodeFlatMap(offer), encode(offer))
      const answer = { timestamp, sdp, nonce, did }
      sameBytes(client.encodeFlatMap(answer), encode(answer))
    }),
    { numRuns: 300 },
  )
  fc.assert(
    fc.property(fc.dictionary(fc.string({ maxLength: 30 }), fc.oneof(fc.string(), fc.maxSafeNat())), (map) => {
      sameBytes(client.encodeFlatMap(map), encode(map))
    }),
    { numRuns: 300 },
  )
  // long strings: 1-, 2- and 4-byte length heads (an SDP is up to 16 KiB)
  for (const length of [23, 24, 255, 256, 16_384, 65_535, 65_536]) {
    const map = { did: 'x', sdp: 'é'.repeat(length / 2) + 'a'.repeat(length % 2), timestamp: 1 }
    sameBytes(client.encodeFlatMap(map), encode(map))
  }
  assert.throws(() => client.encodeFlatMap({ timestamp: -1 }), TypeError)
  assert.throws(() => client.encodeFlatMap({ timestamp: 1.5 }), TypeError)
})

test('base58btc and did:key agree with multiformats and identity/did-key.ts', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      const text = client.base58btcEncode(bytes)
      assert.equal(`z${text}`, base58btc.encode(bytes))
      assert.deepEqual(client.base58btcDecode(text), bytes)
    }),
    { numRuns: 300 },
  )
  for (let i = 0; i < 20; i++) {
    const key = Ed25519KeyPair.generate()
    const did = didFromEd25519PublicKey(key.publicKey)
    assert.equal(client.didFromPublicKey(key.publicKey), did)
    assert.deepEqual(client.publicKeyFromDid(did), key.publicKey)
  }
  assert.throws(() => client.publicKeyFromDid('did:key:z6LS'), { code: 'SIGNAL_MALFORMED' })
  assert.throws(() => client.publicKeyFromDid('did:web:example.org'), { code: 'SIGNAL_MALFORMED' })
})

test('an offer signed in the browser module passes the node’s verifyOffer; tampering does not', async () => {
  const identity = await client.createIdentity()
  const node = Ed25519KeyPair.generate()
  const self = didFromEd25519PublicKey(node.publicKey)
  const now = Date.now()
  const offer = await client.signOffer(identity, { sdp: SDP, target: self, timestamp: now })
  assert.match(identity.did, /^did:key:z6Mk/)
  assert.match(offer.nonce, /^[0-9a-f]{32}$/)
  const replay = new ReplayCache()
  const verified = verifyOffer(JSON.parse(JSON.stringify(offer)), { self, now, replay })
  assert.equal(verified.did, identity.did)
  assert.equal(verified.fingerprint, FINGERPRINT)
  // the same offer again is a replay; any changed field breaks the signature
  assert.throws(() => verifyOffer(offer, { self, now, replay }), { name: 'ReplayedSignalError' })
  const fresh = (): ReplayCache => new ReplayCache()
  for (const changed of [
    { ...offer, sdp: offer.sdp.replace('50000', '50001') },
    { ...offer, timestamp: offer.timestamp + 1 },
    { ...offer, nonce: '0'.repeat(32) },
  ]) {
    assert.throws(() => verifyOffer(changed, { self, now, replay: fresh() }), { name: 'BadSignalSignatureError' })
  }
  const other = didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey)
  assert.throws(() => verifyOffer(offer, { self: other, now, replay: fresh() }), { name: 'WrongPeerError' })
})

test('an answer the node signs passes the browser module’s verifyAnswer; tampering is refused with the node’s codes', async () => {
  const node = Ed25519KeyPair.generate()
  const did = didFromEd25519PublicKey(node.publicKey)
  const now = Date.now()
  const offer = { nonce: 'ab'.repeat(16) }
  const answer = signAnswer(node, offer, { sdp: SDP, timestamp: now })
  const verified = await client.verifyAnswer(JSON.parse(JSON.stringify(answer)), offer, { expectedDid: did, now })
  assert.deepEqual(verified, { did, sdp: SDP, timestamp: now, nonce: offer.nonce, fingerprint: FINGERPRINT })

  const refused = async (value: unknown, code: string, options = { expectedDid: did, now }): Promise<void> => {
    await assert.rejects(client.verifyAnswer(value, offer, options), { name: 'WebRtcClientError', code })
  }
  const impostor = Ed25519KeyPair.generate()
  await refused(signAnswer(impostor, offer, { sdp: SDP, timestamp: now }), 'SIGNAL_WRONG_PEER')
  await refused({ ...answer, did: didFromEd25519PublicKey(impostor.publicKey) }, 'SIGNAL_WRONG_PEER')
  await refused(signAnswer(node, { nonce: 'cd'.repeat(16) }, { sdp: SDP, timestamp: now }), 'SIGNAL_REPLAYED')
  await refused(answer, 'SIGNAL_STALE', { expectedDid: did, now: now + 31_000 })
  await refused({ ...answer, sdp: SDP.replace('50000', '50001') }, 'SIGNAL_BAD_SIGNATURE')
  await refused({ ...answer, timestamp: now + 1 }, 'SIGNAL_BAD_SIGNATURE')
  await refused({ ...answer, signature: '' }, 'SIGNAL_UNSIGNED')
  await refused({ ...answer, signature: 'ab' }, 'SIGNAL_MALFORMED')
  await refused('an answer', 'SIGNAL_MALFORMED')
  const audio = SDP.replace('m=application 9 UDP/DTLS/SCTP webrtc-datachannel', 'm=audio 9 UDP/TLS/RTP/SAVPF 111')
  await refused(signAnswer(node, offer, { sdp: audio, timestamp: now }), 'SIGNAL_BAD_SDP')
  const twoPrints = SDP.replace('a=setup', `a=fingerprint:sha-256 ${FINGERPRINT.replace('00', 'FF')}\r\na=setup`)
  await refused(signAnswer(node, offer, { sdp: twoPrints, timestamp: now }), 'SIGNAL_BAD_SDP')
})

test('offerUrl: a base URL gets the offer route; an offer URL is kept', () => {
  assert.equal(client.offerUrl('http://127.0.0.1:26657'), 'http://127.0.0.1:26657/v1/webrtc/offer')
  assert.equal(client.offerUrl('https://n.example.org/node/'), 'https://n.example.org/node/v1/webrtc/offer')
  assert.equal(client.offerUrl('https://n.example.org/receive-offer'), 'https://n.example.org/receive-offer')
  assert.equal(client.offerUrl('http://h:1/v1/webrtc/offer'), 'http://h:1/v1/webrtc/offer')
})

// ---- a whole connection over loopback --------------------------------------------------------

async function body(req: IncomingMessage): Promise<unknown> {
  let text = ''
  for await (const chunk of req) text += String(chunk)
  return JSON.parse(text)
}

/** What the node's POST /v1/webrtc/offer does, on the library pieces: verify, answer, serve. */
async function signallingServer(): Promise<{ url: string; did: string; deleted: string[]; stop(): Promise<void> }> {
  const key = Ed25519KeyPair.generate()
  const replay = new ReplayCache()
  const deleted: string[] = []
  const answerer = new WebRtcAnswerer({
    key,
    onConnection: (connection) =>
      serveChannel(connection.channel, async (request, { progress, signal }) => {
        const r = request as { op: string; prompt?: string }
        if (r.op === 'info') return { did: answerer.did, models: [{ name: 'echo-lm', kind: 'lm', workers: 1 }] }
        if (r.op === 'slow') {
          await new Promise((resolve) => signal.addEventListener('abort', resolve))
          return null
        }
        const words = (r.prompt ?? '').split(' ')
        for (const [i, word] of words.entries()) await progress({ token: i === 0 ? word : ` ${word}` })
        return {
          text: words.join(' '),
          finishReason: 'stop',
          completionTokens: words.length,
          promptTokens: 3,
          model: 'echo-lm',
        }
      }),
  })
  let sessions = 0
  const server: Server = createServer((req, res) => {
    void (async () => {
      if (req.method === 'POST' && req.url === '/v1/webrtc/offer') {
        try {
          const verified = verifyOffer(await body(req), { self: answerer.did, now: Date.now(), replay })
          const answer = await answerer.answer(verified)
          res.writeHead(201, { 'content-type': 'application/json', location: `/v1/webrtc/sessions/${++sessions}` })
          res.end(JSON.stringify(answer))
        } catch (err) {
          const e = err as { code?: string; statusCode?: number; message: string }
          res.writeHead(e.statusCode ?? 500, { 'content-type': 'application/json' })
          res.end(JSON.stringify({ error: { code: e.code ?? 'INTERNAL', message: e.message } }))
        }
      } else if (req.method === 'DELETE') {
        deleted.push(req.url ?? '')
        res.writeHead(204).end()
      } else {
        res.writeHead(404).end()
      }
    })()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    did: answerer.did,
    deleted,
    stop: async () => {
      answerer.stop()
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

const polyfill = RTCPeerConnection as unknown as client.PeerConnectionConstructor

test('connect: signed offer over HTTP, verified answer, open channel, info, a streamed chat, cancel, close', async (t) => {
  const node = await signallingServer()
  try {
    const phases: string[] = []
    const started = performance.now()
    const session = await client.connect({
      endpoint: node.url,
      did: node.did,
      peerConnection: polyfill,
      onPhase: (phase) => phases.push(phase),
    })
    t.diagnostic(`connected in ${(performance.now() - started).toFixed(0)} ms (${session.certificateCheck} check)`)
    assert.deepEqual(phases, ['gathering', 'signalling', 'verifying', 'connecting', 'open'])
    assert.equal(session.did, node.did)
    assert.match(session.localDid, /^did:key:z6Mk/)
    assert.match(session.fingerprint, /^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/)
    // the polyfill exposes no certificate (an empty DER) and no certificate stats
    assert.equal(session.certificateCheck, 'sdp')
    assert.equal(session.sessionUrl, `${node.url}/v1/webrtc/sessions/1`)

    assert.deepEqual(await client.requestInfo(session.client), {
      did: node.did,
      models: [{ name: 'echo-lm', kind: 'lm', workers: 1 }],
    })
    const tokens: string[] = []
    const answer = await client.requestChat(
      session.client,
      { prompt: 'Call me Ishmael some years ago' },
      { onToken: (token) => tokens.push(token) },
    )
    assert.deepEqual(answer, {
      text: 'Call me Ishmael some years ago',
      finishReason: 'stop',
      completionTokens: 6,
      promptTokens: 3,
      model: 'echo-lm',
    })
    assert.equal(tokens.join(''), answer.text)
    assert.equal(tokens.length, 6)

    const abort = new AbortController()
    const slow = session.client.request({ op: 'slow' }, { signal: abort.signal })
    abort.abort()
    await assert.rejects(slow, { code: 'ABORTED' })
    await assert.rejects(session.client.request({ op: 'slow' }, { timeoutMs: 50 }), { code: 'TIMEOUT' })
    assert.equal(session.client.inFlight, 0)

    await session.close()
    await session.closed
    assert.deepEqual(node.deleted, ['/v1/webrtc/sessions/1'])
    await assert.rejects(client.requestInfo(session.client), { code: 'CLOSED' })
  } finally {
    await node.stop()
  }
})

test('connect refuses an answer from another DID than the directory named, and a certificate the answer did not sign', async () => {
  const node = await signallingServer()
  try {
    const other = didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey)
    // the node refuses an offer made out to someone else (its code reaches the caller)
    await assert.rejects(client.connect({ endpoint: node.url, did: other, peerConnection: polyfill }), {
      code: 'SIGNAL_WRONG_PEER',
    })
    // a browser that exposes the DTLS certificate: one that is not the signed one is refused
    class WrongCertificate extends (RTCPeerConnection as unknown as new (c: unknown) => object) {
      get sctp(): unknown {
        return { transport: { getRemoteCertificates: () => [new Uint8Array([1, 2, 3]).buffer] } }
      }
    }
    await assert.rejects(
      client.connect({
        endpoint: node.url,
        did: node.did,
        peerConnection: WrongCertificate as unknown as client.PeerConnectionConstructor,
      }),
      { code: 'FINGERPRINT_MISMATCH' },
    )
    // unreachable endpoint
    await assert.rejects(client.connect({ endpoint: 'http://127.0.0.1:9', did: node.did, peerConnection: polyfill }), {
      code: 'CONNECT_FAILED',
    })
  } finally {
    await node.stop()
  }
})
