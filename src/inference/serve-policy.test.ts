// The operator's serve policy: the three forms parse, bad strings are ConfigErrors naming the
// setting, and allows() matches names, CIDs and publishers exactly.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ConfigError } from '../core/errors.ts'
import { Ed25519KeyPair } from '../identity/keys.ts'
import { didFromEd25519PublicKey } from '../identity/did-key.ts'
import { blobCid } from './blobs.ts'
import { allows, formatServePolicy, parseServePolicy, SERVE_ALL } from './serve-policy.ts'

const alice = didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey)
const bob = didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey)
const cid = blobCid(new TextEncoder().encode('weights'))
const digits = { name: 'digits-mlp', cid: blobCid(new TextEncoder().encode('digits')), owner: alice }
const other = { name: 'other', cid, owner: bob }

test('all (or nothing) serves every model', () => {
  assert.equal(parseServePolicy('all'), SERVE_ALL)
  assert.equal(parseServePolicy('  '), SERVE_ALL)
  assert.ok(allows(SERVE_ALL, digits) && allows(SERVE_ALL, other))
})

test('models: names and CIDs, each matched exactly', () => {
  const policy = parseServePolicy(`models: digits-mlp , ${cid}`)
  assert.ok(allows(policy, digits), 'by name')
  assert.ok(allows(policy, other), 'by CID')
  assert.equal(allows(policy, { name: 'digits-mlp2', cid: blobCid(Uint8Array.of(1)), owner: alice }), false)
  assert.equal(formatServePolicy(policy), `models:${[cid, 'digits-mlp'].sort().join(',')}`)
})

test('publishers: models registered by these DIDs only', () => {
  const policy = parseServePolicy(`publishers:${alice}`)
  assert.ok(allows(policy, digits))
  assert.equal(allows(policy, other), false)
  assert.equal(formatServePolicy(parseServePolicy(formatServePolicy(policy))), `publishers:${alice}`)
})

test('bad policies are ConfigErrors that name the setting and say what is accepted', () => {
  const cases = [
    'some',
    'models:',
    'models:a,,b',
    'models:Digits MLP',
    'publishers:did:key:nope',
    'publishers:',
    'everything:x',
  ]
  for (const text of cases) {
    assert.throws(
      () => parseServePolicy(text, 'DONGHAE_SERVE'),
      (err: unknown) =>
        err instanceof ConfigError && err.details.key === 'DONGHAE_SERVE' && /use all, models:/.test(err.message),
      text,
    )
  }
})
