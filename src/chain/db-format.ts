/**
 * The layout of a node's chain database (`<data>/chain`: blocks, commits, state, txs, meta,
 * proofs, privval, inference-journal) and its history. Bump `CHAIN_DB_VERSION` when a release
 * changes what these buckets hold, and add the step from the previous version to
 * `CHAIN_DB_FORMAT.migrations`; test/fixtures/releases/ keeps a database written by each release, and
 * test/restart-data-fixtures.test.ts opens every one of them with the current code.
 *
 * | version | releases          | layout                                                            |
 * | ------- | ----------------- | ----------------------------------------------------------------- |
 * | 0       | 0.1.0 (early)     | as version 1, without the format record                           |
 * | 1       | 0.1.0             | the buckets above; `format` holds { name, version, release }      |
 */
import { readFileSync } from 'node:fs'
import type { StoreFormat } from '../store/format.ts'

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }

/** The chain database's layout version this release writes. */
export const CHAIN_DB_VERSION = 1

export const CHAIN_DB_FORMAT: StoreFormat = {
  name: 'donghae-chain',
  version: CHAIN_DB_VERSION,
  release: pkg.version,
  migrations: {
    // version 0 has the same buckets: the step only records the format (written by checkFormat)
    0: async () => {},
  },
}
