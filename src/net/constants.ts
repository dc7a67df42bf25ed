/** Defaults of the network layer. */

/** Donghae's own libp2p protocol prefix: the DHT speaks /donghae/kad/1.0.0, separate from IPFS. */
export const PROTOCOL_PREFIX = '/donghae'

/** Default TCP and QUIC port of a node (each devnet node adds its index). */
export const DEFAULT_P2P_PORT = 26656

/** Largest gossip message accepted (a proposal carries its whole block). @default 10 MiB */
export const MAX_GOSSIP_BYTES = 10 * 1024 * 1024

/** Largest request or response frame on Donghae's request/response protocols. @default 16 MiB */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024

/**
 * What one stream's reader may hold before it is read: a whole frame and its length prefix, with
 * room for the start of the next. libp2p's default (4 MiB) failed every answer above that size,
 * model files included.
 */
export const FRAME_READ_OPTIONS = Object.freeze({
  maxDataLength: MAX_FRAME_BYTES,
  maxBufferSize: MAX_FRAME_BYTES + 64 * 1024,
})

/** How long a request may take before it fails with a timeout. @default 10 s */
export const REQUEST_TIMEOUT_MS = 10_000

/** Penalty points at which a peer is disconnected and refused for BAN_MS (penalties.ts). @default 20 */
export const PENALTY_LIMIT = 20
/** A peer's penalty points halve every this long, so old penalties are forgiven. @default 5 minutes */
export const PENALTY_HALF_LIFE_MS = 5 * 60_000
/** @default 10 minutes */
export const BAN_MS = 10 * 60_000

/** How often libp2p pings each connection to find dead ones. @default 30 s */
export const CONNECTION_PING_MS = 30_000

/** The peer book keeps an address this long after it was last seen. @default 7 days */
export const PEER_ADDRESS_MAX_AGE_MS = 7 * 24 * 3_600_000
/** ...and a peer this long. @default 30 days */
export const PEER_MAX_AGE_MS = 30 * 24 * 3_600_000

/** Connection manager bounds. @default 100 */
export const MAX_CONNECTIONS = 100

/**
 * A gossip topic's name on the wire, one set per chain: `/donghae/<chainId>/<topic>/2`. Version 2:
 * unsigned messages with a random 8-byte frame (libp2p-transport.ts); a node of version 1 signs
 * every message and so shares no topic with it.
 */
export function gossipTopic(chainId: string, topic: string): string {
  return `${PROTOCOL_PREFIX}/${chainId}/${topic}/2`
}

/**
 * Longest wait for one relay's circuit reservation (libp2p's own dial and reservation timeouts
 * are 5 s each). @default 20 s
 */
export const RELAY_RESERVATION_TIMEOUT_MS = 20_000
/** First delay before a relay that refused or failed is asked again, doubling. @default 5 s */
export const RELAY_RETRY_INITIAL_MS = 5_000
/** @default 10 minutes */
export const RELAY_RETRY_MAX_MS = 10 * 60_000

/**
 * Longest wait for one upgrade of a relayed connection to direct WebRTC: signalling over the relay,
 * ICE, DTLS and the muxer. The answering side gives up after libp2p's inbound upgrade timeout
 * (10 s), so waiting longer gains nothing. @default 10 s
 */
export const DIRECT_UPGRADE_TIMEOUT_MS = 10_000
/** First delay before a failed upgrade to direct WebRTC is tried again, doubling. @default 1 minute */
export const DIRECT_UPGRADE_RETRY_INITIAL_MS = 60_000
/** @default 30 minutes */
export const DIRECT_UPGRADE_RETRY_MAX_MS = 30 * 60_000

/**
 * Reservations a full node holds for unreachable peers. Relayed connections carry no data or
 * duration limit (libp2p's default of 128 KiB and 2 minutes would mark them "limited", and neither
 * gossip nor the DHT runs on a limited connection), so this bound is what a relay gives away.
 * @default 15
 */
export const RELAY_MAX_RESERVATIONS = 15
