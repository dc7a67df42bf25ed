/**
 * The worker role: answers `/donghae/infer/3.0.0` (in request sessions), runs models, signs
 * receipts, gossips its capacity, and settles its own receipts when their gateway does not.
 *
 * A request is `{ job, inputs, dispatch, purpose }`:
 *   - `purpose: 'job'`: a paid run. Checked as policy/jobs.ts says (the client's signature, the
 *     deadline, the inputs commitment, the gateway's dispatch to this worker, and that the client's
 *     deposit for that gateway covers this job on top of what this worker has not been paid yet).
 *   - `purpose: 'audit' | 'quorum'`: a re-run the chain drew this worker for (checked against the
 *     chain's own draw, so nobody gets free compute by asking for "audits"); no dispatch.
 * The receipt of a paid run is kept until it is seen settled; once `gatewayGraceMs` have passed
 * after the job's deadline the worker settles it itself, so honest work is paid even if the
 * gateway vanished after dispatching.
 */
import { decode, encode } from '../core/codec.ts'
import { describeError, InvalidInputError } from '../core/errors.ts'
import { untrustedText } from '../core/untrusted-text.ts'
import { repeat, repeatWhileDue, type DueSchedule } from '../core/clock.ts'
import type { Logger } from '../core/logger.ts'
import type { ChainEvent } from '../chain/host.ts'
import { ADVERT_TOPIC, signAdvert, type SlotAdvert } from './adverts.ts'
import type { InferenceComponents, JobEvent, WorkerBehaviour } from './components.ts'
import {
  ADVERT_COALESCE_MS,
  ADVERT_INTERVAL_MS,
  CALIBRATE_MS,
  ORPHAN_CHECK_MS,
  DEFAULT_SLOTS,
  INFER_PROTOCOL,
  MAX_KEPT_RECEIPTS,
  MAX_MESSAGE_BYTES,
  MAX_QUEUE_PER_SLOT,
  MODEL_SYNC_MS,
  SETTLE_BATCH,
  SETTLE_TIMEOUT_MS,
} from './constants.ts'
import { InferenceError, isInferenceReason } from './errors.ts'
import {
  jobId,
  jobIdHex,
  jobValue,
  parseReceipt,
  parseSignedJob,
  receiptValue,
  signReceipt,
  type ExecutionProvider,
  type Receipt,
  type SignedJob,
} from './job.ts'
import type { WorkerModels } from './models.ts'
import { tensorOf } from './models.ts'
import { checkDeadline, checkJob, checkPayment, reservedFee, usageOf } from './policy/jobs.ts'
import { withResolvedSeed } from './lm/types.ts'
import { auditorsOf, quorumOf } from './chain/draws.ts'
import {
  depositOf,
  disputeOf,
  feeFor,
  isSchedulable,
  modelByCid,
  overdrawnAt,
  settlementOf,
  type ModelRecord,
} from './chain/state.ts'
import { createTensor, decodeTensorMap, encodeTensorMap, hashTensorMap, type TensorMap } from './tensor.ts'

export type Purpose = 'job' | 'audit' | 'quorum'

export interface WorkRequest {
  job: SignedJob
  inputs: TensorMap
  /** The gateway's dispatch signature (paid runs). */
  dispatch: Uint8Array | null
  purpose: Purpose
  /**
   * Audits and quorum runs of a language-model job: the outputs the audited worker claimed, checked
   * by teacher forcing (one forward pass) instead of generating again (components.ts `RunOptions`).
   */
  claimed?: TensorMap
}

/** Encodes a request for the worker protocol. */
export function encodeWorkRequest(r: WorkRequest): Uint8Array {
  return encode({
    job: jobValue(r.job),
    inputs: encodeTensorMap(r.inputs),
    dispatch: r.dispatch,
    purpose: r.purpose,
    ...(r.claimed === undefined ? {} : { claimed: encodeTensorMap(r.claimed) }),
  })
}

/** A partial answer of the worker protocol: token ids generated so far (after the previous chunk). */
export function decodeTokensChunk(bytes: Uint8Array): number[] {
  const raw = decode(bytes, { maxBytes: MAX_MESSAGE_BYTES }) as { tokens?: unknown }
  if (
    raw === null ||
    typeof raw !== 'object' ||
    !Array.isArray(raw.tokens) ||
    !raw.tokens.every((t) => Number.isSafeInteger(t) && (t as number) >= 0)
  )
    throw new InferenceError('failed', 'the worker sent a malformed token chunk')
  return raw.tokens as number[]
}

export function decodeWorkRequest(bytes: Uint8Array): WorkRequest {
  const raw = decode(bytes, { maxBytes: MAX_MESSAGE_BYTES }) as Record<string, unknown>
  if (raw === null || typeof raw !== 'object') throw new InvalidInputError('a request must be a map')
  if (!(raw.inputs instanceof Uint8Array)) throw new InvalidInputError('inputs must be bytes')
  if (raw.purpose !== 'job' && raw.purpose !== 'audit' && raw.purpose !== 'quorum')
    throw new InvalidInputError('purpose must be job, audit or quorum')
  if (raw.dispatch !== null && !(raw.dispatch instanceof Uint8Array && raw.dispatch.length === 64))
    throw new InvalidInputError('dispatch must be a 64-byte signature or null')
  if (raw.claimed !== undefined && (!(raw.claimed instanceof Uint8Array) || raw.purpose === 'job'))
    throw new InvalidInputError('claimed outputs are bytes, and only for audit and quorum runs')
  return {
    job: parseSignedJob(raw.job),
    inputs: decodeTensorMap(raw.inputs),
    dispatch: raw.dispatch as Uint8Array | null,
    purpose: raw.purpose,
    ...(raw.claimed === undefined ? {} : { claimed: decodeTensorMap(raw.claimed as Uint8Array) }),
  }
}

/** Persistence for the receipts a worker may have to settle itself (a LevelDB bucket in a node). */
export interface ReceiptKeeper {
  put(jobIdHex: string, receipt: Receipt): Promise<void>
  delete(jobIdHex: string): Promise<void>
  list(): Promise<Receipt[]>
}

export interface WorkerInit {
  models: WorkerModels
  /** Jobs run at once. @default DEFAULT_SLOTS */
  slots?: number
  behaviour?: WorkerBehaviour
  keeper?: ReceiptKeeper
  onJob?(event: JobEvent): void
  /** This worker's capacity changed (the local gateway's table learns it at once). */
  onCapacity?(advert: SlotAdvert): void
}

interface Kept {
  receipt: Receipt
  deposit: string
  /** When this worker last submitted it for settlement itself. */
  submittedAt?: number
}

export class Worker {
  readonly #c: InferenceComponents
  readonly #init: WorkerInit
  readonly #log: Logger
  readonly #slots: number
  readonly #behaviour: WorkerBehaviour
  #running = 0
  /** Paid jobs among those running (audits and quorum re-runs are the rest). */
  #paid = 0
  readonly #waiting: Array<() => void> = []
  #seq = 0
  #advertPending = false
  /** Whether the worker was schedulable at its last advert (it advertises as soon as it becomes so). */
  #schedulable = false
  readonly #kept = new Map<string, Kept>()
  /** Orphan checks every ORPHAN_CHECK_MS while receipts are kept (set by `start`). */
  #orphanChecks: DueSchedule | undefined
  /** Fees of kept receipts per deposit (`client gateway`). */
  readonly #unsettled = new Map<string, bigint>()
  #unsubscribe: Array<() => void> = []

  constructor(components: InferenceComponents, init: WorkerInit) {
    this.#c = components
    this.#init = init
    this.#log = components.logger.forComponent('donghae:inference:worker')
    this.#slots = init.slots ?? DEFAULT_SLOTS
    this.#behaviour = init.behaviour ?? { kind: 'honest' }
  }

  get models(): WorkerModels {
    return this.#init.models
  }

  async start(): Promise<void> {
    const c = this.#c
    for (const receipt of (await this.#init.keeper?.list()) ?? []) this.#keep(receipt, false)
    c.transport.handle(INFER_PROTOCOL, (data, from, progress) => this.#serve(data, from, progress), { session: true })
    this.#unsubscribe.push(c.chain.onCommit((height, events) => this.#onCommit(height, events)))
    const onError = (err: unknown): void => this.#log.warn({ err: describeError(err) }, 'worker task failed')
    repeat(c.clock, ADVERT_INTERVAL_MS, () => this.#advertise(), { signal: c.signal, onError })
    repeat(c.clock, MODEL_SYNC_MS, () => this.models.sync(), { signal: c.signal, onError })
    repeat(c.clock, CALIBRATE_MS, () => this.models.recalibrate(), { signal: c.signal, onError })
    // only while receipts are kept: an idle worker holds no timer for them
    this.#orphanChecks = repeatWhileDue(
      c.clock,
      ORPHAN_CHECK_MS,
      () => {
        this.#settleOrphans()
        return this.#kept.size > 0
      },
      { signal: c.signal, onError },
    )
    if (this.#kept.size > 0) this.#orphanChecks.wake()
    void this.models.sync().catch(onError)
  }

  stop(): void {
    for (const off of this.#unsubscribe.splice(0)) off()
  }

  /** Jobs running (of which paid ones) and waiting for a slot. */
  load(): { running: number; queued: number; paid: number } {
    return { running: this.#running, queued: this.#waiting.length, paid: this.#paid }
  }

  /** Receipts kept until seen settled. */
  get kept(): number {
    return this.#kept.size
  }

  // ---- capacity ---------------------------------------------------------------------------------

  capacity(): SlotAdvert {
    const runner = this.models.runner
    return {
      worker: this.#c.transport.self,
      ep: runner.ep,
      runtime: runner.runtime,
      models: this.models.served(),
      free: Math.max(0, this.#slots - this.#running),
      queue: this.#waiting.length,
      memoryMiB: Math.floor(this.models.memoryBudget / 2 ** 20),
      seq: ++this.#seq,
      time: this.#c.clock.now(),
    }
  }

  /** Signs and gossips the current capacity (every ADVERT_INTERVAL_MS, and shortly after it changes). */
  #advertise(): void {
    if (this.#c.signal.aborted || this.models.served().length === 0) return
    const c = this.#c
    this.#schedulable = isSchedulable(c.chain.state(), c.transport.self, c.chain.height() + 1, c.chain.params)
    if (!this.#schedulable) return
    const advert = this.capacity()
    this.#init.onCapacity?.(advert)
    c.adverts.publish(ADVERT_TOPIC, signAdvert(c.key, { ...advert, chainId: c.chain.chainId }))
  }

  /**
   * A job started or ended, or the served models changed: the local table learns it now, the
   * network within ADVERT_COALESCE_MS.
   */
  capacityChanged(): void {
    if (this.models.served().length === 0) return
    this.#init.onCapacity?.(this.capacity())
    if (this.#advertPending) return
    this.#advertPending = true
    this.#c.clock.setTimer(ADVERT_COALESCE_MS, () => {
      this.#advertPending = false
      this.#advertise()
    })
  }

  // ---- serving ------------------------------------------------------------------------------------

  async #serve(data: Uint8Array, from: string, progress?: (chunk: Uint8Array) => void): Promise<Uint8Array> {
    let request: WorkRequest
    try {
      request = decodeWorkRequest(data)
    } catch (err) {
      this.#c.transport.penalize(from, `malformed infer request: ${describeError(err)}`)
      return encode({ error: { reason: 'bad-job', message: describeError(err) } })
    }
    try {
      const onTokens =
        progress === undefined ? undefined : (ids: readonly number[]) => progress(encode({ tokens: [...ids] }))
      const { receipt, outputs } = await this.execute(request, onTokens)
      return encode({ receipt: receiptValue(receipt), outputs: encodeTensorMap(outputs) })
    } catch (err) {
      const reason = err instanceof InferenceError ? err.reason : 'failed'
      return encode({ error: { reason, message: describeError(err) } })
    }
  }

  /**
   * Checks a request, runs it and signs the receipt: the worker's whole job. `onTokens` streams a
   * language model's tokens as they are generated.
   */
  async execute(
    request: WorkRequest,
    onTokens?: (ids: readonly number[]) => void,
  ): Promise<{ receipt: Receipt; outputs: TensorMap }> {
    const { job, inputs, purpose } = request
    const c = this.#c
    const state = c.chain.state()
    const now = c.clock.now()
    const model = checkJob(job, inputs, {
      chainId: c.chain.chainId,
      now,
      params: c.chain.params,
      model: modelByCid(state, job.model),
    })
    if (!this.models.serves(model.cid)) throw new InferenceError('busy', `this worker does not serve ${model.name}`)
    if (request.claimed !== undefined && model.kind !== 'lm')
      throw new InferenceError('bad-job', 'claimed outputs come with audits of language models only')
    const depositKey = `${job.client} ${job.gateway}`
    // a language model's job reserves its prompt and max_tokens; the receipt charges what it used
    const reserved = reservedFee(model, inputs)
    if (purpose === 'job') {
      checkDeadline(job, { now, params: c.chain.params })
      if (this.#kept.has(jobIdHex(job))) throw new InferenceError('replayed', 'this worker already ran the job')
      checkPayment(job, request.dispatch, reserved, {
        self: c.transport.self,
        height: c.chain.height(),
        params: c.chain.params,
        deposit: depositOf(state, job.client, job.gateway),
        unsettled: this.#unsettled.get(depositKey) ?? 0n,
        overdrawnAt: overdrawnAt(state, job.gateway),
      })
    } else {
      this.#checkDrawn(job, purpose)
    }
    if (this.#waiting.length >= this.#slots * MAX_QUEUE_PER_SLOT)
      throw new InferenceError('busy', 'the worker queue is full')
    // Reserve the fee against the deposit before waiting, so parallel jobs cannot overdraw it.
    if (purpose === 'job') this.#addUnsettled(depositKey, reserved)
    let kept = false
    try {
      await this.#acquire()
      if (purpose === 'job') this.#paid++
      try {
        const result = await this.#run(model, request, onTokens)
        if (purpose === 'job') {
          this.#addUnsettled(depositKey, result.receipt.fee - reserved)
          this.#keep(result.receipt, true)
          kept = true
        }
        return result
      } finally {
        if (purpose === 'job') this.#paid--
        this.#release()
      }
    } finally {
      if (purpose === 'job' && !kept) this.#addUnsettled(depositKey, -reserved)
    }
  }

  /** An audit or quorum run: only for a job the chain drew this worker for. */
  #checkDrawn(job: SignedJob, purpose: Purpose): void {
    const c = this.#c
    const state = c.chain.state()
    const id = jobIdHex(job)
    const settlement = settlementOf(state, id)
    const self = c.transport.self
    const height = c.chain.height() + 1
    let drawn = false
    const recent = (h: number): Uint8Array | undefined => c.chain.blockId(h)
    if (settlement !== undefined && purpose === 'audit')
      drawn = auditorsOf(state, settlement, height, c.chain.params, recent).some((a) => a.did === self)
    const dispute = disputeOf(state, id)
    if (settlement !== undefined && dispute !== undefined && purpose === 'quorum') {
      const auditor = { did: dispute.audit.worker, ep: dispute.auditEp, runtime: dispute.auditRuntime }
      drawn = quorumOf(state, settlement, auditor, height, c.chain.params, recent).some((m) => m.did === self)
    }
    if (!drawn)
      throw new InferenceError(
        'not-drawn',
        `the chain did not draw this worker for an ${purpose} of job ${id.slice(0, 16)}\u2026`,
      )
  }

  async #run(
    model: ModelRecord,
    request: WorkRequest,
    onTokens?: (ids: readonly number[]) => void,
  ): Promise<{ receipt: Receipt; outputs: TensorMap }> {
    const c = this.#c
    const startedAt = c.clock.now()
    let outputs: TensorMap
    let computeMicros: number
    let ep: ExecutionProvider = this.models.runner.ep
    const cheats = this.#behaviour.kind === 'cheat' && c.rng.chance(this.#behaviour.rate)
    if (this.#behaviour.kind === 'lazy') {
      outputs = randomOutputs(model, request.inputs, () => c.rng.next())
      computeMicros = 10
    } else {
      // a language model samples with the job's seed, or one drawn from the job id
      const inputs = model.kind === 'lm' ? withResolvedSeed(request.inputs, jobId(request.job)) : request.inputs
      const ran = await this.models.run(model.cid, inputs, {
        // a cheat streams what it will claim, so its client sees nothing odd
        ...(onTokens === undefined || cheats ? {} : { onTokens }),
        ...(request.claimed === undefined ? {} : { claimed: request.claimed, tolerance: model.tolerance }),
      })
      ;({ outputs, computeMicros } = ran)
      ep = ran.ep ?? ep
      // slow on paid jobs only: audits of others' results go on at full speed
      if (this.#behaviour.kind === 'slow' && request.purpose === 'job')
        await c.clock.sleep(this.#behaviour.ms, { signal: c.signal })
      if (cheats) {
        outputs = model.kind === 'lm' ? swapOneToken(outputs) : corrupt(outputs)
        if (onTokens !== undefined) onTokens(Array.from(outputs.output_ids?.data ?? [], Number))
      }
    }
    const usage = usageOf(model, request.inputs, outputs)
    const fee = feeFor(model, usage)
    if (fee === undefined) throw new InferenceError('failed', `the run's ${usage?.output} tokens do not fit the model`)
    const receipt = signReceipt(c.key, {
      job: request.job,
      dispatch: request.purpose === 'job' ? request.dispatch : null,
      outputHash: hashTensorMap(outputs),
      fee,
      ep,
      runtime: this.models.runner.runtime,
      startedAt,
      finishedAt: c.clock.now(),
      computeMicros: Math.round(computeMicros),
      ...(usage === undefined ? {} : { usage }),
    })
    this.#init.onJob?.({
      id: jobIdHex(request.job),
      model: model.name,
      worker: c.transport.self,
      latencyMs: c.clock.now() - startedAt,
      ok: true,
      fee: fee.toString(),
      role: 'worker',
      purpose: request.purpose,
    })
    return { receipt, outputs }
  }

  #acquire(): Promise<void> {
    if (this.#running < this.#slots) {
      this.#running++
      this.capacityChanged()
      return Promise.resolve()
    }
    return new Promise((resolve) => this.#waiting.push(resolve))
  }

  #release(): void {
    const next = this.#waiting.shift()
    if (next !== undefined) next()
    else this.#running--
    this.capacityChanged()
  }

  // ---- getting paid ---------------------------------------------------------------------------------

  #addUnsettled(key: string, fee: bigint): void {
    const left = (this.#unsettled.get(key) ?? 0n) + fee
    if (left > 0n) this.#unsettled.set(key, left)
    else this.#unsettled.delete(key)
  }

  #keep(receipt: Receipt, counted: boolean): void {
    const id = jobIdHex(receipt.job)
    if (this.#kept.size >= MAX_KEPT_RECEIPTS) {
      this.#log.warn({ job: id }, 'too many unsettled receipts kept; this one will not be settled by the worker')
      return
    }
    const deposit = `${receipt.job.client} ${receipt.job.gateway}`
    this.#kept.set(id, { receipt, deposit })
    this.#orphanChecks?.wake()
    if (!counted) this.#addUnsettled(deposit, receipt.fee)
    void this.#init.keeper
      ?.put(id, receipt)
      .catch((err: unknown) => this.#log.warn({ err: describeError(err) }, 'receipt not kept on disk'))
  }

  #forget(id: string): void {
    const kept = this.#kept.get(id)
    if (kept === undefined) return
    this.#kept.delete(id)
    this.#addUnsettled(kept.deposit, -kept.receipt.fee)
    void this.#init.keeper?.delete(id).catch(() => {})
  }

  /** Settled receipts are forgotten; those whose gateway stayed silent are settled here. */
  #onCommit(height: number, events: readonly ChainEvent[]): void {
    for (const e of events)
      if (e.type === 'inference.settled' && e.attributes.worker === this.#c.transport.self)
        this.#forget(e.attributes.jobId as string)
    if (height % 5 === 0) this.#settleOrphans()
    // bonded, unjailed or out of quarantine: gateways hear it now, not at the next heartbeat
    if (!this.#schedulable && this.models.served().length > 0) {
      const c = this.#c
      if (isSchedulable(c.chain.state(), c.transport.self, height + 1, c.chain.params)) this.capacityChanged()
    }
  }

  /**
   * Receipts whose gateway let its grace pass without settling them are settled here: every fifth
   * commit, and every ORPHAN_CHECK_MS while any is kept (a chain without empty blocks may make no block for a
   * minute; the next block's time is then this node's clock, not the last block's).
   */
  #settleOrphans(): void {
    if (this.#kept.size === 0) return
    const c = this.#c
    const { gatewayGraceMs, settleWindowMs } = c.chain.params
    const now = c.clock.now()
    const time = Math.max(c.chain.time(), now)
    const state = c.chain.state()
    const due: Receipt[] = []
    for (const [id, kept] of this.#kept) {
      const { deadline } = kept.receipt.job
      if (settlementOf(state, id) !== undefined || time > deadline + settleWindowMs) {
        this.#forget(id)
        continue
      }
      if (time <= deadline + gatewayGraceMs) continue
      if (kept.submittedAt !== undefined && now - kept.submittedAt < SETTLE_TIMEOUT_MS) continue
      kept.submittedAt = now
      due.push(kept.receipt)
    }
    for (let i = 0; i < due.length; i += SETTLE_BATCH) {
      const receipts = due.slice(i, i + Math.min(SETTLE_BATCH, c.chain.params.maxReceiptsPerSettle))
      this.#log.info({ receipts: receipts.length }, 'settling receipts whose gateway did not')
      void c
        .submitTx('inference.settle', { receipts: receipts.map(receiptValue), latencies: receipts.map(() => 0) })
        .catch((err: unknown) => this.#log.warn({ err: describeError(err) }, 'own settlement not submitted'))
    }
  }
}

/** Random outputs of the model's shape (the 'lazy' behaviour). */
function randomOutputs(model: ModelRecord, inputs: TensorMap, random: () => number): TensorMap {
  const batch = Object.values(inputs)[0]?.dims[0] ?? 1
  const map: TensorMap = {}
  for (const spec of model.outputs) {
    const dims = spec.dims.map((d) => (d === null ? batch : d))
    const size = dims.reduce((a, b) => a * b, 1)
    map[spec.name] = tensorOf(spec.type, dims, Array.from({ length: size }, random))
  }
  return map
}

/** A plausible wrong answer: each output's values rotated by one position (the 'cheat' behaviour). */
function corrupt(outputs: TensorMap): TensorMap {
  const map: TensorMap = {}
  for (const [name, t] of Object.entries(outputs)) {
    const data = Array.from(t.data as ArrayLike<number | bigint>, Number)
    data.unshift(data.pop() ?? 0)
    map[name] = tensorOf(t.type, [...t.dims], data)
  }
  return map
}

/** One generated token changed (the 'cheat' behaviour on a language model): the smallest lie there is. */
function swapOneToken(outputs: TensorMap): TensorMap {
  const ids = outputs.output_ids
  if (ids?.type !== 'int64' || ids.data.length === 0) return corrupt(outputs)
  const data = BigInt64Array.from(ids.data)
  const at = Math.floor(data.length / 2)
  data[at] = data[at]! > 0n ? data[at]! - 1n : data[at]! + 1n
  return { ...outputs, output_ids: createTensor('int64', [...ids.dims], data) }
}

/** Parses a worker's answer (receipt and outputs, or its error). */
export function decodeWorkAnswer(bytes: Uint8Array, worker: string): { receipt: Receipt; outputs: TensorMap } {
  const answer = decode(bytes, { maxBytes: MAX_MESSAGE_BYTES }) as Record<string, unknown>
  if (answer === null || typeof answer !== 'object') throw new InferenceError('failed', 'the worker sent no map')
  if (answer.error !== undefined) {
    const e = answer.error as { reason?: unknown; message?: unknown }
    // A peer's words: a reason we know or 'failed', and a message cut short.
    const reason = isInferenceReason(e.reason) ? e.reason : 'failed'
    const message = untrustedText(typeof e.message === 'string' ? e.message : 'failed')
    throw new InferenceError(reason, `worker ${worker.slice(-8)}: ${message}`)
  }
  if (!(answer.outputs instanceof Uint8Array)) throw new InferenceError('failed', 'the worker sent no outputs')
  return { receipt: parseReceipt(answer.receipt), outputs: decodeTensorMap(answer.outputs, { allowNonFinite: true }) }
}
