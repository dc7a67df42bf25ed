import { test } from 'node:test'
import assert from 'node:assert/strict'
import { decode, encode } from '../core/codec.ts'
import { toHex } from '../core/bytes.ts'
import { sha256 } from '../core/hash.ts'
import { Ed25519KeyPair } from '../identity/keys.ts'
import { didFromEd25519PublicKey } from '../identity/did-key.ts'
import {
  boxOpen,
  envelopeHash,
  openPayment,
  PAYMENT_ID_LENGTH,
  sealPayment,
  termsHash,
  type TransferTerms,
} from './envelope.ts'

const CHAIN = 'donghae-test-1'
const alice = Ed25519KeyPair.fromSeed(new Uint8Array(32).fill(1))
const bob = Ed25519KeyPair.fromSeed(new Uint8Array(32).fill(2))
const ALICE = didFromEd25519PublicKey(alice.publicKey)
const BOB = didFromEd25519PublicKey(bob.publicKey)

test('a payment with a memo and an invoice opens for its recipient with everything the sender put in', () => {
  const invoice = { name: 'invoice-0042.pdf', bytes: Uint8Array.from({ length: 3000 }, (_, i) => i % 251) }
  const sealed = sealPayment(alice, {
    chainId: CHAIN,
    to: BOB,
    amount: 12_345n,
    memo: 'dinner at 순대국집 🍲',
    invoice,
    createdAt: 1_700_000_000_000,
  })
  assert.equal(sealed.details.from, ALICE)
  assert.equal(sealed.details.to, BOB)
  assert.deepEqual(sealed.envelopeHash, sha256(sealed.envelope))
  assert.deepEqual(sealed.envelopeHash, envelopeHash(sealed.envelope))

  const opened = openPayment(bob, sealed.envelope)
  assert.deepEqual(opened.details, sealed.details)
  assert.equal(opened.details.memo, 'dinner at 순대국집 🍲')
  assert.equal(opened.details.amount, 12_345n)
  assert.equal(opened.details.createdAt, 1_700_000_000_000)
  assert.equal(opened.details.invoice?.name, 'invoice-0042.pdf')
  assert.deepEqual(opened.details.invoice?.bytes, invoice.bytes)
  assert.deepEqual(opened.envelopeHash, sealed.envelopeHash)
  assert.deepEqual(opened.terms, sealed.terms)
  assert.ok(!Buffer.from(sealed.envelope).includes(Buffer.from('dinner')), 'the memo is not in the clear')
})

test('a payment without memo or invoice round-trips with an empty memo and no invoice', () => {
  const sealed = sealPayment(alice, { chainId: CHAIN, to: BOB, amount: 1n })
  const opened = openPayment(bob, sealed.envelope)
  assert.equal(opened.details.memo, '')
  assert.equal(opened.details.invoice, undefined)
  assert.ok(!('invoice' in opened.details))
  assert.equal(opened.details.amount, 1n)
  // amounts beyond 2^53 survive (dag-cbor decodes them as bigint, smaller ones as numbers)
  const big = sealPayment(alice, { chainId: CHAIN, to: BOB, amount: 2n ** 64n - 1n })
  assert.equal(openPayment(bob, big.envelope).details.amount, 2n ** 64n - 1n)
})

test('payment ids are 16 random bytes, unique per payment; sealing twice gives different envelopes', () => {
  const ids = new Set<string>()
  const envelopes = new Set<string>()
  for (let i = 0; i < 200; i++) {
    const sealed = sealPayment(alice, { chainId: CHAIN, to: BOB, amount: 5n, createdAt: 1 })
    assert.equal(sealed.details.id.length, PAYMENT_ID_LENGTH)
    ids.add(toHex(sealed.details.id))
    envelopes.add(toHex(sealed.envelopeHash))
  }
  assert.equal(ids.size, 200)
  assert.equal(envelopes.size, 200)
  // the same id and details still seal to a new envelope (a fresh ephemeral key each time)
  const id = new Uint8Array(16).fill(9)
  const a = sealPayment(alice, { chainId: CHAIN, to: BOB, amount: 5n, id, createdAt: 1 })
  const b = sealPayment(alice, { chainId: CHAIN, to: BOB, amount: 5n, id, createdAt: 1 })
  assert.deepEqual(a.terms, b.terms)
  assert.notDeepEqual(a.envelopeHash, b.envelopeHash)
})

test('the terms hash binds the amount, the parties, the chain and the id', () => {
  const terms: TransferTerms = { chainId: CHAIN, from: ALICE, to: BOB, amount: 100n, id: new Uint8Array(16) }
  const base = termsHash(terms)
  assert.equal(base.length, 32)
  assert.deepEqual(termsHash({ ...terms }), base, 'deterministic')
  assert.deepEqual(
    base,
    sha256(encode({ chainId: CHAIN, from: ALICE, to: BOB, amount: 100n, id: new Uint8Array(16) })),
    'the documented construction',
  )
  const variants: TransferTerms[] = [
    { ...terms, amount: 101n },
    { ...terms, amount: 99n },
    { ...terms, from: BOB },
    { ...terms, to: ALICE },
    { ...terms, chainId: 'donghae-test-2' },
    { ...terms, id: new Uint8Array(16).fill(1) },
  ]
  const seen = new Set([toHex(base)])
  for (const v of variants) seen.add(toHex(termsHash(v)))
  assert.equal(seen.size, variants.length + 1)

  const sealed = sealPayment(alice, { chainId: CHAIN, to: BOB, amount: 100n, id: terms.id })
  assert.deepEqual(sealed.terms, base, 'the envelope carries the terms of its transfer')
  assert.deepEqual(openPayment(bob, sealed.envelope).terms, base)
})

test('an envelope is exactly the inner payload plus the 48 bytes of crypto_box_seal', () => {
  for (const memo of ['', 'x', 'a memo of some length '.repeat(20)]) {
    const sealed = sealPayment(alice, { chainId: CHAIN, to: BOB, amount: 7n, memo, createdAt: 42 })
    const x = bob.toX25519()
    const inner = boxOpen(sealed.envelope, x.publicKey, x.exportPrivateKey())
    assert.ok(inner !== undefined)
    assert.equal(sealed.envelope.length, inner.length + 48)
    // the inner payload is dag-cbor { d, t, sig }, nothing more
    const raw = decode<{ d: Record<string, unknown>; t: Uint8Array; sig: Uint8Array }>(inner)
    assert.deepEqual(Object.keys(raw).sort(), ['d', 'sig', 't'])
    assert.equal(raw.sig.length, 64)
    const d = sealed.details
    const expected = encode({
      d: { v: 1, id: d.id, chainId: d.chainId, from: d.from, to: d.to, amount: d.amount, memo, createdAt: 42 },
      t: sealed.terms,
      sig: raw.sig,
    })
    assert.deepEqual(inner, expected)
  }
})
