import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { encode } from '../core/codec.ts'
import { BlockError } from './errors.ts'
import { decodeBlock, decodeCommit, encodeBlock, blockId, commitHash, ZERO_HASH, type Block } from './block.ts'
import { merkleRoot } from '../core/merkle.ts'
import { PohChain } from './poh/entries.ts'
import { sha256 } from '../core/hash.ts'
import { encodeTx, signTx, txHash } from './tx.ts'
import { actor } from '../../test/helpers/chain.ts'

function sampleBlock(): Block {
  const a = actor()
  const txs = [0n, 1n, 2n].map((n) =>
    encodeTx(
      signTx(a.key, { chainId: 'c', nonce: n, fee: 1n, kind: 'bank.transfer', body: { to: a.did, amount: 1n } }),
    ),
  )
  const start = sha256(new Uint8Array([1]))
  const chain = new PohChain(start, 4)
  chain.tick(2)
  chain.record(merkleRoot(txs.map(txHash)))
  const poh = chain.drain()
  return {
    header: {
      chainId: 'c',
      height: 1,
      round: 0,
      time: 1000,
      proposer: a.did,
      parentId: ZERO_HASH,
      txRoot: merkleRoot(txs.map(txHash)),
      stateRoot: ZERO_HASH,
      pohStart: start,
      pohEnd: chain.hash,
      pohTicks: 2,
      lastCommitHash: commitHash(null),
    },
    txs,
    poh,
    batches: [3],
    lastCommit: null,
  }
}

test('a block round-trips and keeps its id', () => {
  const block = sampleBlock()
  const back = decodeBlock(encodeBlock(block))
  assert.deepEqual(blockId(back.header), blockId(block.header))
  assert.equal(back.txs.length, 3)
})

test('inconsistent blocks are refused: batches, mixins, roots, PoH end, tick count', () => {
  const bad: Array<(b: Block) => void> = [
    (b) => (b.batches = [2]),
    (b) => (b.header.txRoot = ZERO_HASH),
    (b) => (b.header.pohEnd = ZERO_HASH),
    (b) => (b.header.pohTicks = 3),
    (b) => (b.txs = [b.txs[1] as Uint8Array, b.txs[0] as Uint8Array, b.txs[2] as Uint8Array]),
    (b) => (b.header.lastCommitHash = sha256(new Uint8Array([9]))),
  ]
  for (const mutate of bad) {
    const block = sampleBlock()
    mutate(block)
    assert.throws(() => decodeBlock(encodeBlock(block)), BlockError)
  }
})

test('block and commit decoders give BlockError or a block on random and mutated input, never another error (fuzz)', () => {
  const valid = encodeBlock(sampleBlock())
  fc.assert(
    fc.property(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 1, max: 255 }), (i, delta) => {
      const mutated = Uint8Array.from(valid)
      mutated[i] = ((mutated[i] ?? 0) + delta) & 0xff
      try {
        decodeBlock(mutated)
      } catch (err) {
        assert.ok(err instanceof BlockError, String(err))
      }
    }),
    { numRuns: 2000 },
  )
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      for (const decoder of [decodeBlock, decodeCommit]) {
        try {
          decoder(bytes)
        } catch (err) {
          assert.ok(err instanceof BlockError, String(err))
        }
      }
    }),
    { numRuns: 3000 },
  )
  assert.throws(
    () => decodeCommit(encode({ height: 1, round: 0, blockId: ZERO_HASH, precommits: [{ nope: 1 }] })),
    BlockError,
  )
})
