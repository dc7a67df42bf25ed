/**
 * FL Alliance routes (issue 15, part 3; seed 003): federated tasks on chain and their blobs, over
 * the node's FlApi (fl-api.ts, src/node/fl.ts). Registered by createApiServer when it is given an
 * FlApi (`fl` option).
 *
 *   GET  /v1/fl/tasks?status&limit     tasks, newest first
 *   GET  /v1/fl/tasks/{id}?rounds      a task, its participants (bond left, paid, slashed) and its
 *                                      rounds (roles, updates, votes, accuracy, pay and slashes);
 *                                      rounds=current gives only the current round
 *   POST /v1/fl/blobs                  raw bytes (application/octet-stream, <= 256 KiB): a blob the
 *                                      chain names - an initial model, a current update (its
 *                                      declared size and header), an aggregate a vote names
 *                                      (decoded, its digest checked), an ONNX export a vote names
 *                                      (exported again from its aggregate, which must be stored
 *                                      first: 409 otherwise). 201 { cid, bytes, kind };
 *                                      403 FL_BLOB_REFUSED when no transaction names it, 400 when
 *                                      it is not what is named, 413 over the limit
 *
 * A task with a price shows `price`, `deposit`, the global model's ONNX export (`onnx`) and, once
 * finished, `model`: the market entry registered (its CID, name, version, lineage) or why not.
 *   GET  /v1/fl/blobs/{cid}            the blob (application/octet-stream), from this node or its
 *                                      peers; 404 when the chain names no such blob, 503 when no
 *                                      peer gave it in time
 *
 * Blobs need no signature: a blob is accepted only when a committed, signed transaction names its
 * CID, so storage cannot be filled with anything a participant did not pay a fee to name.
 */
import type { FastifyPluginAsync, RouteOptions } from 'fastify'
import Type from '../schema-builder.ts'
import { MAX_FL_BLOB_BYTES } from '../../fl/chain/decode.ts'
import type { FlApi } from '../fl-api.ts'
import { NotFoundError } from '../errors.ts'
import { ERROR_RESPONSES } from '../schemas.ts'

const OCTET_STREAM = 'application/octet-stream'
const Cid = Type.String({ minLength: 8, maxLength: 128, pattern: '^[a-z0-9]+$', description: 'a CIDv1, base32' })
const Model = Type.Object({ cid: Type.String(), digest: Type.String() })
const Onnx = Type.Object(
  { cid: Type.String(), bytes: Type.Integer() },
  { description: 'the ONNX export of an aggregate (what the inference market serves)' },
)
const Market = Type.Object(
  {
    cid: Type.String({ description: 'the ONNX CID registered (empty when no round gave one)' }),
    name: Type.String(),
    version: Type.String(),
    round: Type.Integer({ description: 'the round whose aggregate it is' }),
    registered: Type.Boolean(),
    reason: Type.Optional(Type.String({ description: 'why it was not registered' })),
    lineage: Type.Optional(
      Type.Object({
        source: Type.String(),
        task: Type.String(),
        round: Type.Integer(),
        parent: Type.Optional(Type.String()),
        contributors: Type.Array(Type.Object({ did: Type.String(), role: Type.String() })),
      }),
    ),
  },
  { description: "a finished task's market entry" },
)
const Amount = (description: string) => Type.String({ pattern: '^(0|[1-9][0-9]*)$', description })
const Status = Type.Union([
  Type.Literal('open'),
  Type.Literal('running'),
  Type.Literal('finished'),
  Type.Literal('cancelled'),
])

const TaskJson = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  creator: Type.String(),
  status: Status,
  createdAt: Type.Integer(),
  widths: Type.Array(Type.Integer()),
  inputDivisor: Type.Integer(),
  initial: Model,
  global: Model,
  rule: Type.String(),
  f: Type.Integer(),
  rounds: Type.Integer(),
  round: Type.Integer({ description: 'the current round (0 before the first)' }),
  uploadBlocks: Type.Integer(),
  voteBlocks: Type.Integer(),
  joinBlocks: Type.Integer(),
  participants: Type.Integer(),
  voters: Type.Integer(),
  joined: Type.Integer(),
  slashPpm: Type.Integer(),
  pool: Amount('escrowed reward pool at creation'),
  bond: Amount('bond per participant'),
  remaining: Amount('what is left of the pool'),
  paid: Amount('paid to participants so far'),
  slashed: Amount('slashed (burned) so far'),
  price: Type.Optional(Amount('fee per call of the global model in the inference market')),
  deposit: Type.Optional(Amount("the market's model deposit escrowed with the price")),
  onnx: Type.Optional(Onnx),
  model: Type.Optional(Market),
})

const ParticipantJson = Type.Object({
  did: Type.String(),
  bond: Amount('bond still escrowed'),
  joinedAt: Type.Integer(),
  paid: Amount('rewards paid'),
  slashed: Amount('bond slashed'),
  returned: Amount('bond given back when the task ended'),
  proposed: Type.Integer(),
  voted: Type.Integer(),
  excluded: Type.Integer({ description: 'rounds in which the majority excluded its update' }),
})

const RoundJson = Type.Object({
  round: Type.Integer(),
  status: Type.Union([Type.Literal('open'), Type.Literal('passed'), Type.Literal('failed')]),
  start: Type.Integer(),
  uploadEnd: Type.Integer(),
  voteEnd: Type.Integer(),
  seed: Type.String(),
  proposers: Type.Array(Type.String()),
  voters: Type.Array(Type.String()),
  base: Model,
  updates: Type.Array(
    Type.Object({
      did: Type.String(),
      cid: Type.String(),
      digest: Type.String(),
      bytes: Type.Integer(),
      samples: Type.Integer(),
      height: Type.Integer(),
    }),
  ),
  votes: Type.Array(
    Type.Object({
      did: Type.String(),
      approve: Type.Boolean(),
      aggregate: Type.Optional(Model),
      onnx: Type.Optional(Onnx),
      accuracyPpm: Type.Integer(),
      excluded: Type.Array(Type.String()),
      height: Type.Integer(),
    }),
  ),
  aggregate: Type.Optional(Model),
  onnx: Type.Optional(Onnx),
  accuracyPpm: Type.Optional(Type.Integer({ description: "lower median of the majority's accuracies, ppm" })),
  majority: Type.Optional(Type.Integer()),
  excluded: Type.Optional(Type.Array(Type.String())),
  pay: Type.Optional(Amount("the round's budget: remaining pool ÷ rounds left")),
  payouts: Type.Optional(Type.Array(Type.Object({ did: Type.String(), amount: Type.String() }))),
  slashes: Type.Optional(Type.Array(Type.Object({ did: Type.String(), amount: Type.String(), reason: Type.String() }))),
})

function routeTable(fl: FlApi): RouteOptions[] {
  return [
    {
      method: 'GET',
      url: '/v1/fl/tasks',
      schema: {
        summary: 'FL Alliance tasks, newest first',
        tags: ['fl'],
        querystring: Type.Object({
          status: Type.Optional(Status),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
        }),
        response: { 200: Type.Object({ tasks: Type.Array(TaskJson) }), ...ERROR_RESPONSES },
      },
      handler: async (request) => {
        const q = request.query as { status?: 'open' | 'running' | 'finished' | 'cancelled'; limit?: number }
        return { tasks: fl.tasks(q) }
      },
    },
    {
      method: 'GET',
      url: '/v1/fl/tasks/:id',
      schema: {
        summary: 'An FL task: participants, and per round the roles, updates, votes, accuracy and settlement',
        tags: ['fl'],
        params: Type.Object({ id: Type.Integer({ minimum: 1 }) }),
        querystring: Type.Object({
          rounds: Type.Optional(Type.Union([Type.Literal('all'), Type.Literal('current')])),
        }),
        response: {
          200: Type.Object({
            height: Type.Integer({ description: "the node's chain height when it answered" }),
            task: TaskJson,
            participants: Type.Array(ParticipantJson),
            rounds: Type.Array(RoundJson),
          }),
          ...ERROR_RESPONSES,
        },
      },
      handler: async (request) => {
        const { id } = request.params as { id: number }
        const { rounds } = request.query as { rounds?: 'all' | 'current' }
        const detail = fl.task(id, rounds === undefined ? {} : { rounds })
        if (detail === undefined) throw new NotFoundError(`no FL task ${id}`)
        return detail
      },
    },
    {
      method: 'POST',
      url: '/v1/fl/blobs',
      bodyLimit: MAX_FL_BLOB_BYTES,
      schema: {
        summary: 'Store a blob the chain names (an initial model, an update, an aggregate, its ONNX export)',
        description: `Raw bytes, at most ${MAX_FL_BLOB_BYTES} (413 beyond). Refused 403 when no committed transaction names the CID, 400 when the bytes are not what it names, 409 for an ONNX export whose aggregate is not stored yet.`,
        tags: ['fl'],
        consumes: [OCTET_STREAM],
        response: {
          201: Type.Object({
            cid: Type.String(),
            bytes: Type.Integer(),
            kind: Type.Union([
              Type.Literal('initial'),
              Type.Literal('update'),
              Type.Literal('aggregate'),
              Type.Literal('onnx'),
            ]),
          }),
          ...ERROR_RESPONSES,
        },
      },
      handler: async (request, reply) => {
        const body = request.body
        if (!(body instanceof Uint8Array))
          return reply.code(415).send({
            error: { code: 'UNSUPPORTED_MEDIA_TYPE', message: `send the blob as ${OCTET_STREAM}` },
          })
        return reply.code(201).send(await fl.putBlob(new Uint8Array(body.buffer, body.byteOffset, body.byteLength)))
      },
    },
    {
      method: 'GET',
      url: '/v1/fl/blobs/:cid',
      schema: {
        summary: 'A blob the chain names, from this node or its peers',
        tags: ['fl'],
        params: Type.Object({ cid: Cid }),
        produces: [OCTET_STREAM],
        response: { ...ERROR_RESPONSES },
      },
      handler: async (request, reply) => {
        const { cid } = request.params as { cid: string }
        const controller = new AbortController()
        const abort = (): void => controller.abort()
        reply.raw.once('close', abort)
        try {
          const bytes = await fl.getBlob(cid, controller.signal)
          return reply.type(OCTET_STREAM).send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
        } finally {
          reply.raw.off('close', abort)
        }
      },
    },
  ]
}

/** The FL routes over a node's FlApi. */
export const flRoutes: FastifyPluginAsync<{ fl: FlApi }> = async (app, { fl }) => {
  app.addContentTypeParser(OCTET_STREAM, { parseAs: 'buffer', bodyLimit: MAX_FL_BLOB_BYTES }, (_request, body, done) =>
    done(null, body),
  )
  for (const route of routeTable(fl)) app.route(route)
}
