/**
 * Binary Merkle trees over 32-byte leaves (transaction hashes, receipt hashes, PoH mixins).
 * Domain-separated as RFC 6962: leaf = sha256(0x00 || data), node = sha256(0x01 || left || right),
 * so a leaf can never be passed off as an inner node. An odd node at a level is promoted
 * unchanged (RFC 6962's split at the largest power of two gives the same shape). The root of
 * no leaves is sha256("") so it is still 32 bytes.
 */
import { sha256 } from './hash.ts'
import { equals } from './bytes.ts'
import { InvalidInputError } from './errors.ts'

const LEAF = Uint8Array.of(0x00)
const NODE = Uint8Array.of(0x01)
export const EMPTY_MERKLE_ROOT = sha256(new Uint8Array(0))

export function merkleLeaf(data: Uint8Array): Uint8Array {
  return sha256(LEAF, data)
}

function parent(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256(NODE, left, right)
}

/** Root of the tree whose leaves are `items` (each hashed as a leaf), in order. */
export function merkleRoot(items: readonly Uint8Array[]): Uint8Array {
  return merkleRootOfLeaves(items.map(merkleLeaf))
}

/** The same root from leaves already hashed (`merkleLeaf`): for several trees over the same items. */
export function merkleRootOfLeaves(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return EMPTY_MERKLE_ROOT
  let level = leaves
  while (level.length > 1) level = nextLevel(level)
  return level[0] as Uint8Array
}

function nextLevel(level: readonly Uint8Array[]): Uint8Array[] {
  const out: Uint8Array[] = []
  for (let i = 0; i < level.length; i += 2) {
    const left = level[i] as Uint8Array
    const right = level[i + 1]
    out.push(right === undefined ? left : parent(left, right))
  }
  return out
}

/**
 * Sibling hashes from the leaf up; `right` says the sibling sits to the right. The root does not
 * commit to `count`: a proof shows the item's position (path) under the root, not the tree size.
 */
export interface MerkleProof {
  index: number
  count: number
  siblings: Array<{ hash: Uint8Array; right: boolean }>
}

export function merkleProof(items: readonly Uint8Array[], index: number): MerkleProof {
  if (!Number.isInteger(index) || index < 0 || index >= items.length) {
    throw new InvalidInputError(`leaf index ${index} is outside 0..${items.length - 1}`)
  }
  const siblings: MerkleProof['siblings'] = []
  let level = items.map(merkleLeaf)
  let i = index
  while (level.length > 1) {
    const sibling = i % 2 === 0 ? level[i + 1] : level[i - 1]
    if (sibling !== undefined) siblings.push({ hash: sibling, right: i % 2 === 0 })
    level = nextLevel(level)
    i = Math.floor(i / 2)
  }
  return { index, count: items.length, siblings }
}

/** True when `item` is leaf `proof.index` of a tree with root `root`. */
export function verifyMerkleProof(root: Uint8Array, item: Uint8Array, proof: MerkleProof): boolean {
  if (
    !Number.isInteger(proof.index) ||
    !Number.isInteger(proof.count) ||
    proof.index < 0 ||
    proof.index >= proof.count
  ) {
    return false
  }
  // Recompute which levels have a sibling for this index, so a proof cannot skip or add levels.
  let hash = merkleLeaf(item)
  let i = proof.index
  let width = proof.count
  let used = 0
  while (width > 1) {
    const hasSibling = i % 2 === 1 || i + 1 < width
    if (hasSibling) {
      const sibling = proof.siblings[used++]
      if (sibling === undefined || sibling.right !== (i % 2 === 0)) return false
      hash = sibling.right ? parent(hash, sibling.hash) : parent(sibling.hash, hash)
    }
    i = Math.floor(i / 2)
    width = Math.ceil(width / 2)
  }
  return used === proof.siblings.length && equals(hash, root)
}
