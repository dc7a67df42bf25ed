// Sealed boxes through the lazily loaded sodium-native: the fixed overhead matches libsodium's.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import sodium from 'sodium-native'
import { SEAL_BYTES, openBox, sealBox } from './sodium-box.ts'

test('SEAL_BYTES is libsodium crypto_box_SEALBYTES; a box opens with its key pair only, and a cut one not at all', () => {
  assert.equal(SEAL_BYTES, sodium.crypto_box_SEALBYTES)
  const pair = (): { pk: Uint8Array; sk: Uint8Array } => {
    const pk = Buffer.alloc(sodium.crypto_box_PUBLICKEYBYTES)
    const sk = Buffer.alloc(sodium.crypto_box_SECRETKEYBYTES)
    sodium.crypto_box_keypair(pk, sk)
    return { pk, sk }
  }
  const alice = pair()
  const bob = pair()
  const message = new TextEncoder().encode('for alice')
  const box = sealBox(message, alice.pk)
  assert.equal(box.length, message.length + SEAL_BYTES)
  assert.deepEqual(openBox(box, alice.pk, alice.sk), message)
  assert.equal(openBox(box, bob.pk, bob.sk), undefined)
  assert.equal(openBox(box.subarray(0, SEAL_BYTES - 1), alice.pk, alice.sk), undefined)
  assert.throws(() => sealBox(message, new Uint8Array(32)), 'a low-order key is refused')
})
