/** Network routes (/v1/net, /v1/did): peers, addresses, NAT state, DID records from the DHT. */
import type { FastifyPluginAsync, RouteOptions } from 'fastify'
import Type from '../schema-builder.ts'
import { parseDidKey } from '../../identity/did-key.ts'
import type { NetApi } from '../net-api.ts'
import { NotFoundError } from '../errors.ts'
import { DidParams, ERROR_RESPONSES } from '../schemas.ts'

const NatResponse = Type.Object({
  method: Type.Union([Type.Literal('pmp'), Type.Literal('upnp'), Type.Literal('none'), Type.Literal('off')]),
  externalAddress: Type.Optional(Type.String()),
  leaseSeconds: Type.Optional(Type.Integer()),
  reason: Type.Optional(Type.String()),
  /** Present while the node holds a circuit-relay reservation (no port could be mapped). */
  relay: Type.Optional(Type.Object({ peer: Type.String(), address: Type.String() })),
})

const NetResponse = Type.Object({
  peerId: Type.String(),
  addresses: Type.Array(Type.String()),
  peers: Type.Array(Type.Object({ did: Type.String(), peerId: Type.String(), addresses: Type.Array(Type.String()) })),
  nat: NatResponse,
})

const DidRecordResponse = Type.Object({
  did: Type.String(),
  addresses: Type.Array(Type.String()),
  services: Type.Array(Type.Object({ id: Type.String(), type: Type.String(), serviceEndpoint: Type.String() })),
  seq: Type.Integer(),
  expires: Type.Integer(),
})

function netRouteTable(net: NetApi): RouteOptions[] {
  return [
    {
      method: 'GET',
      url: '/v1/net',
      schema: {
        summary: "This node's addresses, connected peers and NAT state",
        tags: ['net'],
        response: { 200: NetResponse, ...ERROR_RESPONSES },
      },
      handler: async () => ({ peerId: net.peerId(), addresses: net.addresses(), peers: net.peers(), nat: net.nat() }),
    },
    {
      method: 'GET',
      url: '/v1/net/nat',
      schema: {
        summary: 'Port mapping: method, external address and lease, or why there is none (and the circuit relay used)',
        tags: ['net'],
        response: { 200: NatResponse, ...ERROR_RESPONSES },
      },
      handler: async () => net.nat(),
    },
    {
      method: 'GET',
      url: '/v1/did/:did',
      schema: {
        summary: "A DID's signed record in the DHT (addresses and service endpoints)",
        tags: ['net'],
        params: DidParams,
        response: { 200: DidRecordResponse, ...ERROR_RESPONSES },
      },
      handler: async (request) => {
        const { did } = request.params as { did: string }
        parseDidKey(did)
        const record = await net.resolveDid(did)
        if (record === undefined) throw new NotFoundError(`no DID record for ${did} in the DHT`)
        return record
      },
    },
  ]
}

export const netRoutes: FastifyPluginAsync<{ net: NetApi }> = async (app, options) => {
  for (const route of netRouteTable(options.net)) app.route(route)
}
