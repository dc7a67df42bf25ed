/** GET /v1/node: what software this node runs, and for how long (the dashboard's overview). */
import { readFileSync } from 'node:fs'
import type { FastifyPluginAsync } from 'fastify'
import { ERROR_RESPONSES, NodeInfoResponse, type NodeInfoJson } from '../schemas.ts'

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }

export const infoRoutes: FastifyPluginAsync = async (app) => {
  const started = Date.now()
  app.route({
    method: 'GET',
    url: '/v1/node',
    schema: {
      summary: 'Software versions and uptime of this node',
      tags: ['node'],
      response: { 200: NodeInfoResponse, ...ERROR_RESPONSES },
    },
    handler: async (): Promise<NodeInfoJson> => ({
      version: pkg.version,
      node: process.versions.node,
      platform: `${process.platform}-${process.arch}`,
      uptimeSeconds: Math.round((Date.now() - started) / 1000),
    }),
  })
}
