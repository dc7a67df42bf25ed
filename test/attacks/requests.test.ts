// Request/response protocols between real libp2p hosts on loopback: who gets penalized (only
// peers that send invalid data, never a requester that gave up), penalties that leak away over
// time, and a per-peer byte budget on the blob protocol.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { decode, encode } from '../../src/core/codec.ts'
import { ManualClock } from '../../src/core/clock.ts'
import { utf8 } from '../../src/core/bytes.ts'
import { OverBudgetError, TransportError } from '../../src/core/transport.ts'
import { Ed25519KeyPair } from '../../src/identity/keys.ts'
import { createHost, type DonghaeHost } from '../../src/net/host.ts'
import { BAN_MS, PENALTY_HALF_LIFE_MS, PENALTY_LIMIT } from '../../src/net/constants.ts'
import { Libp2pTransport } from '../../src/net/libp2p-transport.ts'
import { BLOB_BUDGET, BLOB_PROTOCOL, BlobStore, MAX_BLOB_BYTES } from '../../src/inference/blobs.ts'
import { waitFor } from '../helpers/chain-net.ts'
import { createRng, testSeed } from '../helpers/random.ts'

const SLOW = '/donghae-test/slow/1.0.0'
const STRICT = '/donghae-test/strict/1.0.0'
const rng = createRng(testSeed())
let nextPort = 19_500 + rng.int(0, 50) * 8 // 19500-19999: this file's range

interface Peer {
  host: DonghaeHost
  transport: Libp2pTransport
}

async function peer(clock?: ManualClock): Promise<Peer> {
  const host = await createHost({
    key: Ed25519KeyPair.generate(),
    host: '127.0.0.1',
    port: nextPort++,
    quic: false,
    webSockets: false,
    mdns: false,
  })
  await host.start()
  const transport = new Libp2pTransport(host, { chainId: 'requests', ...(clock === undefined ? {} : { clock }) })
  transport.start()
  return { host, transport }
}

async function close(...peers: Peer[]): Promise<void> {
  for (const p of peers) {
    p.transport.stop()
    await p.host.stop()
  }
}

function openStreams(host: DonghaeHost, protocol: string): number {
  return host
    .getConnections()
    .flatMap((c) => c.streams)
    .filter((s) => s.protocol === protocol).length
}

/** A handler that refuses requests that are not dag-cbor (DecodeError: the request is at fault). */
const strict = async (data: Uint8Array): Promise<Uint8Array> => encode({ echo: decode(data, { maxBytes: 1024 }) })

test('attack: a requester that gives up on a slow answer (its timeout, or a cancel) was penalized like a peer sending junk — now only malformed requests count', async (t) => {
  t.diagnostic(`seed ${rng.seed}`)
  const [server, client] = [await peer(), await peer()]
  try {
    let served = 0
    server.transport.handle(SLOW, async (data) => {
      await sleep(400)
      served++
      return data
    })
    server.transport.handle(STRICT, strict)
    await client.host.dial(server.host.getMultiaddrs()[0] as never)
    await assert.rejects(
      client.transport.request(server.transport.self, SLOW, utf8('a'), { signal: AbortSignal.timeout(100) }),
      TransportError,
    )
    const cancel = new AbortController()
    const cancelled = client.transport.request(server.transport.self, SLOW, utf8('b'), { signal: cancel.signal })
    setTimeout(() => cancel.abort(), 50)
    await assert.rejects(cancelled, TransportError)
    await waitFor(
      'the server to finish both and find nobody to answer',
      () => served === 2 && openStreams(server.host, SLOW) === 0,
    )
    assert.equal(server.transport.penaltyScore(client.transport.self), 0, 'giving up is not misbehaving')

    // A request its handler refuses as malformed is penalized, and only that.
    assert.deepEqual(decode(await client.transport.request(server.transport.self, STRICT, encode(7))), { echo: 7 })
    await assert.rejects(client.transport.request(server.transport.self, STRICT, randomBytes(40)), TransportError)
    await waitFor(
      'the server to count the malformed request',
      () => server.transport.penaltyScore(client.transport.self) > 0,
    )
    assert.ok(server.transport.penaltyScore(client.transport.self) <= 1)
  } finally {
    await close(server, client)
  }
})

test('attack: penalties never expired, so an honest peer that sent a few bad requests now and then was banned in the end — now they halve every 5 minutes', async () => {
  const clock = new ManualClock(1_700_000_000_000)
  const [server, client] = [await peer(clock), await peer()]
  try {
    server.transport.handle(STRICT, strict)
    await client.host.dial(server.host.getMultiaddrs()[0] as never)
    const bad = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        if (server.host.getConnections(client.host.peerId).length === 0)
          await client.host.dial(server.host.getMultiaddrs()[0] as never)
        await assert.rejects(client.transport.request(server.transport.self, STRICT, randomBytes(40)))
      }
      await waitFor('the penalties to be counted', () => server.transport.penaltyScore(client.transport.self) >= n / 4)
    }
    await bad(PENALTY_LIMIT - 5)
    clock.advance(2 * PENALTY_HALF_LIFE_MS) // a quarter is left: 3.75 points
    await bad(PENALTY_LIMIT - 5) // 18.75 points: without the decay it would be 30, and banned
    const score = server.transport.penaltyScore(client.transport.self)
    assert.ok(score > PENALTY_LIMIT - 2 && score < PENALTY_LIMIT, `score ${score.toFixed(2)}`)
    assert.equal(server.host.getConnections(client.host.peerId).length > 0, true, 'still connected')
    // A burst beyond the limit is still a ban.
    await assert.rejects(client.transport.request(server.transport.self, STRICT, randomBytes(40)))
    await assert.rejects(client.transport.request(server.transport.self, STRICT, randomBytes(40)))
    await waitFor(
      'the peer to be banned and disconnected',
      () => server.host.getConnections(client.host.peerId).length === 0,
    )
    assert.ok(BAN_MS > 0)
  } finally {
    await close(server, client)
  }
})

test('attack: a peer downloads the same model file again and again to use up the node’s bandwidth — refused past its byte budget (OverBudgetError), not penalized, others still served', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-blob-budget-'))
  const [server, greedy, other] = [await peer(), await peer(), await peer()]
  try {
    const store = new BlobStore(join(dir, 'blobs'))
    await store.init()
    const blob = randomBytes(1024 * 1024)
    const cid = await store.put(blob)
    store.serve(server.transport)
    await greedy.host.dial(server.host.getMultiaddrs()[0] as never)
    await other.host.dial(server.host.getMultiaddrs()[0] as never)
    let served = 0
    let refusal: unknown
    for (; served < 100; served++) {
      try {
        await greedy.transport.request(server.transport.self, BLOB_PROTOCOL, utf8(cid))
      } catch (err) {
        refusal = err
        break
      }
    }
    assert.ok(refusal instanceof OverBudgetError, String(refusal))
    assert.match((refusal as Error).message, /byte budget/)
    const budgetBlobs = BLOB_BUDGET.bytes / blob.length
    assert.ok(served >= budgetBlobs && served <= budgetBlobs + 4, `${served} downloads of 1 MiB before the refusal`)
    assert.equal(server.transport.penaltyScore(greedy.transport.self), 0, 'asking is not misbehaving')
    const answer = decode(await other.transport.request(server.transport.self, BLOB_PROTOCOL, utf8(cid))) as {
      bytes?: Uint8Array
    }
    assert.equal(answer.bytes?.length, blob.length, 'another peer is still served')
    const mine = new BlobStore(join(dir, 'greedy'))
    await mine.init()
    await assert.rejects(mine.fetch(cid, [server.transport.self], greedy.transport), /byte budget/)
  } finally {
    await close(server, greedy, other)
    await rm(dir, { recursive: true, force: true })
  }
})

test('a model file of 12 MiB (under MAX_BLOB_BYTES, over libp2p’s default 4 MiB read buffer) is fetched whole and checked against its CID', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-blob-large-'))
  const [server, client] = [await peer(), await peer()]
  try {
    const store = new BlobStore(join(dir, 'served'))
    await store.init()
    const blob = randomBytes(12 * 1024 * 1024)
    assert.ok(blob.length < MAX_BLOB_BYTES)
    const cid = await store.put(blob)
    store.serve(server.transport)
    await client.host.dial(server.host.getMultiaddrs()[0] as never)
    const mine = new BlobStore(join(dir, 'fetched'))
    await mine.init()
    const fetched = await mine.fetch(cid, [server.transport.self], client.transport)
    assert.equal(fetched.length, blob.length)
    assert.ok(Buffer.from(fetched).equals(blob), 'the same bytes')
    assert.ok(Buffer.from((await mine.get(cid)) as Uint8Array).equals(blob), 'and stored under its CID')
  } finally {
    await close(server, client)
    await rm(dir, { recursive: true, force: true })
  }
})
