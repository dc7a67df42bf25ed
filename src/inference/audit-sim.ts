/**
 * A seeded simulation of the market's audit loop (verification.md rules 2–4) built from the real
 * pieces: Ed25519 keys, signed jobs and receipts, ONNX Runtime running `models/digits-mlp.onnx` on
 * rows of the digits dataset, and the inference chain module executing `inference.settle`,
 * `inference.audit` and `inference.resolve` through a StateMachine, block after block.
 *
 * Only the clock, the network and the block hashes are simulated. Block b's hash is
 * sha256("donghae/audit-sim/<seed>" ‖ b): no worker can predict it when it answers. The gateway
 * (also the client, the settler and the auditor, as one node is) follows service.ts exactly:
 *  - jobs go to a worker drawn uniformly among the schedulable ones (state of the last block);
 *    the receipts served while block h is open are settled by one `inference.settle` in block h;
 *  - once block b + AUDIT_DELAY_BLOCKS is committed, `auditDecision` with its hash decides whether
 *    a receipt settled at b is re-run; the auditor is the first schedulable worker other than the
 *    original in the order sha256(seed ‖ did), seed = sha256(hash ‖ receipt id), workers on the
 *    original's execution provider first; `inference.audit` goes into the next block;
 *  - equal hashes → `inference.audit` (streak credit); different providers within the model's
 *    tolerance → nothing is submitted; otherwise `inference.audit` (a dispute) and a quorum of
 *    `quorumSize` more workers, drawn the same way from sha256(seed ‖ seed) (same provider
 *    first), re-runs the job, and `inference.resolve` follows in the same block;
 *  - 0.5% of client jobs are followed by a canary: a new job on the inputs of one of the last 64
 *    client jobs, sent to a worker other than the one that ran them (drawn the same way), whose
 *    answer the gateway computed itself; a wrong one forces the audit.
 * `auditorDraw: 'block'` seeds the auditor draw with the block hash alone (the earlier rule), to compare.
 *
 * Worker behaviours are those of service.ts: 'cheat' rotates the probability vector on a share of
 * jobs (audit re-runs included), 'lazy' never runs the model and returns random probabilities.
 * Provider 'fp16' emulates a second execution provider (CoreML computes in half precision): the
 * real CPU output rounded to float16, signed as 'coreml'. Receipts carry a fixed `computeMicros`
 * (the measured one would make receipt ids, hence audit draws, depend on the machine's load).
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { equals, toHex, utf8 } from '../core/bytes.ts'
import { sha256 } from '../core/hash.ts'
import { InvalidInputError } from '../core/errors.ts'
import { Ed25519KeyPair } from '../identity/keys.ts'
import { didFromEd25519PublicKey } from '../identity/did-key.ts'
import { DEFAULT_PARAMS, type ChainParams, type GenesisDoc } from '../chain/genesis.ts'
import { StateMachine, type ChainEvent } from '../chain/host.ts'
import { StateOverlay } from '../chain/state-view.ts'
import { SparseMerkleTree } from '../chain/state/smt.ts'
import { TxError } from '../chain/errors.ts'
import { decodeTx, encodeTx, signTx } from '../chain/tx.ts'
import { createRng, type Rng } from '../chain/sim/rng.ts'
import { CanaryPool, type CanaryDraw } from './canaries.ts'
import { bankModule, feeCollector } from '../bank/bank.ts'
import { stakingModule, validatorSetAt } from '../staking/staking.ts'
import { jobId, jobIdHex, receiptId, receiptValue, signJob, signReceipt, type Receipt, type SignedJob } from './job.ts'
import { auditDecision, inferenceModule, isSchedulable } from './module.ts'
import { DEMO_TOLERANCE, demoModels, readDigitsDataset, type DemoModel } from './demo-models.ts'
import { OnnxRuntime, RUNTIME_NAME } from './runtime.ts'
import { compareTensorMaps, createTensor, hashTensorMap, type TensorMap } from './tensor.ts'

/** service.ts: a receipt settled at b is judged by the hash of block b + 2. */
export const AUDIT_DELAY_BLOCKS = 2
/** Receipts settled per block unless told otherwise. */
export const DEFAULT_JOBS_PER_BLOCK = 16
/** Workers in a default run. */
export const DEFAULT_WORKERS = 8
/** service.ts: share of gateway jobs followed by a canary, parts per million. */
export const DEFAULT_CANARY_PPM = 5_000

const PRICE = 100n
const BOND = 100_000n
const T0 = 1_700_000_000_000
const BLOCK_MS = 1_000
const DEADLINE_MS = 30_000
const COMPUTE_MICROS = 60
const CHAIN_ID = 'donghae-audit-sim'

export type SimBehaviour = { kind: 'honest' } | { kind: 'cheat'; rate: number } | { kind: 'lazy' }
export type SimProvider = 'cpu' | 'fp16'

export interface SimWorkerSpec {
  /** @default honest */
  behaviour?: SimBehaviour
  /** @default 'cpu' */
  provider?: SimProvider
}

export interface AuditSimOptions {
  seed: number
  /** One entry per worker. @default DEFAULT_WORKERS honest CPU workers */
  workers?: readonly SimWorkerSpec[]
  /** Client jobs served (and settled) per block. @default DEFAULT_JOBS_PER_BLOCK */
  jobsPerBlock?: number
  /** Client jobs after which no more are sent (pending audits still run). */
  maxJobs: number
  /** End the run at the first slash of a dishonest worker. @default true */
  stopAtSlash?: boolean
  /** Chain parameters over DEFAULT_PARAMS (audit threshold, quorum size, ...). */
  params?: Partial<ChainParams>
  /** Share of client jobs followed by a canary, parts per million. @default DEFAULT_CANARY_PPM (2%) */
  canaryPpm?: number
  /**
   * What seeds the auditor and quorum draws: 'block' is service.ts (the decisive block's hash, so one
   * auditor for a whole settle batch); 'receipt' hashes the receipt id in too. @default 'block'
   */
  auditorDraw?: 'block' | 'receipt'
  /** Every chain event, as blocks commit (for tests and investigations). */
  onEvent?(event: ChainEvent, height: number): void
}

export interface AuditSimResult {
  seed: number
  /** Client jobs served (canaries not included). */
  jobs: number
  blocks: number
  /** Jobs (client jobs and canaries) served by dishonest workers until the block of the first slash of one. */
  dishonestJobs: number
  /** Whether a dishonest worker was slashed. */
  caught: boolean
  /** Re-runs by auditors and by quorum members, and canary runs (the gateway's own and the worker's). */
  auditRuns: number
  quorumRuns: number
  canaryRuns: number
  /** `inference.dispute` events, and those between two honest workers. */
  disputes: number
  honestDisputes: number
  /** `inference.slashed` events against honest workers (false positives). */
  honestSlashes: number
  /** Transactions the chain refused, by TxError reason (e.g. an auditor slashed earlier in the block). */
  refused: Record<string, number>
  /**
   * (audit + quorum runs) ÷ all runs (canaries included), over the whole run and over the client
   * jobs of its second half (each re-run counted with the job it re-runs); then the same with the
   * canary runs counted as extra too.
   */
  overhead: number
  overheadLastHalf: number
  overheadWithCanaries: number
  overheadWithCanariesLastHalf: number
  /** sha256 of every chain event in order, hex: equal digests, equal runs. */
  digest: string
}

interface SimWorker {
  key: Ed25519KeyPair
  did: string
  behaviour: SimBehaviour
  provider: SimProvider
  rng: Rng
}

interface Served {
  receipt: Receipt
  inputs: TensorMap
  outputs: TensorMap
  /** Index of the client job (a canary: the job it followed), for the overhead of the second half. */
  seq: number
  /** A canary's answer, computed by the gateway itself. */
  canaryHash?: Uint8Array
}

/** Extra runs, by kind and by the client job they belong to. */
type Extra = 'audit' | 'canary'

interface PendingTx {
  kind: string
  body: unknown
}

/** Everything a run keeps between blocks. */
interface Market {
  params: ChainParams
  machine: StateMachine
  state: StateOverlay
  gateway: Ed25519KeyPair
  validator: string
  workers: SimWorker[]
  rng: Rng
  seedBytes: Uint8Array
  nonce: bigint
  jobsPerBlock: number
  toSettle: Map<string, Served>
  /** service.ts's canary material (canaries.ts), drawn with the run's seeded stream. */
  canaries: CanaryPool
  awaiting: Array<Served & { height: number }>
  extra: Record<Extra, Map<number, number>>
  canaryPpm: number
  auditorDraw: 'block' | 'receipt'
  digest: ReturnType<typeof createHash>
  onEvent: AuditSimOptions['onEvent']
  stats: Omit<AuditSimResult, 'seed' | 'digest' | `overhead${string}`>
}

const seedKey = (seed: number, label: string): Ed25519KeyPair =>
  Ed25519KeyPair.fromSeed(sha256(utf8(`donghae/audit-sim/${seed}/${label}`)))

const isHonest = (w: SimWorker): boolean => w.behaviour.kind === 'honest'

/** Keys from the seed, so DIDs (and with them every draw) replay; each worker has its own random stream. */
function simWorkers(options: AuditSimOptions, rng: Rng): SimWorker[] {
  const specs: readonly SimWorkerSpec[] = options.workers ?? Array.from({ length: DEFAULT_WORKERS }, () => ({}))
  return specs.map((spec, i) => {
    const key = seedKey(options.seed, `worker/${i}`)
    const did = didFromEd25519PublicKey(key.publicKey)
    const behaviour = spec.behaviour ?? { kind: 'honest' }
    return { key, did, behaviour, provider: spec.provider ?? 'cpu', rng: rng.fork(did) }
  })
}

function emptyStats(): Market['stats'] {
  return {
    jobs: 0,
    blocks: 0,
    dishonestJobs: 0,
    caught: false,
    auditRuns: 0,
    quorumRuns: 0,
    canaryRuns: 0,
    disputes: 0,
    honestDisputes: 0,
    honestSlashes: 0,
    refused: {},
  }
}

/** The demo digits model, its dataset and an ONNX Runtime session, shared by every run. */
export class AuditSim {
  readonly #runtime: OnnxRuntime
  readonly #model: DemoModel
  readonly #rows: Float32Array[]

  private constructor(runtime: OnnxRuntime, model: DemoModel, rows: Float32Array[]) {
    this.#runtime = runtime
    this.#model = model
    this.#rows = rows
  }

  /** Loads models/digits-mlp.onnx (verified against its CID) and the digits dataset. */
  static async open(options: { signal?: AbortSignal } = {}): Promise<AuditSim> {
    const model = (await demoModels(options)).find((m) => m.name === 'digits-mlp')
    if (model === undefined) throw new InvalidInputError('models/ has no digits-mlp.onnx; run models/train-digits.ts')
    const runtime = new OnnxRuntime({ executionProvider: 'cpu' })
    await runtime.load(model.cid, new Uint8Array(await readFile(model.file, options)), options)
    const data = await readDigitsDataset(options)
    const rows = Array.from({ length: data.labels.length }, (_, r) =>
      data.features.slice(r * data.featureCount, (r + 1) * data.featureCount),
    )
    return new AuditSim(runtime, model, rows)
  }

  async close(): Promise<void> {
    await this.#runtime.close()
  }

  /** One seeded run of the market until a dishonest worker is slashed or `maxJobs` jobs were served. */
  async run(options: AuditSimOptions): Promise<AuditSimResult> {
    const m = this.#market(options)
    let height = 0
    const stopAtSlash = options.stopAtSlash ?? true
    const done = (): boolean => stopAtSlash && m.stats.caught
    while (m.stats.jobs < options.maxJobs && !done()) await this.#block(m, ++height, options.maxJobs)
    // the audits of the last receipts: their decisive blocks come after the last job
    for (let i = 0; i <= AUDIT_DELAY_BLOCKS && !done(); i++) await this.#block(m, ++height, 0)
    return result(m, options.seed)
  }

  #market(options: AuditSimOptions): Market {
    const params: ChainParams = { ...DEFAULT_PARAMS, ...options.params }
    const rng = createRng(options.seed)
    const canaryRng = rng.fork('canaries')
    const workers = simWorkers(options, rng)
    const gateway = seedKey(options.seed, 'gateway')
    const validator = didFromEd25519PublicKey(seedKey(options.seed, 'validator').publicKey)
    const machine = new StateMachine({
      chainId: CHAIN_ID,
      modules: [bankModule, stakingModule(params), inferenceModule(params)],
      fees: feeCollector,
      minFee: params.minFee,
    })
    const state = new StateOverlay(SparseMerkleTree.empty())
    machine.initGenesis(state, this.#genesis(params, didFromEd25519PublicKey(gateway.publicKey), validator, workers))
    return {
      params,
      machine,
      state,
      gateway,
      validator,
      workers,
      rng: rng.fork('jobs'),
      seedBytes: utf8(`donghae/audit-sim/${options.seed}`),
      nonce: 0n,
      jobsPerBlock: options.jobsPerBlock ?? DEFAULT_JOBS_PER_BLOCK,
      canaryPpm: options.canaryPpm ?? DEFAULT_CANARY_PPM,
      auditorDraw: options.auditorDraw ?? 'receipt',
      onEvent: options.onEvent,
      toSettle: new Map(),
      awaiting: [],
      extra: { audit: new Map(), canary: new Map() },
      canaries: new CanaryPool({ random: (n) => canaryRng.int(0, n - 1) }),
      digest: createHash('sha256'),
      stats: emptyStats(),
    }
  }

  #genesis(params: ChainParams, gateway: string, validator: string, workers: SimWorker[]): GenesisDoc {
    const { cid, name, version, kind, inputs, outputs, size } = this.#model
    return {
      chainId: CHAIN_ID,
      genesisTime: T0,
      params,
      accounts: [{ did: gateway, balance: 10n ** 15n }],
      validators: [{ did: validator, stake: 10_000n }],
      inference: {
        models: [
          { owner: gateway, cid, name, version, kind, inputs, outputs, size, price: PRICE, tolerance: DEMO_TOLERANCE },
        ],
        workers: workers.map((w) => ({ did: w.did, bond: BOND, ep: epOf(w) })),
      },
    }
  }

  /** Block `height`: the audits now due, the jobs served while it is open (≤ maxJobs in all), then commit. */
  async #block(m: Market, height: number, maxJobs: number): Promise<void> {
    const txs = await this.#auditDue(m, height)
    for (let i = 0; i < m.jobsPerBlock && m.stats.jobs < maxJobs; i++) if (!(await this.#serveJob(m, height))) break
    const receipts = [...m.toSettle.values()].map((s) => receiptValue(s.receipt))
    if (receipts.length > 0) txs.push({ kind: 'inference.settle', body: { receipts } })
    commit(m, height, txs)
  }

  // ---- jobs ------------------------------------------------------------------------------------

  /** One client job on a uniformly drawn schedulable worker, now and then a canary; false when none is schedulable. */
  async #serveJob(m: Market, height: number): Promise<boolean> {
    const row = m.rng.pick(this.#rows)
    const inputs: TensorMap = { input: createTensor('float32', [1, row.length], row) }
    const served = await this.#dispatch(m, height, inputs)
    if (served === undefined) return false
    m.stats.jobs++
    // service.ts `#rememberInputs` and `#maybeCanary`: a job with an answer the gateway computes
    // itself, on a recent client's inputs, sent to a worker other than the one that ran them
    m.canaries.remember(this.#model.cid, inputs, served.receipt.worker)
    if (m.rng.int(0, 999_999) >= m.canaryPpm) return true
    const from = m.canaries.draw(this.#model.cid) as CanaryDraw
    const known = await this.#runtime.run(this.#model.cid, from.inputs)
    const canary = await this.#dispatch(m, height, from.inputs, served.seq, from.ranBy)
    if (canary === undefined) return true
    canary.canaryHash = hashTensorMap(known.outputs)
    addExtra(m, 'canary', served.seq, 2)
    m.stats.canaryRuns += 2
    return true
  }

  /** A freshly signed job on `inputs`, run by a uniformly drawn schedulable worker and queued for settlement. */
  async #dispatch(
    m: Market,
    height: number,
    inputs: TensorMap,
    seq = m.stats.jobs,
    exclude?: string,
  ): Promise<Served | undefined> {
    const schedulable = m.workers.filter((w) => w.did !== exclude && isSchedulable(m.state, w.did, height, m.params))
    if (schedulable.length === 0) return undefined
    const worker = m.rng.pick(schedulable)
    const time = T0 + (height - 1) * BLOCK_MS + 1
    const job = signJob(m.gateway, {
      chainId: CHAIN_ID,
      model: this.#model.cid,
      inputsHash: hashTensorMap(inputs),
      maxFee: PRICE,
      deadline: time + DEADLINE_MS,
      salt: m.rng.bytes(16),
    })
    const served: Served = { ...(await this.#execute(worker, job, inputs, time)), inputs, seq }
    m.toSettle.set(jobIdHex(job), served)
    if (!isHonest(worker)) m.stats.dishonestJobs++
    return served
  }

  /** What service.ts's `execute` does for this worker's behaviour, signed. */
  async #execute(
    worker: SimWorker,
    job: SignedJob,
    inputs: TensorMap,
    time: number,
  ): Promise<{ receipt: Receipt; outputs: TensorMap }> {
    const outputs = await this.#outputs(worker, inputs)
    const receipt = signReceipt(worker.key, {
      job,
      outputHash: hashTensorMap(outputs),
      fee: PRICE,
      ep: epOf(worker),
      runtime: RUNTIME_NAME,
      startedAt: time,
      finishedAt: time + 1,
      computeMicros: COMPUTE_MICROS,
    })
    return { receipt, outputs }
  }

  async #outputs(worker: SimWorker, inputs: TensorMap): Promise<TensorMap> {
    const b = worker.behaviour
    if (b.kind === 'lazy') return randomProbabilities(worker.rng)
    const { outputs } = await this.#runtime.run(this.#model.cid, inputs)
    const produced = worker.provider === 'fp16' ? mapValues(outputs, toHalf) : outputs
    return b.kind === 'cheat' && worker.rng.chance(b.rate) ? mapValues(produced, rotate) : produced
  }

  // ---- audits ----------------------------------------------------------------------------------

  /** service.ts `#audit`: receipts whose decisive block (settled + AUDIT_DELAY_BLOCKS) is committed. */
  async #auditDue(m: Market, height: number): Promise<PendingTx[]> {
    const head = height - 1
    const due = m.awaiting.filter((item) => head >= item.height + AUDIT_DELAY_BLOCKS)
    m.awaiting = m.awaiting.filter((item) => head < item.height + AUDIT_DELAY_BLOCKS)
    const txs: PendingTx[] = []
    for (const item of due) {
      const later = blockHash(m, item.height + AUDIT_DELAY_BLOCKS)
      const id = receiptId(item.receipt)
      const canaryFailed = item.canaryHash !== undefined && !equals(item.canaryHash, item.receipt.outputHash)
      if (!canaryFailed && !auditDecision(m.state, id, item.receipt.worker, later, m.params)) continue
      const seed = m.auditorDraw === 'block' ? later : sha256(later, id)
      txs.push(...(await this.#reRun(m, item, seed, height)))
    }
    return txs
  }

  /** service.ts `#reRun`: the audit, and on a mismatch beyond tolerance the quorum. */
  async #reRun(m: Market, item: Served, seed: Uint8Array, height: number): Promise<PendingTx[]> {
    const original = item.receipt
    const auditor = drawWorkers(m, new Set([original.worker]), 1, seed, height, original.ep)[0]
    if (auditor === undefined) return []
    const time = T0 + (height - 1) * BLOCK_MS + 2
    const audit = await this.#execute(auditor, original.job, item.inputs, time)
    addExtra(m, 'audit', item.seq, 1)
    m.stats.auditRuns++
    const txs: PendingTx[] = [
      { kind: 'inference.audit', body: { original: receiptValue(original), audit: receiptValue(audit.receipt) } },
    ]
    if (equals(audit.receipt.outputHash, original.outputHash)) return txs
    const sameProvider = audit.receipt.ep === original.ep && audit.receipt.runtime === original.runtime
    if (!sameProvider && compareTensorMaps(item.outputs, audit.outputs, DEMO_TOLERANCE).ok) return []
    const exclude = new Set([original.worker, auditor.did])
    const members = drawWorkers(m, exclude, m.params.quorumSize, sha256(seed, seed), height, original.ep)
    if (members.length < m.params.quorumSize) return txs
    const quorum: Receipt[] = []
    for (const member of members) quorum.push((await this.#execute(member, original.job, item.inputs, time)).receipt)
    addExtra(m, 'audit', item.seq, members.length)
    m.stats.quorumRuns += members.length
    txs.push({ kind: 'inference.resolve', body: { jobId: jobId(original.job), quorum: quorum.map(receiptValue) } })
    return txs
  }
}

// ---- helpers --------------------------------------------------------------------------------------

const epOf = (w: SimWorker): 'cpu' | 'coreml' => (w.provider === 'fp16' ? 'coreml' : 'cpu')

/** sha256(seed label ‖ height, 4 bytes big-endian): a hash no worker can predict. */
function blockHash(m: Market, height: number): Uint8Array {
  const h = new Uint8Array(4)
  new DataView(h.buffer).setUint32(0, height)
  return sha256(m.seedBytes, h)
}

/**
 * service.ts `#drawWorkers`: n schedulable workers outside `exclude`, those on execution provider
 * `ep` first, then ordered by sha256(seed ‖ did).
 */
function drawWorkers(
  m: Market,
  exclude: ReadonlySet<string>,
  n: number,
  seed: Uint8Array,
  height: number,
  ep?: string,
): SimWorker[] {
  return m.workers
    .filter((w) => !exclude.has(w.did) && isSchedulable(m.state, w.did, height, m.params))
    .map((w) => ({ w, same: epOf(w) === ep ? 0 : 1, rank: toHex(sha256(seed, utf8(w.did))) }))
    .sort((a, b) => a.same - b.same || (a.rank < b.rank ? -1 : 1))
    .slice(0, n)
    .map((c) => c.w)
}

function addExtra(m: Market, kind: Extra, seq: number, runs: number): void {
  m.extra[kind].set(seq, (m.extra[kind].get(seq) ?? 0) + runs)
}

/** Applies block `height`: begin, the gateway's transactions in order, end; then reads its events. */
function commit(m: Market, height: number, txs: PendingTx[]): void {
  const info = {
    chainId: CHAIN_ID,
    height,
    time: T0 + height * BLOCK_MS,
    proposer: m.validator,
    validators: validatorSetAt(m.state, height, m.params),
    lastCommitSigners: null,
  }
  const events: ChainEvent[] = []
  const emit = (e: ChainEvent): void => void events.push(e)
  m.machine.beginBlock(m.state, { ...info, emit })
  for (const tx of txs) deliver(m, tx, info, emit)
  m.machine.endBlock(m.state, { ...info, emit })
  for (const e of events) observe(m, e, height)
  m.toSettle.clear()
  m.stats.blocks = height
}

function deliver(
  m: Market,
  tx: PendingTx,
  info: Omit<Parameters<StateMachine['deliver']>[2], 'txHash'>,
  emit: (e: ChainEvent) => void,
): void {
  const signed = signTx(m.gateway, { chainId: CHAIN_ID, nonce: m.nonce, fee: 1n, kind: tx.kind, body: tx.body })
  const encoded = encodeTx(signed)
  try {
    // A body that fails is included as failed: the nonce is used and the fee paid all the same.
    const result = m.machine.deliver(m.state, decodeTx(encoded), { ...info, txHash: sha256(encoded) }, emit)
    m.nonce++
    if (!result.ok) throw result.error
  } catch (err) {
    if (!(err instanceof TxError)) throw err
    const kind = `${tx.kind}:${err.reason}`
    m.stats.refused[kind] = (m.stats.refused[kind] ?? 0) + 1
  }
}

function observe(m: Market, e: ChainEvent, height: number): void {
  m.digest.update(JSON.stringify(e))
  m.onEvent?.(e, height)
  const worker = (did: string | undefined): SimWorker | undefined => m.workers.find((w) => w.did === did)
  if (e.type === 'inference.settled') {
    const served = m.toSettle.get(e.attributes.jobId ?? '')
    if (served !== undefined) m.awaiting.push({ ...served, height })
  } else if (e.type === 'inference.dispute') {
    m.stats.disputes++
    const sides = [worker(e.attributes.worker), worker(e.attributes.auditor)]
    if (sides.every((w) => w !== undefined && isHonest(w))) m.stats.honestDisputes++
  } else if (e.type === 'inference.slashed') {
    const w = worker(e.attributes.worker)
    if (w !== undefined && isHonest(w)) m.stats.honestSlashes++
    else if (w !== undefined) m.stats.caught = true
  }
}

/** Extra runs of `kind` for client jobs from `from` on. */
function extraSince(m: Market, kind: Extra, from: number): number {
  let runs = 0
  for (const [seq, n] of m.extra[kind]) if (seq >= from) runs += n
  return runs
}

/** Shares of extra compute over the jobs from `from` on: audits alone, then with canaries. */
function shares(m: Market, from: number): [number, number] {
  const audits = extraSince(m, 'audit', from)
  const canaries = extraSince(m, 'canary', from)
  const all = Math.max(1, m.stats.jobs - from + audits + canaries)
  return [audits / all, (audits + canaries) / all]
}

function result(m: Market, seed: number): AuditSimResult {
  const [overhead, overheadWithCanaries] = shares(m, 0)
  const [overheadLastHalf, overheadWithCanariesLastHalf] = shares(m, Math.floor(m.stats.jobs / 2))
  return {
    seed,
    ...m.stats,
    overhead,
    overheadLastHalf,
    overheadWithCanaries,
    overheadWithCanariesLastHalf,
    digest: m.digest.digest('hex'),
  }
}

// ---- outputs --------------------------------------------------------------------------------------

function mapValues(map: TensorMap, f: (values: Float32Array) => Float32Array): TensorMap {
  const out: TensorMap = {}
  for (const [name, t] of Object.entries(map)) {
    if (t.type !== 'float32') throw new InvalidInputError(`the digits model outputs float32, not ${t.type}`)
    out[name] = createTensor('float32', [...t.dims], f(t.data))
  }
  return out
}

/** service.ts `corrupt`: each output's values rotated by one position. */
function rotate(values: Float32Array): Float32Array {
  const out = new Float32Array(values.length)
  values.forEach((v, i) => (out[(i + 1) % values.length] = v))
  return out
}

/** Round to the nearest IEEE half (ties away from zero; subnormals kept): an fp16 provider's answer. */
function toHalf(values: Float32Array): Float32Array {
  return values.map((v) => {
    if (v === 0 || !Number.isFinite(v)) return v
    const exponent = Math.max(Math.floor(Math.log2(Math.abs(v))), -14)
    const step = 2 ** (exponent - 10)
    return Math.round(v / step) * step
  })
}

/** A lazy worker's answer: ten random numbers that sum to 1, shaped like the model's output. */
function randomProbabilities(rng: Rng): TensorMap {
  const raw = Array.from({ length: 10 }, () => rng.next())
  const sum = raw.reduce((a, b) => a + b, 0)
  return {
    probabilities: createTensor(
      'float32',
      [1, 10],
      Float32Array.from(raw, (v) => v / sum),
    ),
  }
}
