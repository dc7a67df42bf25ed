/**
 * The models a worker serves: it loads every active registered model its operator's policy
 * allows (serve-policy.ts) and whose weights it has or can fetch from a peer serving it
 * (verified against the CID), calibrates each (seed 000's benchmark), and declares on chain what
 * it serves and on which provider and runtime (`inference.serve`), because only declared workers
 * settle jobs on a model and are drawn to audit it. Served weights are pinned in the blob store.
 * A model that fails to load or breaks a runner limit (runner/sandbox.ts) is held back with a
 * growing back-off (bad-models.ts), not fetched again every sync; one that breaks a limit is
 * also reported on chain (`inference.reportModel`) so that a quorum of workers retires it.
 */
import { nextCommits } from './commits.ts'
import { describeError } from '../core/errors.ts'
import type { Logger } from '../core/logger.ts'
import { InferenceError, ModelLimitError } from './errors.ts'
import { BadModels, type BadModel } from './bad-models.ts'
import type { InferenceComponents, ModelBytes, ModelLoadOptions, ModelRunner, RunOptions } from './components.ts'
import { LM_FILES, type LmFiles } from './lm/types.ts'
import type { AdvertModel } from './adverts.ts'
import { totalmem } from 'node:os'
import { isSchedulable, listModels, modelByCid, servingSet, workerRecord, type ModelRecord } from './chain/state.ts'
import { createTensor, type Tensor, type TensorMap } from './tensor.ts'

/** Where a worker gets weights: its own store, else peers (verified against the CID). */
export interface BlobSource {
  get(cid: string): Promise<Uint8Array | undefined>
  fetch(cid: string, peers: readonly string[]): Promise<Uint8Array>
  /** Keeps a blob from eviction until the returned function is called. */
  pin?(cid: string): () => void
}

export interface ModelsInit {
  runner: ModelRunner
  blobs: BlobSource
  /** Peers that serve a model now (the gateway's worker table). */
  servingPeers(cid: string): string[]
  /** The operator's policy. @default every model */
  allows?(model: ModelRecord): boolean
  /** Calibration length per model. @default 200 ms */
  calibrateMs?: number
  /** Memory for loaded models, bytes; the least recently used is unloaded to make room. @default defaultMemoryBudget() */
  memoryBudget?: number
  /** Called when the served set or a throughput changes (the worker re-advertises). */
  onChange?(): void
}

interface Served {
  /** Calibrated throughput, milli-jobs per second. */
  mjps: number
  /** Releases the blob store's pin on the weights (and the tokenizer). */
  unpin: () => void
  /** Memory the model is expected to take once loaded, bytes (`MODEL_MEMORY_FACTOR` × file size). */
  need: number
  /** When a job last ran on it (the LRU order of eviction). */
  lastUsed: number
  /** Language models: time to first token, ms, and tokens per second (moving averages). */
  ttftMs?: number
  tokensPerSecond?: number
}

/**
 * Memory a loaded model takes per byte of its file, as budgeted: ONNX Runtime holds the weights
 * once plus its arenas and, for a language model, the KV cache (bench/lm.bench.ts measures it).
 */
export const MODEL_MEMORY_FACTOR = 2
/** Budget of model memory when the operator sets none: half the machine's memory. */
export function defaultMemoryBudget(): number {
  return Math.floor(totalmem() / 2)
}

/** A model larger than this worker's memory budget: not served here. */
export interface TooLarge {
  cid: string
  need: number
  budget: number
}

export class WorkerModels {
  readonly #c: InferenceComponents
  readonly #init: ModelsInit
  readonly #log: Logger
  readonly #served = new Map<string, Served>()
  readonly #loading = new Set<string>()
  readonly #bad: BadModels
  readonly #reported = new Set<string>()
  readonly #tooLarge = new Map<string, TooLarge>()
  readonly #budget: number
  #declaring = false

  constructor(components: InferenceComponents, init: ModelsInit) {
    this.#c = components
    this.#init = init
    this.#log = components.logger.forComponent('donghae:inference:models')
    this.#bad = new BadModels({ clock: components.clock })
    this.#budget = init.memoryBudget ?? defaultMemoryBudget()
  }

  /** The memory budget for loaded models, bytes. */
  get memoryBudget(): number {
    return this.#budget
  }

  /** Registered models this worker cannot hold in its memory budget. */
  tooLarge(): TooLarge[] {
    return [...this.#tooLarge.values()]
  }

  /** Memory the loaded models are expected to take, bytes. */
  #loadedBytes(except?: string): number {
    let sum = 0
    for (const [cid, s] of this.#served) if (cid !== except && this.#init.runner.has(cid)) sum += s.need
    return sum
  }

  /** Unloads the least recently used models until `need` more bytes fit the budget. */
  async #makeRoom(cid: string, need: number): Promise<void> {
    const runner = this.#init.runner
    while (this.#loadedBytes(cid) + need > this.#budget) {
      let victim: [string, Served] | undefined
      for (const entry of this.#served)
        if (
          entry[0] !== cid &&
          runner.has(entry[0]) &&
          (victim === undefined || entry[1].lastUsed < victim[1].lastUsed)
        )
          victim = entry
      if (victim === undefined || runner.unload === undefined) return
      this.#log.info({ cid: victim[0] }, 'model unloaded to make room (least recently used)')
      await runner.unload(victim[0])
      this.#init.onChange?.()
    }
  }

  get runner(): ModelRunner {
    return this.#init.runner
  }

  serves(cid: string): boolean {
    return this.#served.has(cid)
  }

  /** Served models with their calibrated throughput (milli-jobs per second), whether loaded, and generation speed. */
  served(): AdvertModel[] {
    const runner = this.#init.runner
    return [...this.#served]
      .map(([cid, s]) => ({
        cid,
        mjps: s.mjps,
        loaded: runner.has(cid),
        ...(s.ttftMs === undefined ? {} : { ttftMs: Math.round(s.ttftMs) }),
        ...(s.tokensPerSecond === undefined ? {} : { tpsMilli: Math.round(s.tokensPerSecond * 1000) }),
      }))
      .sort((a, b) => (a.cid < b.cid ? -1 : 1))
  }

  /** Models held back here (failed to load, or broke a runner limit), and when they are tried again. */
  bad(): BadModel[] {
    return this.#bad.list()
  }

  /**
   * A model broke a runner limit while serving (the runner's `onLimit`): stop serving it, hold it
   * back, report it.
   */
  broke(cid: string, err: ModelLimitError): void {
    const served = this.#served.get(cid)
    if (served !== undefined) {
      served.unpin()
      this.#served.delete(cid)
      this.#init.onChange?.()
    }
    const model = modelByCid(this.#c.chain.state(), cid)
    if (model !== undefined) this.#fail(model, err)
  }

  /** Loads what is missing, drops what left the market, declares the difference on chain. */
  async sync(): Promise<void> {
    if (this.#c.signal.aborted) return
    const state = this.#c.chain.state()
    const now = this.#c.clock.now()
    for (const model of listModels(state)) {
      if (model.status !== 'active' || (this.#init.allows !== undefined && !this.#init.allows(model))) {
        const served = this.#served.get(model.cid)
        if (served !== undefined) {
          served.unpin()
          this.#served.delete(model.cid)
          this.#init.onChange?.()
        }
        continue
      }
      if (this.#served.has(model.cid) || this.#loading.has(model.cid)) continue
      if (this.#bad.isBad(model.cid, now)) continue
      await this.#load(model)
    }
    await this.#declare()
  }

  async #load(model: ModelRecord): Promise<void> {
    const need = model.size * MODEL_MEMORY_FACTOR
    if (need > this.#budget) {
      if (!this.#tooLarge.has(model.cid)) {
        this.#tooLarge.set(model.cid, { cid: model.cid, need, budget: this.#budget })
        this.#log.warn(
          {
            model: model.name,
            cid: model.cid,
            needMiB: Math.ceil(need / 2 ** 20),
            budgetMiB: Math.floor(this.#budget / 2 ** 20),
          },
          'model not served: larger than the memory budget',
        )
      }
      return
    }
    this.#tooLarge.delete(model.cid)
    this.#loading.add(model.cid)
    try {
      let bytes = await this.#init.blobs.get(model.cid)
      if (bytes === undefined) {
        // peers that serve it first, then any peer (the publisher's node holds it before anyone
        // serves it); a fetch that finds it nowhere is held back like any failure
        const self = this.#c.transport.self
        const serving = this.#init.servingPeers(model.cid).filter((p) => p !== self)
        const others = this.#c.transport.peers().filter((p) => p !== self && !serving.includes(p))
        if (serving.length + others.length === 0) return // alone: nothing to fetch from yet
        bytes = await this.#init.blobs.fetch(model.cid, [...serving, ...others])
      }
      const files = await this.#files(model)
      await this.#makeRoom(model.cid, need)
      await this.#init.runner.load(model.cid, bytes, this.#loadOptions(model, files))
      const mjps = await this.#calibrate(model)
      const pins = [
        model.cid,
        ...(model.codec === undefined ? [] : [model.codec]),
        ...Object.values(model.files ?? {}),
      ].map((cid) => this.#init.blobs.pin?.(cid) ?? (() => {}))
      this.#served.set(model.cid, {
        mjps,
        unpin: () => pins.forEach((unpin) => unpin()),
        need,
        lastUsed: this.#c.clock.now(),
      })
      this.#bad.forgive(model.cid)
      this.#log.info({ model: model.name, cid: model.cid, jobsPerSecond: Math.round(mjps / 1000) }, 'serving model')
      this.#init.onChange?.()
    } catch (err) {
      this.#fail(model, err)
    } finally {
      this.#loading.delete(model.cid)
    }
  }

  /**
   * The runner's load options: a language model's files, and `reload`, which reads the model
   * again from the blob store to replace a model process that died, so that the runner need not
   * keep a copy of every served model's bytes in the node process.
   */
  #loadOptions(model: ModelRecord, files: LmFiles | undefined): ModelLoadOptions {
    const reload = async (): Promise<ModelBytes | undefined> => {
      const bytes = await this.#init.blobs.get(model.cid)
      return bytes === undefined ? undefined : { bytes, files: await this.#files(model) }
    }
    return { ...(files === undefined ? {} : { files }), reload }
  }

  /** A language model's tokenizer and configuration files, from the store or peers (verified by CID). */
  async #files(model: ModelRecord): Promise<LmFiles | undefined> {
    if (model.kind !== 'lm' || model.files === undefined) return undefined
    const files: LmFiles = {}
    const self = this.#c.transport.self
    for (const name of LM_FILES) {
      const cid = model.files[name]
      if (cid === undefined) continue
      files[name] =
        (await this.#init.blobs.get(cid)) ??
        (await this.#init.blobs.fetch(cid, [
          ...this.#init.servingPeers(model.cid).filter((p) => p !== self),
          ...this.#c.transport.peers().filter((p) => p !== self),
        ]))
    }
    return files
  }

  #fail(model: ModelRecord, err: unknown): void {
    const reason = err instanceof ModelLimitError ? `${err.limit}: ${describeError(err)}` : describeError(err)
    const entry = this.#bad.mark(model.cid, reason.slice(0, 200))
    this.#log.warn(
      { model: model.name, cid: model.cid, failures: entry.failures, retryAt: entry.retryAt, err: reason },
      'model held back',
    )
    if (err instanceof ModelLimitError) void this.#report(model, err.limit)
  }

  /** Tells the chain this model breaks the runner's limits (once per model). */
  async #report(model: ModelRecord, reason: string): Promise<void> {
    if (this.#reported.has(model.cid)) return
    const state = this.#c.chain.state()
    if (!isSchedulable(state, this.#c.transport.self, this.#c.chain.height() + 1, this.#c.chain.params)) return
    this.#reported.add(model.cid)
    await this.#c
      .submitTx('inference.reportModel', { cid: model.cid, reason })
      .catch((err: unknown) => this.#log.info({ err: describeError(err) }, 'model report not submitted'))
  }

  async #calibrate(model: ModelRecord): Promise<number> {
    const { jobsPerSecond } = await this.#init.runner.calibrate(model.cid, sampleInputs(model), {
      durationMs: this.#init.calibrateMs ?? 200,
    })
    return Math.max(1, Math.round(jobsPerSecond * 1000))
  }

  /** Re-measures every served model (seed 000: "benchmarks at start and periodically"). */
  async recalibrate(): Promise<void> {
    const state = this.#c.chain.state()
    for (const cid of [...this.#served.keys()]) {
      const model = modelByCid(state, cid)
      if (model === undefined) continue
      const served = this.#served.get(cid)
      if (served !== undefined) served.mjps = await this.#calibrate(model)
    }
    this.#init.onChange?.()
  }

  /**
   * Declares on chain what is served here, and the provider and runtime, when they differ from
   * the worker's record. Only a bonded worker declares; one declaration at a time.
   */
  async #declare(): Promise<void> {
    if (this.#declaring) return
    const self = this.#c.transport.self
    const state = this.#c.chain.state()
    const record = workerRecord(state, self)
    if (record === undefined || record.bonded === 0n) return
    const runner = this.#init.runner
    const models = listModels(state)
    const add = models.filter((m) => this.#served.has(m.cid) && !servingSet(m.cid).has(state, self)).map((m) => m.cid)
    const remove = models
      .filter((m) => !this.#served.has(m.cid) && servingSet(m.cid).has(state, self) && m.status === 'active')
      .map((m) => m.cid)
    const redeclare = record.ep !== runner.ep || record.runtime !== runner.runtime
    if (add.length === 0 && remove.length === 0 && !redeclare) return
    this.#declaring = true
    try {
      await this.#c.submitTx('inference.serve', {
        ep: runner.ep,
        runtime: runner.runtime,
        add: add.slice(0, 64),
        remove: remove.slice(0, 64),
      })
      await nextCommits(this.#c, 1)
    } catch (err) {
      this.#log.info({ err: describeError(err) }, 'serving declaration not submitted; will retry')
    } finally {
      this.#declaring = false
    }
  }

  /** Runs a served model; a session the runtime evicted is loaded again from the blob store. */
  async run(cid: string, inputs: TensorMap, options: RunOptions = {}): ReturnType<ModelRunner['run']> {
    const runner = this.#init.runner
    const served = this.#served.get(cid)
    if (served !== undefined) served.lastUsed = this.#c.clock.now()
    if (!runner.has(cid)) {
      const bytes = await this.#init.blobs.get(cid)
      const model = modelByCid(this.#c.chain.state(), cid)
      if (bytes === undefined || model === undefined) {
        this.#served.get(cid)?.unpin()
        this.#served.delete(cid)
        this.#init.onChange?.()
        throw new InferenceError('busy', `this worker no longer has model ${cid}`)
      }
      const files = await this.#files(model)
      await this.#makeRoom(cid, model.size * MODEL_MEMORY_FACTOR)
      await runner.load(cid, bytes, this.#loadOptions(model, files))
      this.#init.onChange?.()
    }
    const result = await runner.run(cid, inputs, options)
    if (served !== undefined && result.lm !== undefined && options.claimed === undefined) {
      // moving averages of what clients see: time to first token and generation speed
      const { ttftMicros, outputTokens } = result.lm
      const seconds = Math.max(1e-6, (result.computeMicros - ttftMicros) / 1e6)
      const tps = outputTokens > 1 ? (outputTokens - 1) / seconds : undefined
      served.ttftMs = served.ttftMs === undefined ? ttftMicros / 1000 : served.ttftMs * 0.8 + (ttftMicros / 1000) * 0.2
      if (tps !== undefined)
        served.tokensPerSecond = served.tokensPerSecond === undefined ? tps : served.tokensPerSecond * 0.8 + tps * 0.2
    }
    return result
  }
}

/** A deterministic input that fits the model's schema (batch 1), for calibration. */
export function sampleInputs(model: Pick<ModelRecord, 'inputs'>): TensorMap {
  const map: TensorMap = {}
  for (const spec of model.inputs) {
    const dims = spec.dims.map((d) => (d === null ? 1 : d))
    const size = dims.reduce((a, b) => a * b, 1)
    map[spec.name] = tensorOf(
      spec.type,
      dims,
      Array.from({ length: size }, (_, i) => (i * 7) % 5),
    )
  }
  return map
}

/** A tensor of `type` from plain numbers (truncated for integer types). */
export function tensorOf(type: string, dims: number[], data: number[]): Tensor {
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
      throw new InferenceError('bad-input', `unsupported tensor type ${type}`)
  }
}
