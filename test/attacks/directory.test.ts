// The DID directory under bad input and abuse (issue 13): oversized fields, a key signing for
// another DID, replayed and older sequence numbers, 10,000 registrations from one key, FTS5
// syntax in search text, and deletion by a stranger. Every refusal is a typed DirectoryError
// with the HTTP status an API answers with, and nothing of any other DID changes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ManualClock } from '../../src/core/clock.ts'
import { Ed25519KeyPair } from '../../src/identity/keys.ts'
import {
  DirectoryError,
  DirectoryIndex,
  registrationFromJson,
  registrationToJson,
  signDeletion,
  signRegistration,
  type RegistrationFields,
  type SignedRegistration,
} from '../../src/directory/index.ts'

const NOW = 1_700_000_000_000

function fields(over: Partial<RegistrationFields> = {}): RegistrationFields {
  return {
    description: 'Family restaurant serving cold noodles',
    categories: ['restaurant'],
    tags: ['noodles'],
    bootstrap: ['/ip4/192.0.2.1/tcp/4001'],
    endpoint: 'https://answerer.example.org/signal',
    seq: 1,
    expires: NOW + 86_400_000,
    ...over,
  }
}

function statusOf(fn: () => unknown): number {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof DirectoryError, `not a DirectoryError: ${String(err)}`)
    return err.statusCode
  }
  return 200
}

/** Five bystanders registered before each attack; their entries must come out unchanged. */
function withBystanders(idx: DirectoryIndex): () => void {
  const records: SignedRegistration[] = []
  for (let i = 0; i < 5; i++) {
    const record = signRegistration(Ed25519KeyPair.generate(), fields({ description: `bystander ${i} restaurant` }))
    idx.register(record, { client: `bystander-${i}` })
    records.push(record)
  }
  const before = idx.search({ category: 'restaurant', limit: 50 }).hits.map((h) => h.record.did)
  return () => {
    for (const record of records) assert.deepEqual(idx.get(record.did), record)
    const after = idx.search({ category: 'restaurant', limit: 50 }).hits.map((h) => h.record.did)
    for (const did of before) assert.ok(after.includes(did))
  }
}

test('oversized fields are refused with 413 (JSON bodies too) and store nothing', () => {
  const idx = new DirectoryIndex({ clock: new ManualClock(NOW) })
  const unchanged = withBystanders(idx)
  const key = Ed25519KeyPair.generate()
  const good = signRegistration(key, fields())
  const huge: Array<Partial<RegistrationFields>> = [
    { description: 'x'.repeat(1_000_000) },
    { categories: Array.from({ length: 100 }, (_, i) => `c${i}`) },
    { tags: Array.from({ length: 1000 }, (_, i) => `t${i}`) },
    { tags: ['t'.repeat(1000)] },
    { bootstrap: Array.from({ length: 50 }, (_, i) => `/ip4/10.0.0.${i}/tcp/1`) },
    { bootstrap: [`/dns4/${'a'.repeat(10_000)}/tcp/1`] },
    { endpoint: `https://example.org/${'a'.repeat(100_000)}` },
  ]
  for (const over of huge) {
    // Sent as if signed: the size checks come before the signature check.
    const body = { ...registrationToJson(good), ...over }
    assert.equal(
      statusOf(() => registrationFromJson(body, NOW)),
      413,
      Object.keys(over).join(),
    )
    assert.equal(
      statusOf(() => idx.register({ ...good, ...over }, { client: 'attacker' })),
      413,
    )
  }
  assert.equal(idx.get(good.did), undefined)
  unchanged()
})

test('a key signing a registration or deletion for another DID is refused with 403', () => {
  const idx = new DirectoryIndex({ clock: new ManualClock(NOW) })
  const unchanged = withBystanders(idx)
  const owner = Ed25519KeyPair.generate()
  const attacker = Ed25519KeyPair.generate()
  const mine = signRegistration(owner, fields({ description: 'the real one' }))
  idx.register(mine)
  const forged = signRegistration(attacker, fields({ seq: 99, endpoint: 'https://evil.example/signal' }))
  assert.equal(
    statusOf(() => idx.register({ ...forged, did: mine.did })),
    403,
  )
  // Deletion by a stranger: refused, and it spends none of the owner's budget.
  for (let i = 0; i < 50; i++) {
    const strangers = signDeletion(attacker, 100 + i)
    assert.equal(
      statusOf(() => idx.delete({ ...strangers, did: mine.did }, { client: `stranger-${i}` })),
      403,
    )
  }
  assert.deepEqual(idx.get(mine.did), mine)
  assert.equal(idx.register(signRegistration(owner, fields({ seq: 2 }))).change, 'updated')
  unchanged()
})

test('replayed and older sequence numbers are refused with 409', () => {
  const idx = new DirectoryIndex({ clock: new ManualClock(NOW) })
  const unchanged = withBystanders(idx)
  const key = Ed25519KeyPair.generate()
  const v1 = signRegistration(key, fields({ seq: 1, description: 'one' }))
  const v2 = signRegistration(key, fields({ seq: 2, description: 'two' }))
  idx.register(v2)
  assert.equal(
    statusOf(() => idx.register(v2)),
    409,
  )
  assert.equal(
    statusOf(() => idx.register(v1)),
    409,
  )
  idx.delete(signDeletion(key, 3))
  assert.equal(
    statusOf(() => idx.register(v2)),
    409,
  )
  assert.equal(
    statusOf(() => idx.delete(signDeletion(key, 3))),
    409,
  )
  assert.equal(idx.get(v2.did), undefined)
  unchanged()
})

test('10,000 registrations from one key end in 429s after the first few; other DIDs unchanged', () => {
  const clock = new ManualClock(NOW)
  const idx = new DirectoryIndex({ clock })
  const unchanged = withBystanders(idx)
  const key = Ed25519KeyPair.generate()
  const did = signRegistration(key, fields()).did
  const sameClient = new Map<number, number>()
  const manyClients = new Map<number, number>()
  let seq = 0
  for (let i = 0; i < 5_000; i++) {
    const status = statusOf(() =>
      idx.register(signRegistration(key, fields({ seq: ++seq })), { client: '203.0.113.9' }),
    )
    sameClient.set(status, (sameClient.get(status) ?? 0) + 1)
  }
  // The same key from 5,000 addresses: the per-DID bucket still holds.
  clock.advance(60 * 60_000)
  for (let i = 0; i < 5_000; i++) {
    const client = `2001:db8::${i.toString(16)}`
    const status = statusOf(() => idx.register(signRegistration(key, fields({ seq: ++seq })), { client }))
    manyClients.set(status, (manyClients.get(status) ?? 0) + 1)
  }
  const accepted = (sameClient.get(200) ?? 0) + (manyClients.get(200) ?? 0)
  assert.ok((sameClient.get(200) ?? 0) <= 5, JSON.stringify([...sameClient]))
  assert.ok((manyClients.get(200) ?? 0) <= 5, JSON.stringify([...manyClients]))
  assert.equal((sameClient.get(429) ?? 0) + (sameClient.get(200) ?? 0), 5_000)
  assert.equal((manyClients.get(429) ?? 0) + (manyClients.get(200) ?? 0), 5_000)
  assert.ok(accepted >= 2)
  assert.equal(idx.count(), 6)
  assert.ok((idx.get(did)?.seq ?? 0) > 0)
  unchanged()
  // Another DID registering from another client is served at once.
  assert.equal(
    statusOf(() => idx.register(signRegistration(Ed25519KeyPair.generate(), fields()), { client: '198.51.100.2' })),
    200,
  )
})

test('FTS5 syntax in search text is treated as plain words, never as a query operator', () => {
  const idx = new DirectoryIndex({ clock: new ManualClock(NOW) })
  const restaurant = signRegistration(Ed25519KeyPair.generate(), fields({ description: 'noodle house' }))
  const shop = signRegistration(
    Ed25519KeyPair.generate(),
    fields({ description: 'secret shop', categories: ['shop'], tags: ['private'] }),
  )
  idx.register(restaurant)
  idx.register(shop)
  const hostile = [
    'restaurant OR shop',
    'restaurant" OR "shop',
    '"',
    '*',
    'sho*',
    'NEAR(restaurant shop)',
    'categories:shop',
    '{description categories}: secret',
    'NOT restaurant',
    '(((',
    "'; DROP TABLE entries; --",
    'restaurant AND',
    '\u0000',
    'a'.repeat(256),
  ]
  for (const query of hostile) {
    let hits: string[] = []
    assert.doesNotThrow(() => {
      hits = idx.search({ query }).hits.map((h) => h.record.description)
    }, query)
    // Every term is required, operators included; no prefix, column, NOT or NEAR is obeyed.
    assert.deepEqual(hits, [], query)
  }
  assert.equal(idx.search({ query: 'shop' }).hits.length, 1)
  assert.equal(idx.search({ query: 'shop*' }).hits.length, 1)
  // '-' and '^' are not FTS5's NOT and initial-token operators: the word is searched plainly.
  assert.deepEqual(
    idx.search({ query: '-restaurant' }).hits.map((h) => h.record.did),
    [restaurant.did],
  )
  assert.deepEqual(
    idx.search({ query: '^shop' }).hits.map((h) => h.record.did),
    [shop.did],
  )
  assert.equal(idx.search({ query: 'secret   shop!!' }).hits.length, 1)
  assert.equal(idx.count(), 2)
  // Bad parameters are 400/413, not SQL errors.
  assert.equal(
    statusOf(() => idx.search({ query: 'a'.repeat(257) })),
    413,
  )
  assert.equal(
    statusOf(() => idx.search({ query: 'x', category: "' OR 1=1 --" })),
    400,
  )
  assert.equal(
    statusOf(() => idx.search({ query: 'x', cursor: 'WzEsIjEgT1IgMT0xIl0' })),
    400,
  )
})
