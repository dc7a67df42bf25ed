import { test } from 'node:test'
import assert from 'node:assert/strict'
import { cidOf, cidOfBytes, parseCid, verifyCid, RAW_CODE } from './cid.ts'
import { encode } from './codec.ts'
import { utf8 } from './bytes.ts'
import { InvalidInputError } from './errors.ts'

test('cidOf is CIDv1 dag-cbor sha2-256 of the canonical encoding', () => {
  const cid = cidOf({ a: 1 })
  assert.equal(cid.version, 1)
  assert.equal(cid.code, 0x71)
  assert.equal(cid.multihash.code, 0x12)
  assert.ok(cid.toString().startsWith('bafyrei'))
  assert.ok(cid.equals(cidOfBytes(encode({ a: 1 }))))
})

test('a known value has a known CID (interop with IPLD tooling)', () => {
  // The dag-cbor encoding of {"hello":"world"} and its CID as computed by js-multiformats and go-ipld.
  assert.equal(cidOf({ hello: 'world' }).toString(), 'bafyreidykglsfhoixmivffc5uwhcgshx4j465xwqntbmu43nb2dzqwfvae')
})

test('raw blobs get raw CIDs and verify against their bytes', () => {
  const bytes = utf8('weights')
  const cid = cidOfBytes(bytes, RAW_CODE)
  assert.ok(cid.toString().startsWith('bafkrei'))
  assert.ok(verifyCid(cid, bytes))
  assert.ok(!verifyCid(cid, utf8('weightz')))
})

test('parseCid accepts what cidOf prints and rejects garbage and CIDv0', () => {
  const cid = cidOf([1, 2, 3])
  assert.ok(parseCid(cid.toString()).equals(cid))
  assert.throws(() => parseCid('not-a-cid'), InvalidInputError)
  assert.throws(() => parseCid('QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG'), InvalidInputError)
})
