/**
 * The node's HTTP API (Fastify). `createApiServer` wires the plugins (CORS, rate limit,
 * OpenAPI + Swagger UI) and the route plugins, and gives every failure the same shape:
 *
 *   { "error": { "code": "TX_REJECTED", "message": "...", "reason": "stale-nonce" } }
 *
 * with 400 (validation, with Fastify's message; bad DID; invalid transaction), 404, 409/503
 * (mempool conflicts, see routes/chain.ts), 401 (operator route without the token, auth.ts), 413
 * (body too large), 429 (rate limit), 421/403 (a Host or Origin this node does not answer,
 * host-check.ts), 503 (every event-stream slot taken, with Retry-After) or 500 (no internals: the
 * error goes to the log). Text that came from a peer (a worker's error) is cut and stripped of
 * control characters before it reaches an answer or a log (core/untrusted-text.ts). Timeouts and
 * body limits are in constants.ts (DEFAULT_API_TIMEOUTS, MAX_BODY_BYTES). The caller owns the
 * instance: `listen()` and `close()`.
 *
 * Besides /v1 it serves the event stream (GET /v1/events), Prometheus metrics (GET /metrics), the
 * OpenAPI document (/docs/json) and explorer (/docs), and the dashboard (the Vite build of web/)
 * at `/`, with index.html for any other page a browser asks for.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import cors from '@fastify/cors'
import fastifyStatic from '@fastify/static'
import rateLimit from '@fastify/rate-limit'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify'
import { DonghaeError, InvalidInputError } from '../core/errors.ts'
import { untrustedText } from '../core/untrusted-text.ts'
import type { Logger } from '../core/logger.ts'
import { MempoolError, TxError } from '../chain/errors.ts'
import { DidKeyError } from '../identity/errors.ts'
import type { ChainApi } from './chain-api.ts'
import type { NetApi } from './net-api.ts'
import { netRoutes } from './routes/net.ts'
import { DEFAULT_API_TIMEOUTS, DEFAULT_RATE_LIMIT, MAX_BODY_BYTES, type ApiTimeouts } from './constants.ts'
import { HostNotAllowedError, HostPolicy, OriginNotAllowedError } from './host-check.ts'
import { NotFoundError } from './errors.ts'
import { LazySerializers } from './serializers.ts'
import { LazyValidators } from './validators.ts'
import { chainRoutes, submitManyLimit } from './routes/chain.ts'
import { inferenceRoutes } from './routes/inference.ts'
import type { InferenceApi } from './inference-api.ts'
import type { ExpertsApi } from './experts-api.ts'
import { expertsRoutes, noExpertsRoutes, setExpertsApi } from './routes/experts.ts'
import { InferenceError } from '../inference/errors.ts'
import type { ErrorJson } from './schemas.ts'
import { OPERATOR_SCHEME, UnauthorizedError, setOperatorToken } from './auth.ts'
import type { EventBus } from './events.ts'
import type { NodeMetrics } from './metrics.ts'
import type { OperatorApi } from './operator-api.ts'
import { eventRoutes, TooManyStreamsError } from './routes/events.ts'
import { infoRoutes } from './routes/info.ts'
import { metricsRoutes } from './routes/metrics.ts'
import { operatorRoutes } from './routes/operator.ts'
import type { WebRtcApi } from './webrtc-api.ts'
import { webrtcRoutes } from './routes/webrtc.ts'
import { SignalError } from '../net/webrtc/signal.ts'
import { WebRtcConnectError } from '../net/webrtc/peer.ts'
import type { DirectoryApi } from './directory-api.ts'
import { directoryRoutes, noDirectoryRoutes } from './routes/directory.ts'
import type { WalletApi } from './wallet-api.ts'
import type { FlApi } from './fl-api.ts'
import { flRoutes } from './routes/fl.ts'
import type { GovernanceApi } from './governance-api.ts'
import type { ArenaApi } from './arena-api.ts'
import { arenaRoutes } from './routes/arena.ts'
import { governanceRoutes } from './routes/governance.ts'
import { noWalletRoutes, walletRoutes } from './routes/wallet.ts'
import type { ResourcesApi } from './resources-api.ts'
import { resourcesRoutes } from './routes/resources.ts'

export interface ApiServerOptions {
  chain: ChainApi
  /** Inference routes (/v1/models, /v1/infer, completions, settlements, workers). */
  inference?: InferenceApi
  /**
   * AI-Block's routes (routes/experts.ts: /v1/experts, /v1/p2p, /v1/security, /v1/operator/experts
   * and the seed's paths), and MoE answers to POST /chat with use_moe. Without it those paths
   * answer 404 saying the node runs no experts service.
   */
  experts?: ExpertsApi
  /** FL Alliance routes (routes/fl.ts: /v1/fl/tasks..., /v1/fl/blobs...). Without it those paths are 404. */
  fl?: FlApi
  /** Governance routes (routes/governance.ts: /v1/gov/...). Without it those paths are 404. */
  governance?: GovernanceApi
  /** AI Arena routes (routes/arena.ts: /v1/arena/...). Without it those paths are 404. */
  arena?: ArenaApi
  /** Network routes (/v1/net, /v1/did) when the node runs on libp2p. */
  net?: NetApi
  /** Signed WebRTC signalling (routes/webrtc.ts: /v1/webrtc/..., the seed's /receive-offer), open to any origin. */
  webrtc?: WebRtcApi
  /**
   * The DID directory's routes (routes/directory.ts: /v1/directory/..., the seed's /register and
   * /search, /v1/operator/directory/register). Without it those paths answer 404 saying the node
   * runs no directory.
   */
  directory?: DirectoryApi
  /**
   * The wallet's operator routes (routes/wallet.ts: /v1/operator/wallet/...). Without it they
   * answer 503 WALLET_LOCKED.
   */
  wallet?: WalletApi
  /** Request and error logs go here (component donghae:api). @default no logging */
  logger?: Logger
  /** Origins allowed to call the API from a browser (e.g. 'http://localhost:5173'). @default none */
  cors?: string[]
  /**
   * Host names the API answers for besides loopback and the address it listens on (config
   * apiAllowedHosts; host-check.ts): `name`, `name:port`, or `*` for any. @default none
   */
  allowedHosts?: string[]
  /** Server timeouts. @default DEFAULT_API_TIMEOUTS */
  timeouts?: Partial<ApiTimeouts>
  /** Event streams open at once, and per client address. @default MAX_EVENT_STREAMS, MAX_EVENT_STREAMS_PER_CLIENT */
  maxEventStreams?: number
  maxEventStreamsPerClient?: number
  /** Requests per client IP per window. @default DEFAULT_RATE_LIMIT */
  rateLimit?: { max: number; timeWindowMs: number }
  /** Largest request body in bytes. @default MAX_BODY_BYTES */
  bodyLimit?: number
  /** The node's event bus, served at GET /v1/events. */
  events?: EventBus
  /** SSE heartbeat interval. @default SSE_HEARTBEAT_MS */
  eventHeartbeatMs?: number
  /** The node's metrics, served at GET /metrics. */
  metrics?: NodeMetrics
  /** The node's resource samples, served at GET /v1/node/resources (routes/resources.ts). */
  resources?: ResourcesApi
  /** Operator token (auth.ts): without it every operator route answers 401. */
  operatorToken?: string
  /** Operator routes (/v1/operator/...), which act with the node's key. */
  operator?: OperatorApi
  /** Directory of the built dashboard (web/dist), served at `/`. */
  dashboardDir?: string
}

/** The dashboard's build output in a checkout (`vite build` of web/; scripts/build-web.ts), or DONGHAE_DASHBOARD_DIR. */
export const DASHBOARD_DIR =
  process.env.DONGHAE_DASHBOARD_DIR || fileURLToPath(new URL('../../web/dist', import.meta.url))

/** Path prefixes that are never the dashboard: unknown paths under them are 404 JSON. */
const API_PREFIXES = ['/v1', '/docs', '/metrics']

/** A browser asking for a page the dashboard routes itself (SPA fallback to index.html). */
function isPageRequest(request: FastifyRequest): boolean {
  const path = request.url.split('?')[0] ?? '/'
  if (request.method !== 'GET' && request.method !== 'HEAD') return false
  if (API_PREFIXES.some((p) => path === p || path.startsWith(`${p}/`))) return false
  return (request.headers.accept ?? '').includes('text/html')
}

/** True when `dir` holds a built dashboard. */
export function dashboardBuilt(dir: string): boolean {
  return existsSync(join(dir, 'index.html'))
}

/** Mempool reasons that mean "conflicts with what is pending" (409) or "try later" (503). */
const MEMPOOL_STATUS: Readonly<Record<string, number>> = {
  duplicate: 409,
  'already-included': 409,
  'nonce-in-use': 409,
  full: 503,
}

/** Error codes for Fastify's and plugins' own HTTP errors, by status. */
const STATUS_CODES: Readonly<Record<number, string>> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  408: 'REQUEST_TIMEOUT',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'RATE_LIMITED',
}

interface HttpError {
  status: number
  body: ErrorJson
}

function errorBody(code: string, message: string, reason?: string): ErrorJson {
  return { error: reason === undefined ? { code, message } : { code, message, reason } }
}

/** Longest error message in an answer that may carry a peer's text (several workers' errors). */
const MAX_ERROR_MESSAGE = 1_000

/** Maps anything a handler or hook throws to a status and an error body. */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof TxError) {
    const status = err instanceof MempoolError ? (MEMPOOL_STATUS[err.reason] ?? 400) : 400
    return { status, body: errorBody('TX_REJECTED', err.message, err.reason) }
  }
  if (err instanceof InferenceError) {
    // The reason and message may carry a worker's words (inference/gateway.ts): a reason that is
    // not one of ours is 'failed', and the text is cut and stripped of control characters.
    const known = typeof err.status === 'number'
    const status = known ? err.status : 502
    const code = status >= 500 ? 'INFERENCE_UNAVAILABLE' : status === 404 ? 'NOT_FOUND' : 'INFERENCE_REJECTED'
    const message = untrustedText(err.message, MAX_ERROR_MESSAGE)
    return { status, body: errorBody(code, message, known ? err.reason : 'failed') }
  }
  // signalling refusals (401 unsigned, 403 wrong target, 409 replayed, 429 ...) and failed ICE (502)
  if (err instanceof SignalError || err instanceof WebRtcConnectError)
    return { status: err.statusCode, body: errorBody(err.code, err.message) }
  if (err instanceof HostNotAllowedError) return { status: 421, body: errorBody('HOST_NOT_ALLOWED', err.message) }
  if (err instanceof OriginNotAllowedError) return { status: 403, body: errorBody('ORIGIN_NOT_ALLOWED', err.message) }
  if (err instanceof TooManyStreamsError) return { status: 503, body: errorBody('TOO_MANY_STREAMS', err.message) }
  if (err instanceof InvalidInputError && err.name === 'TensorLimitError')
    return { status: 413, body: errorBody('PAYLOAD_TOO_LARGE', err.message) }
  if (err instanceof DidKeyError) return { status: 400, body: errorBody('INVALID_DID', err.message, err.reason) }
  if (err instanceof NotFoundError) return { status: 404, body: errorBody('NOT_FOUND', err.message) }
  if (err instanceof UnauthorizedError) return { status: 401, body: errorBody('UNAUTHORIZED', err.message) }
  if (err instanceof InvalidInputError) return { status: 400, body: errorBody('BAD_REQUEST', err.message) }
  const status = (err as Partial<FastifyError>).statusCode
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return { status, body: errorBody(STATUS_CODES[status] ?? `HTTP_${status}`, (err as Error).message) }
  }
  // the network cannot serve this now (too few expert hosts answered): news, not a node bug
  if (status === 503 && err instanceof DonghaeError) return { status, body: errorBody(err.code, err.message) }
  return { status: 500, body: errorBody('INTERNAL', 'internal error; the node logged the details') }
}

function handleError(err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const { status, body } = toHttpError(err)
  // A network that cannot serve right now (no worker, all busy) is news, not a bug in the node.
  if (status >= 500 && err instanceof InferenceError)
    request.log.warn({ reason: body.error.reason }, `inference unavailable: ${body.error.message}`)
  else if (status === 503) request.log.warn({ code: body.error.code }, `unavailable: ${body.error.message}`)
  else if (status >= 500) request.log.error({ err }, 'request failed')
  else request.log.debug({ code: body.error.code, reason: body.error.reason }, body.error.message)
  return reply.code(status).send(body)
}

/** The lazily compiled response serializers and request validators of each server `createApiServer` made. */
const compilersOf = new WeakMap<FastifyInstance, { serializers: LazySerializers; validators: LazyValidators }>()

/** `app`'s response serializers (serializers.ts), for tests that compile every one of them. */
export function responseSerializers(app: FastifyInstance): LazySerializers | undefined {
  return compilersOf.get(app)?.serializers
}

/** `app`'s request validators (validators.ts), for tests that compile every one of them. */
export function requestValidators(app: FastifyInstance): LazyValidators | undefined {
  return compilersOf.get(app)?.validators
}

export function createApiServer(options: ApiServerOptions): FastifyInstance {
  const serializers = new LazySerializers()
  const validators = new LazyValidators()
  const timeouts = { ...DEFAULT_API_TIMEOUTS, ...options.timeouts }
  const hosts = new HostPolicy({
    ...(options.allowedHosts === undefined ? {} : { allowedHosts: options.allowedHosts }),
    ...(options.cors === undefined ? {} : { cors: options.cors }),
  })
  const app = Fastify({
    ...(options.logger === undefined
      ? { logger: false }
      : { loggerInstance: options.logger.forComponent('donghae:api') as FastifyBaseLogger }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimit ?? MAX_BODY_BYTES,
    connectionTimeout: timeouts.idleMs,
    keepAliveTimeout: timeouts.keepAliveMs,
    requestTimeout: timeouts.requestMs,
    // Node checks the header and request timeouts on this interval (30 s by default, which would
    // let a slow client hold a socket for up to 30 s past its limit).
    http: {
      headersTimeout: timeouts.headersMs,
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(timeouts.headersMs / 4))),
    },
    // Reject unknown body fields instead of silently dropping them.
    ajv: { customOptions: { removeAdditional: false } },
    // Each response schema is compiled on the first answer that needs it, once per schema object,
    // and each request schema on the first request that needs it.
    schemaController: {
      compilersFactory: { buildSerializer: serializers.buildSerializer, buildValidator: validators.buildValidator },
    },
    // A URL the router cannot decode (`%zz`): the JSON error body, not Fastify's own (found by fuzzing).
    frameworkErrors: (err, _request, reply) => {
      void (reply as FastifyReply).code(400).send(errorBody('BAD_REQUEST', err.message))
    },
  })
  app.setErrorHandler(handleError)
  // First of all hooks: a request for a host this node does not answer (DNS rebinding) or from a
  // page on a foreign origin reaches neither the rate limiter nor a route.
  app.addHook('onRequest', async (request) => hosts.check(request))
  // One debug line per request instead of Fastify's two info lines.
  app.addHook('onResponse', async (request, reply) => {
    request.log.debug(
      { method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) },
      'request',
    )
  })
  const dashboard = options.dashboardDir !== undefined && dashboardBuilt(options.dashboardDir)
  app.setNotFoundHandler((request, reply) => {
    if (dashboard && isPageRequest(request)) return reply.sendFile('index.html', { maxAge: 0 })
    if (options.dashboardDir !== undefined && !dashboard && isPageRequest(request))
      return reply
        .code(404)
        .send(errorBody('NOT_FOUND', 'the dashboard is not built: run `npm run build:web` in the checkout'))
    return reply.code(404).send(errorBody('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0] ?? ''}`))
  })
  setOperatorToken(app, options.operatorToken)
  setExpertsApi(app, options.experts)
  const limit = options.rateLimit ?? DEFAULT_RATE_LIMIT
  app.register(rateLimit, { max: limit.max, timeWindow: limit.timeWindowMs })
  app.register(cors, { origin: options.cors ?? false })
  app.register(swagger, {
    openapi: {
      info: {
        title: 'Donghae node API',
        version: '1.0.0',
        description:
          'Amounts are decimal strings of base units; bytes are hex. Operator routes need `Authorization: Bearer <token>` (the token in <home>/api-token).',
      },
      components: {
        securitySchemes: {
          [OPERATOR_SCHEME]: {
            type: 'http',
            scheme: 'bearer',
            description: "The node's operator token, in <home>/api-token (mode 0600)",
          },
        },
      },
    },
  })
  app.register(swaggerUi, { routePrefix: '/docs' })
  app.register(chainRoutes, { chain: options.chain, toHttpError, submitManyRateLimit: submitManyLimit(limit) })
  app.register(infoRoutes)
  if (options.net !== undefined) app.register(netRoutes, { net: options.net })
  if (options.webrtc !== undefined) app.register(webrtcRoutes, { webrtc: options.webrtc })
  if (options.events !== undefined)
    app.register(eventRoutes, {
      events: options.events,
      ...(options.eventHeartbeatMs === undefined ? {} : { heartbeatMs: options.eventHeartbeatMs }),
      ...(options.maxEventStreams === undefined ? {} : { maxStreams: options.maxEventStreams }),
      ...(options.maxEventStreamsPerClient === undefined
        ? {}
        : { maxStreamsPerClient: options.maxEventStreamsPerClient }),
    })
  if (options.metrics !== undefined) app.register(metricsRoutes, { metrics: options.metrics })
  if (options.resources !== undefined) app.register(resourcesRoutes, { resources: options.resources })
  if (options.operator !== undefined) app.register(operatorRoutes, { operator: options.operator, chain: options.chain })
  if (options.inference !== undefined) app.register(inferenceRoutes, { inference: options.inference })
  if (options.experts !== undefined) app.register(expertsRoutes, { experts: options.experts })
  else app.register(noExpertsRoutes)
  if (options.fl !== undefined) app.register(flRoutes, { fl: options.fl })
  if (options.governance !== undefined) app.register(governanceRoutes, { governance: options.governance })
  if (options.arena !== undefined) app.register(arenaRoutes, { arena: options.arena })
  if (options.directory !== undefined) app.register(directoryRoutes, { directory: options.directory })
  else app.register(noDirectoryRoutes)
  if (options.wallet !== undefined) app.register(walletRoutes, { wallet: options.wallet })
  else app.register(noWalletRoutes)
  if (dashboard) app.register(fastifyStatic, { root: options.dashboardDir as string, prefix: '/', index: 'index.html' })
  compilersOf.set(app, { serializers, validators })
  return app
}
