// The WebRTC signalling routes over the real server code (createApiServer: schemas, body limit,
// error handler, Host/Origin checks, CORS) and a test double of WebRtcApi that records what it
// was given and throws what it is told to. The real NodeWebRtc behind real HTTP is in
// test/attacks/webrtc-routes.test.ts and test/webrtc-node.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { FastifyInstance } from 'fastify'
import { generateApiToken } from './auth.ts'
import { NotFoundError } from './errors.ts'
import { createApiServer } from './server.ts'
import type { ErrorJson } from './schemas.ts'
import type { WebRtcApi, WebRtcCandidate, WebRtcSessionView } from './webrtc-api.ts'
import { MAX_SIGNAL_BODY_BYTES } from './routes/webrtc.ts'
import {
  BadSignalSignatureError,
  OfferRateLimitedError,
  ReplayedSignalError,
  SdpTooLargeError,
  StaleSignalError,
  UnsignedSignalError,
  WrongPeerError,
  type SignedAnswer,
} from '../net/webrtc/signal.ts'
import { TooManyConnectionsError, WebRtcConnectError } from '../net/webrtc/peer.ts'

import { actor, makeGenesis } from '../../test/helpers/chain.ts'
import { MemoryChain } from '../../test/helpers/memory-chain.ts'

const TOKEN = generateApiToken()
const SESSION = '0123456789abcdef0123456789abcdef'
const ANSWER: SignedAnswer = {
  did: 'did:key:z6MkanswererXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX',
  sdp: 'v=0\r\n',
  timestamp: 1_700_000_000_000,
  nonce: 'ab'.repeat(16),
  signature: 'cd'.repeat(64),
}
const OFFER = {
  did: 'did:key:z6Mkofferer',
  sdp: 'v=0\r\n',
  timestamp: 1_700_000_000_000,
  nonce: 'ab'.repeat(16),
  target: ANSWER.did,
  signature: 'ef'.repeat(64),
}

interface FakeWebRtc extends WebRtcApi {
  offers: Array<{ offer: unknown; client: string }>
  candidates: Array<{ id: string; candidates: WebRtcCandidate[] }>
  closed: string[]
  /** The next receiveOffer throws this. */
  fail?: Error
}

function fakeWebRtc(): FakeWebRtc {
  const fake: FakeWebRtc = {
    did: ANSWER.did,
    offers: [],
    candidates: [],
    closed: [],
    receiveOffer: async (offer, client) => {
      fake.offers.push({ offer, client })
      if (fake.fail !== undefined) throw fake.fail
      return { id: SESSION, answer: ANSWER }
    },
    addCandidates: (id, candidates) => {
      if (id !== SESSION) throw new NotFoundError('no such session')
      fake.candidates.push({ id, candidates })
    },
    close: (id) => {
      if (id !== SESSION) throw new NotFoundError('no such session')
      fake.closed.push(id)
    },
    sessions: (): WebRtcSessionView[] => [
      { id: SESSION, peer: OFFER.did, state: 'connected', openedAt: 1_700_000_000_000, requests: 3 },
    ],
  }
  return fake
}

async function withApp(fn: (app: FastifyInstance, fake: FakeWebRtc) => Promise<void>): Promise<void> {
  const validator = actor()
  const fake = fakeWebRtc()
  const app = createApiServer({
    chain: new MemoryChain({ genesis: makeGenesis([validator], []), validators: [validator] }),
    webrtc: fake,
    operatorToken: TOKEN,
  })
  try {
    await fn(app, fake)
  } finally {
    await app.close()
  }
}

const errorCode = (body: string): string => (JSON.parse(body) as ErrorJson).error.code

test('POST /v1/webrtc/offer and /receive-offer answer 201 with the signed answer and the session in Location', async () => {
  await withApp(async (app, fake) => {
    for (const url of ['/v1/webrtc/offer', '/receive-offer']) {
      const res = await app.inject({ method: 'POST', url, payload: OFFER })
      assert.equal(res.statusCode, 201, res.body)
      assert.equal(res.headers.location, `/v1/webrtc/sessions/${SESSION}`)
      assert.deepEqual(res.json(), ANSWER)
    }
    assert.deepEqual(fake.offers[0]?.offer, OFFER)
    assert.equal(fake.offers[0]?.client, '127.0.0.1')
    // an IPv6 client is charged by its /64, an IPv4-mapped one as IPv4
    await app.inject({ method: 'POST', url: '/v1/webrtc/offer', payload: OFFER, remoteAddress: '2001:db8:1:2:3:4:5:6' })
    await app.inject({ method: 'POST', url: '/v1/webrtc/offer', payload: OFFER, remoteAddress: '::ffff:192.0.2.7' })
    assert.deepEqual(
      fake.offers.slice(2).map((o) => o.client),
      ['2001:db8:1:2::/64', '192.0.2.7'],
    )
  })
})

test('each SignalError answers with its status and code; 429 carries Retry-After', async () => {
  await withApp(async (app, fake) => {
    const cases: Array<[Error, number, string]> = [
      [new UnsignedSignalError('not signed'), 401, 'SIGNAL_UNSIGNED'],
      [new BadSignalSignatureError('bad'), 401, 'SIGNAL_BAD_SIGNATURE'],
      [new StaleSignalError('stale'), 401, 'SIGNAL_STALE'],
      [new WrongPeerError('not me'), 403, 'SIGNAL_WRONG_PEER'],
      [new ReplayedSignalError('again'), 409, 'SIGNAL_REPLAYED'],
      [new SdpTooLargeError('big'), 413, 'SIGNAL_SDP_TOO_LARGE'],
      [new OfferRateLimitedError('slow down', 2_500), 429, 'SIGNAL_RATE_LIMITED'],
      [new TooManyConnectionsError('full'), 503, 'WEBRTC_TOO_MANY_CONNECTIONS'],
      [new WebRtcConnectError('no candidate'), 502, 'WEBRTC_CONNECT_FAILED'],
    ]
    for (const [err, status, code] of cases) {
      fake.fail = err
      const res = await app.inject({ method: 'POST', url: '/v1/webrtc/offer', payload: OFFER })
      assert.equal(res.statusCode, status, `${err.name}: ${res.body}`)
      assert.equal(errorCode(res.body), code)
      assert.equal(res.headers['retry-after'], status === 429 ? '3' : undefined)
    }
  })
})

test('the body: at most 20 KiB, no unknown fields, typed; an unsigned offer reaches the verifier (401, not 400)', async () => {
  await withApp(async (app, fake) => {
    const big = await app.inject({
      method: 'POST',
      url: '/v1/webrtc/offer',
      payload: { ...OFFER, sdp: 'x'.repeat(MAX_SIGNAL_BODY_BYTES) },
    })
    assert.equal(big.statusCode, 413)
    const extra = await app.inject({ method: 'POST', url: '/v1/webrtc/offer', payload: { ...OFFER, admin: true } })
    assert.equal(extra.statusCode, 400)
    const typed = await app.inject({ method: 'POST', url: '/v1/webrtc/offer', payload: { ...OFFER, timestamp: 'now' } })
    assert.equal(typed.statusCode, 400)
    assert.equal(fake.offers.length, 0, 'refused by the schema before the WebRtcApi')
    const unsigned: Record<string, unknown> = { ...OFFER }
    delete unsigned['signature']
    const res = await app.inject({ method: 'POST', url: '/v1/webrtc/offer', payload: unsigned })
    assert.equal(res.statusCode, 201)
    assert.equal(fake.offers.length, 1)
  })
})

test('PATCH trickles candidates, DELETE hangs up; an unknown session is 404, a malformed id 400', async () => {
  await withApp(async (app, fake) => {
    const candidates = [{ candidate: 'candidate:1 1 udp 2122260223 192.0.2.1 50000 typ host', mid: '0' }]
    const patched = await app.inject({
      method: 'PATCH',
      url: `/v1/webrtc/sessions/${SESSION}`,
      payload: { candidates },
    })
    assert.equal(patched.statusCode, 204, patched.body)
    assert.deepEqual(fake.candidates, [{ id: SESSION, candidates }])
    const other = 'f'.repeat(32)
    const unknown = await app.inject({ method: 'PATCH', url: `/v1/webrtc/sessions/${other}`, payload: { candidates } })
    assert.equal(unknown.statusCode, 404)
    const tooMany = await app.inject({
      method: 'PATCH',
      url: `/v1/webrtc/sessions/${SESSION}`,
      payload: { candidates: new Array(65).fill(candidates[0]) },
    })
    assert.equal(tooMany.statusCode, 400)
    assert.equal((await app.inject({ method: 'DELETE', url: `/v1/webrtc/sessions/${SESSION}` })).statusCode, 204)
    assert.deepEqual(fake.closed, [SESSION])
    assert.equal((await app.inject({ method: 'DELETE', url: `/v1/webrtc/sessions/${other}` })).statusCode, 404)
    assert.equal((await app.inject({ method: 'DELETE', url: '/v1/webrtc/sessions/..%2Fx' })).statusCode, 400)
  })
})

test('GET /v1/webrtc/sessions is an operator route', async () => {
  await withApp(async (app) => {
    assert.equal((await app.inject({ method: 'GET', url: '/v1/webrtc/sessions' })).statusCode, 401)
    const res = await app.inject({
      method: 'GET',
      url: '/v1/webrtc/sessions',
      headers: { authorization: `Bearer ${TOKEN}` },
    })
    assert.equal(res.statusCode, 200)
    assert.deepEqual(res.json(), {
      sessions: [{ id: SESSION, peer: OFFER.did, state: 'connected', openedAt: 1_700_000_000_000, requests: 3 }],
    })
  })
})

test('cross-origin: a page on another node’s dashboard may signal here (preflight, CORS *, Location exposed, PNA); nothing else opens', async () => {
  await withApp(async (app) => {
    const origin = 'http://192.0.2.9:26657'
    const preflight = await app.inject({
      method: 'OPTIONS',
      url: '/v1/webrtc/offer',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
        'access-control-request-private-network': 'true',
      },
    })
    assert.equal(preflight.statusCode, 204, preflight.body)
    assert.equal(preflight.headers['access-control-allow-origin'], '*')
    assert.match(String(preflight.headers['access-control-allow-methods']), /POST/)
    assert.equal(preflight.headers['access-control-allow-headers'], 'content-type')
    assert.equal(preflight.headers['access-control-allow-private-network'], 'true')
    const post = await app.inject({ method: 'POST', url: '/v1/webrtc/offer', headers: { origin }, payload: OFFER })
    assert.equal(post.statusCode, 201, post.body)
    assert.equal(post.headers['access-control-allow-origin'], '*')
    assert.equal(post.headers['access-control-expose-headers'], 'Location')
    // the seed's alias and the session routes too, preflight first (DELETE and PATCH are not simple methods)
    for (const [method, url] of [
      ['POST', '/receive-offer'],
      ['DELETE', `/v1/webrtc/sessions/${SESSION}`],
      ['PATCH', `/v1/webrtc/sessions/${SESSION}`],
    ] as const) {
      const pre = await app.inject({
        method: 'OPTIONS',
        url,
        headers: { origin, 'access-control-request-method': method },
      })
      assert.equal(pre.statusCode, 204, `${method} ${url}: ${pre.body}`)
      assert.match(String(pre.headers['access-control-allow-methods']), new RegExp(method))
    }
    const hangUp = await app.inject({ method: 'DELETE', url: `/v1/webrtc/sessions/${SESSION}`, headers: { origin } })
    assert.equal(hangUp.statusCode, 204)
    assert.equal(hangUp.headers['access-control-allow-origin'], '*')
    // reached under a name the node does not answer for: still signalling (no authority to rebind)
    const named = await app.inject({
      method: 'POST',
      url: '/v1/webrtc/offer',
      headers: { host: 'node-b.example.org:26657', origin },
      payload: OFFER,
    })
    assert.equal(named.statusCode, 201)

    // everything else keeps its checks: the operator's session list, the rest of the API
    const list = await app.inject({
      method: 'GET',
      url: '/v1/webrtc/sessions',
      headers: { origin, authorization: `Bearer ${TOKEN}` },
    })
    assert.equal(list.statusCode, 403)
    assert.equal(errorCode(list.body), 'ORIGIN_NOT_ALLOWED')
    assert.equal(list.headers['access-control-allow-origin'], undefined)
    const status = await app.inject({ method: 'GET', url: '/v1/status', headers: { origin } })
    assert.equal(status.statusCode, 403)
    const rebound = await app.inject({ method: 'GET', url: '/v1/status', headers: { host: 'evil.example:26657' } })
    assert.equal(rebound.statusCode, 421)
    const otherPreflight = await app.inject({
      method: 'OPTIONS',
      url: '/v1/status',
      headers: { origin, 'access-control-request-method': 'GET' },
    })
    assert.notEqual(otherPreflight.headers['access-control-allow-origin'], '*')
  })
})
