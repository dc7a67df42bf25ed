// The circuit-relay fallback over loopback with real libp2p hosts: an unreachable node reserves a
// slot on a relay peer (after one that refuses), a third peer dials it through the relay and
// pings it over an unlimited relayed connection, the node moves to another relay when its relay
// goes away, and gives the reservation up once a public port mapping appears.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { circuitRelayServer } from '@libp2p/circuit-relay-v2'
import { multiaddr } from '@multiformats/multiaddr'
import Fastify from 'fastify'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { DonghaeHost } from '../src/net/host.ts'
import { PROTOCOL_PREFIX } from '../src/net/constants.ts'
import type { RelayStatus } from '../src/net/relay.ts'
import { netRoutes } from '../src/api/routes/net.ts'
import type { NatView, NetApi } from '../src/api/net-api.ts'
import { waitFor } from './helpers/chain-net.ts'
import { loopbackHost } from './helpers/loopback-host.ts'
import { runCli } from './helpers/cli.ts'

const host = loopbackHost

/** A relay that refuses every reservation (its reservation table holds none). */
async function refusingRelay(): Promise<Libp2p> {
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), relay: circuitRelayServer({ reservations: { maxReservations: 0 } }) },
  })
}

const relayStatus = (node: DonghaeHost): RelayStatus => {
  const status = node.services.relayFallback?.status()
  assert.ok(status !== undefined, 'the relay fallback service runs')
  return status
}

/**
 * What a node whose port mapping failed serves, as FullNode does: GET /v1/net/nat, and the text of
 * `donghae nat status` (the real CLI, reading GET /v1/net).
 */
async function natOverHttp(node: DonghaeHost): Promise<{ nat: NatView; cli: string }> {
  const net: NetApi = {
    peerId: () => node.peerId.toString(),
    addresses: () => node.getMultiaddrs().map(String),
    peers: () => [],
    nat: () => {
      const relay = node.services.relayFallback?.status().relay
      return { method: 'none', reason: 'no port mapping available', ...(relay === undefined ? {} : { relay }) }
    },
    resolveDid: async () => undefined,
  }
  const app = Fastify()
  await app.register(netRoutes, { net })
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  const home = await mkdtemp(join(tmpdir(), 'donghae-relay-cli-'))
  try {
    const res = await app.inject({ method: 'GET', url: '/v1/net/nat' })
    assert.equal(res.statusCode, 200, res.body)
    const cli = await runCli(['nat', 'status', '--node', url], { DONGHAE_HOME: home })
    assert.equal(cli.code, 0, cli.stderr)
    return { nat: res.json<NatView>(), cli: cli.stdout }
  } finally {
    await app.close()
    await rm(home, { recursive: true, force: true })
  }
}

test('relay fallback: reserves on a relay after one refuses, is dialled and pinged through it, moves on when it goes', async (t) => {
  const started: Array<{ stop(): void | Promise<void> }> = []
  const start = async <T extends { start(): void | Promise<void>; stop(): void | Promise<void> }>(
    node: T,
  ): Promise<T> => {
    await node.start()
    started.push(node)
    return node
  }
  try {
    const refusing = await start(await refusingRelay())
    const relayA = await start(await host({ relayServer: true }))
    const relayB = await start(await host({ relayServer: true }))
    const node = await start(await host({ relay: 'always' }))
    assert.equal(relayStatus(node).state, 'searching')
    assert.ok(!node.getMultiaddrs().some((a) => a.toString().includes('/p2p-circuit')))

    // The only relay around refuses: the failure is recorded, nothing is announced.
    await node.dial(refusing.getMultiaddrs()[0] as never)
    await waitFor('the refusal to be recorded', () => relayStatus(node).failures.length > 0, 10_000)
    const refusal = relayStatus(node).failures[0]
    assert.equal(refusal?.peer, refusing.peerId.toString())
    assert.match(refusal?.error ?? '', /RESERVATION_REFUSED/)
    t.diagnostic(`refused: ${refusal?.error}`)
    assert.equal(relayStatus(node).state, 'searching')

    // Another relay turns up: the node reserves a slot there and announces its relayed address.
    const since = Date.now()
    await node.dial(relayA.getMultiaddrs()[0] as never)
    await waitFor('a reservation on relay A', () => relayStatus(node).state === 'reserved', 10_000)
    t.diagnostic(`reserved ${Date.now() - since} ms after meeting relay A`)
    const reserved = relayStatus(node).relay
    assert.equal(reserved?.peer, relayA.peerId.toString())
    assert.match(reserved?.address ?? '', new RegExp(`/p2p/${relayA.peerId}/p2p-circuit/p2p/${node.peerId}$`))
    assert.ok(
      node.getMultiaddrs().some((a) => a.toString() === reserved?.address),
      'libp2p announces it',
    )
    const served = await natOverHttp(node)
    assert.deepEqual(served.nat, { method: 'none', reason: 'no port mapping available', relay: reserved })
    assert.match(served.cli, new RegExp(`^relay: reachable through ${relayA.peerId} at ${reserved?.address}$`, 'm'))

    // A third peer, which knows nothing but that address, dials the node through relay A. The
    // connection the dial made is checked (a direct one may come up beside it later: identify
    // tells the outsider the node's loopback address, which it can reach).
    const outsider = await start(await host())
    const conn = await outsider.dial(multiaddr(reserved?.address ?? ''), { signal: AbortSignal.timeout(10_000) })
    assert.ok(conn.remoteAddr.toString().includes('/p2p-circuit'), `relayed: ${conn.remoteAddr}`)
    assert.equal(conn.limits, undefined, 'a full node relays without data or time limits')
    // The DHT does not run on limited connections: a stream opening proves this one is not.
    const stream = await conn.newStream(`${PROTOCOL_PREFIX}/kad/1.0.0`, { signal: AbortSignal.timeout(5_000) })
    await stream.close()
    const rtt = await outsider.services.ping.ping(multiaddr(reserved?.address ?? ''), {
      signal: AbortSignal.timeout(10_000),
    })
    t.diagnostic(`ping through the relay: ${rtt} ms`)

    // Relay A goes away: its address is withdrawn and the node reserves on relay B instead.
    await node.dial(relayB.getMultiaddrs()[0] as never)
    await relayA.stop()
    await waitFor('a reservation on relay B', () => relayStatus(node).relay?.peer === relayB.peerId.toString(), 15_000)
    assert.ok(!node.getMultiaddrs().some((a) => a.toString().includes(relayA.peerId.toString())))

    // A public port mapping makes the relay unnecessary: the reservation is given up.
    node.services.relayFallback?.natChanged({
      method: 'pmp',
      externalAddress: '11.0.0.1',
      externalPort: 4011,
      leaseSeconds: 3600,
      internalAddress: '10.77.0.2',
      internalPort: 4011,
      protocol: 'tcp',
    })
    await waitFor('the relayed address to be withdrawn', () =>
      node.getMultiaddrs().every((a) => !a.toString().includes('/p2p-circuit')),
    )
    assert.equal(relayStatus(node).state, 'off')
  } finally {
    for (const node of started.reverse()) await node.stop()
  }
})

test('relay fallback: a host with port mapping off does not look for a relay unless asked', async () => {
  const node = await host({ nat: 'off' })
  try {
    assert.equal(node.services.relayFallback, undefined)
  } finally {
    await node.stop()
  }
})
