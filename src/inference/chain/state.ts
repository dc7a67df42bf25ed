/**
 * The inference module's state: keys, records and the reads that queries share with the
 * handlers. Every key is under `inference/`; values are dag-cbor; money is bigint. Sets use one
 * key per member (`IndexedSet`, src/chain/indexed-set.ts), so no transaction rewrites a list that grows with the network.
 *
 *   model/<cid>                 ModelRecord
 *   name/<name>                 cid of the name's current version
 *   models/...                    IndexedSet of every registered model
 *   reports/<cid>/...             IndexedSet of workers that found the model bad
 *   worker/<did>                WorkerRecord (bond, declared provider and runtime, audit streak, usage)
 *   workers/...                   IndexedSet of every worker that ever bonded
 *   unb/<did>                   [{ amount, completes }]   unbonding, slashable until withdrawn
 *   serving/<cid>/...             IndexedSet of the workers that declared they serve the model
 *   since/<cid>/<did>           height of that declaration (draws use only earlier declarations)
 *   dep/<client>/<gateway>      Deposit: what `client` locked for jobs through `gateway`
 *   overdrawn/<gateway>         height at which the gateway dispatched more than a deposit held
 *   treasury                    bigint: protocol share of fees; pays auditors
 *   bh/<height>                 that block's id, for the chain's own draws (kept BLOCK_HASH_WINDOW)
 *   job/<jobIdHex>              JobSettlement: the job's one settlement
 *   batches/<height>            number of settle batches at that height
 *   batch/<height>/<n>          SettleBatch: Merkle root and ids of a settle transaction's receipts
 *   audit/<jobIdHex>            AuditRecord: the job's one audit (passed or disputed)
 *   dispute/<jobIdHex>          DisputeRecord: a mismatching audit and its resolution
 */
import { asSafeUint, asUint64, MAX_UINT64 } from '../../core/uint.ts'
import { readState, type StateOverlay, type StateReader } from '../../chain/state-view.ts'
import type { ChainParams } from '../../chain/genesis.ts'
import { parseReceipt, type ExecutionProvider, type Receipt, type TokenUsage } from '../job.ts'
import { IndexedSet } from '../../chain/indexed-set.ts'

export const BPS = 10_000n
export const MAX_UNBONDING_ENTRIES = 16
export const MAX_DEPOSIT_UNLOCKS = 8
/** Block ids kept in state for draws: enough for every audit and dispute window. */
export const BLOCK_HASH_WINDOW = 512

export const modelKey = (cid: string): string => `inference/model/${cid}`
export const nameKey = (name: string): string => `inference/name/${name}`
export const workerKey = (did: string): string => `inference/worker/${did}`
export const unbKey = (did: string): string => `inference/unb/${did}`
export const depositKey = (client: string, gateway: string): string => `inference/dep/${client}/${gateway}`
export const overdrawnKey = (gateway: string): string => `inference/overdrawn/${gateway}`
export const sinceKey = (cid: string, did: string): string => `inference/since/${cid}/${did}`
export const TREASURY_KEY = 'inference/treasury'
export const blockHashKey = (height: number): string => `inference/bh/${height}`
export const jobKey = (jobIdHex: string): string => `inference/job/${jobIdHex}`
export const batchCountKey = (height: number): string => `inference/batches/${height}`
export const batchKey = (height: number, n: number): string => `inference/batch/${height}/${n}`
export const auditKey = (jobIdHex: string): string => `inference/audit/${jobIdHex}`
export const disputeKey = (jobIdHex: string): string => `inference/dispute/${jobIdHex}`
/** The next settle height whose records may be pruned (prune.ts). */
export const PRUNE_NEXT_KEY = 'inference/prune-next'

export const MODELS = new IndexedSet('inference/models')
export const WORKERS = new IndexedSet('inference/workers')
export const servingSet = (cid: string): IndexedSet => new IndexedSet(`inference/serving/${cid}`)
export const reportSet = (cid: string): IndexedSet => new IndexedSet(`inference/reports/${cid}`)

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
  | 'minModelPrice'
  | 'modelDeposit'
  | 'minDeposit'
  | 'depositUnlockMs'
  | 'maxJobTtlMs'
  | 'gatewayGraceMs'
  | 'auditFloorPpm'
  | 'auditCandidates'
  | 'auditSlotBlocks'
  | 'disputeWindowBlocks'
  | 'challengeFee'
  | 'rewardCapBps'
  | 'usageKeepBps'
  | 'overdraftBanBlocks'
>

export interface TensorSpec {
  name: string
  /** Element type, e.g. "float32". */
  type: string
  /** Dimensions; null for a dynamic one (batch, sequence length). */
  dims: Array<number | null>
}

export interface Tolerance {
  /** Largest |a - b| accepted across execution providers, parts per million. */
  maxAbsPpm: number
  /** Whether the top-1 class must agree across providers. */
  top1: boolean
}

/** What `inference.registerModel` carries. */
export interface ModelSpec {
  cid: string
  name: string
  version: string
  /** Fee per call, base units (at least `minModelPrice`). */
  price: bigint
  /**
   * `tensor`: tensors in, tensors out. `text`: the character model of chars.ts. `lm`: a
   * decoder-only language model; a job is a whole generation (`inference/lm/types.ts`).
   */
  kind: 'tensor' | 'text' | 'lm'
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
  /** Language models: the folder's other files (tokenizer.json, tokenizer_config.json, ...) by name -> CID. */
  files?: Record<string, string>
  /** Language models: fee per prompt token (`price` is per output token). */
  promptPrice?: bigint
  /** Language models: the context window, tokens (prompt + output). */
  contextLength?: number
}

/**
 * The fee a receipt must charge: the price for tensor and text models (which carry no usage);
 * for a language model, prompt tokens × promptPrice + output tokens × price, the usage within
 * the context window. Undefined when the usage does not fit the model (absent, present on a
 * model without tokens, or beyond the context).
 */
export function feeFor(model: ModelSpec, usage: TokenUsage | undefined): bigint | undefined {
  if (model.kind !== 'lm') return usage === undefined ? model.price : undefined
  if (usage === undefined || usage.prompt < 1 || usage.output < 0) return undefined
  if (usage.prompt + usage.output > (model.contextLength ?? 0)) return undefined
  return BigInt(usage.prompt) * (model.promptPrice ?? 0n) + BigInt(usage.output) * model.price
}

/** The most one job can cost: the price, or a language model's prompt plus `maxTokens` outputs. */
export function maxFeeFor(model: ModelSpec, promptTokens = 0, maxTokens = 0): bigint {
  if (model.kind !== 'lm') return model.price
  const output = Math.max(0, Math.min(maxTokens, (model.contextLength ?? 0) - promptTokens))
  return BigInt(promptTokens) * (model.promptPrice ?? 0n) + BigInt(output) * model.price
}

export type ModelStatus = 'active' | 'retired' | 'bad'

export interface ModelRecord extends ModelSpec {
  owner: string
  registeredAt: number
  /** Jobs settled against this model, and the fees they paid. */
  calls: number
  feesTotal: bigint
  /** Locked from the owner while registered (`modelDeposit` at the time). */
  deposit: bigint
  /** `bad`: a quorum of workers found it unusable (deposit burned); `retired` by its owner. */
  status: ModelStatus
}

export interface WorkerRecord {
  bonded: bigint
  /** The execution provider and runtime the worker declared; its receipts must name them. */
  ep: ExecutionProvider
  /** '' until declared (genesis workers may declare later with `inference.serve`). */
  runtime: string
  /** Consecutive passed chain-drawn audits (BOINC's CV); 0 after a lost dispute. */
  streak: number
  /** Not scheduled while height < this. */
  quarantinedUntil: number
  slashes: number
  jobs: number
  /** Sum of gateway-measured latencies over jobs whose gateway reported one, ms, and their count. */
  latencyMsTotal: bigint
  latencyJobs: number
  auditsPassed: number
  auditsFailed: number
  lastActiveHeight: number
  /** Fees paid by clients other than the worker itself: this epoch's, and the decayed total. */
  epochFees: bigint
  usage: bigint
  /** This epoch's gateway-measured latency, ms, and the jobs it covers. */
  epochLatencyMs: bigint
  epochLatencyJobs: number
  /** Rewards it may still receive: rewardCapBps of outside fees, less what was paid. */
  rewardRoom: bigint
}

export interface UnbondingEntry {
  amount: bigint
  completes: number
}

export interface Deposit {
  /** Spendable by settlements and by new jobs. */
  amount: bigint
  /** Asked back: still spendable by settlements until block time reaches `at`, then reclaimable. */
  unlocking: Array<{ amount: bigint; at: number }>
}

export interface JobSettlement {
  receiptId: Uint8Array
  height: number
  /** Which settle batch of that height, and the receipt's leaf in its Merkle tree. */
  batch: number
  leaf: number
  worker: string
  client: string
  gateway: string
  model: string
  fee: bigint
  /** Part of the fee kept by the protocol (the treasury). */
  share: bigint
  outputHash: Uint8Array
  /** The worker's declared provider, runtime, audit streak and bond when it settled. */
  ep: ExecutionProvider
  runtime: string
  streak: number
  bonded: bigint
  /** Height of the client's challenge (a forced audit), if any. */
  challenged: number | null
}

export interface SettleBatch {
  root: Uint8Array
  count: number
  /** The settled receipts' ids, in leaf order (enough to rebuild any inclusion proof). */
  receiptIds: Uint8Array[]
  /** Their jobs' ids, in the same order, for pruning (prune.ts); absent in batches written before it. */
  jobIds?: Uint8Array[]
  /** The latest deadline among those jobs (ms): once past it by the settle window, none can settle again. */
  lastDeadline?: number
}

export interface AuditRecord {
  auditor: string
  height: number
  receiptId: Uint8Array
  passed: boolean
}

export interface DisputeResolution {
  height: number
  majority: Uint8Array
  slashed: string[]
}

export interface DisputeRecord {
  audit: Receipt
  height: number
  /** The auditor's declared provider and runtime. */
  auditEp: ExecutionProvider
  auditRuntime: string
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

/** a + b, held at 2^64 - 1 (counters must not overflow the codec). */
export function addSaturating(a: bigint, b: bigint): bigint {
  const sum = a + b
  return sum > MAX_UINT64 ? MAX_UINT64 : sum
}

export function minBig(...values: bigint[]): bigint {
  return values.reduce((a, b) => (a < b ? a : b))
}

// ---- models --------------------------------------------------------------------------------

function decodeModel(raw: Record<string, unknown>): ModelRecord {
  return {
    ...(raw as unknown as ModelRecord),
    price: asUint64(raw.price, 'price'),
    ...(raw.promptPrice === undefined ? {} : { promptPrice: asUint64(raw.promptPrice, 'promptPrice') }),
    feesTotal: asUint64(raw.feesTotal, 'feesTotal'),
    deposit: asUint64(raw.deposit ?? 0, 'deposit'),
    status: (raw.status as ModelStatus | undefined) ?? 'active',
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

/** Every registered model (old versions, retired and bad ones included), in CID order. */
export function listModels(state: StateReader): ModelRecord[] {
  return MODELS.list(state)
    .sort()
    .map((cid) => modelByCid(state, cid))
    .filter((m): m is ModelRecord => m !== undefined)
}

export function writeModel(state: StateOverlay, model: ModelRecord): void {
  state.write(modelKey(model.cid), model)
}

// ---- workers -------------------------------------------------------------------------------

function decodeWorker(raw: Record<string, unknown>): WorkerRecord {
  return {
    bonded: asUint64(raw.bonded, 'bonded'),
    ep: raw.ep as ExecutionProvider,
    runtime: typeof raw.runtime === 'string' ? raw.runtime : '',
    streak: asSafeUint(raw.streak, 'streak'),
    quarantinedUntil: asSafeUint(raw.quarantinedUntil, 'quarantinedUntil'),
    slashes: asSafeUint(raw.slashes, 'slashes'),
    jobs: asSafeUint(raw.jobs, 'jobs'),
    latencyMsTotal: asUint64(raw.latencyMsTotal, 'latencyMsTotal'),
    latencyJobs: asSafeUint(raw.latencyJobs, 'latencyJobs'),
    auditsPassed: asSafeUint(raw.auditsPassed, 'auditsPassed'),
    auditsFailed: asSafeUint(raw.auditsFailed, 'auditsFailed'),
    lastActiveHeight: asSafeUint(raw.lastActiveHeight, 'lastActiveHeight'),
    epochFees: asUint64(raw.epochFees, 'epochFees'),
    usage: asUint64(raw.usage, 'usage'),
    epochLatencyMs: asUint64(raw.epochLatencyMs, 'epochLatencyMs'),
    epochLatencyJobs: asSafeUint(raw.epochLatencyJobs, 'epochLatencyJobs'),
    rewardRoom: asUint64(raw.rewardRoom, 'rewardRoom'),
  }
}

export function newWorker(ep: ExecutionProvider, runtime = ''): WorkerRecord {
  return {
    bonded: 0n,
    ep,
    runtime,
    streak: 0,
    quarantinedUntil: 0,
    slashes: 0,
    jobs: 0,
    latencyMsTotal: 0n,
    latencyJobs: 0,
    auditsPassed: 0,
    auditsFailed: 0,
    lastActiveHeight: 0,
    epochFees: 0n,
    usage: 0n,
    epochLatencyMs: 0n,
    epochLatencyJobs: 0,
    rewardRoom: 0n,
  }
}

export function workerRecord(state: StateReader, did: string): WorkerRecord | undefined {
  const raw = readState<Record<string, unknown>>(state, workerKey(did))
  return raw === undefined ? undefined : decodeWorker(raw)
}

export function writeWorker(state: StateOverlay, did: string, record: WorkerRecord): void {
  state.write(workerKey(did), record)
  WORKERS.add(state, did)
}

/** Every worker that ever bonded, in DID order (queries, the dashboard, epoch rewards). */
export function listWorkers(state: StateReader): Array<{ did: string } & WorkerRecord> {
  return WORKERS.list(state)
    .sort()
    .flatMap((did) => {
      const record = workerRecord(state, did)
      return record === undefined ? [] : [{ did, ...record }]
    })
}

/**
 * A worker may be given jobs and drawn for audits: bonded at least `minWorkerBond`, not
 * quarantined at `height`, and its runtime declared.
 */
export function isSchedulable(
  state: StateReader,
  did: string,
  height: number,
  params: Pick<InferenceParams, 'minWorkerBond'>,
): boolean {
  const record = workerRecord(state, did)
  return (
    record !== undefined &&
    record.bonded >= params.minWorkerBond &&
    record.quarantinedUntil <= height &&
    record.runtime !== ''
  )
}

/** The workers that declared they serve `cid`, in DID order. */
export function servingWorkers(state: StateReader, cid: string): string[] {
  return servingSet(cid).list(state).sort()
}

/** Height at which `did` declared it serves `cid` (undefined if it does not). */
export function servingSince(state: StateReader, cid: string, did: string): number | undefined {
  return readState<number>(state, sinceKey(cid, did))
}

export function workerUnbonding(state: StateReader, did: string): UnbondingEntry[] {
  const raw = readState<Array<Record<string, unknown>>>(state, unbKey(did)) ?? []
  return raw.map((e) => ({ amount: asUint64(e.amount, 'amount'), completes: asSafeUint(e.completes, 'completes') }))
}

export function writeUnbonding(state: StateOverlay, did: string, entries: UnbondingEntry[]): void {
  if (entries.length === 0) state.remove(unbKey(did))
  else state.write(unbKey(did), entries)
}

/** Tokens held by the protocol: fee shares, paid out to auditors. */
export function treasuryBalance(state: StateReader): bigint {
  return readAmount(state, TREASURY_KEY)
}

// ---- deposits ----------------------------------------------------------------------------------

export function depositOf(state: StateReader, client: string, gateway: string): Deposit {
  const raw = readState<Record<string, unknown>>(state, depositKey(client, gateway))
  if (raw === undefined) return { amount: 0n, unlocking: [] }
  const unlocking = (raw.unlocking as Array<Record<string, unknown>>).map((u) => ({
    amount: asUint64(u.amount, 'unlocking.amount'),
    at: asSafeUint(u.at, 'unlocking.at'),
  }))
  return { amount: asUint64(raw.amount, 'amount'), unlocking }
}

export function writeDeposit(state: StateOverlay, client: string, gateway: string, deposit: Deposit): void {
  if (deposit.amount === 0n && deposit.unlocking.length === 0) state.remove(depositKey(client, gateway))
  else state.write(depositKey(client, gateway), deposit)
}

/** What settlements can still draw on: the deposit and what is unlocking. */
export function depositTotal(deposit: Deposit): bigint {
  return deposit.unlocking.reduce((sum, u) => sum + u.amount, deposit.amount)
}

/** Height at which `gateway` last dispatched beyond a deposit, if ever. */
export function overdrawnAt(state: StateReader, gateway: string): number | undefined {
  return readState<number>(state, overdrawnKey(gateway))
}

// ---- block ids, settlements, batches, audits, disputes --------------------------------------

export function blockHashAt(state: StateReader, height: number): Uint8Array | undefined {
  return readState<Uint8Array>(state, blockHashKey(height))
}

export function settlementOf(state: StateReader, jobIdHex: string): JobSettlement | undefined {
  const raw = readState<Record<string, unknown>>(state, jobKey(jobIdHex))
  if (raw === undefined) return undefined
  return {
    ...(raw as unknown as JobSettlement),
    fee: asUint64(raw.fee, 'fee'),
    share: asUint64(raw.share, 'share'),
    bonded: asUint64(raw.bonded, 'bonded'),
  }
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
    audit: parseReceipt(raw.audit),
    height: raw.height as number,
    auditEp: raw.auditEp as ExecutionProvider,
    auditRuntime: raw.auditRuntime as string,
    resolved: (raw.resolved as DisputeResolution | null) ?? null,
  }
}
