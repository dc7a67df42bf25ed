/**
 * The node's HTTP API (Fastify). `createApiServer` wires the plugins (CORS, rate limit,
 * OpenAPI + Swagger UI) and the route plugins, and gives every failure the same shape:
 *
 *   { "error": { "code": "TX_REJECTED", "message": "...", "reason": "stale-nonce" } }
 *
 * with 400 (validation, with Fastify's message; bad DID; invalid transaction), 404, 409/503
 * (mempool conflicts, see routes/chain.ts), 413 (body too large), 429 (rate limit) or 500 (no
 * internals: the error goes to the log). The caller owns the instance: `listen()` and `close()`.
 */
import cors from '@fastify/cors'
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
import type { ErrorJson } from './schemas.ts'

export interface ApiServerOptions {
  chain: ChainApi
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
}

/** Mempool reasons that mean "conflicts with what is pending" (409) or "try later" (503). */
const MEMPOOL_STATUS: Readonly<Record<string, number>> = { duplicate: 409, 'nonce-in-use': 409, full: 503 }

/** Error codes for Fastify's and plugins' own HTTP errors, by status. */
const STATUS_CODES: Readonly<Record<number, string>> = {
  400: 'BAD_REQUEST',
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
  if (err instanceof DidKeyError) return { status: 400, body: errorBody('INVALID_DID', err.message, err.reason) }
  if (err instanceof NotFoundError) return { status: 404, body: errorBody('NOT_FOUND', err.message) }
  if (err instanceof InvalidInputError) return { status: 400, body: errorBody('BAD_REQUEST', err.message) }
  const status = (err as Partial<FastifyError>).statusCode
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return { status, body: errorBody(STATUS_CODES[status] ?? `HTTP_${status}`, (err as Error).message) }
  }
  return { status: 500, body: errorBody('INTERNAL', 'internal error; the node logged the details') }
}

function handleError(err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const { status, body } = toHttpError(err)
  if (status >= 500) request.log.error({ err }, 'request failed')
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
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0] ?? ''}`))
  })
  const limit = options.rateLimit ?? DEFAULT_RATE_LIMIT
  app.register(rateLimit, { max: limit.max, timeWindow: limit.timeWindowMs })
  app.register(cors, { origin: options.cors ?? false })
  app.register(swagger, {
    openapi: {
      info: {
        title: 'Donghae node API',
        version: '1.0.0',
        description: 'Amounts are decimal strings of base units; bytes are hex.',
      },
    },
  })
  app.register(swaggerUi, { routePrefix: '/docs' })
  app.register(chainRoutes, { chain: options.chain })
  if (options.net !== undefined) app.register(netRoutes, { net: options.net })
  return app
}
