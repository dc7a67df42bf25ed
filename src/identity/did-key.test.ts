import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { base58btc } from 'multiformats/bases/base58'
import { Ed25519KeyPair } from './keys.ts'
import { didFromEd25519PublicKey, parseDidKey, resolveDidKey, ed25519PublicKeyFromDid } from './did-key.ts'
import { DidKeyError, type DidKeyErrorReason } from './errors.ts'

function expectReason(did: string, reason: DidKeyErrorReason): void {
  assert.throws(
    () => parseDidKey(did),
    (err: unknown) => err instanceof DidKeyError && err.reason === reason,
    `${did} → ${reason}`,
  )
}

const mb = (bytes: number[]): string => base58btc.encode(Uint8Array.from(bytes))

test('every generated key round-trips through its DID', () => {
  for (let i = 0; i < 50; i++) {
    const key = Ed25519KeyPair.generate()
    const did = didFromEd25519PublicKey(key.publicKey)
    assert.match(did, /^did:key:z6Mk[1-9A-HJ-NP-Za-km-z]+$/)
    assert.deepEqual(ed25519PublicKeyFromDid(did), key.publicKey)
  }
})

test('invalid DIDs raise the spec error names', () => {
  const valid = didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey)
  expectReason('did:web:example.com', 'invalidDid')
  expectReason('dxd:key:z6Mk', 'invalidDid')
  expectReason(valid.replace('did:key:z', 'did:key:m'), 'invalidDid')
  expectReason(`${valid}0`, 'invalidDid') // '0' is not in the base58 alphabet
  expectReason('did:key:0:' + valid.slice(8), 'invalidDid')
  expectReason('did:key:', 'invalidDid')
  expectReason(`did:key:${mb([0xed, 0x01, ...new Array<number>(31).fill(1)])}`, 'invalidPublicKeyLength')
  expectReason(`did:key:${mb([0xed, 0x01, ...new Array<number>(33).fill(1)])}`, 'invalidPublicKeyLength')
  // y = 2^255 - 1 is not a field element: not a point on the curve.
  expectReason(`did:key:${mb([0xed, 0x01, ...new Array<number>(31).fill(0xff), 0x7f])}`, 'invalidPublicKey')
  expectReason(`did:key:${mb([0xe7, 0x01, ...new Array<number>(33).fill(2)])}`, 'unsupportedPublicKeyType')
  assert.throws(() => parseDidKey('did:key:' + 'z'.repeat(300)), DidKeyError)
})

test('an explicit version 1 is accepted and becomes part of the document id', () => {
  const did = didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey)
  const versioned = did.replace('did:key:', 'did:key:1:')
  assert.equal(resolveDidKey(versioned).id, versioned)
})

test('every format produces a document with the X25519 key agreement', () => {
  const did = didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey)
  for (const format of [
    'Ed25519VerificationKey2018',
    'Ed25519VerificationKey2020',
    'JsonWebKey2020',
    'Multikey',
  ] as const) {
    const doc = resolveDidKey(did, { format })
    assert.equal(doc.verificationMethod.length, 2)
    assert.match(doc.keyAgreement[0] ?? '', /#z6LS/)
    assert.deepEqual(doc.authentication, [`${did}#${did.slice(8)}`])
  }
})

test('parseDidKey never throws anything but DidKeyError on arbitrary strings (property)', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string(),
        fc.string().map((s) => `did:key:z${s}`),
        fc.stringMatching(/^did:key:z[1-9A-HJ-NP-Za-km-z]{0,60}$/),
      ),
      (text) => {
        try {
          const parsed = parseDidKey(text)
          assert.equal(parsed.did, text)
        } catch (err) {
          assert.ok(err instanceof DidKeyError, String(err))
        }
      },
    ),
    { numRuns: 2000 },
  )
})
