// The content store over real libp2p hosts on 127.0.0.1 and real block files: fetching between
// Donghae nodes, refusing corrupt blocks, resuming after a restart, the disk budget, and a stock
// Helia node (npm `helia`, configured as any IPFS user would, minus public bootstrap and routers)
// fetching a published file by its CID.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createCipheriv, createHash } from 'node:crypto'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FsBlockstore } from 'blockstore-fs'
import * as dagPb from '@ipld/dag-pb'
import { createHelia } from 'helia'
import { unixfs } from '@helia/unixfs'
import { tcp } from '@libp2p/tcp'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { CID, DAG_PB_CODE, RAW_CODE, cidOfBytes, parseCid, unixfsCid } from '../core/cid.ts'
import { AbortError } from '../core/errors.ts'
import { MemoryBlockstore } from 'blockstore-core'
import { Ed25519KeyPair } from '../identity/keys.ts'
import { didFromPeerId } from '../identity/peer-id.ts'
import { createHost, type DonghaeHost } from './host.ts'
import {
  ContentBudgetError,
  ContentNotFoundError,
  ContentStore,
  ContentUnavailableError,
  type ContentStoreOptions,
  type FetchProgress,
} from './content-store.ts'

const KiB = 1024
const MiB = 1024 * KiB

/** Deterministic pseudo-random bytes (the ChaCha20 keystream under sha256(seed)). */
function bytesOf(size: number, seed: string): Uint8Array {
  const key = createHash('sha256').update(seed).digest()
  return new Uint8Array(createCipheriv('chacha20', key, Buffer.alloc(16)).update(Buffer.alloc(size)))
}

interface Node {
  host: DonghaeHost
  store: ContentStore
  did: string
  dir: string
  /** Closes the store and the host. */
  stop(): Promise<void>
}

async function node(dir: string, options: Partial<ContentStoreOptions> = {}, host?: DonghaeHost): Promise<Node> {
  const key = Ed25519KeyPair.generate()
  const h = host ?? (await createHost({ key, host: '127.0.0.1', port: 0, quic: false, webSockets: false, mdns: false }))
  if (host === undefined) await h.start()
  const store = await ContentStore.open({ libp2p: h, dir, ...options })
  return {
    host: h,
    store,
    did: didFromPeerId(h.peerId),
    dir,
    stop: async () => {
      await store.close()
      await h.stop()
    },
  }
}

async function connect(a: Node, b: Node): Promise<void> {
  await a.host.dial(b.host.getMultiaddrs()[0] as never)
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-content-'))
  try {
    return await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

test('a file added on one node is fetched by another over bitswap, block by block, and reads back identical', async () => {
  await withDir(async (dir) => {
    const a = await node(join(dir, 'a'))
    const b = await node(join(dir, 'b'))
    try {
      await connect(b, a)
      const file = bytesOf(3 * MiB + 12_345, 'two-nodes')
      const added = await a.store.addFile(file)
      assert.equal(added.cid, (await unixfsCid(file)).toString())
      assert.equal(added.size, file.length)
      assert.equal(await b.store.has(added.cid), false)
      const events: FetchProgress[] = []
      const result = await b.store.fetch(added.cid, { onProgress: (p) => events.push(p) })
      assert.equal(result.size, file.length)
      assert.equal(result.blocks, 1 + 13) // a root over 13 leaves of 256 KiB
      assert.equal(result.fetchedBlocks, 14)
      assert.deepEqual(result.fromPeers, { [a.did]: 14 })
      assert.equal(await b.store.has(added.cid), true)
      assert.deepEqual(await b.store.read(added.cid), file)
      const last = events.at(-1)
      assert.equal(last?.blocks, 14)
      assert.equal(last?.totalBlocks, 14)
      assert.equal(last?.bytes, last?.totalBytes)
      // a small file is one raw block, under the raw CID it always had
      const small = new TextEncoder().encode('tokenizer')
      const tiny = await a.store.addFile(small)
      assert.equal(tiny.cid, cidOfBytes(small, RAW_CODE).toString())
      assert.deepEqual(await b.store.fileSource().fetch(tiny.cid, [a.did]), small)
      // fetching again fetches nothing
      const again = await b.store.fetch(added.cid)
      assert.equal(again.fetchedBlocks, 0)
    } finally {
      await b.stop()
      await a.stop()
    }
  })
})

/** A stock Helia node from npm as an IPFS user would start it, but on loopback with no public bootstrap or routers. */
async function stockHelia(blockstore?: MemoryBlockstore): Promise<Awaited<ReturnType<typeof createHelia>>> {
  const helia = await createHelia({
    ...(blockstore === undefined ? {} : { blockstore }),
    libp2p: {
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      peerDiscovery: [],
      services: { identify: identify(), ping: ping() },
    },
    http: { delegatedRouters: [], recursiveGateways: [] },
  })
  return helia.start()
}

async function concat(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = []
  for await (const c of chunks) parts.push(c)
  return new Uint8Array(Buffer.concat(parts))
}

test('a stock Helia node dials a Donghae node and cats a published file by its CID; Donghae fetches what Helia adds', async () => {
  await withDir(async (dir) => {
    const donghae = await node(join(dir, 'donghae'))
    const helia = await stockHelia()
    try {
      const file = bytesOf(2 * MiB + 7, 'to-helia')
      const { cid } = await donghae.store.addFile(file)
      await helia.libp2p.dial(donghae.host.getMultiaddrs()[0] as never)
      const fs = unixfs(helia)
      assert.deepEqual(await concat(fs.cat(CID.parse(cid), { signal: AbortSignal.timeout(20_000) })), file)
      // and the other way: Helia's defaults (1 MiB chunks, 1024 links) are a DAG like any other
      const theirs = bytesOf(3 * MiB + 1, 'from-helia')
      const added = await fs.addBytes(theirs)
      const result = await donghae.store.fetch(added.toString())
      assert.equal(result.size, theirs.length)
      assert.deepEqual(Object.keys(result.fromPeers), [didFromPeerId(helia.libp2p.peerId)])
      assert.deepEqual(await donghae.store.read(added.toString()), theirs)
    } finally {
      await helia.stop()
      await donghae.stop()
    }
  })
})

test('a peer serving a block that does not match its CID is dropped and the block never enters the store', async () => {
  await withDir(async (dir) => {
    const publisher = await node(join(dir, 'publisher'))
    const fetcher = await node(join(dir, 'fetcher'))
    // a stock Helia node whose blockstore holds the file with one leaf's bytes replaced
    const evilBlocks = new MemoryBlockstore()
    const evil = await stockHelia(evilBlocks)
    try {
      const file = bytesOf(2 * MiB, 'corrupt')
      const { cid } = await publisher.store.addFile(file)
      const plain = new FsBlockstore(join(publisher.dir, 'blocks'))
      const rootBytes = await concat(plain.get(parseCid(cid)))
      const leaves = dagPb.decode(rootBytes).Links.map((l) => l.Hash)
      assert.equal(leaves.length, 8)
      const bad = leaves[5] as CID
      await evilBlocks.put(parseCid(cid), rootBytes)
      for (const leaf of leaves) {
        const bytes = await concat(plain.get(leaf))
        if (leaf.equals(bad)) bytes[0] = (bytes[0] ?? 0) ^ 0xff
        await evilBlocks.put(leaf, bytes)
      }
      await fetcher.host.dial(evil.libp2p.getMultiaddrs()[0] as never)
      const evilDid = didFromPeerId(evil.libp2p.peerId)
      // from the corrupt peer alone: the fetch stalls on that block and fails, naming the peer
      const err = await fetcher.store.fetch(cid, { stallMs: 1_500, blockTimeoutMs: 1_000 }).catch((e: unknown) => e)
      assert.ok(err instanceof ContentUnavailableError, String(err))
      assert.deepEqual((err.details as { invalidFrom?: unknown }).invalidFrom, { [evilDid]: 1 })
      const stored = new FsBlockstore(join(fetcher.dir, 'blocks'))
      assert.equal(await stored.has(bad), false)
      assert.equal(await fetcher.store.has(cid), false)
      // with an honest peer too, the fetch completes with the right bytes
      await connect(fetcher, publisher)
      const result = await fetcher.store.fetch(cid, { blockTimeoutMs: 1_000 })
      assert.ok(result.fetchedBlocks >= 1 && result.fetchedBlocks < 9)
      assert.ok((result.fromPeers[publisher.did] ?? 0) >= 1)
      assert.deepEqual(await fetcher.store.read(cid), file)
    } finally {
      await evil.stop()
      await fetcher.stop()
      await publisher.stop()
    }
  })
})

/** Block files under a store's directory. */
async function blockFiles(dir: string): Promise<number> {
  const entries = await readdir(join(dir, 'blocks'), { recursive: true }).catch(() => [] as string[])
  return entries.filter((e) => e.endsWith('.data')).length
}

test('a fetch stopped half way resumes after a restart and fetches only the blocks still missing', async () => {
  await withDir(async (dir) => {
    const publisher = await node(join(dir, 'publisher'))
    let fetcher = await node(join(dir, 'fetcher'), { fetch: { perPeer: 2, maxInFlight: 2 } })
    try {
      const file = bytesOf(8 * MiB + 1, 'resume') // 33 leaves under a root
      const { cid } = await publisher.store.addFile(file)
      await connect(fetcher, publisher)
      const stop = new AbortController()
      const first = await fetcher.store
        .fetch(cid, { signal: stop.signal, onProgress: (p) => p.fetchedBlocks >= 12 && stop.abort() })
        .catch((e: unknown) => e)
      assert.ok(first instanceof AbortError, String(first))
      await fetcher.stop()
      const kept = await blockFiles(fetcher.dir)
      assert.ok(kept >= 12 && kept < 34, `${kept} blocks kept`)
      // a new process: same directory, new host
      fetcher = await node(fetcher.dir)
      await connect(fetcher, publisher)
      const second = await fetcher.store.fetch(cid)
      assert.equal(second.blocks, 34)
      assert.equal(second.fetchedBlocks, 34 - kept)
      assert.equal(
        Object.values(second.fromPeers).reduce((a, b) => a + b, 0),
        34 - kept,
      )
      assert.deepEqual(await fetcher.store.read(cid), file)
    } finally {
      await fetcher.stop()
      await publisher.stop()
    }
  })
})

test('the disk budget: a file that cannot fit is refused before its blocks are fetched; unpinned files are evicted oldest first', async () => {
  await withDir(async (dir) => {
    const publisher = await node(join(dir, 'publisher'))
    const small = await node(join(dir, 'small'), { budgetBytes: 5 * MiB })
    try {
      const file = bytesOf(8 * MiB, 'too-big')
      const { cid } = await publisher.store.addFile(file)
      await connect(small, publisher)
      const err = await small.store.fetch(cid).catch((e: unknown) => e)
      assert.ok(err instanceof ContentBudgetError, String(err))
      assert.equal((err.details as { budget: number }).budget, 5 * MiB)
      assert.equal(await blockFiles(small.dir), 0) // not even the root was kept
      await assert.rejects(small.store.addFile(bytesOf(6 * MiB, 'add')), ContentBudgetError)

      // 10 MiB: room for two 4 MiB files
      const local = await node(join(dir, 'budget'), { budgetBytes: 10 * MiB })
      const store = local.store
      try {
        const f1 = await store.addFile(bytesOf(4 * MiB, 'f1'), { pin: false })
        const f2 = await store.addFile(bytesOf(4 * MiB, 'f2'))
        const f3 = await store.addFile(bytesOf(4 * MiB, 'f3'), { pin: false })
        assert.equal(await store.has(f1.cid), false) // the oldest unpinned file made room
        assert.equal(await store.has(f2.cid), true)
        assert.equal(await store.has(f3.cid), true)
        const release = store.lease(f3.cid) // a worker serving it
        await assert.rejects(store.addFile(bytesOf(4 * MiB, 'f4')), ContentBudgetError)
        release()
        const f4 = await store.addFile(bytesOf(4 * MiB, 'f4'))
        assert.equal(await store.has(f3.cid), false)
        assert.equal(await store.has(f4.cid), true)
        await store.unpin(f2.cid)
        assert.ok(store.usage().bytes <= 10 * MiB)
      } finally {
        await local.stop()
      }
    } finally {
      await small.stop()
      await publisher.stop()
    }
  })
})

test('a directory is added as a UnixFS directory whose files are fetched by their own CIDs', async () => {
  await withDir(async (dir) => {
    const a = await node(join(dir, 'a'))
    const b = await node(join(dir, 'b'))
    try {
      const files = join(dir, 'model')
      await mkdir(files)
      const weights = bytesOf(MiB + 3, 'weights')
      await writeFile(join(files, 'weights.onnx'), weights)
      await writeFile(join(files, 'tokenizer.json'), '{"vocab":[]}')
      const added = await a.store.addDirectory(files)
      assert.equal(parseCid(added.cid).code, DAG_PB_CODE)
      assert.deepEqual(Object.keys(added.files).sort(), ['tokenizer.json', 'weights.onnx'])
      assert.equal(added.files['weights.onnx']?.cid, (await unixfsCid(weights)).toString())
      await connect(b, a)
      await b.store.fetch(added.cid)
      assert.deepEqual(await b.store.read(added.files['weights.onnx']?.cid ?? ''), weights)
      assert.equal(
        new TextDecoder().decode(await b.store.read(added.files['tokenizer.json']?.cid ?? '')),
        '{"vocab":[]}',
      )
    } finally {
      await b.stop()
      await a.stop()
    }
  })
})

test('a block damaged on disk is neither served nor read back: peers get DONT_HAVE, and fetching again repairs it', async () => {
  await withDir(async (dir) => {
    const a = await node(join(dir, 'a'))
    const b = await node(join(dir, 'b'))
    const c = await node(join(dir, 'c'))
    try {
      const file = bytesOf(MiB + 5, 'damaged')
      const { cid } = await a.store.addFile(file)
      const plain = new FsBlockstore(join(a.dir, 'blocks'))
      const leaf = dagPb.decode(await concat(plain.get(parseCid(cid)))).Links[2]?.Hash as CID
      await plain.put(leaf, bytesOf(256 * KiB, 'garbage'))
      await connect(b, a)
      const err = await b.store.fetch(cid, { stallMs: 1_500 }).catch((e: unknown) => e)
      assert.ok(err instanceof ContentUnavailableError, String(err))
      assert.deepEqual((err.details as { invalidFrom?: unknown }).invalidFrom, {}) // a DONT_HAVE, not a lie
      await assert.rejects(a.store.read(cid), ContentNotFoundError)
      assert.equal(await a.store.has(cid), false) // the damaged block was dropped
      await c.store.addFile(file)
      await connect(a, c)
      const repaired = await a.store.fetch(cid)
      assert.equal(repaired.fetchedBlocks, 1)
      assert.deepEqual(await a.store.read(cid), file)
    } finally {
      await c.stop()
      await b.stop()
      await a.stop()
    }
  })
})
