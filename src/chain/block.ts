/**
 * Blocks. The header commits to everything: the parent, the transactions (Merkle root), the
 * state after executing them, the PoH segment from the parent's PoH end (start, end, ticks),
 * and the previous height's commit certificate. blockId = sha256(dag-cbor(header)).
 *
 * Transactions are ordered by PoH: `batches[i]` transactions belong to the i-th mixin entry,
 * whose mixin is the Merkle root of their hashes.
 */
import { encode, decode } from '../core/codec.ts'
import { sha256 } from '../core/hash.ts'
import { merkleLeaf, merkleRootOfLeaves } from '../core/merkle.ts'
import { asSafeUint } from '../core/uint.ts'
import type { CommitCertificate, Vote } from './bft/types.ts'
import { BlockError } from './errors.ts'
import type { PohEntry } from './poh/entries.ts'
import { txHash, MAX_TX_BYTES } from './tx.ts'

export const ZERO_HASH = new Uint8Array(32)
/** Largest encoded block accepted. */
export const MAX_BLOCK_BYTES = 8 * 1024 * 1024

export interface BlockHeader {
  chainId: string
  height: number
  /** The consensus round the block was proposed in (its PoH must cover the rounds skipped). */
  round: number
  /** Milliseconds since the Unix epoch. */
  time: number
  proposer: string
  parentId: Uint8Array
  txRoot: Uint8Array
  stateRoot: Uint8Array
  pohStart: Uint8Array
  pohEnd: Uint8Array
  pohTicks: number
  lastCommitHash: Uint8Array
}

export interface Block {
  header: BlockHeader
  txs: Uint8Array[]
  poh: PohEntry[]
  batches: number[]
  lastCommit: CommitCertificate | null
}

export function blockId(header: BlockHeader): Uint8Array {
  return sha256(encode(header))
}

export function commitToValue(cert: CommitCertificate): unknown {
  return { height: cert.height, round: cert.round, blockId: cert.blockId, precommits: cert.precommits.map(voteToValue) }
}

function voteToValue(v: Vote): unknown {
  return {
    chainId: v.chainId,
    height: v.height,
    round: v.round,
    type: v.type,
    blockId: v.blockId,
    validator: v.validator,
    signature: v.signature,
  }
}

export function commitHash(cert: CommitCertificate | null): Uint8Array {
  return cert === null ? ZERO_HASH : sha256(encode(commitToValue(cert)))
}

export function encodeCommit(cert: CommitCertificate): Uint8Array {
  return encode(commitToValue(cert))
}

function pohToValue(e: PohEntry): unknown {
  return e.mixin === undefined ? { n: e.numHashes, h: e.hash } : { n: e.numHashes, m: e.mixin, h: e.hash }
}

export function encodeBlock(block: Block): Uint8Array {
  return encode({
    header: block.header,
    txs: block.txs,
    poh: block.poh.map(pohToValue),
    batches: block.batches,
    lastCommit: block.lastCommit === null ? null : commitToValue(block.lastCommit),
  })
}

// ---- strict decoding -------------------------------------------------------------------------

function fail(message: string): never {
  throw new BlockError(`malformed block: ${message}`)
}

function record(value: unknown, field: string, keys: string[]): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array)
    fail(`${field} must be a map`)
  const actual = Object.keys(value).sort()
  const expected = [...keys].sort()
  if (actual.length !== expected.length || actual.some((k, i) => k !== expected[i]))
    fail(`${field} must have exactly ${expected.join(', ')}`)
  return value as Record<string, unknown>
}

function hash32(value: unknown, field: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== 32) fail(`${field} must be 32 bytes`)
  return value
}

function uint(value: unknown, field: string): number {
  try {
    return asSafeUint(value, field)
  } catch {
    return fail(`${field} must be a non-negative integer`)
  }
}

function str(value: unknown, field: string, max = 128): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max)
    fail(`${field} must be a string of 1-${max} characters`)
  return value
}

function decodeVote(value: unknown, field: string): Vote {
  const v = record(value, field, ['chainId', 'height', 'round', 'type', 'blockId', 'validator', 'signature'])
  if (v.type !== 'prevote' && v.type !== 'precommit') fail(`${field}.type must be prevote or precommit`)
  if (!(v.signature instanceof Uint8Array) || v.signature.length !== 64) fail(`${field}.signature must be 64 bytes`)
  return {
    chainId: str(v.chainId, `${field}.chainId`),
    height: uint(v.height, `${field}.height`),
    round: uint(v.round, `${field}.round`),
    type: v.type,
    blockId: v.blockId === null ? null : hash32(v.blockId, `${field}.blockId`),
    validator: str(v.validator, `${field}.validator`),
    signature: v.signature,
  }
}

export function decodeCommitValue(value: unknown, field = 'commit'): CommitCertificate {
  const c = record(value, field, ['height', 'round', 'blockId', 'precommits'])
  if (!Array.isArray(c.precommits) || c.precommits.length > 10_000) fail(`${field}.precommits must be a list`)
  return {
    height: uint(c.height, `${field}.height`),
    round: uint(c.round, `${field}.round`),
    blockId: hash32(c.blockId, `${field}.blockId`),
    precommits: c.precommits.map((v, i) => decodeVote(v, `${field}.precommits[${i}]`)),
  }
}

export function decodeCommit(bytes: Uint8Array): CommitCertificate {
  let raw: unknown
  try {
    raw = decode(bytes, { maxBytes: MAX_BLOCK_BYTES })
  } catch (err) {
    throw new BlockError(`malformed commit: ${(err as Error).message}`, { cause: err })
  }
  return decodeCommitValue(raw)
}

function decodeHeader(value: unknown): BlockHeader {
  const h = record(value, 'header', [
    'chainId',
    'height',
    'round',
    'time',
    'proposer',
    'parentId',
    'txRoot',
    'stateRoot',
    'pohStart',
    'pohEnd',
    'pohTicks',
    'lastCommitHash',
  ])
  return {
    chainId: str(h.chainId, 'chainId', 64),
    height: uint(h.height, 'height'),
    round: uint(h.round, 'round'),
    time: uint(h.time, 'time'),
    proposer: str(h.proposer, 'proposer'),
    parentId: hash32(h.parentId, 'parentId'),
    txRoot: hash32(h.txRoot, 'txRoot'),
    stateRoot: hash32(h.stateRoot, 'stateRoot'),
    pohStart: hash32(h.pohStart, 'pohStart'),
    pohEnd: hash32(h.pohEnd, 'pohEnd'),
    pohTicks: uint(h.pohTicks, 'pohTicks'),
    lastCommitHash: hash32(h.lastCommitHash, 'lastCommitHash'),
  }
}

function decodePoh(value: unknown, i: number): PohEntry {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(`poh[${i}] must be a map`)
  const e = value as Record<string, unknown>
  const hasMixin = 'm' in e
  record(e, `poh[${i}]`, hasMixin ? ['n', 'm', 'h'] : ['n', 'h'])
  const entry: PohEntry = { numHashes: uint(e.n, `poh[${i}].n`), hash: hash32(e.h, `poh[${i}].h`) }
  if (hasMixin) entry.mixin = hash32(e.m, `poh[${i}].m`)
  return entry
}

/** Decodes a block and checks its internal consistency (not its validity against the chain). */
export function decodeBlock(bytes: Uint8Array): Block {
  if (bytes.length > MAX_BLOCK_BYTES) fail(`${bytes.length} bytes exceeds ${MAX_BLOCK_BYTES}`)
  let raw: unknown
  try {
    raw = decode(bytes, { maxBytes: MAX_BLOCK_BYTES })
  } catch (err) {
    throw new BlockError(`malformed block: ${(err as Error).message}`, { cause: err })
  }
  const b = record(raw, 'block', ['header', 'txs', 'poh', 'batches', 'lastCommit'])
  if (!Array.isArray(b.txs) || !Array.isArray(b.poh) || !Array.isArray(b.batches))
    fail('txs, poh and batches must be lists')
  const txs = b.txs.map((tx, i) => {
    if (!(tx instanceof Uint8Array) || tx.length === 0 || tx.length > MAX_TX_BYTES)
      fail(`txs[${i}] must be an encoded transaction`)
    return tx
  })
  const block: Block = {
    header: decodeHeader(b.header),
    txs,
    poh: b.poh.map(decodePoh),
    batches: b.batches.map((n, i) => uint(n, `batches[${i}]`)),
    lastCommit: b.lastCommit === null ? null : decodeCommitValue(b.lastCommit, 'lastCommit'),
  }
  checkBlockConsistency(block)
  return block
}

/**
 * Checks that txs, batches, mixins, roots and the commit hash agree with each other and the
 * header; returns the transactions' hashes (in block order), which it had to compute.
 */
export function checkBlockConsistency(block: Block): Uint8Array[] {
  const { header } = block
  const mixins = block.poh.filter((e) => e.mixin !== undefined)
  if (mixins.length !== block.batches.length) fail('one batch per mixin entry is required')
  if (block.batches.reduce((a, n) => a + n, 0) !== block.txs.length) fail('batches do not add up to the transactions')
  const hashes = block.txs.map(txHash)
  // the batch roots and the block's root are trees over the same leaves: each hashed once
  const leaves = hashes.map(merkleLeaf)
  let offset = 0
  mixins.forEach((entry, i) => {
    const count = block.batches[i] as number
    if (count === 0) fail(`batch ${i} is empty`)
    const root = merkleRootOfLeaves(leaves.slice(offset, offset + count))
    if (!equalBytes(root, entry.mixin as Uint8Array)) fail(`mixin ${i} is not the Merkle root of its transactions`)
    offset += count
  })
  if (!equalBytes(merkleRootOfLeaves(leaves), header.txRoot)) fail('txRoot does not match the transactions')
  if (!equalBytes(commitHash(block.lastCommit), header.lastCommitHash)) fail('lastCommitHash does not match lastCommit')
  const last = block.poh[block.poh.length - 1]
  if (!equalBytes(last === undefined ? header.pohStart : last.hash, header.pohEnd))
    fail('pohEnd is not the last entry hash')
  if (block.poh.filter((e) => e.mixin === undefined).length !== header.pohTicks)
    fail('pohTicks does not match the entries')
  return hashes
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
