/**
 * Operator authentication. Routes that spend the node's funds or change its configuration need
 * `Authorization: Bearer <token>`, where the token is the one in `<home>/api-token` (mode 0600,
 * written by `donghae init`, or by the first `donghae node` of an older home). Read-only routes
 * stay open.
 *
 *   app.route({ method: 'POST', url: '/v1/infer', onRequest: requireOperator,
 *               schema: { security: OPERATOR_SECURITY, ... }, handler })
 *
 * It works as `onRequest` (checked before the body is even read: a stranger's 20 MB upload is
 * refused unparsed, and a malformed body without the token is 401, not 400) or as `preHandler`.
 *
 * Tokens are compared in constant time (both sides hashed first, so lengths leak nothing). A
 * missing or wrong token is 401 `UNAUTHORIZED` before the handler runs, so nothing changes.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { chmod, readFile, writeFile } from 'node:fs/promises'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { DonghaeError } from '../core/errors.ts'

/** File name of the operator token inside a node's home. */
export const API_TOKEN_FILE = 'api-token'

/** The OpenAPI security scheme name operator routes declare. */
export const OPERATOR_SCHEME = 'operatorToken'

/** `schema.security` of an operator route. */
export const OPERATOR_SECURITY = [{ [OPERATOR_SCHEME]: [] }]

/** A missing or wrong operator token. */
export class UnauthorizedError extends DonghaeError {
  static override readonly code: string = 'UNAUTHORIZED'
  override name = 'UnauthorizedError'
}

declare module 'fastify' {
  interface FastifyInstance {
    /** sha256 of the operator token, or null when operator routes are disabled. */
    donghaeOperatorDigest: Uint8Array | null
  }
}

/** A new token: 32 random bytes, base64url (43 characters). */
export function generateApiToken(): string {
  return randomBytes(32).toString('base64url')
}

const digest = (token: string): Uint8Array => createHash('sha256').update(token, 'utf8').digest()

/** True when `presented` is the token whose digest is `expected`, in constant time. */
export function tokenMatches(expected: Uint8Array, presented: string): boolean {
  return timingSafeEqual(expected, digest(presented))
}

/** Installs the token on a server (createApiServer does this); null disables operator routes. */
export function setOperatorToken(app: FastifyInstance, token: string | undefined): void {
  app.decorate('donghaeOperatorDigest', token === undefined ? null : digest(token))
}

function presentedToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  if (typeof header !== 'string') return undefined
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header)
  return match?.[1]
}

/**
 * Fastify hook (onRequest or preHandler) for operator routes: 401 `UNAUTHORIZED` (with
 * `WWW-Authenticate: Bearer`) unless the request carries the node's operator token.
 */
export async function requireOperator(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const expected = request.server.donghaeOperatorDigest
  if (expected === null || expected === undefined) {
    void reply.header('www-authenticate', 'Bearer')
    throw new UnauthorizedError('this node has no operator token, so operator routes are disabled')
  }
  const token = presentedToken(request)
  if (token === undefined) {
    void reply.header('www-authenticate', 'Bearer')
    throw new UnauthorizedError(
      `${request.method} ${request.routeOptions.url ?? request.url} is an operator route: send "Authorization: Bearer <token>" with the token in <home>/${API_TOKEN_FILE}`,
    )
  }
  if (!tokenMatches(expected, token)) {
    void reply.header('www-authenticate', 'Bearer error="invalid_token"')
    throw new UnauthorizedError(`the operator token is wrong; use the one in <home>/${API_TOKEN_FILE}`)
  }
}

/**
 * The token in `path`, creating it (mode 0600) when the file does not exist. A file readable by
 * others is tightened to 0600. `created` says whether a new token was written.
 */
export async function loadOrCreateApiToken(path: string): Promise<{ token: string; created: boolean }> {
  try {
    const token = (await readFile(path, 'utf8')).trim()
    if (token.length < 16) throw new DonghaeError(`${path} holds no usable token; delete it to have a new one made`)
    await chmod(path, 0o600)
    return { token, created: false }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const token = generateApiToken()
  try {
    await writeFile(path, `${token}\n`, { mode: 0o600, flag: 'wx' })
  } catch (err) {
    // Another process (a second node start) wrote it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateApiToken(path)
    throw err
  }
  return { token, created: true }
}
