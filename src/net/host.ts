/**
 * The libp2p host. The node's Ed25519 identity key is its libp2p key, so its PeerId and its DID
 * name the same key. TCP, QUIC and WebSockets; Noise; Yamux; identify; ping; a Kademlia DHT under
 * Donghae's own protocol (/donghae/kad/1.0.0) in server mode even on private networks; gossipsub;
 * bootstrap peers and LAN discovery (mDNS); the circuit-relay transport as the last resort for
 * unreachable nodes; and a peer store persisted in LevelDB so a restarted node reconnects at once.
 */
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { quic } from '@chainsafe/libp2p-quic'
import { webSockets } from '@libp2p/websockets'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { mdns } from '@libp2p/mdns'
import { bootstrap } from '@libp2p/bootstrap'
import { circuitRelayTransport, circuitRelayServer } from '@libp2p/circuit-relay-v2'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { LevelDatastore } from 'datastore-level'
import type { Identify } from '@libp2p/identify'
import type { Ping } from '@libp2p/ping'
import type { PeerDiscovery } from '@libp2p/interface'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import type { Logger } from '../core/logger.ts'
import { natPortMapping, type NatPortMappingService } from './nat/libp2p.ts'
import type { NatMode } from './nat/manager.ts'
import { DID_RECORD_PREFIX, selectDidRecord, validateDidRecord } from './did-records.ts'
import { MAX_CONNECTIONS, MAX_GOSSIP_BYTES, PROTOCOL_PREFIX } from './constants.ts'

export interface HostServices {
  /** Present when the node maps its port through the router. */
  nat?: NatPortMappingService
  identify: Identify
  ping: Ping
  dht: KadDHT
  pubsub: GossipSub
  [key: string]: unknown
}

export type DonghaeHost = Libp2p<HostServices>

export interface HostOptions {
  key: Ed25519KeyPair
  /** Listen host. @default '0.0.0.0' */
  host?: string
  /** TCP and QUIC (UDP) port; WebSockets listens on port + 1. 0 = any free port. */
  port: number
  /** Also listen on QUIC. @default true */
  quic?: boolean
  /** Also listen on WebSockets at port + 1 (dialing WebSockets always works). @default true */
  webSockets?: boolean
  /** Extra addresses to announce (e.g. the router's external address from the NAT manager). */
  announce?: string[]
  /** Multiaddrs with /p2p/<id> to dial at start and whenever the node is alone. */
  bootstrap?: string[]
  /** LAN discovery by multicast DNS. @default true */
  mdns?: boolean
  /** Directory of the persisted peer store (LevelDB). Omit for an in-memory one. */
  datastorePath?: string
  /** Serve as a circuit relay for unreachable peers. @default false */
  relayServer?: boolean
  /** Connection manager upper bound. @default MAX_CONNECTIONS */
  maxConnections?: number
  /** Port mapping through the home router. @default 'off' */
  nat?: NatMode
  logger?: Logger
}

export async function createHost(options: HostOptions): Promise<DonghaeHost> {
  const host = options.host ?? '0.0.0.0'
  const listen = [`/ip4/${host}/tcp/${options.port}`]
  // Not listening on '/p2p-circuit' yet: with libp2p 3 that listener holds start() until a relay
  // reservation is made. Relayed addresses can be dialled (circuitRelayTransport) and every full
  // node serves as a relay (relayServer), but automatic reservations for unmapped nodes are open work.
  if (options.quic !== false) listen.push(`/ip4/${host}/udp/${options.port}/quic-v1`)
  if (options.webSockets !== false) listen.push(`/ip4/${host}/tcp/${options.port === 0 ? 0 : options.port + 1}/ws`)
  const discovery: Array<(components: never) => PeerDiscovery> = []
  if (options.mdns !== false) discovery.push(mdns({ serviceTag: 'donghae.local', interval: 10_000 }) as never)
  if ((options.bootstrap ?? []).length > 0)
    discovery.push(bootstrap({ list: options.bootstrap ?? [], timeout: 1_000 }) as never)
  const datastore = options.datastorePath === undefined ? undefined : new LevelDatastore(options.datastorePath)
  if (datastore !== undefined) await datastore.open()
  const services = {
    identify: identify(),
    ping: ping(),
    dht: kadDHT({
      protocol: `${PROTOCOL_PREFIX}/kad/1.0.0`,
      clientMode: false,
      peerInfoMapper: passthroughMapper,
      validators: { [DID_RECORD_PREFIX]: validateDidRecord },
      selectors: { [DID_RECORD_PREFIX]: selectDidRecord },
      allowQueryWithZeroPeers: true,
    }),
    pubsub: gossipsub({
      allowPublishToZeroTopicPeers: true,
      emitSelf: false,
      maxInboundDataLength: MAX_GOSSIP_BYTES,
      // Validation happens in our topic validators; invalid messages lower the sender's score.
      asyncValidation: false,
    }),
    ...(options.relayServer === true ? { relay: circuitRelayServer() } : {}),
    ...(options.nat !== undefined && options.nat !== 'off'
      ? {
          nat: natPortMapping({
            mode: options.nat,
            ...(options.logger === undefined ? {} : { logger: options.logger }),
          }),
        }
      : {}),
  }
  const node = await createLibp2p({
    privateKey: await generateKeyPairFromSeed('Ed25519', options.key.exportSeed()),
    addresses: { listen, announce: options.announce ?? [] },
    transports: [tcp(), ...(options.quic !== false ? [quic()] : []), webSockets(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: discovery as never,
    connectionManager: { maxConnections: options.maxConnections ?? MAX_CONNECTIONS },
    ...(datastore === undefined ? {} : { datastore }),
    services: services as never,
    start: false,
  })
  const stop = node.stop.bind(node)
  node.stop = async () => {
    await stop()
    await datastore?.close()
  }
  return node as unknown as DonghaeHost
}
