import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { Ed25519KeyPair } from '../identity/keys.ts'
import { didFromEd25519PublicKey } from '../identity/did-key.ts'
import { encode } from '../core/codec.ts'
import { equals } from '../core/bytes.ts'
import { decodeTx, encodeTx, signTx, verifyTxSignature, txHash, txVerifyItem, MAX_TX_BYTES } from './tx.ts'
import { verifySignatureDigest } from '../identity/keys.ts'
import { MempoolError, TxError } from './errors.ts'

const key = Ed25519KeyPair.generate()
const to = didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey)
const tx = signTx(key, { chainId: 'test', nonce: 0n, fee: 10n, kind: 'bank.transfer', body: { to, amount: 5n } })

test('a signed transaction round-trips through its encoding and verifies', () => {
  const bytes = encodeTx(tx)
  const back = decodeTx(bytes)
  assert.equal(back.sender, didFromEd25519PublicKey(key.publicKey))
  assert.equal(back.nonce, 0n)
  assert.equal(back.fee, 10n)
  assert.ok(verifyTxSignature(back))
  assert.deepEqual(txHash(bytes), txHash(encodeTx(back)))
})

test('changing any signed field breaks the signature', () => {
  for (const altered of [
    { ...tx, chainId: 'other' },
    { ...tx, nonce: 1n },
    { ...tx, fee: 11n },
    { ...tx, kind: 'bank.other' },
    { ...tx, body: { to, amount: 6n } },
    { ...tx, sender: didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey) },
  ]) {
    assert.equal(verifyTxSignature(decodeTx(encodeTx(altered))), false)
  }
})

test('what was signed, cut from the encoded bytes, is what encoding the transaction again gives (property)', () => {
  const signers = [key, Ed25519KeyPair.generate()]
  fc.assert(
    fc.property(
      fc.record({
        signer: fc.integer({ min: 0, max: 1 }),
        chainId: fc.string({ minLength: 1, maxLength: 64 }),
        nonce: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fee: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        kind: fc.constantFrom('bank.transfer', 'stake.bond', 'inference.settle', 'x.y'),
        body: fc.oneof(
          fc.record({ to: fc.constant(to), amount: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }),
          fc.dictionary(
            fc.string({ maxLength: 12 }),
            fc.oneof(fc.string(), fc.integer(), fc.uint8Array({ maxLength: 300 })),
          ),
          fc.uint8Array({ maxLength: 2_000 }),
        ),
      }),
      ({ signer, ...fields }) => {
        const signed = signTx(signers[signer] as Ed25519KeyPair, fields)
        const bytes = encodeTx(signed)
        const kept = Uint8Array.from(bytes)
        const decoded = decodeTx(bytes)
        const cut = txVerifyItem(decoded, bytes)
        assert.ok(equals(bytes, kept), "the caller's bytes are left as they were")
        const encoded = txVerifyItem(decoded)
        assert.ok(cut !== undefined && encoded !== undefined)
        assert.deepEqual(cut.digest, encoded.digest)
        assert.ok(verifySignatureDigest(cut.publicKey, cut.digest, cut.signature))
      },
    ),
    { numRuns: 300 },
  )
})

test("bytes that are not the transaction's own (another signature at the end, another shape) fall back to encoding it", () => {
  const other = signTx(key, { chainId: 'test', nonce: 1n, fee: 10n, kind: 'bank.transfer', body: { to, amount: 5n } })
  const own = txVerifyItem(tx)
  assert.ok(own !== undefined)
  for (const bytes of [encodeTx(other), encode({ a: 1 }), new Uint8Array(0), encodeTx(tx).subarray(0, 80)]) {
    const item = txVerifyItem(tx, bytes)
    assert.deepEqual(item?.digest, own.digest)
    assert.ok(verifySignatureDigest(own.publicKey, item.digest, item.signature))
  }
  // a forged envelope (the body changed, the signature kept) cut from its own bytes does not verify
  const forged = encodeTx({ ...tx, body: { to, amount: 6n } })
  const item = txVerifyItem(decodeTx(forged), forged)
  assert.ok(item !== undefined)
  assert.equal(verifySignatureDigest(item.publicKey, item.digest, item.signature), false)
})

test('malformed envelopes are TxError(malformed|oversized), never another error (fuzz)', () => {
  const bad = [
    encode({ chainId: 'x' }),
    encode({ ...tx, extra: 1 }),
    encode({ ...tx, nonce: -1 }),
    encode({ ...tx, fee: 'ten' }),
    encode({ ...tx, signature: new Uint8Array(10) }),
    encode({ ...tx, kind: 'Transfer' }),
    new Uint8Array(MAX_TX_BYTES + 1),
  ]
  for (const bytes of bad) assert.throws(() => decodeTx(bytes), TxError)
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      try {
        decodeTx(bytes)
      } catch (err) {
        assert.ok(err instanceof TxError, String(err))
      }
    }),
    { numRuns: 2000 },
  )
  const valid = encodeTx(tx)
  fc.assert(
    fc.property(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 1, max: 255 }), (i, delta) => {
      const mutated = Uint8Array.from(valid)
      mutated[i] = ((mutated[i] ?? 0) + delta) & 0xff
      try {
        const decoded = decodeTx(mutated)
        assert.equal(verifyTxSignature(decoded), false, 'a mutated transaction never verifies')
      } catch (err) {
        assert.ok(err instanceof TxError, String(err))
      }
    }),
    { numRuns: 1000 },
  )
})

test('a TxError is a refusal, not a fault: it carries no stack trace, and the limit for other errors is kept', () => {
  const before = Error.stackTraceLimit
  const err = new MempoolError('full', 'the mempool is full; raise the fee', { action: 'ignore' })
  assert.ok(err instanceof TxError && err.reason === 'full' && err.action === 'ignore')
  assert.doesNotMatch(err.stack ?? '', /\n\s+at /)
  assert.equal(Error.stackTraceLimit, before)
  assert.match(new Error('other').stack ?? '', /\n\s+at /, 'other errors still have theirs')
})
