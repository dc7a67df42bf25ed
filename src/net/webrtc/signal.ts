/**
 * Signed SDP signalling for WebRTC data channels (issue 13, part 3): the seed's offer/answer over
 * HTTP, done safely. The signature binds the data channel to a DID: it covers the whole SDP, and
 * the SDP carries the DTLS certificate fingerprint, so whoever completes the DTLS handshake must
 * hold the certificate the DID's key vouched for.
 *
 * Offer (offerer -> answerer, e.g. the body of `POST /receive-offer`), JSON:
 *
 *     { did, sdp, timestamp, nonce, target, signature }
 *
 * - `did`: the offerer's Ed25519 did:key; `target`: the answerer's did:key (an offer made out to
 *   someone else is refused, so an answerer cannot replay an offer it received to a third node).
 * - `timestamp`: milliseconds since the Unix epoch (a safe integer); accepted within ±`maxSkewMs`
 *   (30 s) of the answerer's clock.
 * - `nonce`: 16 random bytes, 32 lowercase hex digits; each (did, nonce) is accepted once.
 * - `sdp`: the complete, non-trickle SDP (all candidates gathered), at most 16 KiB of UTF-8, data
 *   channel only (every `m=` line is `application ... UDP/DTLS/SCTP webrtc-datachannel`), with exactly
 *   one distinct `a=fingerprint:sha-256` (session or media level).
 * - `signature`: 128 hex digits, Ed25519 by the `did`'s key over the canonical dag-cbor of
 *   `{ did, nonce, sdp, target, timestamp }` (map keys sorted as dag-cbor sorts them), with the
 *   domain-separated signing kind `webrtc.offer` (core/signing.ts: the signed message is
 *   sha256("donghae/webrtc.offer/v1" || cbor)).
 *
 * Answer (answerer -> offerer, e.g. the response body), JSON:
 *
 *     { did, sdp, timestamp, nonce, signature }
 *
 * - `nonce` echoes the offer's nonce (this is what ties the answer to the offer);
 * - `signature`: Ed25519 by the answerer's key over dag-cbor `{ did, nonce, sdp, timestamp }`,
 *   signing kind `webrtc.answer`.
 *
 * `verifyOffer` refuses unsigned, badly signed, stale or future, wrongly addressed, replayed,
 * oversized and malformed offers with a typed `SignalError` (a `code` and an HTTP `statusCode`)
 * using nothing but parsing, one signature check and the replay cache: no WebRTC object exists
 * until it returns. `verifyAnswer` checks the answerer's DID, signature, nonce echo and freshness;
 * given the fingerprint the DTLS handshake actually saw (node-datachannel's
 * `PeerConnection.remoteFingerprint()`, which reports the peer certificate's digest, not the SDP's
 * line), it also checks that this is the fingerprint the answerer signed.
 */
import { randomBytes } from 'node:crypto'
import { fromHex, toHex, utf8 } from '../../core/bytes.ts'
import { encode } from '../../core/codec.ts'
import { DonghaeError, type DonghaeErrorOptions } from '../../core/errors.ts'
import { verifySignature } from '../../identity/keys.ts'
import { didFromEd25519PublicKey, ed25519PublicKeyFromDid } from '../../identity/did-key.ts'

export const OFFER_SIGNING_KIND = 'webrtc.offer'
export const ANSWER_SIGNING_KIND = 'webrtc.answer'
/** Largest SDP accepted, in UTF-8 bytes. */
export const MAX_SDP_BYTES = 16 * 1024
/** Accepted clock difference between the signer's timestamp and the verifier's clock. */
export const DEFAULT_MAX_SKEW_MS = 30_000
export const NONCE_BYTES = 16
const MAX_SDP_LINES = 256
const MAX_CANDIDATES = 64
const MAX_DID_CHARS = 256
const NONCE_PATTERN = /^[0-9a-f]{32}$/
const SIGNATURE_PATTERN = /^[0-9a-f]{128}$/
const FINGERPRINT_VALUE = /^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/

// ---------------------------------------------------------------------------------------------
// Errors

/** Any refusal of a signalling message; `statusCode` is the HTTP status to answer with. */
export class SignalError extends DonghaeError {
  static override readonly code: string = 'SIGNAL_ERROR'
  override name = 'SignalError'
  readonly statusCode: number = 400
}

/** Not an offer/answer of the documented shape (missing or mistyped fields, bad DID or nonce). */
export class MalformedSignalError extends SignalError {
  static override readonly code: string = 'SIGNAL_MALFORMED'
  override name = 'MalformedSignalError'
  override readonly statusCode: number = 400
}

/** The SDP is not a data-channel-only SDP with exactly one sha-256 DTLS fingerprint. */
export class BadSdpError extends SignalError {
  static override readonly code: string = 'SIGNAL_BAD_SDP'
  override name = 'BadSdpError'
  override readonly statusCode: number = 400
}

/** The SDP exceeds `MAX_SDP_BYTES` (or its line/candidate limits). */
export class SdpTooLargeError extends SignalError {
  static override readonly code: string = 'SIGNAL_SDP_TOO_LARGE'
  override name = 'SdpTooLargeError'
  override readonly statusCode: number = 413
}

/** No signature at all. */
export class UnsignedSignalError extends SignalError {
  static override readonly code: string = 'SIGNAL_UNSIGNED'
  override name = 'UnsignedSignalError'
  override readonly statusCode: number = 401
}

/** A signature that does not verify for the claimed DID and signing kind. */
export class BadSignalSignatureError extends SignalError {
  static override readonly code: string = 'SIGNAL_BAD_SIGNATURE'
  override name = 'BadSignalSignatureError'
  override readonly statusCode: number = 401
}

/** A timestamp outside ±maxSkewMs of the verifier's clock. */
export class StaleSignalError extends SignalError {
  static override readonly code: string = 'SIGNAL_STALE'
  override name = 'StaleSignalError'
  override readonly statusCode: number = 401
}

/** An offer made out to another DID, or an answer from a DID other than the one called. */
export class WrongPeerError extends SignalError {
  static override readonly code: string = 'SIGNAL_WRONG_PEER'
  override name = 'WrongPeerError'
  override readonly statusCode: number = 403
}

/** An offer whose (did, nonce) was already accepted, or an answer that does not echo the nonce. */
export class ReplayedSignalError extends SignalError {
  static override readonly code: string = 'SIGNAL_REPLAYED'
  override name = 'ReplayedSignalError'
  override readonly statusCode: number = 409
}

/** The replay cache is full of live entries: refuse new offers until some expire. */
export class SignalBusyError extends SignalError {
  static override readonly code: string = 'SIGNAL_BUSY'
  override name = 'SignalBusyError'
  override readonly statusCode: number = 429
}

/** Too many offers from this client (an address; an IPv6 /64): retry after `retryAfterMs`. */
export class OfferRateLimitedError extends SignalError {
  static override readonly code: string = 'SIGNAL_RATE_LIMITED'
  override name = 'OfferRateLimitedError'
  override readonly statusCode: number = 429
  readonly retryAfterMs: number
  constructor(message: string, retryAfterMs: number, options: DonghaeErrorOptions = {}) {
    super(message, { ...options, details: { ...options.details, retryAfterMs } })
    this.retryAfterMs = retryAfterMs
  }
}

/** A trickled candidate that is not one, or more of them than a session takes. */
export class BadCandidateError extends SignalError {
  static override readonly code: string = 'SIGNAL_BAD_CANDIDATE'
  override name = 'BadCandidateError'
  override readonly statusCode: number = 400
}

/** The DTLS certificate the handshake saw is not the one the peer signed in its SDP. */
export class FingerprintMismatchError extends SignalError {
  static override readonly code: string = 'SIGNAL_FINGERPRINT_MISMATCH'
  override name = 'FingerprintMismatchError'
  override readonly statusCode: number = 401
}

// ---------------------------------------------------------------------------------------------
// Shapes

export interface SignedOffer {
  did: string
  sdp: string
  timestamp: number
  nonce: string
  target: string
  signature: string
}

export interface SignedAnswer {
  did: string
  sdp: string
  timestamp: number
  nonce: string
  signature: string
}

/** What `verifyOffer` returns: the offer plus what was derived while checking it. */
export interface VerifiedOffer {
  did: string
  sdp: string
  timestamp: number
  nonce: string
  target: string
  /** The offerer's DTLS certificate fingerprint (uppercase colon hex, sha-256). */
  fingerprint: string
}

export interface VerifiedAnswer {
  did: string
  sdp: string
  timestamp: number
  nonce: string
  fingerprint: string
}

/** The signing half of an identity key (`Ed25519KeyPair` fits). */
export interface SignalSigner {
  readonly publicKey: Uint8Array
  sign(kind: string, payload: Uint8Array): Uint8Array
}

/** The fingerprint the DTLS handshake saw (node-datachannel `CertificateFingerprint`). */
export interface NegotiatedFingerprint {
  value: string
  algorithm: string
}

// ---------------------------------------------------------------------------------------------
// Replay cache

export interface ReplayCacheOptions {
  /** Live entries kept at most; when full of unexpired entries, new claims are refused. @default 100000 */
  maxEntries?: number
  /** Minimum time an entry is kept. @default 2 × DEFAULT_MAX_SKEW_MS */
  ttlMs?: number
}

/**
 * Remembers accepted (did, nonce) pairs until the offer carrying them can no longer pass the
 * freshness check. Bounded: it never evicts a live entry (that would reopen a replay), it refuses
 * new claims instead (`SignalBusyError`, 429) until entries expire.
 */
export class ReplayCache {
  readonly maxEntries: number
  readonly ttlMs: number
  readonly #entries = new Map<string, number>()

  constructor(options: ReplayCacheOptions = {}) {
    this.maxEntries = options.maxEntries ?? 100_000
    this.ttlMs = options.ttlMs ?? 2 * DEFAULT_MAX_SKEW_MS
    if (!Number.isSafeInteger(this.maxEntries) || this.maxEntries < 1) {
      throw new RangeError('ReplayCache maxEntries must be a positive integer')
    }
    if (!Number.isFinite(this.ttlMs) || this.ttlMs < 0) throw new RangeError('ReplayCache ttlMs must be \u2265 0')
  }

  get size(): number {
    return this.#entries.size
  }

  /** Drops entries that expired at or before `now`. */
  prune(now: number): void {
    for (const [key, expiresAt] of this.#entries) if (expiresAt <= now) this.#entries.delete(key)
  }

  /**
   * Records `key` until `max(now + ttlMs, expiresAt)`. Returns false if it is already recorded
   * (a replay); throws `SignalBusyError` when the cache is full of live entries.
   */
  claim(key: string, now: number, expiresAt = 0): boolean {
    const existing = this.#entries.get(key)
    if (existing !== undefined && existing > now) return false
    if (this.#entries.size >= this.maxEntries) this.prune(now)
    if (this.#entries.size >= this.maxEntries) {
      throw new SignalBusyError('too many recent offers; try again shortly', {
        details: { maxEntries: this.maxEntries },
      })
    }
    this.#entries.delete(key)
    this.#entries.set(key, Math.max(now + this.ttlMs, expiresAt))
    return true
  }

  has(key: string, now: number): boolean {
    const expiresAt = this.#entries.get(key)
    return expiresAt !== undefined && expiresAt > now
  }
}

// ---------------------------------------------------------------------------------------------
// SDP

function refuse<E extends SignalError>(
  Err: new (message: string, options?: DonghaeErrorOptions) => E,
  message: string,
  details?: Record<string, unknown>,
): never {
  throw new Err(message, details === undefined ? {} : { details })
}

function checkSdpSize(sdp: string): void {
  // Cheap bound first: a string of n UTF-16 units holds at most 3n UTF-8 bytes and at least n.
  if (sdp.length > MAX_SDP_BYTES || utf8(sdp).length > MAX_SDP_BYTES) {
    refuse(SdpTooLargeError, `the SDP exceeds ${MAX_SDP_BYTES} bytes`, { maxBytes: MAX_SDP_BYTES })
  }
}

function sdpLines(sdp: string): string[] {
  checkSdpSize(sdp)
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(sdp)) refuse(BadSdpError, 'the SDP has control characters')
  const lines = sdp.split(/\r?\n/).filter((line) => line.length > 0)
  if (lines.length > MAX_SDP_LINES) refuse(SdpTooLargeError, `the SDP has more than ${MAX_SDP_LINES} lines`)
  return lines
}

/**
 * The DTLS certificate fingerprint of an SDP: the value of its `a=fingerprint:sha-256` line(s),
 * session or media level, normalised to uppercase colon hex. Exactly one distinct fingerprint is
 * required; a fingerprint with another hash function is refused (`BadSdpError`).
 */
export function fingerprintOf(sdp: string): string {
  if (typeof sdp !== 'string') refuse(BadSdpError, 'the SDP must be a string')
  const found = new Set<string>()
  for (const line of sdpLines(sdp)) {
    if (!line.toLowerCase().startsWith('a=fingerprint:')) continue
    const match = /^a=fingerprint:(\S+) (\S+)$/i.exec(line.trim())
    if (match === null) refuse(BadSdpError, 'a malformed a=fingerprint line')
    const [, algorithm = '', value = ''] = match
    if (algorithm.toLowerCase() !== 'sha-256') {
      refuse(
        BadSdpError,
        `only sha-256 DTLS fingerprints are accepted, found ${JSON.stringify(algorithm.slice(0, 16))}`,
      )
    }
    const normalised = value.toUpperCase()
    if (!FINGERPRINT_VALUE.test(normalised)) refuse(BadSdpError, 'a sha-256 fingerprint is 32 colon-separated bytes')
    found.add(normalised)
  }
  if (found.size === 0) refuse(BadSdpError, 'the SDP has no a=fingerprint:sha-256 line')
  if (found.size > 1) refuse(BadSdpError, 'the SDP has more than one distinct DTLS fingerprint')
  return [...found][0] as string
}

/**
 * Checks that `sdp` is a bounded, data-channel-only SDP and returns its fingerprint. Every `m=`
 * section must be `application <port> UDP/DTLS/SCTP webrtc-datachannel` (or the legacy
 * `DTLS/SCTP 5000`); at most 64 candidates.
 */
export function checkDataChannelSdp(sdp: string): string {
  if (typeof sdp !== 'string') refuse(BadSdpError, 'the SDP must be a string')
  const lines = sdpLines(sdp)
  if (lines[0]?.trim() !== 'v=0') refuse(BadSdpError, 'an SDP starts with v=0')
  let media = 0
  let candidates = 0
  for (const line of lines) {
    if (!/^[a-z]=/.test(line)) refuse(BadSdpError, 'every SDP line is <letter>=<value>')
    if (line.startsWith('m=')) {
      media++
      if (!/^m=application \d{1,5} (UDP\/DTLS\/SCTP webrtc-datachannel|DTLS\/SCTP \d{1,5})\s*$/.test(line)) {
        refuse(BadSdpError, 'only data-channel media sections (m=application \u2026 DTLS/SCTP) are accepted')
      }
    } else if (line.startsWith('a=candidate:')) {
      candidates++
    }
  }
  if (media === 0) refuse(BadSdpError, 'the SDP has no data-channel media section')
  if (candidates > MAX_CANDIDATES) refuse(SdpTooLargeError, `the SDP has more than ${MAX_CANDIDATES} candidates`)
  return fingerprintOf(sdp)
}

// ---------------------------------------------------------------------------------------------
// Signing

function offerPayload(offer: Omit<SignedOffer, 'signature'>): Uint8Array {
  return encode({
    did: offer.did,
    nonce: offer.nonce,
    sdp: offer.sdp,
    target: offer.target,
    timestamp: offer.timestamp,
  })
}

function answerPayload(answer: Omit<SignedAnswer, 'signature'>): Uint8Array {
  return encode({ did: answer.did, nonce: answer.nonce, sdp: answer.sdp, timestamp: answer.timestamp })
}

/** A fresh 16-byte nonce as 32 lowercase hex digits. */
export function newNonce(): string {
  return toHex(randomBytes(NONCE_BYTES))
}

/** Signs an offer of `sdp` to `target` with the offerer's identity key. */
export function signOffer(
  key: SignalSigner,
  fields: { sdp: string; target: string; timestamp: number; nonce?: string },
): SignedOffer {
  const unsigned = {
    did: didFromEd25519PublicKey(key.publicKey),
    sdp: fields.sdp,
    timestamp: fields.timestamp,
    nonce: fields.nonce ?? newNonce(),
    target: fields.target,
  }
  return { ...unsigned, signature: toHex(key.sign(OFFER_SIGNING_KIND, offerPayload(unsigned))) }
}

/** Signs the answer `sdp` to `offer` (echoing its nonce) with the answerer's identity key. */
export function signAnswer(
  key: SignalSigner,
  offer: { nonce: string },
  fields: { sdp: string; timestamp: number },
): SignedAnswer {
  const unsigned = {
    did: didFromEd25519PublicKey(key.publicKey),
    sdp: fields.sdp,
    timestamp: fields.timestamp,
    nonce: offer.nonce,
  }
  return { ...unsigned, signature: toHex(key.sign(ANSWER_SIGNING_KIND, answerPayload(unsigned))) }
}

// ---------------------------------------------------------------------------------------------
// Verification

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function stringField(record: Record<string, unknown>, field: string, maxChars: number): string {
  const value = record[field]
  if (typeof value !== 'string') refuse(MalformedSignalError, `${field} must be a string`)
  if (value.length > maxChars) refuse(MalformedSignalError, `${field} is longer than ${maxChars} characters`)
  return value
}

function signerKey(did: string): Uint8Array {
  try {
    return ed25519PublicKeyFromDid(did)
  } catch {
    return refuse(MalformedSignalError, 'did must be an Ed25519 did:key')
  }
}

interface CommonFields {
  did: string
  sdp: string
  timestamp: number
  nonce: string
  signature: string
}

/** Shape checks shared by offers and answers; the SDP is only size-checked here. */
function commonFields(message: unknown): CommonFields {
  if (!isRecord(message)) refuse(MalformedSignalError, 'a signalling message is a JSON object')
  const signature = message['signature']
  if (signature === undefined || signature === null || signature === '') {
    refuse(UnsignedSignalError, 'the message is not signed')
  }
  const did = stringField(message, 'did', MAX_DID_CHARS)
  const sdpValue = message['sdp']
  if (typeof sdpValue !== 'string') refuse(MalformedSignalError, 'sdp must be a string')
  checkSdpSize(sdpValue)
  const timestamp = message['timestamp']
  if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp) || timestamp < 0) {
    refuse(MalformedSignalError, 'timestamp must be a non-negative integer (milliseconds since the epoch)')
  }
  const nonce = stringField(message, 'nonce', 64)
  if (!NONCE_PATTERN.test(nonce)) refuse(MalformedSignalError, 'nonce must be 16 bytes as 32 lowercase hex digits')
  if (typeof signature !== 'string' || !SIGNATURE_PATTERN.test(signature)) {
    refuse(BadSignalSignatureError, 'signature must be 64 bytes as 128 lowercase hex digits')
  }
  return { did, sdp: sdpValue, timestamp, nonce, signature }
}

function checkFreshness(timestamp: number, now: number, maxSkewMs: number): void {
  if (Math.abs(timestamp - now) > maxSkewMs) {
    refuse(StaleSignalError, `the timestamp is more than ${maxSkewMs} ms from this node's clock`, {
      skewMs: timestamp - now,
      maxSkewMs,
    })
  }
}

export interface VerifyOfferOptions {
  /** This node's DID: offers for any other target are refused. */
  self: string
  /** The verifier's clock, milliseconds since the epoch. */
  now: number
  maxSkewMs?: number
  /** Accepted (did, nonce) pairs; share one cache across every entry point of a node. */
  replay: ReplayCache
}

/**
 * Checks an untrusted offer completely (see the file header) and records its nonce. Throws a
 * `SignalError` subclass; creates no WebRTC object. Order: shape, unsigned, size, target,
 * freshness, SDP, signature, replay - the replay cache only ever holds validly signed offers.
 */
export function verifyOffer(offer: unknown, options: VerifyOfferOptions): VerifiedOffer {
  const maxSkewMs = options.maxSkewMs ?? DEFAULT_MAX_SKEW_MS
  const fields = commonFields(offer)
  const target = stringField(offer as Record<string, unknown>, 'target', MAX_DID_CHARS)
  if (target !== options.self) refuse(WrongPeerError, 'this offer is addressed to another DID')
  checkFreshness(fields.timestamp, options.now, maxSkewMs)
  const fingerprint = checkDataChannelSdp(fields.sdp)
  const publicKey = signerKey(fields.did)
  const payload = offerPayload({ ...fields, target })
  if (!verifySignature(publicKey, OFFER_SIGNING_KIND, payload, fromHex(fields.signature))) {
    refuse(BadSignalSignatureError, 'the offer signature does not verify for its DID')
  }
  const key = `${fields.did} ${fields.nonce}`
  if (!options.replay.claim(key, options.now, fields.timestamp + maxSkewMs + 1)) {
    refuse(ReplayedSignalError, 'this offer was already used')
  }
  return { did: fields.did, sdp: fields.sdp, timestamp: fields.timestamp, nonce: fields.nonce, target, fingerprint }
}

export interface VerifyAnswerOptions {
  /** The DID the offer was made out to: only its key may answer. */
  expectedDid: string
  now: number
  maxSkewMs?: number
  /**
   * The remote certificate fingerprint the DTLS handshake actually negotiated
   * (`PeerConnection.remoteFingerprint()` after the connection opened). When given, it must equal
   * the fingerprint in the signed answer SDP.
   */
  negotiatedFingerprint?: NegotiatedFingerprint
}

/**
 * Checks an untrusted answer to `offer`: signed by `expectedDid`, fresh, echoing the offer's
 * nonce, a data-channel SDP; and, with `negotiatedFingerprint`, bound to the DTLS certificate
 * actually used. Throws a `SignalError` subclass.
 */
export function verifyAnswer(answer: unknown, offer: { nonce: string }, options: VerifyAnswerOptions): VerifiedAnswer {
  const fields = commonFields(answer)
  if (fields.did !== options.expectedDid) refuse(WrongPeerError, 'the answer is not from the DID that was called')
  if (fields.nonce !== offer.nonce) refuse(ReplayedSignalError, 'the answer does not echo this offer\u2019s nonce')
  checkFreshness(fields.timestamp, options.now, options.maxSkewMs ?? DEFAULT_MAX_SKEW_MS)
  const fingerprint = checkDataChannelSdp(fields.sdp)
  const publicKey = signerKey(fields.did)
  if (!verifySignature(publicKey, ANSWER_SIGNING_KIND, answerPayload(fields), fromHex(fields.signature))) {
    refuse(BadSignalSignatureError, 'the answer signature does not verify for its DID')
  }
  const verified = { did: fields.did, sdp: fields.sdp, timestamp: fields.timestamp, nonce: fields.nonce, fingerprint }
  if (options.negotiatedFingerprint !== undefined) checkNegotiatedFingerprint(verified, options.negotiatedFingerprint)
  return verified
}

/**
 * Throws `FingerprintMismatchError` unless the certificate fingerprint the DTLS handshake saw is
 * the one in the signed SDP of `signed` (a verified offer or answer).
 */
export function checkNegotiatedFingerprint(
  signed: { fingerprint: string },
  negotiated: NegotiatedFingerprint | null | undefined,
): void {
  const algorithm = typeof negotiated?.algorithm === 'string' ? negotiated.algorithm.toLowerCase() : ''
  const value = typeof negotiated?.value === 'string' ? negotiated.value.toUpperCase() : ''
  if (algorithm !== 'sha-256' || value !== signed.fingerprint) {
    refuse(FingerprintMismatchError, 'the DTLS certificate is not the one the peer signed in its SDP', {
      signed: signed.fingerprint,
      negotiated: value.slice(0, 95),
    })
  }
}
