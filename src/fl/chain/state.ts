/**
 * The fl module's state: keys, records and the reads that queries share with the handlers. Every
 * key is under `fl/`; values are dag-cbor; money is bigint; scores are ppm integers (no floating
 * point in state).
 *
 *   next                          number: the next task id (ids count from 1)
 *   tasks/...                       IndexedSet of every task id
 *   task/<id>                     TaskRecord (its terms, status, current round, global model, pool)
 *   part/<id>/<did>               ParticipantRecord (bond left, paid, slashed, counters)
 *   parts/<id>/...                  IndexedSet of the task's participants
 *   round/<id>/<r>                RoundRecord (roles, windows, then its settlement)
 *   upd/<id>/<r>/<did>            UpdateRecord: a proposer's sealed update (CID, digest, size)
 *   vote/<id>/<r>/<did>           VoteRecord: a voter's aggregate, accuracy and approval
 *   cid/<cid>                     CidRecord: what on chain names this blob (the node's blob route
 *                                 stores only such blobs)
 *   onnx/<cid>                    OnnxName: the first vote naming this CID as the ONNX export of
 *                                 its aggregate (its own namespace: naming a CID as an aggregate
 *                                 or an update never blocks a vote's ONNX, nor the other way)
 *   due/<height>/...                IndexedSet of task ids with something to do at the end of that
 *                                 block (start, join deadline, settlement)
 *   escrow                        bigint: every task's pool plus every bond held
 *
 * The escrow holds tokens taken from accounts: they stay in the supply and no account owns them.
 * Slashed bond is burned (bank.burn): it leaves the supply.
 */
import { asSafeUint, asUint64 } from '../../core/uint.ts'
import { readState, type StateOverlay, type StateReader } from '../../chain/state-view.ts'
import { IndexedSet } from '../../chain/indexed-set.ts'
import type { AggregationRule } from '../aggregate.ts'

export type TaskStatus = 'open' | 'running' | 'finished' | 'cancelled'
export type RoundStatus = 'open' | 'passed' | 'failed'

/** A model on chain: the CID of its blob in the content store and the sha-256 of its weights. */
export interface ModelRef {
  cid: string
  /** Hex sha-256 of the encoded weight vector (src/fl/weights.ts `weightsDigest`). */
  digest: string
}

/** An ONNX export of a global model (src/fl/blob.ts `encodeOnnx`): its CID and size in bytes. */
export interface OnnxRef {
  cid: string
  bytes: number
}

/** What happened to a task's market entry when it finished (a task with a price). */
export interface MarketOutcome {
  /** The ONNX CID registered (or that could not be); empty when no round gave one. */
  cid: string
  name: string
  version: string
  /** The round whose aggregate it is (0 when no round passed). */
  round: number
  registered: boolean
  /** Why not ('no-global-model', 'no-onnx', 'name-taken', 'model-exists', ...). */
  reason?: string
}

/** The terms of a task, as `fl.create` gives them. */
export interface TaskTerms {
  /** The task's name; with a `price`, also the name of its model in the inference market. */
  name: string
  /** Layer widths of the MLP, input first: [64, 32, 10] for the digits model. */
  widths: number[]
  /** The raw features are divided by this inside the model (16 for 0-16 pixels). */
  inputDivisor: number
  initial: ModelRef
  rule: AggregationRule
  /** Byzantine updates the rule must tolerate (its condition is checked at creation). */
  f: number
  rounds: number
  /** Blocks of a round's upload window, then of its vote window. */
  uploadBlocks: number
  voteBlocks: number
  /** Blocks after creation within which the task must fill up, or it is cancelled. */
  joinBlocks: number
  /** Escrowed reward pool, base units. */
  pool: bigint
  /** Bond each participant escrows with `fl.join`. */
  bond: bigint
  /** The task starts once this many have joined (no more join). */
  participants: number
  /** Voters drawn each round (the others propose). */
  voters: number
  /** Share of the remaining bond slashed per offence, ppm. */
  slashPpm: number
  /**
   * Fee per call of the global model in the inference market: with it, the finished task's
   * global model is registered there under `name` (module.ts, market.ts). Absent: no market entry.
   */
  price?: bigint
}

export interface TaskRecord extends TaskTerms {
  id: number
  creator: string
  createdAt: number
  status: TaskStatus
  /** The current round (0 before the first starts; `rounds` once finished). */
  round: number
  /** The current global model (the initial one until a round passes). */
  global: ModelRef
  /** What is left of the pool. */
  remaining: bigint
  joined: number
  /** Totals over the task's life. */
  paid: bigint
  slashed: bigint
  /** Height of the end of the block that does the task's next scheduled step. */
  nextDue: number
  /** The market's model deposit escrowed with a price (0 without); it stays with the registered model. */
  deposit: bigint
  /** The ONNX export of `global` the majority of its round agreed on (absent for the initial model). */
  onnx?: OnnxRef
  /** The round whose aggregate `global` is (0: the initial model). */
  globalRound?: number
  /** Set when a task with a price finishes. */
  model?: MarketOutcome
}

export interface ParticipantRecord {
  did: string
  /** Bond still escrowed (the task's bond less what was slashed). */
  bond: bigint
  joinedAt: number
  paid: bigint
  slashed: bigint
  /** Bond given back when the task ended. */
  returned: bigint
  proposed: number
  voted: number
  /** Rounds in which the majority excluded its update. */
  excluded: number
}

export interface Payout {
  did: string
  amount: bigint
}

export type SlashReason = 'excluded' | 'round-failed' | 'approved-failed-round'

export interface Slash {
  did: string
  amount: bigint
  reason: SlashReason
}

export interface RoundRecord {
  task: number
  round: number
  /** The round opened at the end of block `start`; updates until `uploadEnd`, votes until `voteEnd`. */
  start: number
  uploadEnd: number
  voteEnd: number
  /** Hex sha-256 the roles were drawn from (the parent block id of the opening block). */
  seed: string
  /** In the order their updates are aggregated. */
  proposers: string[]
  voters: string[]
  /** The global model the round trains from. */
  base: ModelRef
  status: RoundStatus
  updates: number
  votes: number
  /** Settlement (set at voteEnd). */
  aggregate?: ModelRef
  /** The ONNX export of the aggregate the majority agreed on (when its votes named one). */
  onnx?: OnnxRef
  /** Lower median of the majority's accuracies, ppm. */
  accuracyPpm?: number
  /** Votes in the majority (approving the same aggregate and exclusions). */
  majority?: number
  excluded?: string[]
  /** The round's budget: remaining pool ÷ rounds left. */
  pay?: bigint
  payouts?: Payout[]
  slashes?: Slash[]
}

export interface UpdateRecord {
  did: string
  cid: string
  digest: string
  /** Size of the sealed blob, bytes. */
  bytes: number
  /** Training examples behind the update (FedAvg's weight). */
  samples: number
  height: number
}

export interface VoteRecord {
  did: string
  approve: boolean
  /** The aggregate it computed (absent when it could not compute one). */
  aggregate?: ModelRef
  /** The ONNX export of that aggregate (part of what the majority agrees on). */
  onnx?: OnnxRef
  accuracyPpm: number
  /** Proposers it judged outliers, in the round's proposer order. */
  excluded: string[]
  height: number
}

/** What on chain names a blob. */
export interface CidRecord {
  task: number
  round: number
  kind: 'initial' | 'update' | 'aggregate'
  /** The proposer of an update; the first voter naming an aggregate; the creator for the initial model. */
  did: string
  /** Declared size of an update's blob (the route refuses other sizes); 0 when not declared. */
  bytes: number
}

export const NEXT_KEY = 'fl/next'
export const ESCROW_KEY = 'fl/escrow'
export const taskKey = (id: number): string => `fl/task/${id}`
export const participantKey = (id: number, did: string): string => `fl/part/${id}/${did}`
export const roundKey = (id: number, round: number): string => `fl/round/${id}/${round}`
export const updateKey = (id: number, round: number, did: string): string => `fl/upd/${id}/${round}/${did}`
export const voteKey = (id: number, round: number, did: string): string => `fl/vote/${id}/${round}/${did}`
export const cidKey = (cid: string): string => `fl/cid/${cid}`
export const onnxKey = (cid: string): string => `fl/onnx/${cid}`

export const TASKS = new IndexedSet('fl/tasks')
export const participantsSet = (id: number): IndexedSet => new IndexedSet(`fl/parts/${id}`)
export const dueSet = (height: number): IndexedSet => new IndexedSet(`fl/due/${height}`)

/** Drops undefined fields (dag-cbor has no undefined). */
export function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T
}

// ---- amounts ---------------------------------------------------------------------------------

function amount(state: StateReader, key: string): bigint {
  const value = readState<unknown>(state, key)
  return value === undefined ? 0n : asUint64(value, key)
}

/** Every pool and bond the module holds. */
export function escrowBalance(state: StateReader): bigint {
  return amount(state, ESCROW_KEY)
}

export function addEscrow(state: StateOverlay, delta: bigint): void {
  const next = escrowBalance(state) + delta
  if (next === 0n) state.remove(ESCROW_KEY)
  else state.write(ESCROW_KEY, next)
}

// ---- tasks -----------------------------------------------------------------------------------

export function nextTaskId(state: StateReader): number {
  return readState<number>(state, NEXT_KEY) ?? 1
}

function modelRef(raw: unknown): ModelRef {
  const r = raw as Record<string, unknown>
  return { cid: String(r.cid), digest: String(r.digest) }
}

function onnxRef(raw: unknown): OnnxRef | undefined {
  if (raw === undefined) return undefined
  const r = raw as Record<string, unknown>
  return { cid: String(r.cid), bytes: asSafeUint(r.bytes, 'onnx.bytes') }
}

export function readTask(state: StateReader, id: number): TaskRecord | undefined {
  const raw = readState<Record<string, unknown>>(state, taskKey(id))
  if (raw === undefined) return undefined
  return defined({
    ...(raw as unknown as TaskRecord),
    initial: modelRef(raw.initial),
    global: modelRef(raw.global),
    pool: asUint64(raw.pool, 'pool'),
    bond: asUint64(raw.bond, 'bond'),
    remaining: asUint64(raw.remaining, 'remaining'),
    paid: asUint64(raw.paid, 'paid'),
    slashed: asUint64(raw.slashed, 'slashed'),
    // tasks created before market entries carry neither
    price: raw.price === undefined ? undefined : asUint64(raw.price, 'price'),
    deposit: raw.deposit === undefined ? 0n : asUint64(raw.deposit, 'deposit'),
    onnx: onnxRef(raw.onnx),
  })
}

export function writeTask(state: StateOverlay, task: TaskRecord): void {
  state.write(taskKey(task.id), defined(task))
  TASKS.add(state, String(task.id))
}

/** Every task, newest first; at most `limit`. */
export function listTasks(state: StateReader, options: { status?: TaskStatus; limit?: number } = {}): TaskRecord[] {
  const limit = Math.max(0, Math.min(options.limit ?? 100, 1_000))
  const out: TaskRecord[] = []
  for (let id = nextTaskId(state) - 1; id >= 1 && out.length < limit; id--) {
    const task = readTask(state, id)
    if (task !== undefined && (options.status === undefined || task.status === options.status)) out.push(task)
  }
  return out
}

// ---- participants ----------------------------------------------------------------------------

export function readParticipant(state: StateReader, id: number, did: string): ParticipantRecord | undefined {
  const raw = readState<Record<string, unknown>>(state, participantKey(id, did))
  if (raw === undefined) return undefined
  return {
    ...(raw as unknown as ParticipantRecord),
    bond: asUint64(raw.bond, 'bond'),
    paid: asUint64(raw.paid, 'paid'),
    slashed: asUint64(raw.slashed, 'slashed'),
    returned: asUint64(raw.returned, 'returned'),
  }
}

export function writeParticipant(state: StateOverlay, id: number, record: ParticipantRecord): void {
  state.write(participantKey(id, record.did), record)
  participantsSet(id).add(state, record.did)
}

/** A task's participants, by DID. */
export function listParticipants(state: StateReader, id: number): ParticipantRecord[] {
  return participantsSet(id)
    .list(state)
    .sort()
    .flatMap((did) => readParticipant(state, id, did) ?? [])
}

// ---- rounds, updates, votes ------------------------------------------------------------------

function payouts(raw: unknown): Payout[] | undefined {
  if (!Array.isArray(raw)) return undefined
  return raw.map((p: Record<string, unknown>) => ({ did: String(p.did), amount: asUint64(p.amount, 'amount') }))
}

function slashes(raw: unknown): Slash[] | undefined {
  if (!Array.isArray(raw)) return undefined
  return raw.map((s: Record<string, unknown>) => ({
    did: String(s.did),
    amount: asUint64(s.amount, 'amount'),
    reason: s.reason as SlashReason,
  }))
}

export function readRound(state: StateReader, id: number, round: number): RoundRecord | undefined {
  const raw = readState<Record<string, unknown>>(state, roundKey(id, round))
  if (raw === undefined) return undefined
  return defined({
    ...(raw as unknown as RoundRecord),
    base: modelRef(raw.base),
    aggregate: raw.aggregate === undefined ? undefined : modelRef(raw.aggregate),
    onnx: onnxRef(raw.onnx),
    pay: raw.pay === undefined ? undefined : asUint64(raw.pay, 'pay'),
    payouts: payouts(raw.payouts),
    slashes: slashes(raw.slashes),
  })
}

export function writeRound(state: StateOverlay, record: RoundRecord): void {
  state.write(roundKey(record.task, record.round), defined(record))
}

/** A task's rounds so far, first to last. */
export function listRounds(state: StateReader, task: TaskRecord): RoundRecord[] {
  const out: RoundRecord[] = []
  for (let r = 1; r <= task.round; r++) {
    const record = readRound(state, task.id, r)
    if (record !== undefined) out.push(record)
  }
  return out
}

export function readUpdate(state: StateReader, id: number, round: number, did: string): UpdateRecord | undefined {
  const raw = readState<Record<string, unknown>>(state, updateKey(id, round, did))
  if (raw === undefined) return undefined
  return { ...(raw as unknown as UpdateRecord), bytes: asSafeUint(raw.bytes, 'bytes') }
}

/** The round's updates, in its proposer order. */
export function roundUpdates(state: StateReader, round: RoundRecord): UpdateRecord[] {
  return round.proposers.flatMap((did) => readUpdate(state, round.task, round.round, did) ?? [])
}

export function readVote(state: StateReader, id: number, round: number, did: string): VoteRecord | undefined {
  const raw = readState<Record<string, unknown>>(state, voteKey(id, round, did))
  if (raw === undefined) return undefined
  return defined({
    ...(raw as unknown as VoteRecord),
    aggregate: raw.aggregate === undefined ? undefined : modelRef(raw.aggregate),
    onnx: onnxRef(raw.onnx),
  })
}

/** The round's votes, in its voter order. */
export function roundVotes(state: StateReader, round: RoundRecord): VoteRecord[] {
  return round.voters.flatMap((did) => readVote(state, round.task, round.round, did) ?? [])
}

export function readCid(state: StateReader, cid: string): CidRecord | undefined {
  return readState<CidRecord>(state, cidKey(cid))
}

/** Records what names a blob (the first naming wins: the same bytes may be named again). */
export function nameCid(state: StateOverlay, cid: string, record: CidRecord): void {
  if (readCid(state, cid) === undefined) state.write(cidKey(cid), record)
}

/** The first vote naming `cid` as an ONNX export (the node's blob route checks the bytes against the round's votes). */
export interface OnnxName {
  task: number
  round: number
  did: string
}

export function readOnnxName(state: StateReader, cid: string): OnnxName | undefined {
  return readState<OnnxName>(state, onnxKey(cid))
}

export function nameOnnx(state: StateOverlay, cid: string, record: OnnxName): void {
  if (readOnnxName(state, cid) === undefined) state.write(onnxKey(cid), record)
}
