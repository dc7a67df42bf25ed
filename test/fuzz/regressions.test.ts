// What fuzzing found (docs/fuzzing.md, "Findings"), each pinned by its input: the files under
// test/fuzz/regressions/<target>/ are also replayed through their target's oracle by fuzz.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encode } from '../../src/core/codec.ts'
import { InvalidInputError } from '../../src/core/errors.ts'
import { decodeValidationSet } from '../../src/arena/evaluate.ts'
import { Ed25519KeyPair } from '../../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../../src/identity/did-key.ts'
import { boxSeal, EnvelopeFormatError, openPayment, recipientKey, sealPayment } from '../../src/wallet/envelope.ts'
import { createApiServer } from '../../src/api/server.ts'
import { MemoryChain } from '../helpers/memory-chain.ts'
import { actor, makeGenesis } from '../helpers/chain.ts'
import { REGRESSIONS_DIR, readInputs } from './corpus.ts'
import { runOne } from './harness.ts'
import { targets } from './targets/index.ts'

test('finding 1: a payment whose version field is a map with a "toString" key threw a TypeError out of openPayment — now EnvelopeFormatError', () => {
  const sender = Ed25519KeyPair.fromSeed(new Uint8Array(32).fill(1))
  const recipient = Ed25519KeyPair.fromSeed(new Uint8Array(32).fill(2))
  const to = didFromEd25519PublicKey(recipient.publicKey)
  const sealed = sealPayment(sender, { chainId: 'c', to, amount: 1n, memo: '', createdAt: 1 })
  // what a hostile sender seals: the real details, with `v` swapped for { toString: <bytes> }
  const d = { ...sealed.details, v: { toString: new Uint8Array([1]) } } as Record<string, unknown>
  delete d.invoice
  const envelope = boxSeal(encode({ d, t: sealed.terms, sig: new Uint8Array(64) }), recipientKey(to))
  assert.throws(
    () => openPayment(recipient, envelope),
    (err: unknown) => {
      assert.ok(err instanceof EnvelopeFormatError, `got ${String(err)}`)
      assert.match(err.message, /unknown envelope version object/)
      return true
    },
  )
  const [file] = readInputs(REGRESSIONS_DIR, 'envelope-content')
  assert.ok(file !== undefined, 'the fuzzer-found input is kept')
  assert.throws(() => openPayment(recipient, boxSeal(file.input, recipientKey(to))), EnvelopeFormatError)
})

test("finding 2: a URL with a broken percent-escape got Fastify's own 400 body — now the API's JSON error body", async () => {
  const validator = actor()
  const app = createApiServer({
    chain: new MemoryChain({ genesis: makeGenesis([validator], []), validators: [validator] }),
  })
  try {
    for (const url of ['/v1/models/did%3Akey%zz', '/v1/ope%rat%C3%98r', '/%']) {
      const res = await app.inject({ method: 'GET', url })
      assert.equal(res.statusCode, 400, url)
      const body = res.json<{ error: { code: string; message: string } }>()
      assert.equal(body.error.code, 'BAD_REQUEST', `${url}: ${res.body}`)
      assert.match(body.error.message, /not a valid url component/)
    }
  } finally {
    await app.close()
  }
})

test('finding 3: PoH lists whose well-formed mixin entries claim ~10^10 hashes are labelled, not hashed, by the poh target (blocks carrying them are refused by ChainApp: test/attacks/poh-work.test.ts)', async () => {
  // Each input held a mixin entry of about 1.3e10 hashes before a malformed one:
  // verifyPohEntries hashed it before reaching the malformed entry (the long run's watchdog saw
  // no input finish for 60 s). ChainApp now refuses a block whose mixin entries claim more hashes
  // than its ticks before any hashing (docs/fuzzing.md, finding 3); the verifier functions
  // still hash what they are given.
  const poh = targets.find((t) => t.name === 'poh')
  assert.ok(poh !== undefined)
  const files = readInputs(REGRESSIONS_DIR, 'poh')
  assert.ok(files.length >= 2)
  for (const { file, input } of files) {
    const started = performance.now()
    assert.equal(await runOne(poh, input), 'well-formed, unbounded work (finding 3)', file)
    assert.ok(performance.now() - started < 1_000, `${file} was hashed`)
  }
})

test('finding 4: a validation set without byte strings (or not a map) threw a TypeError out of decodeValidationSet — now InvalidInputError', () => {
  // a task creator publishes these bytes; every participant reads them (arena/participant.ts)
  for (const value of [{}, null, 7, { featureCount: 2, classCount: 2, features: 'x', labels: new Uint8Array(4) }])
    assert.throws(() => decodeValidationSet(encode(value)), InvalidInputError, JSON.stringify(value))
  assert.throws(
    () =>
      decodeValidationSet(
        encode({ featureCount: 1, classCount: 2, features: new Uint8Array(5), labels: new Uint8Array(4) }),
      ),
    InvalidInputError,
  )
  const files = readInputs(REGRESSIONS_DIR, 'blobs')
  assert.ok(files.length >= 2, 'the fuzzer-found inputs are kept')
  for (const { input } of files) assert.throws(() => decodeValidationSet(input.subarray(1)), InvalidInputError)
})

test('finding 5: `task sets --out <a 300-character name>` fails on one line with exit 1 and no stack, saying the file name is too long (it said "unexpected error")', async () => {
  const cli = targets.find((t) => t.name === 'cli')
  assert.ok(cli !== undefined)
  await cli.open?.()
  try {
    const files = readInputs(REGRESSIONS_DIR, 'cli')
    assert.ok(files.length >= 1)
    // the cli target's oracle: exit 1, one line "donghae: …", no stack trace
    for (const { file, input } of files) assert.match(await runOne(cli, input), /^1 task sets cannot \w+ /, file)
  } finally {
    await cli.close?.()
  }
})
