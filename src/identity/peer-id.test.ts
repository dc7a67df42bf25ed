import { test } from 'node:test'
import assert from 'node:assert/strict'
import { peerIdFromString } from '@libp2p/peer-id'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Ed25519KeyPair } from './keys.ts'
import { didFromEd25519PublicKey } from './did-key.ts'
import { didFromPeerId, peerIdFromDid } from './peer-id.ts'
import { fromHex } from '../core/bytes.ts'
import { InvalidInputError } from '../core/errors.ts'

test('DID → PeerId → DID is the identity, and the PeerId carries the same key', () => {
  const key = Ed25519KeyPair.generate()
  const did = didFromEd25519PublicKey(key.publicKey)
  const peerId = peerIdFromDid(did)
  assert.ok(peerId.toString().startsWith('12D3KooW'))
  assert.deepEqual(peerId.publicKey?.raw, key.publicKey)
  assert.equal(didFromPeerId(peerId), did)
  assert.equal(didFromPeerId(peerId.toString()), did)
})

test('the did:key spec vector seed 0 maps to its PeerId and back', () => {
  const did = 'did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp'
  const key = Ed25519KeyPair.fromSeed(fromHex('00'.repeat(32)))
  assert.equal(didFromEd25519PublicKey(key.publicKey), did)
  const text = peerIdFromDid(did).toString()
  assert.equal(didFromPeerId(peerIdFromString(text)), did)
})

test('a key made by libp2p itself maps to a did:key of the same public key', async () => {
  const privateKey = await generateKeyPair('Ed25519')
  const peerId = peerIdFromPrivateKey(privateKey)
  assert.equal(didFromPeerId(peerId), didFromEd25519PublicKey(privateKey.publicKey.raw))
})

test('non-Ed25519 or malformed PeerIds are refused with a typed error', async () => {
  const secp = peerIdFromPrivateKey(await generateKeyPair('secp256k1'))
  assert.throws(() => didFromPeerId(secp), InvalidInputError)
  assert.throws(() => didFromPeerId('not-a-peer-id'), InvalidInputError)
})
