/**
 * The state tree's hashing rule, shared by the tree and by light-client verification:
 *
 *   path(key)          = sha256(key)                           the key's place among 2^256 leaves
 *   leaf(path, vHash)  = sha256(0x00 || path || vHash)           vHash = sha256(value)
 *   inner(left, right) = sha256(0x01 || left || right)
 *   empty subtree      = 32 zero bytes
 *
 * Paths are read most significant bit first; bit 0 goes left. A subtree that holds exactly one
 * leaf is represented by that leaf's hash whatever its depth (Diem's Jellyfish Merkle tree, the
 * "compact sparse Merkle tree"), so a tree of n random keys is about log2(n) levels deep, and the
 * root still depends only on the set of (key, value) pairs. Depends on core hashing alone.
 */
import { sha256, SHA256_LENGTH } from '../../core/hash.ts'

export const HASH_LENGTH = SHA256_LENGTH
/** Bits in a path, hence the most siblings a proof can have. */
export const PATH_BITS = 256

const LEAF_TAG = Uint8Array.of(0x00)
const INNER_TAG = Uint8Array.of(0x01)

/** The hash of an empty subtree. Shared: never hand it out without copying. */
export const EMPTY_SUBTREE_HASH: Uint8Array = new Uint8Array(HASH_LENGTH)

export function pathOf(key: Uint8Array): Uint8Array {
  return sha256(key)
}

export function leafHash(path: Uint8Array, valueHash: Uint8Array): Uint8Array {
  return sha256(LEAF_TAG, path, valueHash)
}

export function innerHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256(INNER_TAG, left, right)
}

/** Bit `depth` of a 32-byte path (0 = most significant bit of the first byte). */
export function bitAt(path: Uint8Array, depth: number): number {
  return ((path[depth >> 3] as number) >> (7 - (depth & 7))) & 1
}

/** How many leading bits two paths share (256 when equal). */
export function commonPrefixBits(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < HASH_LENGTH; i++) {
    const x = (a[i] as number) ^ (b[i] as number)
    if (x !== 0) return i * 8 + Math.clz32(x) - 24
  }
  return PATH_BITS
}

/** Orders paths as unsigned big-endian numbers, i.e. left to right in the tree. */
export function comparePaths(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < HASH_LENGTH; i++) {
    const d = (a[i] as number) - (b[i] as number)
    if (d !== 0) return d
  }
  return 0
}
