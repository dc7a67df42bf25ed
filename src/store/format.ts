/**
 * The format record of a database: what it holds, the version of its layout and the release
 * that last wrote it, in the `format` bucket. `Store.open(path, { format })` checks it:
 *
 * - a new (empty) database gets the current record;
 * - a database without a record was written before records existed: it is version 0;
 * - an older version is migrated one step at a time (`migrations[v]` turns v into v + 1, and the
 *   record is rewritten after each step, so a migration stopped half way resumes from its step);
 * - a newer version, or another kind of database, is refused with `StoreVersionError` naming
 *   both versions and what to do.
 *
 * The record is written with fsync: a node stopped just after creating its database finds it.
 */
import { InvalidInputError } from '../core/errors.ts'
import type { Logger } from '../core/logger.ts'
import { dagCborCodec, utf8Codec } from './codecs.ts'
import { StoreVersionError } from './errors.ts'
import type { Store } from './store.ts'

/** What a database holds and the layout version this code reads and writes. */
export interface StoreFormat {
  /** What the database holds, e.g. `donghae-chain`. */
  name: string
  /** The layout version this code writes (a positive integer; 0 is "before format records"). */
  version: number
  /** The release writing it (package.json's version), kept for people reading an error. */
  release: string
  /** `migrations[v]` turns a version-v database into version v + 1. Steps must be idempotent. */
  migrations?: Readonly<Record<number, (store: Store) => Promise<void>>>
}

/** The stored record (dag-cbor in the `format` bucket, key `format`). */
export interface FormatRecord {
  name: string
  version: number
  release: string
}

/** The version of a database that has data but no format record (written before records existed). */
export const UNVERSIONED = 0

const FORMAT_BUCKET = 'format'
const FORMAT_KEY = 'format'

function validFormat(format: StoreFormat): void {
  if (!Number.isSafeInteger(format.version) || format.version < 1)
    throw new InvalidInputError(`format ${format.name}: version must be a positive integer`)
}

function refuse(path: string, found: FormatRecord, format: StoreFormat, why: string, todo: string): StoreVersionError {
  return new StoreVersionError(
    `the database at ${path} holds ${found.name} format version ${found.version} (written by Donghae ${found.release}); ` +
      `this Donghae (${format.release}) reads ${format.name} up to version ${format.version}: ${why}. ${todo}`,
    {
      details: {
        path,
        found: found.version,
        foundName: found.name,
        writtenBy: found.release,
        supported: format.version,
        name: format.name,
        release: format.release,
      },
    },
  )
}

/**
 * Checks (and on first use writes) the format record of `store`; migrates an older layout.
 * Returns the record now stored.
 */
export async function checkFormat(store: Store, format: StoreFormat, log?: Logger): Promise<FormatRecord> {
  validFormat(format)
  const bucket = store.bucket(FORMAT_BUCKET, utf8Codec, dagCborCodec<FormatRecord>())
  const current: FormatRecord = { name: format.name, version: format.version, release: format.release }
  let found = await bucket.get(FORMAT_KEY)
  if (found === undefined) {
    if (await store.isEmpty()) {
      await bucket.put(FORMAT_KEY, current, { sync: true })
      return current
    }
    found = { name: format.name, version: UNVERSIONED, release: 'before format records' }
  }
  if (found.name !== format.name)
    throw refuse(
      store.path,
      found,
      format,
      'it is another kind of database',
      'Point the node at its own data directory.',
    )
  if (found.version > format.version)
    throw refuse(
      store.path,
      found,
      format,
      'it was written by a newer release',
      `Run Donghae ${found.release} or later on it, or move ${store.path} away to sync the chain again from peers.`,
    )
  for (let version = found.version; version < format.version; version++) {
    const step = format.migrations?.[version]
    if (step === undefined)
      throw refuse(
        store.path,
        { ...found, version },
        format,
        `no migration from version ${version} is known`,
        `Open it with a release that migrates it, or move ${store.path} away to sync the chain again from peers.`,
      )
    log?.info({ path: store.path, from: version, to: version + 1 }, 'migrating the database')
    await step(store)
    await bucket.put(FORMAT_KEY, { ...current, version: version + 1 }, { sync: true })
  }
  if (found.release !== format.release || found.version !== format.version)
    await bucket.put(FORMAT_KEY, current, { sync: true })
  return current
}
