/**
 * How Donghae uses gossipsub, in one place for the node's host (host.ts) and every other libp2p
 * host that must speak to it (the scale simulation, attack tests).
 *
 * Gossip is unsigned (gossipsub's StrictNoSign): every payload already carries the signature of
 * whoever it speaks for (a vote its validator's, a transaction its sender's, an advert its
 * worker's, a directory entry its owner's), and that is what the topic handlers check. A second
 * Ed25519 signature per message, made by the publisher and checked on the main thread by every
 * node it reaches, was a quarter of a validator's CPU under a transfer load.
 *
 * A message is 8 random bytes and the payload (`frameGossip`); its id is the SHA-256 of both. So
 * publishing the same payload again (a re-sent vote, a rebroadcast transaction) is a new message,
 * as it was when each signed publication had its own sequence number, and a peer that wraps a
 * payload it saw in new random bytes gains nothing the handlers do not already refuse or ignore
 * (the mempool knows the transaction, the advert table its sequence number, consensus the vote).
 */
import { StrictNoSign, type GossipsubOpts } from '@libp2p/gossipsub'
import { sha256 } from '../core/hash.ts'
import { MAX_GOSSIP_BYTES } from './constants.ts'

/** Random bytes ahead of each gossip payload: re-publishing a payload makes a new message id. */
export const GOSSIP_NONCE_BYTES = 8

/** A payload as it goes on a gossip topic: `GOSSIP_NONCE_BYTES` random bytes, then the payload. */
export function frameGossip(payload: Uint8Array): Uint8Array {
  const framed = new Uint8Array(GOSSIP_NONCE_BYTES + payload.byteLength)
  crypto.getRandomValues(framed.subarray(0, GOSSIP_NONCE_BYTES))
  framed.set(payload, GOSSIP_NONCE_BYTES)
  return framed
}

/** The payload of a gossip message, or undefined when it is too short to be framed. */
export function unframeGossip(data: Uint8Array): Uint8Array | undefined {
  return data.byteLength < GOSSIP_NONCE_BYTES ? undefined : data.subarray(GOSSIP_NONCE_BYTES)
}

/**
 * Addresses exempt from gossipsub's IP colocation penalty (peer score P6: past 10 peers on one
 * source address, each costs -5 × surplus²). Every node of a devnet or test net on one machine
 * comes from 127.0.0.1: with 16 validators each peer scored -125, under the graylist threshold
 * (-80), and every node ignored all the others' gossip - the chain stalled at its first height
 * with transfers (docs/performance.md). Peers on other machines keep the penalty: many nodes
 * behind one public address are still a Sybil sign there.
 */
export const LOOPBACK_ADDRESSES: ReadonlySet<string> = new Set(['127.0.0.1', '::1'])

/** gossipsub's options for every Donghae host. */
export const GOSSIP_OPTIONS: Partial<GossipsubOpts> = {
  allowPublishToZeroTopicPeers: true,
  emitSelf: false,
  maxInboundDataLength: MAX_GOSSIP_BYTES + GOSSIP_NONCE_BYTES,
  globalSignaturePolicy: StrictNoSign,
  msgIdFn: (msg) => sha256(msg.data),
  // Validation happens in the topic validators; invalid messages lower the sender's score.
  asyncValidation: false,
  scoreParams: { IPColocationFactorWhitelist: new Set(LOOPBACK_ADDRESSES) },
  // IDONTWANT (gossipsub 1.2) tells mesh peers not to send a message this node already has. For
  // a message of a few hundred bytes (an advert, a vote) it costs about what the duplicate it
  // saves does: a frame and a write at each end. Blocks and transaction batches keep it.
  idontwantMinDataSize: 4_096,
}
