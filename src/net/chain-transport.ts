/**
 * The chain's transport over libp2p: gossip topics on gossipsub (validated before they are
 * forwarded: malformed messages are rejected, which lowers the sender's gossipsub score), and
 * request/response protocols on length-prefixed streams with size limits and timeouts. Peers are
 * named by DID (the did:key of their libp2p key). A peer that keeps sending invalid data is
 * disconnected and refused for a while.
 */
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { lpStream } from '@libp2p/utils'
import type { PeerId } from '@libp2p/interface'
import { describeError } from '../core/errors.ts'
import { silentLogger, type Logger } from '../core/logger.ts'
import { didFromPeerId, peerIdFromDid } from '../identity/peer-id.ts'
import { decodeConsensusMessage } from '../chain/bft/messages.ts'
import { decodeTx } from '../chain/tx.ts'
import {
  TransportError,
  type ChainTopic,
  type ChainTransport,
  type GossipHandler,
  type RequestHandler,
  type RequestOptions,
} from '../chain/transport.ts'
import { BAN_MS, MAX_FRAME_BYTES, PENALTY_LIMIT, REQUEST_TIMEOUT_MS, chainTopic } from './constants.ts'
import type { DonghaeHost } from './host.ts'
import { SessionPool, serveSession } from './sessions.ts'

const TOPICS: readonly ChainTopic[] = ['consensus', 'txs']

/** Cheap structural checks run before gossipsub forwards a message. */
const VALIDATORS: Record<ChainTopic, (data: Uint8Array) => void> = {
  consensus: (data) => void decodeConsensusMessage(data),
  txs: (data) => void decodeTx(data),
}

function didOf(peer: PeerId): string | undefined {
  try {
    return didFromPeerId(peer)
  } catch {
    return undefined
  }
}

export class Libp2pChainTransport implements ChainTransport {
  readonly self: string
  readonly #host: DonghaeHost
  readonly #chainId: string
  readonly #log: Logger
  readonly #handlers = new Map<ChainTopic, Set<GossipHandler>>()
  readonly #penalties = new Map<string, number>()
  readonly #banned = new Map<string, number>()
  readonly #onMessage: (evt: CustomEvent) => void
  readonly #onConnect: (evt: CustomEvent<PeerId>) => void
  readonly #sessions: SessionPool

  constructor(host: DonghaeHost, options: { chainId: string; logger?: Logger }) {
    this.#host = host
    this.#chainId = options.chainId
    this.self = didFromPeerId(host.peerId)
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:net:chain')
    this.#sessions = new SessionPool(host)
    this.#onMessage = (evt) => this.#deliver(evt.detail as { topic: string; data: Uint8Array; from?: PeerId })
    this.#onConnect = (evt) => {
      const until = this.#banned.get(evt.detail.toString())
      if (until !== undefined && until > Date.now()) void this.#host.hangUp(evt.detail).catch(() => {})
    }
  }

  /** Subscribes to the chain's topics with their validators. */
  start(): void {
    const pubsub = this.#host.services.pubsub
    for (const topic of TOPICS) {
      const name = chainTopic(this.#chainId, topic)
      pubsub.topicValidators.set(name, (peer, message) => {
        try {
          VALIDATORS[topic](message.data)
          return TopicValidatorResult.Accept
        } catch (err) {
          // Honest peers validate before forwarding, so junk comes from the peer that sent it.
          const from = didOf(peer)
          if (from !== undefined) this.penalize(from, `malformed ${topic} gossip: ${describeError(err)}`)
          return TopicValidatorResult.Reject
        }
      })
      pubsub.subscribe(name)
    }
    pubsub.addEventListener('message', this.#onMessage as never)
    this.#host.addEventListener('peer:connect', this.#onConnect as never)
  }

  stop(): void {
    const pubsub = this.#host.services.pubsub
    this.#sessions.close()
    pubsub.removeEventListener('message', this.#onMessage as never)
    this.#host.removeEventListener('peer:connect', this.#onConnect as never)
    for (const topic of TOPICS) {
      const name = chainTopic(this.#chainId, topic)
      pubsub.unsubscribe(name)
      pubsub.topicValidators.delete(name)
    }
  }

  #deliver(msg: { topic: string; data: Uint8Array; from?: PeerId }): void {
    const topic = TOPICS.find((t) => chainTopic(this.#chainId, t) === msg.topic)
    if (topic === undefined) return
    const from = msg.from === undefined ? 'unknown' : (didOf(msg.from) ?? msg.from.toString())
    for (const handler of this.#handlers.get(topic) ?? []) handler(msg.data, from)
  }

  publish(topic: ChainTopic, data: Uint8Array): void {
    this.#host.services.pubsub.publish(chainTopic(this.#chainId, topic), data).catch((err: unknown) => {
      this.#log.debug({ topic, err: describeError(err) }, 'publish failed')
    })
  }

  subscribe(topic: ChainTopic, handler: GossipHandler): () => void {
    let set = this.#handlers.get(topic)
    if (set === undefined) {
      set = new Set()
      this.#handlers.set(topic, set)
    }
    set.add(handler)
    return () => set.delete(handler)
  }

  async request(peer: string, protocol: string, data: Uint8Array, options: RequestOptions = {}): Promise<Uint8Array> {
    const signal =
      options.signal === undefined
        ? AbortSignal.timeout(REQUEST_TIMEOUT_MS)
        : AbortSignal.any([options.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)])
    let peerId: PeerId
    try {
      peerId = peerIdFromDid(peer)
    } catch (err) {
      throw new TransportError(`cannot address ${peer}: ${describeError(err)}`, { cause: err })
    }
    try {
      if (options.session === true) return await this.#sessions.request(peerId, protocol, data, signal)
      const stream = await this.#host.dialProtocol(peerId, protocol, { signal })
      const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES })
      await lp.write(data, { signal })
      const answer = await lp.read({ signal })
      await stream.close({ signal }).catch(() => {})
      return answer.subarray()
    } catch (err) {
      throw new TransportError(`request ${protocol} to ${peer} failed: ${describeError(err)}`, { cause: err })
    }
  }

  handle(protocol: string, handler: RequestHandler, options: { session?: boolean } = {}): void {
    void this.#host.handle(
      protocol,
      async (stream, connection) => {
        if (options.session === true) {
          const from = didOf(connection.remotePeer) ?? connection.remotePeer.toString()
          await serveSession(stream, from, handler, {
            onInvalid: (reason) => this.penalize(from, `bad ${protocol} session: ${reason}`),
            log: this.#log,
          })
          return
        }
        const signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS)
        const from = didOf(connection.remotePeer) ?? connection.remotePeer.toString()
        try {
          const lp = lpStream(stream, { maxDataLength: MAX_FRAME_BYTES })
          const request = await lp.read({ signal })
          const answer = await handler(request.subarray(), from)
          await lp.write(answer, { signal })
          await stream.close({ signal })
        } catch (err) {
          this.penalize(from, `bad ${protocol} request: ${describeError(err)}`)
          stream.abort(err instanceof Error ? err : new Error(String(err)))
        }
      },
      { maxInboundStreams: 32 },
    )
  }

  peers(): string[] {
    return this.#host
      .getPeers()
      .map(didOf)
      .filter((d): d is string => d !== undefined)
  }

  penalize(peer: string, reason: string): void {
    const count = (this.#penalties.get(peer) ?? 0) + 1
    this.#penalties.set(peer, count)
    this.#log.debug({ peer, reason, count }, 'peer penalized')
    if (count < PENALTY_LIMIT) return
    this.#penalties.delete(peer)
    let peerId: PeerId
    try {
      peerId = peerIdFromDid(peer)
    } catch {
      return
    }
    this.#banned.set(peerId.toString(), Date.now() + BAN_MS)
    this.#log.warn({ peer, reason }, 'peer disconnected for repeated invalid data')
    void this.#host.hangUp(peerId).catch(() => {})
  }
}
