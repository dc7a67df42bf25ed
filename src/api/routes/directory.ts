/**
 * The DID directory's routes (issue 13; seed 004's discovery server), over the node's
 * DirectoryApi (directory-api.ts). Registered by createApiServer when the node runs a directory
 * (config `directory: true`); without one every path below answers 404 NOT_FOUND saying so.
 *
 *   our route                                   seed's path (alias, same handler)
 *   POST   /v1/directory/register               POST   /register      a signed registration
 *   DELETE /v1/directory/register               DELETE /register      a signed deletion
 *   GET    /v1/directory/search?query&category&tag&limit&cursor
 *                                               GET    /search
 *   GET    /v1/directory/entries/{did}
 *   GET    /v1/directory/resolve/{did}          the entry checked against the DID's record in the DHT
 *   POST   /v1/operator/directory/register      (operator) the node's own entry, signed with its key
 *   DELETE /v1/operator/directory/register      (operator) deletes the node's own entry
 *
 * Bodies are at most 16 KiB (413). A DirectoryError answers with its own status - 400 malformed,
 * 403 a signature that is not the DID's, 409 a sequence number not above the stored one, 413 a
 * field too large, 429 rate limited (with Retry-After) - and `reason` is its code
 * (DIRECTORY_STALE...). The rate limits charge the client's address: an IPv6 address by its /64
 * (one home connection holds a whole /64), an IPv4-mapped address as the IPv4 address.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import Type from '../schema-builder.ts'
import { DirectoryError, DirectoryRateLimitError } from '../../directory/record.ts'
import {
  LABEL_PATTERN,
  MAX_BOOTSTRAP,
  MAX_CATEGORIES,
  MAX_DESCRIPTION_BYTES,
  MAX_EXPIRY_MS,
  MAX_TAGS,
} from '../../directory/record.ts'
import { MAX_QUERY_CHARS, MAX_SEARCH_LIMIT, DEFAULT_SEARCH_LIMIT, type SearchQuery } from '../../directory/store.ts'
import type { DirectoryApi, OwnRegistration } from '../directory-api.ts'
import { OPERATOR_SECURITY, requireOperator } from '../auth.ts'
import { clientKey } from '../client-key.ts'
import { NotFoundError } from '../errors.ts'
import { ERROR_RESPONSES } from '../schemas.ts'

type Static<T extends Type.TSchema> = Type.Static<T>

/** Largest body of a directory route (a registration is at most ~4.5 KiB as JSON). */
export const DIRECTORY_BODY_LIMIT = 16 * 1024
const NO_DIRECTORY = 'this node runs no DID directory: start it with directory=true (DONGHAE_DIRECTORY=1)'

/** Error codes of the statuses a DirectoryError carries (`reason` is the DirectoryError's own code). */
const DIRECTORY_STATUS_CODES: Readonly<Record<number, string>> = {
  400: 'BAD_REQUEST',
  403: 'FORBIDDEN',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  429: 'RATE_LIMITED',
}

// ---- the client's key --------------------------------------------------------------------------

/**
 * Who a request is charged to: the socket's address, an IPv6 address by its /64 and an
 * IPv4-mapped address as the IPv4 address (`clientKey`, client-key.ts).
 */
export function directoryClientKey(address: string | undefined): string {
  return address === undefined || address === '' ? 'unknown' : clientKey(address)
}

function clientOf(request: FastifyRequest): string {
  return directoryClientKey(request.socket.remoteAddress)
}

// ---- schemas -----------------------------------------------------------------------------------

const DidParam = Type.String({ pattern: '^did:key:z[1-9A-HJ-NP-Za-km-z]{40,60}$', description: 'an Ed25519 did:key' })
const Label = Type.String({ description: `lowercase letters, digits and '-', 1-32 (${String(LABEL_PATTERN)})` })
const Signature = Type.String({ description: 'Ed25519 signature, base64url (86 characters)' })

const RecordFields = {
  did: Type.String({ description: 'the registering DID (canonical Ed25519 did:key)' }),
  description: Type.String({ description: `at most ${MAX_DESCRIPTION_BYTES} bytes of UTF-8, no control characters` }),
  categories: Type.Array(Label, { description: `1 to ${MAX_CATEGORIES} categories, e.g. restaurant` }),
  tags: Type.Array(Label, { description: `0 to ${MAX_TAGS} tags` }),
  bootstrap: Type.Array(Type.String(), {
    description: `up to ${MAX_BOOTSTRAP} canonical multiaddrs of DHT nodes to find the DID's record through`,
  }),
  endpoint: Type.String({ description: 'the http(s) URL the DID takes signalling (WebRTC offers) at' }),
  seq: Type.Integer({ minimum: 0, description: 'higher replaces lower' }),
  expires: Type.Integer({ minimum: 0, description: 'milliseconds since the Unix epoch; at most 30 days ahead' }),
  signature: Signature,
}

const RegistrationBody = Type.Object(RecordFields, {
  additionalProperties: false,
  description:
    "a registration signed by the DID's key (kind directory.register) over the canonical dag-cbor of every other field (src/directory/record.ts)",
})
const DeletionBody = Type.Object(
  { did: RecordFields.did, seq: Type.Integer({ minimum: 0 }), signature: Signature },
  { additionalProperties: false, description: "a deletion signed by the DID's key (kind directory.delete)" },
)
const EntryJson = Type.Object(
  {
    ...RecordFields,
    score: Type.Optional(Type.Number({ description: 'bm25 rank when the search had a text query (lower is better)' })),
  },
  { description: 'a registration: the signed fields verbatim' },
)
const WriteJson = Type.Object({
  did: Type.String(),
  seq: Type.Integer(),
  change: Type.Union([Type.Literal('added'), Type.Literal('updated'), Type.Literal('deleted')]),
  expires: Type.Optional(Type.Integer()),
})
const SearchParams = Type.Object({
  query: Type.Optional(
    Type.String({ description: `free text, at most ${MAX_QUERY_CHARS} characters; every term must match` }),
  ),
  category: Type.Optional(Label),
  tag: Type.Optional(Label),
  limit: Type.Optional(
    Type.Integer({ minimum: 1, maximum: MAX_SEARCH_LIMIT, description: `default ${DEFAULT_SEARCH_LIMIT}` }),
  ),
  cursor: Type.Optional(Type.String({ description: "the previous page's cursor" })),
})
const SearchJson = Type.Object({
  entries: Type.Array(EntryJson),
  cursor: Type.Optional(Type.String({ description: 'pass back for the next page; absent on the last' })),
})
const DidRecordJson = Type.Object({
  did: Type.String(),
  addresses: Type.Array(Type.String()),
  services: Type.Array(Type.Object({ id: Type.String(), type: Type.String(), serviceEndpoint: Type.String() })),
  seq: Type.Integer(),
  expires: Type.Integer(),
})
const ResolutionJson = Type.Object({
  entry: EntryJson,
  document: Type.Optional(DidRecordJson),
  consistent: Type.Boolean({ description: 'the DHT record was found and agrees with the entry' }),
  problems: Type.Array(Type.String(), { description: 'what disagrees, one line each' }),
})
const OwnRegistrationBody = Type.Object(
  {
    description: RecordFields.description,
    categories: RecordFields.categories,
    tags: Type.Optional(RecordFields.tags),
    endpoint: Type.Optional(Type.String({ description: "default: the node's <api>/v1/webrtc/offer" })),
    bootstrap: Type.Optional(Type.Array(Type.String(), { description: "default: the node's own p2p addresses" })),
    expiresInMs: Type.Optional(
      Type.Integer({
        minimum: 60_000,
        maximum: MAX_EXPIRY_MS,
        description: 'how long the entry lives (default 7 days)',
      }),
    ),
  },
  { additionalProperties: false },
)

// ---- the table ---------------------------------------------------------------------------------

function abortOnClose(reply: FastifyReply): AbortSignal {
  const abort = new AbortController()
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) abort.abort()
  })
  return abort.signal
}

function alias(route: RouteOptions, url: string): RouteOptions {
  return { ...route, url, schema: { ...route.schema, hide: true } as RouteOptions['schema'] }
}

function searchQuery(q: Static<typeof SearchParams>): SearchQuery {
  return {
    ...(q.query === undefined ? {} : { query: q.query }),
    ...(q.category === undefined ? {} : { category: q.category }),
    ...(q.tag === undefined ? {} : { tag: q.tag }),
    ...(q.limit === undefined ? {} : { limit: q.limit }),
    ...(q.cursor === undefined ? {} : { cursor: q.cursor }),
  }
}

function ownRegistration(body: Static<typeof OwnRegistrationBody>): OwnRegistration {
  return {
    description: body.description,
    categories: [...body.categories],
    ...(body.tags === undefined ? {} : { tags: [...body.tags] }),
    ...(body.endpoint === undefined ? {} : { endpoint: body.endpoint }),
    ...(body.bootstrap === undefined ? {} : { bootstrap: [...body.bootstrap] }),
    ...(body.expiresInMs === undefined ? {} : { expiresInMs: body.expiresInMs }),
  }
}

function directoryRouteTable(api: DirectoryApi): RouteOptions[] {
  const register: RouteOptions = {
    method: 'POST',
    url: '/v1/directory/register',
    bodyLimit: DIRECTORY_BODY_LIMIT,
    schema: {
      summary: 'Register or update a DID: a registration signed by its key (201 new, 200 update)',
      description:
        '409 when seq is not above the stored one (a replay, or after a deletion: register with a higher seq); 403 when the signature is not the DID\u2019s; 429 with Retry-After past the per-client or per-DID rate limit. Accepted registrations are gossiped to the other directories.',
      tags: ['directory'],
      body: RegistrationBody,
      response: { 200: WriteJson, 201: WriteJson, ...ERROR_RESPONSES },
    },
    handler: async (request, reply) => {
      const result = api.register(request.body, clientOf(request))
      return reply.code(result.change === 'added' ? 201 : 200).send(result)
    },
  }
  const remove: RouteOptions = {
    method: 'DELETE',
    url: '/v1/directory/register',
    bodyLimit: DIRECTORY_BODY_LIMIT,
    schema: {
      summary: "Delete a DID's entry: a deletion signed by its key, with a seq above the entry's",
      description: 'The entry leaves a tombstone with that seq, so an older registration cannot come back.',
      tags: ['directory'],
      body: DeletionBody,
      response: { 200: WriteJson, ...ERROR_RESPONSES },
    },
    handler: async (request) => api.remove(request.body, clientOf(request)),
  }
  const search: RouteOptions = {
    method: 'GET',
    url: '/v1/directory/search',
    schema: {
      summary: 'Search the directory: ranked full-text (bm25) with exact category and tag filters, paginated',
      tags: ['directory'],
      querystring: SearchParams,
      response: { 200: SearchJson, ...ERROR_RESPONSES },
    },
    handler: async (request) =>
      api.search(searchQuery(request.query as Static<typeof SearchParams>), clientOf(request)),
  }
  return [
    register,
    alias(register, '/register'),
    remove,
    alias(remove, '/register'),
    search,
    alias(search, '/search'),
    {
      method: 'GET',
      url: '/v1/directory/entries/:did',
      schema: {
        summary: "One DID's live entry",
        tags: ['directory'],
        params: Type.Object({ did: DidParam }),
        response: { 200: EntryJson, ...ERROR_RESPONSES },
      },
      handler: async (request) => {
        const { did } = request.params as { did: string }
        const entry = api.entry(did)
        if (entry === undefined) throw new NotFoundError(`no directory entry for ${did}`)
        return entry
      },
    },
    {
      method: 'GET',
      url: '/v1/directory/resolve/:did',
      schema: {
        summary: "One DID's entry checked against its DID record in the DHT (same key, endpoint, addresses)",
        description: 'Looks the record up in the DHT (a few seconds at most); `problems` lists what disagrees.',
        tags: ['directory'],
        params: Type.Object({ did: DidParam }),
        response: { 200: ResolutionJson, ...ERROR_RESPONSES },
      },
      handler: async (request, reply) => {
        const { did } = request.params as { did: string }
        const resolution = await api.resolve(did, abortOnClose(reply))
        if (resolution === undefined) throw new NotFoundError(`no directory entry for ${did}`)
        return resolution
      },
    },
    ...operatorRouteTable(api),
  ]
}

function operatorRouteTable(api: DirectoryApi): RouteOptions[] {
  const { registerOwn, removeOwn } = api
  if (registerOwn === undefined || removeOwn === undefined) return []
  return [
    {
      method: 'POST',
      url: '/v1/operator/directory/register',
      onRequest: requireOperator,
      bodyLimit: DIRECTORY_BODY_LIMIT,
      schema: {
        summary:
          'Register this node: the node signs its entry with its key, seq above the stored one (201 new, 200 update)',
        tags: ['directory', 'operator'],
        security: OPERATOR_SECURITY,
        body: OwnRegistrationBody,
        response: { 200: WriteJson, 201: WriteJson, ...ERROR_RESPONSES },
      },
      handler: async (request, reply) => {
        const result = registerOwn.call(
          api,
          ownRegistration(request.body as Static<typeof OwnRegistrationBody>),
          clientOf(request),
        )
        return reply.code(result.change === 'added' ? 201 : 200).send(result)
      },
    },
    {
      method: 'DELETE',
      url: '/v1/operator/directory/register',
      onRequest: requireOperator,
      schema: {
        summary: "Delete this node's entry (a deletion signed with its key)",
        tags: ['directory', 'operator'],
        security: OPERATOR_SECURITY,
        response: { 200: WriteJson, ...ERROR_RESPONSES },
      },
      handler: async (request) => removeOwn.call(api, clientOf(request)),
    },
  ]
}

/** A DirectoryError answers with its status, its code as `reason`, and Retry-After when rate limited. */
function directoryErrorHandler(err: unknown, _request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (!(err instanceof DirectoryError)) throw err
  if (err instanceof DirectoryRateLimitError)
    void reply.header('retry-after', String(Math.max(1, Math.ceil(err.retryAfterMs / 1000))))
  const code = DIRECTORY_STATUS_CODES[err.statusCode] ?? `HTTP_${err.statusCode}`
  return reply.code(err.statusCode).send({ error: { code, message: err.message, reason: err.code } })
}

export const directoryRoutes: FastifyPluginAsync<{ directory: DirectoryApi }> = async (app, { directory }) => {
  app.setErrorHandler(directoryErrorHandler)
  for (const route of directoryRouteTable(directory)) app.route(route)
}

/** A node without a directory: the directory paths answer 404 saying why. */
export const noDirectoryRoutes: FastifyPluginAsync = async (app) => {
  const urls = ['/v1/directory', '/v1/directory/*', '/v1/operator/directory/*', '/register', '/search']
  for (const url of urls)
    app.route({
      method: ['GET', 'POST', 'DELETE'],
      url,
      schema: { hide: true },
      handler: async () => {
        throw new NotFoundError(NO_DIRECTORY)
      },
    })
}
