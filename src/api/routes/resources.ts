/**
 * GET /v1/node/resources?since: the node's resource use over time (resources-api.ts), sampled
 * every few seconds from the sources of GET /metrics' process metrics, for the dashboard's
 * Resources page. Read-only and open like /metrics. `since` (Unix ms) returns only the samples
 * taken after it, so a page that polls asks for what is new.
 */
import type { FastifyPluginAsync } from 'fastify'
import Type from '../schema-builder.ts'
import type { ResourcesApi, ResourcesView } from '../resources-api.ts'
import { ERROR_RESPONSES } from '../schemas.ts'

const Sample = Type.Object({
  at: Type.Integer({ minimum: 0, description: 'when the sample was taken, Unix ms (it covers the interval before)' }),
  cpu: Type.Number({ minimum: 0, description: 'CPU time over the interval, in cores (1 = one core busy)' }),
  rssBytes: Type.Integer({ minimum: 0, description: 'resident set size, bytes' }),
  eventLoopDelayMs: Type.Number({ minimum: 0, description: 'event-loop delay over the interval, 99th percentile, ms' }),
  eventLoopMaxMs: Type.Number({ minimum: 0, description: 'longest event-loop delay over the interval, ms' }),
  blockIntervalMs: Type.Union([Type.Number({ minimum: 0 }), Type.Null()], {
    description:
      'mean time between the blocks committed in the interval, ms (none committed: the time since the last commit when longer than the last interval); null before two commits',
  }),
  height: Type.Integer({ minimum: 0, description: 'chain height when the sample was taken' }),
})

const ResourcesResponse = Type.Object({
  intervalMs: Type.Integer({ minimum: 1, description: 'how often the node samples, ms' }),
  windowMs: Type.Integer({ minimum: 1, description: 'how far back the node keeps samples, ms' }),
  samples: Type.Array(Sample, { description: 'oldest first' }),
})

export const resourcesRoutes: FastifyPluginAsync<{ resources: ResourcesApi }> = async (app, { resources }) => {
  app.route({
    method: 'GET',
    url: '/v1/node/resources',
    schema: {
      summary: "The node's CPU, resident memory, event-loop delay and block interval over time (the last hour)",
      tags: ['node'],
      querystring: Type.Object({
        since: Type.Optional(Type.Integer({ minimum: 0, description: 'only samples taken after this, Unix ms' })),
      }),
      response: { 200: ResourcesResponse, ...ERROR_RESPONSES },
    },
    handler: async (request): Promise<ResourcesView> => {
      const { since } = request.query as { since?: number }
      return resources.resources(since)
    },
  })
}
