/**
 * The inference module's state: keys, records and the reads that queries share with the
 * handlers. Layout (all keys under `inference/`, dag-cbor values, money as bigint):
 *
 *   inference/model/<cid>            ModelRecord
 *   inference/name/<name>            cid of the name's current version
 *   inference/models                 [cid]            every registered model, sorted
 *   inference/worker/<did>           WorkerRecord
 *   inference/workers                [did]            every worker that ever bonded, sorted
 *   inference/unb/<did>              [{ amount, completes }]   unbonding, slashable until withdrawn
 *   inference/active                 [did]            workers with ≥ 1 job settled this epoch, sorted
 *   inference/treasury               bigint           protocol share of fees; pays auditors
 *   inference/job/<jobIdHex>         JobSettlement    the job's one settlement
 *   inference/batches/<height>       number           settle batches so far at that height
 *   inference/batch/<height>/<n>     SettleBatch      Merkle root and ids of a settle tx's receipts
 *   inference/audit/<jobIdHex>       AuditRecord      first passing audit of a job
 *   inference/dispute/<jobIdHex>     DisputeRecord    a mismatching audit and, later, its resolution
 */
import { asSafeUint, asUint64, MAX_UINT64 } from '../core/uint.ts'
import { DEFAULT_PARAMS, type ChainParams } from '../chain/genesis.ts'
import { readState, type StateOverlay, type StateReader } from '../chain/state-view.ts'
import { parseReceipt, type ExecutionProvider, type Receipt } from './job.ts'

export const BPS = 10_000n
export const MAX_UNBONDING_ENTRIES = 16

export const modelKey = (cid: string): string => `inference/model/${cid}`
export const nameKey = (name: string): string => `inference/name/${name}`
export const MODELS_KEY = 'inference/models'
export const workerKey = (did: string): string => `inference/worker/${did}`
export const WORKERS_KEY = 'inference/workers'
export const unbKey = (did: string): string => `inference/unb/${did}`
export const ACTIVE_KEY = 'inference/active'
export const TREASURY_KEY = 'inference/treasury'
export const jobKey = (jobIdHex: string): string => `inference/job/${jobIdHex}`
export const batchCountKey = (height: number): string => `inference/batches/${height}`
export const batchKey = (height: number, n: number): string => `inference/batch/${height}/${n}`
export const auditKey = (jobIdHex: string): string => `inference/audit/${jobIdHex}`
export const disputeKey = (jobIdHex: string): string => `inference/dispute/${jobIdHex}`

/** The parameters the module reads (all in ChainParams). */
export type InferenceParams = Pick<
  ChainParams,
  | 'epochLength'
  | 'unbondingBlocks'
  | 'minWorkerBond'
  | 'maxReceiptsPerSettle'
  | 'settleWindowMs'
  | 'protocolShareBps'
  | 'auditThreshold'
  | 'quorumSize'
  | 'workerSlashBps'
  | 'challengerRewardBps'
  | 'quarantineBlocks'
  | 'auditReward'
  | 'workerRewardPerEpoch'
  | 'recencyBlocks'
>

export interface TensorSpec {
  name: string
  /** Element type, e.g. "float32". */
  type: string
  /** Dimensions; null for a dynamic one (batch, sequence length). */
  dims: Array<number | null>
}

export interface Tolerance {
  /** Largest |a − b| accepted across execution providers, parts per million. */
  maxAbsPpm: number
  /** Whether the top-1 class must agree across providers. */
  top1: boolean
}

/** What `inference.registerModel` carries. */
export interface ModelSpec {
  cid: string
  name: string
  version: string
  /** Fee per call, base units. */
  price: bigint
  kind: 'tensor' | 'text'
  inputs: TensorSpec[]
  outputs: TensorSpec[]
  tolerance: Tolerance
  /** Size of the ONNX file, bytes. */
  size: number
  /**
   * Text models: CID of the tokenizer (the chars.ts JSON naming this model's CID), a blob served
   * like the weights, so any gateway can encode prompts and decode outputs.
   */
  codec?: string
}

export interface ModelRecord extends ModelSpec {
  owner: string
  registeredAt: number
  /** Jobs settled against this model, and the fees they paid. */
  calls: number
  feesTotal: bigint
}

export interface WorkerRecord {
  bonded: bigint
  ep: ExecutionProvider
  /** Consecutive passed audits (BOINC's CV); 0 after a lost dispute. */
  streak: number
  /** Not scheduled while height < this. */
  quarantinedUntil: number
  slashes: number
  jobs: number
  computeMicrosTotal: bigint
  latencyMsTotal: bigint
  auditsPassed: number
  auditsFailed: number
  lastActiveHeight: number
  /** This epoch's jobs and latency (reset at each epoch edge; they decide the epoch reward). */
  epochJobs: number
  epochLatencyMs: bigint
}

export interface UnbondingEntry {
  amount: bigint
  completes: number
}

export interface JobSettlement {
  receiptId: Uint8Array
  height: number
  /** Which settle batch of that height, and the receipt's leaf in its Merkle tree. */
  batch: number
  leaf: number
  worker: string
  client: string
  model: string
  fee: bigint
  /** Part of the fee kept by the protocol (the treasury). */
  share: bigint
}

export interface SettleBatch {
  root: Uint8Array
  count: number
  /** The settled receipts' ids, in leaf order (enough to rebuild any inclusion proof). */
  receiptIds: Uint8Array[]
}

export interface AuditRecord {
  auditor: string
  height: number
  receiptId: Uint8Array
}

export interface DisputeResolution {
  height: number
  majority: Uint8Array
  slashed: string[]
}

export interface DisputeRecord {
  original: Receipt
  audit: Receipt
  height: number
  resolved: DisputeResolution | null
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

/** a + b, held at 2^64 − 1 (counters fed by workers' own claims must not overflow the codec). */
export function addSaturating(a: bigint, b: bigint): bigint {
  const sum = a + b
  return sum > MAX_UINT64 ? MAX_UINT64 : sum
}

/** Sorted insert into a stored list of strings; no-op if present. */
export function addToList(state: StateOverlay, key: string, item: string): void {
  const list = readState<string[]>(state, key) ?? []
  if (list.includes(item)) return
  state.write(key, [...list, item].sort())
}

// ---- models --------------------------------------------------------------------------------

function decodeModel(raw: Record<string, unknown>): ModelRecord {
  return {
    ...(raw as unknown as ModelRecord),
    price: asUint64(raw.price, 'price'),
    feesTotal: asUint64(raw.feesTotal, 'feesTotal'),
  }
}

export function modelByCid(state: StateReader, cid: string): ModelRecord | undefined {
  const raw = readState<Record<string, unknown>>(state, modelKey(cid))
  return raw === undefined ? undefined : decodeModel(raw)
}

/** The current version of a model name. */
export function modelByName(state: StateReader, name: string): ModelRecord | undefined {
  const cid = readState<string>(state, nameKey(name))
  return cid === undefined ? undefined : modelByCid(state, cid)
}

/** Every registered model (old versions included), in CID order. */
export function listModels(state: StateReader): ModelRecord[] {
  const cids = readState<string[]>(state, MODELS_KEY) ?? []
  return cids.map((cid) => modelByCid(state, cid)).filter((m): m is ModelRecord => m !== undefined)
}

export function writeModel(state: StateOverlay, model: ModelRecord): void {
  state.write(modelKey(model.cid), model)
}

// ---- workers -------------------------------------------------------------------------------

function decodeWorker(raw: Record<string, unknown>): WorkerRecord {
  return {
    bonded: asUint64(raw.bonded, 'bonded'),
    ep: raw.ep as ExecutionProvider,
    streak: asSafeUint(raw.streak, 'streak'),
    quarantinedUntil: asSafeUint(raw.quarantinedUntil, 'quarantinedUntil'),
    slashes: asSafeUint(raw.slashes, 'slashes'),
    jobs: asSafeUint(raw.jobs, 'jobs'),
    computeMicrosTotal: asUint64(raw.computeMicrosTotal, 'computeMicrosTotal'),
    latencyMsTotal: asUint64(raw.latencyMsTotal, 'latencyMsTotal'),
    auditsPassed: asSafeUint(raw.auditsPassed, 'auditsPassed'),
    auditsFailed: asSafeUint(raw.auditsFailed, 'auditsFailed'),
    lastActiveHeight: asSafeUint(raw.lastActiveHeight, 'lastActiveHeight'),
    epochJobs: asSafeUint(raw.epochJobs, 'epochJobs'),
    epochLatencyMs: asUint64(raw.epochLatencyMs, 'epochLatencyMs'),
  }
}

export function newWorker(ep: ExecutionProvider): WorkerRecord {
  return {
    bonded: 0n,
    ep,
    streak: 0,
    quarantinedUntil: 0,
    slashes: 0,
    jobs: 0,
    computeMicrosTotal: 0n,
    latencyMsTotal: 0n,
    auditsPassed: 0,
    auditsFailed: 0,
    lastActiveHeight: 0,
    epochJobs: 0,
    epochLatencyMs: 0n,
  }
}

export function workerRecord(state: StateReader, did: string): WorkerRecord | undefined {
  const raw = readState<Record<string, unknown>>(state, workerKey(did))
  return raw === undefined ? undefined : decodeWorker(raw)
}

export function writeWorker(state: StateOverlay, did: string, record: WorkerRecord): void {
  state.write(workerKey(did), record)
  addToList(state, WORKERS_KEY, did)
}

/** Every worker that ever bonded, in DID order (queries, the dashboard, the scheduler). */
export function listWorkers(state: StateReader): Array<{ did: string } & WorkerRecord> {
  const dids = readState<string[]>(state, WORKERS_KEY) ?? []
  return dids.flatMap((did) => {
    const record = workerRecord(state, did)
    return record === undefined ? [] : [{ did, ...record }]
  })
}

/**
 * A worker may be given jobs: bonded at least `minWorkerBond` and not quarantined at `height`.
 * Pass the chain's own params; the default is DEFAULT_PARAMS, right only for default chains.
 */
export function isSchedulable(
  state: StateReader,
  did: string,
  height: number,
  params: Pick<InferenceParams, 'minWorkerBond'> = DEFAULT_PARAMS,
): boolean {
  const record = workerRecord(state, did)
  return record !== undefined && record.bonded >= params.minWorkerBond && record.quarantinedUntil <= height
}

export function workerUnbonding(state: StateReader, did: string): UnbondingEntry[] {
  const raw = readState<Array<Record<string, unknown>>>(state, unbKey(did)) ?? []
  return raw.map((e) => ({ amount: asUint64(e.amount, 'amount'), completes: asSafeUint(e.completes, 'completes') }))
}

export function writeUnbonding(state: StateOverlay, did: string, entries: UnbondingEntry[]): void {
  if (entries.length === 0) state.remove(unbKey(did))
  else state.write(unbKey(did), entries)
}

/** Workers with at least one job settled in the current epoch. */
export function activeWorkers(state: StateReader): string[] {
  return readState<string[]>(state, ACTIVE_KEY) ?? []
}

/** Tokens held by the protocol: fee shares and reward dust, paid out to auditors. */
export function treasuryBalance(state: StateReader): bigint {
  return readAmount(state, TREASURY_KEY)
}

// ---- settlements, batches, audits, disputes --------------------------------------------------

export function settlementOf(state: StateReader, jobIdHex: string): JobSettlement | undefined {
  const raw = readState<Record<string, unknown>>(state, jobKey(jobIdHex))
  if (raw === undefined) return undefined
  return { ...(raw as unknown as JobSettlement), fee: asUint64(raw.fee, 'fee'), share: asUint64(raw.share, 'share') }
}

export function settleBatch(state: StateReader, height: number, n: number): SettleBatch | undefined {
  return readState<SettleBatch>(state, batchKey(height, n))
}

/** How many settle batches were recorded at `height`. */
export function batchCount(state: StateReader, height: number): number {
  return readState<number>(state, batchCountKey(height)) ?? 0
}

export function auditOf(state: StateReader, jobIdHex: string): AuditRecord | undefined {
  return readState<AuditRecord>(state, auditKey(jobIdHex))
}

export function disputeOf(state: StateReader, jobIdHex: string): DisputeRecord | undefined {
  const raw = readState<Record<string, unknown>>(state, disputeKey(jobIdHex))
  if (raw === undefined) return undefined
  return {
    original: parseReceipt(raw.original),
    audit: parseReceipt(raw.audit),
    height: raw.height as number,
    resolved: (raw.resolved as DisputeResolution | null) ?? null,
  }
}
