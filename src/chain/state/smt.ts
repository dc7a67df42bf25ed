/**
 * The chain state as an immutable sparse Merkle tree (hashing rule in `hashing.ts`).
 *
 * Every update returns a new tree that shares all untouched nodes with the old one, and the old
 * tree stays valid: a block can be executed speculatively on a copy and dropped. Node hashes are
 * computed lazily, once, when `root()` or `prove()` first needs them, so a batch of updates hashes
 * each touched node once however many changes went through it.
 *
 * Nodes are never mutated after construction except to memoize their hash, which is a pure
 * function of the node's contents. Keys and values are copied on the way in; arrays handed out
 * (`get`, `entries`) are the tree's own and must not be modified.
 *
 * Two keys with the same SHA-256 are treated as one key (that would be a SHA-256 collision).
 */
import { InvalidInputError } from '../../core/errors.ts'
import { equals, utf8 } from '../../core/bytes.ts'
import { sha256 } from '../../core/hash.ts'
import { EMPTY_SUBTREE_HASH, bitAt, comparePaths, innerHash, leafHash, pathOf } from './hashing.ts'
import type { StateProof } from './proof.ts'

class Leaf {
  readonly path: Uint8Array
  readonly key: Uint8Array
  readonly value: Uint8Array
  /** The path's first 32 bits, to sort leaves without a byte loop. */
  readonly order: number
  hash: Uint8Array | undefined = undefined

  constructor(path: Uint8Array, key: Uint8Array, value: Uint8Array) {
    this.path = path
    this.order = pathOrder(path)
    this.key = key
    this.value = value
  }
}

/** Holds at least two leaves below it; one child may be empty. */
class Inner {
  readonly left: Node
  readonly right: Node
  hash: Uint8Array | undefined = undefined

  constructor(left: Node, right: Node) {
    this.left = left
    this.right = right
  }
}

/** `null` is the empty subtree. */
type Node = Leaf | Inner | null

/** One pending change of a batch: the leaf to write, or null to delete the path. */
interface Change {
  path: Uint8Array
  order: number
  leaf: Leaf | null
}

/** What `get` remembers for a key the tree does not hold. */
const ABSENT = new Uint8Array(0)
/** Reads a tree remembers at most (then it starts again): a block's worth of senders and more. */
const MAX_REMEMBERED_READS = 16_384

export type StateChange = readonly [key: Uint8Array, value: Uint8Array | undefined]
export type StateEntry = readonly [key: Uint8Array, value: Uint8Array]

export class SparseMerkleTree {
  static readonly #EMPTY = new SparseMerkleTree(null, 0)

  readonly #top: Node
  /** Number of keys. */
  readonly size: number
  /** Values read by `get`, by key (ABSENT: no such key); made on the first read. */
  #reads: Map<string, Uint8Array> | undefined
  /** The same for `getNamed`, by the key's string. */
  #named: Map<string, Uint8Array> | undefined

  private constructor(top: Node, size: number) {
    this.#top = top
    this.size = size
  }

  static empty(): SparseMerkleTree {
    return SparseMerkleTree.#EMPTY
  }

  /** Builds a tree in one pass (sort by path, then split); for a repeated key the last value wins. */
  static fromEntries(entries: Iterable<StateEntry>): SparseMerkleTree {
    const leaves: Leaf[] = []
    for (const [key, value] of entries) leaves.push(newLeaf(key, value))
    const unique = lastPerPath(leaves)
    return new SparseMerkleTree(build(0, unique, 0, unique.length), unique.length)
  }

  get(key: Uint8Array): Uint8Array | undefined {
    checkBytes(key, 'key')
    // A tree never changes, and the committed one is read for the same few keys again and again
    // (mempool admission twice per transaction, then execution): remember what was read, by the
    // key's bytes as a string (cheaper than the key's path hash and the walk).
    const name = Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1')
    const reads = (this.#reads ??= new Map())
    const known = reads.get(name)
    if (known !== undefined) return known === ABSENT ? undefined : known
    const value = find(this.#top, pathOf(key))?.value
    if (reads.size >= MAX_REMEMBERED_READS) reads.clear()
    reads.set(name, value ?? ABSENT)
    return value
  }

  /** `get(utf8(key))`, remembered by the string itself (the chain's modules name keys with strings). */
  getNamed(key: string): Uint8Array | undefined {
    const named = (this.#named ??= new Map())
    const known = named.get(key)
    if (known !== undefined) return known === ABSENT ? undefined : known
    const value = this.get(utf8(key))
    if (named.size >= MAX_REMEMBERED_READS) named.clear()
    named.set(key, value ?? ABSENT)
    return value
  }

  has(key: Uint8Array): boolean {
    return this.get(key) !== undefined
  }

  set(key: Uint8Array, value: Uint8Array): SparseMerkleTree {
    const leaf = newLeaf(key, value)
    const old = find(this.#top, leaf.path)
    if (old !== undefined && equals(old.value, leaf.value)) return this
    return new SparseMerkleTree(insert(this.#top, 0, leaf), this.size + (old === undefined ? 1 : 0))
  }

  delete(key: Uint8Array): SparseMerkleTree {
    const path = pathOf(checkBytes(key, 'key'))
    if (find(this.#top, path) === undefined) return this
    return new SparseMerkleTree(remove(this.#top, 0, path), this.size - 1)
  }

  /**
   * Applies many changes at once (`undefined` deletes); for a repeated key the last change wins.
   * Sorts the changes by path and walks the tree once, building each new node once.
   */
  apply(changes: Iterable<StateChange>): SparseMerkleTree {
    const list: Change[] = []
    for (const [key, value] of changes) {
      list.push(value === undefined ? deletion(key) : leafChange(key, value))
    }
    const unique = lastPerPath(list)
    if (unique.length === 0) return this
    const counter = { delta: 0 }
    const top = applySorted(this.#top, 0, unique, 0, unique.length, counter)
    return top === this.#top ? this : new SparseMerkleTree(top, this.size + counter.delta)
  }

  /** The 32-byte state root (32 zero bytes for the empty tree); a fresh copy each call. */
  root(): Uint8Array {
    return hashOf(this.#top).slice()
  }

  /** Every (key, value) pair, in path order (ascending sha256(key)). */
  *entries(): Generator<[Uint8Array, Uint8Array], void, undefined> {
    const stack: Node[] = [this.#top]
    while (stack.length > 0) {
      const node = stack.pop() as Node
      if (node instanceof Leaf) yield [node.key, node.value]
      else if (node !== null) stack.push(node.right, node.left)
    }
  }

  [Symbol.iterator](): Generator<[Uint8Array, Uint8Array], void, undefined> {
    return this.entries()
  }

  /** A proof that `key` holds its current value, or that it is absent; check it with `verifyProof`. */
  prove(key: Uint8Array): StateProof {
    const path = pathOf(checkBytes(key, 'key'))
    const siblings: Uint8Array[] = []
    let node = this.#top
    for (let depth = 0; node instanceof Inner; depth++) {
      const right = bitAt(path, depth) === 1
      siblings.push(hashOf(right ? node.left : node.right).slice())
      node = right ? node.right : node.left
    }
    if (node instanceof Leaf && !equals(node.path, path)) {
      return { siblings, leaf: { path: node.path.slice(), valueHash: sha256(node.value) } }
    }
    return { siblings }
  }
}

function checkBytes(bytes: Uint8Array, what: string): Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw new InvalidInputError(`state ${what} must be a Uint8Array`)
  return bytes
}

function newLeaf(key: Uint8Array, value: Uint8Array): Leaf {
  const ownKey = Uint8Array.from(checkBytes(key, 'key'))
  return new Leaf(pathOf(ownKey), ownKey, Uint8Array.from(checkBytes(value, 'value')))
}

function leafChange(key: Uint8Array, value: Uint8Array): Change {
  const leaf = newLeaf(key, value)
  return { path: leaf.path, order: leaf.order, leaf }
}

function deletion(key: Uint8Array): Change {
  const path = pathOf(checkBytes(key, 'key'))
  return { path, order: pathOrder(path), leaf: null }
}

function pathOrder(path: Uint8Array): number {
  return (
    (((path[0] as number) << 24) >>> 0) +
    (((path[1] as number) << 16) | ((path[2] as number) << 8) | (path[3] as number))
  )
}

/** Sorts by path (stably) and keeps the last item of each path. */
function lastPerPath<T extends { path: Uint8Array; order: number }>(items: T[]): T[] {
  items.sort((a, b) => a.order - b.order || comparePaths(a.path, b.path))
  const out: T[] = []
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as T
    const next = items[i + 1]
    if (next === undefined || !equals(next.path, item.path)) out.push(item)
  }
  return out
}

function find(top: Node, path: Uint8Array): Leaf | undefined {
  let node = top
  for (let depth = 0; node instanceof Inner; depth++) node = bitAt(path, depth) === 0 ? node.left : node.right
  return node !== null && equals(node.path, path) ? node : undefined
}

function insert(node: Node, depth: number, leaf: Leaf): Node {
  if (node === null) return leaf
  if (node instanceof Leaf) return equals(node.path, leaf.path) ? leaf : split(depth, node, leaf)
  if (bitAt(leaf.path, depth) === 0) return join(node, insert(node.left, depth + 1, leaf), node.right)
  return join(node, node.left, insert(node.right, depth + 1, leaf))
}

/** The subtree at `depth` holding two leaves with different paths. */
function split(depth: number, a: Leaf, b: Leaf): Inner {
  const bitA = bitAt(a.path, depth)
  if (bitA !== bitAt(b.path, depth)) return bitA === 0 ? new Inner(a, b) : new Inner(b, a)
  const below = split(depth + 1, a, b)
  return bitA === 0 ? new Inner(below, null) : new Inner(null, below)
}

function remove(node: Node, depth: number, path: Uint8Array): Node {
  if (node === null) return null
  if (node instanceof Leaf) return equals(node.path, path) ? null : node
  if (bitAt(path, depth) === 0) return join(node, remove(node.left, depth + 1, path), node.right)
  return join(node, node.left, remove(node.right, depth + 1, path))
}

/** The node with these children, reusing `old` when unchanged and collapsing a lone leaf upwards. */
function join(old: Inner | null, left: Node, right: Node): Node {
  if (old !== null && old.left === left && old.right === right) return old
  if (left === null && (right === null || right instanceof Leaf)) return right
  if (right === null && left instanceof Leaf) return left
  return new Inner(left, right)
}

function applySorted(node: Node, depth: number, changes: Change[], lo: number, hi: number, counter: Counter): Node {
  if (lo === hi) return node
  if (!(node instanceof Inner)) return mergeIntoLeaf(node, depth, changes, lo, hi, counter)
  const mid = firstRight(changes, lo, hi, depth)
  const left = applySorted(node.left, depth + 1, changes, lo, mid, counter)
  return join(node, left, applySorted(node.right, depth + 1, changes, mid, hi, counter))
}

interface Counter {
  delta: number
}

/** Applies sorted changes to a subtree that is empty or one leaf: merge, then build. */
function mergeIntoLeaf(
  node: Leaf | null,
  depth: number,
  changes: Change[],
  lo: number,
  hi: number,
  counter: Counter,
): Node {
  const leaves: Leaf[] = []
  let pending = node
  for (let i = lo; i < hi; i++) {
    const change = changes[i] as Change
    let leaf = change.leaf
    if (pending !== null) {
      const order = comparePaths(pending.path, change.path)
      if (order < 0) leaves.push(pending)
      if (order === 0) {
        counter.delta--
        if (leaf !== null && equals(leaf.value, pending.value)) leaf = pending
      }
      if (order <= 0) pending = null
    }
    if (leaf !== null) {
      leaves.push(leaf)
      counter.delta++
    }
  }
  if (pending !== null) leaves.push(pending)
  return build(depth, leaves, 0, leaves.length)
}

/** The subtree at `depth` holding `leaves[lo..hi)`, which are sorted, distinct and share `depth` bits. */
function build(depth: number, leaves: readonly Leaf[], lo: number, hi: number): Node {
  if (hi - lo <= 1) return hi === lo ? null : (leaves[lo] as Leaf)
  const mid = firstRight(leaves, lo, hi, depth)
  return new Inner(build(depth + 1, leaves, lo, mid), build(depth + 1, leaves, mid, hi))
}

/** In a range sorted by path whose paths share `depth` bits: the first index whose bit `depth` is 1. */
function firstRight(items: readonly { path: Uint8Array }[], lo: number, hi: number, depth: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (bitAt((items[mid] as { path: Uint8Array }).path, depth) === 0) lo = mid + 1
    else hi = mid
  }
  return lo
}

function hashOf(node: Node): Uint8Array {
  if (node === null) return EMPTY_SUBTREE_HASH
  node.hash ??=
    node instanceof Leaf ? leafHash(node.path, sha256(node.value)) : innerHash(hashOf(node.left), hashOf(node.right))
  return node.hash
}
