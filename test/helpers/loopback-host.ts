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
 * libp2p as shipped on 127.0.0.1 (its own TCP transport, Noise, Yamux, nothing of ours): what a
 * test compares a node's host with.
 */
export function shippedLibp2p(): Promise<Libp2p> {
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
  })
}
