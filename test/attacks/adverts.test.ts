// Slot adverts are validated before they are relayed. Real libp2p hosts on loopback: a gateway
// with the inference service's validator and worker table, a bonded worker, a second node that
// hears only what the gateway relays, and an attacker connected to the gateway only, gossiping
// adverts of its own unbonded key, an advert for another chain, the worker's genuine advert
// republished, and 2,000 adverts naming fresh keys; the worker's own stale advert too. Only the
// worker's fresh adverts reach the table and the second node; the unbonded and stale ones are
// ignored; what is provably invalid is rejected until the gateway bans the attacker.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { toHex } from '../../src/core/bytes.ts'
import { sha256 } from '../../src/core/hash.ts'
import { Ed25519KeyPair } from '../../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../../src/identity/did-key.ts'
import { gossipTopic } from '../../src/net/constants.ts'
import { Libp2pTransport } from '../../src/net/libp2p-transport.ts'
import { frameGossip } from '../../src/net/gossip.ts'
import { ADVERT_FRESH_MS, ADVERT_TOPIC, WorkerTable, advertValidator, signAdvert } from '../../src/inference/adverts.ts'
import { waitFor } from '../helpers/chain-net.ts'
import { asDonghaeHost, bareHost, type BareHost } from '../helpers/bare-host.ts'
import { createRng, testSeed } from '../helpers/random.ts'

const CHAIN = 'donghae-adverts'

test('attack: unbonded, foreign, stale and misattributed slot adverts (2,000 naming fresh keys) to fill gateways’ worker tables — ignored or rejected at gossip validation, never relayed; the attacker banned; the table holds the one real worker', async (t) => {
  const rng = createRng(testSeed())
  t.diagnostic(`seed ${rng.seed}`)
  const base = 19_400 + rng.int(0, 10) * 8 // 19400-19499, beside this directory's other ranges
  const keys = {
    gateway: Ed25519KeyPair.generate(),
    listener: Ed25519KeyPair.generate(),
    worker: Ed25519KeyPair.generate(),
    attacker: Ed25519KeyPair.generate(),
  }
  const hosts: BareHost[] = []
  const transports: Libp2pTransport[] = []
  try {
    for (const [i, key] of [keys.gateway, keys.listener, keys.worker, keys.attacker].entries()) {
      const host = await bareHost(key, base + i)
      await host.start()
      hosts.push(host)
    }
    const [gatewayHost, listenerHost, workerHost, attacker] = hosts as [BareHost, BareHost, BareHost, BareHost]
    for (const host of [listenerHost, workerHost, attacker]) await host.dial(gatewayHost.getMultiaddrs()[0] as never)
    const [gateway, listener, worker] = [gatewayHost, listenerHost, workerHost].map((h) => {
      const transport = new Libp2pTransport(asDonghaeHost(h), { chainId: CHAIN })
      transport.start()
      transports.push(transport)
      return transport
    }) as [Libp2pTransport, Libp2pTransport, Libp2pTransport]
    const workerDid = didFromEd25519PublicKey(keys.worker.publicKey)
    const table = new WorkerTable()
    gateway.subscribe(ADVERT_TOPIC, advertValidator({ chainId: CHAIN, table, isBonded: (did) => did === workerDid }))
    const heard: string[] = []
    listener.subscribe(ADVERT_TOPIC, (data, from) => {
      if (from === gateway.self) heard.push(toHex(sha256(data)))
      return 'ignore'
    })
    worker.subscribe(ADVERT_TOPIC, () => 'ignore')
    const topic = gossipTopic(CHAIN, ADVERT_TOPIC)
    attacker.services.pubsub.subscribe(topic)
    await waitFor('the gateway to take adverts from the worker and the attacker', () =>
      [workerHost, attacker].every((h) =>
        h.services.pubsub.getSubscribers(topic).some((p) => p.equals(gatewayHost.peerId)),
      ),
    )

    let seq = 0
    const advert = (key: Ed25519KeyPair, overrides: { chainId?: string; time?: number } = {}): Uint8Array =>
      signAdvert(key, {
        chainId: overrides.chainId ?? CHAIN,
        ep: 'cpu',
        runtime: 'onnxruntime-node/1.30.0',
        models: [{ cid: 'model', mjps: 50_000 }],
        free: 8,
        queue: 0,
        seq: ++seq,
        time: overrides.time ?? Date.now(),
      })
    const relayedHash = (bytes: Uint8Array): boolean => heard.includes(toHex(sha256(bytes)))

    const first = advert(keys.worker)
    worker.publish(ADVERT_TOPIC, first)
    await waitFor('the worker’s advert to be relayed', () => relayedHash(first))

    // The attack. Ignored (not bonded in the gateway's view): 50 adverts of the attacker's own key.
    const attackerDid = didFromEd25519PublicKey(keys.attacker.publicKey)
    const unbonded = Array.from({ length: 50 }, () => advert(keys.attacker))
    for (const bytes of unbonded) await attacker.services.pubsub.publish(topic, frameGossip(bytes))
    // Ignored too: the worker's own advert, stale.
    const stale = advert(keys.worker, { time: Date.now() - ADVERT_FRESH_MS - 1_000 })
    worker.publish(ADVERT_TOPIC, stale)
    const fresh = advert(keys.worker)
    worker.publish(ADVERT_TOPIC, fresh)
    await waitFor('the worker’s fresh advert to be relayed', () => relayedHash(fresh))
    assert.equal(gateway.penaltyScore(attackerDid), 0, 'unbonded adverts are ignored, not punished')
    // Ignored: the worker's last advert replayed by the attacker (gossip carries no author: the
    // worker's signature is what counts, and the table already holds that sequence number).
    await attacker.services.pubsub.publish(topic, frameGossip(fresh)).catch(() => {})
    // Rejected: another chain's advert, and 2,000 adverts naming fresh keys.
    const foreign = advert(keys.attacker, { chainId: 'another-chain' })
    const named = Array.from({ length: 2_000 }, () => advert(Ed25519KeyPair.generate()))
    for (const bytes of [foreign, ...named])
      await attacker.services.pubsub.publish(topic, frameGossip(bytes)).catch(() => {})
    await waitFor('the gateway to ban the attacker', () => gatewayHost.getConnections(attacker.peerId).length === 0)

    assert.equal(heard.filter((h) => h === toHex(sha256(fresh))).length, 1, 'the replayed advert was relayed again')
    for (const bytes of [foreign, stale, ...unbonded, ...named])
      assert.ok(!relayedHash(bytes), 'a refused advert was relayed')
    assert.deepEqual(
      table.live().map((a) => a.worker),
      [workerDid],
      'the table holds the real worker only',
    )
    assert.equal(table.size, 1)
    assert.equal(gateway.penaltyScore(workerDid), 0, 'a stale advert is not misbehaviour')
    assert.ok(gatewayHost.getConnections(workerHost.peerId).length > 0, 'the worker stays connected')
  } finally {
    for (const transport of transports) transport.stop()
    for (const host of hosts) await host.stop()
  }
})
