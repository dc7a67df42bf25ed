/**
 * One key, two names: the libp2p PeerId (`12D3KooW...`, identity multihash of the protobuf
 * public key) and the did:key (`did:key:z6Mk...`) of the same Ed25519 key.
 */
import { publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'
import { InvalidInputError } from '../core/errors.ts'
import { didFromEd25519PublicKey, ed25519PublicKeyFromDid } from './did-key.ts'

export type { PeerId }

export function peerIdFromDid(did: string): PeerId {
  return peerIdFromPublicKey(publicKeyFromRaw(ed25519PublicKeyFromDid(did)))
}

/** The did:key of an Ed25519 PeerId (object or string). Other key types have no did:key here. */
export function didFromPeerId(peerId: PeerId | string): string {
  let id: PeerId
  try {
    id = typeof peerId === 'string' ? peerIdFromString(peerId) : peerId
  } catch (err) {
    throw new InvalidInputError(`not a libp2p PeerId: ${String(peerId).slice(0, 80)}`, { cause: err })
  }
  if (id.type !== 'Ed25519' || id.publicKey === undefined) {
    throw new InvalidInputError(`PeerId ${id.toString()} is not an Ed25519 key, so it has no did:key`)
  }
  return didFromEd25519PublicKey(id.publicKey.raw)
}
