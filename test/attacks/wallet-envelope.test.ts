// Attacks on payment envelopes (issue 14, src/wallet/envelope.ts): an envelope is sealed to the
// recipient's X25519 key with crypto_box_seal and signed inside by the sender. Each test below
// builds a real hostile envelope (sealed with the same libsodium call the wallet uses, signed with
// real keys) and checks that `openPayment` / `matchTransfer` refuse it with the documented error;
// each starts from a control that the same construction, untouched, is accepted, so a refusal
// is caused by the attack and by nothing else.
import { test, mock } from 'node:test'
import assert from 'node:assert/strict'
import sodium from 'sodium-native'
import { encode } from '../../src/core/codec.ts'
import { utf8 } from '../../src/core/bytes.ts'
import { sha256 } from '../../src/core/hash.ts'
import { Ed25519KeyPair } from '../../src/identity/keys.ts'
import { decodeTx, encodeTx, signTx } from '../../src/chain/tx.ts'
import { didFromEd25519PublicKey, didFromX25519PublicKey } from '../../src/identity/did-key.ts'
import {
  boxSeal,
  EnvelopeError,
  EnvelopeFormatError,
  EnvelopeMismatchError,
  EnvelopeNotForUsError,
  EnvelopeSignatureError,
  MAX_ENVELOPE_BYTES,
  MAX_INVOICE_BYTES,
  MAX_MEMO_BYTES,
  matchTransfer,
  openPayment,
  PAYMENT_SIGNING_KIND,
  recipientKey,
  sealPayment,
  termsHash,
  type CommittedTransfer,
  type OpenedPayment,
} from '../../src/wallet/envelope.ts'

const CHAIN = 'donghae-attack-1'
const alice = Ed25519KeyPair.generate() // an honest sender
const bob = Ed25519KeyPair.generate() // the victim recipient
const carol = Ed25519KeyPair.generate() // another recipient
const mallory = Ed25519KeyPair.generate() // the attacker
const did = (k: Ed25519KeyPair): string => didFromEd25519PublicKey(k.publicKey)

/** Details as envelope.ts encodes them, from alice to bob; override any field (undefined removes it). */
function details(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const d: Record<string, unknown> = {
    v: 1,
    id: new Uint8Array(16).fill(7),
    chainId: CHAIN,
    from: did(alice),
    to: did(bob),
    amount: 500n,
    memo: 'rent for March',
    createdAt: 1_700_000_000_000,
    ...overrides,
  }
  for (const [k, v] of Object.entries(d)) if (v === undefined) delete d[k]
  return d
}

function termsOf(d: Record<string, unknown>): Uint8Array {
  return termsHash({
    chainId: d.chainId as string,
    from: d.from as string,
    to: d.to as string,
    amount: d.amount as bigint,
    id: d.id as Uint8Array,
  })
}

/**
 * A hand-built envelope: inner = dag-cbor({ d, t, sig }) exactly as sealPayment makes it, signed by
 * `signer` over dag-cbor({ d, t }) for kind wallet.payment, sealed with crypto_box_seal to `to`.
 */
function craft(
  d: Record<string, unknown>,
  options: { signer?: Ed25519KeyPair; terms?: Uint8Array; to?: Ed25519KeyPair } = {},
): Uint8Array {
  const t = options.terms ?? termsOf(d)
  const sig = (options.signer ?? alice).sign(PAYMENT_SIGNING_KIND, encode({ d, t }))
  return boxSeal(encode({ d, t, sig }), recipientKey(did(options.to ?? bob)))
}

function refused(envelope: Uint8Array, recipient: Ed25519KeyPair = bob): EnvelopeError {
  let caught: unknown
  try {
    openPayment(recipient, envelope)
  } catch (err) {
    caught = err
  }
  assert.ok(caught instanceof EnvelopeError, `expected an EnvelopeError, got ${String(caught)}`)
  return caught
}

test('control: the hand-built envelope opens, so every refusal below is the attack alone', () => {
  const opened = openPayment(bob, craft(details()))
  assert.equal(opened.details.amount, 500n)
  assert.equal(opened.details.from, did(alice))
  assert.equal(opened.details.memo, 'rent for March')
  // and it is byte-for-byte what sealPayment builds (same inner, modulo the seal's randomness)
  const sealed = sealPayment(alice, {
    chainId: CHAIN,
    to: did(bob),
    amount: 500n,
    memo: 'rent for March',
    id: new Uint8Array(16).fill(7),
    createdAt: 1_700_000_000_000,
  })
  assert.deepEqual(openPayment(bob, sealed.envelope).details, opened.details)
})

test("another recipient's envelope: sealed to carol, bob cannot open it (EnvelopeNotForUsError)", () => {
  const sealed = sealPayment(alice, { chainId: CHAIN, to: did(carol), amount: 10n })
  assert.equal(openPayment(carol, sealed.envelope).details.amount, 10n)
  assert.ok(refused(sealed.envelope) instanceof EnvelopeNotForUsError)
  assert.ok(refused(sealed.envelope, mallory) instanceof EnvelopeNotForUsError)
})

test("a payment re-sealed to bob that names carol as its recipient is not bob's (EnvelopeNotForUsError)", () => {
  // carol received a genuine payment from alice, opened it, and re-seals its signed inner to bob
  // to make bob believe alice paid him: the seal is bob's, the signature alice's, the recipient carol.
  const d = details({ to: did(carol) })
  assert.equal(openPayment(carol, craft(d, { to: carol })).details.to, did(carol))
  const err = refused(craft(d, { to: bob }))
  assert.ok(err instanceof EnvelopeNotForUsError, String(err))
  assert.match(err.message, /recipient/)
})

test('a flipped bit anywhere in the box (ephemeral key, ciphertext or tag) is refused as not for us', () => {
  const sealed = sealPayment(alice, { chainId: CHAIN, to: did(bob), amount: 3n, memo: 'm' })
  assert.equal(openPayment(bob, sealed.envelope).details.amount, 3n)
  let tried = 0
  for (let byte = 0; byte < sealed.envelope.length; byte++) {
    for (let bit = 0; bit < 8; bit++) {
      const damaged = Uint8Array.from(sealed.envelope)
      damaged[byte] = (damaged[byte] ?? 0) ^ (1 << bit)
      const err = refused(damaged)
      assert.ok(err instanceof EnvelopeNotForUsError, `byte ${byte} bit ${bit}: ${err.name}`)
      tried++
    }
  }
  assert.equal(tried, sealed.envelope.length * 8)
  // truncated, extended and empty boxes too
  for (const cut of [
    sealed.envelope.subarray(0, sealed.envelope.length - 1),
    sealed.envelope.subarray(0, 48),
    sealed.envelope.subarray(0, 47),
    new Uint8Array(0),
    Uint8Array.from([...sealed.envelope, 0]),
  ])
    assert.ok(refused(cut) instanceof EnvelopeNotForUsError, `length ${cut.length}`)
})

test('re-signed by someone else claiming to be the sender: mallory signs details "from alice" (EnvelopeSignatureError)', () => {
  const forged = craft(details({ amount: 1_000_000n }), { signer: mallory })
  const err = refused(forged)
  assert.ok(err instanceof EnvelopeSignatureError, String(err))
  assert.match(err.message, /signature/)
  // the same details signed by alice herself open: the signer is the only difference
  assert.equal(openPayment(bob, craft(details({ amount: 1_000_000n }), { signer: alice })).details.amount, 1_000_000n)
  // a signature of alice's for another kind does not pass as a payment signature either
  const d = details()
  const t = termsOf(d)
  const wrongKind = alice.sign('bank.transfer', encode({ d, t }))
  const box = boxSeal(encode({ d, t, sig: wrongKind }), recipientKey(did(bob)))
  assert.ok(refused(box) instanceof EnvelopeSignatureError)
})

test('the inner transfer hash does not match the details (EnvelopeSignatureError), even when validly signed', () => {
  // alice signs terms for 5 units but details saying 500: the chain's transfer would carry 5
  const d = details({ amount: 500n })
  const t = termsOf(details({ amount: 5n }))
  const err = refused(craft(d, { terms: t }))
  assert.ok(err instanceof EnvelopeSignatureError, String(err))
  assert.match(err.message, /transfer hash/)
  for (const field of [
    { chainId: 'other-chain' },
    { from: did(mallory) },
    { to: did(carol) },
    { id: new Uint8Array(16) },
  ]) {
    const e = refused(craft(details(), { terms: termsOf(details(field)) }))
    assert.ok(e instanceof EnvelopeSignatureError, `${Object.keys(field)[0]}: ${String(e)}`)
  }
  // terms of the wrong length / not bytes
  assert.ok(refused(craft(details(), { terms: sha256(utf8('x')).subarray(0, 31) })) instanceof EnvelopeSignatureError)
})

test('details this code does not read are EnvelopeFormatErrors, even when sealed and signed by the real sender', () => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ['unknown field', details({ refundTo: did(mallory) })],
    ['version 2', details({ v: 2 })],
    ['version 0', details({ v: 0 })],
    ['no version', details({ v: undefined })],
    ['memo one byte over', details({ memo: 'm'.repeat(MAX_MEMO_BYTES + 1) })],
    ['memo of multi-byte characters over the byte limit', details({ memo: '가'.repeat(342) })],
    ['zero amount', details({ amount: 0n })],
    ['negative amount', details({ amount: -5n })],
    ['amount as text', details({ amount: '500' })],
    ['invoice one byte over', details({ invoice: { name: 'a.pdf', bytes: new Uint8Array(MAX_INVOICE_BYTES + 1) } })],
    ['invoice name with a slash', details({ invoice: { name: '../../etc/passwd', bytes: new Uint8Array(1) } })],
    ['invoice empty name', details({ invoice: { name: '', bytes: new Uint8Array(1) } })],
    ['invoice not a map', details({ invoice: new Uint8Array(4) })],
    ['id of 15 bytes', details({ id: new Uint8Array(15) })],
    ['id as text', details({ id: 'aaaaaaaaaaaaaaaa' })],
    ['createdAt negative', details({ createdAt: -1 })],
    ['from not a did:key', details({ from: 'did:web:example.com' })],
    ['from an X25519 did:key', details({ from: didFromX25519PublicKey(bob.toX25519().publicKey) })],
    ['chainId not text', details({ chainId: 1 })],
  ]
  for (const [name, d] of cases) {
    let box: Uint8Array
    try {
      box = craft(d)
    } catch (err) {
      assert.fail(`${name}: the attacker could not even build it: ${String(err)}`)
    }
    const err = refused(box)
    assert.ok(err instanceof EnvelopeFormatError, `${name}: ${err.name}: ${err.message}`)
  }
  // the memo exactly at the limit is accepted (the limit is the limit, not one below it)
  assert.equal(
    openPayment(bob, craft(details({ memo: 'm'.repeat(MAX_MEMO_BYTES) }))).details.memo.length,
    MAX_MEMO_BYTES,
  )
})

test('an inner payload that is not a signed payment, or hostile CBOR, is an EnvelopeFormatError', () => {
  const d = details()
  const t = termsOf(d)
  const sig = alice.sign(PAYMENT_SIGNING_KIND, encode({ d, t }))
  const seal = (inner: Uint8Array): Uint8Array => boxSeal(inner, recipientKey(did(bob)))
  // a byte string header claiming 4 GiB, with 10 bytes behind it
  const hugeClaim = Uint8Array.from([0x5a, 0xff, 0xff, 0xff, 0xff, ...new Uint8Array(10)])
  // a map header claiming 2^32 - 1 entries
  const hugeMap = Uint8Array.from([0xba, 0xff, 0xff, 0xff, 0xff, 0x61, 0x64])
  // 20,000 nested arrays: deeper than any decoder's stack
  const deep = new Uint8Array(20_001).fill(0x81)
  deep[20_000] = 0x01
  // 50 KiB of junk inside a valid seal
  const junk = new Uint8Array(50 * 1024).fill(0xff)
  // a valid payment followed by trailing bytes (not canonical dag-cbor)
  const trailing = Uint8Array.from([...encode({ d, t, sig }), 0x00])
  // non-canonical: keys out of order (hand-written map with 'sig' before 'd')
  const cases: Array<[string, Uint8Array]> = [
    ['not cbor', utf8('hello, bob')],
    ['a 4 GiB byte string claim', hugeClaim],
    ['a 2^32 entry map claim', hugeMap],
    ['20,000 nested arrays', deep],
    ['50 KiB of 0xff', junk],
    ['trailing bytes', trailing],
    ['a list, not a map', encode([d, t, sig])],
    ['no signature', encode({ d, t })],
    ['no terms', encode({ d, sig })],
    ['details not a map', encode({ d: 'pay 500', t, sig })],
    ['an empty inner', new Uint8Array(0)],
  ]
  for (const [name, inner] of cases) {
    const err = refused(seal(inner))
    assert.ok(err instanceof EnvelopeFormatError, `${name}: ${err.name}: ${err.message}`)
  }
})

test('an envelope above MAX_ENVELOPE_BYTES is refused before any crypto runs', (t) => {
  // a real box sealed to bob, one byte over the limit: without the size check it would be opened
  const inner = encode({ pad: new Uint8Array(MAX_ENVELOPE_BYTES + 1 - 48 - 8) })
  const box = boxSeal(inner, recipientKey(did(bob)))
  assert.ok(box.length > MAX_ENVELOPE_BYTES && box.length < MAX_ENVELOPE_BYTES + 8, String(box.length))
  const seal = t.mock.method(sodium, 'crypto_box_seal_open')
  const derive = mock.method(bob, 'toX25519')
  try {
    const err = refused(box)
    assert.ok(err instanceof EnvelopeFormatError, String(err))
    assert.match(err.message, /at most/)
    assert.equal(seal.mock.callCount(), 0, 'crypto_box_seal_open must not run')
    assert.equal(derive.mock.callCount(), 0, 'the recipient key must not even be derived')
    // control: the same instrumentation sees the crypto of an envelope within the limit
    refused(boxSeal(encode({ pad: new Uint8Array(1000) }), recipientKey(did(bob))))
    assert.equal(seal.mock.callCount(), 1)
    assert.ok(derive.mock.callCount() <= 1, 'derived at most once (it is cached per key pair)')
    // 10 MiB of garbage: refused as fast, no crypto either
    assert.ok(refused(new Uint8Array(10 * 1024 * 1024)) instanceof EnvelopeFormatError)
    assert.equal(seal.mock.callCount(), 1)
  } finally {
    derive.mock.restore()
  }
})

/** A committed bank.transfer matching `opened` (the honest case), with `change` applied. */
function transfer(opened: OpenedPayment, change: Partial<CommittedTransfer> & { body?: Record<string, unknown> } = {}) {
  const body = { to: opened.details.to, amount: opened.details.amount, envelope: opened.envelopeHash, ...change.body }
  return {
    chainId: opened.details.chainId,
    sender: opened.details.from,
    kind: 'bank.transfer',
    ...change,
    body,
  }
}

function mismatch(opened: OpenedPayment, tx: CommittedTransfer): string[] {
  let caught: unknown
  try {
    matchTransfer(opened, tx)
  } catch (err) {
    caught = err
  }
  assert.ok(caught instanceof EnvelopeMismatchError, `expected EnvelopeMismatchError, got ${String(caught)}`)
  const problems = caught.details.problems as string[]
  assert.ok(Array.isArray(problems) && problems.length > 0)
  for (const p of problems) assert.ok(caught.message.includes(p), 'the message lists every problem')
  return problems
}

test('matchTransfer refuses a committed transfer that differs in amount, recipient, sender, chain, kind or envelope hash', () => {
  const sealed = sealPayment(alice, { chainId: CHAIN, to: did(bob), amount: 500n, memo: 'rent' })
  const opened = openPayment(bob, sealed.envelope)
  matchTransfer(opened, transfer(opened)) // control: the honest transfer matches
  const other = sealPayment(alice, { chainId: CHAIN, to: did(bob), amount: 500n, memo: 'rent' })
  const cases: Array<[string, CommittedTransfer, RegExp]> = [
    ['amount lower', transfer(opened, { body: { amount: 5n } }), /amount 5 /],
    ['amount higher', transfer(opened, { body: { amount: 501n } }), /amount 501 /],
    ['recipient', transfer(opened, { body: { to: did(mallory) } }), /paid to /],
    ['sender', transfer(opened, { sender: did(mallory) }), /sent by /],
    ['chainId', transfer(opened, { chainId: 'donghae-other' }), /chain donghae-other/],
    ['kind', transfer(opened, { kind: 'staking.delegate' }), /not bank\.transfer/],
    // a genuine second envelope with identical details: only its hash differs
    ['envelope hash', transfer(opened, { body: { envelope: other.envelopeHash } }), /another envelope hash/],
    ['no envelope hash', transfer(opened, { body: { envelope: undefined } }), /another envelope hash/],
    [
      'envelope hash truncated',
      transfer(opened, { body: { envelope: opened.envelopeHash.subarray(0, 31) } }),
      /another envelope hash/,
    ],
  ]
  for (const [name, tx, pattern] of cases) {
    const problems = mismatch(opened, tx)
    assert.equal(problems.length, 1, `${name}: ${problems.join('; ')}`)
    assert.match(problems[0] ?? '', pattern, name)
  }
  // all at once: every problem is listed
  const all = mismatch(opened, {
    chainId: 'donghae-other',
    sender: did(mallory),
    kind: 'bank.transfer',
    body: { to: did(mallory), amount: 1n, envelope: other.envelopeHash },
  })
  assert.equal(all.length, 5, all.join('; '))
  // a body that is not a map at all
  assert.ok(mismatch(opened, { ...transfer(opened), body: 'pay' }).length >= 3)
})

// Bugs these found in envelope.ts (fixed): a float amount, the chain's number-typed amount, a low-order key.
test('a non-integer amount (a CBOR float) is an EnvelopeFormatError, not a RangeError', () => {
  const err = refused(craft(details({ amount: 1.5 })))
  assert.ok(err instanceof EnvelopeFormatError, String(err))
})

test('matchTransfer accepts the honest transfer as the chain decodes it (amount a number below 2^53)', () => {
  const sealed = sealPayment(alice, { chainId: CHAIN, to: did(bob), amount: 500n })
  const opened = openPayment(bob, sealed.envelope)
  const tx = signTx(alice, {
    chainId: CHAIN,
    nonce: 0n,
    fee: 1n,
    kind: 'bank.transfer',
    body: { to: did(bob), amount: 500n, envelope: sealed.envelopeHash },
  })
  const committed = decodeTx(encodeTx(tx))
  matchTransfer(opened, committed)
})

test('paying a did:key whose X25519 key is a low-order point is an EnvelopeFormatError, not a bare libsodium Error', () => {
  for (const to of [
    didFromX25519PublicKey(new Uint8Array(32)),
    didFromEd25519PublicKey(Uint8Array.from([1, ...new Uint8Array(31)])), // the Ed25519 identity point
  ])
    assert.throws(() => sealPayment(alice, { chainId: CHAIN, to, amount: 1n }), EnvelopeFormatError, to)
})
