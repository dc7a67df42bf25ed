import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import {
  merkleRoot,
  merkleRootOfLeaves,
  merkleProof,
  verifyMerkleProof,
  merkleLeaf,
  EMPTY_MERKLE_ROOT,
} from './merkle.ts'
import { sha256 } from './hash.ts'
import { utf8 } from './bytes.ts'

test('roots: empty, single leaf, order matters', () => {
  assert.deepEqual(merkleRoot([]), EMPTY_MERKLE_ROOT)
  assert.deepEqual(merkleRoot([utf8('a')]), merkleLeaf(utf8('a')))
  assert.deepEqual(
    merkleRoot([utf8('a'), utf8('b')]),
    sha256(Uint8Array.of(1), merkleLeaf(utf8('a')), merkleLeaf(utf8('b'))),
  )
  assert.notDeepEqual(merkleRoot([utf8('a'), utf8('b')]), merkleRoot([utf8('b'), utf8('a')]))
})

test('every leaf of every tree size has a proof that verifies, and fails for another item or root (property)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 40 }),
      fc.nat(),
      (items, pick) => {
        const root = merkleRoot(items)
        const index = pick % items.length
        const proof = merkleProof(items, index)
        assert.ok(verifyMerkleProof(root, items[index] as Uint8Array, proof))
        assert.ok(!verifyMerkleProof(root, utf8('not in the tree at all'), proof))
        assert.ok(!verifyMerkleProof(sha256(root), items[index] as Uint8Array, proof))
        if (proof.siblings.length > 0) {
          assert.ok(
            !verifyMerkleProof(root, items[index] as Uint8Array, { ...proof, siblings: proof.siblings.slice(1) }),
          )
        }
      },
    ),
    { numRuns: 300 },
  )
})

test('a proof cannot claim another index', () => {
  const items = [1, 2, 3, 4, 5].map((n) => Uint8Array.of(n))
  const root = merkleRoot(items)
  const proof = merkleProof(items, 2)
  assert.ok(!verifyMerkleProof(root, items[2] as Uint8Array, { ...proof, index: 3 }))
  assert.throws(() => merkleProof(items, 5))
})

test('the root from leaves already hashed is the root of their items, for every size up to 33', () => {
  const items = Array.from({ length: 33 }, (_, i) => utf8(`item ${i}`))
  for (let n = 0; n <= items.length; n++) {
    const some = items.slice(0, n)
    assert.deepEqual(merkleRootOfLeaves(some.map(merkleLeaf)), merkleRoot(some), `${n} items`)
  }
  assert.notDeepEqual(
    merkleRootOfLeaves(items),
    merkleRoot(items),
    'items are not leaves: they are hashed as one first',
  )
})
