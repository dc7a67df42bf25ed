// Expert hosts over real libp2p sockets in one process: three hosts announce and find expert
// blocks through the kad-DHT, the cache expires, announcements repeat, and a coordinator calls
// an expert over a real session stream.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ManualClock } from '../../core/clock.ts'
import { Ed25519KeyPair } from '../../identity/keys.ts'
import { didFromPeerId } from '../../identity/peer-id.ts'
import { createHost, type DonghaeHost } from '../../net/host.ts'
import { Libp2pTransport } from '../../net/libp2p-transport.ts'
import { RemoteExperts } from './coordinator.ts'
import { ExpertDirectory, libp2pRouting, type ExpertRouting } from './directory.ts'
import { serveExperts } from './protocol.ts'
import { referenceExpert, testCall } from './swarm.ts'

const peerDid = (peerId: unknown): string => {
  try {
    return didFromPeerId(peerId as Parameters<typeof didFromPeerId>[0])
  } catch {
    return ''
  }
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`)
}

/** Peers in a host's DHT routing table (kad-dht's implementation has it; its interface does not). */
function tableSize(host: DonghaeHost): number {
  return (host.services.dht as unknown as { routingTable: { size: number } }).routingTable.size
}

function counting(routing: ExpertRouting): ExpertRouting & { provided: number } {
  const wrapped = {
    provided: 0,
    async provide(key: Parameters<ExpertRouting['provide']>[0], signal: AbortSignal): Promise<void> {
      await routing.provide(key, signal)
      wrapped.provided++
    },
    findProviders: (key: Parameters<ExpertRouting['findProviders']>[0], signal: AbortSignal) =>
      routing.findProviders(key, signal),
  }
  return wrapped
}

test('three libp2p hosts: provide and findProviders, cache expiry, re-announce, a call over a session', async () => {
  const hosts: DonghaeHost[] = []
  const transports: Libp2pTransport[] = []
  try {
    for (let i = 0; i < 3; i++) {
      const bootstrap = i === 0 ? [] : [String((hosts[0] as DonghaeHost).getMultiaddrs()[0])]
      const host = await createHost({
        key: Ed25519KeyPair.generate(),
        host: '127.0.0.1',
        port: 0,
        mdns: false,
        quic: false,
        webSockets: false,
        bootstrap,
      })
      await host.start()
      hosts.push(host)
    }
    const [, h1, h2] = hosts as [DonghaeHost, DonghaeHost, DonghaeHost]
    await h1.dial(h2.getMultiaddrs()[0] as never)
    await waitFor('DHT routing tables', () => hosts.every((h) => tableSize(h) >= 2))
    const dids = hosts.map((h) => peerDid(h.peerId))
    const clock = new ManualClock(Date.now())
    const block = testCall(0, 1).block
    const routings = hosts.map((h) => counting(libp2pRouting(h, peerDid)))
    const directories = hosts.map(
      (_h, i) =>
        new ExpertDirectory({
          routing: routings[i] as ExpertRouting,
          self: dids[i] as string,
          clock,
          ttlMs: 3 * 60_000,
          reannounceMs: 60_000,
          lookupTimeoutMs: 5_000,
        }),
    )
    const [d0, d1, d2] = directories as [ExpertDirectory, ExpertDirectory, ExpertDirectory]
    d1.start()
    d2.start()
    await d1.announce(block)
    await d2.announce(block)
    assert.equal(routings[1]?.provided, 1)
    await waitFor('both providers found from the third host', async () => {
      const found = await d0.hostsOf(block, { fresh: true, timeoutMs: 5_000 })
      return found.includes(dids[1] as string) && found.includes(dids[2] as string)
    })
    assert.deepEqual(await d1.hostsOf(block, { fresh: true }), [dids[2]])

    // Re-announcement: after reannounceMs the hosts provide again.
    clock.advance(60_000)
    await waitFor('re-announcement', () => (routings[1]?.provided ?? 0) >= 2 && (routings[2]?.provided ?? 0) >= 2)
    d1.stop()
    d2.stop()

    // The cache forgets hosts not seen again within ttlMs; the DHT still has their records.
    clock.advance(2 * 60_000 + 1)
    assert.deepEqual(d0.cached(block), [])
    assert.deepEqual((await d0.hostsOf(block, { fresh: true })).sort(), [dids[1], dids[2]].sort())
    // A call over a real session: host 1 serves the expert, host 0 coordinates.
    for (const h of hosts) {
      const t = new Libp2pTransport(h, { chainId: 'experts-test' })
      t.start()
      transports.push(t)
    }
    serveExperts({
      transport: transports[1] as Libp2pTransport,
      hosts: (b) => b === block,
      run: (c) => Promise.resolve(referenceExpert(c)),
    })
    serveExperts({
      transport: transports[2] as Libp2pTransport,
      hosts: () => false,
      run: (c) => Promise.resolve(referenceExpert(c)),
    })
    const experts = new RemoteExperts({
      transport: transports[0] as Libp2pTransport,
      directory: d0,
      family: 'test-moe',
      version: 1,
      callTimeoutMs: 5_000,
    })
    const call = testCall(0, 1)
    // Host 2 announced the block but does not serve it: if asked, it refuses and host 1 answers.
    const [answer] = await experts.runLayer([call])
    assert.equal(answer?.host, dids[1])
    assert.deepEqual(answer?.output, referenceExpert(call))
  } finally {
    for (const t of transports) t.stop()
    for (const h of hosts) await h.stop()
  }
})
