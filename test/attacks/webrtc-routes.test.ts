// Attack (issue 13.3), signalling over HTTP: the node's POST /v1/webrtc/offer on a real HTTP
// server (createApiServer listening on loopback, the real NodeWebRtc on node-datachannel). Each
// refused offer — forged, replayed, addressed to another DID, stale, oversized, one too many from
// one client, one too many sessions — is refused with its status, and the counting
// PeerConnection factory shows that no PeerConnection was made for it.
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import nodeDataChannel from 'node-datachannel'
import { createApiServer } from '../../src/api/server.ts'
import { fakeInference } from '../../src/api/fake-inference.ts'
import { Ed25519KeyPair } from '../../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../../src/identity/did-key.ts'
import { signOffer, type SignedOffer } from '../../src/net/webrtc/signal.ts'
import { WebRtcOfferer, defaultPeerConnectionFactory, type PeerConnectionFactory } from '../../src/net/webrtc/peer.ts'
import { NodeWebRtc } from '../../src/node/webrtc.ts'
import { actor, makeGenesis } from '../helpers/chain.ts'
import { MemoryChain } from '../helpers/memory-chain.ts'
import { rawRequest, type RawResponse } from '../helpers/raw-http.ts'

after(() => nodeDataChannel.cleanup())

/** The node: an API server on loopback whose WebRTC answerer counts the PeerConnections it makes. */
async function startNode(options: { maxSessions?: number; burst?: number } = {}) {
  const key = Ed25519KeyPair.generate()
  let created = 0
  const factory: PeerConnectionFactory = (name, config) => {
    created++
    return defaultPeerConnectionFactory(name, config)
  }
  const webrtc = new NodeWebRtc({
    key,
    inference: fakeInference(),
    factory,
    maxSessions: options.maxSessions ?? 32,
    offerLimit: { burst: options.burst ?? 100, perMs: 60_000 },
    peer: { connectTimeoutMs: 60_000 },
  })
  const validator = actor()
  const app = createApiServer({
    chain: new MemoryChain({ genesis: makeGenesis([validator], []), validators: [validator] }),
    webrtc,
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const offer = (body: unknown, localAddress?: string, path = '/v1/webrtc/offer'): Promise<RawResponse> =>
    rawRequest(url, {
      method: 'POST',
      path,
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
      ...(localAddress === undefined ? {} : { localAddress }),
    })
  return {
    did: webrtc.did,
    webrtc,
    url,
    offer,
    created: () => created,
    stop: async () => {
      webrtc.stop()
      await app.close()
    },
  }
}

/** A real browser-like offer SDP (node-datachannel, host candidates), and a way to sign more. */
async function offerer(target: string) {
  const peer = new WebRtcOfferer({ key: Ed25519KeyPair.generate() })
  const pending = await peer.createOffer(target)
  const { sdp } = pending.offer
  return {
    offer: pending.offer,
    /** The same SDP signed by `key` with its own fresh nonce. */
    signed: (
      key = Ed25519KeyPair.generate(),
      fields: Partial<{ target: string; timestamp: number; sdp: string }> = {},
    ) =>
      signOffer(key, {
        sdp: fields.sdp ?? sdp,
        target: fields.target ?? target,
        timestamp: fields.timestamp ?? Date.now(),
      }),
    stop: () => peer.stop(),
  }
}

const code = (res: RawResponse): string => (JSON.parse(res.body) as { error: { code: string } }).error.code

function refused(res: RawResponse, status: number, errorCode: string): void {
  assert.equal(res.status, status, res.body)
  assert.equal(code(res), errorCode)
}

test('a forged signature is refused (401) and makes no PeerConnection', async (t) => {
  const node = await startNode()
  const o = await offerer(node.did)
  try {
    // Mallory claims the honest offerer's DID but signs with her own key
    const mallory = o.signed()
    const forged = { ...mallory, did: o.offer.did }
    refused(await node.offer(forged), 401, 'SIGNAL_BAD_SIGNATURE')
    // or swaps the SDP (her DTLS certificate) under the honest signature
    const swapped = o.offer.sdp.replace(
      /(a=fingerprint:sha-256 )(..)/,
      (_m, p: string, b: string) => p + (b === '00' ? '11' : '00'),
    )
    refused(await node.offer({ ...o.offer, sdp: swapped }), 401, 'SIGNAL_BAD_SIGNATURE')
    const unsigned: Record<string, unknown> = { ...o.offer }
    delete unsigned['signature']
    refused(await node.offer(unsigned), 401, 'SIGNAL_UNSIGNED')
    refused(await node.offer('{"did":'), 400, 'BAD_REQUEST')
    assert.equal(node.created(), 0)
    // the genuine offer still works: the refusals spent nothing of it
    const ok = await node.offer(o.offer)
    assert.equal(ok.status, 201, ok.body)
    assert.match(String(ok.headers.location), /^\/v1\/webrtc\/sessions\/[0-9a-f]{32}$/)
    assert.equal(node.created(), 1)
    t.diagnostic(`forged: ${code(await node.offer(forged))}`)
  } finally {
    o.stop()
    await node.stop()
  }
})

test('an offer replayed after its first use is refused (409); only the first made a PeerConnection', async () => {
  const node = await startNode()
  const o = await offerer(node.did)
  try {
    assert.equal((await node.offer(o.offer)).status, 201)
    refused(await node.offer(o.offer), 409, 'SIGNAL_REPLAYED')
    refused(await node.offer(o.offer, undefined, '/receive-offer'), 409, 'SIGNAL_REPLAYED')
    assert.equal(node.created(), 1)
  } finally {
    o.stop()
    await node.stop()
  }
})

test('an offer to another DID (403), a stale one (401) and an oversized SDP (413) make no PeerConnection', async () => {
  const node = await startNode()
  const o = await offerer(node.did)
  try {
    const elsewhere = didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey)
    refused(await node.offer(o.signed(undefined, { target: elsewhere })), 403, 'SIGNAL_WRONG_PEER')
    refused(await node.offer(o.signed(undefined, { timestamp: Date.now() - 31_000 })), 401, 'SIGNAL_STALE')
    refused(await node.offer(o.signed(undefined, { timestamp: Date.now() + 31_000 })), 401, 'SIGNAL_STALE')
    // 17 KB of SDP: within the 20 KiB body, over the 16 KiB SDP limit
    const padded = `${o.offer.sdp}a=x-pad:${'p'.repeat(17_000)}\r\n`
    refused(await node.offer(o.signed(undefined, { sdp: padded })), 413, 'SIGNAL_SDP_TOO_LARGE')
    // over the body limit: refused before it is parsed
    const huge = `${o.offer.sdp}a=x-pad:${'p'.repeat(30_000)}\r\n`
    refused(await node.offer(o.signed(undefined, { sdp: huge })), 413, 'PAYLOAD_TOO_LARGE')
    // not a data-channel SDP (an audio section)
    const audio = o.offer.sdp.replace(/m=application [^\r\n]+/, 'm=audio 9 UDP/TLS/RTP/SAVPF 111')
    refused(await node.offer(o.signed(undefined, { sdp: audio })), 400, 'SIGNAL_BAD_SDP')
    assert.equal(node.created(), 0)
  } finally {
    o.stop()
    await node.stop()
  }
})

test('a flood of offers from one client ends in 429 with Retry-After; another client address keeps its budget', async (t) => {
  const node = await startNode({ burst: 5 })
  const o = await offerer(node.did)
  try {
    const statuses: number[] = []
    for (let i = 0; i < 8; i++) {
      const forged = { ...o.signed(), did: o.offer.did } // cheap garbage: each costs a signature check
      statuses.push((await node.offer(forged, '127.0.0.2')).status)
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429, 429, 429])
    // a valid offer from the flooding client is refused too, before any verification
    const limited = await node.offer(o.signed(), '127.0.0.2')
    refused(limited, 429, 'SIGNAL_RATE_LIMITED')
    assert.ok(Number(limited.headers['retry-after']) >= 1, `Retry-After: ${String(limited.headers['retry-after'])}`)
    assert.equal(node.created(), 0)
    // someone else is served
    assert.equal((await node.offer(o.signed(), '127.0.0.3')).status, 201)
    assert.equal(node.created(), 1)
    t.diagnostic(`flood from 127.0.0.2: ${statuses.join(' ')}; retry after ${String(limited.headers['retry-after'])} s`)
  } finally {
    o.stop()
    await node.stop()
  }
})

test('too many sessions: the next offer is 503 before its signature is checked (its nonce stays usable)', async () => {
  const node = await startNode({ maxSessions: 2 })
  const o = await offerer(node.did)
  try {
    const first = await node.offer(o.signed())
    assert.equal(first.status, 201)
    assert.equal((await node.offer(o.signed())).status, 201)
    assert.equal(node.created(), 2)
    const third: SignedOffer = o.signed()
    refused(await node.offer(third), 503, 'WEBRTC_TOO_MANY_CONNECTIONS')
    assert.equal(node.created(), 2, 'no PeerConnection for the refused offer')
    // hang up one session (DELETE, as the offerer would); the same offer is then answered
    const hangUp = await rawRequest(node.url, { method: 'DELETE', path: String(first.headers.location) })
    assert.equal(hangUp.status, 204)
    assert.equal(node.webrtc.size, 1)
    assert.equal((await node.offer(third)).status, 201)
    assert.equal(node.created(), 3)
    // a closed session is gone for PATCH and DELETE
    assert.equal((await rawRequest(node.url, { method: 'DELETE', path: String(first.headers.location) })).status, 404)
  } finally {
    o.stop()
    await node.stop()
  }
})

test('trickle: PATCH takes well-formed candidates for a live session only, and a bounded number of them', async () => {
  const node = await startNode()
  const o = await offerer(node.did)
  try {
    const answered = await node.offer(o.offer)
    const path = String(answered.headers.location)
    const patch = (candidates: unknown, at = path): Promise<RawResponse> =>
      rawRequest(node.url, {
        method: 'PATCH',
        path: at,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ candidates }),
      })
    const good = { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', mid: '0' }
    assert.equal((await patch([good, { candidate: '', mid: '0' }])).status, 204)
    refused(
      await patch([{ candidate: 'candidate:1 1 udp 1 127.0.0.1 1 typ host\r\na=evil', mid: '0' }]),
      400,
      'SIGNAL_BAD_CANDIDATE',
    )
    refused(await patch([{ candidate: 'not a candidate', mid: '0' }]), 400, 'SIGNAL_BAD_CANDIDATE')
    refused(await patch([good], `/v1/webrtc/sessions/${'0'.repeat(32)}`), 404, 'NOT_FOUND')
    for (let i = 0; i < 63; i += 21) assert.equal((await patch(new Array(21).fill(good))).status, 204)
    refused(await patch([good]), 400, 'SIGNAL_BAD_CANDIDATE')
  } finally {
    o.stop()
    await node.stop()
  }
})
