/**
 * Governance's read routes (issue 15, part 5), over the node's GovernanceApi
 * (governance-api.ts). Proposals are changed by signed transactions (`governance.propose`,
 * `governance.deposit`, `governance.vote` through POST /v1/tx; `donghae gov` signs them).
 *
 *   GET /v1/gov/proposals?status&limit&before   newest first; `before` = the last id of the previous page
 *   GET /v1/gov/proposals/{id}                  one proposal with its tally (so far, or final), votes, deposits
 *   GET /v1/gov/params?height                   every governed parameter's effective value (at a past height
 *                                               from its history), its default, bounds and whether governance
 *                                               set it; and the genesis parameters, which are fixed
 *
 * JSON: amounts and voting power are decimal strings; a uint parameter's value is a decimal
 * string, a list parameter's an array of strings. An unknown proposal is 404; a height above the
 * head is 400.
 */
import type { FastifyPluginAsync, RouteOptions } from 'fastify'
import Type from '../schema-builder.ts'
import type { GovernanceApi, ProposalQuery, ProposalStatusView } from '../governance-api.ts'
import { NotFoundError } from '../errors.ts'
import { ERROR_RESPONSES } from '../schemas.ts'

const STATUSES: readonly ProposalStatusView[] = [
  'deposit',
  'voting',
  'passed',
  'applied',
  'rejected',
  'vetoed',
  'expired',
]
const Amount = (description: string) => Type.String({ pattern: '^(0|[1-9][0-9]*)$', description })
const Height = (description: string) => Type.Integer({ minimum: 0, description })
const Value = Type.Union([Type.String({ description: 'a uint, as a decimal string' }), Type.Array(Type.String())], {
  description: 'a uint parameter: a decimal string; a list parameter: an array of strings',
})
const Status = Type.Union(
  STATUSES.map((s) => Type.Literal(s)),
  {
    description:
      'deposit \u2192 voting \u2192 passed \u2192 applied, or rejected, vetoed (deposit burned), expired (deposit period)',
  },
)

const TallyJson = Type.Object({
  yes: Amount('bonded stake voting yes'),
  no: Amount('bonded stake voting no'),
  abstain: Amount('bonded stake abstaining'),
  veto: Amount('bonded stake voting no with veto'),
  totalPower: Amount('bonded stake of the validators that may vote'),
  turnoutBps: Type.Integer({ minimum: 0, description: 'votes over total power, basis points' }),
  final: Type.Boolean({ description: 'true: the tally the decision used; false: so far' }),
  outcome: Type.Union([Type.Literal('passed'), Type.Literal('rejected'), Type.Literal('vetoed')]),
  reason: Type.Optional(Type.String({ description: 'quorum, threshold or veto' })),
})

const ProposalJson = Type.Object({
  id: Type.Integer({ minimum: 1 }),
  proposer: Type.String(),
  title: Type.String(),
  description: Type.String(),
  changes: Type.Array(Type.Object({ param: Type.String(), value: Value })),
  status: Status,
  submitHeight: Height('height of the governance.propose'),
  depositEndHeight: Height('last height of the deposit period'),
  totalDeposit: Amount('deposits held (or refunded, or burned)'),
  minDeposit: Amount('what the deposit must reach for voting to start (the current governance.minDeposit)'),
  requestedApplyHeight: Type.Optional(Height('the height the proposer named')),
  votingStartHeight: Type.Optional(Height('first height of the voting period')),
  votingEndHeight: Type.Optional(Height('last height of the voting period (votes in it count)')),
  applyHeight: Type.Optional(Height('where the changes apply if the proposal passes')),
  decidedHeight: Type.Optional(Height('where it was decided or expired')),
  appliedHeight: Type.Optional(Height('where its changes were written')),
  reason: Type.Optional(Type.String({ description: 'quorum, threshold, veto or deposit' })),
  tally: Type.Optional(TallyJson),
  votes: Type.Optional(
    Type.Array(
      Type.Object({
        voter: Type.String(),
        option: Type.Union([Type.Literal('yes'), Type.Literal('no'), Type.Literal('abstain'), Type.Literal('veto')]),
        power: Amount("the voter's bonded stake now"),
      }),
    ),
  ),
  deposits: Type.Optional(Type.Array(Type.Object({ did: Type.String(), amount: Amount('deposited') }))),
})

const ParamJson = Type.Object({
  name: Type.String({ description: '<module>.<name>' }),
  kind: Type.Union([Type.Literal('uint'), Type.Literal('list')]),
  value: Value,
  default: Value,
  governed: Type.Boolean({ description: 'true when an accepted proposal set it' }),
  changedAt: Type.Optional(Height('the height of the last change (at or before the asked height)')),
  proposal: Type.Optional(Type.Integer({ minimum: 1, description: 'the proposal of that change' })),
  min: Type.Optional(Amount('least value a proposal may set')),
  max: Type.Optional(Amount('largest value a proposal may set')),
  maxItems: Type.Optional(Type.Integer()),
  maxItemChars: Type.Optional(Type.Integer()),
  description: Type.String(),
})

const ParamsJson = Type.Object({
  height: Height('the height the values are for'),
  params: Type.Array(ParamJson),
  fixed: Type.Record(Type.String(), Type.Union([Type.String(), Type.Number()]), {
    description: 'the genesis parameters: not governable (amounts as decimal strings)',
  }),
})

const ProposalsQuery = Type.Object({
  status: Type.Optional(Status),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'default 50' })),
  before: Type.Optional(
    Type.Integer({ minimum: 1, description: 'only ids below this: the last id of the previous page' }),
  ),
})

function governanceRouteTable(api: GovernanceApi): RouteOptions[] {
  return [
    {
      method: 'GET',
      url: '/v1/gov/proposals',
      schema: {
        summary: 'Governance proposals, newest first, with their tally so far or final',
        tags: ['governance'],
        querystring: ProposalsQuery,
        response: {
          200: Type.Object({ height: Height('the latest committed height'), proposals: Type.Array(ProposalJson) }),
          ...ERROR_RESPONSES,
        },
      },
      handler: async (request) => api.proposals(request.query as ProposalQuery),
    },
    {
      method: 'GET',
      url: '/v1/gov/proposals/:id',
      schema: {
        summary: 'One proposal: its changes, deposit, periods, votes and tally (so far while voting)',
        tags: ['governance'],
        params: Type.Object({ id: Type.Integer({ minimum: 1 }) }),
        response: { 200: ProposalJson, ...ERROR_RESPONSES },
      },
      handler: async (request) => {
        const { id } = request.params as { id: number }
        const found = api.proposal(id)
        if (found === undefined) throw new NotFoundError(`there is no proposal ${id}`)
        return found
      },
    },
    {
      method: 'GET',
      url: '/v1/gov/params',
      schema: {
        summary:
          'Governed parameters: effective values (now or at a past height), defaults, bounds; and the fixed genesis parameters',
        tags: ['governance'],
        querystring: Type.Object({
          height: Type.Optional(Height('a committed height (default: the latest)')),
        }),
        response: { 200: ParamsJson, ...ERROR_RESPONSES },
      },
      handler: async (request) => api.params((request.query as { height?: number }).height),
    },
  ]
}

export const governanceRoutes: FastifyPluginAsync<{ governance: GovernanceApi }> = async (app, { governance }) => {
  for (const route of governanceRouteTable(governance)) app.route(route)
}
