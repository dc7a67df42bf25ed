/**
 * The experts module's state: keys, records and the reads that queries share with the handlers.
 * Every key is under `experts/`; values are dag-cbor; money is bigint. Sets use one key per
 * member (`IndexedSet`), so no transaction rewrites a list that grows with the network.
 *
 *   family/<family>                    FamilyRecord (owner, latest version, next DAG index, usage)
 *   families/...                         IndexedSet of every family
 *   meta/<family>/<version>            MetaRecord (the linear MetaBlock history)
 *   metahash/<hash>                    { family, version } of a MetaBlock hash
 *   block/<hash>                       BlockRecord (header, status, accepted score)
 *   payload/<cid>                      hash of the pending or accepted block carrying that payload
 *   idx/<family>/<version>/<name>      ParamIndex: the slot's current block hash
 *   names/<family>/<version>/...         IndexedSet of the slots filled in that version
 *   carried/<family>/<version>/<hash>  true: an older block carried into that version
 *   hist/<family>/<name>/n             number of accepted blocks the slot has had
 *   hist/<family>/<name>/<n>           HistoryEntry (n from 0)
 *   topo/<family>/<n>                  block hash, the family's blocks in topological order
 *   proposal/<id>                      ProposalRecord (id = hex of the propose transaction's hash)
 *   att/<id>/<did>                     AttestRecord: one validator's reproduction
 *   atts/<id>/...                        IndexedSet of the proposal's attesters
 *   pending/...                          IndexedSet of pending proposal ids
 *   due/<height>/...                     IndexedSet of pending ids whose deadline is that height
 *   plog/n, plog/<i>                   every proposal id in order (listProposals reads it backwards)
 *   usage/<hash>                       UsageRecord (calls, epoch calls and latency, rewards)
 *   used/...                             IndexedSet of blocks with calls this epoch
 *   pool                               bigint: usage fees and kept bonds, paid out at epoch edges
 *   escrow                             bigint: bonds of pending proposals
 *
 * `pool` and `escrow` hold tokens taken from accounts; they stay in the supply (like the
 * inference treasury) and no account owns them.
 */
import { asSafeUint, asUint64 } from '../../core/uint.ts'
import { readState, type StateOverlay, type StateReader } from '../../chain/state-view.ts'
import type { ChainParams } from '../../chain/genesis.ts'
import { IndexedSet } from '../../chain/indexed-set.ts'
import {
  parseExpertName,
  type BlockRecord,
  type MetaRecord,
  type ParamBlockHeader,
  type PolScore,
  type ProposalRecord,
  type ProposalStatus,
} from '../types.ts'

/** The parameters the module reads (all in ChainParams). */
export type ExpertsParams = Pick<
  ChainParams,
  | 'epochLength'
  | 'polBond'
  | 'polDifficultyBits'
  | 'polWindowBlocks'
  | 'polToleranceMicroNats'
  | 'polAccuracyTolerancePpm'
  | 'polMinGainMicroNats'
  | 'expertCallPrice'
  | 'expertRecencyBlocks'
>

export interface FamilyRecord {
  family: string
  owner: string
  /** Latest MetaBlock version. */
  latest: number
  /** The next block's DAG index (blocks of every version share the sequence). */
  nextIndex: number
  /** Blocks in `topo/<family>/...`. */
  topoCount: number
  createdAt: number
  /** Score of the model when its last proposal was accepted. */
  score?: PolScore
  /** Routings reported by gateways: all-time, this epoch; generations reported. */
  calls: bigint
  epochCalls: bigint
  generations: bigint
}

export interface HistoryEntry {
  hash: string
  version: number
  height: number
  /** The proposal that brought it ('genesis' for genesis blocks). */
  proposal: string
  score?: PolScore
}

export interface UsageRecord {
  calls: bigint
  epochCalls: bigint
  /** Summed latency of this epoch's calls, ms. */
  epochLatencyMs: bigint
  lastUsedHeight: number
  /** Rewards paid to the block's miner, all epochs. */
  rewards: bigint
}

export interface AttestRecord {
  validator: string
  /** Voting power when it attested. */
  power: bigint
  height: number
  score?: PolScore
  baseline?: PolScore
  fault?: string
}

export const POOL_KEY = 'experts/pool'
export const ESCROW_KEY = 'experts/escrow'
export const familyKey = (family: string): string => `experts/family/${family}`
export const metaKey = (family: string, version: number): string => `experts/meta/${family}/${version}`
export const metaHashKey = (hash: string): string => `experts/metahash/${hash}`
export const blockKey = (hash: string): string => `experts/block/${hash}`
export const payloadKey = (cid: string): string => `experts/payload/${cid}`
/** The ParamIndex key of a slot. */
export const indexKey = (family: string, version: number, name: string): string =>
  `experts/idx/${family}/${version}/${name}`
export const carriedKey = (family: string, version: number, hash: string): string =>
  `experts/carried/${family}/${version}/${hash}`
export const histCountKey = (family: string, name: string): string => `experts/hist/${family}/${name}/n`
export const histKey = (family: string, name: string, n: number): string => `experts/hist/${family}/${name}/${n}`
export const topoKey = (family: string, n: number): string => `experts/topo/${family}/${n}`
export const proposalKey = (id: string): string => `experts/proposal/${id}`
export const attestKey = (id: string, did: string): string => `experts/att/${id}/${did}`
export const usageKey = (hash: string): string => `experts/usage/${hash}`
export const PLOG_COUNT_KEY = 'experts/plog/n'
export const plogKey = (i: number): string => `experts/plog/${i}`

export const FAMILIES = new IndexedSet('experts/families')
export const PENDING = new IndexedSet('experts/pending')
export const USED = new IndexedSet('experts/used')
export const namesSet = (family: string, version: number): IndexedSet =>
  new IndexedSet(`experts/names/${family}/${version}`)
export const attestersSet = (id: string): IndexedSet => new IndexedSet(`experts/atts/${id}`)
export const dueSet = (height: number): IndexedSet => new IndexedSet(`experts/due/${height}`)

/** Drops undefined fields (dag-cbor has no undefined). */
export function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T
}

// ---- numbers -------------------------------------------------------------------------------

export function readAmount(state: StateReader, key: string): bigint {
  const value = readState<unknown>(state, key)
  return value === undefined ? 0n : asUint64(value, key)
}

export function writeAmount(state: StateOverlay, key: string, amount: bigint): void {
  if (amount === 0n) state.remove(key)
  else state.write(key, amount)
}

/** Tokens waiting to be paid to miners at the next epoch edge. */
export function poolBalance(state: StateReader): bigint {
  return readAmount(state, POOL_KEY)
}

/** Bonds of pending proposals. */
export function escrowBalance(state: StateReader): bigint {
  return readAmount(state, ESCROW_KEY)
}

export function addToPool(state: StateOverlay, amount: bigint): void {
  writeAmount(state, POOL_KEY, poolBalance(state) + amount)
}

// ---- records --------------------------------------------------------------------------------

function scoreOf(raw: unknown): PolScore | undefined {
  if (raw === undefined || raw === null) return undefined
  const r = raw as Record<string, unknown>
  return {
    lossMicroNats: asUint64(r.lossMicroNats, 'lossMicroNats'),
    accuracyPpm: asSafeUint(r.accuracyPpm, 'accuracyPpm'),
  }
}

function headerOf(raw: Record<string, unknown>): ParamBlockHeader {
  return { ...(raw as unknown as ParamBlockHeader), nonce: asUint64(raw.nonce, 'nonce') }
}

export function readFamily(state: StateReader, family: string): FamilyRecord | undefined {
  const raw = readState<Record<string, unknown>>(state, familyKey(family))
  if (raw === undefined) return undefined
  return defined({
    ...(raw as unknown as FamilyRecord),
    score: scoreOf(raw.score),
    calls: asUint64(raw.calls, 'calls'),
    epochCalls: asUint64(raw.epochCalls, 'epochCalls'),
    generations: asUint64(raw.generations, 'generations'),
  })
}

export function writeFamily(state: StateOverlay, record: FamilyRecord): void {
  state.write(familyKey(record.family), defined(record))
  FAMILIES.add(state, record.family)
}

/** Every family, by name. */
export function listFamilies(state: StateReader): FamilyRecord[] {
  return FAMILIES.list(state)
    .sort()
    .flatMap((f) => readFamily(state, f) ?? [])
}

/** A family's MetaBlock at `version` (the latest when absent). */
export function readMeta(state: StateReader, family: string, version?: number): MetaRecord | undefined {
  const v = version ?? readFamily(state, family)?.latest
  if (v === undefined) return undefined
  return readState<MetaRecord>(state, metaKey(family, v))
}

/** The family and version a MetaBlock hash names. */
export function metaByHash(state: StateReader, hash: string): { family: string; version: number } | undefined {
  return readState<{ family: string; version: number }>(state, metaHashKey(hash))
}

export function readBlock(state: StateReader, hash: string): BlockRecord | undefined {
  const raw = readState<Record<string, unknown>>(state, blockKey(hash))
  if (raw === undefined) return undefined
  return defined({
    ...(raw as unknown as BlockRecord),
    header: headerOf(raw.header as Record<string, unknown>),
    score: scoreOf(raw.score),
  })
}

export function writeBlock(state: StateOverlay, record: BlockRecord): void {
  state.write(blockKey(record.hash), defined(record))
}

/** The hash a slot holds in a version's ParamIndex. */
export function indexEntry(state: StateReader, family: string, version: number, name: string): string | undefined {
  return readState<string>(state, indexKey(family, version, name))
}

export function setIndexEntry(state: StateOverlay, family: string, version: number, name: string, hash: string): void {
  state.write(indexKey(family, version, name), hash)
  namesSet(family, version).add(state, name)
}

function slotOrder(a: string, b: string): number {
  const pa = parseExpertName(a)
  const pb = parseExpertName(b)
  if (pa === undefined || pb === undefined) return a < b ? -1 : a > b ? 1 : 0
  if (pa.layer !== pb.layer) return pa.layer - pb.layer
  return (pa.expert ?? -1) - (pb.expert ?? -1)
}

/** A version's ParamIndex: slot -> block hash, by layer then router first then expert number. */
export function paramIndex(state: StateReader, family: string, version: number): Array<{ name: string; hash: string }> {
  return namesSet(family, version)
    .list(state)
    .sort(slotOrder)
    .flatMap((name) => {
      const hash = indexEntry(state, family, version, name)
      return hash === undefined ? [] : [{ name, hash }]
    })
}

export function isCarried(state: StateReader, family: string, version: number, hash: string): boolean {
  return readState<boolean>(state, carriedKey(family, version, hash)) === true
}

/** The blocks a slot has held, oldest first. */
export function blockHistory(state: StateReader, family: string, name: string): HistoryEntry[] {
  const n = readState<number>(state, histCountKey(family, name)) ?? 0
  const out: HistoryEntry[] = []
  for (let i = 0; i < n; i++) {
    const raw = readState<Record<string, unknown>>(state, histKey(family, name, i))
    if (raw !== undefined) out.push(defined({ ...(raw as unknown as HistoryEntry), score: scoreOf(raw.score) }))
  }
  return out
}

export function appendHistory(state: StateOverlay, family: string, name: string, entry: HistoryEntry): void {
  const n = readState<number>(state, histCountKey(family, name)) ?? 0
  state.write(histKey(family, name, n), defined(entry))
  state.write(histCountKey(family, name), n + 1)
}

/**
 * A version's blocks (those built for it) in topological order, every status; `limit` caps the
 * answer (the first ones).
 */
export function dagBlocks(state: StateReader, family: string, version: number, limit = 10_000): BlockRecord[] {
  const count = readFamily(state, family)?.topoCount ?? 0
  const out: BlockRecord[] = []
  for (let i = 0; i < count && out.length < limit; i++) {
    const hash = readState<string>(state, topoKey(family, i))
    const record = hash === undefined ? undefined : readBlock(state, hash)
    if (record !== undefined && record.header.version === version) out.push(record)
  }
  return out
}

// ---- proposals and attestations ------------------------------------------------------------------

export function readProposal(state: StateReader, id: string): ProposalRecord | undefined {
  const raw = readState<Record<string, unknown>>(state, proposalKey(id))
  if (raw === undefined) return undefined
  const claim = scoreOf(raw.claim) as PolScore
  return defined({
    ...(raw as unknown as ProposalRecord),
    claim,
    bond: asUint64(raw.bond, 'bond'),
    score: scoreOf(raw.score),
    baseline: scoreOf(raw.baseline),
  })
}

export function writeProposal(state: StateOverlay, record: ProposalRecord): void {
  state.write(proposalKey(record.id), defined(record))
}

export function logProposal(state: StateOverlay, id: string): void {
  const n = readState<number>(state, PLOG_COUNT_KEY) ?? 0
  state.write(plogKey(n), id)
  state.write(PLOG_COUNT_KEY, n + 1)
}

/** Proposals, most recent first, optionally of one status; at most `limit` (scans at most 20 × limit). */
export function listProposals(
  state: StateReader,
  options: { status?: ProposalStatus; limit?: number; family?: string } = {},
): ProposalRecord[] {
  const limit = Math.max(0, Math.min(options.limit ?? 50, 1_000))
  const n = readState<number>(state, PLOG_COUNT_KEY) ?? 0
  const out: ProposalRecord[] = []
  const floor = Math.max(0, n - limit * 20)
  for (let i = n - 1; i >= floor && out.length < limit; i--) {
    const id = readState<string>(state, plogKey(i))
    const record = id === undefined ? undefined : readProposal(state, id)
    if (record === undefined) continue
    if (options.status !== undefined && record.status !== options.status) continue
    if (options.family !== undefined && record.family !== options.family) continue
    out.push(record)
  }
  return out
}

/** Every pending proposal, by deadline then id. */
export function pendingProposals(state: StateReader): ProposalRecord[] {
  return PENDING.list(state)
    .flatMap((id) => readProposal(state, id) ?? [])
    .sort((a, b) => a.deadline - b.deadline || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}

export function readAttestation(state: StateReader, id: string, did: string): AttestRecord | undefined {
  const raw = readState<Record<string, unknown>>(state, attestKey(id, did))
  if (raw === undefined) return undefined
  return defined({
    ...(raw as unknown as AttestRecord),
    power: asUint64(raw.power, 'power'),
    score: scoreOf(raw.score),
    baseline: scoreOf(raw.baseline),
  })
}

/** A proposal's attestations, by validator DID. */
export function attestations(state: StateReader, id: string): AttestRecord[] {
  return attestersSet(id)
    .list(state)
    .sort()
    .flatMap((did) => readAttestation(state, id, did) ?? [])
}

// ---- usage ---------------------------------------------------------------------------------

export function readUsage(state: StateReader, hash: string): UsageRecord | undefined {
  const raw = readState<Record<string, unknown>>(state, usageKey(hash))
  if (raw === undefined) return undefined
  return {
    calls: asUint64(raw.calls, 'calls'),
    epochCalls: asUint64(raw.epochCalls, 'epochCalls'),
    epochLatencyMs: asUint64(raw.epochLatencyMs, 'epochLatencyMs'),
    lastUsedHeight: asSafeUint(raw.lastUsedHeight, 'lastUsedHeight'),
    rewards: asUint64(raw.rewards, 'rewards'),
  }
}

export function writeUsage(state: StateOverlay, hash: string, record: UsageRecord): void {
  state.write(usageKey(hash), record)
}

export function newUsage(): UsageRecord {
  return { calls: 0n, epochCalls: 0n, epochLatencyMs: 0n, lastUsedHeight: 0, rewards: 0n }
}
