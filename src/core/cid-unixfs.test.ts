// UnixFS CIDs of files: the same CIDs kubo gives (`ipfs add --cid-version 1 --raw-leaves`), checked
// against kubo's own test vectors, and the DAG's shape (256 KiB raw leaves, 174 links per node).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createCipheriv, createHash } from 'node:crypto'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { importBytes } from 'ipfs-unixfs-importer'
import {
  type CID,
  DAG_PB_CODE,
  KUBO_LAYOUT,
  RAW_CODE,
  cidOfBytes,
  unixfsCid,
  unixfsImportOptions,
  verifyFileCid,
} from './cid.ts'
import { utf8 } from './bytes.ts'

const MiB = 1024 * 1024

/**
 * kubo's deterministic test bytes (test/cli/testutils in kubo, mirrored by js-ipfs-unixfs's
 * importer tests): the ChaCha20 keystream under key sha256(seed) and a zero nonce. Node's
 * `chacha20` takes a 16-byte IV: a 32-bit little-endian block counter, then the 12-byte nonce.
 */
function* deterministicBytes(size: number, seed: string, piece = 4 * MiB): Generator<Uint8Array> {
  const key = createHash('sha256').update(seed).digest()
  const cipher = createCipheriv('chacha20', key, Buffer.alloc(16))
  for (let done = 0; done < size; done += piece)
    yield new Uint8Array(cipher.update(Buffer.alloc(Math.min(piece, size - done))))
}

function concat(pieces: Iterable<Uint8Array>): Uint8Array {
  return new Uint8Array(Buffer.concat([...pieces]))
}

/** A blockstore that keeps what the importer writes, to look at the DAG. */
function memoryBlocks(): { put(cid: CID, bytes: Uint8Array): CID; get(cid: CID): Uint8Array } {
  const blocks = new Map<string, Uint8Array>()
  return {
    put: (cid, bytes) => {
      blocks.set(cid.toString(), bytes)
      return cid
    },
    get: (cid) => {
      const bytes = blocks.get(cid.toString())
      assert.ok(bytes !== undefined, `block ${cid.toString()} was not written`)
      return bytes
    },
  }
}

test('a small file is one raw block: kubo’s CIDv1 of "hello world" and of "hello\\n"', async () => {
  // kubo test/cli/add_test.go (shortStringCidV1) and test/sharness/t0114 (CIDv1 of `echo hello`)
  assert.equal(
    (await unixfsCid(utf8('hello world'))).toString(),
    'bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e',
  )
  assert.equal(
    (await unixfsCid(utf8('hello\n'))).toString(),
    'bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am',
  )
})

test('up to 256 KiB the UnixFS CID is the raw CID of the bytes (what blobs were registered under)', async () => {
  for (const size of [0, 1, 1000, KUBO_LAYOUT.chunkSize]) {
    const bytes = concat(deterministicBytes(size, `raw-${size}`))
    const cid = await unixfsCid(bytes)
    assert.equal(cid.code, RAW_CODE)
    assert.ok(cid.equals(cidOfBytes(bytes, RAW_CODE)), `size ${size}`)
    assert.ok(cid.toString().startsWith('bafkrei'))
  }
})

test('kubo vectors with raw leaves and CIDv1: 1 MiB chunks (unixfs-v1-2025) at and just over one chunk', async () => {
  // kubo test/cli/cid_profiles_test.go via js-ipfs-unixfs ipip-499-profiles.spec.ts
  const v1 = { chunkSize: MiB, maxLinksPerNode: 1024 }
  const at = concat(deterministicBytes(MiB, 'chunk-v1-seed'))
  assert.equal((await unixfsCid(at, v1)).toString(), 'bafkreiacndfy443ter6qr2tmbbdhadvxxheowwf75s6zehscklu6ezxmta')
  const over = concat(deterministicBytes(MiB + 1, 'chunk-v1-seed'))
  assert.equal((await unixfsCid(over, v1)).toString(), 'bafybeigmix7t42i6jacydtquhet7srwvgpizfg7gjbq7627d35mjomtu64')
})

test('kubo vectors with raw leaves, CIDv1 and 174 links per node (test-cid-v1): 174 MiB, and 175 MiB rebalanced', async () => {
  // kubo test/cli/add_test.go: "ipfs init --profile=test-cid-v1 applies UnixFSChunker=size-1048576"
  const layout = { chunkSize: MiB, maxLinksPerNode: 174 }
  assert.equal(
    (await unixfsCid(deterministicBytes(174 * MiB, 'v1-seed'), layout)).toString(),
    'bafybeigwduxcf2aawppv3isnfeshnimkyplvw3hthxjhr2bdeje4tdaicu',
  )
  assert.equal(
    (await unixfsCid(deterministicBytes(175 * MiB, 'v1-seed'), layout)).toString(),
    'bafybeidhd7lo2n2v7lta5yamob3xwhbxcczmmtmhquwhjesi35jntf7mpu',
  )
})

test('kubo’s layout: 256 KiB raw leaves under a dag-pb root, 174 links per node, then a second level', async () => {
  const chunk = KUBO_LAYOUT.chunkSize
  // one byte over a chunk: a root with two raw leaves of 262144 and 1 bytes
  const small = memoryBlocks()
  const two = await importBytes(concat(deterministicBytes(chunk + 1, 'two')), small, await unixfsImportOptions())
  assert.equal(two.cid.code, DAG_PB_CODE)
  assert.ok(two.cid.toString().startsWith('bafybei'))
  const root = dagPb.decode(small.get(two.cid))
  const data = UnixFS.unmarshal(root.Data ?? new Uint8Array())
  assert.equal(data.type, 'file')
  assert.equal(data.fileSize(), BigInt(chunk + 1))
  assert.deepEqual(data.blockSizes, [BigInt(chunk), 1n])
  assert.deepEqual(
    root.Links.map((l) => [l.Hash.code, small.get(l.Hash).length]),
    [
      [RAW_CODE, chunk],
      [RAW_CODE, 1],
    ],
  )
  // 174 chunks fit one node; 175 split into a second level: a root of 2 links, the first with 174
  const wide = memoryBlocks()
  const full = await importBytes(deterministicBytes(174 * chunk, 'wide'), wide, await unixfsImportOptions())
  assert.equal(dagPb.decode(wide.get(full.cid)).Links.length, 174)
  const deep = memoryBlocks()
  const over = await importBytes(deterministicBytes(175 * chunk, 'wide'), deep, await unixfsImportOptions())
  const top = dagPb.decode(deep.get(over.cid))
  assert.equal(top.Links.length, 2)
  const [first, second] = top.Links.map((l) => dagPb.decode(deep.get(l.Hash)))
  assert.equal(first?.Links.length, 174)
  assert.equal(second?.Links.length, 1)
  assert.ok(first?.Links.every((l) => l.Hash.code === RAW_CODE && l.Tsize === chunk))
  // the streamed and the whole-array import agree
  assert.ok((await unixfsCid(concat(deterministicBytes(175 * chunk, 'wide')))).equals(over.cid))
})

test('verifyFileCid checks a file against a raw CID or a UnixFS root, and refuses one changed byte', async () => {
  const small = utf8('weights')
  assert.equal(await verifyFileCid(cidOfBytes(small, RAW_CODE), small), true)
  const big = concat(deterministicBytes(600_000, 'verify'))
  const root = await unixfsCid(big)
  assert.equal(root.code, DAG_PB_CODE)
  assert.equal(await verifyFileCid(root, big), true)
  const changed = big.slice()
  changed[599_999] = (changed[599_999] ?? 0) ^ 1
  assert.equal(await verifyFileCid(root, changed), false)
  assert.equal(await verifyFileCid(cidOfBytes(small, RAW_CODE), utf8('weightz')), false)
  // a dag-cbor CID is not a file
  assert.equal(await verifyFileCid(cidOfBytes(small), small), false)
})
