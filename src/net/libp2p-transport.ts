/**
 * The node's `PeerTransport` over libp2p. Gossip topics run on gossipsub under
 * `/donghae/<chainId>/<topic>/2`; each topic's handlers are its gossipsub topic validator, so a
 * message is processed once, at validation, and relayed only when accepted (`reject` also lowers
 * the sender's gossipsub score and counts as a penalty here).
 *
 * Gossip is unsigned and framed (gossip.ts). Request/response protocols run on
 * length-prefixed streams with size limits and timeouts, one stream per request or, with
 * `session`, many requests over one stream (sessions.ts). Peers are named by DID (the did:key of
 * their libp2p key).
 *
 * Penalties are leaky scores (penalties.ts): a peer whose score reaches `PENALTY_LIMIT` is
 * disconnected and refused for `BAN_MS`. Only invalid data is penalized - a gossip `reject`, a
 * frame over the size limit or not in the protocol's format, a request its handler refuses as
 * malformed (an error with `action: 'reject'`). A request that times out on this side, that the
 * peer cancels, or that the handler cannot serve for its own reasons is not the peer's fault.
 *
 * Answers on a stream per request are one frame; a refusal is an empty frame followed by a frame
 * holding the refusal (sessions.ts: `encodeRefusal`), so the requester gets a typed error
 * (`OverBudgetError` when it asked for more than its byte budget).
 */
import { TopicValidatorResult, type Message } from '@libp2p/gossipsub'
import { lpStream } from '@libp2p/utils'
import type { PeerId, Stream } from '@libp2p/interface'
import { describeError } from '../core/errors.ts'
import { systemClock, type Clock } from '../core/clock.ts'
import { silentLogger, type Logger } from '../core/logger.ts'
import {
  combineVerdicts,
  OverBudgetError,
  TransportError,
  type GossipHandler,
  type GossipVerdict,
  type HandleOptions,
  type PeerTransport,
  type RequestHandler,
  type RequestOptions,
} from '../core/transport.ts'
import { didFromPeerId, peerIdFromDid } from '../identity/peer-id.ts'
import { PeerBudgets } from '../core/budget.ts'
import { BAN_MS, FRAME_READ_OPTIONS, PENALTY_LIMIT, REQUEST_TIMEOUT_MS, gossipTopic } from './constants.ts'
import type { DonghaeHost } from './host.ts'
import { PenaltyScores } from './penalties.ts'
import { frameGossip, unframeGossip } from './gossip.ts'
import { SessionPool, blamesRequest, decodeRefusal, encodeRefusal, isPeerFault, serveSession } from './sessions.ts'

const RESULT: Record<GossipVerdict, TopicValidatorResult> = {
  accept: TopicValidatorResult.Accept,
  ignore: TopicValidatorResult.Ignore,
  reject: TopicValidatorResult.Reject,
}

function didOf(peer: PeerId): string | undefined {
  try {
    return didFromPeerId(peer)
  } catch {
    return undefined
  }
}

export class Libp2pTransport implements PeerTransport {
  readonly self: string
  readonly #host: DonghaeHost
  readonly #chainId: string
  readonly #log: Logger
  readonly #handlers = new Map<string, Set<GossipHandler>>()
  readonly #clock: Clock
  readonly #penalties: PenaltyScores
  readonly #banned = new Map<string, number>()
  readonly #onConnect: (evt: CustomEvent<PeerId>) => void
  readonly #sessions: SessionPool

  constructor(host: DonghaeHost, options: { chainId: string; logger?: Logger; clock?: Clock }) {
    this.#host = host
    this.#chainId = options.chainId
    this.#clock = options.clock ?? systemClock
    this.#penalties = new PenaltyScores({ now: () => this.#clock.now() })
    this.self = didFromPeerId(host.peerId)
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:net:transport')
    this.#sessions = new SessionPool(host)
    this.#onConnect = (evt) => {
      if (this.#isBanned(evt.detail.toString())) void this.#host.hangUp(evt.detail).catch(() => {})
    }
  }

  /**
   * Starts refusing banned peers: the host's connection gate refuses their connections both
   * ways, and one that still gets through (a host without a gate) is hung up on. Topics are
   * joined as they are subscribed to.
   */
  start(): void {
    if (this.#host.gate !== undefined) this.#host.gate.deny = (peerId) => this.#isBanned(peerId)
    this.#host.addEventListener('peer:connect', this.#onConnect as never)
  }

  stop(): void {
    this.#sessions.close()
    if (this.#host.gate !== undefined) this.#host.gate.deny = () => false
    this.#host.removeEventListener('peer:connect', this.#onConnect as never)
    for (const topic of [...this.#handlers.keys()]) this.#leave(topic)
  }

  publish(topic: string, data: Uint8Array): void {
    this.#host.services.pubsub.publish(gossipTopic(this.#chainId, topic), frameGossip(data)).catch((err: unknown) => {
      this.#log.debug({ topic, err: describeError(err) }, 'publish failed')
    })
  }

  subscribe(topic: string, handler: GossipHandler): () => void {
    let set = this.#handlers.get(topic)
    if (set === undefined) {
      set = new Set()
      this.#handlers.set(topic, set)
      this.#join(topic, set)
    }
    set.add(handler)
    return () => {
      set.delete(handler)
      if (set.size === 0 && this.#handlers.get(topic) === set) this.#leave(topic)
    }
  }

  /** Installs the topic's validator (which runs its handlers) and subscribes on gossipsub. */
  #join(topic: string, handlers: ReadonlySet<GossipHandler>): void {
    const pubsub = this.#host.services.pubsub
    const name = gossipTopic(this.#chainId, topic)
    pubsub.topicValidators.set(name, async (peer: PeerId, message: Message) => {
      const from = didOf(peer) ?? peer.toString()
      const payload = unframeGossip(message.data)
      if (payload === undefined) {
        this.penalize(from, `unframed ${topic} gossip`)
        return TopicValidatorResult.Reject
      }
      const verdicts = await Promise.all(
        [...handlers].map(async (handler) => {
          try {
            return await handler(payload, from)
          } catch (err) {
            this.#log.warn({ topic, err: describeError(err) }, 'gossip handler failed')
            return 'ignore' as const
          }
        }),
      )
      const verdict = combineVerdicts(verdicts)
      // Honest peers validate before forwarding, so an invalid message is the fault of the peer that sent it.
      if (verdict === 'reject') this.penalize(from, `rejected ${topic} gossip`)
      return RESULT[verdict]
    })
    pubsub.subscribe(name)
  }

  #leave(topic: string): void {
    const pubsub = this.#host.services.pubsub
    const name = gossipTopic(this.#chainId, topic)
    this.#handlers.delete(topic)
    pubsub.unsubscribe(name)
    pubsub.topicValidators.delete(name)
  }

  async request(peer: string, protocol: string, data: Uint8Array, options: RequestOptions = {}): Promise<Uint8Array> {
    let peerId: PeerId
    try {
      peerId = peerIdFromDid(peer)
    } catch (err) {
      throw new TransportError(`cannot address ${peer}: ${describeError(err)}`, { cause: err })
    }
    const { signal, clear } = deadline(REQUEST_TIMEOUT_MS, options.signal)
    let stream: Stream | undefined
    try {
      if (options.session === true)
        return await this.#sessions.request(peerId, protocol, data, signal, options.onProgress)
      stream = await this.#host.dialProtocol(peerId, protocol, { signal })
      const lp = lpStream(stream, { ...FRAME_READ_OPTIONS })
      await lp.write(data, { signal })
      const answer = (await lp.read({ signal })).subarray()
      if (answer.byteLength === 0) throw decodeRefusal((await lp.read({ signal })).subarray())
      await stream.close({ signal }).catch(() => {})
      return answer
    } catch (err) {
      // Given up (timeout, cancel) or failed: reset the stream so the serving side stops at once.
      stream?.abort(err instanceof Error ? err : new Error(String(err)))
      if (err instanceof TransportError) throw err
      throw new TransportError(`request ${protocol} to ${peer} failed: ${describeError(err)}`, { cause: err })
    } finally {
      clear()
    }
  }

  handle(protocol: string, handler: RequestHandler, options: HandleOptions = {}): void {
    const budgets =
      options.budget === undefined
        ? undefined
        : new PeerBudgets({ amount: options.budget.bytes, perMs: options.budget.perMs })
    void this.#host.handle(
      protocol,
      async (stream, connection) => {
        const from = didOf(connection.remotePeer) ?? connection.remotePeer.toString()
        if (options.session === true) {
          await serveSession(stream, from, handler, {
            onInvalid: (reason) => this.penalize(from, `bad ${protocol} session: ${reason}`),
            log: this.#log,
            ...(budgets === undefined ? {} : { budgets }),
          })
          return
        }
        const { signal, clear } = deadline(REQUEST_TIMEOUT_MS)
        const lp = lpStream(stream, { ...FRAME_READ_OPTIONS })
        const refuse = async (err: unknown): Promise<void> => {
          await lp.write(new Uint8Array(0), { signal })
          await lp.write(encodeRefusal(err), { signal })
          await stream.close({ signal })
        }
        try {
          const request = await lp.read({ signal })
          if (budgets !== undefined && budgets.available(from) <= 0) {
            await refuse(
              new OverBudgetError(`over the byte budget of ${protocol}; retry in ${budgets.waitMs(from)} ms`),
            )
            return
          }
          let answer: Uint8Array
          try {
            answer = await handler(request.subarray(), from)
          } catch (err) {
            if (blamesRequest(err)) throw err
            await refuse(err) // this node could not serve it: not the peer's fault
            return
          }
          budgets?.charge(from, answer.byteLength)
          await lp.write(answer, { signal })
          await stream.close({ signal })
        } catch (err) {
          // Timeouts on this side, and a peer that gave up or went away, are not penalized.
          if (isPeerFault(err)) this.penalize(from, `bad ${protocol} request: ${describeError(err)}`)
          stream.abort(err instanceof Error ? err : new Error(String(err)))
        } finally {
          clear()
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

  #isBanned(peerId: string): boolean {
    const until = this.#banned.get(peerId)
    return until !== undefined && until > this.#clock.now()
  }

  /** Whether `peer` (a DID) is banned now. */
  isBanned(peer: string): boolean {
    try {
      return this.#isBanned(peerIdFromDid(peer).toString())
    } catch {
      return false
    }
  }

  /** A peer's current penalty score (it leaks away over time). */
  penaltyScore(peer: string): number {
    return this.#penalties.score(peer)
  }

  penalize(peer: string, reason: string): void {
    const score = this.#penalties.add(peer)
    this.#log.debug({ peer, reason, score }, 'peer penalized')
    if (score < PENALTY_LIMIT) return
    this.#penalties.clear(peer)
    let peerId: PeerId
    try {
      peerId = peerIdFromDid(peer)
    } catch {
      return
    }
    for (const [id, until] of this.#banned) if (until <= this.#clock.now()) this.#banned.delete(id)
    this.#banned.set(peerId.toString(), this.#clock.now() + BAN_MS)
    this.#log.warn({ peer, reason }, 'peer disconnected for repeated invalid data')
    void this.#host.hangUp(peerId).catch(() => {})
  }
}

/**
 * A signal that aborts after `ms` (or with `outer`), and a `clear` that stops its timer.
 * `AbortSignal.timeout` has no way to stop: its timer fired after every request, answered or
 * not, and built a DOMException with a stack trace each time (0.7 s of the inference bench
 * gateway's main thread in 2.5 minutes; docs/performance.md, "Audits that asked the silent").
 */
function deadline(ms: number, outer?: AbortSignal): { signal: AbortSignal; clear(): void } {
  const controller = new AbortController()
  const timer = setTimeout(
    () => controller.abort(new DOMException(`the operation ran past ${ms} ms`, 'TimeoutError')),
    ms,
  )
  timer.unref()
  return {
    signal: outer === undefined ? controller.signal : AbortSignal.any([outer, controller.signal]),
    clear: () => clearTimeout(timer),
  }
}
