/** Defaults of the network layer. */

/** Donghae's own libp2p protocol prefix: the DHT speaks /donghae/kad/1.0.0, separate from IPFS. */
export const PROTOCOL_PREFIX = '/donghae'

/** Default TCP and QUIC port of a node (each devnet node adds its index). */
export const DEFAULT_P2P_PORT = 26656

/** Largest gossip message accepted (a proposal carries its whole block). @default 10 MiB */
export const MAX_GOSSIP_BYTES = 10 * 1024 * 1024

/** Largest request or response frame on Donghae's request/response protocols. @default 16 MiB */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024

/** How long a request may take before it fails with a timeout. @default 10 s */
export const REQUEST_TIMEOUT_MS = 10_000

/** Penalties after which a peer is disconnected and refused for BAN_MS. @default 20 */
export const PENALTY_LIMIT = 20
/** @default 10 minutes */
export const BAN_MS = 10 * 60_000

/** Connection manager bounds. @default 100 */
export const MAX_CONNECTIONS = 100

/** Gossip topic names, one set per chain. */
export function chainTopic(chainId: string, topic: 'consensus' | 'txs'): string {
  return `${PROTOCOL_PREFIX}/${chainId}/${topic}/1`
}
