/**
 * WebRTC signalling (issue 13, part 3): seed 004's `POST /receive-offer`, in the shape of WHIP
 * (RFC 9725: POST the offer, 201 with the answer and a session URL in `Location`, PATCH to
 * trickle, DELETE to hang up) but with JSON bodies, because offer and answer carry signatures
 * (net/webrtc/signal.ts). Registered by createApiServer when the node has a WebRtcApi.
 *
 *   POST   /v1/webrtc/offer          (alias POST /receive-offer)  SignedOffer -> 201 SignedAnswer,
 *                                     Location: /v1/webrtc/sessions/<id>
 *   PATCH  /v1/webrtc/sessions/:id   { candidates: [{ candidate, mid }] } -> 204; 404 unknown session
 *   DELETE /v1/webrtc/sessions/:id   -> 204 (the peer connection is closed); 404 unknown session
 *   GET    /v1/webrtc/sessions       (operator) -> { sessions: WebRtcSessionView[] }
 *
 * Refusals (`{ error: { code, message } }`, the code being the SignalError's): 400 malformed
 * (SIGNAL_MALFORMED, SIGNAL_BAD_SDP), 401 unsigned, badly signed or stale (SIGNAL_UNSIGNED,
 * SIGNAL_BAD_SIGNATURE, SIGNAL_STALE), 403 addressed to another DID (SIGNAL_WRONG_PEER), 409
 * replayed (SIGNAL_REPLAYED), 413 an SDP over 16 KiB or a body over 20 KiB, 429 too many offers
 * from this address (SIGNAL_RATE_LIMITED, with Retry-After) or a full replay cache (SIGNAL_BUSY),
 * 503 every session slot taken (WEBRTC_TOO_MANY_CONNECTIONS), 502 ICE gathering failed
 * (WEBRTC_CONNECT_FAILED). Every refusal happens before a PeerConnection exists.
 *
 * Cross-origin: POST, PATCH and DELETE here answer pages on ANY origin (CORS `*`, preflight
 * included, `Location` exposed), and the API's Host/Origin checks skip them (`anyOrigin`,
 * host-check.ts). The browser offerer runs on another node's dashboard, a different origin, and
 * these routes hold no ambient authority: no cookie or token is read, the offer is authenticated
 * by its signature, a session by its unguessable id. Preflights also grant Chrome's Private
 * Network Access (a public page calling a node on a LAN or loopback address). The operator's GET
 * /v1/webrtc/sessions keeps every check.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import Type from '../schema-builder.ts'
import { OPERATOR_SECURITY, requireOperator } from '../auth.ts'
import { clientKey } from '../client-key.ts'
import { ERROR_RESPONSES } from '../schemas.ts'
import type { WebRtcApi, WebRtcCandidate } from '../webrtc-api.ts'

type Static<T extends Type.TSchema> = Type.Static<T>

/** Largest signalling body: a 16 KiB SDP (MAX_SDP_BYTES), its JSON escapes and the other fields. */
export const MAX_SIGNAL_BODY_BYTES = 20 * 1024
/** Path of a session, as `Location` gives it. */
export const sessionPath = (id: string): string => `/v1/webrtc/sessions/${id}`

/** CORS of the public signalling routes (@fastify/cors per-route options). */
const SIGNAL_CORS = {
  origin: '*',
  methods: 'POST, PATCH, DELETE',
  allowedHeaders: 'content-type',
  exposedHeaders: 'Location',
  maxAge: 600,
  preflightContinue: true,
}
const PUBLIC = { anyOrigin: true, cors: SIGNAL_CORS }

const Did = Type.String({ maxLength: 256, description: 'an Ed25519 did:key' })
const OfferBody = Type.Object(
  {
    did: Did,
    sdp: Type.String({ description: 'the complete SDP (every candidate gathered), at most 16 KiB of UTF-8' }),
    timestamp: Type.Integer({ minimum: 0, description: 'milliseconds since the Unix epoch, within ±30 s' }),
    nonce: Type.String({ maxLength: 64, description: '16 random bytes, 32 lowercase hex digits; once per DID' }),
    target: Type.String({
      maxLength: 256,
      description: "this node's DID (GET /v1/status): offers to others are refused",
    }),
    // optional here so that an unsigned offer is refused as such (401 SIGNAL_UNSIGNED), not as a shape error
    signature: Type.Optional(
      Type.String({
        maxLength: 256,
        description: 'Ed25519 over dag-cbor { did, nonce, sdp, target, timestamp }, kind webrtc.offer, 128 hex',
      }),
    ),
  },
  { additionalProperties: false, description: 'a signed offer (net/webrtc/signal.ts)' },
)
const AnswerJson = Type.Object(
  {
    did: Type.String(),
    sdp: Type.String(),
    timestamp: Type.Integer(),
    nonce: Type.String({ description: "the offer's nonce, echoed" }),
    signature: Type.String({ description: 'Ed25519 over dag-cbor { did, nonce, sdp, timestamp }, kind webrtc.answer' }),
  },
  { description: "the node's signed answer: check it with verifyAnswer, and the DTLS certificate against its SDP" },
)
const SessionParams = Type.Object({ id: Type.String({ pattern: '^[0-9a-f]{32}$' }) })
const CandidatesBody = Type.Object(
  {
    candidates: Type.Array(
      Type.Object(
        {
          candidate: Type.String({ maxLength: 512, description: 'RTCIceCandidate.candidate; "" ends them' }),
          mid: Type.String({ maxLength: 32, description: 'RTCIceCandidate.sdpMid' }),
        },
        { additionalProperties: false },
      ),
      { maxItems: 64 },
    ),
  },
  { additionalProperties: false },
)
const SessionJson = Type.Object({
  id: Type.String(),
  peer: Type.String({ description: "the offerer's DID, as its signature proved" }),
  state: Type.Union([Type.Literal('connecting'), Type.Literal('connected'), Type.Literal('closed')]),
  openedAt: Type.Integer(),
  requests: Type.Integer(),
})

async function receiveOffer(webrtc: WebRtcApi, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  try {
    const { id, answer } = await webrtc.receiveOffer(request.body, clientKey(request.ip))
    return reply.code(201).header('location', sessionPath(id)).send(answer)
  } catch (err) {
    const retryAfterMs = (err as { retryAfterMs?: unknown }).retryAfterMs
    if (typeof retryAfterMs === 'number') void reply.header('retry-after', String(Math.ceil(retryAfterMs / 1000)))
    throw err
  }
}

/** The preflight of a public route: @fastify/cors wrote the CORS headers; Chrome's PNA is granted here. */
async function preflight(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (request.headers['access-control-request-private-network'] === 'true')
    void reply.header('access-control-allow-private-network', 'true')
  return reply.code(204).header('content-length', '0').send()
}

function webrtcRouteTable(webrtc: WebRtcApi): RouteOptions[] {
  const offer = (url: string, summary: string): RouteOptions => ({
    method: 'POST',
    url,
    bodyLimit: MAX_SIGNAL_BODY_BYTES,
    config: PUBLIC,
    schema: {
      summary,
      description:
        'Verifies the signed offer (signature over the whole SDP, ±30 s freshness, addressed to this node, nonce used once, data-channel-only SDP of at most 16 KiB) before any WebRTC object exists, then answers it signed. Open to pages on any origin. Rate-limited per client address (IPv6 by /64); 503 when every session slot is taken.',
      tags: ['webrtc'],
      body: OfferBody,
      response: { 201: AnswerJson, ...ERROR_RESPONSES },
    },
    handler: async (request, reply) => receiveOffer(webrtc, request, reply),
  })
  const options = (url: string): RouteOptions => ({
    method: 'OPTIONS',
    url,
    config: PUBLIC,
    schema: { hide: true },
    handler: preflight,
  })
  return [
    offer('/v1/webrtc/offer', 'Answer a signed WebRTC offer (WHIP-style; JSON because it is signed)'),
    offer('/receive-offer', "Seed 004's name for POST /v1/webrtc/offer"),
    {
      method: 'PATCH',
      url: '/v1/webrtc/sessions/:id',
      bodyLimit: MAX_SIGNAL_BODY_BYTES,
      config: PUBLIC,
      schema: {
        summary: 'Trickle ICE candidates into a session (the id from Location is the capability)',
        tags: ['webrtc'],
        params: SessionParams,
        body: CandidatesBody,
        response: ERROR_RESPONSES,
      },
      handler: async (request, reply) => {
        const { id } = request.params as Static<typeof SessionParams>
        const { candidates } = request.body as { candidates: WebRtcCandidate[] }
        webrtc.addCandidates(id, candidates)
        return reply.code(204).send()
      },
    },
    {
      method: 'DELETE',
      url: '/v1/webrtc/sessions/:id',
      config: PUBLIC,
      schema: {
        summary: 'Hang up: close the session\u2019s peer connection',
        tags: ['webrtc'],
        params: SessionParams,
        response: ERROR_RESPONSES,
      },
      handler: async (request, reply) => {
        webrtc.close((request.params as Static<typeof SessionParams>).id)
        return reply.code(204).send()
      },
    },
    {
      method: 'GET',
      url: '/v1/webrtc/sessions',
      onRequest: requireOperator,
      schema: {
        summary: 'WebRTC sessions: live ones, then the recently closed',
        tags: ['webrtc'],
        security: OPERATOR_SECURITY,
        response: { 200: Type.Object({ sessions: Type.Array(SessionJson) }), ...ERROR_RESPONSES },
      },
      handler: async () => ({ sessions: webrtc.sessions() }),
    },
    options('/v1/webrtc/offer'),
    options('/receive-offer'),
    options('/v1/webrtc/sessions/:id'),
  ]
}

export const webrtcRoutes: FastifyPluginAsync<{ webrtc: WebRtcApi }> = async (app, options) => {
  for (const route of webrtcRouteTable(options.webrtc)) app.route(route)
}
