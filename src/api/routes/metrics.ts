/** GET /metrics: the node's Prometheus metrics (text exposition format), open like every read-only route. */
import type { FastifyPluginAsync } from 'fastify'
import type { NodeMetrics } from '../metrics.ts'

export const metricsRoutes: FastifyPluginAsync<{ metrics: NodeMetrics }> = async (app, { metrics }) => {
  app.route({
    method: 'GET',
    url: '/metrics',
    schema: {
      summary:
        'Prometheus metrics (donghae_\u2026): chain height, finality, peers, jobs, latency, audits, slashes, NAT',
      tags: ['metrics'],
      produces: ['text/plain'],
    },
    handler: async (_request, reply) => reply.type(metrics.contentType).send(await metrics.text()),
  })
}
