import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ManualClock } from '../core/clock.ts'
import { Ed25519KeyPair } from '../identity/keys.ts'
import {
  DirectoryInvalidError,
  DirectoryRateLimitError,
  DirectoryStaleError,
  DirectoryTooLargeError,
  MAX_EXPIRY_MS,
  signDeletion,
  signRegistration,
  type RegistrationFields,
} from './record.ts'
import { DirectoryIndex, ftsQuery } from './store.ts'

const NOW = 1_700_000_000_000
const DAY = 86_400_000

function fields(over: Partial<RegistrationFields> = {}): RegistrationFields {
  return {
    description: 'a place',
    categories: ['misc'],
    tags: [],
    bootstrap: ['/ip4/192.0.2.1/tcp/4001'],
    endpoint: 'https://answerer.example.org/signal',
    seq: 1,
    expires: NOW + DAY,
    ...over,
  }
}

function index(clock = new ManualClock(NOW)): DirectoryIndex {
  return new DirectoryIndex({
    clock,
    limits: { perDid: { burst: 1000, perMs: 1000 }, perClient: { burst: 1000, perMs: 1000 } },
  })
}

test('register, get, update with a higher seq; equal or lower seq is 409 and changes nothing', () => {
  const idx = index()
  const key = Ed25519KeyPair.generate()
  const v1 = signRegistration(key, fields({ seq: 1, description: 'first' }))
  assert.equal(idx.register(v1).change, 'added')
  assert.equal(idx.get(v1.did)?.description, 'first')
  const v3 = signRegistration(key, fields({ seq: 3, description: 'third' }))
  assert.equal(idx.register(v3).change, 'updated')
  for (const old of [v1, v3, signRegistration(key, fields({ seq: 2, description: 'second' }))]) {
    assert.throws(
      () => idx.register(old),
      (err: unknown) => err instanceof DirectoryStaleError && err.statusCode === 409,
    )
  }
  assert.equal(idx.get(v1.did)?.description, 'third')
  assert.equal(idx.count(), 1)
  assert.equal(idx.search({ query: 'first' }).hits.length, 0)
  assert.equal(idx.search({ query: 'third' }).hits.length, 1)
})

test('a signed deletion leaves a tombstone: the old registration cannot come back, a newer one can', () => {
  const idx = index()
  const key = Ed25519KeyPair.generate()
  const v1 = signRegistration(key, fields({ seq: 1, categories: ['restaurant'] }))
  idx.register(v1)
  assert.throws(() => idx.delete(signDeletion(key, 1)), DirectoryStaleError)
  assert.equal(idx.delete(signDeletion(key, 2)).change, 'deleted')
  assert.equal(idx.get(v1.did), undefined)
  assert.equal(idx.count(), 0)
  assert.equal(idx.search({ category: 'restaurant' }).hits.length, 0)
  assert.throws(() => idx.register(v1), DirectoryStaleError)
  assert.equal(idx.seqOf(v1.did), 2)
  assert.equal(idx.register(signRegistration(key, fields({ seq: 3, categories: ['restaurant'] }))).change, 'added')
  assert.equal(idx.search({ category: 'restaurant' }).hits.length, 1)
})

test('expired entries leave search at once and are swept into tombstones, forgotten 30 days later', () => {
  const clock = new ManualClock(NOW)
  const idx = index(clock)
  const key = Ed25519KeyPair.generate()
  const short = signRegistration(key, fields({ seq: 2, expires: NOW + 1000, description: 'short lived' }))
  const older = signRegistration(key, fields({ seq: 1, expires: NOW + 20 * DAY, description: 'short lived' }))
  idx.register(short)
  clock.advance(1000)
  assert.equal(idx.get(short.did), undefined)
  assert.equal(idx.search({ query: 'short' }).hits.length, 0)
  assert.equal(idx.sweep(), 1)
  assert.equal(idx.count(), 0)
  // The older registration, still unexpired, cannot come back over the expired newer one.
  assert.throws(() => idx.register(older), DirectoryStaleError)
  clock.advance(MAX_EXPIRY_MS)
  assert.equal(idx.sweep(), 0)
  assert.equal(idx.seqOf(short.did), undefined)
})

test('search: ranked by bm25 with categories weighted, exact category and tag filters, pagination', () => {
  const idx = index()
  const keys = Array.from({ length: 30 }, () => Ed25519KeyPair.generate())
  keys.forEach((key, i) => {
    const restaurant = i % 3 === 0
    idx.register(
      signRegistration(
        key,
        fields({
          description: restaurant ? `Restaurant number ${i} serving noodles` : `Shop ${i} near a restaurant street`,
          categories: restaurant ? ['restaurant'] : ['shop'],
          tags: i % 2 === 0 ? ['vegan'] : [],
        }),
      ),
    )
  })
  const all = idx.search({ query: 'restaurant', limit: 50 })
  assert.equal(all.hits.length, 30)
  assert.equal(all.cursor, undefined)
  // The 10 entries in the category rank above those that only mention the word.
  assert.ok(all.hits.slice(0, 10).every((h) => h.record.categories.includes('restaurant')))
  const scores = all.hits.map((h) => h.score)
  assert.deepEqual(
    scores,
    [...scores].sort((a, b) => a - b),
  )
  assert.equal(idx.search({ query: 'restaurant', category: 'restaurant' }).hits.length, 10)
  assert.equal(idx.search({ category: 'restaurant', tag: 'vegan' }).hits.length, 5)
  assert.equal(idx.search({ tag: 'vegan' }).hits.length, 15)
  assert.equal(idx.search({ query: 'noodles restaurant' }).hits.length, 10)
  assert.equal(idx.search({ query: 'RESTAURANT', limit: 50 }).hits.length, 30)

  for (const q of [{ query: 'restaurant' }, { category: 'shop' }, {}]) {
    const seen: string[] = []
    let cursor: string | undefined
    let pages = 0
    do {
      const page = idx.search({ ...q, limit: 7, ...(cursor === undefined ? {} : { cursor }) })
      seen.push(...page.hits.map((h) => h.record.did))
      cursor = page.cursor
      pages++
    } while (cursor !== undefined)
    const expected = q.category === 'shop' ? 20 : 30
    assert.equal(seen.length, expected, JSON.stringify(q))
    assert.equal(new Set(seen).size, expected)
    assert.equal(pages, Math.ceil(expected / 7))
  }
})

test('search parameters are checked: limit 1-50, labels, cursor, query length', () => {
  const idx = index()
  for (const q of [
    { limit: 0 },
    { limit: 51 },
    { limit: 1.5 },
    { category: 'Bad Cat' },
    { tag: '' },
    { cursor: 'nope!' },
    { cursor: 'bm9wZQ' },
  ]) {
    assert.throws(() => idx.search(q), DirectoryInvalidError, JSON.stringify(q))
  }
  assert.throws(() => idx.search({ query: 'x'.repeat(257) }), DirectoryTooLargeError)
  assert.throws(
    () => idx.search({ query: Array.from({ length: 17 }, (_, i) => `w${i}`).join(' ') }),
    DirectoryInvalidError,
  )
})

test('ftsQuery quotes every term so user text is never FTS syntax', () => {
  assert.equal(ftsQuery('restaurant'), '"restaurant"')
  assert.equal(ftsQuery('bar" OR x* NEAR(a b) -c ^d col:e'), '"bar" "or" "x" "near" "a" "b" "c" "d" "col" "e"')
  assert.equal(ftsQuery('한식 식당'), '"한식" "식당"')
  assert.equal(ftsQuery('*** "" ()'), undefined)
})

test('rate limits: per client before verification, per DID after; other DIDs and clients unaffected', () => {
  const clock = new ManualClock(NOW)
  const idx = new DirectoryIndex({
    clock,
    limits: { perDid: { burst: 3, perMs: 60_000 }, perClient: { burst: 5, perMs: 60_000 } },
  })
  const key = Ed25519KeyPair.generate()
  for (let seq = 1; seq <= 3; seq++) idx.register(signRegistration(key, fields({ seq })), { client: `c${seq}` })
  assert.throws(
    () => idx.register(signRegistration(key, fields({ seq: 4 })), { client: 'c4' }),
    (err: unknown) => err instanceof DirectoryRateLimitError && err.statusCode === 429 && err.retryAfterMs > 0,
  )
  assert.equal(idx.get(signRegistration(key, fields()).did)?.seq, 3)
  // A client's bucket: 5 requests, valid or not.
  for (let i = 0; i < 5; i++) idx.register(signRegistration(Ed25519KeyPair.generate(), fields()), { client: 'busy' })
  assert.throws(
    () => idx.register(signRegistration(Ed25519KeyPair.generate(), fields()), { client: 'busy' }),
    DirectoryRateLimitError,
  )
  idx.register(signRegistration(Ed25519KeyPair.generate(), fields()), { client: 'quiet' })
  // Buckets refill with time.
  clock.advance(60_000)
  idx.register(signRegistration(key, fields({ seq: 4 })), { client: 'busy' })
})

test('persists in a file under the data directory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'directory-'))
  try {
    const path = join(dir, 'sub', 'directory.sqlite')
    const clock = new ManualClock(NOW)
    const key = Ed25519KeyPair.generate()
    const first = new DirectoryIndex({ path, clock })
    const record = signRegistration(key, fields({ categories: ['restaurant'] }))
    first.register(record)
    first.close()
    const again = new DirectoryIndex({ path, clock })
    assert.deepEqual(again.get(record.did), record)
    assert.equal(again.search({ query: 'restaurant' }).hits.length, 1)
    assert.throws(() => again.register(record), DirectoryStaleError)
    again.close()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('text search with a category filter is exact even when labels share words, across pages', () => {
  const idx = index()
  for (let i = 0; i < 12; i++) {
    const categories = i % 4 === 0 ? ['food'] : ['fast-food']
    idx.register(signRegistration(Ed25519KeyPair.generate(), fields({ description: `kimbap stand ${i}`, categories })))
  }
  const seen: string[] = []
  let cursor: string | undefined
  do {
    const page = idx.search({
      query: 'kimbap',
      category: 'food',
      limit: 2,
      ...(cursor === undefined ? {} : { cursor }),
    })
    assert.ok(page.hits.every((h) => h.record.categories.includes('food')))
    seen.push(...page.hits.map((h) => h.record.did))
    cursor = page.cursor
  } while (cursor !== undefined)
  assert.equal(new Set(seen).size, 3)
  assert.equal(idx.search({ query: 'kimbap', category: 'fast-food', limit: 50 }).hits.length, 9)
})
