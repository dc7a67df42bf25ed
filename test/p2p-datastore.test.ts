// The peer book's LevelDB (`<data>/p2p`, src/net/peer-book.ts) under what
// libp2p does to it: a few records of about 4 KB rewritten over and over. With LevelDB's default
// write buffer every overwritten version reaches the disk and stays until a rare compaction (the
// baseline in the same run); with the peer book's options the files stay near the live records.
// And libp2p's own rewrites of unchanged peer records, over real streams, are not written at all.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { LevelDatastore } from 'datastore-level'
import { Key } from 'interface-datastore'
import {
  PEER_BOOK_CACHE_ENTRIES,
  PEER_BOOK_LEVEL_OPTIONS,
  PeerBookDatastore,
  splitPeerRecord,
} from '../src/net/peer-book.ts'
import { createHost } from '../src/net/host.ts'
import { Ed25519KeyPair } from '../src/identity/keys.ts'

const RECORDS = 3
const WRITES = 6_000 // × 4.4 KB ≈ 26 MB written
const STREAMS = 300
const PROTOCOL = '/donghae-test/book/1.0.0'

async function sizeOf(dir: string): Promise<number> {
  let total = 0
  for (const name of await readdir(dir)) {
    if (!name.endsWith('.ldb') && !name.endsWith('.log')) continue
    // a compaction may delete a file between the listing and its stat
    total += (await stat(join(dir, name)).catch(() => undefined))?.size ?? 0
  }
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

test('peer book: 300 streams to one peer write its record a handful of times, not 300; a real change is written at once', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-p2p-book-'))
  const options = { host: '127.0.0.1', port: 0, quic: false, webSockets: false, mdns: false } as const
  const a = await createHost({ key: Ed25519KeyPair.generate(), ...options, datastorePath: join(dir, 'a') })
  const b = await createHost({ key: Ed25519KeyPair.generate(), ...options })
  try {
    await a.start()
    await b.start()
    await b.handle(PROTOCOL, (stream) => void stream.close())
    await a.dial(b.getMultiaddrs()[0] as never)
    const open = async (): Promise<void> => {
      const stream = await a.dialProtocol(b.peerId, PROTOCOL)
      await stream.close()
    }
    for (let i = 0; i < 10; i++) await open() // identify has run, the record holds B's protocols
    const record = await a.peerStore.get(b.peerId)
    assert.ok(record.protocols.includes(PROTOCOL))
    const before = await sizeOf(join(dir, 'a'))
    // LevelDB reads of peer records (each merge read the record twice: the peer store, then the check)
    const levelGet = LevelDatastore.prototype.get
    let reads = 0
    LevelDatastore.prototype.get = function (key, options) {
      if (key.toString().startsWith('/peers/')) reads++
      return levelGet.call(this, key, options)
    }
    try {
      for (let i = 0; i < STREAMS; i++) await open()
    } finally {
      LevelDatastore.prototype.get = levelGet
    }
    t.diagnostic(`${STREAMS} streams: ${reads} LevelDB reads of peer records`)
    assert.ok(reads <= 5, `${reads} LevelDB reads for ${STREAMS} merges: the records are kept in memory`)
    const grown = (await sizeOf(join(dir, 'a'))) - before
    // every negotiated stream merges B's record (libp2p's connection); each write would be a whole record
    const recordBytes = 100 + record.protocols.join('').length + record.addresses.length * 30
    t.diagnostic(`${STREAMS} streams: the peer book grew ${grown} B; one record ≈ ${recordBytes} B`)
    assert.ok(grown < 20 * recordBytes, `the peer book grew ${grown} B for ${STREAMS} unchanged merges`)
    // a change is not held back
    await a.peerStore.merge(b.peerId, { protocols: ['/donghae-test/new/1.0.0'] })
    await a.stop()
    const reopened = new PeerBookDatastore(join(dir, 'a'))
    await reopened.open()
    const stored = await reopened.get(new Key(`/peers/${b.peerId.toCID().toString()}`))
    await reopened.close()
    assert.ok(Buffer.from(stored).includes('/donghae-test/new/1.0.0'), 'the new protocol reached the disk')
  } finally {
    await a.stop()
    await b.stop()
    await rm(dir, { recursive: true, force: true })
  }
})

test('peer book: an unchanged record is written again once its stored time is older than the refresh interval', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-p2p-refresh-'))
  let now = 1_000_000
  const ds = new PeerBookDatastore(dir, { refreshMs: 60_000, now: () => now })
  await ds.open()
  try {
    // libp2p's Peer message: protocols (field 2, bytes) and updated (field 8, varint)
    const record = (updated: number, protocol = '/p/1'): Uint8Array => {
      const p = new TextEncoder().encode(protocol)
      const time: number[] = []
      for (let v = updated; ; v = Math.floor(v / 128)) {
        if (v < 128) {
          time.push(v)
          break
        }
        time.push((v % 128) | 0x80)
      }
      return Uint8Array.from([0x12, p.length, ...p, 0x40, ...time])
    }
    const key = new Key('/peers/x')
    await ds.put(key, record(now))
    now += 30_000
    await ds.put(key, record(now))
    assert.equal(ds.skipped, 1, 'unchanged and fresh: dropped')
    assert.deepEqual(splitPeerRecord(await ds.get(key))?.updated, now - 30_000)
    await ds.put(key, record(now, '/p/2'))
    assert.equal(ds.skipped, 1, 'changed: written')
    now += 61_000
    await ds.put(key, record(now, '/p/2'))
    assert.equal(ds.skipped, 1, 'stale: written again')
    assert.equal(splitPeerRecord(await ds.get(key))?.updated, now)
    assert.equal(splitPeerRecord(Uint8Array.from([0x12, 5, 1])), undefined, 'a truncated record does not parse')
    await ds.put(new Key('/dht/record/y'), record(now))
    await ds.put(new Key('/dht/record/y'), record(now))
    assert.equal(ds.skipped, 1, 'only peer records are compared')
  } finally {
    await ds.close()
    await rm(dir, { recursive: true, force: true })
  }
})

/** LevelDB answers with Buffers, the cache with what was written: compare the bytes. */
function assertBytes(actual: Uint8Array, expected: Uint8Array, message?: string): void {
  assert.deepEqual([...actual], [...expected], message)
}

test('peer book: a record read once is served from memory, and every put, delete and batch is seen at once', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-p2p-cache-'))
  const ds = new PeerBookDatastore(dir)
  await ds.open()
  try {
    const key = new Key('/peers/p1')
    const record = (n: number): Uint8Array => Uint8Array.from([0x0a, 0x01, n, 0x40, 0x01]) // field 1, then updated = 1
    await ds.put(key, record(1)) // one LevelDB read: is it stored already?
    const afterPut = ds.levelReads
    assertBytes(await ds.get(key), record(1))
    assert.equal(ds.levelReads, afterPut, 'a record just written is in memory')
    await ds.put(key, record(2))
    assertBytes(await ds.get(key), record(2), 'a changed record is read back changed')
    await ds.delete(key)
    await assert.rejects(ds.get(key), 'a deleted record is gone')
    const batch = ds.batch()
    batch.put(key, record(3))
    await batch.commit()
    assertBytes(await ds.get(key), record(3), 'a batch is seen')
    const reads = ds.levelReads
    for (let i = 0; i < 100; i++) await ds.get(key)
    assert.equal(ds.levelReads, reads, '100 more reads: none reaches LevelDB')
    // a read that began before a write does not leave the old bytes behind
    await ds.close()
    await ds.open()
    const early = ds.get(key)
    const write = ds.put(key, record(4))
    assertBytes(await early, record(3))
    await write
    assertBytes(await ds.get(key), record(4))
    // reads beside a delete or a batch keep nothing: afterwards the store's answer is LevelDB's
    const deleting = ds.delete(key)
    const beside = ds.get(key).catch(() => undefined)
    await deleting
    await beside
    await assert.rejects(ds.get(key), 'deleted, whatever a read beside the delete saw')
    await ds.put(key, record(6))
    const batch2 = ds.batch()
    batch2.put(key, record(7))
    const committing = batch2.commit()
    const beside2 = ds.get(key)
    await committing
    await beside2
    assertBytes(await ds.get(key), record(7), 'the batch, whatever a read beside it saw')
    // other keys (the DHT's records) are not kept
    const other = new Key('/dht/record/x')
    await ds.put(other, record(5))
    assertBytes(await ds.get(other), record(5))
  } finally {
    await ds.close()
    await rm(dir, { recursive: true, force: true })
  }
})

test('peer book: at most PEER_BOOK_CACHE_ENTRIES records are kept in memory, the least recently used leaving first', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-p2p-cache-'))
  const ds = new PeerBookDatastore(dir)
  await ds.open()
  try {
    const value = Uint8Array.from([0x0a, 0x01, 0x07])
    for (let i = 0; i <= PEER_BOOK_CACHE_ENTRIES; i++) await ds.put(new Key(`/peers/p${i}`), value)
    const before = ds.levelReads
    await ds.get(new Key(`/peers/p${PEER_BOOK_CACHE_ENTRIES}`))
    assert.equal(ds.levelReads, before, 'the newest is in memory')
    await ds.get(new Key('/peers/p0'))
    assert.equal(ds.levelReads, before + 1, 'the oldest was dropped from memory, and is read from LevelDB')
  } finally {
    await ds.close()
    await rm(dir, { recursive: true, force: true })
  }
})
