// The W3C CCG did:key method's published test vectors (test/vectors/did-key/), checked end to end:
// seed → Ed25519 key → DID, the derived X25519 key pair, and the resolved DID document.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { base58btc } from 'multiformats/bases/base58'
import { fromHex } from '../core/bytes.ts'
import { Ed25519KeyPair } from './keys.ts'
import {
  didFromEd25519PublicKey,
  resolveDidKey,
  parseDidKey,
  keyAgreementPublicKeyFromDid,
  type DidDocumentFormat,
} from './did-key.ts'

interface KeyPairVector {
  id: string
  type: string
  publicKeyBase58?: string
  privateKeyBase58?: string
  publicKeyJwk?: { x: string }
  privateKeyJwk?: { d: string }
}
interface Ed25519Vector {
  seed: string
  verificationKeyPair: KeyPairVector
  keyAgreementKeyPair: KeyPairVector
  didDocument: Record<string, unknown>
}

const vectorsDir = new URL('../../test/vectors/did-key/', import.meta.url)
const ed25519Vectors = JSON.parse(readFileSync(new URL('ed25519-x25519.json', vectorsDir), 'utf8')) as Record<
  string,
  Ed25519Vector
>
const x25519Vectors = JSON.parse(readFileSync(new URL('x25519.json', vectorsDir), 'utf8')) as {
  didDocument: Record<string, Record<string, unknown>>
}

const b58 = (bytes: Uint8Array): string => base58btc.baseEncode(bytes)
const b64url = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url')

test('the vector files hold the expected number of cases (guards against an empty loop)', () => {
  assert.equal(Object.keys(ed25519Vectors).length, 5)
  assert.equal(Object.keys(x25519Vectors.didDocument).length, 4)
})

for (const [did, vector] of Object.entries(ed25519Vectors)) {
  const format: DidDocumentFormat =
    vector.verificationKeyPair.type === 'JsonWebKey2020' ? 'JsonWebKey2020' : 'Ed25519VerificationKey2018'

  test(`ed25519-x25519 vector ${did.slice(8, 20)}…: seed → DID`, () => {
    const keyPair = Ed25519KeyPair.fromSeed(fromHex(vector.seed))
    assert.equal(didFromEd25519PublicKey(keyPair.publicKey), did)
    if (vector.verificationKeyPair.publicKeyBase58 !== undefined) {
      assert.equal(b58(keyPair.publicKey), vector.verificationKeyPair.publicKeyBase58)
    } else {
      assert.equal(b64url(keyPair.publicKey), vector.verificationKeyPair.publicKeyJwk?.x)
    }
  })

  test(`ed25519-x25519 vector ${did.slice(8, 20)}…: X25519 keyAgreement key pair derived from the Ed25519 key`, () => {
    const keyPair = Ed25519KeyPair.fromSeed(fromHex(vector.seed))
    const x = keyPair.toX25519()
    const expected = vector.keyAgreementKeyPair
    if (expected.publicKeyBase58 !== undefined) {
      assert.equal(b58(x.publicKey), expected.publicKeyBase58)
      assert.equal(b58(x.exportPrivateKey()), expected.privateKeyBase58)
    } else {
      assert.equal(b64url(x.publicKey), expected.publicKeyJwk?.x)
      assert.equal(b64url(x.exportPrivateKey()), expected.privateKeyJwk?.d)
    }
    // The public key derived from the private scalar equals the one derived from the DID alone.
    assert.deepEqual(keyAgreementPublicKeyFromDid(did), x.publicKey)
    // The keyAgreement id is did#<multibase of the X25519 key>.
    const fragment = expected.id.slice(expected.id.indexOf('#'))
    assert.ok(fragment.startsWith('#z6LS'))
    const doc = resolveDidKey(did, { format })
    assert.deepEqual(doc.keyAgreement, [`${did}${fragment}`])
  })

  test(`ed25519-x25519 vector ${did.slice(8, 20)}…: resolved DID document (${format})`, () => {
    assert.deepEqual(resolveDidKey(did, { format }), vector.didDocument)
  })
}

for (const [did, document] of Object.entries(x25519Vectors.didDocument)) {
  test(`x25519 vector ${did.slice(8, 20)}…: resolved DID document`, () => {
    const parsed = parseDidKey(did)
    assert.equal(parsed.type, 'X25519')
    const methods = document.verificationMethod as Array<{ type: string }>
    const format: DidDocumentFormat =
      methods[0]?.type === 'JsonWebKey2020' ? 'JsonWebKey2020' : 'Ed25519VerificationKey2018'
    assert.deepEqual(resolveDidKey(did, { format }), document)
  })
}
