import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Ed25519KeyPair } from '../../identity/keys.ts'
import { didFromEd25519PublicKey } from '../../identity/did-key.ts'
import {
  BadSdpError,
  BadSignalSignatureError,
  FingerprintMismatchError,
  MalformedSignalError,
  MAX_SDP_BYTES,
  ReplayCache,
  ReplayedSignalError,
  SdpTooLargeError,
  SignalBusyError,
  StaleSignalError,
  UnsignedSignalError,
  WrongPeerError,
  checkNegotiatedFingerprint,
  fingerprintOf,
  signAnswer,
  signOffer,
  verifyAnswer,
  verifyOffer,
} from './signal.ts'

const FP = 'AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89'
const OTHER_FP = FP.replace(/^AB/, '00')

function sdp(fingerprint = FP, extra = ''): string {
  return [
    'v=0',
    'o=rtc 1 0 IN IP4 127.0.0.1',
    's=-',
    't=0 0',
    'a=group:BUNDLE 0',
    `a=fingerprint:sha-256 ${fingerprint}`,
    'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
    'c=IN IP4 0.0.0.0',
    'a=mid:0',
    'a=setup:actpass',
    'a=candidate:1 1 UDP 2114977791 127.0.0.1 50000 typ host',
    extra,
    '',
  ]
    .filter((l, i, all) => l !== '' || i === all.length - 1)
    .join('\r\n')
}

const NOW = 1_800_000_000_000
const offerer = Ed25519KeyPair.generate()
const answerer = Ed25519KeyPair.generate()
const answererDid = didFromEd25519PublicKey(answerer.publicKey)
const offererDid = didFromEd25519PublicKey(offerer.publicKey)

test('fingerprintOf: session or media level, normalised, exactly one distinct', () => {
  assert.equal(fingerprintOf(sdp()), FP)
  assert.equal(fingerprintOf(sdp(FP.toLowerCase())), FP)
  // the same fingerprint at both levels is one distinct fingerprint
  assert.equal(fingerprintOf(sdp(FP, `a=fingerprint:sha-256 ${FP}`)), FP)
  assert.throws(() => fingerprintOf(sdp(FP, `a=fingerprint:sha-256 ${OTHER_FP}`)), BadSdpError)
  assert.throws(() => fingerprintOf(sdp().replace(/a=fingerprint.*\r\n/, '')), BadSdpError)
  assert.throws(() => fingerprintOf(sdp().replace('sha-256', 'sha-1')), BadSdpError)
  assert.throws(() => fingerprintOf(sdp('AB:CD')), BadSdpError)
  assert.throws(() => fingerprintOf('v=0\r\n' + 'a=x\r\n'.repeat(MAX_SDP_BYTES)), SdpTooLargeError)
})

test('a signed offer verifies once, with its fingerprint', () => {
  const replay = new ReplayCache()
  const offer = signOffer(offerer, { sdp: sdp(), target: answererDid, timestamp: NOW })
  assert.match(offer.nonce, /^[0-9a-f]{32}$/)
  assert.equal(offer.did, offererDid)
  const verified = verifyOffer(JSON.parse(JSON.stringify(offer)), { self: answererDid, now: NOW + 1000, replay })
  assert.equal(verified.fingerprint, FP)
  assert.equal(verified.did, offererDid)
  assert.throws(() => verifyOffer(offer, { self: answererDid, now: NOW + 2000, replay }), ReplayedSignalError)
})

test('verifyOffer refuses each kind of bad offer with its status code', () => {
  const replay = new ReplayCache()
  const good = signOffer(offerer, { sdp: sdp(), target: answererDid, timestamp: NOW })
  const check = (offer: unknown, Err: new (...args: never[]) => Error, status: number, now = NOW): void => {
    assert.throws(
      () => verifyOffer(offer, { self: answererDid, now, replay }),
      (err: Error & { statusCode?: number }) => err instanceof Err && err.statusCode === status,
    )
  }
  check(null, MalformedSignalError, 400)
  check({ ...good, signature: undefined }, UnsignedSignalError, 401)
  check({ ...good, signature: '' }, UnsignedSignalError, 401)
  check({ ...good, signature: 'zz' }, BadSignalSignatureError, 401)
  check({ ...good, sdp: good.sdp.replace('127.0.0.1 50000', '127.0.0.1 50001') }, BadSignalSignatureError, 401)
  check({ ...good, timestamp: NOW + 1 }, BadSignalSignatureError, 401)
  check({ ...good, did: answererDid }, BadSignalSignatureError, 401)
  check({ ...good, did: 'did:web:example.org' }, MalformedSignalError, 400)
  check({ ...good, nonce: 'ab' }, MalformedSignalError, 400)
  check({ ...good, timestamp: 1.5 }, MalformedSignalError, 400)
  check(good, StaleSignalError, 401, NOW + 30_001)
  check(good, StaleSignalError, 401, NOW - 30_001)
  assert.throws(
    () => verifyOffer(good, { self: offererDid, now: NOW, replay }),
    (err: WrongPeerError) => err instanceof WrongPeerError && err.statusCode === 403,
  )
  check({ ...good, sdp: 'x'.repeat(MAX_SDP_BYTES + 1) }, SdpTooLargeError, 413)
  const audio = signOffer(offerer, {
    sdp: sdp().replace('m=application 9 UDP/DTLS/SCTP webrtc-datachannel', 'm=audio 9 UDP/TLS/RTP/SAVPF 111'),
    target: answererDid,
    timestamp: NOW,
  })
  check(audio, BadSdpError, 400)
  assert.equal(replay.size, 0, 'refused offers never reach the replay cache')
})

test('ReplayCache is bounded: it refuses (429) rather than evicting live entries, then recovers', () => {
  const cache = new ReplayCache({ maxEntries: 2, ttlMs: 1000 })
  assert.equal(cache.claim('a', 0), true)
  assert.equal(cache.claim('a', 10), false)
  assert.equal(cache.claim('b', 10), true)
  assert.throws(() => cache.claim('c', 20), SignalBusyError)
  assert.equal(cache.claim('c', 1000), true, 'expired entries are pruned when full')
  assert.equal(cache.has('a', 1000), false)
  assert.equal(cache.claim('d', 1010, 5000), true)
  assert.equal(cache.has('d', 4999), true, 'an explicit expiry beyond the ttl is honoured')
})

test('a signed answer verifies for the called DID, echoing the nonce, bound to the negotiated certificate', () => {
  const offer = signOffer(offerer, { sdp: sdp(OTHER_FP), target: answererDid, timestamp: NOW })
  const answer = signAnswer(answerer, offer, { sdp: sdp(), timestamp: NOW + 5 })
  const verified = verifyAnswer(answer, offer, {
    expectedDid: answererDid,
    now: NOW,
    negotiatedFingerprint: { algorithm: 'sha-256', value: FP },
  })
  assert.equal(verified.fingerprint, FP)
  assert.throws(
    () =>
      verifyAnswer(answer, offer, {
        expectedDid: answererDid,
        now: NOW,
        negotiatedFingerprint: { algorithm: 'sha-256', value: OTHER_FP },
      }),
    FingerprintMismatchError,
  )
  assert.throws(() => checkNegotiatedFingerprint(verified, null), FingerprintMismatchError)
  assert.throws(() => verifyAnswer(answer, offer, { expectedDid: offererDid, now: NOW }), WrongPeerError)
  const other = signOffer(offerer, { sdp: sdp(OTHER_FP), target: answererDid, timestamp: NOW })
  assert.throws(() => verifyAnswer(answer, other, { expectedDid: answererDid, now: NOW }), ReplayedSignalError)
  assert.throws(
    () => verifyAnswer({ ...answer, sdp: sdp(OTHER_FP) }, offer, { expectedDid: answererDid, now: NOW }),
    BadSignalSignatureError,
  )
  assert.throws(() => verifyAnswer(answer, offer, { expectedDid: answererDid, now: NOW + 60_000 }), StaleSignalError)
  // an offer signature is not an answer signature (domain separation)
  const asOffer = signOffer(answerer, { sdp: sdp(), target: '', timestamp: NOW + 5, nonce: offer.nonce })
  assert.throws(
    () => verifyAnswer({ ...answer, signature: asOffer.signature }, offer, { expectedDid: answererDid, now: NOW }),
    BadSignalSignatureError,
  )
})
