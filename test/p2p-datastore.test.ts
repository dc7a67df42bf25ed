// The peer book's LevelDB (`<data>/p2p`, src/net/host.ts PEER_BOOK_LEVEL_OPTIONS) under what
// libp2p does to it: a few records of about 4 KB rewritten over and over. With LevelDB's default
// write buffer every overwritten version reaches the disk and stays until a rare compaction (the
// baseline in the same run); with the peer book's options the files stay near the live records.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { LevelDatastore } from 'datastore-level'
import { Key } from 'interface-datastore'
import { PEER_BOOK_LEVEL_OPTIONS } from '../src/net/host.ts'

const RECORDS = 3
const WRITES = 6_000 // × 4.4 KB ≈ 26 MB written

async function sizeOf(dir: string): Promise<number> {
  let total = 0
  for (const name of await readdir(dir))
    if (name.endsWith('.ldb') || name.endsWith('.log')) total += (await stat(join(dir, name))).size
  return total
}

/** Writes the records over and over; the database's size once compactions settle (or after 10 s). */
async function churn(dir: string, options: Record<string, unknown>, floor: number): Promise<number> {
  const ds = new LevelDatastore(dir, options)
  await ds.open()
  try {
    const value = new Uint8Array(4_400).fill(7)
    for (let i = 0; i < WRITES; i++) {
      value[0] = i & 0xff
      await ds.put(new Key(`/peers/p${i % RECORDS}`), value)
    }
    let size = await sizeOf(dir)
    for (let waited = 0; size > floor && waited < 10_000; waited += 250) {
      await sleep(250)
      size = await sizeOf(dir)
    }
    const last = await ds.get(new Key(`/peers/p${(WRITES - 1) % RECORDS}`))
    assert.equal(last[0], (WRITES - 1) & 0xff, 'the newest version is the one read back')
    return size
  } finally {
    await ds.close()
  }
}

test('peer book: records rewritten thousands of times leave files near their live size (default LevelDB: megabytes)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-p2p-ds-'))
  try {
    const ours = await churn(join(dir, 'ours'), PEER_BOOK_LEVEL_OPTIONS, 1 << 20)
    const baseline = await churn(join(dir, 'default'), {}, 0)
    t.diagnostic(
      `on disk after ${WRITES} writes of ${RECORDS} records: ${ours} B vs ${baseline} B with LevelDB's defaults`,
    )
    assert.ok(ours < 1.5 * 2 ** 20, `the peer book holds ${ours} B`)
    assert.ok(
      baseline > 3 * 2 ** 20 && baseline > 2 * ours,
      `the defaults keep the overwritten versions (${baseline} B)`,
    )
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
