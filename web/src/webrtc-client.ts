/**
 * The browser's side of Donghae's WebRTC data channels: the offerer of src/net/webrtc/signal.ts's
 * signed signalling, and a client of src/net/webrtc/channel.ts's request/response frames. No
 * dependency: WebCrypto (Ed25519, SHA-256) signs and verifies, and the one dag-cbor shape that is
 * signed (a flat map of strings and integers) is encoded here, byte for byte as @ipld/dag-cbor
 * encodes it (test/webrtc-client.test.ts proves both against the node's own code). It also runs
 * under Node 24 (globalThis.crypto; any RTCPeerConnection can be injected).
 *
 *   connect({ endpoint, did })
 *     RTCPeerConnection + data channel 'donghae', ICE gathered completely (non-trickle)
 *     signOffer (this tab's Ed25519 key, made once per tab)  ── POST <endpoint>/v1/webrtc/offer ──▶
 *     verifyAnswer: the DID the directory named, the nonce echoed, fresh, a data-channel SDP, signed
 *     setRemoteDescription(the signed SDP); wait for the channel to open
 *     the DTLS certificate the handshake saw (RTCDtlsTransport.getRemoteCertificates, else
 *     getStats' remote certificate) must be the one whose fingerprint the answer signed
 *
 * What binds the channel to the DID: the browser's DTLS stack refuses a certificate whose digest
 * is not the `a=fingerprint` of the remote description (RFC 8122, always on), and that description
 * is exactly the SDP the DID's key signed. The explicit comparison after opening repeats the check
 * where the browser exposes the certificate; `certificateCheck` says which check ran.
 */
import type { SignedAnswer, SignedOffer } from '../../src/net/webrtc/signal.ts'
import type { WebRtcChatAnswer, WebRtcChatRequest, WebRtcInfo } from '../../src/api/webrtc-api.ts'

export type { SignedAnswer, SignedOffer }

export const OFFER_SIGNING_KIND = 'webrtc.offer'
export const ANSWER_SIGNING_KIND = 'webrtc.answer'
export const CHANNEL_LABEL = 'donghae'
export const OFFER_PATH = '/v1/webrtc/offer'
/** Accepted clock difference between the answer's timestamp and this clock. */
export const MAX_SKEW_MS = 30_000
export const MAX_SDP_BYTES = 16 * 1024
export const MAX_MESSAGE_BYTES = 64 * 1024
export const DEFAULT_GATHER_TIMEOUT_MS = 5_000
export const DEFAULT_OPEN_TIMEOUT_MS = 15_000
export const DEFAULT_REQUEST_TIMEOUT_MS = 120_000
const NONCE_PATTERN = /^[0-9a-f]{32}$/
const SIGNATURE_PATTERN = /^[0-9a-f]{128}$/
const FINGERPRINT_VALUE = /^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/
const ED25519_PREFIX = [0xed, 0x01]

/**
 * Anything that went wrong, with a `code`: the node's own code for a refusal it sent
 * (`SIGNAL_STALE`, …), the same codes for what this side refuses in an answer, `CONNECT_FAILED`,
 * `FINGERPRINT_MISMATCH`, or a channel error (`CLOSED`, `TIMEOUT`, `ABORTED`, the server's code).
 */
export class WebRtcClientError extends Error {
  override name = 'WebRtcClientError'
  readonly code: string

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

// ---------------------------------------------------------------------------------------------
// Bytes, base58btc, did:key

const encoder = new TextEncoder()

export function toHex(bytes: Uint8Array): string {
  let out = ''
  for (const byte of bytes) out += byte.toString(16).padStart(2, '0')
  return out
}

export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new TypeError('not a hex string of whole bytes')
  const out = new Uint8Array(hex.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16)
  return out
}

const BASE58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

export function base58btcEncode(bytes: Uint8Array): string {
  const digits: number[] = [] // base-58 digits, least significant first
  for (const byte of bytes) {
    let carry = byte
    for (let i = 0; i < digits.length; i++) {
      carry += (digits[i] as number) * 256
      digits[i] = carry % 58
      carry = Math.floor(carry / 58)
    }
    for (; carry > 0; carry = Math.floor(carry / 58)) digits.push(carry % 58)
  }
  let zeros = 0
  while (zeros < bytes.length && bytes[zeros] === 0) zeros++
  return (
    '1'.repeat(zeros) +
    digits
      .reverse()
      .map((d) => BASE58[d] as string)
      .join('')
  )
}

export function base58btcDecode(text: string): Uint8Array {
  const bytes: number[] = [] // least significant first
  for (const char of text) {
    let carry = BASE58.indexOf(char)
    if (carry < 0) throw new TypeError('not base58btc')
    for (let i = 0; i < bytes.length; i++) {
      carry += (bytes[i] as number) * 58
      bytes[i] = carry & 0xff
      carry >>= 8
    }
    for (; carry > 0; carry >>= 8) bytes.push(carry & 0xff)
  }
  let zeros = 0
  while (zeros < text.length && text[zeros] === '1') zeros++
  return Uint8Array.from([...new Array<number>(zeros).fill(0), ...bytes.reverse()])
}

/** The did:key of a raw 32-byte Ed25519 public key (multicodec 0xed, base58btc). */
export function didFromPublicKey(publicKey: Uint8Array): string {
  if (publicKey.length !== 32) throw new TypeError('an Ed25519 public key is 32 bytes')
  return `did:key:z${base58btcEncode(Uint8Array.from([...ED25519_PREFIX, ...publicKey]))}`
}

/** The raw Ed25519 public key of a did:key; throws for anything else (the curve is checked on import). */
export function publicKeyFromDid(did: string): Uint8Array {
  if (typeof did !== 'string' || did.length > 256 || !did.startsWith('did:key:z')) {
    throw new WebRtcClientError('SIGNAL_MALFORMED', 'not an Ed25519 did:key')
  }
  let bytes: Uint8Array
  try {
    bytes = base58btcDecode(did.slice('did:key:z'.length))
  } catch {
    throw new WebRtcClientError('SIGNAL_MALFORMED', 'the did:key is not base58btc')
  }
  if (bytes.length !== 34 || bytes[0] !== ED25519_PREFIX[0] || bytes[1] !== ED25519_PREFIX[1]) {
    throw new WebRtcClientError('SIGNAL_MALFORMED', 'not an Ed25519 did:key')
  }
  return bytes.slice(2)
}

// ---------------------------------------------------------------------------------------------
// dag-cbor of a flat map (the signed payloads)

function head(major: number, n: number): number[] {
  const m = major << 5
  if (n < 24) return [m | n]
  if (n < 0x100) return [m | 24, n]
  if (n < 0x10000) return [m | 25, n >> 8, n & 0xff]
  const u32 = (x: number): number[] => [x >>> 24, (x >>> 16) & 0xff, (x >>> 8) & 0xff, x & 0xff]
  if (n < 0x100000000) return [m | 26, ...u32(n)]
  return [m | 27, ...u32(Math.floor(n / 0x100000000)), ...u32(n >>> 0)]
}

function textItem(text: string): Uint8Array {
  const bytes = encoder.encode(text)
  return Uint8Array.from([...head(3, bytes.length), ...bytes])
}

/** dag-cbor's key order: shorter keys first, then bytewise. */
function keyOrder(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return a.length - b.length
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number)
  return 0
}

/**
 * The canonical dag-cbor of a map whose values are strings or non-negative safe integers: what
 * @ipld/dag-cbor's `encode` gives for it (the signed offer and answer payloads are such maps).
 */
export function encodeFlatMap(map: Readonly<Record<string, string | number>>): Uint8Array {
  const entries = Object.entries(map).map(([key, value]) => {
    if (typeof value === 'number' && !(Number.isSafeInteger(value) && value >= 0)) {
      throw new TypeError(`${key} must be a non-negative safe integer`)
    }
    const item = typeof value === 'number' ? Uint8Array.from(head(0, value)) : textItem(value)
    return { key: encoder.encode(key), item }
  })
  entries.sort((a, b) => keyOrder(a.key, b.key))
  const parts: Uint8Array[] = [Uint8Array.from(head(5, entries.length))]
  for (const { key, item } of entries) parts.push(Uint8Array.from([...head(3, key.length), ...key]), item)
  return concat(parts)
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// WebCrypto: the tab's identity, domain-separated signatures

/** The WebCrypto calls used here (the DOM's and Node's `crypto.subtle` both fit). */
interface Subtle {
  generateKey(algorithm: { name: 'Ed25519' }, extractable: boolean, usages: string[]): Promise<unknown>
  exportKey(format: 'raw', key: unknown): Promise<ArrayBuffer>
  importKey(
    format: 'raw',
    data: Uint8Array,
    algorithm: { name: 'Ed25519' },
    extractable: boolean,
    usages: string[],
  ): Promise<unknown>
  sign(algorithm: { name: 'Ed25519' }, key: unknown, data: Uint8Array): Promise<ArrayBuffer>
  verify(algorithm: { name: 'Ed25519' }, key: unknown, signature: Uint8Array, data: Uint8Array): Promise<boolean>
  digest(algorithm: 'SHA-256', data: Uint8Array): Promise<ArrayBuffer>
}

function subtle(): Subtle {
  const found = (globalThis as { crypto?: { subtle?: unknown } }).crypto?.subtle
  if (found === undefined)
    throw new WebRtcClientError('UNSUPPORTED', 'WebCrypto is unavailable (a secure context is needed)')
  return found as Subtle
}

function randomHex(bytes: number): string {
  return toHex(
    (globalThis as unknown as { crypto: { getRandomValues(a: Uint8Array): Uint8Array } }).crypto.getRandomValues(
      new Uint8Array(bytes),
    ),
  )
}

export async function sha256(...parts: Uint8Array[]): Promise<Uint8Array> {
  return new Uint8Array(await subtle().digest('SHA-256', concat(parts)))
}

/** core/signing.ts: the message signed for (kind, payload) is sha256("donghae/<kind>/v1" ‖ payload). */
export function signingDigest(kind: string, payload: Uint8Array): Promise<Uint8Array> {
  return sha256(encoder.encode(`donghae/${kind}/v1`), payload)
}

/** A signing identity: an Ed25519 key whose private half never leaves WebCrypto. */
export interface BrowserIdentity {
  readonly did: string
  readonly publicKey: Uint8Array
  sign(kind: string, payload: Uint8Array): Promise<Uint8Array>
}

/** A fresh Ed25519 identity (the private key is not extractable). */
export async function createIdentity(): Promise<BrowserIdentity> {
  const crypto = subtle()
  let pair: { publicKey: unknown; privateKey: unknown }
  try {
    pair = (await crypto.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])) as typeof pair
  } catch (err) {
    throw new WebRtcClientError('UNSUPPORTED', 'this browser has no Ed25519 in WebCrypto', { cause: err })
  }
  const publicKey = new Uint8Array(await crypto.exportKey('raw', pair.publicKey))
  return {
    did: didFromPublicKey(publicKey),
    publicKey,
    sign: async (kind, payload) =>
      new Uint8Array(await crypto.sign({ name: 'Ed25519' }, pair.privateKey, await signingDigest(kind, payload))),
  }
}

let tabIdentity: Promise<BrowserIdentity> | undefined

/** This tab's identity: made on first use, kept in memory only (a reload is a new DID). */
export function tabIdentityOnce(): Promise<BrowserIdentity> {
  tabIdentity ??= createIdentity().catch((err: unknown) => {
    tabIdentity = undefined
    throw err
  })
  return tabIdentity
}

async function verifySignature(
  did: string,
  kind: string,
  payload: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  const crypto = subtle()
  try {
    const key = await crypto.importKey('raw', publicKeyFromDid(did), { name: 'Ed25519' }, false, ['verify'])
    return await crypto.verify({ name: 'Ed25519' }, key, signature, await signingDigest(kind, payload))
  } catch {
    return false
  }
}

// ---------------------------------------------------------------------------------------------
// Signed offers and answers (src/net/webrtc/signal.ts)

/** Signs an offer of `sdp` to `target`, exactly as the node's `signOffer` does. */
export async function signOffer(
  identity: BrowserIdentity,
  fields: { sdp: string; target: string; timestamp: number; nonce?: string },
): Promise<SignedOffer> {
  const unsigned = {
    did: identity.did,
    sdp: fields.sdp,
    timestamp: fields.timestamp,
    nonce: fields.nonce ?? randomHex(16),
    target: fields.target,
  }
  const signature = await identity.sign(OFFER_SIGNING_KIND, encodeFlatMap(unsigned))
  return { ...unsigned, signature: toHex(signature) }
}

export interface VerifiedAnswer {
  did: string
  sdp: string
  timestamp: number
  nonce: string
  /** The answerer's DTLS certificate fingerprint (uppercase colon hex, sha-256). */
  fingerprint: string
}

function refuse(code: string, message: string): never {
  throw new WebRtcClientError(code, message)
}

/** The one sha-256 `a=fingerprint` of a data-channel-only SDP, uppercase (as signal.ts reads it). */
export function dataChannelFingerprint(sdp: string): string {
  if (encoder.encode(sdp).length > MAX_SDP_BYTES) refuse('SIGNAL_SDP_TOO_LARGE', 'the answer SDP is too large')
  const lines = sdp.split(/\r?\n/).filter((l) => l.length > 0)
  if (lines[0]?.trim() !== 'v=0') refuse('SIGNAL_BAD_SDP', 'the answer is not an SDP')
  const media = lines.filter((l) => l.startsWith('m='))
  if (
    media.length === 0 ||
    media.some((l) => !/^m=application \d{1,5} (UDP\/DTLS\/SCTP webrtc-datachannel|DTLS\/SCTP \d{1,5})\s*$/.test(l))
  ) {
    refuse('SIGNAL_BAD_SDP', 'the answer SDP is not data-channel only')
  }
  const found = new Set<string>()
  for (const line of lines) {
    if (!line.toLowerCase().startsWith('a=fingerprint:')) continue
    const match = /^a=fingerprint:sha-256 (\S+)$/i.exec(line.trim())
    const value = match?.[1]?.toUpperCase() ?? ''
    if (!FINGERPRINT_VALUE.test(value)) refuse('SIGNAL_BAD_SDP', 'only one sha-256 DTLS fingerprint is accepted')
    found.add(value)
  }
  if (found.size !== 1) refuse('SIGNAL_BAD_SDP', 'the answer SDP needs exactly one DTLS fingerprint')
  return [...found][0] as string
}

/**
 * Checks an untrusted answer to `offer`: from `expectedDid` (the DID the directory named), echoing
 * the offer's nonce, fresh, a data-channel SDP, and signed by that DID (`webrtc.answer`).
 */
export async function verifyAnswer(
  answer: unknown,
  offer: { nonce: string },
  options: { expectedDid: string; now: number; maxSkewMs?: number },
): Promise<VerifiedAnswer> {
  if (typeof answer !== 'object' || answer === null) refuse('SIGNAL_MALFORMED', 'the answer is not a JSON object')
  const { did, sdp, timestamp, nonce, signature } = answer as Record<string, unknown>
  if (typeof signature !== 'string' || signature === '') refuse('SIGNAL_UNSIGNED', 'the answer is not signed')
  if (typeof did !== 'string' || typeof sdp !== 'string' || typeof nonce !== 'string') {
    refuse('SIGNAL_MALFORMED', 'the answer lacks did, sdp or nonce')
  }
  if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp) || timestamp < 0) {
    refuse('SIGNAL_MALFORMED', 'the answer timestamp is not an integer')
  }
  if (!NONCE_PATTERN.test(nonce) || !SIGNATURE_PATTERN.test(signature))
    refuse('SIGNAL_MALFORMED', 'malformed nonce or signature')
  if (did !== options.expectedDid)
    refuse('SIGNAL_WRONG_PEER', `the answer comes from ${did}, not the DID the directory named`)
  if (nonce !== offer.nonce) refuse('SIGNAL_REPLAYED', 'the answer does not echo this offer’s nonce')
  const maxSkewMs = options.maxSkewMs ?? MAX_SKEW_MS
  if (Math.abs(timestamp - options.now) > maxSkewMs)
    refuse('SIGNAL_STALE', `the answer is more than ${maxSkewMs} ms from this clock`)
  const fingerprint = dataChannelFingerprint(sdp)
  const payload = encodeFlatMap({ did, nonce, sdp, timestamp })
  if (!(await verifySignature(did, ANSWER_SIGNING_KIND, payload, fromHex(signature)))) {
    refuse('SIGNAL_BAD_SIGNATURE', 'the answer signature does not verify for its DID')
  }
  return { did, sdp, timestamp, nonce, fingerprint }
}

// ---------------------------------------------------------------------------------------------
// The data channel protocol (src/net/webrtc/channel.ts), client side

/** What the client needs of an RTCDataChannel (the browser's, or a polyfill's). */
export interface DataChannelLike {
  readonly readyState: string
  readonly bufferedAmount: number
  send(data: string): void
  close(): void
  addEventListener(type: 'open' | 'close' | 'error', listener: () => void): void
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void
}

export interface RequestOptions {
  onProgress?: (body: unknown) => void
  signal?: AbortSignal
  timeoutMs?: number
}

interface Pending {
  resolve: (body: unknown) => void
  reject: (err: Error) => void
  onProgress: ((body: unknown) => void) | undefined
}

function parseFrame(text: unknown): Record<string, unknown> | undefined {
  if (typeof text !== 'string' || text.length > MAX_MESSAGE_BYTES) return undefined
  try {
    const value: unknown = JSON.parse(text)
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
    const id = (value as Record<string, unknown>)['id']
    return typeof id === 'number' && Number.isSafeInteger(id) && id > 0 ? (value as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

/** Requests with ids, streamed `progress`, a final `res` or `err`, and `cancel`, over one channel. */
export class ChannelClient {
  readonly #channel: DataChannelLike
  readonly #pending = new Map<number, Pending>()
  readonly #timeoutMs: number
  #nextId = 1
  #closed = false

  constructor(channel: DataChannelLike, options: { timeoutMs?: number } = {}) {
    this.#channel = channel
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
    channel.addEventListener('message', (event) => this.#receive(event.data))
    channel.addEventListener('close', () => this.#onClosed())
  }

  get open(): boolean {
    return !this.#closed && this.#channel.readyState === 'open'
  }

  get inFlight(): number {
    return this.#pending.size
  }

  /** Sends `body`; `onProgress` sees each partial answer; resolves with the final answer. */
  request(body: unknown, options: RequestOptions = {}): Promise<unknown> {
    if (!this.open) return Promise.reject(new WebRtcClientError('CLOSED', 'the data channel is closed'))
    const id = this.#nextId++
    const text = JSON.stringify({ t: 'req', id, body })
    if (encoder.encode(text).length > MAX_MESSAGE_BYTES) {
      return Promise.reject(new WebRtcClientError('TOO_LARGE', 'the request exceeds the message limit'))
    }
    if (options.signal?.aborted === true)
      return Promise.reject(new WebRtcClientError('ABORTED', 'the request was cancelled'))
    return new Promise((resolve, reject) => {
      const finish = (): void => {
        clearTimeout(timer)
        options.signal?.removeEventListener('abort', onAbort)
        this.#pending.delete(id)
      }
      const abandon = (err: WebRtcClientError): void => {
        if (!this.#pending.has(id)) return
        finish()
        this.#send(JSON.stringify({ t: 'cancel', id }))
        reject(err)
      }
      const onAbort = (): void => abandon(new WebRtcClientError('ABORTED', 'the request was cancelled'))
      const timer = setTimeout(
        () => abandon(new WebRtcClientError('TIMEOUT', 'the request timed out')),
        options.timeoutMs ?? this.#timeoutMs,
      )
      options.signal?.addEventListener('abort', onAbort, { once: true })
      this.#pending.set(id, {
        resolve: (value) => (finish(), resolve(value)),
        reject: (err) => (finish(), reject(err)),
        onProgress: options.onProgress,
      })
      if (!this.#send(text))
        this.#pending.get(id)?.reject(new WebRtcClientError('CLOSED', 'the data channel refused the message'))
    })
  }

  #send(text: string): boolean {
    if (this.#channel.readyState !== 'open') return false
    try {
      this.#channel.send(text)
      return true
    } catch {
      return false
    }
  }

  #receive(data: unknown): void {
    const frame = parseFrame(data)
    const pending = frame === undefined ? undefined : this.#pending.get(frame['id'] as number)
    if (frame === undefined || pending === undefined) return
    if (frame['t'] === 'progress') {
      try {
        pending.onProgress?.(frame['body'])
      } catch {
        // a listener's failure is the listener's
      }
    } else if (frame['t'] === 'res') {
      pending.resolve(frame['body'])
    } else if (frame['t'] === 'err') {
      const error = frame['error'] as { code?: unknown; message?: unknown } | undefined
      const code = typeof error?.code === 'string' ? error.code.slice(0, 64) : 'ERROR'
      const message = typeof error?.message === 'string' ? error.message.slice(0, 1000) : 'the request failed'
      pending.reject(new WebRtcClientError(code, message))
    }
  }

  #onClosed(): void {
    this.#closed = true
    for (const pending of [...this.#pending.values()])
      pending.reject(new WebRtcClientError('CLOSED', 'the data channel closed'))
  }

  close(): void {
    this.#closed = true
    this.#channel.close()
  }
}

/** `{ op: 'info' }`'s answer. */
export type PeerInfo = WebRtcInfo
/** `{ op: 'chat', … }` without its `op`: exactly one of `messages` and `prompt`. */
export type ChatRequest = Omit<WebRtcChatRequest, 'op'>
/** `chat`'s final answer (progress frames before it carry `{ token }`). */
export type ChatAnswer = WebRtcChatAnswer

export function requestInfo(client: ChannelClient, options: RequestOptions = {}): Promise<PeerInfo> {
  return client.request({ op: 'info' }, options) as Promise<PeerInfo>
}

/** A chat with the peer's language model; `onToken` sees each streamed piece of text. */
export async function requestChat(
  client: ChannelClient,
  request: ChatRequest,
  options: Omit<RequestOptions, 'onProgress'> & { onToken?: (token: string) => void } = {},
): Promise<ChatAnswer> {
  const { onToken, ...rest } = options
  const onProgress = (body: unknown): void => {
    const token = (body as { token?: unknown } | null)?.token
    if (typeof token === 'string') onToken?.(token)
  }
  const answer = (await client.request(
    { op: 'chat', ...request },
    { ...rest, onProgress },
  )) as Partial<ChatAnswer> | null
  if (typeof answer?.text !== 'string') throw new WebRtcClientError('BAD_ANSWER', 'the chat answer carries no text')
  return answer as ChatAnswer
}

// ---------------------------------------------------------------------------------------------
// Connecting: RTCPeerConnection, signed offer over HTTP, verified answer

/** What `connect` needs of an RTCPeerConnection (the browser's, or a polyfill's). */
export interface PeerConnectionLike {
  readonly iceGatheringState: string
  readonly connectionState: string
  readonly localDescription: { sdp: string } | null
  readonly sctp?: { transport?: { getRemoteCertificates?: () => ArrayBuffer[] } } | null
  createDataChannel(label: string, init?: { ordered?: boolean }): DataChannelLike
  createOffer(): Promise<{ type: string; sdp?: string }>
  setLocalDescription(description: { type: string; sdp?: string }): Promise<void>
  setRemoteDescription(description: { type: 'answer'; sdp: string }): Promise<void>
  getStats(): Promise<{ forEach(f: (report: Record<string, unknown>) => void): void; get(id: string): unknown }>
  addEventListener(type: string, listener: () => void): void
  removeEventListener(type: string, listener: () => void): void
  close(): void
}

export type PeerConnectionConstructor = new (config: {
  iceServers: Array<{ urls: string | string[] }>
}) => PeerConnectionLike

/** Where the DID of the channel was checked against the DTLS certificate (see the file header). */
export type CertificateCheck = 'certificate' | 'stats' | 'sdp'

export type ConnectPhase = 'gathering' | 'signalling' | 'verifying' | 'connecting' | 'open'

export interface ConnectOptions {
  /** The signalling endpoint from the directory entry (a base URL, or the offer URL itself). */
  endpoint: string
  /** The DID the directory entry named: only its key may answer. */
  did: string
  /** @default this tab's identity (tabIdentityOnce) */
  identity?: BrowserIdentity
  signal?: AbortSignal
  onPhase?: (phase: ConnectPhase) => void
  /** STUN/TURN servers; none by default (host candidates: loopback and LAN). */
  iceServers?: Array<{ urls: string | string[] }>
  gatherTimeoutMs?: number
  openTimeoutMs?: number
  requestTimeoutMs?: number
  /** @default globalThis.RTCPeerConnection */
  peerConnection?: PeerConnectionConstructor
  /** @default globalThis.fetch */
  fetch?: typeof fetch
  /** @default Date.now */
  now?: () => number
}

/** An open data channel to a DID that proved itself. */
export interface WebRtcSession {
  /** The peer's DID: it signed the answer whose certificate the handshake used. */
  readonly did: string
  /** This side's DID (the tab's key). */
  readonly localDid: string
  readonly fingerprint: string
  readonly certificateCheck: CertificateCheck
  readonly client: ChannelClient
  /** The node's session resource (the answer's Location), when the node exposed it. */
  readonly sessionUrl: string | undefined
  /** Resolves when the connection closes, from either side. */
  readonly closed: Promise<void>
  /** Closes the channel and the connection, and tells the node (DELETE of the session). */
  close(): Promise<void>
}

/** The offer URL for a directory entry's endpoint: the URL itself if it names the offer route. */
export function offerUrl(endpoint: string): string {
  const url = new URL(endpoint)
  if (/\/(receive-offer|v1\/webrtc\/offer)\/?$/.test(url.pathname)) return url.href
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${OFFER_PATH}`
  return url.href
}

/** Resolves when `pc`'s ICE gathering completes (or, after `timeoutMs`, with what was gathered). */
function gathered(pc: PeerConnectionLike, timeoutMs: number, signal: AbortSignal | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const finish = (): void => {
      clearTimeout(timer)
      pc.removeEventListener('icegatheringstatechange', onChange)
      signal?.removeEventListener('abort', onAbort)
      const sdp = pc.localDescription?.sdp ?? ''
      if (/\na=candidate:/.test(sdp)) resolve(sdp)
      else reject(new WebRtcClientError('CONNECT_FAILED', 'ICE gathering found no address to offer'))
    }
    const onChange = (): void => void (pc.iceGatheringState === 'complete' && finish())
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(new WebRtcClientError('ABORTED', 'the connection was cancelled'))
    }
    const timer = setTimeout(finish, timeoutMs)
    pc.addEventListener('icegatheringstatechange', onChange)
    signal?.addEventListener('abort', onAbort, { once: true })
    onChange()
  })
}

/** Resolves once `channel` opens; rejects if the connection fails, times out or is cancelled. */
function opened(
  pc: PeerConnectionLike,
  channel: DataChannelLike,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: WebRtcClientError): void => {
      clearTimeout(timer)
      pc.removeEventListener('connectionstatechange', onState)
      signal?.removeEventListener('abort', onAbort)
      if (err === undefined) resolve()
      else reject(err)
    }
    const onState = (): void => {
      if (pc.connectionState === 'failed' || pc.connectionState === 'closed') {
        done(new WebRtcClientError('CONNECT_FAILED', `the connection ${pc.connectionState} before the channel opened`))
      }
    }
    const onAbort = (): void => done(new WebRtcClientError('ABORTED', 'the connection was cancelled'))
    const timer = setTimeout(
      () => done(new WebRtcClientError('CONNECT_FAILED', `the data channel did not open within ${timeoutMs} ms`)),
      timeoutMs,
    )
    if (channel.readyState === 'open') return done()
    channel.addEventListener('open', () => done())
    channel.addEventListener('close', () =>
      done(new WebRtcClientError('CONNECT_FAILED', 'the data channel closed before it opened')),
    )
    pc.addEventListener('connectionstatechange', onState)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

function colonHex(bytes: Uint8Array): string {
  return toHex(bytes)
    .toUpperCase()
    .replace(/(..)(?!$)/g, '$1:')
}

/**
 * The sha-256 fingerprint of the certificate the DTLS handshake presented, where the browser
 * exposes it: RTCDtlsTransport.getRemoteCertificates() (the DER), else getStats()' transport →
 * remoteCertificateId → certificate. Undefined where neither is available.
 */
export async function negotiatedFingerprint(
  pc: PeerConnectionLike,
): Promise<{ value: string; via: CertificateCheck } | undefined> {
  const certificates = pc.sctp?.transport?.getRemoteCertificates?.() ?? []
  const der = certificates[0]
  if (der !== undefined && der.byteLength > 0)
    return { value: colonHex(await sha256(new Uint8Array(der))), via: 'certificate' }
  const stats = await pc.getStats().catch(() => undefined)
  let found: { value: string; via: CertificateCheck } | undefined
  stats?.forEach((report) => {
    const id = report['remoteCertificateId']
    if (report['type'] !== 'transport' || typeof id !== 'string' || found !== undefined) return
    const certificate = stats.get(id) as { fingerprint?: unknown; fingerprintAlgorithm?: unknown } | undefined
    if (certificate?.fingerprintAlgorithm === 'sha-256' && typeof certificate.fingerprint === 'string') {
      found = { value: certificate.fingerprint.toUpperCase(), via: 'stats' }
    }
  })
  return found
}

async function refusal(res: Response): Promise<WebRtcClientError> {
  const body = (await res.json().catch(() => undefined)) as
    { error?: { code?: unknown; message?: unknown } } | undefined
  const code = typeof body?.error?.code === 'string' ? body.error.code.slice(0, 64) : `HTTP_${res.status}`
  const message =
    typeof body?.error?.message === 'string' ? body.error.message.slice(0, 500) : `the node answered ${res.status}`
  return new WebRtcClientError(code, message)
}

/** POSTs the signed offer; returns the answer JSON and the session URL. */
async function postOffer(
  url: string,
  offer: SignedOffer,
  fetchFn: typeof fetch,
  signal: AbortSignal | undefined,
): Promise<{ answer: unknown; sessionUrl: string | undefined }> {
  let res: Response
  try {
    res = await fetchFn(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(offer),
      credentials: 'omit',
      ...(signal === undefined ? {} : { signal }),
    })
  } catch (err) {
    if (signal?.aborted === true) throw new WebRtcClientError('ABORTED', 'the connection was cancelled')
    throw new WebRtcClientError(
      'CONNECT_FAILED',
      `the node at ${new URL(url).host} could not be reached (or refused this page’s origin)`,
      { cause: err },
    )
  }
  if (!res.ok) throw await refusal(res)
  const location = res.headers.get('location')
  return { answer: await res.json(), sessionUrl: location === null ? undefined : new URL(location, url).href }
}

/**
 * Opens a data channel to `did` through the signalling `endpoint` (see the file header). Every
 * failure closes the connection and throws a `WebRtcClientError` saying why.
 */
export async function connect(options: ConnectOptions): Promise<WebRtcSession> {
  const Rtc =
    options.peerConnection ?? (globalThis as { RTCPeerConnection?: PeerConnectionConstructor }).RTCPeerConnection
  if (Rtc === undefined) throw new WebRtcClientError('UNSUPPORTED', 'this browser has no WebRTC')
  const fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis)
  const now = options.now ?? Date.now
  const url = offerUrl(options.endpoint)
  const identity = options.identity ?? (await tabIdentityOnce())
  const pc = new Rtc({ iceServers: options.iceServers ?? [] })
  let sessionUrl: string | undefined
  try {
    const channel = pc.createDataChannel(CHANNEL_LABEL, { ordered: true })
    options.onPhase?.('gathering')
    await pc.setLocalDescription(await pc.createOffer())
    const sdp = await gathered(pc, options.gatherTimeoutMs ?? DEFAULT_GATHER_TIMEOUT_MS, options.signal)
    const offer = await signOffer(identity, { sdp, target: options.did, timestamp: now() })
    options.onPhase?.('signalling')
    const posted = await postOffer(url, offer, fetchFn, options.signal)
    sessionUrl = posted.sessionUrl
    options.onPhase?.('verifying')
    const verified = await verifyAnswer(posted.answer, offer, { expectedDid: options.did, now: now() })
    options.onPhase?.('connecting')
    await pc.setRemoteDescription({ type: 'answer', sdp: verified.sdp })
    await opened(pc, channel, options.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS, options.signal)
    const seen = await negotiatedFingerprint(pc)
    if (seen !== undefined && seen.value !== verified.fingerprint) {
      refuse('FINGERPRINT_MISMATCH', 'the DTLS certificate is not the one the DID signed in its answer')
    }
    options.onPhase?.('open')
    return session(
      pc,
      channel,
      verified,
      identity.did,
      seen?.via ?? 'sdp',
      sessionUrl,
      fetchFn,
      options.requestTimeoutMs,
    )
  } catch (err) {
    pc.close()
    if (sessionUrl !== undefined)
      void fetchFn(sessionUrl, { method: 'DELETE', credentials: 'omit' }).catch(() => undefined)
    if (err instanceof WebRtcClientError) throw err
    throw new WebRtcClientError('CONNECT_FAILED', err instanceof Error ? err.message : String(err), { cause: err })
  }
}

function session(
  pc: PeerConnectionLike,
  channel: DataChannelLike,
  verified: VerifiedAnswer,
  localDid: string,
  certificateCheck: CertificateCheck,
  sessionUrl: string | undefined,
  fetchFn: typeof fetch,
  requestTimeoutMs: number | undefined,
): WebRtcSession {
  const client = new ChannelClient(channel, requestTimeoutMs === undefined ? {} : { timeoutMs: requestTimeoutMs })
  const closed = new Promise<void>((resolve) => {
    channel.addEventListener('close', () => resolve())
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'failed' || pc.connectionState === 'closed') resolve()
    })
  })
  let closing: Promise<void> | undefined
  return {
    did: verified.did,
    localDid,
    fingerprint: verified.fingerprint,
    certificateCheck,
    client,
    sessionUrl,
    closed,
    close: () =>
      (closing ??= (async () => {
        client.close()
        pc.close()
        if (sessionUrl !== undefined) {
          await fetchFn(sessionUrl, { method: 'DELETE', credentials: 'omit' }).catch(() => undefined)
        }
      })()),
  }
}
