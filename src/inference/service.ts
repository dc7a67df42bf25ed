/**
 * The inference service of one node: worker, gateway, settler and auditor.
 *
 * - **Worker** (when the node serves models): loads every registered model whose weights it
 *   has or can fetch from peers (verified against the CID), calibrates each (seed 000), gossips
 *   slot adverts, and answers `/donghae/infer/2.0.0`: it checks the client's signed job (chain,
 *   deadline, price ≤ max fee, inputs hash, schema), runs ONNX Runtime and signs a receipt.
 * - **Gateway** (every node): turns an API request into a signed job (or takes the client's),
 *   picks the worker with the earliest expected completion among those offering a free slot,
 *   and on failure or timeout retries on another worker, so the client sees one answer. It checks
 *   the receipt (signatures, output hash) before returning it.
 * - **Settler**: batches receipts into `inference.settle` transactions signed by the node.
 * - **Auditor**: once a receipt is settled at height b, the hash of block b+2 decides whether it
 *   is re-run on another worker (verification.md rule 2); a mismatch is reported on chain and a
 *   quorum of fresh workers re-runs the job (`inference.resolve`), which slashes the loser.
 *   A small share of gateway jobs are canaries: jobs whose answer this node computed itself.
 */
import { randomBytes, randomInt } from 'node:crypto'
import { decode, encode } from '../core/codec.ts'
import { sha256 } from '../core/hash.ts'
import { equals, toHex } from '../core/bytes.ts'
import { describeError, InvalidInputError } from '../core/errors.ts'
import { silentLogger, type Logger } from '../core/logger.ts'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import { didFromEd25519PublicKey } from '../identity/did-key.ts'
import type { PeerTransport } from '../core/transport.ts'
import type { StateReader } from '../chain/state-view.ts'
import type { ChainParams } from '../chain/genesis.ts'
import { balanceOf } from '../bank/bank.ts'
import {
  jobId,
  jobIdHex,
  jobValue,
  parseReceipt,
  parseSignedJob,
  receiptId,
  receiptValue,
  signJob,
  signReceipt,
  verifyJob,
  verifyWorkerSignature,
  type ExecutionProvider,
  type Receipt,
  type SignedJob,
} from './job.ts'
import { InferenceError } from './errors.ts'
import { CanaryPool, type CanaryDraw } from './canaries.ts'
import { ADVERT_TOPIC, WorkerTable, advertValidator, decodeAdvert, signAdvert, type SlotAdvert } from './adverts.ts'
import type { BlobStore } from './blobs.ts'
import {
  checkAgainstSchema,
  compareTensorMaps,
  createTensor,
  decodeTensorMap,
  encodeTensorMap,
  hashTensorMap,
  type Tensor,
} from './tensor.ts'
import {
  auditDecision,
  isSchedulable,
  listModels,
  modelByCid,
  modelByName,
  settlementOf,
  type ModelRecord,
} from './module.ts'

/** Model lookups cached per committed height. */
const MODEL_CACHE_ENTRIES = 256
export const INFER_PROTOCOL = '/donghae/infer/2.0.0'

export type TensorMap = Record<string, Tensor>

/** What the service needs from an ONNX Runtime (see runtime.ts). */
export interface ModelRunner {
  readonly ep: ExecutionProvider
  readonly runtime: string
  load(cid: string, bytes: Uint8Array): Promise<void>
  has(cid: string): boolean
  /** `ep`: the provider the run actually used (a session may have fallen back to CPU). */
  run(cid: string, inputs: TensorMap): Promise<{ outputs: TensorMap; computeMicros: number; ep?: ExecutionProvider }>
  calibrate(cid: string, inputs: TensorMap, options: { durationMs: number }): Promise<{ jobsPerSecond: number }>
}

/** Gossip for slot adverts (the node's transport). */
export type AdvertBus = Pick<PeerTransport, 'publish' | 'subscribe'>

/**
 * Worker misbehaviour, for tests and demonstrations of the audit system only: 'cheat' returns
 * wrong outputs on a `rate` share of jobs; 'lazy' never runs the model and returns random outputs;
 * 'slow' answers correctly but only after `ms` (to be killed mid-job).
 */
export type WorkerBehaviour =
  { kind: 'honest' } | { kind: 'cheat'; rate: number } | { kind: 'lazy' } | { kind: 'slow'; ms: number }

export interface JobEvent {
  id: string
  model: string
  worker: string
  latencyMs: number
  ok: boolean
  fee: string
  role: 'gateway' | 'worker'
  error?: string
}

export interface InferenceServiceOptions {
  chainId: string
  /** The chain's parameters (quorum size, audit threshold, minimum worker bond). */
  params: ChainParams
  key: Ed25519KeyPair
  transport: PeerTransport
  adverts: AdvertBus
  /** The node's committed state and height. */
  state: () => StateReader
  height: () => number
  blockId: (height: number) => Promise<Uint8Array | undefined>
  /** Signs with the node key and submits (DonghaeNode.submitOwnTx). */
  submitTx: (kind: string, body: unknown) => Promise<{ hash: Uint8Array }>
  txHeight: (hash: Uint8Array) => Promise<number | undefined>
  blobs: BlobStore
  runner: ModelRunner
  /** Serve models to the network. @default true */
  worker?: boolean
  /** Jobs run at once. @default 2 */
  slots?: number
  behaviour?: WorkerBehaviour
  /** Share of gateway jobs followed by a canary, parts per million. @default 5 000 (0.5%) */
  canaryPpm?: number
  /** Re-run settled receipts when the chain says so. @default true */
  audits?: boolean
  /** Never run a gateway job on this node's own worker (benchmarks of the remote path). @default false */
  remoteOnly?: boolean
  logger?: Logger
  onJob?(event: JobEvent): void
  onAudit?(event: { result: 'pass' | 'fail' | 'dispute'; worker: string; jobId: string }): void
}

export interface InferRequest {
  /** Registered name or CID. */
  model: string
  inputs: TensorMap
  /** A job signed by the client; without it the node signs one and pays from its own account. */
  job?: SignedJob
  /** Most the node's own account pays (when it signs). @default the model's price */
  maxFee?: bigint
}

export interface InferResult {
  outputs: TensorMap
  receipt: Receipt
  worker: string
  gateway: string
  latencyMs: number
  attempts: number
}

interface Settled {
  receipt: Receipt
  inputs: TensorMap
  outputs: TensorMap
  /** The answer this node computed itself, when the job was a canary. */
  canaryHash?: Uint8Array
  /** Frees the client's reserved fee once the settlement is decided. */
  release?: () => void
}

interface SettleBatchInFlight {
  hash: Uint8Array
  items: Settled[]
  sentAt: number
}

const ATTEMPTS = 4
const JOB_TIMEOUT_MS = 8_000
const DEFAULT_DEADLINE_MS = 30_000
const SETTLE_BATCH = 64
const AUDIT_DELAY_BLOCKS = 2
const KEEP_FOR_AUDIT = 4_096
const MAX_QUEUE_PER_SLOT = 8
const SLOT_POLL_MS = 5
const ADVERT_COALESCE_MS = 100

export class InferenceService {
  readonly did: string
  readonly #o: InferenceServiceOptions
  readonly #log: Logger
  readonly #table: WorkerTable
  readonly #params: ChainParams
  readonly #slots: number
  readonly #behaviour: WorkerBehaviour
  readonly #served = new Map<string, { mjps: number }>()
  readonly #loading = new Set<string>()
  #running = 0
  readonly #waiting: Array<() => void> = []
  #seq = 0
  #advertTimer: NodeJS.Timeout | undefined
  #timers: NodeJS.Timeout[] = []
  #unsubscribe: (() => void) | undefined
  #stopped = false
  /** Jobs this gateway accepted, by id (replay protection until their deadline). */
  readonly #seenJobs = new Map<string, number>()
  /** Fees this gateway has committed per client but not yet seen settled. */
  readonly #reserved = new Map<string, bigint>()
  #toSettle: Settled[] = []
  readonly #inFlightSettle: SettleBatchInFlight[] = []
  readonly #awaitingAudit = new Map<string, Settled & { height: number }>()
  readonly #canaries = new CanaryPool()
  /** Model records read at one committed height (they change only in blocks), by `name:`/`cid:` key. */
  #models = { height: -1, records: new Map<string, ModelRecord | undefined>() }
  readonly #stats = { jobs: 0, failures: 0, audits: 0, auditsFailed: 0, canaries: 0, latencies: [] as number[] }

  constructor(options: InferenceServiceOptions) {
    this.#o = options
    this.did = didFromEd25519PublicKey(options.key.publicKey)
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:inference')
    this.#table = new WorkerTable()
    this.#params = options.params
    this.#slots = options.slots ?? 2
    this.#behaviour = options.behaviour ?? { kind: 'honest' }
  }

  get isWorker(): boolean {
    return this.#o.worker !== false
  }

  start(): void {
    this.#o.blobs.serve(this.#o.transport)
    if (this.isWorker)
      this.#o.transport.handle(INFER_PROTOCOL, (data, from) => this.#serve(data, from), { session: true })
    this.#unsubscribe = this.#o.adverts.subscribe(
      ADVERT_TOPIC,
      advertValidator({
        chainId: this.#o.chainId,
        table: this.#table,
        isBonded: (did) => isSchedulable(this.#o.state(), did, this.#o.height() + 1, this.#params),
      }),
    )
    // Periodic tasks never overlap: a run that is still going skips the next tick.
    const every = (ms: number, fn: () => Promise<void> | void): void => {
      let running = false
      const timer = setInterval(() => {
        if (running) return
        running = true
        void (async () => fn())()
          .catch((err: unknown) => this.#log.warn({ err: describeError(err) }, 'task failed'))
          .finally(() => (running = false))
      }, ms)
      timer.unref()
      this.#timers.push(timer)
    }
    if (this.isWorker) {
      every(1_000, () => this.#advertise())
      every(2_000, () => this.syncModels())
      every(5 * 60_000, () => this.#calibrateAll())
      void this.syncModels().catch((err: unknown) => this.#log.warn({ err: describeError(err) }, 'model sync failed'))
    }
    every(500, () => this.#settle())
    every(500, () => this.#followSettlements())
    if (this.#o.audits !== false) every(500, () => this.#audit())
  }

  async stop(): Promise<void> {
    this.#stopped = true
    for (const t of this.#timers) clearInterval(t)
    if (this.#advertTimer !== undefined) clearTimeout(this.#advertTimer)
    this.#timers = []
    this.#unsubscribe?.()
    // settle what was served, so workers are paid even across a restart of this gateway
    await this.#settle().catch(() => {})
  }

  // ---- models ---------------------------------------------------------------------------------

  /** Resolves a model name or CID against the on-chain registry. */
  resolveModel(nameOrCid: string): ModelRecord {
    const model = this.#model('name', nameOrCid) ?? this.#model('cid', nameOrCid)
    if (model === undefined)
      throw new InferenceError(
        'unknown-model',
        `unknown model ${JSON.stringify(nameOrCid)}; list them with GET /v1/models`,
      )
    return model
  }

  /**
   * A registry record by name or CID, decoded once per committed height: the job path looks its
   * model up several times per job, and decoding the record is a good part of a job's CPU.
   * Records are shared between callers and must not be changed.
   */
  #model(by: 'name' | 'cid', key: string): ModelRecord | undefined {
    const height = this.#o.height()
    if (this.#models.height !== height) this.#models = { height, records: new Map() }
    const cacheKey = `${by}:${key}`
    if (this.#models.records.has(cacheKey)) return this.#models.records.get(cacheKey)
    const state = this.#o.state()
    const model = by === 'name' ? modelByName(state, key) : modelByCid(state, key)
    // bounded: unknown names asked for by clients are cached too
    if (this.#models.records.size < MODEL_CACHE_ENTRIES) this.#models.records.set(cacheKey, model)
    return model
  }

  models(): Array<ModelRecord & { workers: number; servedHere: boolean }> {
    return listModels(this.#o.state()).map((m) => ({
      ...m,
      workers: this.#table.serving(m.cid).length,
      servedHere: this.#served.has(m.cid),
    }))
  }

  /** Workers heard from recently, with their advertised capacity. */
  liveWorkers(): SlotAdvert[] {
    return this.#table.live()
  }

  /**
   * A blob (a text model's tokenizer, say) from this node's store, or else fetched and verified
   * from the peers serving `model`, then any connected peer.
   */
  async blob(cid: string, model: string): Promise<Uint8Array> {
    const have = await this.#o.blobs.get(cid)
    if (have !== undefined) return have
    const serving = this.#table.serving(model).filter((p) => p !== this.did)
    const others = this.#o.transport.peers().filter((p) => p !== this.did && !serving.includes(p))
    return this.#o.blobs.fetch(cid, [...serving, ...others], this.#o.transport)
  }

  /** Loads every registered model whose weights are here or on a peer that serves it. */
  async syncModels(): Promise<void> {
    if (this.#stopped) return
    for (const model of listModels(this.#o.state())) {
      if (this.#served.has(model.cid) || this.#loading.has(model.cid)) continue
      this.#loading.add(model.cid)
      try {
        let bytes = await this.#o.blobs.get(model.cid)
        if (bytes === undefined) {
          const peers = this.#table.serving(model.cid).filter((p) => p !== this.did)
          if (peers.length === 0) continue
          bytes = await this.#o.blobs.fetch(model.cid, peers, this.#o.transport)
        }
        await this.#o.runner.load(model.cid, bytes)
        // A text model's tokenizer travels with its weights, so every node serving it can hand it
        // on; fetched on the side, serving the model does not wait for it.
        if (model.codec !== undefined)
          void this.blob(model.codec, model.cid).catch((err: unknown) =>
            this.#log.warn({ model: model.name, err: describeError(err) }, 'tokenizer not fetched yet'),
          )
        const { jobsPerSecond } = await this.#calibrate(model)
        this.#served.set(model.cid, { mjps: Math.max(1, Math.round(jobsPerSecond * 1000)) })
        this.#log.info({ model: model.name, cid: model.cid, jobsPerSecond: Math.round(jobsPerSecond) }, 'serving model')
        void this.#advertise()
      } catch (err) {
        this.#log.warn({ model: model.name, err: describeError(err) }, 'cannot serve model yet')
      } finally {
        this.#loading.delete(model.cid)
      }
    }
  }

  async #calibrate(model: ModelRecord): Promise<{ jobsPerSecond: number }> {
    const inputs = sampleInputs(model)
    return this.#o.runner.calibrate(model.cid, inputs, { durationMs: 200 })
  }

  async #calibrateAll(): Promise<void> {
    const state = this.#o.state()
    for (const cid of [...this.#served.keys()]) {
      const model = modelByCid(state, cid)
      if (model === undefined) continue
      const { jobsPerSecond } = await this.#calibrate(model)
      this.#served.set(cid, { mjps: Math.max(1, Math.round(jobsPerSecond * 1000)) })
    }
  }

  #capacity(): Omit<SlotAdvert, 'worker'> {
    return {
      ep: this.#o.runner.ep,
      runtime: this.#o.runner.runtime,
      models: [...this.#served].map(([cid, s]) => ({ cid, mjps: s.mjps })),
      free: Math.max(0, this.#slots - this.#running),
      queue: this.#waiting.length,
      seq: ++this.#seq,
      time: Date.now(),
    }
  }

  /** Signs and gossips the current capacity (every second, and shortly after it changes). */
  #advertise(): void {
    if (this.#stopped || this.#served.size === 0) return
    if (!isSchedulable(this.#o.state(), this.did, this.#o.height() + 1, this.#params)) return
    const bytes = signAdvert(this.#o.key, { ...this.#capacity(), chainId: this.#o.chainId })
    this.#table.update(decodeAdvert(bytes))
    this.#o.adverts.publish(ADVERT_TOPIC, bytes)
  }

  /**
   * A job started or ended: this gateway's own table learns it at once; the network hears it in
   * one advert per ADVERT_COALESCE_MS at most (each advert costs every node two signature checks).
   */
  #capacityChanged(): void {
    if (this.#stopped || this.#served.size === 0) return
    this.#table.update({ ...this.#capacity(), worker: this.did })
    if (this.#advertTimer !== undefined) return
    this.#advertTimer = setTimeout(() => {
      this.#advertTimer = undefined
      this.#advertise()
    }, ADVERT_COALESCE_MS)
    this.#advertTimer.unref()
  }

  // ---- worker ---------------------------------------------------------------------------------

  async #serve(data: Uint8Array, from: string): Promise<Uint8Array> {
    let request: { job: SignedJob; inputs: TensorMap; audit: boolean }
    try {
      const raw = decode(data, { maxBytes: 16 * 1024 * 1024 }) as Record<string, unknown>
      if (!(raw.inputs instanceof Uint8Array)) throw new InvalidInputError('inputs must be bytes')
      request = { job: parseSignedJob(raw.job), inputs: decodeTensorMap(raw.inputs), audit: raw.audit === true }
    } catch (err) {
      this.#o.transport.penalize(from, `malformed infer request: ${describeError(err)}`)
      return encode({ error: { reason: 'bad-job', message: describeError(err) } })
    }
    try {
      const { receipt, outputs } = await this.execute(request.job, request.inputs, { audit: request.audit })
      return encode({ receipt: receiptValue(receipt), outputs: encodeTensorMap(outputs) })
    } catch (err) {
      const reason = err instanceof InferenceError ? err.reason : 'failed'
      return encode({ error: { reason, message: describeError(err) } })
    }
  }

  /** Runs a signed job on this node's runtime and signs the receipt (the worker's whole job). */
  async execute(
    job: SignedJob,
    inputs: TensorMap,
    options: { audit?: boolean } = {},
  ): Promise<{ receipt: Receipt; outputs: TensorMap }> {
    if (!verifyJob(job)) throw new InferenceError('bad-job', 'the job signature does not verify for its client')
    if (job.chainId !== this.#o.chainId) throw new InferenceError('bad-job', `the job is for chain ${job.chainId}`)
    if (options.audit !== true && job.deadline < Date.now())
      throw new InferenceError('expired', 'the job deadline has passed')
    const model = this.#model('cid', job.model)
    if (model === undefined) throw new InferenceError('unknown-model', `model ${job.model} is not registered`)
    if (!this.#served.has(model.cid)) throw new InferenceError('busy', `this worker does not serve ${model.name}`)
    if (model.price > job.maxFee)
      throw new InferenceError('fee-too-low', `the job offers ${job.maxFee}, the model costs ${model.price}`)
    try {
      checkAgainstSchema(inputs, model.inputs)
    } catch (err) {
      throw new InferenceError('bad-input', describeError(err), { cause: err })
    }
    if (toHex(hashTensorMap(inputs)) !== toHex(job.inputsHash))
      throw new InferenceError('bad-job', 'the inputs do not match the job’s inputs hash')
    if (this.#waiting.length >= this.#slots * MAX_QUEUE_PER_SLOT)
      throw new InferenceError('busy', 'the worker queue is full')
    await this.#acquire()
    const startedAt = Date.now()
    try {
      let outputs: TensorMap
      let computeMicros: number
      let ep: ExecutionProvider = this.#o.runner.ep
      if (this.#behaviour.kind === 'lazy') {
        outputs = randomOutputs(model, inputs)
        computeMicros = 10
      } else {
        const ran = await this.#runLoaded(model.cid, inputs)
        ;({ outputs, computeMicros } = ran)
        ep = ran.ep ?? ep
        if (this.#behaviour.kind === 'slow') await sleep(this.#behaviour.ms)
        if (this.#behaviour.kind === 'cheat' && Math.random() < this.#behaviour.rate) outputs = corrupt(outputs)
      }
      const receipt = signReceipt(this.#o.key, {
        job,
        outputHash: hashTensorMap(outputs),
        fee: model.price,
        ep,
        runtime: this.#o.runner.runtime,
        startedAt,
        finishedAt: Date.now(),
        computeMicros: Math.round(computeMicros),
      })
      this.#o.onJob?.({
        id: jobIdHex(job),
        model: model.name,
        worker: this.did,
        latencyMs: Date.now() - startedAt,
        ok: true,
        fee: model.price.toString(),
        role: 'worker',
      })
      return { receipt, outputs }
    } finally {
      this.#release()
    }
  }

  /** Runs a served model; a session the runtime evicted (LRU) is loaded again from the blob store. */
  async #runLoaded(
    cid: string,
    inputs: TensorMap,
  ): Promise<{ outputs: TensorMap; computeMicros: number; ep?: ExecutionProvider }> {
    if (!this.#o.runner.has(cid)) {
      const bytes = await this.#o.blobs.get(cid)
      if (bytes === undefined) {
        this.#served.delete(cid)
        throw new InferenceError('busy', `this worker no longer has model ${cid}`)
      }
      await this.#o.runner.load(cid, bytes)
    }
    return this.#o.runner.run(cid, inputs)
  }

  #acquire(): Promise<void> {
    if (this.#running < this.#slots) {
      this.#running++
      this.#capacityChanged()
      return Promise.resolve()
    }
    return new Promise((resolve) => this.#waiting.push(resolve))
  }

  #release(): void {
    const next = this.#waiting.shift()
    if (next !== undefined) next()
    else this.#running--
    this.#capacityChanged()
  }

  // ---- gateway --------------------------------------------------------------------------------

  /**
   * Runs a request on the network and returns outputs with a verified receipt. Throws
   * InferenceError: 4xx reasons for the caller's mistakes (nothing is charged), 'no-worker' or
   * 'failed' when no worker could answer after retries.
   */
  async infer(request: InferRequest): Promise<InferResult> {
    const started = performance.now()
    const model = this.resolveModel(request.model)
    try {
      checkAgainstSchema(request.inputs, model.inputs)
    } catch (err) {
      throw new InferenceError('bad-input', describeError(err), { cause: err })
    }
    const inputsHash = hashTensorMap(request.inputs)
    let job: SignedJob
    if (request.job === undefined) {
      const maxFee = request.maxFee ?? model.price
      if (maxFee < model.price)
        throw new InferenceError('fee-too-low', `max fee ${maxFee} is below the model's price ${model.price}`)
      job = signJob(this.#o.key, {
        chainId: this.#o.chainId,
        model: model.cid,
        inputsHash,
        maxFee,
        deadline: Date.now() + DEFAULT_DEADLINE_MS,
        salt: randomBytes(16),
      })
    } else {
      job = request.job
      if (!verifyJob(job)) throw new InferenceError('bad-job', 'the job signature does not verify for its client')
      if (job.chainId !== this.#o.chainId)
        throw new InferenceError('bad-job', `the job is for chain ${job.chainId}, not ${this.#o.chainId}`)
      if (job.model !== model.cid) throw new InferenceError('bad-job', `the job names model ${job.model}`)
      if (toHex(job.inputsHash) !== toHex(inputsHash))
        throw new InferenceError('bad-job', 'the inputs do not match the job’s inputs hash')
      if (job.maxFee < model.price)
        throw new InferenceError('fee-too-low', `the job offers ${job.maxFee}, the model costs ${model.price}`)
    }
    if (job.deadline < Date.now()) throw new InferenceError('expired', 'the job deadline has passed')
    const id = jobIdHex(job)
    this.#forgetOldJobs()
    if (this.#seenJobs.has(id) || settlementOf(this.#o.state(), id) !== undefined)
      throw new InferenceError('replayed', `job ${id.slice(0, 16)}… was already submitted`)
    const reserved = this.#reserved.get(job.client) ?? 0n
    const balance = balanceOf(this.#o.state(), job.client)
    if (balance < reserved + model.price)
      throw new InferenceError(
        'insufficient-balance',
        `account ${job.client} has ${balance - reserved} available, the model costs ${model.price}`,
      )
    this.#seenJobs.set(id, job.deadline)
    this.#reserved.set(job.client, reserved + model.price)
    let reservationHeld = true
    const release = (): void => {
      if (!reservationHeld) return
      reservationHeld = false
      const left = (this.#reserved.get(job.client) ?? 0n) - model.price
      if (left > 0n) this.#reserved.set(job.client, left)
      else this.#reserved.delete(job.client)
    }
    try {
      const { receipt, outputs, attempts } = await this.#dispatch(model, job, request.inputs, new Set())
      // the reservation now lasts until the settlement is decided (see #followSettlements)
      this.#toSettle.push({ receipt, inputs: request.inputs, outputs, release })
      const latencyMs = performance.now() - started
      this.#stats.jobs++
      this.#stats.latencies.push(latencyMs)
      if (this.#stats.latencies.length > 10_000) this.#stats.latencies.splice(0, 5_000)
      this.#o.onJob?.({
        id,
        model: model.name,
        worker: receipt.worker,
        latencyMs,
        ok: true,
        fee: receipt.fee.toString(),
        role: 'gateway',
      })
      this.#canaries.remember(model.cid, request.inputs, receipt.worker)
      if (request.job === undefined) this.#maybeCanary(model)
      return { outputs, receipt, worker: receipt.worker, gateway: this.did, latencyMs, attempts }
    } catch (err) {
      release()
      this.#seenJobs.delete(id)
      this.#stats.failures++
      this.#o.onJob?.({
        id,
        model: model.name,
        worker: '',
        latencyMs: performance.now() - started,
        ok: false,
        fee: '0',
        role: 'gateway',
        error: describeError(err),
      })
      throw err
    }
  }

  #forgetOldJobs(): void {
    if (this.#seenJobs.size < 10_000) return
    const now = Date.now()
    for (const [id, deadline] of this.#seenJobs) if (deadline < now) this.#seenJobs.delete(id)
  }

  /** Sends the job to the best worker, retrying elsewhere on failure; verifies what comes back. */
  async #dispatch(
    model: ModelRecord,
    job: SignedJob,
    inputs: TensorMap,
    exclude: Set<string>,
    options: { audit?: boolean; only?: string } = {},
  ): Promise<{ receipt: Receipt; outputs: TensorMap; attempts: number }> {
    const errors: string[] = []
    if (this.#o.remoteOnly === true) exclude.add(this.did)
    // Waiting for a free slot is not an attempt; it ends at the job's deadline (or the timeout).
    const waitUntil = Math.min(job.deadline, Date.now() + JOB_TIMEOUT_MS)
    const failed = new Set<string>()
    let retriedFailed = false
    let attempt = 0
    while (attempt < ATTEMPTS) {
      const state = this.#o.state()
      const height = this.#o.height() + 1
      const choice =
        options.only !== undefined
          ? { worker: options.only, expectedMs: 0 }
          : this.#table.pick(model.cid, exclude, (w) => isSchedulable(state, w, height, this.#params))
      if (choice === undefined) {
        const serving = this.#table.serving(model.cid).filter((w) => !exclude.has(w))
        if (serving.length === 0) {
          if (errors.length === 0)
            throw new InferenceError('no-worker', `no worker serves ${model.name} right now; try again shortly`)
          if (failed.size === 0) break
          // every other worker is gone: those that failed (a closed stream, a restart) get one
          // more chance once their cool-down ends
          for (const w of failed) exclude.delete(w)
          failed.clear()
          retriedFailed = true
          continue
        }
        // every worker that serves it is busy: wait for a slot to free up
        if (Date.now() >= waitUntil) break
        await sleep(SLOT_POLL_MS)
        continue
      }
      attempt++
      const worker = choice.worker
      this.#table.assigned(worker)
      const sent = performance.now()
      try {
        const answer = await this.#runOn(worker, model, job, inputs, options.audit === true)
        const rtt = performance.now() - sent - answer.receipt.computeMicros / 1000
        this.#table.finished(worker, { ok: true, rttMs: rtt })
        return { ...answer, attempts: attempt }
      } catch (err) {
        this.#table.finished(worker, { ok: false })
        errors.push(`${worker.slice(-8)}: ${describeError(err)}`)
        if (err instanceof InferenceError && ['bad-input', 'bad-job', 'expired', 'fee-too-low'].includes(err.reason))
          throw err
        this.#log.info({ worker, attempt, err: describeError(err) }, 'worker failed; retrying on another')
        exclude.add(worker)
        if (!retriedFailed) failed.add(worker)
        if (options.only !== undefined) break
      }
    }
    throw new InferenceError(
      errors.length === 0 ? 'busy' : 'failed',
      errors.length === 0
        ? `every worker serving ${model.name} stayed busy for ${JOB_TIMEOUT_MS / 1000} s; try again later`
        : `no worker completed the job after ${errors.length} attempt(s): ${errors.join('; ')}`,
    )
  }

  async #runOn(
    worker: string,
    model: ModelRecord,
    job: SignedJob,
    inputs: TensorMap,
    audit: boolean,
  ): Promise<{ receipt: Receipt; outputs: TensorMap }> {
    let receipt: Receipt
    let outputs: TensorMap
    if (worker === this.did) {
      ;({ receipt, outputs } = await this.execute(job, inputs, { audit }))
    } else {
      const request = encode({ job: jobValue(job), inputs: encodeTensorMap(inputs), audit })
      const bytes = await this.#o.transport.request(worker, INFER_PROTOCOL, request, {
        signal: AbortSignal.timeout(JOB_TIMEOUT_MS),
        session: true,
      })
      const answer = decode(bytes, { maxBytes: 16 * 1024 * 1024 }) as Record<string, unknown>
      if (answer.error !== undefined) {
        const e = answer.error as { reason?: string; message?: string }
        throw new InferenceError(
          (e.reason as InferenceError['reason'] | undefined) ?? 'failed',
          `worker ${worker.slice(-8)}: ${e.message ?? 'failed'}`,
        )
      }
      if (!(answer.outputs instanceof Uint8Array)) throw new InferenceError('failed', 'worker sent no outputs')
      receipt = parseReceipt(answer.receipt)
      outputs = decodeTensorMap(answer.outputs)
    }
    if (receipt.worker !== worker) throw new InferenceError('failed', 'the receipt is signed by another worker')
    // The job was signed here or verified on arrival: a receipt that carries it unchanged (same
    // fields, same signature) needs only the worker's signature checked.
    if (toHex(jobId(receipt.job)) !== toHex(jobId(job)) || !equals(receipt.job.signature, job.signature))
      throw new InferenceError('failed', 'the receipt is for another job')
    if (!verifyWorkerSignature(receipt)) throw new InferenceError('failed', 'the receipt signature does not verify')
    if (toHex(hashTensorMap(outputs)) !== toHex(receipt.outputHash))
      throw new InferenceError('failed', 'the outputs do not match the receipt’s output hash')
    if (receipt.fee !== model.price) throw new InferenceError('failed', 'the receipt charges another fee')
    try {
      checkAgainstSchema(outputs, model.outputs)
    } catch (err) {
      throw new InferenceError('failed', `worker outputs do not fit the model: ${describeError(err)}`)
    }
    return { receipt, outputs }
  }

  /**
   * After a gateway job, now and then, a canary: a job with an answer this node computes itself.
   * It is made of a recent client's inputs and goes to a worker that has not seen them (see
   * canaries.ts).
   */
  #maybeCanary(model: ModelRecord): void {
    const ppm = this.#o.canaryPpm ?? 5_000
    if (ppm <= 0 || !this.#served.has(model.cid) || randomInt(1_000_000) >= ppm) return
    const from = this.#canaries.draw(model.cid)
    if (from === undefined) return
    void this.#canary(model, from).catch((err: unknown) =>
      this.#log.debug({ err: describeError(err) }, 'canary not run'),
    )
  }

  async #canary(model: ModelRecord, from: CanaryDraw): Promise<void> {
    const { inputs } = from
    const exclude = new Set([this.did, from.ranBy])
    if (this.#table.serving(model.cid).every((w) => exclude.has(w))) return
    const job = signJob(this.#o.key, {
      chainId: this.#o.chainId,
      model: model.cid,
      inputsHash: hashTensorMap(inputs),
      maxFee: model.price,
      deadline: Date.now() + DEFAULT_DEADLINE_MS,
      salt: randomBytes(16),
    })
    if (balanceOf(this.#o.state(), this.did) < model.price * 2n) return
    const known = await this.#runLoaded(model.cid, inputs)
    const { receipt, outputs } = await this.#dispatch(model, job, inputs, exclude)
    this.#stats.canaries++
    this.#toSettle.push({ receipt, inputs, outputs, canaryHash: hashTensorMap(known.outputs) })
  }

  // ---- settlement ------------------------------------------------------------------------------

  async #settle(): Promise<void> {
    while (this.#toSettle.length > 0) {
      const items = this.#toSettle.splice(0, Math.min(SETTLE_BATCH, this.#params.maxReceiptsPerSettle))
      try {
        const { hash } = await this.#o.submitTx('inference.settle', {
          receipts: items.map((i) => receiptValue(i.receipt)),
        })
        this.#inFlightSettle.push({ hash, items, sentAt: Date.now() })
      } catch (err) {
        this.#log.warn({ err: describeError(err), receipts: items.length }, 'settlement not submitted; will retry')
        this.#toSettle.unshift(...items)
        return
      }
    }
  }

  async #followSettlements(): Promise<void> {
    const state = this.#o.state()
    for (let i = this.#inFlightSettle.length - 1; i >= 0; i--) {
      const batch = this.#inFlightSettle[i] as SettleBatchInFlight
      const height = await this.#o.txHeight(batch.hash)
      const timedOut = Date.now() - batch.sentAt > 60_000
      if (height === undefined && !timedOut) continue
      this.#inFlightSettle.splice(i, 1)
      for (const item of batch.items) {
        item.release?.()
        const id = jobIdHex(item.receipt.job)
        const settled = settlementOf(state, id)
        if (settled === undefined) {
          if (timedOut) this.#log.warn({ job: id }, 'receipt never settled')
          continue
        }
        if (this.#o.audits === false) continue
        if (this.#awaitingAudit.size >= KEEP_FOR_AUDIT) continue
        this.#awaitingAudit.set(id, { ...item, height: settled.height })
      }
    }
  }

  // ---- audits -----------------------------------------------------------------------------------

  async #audit(): Promise<void> {
    const head = this.#o.height()
    for (const [id, item] of [...this.#awaitingAudit]) {
      if (head < item.height + AUDIT_DELAY_BLOCKS) continue
      this.#awaitingAudit.delete(id)
      const later = await this.#o.blockId(item.height + AUDIT_DELAY_BLOCKS)
      if (later === undefined) continue
      const state = this.#o.state()
      const canaryFailed = item.canaryHash !== undefined && toHex(item.canaryHash) !== toHex(item.receipt.outputHash)
      const chosen =
        canaryFailed || auditDecision(state, receiptId(item.receipt), item.receipt.worker, later, this.#params)
      if (!chosen) continue
      await this.#reRun(id, item, later).catch((err: unknown) =>
        this.#log.info({ job: id, err: describeError(err) }, 'audit could not run'),
      )
    }
  }

  async #reRun(id: string, item: Settled, later: Uint8Array): Promise<void> {
    const model = this.#model('cid', item.receipt.job.model)
    if (model === undefined) return
    const original = item.receipt
    // Drawn per receipt from the later block's hash, so one worker does not audit a whole batch;
    // a worker on the original's execution provider is preferred (exact comparison possible).
    const seed = sha256(later, receiptId(original))
    const auditor = this.#drawWorkers(model.cid, new Set([original.worker]), 1, seed, original.ep)[0]
    if (auditor === undefined) return
    const { receipt: audit, outputs } = await this.#dispatch(model, original.job, item.inputs, new Set(), {
      audit: true,
      only: auditor,
    })
    this.#stats.audits++
    const same = toHex(audit.outputHash) === toHex(original.outputHash)
    const sameProvider = audit.ep === original.ep && audit.runtime === original.runtime
    if (same) {
      await this.#o.submitTx('inference.audit', { original: receiptValue(original), audit: receiptValue(audit) })
      this.#o.onAudit?.({ result: 'pass', worker: original.worker, jobId: id })
      return
    }
    if (!sameProvider && compareTensorMaps(item.outputs, outputs, model.tolerance).ok) {
      // Honest providers differ in the last bits: nothing for the chain (it compares exactly).
      this.#o.onAudit?.({ result: 'pass', worker: original.worker, jobId: id })
      return
    }
    await this.#o.submitTx('inference.audit', { original: receiptValue(original), audit: receiptValue(audit) })
    this.#stats.auditsFailed++
    this.#o.onAudit?.({ result: 'dispute', worker: original.worker, jobId: id })
    this.#log.warn({ job: id, worker: original.worker, auditor }, 'audit mismatch: asking a quorum')
    const quorumSize = this.#params.quorumSize
    const members = this.#drawWorkers(
      model.cid,
      new Set([original.worker, auditor]),
      quorumSize,
      sha256(seed, seed),
      original.ep,
    )
    if (members.length < quorumSize) {
      this.#log.warn({ job: id, have: members.length, need: quorumSize }, 'not enough workers for a quorum')
      return
    }
    const quorum = await Promise.all(
      members.map(async (w) => {
        const r = await this.#dispatch(model, original.job, item.inputs, new Set(), { audit: true, only: w })
        return receiptValue(r.receipt)
      }),
    )
    await this.#o.submitTx('inference.resolve', { jobId: jobId(original.job), quorum })
    this.#o.onAudit?.({ result: 'fail', worker: original.worker, jobId: id })
  }

  /**
   * `n` distinct schedulable workers serving `cid`, outside `exclude`, in an order drawn from
   * `seed`; those advertising execution provider `ep` come first.
   */
  #drawWorkers(cid: string, exclude: ReadonlySet<string>, n: number, seed: Uint8Array, ep?: string): string[] {
    const state = this.#o.state()
    const height = this.#o.height() + 1
    const eps = new Map(this.#table.live().map((a) => [a.worker, a.ep]))
    const candidates = this.#table
      .serving(cid)
      .filter((w) => !exclude.has(w) && isSchedulable(state, w, height, this.#params))
      .map((w) => ({ w, same: eps.get(w) === ep ? 0 : 1, rank: toHex(sha256(seed, new TextEncoder().encode(w))) }))
      .sort((a, b) => a.same - b.same || (a.rank < b.rank ? -1 : 1))
    return candidates.slice(0, n).map((c) => c.w)
  }

  /** Counters for the API and dashboard. */
  stats(): {
    jobs: number
    failures: number
    audits: number
    auditsFailed: number
    canaries: number
    latencyMs: { p50: number; p99: number }
    pendingSettlement: number
    worker: { running: number; queued: number }
  } {
    const sorted = [...this.#stats.latencies].sort((a, b) => a - b)
    const q = (p: number): number => (sorted.length === 0 ? 0 : (sorted[Math.floor((sorted.length - 1) * p)] ?? 0))
    return {
      jobs: this.#stats.jobs,
      failures: this.#stats.failures,
      audits: this.#stats.audits,
      auditsFailed: this.#stats.auditsFailed,
      canaries: this.#stats.canaries,
      latencyMs: { p50: q(0.5), p99: q(0.99) },
      pendingSettlement: this.#toSettle.length + this.#inFlightSettle.reduce((n, b) => n + b.items.length, 0),
      worker: { running: this.#running, queued: this.#waiting.length },
    }
  }
}

/** A deterministic input that fits the model's schema (batch 1), for calibration. */
export function sampleInputs(model: Pick<ModelRecord, 'inputs'>): TensorMap {
  const map: TensorMap = {}
  for (const spec of model.inputs) {
    const dims = spec.dims.map((d) => (d === null ? 1 : d))
    const size = dims.reduce((a, b) => a * b, 1)
    const data = Array.from({ length: size }, (_, i) => (i * 7) % 5)
    map[spec.name] = tensorOf(spec.type, dims, data)
  }
  return map
}

function tensorOf(type: string, dims: number[], data: number[]): Tensor {
  switch (type) {
    case 'float32':
      return createTensor('float32', dims, Float32Array.from(data))
    case 'int32':
      return createTensor(
        'int32',
        dims,
        Int32Array.from(data, (v) => Math.trunc(v)),
      )
    case 'int64':
      return createTensor(
        'int64',
        dims,
        BigInt64Array.from(data, (v) => BigInt(Math.trunc(v))),
      )
    case 'uint8':
      return createTensor(
        'uint8',
        dims,
        Uint8Array.from(data, (v) => Math.trunc(v) & 0xff),
      )
    case 'bool':
      return createTensor(
        'bool',
        dims,
        Uint8Array.from(data, (v) => (v > 0 ? 1 : 0)),
      )
    default:
      throw new InvalidInputError(`unsupported tensor type ${type}`)
  }
}

function randomOutputs(model: ModelRecord, inputs: TensorMap): TensorMap {
  const batch = Object.values(inputs)[0]?.dims[0] ?? 1
  const map: TensorMap = {}
  for (const spec of model.outputs) {
    const dims = spec.dims.map((d) => (d === null ? batch : d))
    const size = dims.reduce((a, b) => a * b, 1)
    map[spec.name] = tensorOf(
      spec.type,
      dims,
      Array.from({ length: size }, () => Math.random()),
    )
  }
  return map
}

/** A plausible wrong answer: each output's values rotated by one position. */
function corrupt(outputs: TensorMap): TensorMap {
  const map: TensorMap = {}
  for (const [name, t] of Object.entries(outputs)) {
    const data = Array.from(t.data as ArrayLike<number | bigint>, Number)
    data.unshift(data.pop() ?? 0)
    map[name] = tensorOf(t.type, [...t.dims], data)
  }
  return map
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
