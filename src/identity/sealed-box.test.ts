import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { createCipheriv, hkdfSync, randomBytes } from 'node:crypto'
import { Ed25519KeyPair, X25519KeyPair, x25519PublicKeyOf } from './keys.ts'
import { didFromEd25519PublicKey, didFromX25519PublicKey } from './did-key.ts'
import { seal, openSealedBox } from './sealed-box.ts'
import { SealedBoxError } from './errors.ts'
import { utf8, fromUtf8, concat } from '../core/bytes.ts'
import { encode } from '../core/codec.ts'

const alice = Ed25519KeyPair.generate()
const bob = Ed25519KeyPair.generate()
const bobDid = didFromEd25519PublicKey(bob.publicKey)

test('round-trip to a DID, anonymous and authenticated', () => {
  const anon = openSealedBox(seal(bobDid, utf8('hi bob')), bob)
  assert.equal(fromUtf8(anon.message), 'hi bob')
  assert.equal(anon.sender, undefined)
  const signed = openSealedBox(seal(bobDid, utf8('from alice'), { sender: alice }), bob)
  assert.equal(signed.sender, didFromEd25519PublicKey(alice.publicKey))
})

test('round-trip to an X25519 did:key', () => {
  const x = X25519KeyPair.generate()
  assert.equal(fromUtf8(openSealedBox(seal(didFromX25519PublicKey(x.publicKey), utf8('x')), x).message), 'x')
})

test('every message uses a fresh ephemeral key (same input, different boxes)', () => {
  assert.notDeepEqual(seal(bobDid, utf8('same')), seal(bobDid, utf8('same')))
})

test('the wrong recipient cannot open it', () => {
  const box = seal(bobDid, utf8('secret'))
  assert.throws(() => openSealedBox(box, alice), SealedBoxError)
})

test('any single-byte change or truncation is detected (property)', () => {
  const box = seal(bobDid, utf8('pay 10 to carol'), { sender: alice })
  fc.assert(
    fc.property(fc.nat({ max: box.length - 1 }), fc.integer({ min: 1, max: 255 }), (i, delta) => {
      const bad = Uint8Array.from(box)
      bad[i] = ((bad[i] ?? 0) + delta) & 0xff
      assert.throws(() => openSealedBox(bad, bob), SealedBoxError)
    }),
    { numRuns: 300 },
  )
  for (const cut of [0, 1, 33, 45, box.length - 1])
    assert.throws(() => openSealedBox(box.subarray(0, cut), bob), SealedBoxError)
})

/** Seals raw inner bytes exactly as the format in sealed-box.ts describes, so tests can forge contents. */
function sealRaw(recipientPublic: Uint8Array, inner: Uint8Array, ephemeral = X25519KeyPair.generate()): Uint8Array {
  const key = hkdfSync(
    'sha256',
    ephemeral.agree(recipientPublic),
    concat(ephemeral.publicKey, recipientPublic),
    utf8('donghae/sealed-box/v1'),
    32,
  )
  const header = concat(Uint8Array.of(1), ephemeral.publicKey)
  const nonce = randomBytes(12)
  const cipher = createCipheriv('chacha20-poly1305', Buffer.from(key), nonce, { authTagLength: 16 })
  cipher.setAAD(header, { plaintextLength: inner.length })
  return concat(header, nonce, cipher.update(inner), cipher.final(), cipher.getAuthTag())
}

test('the independent re-implementation of the format opens with the real code (format is as documented)', () => {
  const bobX = x25519PublicKeyOf(bob.publicKey)
  assert.equal(fromUtf8(openSealedBox(sealRaw(bobX, encode({ m: utf8('doc') })), bob).message), 'doc')
})

test('a forged sender is rejected: claims alice, signed by mallory', () => {
  const mallory = Ed25519KeyPair.generate()
  const bobX = x25519PublicKeyOf(bob.publicKey)
  const eph = X25519KeyPair.generate()
  const m = utf8('send me 100')
  const sig = mallory.sign('sealed-box', encode({ e: eph.publicKey, m, r: bobX }))
  const box = sealRaw(bobX, encode({ m, s: { did: didFromEd25519PublicKey(alice.publicKey), sig } }), eph)
  assert.throws(() => openSealedBox(box, bob), /signature does not verify/)
})

test("a recipient cannot forward a sender-signed message to someone else under the sender's name", () => {
  const carol = Ed25519KeyPair.generate()
  const bobX = x25519PublicKeyOf(bob.publicKey)
  const carolX = x25519PublicKeyOf(carol.publicKey)
  const eph = X25519KeyPair.generate()
  const m = utf8('I owe you 5')
  // Alice's genuine signature from a box she sent to bob...
  const sig = alice.sign('sealed-box', encode({ e: eph.publicKey, m, r: bobX }))
  const aliceDid = didFromEd25519PublicKey(alice.publicKey)
  assert.equal(openSealedBox(sealRaw(bobX, encode({ m, s: { did: aliceDid, sig } }), eph), bob).sender, aliceDid)
  // ...re-sealed by bob to carol does not verify: the signature binds the ephemeral key and recipient.
  const forwarded = sealRaw(carolX, encode({ m, s: { did: aliceDid, sig } }))
  assert.throws(() => openSealedBox(forwarded, carol), SealedBoxError)
})

test('random bytes never open and never throw anything but SealedBoxError (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      assert.throws(() => openSealedBox(bytes, bob), SealedBoxError)
    }),
    { numRuns: 500 },
  )
})
