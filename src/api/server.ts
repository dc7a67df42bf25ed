/**
 * The node's HTTP API (Fastify). `createApiServer` wires the plugins (CORS, rate limit,
 * OpenAPI + Swagger UI) and the route plugins, and gives every failure the same shape:
 *
 *   { "error": { "code": "TX_REJECTED", "message": "...", "reason": "stale-nonce" } }
 *
 * with 400 (validation, with Fastify's message; bad DID; invalid transaction), 404, 409/503
 * (mempool conflicts, see routes/chain.ts), 401 (operator route without the token, auth.ts), 413
 * (body too large), 429 (rate limit) or 500 (no internals: the error goes to the log). The caller
 * owns the instance: `listen()` and `close()`.
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
import { InvalidInputError } from '../core/errors.ts'
import type { Logger } from '../core/logger.ts'
import { MempoolError, TxError } from '../chain/errors.ts'
import { DidKeyError } from '../identity/errors.ts'
import type { ChainApi } from './chain-api.ts'
import type { NetApi } from './net-api.ts'
import { netRoutes } from './routes/net.ts'
import { DEFAULT_RATE_LIMIT, MAX_BODY_BYTES } from './constants.ts'
import { NotFoundError } from './errors.ts'
import { chainRoutes } from './routes/chain.ts'
import { inferenceRoutes } from './routes/inference.ts'
import type { InferenceApi } from './inference-api.ts'
import { InferenceError } from '../inference/errors.ts'
import type { ErrorJson } from './schemas.ts'
import { OPERATOR_SCHEME, UnauthorizedError, setOperatorToken } from './auth.ts'
import type { EventBus } from './events.ts'
import type { NodeMetrics } from './metrics.ts'
import type { OperatorApi } from './operator-api.ts'
import { eventRoutes } from './routes/events.ts'
import { infoRoutes } from './routes/info.ts'
import { metricsRoutes } from './routes/metrics.ts'
import { operatorRoutes } from './routes/operator.ts'

export interface ApiServerOptions {
  chain: ChainApi
  /** Inference routes (/v1/models, /v1/infer, completions, settlements, workers). */
  inference?: InferenceApi
  /** Network routes (/v1/net, /v1/did) when the node runs on libp2p. */
  net?: NetApi
  /** Request and error logs go here (component donghae:api). @default no logging */
  logger?: Logger
  /** Origins allowed to call the API from a browser (e.g. 'http://localhost:5173'). @default none */
  cors?: string[]
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
  /** Operator token (auth.ts): without it every operator route answers 401. */
  operatorToken?: string
  /** Operator routes (/v1/operator/…), which act with the node's key. */
  operator?: OperatorApi
  /** Directory of the built dashboard (web/dist), served at `/`. */
  dashboardDir?: string
}

/** The dashboard's build output in a checkout (`vite build` of web/; scripts/build-web.ts). */
export const DASHBOARD_DIR = fileURLToPath(new URL('../../web/dist', import.meta.url))

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
const MEMPOOL_STATUS: Readonly<Record<string, number>> = { duplicate: 409, 'nonce-in-use': 409, full: 503 }

/** Error codes for Fastify's and plugins' own HTTP errors, by status. */
const STATUS_CODES: Readonly<Record<number, string>> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  404: 'NOT_FOUND',
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

/** Maps anything a handler or hook throws to a status and an error body. */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof TxError) {
    const status = err instanceof MempoolError ? (MEMPOOL_STATUS[err.reason] ?? 400) : 400
    return { status, body: errorBody('TX_REJECTED', err.message, err.reason) }
  }
  if (err instanceof InferenceError) {
    const code = err.status >= 500 ? 'INFERENCE_UNAVAILABLE' : err.status === 404 ? 'NOT_FOUND' : 'INFERENCE_REJECTED'
    return { status: err.status, body: errorBody(code, err.message, err.reason) }
  }
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
  return { status: 500, body: errorBody('INTERNAL', 'internal error; the node logged the details') }
}

function handleError(err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const { status, body } = toHttpError(err)
  // A network that cannot serve right now (no worker, all busy) is news, not a bug in the node.
  if (status >= 500 && err instanceof InferenceError)
    request.log.warn({ reason: err.reason }, `inference unavailable: ${err.message}`)
  else if (status >= 500) request.log.error({ err }, 'request failed')
  else request.log.debug({ code: body.error.code, reason: body.error.reason }, body.error.message)
  return reply.code(status).send(body)
}

export function createApiServer(options: ApiServerOptions): FastifyInstance {
  const app = Fastify({
    ...(options.logger === undefined
      ? { logger: false }
      : { loggerInstance: options.logger.forComponent('donghae:api') as FastifyBaseLogger }),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimit ?? MAX_BODY_BYTES,
    // Reject unknown body fields instead of silently dropping them.
    ajv: { customOptions: { removeAdditional: false } },
  })
  app.setErrorHandler(handleError)
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
  app.register(chainRoutes, { chain: options.chain })
  app.register(infoRoutes)
  if (options.net !== undefined) app.register(netRoutes, { net: options.net })
  if (options.events !== undefined)
    app.register(eventRoutes, {
      events: options.events,
      ...(options.eventHeartbeatMs === undefined ? {} : { heartbeatMs: options.eventHeartbeatMs }),
    })
  if (options.metrics !== undefined) app.register(metricsRoutes, { metrics: options.metrics })
  if (options.operator !== undefined) app.register(operatorRoutes, { operator: options.operator, chain: options.chain })
  if (options.inference !== undefined) app.register(inferenceRoutes, { inference: options.inference })
  if (dashboard) app.register(fastifyStatic, { root: options.dashboardDir as string, prefix: '/', index: 'index.html' })
  return app
}
