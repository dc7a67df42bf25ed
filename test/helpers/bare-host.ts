/**
 * A bare libp2p host for attack tests: TCP, Noise, Yamux, identify and gossipsub, and nothing
 * that discovers or dials other peers on its own (no DHT, no bootstrap, no mDNS), so it talks
 * only to the peers a test dials and a test controls who can relay to whom. Its gossip settings
 * are a node's (what it publishes raw must be framed: `frameGossip`). `Libp2pTransport` runs on
 * it (`asDonghaeHost`).
 */
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import type { Ed25519KeyPair } from '../../src/identity/keys.ts'
import type { DonghaeHost } from '../../src/net/host.ts'
import { GOSSIP_OPTIONS } from '../../src/net/gossip.ts'

export type BareHost = Libp2p<{ pubsub: GossipSub; identify: unknown }>

export async function bareHost(key: Ed25519KeyPair, port: number): Promise<BareHost> {
  const host = await createLibp2p({
    privateKey: await generateKeyPairFromSeed('Ed25519', key.exportSeed()),
    addresses: { listen: [`/ip4/127.0.0.1/tcp/${port}`] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      // the node's gossip settings (unsigned, framed: src/net/gossip.ts), so it speaks to nodes
      pubsub: gossipsub({ ...GOSSIP_OPTIONS, maxInboundDataLength: 16 * 1024 * 1024 }),
    },
  })
  return host as unknown as BareHost
}

/** The bare host as the type the transport takes (it uses only libp2p's core API and gossipsub). */
export function asDonghaeHost(host: BareHost): DonghaeHost {
  return host as unknown as DonghaeHost
}
