import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { equals } from '../core/bytes.ts'
import { InvalidInputError } from '../core/errors.ts'
import { IndexedSet } from './indexed-set.ts'
import { SparseMerkleTree } from './state/smt.ts'
import { StateOverlay } from './state-view.ts'

// fast-check prints the seed and path of a failure ("seed: …, path: …") so it can be replayed.

const set = new IndexedSet('test/things')

/** Every index maps to an item whose position is that index, and the count matches the model. */
function assertConsistent(state: StateOverlay, model: ReadonlySet<string>): void {
  assert.equal(set.size(state), model.size)
  const items = set.list(state)
  assert.deepEqual([...items].sort(), [...model].sort())
  items.forEach((item, i) => assert.equal(set.indexOf(state, item), i))
  for (const item of model) assert.ok(set.has(state, item))
  assert.equal(set.at(state, model.size), undefined)
}

test('indexed set: add, delete (swap-remove), has, at, page and list agree with a plain Set', () => {
  const item = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'did:key:z6Mk', 'x/y')
  const op = fc.tuple(fc.boolean(), item)
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const state = new StateOverlay(SparseMerkleTree.empty())
      const model = new Set<string>()
      for (const [add, it] of ops) {
        if (add) assert.equal(set.add(state, it), !model.has(it))
        else assert.equal(set.delete(state, it), model.has(it))
        if (add) model.add(it)
        else model.delete(it)
        assertConsistent(state, model)
      }
      const all = set.list(state)
      assert.deepEqual([...set.page(state, 1, 2), ...set.page(state, 3, 100)], all.slice(1))
    }),
  )
})

test('indexed set: emptying it leaves no key behind (the state root is the empty tree’s)', () => {
  const empty = SparseMerkleTree.empty()
  const state = new StateOverlay(empty)
  for (const item of ['one', 'two', 'three', 'four']) set.add(state, item)
  for (const item of ['two', 'four', 'one', 'three']) set.delete(state, item)
  assert.ok(equals(empty.apply(state.changes()).root(), empty.root()))
})

test('indexed set: a change writes a constant number of keys, whatever the size', () => {
  const state = new StateOverlay(SparseMerkleTree.empty())
  for (let i = 0; i < 500; i++) set.add(state, `item-${i}`)
  const base = new StateOverlay(SparseMerkleTree.empty().apply(state.changes()))
  const add = base.fork()
  set.add(add, 'new')
  assert.equal(add.changes().length, 3, 'add: the item, its index, the count')
  const remove = base.fork()
  set.delete(remove, 'item-7')
  assert.equal(remove.changes().length, 5, 'delete: the moved item and its index, the last index, the item, the count')
  assert.equal(set.at(remove, 7), 'item-499', 'the last item took the freed index')
})

test('indexed set: items must be non-empty strings of bounded length; prefixes must be names', () => {
  const state = new StateOverlay(SparseMerkleTree.empty())
  assert.throws(() => set.add(state, ''), InvalidInputError)
  assert.throws(() => set.add(state, 'x'.repeat(257)), InvalidInputError)
  assert.throws(() => new IndexedSet(''), InvalidInputError)
  assert.throws(() => new IndexedSet('a/'), InvalidInputError)
  assert.equal(set.size(state), 0)
})
