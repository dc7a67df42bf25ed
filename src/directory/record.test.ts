import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encode } from '../core/codec.ts'
import { Ed25519KeyPair } from '../identity/keys.ts'
import {
  DirectoryExpiryError,
  DirectoryInvalidError,
  DirectorySignatureError,
  DirectoryTooLargeError,
  MAX_EXPIRY_MS,
  MAX_REGISTRATION_BYTES,
  decodeDeletion,
  decodeDirectoryMessage,
  decodeRegistration,
  deletionFromJson,
  deletionToJson,
  encodeDeletion,
  encodeRegistration,
  registrationFromJson,
  registrationToJson,
  signDeletion,
  signRegistration,
  verifyRegistration,
  type RegistrationFields,
} from './record.ts'

const NOW = 1_700_000_000_000

function fields(over: Partial<RegistrationFields> = {}): RegistrationFields {
  return {
    description: 'Korean barbecue restaurant by the sea, open late',
    categories: ['restaurant'],
    tags: ['bbq', 'late-night'],
    bootstrap: ['/ip4/192.0.2.1/tcp/4001', '/dns4/boot.example.org/tcp/443/wss'],
    endpoint: 'https://answerer.example.org/signal',
    seq: 1,
    expires: NOW + 24 * 3600_000,
    ...over,
  }
}

test('a signed registration verifies, round-trips through dag-cbor and JSON, and names the key’s DID', () => {
  const key = Ed25519KeyPair.generate()
  const record = signRegistration(key, fields())
  assert.match(record.did, /^did:key:z6Mk/)
  assert.deepEqual(verifyRegistration(record, NOW), record)
  assert.deepEqual(decodeRegistration(encodeRegistration(record), NOW), record)
  const json = JSON.parse(JSON.stringify(registrationToJson(record))) as unknown
  assert.deepEqual(registrationFromJson(json, NOW), record)
  const message = decodeDirectoryMessage(encodeRegistration(record), NOW)
  assert.equal(message.type, 'register')
})

test('a signed deletion verifies; the message decoder tells it from a registration', () => {
  const key = Ed25519KeyPair.generate()
  const deletion = signDeletion(key, 7)
  assert.deepEqual(decodeDeletion(encodeDeletion(deletion)), deletion)
  assert.deepEqual(deletionFromJson(JSON.parse(JSON.stringify(deletionToJson(deletion)))), deletion)
  const message = decodeDirectoryMessage(encodeDeletion(deletion), NOW)
  assert.equal(message.type, 'delete')
  // A registration signature cannot serve as a deletion (domain separation) and vice versa.
  const record = signRegistration(key, fields({ seq: 7 }))
  assert.throws(() => decodeDeletion(encodeDeletion({ ...deletion, signature: record.signature })), {
    name: 'DirectorySignatureError',
  })
})

test('any changed field breaks the signature (403)', () => {
  const record = signRegistration(Ed25519KeyPair.generate(), fields())
  for (const change of [
    { description: 'something else' },
    { categories: ['bank'] },
    { tags: [] },
    { bootstrap: [] },
    { endpoint: 'https://evil.example/signal' },
    { seq: 2 },
    { expires: NOW + 1000 },
  ]) {
    assert.throws(
      () => verifyRegistration({ ...record, ...change }, NOW),
      (err: unknown) => err instanceof DirectorySignatureError && err.statusCode === 403,
      JSON.stringify(change),
    )
  }
})

test('a record signed by another key than the DID’s is refused (403)', () => {
  const owner = Ed25519KeyPair.generate()
  const stranger = Ed25519KeyPair.generate()
  const mine = signRegistration(owner, fields())
  const forged = signRegistration(stranger, fields())
  assert.throws(() => verifyRegistration({ ...forged, did: mine.did }, NOW), DirectorySignatureError)
})

test('strict shape: unknown, missing and mistyped fields are 400', () => {
  const record = signRegistration(Ed25519KeyPair.generate(), fields())
  const bad: unknown[] = [
    { ...record, extra: 1 },
    { ...record, seq: undefined },
    { ...record, seq: -1 },
    { ...record, seq: 1.5 },
    { ...record, seq: '1' },
    { ...record, categories: 'restaurant' },
    { ...record, categories: [] },
    { ...record, categories: ['Restaurant'] },
    { ...record, categories: ['a b'] },
    { ...record, categories: ['food', 'food'] },
    { ...record, tags: [1] },
    { ...record, bootstrap: ['not a multiaddr'] },
    { ...record, bootstrap: ['/ip4/1.2.3.4/tcp/01'] },
    { ...record, endpoint: 'ftp://x.example/' },
    { ...record, endpoint: 'https://user:pw@x.example/' },
    { ...record, endpoint: 'not a url' },
    { ...record, description: 'nul\u0000byte' },
    { ...record, did: 'did:key:z6LSbysY2xFMRpGMhb7tFTLMpeuPRaqaWM1yECx2AtzE3KCc' },
    { ...record, did: 'did:web:example.org' },
    { ...record, signature: new Uint8Array(10) },
    null,
    [],
    'text',
  ]
  for (const value of bad) {
    assert.throws(
      () => verifyRegistration(value, NOW),
      (err: unknown) => err instanceof DirectoryInvalidError && err.statusCode === 400,
      JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? `bytes(${v.length})` : v)),
    )
  }
})

test('oversized fields are 413', () => {
  const key = Ed25519KeyPair.generate()
  const bad: Partial<RegistrationFields>[] = [
    { description: 'x'.repeat(1025) },
    { description: '한'.repeat(342) }, // 1,026 bytes of UTF-8 in 342 characters
    { categories: Array.from({ length: 9 }, (_, i) => `c${i}`) },
    { tags: Array.from({ length: 17 }, (_, i) => `t${i}`) },
    { tags: ['x'.repeat(33)] },
    { bootstrap: Array.from({ length: 9 }, (_, i) => `/ip4/10.0.0.${i}/tcp/1`) },
    { bootstrap: [`/dns4/${'a'.repeat(250)}.example/tcp/1`] },
    { endpoint: `https://example.org/${'a'.repeat(240)}` },
  ]
  for (const over of bad) {
    assert.throws(
      () => signRegistration(key, fields(over)),
      (err: unknown) => err instanceof DirectoryTooLargeError && err.statusCode === 413,
      JSON.stringify(over).slice(0, 80),
    )
  }
  assert.throws(() => decodeRegistration(new Uint8Array(MAX_REGISTRATION_BYTES + 1), NOW), DirectoryTooLargeError)
})

test('the largest valid registration fits the byte limit', () => {
  const record = signRegistration(
    Ed25519KeyPair.generate(),
    fields({
      description: '한'.repeat(341),
      categories: Array.from({ length: 8 }, (_, i) => `${i}`.padEnd(32, 'c')),
      tags: Array.from({ length: 16 }, (_, i) => `${i}`.padEnd(32, 't')),
      bootstrap: Array.from({ length: 8 }, (_, i) => `/dns4/${`${i}`.padEnd(200, 'a')}.example/tcp/4001`),
      endpoint: `https://example.org/${'a'.repeat(236)}`,
    }),
  )
  const bytes = encodeRegistration(record)
  assert.ok(bytes.length <= MAX_REGISTRATION_BYTES, `${bytes.length}`)
  assert.deepEqual(decodeRegistration(bytes, NOW), record)
})

test('expiry: past, now, and more than 30 days ahead are refused; 30 days exactly is fine', () => {
  const key = Ed25519KeyPair.generate()
  for (const expires of [NOW - 1, NOW, NOW + MAX_EXPIRY_MS + 1]) {
    const record = signRegistration(key, fields({ expires }))
    assert.throws(() => verifyRegistration(record, NOW), DirectoryExpiryError)
  }
  verifyRegistration(signRegistration(key, fields({ expires: NOW + MAX_EXPIRY_MS })), NOW)
})

test('non-canonical and garbage bytes are 400', () => {
  const record = signRegistration(Ed25519KeyPair.generate(), fields())
  assert.throws(() => decodeRegistration(Uint8Array.of(0xff, 0x00), NOW), DirectoryInvalidError)
  assert.throws(() => decodeRegistration(encode([1, 2, 3]), NOW), DirectoryInvalidError)
  const bytes = encodeRegistration(record)
  assert.throws(() => decodeRegistration(Uint8Array.of(...bytes, 0), NOW), DirectoryInvalidError)
})
