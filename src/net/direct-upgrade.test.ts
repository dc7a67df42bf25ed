// The direct-upgrade service's decisions on fake libp2p components and a manual clock: who starts
// the upgrade, what is dialled, the relayed connection closed after success, and the doubling retry
// after a failure (the real transports run in test/net-webrtc.test.ts and the NAT lab).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Connection, PeerId, Topology } from '@libp2p/interface'
import { ManualClock } from '../core/clock.ts'
import { DirectUpgradeService, WEBRTC_SIGNALING_PROTOCOL, type DirectUpgradeComponents } from './direct-upgrade.ts'

const RELAY = '12D3KooWJ1Bz4kEjV9mN7DYy3fA4Mi5wAG6Zo93YnTrJ9kJ6kRJL'
const PEER = peerIdFromString('12D3KooWH2nU447nifAbK3Nj3JBWevVdcZ8Xtq8uX86D26t9824k')
const RELAYED = `/ip4/11.0.0.2/tcp/4100/p2p/${RELAY}/p2p-circuit/p2p/${PEER.toString()}`

interface FakeConn {
  remoteAddr: Multiaddr
  remotePeer: PeerId
  direction: 'inbound' | 'outbound'
  status: 'open' | 'closed'
  closed: boolean
  close(): Promise<void>
  abort(): void
}

function conn(addr: string, direction: 'inbound' | 'outbound' = 'outbound'): FakeConn {
  const c: FakeConn = {
    remoteAddr: multiaddr(addr),
    remotePeer: PEER,
    direction,
    status: 'open',
    closed: false,
    async close() {
      c.closed = true
      c.status = 'closed'
    },
    abort() {
      c.closed = true
      c.status = 'closed'
    },
  }
  return c
}

function setup(dial: (addr: Multiaddr) => Promise<FakeConn>) {
  const clock = new ManualClock(0)
  const conns: FakeConn[] = []
  const dialed: string[] = []
  let topology: Topology | undefined
  const components: DirectUpgradeComponents = {
    registrar: {
      register: async (protocol, t) => {
        assert.equal(protocol, WEBRTC_SIGNALING_PROTOCOL)
        assert.equal(t.notifyOnLimitedConnection, true)
        topology = t
        return 'topology-1'
      },
      unregister: () => (topology = undefined),
    },
    connectionManager: { getConnections: () => conns as unknown as Connection[] },
    transportManager: {
      dial: async (addr) => {
        dialed.push(addr.toString())
        const c = await dial(addr)
        conns.push(c)
        return c as unknown as Connection
      },
    },
  }
  const service = new DirectUpgradeService(components, { clock, retryInitialMs: 1000, retryMaxMs: 4000 })
  const connect = async (c: FakeConn): Promise<void> => {
    conns.push(c)
    await topology?.onConnect?.(PEER, c as unknown as Connection)
  }
  const settle = () => new Promise((resolve) => setImmediate(resolve))
  return { clock, conns, dialed, service, connect, settle, registered: () => topology !== undefined }
}

const webrtcAddr = RELAYED.replace('/p2p-circuit/', '/p2p-circuit/webrtc/')

test('the side that opened the relayed connection dials /p2p-circuit/webrtc and then closes the relayed one', async () => {
  const s = setup(async (addr) => conn(addr.toString()))
  await s.service.start()
  const relayed = conn(RELAYED)
  await s.connect(relayed)
  await s.settle()
  assert.deepEqual(s.dialed, [webrtcAddr])
  assert.equal(relayed.closed, true, 'the relayed connection is closed once the direct one is up')
  const [result] = s.service.results()
  assert.equal(result?.ok, true)
  assert.equal(result?.address, webrtcAddr)
  s.service.stop()
  assert.equal(s.registered(), false)
})

test('no upgrade from the inbound side, over a direct connection, or when a direct one exists', async () => {
  const s = setup(async (addr) => conn(addr.toString()))
  await s.service.start()
  await s.connect(conn(RELAYED, 'inbound'))
  await s.connect(conn(`/ip4/11.0.0.11/tcp/4011/p2p/${PEER.toString()}`))
  await s.connect(conn(webrtcAddr))
  await s.settle()
  assert.deepEqual(s.dialed, [], 'the dialling side starts; direct and WebRTC connections need nothing')
  await s.connect(conn(RELAYED))
  await s.settle()
  assert.deepEqual(s.dialed, [], 'a WebRTC connection to the peer is already open')
  s.service.stop()
})

test('a failed upgrade keeps the relayed connection and is tried again after 1 s, 2 s, 4 s, 4 s', async () => {
  let failures = 0
  const s = setup(async () => {
    failures++
    throw new Error('ICE failed')
  })
  await s.service.start()
  const relayed = conn(RELAYED)
  await s.connect(relayed)
  await s.settle()
  assert.equal(s.dialed.length, 1)
  assert.equal(relayed.closed, false, 'the relayed connection stays in use')
  assert.equal(s.service.results()[0]?.error, 'ICE failed')
  for (const [wait, total] of [
    [999, 1],
    [1, 2],
    [2000, 3],
    [4000, 4],
    [4000, 5],
  ] as const) {
    s.clock.advance(wait)
    await s.settle()
    assert.equal(failures, total, `after +${wait} ms`)
  }
  // a closed relayed connection is not retried; stop cancels the timer
  relayed.status = 'closed'
  s.clock.advance(4000)
  await s.settle()
  assert.equal(failures, 5)
  s.service.stop()
  assert.equal(s.clock.pending, 0)
})
