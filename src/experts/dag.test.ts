// The parameter DAG's pure functions and the block identity / proof-of-work helpers.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { findCycle, resolveRefs, siblingRef, topoOrder } from './dag.ts'
import { blockHash, payloadSigningBytes, signParamBlock, verifyPayloadSig } from './block.ts'
import { meetsDifficulty, powDigest, stampPow } from './pow.ts'
import { actor, cid } from './chain/test-kit.ts'

test('sibling references resolve by header index; unknown ones are reported', () => {
  assert.equal(siblingRef('#12'), 12)
  assert.equal(siblingRef('#012'), undefined)
  const r = resolveRefs([
    { index: 5, dependsOn: ['m', '#6'] },
    { index: 6, dependsOn: ['m'] },
    { index: 7, dependsOn: ['#9'] },
  ])
  assert.deepEqual(r.internal, [[1], [], []])
  assert.deepEqual(r.external, [['m'], ['m'], []])
  assert.deepEqual(r.unresolved, [[2, '#9']])
})

test('topological order puts dependencies first (Kahn, lowest ready first); a cycle names its members', () => {
  assert.deepEqual(topoOrder([[1], [], [0, 1]]), { order: [1, 0, 2] })
  assert.deepEqual(topoOrder([[2], [], [0], [1]]), { cycle: [0, 2] })
  assert.deepEqual(findCycle([[0]]), [0])
  assert.equal(findCycle([[1], [2], []]), undefined)
  assert.deepEqual(topoOrder([]), { order: [] })
})

test('a block signs without its nonce, hashes with it, and proof of work finds leading zero bits', async () => {
  assert.ok(meetsDifficulty(new Uint8Array([0, 0x0f]), 12))
  assert.ok(!meetsDifficulty(new Uint8Array([0, 0x1f]), 12))
  const miner = actor()
  const header = signParamBlock(miner.key, {
    index: 0,
    chainId: 'f',
    version: 1,
    dependsOn: ['ab'.repeat(32)],
    blockType: 'router',
    expertName: 'layer0.router',
    layerId: 0,
    payloadHash: cid('x'),
    payloadBytes: 1,
    shapes: { weight: [2, 2] },
  })
  assert.equal(header.miner, miner.did)
  assert.ok(verifyPayloadSig(header))
  assert.ok(!verifyPayloadSig({ ...header, payloadBytes: 2 }))
  const stamp = await stampPow(header, 10)
  const stamped = { ...header, nonce: stamp.nonce }
  assert.ok(meetsDifficulty(powDigest(stamped), 10))
  assert.ok(verifyPayloadSig(stamped), 'the nonce is outside the signature')
  assert.notEqual(blockHash(stamped), blockHash(header), 'but inside the hash')
  const resigned: typeof stamped = { ...stamped, payloadSig: new Uint8Array(64) }
  assert.equal(blockHash(resigned), blockHash(stamped), 'the signature is outside the hash')
  assert.equal(payloadSigningBytes(stamped).length, 32)
  const controller = new AbortController()
  controller.abort()
  await assert.rejects(stampPow(header, 64, controller.signal))
})
