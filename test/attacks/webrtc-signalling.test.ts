// Attack (issue 13.3), signalling: the seed's offer/answer over HTTP trusted whatever arrived. Now
// an offer must be signed by its DID over the whole SDP (DTLS fingerprint included), fresh,
// addressed to this node and used once, and it is checked before any PeerConnection exists; an
// answer must be signed by the DID that was called, echo the offer's nonce, and the certificate the
// DTLS handshake actually negotiated must be the one in the signed answer SDP.
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import nodeDataChannel from 'node-datachannel'
import { Ed25519KeyPair } from '../../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../../src/identity/did-key.ts'
import {
  BadSignalSignatureError,
  FingerprintMismatchError,
  ReplayCache,
  ReplayedSignalError,
  SdpTooLargeError,
  StaleSignalError,
  WrongPeerError,
  signAnswer,
  signOffer,
  verifyOffer,
  type SignalError,
  type SignedOffer,
} from '../../src/net/webrtc/signal.ts'
import {
  WebRtcAnswerer,
  WebRtcOfferer,
  defaultPeerConnectionFactory,
  type PeerConnectionFactory,
  type WebRtcConnection,
} from '../../src/net/webrtc/peer.ts'

after(() => nodeDataChannel.cleanup())

/** A node's /receive-offer: verify, then (only then) answer. Counts PeerConnections made. */
function answeringNode() {
  const key = Ed25519KeyPair.generate()
  let created = 0
  const factory: PeerConnectionFactory = (name, config) => {
    created++
    return defaultPeerConnectionFactory(name, config)
  }
  const connections: WebRtcConnection[] = []
  const answerer = new WebRtcAnswerer({ key, factory, onConnection: (c) => connections.push(c) })
  const replay = new ReplayCache()
  const receiveOffer = async (offer: unknown, now = Date.now()) =>
    answerer.answer(verifyOffer(offer, { self: answerer.did, now, replay }))
  return { key, answerer, receiveOffer, connections, created: () => created }
}

async function realOffer(target: string): Promise<{ offerer: WebRtcOfferer; offer: SignedOffer }> {
  const offerer = new WebRtcOfferer({ key: Ed25519KeyPair.generate() })
  const pending = await offerer.createOffer(target)
  return { offerer, offer: pending.offer }
}

function flipFingerprint(sdp: string): string {
  return sdp.replace(/(a=fingerprint:sha-256 )(..)/, (_m, p: string, b: string) => p + (b === '00' ? '11' : '00'))
}

function refusedWith(Err: new (...args: never[]) => SignalError, status: number) {
  return (err: unknown) => err instanceof Err && (err as SignalError).statusCode === status
}

test('a forged offer signature is refused before any PeerConnection is created', async () => {
  const node = answeringNode()
  const { offerer, offer } = await realOffer(node.answerer.did)
  const mallory = Ed25519KeyPair.generate()
  // Mallory claims the honest offerer's DID but can only sign with her own key
  const forged = { ...signOffer(mallory, { sdp: offer.sdp, target: offer.target, timestamp: offer.timestamp }) }
  await assert.rejects(node.receiveOffer({ ...forged, did: offer.did }), refusedWith(BadSignalSignatureError, 401))
  // or she swaps the SDP (her own DTLS certificate) under the honest signature
  const swapped = flipFingerprint(offer.sdp)
  await assert.rejects(node.receiveOffer({ ...offer, sdp: swapped }), refusedWith(BadSignalSignatureError, 401))
  await assert.rejects(node.receiveOffer({ ...offer, signature: undefined }), /not signed/)
  assert.equal(node.created(), 0)
  offerer.stop()
  node.answerer.stop()
})

test('an offer replayed after its first use is refused; only the first made a PeerConnection', async () => {
  const node = answeringNode()
  const { offerer, offer } = await realOffer(node.answerer.did)
  await node.receiveOffer(offer)
  assert.equal(node.created(), 1)
  await assert.rejects(node.receiveOffer(offer), refusedWith(ReplayedSignalError, 409))
  await assert.rejects(node.receiveOffer(JSON.parse(JSON.stringify(offer))), refusedWith(ReplayedSignalError, 409))
  assert.equal(node.created(), 1)
  offerer.stop()
  node.answerer.stop()
})

test('a stale offer, an offer for another DID and an oversized SDP are refused with no PeerConnection', async () => {
  const node = answeringNode()
  const { offerer, offer } = await realOffer(node.answerer.did)
  await assert.rejects(node.receiveOffer(offer, offer.timestamp + 31_000), refusedWith(StaleSignalError, 401))
  await assert.rejects(node.receiveOffer(offer, offer.timestamp - 31_000), refusedWith(StaleSignalError, 401))
  const other = answeringNode()
  await assert.rejects(other.receiveOffer(offer), refusedWith(WrongPeerError, 403))
  const key = Ed25519KeyPair.generate()
  const huge = signOffer(key, {
    sdp: offer.sdp + 'a=x-pad:' + 'p'.repeat(17_000) + '\r\n',
    target: node.answerer.did,
    timestamp: Date.now(),
  })
  await assert.rejects(node.receiveOffer(huge), refusedWith(SdpTooLargeError, 413))
  assert.equal(node.created(), 0)
  assert.equal(other.created(), 0)
  // the genuine offer still works afterwards: refusals did not burn its nonce
  await node.receiveOffer(offer)
  assert.equal(node.created(), 1)
  offerer.stop()
  node.answerer.stop()
})

test('an answer whose DTLS certificate does not match its signed SDP is refused and closed', async () => {
  const node = answeringNode()
  const offerer = new WebRtcOfferer({ key: Ed25519KeyPair.generate() })
  const pending = await offerer.createOffer(node.answerer.did)
  const genuine = await node.receiveOffer(pending.offer)
  // The answerer's key signs an SDP naming certificate F1, while the DTLS handshake is done with
  // certificate F2 (a man in the middle terminating DTLS, or a key holder vouching for a
  // certificate it does not hold). The signature verifies; the handshake must not be accepted.
  const lying = flipFingerprint(genuine.sdp)
  const signed = signAnswer(node.key, pending.offer, { sdp: lying, timestamp: Date.now() })
  await assert.rejects(pending.accept(signed), refusedWith(FingerprintMismatchError, 401))
  assert.equal(offerer.size, 0, 'the offerer closed the connection')
  // Tampering with the fingerprint without re-signing is caught by the signature itself
  const second = await offerer.createOffer(node.answerer.did)
  const answer = await node.receiveOffer(second.offer)
  await assert.rejects(second.accept({ ...answer, sdp: lying }), refusedWith(BadSignalSignatureError, 401))
  // and an answer signed by anyone but the called DID is refused
  const third = await offerer.createOffer(node.answerer.did)
  const mallory = Ed25519KeyPair.generate()
  const fake = signAnswer(mallory, third.offer, { sdp: genuine.sdp, timestamp: Date.now() })
  await assert.rejects(third.accept(fake), refusedWith(WrongPeerError, 403))
  assert.notEqual(didFromEd25519PublicKey(mallory.publicKey), node.answerer.did)
  assert.equal(offerer.size, 0)
  offerer.stop()
  node.answerer.stop()
})

test('an offer whose DTLS certificate does not match its signed SDP never reaches the service', async () => {
  const node = answeringNode()
  // An offerer whose stack reports (and so signs) a fingerprint other than its certificate's
  const lyingFactory: PeerConnectionFactory = (name, config) => {
    const pc = defaultPeerConnectionFactory(name, config)
    return new Proxy(pc, {
      get(target, property) {
        if (property === 'localDescription') {
          return () => {
            const description = target.localDescription()
            return description === null ? null : { ...description, sdp: flipFingerprint(description.sdp) }
          }
        }
        const value: unknown = Reflect.get(target, property)
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
      },
    })
  }
  const offerer = new WebRtcOfferer({ key: Ed25519KeyPair.generate(), factory: lyingFactory, connectTimeoutMs: 3_000 })
  const pending = await offerer.createOffer(node.answerer.did)
  const answer = await node.receiveOffer(pending.offer)
  await assert.rejects(pending.accept(answer), /failed|timed out/)
  assert.equal(node.connections.length, 0, 'the answerer handed no channel to its service')
  offerer.stop()
  node.answerer.stop()
})
