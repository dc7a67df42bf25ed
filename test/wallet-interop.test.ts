// Payment envelopes (issue 14, src/wallet/envelope.ts) are libsodium's crypto_box_seal to the
// X25519 twin of the recipient's Ed25519 did:key, signed inside with the sender's Ed25519 key over
// sha256("donghae/wallet.payment/v1" ‖ dag-cbor({ d, t })) (src/core/signing.ts). The wallet seals
// through sodium-native (libsodium built natively); here two independent libsodium builds open
// what it seals, and it opens what they seal, each deriving the X25519 keys from the Ed25519 keys
// itself (crypto_sign_ed25519_pk_to_curve25519 / _sk_to_curve25519):
//   - libsodium-wrappers: libsodium compiled to WebAssembly by its authors;
//   - PyNaCl (Debian's python3-nacl over the system libsodium), run as a child process, keys and
//     boxes in hex on stdin. Skipped, with the reason, where python3 cannot import nacl.
// And no false positives: a box for one recipient opens for no other, in either implementation.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import sodium from 'libsodium-wrappers'
import { concat, fromHex, fromUtf8, toHex, utf8 } from '../src/core/bytes.ts'
import { decode, encode } from '../src/core/codec.ts'
import { Ed25519KeyPair } from '../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../src/identity/did-key.ts'
import {
  boxOpen,
  EnvelopeNotForUsError,
  openPayment,
  PAYMENT_SIGNING_KIND,
  recipientKey,
  sealPayment,
} from '../src/wallet/envelope.ts'

await sodium.ready

const CHAIN = 'donghae-interop-1'
const TAG = utf8(`donghae/${PAYMENT_SIGNING_KIND}/v1`)
const seed = (byte: number): Uint8Array => new Uint8Array(32).fill(byte)
const ALICE_SEED = seed(0xa1)
const BOB_SEED = seed(0xb0)
const CAROL_SEED = seed(0xc4)
const alice = Ed25519KeyPair.fromSeed(ALICE_SEED)
const bob = Ed25519KeyPair.fromSeed(BOB_SEED)
const carol = Ed25519KeyPair.fromSeed(CAROL_SEED)
const did = (k: Ed25519KeyPair): string => didFromEd25519PublicKey(k.publicKey)

interface Inner {
  d: Record<string, unknown>
  t: Uint8Array
  sig: Uint8Array
}

/** libsodium-wrappers' own view of an Ed25519 seed: its key pair and the X25519 twin it derives. */
function sodiumKeys(ed25519Seed: Uint8Array): {
  publicKey: Uint8Array
  secretKey: Uint8Array
  xPublic: Uint8Array
  xSecret: Uint8Array
} {
  const kp = sodium.crypto_sign_seed_keypair(ed25519Seed) // privateKey = seed ‖ public (64 bytes)
  assert.equal(kp.privateKey.length, 64)
  return {
    publicKey: kp.publicKey,
    secretKey: kp.privateKey,
    xPublic: sodium.crypto_sign_ed25519_pk_to_curve25519(kp.publicKey),
    xSecret: sodium.crypto_sign_ed25519_sk_to_curve25519(kp.privateKey),
  }
}

/** SHA-256 straight from node:crypto (the standard libsodium.js build has no SHA-256). */
const sha256 = (bytes: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(bytes).digest())

/** envelope.ts's terms hash and signed digest (src/core/signing.ts), rebuilt here from their definitions. */
function sodiumTerms(d: Record<string, unknown>): Uint8Array {
  return sha256(encode({ chainId: d.chainId, from: d.from, to: d.to, amount: d.amount, id: d.id }))
}
function sodiumDigest(d: Record<string, unknown>, t: Uint8Array): Uint8Array {
  return sha256(concat(TAG, encode({ d, t })))
}

test('the Ed25519 → X25519 keys agree: libsodium-wrappers derives what Donghae derives', () => {
  for (const [key, s] of [
    [alice, ALICE_SEED],
    [bob, BOB_SEED],
  ] as const) {
    const ls = sodiumKeys(s)
    assert.deepEqual(ls.publicKey, key.publicKey)
    assert.deepEqual(ls.xPublic, key.toX25519().publicKey)
    assert.deepEqual(ls.xPublic, recipientKey(did(key)), 'the key the envelope is sealed to')
    assert.deepEqual(ls.xSecret, key.toX25519().exportPrivateKey())
  }
})

test('libsodium-wrappers opens an envelope sealed by sealPayment and verifies the signature inside', () => {
  const invoice = { name: 'march.pdf', bytes: Uint8Array.from({ length: 2048 }, (_, i) => (i * 31) % 256) }
  const sealed = sealPayment(alice, {
    chainId: CHAIN,
    to: did(bob),
    amount: 12_345n,
    memo: 'rent for March 🏠',
    invoice,
    createdAt: 1_700_000_000_000,
  })
  const ls = sodiumKeys(BOB_SEED)
  const inner = sodium.crypto_box_seal_open(sealed.envelope, ls.xPublic, ls.xSecret)
  assert.equal(inner.length + sodium.crypto_box_SEALBYTES, sealed.envelope.length)
  const { d, t, sig } = decode<Inner>(inner)
  assert.equal(d.memo, 'rent for March 🏠')
  assert.equal(BigInt(d.amount as number | bigint), 12_345n)
  assert.equal(d.from, did(alice))
  assert.equal(d.to, did(bob))
  assert.equal(d.chainId, CHAIN)
  assert.deepEqual((d.invoice as { bytes: Uint8Array }).bytes, invoice.bytes)
  assert.deepEqual(t, sodiumTerms(d), 'the terms hash, recomputed from its definition')
  assert.deepEqual(t, sealed.terms)
  const digest = sodiumDigest(d, t)
  assert.equal(sodium.crypto_sign_verify_detached(sig, digest, sodiumKeys(ALICE_SEED).publicKey), true)
  // the verification is real: not by another key, not over other details
  assert.equal(sodium.crypto_sign_verify_detached(sig, digest, bob.publicKey), false)
  assert.equal(
    sodium.crypto_sign_verify_detached(sig, sodiumDigest({ ...d, amount: 12_346n }, t), alice.publicKey),
    false,
  )
})

test('sealPayment opens an envelope built, signed and sealed entirely by libsodium-wrappers', () => {
  const aliceLs = sodiumKeys(ALICE_SEED)
  const d = {
    v: 1,
    id: sodium.randombytes_buf(16),
    chainId: CHAIN,
    from: did(alice),
    to: did(bob),
    amount: 777n,
    memo: 'sealed by libsodium.js',
    createdAt: 1_700_000_000_123,
  }
  const t = sodiumTerms(d)
  const sig = sodium.crypto_sign_detached(sodiumDigest(d, t), aliceLs.secretKey)
  assert.deepEqual(sig, alice.sign(PAYMENT_SIGNING_KIND, encode({ d, t })), 'Ed25519 is deterministic')
  const box = sodium.crypto_box_seal(encode({ d, t, sig }), sodium.crypto_sign_ed25519_pk_to_curve25519(bob.publicKey))
  const opened = openPayment(bob, box)
  assert.equal(opened.details.amount, 777n)
  assert.equal(opened.details.memo, 'sealed by libsodium.js')
  assert.equal(opened.details.from, did(alice))
  assert.deepEqual(opened.terms, t)
  // and plain bytes through the low-level boxOpen
  const message = sodium.randombytes_buf(1000)
  const x = bob.toX25519()
  assert.deepEqual(boxOpen(sodium.crypto_box_seal(message, x.publicKey), x.publicKey, x.exportPrivateKey()), message)
})

test('no false positives: a box for bob opens for carol in neither implementation', () => {
  const sealed = sealPayment(alice, { chainId: CHAIN, to: did(bob), amount: 5n })
  const carolLs = sodiumKeys(CAROL_SEED)
  assert.throws(() => sodium.crypto_box_seal_open(sealed.envelope, carolLs.xPublic, carolLs.xSecret))
  // carol's secret with bob's public key (the nonce then matches): still no
  const bobLs = sodiumKeys(BOB_SEED)
  assert.throws(() => sodium.crypto_box_seal_open(sealed.envelope, bobLs.xPublic, carolLs.xSecret))
  assert.ok(sodium.crypto_box_seal_open(sealed.envelope, bobLs.xPublic, bobLs.xSecret).length > 0, 'control')

  const theirs = sodium.crypto_box_seal(utf8('for bob only'), bobLs.xPublic)
  const cx = carol.toX25519()
  assert.equal(boxOpen(theirs, cx.publicKey, cx.exportPrivateKey()), undefined)
  assert.throws(() => openPayment(carol, theirs), EnvelopeNotForUsError)
  const bx = bob.toX25519()
  assert.deepEqual(boxOpen(theirs, bx.publicKey, bx.exportPrivateKey()), utf8('for bob only'), 'control')
})

// --- PyNaCl (Debian python3-nacl, system libsodium) ----------------------------------------------

/**
 * Reads one JSON request on stdin, answers one JSON line. "open": derive bob's X25519 keys from
 * his Ed25519 seed, open the box, and check the sender's signature over the signed payload cut
 * from the canonical dag-cbor { d, t, sig } (keys in length-first order: the map header, then
 * 'd' and 't', then 'sig' with its 64 bytes last): sha256(tag ‖ 0xa2 ‖ inner[1:-70]). "seal":
 * sign the given dag-cbor { d, t } as the sender, append the signature the same way, seal it to
 * the recipient's Ed25519 public key converted by libsodium.
 */
const PYTHON = String.raw`
import sys, json, hashlib
import nacl.exceptions
from nacl.bindings import crypto_sign_seed_keypair, crypto_sign_ed25519_pk_to_curve25519, crypto_sign_ed25519_sk_to_curve25519
from nacl.public import PrivateKey, PublicKey, SealedBox
from nacl.signing import SigningKey, VerifyKey
req = json.load(sys.stdin)
h = bytes.fromhex
tag = req['tag'].encode()
SIG_ENTRY = b'\x63sig\x58\x40'
if req['op'] == 'open':
    pk, sk = crypto_sign_seed_keypair(h(req['seed']))
    xpk, xsk = crypto_sign_ed25519_pk_to_curve25519(pk), crypto_sign_ed25519_sk_to_curve25519(sk)
    key = PrivateKey(xsk)
    assert bytes(key.public_key) == xpk
    try:
        inner = SealedBox(key).decrypt(h(req['box']))
    except nacl.exceptions.CryptoError as e:
        print(json.dumps({'opened': False, 'error': str(e)}))
        sys.exit(0)
    out = {'opened': True, 'inner': inner.hex(), 'xpk': xpk.hex()}
    if req.get('sender'):
        assert inner[0] == 0xa3 and inner[-70:-64] == SIG_ENTRY, 'not a { d, t, sig } map'
        sig, payload = inner[-64:], b'\xa2' + inner[1:-70]
        digest = hashlib.sha256(tag + payload).digest()
        def verifies(pub, msg):
            try:
                VerifyKey(pub).verify(msg, sig)
                return True
            except nacl.exceptions.BadSignatureError:
                return False
        out['payload'] = payload.hex()
        out['signed'] = verifies(h(req['sender']), digest)
        out['signedByOther'] = verifies(pk, digest)
        out['signedOtherDigest'] = verifies(h(req['sender']), hashlib.sha256(tag + payload + b'\x00').digest())
    print(json.dumps(out))
elif req['op'] == 'seal':
    payload = h(req['payload'])
    assert payload[0] == 0xa2
    sig = SigningKey(h(req['seed'])).sign(hashlib.sha256(tag + payload).digest()).signature
    inner = b'\xa3' + payload[1:] + SIG_ENTRY + sig
    xpk = crypto_sign_ed25519_pk_to_curve25519(h(req['to']))
    print(json.dumps({'box': SealedBox(PublicKey(xpk)).encrypt(inner).hex(), 'sig': sig.hex(), 'xpk': xpk.hex()}))
`

/** The first python3 that imports PyNaCl (Debian's python3-nacl lives in /usr/bin/python3's path). */
function findPython(): { python?: string; reason?: string } {
  const tried: string[] = []
  for (const candidate of ['python3', '/usr/bin/python3']) {
    const r = spawnSync(candidate, ['-c', 'import nacl.public, nacl.signing, nacl.bindings'], {
      encoding: 'utf8',
      timeout: 20_000,
    })
    if (r.status === 0) return { python: candidate }
    tried.push(`${candidate}: ${r.error?.message ?? r.stderr.trim().split('\n').at(-1) ?? `exit ${r.status}`}`)
  }
  return { reason: `PyNaCl is not installed (apt-get install python3-nacl); ${tried.join('; ')}` }
}
const { python, reason: noPython } = findPython()

function py(request: Record<string, unknown>): Record<string, unknown> {
  assert.ok(python !== undefined)
  const r = spawnSync(python, ['-c', PYTHON], {
    input: JSON.stringify({ tag: fromUtf8(TAG), ...request }),
    encoding: 'utf8',
    timeout: 30_000,
  })
  assert.equal(r.status, 0, `python3 failed: ${r.stderr}`)
  return JSON.parse(r.stdout) as Record<string, unknown>
}

test('PyNaCl opens an envelope sealed by sealPayment and verifies the signature inside', { skip: noPython }, () => {
  const sealed = sealPayment(alice, {
    chainId: CHAIN,
    to: did(bob),
    amount: 2n ** 60n,
    memo: '파이썬으로 열기',
    createdAt: 1_700_000_000_456,
  })
  const out = py({ op: 'open', seed: toHex(BOB_SEED), box: toHex(sealed.envelope), sender: toHex(alice.publicKey) })
  assert.equal(out.opened, true, String(out.error))
  assert.equal(out.xpk, toHex(recipientKey(did(bob))), "PyNaCl derives bob's X25519 key as we do")
  const { d, t } = decode<Inner>(fromHex(out.inner as string))
  assert.equal(d.memo, '파이썬으로 열기')
  assert.equal(d.amount, 2n ** 60n)
  assert.equal(d.from, did(alice))
  assert.deepEqual(t, sealed.terms)
  assert.equal(out.payload, toHex(encode({ d, t })), 'Python cut exactly the signed payload')
  assert.equal(out.signed, true, "the signature verifies with alice's key in PyNaCl")
  assert.equal(out.signedByOther, false)
  assert.equal(out.signedOtherDigest, false)
})

test('sealPayment opens an envelope signed and sealed by PyNaCl', { skip: noPython }, () => {
  const d = {
    v: 1,
    id: fromHex('00112233445566778899aabbccddeeff'),
    chainId: CHAIN,
    from: did(alice),
    to: did(bob),
    amount: 31_337n,
    memo: 'sealed by PyNaCl',
    createdAt: 1_700_000_000_789,
  }
  const t = sodiumTerms(d)
  const out = py({ op: 'seal', seed: toHex(ALICE_SEED), to: toHex(bob.publicKey), payload: toHex(encode({ d, t })) })
  assert.equal(out.xpk, toHex(recipientKey(did(bob))))
  assert.equal(out.sig, toHex(alice.sign(PAYMENT_SIGNING_KIND, encode({ d, t }))), 'Ed25519 is deterministic')
  const opened = openPayment(bob, fromHex(out.box as string))
  assert.equal(opened.details.amount, 31_337n)
  assert.equal(opened.details.memo, 'sealed by PyNaCl')
  assert.equal(opened.details.from, did(alice))
  assert.deepEqual(opened.terms, t)
})

test('no false positives with PyNaCl: a box for bob opens for carol in neither direction', { skip: noPython }, () => {
  const sealed = sealPayment(alice, { chainId: CHAIN, to: did(bob), amount: 9n })
  const notCarol = py({ op: 'open', seed: toHex(CAROL_SEED), box: toHex(sealed.envelope) })
  assert.equal(notCarol.opened, false)
  assert.equal(py({ op: 'open', seed: toHex(BOB_SEED), box: toHex(sealed.envelope) }).opened, true, 'control')

  const d = {
    v: 1,
    id: new Uint8Array(16),
    chainId: CHAIN,
    from: did(alice),
    to: did(bob),
    amount: 9n,
    memo: '',
    createdAt: 1,
  }
  const out = py({
    op: 'seal',
    seed: toHex(ALICE_SEED),
    to: toHex(bob.publicKey),
    payload: toHex(encode({ d, t: sodiumTerms(d) })),
  })
  const box = fromHex(out.box as string)
  assert.throws(() => openPayment(carol, box), EnvelopeNotForUsError)
  const cx = carol.toX25519()
  assert.equal(boxOpen(box, cx.publicKey, cx.exportPrivateKey()), undefined)
  assert.equal(openPayment(bob, box).details.amount, 9n, 'control')
})
