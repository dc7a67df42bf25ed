// libp2p's WebRTC transports in Donghae's host over loopback (no NAT here: the NAT case is
// test/netns/webrtc-holepunch.test.ts): two nodes reserve on a relay, one dials the other through
// it, the relayed connection is upgraded to a direct WebRTC one and closed, and the two keep
// pinging after the relay stops; WebRTC Direct, when asked for, is dialled with no relay at all.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { multiaddr } from '@multiformats/multiaddr'
import type { Connection } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import type { DonghaeHost, HostOptions } from '../src/net/host.ts'
import { isRelayed, isWebRtc, webRtcAddressOf } from '../src/net/direct-upgrade.ts'
import { waitFor } from './helpers/chain-net.ts'
import { loopbackHost } from './helpers/loopback-host.ts'
import { isWebRtcAddress } from '../src/net/lazy-webrtc.ts'

const host = (options: Partial<HostOptions> = {}): Promise<DonghaeHost> => loopbackHost({ webrtc: true, ...options })

const circuitAddr = (node: DonghaeHost): string | undefined => node.services.relayFallback?.status().relay?.address

test('webRtcAddressOf: the WebRTC address signalled through the same relay', () => {
  const peer = peerIdFromString('12D3KooWH2nU447nifAbK3Nj3JBWevVdcZ8Xtq8uX86D26t9824k')
  const relayPath = '/ip4/11.0.0.2/tcp/4100/p2p/12D3KooWJ1Bz4kEjV9mN7DYy3fA4Mi5wAG6Zo93YnTrJ9kJ6kRJL/p2p-circuit'
  const relayed = multiaddr(`${relayPath}/p2p/${peer.toString()}`)
  assert.equal(webRtcAddressOf(relayed, peer).toString(), `${relayPath}/webrtc/p2p/${peer.toString()}`)
  assert.throws(() => webRtcAddressOf(multiaddr('/ip4/1.2.3.4/tcp/1'), peer))
  assert.equal(isRelayed({ remoteAddr: relayed }), true)
  assert.equal(isRelayed({ remoteAddr: webRtcAddressOf(relayed, peer) }), false)
  assert.equal(isWebRtc({ remoteAddr: multiaddr(`/webrtc/p2p/${peer.toString()}`) }), true)
})

test('two nodes that met on a relay upgrade to direct WebRTC and keep pinging when the relay stops', async (t) => {
  // the relay only relays: the WebRTC signalling runs through it, not on it
  const relay = await host({ relayServer: true, relay: 'off', webrtc: false })
  await relay.start()
  const relayAddr = relay.getMultiaddrs()[0]?.toString() as string
  const a = await host({ relay: 'always', bootstrap: [relayAddr] })
  const b = await host({ relay: 'always', bootstrap: [relayAddr] })
  try {
    await a.start()
    await b.start()
    await waitFor('A reserves on the relay', () => circuitAddr(a) !== undefined, 40_000)
    const viaRelay = circuitAddr(a) as string
    // the reservation loads the WebRTC transport (lazy-webrtc.ts), which then announces the address
    await waitFor(
      `A announces its /webrtc address through the relay: ${a.getMultiaddrs().map(String).join(' ')}`,
      () => a.getMultiaddrs().some((m) => m.toString() === viaRelay.replace('/p2p-circuit/', '/p2p-circuit/webrtc/')),
      10_000,
    )

    const started = Date.now()
    const relayed = await b.dial(multiaddr(viaRelay))
    assert.equal(isRelayed(relayed), true)
    let direct: Connection | undefined
    await waitFor(
      'B upgrades to a direct WebRTC connection',
      () => (direct = b.getConnections(a.peerId).find((c) => c.status === 'open' && isWebRtc(c))) !== undefined,
      // a first attempt that fails (ICE on a loaded machine) is retried after a minute
      90_000,
    ).catch((err: unknown) => {
      t.diagnostic(`upgrade attempts: ${JSON.stringify(b.services.directUpgrade?.results())}`)
      throw err
    })
    const upgradeMs = Date.now() - started
    t.diagnostic(`relayed dial → direct WebRTC connection in ${upgradeMs} ms`)
    assert.equal(direct?.direct, true)
    assert.match(direct?.remoteAddr.toString() ?? '', /\/p2p-circuit\/webrtc\/p2p\//, 'signalled over the relay')
    const inbound = a.getConnections(b.peerId).find((c) => isWebRtc(c))
    assert.equal(inbound?.remoteAddr.toString(), `/webrtc/p2p/${b.peerId.toString()}`, 'A sees a plain /webrtc peer')
    await waitFor(
      'the relayed connection is closed after the upgrade',
      () => b.getConnections(a.peerId).every((c) => !isRelayed(c)),
      10_000,
    )
    const result = b.services.directUpgrade?.results().find((r) => r.ok)
    t.diagnostic(`upgrade attempts: ${b.services.directUpgrade?.results().length}`)
    assert.equal(result?.ok, true, JSON.stringify(b.services.directUpgrade?.results()))
    t.diagnostic(`the WebRTC dial itself (signalling + ICE + DTLS + muxer): ${result?.ms} ms`)

    await relay.stop()
    const rtt = await b.services.ping.ping(a.peerId, { signal: AbortSignal.timeout(5000) })
    t.diagnostic(`ping over direct WebRTC with the relay stopped: ${rtt} ms`)
    assert.ok(b.getConnections(a.peerId).every((c) => isWebRtc(c)))
  } finally {
    await Promise.all([a.stop(), b.stop()])
    await relay.stop()
  }
})

test('isWebRtcAddress takes the addresses the WebRTC transport dials and listens on, and no others', () => {
  const relay = '/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWH2nU447nifAbK3Nj3JBWevVdcZ8Xtq8uX86D26t9824k'
  const peer = '/p2p/12D3KooWCtgcFccmrCug5jTpEY7vV3iEa3pTgDmSeUrWHvktCVNh'
  for (const yes of ['/webrtc', `/webrtc${peer}`, `${relay}/p2p-circuit/webrtc`, `${relay}/p2p-circuit/webrtc${peer}`])
    assert.equal(isWebRtcAddress(multiaddr(yes)), true, yes)
  for (const no of [
    `${relay}/p2p-circuit${peer}`,
    '/ip4/127.0.0.1/udp/4001/webrtc-direct',
    `/ip4/127.0.0.1/tcp/4001/webrtc`,
    `${relay}/p2p-circuit/webrtc${peer}/p2p-circuit`,
    '/ip4/127.0.0.1/tcp/4001',
  ])
    assert.equal(isWebRtcAddress(multiaddr(no)), false, no)
})

test('a node nobody reaches through a relay never loads @libp2p/webrtc (its WebRTC transport waits for a reservation or a /webrtc dial)', () => {
  // in a fresh process: this one has loaded it already
  const hostUrl = JSON.stringify(new URL('../src/net/host.ts', import.meta.url).href)
  const keys = JSON.stringify(new URL('../src/identity/keys.ts', import.meta.url).href)
  const code = `
    import { registerHooks } from 'node:module'
    const seen = new Set()
    registerHooks({ resolve(spec, ctx, next) { seen.add(spec); return next(spec, ctx) } })
    const { createHost } = await import(${hostUrl})
    const { Ed25519KeyPair } = await import(${keys})
    const h = await createHost({ key: Ed25519KeyPair.generate(), host: '127.0.0.1', port: 0, mdns: false, transports: ['tcp'], webrtc: true })
    await h.start()
    const listening = h.getMultiaddrs().map(String)
    await h.stop()
    process.stdout.write(JSON.stringify({ webrtc: [...seen].filter((s) => s.startsWith('@libp2p/webrtc')), listening }))`
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60_000 })
  assert.equal(run.status, 0, run.stderr)
  const { webrtc, listening } = JSON.parse(run.stdout) as { webrtc: string[]; listening: string[] }
  assert.deepEqual(webrtc, [])
  assert.ok(listening.length > 0 && listening.every((a) => !a.includes('/webrtc')), listening.join(' '))
})

test('WebRTC Direct: a node listening on /webrtc-direct is dialled with no relay and pinged', async () => {
  const server = await host({ webrtcDirect: true, webrtc: false })
  const client = await host({ webrtcDirect: true, webrtc: false })
  try {
    await server.start()
    await client.start()
    const addr = server.getMultiaddrs().find((m) => m.toString().includes('/webrtc-direct/certhash/'))
    assert.ok(addr, `a /webrtc-direct address with its certhash: ${server.getMultiaddrs().map(String).join(' ')}`)
    const rtt = await client.services.ping.ping(addr, { signal: AbortSignal.timeout(10_000) })
    assert.ok(rtt >= 0)
    const conn = client.getConnections(server.peerId)[0]
    assert.match(conn?.remoteAddr.toString() ?? '', /\/udp\/\d+\/webrtc-direct\//)
  } finally {
    await Promise.all([server.stop(), client.stop()])
  }
})
