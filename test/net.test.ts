// The chain over real libp2p sockets in one process: DID records in the DHT (valid ones found,
// forged and stale ones refused), and hostile peers — malformed gossip, oversized and malformed
// protocol frames, a flood of signed junk — rejected without stalling consensus.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { lpStream } from '@libp2p/utils'
import { createHost, type DonghaeHost } from '../src/net/host.ts'
import { Libp2pTransport } from '../src/net/libp2p-transport.ts'
import { NetworkService } from '../src/net/network.ts'
import { gossipTopic } from '../src/net/constants.ts'
import { frameGossip } from '../src/net/gossip.ts'
import {
  didRecordKey,
  encodeDidRecord,
  signDidRecord,
  decodeDidRecord,
  DidRecordError,
} from '../src/net/did-records.ts'
import { DonghaeNode } from '../src/node/index.ts'
import { SYNC_PROTOCOL } from '../src/chain/runtime.ts'
import { encodeConsensusMessage, signVote } from '../src/chain/bft/messages.ts'
import { peerIdFromDid } from '../src/identity/peer-id.ts'
import { actor, makeGenesis, type Actor } from './helpers/chain.ts'
import { FAST_PARAMS, waitFor } from './helpers/chain-net.ts'

interface Net {
  hosts: DonghaeHost[]
  nodes: DonghaeNode[]
  networks: NetworkService[]
  close(): Promise<void>
}

async function start(validators: Actor[]): Promise<Net> {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-p2p-'))
  const genesis = makeGenesis(
    validators,
    validators.map((v) => [v, 1_000_000n]),
    FAST_PARAMS,
  )
  const hosts: DonghaeHost[] = []
  const nodes: DonghaeNode[] = []
  const networks: NetworkService[] = []
  for (const [i, v] of validators.entries()) {
    const bootstrap = i === 0 ? [] : [String((hosts[0] as DonghaeHost).getMultiaddrs()[0])]
    const host = await createHost({ key: v.key, host: '127.0.0.1', port: 0, mdns: false, quic: false, bootstrap })
    await host.start()
    hosts.push(host)
    const transport = new Libp2pTransport(host, { chainId: genesis.chainId })
    transport.start()
    const node = await DonghaeNode.create({
      dataDir: join(dir, `n${i}`),
      genesis,
      key: v.key,
      transport,
      poh: 'inline',
    })
    node.start()
    nodes.push(node)
    const network = new NetworkService({ host, key: v.key, bootstrap, intervalMs: 1_000 })
    network.start()
    networks.push(network)
  }
  return {
    hosts,
    nodes,
    networks,
    async close() {
      for (const n of networks) n.stop()
      for (const n of nodes) await n.stop()
      for (const h of hosts) await h.stop()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

test('DID records: published records resolve across the DHT; forged, foreign and expired records are refused', async () => {
  const validators = [actor(), actor(), actor()]
  const net = await start(validators)
  try {
    const [a, b] = validators as [Actor, Actor]
    const [na, , nc] = net.networks as [NetworkService, NetworkService, NetworkService]
    await waitFor('peers', () => net.hosts.every((h) => h.getPeers().length >= 1))
    const published = await na.publishDid()
    await waitFor(
      'the record to be found by another node',
      async () => (await nc.resolveDid(a.did))?.seq === published.seq,
      20_000,
    )
    const found = await nc.resolveDid(a.did)
    assert.deepEqual(found?.addresses, published.addresses)

    // b signs a record but stores it under a's key, with a higher sequence number: refused.
    const forged = signDidRecord(b.key, {
      addresses: ['/ip4/6.6.6.6/tcp/1'],
      services: [],
      seq: published.seq + 100,
      expires: Date.now() + 60_000,
    })
    const dht = (net.hosts[1] as DonghaeHost).services.dht
    const errors: string[] = []
    try {
      for await (const event of dht.put(didRecordKey(a.did), encodeDidRecord(forged)))
        if (event.name === 'QUERY_ERROR') errors.push(event.error.message)
    } catch (err) {
      errors.push((err as Error).message)
    }
    assert.ok(errors.length > 0, 'peers refused the forged record')
    // A record whose signature was altered is refused by the decoder and the DHT validator.
    const altered = {
      ...signDidRecord(a.key, { addresses: [], services: [], seq: published.seq + 1, expires: Date.now() + 60_000 }),
      addresses: ['/ip4/6.6.6.6/tcp/1'],
    }
    assert.throws(() => decodeDidRecord(encodeDidRecord(altered)), DidRecordError)
    const expired = signDidRecord(a.key, {
      addresses: [],
      services: [],
      seq: published.seq + 2,
      expires: Date.now() - 1,
    })
    assert.throws(() => decodeDidRecord(encodeDidRecord(expired)), /expired/)
    assert.throws(() => decodeDidRecord(randomBytes(200)), DidRecordError)
    const after = await nc.resolveDid(a.did)
    assert.equal(after?.seq, published.seq, 'the valid record still wins')
    assert.deepEqual(after?.addresses, published.addresses)
  } finally {
    await net.close()
  }
})

test('hostile peer: malformed gossip, oversized and malformed frames, and a flood of signed junk do not stall consensus', async () => {
  const validators = [actor(), actor(), actor(), actor()]
  const net = await start(validators)
  const attackerKey = actor()
  const attacker = await createHost({ key: attackerKey.key, host: '127.0.0.1', port: 0, mdns: false, quic: false })
  await attacker.start()
  try {
    const target = net.hosts[0] as DonghaeHost
    const node = net.nodes[0] as DonghaeNode
    await attacker.dial(target.getMultiaddrs()[0] as never)
    const chainId = node.app.chainId
    attacker.services.pubsub.subscribe(gossipTopic(chainId, 'consensus'))
    await waitFor('height 2', () => node.app.head.height >= 2, 20_000)
    const before = node.app.head.height

    // Oversized frame on the sync protocol: refused by the length limit, the stream is closed.
    const big = await attacker.dialProtocol(target.peerId, SYNC_PROTOCOL)
    const lp = lpStream(big, { maxDataLength: 64 * 1024 * 1024 })
    await lp.write(new Uint8Array(20 * 1024 * 1024)).catch(() => {})
    await lp.read({ signal: AbortSignal.timeout(5_000) }).then(
      () => assert.fail('an oversized request got an answer'),
      () => {},
    )
    // Malformed frame: not dag-cbor.
    const bad = await attacker.dialProtocol(target.peerId, SYNC_PROTOCOL)
    const lp2 = lpStream(bad)
    await lp2.write(randomBytes(100)).catch(() => {})
    await lp2.read({ signal: AbortSignal.timeout(5_000) }).then(
      () => assert.fail('a malformed request got an answer'),
      () => {},
    )

    // The oversized frame may have cost the attacker its connection (a muxer error): be connected
    // and know that the target takes consensus gossip before the flood, or nothing would arrive.
    const topic = gossipTopic(chainId, 'consensus')
    await waitFor(
      'the attacker connected and subscribed-to',
      async () => {
        if (target.getConnections(attacker.peerId).length === 0)
          await attacker.dial(target.getMultiaddrs()[0] as never).catch(() => {})
        return attacker.services.pubsub.getSubscribers(topic).some((p) => p.equals(target.peerId))
      },
      10_000,
    )
    // Well-formed votes signed by a non-validator: they pass gossip validation and are refused by
    // consensus. Sent before the malformed flood: invalid gossip lowers the attacker's gossipsub
    // score until its messages are ignored, and gets it disconnected.
    // Spread over about three seconds: a vote that arrives after its height has passed is
    // dropped without a verdict, and a burst can arrive late all at once.
    for (let i = 0; i < 300; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10))
      const status = node.runtime.consensus
      if (status !== undefined) {
        const vote = signVote(attackerKey.key, {
          chainId,
          height: status.height,
          round: status.round,
          type: 'prevote',
          blockId: randomBytes(32),
          validator: attackerKey.did,
        })
        await attacker.services.pubsub
          .publish(gossipTopic(chainId, 'consensus'), frameGossip(encodeConsensusMessage({ kind: 'vote', vote })))
          .catch(() => {})
      }
    }
    await waitFor(
      'consensus to refuse votes from a non-validator',
      () => node.runtime.stats.rejectedMessages > 0,
      10_000,
    )
    // Flood: malformed gossip, rejected before forwarding; each one counts against the sender.
    for (let i = 0; i < 300; i++)
      await attacker.services.pubsub
        .publish(gossipTopic(chainId, 'consensus'), frameGossip(randomBytes(64)))
        .catch(() => {})
    await waitFor('5 more blocks despite the attacker', () => node.app.head.height >= before + 5, 30_000)
    await waitFor(
      'the attacker to be disconnected',
      () => target.getConnections(peerIdFromDid(attackerKey.did)).length === 0,
      20_000,
    )
  } finally {
    await attacker.stop()
    await net.close()
  }
})

test('the peer book is persisted: a restarted node with no bootstrap list reconnects to the peers it knew', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-peerbook-'))
  const a = actor()
  const b = actor()
  const hostA = await createHost({
    key: a.key,
    host: '127.0.0.1',
    port: 0,
    mdns: false,
    quic: false,
    webSockets: false,
  })
  await hostA.start()
  try {
    const bootstrap = [String(hostA.getMultiaddrs()[0])]
    let hostB = await createHost({
      key: b.key,
      host: '127.0.0.1',
      port: 0,
      mdns: false,
      quic: false,
      webSockets: false,
      datastorePath: join(dir, 'p2p'),
      bootstrap,
    })
    await hostB.start()
    await waitFor('B to meet A', () => hostB.getPeers().length > 0)
    await hostB.stop()
    hostB = await createHost({
      key: b.key,
      host: '127.0.0.1',
      port: 0,
      mdns: false,
      quic: false,
      webSockets: false,
      datastorePath: join(dir, 'p2p'),
    })
    await hostB.start()
    const network = new NetworkService({ host: hostB, key: b.key, intervalMs: 500 })
    network.start()
    try {
      await waitFor(
        'B to reconnect from its peer book alone',
        () => hostB.getPeers().some((p) => p.equals(hostA.peerId)),
        15_000,
      )
    } finally {
      network.stop()
      await hostB.stop()
    }
  } finally {
    await hostA.stop()
    await rm(dir, { recursive: true, force: true })
  }
})
