// Every transport on its own, over real sockets on loopback. Three validators whose hosts have
// only QUIC (then only WebSockets) run the chain: consensus gossip commits blocks, a gossip
// topic reaches every node, the block-sync request is answered — and every connection is on that
// transport, every listen address too. A peer without the transport cannot connect either way.
// Also: the defaults and the older `quic`/`webSockets` switches are unchanged, unknown transport
// names are refused with a typed error, at the host and at `donghae node --transport`.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import {
  createHost,
  parseTransports,
  UnknownTransportError,
  type DonghaeHost,
  type TransportName,
} from '../src/net/host.ts'
import { Libp2pTransport } from '../src/net/libp2p-transport.ts'
import type { GossipHandler } from '../src/core/transport.ts'
import { DonghaeNode } from '../src/node/index.ts'
import { SYNC_PROTOCOL } from '../src/chain/runtime.ts'
import { decodeBlock } from '../src/chain/block.ts'
import { decode, encode } from '../src/core/codec.ts'
import { Ed25519KeyPair } from '../src/identity/keys.ts'
import { actor, makeGenesis, type Actor } from './helpers/chain.ts'
import { FAST_PARAMS, waitFor } from './helpers/chain-net.ts'
import { runCli } from './helpers/cli.ts'
import { createRng, testSeed } from './helpers/random.ts'

/** What a multiaddr of each transport looks like (and `tcp` must not carry /ws). */
const SHAPE: Record<TransportName, RegExp> = {
  tcp: /^\/ip4\/127\.0\.0\.1\/tcp\/\d+(\/p2p\/\w+)?$/,
  quic: /^\/ip4\/127\.0\.0\.1\/udp\/\d+\/quic-v1(\/p2p\/\w+)?$/,
  ws: /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/ws(\/p2p\/\w+)?$/,
}

function onlyHost(transport: TransportName, key = Ed25519KeyPair.generate()): Promise<DonghaeHost> {
  return createHost({ key, host: '127.0.0.1', port: 0, mdns: false, transports: [transport] })
}

interface Net {
  hosts: DonghaeHost[]
  transports: Libp2pTransport[]
  nodes: DonghaeNode[]
  close(): Promise<void>
}

/** Three validators of one chain, each on a host with `transport` only; each dials the ones before it. */
async function chainOver(transport: TransportName, validators: Actor[]): Promise<Net> {
  const dir = await mkdtemp(join(tmpdir(), `donghae-${transport}-`))
  const genesis = makeGenesis(
    validators,
    validators.map((v) => [v, 1_000_000n]),
    FAST_PARAMS,
  )
  const net: Net = {
    hosts: [],
    transports: [],
    nodes: [],
    async close() {
      for (const n of net.nodes) await n.stop()
      for (const t of net.transports) t.stop()
      for (const h of net.hosts) await h.stop()
      await rm(dir, { recursive: true, force: true })
    },
  }
  try {
    for (const [i, v] of validators.entries()) {
      const host = await onlyHost(transport, v.key)
      await host.start()
      net.hosts.push(host)
      for (const earlier of net.hosts.slice(0, i)) await host.dial(earlier.getMultiaddrs()[0] as Multiaddr)
      const t = new Libp2pTransport(host, { chainId: genesis.chainId })
      t.start()
      net.transports.push(t)
      const node = await DonghaeNode.create({ dataDir: join(dir, `n${i}`), genesis, key: v.key, transport: t })
      node.start()
      net.nodes.push(node)
    }
  } catch (err) {
    await net.close()
    throw err
  }
  return net
}

/** The whole check for one transport; `other` is a transport the nodes do not have. */
async function runsOn(transport: TransportName, other: TransportName): Promise<string> {
  const validators = [actor(), actor(), actor()]
  const net = await chainOver(transport, validators)
  const outsider = await onlyHost(other)
  await outsider.start()
  try {
    const [h0, h1, h2] = net.hosts as [DonghaeHost, DonghaeHost, DonghaeHost]
    const [t0, t1, t2] = net.transports as [Libp2pTransport, Libp2pTransport, Libp2pTransport]
    for (const host of net.hosts) {
      const addrs = host.getMultiaddrs().map(String)
      assert.ok(addrs.length > 0, 'the host listens')
      for (const a of addrs) assert.match(a, SHAPE[transport], `${transport}-only host listens on ${a}`)
    }

    // Consensus (proposals and votes are gossip) commits blocks, and all three agree on them.
    await waitFor('height 3 on every node', () => net.nodes.every((n) => n.app.head.height >= 3), 60_000)
    const blocks = await Promise.all(net.nodes.map((n) => n.app.getBlockBytes(3)))
    assert.equal(new Set(blocks.map((b) => Buffer.from(b as Uint8Array).toString('hex'))).size, 1)

    // A gossip topic: published by node 0, received by nodes 1 and 2.
    const got = new Map<string, string>()
    const probe =
      (name: string): GossipHandler =>
      (data, from) => {
        got.set(name, `${Buffer.from(data).toString()} from ${from}`)
        return 'accept'
      }
    t1.subscribe('transport-probe', probe('n1'))
    t2.subscribe('transport-probe', probe('n2'))
    let sent = 0
    // republished (new data each time) until gossipsub has a mesh on the new topic
    await waitFor('the gossip to reach nodes 1 and 2', () => {
      if (got.size < 2) t0.publish('transport-probe', Buffer.from(`hello ${++sent}`))
      return got.size === 2
    })
    // each heard it from node 0 or from the other receiver, which relayed it
    for (const line of got.values())
      assert.match(line, new RegExp(`^hello \\d+ from (${t0.self}|${t1.self}|${t2.self})$`))

    // Request/response: node 2 asks node 0 for blocks 1-2 on the chain's sync protocol.
    const answer = decode<{ blocks: Array<[Uint8Array, Uint8Array]> }>(
      await t2.request(t0.self, SYNC_PROTOCOL, encode({ from: 1, count: 2 })),
    )
    assert.deepEqual(
      answer.blocks.map(([b]) => decodeBlock(b).header.height),
      [1, 2],
    )

    // Every connection between the nodes runs on the transport.
    for (const host of net.hosts) {
      const conns = host.getConnections()
      assert.ok(conns.length >= 2, `each node is connected to the two others (${conns.length})`)
      for (const c of conns) assert.match(c.remoteAddr.toString(), SHAPE[transport], 'connection address')
    }

    // A peer with another transport only cannot connect, either way.
    await assert.rejects(outsider.dial(h1.getMultiaddrs()[0] as Multiaddr, { signal: AbortSignal.timeout(5_000) }))
    await assert.rejects(h2.dial(outsider.getMultiaddrs()[0] as Multiaddr, { signal: AbortSignal.timeout(5_000) }))
    assert.equal(outsider.getConnections().length, 0, 'the outsider has no connection')
    return `${String(h0.getConnections()[0]?.remoteAddr)} at height ${net.nodes[0]?.app.head.height ?? 0}`
  } finally {
    await outsider.stop()
    await net.close()
  }
}

test('QUIC only: three validators commit blocks, gossip and answer sync requests over /quic-v1; a TCP-only peer cannot connect', async (t) => {
  const started = performance.now()
  const seen = await runsOn('quic', 'tcp')
  t.diagnostic(`node 0 ↔ ${seen} in ${Math.round(performance.now() - started)} ms`)
})

test('WebSockets only: three validators commit blocks, gossip and answer sync requests over /ws; a TCP-only peer cannot connect', async (t) => {
  const started = performance.now()
  const seen = await runsOn('ws', 'tcp')
  t.diagnostic(`node 0 ↔ ${seen} in ${Math.round(performance.now() - started)} ms`)
})

test('QUIC only has no TCP listener at all: a TCP dial to its port is refused (with TCP too, the same dial connects)', async (t) => {
  const rng = createRng(testSeed())
  const port = 22_600 + rng.int(0, 900) * 4
  t.diagnostic(`ports ${port} and ${port + 2}`)
  const quicOnly = await createHost({
    key: Ed25519KeyPair.generate(),
    host: '127.0.0.1',
    port,
    mdns: false,
    transports: ['quic'],
  })
  const both = await createHost({
    key: Ed25519KeyPair.generate(),
    host: '127.0.0.1',
    port: port + 2,
    mdns: false,
    transports: ['quic', 'tcp'],
  })
  const tcpOnly = await onlyHost('tcp')
  try {
    await Promise.all([quicOnly.start(), both.start(), tcpOnly.start()])
    const tcpAt = (p: number, h: DonghaeHost): Multiaddr =>
      multiaddr(`/ip4/127.0.0.1/tcp/${p}/p2p/${h.peerId.toString()}`)
    assert.deepEqual(quicOnly.getMultiaddrs().map(String), [
      `/ip4/127.0.0.1/udp/${port}/quic-v1/p2p/${quicOnly.peerId.toString()}`,
    ])
    // the QUIC port number over TCP: nothing listens there
    await assert.rejects(tcpOnly.dial(tcpAt(port, quicOnly), { signal: AbortSignal.timeout(5_000) }))
    // the control: a host with TCP as well answers the same dial on its port
    const conn = await tcpOnly.dial(tcpAt(port + 2, both), { signal: AbortSignal.timeout(5_000) })
    assert.equal(conn.remoteAddr.toString(), tcpAt(port + 2, both).toString())
  } finally {
    await Promise.all([tcpOnly.stop(), both.stop(), quicOnly.stop()])
  }
})

test('QUIC: a ping stream left open does not fail the next ping (the connection monitor closes a connection whose ping fails)', async () => {
  const [a, b] = await Promise.all([onlyHost('quic'), onlyHost('quic')])
  try {
    await Promise.all([a.start(), b.start()])
    await a.dial(b.getMultiaddrs()[0] as Multiaddr)
    // as a ping whose end the answering side missed: open, bytes sent, never closed
    const stuck = await a.dialProtocol(b.peerId, '/ipfs/ping/1.0.0')
    stuck.send(new Uint8Array(32))
    const rtt = await a.services.ping.ping(b.peerId, { signal: AbortSignal.timeout(5_000) })
    assert.ok(rtt >= 0)
    assert.equal(a.getConnections(b.peerId)[0]?.status, 'open')
    stuck.abort(new Error('done'))
  } finally {
    await Promise.all([a.stop(), b.stop()])
  }
})

test('QUIC only behind a NAT: nothing to port-map, so the node reserves a relay slot at once and is reached through it', async (t) => {
  const relay = await createHost({
    key: Ed25519KeyPair.generate(),
    host: '127.0.0.1',
    port: 0,
    mdns: false,
    transports: ['quic'],
    relayServer: true,
  })
  // nat on: the port mapper looks for a TCP listen port, finds none, and so never asks the router
  const node = await createHost({
    key: Ed25519KeyPair.generate(),
    host: '127.0.0.1',
    port: 0,
    mdns: false,
    transports: ['quic'],
    nat: 'auto',
  })
  const outsider = await onlyHost('quic')
  try {
    await Promise.all([relay.start(), node.start(), outsider.start()])
    const since = performance.now()
    await node.dial(relay.getMultiaddrs()[0] as Multiaddr)
    const fallback = node.services.relayFallback
    await waitFor('a reservation on the relay', () => fallback?.status().state === 'reserved', 10_000)
    const address = fallback?.status().relay?.address ?? ''
    assert.match(address, new RegExp(`/udp/\\d+/quic-v1/p2p/${relay.peerId}/p2p-circuit/p2p/${node.peerId}$`))
    t.diagnostic(`reserved in ${Math.round(performance.now() - since)} ms: ${address}`)
    const rtt = await outsider.services.ping.ping(multiaddr(address), { signal: AbortSignal.timeout(10_000) })
    assert.ok(rtt >= 0)
    assert.match(String(outsider.getConnections(node.peerId)[0]?.remoteAddr), /\/quic-v1\/.*\/p2p-circuit\//)
  } finally {
    await Promise.all([outsider.stop(), node.stop(), relay.stop()])
  }
})

test('defaults unchanged: TCP, QUIC and WebSockets; quic/webSockets false leave TCP only', async () => {
  const all = await createHost({ key: Ed25519KeyPair.generate(), host: '127.0.0.1', port: 0, mdns: false })
  const tcp = await createHost({
    key: Ed25519KeyPair.generate(),
    host: '127.0.0.1',
    port: 0,
    mdns: false,
    quic: false,
    webSockets: false,
  })
  try {
    await all.start()
    await tcp.start()
    const kinds = (h: DonghaeHost): string[] =>
      h
        .getMultiaddrs()
        .map((a) => (Object.keys(SHAPE) as TransportName[]).find((k) => SHAPE[k].test(a.toString())) ?? String(a))
        .sort()
    assert.deepEqual(kinds(all), ['quic', 'tcp', 'ws'])
    assert.deepEqual(kinds(tcp), ['tcp'])
    // the TCP-only host still dials WebSockets, as before
    await tcp.dial(all.getMultiaddrs().find((a) => SHAPE.ws.test(a.toString())) as Multiaddr)
    assert.match(String(tcp.getConnections()[0]?.remoteAddr), SHAPE.ws)
  } finally {
    await tcp.stop()
    await all.stop()
  }
})

test('unknown transport names: UnknownTransportError from the host, a config error from `donghae node --transport`', async () => {
  assert.deepEqual(parseTransports('quic, ws,quic'), ['quic', 'ws'])
  assert.deepEqual(parseTransports(['tcp']), ['tcp'])
  assert.throws(() => parseTransports('tcp,udp'), UnknownTransportError)
  assert.throws(() => parseTransports(''), UnknownTransportError)
  await assert.rejects(
    createHost({ key: Ed25519KeyPair.generate(), port: 0, mdns: false, transports: ['udp' as TransportName] }),
    (err: unknown) => err instanceof UnknownTransportError && err.code === 'UNKNOWN_TRANSPORT',
  )
  const home = await mkdtemp(join(tmpdir(), 'donghae-transport-flag-'))
  try {
    const run = await runCli(['--home', home, 'node', '--transport', 'quic,udp'])
    assert.notEqual(run.code, 0)
    assert.match(run.stderr, /config transport = "quic,udp" from flag --transport is invalid: unknown transport "udp"/)
  } finally {
    await rm(home, { recursive: true, force: true })
  }
})

test("a TCP-only host does not load QUIC's native module (its runtime starts threads); a host with QUIC does", () => {
  // each in a fresh process: this one has loaded QUIC already
  const sharedObjects = (transports: string): string[] => {
    const host = JSON.stringify(new URL('../src/net/host.ts', import.meta.url).href)
    const keys = JSON.stringify(new URL('../src/identity/keys.ts', import.meta.url).href)
    const code = `
      const { createHost } = await import(${host})
      const { Ed25519KeyPair } = await import(${keys})
      const key = Ed25519KeyPair.generate()
      const h = await createHost({ key, host: '127.0.0.1', port: 0, mdns: false, transports: ${transports} })
      await h.start()
      const shared = process.report.getReport().sharedObjects
      await h.stop()
      process.stdout.write(JSON.stringify(shared))`
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60_000 })
    assert.equal(run.status, 0, run.stderr)
    return (JSON.parse(run.stdout) as string[]).filter((file) => /libp2p-quic/.test(file))
  }
  assert.deepEqual(sharedObjects("['tcp']"), [], 'no QUIC module in a TCP-only host')
  assert.equal(sharedObjects("['tcp', 'quic']").length, 1, 'the check can see it: a QUIC host loads it')
})
