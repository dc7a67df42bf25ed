// The format record of a database (format.ts), on real LevelDB files: written on creation, an
// unversioned (older) database migrated step by step, a newer or foreign one refused with a
// StoreVersionError that names both versions, and the database left closed for the next open.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Store } from './store.ts'
import { dagCborCodec, utf8Codec } from './codecs.ts'
import { StoreVersionError } from './errors.ts'
import type { FormatRecord, StoreFormat } from './format.ts'

async function withDir(fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-format-'))
  try {
    await fn(join(dir, 'db'))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

async function recordOf(path: string): Promise<FormatRecord | undefined> {
  const store = await Store.open(path)
  try {
    return await store.bucket('format', utf8Codec, dagCborCodec<FormatRecord>()).get('format')
  } finally {
    await store.close()
  }
}

const v2: StoreFormat = { name: 'test-db', version: 2, release: '9.9.9' }

test('a new database gets the current format record; opening it again changes nothing', async () => {
  await withDir(async (path) => {
    await (await Store.open(path, { format: v2 })).close()
    assert.deepEqual(await recordOf(path), { name: 'test-db', version: 2, release: '9.9.9' })
    const again = await Store.open(path, { format: v2 })
    await again.close()
    assert.deepEqual(await recordOf(path), { name: 'test-db', version: 2, release: '9.9.9' })
  })
})

test('a database without a record is version 0: migrated one step at a time, in order, then recorded', async () => {
  await withDir(async (path) => {
    const old = await Store.open(path)
    await old.bucket('things', utf8Codec, utf8Codec).put('a', 'old')
    await old.close()
    const steps: number[] = []
    const format: StoreFormat = {
      ...v2,
      migrations: {
        0: async () => void steps.push(0),
        1: async (store) => {
          steps.push(1)
          await store.bucket('things', utf8Codec, utf8Codec).put('a', 'migrated')
        },
      },
    }
    const store = await Store.open(path, { format })
    try {
      assert.equal(await store.bucket('things', utf8Codec, utf8Codec).get('a'), 'migrated')
    } finally {
      await store.close()
    }
    assert.deepEqual(steps, [0, 1])
    assert.deepEqual(await recordOf(path), { name: 'test-db', version: 2, release: '9.9.9' })
  })
})

test('a newer version is refused, naming both versions and what to do; the database is left closed', async () => {
  await withDir(async (path) => {
    await (await Store.open(path, { format: { name: 'test-db', version: 3, release: '10.0.0' } })).close()
    await assert.rejects(Store.open(path, { format: v2 }), (err: unknown) => {
      assert.ok(err instanceof StoreVersionError)
      assert.equal(err.code, 'STORE_VERSION')
      assert.equal(err.details.found, 3)
      assert.equal(err.details.supported, 2)
      assert.match(err.message, /version 3 \(written by Donghae 10\.0\.0\)/)
      assert.match(err.message, /up to version 2/)
      assert.match(err.message, /Run Donghae 10\.0\.0 or later/)
      return true
    })
    // not left locked: the release that wrote it still opens it
    await (await Store.open(path, { format: { name: 'test-db', version: 3, release: '10.0.0' } })).close()
  })
})

test('another kind of database, or an old version without a migration, is refused', async () => {
  await withDir(async (path) => {
    await (await Store.open(path, { format: { name: 'other-db', version: 1, release: '9.9.9' } })).close()
    await assert.rejects(Store.open(path, { format: v2 }), StoreVersionError)
  })
  await withDir(async (path) => {
    await (await Store.open(path, { format: { name: 'test-db', version: 1, release: '0.0.1' } })).close()
    await assert.rejects(Store.open(path, { format: v2 }), (err: unknown) => {
      assert.ok(err instanceof StoreVersionError)
      assert.match(err.message, /no migration from version 1/)
      return true
    })
    assert.equal((await recordOf(path))?.version, 1, 'a refused database is not rewritten')
  })
})
