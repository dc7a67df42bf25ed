/**
 * WebRTC data channels in the node (issue 13, part 4) on node-datachannel (libdatachannel).
 *
 * Flow (non-trickle: each side gathers all its candidates before its SDP is signed):
 *
 *   offerer                                            answerer
 *   WebRtcOfferer.createOffer(targetDid)
 *     PeerConnection + data channel "donghae", gather
 *     signOffer -> SignedOffer  ---- POST /receive-offer ---->  verifyOffer (no WebRTC yet)
 *                                                           WebRtcAnswerer.answer(verified)
 *                                                             PeerConnection, setRemoteDescription,
 *                                                             gather, signAnswer
 *   PendingOffer.accept(answer) <---- response body --------  SignedAnswer
 *     verifyAnswer (DID, signature, nonce, freshness)
 *     setRemoteDescription, wait for the channel to open
 *     remoteFingerprint() must equal the signed answer's      on open: remoteFingerprint() must equal
 *     fingerprint (else closed, FingerprintMismatchError)     the signed offer's, then onConnection
 *
 * Certificate binding: `PeerConnection.remoteFingerprint()` reports the digest of the certificate
 * the DTLS handshake actually presented (checked: with a tampered SDP fingerprint and the stack's
 * own check off, it still reports the real certificate). The answerer keeps libdatachannel's own
 * check (the offer SDP is applied before any handshake) and compares again on open; the offerer
 * turns the stack's check off and relies on the explicit comparison in `accept`, which runs
 * before the channel is handed out, because the answerer's handshake can arrive before the signed
 * answer does (see `createOffer`).
 *
 * Ordering: the answerer applies the offer without its candidates and adds them only after
 * `remoteCandidateDelayMs` (300 ms), so the offerer's checks normally open the path once it holds
 * the answer. Without this, libdatachannel <-> libdatachannel failed about half the loopback runs
 * ("Got a remote candidate without ICE transport": the early DTLS handshake failed and tore the
 * transport down before the answer was applied).
 *
 * Limits: the answerer holds at most `maxConnections` connections (pending ones included) and
 * refuses more with `TooManyConnectionsError` (503); a connection that does not open within
 * `connectTimeoutMs`, or carries no message for `idleTimeoutMs`, is closed; `stop()` closes all.
 * STUN servers are configurable (`iceServers`, e.g. `stun:stun.example.org:3478`); none by
 * default, which gives host candidates only (loopback/LAN).
 */
import type { DataChannel, PeerConnection, RtcConfig } from 'node-datachannel'
import { systemClock, type Clock } from '../../core/clock.ts'
import { AbortError, DonghaeError } from '../../core/errors.ts'
import { didFromEd25519PublicKey } from '../../identity/did-key.ts'
import { nodeDataChannel } from './datachannel.ts'
import {
  checkNegotiatedFingerprint,
  fingerprintOf,
  signAnswer,
  signOffer,
  verifyAnswer,
  type SignalSigner,
  type SignedAnswer,
  type SignedOffer,
  type VerifiedAnswer,
  type VerifiedOffer,
} from './signal.ts'

/** The label of the one data channel a Donghae WebRTC connection carries. */
export const CHANNEL_LABEL = 'donghae'
export const DEFAULT_GATHER_TIMEOUT_MS = 5_000
export const DEFAULT_CONNECT_TIMEOUT_MS = 15_000
export const DEFAULT_IDLE_TIMEOUT_MS = 5 * 60_000
export const DEFAULT_MAX_CONNECTIONS = 32
export const DEFAULT_REMOTE_CANDIDATE_DELAY_MS = 300

/** Creates PeerConnections; injectable so tests can count them and fakes can stand in. */
export type PeerConnectionFactory = (name: string, config: RtcConfig) => PeerConnection

export const defaultPeerConnectionFactory: PeerConnectionFactory = (name, config) =>
  new (nodeDataChannel().PeerConnection)(name, config)

/** The answerer is at its connection limit. */
export class TooManyConnectionsError extends DonghaeError {
  static override readonly code: string = 'WEBRTC_TOO_MANY_CONNECTIONS'
  override name = 'TooManyConnectionsError'
  readonly statusCode = 503
}

/** ICE gathering, connection or channel setup failed or timed out. */
export class WebRtcConnectError extends DonghaeError {
  static override readonly code: string = 'WEBRTC_CONNECT_FAILED'
  override name = 'WebRtcConnectError'
  readonly statusCode = 502
}

/**
 * A data channel as the channel protocol sees it: text messages, close notification, buffering.
 * Multiple `onMessage`/`onClosed` listeners are allowed (node-datachannel keeps only one).
 */
export interface MessageChannel {
  /**
   * Sends one text message, or queues it behind those not yet sent (`bufferedAmount` grows).
   * False only when the message was not taken: the channel is closed, or the message is too large.
   */
  send(text: string): boolean
  onMessage(listener: (text: string) => void): void
  onClosed(listener: () => void): void
  isOpen(): boolean
  bufferedAmount(): number
  maxMessageSize(): number
  close(): void
}

/** An open, DID-authenticated data channel connection. */
export interface WebRtcConnection {
  readonly id: number
  /** The remote DID, proven by its signature over the SDP whose certificate DTLS negotiated. */
  readonly peerDid: string
  readonly channel: MessageChannel
  /** Resolves once the connection is closed, for whatever reason. */
  readonly closed: Promise<void>
  close(): void
}

export interface WebRtcPeerOptions {
  /** The node's identity key: signs its SDPs. */
  key: SignalSigner
  /** STUN servers (`stun:host:port`); default none (host candidates only). */
  iceServers?: string[]
  factory?: PeerConnectionFactory
  clock?: Clock
  gatherTimeoutMs?: number
  connectTimeoutMs?: number
  idleTimeoutMs?: number
  /** libdatachannel options passed through (e.g. portRangeBegin/End, bindAddress). */
  rtcConfig?: Omit<RtcConfig, 'iceServers'>
}

interface ConnectionState {
  pc: PeerConnection
  closed: boolean
  resolveClosed: () => void
  closedPromise: Promise<void>
  cancelTimer: () => void
}

/** A connection's shared plumbing: close once, idle timer, channel wrapper. */
class Connections {
  readonly #clock: Clock
  readonly #idleTimeoutMs: number
  readonly #live = new Map<number, ConnectionState>()
  #nextId = 1

  constructor(clock: Clock, idleTimeoutMs: number) {
    this.#clock = clock
    this.#idleTimeoutMs = idleTimeoutMs
  }

  get size(): number {
    return this.#live.size
  }

  add(pc: PeerConnection, connectTimeoutMs: number): { id: number; state: ConnectionState } {
    const id = this.#nextId++
    let resolveClosed = (): void => {}
    const closedPromise = new Promise<void>((resolve) => (resolveClosed = resolve))
    const state: ConnectionState = { pc, closed: false, resolveClosed, closedPromise, cancelTimer: () => {} }
    this.#live.set(id, state)
    state.cancelTimer = this.#clock.setTimer(connectTimeoutMs, () => this.close(id))
    pc.onStateChange((s) => {
      if (s === 'failed' || s === 'closed' || s === 'disconnected') this.close(id)
    })
    return { id, state }
  }

  close(id: number): void {
    const state = this.#live.get(id)
    if (state === undefined || state.closed) return
    state.closed = true
    this.#live.delete(id)
    state.cancelTimer()
    try {
      state.pc.close()
    } catch {
      // already closed
    }
    state.resolveClosed()
  }

  closeAll(): void {
    for (const id of [...this.#live.keys()]) this.close(id)
  }

  /** Wraps an open data channel: multiplexed listeners and an idle timer reset by every message. */
  open(id: number, state: ConnectionState, dc: DataChannel, peerDid: string): WebRtcConnection {
    const messageListeners: ((text: string) => void)[] = []
    const closeListeners: (() => void)[] = []
    const touch = (): void => {
      state.cancelTimer()
      if (!state.closed) state.cancelTimer = this.#clock.setTimer(this.#idleTimeoutMs, () => this.close(id))
    }
    touch()
    dc.onMessage((msg) => {
      touch()
      const text = typeof msg === 'string' ? msg : Buffer.from(msg as ArrayBuffer).toString('utf8')
      for (const listener of messageListeners) listener(text)
    })
    dc.onClosed(() => this.close(id))
    void state.closedPromise.then(() => {
      for (const listener of closeListeners) listener()
    })
    const channel: MessageChannel = {
      send: (text) => {
        if (state.closed) return false
        touch()
        try {
          // libdatachannel answers false when it queued the message rather than sending it at once:
          // taken all the same (it throws when closed or the message is too large)
          dc.sendMessage(text)
          return true
        } catch {
          return false
        }
      },
      onMessage: (listener) => void messageListeners.push(listener),
      onClosed: (listener) => {
        if (state.closed) queueMicrotask(listener)
        else closeListeners.push(listener)
      },
      isOpen: () => !state.closed && dc.isOpen(),
      bufferedAmount: () => (state.closed ? 0 : dc.bufferedAmount()),
      maxMessageSize: () => (state.closed ? 0 : dc.maxMessageSize()),
      close: () => this.close(id),
    }
    return { id, peerDid, channel, closed: state.closedPromise, close: () => this.close(id) }
  }
}

function rtcConfig(options: WebRtcPeerOptions): RtcConfig {
  return { ...options.rtcConfig, iceServers: options.iceServers ?? [] }
}

/** Resolves with the local SDP once ICE gathering completes (bounded by `timeoutMs`). */
function gathered(pc: PeerConnection, clock: Clock, timeoutMs: number, start: () => void): Promise<string> {
  return new Promise((resolve, reject) => {
    let done = false
    const finish = (): void => {
      if (done) return
      done = true
      cancel()
      const sdp = pc.localDescription()?.sdp
      if (sdp === undefined || !/\na=candidate:/.test(sdp)) {
        reject(new WebRtcConnectError('ICE gathering produced no candidate'))
      } else {
        resolve(sdp)
      }
    }
    // Register before starting: libdatachannel drops events that fire before a callback is set.
    pc.onGatheringStateChange((s) => {
      if (s === 'complete') finish()
    })
    const cancel = clock.setTimer(timeoutMs, finish)
    try {
      start()
    } catch (err) {
      done = true
      cancel()
      reject(new WebRtcConnectError('the SDP was refused by the WebRTC stack', { cause: err }))
    }
  })
}

/** An SDP without its `a=candidate` / `a=end-of-candidates` lines, and the candidates with their mids. */
export function splitCandidates(sdp: string): { sdp: string; candidates: { candidate: string; mid: string }[] } {
  const kept: string[] = []
  const candidates: { candidate: string; mid: string }[] = []
  const pending: string[] = []
  let mid = ''
  let inMedia = false
  const flush = (): void => {
    for (const candidate of pending.splice(0)) candidates.push({ candidate, mid })
  }
  for (const line of sdp.split(/\r?\n/)) {
    if (line.startsWith('m=')) {
      if (inMedia) flush()
      inMedia = true
      mid = ''
    }
    if (line.startsWith('a=mid:')) mid = line.slice('a=mid:'.length).trim()
    if (line.startsWith('a=candidate:')) pending.push(line.slice(2).trim())
    else if (!line.startsWith('a=end-of-candidates')) kept.push(line)
  }
  flush()
  return { sdp: kept.join('\r\n'), candidates }
}

/** An offer answered by `WebRtcAnswerer.open`: the signed answer and a handle on its connection. */
export interface AnsweredOffer {
  /** The connection's id; `onConnection` hands out the connection with this same id once it opens. */
  readonly id: number
  readonly answer: SignedAnswer
  /** Adds a trickled remote candidate (`candidate:...` and its media id); false when the stack refused it. */
  addRemoteCandidate(candidate: string, mid: string): boolean
  /** Resolves once the connection is closed, for whatever reason. */
  readonly closed: Promise<void>
  close(): void
}

export interface WebRtcAnswererOptions extends WebRtcPeerOptions {
  maxConnections?: number
  /** How long after answering the offer's own candidates are added (see `answer`). @default 300 */
  remoteCandidateDelayMs?: number
  /** Called with each connection once its channel is open and the offerer's certificate checked. */
  onConnection: (connection: WebRtcConnection) => void
}

/** Answers verified offers: one PeerConnection per offer, bounded, all closed on `stop()`. */
export class WebRtcAnswerer {
  readonly did: string
  readonly #options: WebRtcAnswererOptions
  readonly #factory: PeerConnectionFactory
  readonly #clock: Clock
  readonly #connections: Connections
  readonly #maxConnections: number
  #stopped = false

  constructor(options: WebRtcAnswererOptions) {
    this.#options = options
    this.did = didFromEd25519PublicKey(options.key.publicKey)
    this.#factory = options.factory ?? defaultPeerConnectionFactory
    this.#clock = options.clock ?? systemClock
    this.#maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS
    this.#connections = new Connections(this.#clock, options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS)
  }

  /** Connections held now, pending ones included. */
  get size(): number {
    return this.#connections.size
  }

  /**
   * Answers an offer that `verifyOffer` accepted (only pass verified offers: this creates the
   * PeerConnection and starts ICE). Returns the signed answer for the offerer.
   */
  async answer(offer: VerifiedOffer): Promise<SignedAnswer> {
    return (await this.open(offer)).answer
  }

  /**
   * `answer`, plus a handle on the connection from the moment it is answered (its id, trickled
   * candidates, close), for a caller that tracks sessions (the node's signalling routes).
   */
  async open(offer: VerifiedOffer): Promise<AnsweredOffer> {
    if (this.#stopped) throw new AbortError('the WebRTC answerer is stopped')
    if (this.#connections.size >= this.#maxConnections) {
      throw new TooManyConnectionsError(`this node holds its maximum of ${this.#maxConnections} WebRTC connections`)
    }
    const pc = this.#factory(`answer-${offer.nonce.slice(0, 8)}`, rtcConfig(this.#options))
    const { id, state } = this.#connections.add(pc, this.#options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS)
    let channelSeen = false
    pc.onDataChannel((dc) => {
      if (channelSeen || dc.getLabel() !== CHANNEL_LABEL) {
        dc.close()
        return
      }
      channelSeen = true
      const ready = (): void => {
        if (state.closed) return
        try {
          checkNegotiatedFingerprint(offer, pc.remoteFingerprint())
        } catch {
          this.#connections.close(id)
          return
        }
        this.#options.onConnection(this.#connections.open(id, state, dc, offer.did))
      }
      if (dc.isOpen()) ready()
      else dc.onOpen(ready)
    })
    // Apply the offer without its candidates, so that our connectivity checks (and the DTLS
    // handshake right behind them) do not reach the offerer before it holds our answer: the
    // offerer's own checks reach us first and we answer them (peer-reflexive). The offer's
    // candidates follow after `remoteCandidateDelayMs`, for paths only our checks can open (NAT).
    const { sdp: bare, candidates } = splitCandidates(offer.sdp)
    let sdp: string
    try {
      sdp = await gathered(pc, this.#clock, this.#options.gatherTimeoutMs ?? DEFAULT_GATHER_TIMEOUT_MS, () =>
        pc.setRemoteDescription(bare, 'offer'),
      )
    } catch (err) {
      this.#connections.close(id)
      throw err
    }
    if (state.closed) throw new WebRtcConnectError('the connection closed while gathering')
    this.#clock.setTimer(this.#options.remoteCandidateDelayMs ?? DEFAULT_REMOTE_CANDIDATE_DELAY_MS, () => {
      if (state.closed) return
      for (const { candidate, mid } of candidates) {
        try {
          pc.addRemoteCandidate(candidate, mid)
        } catch {
          // a candidate the stack cannot use (another address family, an unknown mid): skip it
        }
      }
    })
    return {
      id,
      answer: signAnswer(this.#options.key, offer, { sdp, timestamp: this.#clock.now() }),
      addRemoteCandidate: (candidate, mid) => {
        if (state.closed) return false
        try {
          pc.addRemoteCandidate(candidate, mid)
          return true
        } catch {
          return false // a candidate the stack cannot use (another address family, an unknown mid)
        }
      },
      closed: state.closedPromise,
      close: () => this.#connections.close(id),
    }
  }

  /** Closes every connection and refuses further offers. */
  stop(): void {
    this.#stopped = true
    this.#connections.closeAll()
  }
}

/** An offer made and signed, waiting for its answer. */
export interface PendingOffer {
  readonly offer: SignedOffer
  /** Verifies `answer`, applies it and resolves once the channel is open and bound to the DID. */
  accept(answer: unknown): Promise<WebRtcConnection>
  cancel(): void
}

/** Calls other nodes: makes signed offers and opens the data channel once a signed answer arrives. */
export class WebRtcOfferer {
  readonly did: string
  readonly #options: WebRtcPeerOptions
  readonly #factory: PeerConnectionFactory
  readonly #clock: Clock
  readonly #connections: Connections

  constructor(options: WebRtcPeerOptions) {
    this.#options = options
    this.did = didFromEd25519PublicKey(options.key.publicKey)
    this.#factory = options.factory ?? defaultPeerConnectionFactory
    this.#clock = options.clock ?? systemClock
    this.#connections = new Connections(this.#clock, options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS)
  }

  get size(): number {
    return this.#connections.size
  }

  /** Creates a PeerConnection and data channel for `target`, gathers, and signs the offer. */
  async createOffer(target: string): Promise<PendingOffer> {
    // The answerer starts ICE and DTLS as soon as it has the offer, often before its signed answer
    // reaches us; libdatachannel then fails the handshake for want of a remote fingerprint (seen
    // in about half the loopback runs). So the offerer's stack accepts the certificate and we
    // check it ourselves against the signed answer before the channel is handed out (`accept`).
    const config = { ...rtcConfig(this.#options), disableFingerprintVerification: true }
    const pc = this.#factory(`offer-${target.slice(-8)}`, config)
    const connectTimeoutMs = this.#options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS
    const { id, state } = this.#connections.add(pc, connectTimeoutMs)
    let dc: DataChannel | undefined
    let sdp: string
    try {
      sdp = await gathered(pc, this.#clock, this.#options.gatherTimeoutMs ?? DEFAULT_GATHER_TIMEOUT_MS, () => {
        dc = pc.createDataChannel(CHANNEL_LABEL)
      })
      fingerprintOf(sdp)
    } catch (err) {
      this.#connections.close(id)
      throw err
    }
    const channel = dc as DataChannel
    const offer = signOffer(this.#options.key, { sdp, target, timestamp: this.#clock.now() })
    let opened = channel.isOpen()
    const openWaiters: (() => void)[] = []
    channel.onOpen(() => {
      opened = true
      for (const waiter of openWaiters.splice(0)) waiter()
    })
    let accepted = false
    return {
      offer,
      cancel: () => this.#connections.close(id),
      accept: async (answer: unknown): Promise<WebRtcConnection> => {
        if (accepted) throw new WebRtcConnectError('this offer was already answered')
        accepted = true
        let verified: VerifiedAnswer
        try {
          verified = verifyAnswer(answer, offer, { expectedDid: target, now: this.#clock.now() })
          if (state.closed) throw new WebRtcConnectError('the offer expired before its answer arrived')
          pc.setRemoteDescription(verified.sdp, 'answer')
        } catch (err) {
          this.#connections.close(id)
          if (err instanceof DonghaeError) throw err
          throw new WebRtcConnectError('the answer SDP was refused by the WebRTC stack', { cause: err })
        }
        await new Promise<void>((resolve, reject) => {
          if (opened) return resolve()
          openWaiters.push(resolve)
          void state.closedPromise.then(() =>
            reject(new WebRtcConnectError('the connection failed or timed out before the channel opened')),
          )
        })
        try {
          checkNegotiatedFingerprint(verified, pc.remoteFingerprint())
        } catch (err) {
          this.#connections.close(id)
          throw err
        }
        return this.#connections.open(id, state, channel, verified.did)
      },
    }
  }

  /** Offers to `target`, sends the offer with `send` (e.g. an HTTP POST) and accepts the reply. */
  async connect(target: string, send: (offer: SignedOffer) => Promise<unknown>): Promise<WebRtcConnection> {
    const pending = await this.createOffer(target)
    let answer: unknown
    try {
      answer = await send(pending.offer)
    } catch (err) {
      pending.cancel()
      throw err
    }
    return pending.accept(answer)
  }

  stop(): void {
    this.#connections.closeAll()
  }
}
