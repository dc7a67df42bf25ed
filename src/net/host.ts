/**
 * The libp2p host. The node's Ed25519 identity key is its libp2p key, so its PeerId and its DID
 * name the same key. TCP, QUIC and WebSockets, all three or any of them (`transports`,
 * docs/transports.md); Noise; Yamux; identify; ping; a Kademlia DHT under Donghae's own protocol
 * (/donghae/kad/1.0.0) in server mode even on private networks; gossipsub; bootstrap peers and
 * LAN discovery (mDNS); port mapping through the home router and, when it gives
 * nothing, a circuit-relay reservation on a peer as the last resort (relay.ts); WebRTC, so that two
 * nodes that met on a relay upgrade to a direct connection through both NATs (direct-upgrade.ts),
 * and optionally WebRTC Direct for browsers; and a peer store persisted in LevelDB so a restarted
 * node reconnects at once.
 */
import { createLibp2p, type Libp2p } from 'libp2p'
import type { quic } from '@chainsafe/libp2p-quic'
import type { webSockets } from '@libp2p/websockets'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { mdns } from '@libp2p/mdns'
import { bootstrap } from '@libp2p/bootstrap'
import { circuitRelayTransport, circuitRelayServer } from '@libp2p/circuit-relay-v2'
import type { webRTCDirect } from '@libp2p/webrtc'
import { lazyWebRTC } from './lazy-webrtc.ts'
import { cleanupDataChannels } from './webrtc/datachannel.ts'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import type { Identify } from '@libp2p/identify'
import type { Ping } from '@libp2p/ping'
import type { PeerDiscovery } from '@libp2p/interface'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import type { Logger } from '../core/logger.ts'
import { InvalidInputError } from '../core/errors.ts'
import { natPortMapping, type NatPortMappingService } from './nat/libp2p.ts'
import type { NatMode } from './nat/manager.ts'
import { NO_RELAY_DISCOVERY, RelayFallbackService, type RelayFallbackComponents } from './relay.ts'
import { directUpgrade, type DirectUpgradeService } from './direct-upgrade.ts'
import { DID_RECORD_PREFIX, selectDidRecord, validateDidRecord } from './did-records.ts'
import {
  CONNECTION_PING_MS,
  PEER_ADDRESS_MAX_AGE_MS,
  PEER_MAX_AGE_MS,
  MAX_CONNECTIONS,
  PROTOCOL_PREFIX,
  RELAY_MAX_RESERVATIONS,
} from './constants.ts'
import { GOSSIP_OPTIONS } from './gossip.ts'
import { coalescedTcp } from './coalesce.ts'
import { assertKadInternals } from './dht-put.ts'
import { installConnectionRules } from './connection-rules.ts'
import { skipKnownProtocolMerges, type ProtocolMergeStats } from './protocol-merges.ts'
import { PeerBookDatastore } from './peer-book.ts'

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

export type DonghaeHost = Libp2p<HostServices> & {
  readonly gate?: PeerGate
  /** Peer-store merges answered from memory, and passed on (src/net/protocol-merges.ts). */
  readonly protocolMerges?: ProtocolMergeStats
}

/**
 * The transports a host can listen on and dial with: `tcp` on TCP `port`, `quic` (QUIC v1) on
 * UDP `port`, `ws` (WebSockets, plain) on TCP `port + 1`.
 */
export const TRANSPORT_NAMES = ['tcp', 'quic', 'ws'] as const
export type TransportName = (typeof TRANSPORT_NAMES)[number]

/** A transport list with a name that is not one of `TRANSPORT_NAMES`, or with none at all. */
export class UnknownTransportError extends InvalidInputError {
  static override readonly code: string = 'UNKNOWN_TRANSPORT'
  override name = 'UnknownTransportError'
}

/**
 * Checks a list of transport names (`['quic']`, or `'tcp,ws'` as a flag gives it): each one of
 * `TRANSPORT_NAMES`, at least one; duplicates are dropped. Throws `UnknownTransportError`.
 */
export function parseTransports(raw: string | readonly string[]): TransportName[] {
  const names = (typeof raw === 'string' ? raw.split(',') : raw).map((n) => n.trim()).filter((n) => n !== '')
  const unknown = names.filter((n) => !(TRANSPORT_NAMES as readonly string[]).includes(n))
  if (unknown.length > 0 || names.length === 0)
    throw new UnknownTransportError(
      unknown.length > 0
        ? `unknown transport ${unknown.map((n) => JSON.stringify(n)).join(', ')}: use ${TRANSPORT_NAMES.join(', ')} (comma-separated, e.g. tcp,quic)`
        : `no transport given: use one or more of ${TRANSPORT_NAMES.join(', ')} (comma-separated, e.g. tcp,quic)`,
      { details: { unknown, known: [...TRANSPORT_NAMES] } },
    )
  return [...new Set(names as TransportName[])]
}

export interface HostOptions {
  key: Ed25519KeyPair
  /** Listen host. @default '0.0.0.0' */
  host?: string
  /** TCP and QUIC (UDP) port; WebSockets listens on port + 1. 0 = any free port. */
  port: number
  /**
   * The transports the host listens on and dials with, and no others: with `['quic']` it has no
   * TCP listener and cannot dial TCP or WebSockets addresses. Circuit relay and WebRTC run over
   * the connections these make. Takes precedence over `quic` and `webSockets`.
   * @default TCP, plus QUIC and WebSockets as `quic` and `webSockets` say
   */
  transports?: readonly TransportName[]
  /** Also listen on and dial QUIC (without `transports`). @default true */
  quic?: boolean
  /**
   * Also listen on WebSockets at port + 1 (without `transports`; dialing WebSockets always works).
   * @default true
   */
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
   * other than off) gives no public address (from the start on a host with no TCP listener,
   * which the mapper cannot map), `always` from the start, `off` never.
   * @default 'fallback'
   */
  relay?: 'fallback' | 'always' | 'off'
  /**
   * Private-to-private WebRTC: listen on `/webrtc` (announced as `.../p2p-circuit/webrtc` through the
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
   * Listen for WebRTC Direct (`/udp/<port + 1>/webrtc-direct/certhash/...`), which browsers dial
   * with no signalling; useful only where that UDP port is reachable (a public or mapped address).
   * @default false
   */
  webrtcDirect?: boolean
  logger?: Logger
}

/**
 * The port-mapping service and the relay fallback it drives (an unmapped node reserves a relay
 * slot). The mapper maps a TCP port (nat/libp2p.ts), so a host with no TCP listener (QUIC only)
 * can get no mapping: with port mapping on, its fallback is wanted from the start.
 */
function relayAndNat(options: HostOptions, listen: ReadonlySet<TransportName>): Record<string, unknown> {
  const nat = options.nat !== undefined && options.nat !== 'off' ? options.nat : undefined
  const relay = options.relay ?? 'fallback'
  const logger = options.logger === undefined ? {} : { logger: options.logger }
  const unmappable = nat !== undefined && !listen.has('tcp') && !listen.has('ws')
  const always = relay === 'always' || (relay === 'fallback' && unmappable)
  let fallback: RelayFallbackService | undefined
  return {
    ...(relay === 'always' || (relay === 'fallback' && nat !== undefined)
      ? {
          relayFallback: (components: RelayFallbackComponents) =>
            (fallback = new RelayFallbackService(components, { always, ...logger })),
        }
      : {}),
    ...(nat === undefined
      ? {}
      : { nat: natPortMapping({ mode: nat, ...logger, onChange: (change) => fallback?.natChanged(change) }) }),
  }
}

/** Which transports listen and which dial: `transports` exactly, or the older `quic`/`webSockets` switches. */
function transportPlan(options: HostOptions): { listen: Set<TransportName>; dial: Set<TransportName> } {
  if (options.transports !== undefined) {
    const chosen = new Set(parseTransports(options.transports))
    return { listen: chosen, dial: chosen }
  }
  const listen = new Set<TransportName>(['tcp'])
  if (options.quic !== false) listen.add('quic')
  if (options.webSockets !== false) listen.add('ws')
  const dial = new Set<TransportName>(['tcp', 'ws'])
  if (options.quic !== false) dial.add('quic')
  return { listen, dial }
}

/** The listen address of each transport on `host` and `port` (0: any free port). */
function listenAddress(name: TransportName, host: string, port: number): string {
  switch (name) {
    case 'tcp':
      return `/ip4/${host}/tcp/${port}`
    case 'quic':
      return `/ip4/${host}/udp/${port}/quic-v1`
    case 'ws':
      return `/ip4/${host}/tcp/${port === 0 ? 0 : port + 1}/ws`
  }
}

/**
 * Each transport's factory. TCP's writes are coalesced per turn of the event loop (coalesce.ts).
 * QUIC and WebSockets load their packages only for a host that uses them: QUIC's native module
 * starts a runtime with its own threads when it loads; a TCP-only node (`transports: ['tcp']`)
 * needs neither, and a node on the default transports (TCP and QUIC) no WebSockets.
 */
const DIALERS = {
  tcp: async () => coalescedTcp(),
  quic: async (): Promise<ReturnType<typeof quic>> => (await import('@chainsafe/libp2p-quic')).quic(),
  ws: async (): Promise<ReturnType<typeof webSockets>> => (await import('@libp2p/websockets')).webSockets(),
} as const

/** Ping streams allowed at once on one connection, each way (see `ping` in createHost). */
const PING_MAX_STREAMS = 4

/** Hosts with a WebRTC transport in this process that have not stopped. */
let hostsWithDataChannels = 0

export async function createHost(options: HostOptions): Promise<DonghaeHost> {
  const host = options.host ?? '0.0.0.0'
  const plan = transportPlan(options)
  const dialers = await Promise.all(TRANSPORT_NAMES.filter((t) => plan.dial.has(t)).map((t) => DIALERS[t]()))
  // No '/p2p-circuit' here: with libp2p 3 that listener holds start() until a relay reservation
  // is made. The relay fallback service listens on a chosen relay once started and needed.
  const listen = TRANSPORT_NAMES.filter((t) => plan.listen.has(t)).map((t) => listenAddress(t, host, options.port))
  const rtc = options.webrtc === true
  // WebRTC Direct (which browsers dial) loads @libp2p/webrtc at start; private-to-private WebRTC
  // loads it when the node is reached through a relay or dials a /webrtc address (lazy-webrtc.ts)
  const direct: typeof webRTCDirect | undefined =
    options.webrtcDirect === true ? (await import('@libp2p/webrtc')).webRTCDirect : undefined
  if (rtc) listen.push('/webrtc')
  if (options.webrtcDirect === true)
    listen.push(`/ip4/${host}/udp/${options.port === 0 ? 0 : options.port + 1}/webrtc-direct`)
  // '[]' keeps libp2p from falling back to its built-in public STUN servers
  const rtcConfiguration = { iceServers: (options.iceServers ?? []).map((urls) => ({ urls })) }
  const discovery: Array<(components: never) => PeerDiscovery> = []
  if (options.mdns !== false) discovery.push(mdns({ serviceTag: 'donghae.local', interval: 10_000 }) as never)
  if ((options.bootstrap ?? []).length > 0)
    discovery.push(bootstrap({ list: options.bootstrap ?? [], timeout: 1_000 }) as never)
  const datastore = options.datastorePath === undefined ? undefined : new PeerBookDatastore(options.datastorePath)
  if (datastore !== undefined) await datastore.open()
  const services = {
    identify: identify(),
    // Room for a second ping stream on a connection (libp2p allows one out, two in). A ping whose
    // bytes and end arrive together with the protocol negotiation (seen on QUIC, where they can
    // share one packet) leaves the answering side waiting for an end it has already had, so the
    // stream stays open until its 10 s timeout; with a limit of one, the connection monitor's
    // next heartbeat ping fails on that connection and the monitor closes the connection
    // (docs/transports.md, "A QUIC pitfall").
    ping: ping({ maxOutboundStreams: PING_MAX_STREAMS, maxInboundStreams: PING_MAX_STREAMS }),
    dht: kadDHT({
      protocol: `${PROTOCOL_PREFIX}/kad/1.0.0`,
      clientMode: false,
      peerInfoMapper: passthroughMapper,
      validators: { [DID_RECORD_PREFIX]: validateDidRecord },
      selectors: { [DID_RECORD_PREFIX]: selectDidRecord },
      allowQueryWithZeroPeers: true,
    }),
    pubsub: gossipsub(GOSSIP_OPTIONS),
    ...(options.relayServer === true
      ? {
          relay: circuitRelayServer({
            reservations: { maxReservations: RELAY_MAX_RESERVATIONS, applyDefaultLimit: false },
          }),
        }
      : {}),
    ...relayAndNat(options, plan.listen),
    ...(rtc ? { directUpgrade: directUpgrade(options.logger === undefined ? {} : { logger: options.logger }) } : {}),
  }
  const gate: PeerGate = { deny: () => false }
  // yamux window updates at half a window; Noise's frame decoder without a new RangeError per chunk
  installConnectionRules()
  const node = await createLibp2p({
    privateKey: await generateKeyPairFromSeed('Ed25519', options.key.exportSeed()),
    addresses: { listen, announce: options.announce ?? [] },
    transports: [
      ...dialers,
      circuitRelayTransport({ discoveryFilter: NO_RELAY_DISCOVERY }),
      ...(rtc ? [lazyWebRTC({ rtcConfiguration })] : []),
      ...(direct === undefined ? [] : [direct({ rtcConfiguration })]),
    ],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: discovery as never,
    connectionManager: { maxConnections: options.maxConnections ?? MAX_CONNECTIONS },
    // a ping per connection every 30 s, not libp2p's 10 s: each is a new stream (negotiation and a
    // peer-store write), the largest part of an idle node's own traffic; TCP and QUIC report most
    // dead connections sooner anyway
    connectionMonitor: { pingInterval: CONNECTION_PING_MS },
    // the peer book outlives a node's downtime: libp2p drops addresses last seen over an hour ago
    // (and peers over six hours) when it reads them, so a node off for longer, with no bootstrap
    // list, had nobody to dial (test/restart-data-fixtures.test.ts)
    peerStore: { maxAddressAge: PEER_ADDRESS_MAX_AGE_MS, maxPeerAge: PEER_MAX_AGE_MS },
    connectionGater: {
      denyDialPeer: (peerId) => gate.deny(peerId.toString()),
      denyInboundEncryptedConnection: (peerId) => gate.deny(peerId.toString()),
      denyOutboundEncryptedConnection: (peerId) => gate.deny(peerId.toString()),
    },
    ...(datastore === undefined ? {} : { datastore }),
    services: services as never,
    start: false,
  })
  // DHT puts reach past kad-dht's public API once (src/net/dht-put.ts): refuse a release without it
  assertKadInternals((node.services as { dht?: unknown }).dht)
  // a stream on a protocol the peer's record already lists does not merge it in again
  const protocolMerges = skipKnownProtocolMerges(node.peerStore)
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
  return Object.assign(node, { gate, protocolMerges }) as unknown as DonghaeHost
}
