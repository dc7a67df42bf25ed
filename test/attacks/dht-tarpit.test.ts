// Attack (issue 16, goal 4), "DHT tarpits": peers that accept a DHT request and never answer it.
// A stream left open costs its owner nothing, yet kad-dht's own `get` yields its value only when
// every peer it asked has answered or timed out (at least 5 s each), and its `put` sends the record
// only once its lookup has ended. So a few such peers placed nearest a record's key (the attacker
// makes keys until its ids are nearer than any honest one) make every lookup of it wait, and a
// caller with a shorter budget gets nothing although honest peers sent the record at once, and
// stores it nowhere. `dhtGet` (src/net/dht-get.ts), what `resolveDid` runs, returns once
// DHT_GET_QUORUM peers agree, or with the best answer seen when its budget ends; `dhtPut`
// (src/net/dht-put.ts), what `publishDid` runs, sends the record to the peers its lookup found by
// half its budget. Real hosts (createHost) over TCP on 127.0.0.1; kad-dht's own `get` and `put` are
// run first under the same budget, so the test fails if the tarpits did not bite.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Stream } from '@libp2p/interface'
import { type DonghaeHost } from '../../src/net/host.ts'
import { NetworkService } from '../../src/net/network.ts'
import { DHT_GET_QUORUM, dhtGet } from '../../src/net/dht-get.ts'
import { decodeDidRecord, didRecordKey, encodeDidRecord, signDidRecord } from '../../src/net/did-records.ts'
import { dhtPut } from '../../src/net/dht-put.ts'
import { PROTOCOL_PREFIX } from '../../src/net/constants.ts'
import { Ed25519KeyPair } from '../../src/identity/keys.ts'
import { sha256 } from '../../src/core/hash.ts'
import { didFromEd25519PublicKey } from '../../src/identity/did-key.ts'
import { peerIdFromDid } from '../../src/identity/peer-id.ts'
import { loopbackHost } from '../helpers/loopback-host.ts'
import { waitFor } from '../helpers/chain-net.ts'

const KAD = `${PROTOCOL_PREFIX}/kad/1.0.0`
const HONEST = 5
const TARPITS = 2
/** Under kad-dht's least per-request timeout (5 s): a query that asked a tarpit cannot end within it. */
const BUDGET_MS = 4_000

/** XOR distance in kad-dht's key space (SHA-256 of the key, of the peer id's multihash). */
function distance(a: Uint8Array, b: Uint8Array): bigint {
  const x = sha256(a)
  const y = sha256(b)
  return BigInt(`0x${Buffer.from(x.map((v, i) => v ^ (y[i] as number))).toString('hex')}`)
}

interface RoutingTableView {
  size: number
}

async function started(key?: Ed25519KeyPair): Promise<DonghaeHost> {
  const host = await loopbackHost(key === undefined ? {} : { key })
  await host.start()
  return host
}

async function meshed(hosts: DonghaeHost[]): Promise<void> {
  for (const [i, a] of hosts.entries())
    for (const b of hosts.slice(i + 1)) {
      if (a.getConnections(b.peerId).length > 0) continue
      // libp2p takes 5 inbound connections a second from one address (all of these are 127.0.0.1)
      await waitFor('a dial through the per-address limit', () =>
        a.dial(b.getMultiaddrs()[0] as Parameters<typeof a.dial>[0]).then(
          () => true,
          () => false,
        ),
      )
    }
  await waitFor('every routing table holding every other host', () =>
    hosts.every(
      (h) => (h.services.dht as unknown as { routingTable: RoutingTableView }).routingTable.size === hosts.length - 1,
    ),
  )
}

test('attack: peers nearest a record that never answer a DHT request make neither its lookup nor its put fail', async (t) => {
  const owner = Ed25519KeyPair.generate()
  const did = didFromEd25519PublicKey(owner.publicKey)
  const key = didRecordKey(did)
  // The attacker makes keys until its peers are nearer the record's key than any honest one.
  const candidates = Array.from({ length: 48 }, () => Ed25519KeyPair.generate()).map((k) => ({
    key: k,
    d: distance(key, peerIdFromDid(didFromEd25519PublicKey(k.publicKey)).toMultihash().bytes),
  }))
  candidates.sort((a, b) => (a.d < b.d ? -1 : a.d > b.d ? 1 : 0))
  const tarpitKeys = candidates.slice(0, TARPITS).map((c) => c.key)
  const honestKeys = candidates.slice(-HONEST).map((c) => c.key)
  const hosts: DonghaeHost[] = []
  const held: Stream[] = []
  try {
    const publisher = await started(owner)
    hosts.push(publisher)
    for (const k of honestKeys) hosts.push(await started(k))
    const tarpits: DonghaeHost[] = []
    for (const k of tarpitKeys) tarpits.push(await started(k))
    for (const tp of tarpits) {
      // still advertised as a DHT server, so it stays in every routing table; requests are held open
      await tp.handle(KAD, (stream: Stream) => void held.push(stream), { force: true })
      hosts.push(tp)
    }
    await meshed(hosts)
    const published = await new NetworkService({ host: publisher, key: owner }).publishDid()

    // the querier joins afterwards, so it holds no copy of its own
    const querier = await started()
    hosts.push(querier)
    await meshed(hosts)
    const tarpitIds = new Set(tarpits.map((tp) => tp.peerId.toString()))

    // kad-dht's own get, under the same budget: the tarpits hold it past its end
    const asked = new Set<string>()
    let carried = 0
    let value: Uint8Array | undefined
    let ended = 'query ended'
    try {
      for await (const event of querier.services.dht.get(key, { signal: AbortSignal.timeout(BUDGET_MS) })) {
        if (event.name === 'SEND_QUERY') asked.add(event.to.toString())
        if (event.name === 'PEER_RESPONSE' && event.record !== undefined) carried++
        if (event.name === 'VALUE') value = event.value
      }
    } catch (err) {
      ended = (err as Error).name
    }
    t.diagnostic(
      `kad-dht's get: ${ended}; ${carried} answers carried the record; value ${value === undefined ? 'none' : 'returned'}`,
    )
    assert.ok(
      [...tarpitIds].some((id) => asked.has(id)),
      'the tarpits were asked (they are the peers nearest the key)',
    )
    assert.equal(value, undefined, "kad-dht's own get returned nothing within the budget: the attack bites")
    assert.ok(carried >= DHT_GET_QUORUM, `honest peers had sent the record (${carried} answers)`)

    // the node's lookup under the same budget: the record, from peers that agree on it
    const network = new NetworkService({ host: querier, key: Ed25519KeyPair.generate() })
    const resolveStarted = performance.now()
    const found = await network.resolveDid(did, { signal: AbortSignal.timeout(BUDGET_MS) })
    t.diagnostic(`resolveDid: ${Math.round(performance.now() - resolveStarted)} ms`)
    assert.equal(found?.seq, published.seq, 'resolveDid found the record despite the tarpits')
    assert.deepEqual(found?.addresses, published.addresses)

    // more agreement asked for than there are holders: the budget ends, and the best seen is kept
    const wanting = await dhtGet(querier.services.dht, key, {
      accept: (bytes) => decodeDidRecord(bytes),
      better: (a, b) => a.seq > b.seq,
      quorum: 100,
      signal: AbortSignal.timeout(BUDGET_MS),
    })
    assert.equal(wanting.ended, 'aborted')
    assert.equal(wanting.value?.seq, published.seq, 'the answers seen before the budget ended are kept')
    assert.ok(wanting.agreeing >= DHT_GET_QUORUM && wanting.agreeing <= HONEST + 1)

    // a put: kad-dht's own sends the record only once its lookup has ended, and the tarpits hold
    // the lookup past the budget, so nobody stores it
    const newer = (seq: number): Uint8Array =>
      encodeDidRecord(
        signDidRecord(owner, { addresses: published.addresses, services: [], seq, expires: Date.now() + 600_000 }),
      )
    let kadAcks = 0
    let kadEnded = 'put ended'
    try {
      for await (const event of publisher.services.dht.put(key, newer(published.seq + 1), {
        signal: AbortSignal.timeout(BUDGET_MS),
      }))
        if (event.name === 'PEER_RESPONSE' && event.messageName === 'PUT_VALUE') kadAcks++
    } catch (err) {
      kadEnded = (err as Error).name
    }
    t.diagnostic(`kad-dht's put: ${kadEnded}, ${kadAcks} peers stored the record`)
    assert.equal(kadAcks, 0, "kad-dht's own put stored the record nowhere within the budget: the attack bites")
    // the node's put falls back to the peers its lookup found by half the budget
    const put = await dhtPut(publisher.services.dht, key, newer(published.seq + 2), { budgetMs: BUDGET_MS })
    t.diagnostic(`dhtPut: ${put.acks} of ${put.sentTo} peers stored the record; fell back: ${put.fellBack}`)
    assert.equal(put.fellBack, true, 'the lookup was still held by the tarpits at half the budget')
    assert.ok(put.acks >= DHT_GET_QUORUM, `honest peers stored the record (${put.acks})`)
    const again = await network.resolveDid(did, { signal: AbortSignal.timeout(BUDGET_MS) })
    assert.equal(again?.seq, published.seq + 2, 'the record put past the tarpits is the one found')
  } finally {
    for (const s of held) s.abort(new Error('test over'))
    await Promise.all(hosts.map((h) => h.stop()))
  }
})
