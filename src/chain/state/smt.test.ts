import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { SparseMerkleTree, type StateChange } from './smt.ts'
import { sha256 } from '../../core/hash.ts'
import { equals, fromHex, toHex, utf8 } from '../../core/bytes.ts'
import { InvalidInputError } from '../../core/errors.ts'

// fast-check prints the seed and path of a failure ("seed: …, path: …") so it can be replayed.

const ZERO_ROOT = new Uint8Array(32)

/**
 * The root straight from the definition, sharing no code with the tree: recurse over the full
 * 256-level tree, where an empty subtree is 32 zero bytes and a subtree holding one leaf is that
 * leaf, sha256(0x00 ‖ sha256(key) ‖ sha256(value)); any other subtree is sha256(0x01 ‖ left ‖ right).
 */
function referenceRoot(entries: ReadonlyArray<readonly [Uint8Array, Uint8Array]>): Uint8Array {
  const leaves = entries.map(([key, value]) => ({ path: sha256(key), value }))
  const subtree = (items: typeof leaves, depth: number): Uint8Array => {
    const [only] = items
    if (only === undefined) return new Uint8Array(32)
    if (items.length === 1) return sha256(Uint8Array.of(0), only.path, sha256(only.value))
    const bit = (path: Uint8Array) => ((path[Math.floor(depth / 8)] as number) >> (7 - (depth % 8))) & 1
    const left = items.filter((l) => bit(l.path) === 0)
    const right = items.filter((l) => bit(l.path) === 1)
    return sha256(Uint8Array.of(1), subtree(left, depth + 1), subtree(right, depth + 1))
  }
  return subtree(leaves, 0)
}

/** Pinned answers, computed with an independent Python script from the same definition. */
const KNOWN_ANSWERS: Array<{ name: string; entries: Array<[Uint8Array, Uint8Array]>; root: string }> = [
  {
    name: 'one key',
    entries: [[utf8('a'), utf8('1')]],
    root: '565388d4bc00257133f799d9366ac97f6e949c18acc53d17457f8859ba0f08d3',
  },
  {
    name: 'two keys split at the first bit',
    entries: [
      [utf8('a'), utf8('1')],
      [utf8('b'), utf8('2')],
    ],
    root: '70a50295110313dd28320faccbee14d04dc2894e877a2e407115a2f337ed4efa',
  },
  {
    // Paths start 0101…, 0010…, 1010…, 1110…, 0011…: the 0010/0011 pair sits under a one-sided node.
    name: 'five keys, with the empty key and an empty value',
    entries: [
      [utf8('bank/balance/alice'), fromHex('1903e8')],
      [utf8('bank/balance/bob'), fromHex('182a')],
      [utf8('staking/bob'), fromHex('f5')],
      [new Uint8Array(0), new Uint8Array(0)],
      [utf8('nonce/alice'), fromHex('07')],
    ],
    root: '296a64bb2d9b077f37e0db28eb88eafde393281f9959f02cc7e6465528ef1332',
  },
]

test('known answers: fixed sets give the roots computed independently from the definition', () => {
  assert.deepEqual(SparseMerkleTree.empty().root(), ZERO_ROOT)
  for (const { name, entries, root } of KNOWN_ANSWERS) {
    assert.equal(toHex(referenceRoot(entries)), root, `reference for ${name}`)
    assert.equal(toHex(SparseMerkleTree.fromEntries(entries).root()), root, `fromEntries for ${name}`)
    let tree = SparseMerkleTree.empty()
    for (const [key, value] of entries) tree = tree.set(key, value)
    assert.equal(toHex(tree.root()), root, `set one by one for ${name}`)
    assert.equal(toHex(SparseMerkleTree.empty().apply(entries).root()), root, `apply for ${name}`)
  }
})

const smallKey = fc.uint8Array({ maxLength: 6 })
const smallValue = fc.uint8Array({ maxLength: 8 })
const entriesArb = fc.uniqueArray(fc.tuple(smallKey, smallValue), {
  selector: ([key]) => toHex(key),
  maxLength: 60,
})

test('the root equals the reference definition for random sets (property)', () => {
  fc.assert(
    fc.property(entriesArb, (entries) => {
      assert.deepEqual(SparseMerkleTree.fromEntries(entries).root(), referenceRoot(entries))
    }),
    { numRuns: 300 },
  )
})

/** A set or delete on one of a small pool of keys, so keys are overwritten and deleted often. */
const opArb = fc.tuple(fc.nat({ max: 15 }), fc.option(smallValue, { freq: 3 }))
const scenarioArb = fc.record({
  pool: fc.uniqueArray(smallKey, { selector: toHex, minLength: 1, maxLength: 16 }),
  ops: fc.array(opArb, { maxLength: 80 }),
})

function toChanges(pool: Uint8Array[], ops: Array<[number, Uint8Array | null]>): StateChange[] {
  return ops.map(([i, value]) => [pool[i % pool.length] as Uint8Array, value ?? undefined])
}

function step(tree: SparseMerkleTree, [key, value]: StateChange): SparseMerkleTree {
  return value === undefined ? tree.delete(key) : tree.set(key, value)
}

test('get, has, size and entries agree with a Map model after every set/delete (property)', () => {
  fc.assert(
    fc.property(scenarioArb, ({ pool, ops }) => {
      const model = new Map<string, Uint8Array>()
      let tree = SparseMerkleTree.empty()
      for (const change of toChanges(pool, ops)) {
        tree = step(tree, change)
        const [key, value] = change
        if (value === undefined) model.delete(toHex(key))
        else model.set(toHex(key), value)
        assert.equal(tree.size, model.size)
        for (const k of pool) {
          assert.deepEqual(tree.get(k), model.get(toHex(k)))
          assert.equal(tree.has(k), model.has(toHex(k)))
        }
      }
      const listed = [...tree.entries()]
      assert.equal(listed.length, model.size)
      for (const [key, value] of listed) assert.deepEqual(value, model.get(toHex(key)))
      const paths = listed.map(([key]) => toHex(sha256(key)))
      assert.deepEqual(paths, [...paths].sort(), 'entries come in path order')
      assert.deepEqual(tree.root(), referenceRoot(listed))
    }),
    { numRuns: 300 },
  )
})

test('reads a tree remembers stay its own: later versions answer with their values, absent keys included', () => {
  const names = Array.from({ length: 40 }, (_, i) => `bank/bal/account-${i}`)
  const v1 = SparseMerkleTree.fromEntries(names.slice(0, 20).map((n, i) => [utf8(n), Uint8Array.of(1, i)] as const))
  const read = (tree: SparseMerkleTree): Array<number | undefined> =>
    names.map((n) => {
      const byName = tree.getNamed(n)
      assert.deepEqual(byName, tree.get(utf8(n)), 'getNamed is get(utf8(key))')
      return byName?.[1]
    })
  const before = read(v1)
  assert.deepEqual(read(v1), before, 'read twice, the same answers')
  // v2 changes the first key, deletes the second and adds the 30th
  const v2 = v1.apply([
    [utf8(names[0] as string), Uint8Array.of(2, 99)],
    [utf8(names[1] as string), undefined],
    [utf8(names[30] as string), Uint8Array.of(2, 30)],
  ])
  const after = read(v2)
  assert.deepEqual(after.slice(0, 2), [99, undefined])
  assert.equal(after[30], 30)
  assert.deepEqual(read(v1), before, 'the old version still answers with its own values')
  assert.deepEqual(
    v1.set(utf8(names[35] as string), Uint8Array.of(3, 35)).getNamed(names[35] as string),
    Uint8Array.of(3, 35),
  )
  // more distinct reads than a tree remembers: still right
  const many = SparseMerkleTree.fromEntries([[utf8('k-7'), Uint8Array.of(7)]])
  for (let i = 0; i < 40_000; i++) assert.equal(many.getNamed(`k-${i}`)?.[0], i === 7 ? 7 : undefined)
})

test('old versions are unchanged by later updates (property)', () => {
  fc.assert(
    fc.property(scenarioArb, fc.boolean(), ({ pool, ops }, hashEarly) => {
      const versions: Array<{ tree: SparseMerkleTree; snapshot: Array<[Uint8Array, Uint8Array]>; root?: Uint8Array }> =
        []
      let tree = SparseMerkleTree.empty()
      for (const change of toChanges(pool, ops)) {
        tree = step(tree, change)
        // With hashEarly, hashes are memoized before later versions share the nodes.
        versions.push({ tree, snapshot: [...tree.entries()], root: hashEarly ? tree.root() : undefined })
      }
      for (const { tree: old, snapshot, root } of versions) {
        assert.deepEqual([...old.entries()], snapshot)
        assert.equal(old.size, snapshot.length)
        assert.deepEqual(old.root(), SparseMerkleTree.fromEntries(snapshot).root())
        if (root !== undefined) assert.deepEqual(old.root(), root)
      }
    }),
    { numRuns: 150 },
  )
})

test('the root does not depend on insertion order, nor on batching vs one by one (property)', () => {
  fc.assert(
    fc.property(
      entriesArb.chain((entries) =>
        fc.tuple(fc.constant(entries), fc.shuffledSubarray(entries, { minLength: entries.length })),
      ),
      ([entries, shuffled]) => {
        let forward = SparseMerkleTree.empty()
        for (const [key, value] of entries) forward = forward.set(key, value)
        let backward = SparseMerkleTree.empty()
        for (const [key, value] of shuffled) backward = backward.set(key, value)
        const batched = SparseMerkleTree.empty().apply(shuffled)
        const built = SparseMerkleTree.fromEntries(shuffled)
        assert.deepEqual(backward.root(), forward.root())
        assert.deepEqual(batched.root(), forward.root())
        assert.deepEqual(built.root(), forward.root())
        assert.equal(batched.size, entries.length)
        assert.equal(built.size, entries.length)
      },
    ),
    { numRuns: 300 },
  )
})

test('apply of mixed sets and deletes on a non-empty tree equals applying them one by one (property)', () => {
  fc.assert(
    fc.property(scenarioArb, fc.array(opArb, { maxLength: 40 }), ({ pool, ops }, batchOps) => {
      let base = SparseMerkleTree.empty()
      for (const change of toChanges(pool, ops)) base = step(base, change)
      const changes = toChanges(pool, batchOps)
      let sequential = base
      for (const change of changes) sequential = step(sequential, change)
      const batched = base.apply(changes)
      assert.deepEqual(batched.root(), sequential.root())
      assert.equal(batched.size, sequential.size)
      assert.deepEqual([...batched.entries()], [...sequential.entries()])
    }),
    { numRuns: 300 },
  )
})

test('deleting every key, one by one or in a batch, gives back the empty root (property)', () => {
  fc.assert(
    fc.property(entriesArb, fc.boolean(), (entries, batch) => {
      const full = SparseMerkleTree.fromEntries(entries)
      let emptied = full
      if (batch) emptied = full.apply(entries.map(([key]) => [key, undefined] as const))
      else for (const [key] of entries) emptied = emptied.delete(key)
      assert.equal(emptied.size, 0)
      assert.deepEqual(emptied.root(), ZERO_ROOT)
      assert.deepEqual([...emptied.entries()], [])
      assert.deepEqual(full.root(), referenceRoot(entries), 'the full tree is untouched')
    }),
    { numRuns: 200 },
  )
})

test('a repeated key: the last value wins in fromEntries and apply', () => {
  const key = utf8('k')
  const built = SparseMerkleTree.fromEntries([
    [key, utf8('1')],
    [utf8('other'), utf8('x')],
    [key, utf8('2')],
  ])
  assert.deepEqual(built.get(key), utf8('2'))
  assert.equal(built.size, 2)
  const applied = built.apply([
    [key, utf8('3')],
    [key, undefined],
  ])
  assert.equal(applied.get(key), undefined)
  assert.equal(applied.size, 1)
  assert.deepEqual(
    built
      .apply([
        [key, undefined],
        [key, utf8('4')],
      ])
      .get(key),
    utf8('4'),
  )
})

test('no-op updates return the same tree, and the tree keeps its own copies of keys and values', () => {
  const key = utf8('key')
  const value = utf8('value')
  const tree = SparseMerkleTree.empty().set(key, value)
  assert.equal(tree.set(key, utf8('value')), tree)
  assert.equal(tree.delete(utf8('absent')), tree)
  assert.equal(tree.apply([]), tree)
  assert.equal(tree.apply([[key, utf8('value')]]), tree)
  assert.equal(tree.apply([[utf8('absent'), undefined]]), tree)
  const root = tree.root()
  key[0] = 0
  value[0] = 0
  root.fill(0)
  assert.deepEqual(tree.get(utf8('key')), utf8('value'))
  assert.deepEqual(tree.root(), SparseMerkleTree.fromEntries([[utf8('key'), utf8('value')]]).root())
})

test('Buffers are accepted as keys and values; non-bytes are an InvalidInputError', () => {
  const tree = SparseMerkleTree.empty().set(Buffer.from('k'), Buffer.from('v'))
  assert.deepEqual(tree.get(utf8('k')), utf8('v'))
  assert.throws(() => tree.set('k' as unknown as Uint8Array, utf8('v')), InvalidInputError)
  assert.throws(() => tree.set(utf8('k'), undefined as unknown as Uint8Array), InvalidInputError)
  assert.throws(() => tree.get(null as unknown as Uint8Array), InvalidInputError)
})

test('a larger tree: 3000 keys built three ways agree, and stay shallow', () => {
  const entries = Array.from({ length: 3000 }, (_, i) => [utf8(`acct/${i}`), utf8(`balance ${i * 7}`)] as const)
  const built = SparseMerkleTree.fromEntries(entries)
  let sequential = SparseMerkleTree.empty()
  for (const [key, value] of entries) sequential = sequential.set(key, value)
  const batched = SparseMerkleTree.empty().apply(entries.slice(0, 1500)).apply(entries.slice(1500))
  assert.deepEqual(built.root(), referenceRoot(entries))
  assert.deepEqual(sequential.root(), built.root())
  assert.deepEqual(batched.root(), built.root())
  const depths = entries.map(([key]) => built.prove(key).siblings.length)
  assert.ok(Math.max(...depths) < 40, `max depth ${Math.max(...depths)}`)
  assert.ok(equals(built.get(utf8('acct/1234')) as Uint8Array, utf8(`balance ${1234 * 7}`)))
})
