/**
 * State proofs: what a light client needs to check one key against a state root, without the tree.
 *
 * A proof lists the sibling hashes along the key's path from the root down, to the depth where
 * the path ends (`siblings[d]` is the hash of the subtree beside the path at depth d + 1). What
 * sits at the end is recomputed by the verifier:
 *  - inclusion: the key's own leaf, from the key and the claimed value;
 *  - non-inclusion: an empty subtree (no `leaf`), or a single leaf holding another key whose path
 *    shares the first `siblings.length` bits (`leaf` carries that leaf's path and value hash).
 * Hashing the end node up with the siblings must give the root. Because a single-leaf subtree is
 * always collapsed to its leaf, each key has exactly one valid proof under a given root.
 *
 * Wire form, canonical dag-cbor: `{ siblings: [bytes32...] }` or
 * `{ leaf: [path, valueHash], siblings: [bytes32...] }`.
 */
import { asUint8Array, equals } from '../../core/bytes.ts'
import { encode, decode } from '../../core/codec.ts'
import { sha256 } from '../../core/hash.ts'
import { StateProofError } from './errors.ts'
import {
  EMPTY_SUBTREE_HASH,
  HASH_LENGTH,
  PATH_BITS,
  bitAt,
  commonPrefixBits,
  innerHash,
  leafHash,
  pathOf,
} from './hashing.ts'

/** The most siblings a proof can have: one per bit of the path. */
export const MAX_PROOF_SIBLINGS = PATH_BITS

/** Encoded proofs longer than this are refused before parsing (a full 256-sibling proof is ~8.8 KiB). */
export const MAX_PROOF_BYTES = 16 * 1024

export interface StateProof {
  /** Sibling hashes along the key's path, from the root down. */
  siblings: Uint8Array[]
  /** Non-inclusion only: the other key's leaf found where the path ends. */
  leaf?: { path: Uint8Array; valueHash: Uint8Array }
}

/**
 * True when, under `root`, `key` holds `value` (or, with `value` undefined, is absent). Never
 * throws: malformed roots, keys, values or proofs simply do not verify.
 */
export function verifyProof(
  root: Uint8Array,
  key: Uint8Array,
  value: Uint8Array | undefined,
  proof: StateProof,
): boolean {
  if (!isHash(root) || !(key instanceof Uint8Array) || !(value === undefined || value instanceof Uint8Array)) {
    return false
  }
  if (!isWellFormed(proof)) return false
  const path = pathOf(key)
  const end = endHash(path, value, proof)
  return end !== undefined && equals(foldSiblings(path, end, proof.siblings), root)
}

/** The hash of the node where the key's path ends, as the proof claims it; undefined if impossible. */
function endHash(path: Uint8Array, value: Uint8Array | undefined, proof: StateProof): Uint8Array | undefined {
  if (value !== undefined) return proof.leaf === undefined ? leafHash(path, sha256(value)) : undefined
  if (proof.leaf === undefined) return EMPTY_SUBTREE_HASH
  // The other leaf must sit in the subtree the path leads to, and must not be the key itself.
  if (commonPrefixBits(proof.leaf.path, path) < proof.siblings.length || equals(proof.leaf.path, path)) {
    return undefined
  }
  return leafHash(proof.leaf.path, proof.leaf.valueHash)
}

function foldSiblings(path: Uint8Array, end: Uint8Array, siblings: readonly Uint8Array[]): Uint8Array {
  let hash = end
  for (let depth = siblings.length - 1; depth >= 0; depth--) {
    const sibling = siblings[depth] as Uint8Array
    hash = bitAt(path, depth) === 0 ? innerHash(hash, sibling) : innerHash(sibling, hash)
  }
  return hash
}

export function encodeProof(proof: StateProof): Uint8Array {
  if (!isWellFormed(proof)) throw new StateProofError('cannot encode a malformed state proof')
  const siblings = proof.siblings.map(asUint8Array)
  if (proof.leaf === undefined) return encode({ siblings })
  return encode({ leaf: [asUint8Array(proof.leaf.path), asUint8Array(proof.leaf.valueHash)], siblings })
}

/** Parses a proof from canonical dag-cbor; anything else is a `StateProofError`. */
export function decodeProof(bytes: Uint8Array): StateProof {
  let value: unknown
  try {
    value = decode(bytes, { maxBytes: MAX_PROOF_BYTES })
  } catch (err) {
    throw new StateProofError('state proof is not canonical dag-cbor', { cause: err })
  }
  return parseProof(value)
}

function parseProof(value: unknown): StateProof {
  if (!isPlainObject(value)) throw malformed('a state proof must be a map')
  for (const field of Object.keys(value)) {
    if (field !== 'siblings' && field !== 'leaf') throw malformed('unknown field in state proof', { field })
  }
  const siblings = parseSiblings(value['siblings'])
  if (!('leaf' in value)) return { siblings }
  return { siblings, leaf: parseLeaf(value['leaf']) }
}

function parseSiblings(value: unknown): Uint8Array[] {
  if (!Array.isArray(value)) throw malformed('state proof siblings must be a list')
  if (value.length > MAX_PROOF_SIBLINGS) {
    throw malformed(`a state proof has at most ${MAX_PROOF_SIBLINGS} siblings`, { count: value.length })
  }
  return value.map((sibling: unknown, index) => parseHash(sibling, `siblings[${index}]`))
}

function parseLeaf(value: unknown): { path: Uint8Array; valueHash: Uint8Array } {
  if (!Array.isArray(value) || value.length !== 2) throw malformed('state proof leaf must be [path, valueHash]')
  return { path: parseHash(value[0], 'leaf.path'), valueHash: parseHash(value[1], 'leaf.valueHash') }
}

function parseHash(value: unknown, field: string): Uint8Array {
  if (!isHash(value)) throw malformed(`state proof ${field} must be ${HASH_LENGTH} bytes`, { field })
  return Uint8Array.from(value)
}

function malformed(message: string, details: Record<string, unknown> = {}): StateProofError {
  return new StateProofError(message, { details })
}

function isWellFormed(proof: StateProof): boolean {
  if (typeof proof !== 'object' || proof === null) return false
  const { siblings, leaf } = proof
  if (!Array.isArray(siblings) || siblings.length > MAX_PROOF_SIBLINGS || !siblings.every(isHash)) return false
  if (leaf === undefined) return true
  return typeof leaf === 'object' && leaf !== null && isHash(leaf.path) && isHash(leaf.valueHash)
}

function isHash(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array && value.length === HASH_LENGTH
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype
}
