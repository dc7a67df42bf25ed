import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { SparseMerkleTree } from './smt.ts'
import { verifyProof, encodeProof, decodeProof, MAX_PROOF_SIBLINGS, MAX_PROOF_BYTES, type StateProof } from './proof.ts'
import { StateProofError } from './errors.ts'
import { innerHash, leafHash } from './hashing.ts'
import { encode } from '../../core/codec.ts'
import { sha256 } from '../../core/hash.ts'
import { concat, equals, toHex, utf8 } from '../../core/bytes.ts'

// fast-check prints the seed and path of a failure ("seed: …, path: …") so it can be replayed.

const keyArb = fc.uint8Array({ maxLength: 6 })
const entriesArb = fc.uniqueArray(fc.tuple(keyArb, fc.uint8Array({ maxLength: 8 })), {
  selector: ([key]) => toHex(key),
  minLength: 1,
  maxLength: 50,
})

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(bytes)
  const i = Math.floor(bit / 8) % out.length
  out[i] = (out[i] as number) ^ (1 << (bit % 8))
  return out
}

test('every present key has a proof that verifies with its value, and fails for anything altered (property)', () => {
  fc.assert(
    fc.property(entriesArb, fc.nat(), fc.nat(), (entries, pick, bit) => {
      const tree = SparseMerkleTree.fromEntries(entries)
      const root = tree.root()
      const [key, value] = entries[pick % entries.length] as [Uint8Array, Uint8Array]
      const proof = tree.prove(key)
      assert.equal(proof.leaf, undefined)
      assert.ok(verifyProof(root, key, value, proof), 'the proof verifies')
      assert.ok(!verifyProof(root, key, concat(value, Uint8Array.of(0)), proof), 'altered value')
      if (value.length > 0) assert.ok(!verifyProof(root, key, flipBit(value, bit), proof), 'flipped value bit')
      assert.ok(!verifyProof(root, concat(key, Uint8Array.of(1)), value, proof), 'another key')
      assert.ok(!verifyProof(sha256(root), key, value, proof), 'another root')
      assert.ok(!verifyProof(root, key, undefined, proof), 'claimed absent')
      for (const [other] of entries) {
        if (!equals(other, key)) assert.ok(!verifyProof(root, other, value, proof), "another key's proof")
      }
      assertTamperingFails(proof, (p) => verifyProof(root, key, value, p), bit)
    }),
    { numRuns: 300 },
  )
})

test('absent keys have non-inclusion proofs that verify, and fail once the key is present (property)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(keyArb, fc.uint8Array({ maxLength: 8 })), { maxLength: 50 }),
      keyArb,
      fc.nat(),
      (entries, key, bit) => {
        const tree = SparseMerkleTree.fromEntries(entries).delete(key)
        const root = tree.root()
        const proof = tree.prove(key)
        assert.ok(verifyProof(root, key, undefined, proof), 'non-inclusion verifies')
        assert.ok(!verifyProof(root, key, new Uint8Array(0), proof), 'the same proof does not show a value')
        assert.ok(!verifyProof(sha256(root), key, undefined, proof), 'another root')
        const withKey = tree.set(key, utf8('now present'))
        assert.ok(!verifyProof(withKey.root(), key, undefined, proof), 'the old proof against the new root')
        assert.ok(!verifyProof(withKey.root(), key, undefined, withKey.prove(key)), 'a present key is not absent')
        assertTamperingFails(proof, (p) => verifyProof(root, key, undefined, p), bit)
      },
    ),
    { numRuns: 300 },
  )
})

test('a present key cannot be shown absent by pointing at a neighbouring leaf (property)', () => {
  fc.assert(
    fc.property(entriesArb, (entries) => {
      const tree = SparseMerkleTree.fromEntries(entries)
      const root = tree.root()
      for (const [key, value] of entries) {
        assert.ok(!verifyProof(root, key, undefined, tree.prove(key)))
        // Forge: the key's own siblings, with some other leaf at the end.
        const { siblings } = tree.prove(key)
        for (const [other, otherValue] of entries) {
          if (equals(other, key)) continue
          const forged = { siblings, leaf: { path: sha256(other), valueHash: sha256(otherValue) } }
          assert.ok(!verifyProof(root, key, undefined, forged))
        }
        const ownLeaf = { siblings, leaf: { path: sha256(key), valueHash: sha256(value) } }
        assert.ok(!verifyProof(root, key, undefined, ownLeaf), 'its own leaf offered as another key')
      }
    }),
    { numRuns: 100 },
  )
})

/** Every way of truncating, extending or modifying the proof must stop it verifying. */
function assertTamperingFails(proof: StateProof, verifies: (p: StateProof) => boolean, bit: number): void {
  const { siblings, leaf } = proof
  const zero = new Uint8Array(32)
  const variants: Array<[string, StateProof]> = [
    ['extra sibling at the end', { ...proof, siblings: [...siblings, zero] }],
    ['extra sibling at the start', { ...proof, siblings: [zero, ...siblings] }],
  ]
  if (siblings.length > 0) {
    const i = bit % siblings.length
    variants.push(['last sibling dropped', { ...proof, siblings: siblings.slice(0, -1) }])
    variants.push(['first sibling dropped', { ...proof, siblings: siblings.slice(1) }])
    variants.push([
      'one sibling modified',
      { ...proof, siblings: siblings.map((s, j) => (j === i ? flipBit(s, bit) : s)) },
    ])
  }
  if (siblings.length > 1) variants.push(['siblings reversed', { ...proof, siblings: [...siblings].reverse() }])
  if (leaf !== undefined) {
    variants.push(['leaf removed', { siblings }])
    variants.push(['leaf path modified', { siblings, leaf: { ...leaf, path: flipBit(leaf.path, bit) } }])
    variants.push([
      'leaf value hash modified',
      { siblings, leaf: { ...leaf, valueHash: flipBit(leaf.valueHash, bit) } },
    ])
  } else {
    variants.push(['leaf added', { siblings, leaf: { path: sha256(utf8('x')), valueHash: zero } }])
  }
  for (const [what, variant] of variants) {
    // A sibling that was already zero, flipped or reordered, may give the same list; skip those.
    if (sameProof(variant, proof)) continue
    assert.ok(!verifies(variant), what)
  }
}

function sameProof(a: StateProof, b: StateProof): boolean {
  return equals(encodeProof(a), encodeProof(b))
}

test('proofs in trees of 0, 1 and 2 keys', () => {
  const empty = SparseMerkleTree.empty()
  const absent = empty.prove(utf8('a'))
  assert.deepEqual(absent, { siblings: [] })
  assert.ok(verifyProof(new Uint8Array(32), utf8('a'), undefined, absent))
  assert.ok(!verifyProof(new Uint8Array(32), utf8('a'), utf8('1'), absent))

  const one = empty.set(utf8('a'), utf8('1'))
  assert.deepEqual(one.prove(utf8('a')), { siblings: [] })
  assert.ok(verifyProof(one.root(), utf8('a'), utf8('1'), one.prove(utf8('a'))))
  const other = one.prove(utf8('b'))
  assert.deepEqual(other, { siblings: [], leaf: { path: sha256(utf8('a')), valueHash: sha256(utf8('1')) } })
  assert.ok(verifyProof(one.root(), utf8('b'), undefined, other))

  // sha256("a") starts with bit 1 and sha256("b") with bit 0: they split at the root.
  const two = one.set(utf8('b'), utf8('2'))
  const proofA = two.prove(utf8('a'))
  assert.equal(proofA.siblings.length, 1)
  assert.deepEqual(proofA.siblings[0], sha256(Uint8Array.of(0), sha256(utf8('b')), sha256(utf8('2'))))
  assert.ok(verifyProof(two.root(), utf8('a'), utf8('1'), proofA))
})

test('encodeProof → decodeProof round-trips every proof (property)', () => {
  fc.assert(
    fc.property(entriesArb, keyArb, (entries, probe) => {
      const tree = SparseMerkleTree.fromEntries(entries)
      for (const key of [probe, ...entries.map(([k]) => k)]) {
        const proof = tree.prove(key)
        const bytes = encodeProof(proof)
        const back = decodeProof(bytes)
        assert.deepEqual(back, proof)
        assert.ok(equals(encodeProof(back), bytes))
        assert.ok(verifyProof(tree.root(), key, tree.get(key), back))
      }
    }),
    { numRuns: 100 },
  )
})

const hash32 = fc.uint8Array({ minLength: 32, maxLength: 32 })
const proofArb: fc.Arbitrary<StateProof> = fc.record(
  { siblings: fc.array(hash32, { maxLength: 12 }), leaf: fc.record({ path: hash32, valueHash: hash32 }) },
  { requiredKeys: ['siblings'] },
)

function decodesOrRefuses(bytes: Uint8Array): void {
  let proof: StateProof
  try {
    proof = decodeProof(bytes)
  } catch (err) {
    assert.ok(err instanceof StateProofError, `expected StateProofError, got ${String(err)}`)
    assert.equal(err.code, 'STATE_PROOF_INVALID')
    return
  }
  assert.ok(equals(encodeProof(proof), bytes), 'anything accepted re-encodes to the same bytes')
}

test('decodeProof on random bytes gives a valid proof or a StateProofError, nothing else (property)', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), decodesOrRefuses), { numRuns: 5000 })
})

test('decodeProof on mutated valid encodings gives a valid proof or a StateProofError (property)', () => {
  fc.assert(
    fc.property(
      proofArb,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 3 })), {
        minLength: 1,
        maxLength: 4,
      }),
      (proof, edits) => {
        let bytes = encodeProof(proof)
        for (const [at, byte, kind] of edits) {
          const i = bytes.length === 0 ? 0 : at % bytes.length
          if (kind === 0) bytes = Uint8Array.from(bytes, (b, j) => (j === i ? byte : b))
          else if (kind === 1) bytes = bytes.subarray(0, i)
          else if (kind === 2) bytes = concat(bytes.subarray(0, i), Uint8Array.of(byte), bytes.subarray(i))
          else bytes = concat(bytes.subarray(0, i), bytes.subarray(i + 1))
        }
        decodesOrRefuses(bytes)
      },
    ),
    { numRuns: 3000 },
  )
})

test('decodeProof refuses each kind of malformed proof with a StateProofError', () => {
  const h = new Uint8Array(32)
  const cases: Array<[string, Uint8Array]> = [
    ['empty input', new Uint8Array(0)],
    ['not a map', encode([h])],
    ['null', encode(null)],
    ['siblings missing', encode({})],
    ['siblings not a list', encode({ siblings: h })],
    ['a sibling of 31 bytes', encode({ siblings: [h, h.subarray(1)] })],
    ['a sibling of 33 bytes', encode({ siblings: [concat(h, h.subarray(0, 1))] })],
    ['a sibling that is a string', encode({ siblings: ['00'.repeat(32)] })],
    ['too many siblings', encode({ siblings: Array.from({ length: MAX_PROOF_SIBLINGS + 1 }, () => h) })],
    ['leaf not a pair', encode({ leaf: [h], siblings: [] })],
    ['leaf as a map', encode({ leaf: { path: h, valueHash: h }, siblings: [] })],
    ['leaf path short', encode({ leaf: [h.subarray(1), h], siblings: [] })],
    ['unknown field', encode({ siblings: [], extra: 1 })],
    ['trailing bytes', concat(encode({ siblings: [] }), Uint8Array.of(0))],
    [
      'non-canonical (unsorted keys)',
      Uint8Array.from([0xa2, 0x68, ...utf8('siblings'), 0x80, 0x64, ...utf8('leaf'), 0xf6]),
    ],
    ['oversized input', new Uint8Array(MAX_PROOF_BYTES + 1)],
    ['not bytes', 'proof' as unknown as Uint8Array],
  ]
  for (const [what, bytes] of cases) {
    assert.throws(() => decodeProof(bytes), StateProofError, what)
  }
  const full = encode({ siblings: Array.from({ length: MAX_PROOF_SIBLINGS }, () => h) })
  assert.ok(full.length < MAX_PROOF_BYTES)
  assert.equal(decodeProof(full).siblings.length, MAX_PROOF_SIBLINGS)
})

test('verifyProof never throws on malformed arguments, it returns false; encodeProof refuses them', () => {
  const tree = SparseMerkleTree.fromEntries([[utf8('a'), utf8('1')]])
  const root = tree.root()
  const good = tree.prove(utf8('a'))
  const h = new Uint8Array(32)
  const bad: unknown[] = [
    null,
    undefined,
    {},
    { siblings: 'x' },
    { siblings: [h.subarray(1)] },
    { siblings: [null] },
    { siblings: Array.from({ length: MAX_PROOF_SIBLINGS + 1 }, () => h) },
    { siblings: [], leaf: null },
    { siblings: [], leaf: { path: h } },
    { siblings: [], leaf: { path: h, valueHash: 'x' } },
  ]
  for (const proof of bad) {
    assert.equal(verifyProof(root, utf8('a'), utf8('1'), proof as StateProof), false)
    assert.equal(verifyProof(root, utf8('a'), undefined, proof as StateProof), false)
    assert.throws(() => encodeProof(proof as StateProof), StateProofError)
  }
  assert.equal(verifyProof(root.subarray(1), utf8('a'), utf8('1'), good), false)
  assert.equal(verifyProof(root, 'a' as unknown as Uint8Array, utf8('1'), good), false)
  assert.equal(verifyProof(root, utf8('a'), '1' as unknown as Uint8Array, good), false)
  assert.equal(verifyProof(root, utf8('a'), utf8('1'), good), true)
})

test('a non-inclusion leaf must lie on the key path, even under a root that would match', () => {
  // sha256("b") starts with bit 0. Build a (malformed) root with a leaf whose path starts with
  // bit 1 in the left subtree: folding would match, but the leaf cannot sit there.
  const key = utf8('b')
  const stray = { path: sha256(utf8('a')), valueHash: sha256(utf8('1')) }
  assert.equal((stray.path[0] as number) >> 7, 1)
  const sibling = sha256(utf8('anything'))
  const root = innerHash(leafHash(stray.path, stray.valueHash), sibling)
  assert.equal(verifyProof(root, key, undefined, { siblings: [sibling], leaf: stray }), false)
  // The same shape with the leaf on the key's side verifies.
  const onPath = { path: Uint8Array.from(stray.path, (b, i) => (i === 0 ? b & 0x7f : b)), valueHash: stray.valueHash }
  const goodRoot = innerHash(leafHash(onPath.path, onPath.valueHash), sibling)
  assert.equal(verifyProof(goodRoot, key, undefined, { siblings: [sibling], leaf: onPath }), true)
})
