/** Defaults of the network scale simulations. */

/**
 * Donghae's libp2p protocol prefix: the DHT speaks `/donghae/kad/1.0.0`, apart from IPFS's Amino
 * DHT. The same value as `PROTOCOL_PREFIX` in `src/net/constants.ts`.
 */
export const DEFAULT_PROTOCOL_PREFIX = '/donghae'

/** Kademlia bucket size k (the libp2p spec's and js-libp2p's value). @default 20 */
export const SIM_K = 20

/**
 * Lookup concurrency alpha. The Kademlia paper's 3; js-libp2p's own default is 10, so the libp2p run
 * sets it explicitly, and the model uses the same value. @default 3
 */
export const SIM_ALPHA = 3

/** Nodes that every joining node may pick as its bootstrap peer. @default 3 */
export const SIM_BOOTSTRAP_NODES = 3

/** Peers a joining node dials: one bootstrap node and the rest among the nodes already up. @default 3 */
export const SIM_INITIAL_PEERS = 3

/**
 * Random-walk lookups each node makes after everyone has joined, besides its self-lookup. None are
 * needed for every lookup to succeed at 500 nodes, and each costs a full lookup per node. @default 0
 */
export const SIM_WARMUP_WALKS = 0

/** Warm-up lookups running at once across the whole network. @default 8 */
export const SIM_WARMUP_CONCURRENCY = 8

/**
 * How often each node repeats its self-lookup and refreshes its buckets: kad-dht's own interval for
 * both (its `QUERY_SELF_INTERVAL` and `TABLE_REFRESH_INTERVAL`). @default 5 min
 */
export const SIM_MAINTENANCE_MS = 5 * 60_000

/** The longest delay a Node.js timer takes (2³¹ - 1 ms, about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** Connection manager bound per node: Donghae's host default (`MAX_CONNECTIONS`). @default 100 */
export const SIM_MAX_CONNECTIONS = 100

/** Gossip payload size in bytes. @default 256 */
export const SIM_MESSAGE_BYTES = 256

/** A lookup that takes longer than this fails. @default 30 s */
export const SIM_LOOKUP_TIMEOUT_MS = 30_000

/** How long to wait for a gossip message to reach every node before counting the rest as lost. @default 10 s */
export const SIM_DELIVERY_TIMEOUT_MS = 10_000

/** How long to wait for every node to have a gossip mesh before publishing. @default 20 s */
export const SIM_MESH_TIMEOUT_MS = 20_000

/** The record namespace of the values the simulation puts (`/donghae-sim/<seed>/<n>`). */
export const SIM_RECORD_NAMESPACE = 'donghae-sim'

/**
 * Joins in flight at once in the multi-process run (all nodes are listening before any joins; node
 * i still dials only nodes before it in the plan). @default 8
 */
export const SIM_JOIN_CONCURRENCY = 8
