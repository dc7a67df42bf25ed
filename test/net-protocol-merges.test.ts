// Peer-store merges of protocols a record already lists are answered from memory
// (src/net/protocol-merges.ts), over real libp2p hosts on loopback: libp2p merges the protocol on
// both sides of every negotiated stream, and the rule must leave the records as libp2p would.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Libp2p } from 'libp2p'
import type { Stream } from '@libp2p/interface'
import { ManualClock } from '../src/core/clock.ts'
import { PROTOCOL_MERGE_TTL_MS, skipKnownProtocolMerges } from '../src/net/protocol-merges.ts'
import { loopbackHost, shippedLibp2p } from './helpers/loopback-host.ts'

const ECHO = '/donghae-test/merges/1.0.0'
const OTHER = '/donghae-test/merges-other/1.0.0'
const STREAMS = 100

async function streams(from: Libp2p, to: Libp2p, protocol: string, n: number): Promise<void> {
  const address = to.getMultiaddrs().find((ma) => ma.toString().includes('/tcp/'))
  assert.ok(address !== undefined)
  for (let i = 0; i < n; i++) {
    const stream = await from.dialProtocol(address, protocol)
    await stream.close()
  }
}

async function echoing(host: Libp2p, protocol: string): Promise<void> {
  await host.handle(protocol, (stream: Stream) => void stream.close())
}

test(`${STREAMS} streams on one protocol: libp2p merges the protocol into the peer store each time; with the rule, once`, async () => {
  const a = await shippedLibp2p()
  const b = await shippedLibp2p()
  const c = await shippedLibp2p()
  try {
    for (const h of [a, b, c]) await h.start()
    await echoing(b, ECHO)
    await echoing(c, ECHO)
    // libp2p as shipped, counted on the store's own merge
    let shipped = 0
    const merge = a.peerStore.merge.bind(a.peerStore)
    a.peerStore.merge = async (...args: Parameters<typeof merge>) => {
      shipped++
      return merge(...args)
    }
    await streams(a, b, ECHO, STREAMS)
    // the same on a fresh peer, with the rule on top of the counting store
    const clock = new ManualClock(0)
    const stats = skipKnownProtocolMerges(a.peerStore, { clock })
    const before = shipped
    await streams(a, c, ECHO, STREAMS)
    const withRule = shipped - before
    assert.ok(shipped - withRule >= STREAMS, `libp2p merged on each of the ${STREAMS} streams (${shipped - withRule})`)
    assert.ok(withRule <= 3, `with the rule the store merged ${withRule} times for ${STREAMS} streams`)
    assert.ok(stats.skipped >= STREAMS - 3, `skipped ${stats.skipped}`)
    assert.ok((await a.peerStore.get(c.peerId)).protocols.includes(ECHO), 'the record lists the protocol')

    // a protocol the record does not list yet is merged at once
    await echoing(c, OTHER)
    await streams(a, c, OTHER, 1)
    assert.ok((await a.peerStore.get(c.peerId)).protocols.includes(OTHER))
    // past the TTL the record is merged again; a delete forgets the peer
    const merged = stats.merged
    clock.advance(PROTOCOL_MERGE_TTL_MS)
    await streams(a, c, ECHO, 1)
    assert.equal(stats.merged, merged + 1, 'merged again once the TTL passed')
    await a.peerStore.delete(c.peerId)
    await streams(a, c, ECHO, 1)
    assert.equal(stats.merged, merged + 2, 'merged after a delete')
    assert.ok((await a.peerStore.get(c.peerId)).protocols.includes(ECHO), 'the deleted record is written again')
  } finally {
    await Promise.all([a.stop(), b.stop(), c.stop()])
  }
})

test('a node host (createHost) answers repeated protocol merges from memory', async () => {
  const a = await loopbackHost()
  const b = await loopbackHost()
  try {
    await a.start()
    await b.start()
    await echoing(b, ECHO)
    await streams(a, b, ECHO, 20)
    assert.ok(a.protocolMerges !== undefined && b.protocolMerges !== undefined)
    assert.ok(a.protocolMerges.skipped >= 15, `dialler skipped ${a.protocolMerges.skipped}`)
    assert.ok(b.protocolMerges.skipped >= 15, `listener skipped ${b.protocolMerges.skipped}`)
  } finally {
    await Promise.all([a.stop(), b.stop()])
  }
})
