/**
 * How a node talks to its peers: gossip topics and request/response protocols between nodes
 * named by DID. Every subsystem (consensus, transaction gossip, block sync, inference jobs, slot
 * adverts, blobs) speaks through this one interface, so the same code runs over the in-memory hub
 * (tests, single-process networks: `src/net/memory-transport.ts`) and over libp2p
 * (`src/net/libp2p-transport.ts`). A component asks only for the methods it uses
 * (`Pick<PeerTransport, 'publish' | 'subscribe'>`).
 *
 * Gossip is validated before it is relayed (Lodestar's pattern): a topic handler runs once per
 * message, at validation time, and returns its verdict. `accept` relays the message to other
 * peers; `ignore` drops it without blame (stale, duplicate, not payable yet); `reject` drops it
 * and penalizes the peer that sent it (malformed, wrongly signed, provably invalid). Over libp2p
 * the verdict is gossipsub's topic-validator result, so gossipsub's peer score follows it too.
 */
import { DonghaeError } from './errors.ts'

/** What a topic handler decides about one gossip message. */
export type GossipVerdict = 'accept' | 'ignore' | 'reject'

/**
 * Validates and processes one gossip message. `from` is the peer that handed it to this node
 * (penalties go there). Gossip carries no author: every topic's payload is signed by whoever it
 * speaks for (a vote by its validator, a transaction by its sender, an advert by its worker), and
 * that signature is what a handler checks.
 */
export type GossipHandler = (data: Uint8Array, from: string) => GossipVerdict | Promise<GossipVerdict>

/**
 * Answers one request. `progress` sends a partial answer ahead of the final one (a generation's
 * tokens as they come); it is only given over sessions and in memory, and the requester sees
 * the chunks through `RequestOptions.onProgress`, in order, before the answer.
 */
export type RequestHandler = (
  data: Uint8Array,
  from: string,
  progress?: (chunk: Uint8Array) => void,
) => Promise<Uint8Array>

export interface RequestOptions {
  signal?: AbortSignal
  /** Many requests over one long-lived stream (cheaper per request; for small, frequent ones). */
  session?: boolean
  /** Partial answers the handler sends before its answer (sessions and memory only). */
  onProgress?(chunk: Uint8Array): void
}

/** Bytes a peer may make this node send on one protocol: `bytes` per `perMs`, refilled continuously. */
export interface ByteBudget {
  bytes: number
  perMs: number
}

export interface HandleOptions {
  /** Serve many requests over one long-lived stream per peer (see `RequestOptions.session`). */
  session?: boolean
  /**
   * Per-peer budget of answer bytes. A request that arrives while its peer's budget is spent is
   * answered with an `OverBudgetError` (the peer is not penalized: asking is not misbehaving).
   */
  budget?: ByteBudget
}

export interface PeerTransport {
  /** This node's DID. */
  readonly self: string
  /** Sends to the topic's peers (receivers drop duplicates). */
  publish(topic: string, data: Uint8Array): void
  /** Handles a topic's messages; several handlers combine: any reject rejects, else any accept accepts. */
  subscribe(topic: string, handler: GossipHandler): () => void
  /**
   * Asks `peer` and waits for its answer. With `session`, the request travels on a stream kept
   * open for this peer and protocol (the serving side must `handle` it with `session` too).
   */
  request(peer: string, protocol: string, data: Uint8Array, options?: RequestOptions): Promise<Uint8Array>
  handle(protocol: string, handler: RequestHandler, options?: HandleOptions): void
  peers(): string[]
  /** Reports a peer that sent invalid data; transports lower its score and may disconnect it. */
  penalize(peer: string, reason: string): void
}

/** Combines the verdicts of several handlers of one topic. */
export function combineVerdicts(verdicts: readonly GossipVerdict[]): GossipVerdict {
  if (verdicts.includes('reject')) return 'reject'
  return verdicts.includes('accept') ? 'accept' : 'ignore'
}

/** A request that could not be answered (peer gone, no handler, handler failed). */
export class TransportError extends DonghaeError {
  static override readonly code: string = 'TRANSPORT_ERROR'
  override name = 'TransportError'
}

/** The peer refused a request because this node asked for more than its byte budget allows; retry later. */
export class OverBudgetError extends TransportError {
  static override readonly code: string = 'OVER_BUDGET'
  override name = 'OverBudgetError'
}
