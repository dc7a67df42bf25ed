import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Store } from './store.ts'
import { bytesCodec, dagCborCodec, uint64Codec, utf8Codec } from './codecs.ts'
import { StoreClosedError, StoreCorruptionError, StoreLockedError } from './errors.ts'
import { utf8 } from '../core/bytes.ts'
import { InvalidInputError } from '../core/errors.ts'

async function withStore(fn: (store: Store, path: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-store-'))
  const path = join(dir, 'db')
  const store = await Store.open(path)
  try {
    await fn(store, path)
  } finally {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  }
}

test('typed buckets keep separate key spaces and decode their values', async () => {
  await withStore(async (store) => {
    const accounts = store.bucket('accounts', utf8Codec, dagCborCodec<{ balance: bigint }>())
    const blocks = store.bucket('blocks', uint64Codec, bytesCodec)
    await accounts.put('alice', { balance: 2n ** 63n + 5n })
    await blocks.put(1n, utf8('block one'))
    assert.deepEqual(await accounts.get('alice'), { balance: 2n ** 63n + 5n })
    assert.equal(await accounts.get('bob'), undefined)
    assert.deepEqual(await blocks.get(1n), utf8('block one'))
    // A bucket named "a" must not see keys of a bucket named "ab" (length-prefixed names).
    const a = store.bucket('a', utf8Codec, utf8Codec)
    const ab = store.bucket('ab', utf8Codec, utf8Codec)
    await ab.put('x', 'in ab')
    assert.deepEqual(await Array.fromAsync(a.entries()), [])
    assert.throws(() => store.bucket('accounts', utf8Codec, utf8Codec), InvalidInputError)
    assert.throws(() => store.bucket('Bad Name', utf8Codec, utf8Codec), InvalidInputError)
  })
})

test('iteration: prefix, ranges, reverse and limit, in key order', async () => {
  await withStore(async (store) => {
    const heights = store.bucket('heights', uint64Codec, utf8Codec)
    for (const h of [3n, 1n, 256n, 2n, 1000n]) await heights.put(h, `h${h}`)
    assert.deepEqual(await Array.fromAsync(heights.keys()), [1n, 2n, 3n, 256n, 1000n])
    assert.deepEqual(await Array.fromAsync(heights.keys({ gte: 2n, lt: 256n })), [2n, 3n])
    assert.deepEqual(await Array.fromAsync(heights.keys({ reverse: true, limit: 2 })), [1000n, 256n])
    const names = store.bucket('names', utf8Codec, utf8Codec)
    for (const n of ['val/a', 'val/b', 'vam', 'va', 'other']) await names.put(n, n)
    assert.deepEqual(await Array.fromAsync(names.keys({ prefix: utf8('val/') })), ['val/a', 'val/b'])
  })
})

test('a batch spanning buckets is applied as a whole', async () => {
  await withStore(async (store) => {
    const from = store.bucket('from', utf8Codec, dagCborCodec<number>())
    const to = store.bucket('to', utf8Codec, dagCborCodec<number>())
    await from.put('x', 10)
    const batch = store.batch().put(to, 'x', 10).delete(from, 'x')
    assert.equal(batch.length, 2)
    await batch.write({ sync: true })
    assert.equal(await from.get('x'), undefined)
    assert.equal(await to.get('x'), 10)
    await assert.rejects(batch.write(), InvalidInputError, 'a batch is written once')
  })
})

test('a batch with an unencodable value fails before anything is written', async () => {
  await withStore(async (store) => {
    const b = store.bucket('b', utf8Codec, dagCborCodec<unknown>())
    const batch = store.batch().put(b, 'ok', 1)
    assert.throws(() => batch.put(b, 'bad', Number.NaN))
    assert.equal(await b.get('ok'), undefined)
  })
})

test('snapshots give a consistent view while writes go on', async () => {
  await withStore(async (store) => {
    const kv = store.bucket('kv', utf8Codec, utf8Codec)
    await kv.put('a', 'before')
    const snapshot = store.snapshot()
    try {
      await store.batch().put(kv, 'a', 'after').put(kv, 'b', 'new').write()
      assert.equal(await kv.get('a', { snapshot }), 'before')
      assert.equal(await kv.get('b', { snapshot }), undefined)
      assert.deepEqual(await Array.fromAsync(kv.keys({ snapshot })), ['a'])
      assert.equal(await kv.get('a'), 'after')
    } finally {
      await snapshot.close()
    }
  })
})

test('corrupt values surface as StoreCorruptionError, not as garbage', async () => {
  // Reopen the same directory with a different codec for the same bucket name: the stored bytes do not decode.
  const dir = await mkdtemp(join(tmpdir(), 'donghae-store-'))
  try {
    const first = await Store.open(join(dir, 'db'))
    await first.bucket('v', utf8Codec, bytesCodec).put('k', Uint8Array.of(0x18, 0x01))
    await first.close()
    const second = await Store.open(join(dir, 'db'))
    const typed = second.bucket('v', utf8Codec, dagCborCodec<number>())
    await assert.rejects(typed.get('k'), StoreCorruptionError)
    await assert.rejects(Array.fromAsync(typed.entries()), StoreCorruptionError)
    await second.close()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('a second open of the same database fails with StoreLockedError; use after close fails clearly', async () => {
  await withStore(async (store, path) => {
    await assert.rejects(Store.open(path), StoreLockedError)
    const kv = store.bucket('kv', utf8Codec, utf8Codec)
    await store.close()
    assert.equal(store.isOpen, false)
    await assert.rejects(kv.get('a'), StoreClosedError)
    await assert.rejects(kv.put('a', 'b'), StoreClosedError)
    await store.close() // idempotent
  })
})

test('data survives close and reopen', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-store-'))
  try {
    const a = await Store.open(join(dir, 'db'))
    await a.bucket('kv', utf8Codec, utf8Codec).put('k', 'v')
    await a.close()
    const b = await Store.open(join(dir, 'db'))
    assert.equal(await b.bucket('kv', utf8Codec, utf8Codec).get('k'), 'v')
    await b.close()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
