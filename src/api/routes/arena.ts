/**
 * AI Arena's routes (issue 15): training tasks on chain, their leaderboards, and the operator's
 * own participation. Served over the node's ArenaApi (arena-api.ts).
 *
 *   GET  /v1/arena/tasks?status&limit          tasks, newest first
 *   GET  /v1/arena/tasks/{id}                  one task: submissions, the draw, and after
 *                                              settlement the leaderboard and validators' pay
 *   GET  /v1/operator/arena/jobs    (operator) this node's trainer and validator jobs
 *   POST /v1/operator/arena/train   (operator) bond, train (built in or an external command on the
 *                                              node's machine), commit; publishing follows by itself
 *   POST /v1/operator/arena/validate (operator) check the hidden sets (paths on the node's disk)
 *                                              against the task, bond; scoring, commit and reveal follow
 *
 * JSON: amounts are decimal strings, hashes hex, scores integers in ppm. An unknown task is 404;
 * a refused request 400 (`reason` names the chain's or the check's reason); a training command
 * that failed 502.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import Type from '../schema-builder.ts'
import { parseUint64 } from '../../core/uint.ts'
import { DonghaeError } from '../../core/errors.ts'
import { TxError } from '../../chain/errors.ts'
import type { ArenaApi, ArenaJobView, ArenaTaskDetail, ArenaTaskView } from '../arena-api.ts'
import { OPERATOR_SECURITY, requireOperator } from '../auth.ts'
import { NotFoundError } from '../errors.ts'
import { ERROR_RESPONSES } from '../schemas.ts'

type Static<T extends Type.TSchema> = Type.Static<T>

// ---- schemas ---------------------------------------------------------------------------------------

const Amount = (description: string) => Type.String({ pattern: '^(0|[1-9][0-9]*)$', description })
const Ppm = (description: string) => Type.Integer({ minimum: 0, maximum: 1_000_000, description })
const Bounds = Type.Object({ low: Type.Integer(), high: Type.Integer() })
const TaskStatus = Type.Union([Type.Literal('open'), Type.Literal('settled')])

export const ArenaTaskJson = Type.Object({
  id: Type.Integer(),
  name: Type.String({ description: 'also the model name the winner is registered under' }),
  creator: Type.String(),
  status: TaskStatus,
  phase: Type.Union(
    ['submitting', 'publishing', 'scoring', 'revealing', 'settled'].map((p) => Type.Literal(p)),
    { description: 'where the task stands at the node\u2019s head' },
  ),
  baseModel: Type.Object({
    kind: Type.String(),
    cid: Type.Optional(Type.String()),
    hash: Type.Optional(Type.String()),
  }),
  data: Type.Object({ kind: Type.String(), cid: Type.Optional(Type.String()) }),
  validationCommitA: Type.String({ description: 'sha256 of hidden set A, hex' }),
  validationCommitB: Type.String({ description: 'sha256 of hidden set B, hex' }),
  createdAt: Type.Integer(),
  submitDeadline: Type.Integer(),
  publishDeadline: Type.Integer(),
  scoreDeadline: Type.Integer(),
  revealDeadline: Type.Integer(),
  k1: Type.Integer({ description: 'trainers paid' }),
  k2: Type.Integer({ description: 'validators paid' }),
  pool: Amount('reward pool, base units'),
  price: Type.Optional(Amount("the winner's fee per call in the inference market")),
  note: Type.Optional(Type.String()),
  trainers: Type.Integer(),
  validators: Type.Integer(),
  submissions: Type.Integer(),
})

const LeaderboardRow = Type.Object({
  rank: Type.Integer({ description: '1-based; 0 when not ranked' }),
  index: Type.Integer({ description: 'the submission (commitment order)' }),
  trainer: Type.String(),
  weightsCid: Type.String(),
  status: Type.String({ description: 'ranked, unranked, duplicate, lookup, unscored or unpublished' }),
  consensusPpm: Ppm('stake-weighted \u03ba-quantile of the scores'),
  scorePpm: Ppm('stake-weighted mean of the scores clipped at consensus (0 when flagged)'),
  sets: Type.Object({ A: Type.Optional(Bounds), B: Type.Optional(Bounds) }),
  payout: Amount('paid to the trainer'),
  slashed: Amount('taken from its bond'),
  duplicateOf: Type.Optional(Type.Integer()),
})

const ValidatorRow = Type.Object({
  did: Type.String(),
  stake: Amount('its bond on the task'),
  revealed: Type.Boolean(),
  trustPpm: Ppm('1 \u2212 mean distance to consensus / span'),
  distancePpm: Type.Integer(),
  payout: Amount('paid to the validator'),
  slashed: Amount('taken from its bond'),
})

export const ArenaTaskDetailJson = Type.Intersect([
  ArenaTaskJson,
  Type.Object({
    submissionList: Type.Array(
      Type.Object({
        index: Type.Integer(),
        trainer: Type.String(),
        height: Type.Integer(),
        weightsCid: Type.Optional(Type.String()),
      }),
    ),
    draw: Type.Optional(
      Type.Object({
        seed: Type.String(),
        height: Type.Integer(),
        submissions: Type.Array(Type.Integer()),
        duplicates: Type.Array(Type.Array(Type.Integer())),
        validators: Type.Array(Type.String()),
      }),
    ),
    result: Type.Optional(
      Type.Object({
        height: Type.Integer(),
        leaderboard: Type.Array(LeaderboardRow),
        validators: Type.Array(ValidatorRow),
        trainerPool: Amount('the trainers\u2019 part of the pool'),
        validatorPool: Amount('the validators\u2019 part of the pool'),
        refund: Amount('returned to the creator'),
        winner: Type.Optional(
          Type.Object({
            index: Type.Integer(),
            trainer: Type.String(),
            weightsCid: Type.String(),
            registered: Type.Boolean(),
            reason: Type.Optional(Type.String()),
          }),
        ),
      }),
    ),
  }),
])

export const ArenaJobJson = Type.Object({
  role: Type.Union([Type.Literal('trainer'), Type.Literal('validator')]),
  task: Type.Integer(),
  stage: Type.String(),
  cid: Type.Optional(Type.String()),
  error: Type.Optional(Type.String()),
})

const TaskIdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) })
const TasksQuery = Type.Object({
  status: Type.Optional(TaskStatus),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
})
const TrainBody = Type.Object(
  {
    task: Type.Integer({ minimum: 1 }),
    bond: Amount('trainer bond, base units'),
    epochs: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
    seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffffffff })),
    command: Type.Optional(
      Type.String({ minLength: 1, maxLength: 4096, description: 'external trainer, run in a fresh folder' }),
    ),
  },
  { additionalProperties: false },
)
const ValidateBody = Type.Object(
  {
    task: Type.Integer({ minimum: 1 }),
    bond: Amount('validator bond, base units'),
    setA: Type.String({ minLength: 1, maxLength: 4096, description: 'absolute path of hidden set A on the node' }),
    setB: Type.String({ minLength: 1, maxLength: 4096, description: 'absolute path of hidden set B on the node' }),
  },
  { additionalProperties: false },
)

// ---- JSON ----------------------------------------------------------------------------------------

/** bigint -> decimal string, recursively (the views hold money as bigint). */
function jsonOf<T>(value: T): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)))
}

export const taskJson = (t: ArenaTaskView | ArenaTaskDetail): unknown => jsonOf(t)
export const jobJson = (j: ArenaJobView): unknown => jsonOf(j)

function arenaErrorHandler(err: unknown, _request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (err instanceof TxError)
    return reply.code(400).send({ error: { code: 'TX_REJECTED', message: err.message, reason: err.reason } })
  if (err instanceof DonghaeError && err.name === 'TrainerCommandError')
    return reply.code(502).send({ error: { code: err.code, message: err.message } })
  if (err instanceof DonghaeError && err.name === 'CommitmentMismatchError')
    return reply.code(400).send({ error: { code: err.code, message: err.message } })
  throw err
}

// ---- routes ----------------------------------------------------------------------------------------

function arenaRouteTable(api: ArenaApi): RouteOptions[] {
  return [
    {
      method: 'GET',
      url: '/v1/arena/tasks',
      schema: {
        summary: 'Arena training tasks, newest first',
        tags: ['arena'],
        querystring: TasksQuery,
        response: { 200: Type.Object({ tasks: Type.Array(ArenaTaskJson) }), ...ERROR_RESPONSES },
      },
      handler: async (request) => {
        const q = request.query as Static<typeof TasksQuery>
        return { tasks: api.tasks(q).map(taskJson) }
      },
    },
    {
      method: 'GET',
      url: '/v1/arena/tasks/:id',
      schema: {
        summary: 'One Arena task: submissions, the draw, the leaderboard once settled',
        tags: ['arena'],
        params: TaskIdParams,
        response: { 200: ArenaTaskDetailJson, ...ERROR_RESPONSES },
      },
      handler: async (request) => {
        const { id } = request.params as Static<typeof TaskIdParams>
        const task = api.task(id)
        if (task === undefined) throw new NotFoundError(`there is no arena task ${id}`)
        return taskJson(task)
      },
    },
    {
      method: 'GET',
      url: '/v1/operator/arena/jobs',
      onRequest: requireOperator,
      schema: {
        summary: "This node's Arena jobs",
        tags: ['arena', 'operator'],
        security: OPERATOR_SECURITY,
        response: { 200: Type.Object({ jobs: Type.Array(ArenaJobJson) }), ...ERROR_RESPONSES },
      },
      handler: async () => ({ jobs: api.jobs().map(jobJson) }),
    },
    {
      method: 'POST',
      url: '/v1/operator/arena/train',
      onRequest: requireOperator,
      schema: {
        summary: 'Bond as a trainer, train, commit to the weights (published after the deadline)',
        tags: ['arena', 'operator'],
        security: OPERATOR_SECURITY,
        body: TrainBody,
        response: { 200: ArenaJobJson, ...ERROR_RESPONSES },
      },
      handler: async (request) => {
        const b = request.body as Static<typeof TrainBody>
        const job = await api.train({
          task: b.task,
          bond: parseUint64(b.bond, 'body/bond'),
          ...(b.epochs === undefined ? {} : { epochs: b.epochs }),
          ...(b.seed === undefined ? {} : { seed: b.seed }),
          ...(b.command === undefined ? {} : { command: b.command }),
        })
        return jobJson(job)
      },
    },
    {
      method: 'POST',
      url: '/v1/operator/arena/validate',
      onRequest: requireOperator,
      schema: {
        summary: 'Bond as a validator with the hidden sets; scores are committed and revealed by themselves',
        tags: ['arena', 'operator'],
        security: OPERATOR_SECURITY,
        body: ValidateBody,
        response: { 200: ArenaJobJson, ...ERROR_RESPONSES },
      },
      handler: async (request) => {
        const b = request.body as Static<typeof ValidateBody>
        return jobJson(
          await api.validate({ task: b.task, bond: parseUint64(b.bond, 'body/bond'), setA: b.setA, setB: b.setB }),
        )
      },
    },
  ]
}

export const arenaRoutes: FastifyPluginAsync<{ arena: ArenaApi }> = async (app, { arena }) => {
  app.setErrorHandler(arenaErrorHandler)
  for (const route of arenaRouteTable(arena)) app.route(route)
}
