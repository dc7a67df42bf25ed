// The blob store's bounds: files and memory copies least recently used first, reads refresh
// recency, pinned blobs stay, recency survives a restart through modification times.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readdir, rm, utimes } from 'node:fs/promises'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { InvalidInputError } from '../core/errors.ts'
import { BLOB_STORE_DEFAULTS, BlobStore, blobCid } from './blobs.ts'

const blob = (seed: number, size = 1_000): Uint8Array =>
  Uint8Array.from({ length: size }, (_, i) => (seed * 31 + i) % 256)

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-blobs-'))
  try {
    await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const files = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((n) => !n.startsWith('.')).sort()

test('beyond maxStoreBytes the least recently used file goes; a read makes a blob recent', () =>
  withDir(async (dir) => {
    const store = new BlobStore(dir, { maxStoreBytes: 2_500 })
    await store.init()
    const [a, b, c, d] = [blob(1), blob(2), blob(3), blob(4)].map(blobCid)
    await store.put(blob(1))
    await store.put(blob(2))
    await store.put(blob(3))
    assert.deepEqual(await files(dir), [b, c].sort(), 'a was the least recently used')
    assert.equal(await store.get(a!), undefined)
    assert.ok((await store.get(b!)) !== undefined) // b is now more recent than c
    await store.put(blob(4))
    assert.deepEqual(await files(dir), [b, d].sort())
    assert.equal(store.usage().storeBytes, 2_000)
  }))

test('memory copies are bounded by maxCacheBytes; a dropped copy is read again from disk', () =>
  withDir(async (dir) => {
    const store = new BlobStore(dir, { maxCacheBytes: 1_500 })
    await store.init()
    const a = await store.put(blob(1))
    assert.equal(store.usage().cacheBytes, 0, 'put keeps no copy: the caller may reuse its array')
    await store.get(a)
    await store.get(await store.put(blob(2)))
    assert.equal(store.usage().cacheBytes, 1_000)
    assert.deepEqual(await store.get(a), blob(1))
    assert.equal(store.usage().cacheBytes, 1_000)
  }))

test('a pinned blob is never evicted, from disk or memory, until every pin is released', () =>
  withDir(async (dir) => {
    const store = new BlobStore(dir, { maxStoreBytes: 2_500, maxCacheBytes: 1_000 })
    await store.init()
    const a = blobCid(blob(1))
    const release = store.pin(a) // pinned before it arrives
    const second = store.pin(a)
    for (const seed of [1, 2, 3]) await store.get(await store.put(blob(seed)))
    assert.deepEqual(await files(dir), [a, blobCid(blob(3))].sort())
    assert.equal(store.usage().cacheBytes, 1_000, 'only the pinned copy stays in memory')
    release()
    release() // idempotent: one pin is still held
    await store.put(blob(4))
    assert.ok((await files(dir)).includes(a))
    second()
    assert.equal(store.isPinned(a), false)
    await store.put(blob(5))
    assert.ok(!(await files(dir)).includes(a))
  }))

test('recency after a restart follows the files’ modification times; bad bounds are refused', () =>
  withDir(async (dir) => {
    const first = new BlobStore(dir)
    await first.init()
    const a = await first.put(blob(1))
    const b = await first.put(blob(2))
    await utimes(join(dir, a), new Date(2_000_000_000_000), new Date(2_000_000_000_000)) // a is the newest
    const reopened = new BlobStore(dir, { maxStoreBytes: 1_000 })
    await reopened.init()
    assert.deepEqual(await files(dir), [a])
    assert.equal(await reopened.get(b), undefined)
    assert.throws(() => new BlobStore(dir, { maxStoreBytes: -1 }), InvalidInputError)
    assert.deepEqual({ ...BLOB_STORE_DEFAULTS }, { maxStoreBytes: 4 * 1024 ** 3, maxCacheBytes: 64 * 1024 ** 2 })
  }))
