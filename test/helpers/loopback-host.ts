/** A node's libp2p host (createHost) on 127.0.0.1 with a random port and key: TCP only, no mDNS. */
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { createHost, type DonghaeHost, type HostOptions } from '../../src/net/host.ts'
import { Ed25519KeyPair } from '../../src/identity/keys.ts'

export function loopbackHost(options: Partial<HostOptions> = {}): Promise<DonghaeHost> {
  return createHost({
    key: Ed25519KeyPair.generate(),
    host: '127.0.0.1',
    port: 0,
    mdns: false,
    quic: false,
    webSockets: false,
    ...options,
  })
}

/**
 * libp2p on 127.0.0.1 with its own TCP transport, Noise and Yamux, none of the node's transport
 * changes: what a test compares a node's host with. The yamux window rule (src/net/yamux-window.ts)
 * is process-wide once any host was created, so a test that compares window updates makes this
 * one first.
 */
export function shippedLibp2p(): Promise<Libp2p> {
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
  })
}

/**
 * Runs `measure` on a pair of libp2p nodes as shipped (made first: the process-wide changes of
 * createHost are not installed yet in a fresh test process), then on a pair of node hosts, and
 * stops each pair after; `onHosts` runs more on the node hosts before they stop.
 */
export async function shippedThenHosts<T>(
  measure: (from: Libp2p, to: Libp2p) => Promise<T>,
  onHosts?: (from: Libp2p, to: Libp2p) => Promise<void>,
): Promise<{ shipped: T; hosts: T }> {
  const c = await shippedLibp2p()
  const d = await shippedLibp2p()
  let shipped: T
  try {
    shipped = await measure(c, d)
  } finally {
    await Promise.all([c.stop(), d.stop()])
  }
  const a = await loopbackHost()
  const b = await loopbackHost()
  try {
    await Promise.all([a.start(), b.start()])
    const [from, to] = [a as unknown as Libp2p, b as unknown as Libp2p]
    const hosts = await measure(from, to)
    await onHosts?.(from, to)
    return { shipped, hosts }
  } finally {
    await Promise.all([a.stop(), b.stop()])
  }
}
