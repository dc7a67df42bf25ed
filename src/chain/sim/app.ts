/**
 * The simulator's chain application: small blocks with REAL proof of history.
 *
 * A block is { height, round, parentId, proposer, payload, poh: { start, entries } }. Its PoH
 * starts where the parent's ended and carries at least ticksRequiredForRound(round) ticks (the
 * least time rounds 0..round-1 last, `minRoundMs`, at the chain's tick rate), then one entry mixing in the payload's
 * hash. `checkSimBlock` is the one validity rule: honest nodes use it in validateBlock, and the
 * simulator's checker re-applies it to every committed block against the canonical chain.
 */
import { asUint8Array, equals } from '../../core/bytes.ts'
import { decode, encode } from '../../core/codec.ts'
import { sha256 } from '../../core/hash.ts'
import { minRoundMs, type TimeoutConfig } from '../bft/constants.ts'
import type { ConsensusApp } from '../bft/engine.ts'
import { selectProposer } from '../bft/proposer.ts'
import type { CommitCertificate, ValidatorSet } from '../bft/types.ts'
import { POH_HASH_LENGTH, PohChain, verifyPohEntries, type PohCheck, type PohEntry } from '../poh/entries.ts'
import { coversRound, ticksRequiredForRound } from '../poh/round-proof.ts'
import type { Rng } from '../../core/rng.ts'

export interface SimBlock {
  height: number
  round: number
  parentId: Uint8Array
  proposer: string
  payload: Uint8Array
  poh: { start: Uint8Array; entries: PohEntry[] }
}

export interface SimChainParams {
  chainId: string
  set: ValidatorSet
  timeouts: TimeoutConfig
  hashesPerTick: number
  ticksPerSecond: number
  proposerSeed: Uint8Array
  genesis: ChainTip
}

/** Where the next block starts: the id and PoH end of the last committed block (or genesis). */
export interface ChainTip {
  id: Uint8Array
  pohEnd: Uint8Array
}

export interface CommittedBlock {
  block: SimBlock
  cert: CommitCertificate
}

/** Ways a Byzantine proposer makes a block invalid. */
export const BLOCK_DEFECTS = ['wrong-parent', 'broken-poh', 'too-few-ticks', 'wrong-proposer', 'future-round'] as const
export type BlockDefect = (typeof BLOCK_DEFECTS)[number]

const MAX_PAYLOAD = 1024
const MAX_ENTRIES = 1_000_000

export function encodeSimBlock(block: SimBlock): Uint8Array {
  return encode({
    height: block.height,
    round: block.round,
    parentId: block.parentId,
    proposer: block.proposer,
    payload: block.payload,
    poh: {
      start: block.poh.start,
      entries: block.poh.entries.map((e) =>
        e.mixin === undefined
          ? { numHashes: e.numHashes, hash: e.hash }
          : { numHashes: e.numHashes, hash: e.hash, mixin: e.mixin },
      ),
    },
  })
}

const ids = new WeakMap<SimBlock, Uint8Array>()

export function simBlockId(block: SimBlock): Uint8Array {
  let id = ids.get(block)
  if (id === undefined) {
    id = sha256(encodeSimBlock(block))
    ids.set(block, id)
  }
  return id
}

/** Parses a block strictly; throws for anything malformed. */
export function decodeSimBlock(bytes: Uint8Array): SimBlock {
  const v = decode<Record<string, unknown>>(bytes)
  const fail = (what: string): Error => new TypeError(`malformed sim block: ${what}`)
  if (!isPlain(v) || Object.keys(v).length !== 6) throw fail('fields')
  const { height, round, parentId, proposer, payload, poh } = v
  if (!Number.isSafeInteger(height) || (height as number) < 1) throw fail('height')
  if (!Number.isSafeInteger(round) || (round as number) < 0) throw fail('round')
  if (!(parentId instanceof Uint8Array) || parentId.length !== 32) throw fail('parentId')
  if (typeof proposer !== 'string' || proposer.length > 128) throw fail('proposer')
  if (!(payload instanceof Uint8Array) || payload.length > MAX_PAYLOAD) throw fail('payload')
  if (!isPlain(poh) || Object.keys(poh).length !== 2) throw fail('poh')
  const { start, entries } = poh as Record<string, unknown>
  if (!(start instanceof Uint8Array) || start.length !== POH_HASH_LENGTH) throw fail('poh.start')
  if (!Array.isArray(entries) || entries.length > MAX_ENTRIES) throw fail('poh.entries')
  const block: SimBlock = {
    height: height as number,
    round: round as number,
    parentId: asUint8Array(parentId),
    proposer,
    payload: asUint8Array(payload),
    poh: { start: asUint8Array(start), entries: entries.map((e) => parseEntry(e, fail)) },
  }
  ids.set(block, sha256(bytes))
  return block
}

function parseEntry(e: unknown, fail: (what: string) => Error): PohEntry {
  if (!isPlain(e)) throw fail('poh entry')
  const keys = Object.keys(e)
  const { numHashes, hash, mixin } = e as Record<string, unknown>
  if (!Number.isSafeInteger(numHashes) || !(hash instanceof Uint8Array)) throw fail('poh entry fields')
  if (keys.length === 2 && mixin === undefined) return { numHashes: numHashes as number, hash: asUint8Array(hash) }
  if (keys.length === 3 && mixin instanceof Uint8Array) {
    return { numHashes: numHashes as number, hash: asUint8Array(hash), mixin: asUint8Array(mixin) }
  }
  throw fail('poh entry fields')
}

function isPlain(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype
}

export function pohEndOf(block: SimBlock): Uint8Array {
  const entries = block.poh.entries
  return entries.length === 0 ? block.poh.start : (entries[entries.length - 1] as PohEntry).hash
}

export function tipOf(block: SimBlock): ChainTip {
  return { id: simBlockId(block), pohEnd: pohEndOf(block) }
}

const pohChecks = new WeakMap<SimBlock, PohCheck>()

/** PoH verification depends only on the block: memoized per block object (nodes share decoded blocks). */
function pohCheckOf(block: SimBlock, hashesPerTick: number): PohCheck {
  let check = pohChecks.get(block)
  if (check === undefined) {
    check = verifyPohEntries(block.poh.start, block.poh.entries, hashesPerTick)
    pohChecks.set(block, check)
  }
  return check
}

/** Ticks a block created for `round` must carry since its parent. */
export function ticksRequired(params: SimChainParams, round: number): number {
  return ticksRequiredForRound(round, (r) => minRoundMs(params.timeouts, r), params.ticksPerSecond)
}

/**
 * Why `block` may not be decided at `height` on top of `parent` when proposed in `round`
 * (undefined: it is valid). A re-proposed block keeps the round it was created in, which may be
 * earlier than the proposal's round; its PoH must cover the rounds before its own round.
 */
export function checkSimBlock(
  params: SimChainParams,
  block: SimBlock,
  parent: ChainTip,
  height: number,
  round: number,
): string | undefined {
  if (block.height !== height) return 'wrong height'
  if (block.round > round) return 'block claims a later round than its proposal'
  if (!equals(block.parentId, parent.id)) return 'parent is not the last committed block'
  if (block.proposer !== selectProposer(params.set, height, block.round, params.proposerSeed).did) {
    return 'block was not made by the proposer of its round'
  }
  if (!equals(block.poh.start, parent.pohEnd)) return "PoH does not start at the parent's PoH end"
  const check = pohCheckOf(block, params.hashesPerTick)
  if (!check.ok) return `PoH entry ${check.index}: ${check.reason}`
  if (!coversRound(check.ticks, block.round, (r) => minRoundMs(params.timeouts, r), params.ticksPerSecond)) {
    return 'PoH does not cover the timeouts of the skipped rounds'
  }
  const last = block.poh.entries[block.poh.entries.length - 1]
  if (last?.mixin === undefined || !equals(last.mixin, sha256(block.payload))) return 'PoH does not mix in the payload'
  return undefined
}

export interface SimChainAppOptions {
  /** This node's DID (the proposer field of its blocks). */
  self: string
  rng: Rng
  /** The node's disk: committed blocks survive a crash. */
  disk: CommittedBlock[]
  onCommit?(block: SimBlock, cert: CommitCertificate): void
  /** Byzantine: a defect to build into the block created for (height, round), if any. */
  defect?(height: number, round: number): BlockDefect | undefined
  /** Byzantine: accept every block without checking it. */
  acceptAll?: boolean
}

const decoded = new WeakMap<Uint8Array, SimBlock>()

export class SimChainApp implements ConsensusApp<SimBlock> {
  readonly params: SimChainParams
  readonly #opts: SimChainAppOptions

  constructor(params: SimChainParams, options: SimChainAppOptions) {
    this.params = params
    this.#opts = options
  }

  get tip(): ChainTip {
    const disk = this.#opts.disk
    const last = disk[disk.length - 1]
    return last === undefined ? this.params.genesis : tipOf(last.block)
  }

  validatorSet(): ValidatorSet {
    return this.params.set
  }

  encodeBlock(block: SimBlock): Uint8Array {
    return encodeSimBlock(block)
  }

  decodeBlock(bytes: Uint8Array): SimBlock {
    // One message object reaches every node; decoding it once is enough (blocks are never mutated).
    let block = decoded.get(bytes)
    if (block === undefined) {
      block = decodeSimBlock(bytes)
      decoded.set(bytes, block)
    }
    return block
  }

  blockId(block: SimBlock): Uint8Array {
    return simBlockId(block)
  }

  proposerSeed(): Uint8Array {
    return this.params.proposerSeed
  }

  createBlock(height: number, round: number): SimBlock {
    const defect = this.#opts.defect?.(height, round)
    return makeSimBlock(this.params, this.tip, height, round, this.#opts.self, this.#opts.rng.bytes(16), defect)
  }

  validateBlock(block: SimBlock, height: number, round: number): boolean {
    if (this.#opts.acceptAll === true) return true
    return checkSimBlock(this.params, block, this.tip, height, round) === undefined
  }

  commit(block: SimBlock, cert: CommitCertificate): void {
    this.#opts.disk.push({ block, cert })
    this.#opts.onCommit?.(block, cert)
  }
}

/** Builds a block (valid unless `defect` says otherwise) with real PoH from `parent`'s PoH end. */
export function makeSimBlock(
  params: SimChainParams,
  parent: ChainTip,
  height: number,
  round: number,
  proposer: string,
  payload: Uint8Array,
  defect?: BlockDefect,
): SimBlock {
  let ticks = ticksRequired(params, round) + 1
  let claimedRound = round
  if (defect === 'too-few-ticks') {
    if (round === 0) defect = 'broken-poh'
    else ticks = Math.max(0, ticksRequired(params, round) - 1)
  }
  if (defect === 'future-round') {
    claimedRound = round + 1
    ticks = ticksRequired(params, claimedRound) + 1
  }
  const poh = new PohChain(parent.pohEnd, params.hashesPerTick)
  poh.tick(ticks)
  poh.record(sha256(payload))
  const entries = poh.drain()
  if (defect === 'broken-poh') {
    const last = entries[entries.length - 1] as PohEntry
    const hash = Uint8Array.from(last.hash)
    hash[0] = (hash[0] ?? 0) ^ 1
    entries[entries.length - 1] = { ...last, hash }
  }
  return {
    height,
    round: claimedRound,
    parentId: defect === 'wrong-parent' ? sha256(parent.id) : parent.id,
    proposer: defect === 'wrong-proposer' ? `${proposer}x` : proposer,
    payload,
    poh: { start: parent.pohEnd, entries },
  }
}
