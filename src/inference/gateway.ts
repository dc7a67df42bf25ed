/**
 * The gateway role: turns an API request into a signed job (or takes the client's), checks that
 * the client's deposit with THIS gateway covers it on top of what is already reserved, draws a
 * worker among those with a free slot in proportion to their throughput (policy/worker-draw.ts),
 * signs a dispatch to that worker alone, and on failure or timeout dispatches to another, so the
 * client sees one answer. It checks the receipt before answering, hands it to the settler with
 * the latency it measured, and hands the inputs to the auditor. Now and then it follows a job
 * with a canary: the inputs of a recent job, to a worker that never saw them, answer known here.
 *
 * Reservations: the fee of every job in flight or not yet settled is reserved against the
 * client's deposit, and journaled before the dispatch leaves, so neither parallel requests nor a
 * restart can make this gateway dispatch more than a deposit holds (the chain would record it as
 * overdrawn and workers would refuse it). A job whose every attempt failed keeps its reservation
 * until its settlement window closes: a worker that ran it may still settle it.
 */
import type { ChainEvent } from '../chain/host.ts'
import { nextCommits, sentAndCommitted } from './commits.ts'
import { decode, encode } from '../core/codec.ts'
import { describeError } from '../core/errors.ts'
import type { Logger } from '../core/logger.ts'
import { balanceOf } from '../bank/bank.ts'
import { currentMinFee } from '../chain/governed.ts'
import type { StateReader } from '../chain/state-view.ts'
import type { WorkerTable } from './adverts.ts'
import type { InferenceComponents, JobEvent } from './components.ts'
import {
  ATTEMPTS,
  DEFAULT_CANARY_PPM,
  DEFAULT_DEADLINE_MS,
  INFER_PROTOCOL,
  JOB_TIMEOUT_MS,
  SELF_DEPOSIT_CALLS,
  SLOT_POLL_MS,
  TOKEN_TIMEOUT_MS,
  TYPICAL_OUTPUT_TOKENS,
  TYPICAL_PROMPT_TOKENS,
} from './constants.ts'
import { InferenceError } from './errors.ts'
import { inputsCommitment, jobId, jobIdHex, signDispatch, signJob, type Receipt, type SignedJob } from './job.ts'
import { withResolvedSeed } from './lm/types.ts'
import { CanaryPool } from './canaries.ts'
import type { Auditor } from './auditor.ts'
import { MODEL_MEMORY_FACTOR } from './models.ts'
import type { Journal, Settler } from './settler.ts'
import { decodeTokensChunk, decodeWorkAnswer, encodeWorkRequest, type WorkRequest, type Worker } from './worker.ts'
import { checkDeadline, checkJob, checkReceipt, reservedFee } from './policy/jobs.ts'
import { drawWorker } from './policy/worker-draw.ts'
import {
  depositOf,
  isSchedulable,
  listModels,
  maxFeeFor,
  modelByCid,
  modelByName,
  servingWorkers,
  settlementOf,
  type ModelRecord,
} from './chain/state.ts'
import { checkAgainstSchema, hashTensorMap, type TensorMap } from './tensor.ts'

export interface InferRequest {
  /** Registered name or CID. */
  model: string
  inputs: TensorMap
  /** A job signed by the client (naming this gateway); without it the node signs and pays. */
  job?: SignedJob
  /** Most the node's own account pays (when it signs). @default the model's price (a generation: prompt plus max_tokens) */
  maxFee?: bigint
  /** A language model's tokens as the worker generates them (the whole output still comes back verified). */
  onTokens?(ids: readonly number[]): void
}

export interface InferResult {
  outputs: TensorMap
  receipt: Receipt
  worker: string
  gateway: string
  latencyMs: number
  attempts: number
}

export interface GatewayInit {
  table: WorkerTable
  settler: Settler
  auditor: Auditor
  /** This node's worker, when it is one (a candidate like any other). */
  worker?: Worker
  journal?: Journal
  /** Share of jobs followed by a canary, ppm. @default DEFAULT_CANARY_PPM */
  canaryPpm?: number
  /** Never run on this node's own worker (benchmarks of the remote path). @default false */
  remoteOnly?: boolean
  /** Keep this node's own deposit (for the jobs it pays for) topped up. @default true */
  selfDeposit?: boolean
  onJob?(event: JobEvent): void
}

interface Reservation {
  client: string
  fee: bigint
  /** Chain time after which nobody can settle the job any more. */
  until: number
  settling: boolean
}

const MODEL_CACHE_ENTRIES = 256
/** Commits an operator's request waits for the node's own deposit top-up to land, at most. */
const TOP_UP_WAIT_COMMITS = 10

export class Gateway {
  readonly #c: InferenceComponents
  readonly #init: GatewayInit
  readonly #log: Logger
  readonly #canaries: CanaryPool
  readonly #reservations = new Map<string, Reservation>()
  readonly #reserved = new Map<string, bigint>()
  #models = { height: -1, records: new Map<string, ModelRecord | undefined>() }
  /** Workers eligible for jobs on a model (declared, schedulable), per committed height. */
  #eligible = { height: -1, byModel: new Map<string, ReadonlySet<string>>() }
  #topUp: Promise<void> | undefined
  /** The dearest active model's typical call, read once per height (every own job asks). */
  #dearest = { height: -1, price: 1n }
  readonly stats = { jobs: 0, failures: 0, canaries: 0, latencies: [] as number[] }

  constructor(components: InferenceComponents, init: GatewayInit) {
    this.#c = components
    this.#init = init
    this.#log = components.logger.forComponent('donghae:inference:gateway')
    const rng = components.rng.fork('canaries')
    this.#canaries = new CanaryPool({ random: (n) => rng.int(0, n - 1) })
  }

  get did(): string {
    return this.#c.transport.self
  }

  async start(): Promise<void> {
    for (const [id, bytes] of (await this.#init.journal?.list()) ?? []) {
      try {
        const r = decode(bytes) as { client: string; fee: bigint | number; until: number }
        void this.#reserve(id, { client: r.client, fee: BigInt(r.fee), until: r.until, settling: true }, false)
      } catch (err) {
        this.#log.warn({ err: describeError(err) }, 'a journaled reservation does not decode; dropped')
      }
    }
  }

  /** Fees reserved against `client`'s deposit with this gateway. */
  reservedFor(client: string): bigint {
    return this.#reserved.get(client) ?? 0n
  }

  // ---- models -------------------------------------------------------------------------------------

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

  /** A registry record, decoded once per committed height (records are shared: do not change them). */
  #model(by: 'name' | 'cid', key: string): ModelRecord | undefined {
    const height = this.#c.chain.height()
    if (this.#models.height !== height) this.#models = { height, records: new Map() }
    const cacheKey = `${by}:${key}`
    if (this.#models.records.has(cacheKey)) return this.#models.records.get(cacheKey)
    const state = this.#c.chain.state()
    const model = by === 'name' ? modelByName(state, key) : modelByCid(state, key)
    if (this.#models.records.size < MODEL_CACHE_ENTRIES) this.#models.records.set(cacheKey, model)
    return model
  }

  // ---- jobs ---------------------------------------------------------------------------------------

  /**
   * Runs a request on the network and returns outputs with a verified receipt. Throws
   * InferenceError: 4xx reasons for the caller's mistakes (nothing is charged), 'no-worker' or
   * 'failed' when no worker could answer after retries.
   */
  async infer(request: InferRequest): Promise<InferResult> {
    const c = this.#c
    const started = performance.now()
    const model = this.resolveModel(request.model)
    if (model.status !== 'active') throw new InferenceError('unknown-model', `model ${model.name} is ${model.status}`)
    try {
      checkAgainstSchema(request.inputs, model.inputs)
    } catch (err) {
      throw new InferenceError('bad-input', describeError(err), { cause: err })
    }
    const job =
      request.job === undefined ? this.#ownJob(model, request) : this.#clientJob(model, request.job, request.inputs)
    const id = jobIdHex(job)
    if (this.#reservations.has(id) || settlementOf(c.chain.state(), id) !== undefined)
      throw new InferenceError('replayed', `job ${id.slice(0, 16)}\u2026 was already submitted`)
    const reserved = reservedFee(model, request.inputs)
    await this.#topUpIfOwn(job.client, reserved)
    // checked and reserved in one synchronous step: parallel requests cannot both see the same funds
    this.#cover(job.client, reserved)
    const until = job.deadline + c.chain.params.settleWindowMs
    const journaled = this.#reserve(id, { client: job.client, fee: reserved, until, settling: false }, true)
    // on disk before the dispatch leaves: a restart still knows what is reserved. A gateway that
    // cannot record it (a full disk) sends nothing: after a restart it would not know what it owes.
    await this.#journaledOrRefuse(id, journaled)
    try {
      const { receipt, outputs, attempts, latencyMs } = await this.#dispatch(
        model,
        job,
        request.inputs,
        new Set(),
        request.onTokens,
      )
      this.#settleAt(id, receipt.fee)
      // journaled before the client has its answer: a gateway killed after answering still settles
      await this.#init.settler.add({ receipt, latencyMs })
      this.#init.auditor.hold({ receipt, inputs: request.inputs, outputs })
      const total = performance.now() - started
      this.#record(total)
      this.#init.onJob?.({
        id,
        model: model.name,
        worker: receipt.worker,
        latencyMs: total,
        ok: true,
        fee: receipt.fee.toString(),
        role: 'gateway',
      })
      this.#canaries.remember(model.cid, request.inputs, receipt.worker)
      if (request.job === undefined) this.#maybeCanary(model)
      return { outputs, receipt, worker: receipt.worker, gateway: this.did, latencyMs: total, attempts }
    } catch (err) {
      // A dispatch that left may still be settled by its worker: keep the reservation until `until`.
      this.#reservations.get(id)!.settling = true
      this.stats.failures++
      this.#init.onJob?.({
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

  #ownJob(model: ModelRecord, request: Pick<InferRequest, 'inputs' | 'maxFee'>): SignedJob {
    const c = this.#c
    const cost = reservedFee(model, request.inputs)
    const maxFee = request.maxFee ?? cost
    if (maxFee < cost) throw new InferenceError('fee-too-low', `max fee ${maxFee} is below the job's cost ${cost}`)
    const salt = c.rng.bytes(16)
    return signJob(c.key, {
      chainId: c.chain.chainId,
      gateway: this.did,
      model: model.cid,
      inputsHash: inputsCommitment(salt, hashTensorMap(request.inputs)),
      maxFee,
      deadline: c.clock.now() + DEFAULT_DEADLINE_MS,
      salt,
    })
  }

  #clientJob(model: ModelRecord, job: SignedJob, inputs: TensorMap): SignedJob {
    const c = this.#c
    if (job.gateway !== this.did)
      throw new InferenceError(
        'bad-job',
        `the job names gateway ${job.gateway}; this gateway is ${this.did}: send it there`,
      )
    if (job.model !== model.cid) throw new InferenceError('bad-job', `the job names model ${job.model}`)
    checkJob(job, inputs, { chainId: c.chain.chainId, now: c.clock.now(), params: c.chain.params, model })
    checkDeadline(job, { now: c.clock.now(), params: c.chain.params })
    return job
  }

  /** What the client's deposit with this gateway still covers beyond the jobs it has in flight. */
  #available(client: string): bigint {
    return depositOf(this.#c.chain.state(), client, this.did).amount - this.reservedFor(client)
  }

  /** This node's own deposit is topped up in the background once half spent, and waited for only when short. */
  async #topUpIfOwn(client: string, fee: bigint): Promise<void> {
    if (client !== this.did || this.#init.selfDeposit === false) return
    const pending = this.topUpSelfDeposit().catch((err: unknown) =>
      this.#log.warn({ err: describeError(err) }, 'own deposit not topped up'),
    )
    if (this.#available(client) >= fee) return
    await pending
    // the top-up may land a few blocks later (a node just started, a busy mempool): wait for it
    for (let i = 0; i < TOP_UP_WAIT_COMMITS && this.#available(client) < fee && !this.#c.signal.aborted; i++)
      await nextCommits(this.#c, 1)
  }

  /** The fee of a typical call of the dearest active model at the head (decoding every model once per height, not per job). */
  #dearestCall(state: StateReader): bigint {
    const height = this.#c.chain.height()
    if (this.#dearest.height === height) return this.#dearest.price
    const price = listModels(state).reduce((max, m) => {
      const cost = m.kind === 'lm' ? maxFeeFor(m, TYPICAL_PROMPT_TOKENS, TYPICAL_OUTPUT_TOKENS) : m.price
      return m.status === 'active' && cost > max ? cost : max
    }, 1n)
    this.#dearest = { height, price }
    return price
  }

  /** Throws unless the client's deposit with this gateway covers `fee` more (synchronous: reserve right after). */
  #cover(client: string, fee: bigint): void {
    const available = this.#available(client)
    if (available >= fee) return
    throw new InferenceError(
      'insufficient-deposit',
      `account ${client} has ${available < 0n ? 0n : available} deposited with gateway ${this.did} beyond jobs in flight; the job costs ${fee}. ` +
        `Deposit with: donghae deposit add --gateway ${this.did} --amount N`,
    )
  }

  /**
   * Keeps this node's own deposit (paying for operator requests and canaries) at
   * SELF_DEPOSIT_CALLS calls of its dearest model, from its balance, once it is half spent;
   * resolves when the deposit is committed, or 10 commits (TOP_UP_WAIT_COMMITS) after it was sent
   * when it is not (or at once when nothing is needed or possible).
   */
  topUpSelfDeposit(): Promise<void> {
    if (this.#topUp !== undefined) return this.#topUp
    const c = this.#c
    const state = c.chain.state()
    const target = this.#dearestCall(state) * SELF_DEPOSIT_CALLS
    const have = depositOf(state, this.did, this.did).amount - this.reservedFor(this.did)
    if (have >= target / 2n) return Promise.resolve()
    const want = target - (have > 0n ? have : 0n)
    const balance = balanceOf(state, this.did) - currentMinFee(state, c.chain.params) * 4n
    const amount = want < balance ? want : balance
    if (amount <= 0n || depositOf(state, this.did, this.did).amount + amount < c.chain.params.minDeposit)
      return Promise.resolve()
    this.#topUp = (async () => {
      try {
        const own = (e: ChainEvent): boolean =>
          e.type === 'inference.deposit' && e.attributes.client === this.did && e.attributes.gateway === this.did
        await sentAndCommitted(
          c,
          () => c.submitTx('inference.deposit', { gateway: this.did, amount }),
          own,
          TOP_UP_WAIT_COMMITS,
        )
      } finally {
        this.#topUp = undefined
      }
    })()
    return this.#topUp
  }

  /** The job came back: its reservation shrinks to what the receipt charges (a generation's tokens used). */
  #settleAt(id: string, fee: bigint): void {
    const r = this.#reservations.get(id)!
    r.settling = true
    if (fee >= r.fee) return
    const left = this.reservedFor(r.client) - (r.fee - fee)
    if (left > 0n) this.#reserved.set(r.client, left)
    else this.#reserved.delete(r.client)
    r.fee = fee
    void this.#init.journal
      ?.put(id, encode({ client: r.client, fee: r.fee, until: r.until }))
      .catch((err: unknown) => this.#log.warn({ err: describeError(err) }, 'reservation not journaled'))
  }

  /**
   * Reserves at once (synchronously); the promise resolves once the reservation is journaled and
   * rejects when the journal refused it.
   */
  #reserve(id: string, r: Reservation, journal: boolean): Promise<void> {
    this.#reservations.set(id, r)
    this.#reserved.set(r.client, this.reservedFor(r.client) + r.fee)
    if (!journal || this.#init.journal === undefined) return Promise.resolve()
    return this.#init.journal.put(id, encode({ client: r.client, fee: r.fee, until: r.until }))
  }

  /** Waits for a reservation's journal write; on failure releases it and refuses the job (nothing was sent). */
  async #journaledOrRefuse(id: string, journaled: Promise<void>): Promise<void> {
    try {
      await journaled
    } catch (err) {
      this.released(id)
      this.#log.warn({ err: describeError(err) }, 'reservation not journaled; job refused')
      throw new InferenceError(
        'not-recorded',
        `the gateway could not record the job's reservation (${describeError(err)}); nothing was sent, nothing is charged`,
        { cause: err },
      )
    }
  }

  /** The settler's word on a job: settled, refused or out of its window. */
  released(id: string): void {
    const r = this.#reservations.get(id)
    if (r === undefined) return
    this.#reservations.delete(id)
    const left = this.reservedFor(r.client) - r.fee
    if (left > 0n) this.#reserved.set(r.client, left)
    else this.#reserved.delete(r.client)
    void this.#init.journal?.delete(id).catch(() => {})
  }

  /** Releases failed jobs' reservations once their settlement window has closed. */
  sweep(): void {
    const time = this.#c.chain.time()
    const state = this.#c.chain.state()
    for (const [id, r] of this.#reservations)
      if (r.settling && (time > r.until || settlementOf(state, id) !== undefined)) this.released(id)
  }

  #record(latencyMs: number): void {
    this.stats.jobs++
    this.stats.latencies.push(latencyMs)
    if (this.stats.latencies.length > 10_000) this.stats.latencies.splice(0, 5_000)
  }

  /** Sends the job to a drawn worker, retrying elsewhere on failure; verifies what comes back. */
  async #dispatch(
    model: ModelRecord,
    job: SignedJob,
    inputs: TensorMap,
    exclude: Set<string>,
    onTokens?: (ids: readonly number[]) => void,
  ): Promise<{ receipt: Receipt; outputs: TensorMap; attempts: number; latencyMs: number }> {
    const c = this.#c
    const errors: string[] = []
    if (this.#init.remoteOnly === true) exclude.add(this.did)
    // Waiting for a free slot is not an attempt; it ends at the job's deadline (or the timeout).
    const waitUntil = Math.min(job.deadline, c.clock.now() + JOB_TIMEOUT_MS)
    const failed = new Set<string>()
    let retriedFailed = false
    let attempt = 0
    let streamed = 0
    while (attempt < ATTEMPTS) {
      const eligible = this.#eligibleFor(model.cid)
      const worker = drawWorker(
        this.#init.table.options(model.cid, exclude, (w) => eligible.has(w)),
        () => c.rng.next(),
      )
      if (worker === undefined) {
        const others = this.#init.table.serving(model.cid).filter((w) => !exclude.has(w))
        if (others.length === 0) {
          if (errors.length === 0) throw this.#noWorker(model)
          if (failed.size === 0) break
          // every other worker is gone: those that failed (a closed stream, a restart) get one more chance
          for (const w of failed) exclude.delete(w)
          failed.clear()
          retriedFailed = true
          continue
        }
        if (c.clock.now() >= waitUntil) break
        await c.clock.sleep(SLOT_POLL_MS, { signal: c.signal })
        continue
      }
      attempt++
      this.#init.table.assigned(worker)
      // Latency on the components' clock: it goes on chain (speed rewards), so the simulation's
      // manual clock must decide it, not the machine's load.
      const sent = c.clock.now()
      const sentPrecise = performance.now()
      try {
        const request: WorkRequest = { job, inputs, dispatch: signDispatch(c.key, job, worker), purpose: 'job' }
        streamed = 0
        const answer = await this.run(
          worker,
          request,
          model,
          onTokens === undefined
            ? undefined
            : (ids) => {
                streamed += ids.length
                onTokens(ids)
              },
        )
        const rttMs = performance.now() - sentPrecise - answer.receipt.computeMicros / 1000
        this.#init.table.finished(worker, { ok: true, rttMs })
        return { ...answer, attempts: attempt, latencyMs: c.clock.now() - sent }
      } catch (err) {
        this.#init.table.finished(worker, { ok: false })
        errors.push(`${worker.slice(-8)}: ${describeError(err)}`)
        // tokens already streamed to the client: a retry would stream a second, different answer
        if (streamed > 0) throw err
        if (
          err instanceof InferenceError &&
          ['bad-input', 'bad-job', 'expired', 'fee-too-low'].includes(err.reason) &&
          worker === this.did
        )
          throw err
        this.#log.info({ worker, attempt, err: describeError(err) }, 'worker failed; retrying on another')
        exclude.add(worker)
        if (!retriedFailed) failed.add(worker)
      }
    }
    throw new InferenceError(
      errors.length === 0 ? 'busy' : 'failed',
      errors.length === 0
        ? `every worker serving ${model.name} stayed busy for ${JOB_TIMEOUT_MS / 1000} s; try again later`
        : `no worker completed the job after ${errors.length} attempt(s): ${errors.join('; ')}`,
    )
  }

  /** Why no worker serves a model: none can hold it in memory, or none has it right now. */
  #noWorker(model: ModelRecord): InferenceError {
    const needMiB = Math.ceil((model.size * MODEL_MEMORY_FACTOR) / 2 ** 20)
    const most = this.#init.table.largestMemoryMiB()
    if (most !== undefined && needMiB > most)
      return new InferenceError(
        'too-large',
        `no worker can hold ${model.name} in memory: it needs about ${needMiB} MiB, the largest budget advertised is ${most} MiB`,
      )
    return new InferenceError('no-worker', `no worker serves ${model.name} right now; try again shortly`)
  }

  /** The workers that declared `cid` and are schedulable at the next height (computed once per height). */
  #eligibleFor(cid: string): ReadonlySet<string> {
    const c = this.#c
    const height = c.chain.height()
    if (this.#eligible.height !== height) this.#eligible = { height, byModel: new Map() }
    let set = this.#eligible.byModel.get(cid)
    if (set === undefined) {
      const state = c.chain.state()
      set = new Set(servingWorkers(state, cid).filter((w) => isSchedulable(state, w, height + 1, c.chain.params)))
      this.#eligible.byModel.set(cid, set)
    }
    return set
  }

  /** Runs a request on `worker` (this node's own, or a peer over its session) and checks the receipt. */
  async run(
    worker: string,
    request: WorkRequest,
    model?: ModelRecord,
    onTokens?: (ids: readonly number[]) => void,
  ): Promise<{ receipt: Receipt; outputs: TensorMap }> {
    const c = this.#c
    const record = model ?? this.resolveModel(request.job.model)
    let answer: { receipt: Receipt; outputs: TensorMap }
    if (worker === this.did) {
      // drawn as an auditor (or named) while running no worker: nobody to ask, not even over the network
      if (this.#init.worker === undefined) throw new InferenceError('no-worker', 'this node runs no worker')
      answer = await this.#init.worker.execute(request, onTokens)
    } else {
      const timeout = new AbortController()
      const limitMs = answerTimeoutMs(record, request.inputs)
      const cancel = c.clock.setTimer(limitMs, () =>
        timeout.abort(new InferenceError('failed', `no answer within ${limitMs / 1000} s`)),
      )
      try {
        const bytes = await c.transport.request(worker, INFER_PROTOCOL, encodeWorkRequest(request), {
          signal: AbortSignal.any([c.signal, timeout.signal]),
          session: true,
          ...(onTokens === undefined ? {} : { onProgress: (chunk) => onTokens(decodeTokensChunk(chunk)) }),
        })
        answer = decodeWorkAnswer(bytes, worker)
      } finally {
        cancel()
      }
    }
    checkReceipt(answer.receipt, {
      job: request.job,
      worker,
      inputs: request.inputs,
      outputs: answer.outputs,
      model: record,
      outputHash: hashTensorMap(answer.outputs),
    })
    return answer
  }

  // ---- canaries -------------------------------------------------------------------------------------

  /**
   * After a job this node paid for, now and then a canary: a job on a recent client's inputs,
   * signed by this node like every job it pays for, to a worker that never saw those inputs, whose
   * answer this node computes itself. The auditor challenges a wrong answer.
   */
  #maybeCanary(model: ModelRecord): void {
    const c = this.#c
    const ppm = this.#init.canaryPpm ?? DEFAULT_CANARY_PPM
    const local = this.#init.worker
    if (ppm <= 0 || local === undefined || !local.models.serves(model.cid) || c.rng.next() * 1_000_000 >= ppm) return
    const from = this.#canaries.draw(model.cid)
    if (from === undefined) return
    void this.#canary(model, from.inputs, from.ranBy, local).catch((err: unknown) =>
      this.#log.debug({ err: describeError(err) }, 'canary not run'),
    )
  }

  async #canary(model: ModelRecord, inputs: TensorMap, ranBy: string, local: Worker): Promise<void> {
    const exclude = new Set([this.did, ranBy])
    if (this.#init.table.serving(model.cid).every((w) => exclude.has(w))) return
    const job = this.#ownJob(model, { inputs })
    const known = await local.models.run(model.cid, model.kind === 'lm' ? withResolvedSeed(inputs, jobId(job)) : inputs)
    const reserved = reservedFee(model, inputs)
    await this.#topUpIfOwn(job.client, reserved)
    this.#cover(job.client, reserved)
    const id = jobIdHex(job)
    await this.#journaledOrRefuse(
      id,
      this.#reserve(
        id,
        {
          client: job.client,
          fee: reserved,
          until: job.deadline + this.#c.chain.params.settleWindowMs,
          settling: false,
        },
        true,
      ),
    )
    try {
      const { receipt, outputs, latencyMs } = await this.#dispatch(model, job, inputs, exclude)
      this.#settleAt(id, receipt.fee)
      this.stats.canaries++
      await this.#init.settler.add({ receipt, latencyMs })
      this.#init.auditor.hold({ receipt, inputs, outputs, canaryHash: hashTensorMap(known.outputs) })
    } finally {
      this.#reservations.get(id)!.settling = true
    }
  }
}

/** How long a gateway waits for a worker's answer: a generation gets time per token on top. */
function answerTimeoutMs(model: ModelRecord, inputs: TensorMap): number {
  if (model.kind !== 'lm') return JOB_TIMEOUT_MS
  const prompt = inputs.prompt_ids?.data.length ?? 0
  const sampling = inputs.sampling
  const maxTokens = sampling?.type === 'int64' ? Number(sampling.data[0] ?? 0n) : 0
  const tokens = Math.min(prompt + Math.max(0, maxTokens), model.contextLength ?? prompt + maxTokens)
  return JOB_TIMEOUT_MS + tokens * TOKEN_TIMEOUT_MS
}
