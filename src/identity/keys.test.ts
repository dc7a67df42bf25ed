import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { Ed25519KeyPair, X25519KeyPair, verifySignature, x25519PublicKeyOf } from './keys.ts'
import { utf8, fromHex, toHex } from '../core/bytes.ts'
import { signingDigest } from '../core/signing.ts'
import { InvalidInputError } from '../core/errors.ts'

test('RFC 8032 test 1: the seed gives the published public key', () => {
  const seed = fromHex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60')
  assert.equal(
    toHex(Ed25519KeyPair.fromSeed(seed).publicKey),
    'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
  )
})

test('signatures verify for their kind and payload only', () => {
  const key = Ed25519KeyPair.generate()
  const payload = utf8('transfer 5 to bob')
  const sig = key.sign('chain.tx', payload)
  assert.ok(verifySignature(key.publicKey, 'chain.tx', payload, sig))
  assert.ok(!verifySignature(key.publicKey, 'chain.vote', payload, sig), 'a tx signature is not a vote signature')
  assert.ok(!verifySignature(key.publicKey, 'chain.tx', utf8('transfer 6 to bob'), sig))
  assert.ok(!verifySignature(Ed25519KeyPair.generate().publicKey, 'chain.tx', payload, sig))
})

test('domain separation: no signature verifies under another kind (property)', () => {
  const key = Ed25519KeyPair.generate()
  const kind = fc.stringMatching(/^[a-z][a-z0-9-]{0,8}(\.[a-z0-9-]{1,6}){0,2}$/)
  fc.assert(
    fc.property(kind, kind, fc.uint8Array({ maxLength: 64 }), (a, b, payload) => {
      fc.pre(a !== b)
      const sig = key.sign(a, payload)
      assert.ok(verifySignature(key.publicKey, a, payload, sig))
      assert.ok(!verifySignature(key.publicKey, b, payload, sig))
    }),
    { numRuns: 200 },
  )
})

test('the signed message is sha256("donghae/<kind>/v1" ‖ payload) and kinds are validated', () => {
  assert.notDeepEqual(signingDigest('tx', utf8('a')), signingDigest('tx.a', utf8('')))
  for (const bad of ['', 'Tx', 'tx/v1', 'a b', 'x'.repeat(65), '.tx']) {
    assert.throws(() => signingDigest(bad, utf8('')), InvalidInputError, bad)
  }
})

test('verifySignature returns false (never throws) for malformed inputs', () => {
  const key = Ed25519KeyPair.generate()
  const sig = key.sign('k', utf8('m'))
  assert.equal(verifySignature(key.publicKey.subarray(1), 'k', utf8('m'), sig), false)
  assert.equal(verifySignature(key.publicKey, 'k', utf8('m'), sig.subarray(1)), false)
  assert.equal(verifySignature(new Uint8Array(32).fill(0xff), 'k', utf8('m'), sig), false)
  assert.equal(verifySignature(key.publicKey, 'Bad Kind', utf8('m'), sig), false)
})

test('X25519 from Ed25519: both sides derive the same shared secret; low-order keys are refused', () => {
  const alice = Ed25519KeyPair.generate()
  const bob = Ed25519KeyPair.generate()
  assert.deepEqual(x25519PublicKeyOf(alice.publicKey), alice.toX25519().publicKey)
  const ab = alice.toX25519().agree(x25519PublicKeyOf(bob.publicKey))
  const ba = bob.toX25519().agree(x25519PublicKeyOf(alice.publicKey))
  assert.deepEqual(ab, ba)
  assert.throws(() => X25519KeyPair.generate().agree(new Uint8Array(32)), InvalidInputError)
})

test('fromSeed rejects seeds of the wrong length', () => {
  assert.throws(() => Ed25519KeyPair.fromSeed(new Uint8Array(31)), InvalidInputError)
})
