/**
 * The libp2p host. The node's Ed25519 identity key is its libp2p key, so its PeerId and its DID
 * name the same key. TCP, QUIC and WebSockets; Noise; Yamux; identify; ping; a Kademlia DHT under
 * Donghae's own protocol (/donghae/kad/1.0.0) in server mode even on private networks; gossipsub;
 * bootstrap peers and LAN discovery (mDNS); port mapping through the home router and, when it gives
 * nothing, a circuit-relay reservation on a peer as the last resort (relay.ts); WebRTC, so that two
 * nodes that met on a relay upgrade to a direct connection through both NATs (direct-upgrade.ts),
 * and optionally WebRTC Direct for browsers; and a peer store persisted in LevelDB so a restarted
 * node reconnects at once.
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
import { webRTC, webRTCDirect } from '@libp2p/webrtc'
import { cleanup as cleanupDataChannels } from 'node-datachannel'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { LevelDatastore } from 'datastore-level'
import type { Identify } from '@libp2p/identify'
import type { Ping } from '@libp2p/ping'
import type { PeerDiscovery } from '@libp2p/interface'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import type { Logger } from '../core/logger.ts'
import { natPortMapping, type NatPortMappingService } from './nat/libp2p.ts'
import type { NatMode } from './nat/manager.ts'
import { NO_RELAY_DISCOVERY, RelayFallbackService, type RelayFallbackComponents } from './relay.ts'
import { directUpgrade, type DirectUpgradeService } from './direct-upgrade.ts'
import { DID_RECORD_PREFIX, selectDidRecord, validateDidRecord } from './did-records.ts'
import { MAX_CONNECTIONS, MAX_GOSSIP_BYTES, PROTOCOL_PREFIX, RELAY_MAX_RESERVATIONS } from './constants.ts'

export interface HostServices {
  /** Present when the node maps its port through the router. */
  nat?: NatPortMappingService
  /** Present when the node may reserve a slot on a circuit relay (see `HostOptions.relay`). */
  relayFallback?: RelayFallbackService
  /** Present with WebRTC (see `HostOptions.webrtc`): relayed connections upgraded to direct ones. */
  directUpgrade?: DirectUpgradeService
  identify: Identify
  ping: Ping
  dht: KadDHT
  pubsub: GossipSub
  [key: string]: unknown
}

/**
 * Who the host refuses to connect with, in both directions, before any protocol runs (libp2p's
 * connection gater). The transport fills in `deny` with its bans (libp2p-transport.ts).
 */
export interface PeerGate {
  deny(peerId: string): boolean
}

export type DonghaeHost = Libp2p<HostServices> & { readonly gate?: PeerGate }

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
  /**
   * Circuit-relay reservation on a connected relay peer: `fallback` when port mapping (`nat`
   * other than off) gives no public address, `always` from the start, `off` never.
   * @default 'fallback'
   */
  relay?: 'fallback' | 'always' | 'off'
  /**
   * Private-to-private WebRTC: listen on `/webrtc` (announced as `…/p2p-circuit/webrtc` through the
   * relay holding our reservation), and upgrade relayed connections we open to direct WebRTC ones
   * by ICE hole punching (direct-upgrade.ts). The node turns it on (full-node.ts); a bare host
   * leaves it off. @default false
   */
  webrtc?: boolean
  /**
   * ICE servers of WebRTC (`stun:host:port`; config `iceServers`). Without one, ICE has only host
   * candidates: enough when one side is public or port-mapped, not for two NATed nodes. @default []
   */
  iceServers?: string[]
  /**
   * Listen for WebRTC Direct (`/udp/<port + 1>/webrtc-direct/certhash/…`), which browsers dial
   * with no signalling; useful only where that UDP port is reachable (a public or mapped address).
   * @default false
   */
  webrtcDirect?: boolean
  logger?: Logger
}

/** The port-mapping service and the relay fallback it drives (an unmapped node reserves a relay slot). */
function relayAndNat(options: HostOptions): Record<string, unknown> {
  const nat = options.nat !== undefined && options.nat !== 'off' ? options.nat : undefined
  const relay = options.relay ?? 'fallback'
  const logger = options.logger === undefined ? {} : { logger: options.logger }
  let fallback: RelayFallbackService | undefined
  return {
    ...(relay === 'always' || (relay === 'fallback' && nat !== undefined)
      ? {
          relayFallback: (components: RelayFallbackComponents) =>
            (fallback = new RelayFallbackService(components, { always: relay === 'always', ...logger })),
        }
      : {}),
    ...(nat === undefined
      ? {}
      : { nat: natPortMapping({ mode: nat, ...logger, onChange: (change) => fallback?.natChanged(change) }) }),
  }
}

/** Hosts with a WebRTC transport in this process that have not stopped. */
let hostsWithDataChannels = 0

export async function createHost(options: HostOptions): Promise<DonghaeHost> {
  const host = options.host ?? '0.0.0.0'
  const listen = [`/ip4/${host}/tcp/${options.port}`]
  // No '/p2p-circuit' here: with libp2p 3 that listener holds start() until a relay reservation
  // is made. The relay fallback service listens on a chosen relay once started and needed.
  if (options.quic !== false) listen.push(`/ip4/${host}/udp/${options.port}/quic-v1`)
  if (options.webSockets !== false) listen.push(`/ip4/${host}/tcp/${options.port === 0 ? 0 : options.port + 1}/ws`)
  const rtc = options.webrtc === true
  if (rtc) listen.push('/webrtc')
  if (options.webrtcDirect === true)
    listen.push(`/ip4/${host}/udp/${options.port === 0 ? 0 : options.port + 1}/webrtc-direct`)
  // '[]' keeps libp2p from falling back to its built-in public STUN servers
  const rtcConfiguration = { iceServers: (options.iceServers ?? []).map((urls) => ({ urls })) }
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
    ...(options.relayServer === true
      ? {
          relay: circuitRelayServer({
            reservations: { maxReservations: RELAY_MAX_RESERVATIONS, applyDefaultLimit: false },
          }),
        }
      : {}),
    ...relayAndNat(options),
    ...(rtc ? { directUpgrade: directUpgrade(options.logger === undefined ? {} : { logger: options.logger }) } : {}),
  }
  const gate: PeerGate = { deny: () => false }
  const node = await createLibp2p({
    privateKey: await generateKeyPairFromSeed('Ed25519', options.key.exportSeed()),
    addresses: { listen, announce: options.announce ?? [] },
    transports: [
      tcp(),
      ...(options.quic !== false ? [quic()] : []),
      webSockets(),
      circuitRelayTransport({ discoveryFilter: NO_RELAY_DISCOVERY }),
      ...(rtc ? [webRTC({ rtcConfiguration })] : []),
      ...(options.webrtcDirect === true ? [webRTCDirect({ rtcConfiguration })] : []),
    ],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: discovery as never,
    connectionManager: { maxConnections: options.maxConnections ?? MAX_CONNECTIONS },
    connectionGater: {
      denyDialPeer: (peerId) => gate.deny(peerId.toString()),
      denyInboundEncryptedConnection: (peerId) => gate.deny(peerId.toString()),
      denyOutboundEncryptedConnection: (peerId) => gate.deny(peerId.toString()),
    },
    ...(datastore === undefined ? {} : { datastore }),
    services: services as never,
    start: false,
  })
  const usesDataChannels = rtc || options.webrtcDirect === true
  if (usesDataChannels) hostsWithDataChannels++
  const stop = node.stop.bind(node)
  let stopped = false
  node.stop = async () => {
    await stop()
    await datastore?.close()
    if (!usesDataChannels || stopped) return
    stopped = true
    // libdatachannel keeps the process alive while any peer connection it made is open, and a
    // WebRTC dial or answer cut short by the stop can leave one behind (js-libp2p #2625). The
    // last host with WebRTC in this process closes them all; earlier ones must not, since
    // cleanup() is process-wide (js-libp2p #2498).
    if (--hostsWithDataChannels === 0) cleanupDataChannels()
  }
  return Object.assign(node, { gate }) as unknown as DonghaeHost
}
