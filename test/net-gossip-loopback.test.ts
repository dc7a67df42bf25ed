// Sixteen nodes on one machine gossip to each other. gossipsub's IP colocation penalty (peer
// score P6) counts peers per source address; every node of a devnet comes from 127.0.0.1, and
// past 10 of them each peer scored −5 × surplus²: −125 with 15 peers, under the graylist threshold
// (−80), so every node ignored every other's gossip and a 16-validator devnet stalled at its first
// height with transfers. Loopback is exempt now (src/net/gossip.ts LOOPBACK_ADDRESSES).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { createHost, type DonghaeHost } from '../src/net/host.ts'
import { Libp2pTransport } from '../src/net/libp2p-transport.ts'
import { Ed25519KeyPair } from '../src/identity/keys.ts'

const NODES = 16
const TOPIC = 'loopback-check'

test('16 nodes on 127.0.0.1: no peer is scored down for sharing the address, and one message reaches all 15 others', async (t) => {
  const options = { host: '127.0.0.1', port: 0, quic: false, webSockets: false, mdns: false } as const
  const hosts: DonghaeHost[] = []
  const transports: Libp2pTransport[] = []
  try {
    for (let i = 0; i < NODES; i++) {
      const host = await createHost({ key: Ed25519KeyPair.generate(), ...options })
      await host.start()
      hosts.push(host)
      transports.push(new Libp2pTransport(host, { chainId: 'loopback' }))
    }
    const heard = new Set<number>()
    transports.forEach((transport, i) =>
      transport.subscribe(TOPIC, () => {
        heard.add(i)
        return 'accept'
      }),
    )
    // every node connected to every other, as on a 16-validator devnet (a host takes only a few
    // new inbound connections a second from one address: dials are paced and retried)
    for (let i = 1; i < NODES; i++)
      for (let j = 0; j < i; j++)
        for (let attempt = 0; ; attempt++) {
          try {
            await (hosts[i] as DonghaeHost).dial((hosts[j] as DonghaeHost).getMultiaddrs()[0] as never)
            break
          } catch (err) {
            if (attempt >= 20) throw err
            await sleep(250)
          }
        }
    const sender = hosts[0] as DonghaeHost
    const deadline = Date.now() + 30_000
    while (
      Date.now() < deadline &&
      sender.services.pubsub.getSubscribers(`/donghae/loopback/${TOPIC}/2`).length < NODES - 1
    )
      await sleep(100)
    await sleep(1_500) // a heartbeat or two: scores are refreshed there
    // gossipsub's own view of the peer (not part of its exported interface)
    const scoreOf = (h: DonghaeHost): number =>
      (h.services.pubsub as unknown as { getScore(peer: string): number }).getScore(sender.peerId.toString())
    const scores = hosts.slice(1).map(scoreOf)
    t.diagnostic(`the sender's score at each peer: ${[...new Set(scores.map((s) => s.toFixed(1)))].join(', ')}`)
    assert.ok(
      scores.every((s) => s >= 0),
      `every peer scores the sender at 0 or more (${scores.join(', ')})`,
    )
    ;(transports[0] as Libp2pTransport).publish(TOPIC, new TextEncoder().encode('hello'))
    const until = Date.now() + 10_000
    while (Date.now() < until && heard.size < NODES - 1) await sleep(50)
    assert.equal(heard.size, NODES - 1, 'all 15 others heard the message')
  } finally {
    for (const transport of transports) transport.stop()
    await Promise.all(hosts.map((h) => h.stop()))
  }
})
