/**
 * `SandboxedRunner`: the `ModelRunner` a node serves models with. Each model runs in its own
 * child process (`process.ts`, `child.ts`) that holds `OnnxRuntime` for that one model, in an
 * empty working directory with a minimal environment, under the limits of `constants.ts`. The
 * node's event loop only writes and reads frames; ONNX Runtime never runs on it.
 *
 * One process per model, not a shared pool: a model that crashes, stalls or bloats its process
 * takes only its own jobs down, and killing it (the only way to stop a synchronous ONNX Runtime
 * call) never fails another model's job in flight. The cost is a Node process per served model
 * (about 100-120 MB resident with ONNX Runtime loaded), bounded by `maxSessions` (8): the least
 * recently used model's process is closed beyond that, as `OnnxRuntime` closes sessions.
 *
 * A process that breaks a run-time, memory or output-frame limit is killed, or one that dies on
 * its own (`crashed`); the job fails with `ModelLimitError` and the model's process is replaced
 * at once (the model stays loaded: `has` is true and the next run waits for the new process).
 * If the replacement cannot load the model, the model is dropped (`has` turns false). Every
 * limit broken is reported to `onLimit`, so the worker can mark the model bad (`BadModels`) and
 * `unload` it.
 *
 * A language model (`load` with its tokenizer files) runs its whole generation in its process:
 * the KV cache never leaves it, and each token comes back in a `tokens` frame as it is drawn, so
 * `onTokens` fires in the node while the run goes on. Its limits scale with the model's size and
 * the job's tokens (`constants.ts`).
 */
import { tmpdir } from 'node:os'
import { systemClock, type Clock } from '../../core/clock.ts'
import { AbortError, InvalidInputError, describeError } from '../../core/errors.ts'
import { silentLogger, type Logger } from '../../core/logger.ts'
import { ModelLimitError } from '../errors.ts'
import type { ExecutionProvider } from '../job.ts'
import type { ModelCheckLimits } from '../onnx-check.ts'
import {
  ModelNotLoadedError,
  RUNTIME_DEFAULTS,
  RUNTIME_NAME,
  RuntimeClosedError,
  chooseExecutionProvider,
  LM_CALIBRATION,
  isLmFiles,
  type ExecutionProviderChoice,
} from '../runtime-facts.ts'
import type { CalibrateOptions, Calibration, LoadOptions, LoadedModel, RunCallOptions, RunResult } from '../runtime.ts'
import type { LmRunStats, ModelBytes } from '../components.ts'
import { LM_OUTPUTS, type LmFiles } from '../lm/types.ts'
import { TensorLimitError, checkAgainstSchema, type TensorMap, type TensorSpec } from '../tensor.ts'
import { FRAME_HEADER_ALLOWANCE, RUNNER_LIMITS, type RunnerLimits } from './constants.ts'
import { ModelProcess, type RequestOptions } from './process.ts'
import { packTensors, tensorMapBytes, unpackTensors, type ChildConfig } from './protocol.ts'

export interface SandboxedRunnerOptions {
  /** @default 'auto' */
  executionProvider?: ExecutionProviderChoice
  /** Threads ONNX Runtime may use inside one operator, per model process. @default 1 */
  intraOpThreads?: number
  /** Model processes kept; the least recently used is closed beyond this. @default 8 */
  maxSessions?: number
  limits?: Partial<RunnerLimits>
  /** Bounds of the safety check (run in the child). @default MODEL_CHECK_DEFAULTS */
  modelCheck?: Partial<ModelCheckLimits>
  /** Where each process's empty working directory is made. @default os.tmpdir() */
  sandboxRoot?: string
  /** Timers for the limits and the memory poll. @default systemClock */
  clock?: Clock
  /** @default process.platform */
  platform?: string
  logger?: Logger
  /** Called for every limit a model breaks (after its process was killed or replaced as needed). */
  onLimit?(cid: string, error: ModelLimitError): void
  /** TESTS ONLY: skip the safety check in the child, to show what the sandbox alone prevents. @default false */
  unsafeSkipModelCheck?: boolean
}

/** A model's process as `/v1/inference/stats` may show it. */
export interface ModelProcessView {
  cid: string
  pid: number | undefined
  /** Resident memory at the last poll, bytes (0 before the first). */
  rssBytes: number
  /** Processes started for this model after the first. */
  restarts: number
  busy: boolean
}

/** What a model's process may use: resident memory and address space (0: no rlimit). */
interface MemoryBounds {
  rssBytes: number
  addressSpaceBytes: number
}

interface Served {
  cid: string
  /**
   * Where a replacement process gets the model: the caller's `reload` (the bytes are not kept
   * here), or the bytes and a language model's files kept since the load.
   */
  source: () => Promise<ModelBytes | undefined>
  info: LoadedModel
  proc: ModelProcess
  /** The process to use: the current one, or its replacement while it starts. */
  ready: Promise<ModelProcess>
  rssBytes: number
  restarts: number
  closed: boolean
}

export class SandboxedRunner {
  readonly runtime: string = RUNTIME_NAME
  readonly limits: Readonly<RunnerLimits>
  readonly #o: SandboxedRunnerOptions
  readonly #clock: Clock
  readonly #log: Logger
  readonly #maxSessions: number
  readonly #models = new Map<string, Served>()
  readonly #loading = new Map<string, Promise<void>>()
  readonly #procs = new Set<ModelProcess>()
  /** Each process's resident-memory bound (a language model's grows with its size). */
  readonly #rssLimits = new WeakMap<ModelProcess, number>()
  #ep: Exclude<ExecutionProvider, 'webgpu'>
  #stopPoll: (() => void) | undefined
  #closed = false

  constructor(options: SandboxedRunnerOptions = {}) {
    this.#o = options
    this.limits = Object.freeze({ ...RUNNER_LIMITS, ...options.limits })
    this.#clock = options.clock ?? systemClock
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:inference:sandbox')
    this.#maxSessions = options.maxSessions ?? RUNTIME_DEFAULTS.maxSessions
    if (!Number.isSafeInteger(this.#maxSessions) || this.#maxSessions < 1)
      throw new InvalidInputError('maxSessions must be a positive integer')
    const threads = options.intraOpThreads ?? RUNTIME_DEFAULTS.intraOpThreads
    if (!Number.isSafeInteger(threads) || threads < 1)
      throw new InvalidInputError('intraOpThreads must be a positive integer')
    this.#ep = chooseExecutionProvider({
      platform: options.platform ?? process.platform,
      requested: options.executionProvider ?? RUNTIME_DEFAULTS.executionProvider,
    })
  }

  /** The provider new processes open sessions with (CPU after a fallback). Each run reports its own. */
  get ep(): ExecutionProvider {
    return this.#ep
  }

  has(cid: string): boolean {
    return this.#models.has(cid)
  }

  model(cid: string): LoadedModel | undefined {
    return this.#models.get(cid)?.info
  }

  /** Every model's process, for stats. */
  processes(): ModelProcessView[] {
    return [...this.#models.values()].map((s) => ({
      cid: s.cid,
      pid: s.proc.pid,
      rssBytes: s.rssBytes,
      restarts: s.restarts,
      busy: s.proc.busy,
    }))
  }

  // ---- processes ----

  #childConfig(): ChildConfig {
    return {
      ep: this.#ep,
      intraOpThreads: this.#o.intraOpThreads ?? RUNTIME_DEFAULTS.intraOpThreads,
      // a model file (a language model's with its files), or a run's inputs with an audit's claimed outputs
      maxFrameBytes:
        Math.max(
          this.limits.maxModelBytes,
          this.limits.maxLmModelBytes + this.limits.maxLmFileBytes,
          this.limits.maxInputBytes + this.limits.maxOutputBytes,
        ) + FRAME_HEADER_ALLOWANCE,
      maxOutputBytes: this.limits.maxOutputBytes,
      ...(this.#o.modelCheck === undefined ? {} : { modelCheck: this.#o.modelCheck }),
      ...(this.#o.unsafeSkipModelCheck === true ? { unsafeSkipModelCheck: true } : {}),
    }
  }

  /** Memory bounds of a model's process: they grow with its file (`lmMemoryPerModelByte`), whatever the model. */
  #memoryBounds(modelBytes: number, _lm: boolean): MemoryBounds {
    const extra = Math.ceil(modelBytes * this.limits.lmMemoryPerModelByte)
    return {
      rssBytes: this.limits.maxRssBytes + extra,
      // CUDA maps far more address space than it uses: the rlimit is for the CPU provider
      addressSpaceBytes:
        this.#ep === 'cpu' && this.limits.addressSpaceBytes > 0 ? this.limits.addressSpaceBytes + extra : 0,
    }
  }

  /** A started process that is ready, within the load-time limit (which `then` also runs under). */
  async #withProcess<T>(
    then: (proc: ModelProcess) => Promise<T>,
    bounds: MemoryBounds = this.#memoryBounds(0, false),
  ): Promise<{ proc: ModelProcess; value: T }> {
    const proc = await ModelProcess.spawn({
      root: this.#o.sandboxRoot ?? tmpdir(),
      config: this.#childConfig(),
      addressSpaceBytes: bounds.addressSpaceBytes,
      maxFrameBytes: this.limits.maxOutputBytes + FRAME_HEADER_ALLOWANCE,
      clock: this.#clock,
      logger: this.#log,
    })
    this.#rssLimits.set(proc, bounds.rssBytes)
    this.#procs.add(proc)
    void proc.exited.then(() => this.#procs.delete(proc))
    this.#ensurePolling()
    const ms = this.limits.loadTimeMs
    const cancel = this.#clock.setTimer(ms, () =>
      proc.kill(
        new ModelLimitError('load-time', `the model's process did not load it within ${ms} ms (load-time limit)`, {
          details: { limitMs: ms },
        }),
      ),
    )
    try {
      await proc.ready
      return { proc, value: await then(proc) }
    } catch (err) {
      await proc.close()
      throw err
    } finally {
      cancel()
    }
  }

  async #start(
    cid: string,
    bytes: Uint8Array,
    files: LmFiles | undefined,
  ): Promise<{ proc: ModelProcess; info: LoadedModel }> {
    const named = Object.entries(files ?? {}).filter((e): e is [string, Uint8Array] => e[1] !== undefined)
    const header = {
      op: 'load',
      cid,
      ...(files === undefined ? {} : { files: named.map(([name, b]) => ({ name, length: b.length })) }),
    }
    const { proc, value } = await this.#withProcess(
      async (p) => (await p.request(header, [bytes, ...named.map(([, b]) => b)])).header.model as LoadedModel,
      this.#memoryBounds(bytes.length, files !== undefined),
    )
    if (value.ep === 'cpu' && this.#ep !== 'cpu') {
      this.#log.warn({ cid, ep: this.#ep }, 'execution provider failed in the sandbox; falling back to cpu')
      this.#ep = 'cpu'
    }
    return { proc, info: value }
  }

  // ---- ModelRunner ----

  /**
   * Starts a process for `cid` and loads `bytes` in it (once per CID; concurrent loads share it).
   * The child verifies the CID and runs the safety check before ONNX Runtime sees the bytes.
   * Throws `ModelCidMismatchError`, `UnsafeModelError`, `ModelLoadError`, or `ModelLimitError`
   * (`load-time`, `memory`, `crashed`); nothing stays loaded then. With `files` (`LM_FILES`)
   * the model is a language model (`LmModelError` when it cannot be served).
   */
  async load(cid: string, bytes: Uint8Array, options: LoadOptions = {}): Promise<void> {
    this.#checkOpen()
    const files = isLmFiles(options.files) ? options.files : undefined
    const maxBytes = files === undefined ? this.limits.maxModelBytes : this.limits.maxLmModelBytes
    if (bytes.length > maxBytes)
      throw new InvalidInputError(`a model of ${bytes.length} bytes exceeds the ${maxBytes}-byte limit`)
    const fileBytes = Object.values(files ?? {}).reduce((n, b) => n + (b?.length ?? 0), 0)
    if (fileBytes > this.limits.maxLmFileBytes)
      throw new InvalidInputError(
        `a language model's files of ${fileBytes} bytes exceed the ${this.limits.maxLmFileBytes}-byte limit`,
      )
    if (this.#touch(cid)) return
    const pending = this.#loading.get(cid)
    if (pending) return pending
    if (options.signal?.aborted) throw new AbortError('model load was cancelled')
    // without the caller's reload, a replacement process gets the bytes kept here
    const source = options.reload ?? (async (): Promise<ModelBytes> => ({ bytes, files }))
    const loading = this.#open(cid, bytes, files, source).finally(() => this.#loading.delete(cid))
    this.#loading.set(cid, loading)
    return loading
  }

  async #open(cid: string, bytes: Uint8Array, files: LmFiles | undefined, source: Served['source']): Promise<void> {
    let started: { proc: ModelProcess; info: LoadedModel }
    try {
      started = await this.#start(cid, bytes, files)
    } catch (err) {
      if (err instanceof ModelLimitError) this.#o.onLimit?.(cid, err)
      throw err
    }
    if (this.#closed) {
      await started.proc.close()
      throw new RuntimeClosedError('the runner was closed while the model loaded')
    }
    const served: Served = {
      cid,
      source,
      ...started,
      ready: Promise.resolve(started.proc),
      rssBytes: 0,
      restarts: 0,
      closed: false,
    }
    this.#models.set(cid, served)
    this.#watch(served, started.proc)
    this.#log.info({ cid, ep: started.info.ep, pid: started.proc.pid }, 'model loaded in its sandbox')
    this.#evictBeyondLimit()
  }

  /** Starts a replacement process for `served` with the model read again from its source. */
  async #restart(served: Served): Promise<{ proc: ModelProcess; info: LoadedModel }> {
    const model = await served.source()
    if (model === undefined) throw new ModelNotLoadedError(`model ${served.cid} is no longer stored on this node`)
    return this.#start(served.cid, model.bytes, model.files)
  }

  /** Replaces `proc` when it dies while still serving its model. */
  #watch(served: Served, proc: ModelProcess): void {
    void proc.exited.then(() => {
      if (served.closed || served.proc !== proc || this.#closed) return
      served.restarts++
      const next = this.#restart(served).then(
        ({ proc: fresh }) => {
          if (served.closed || this.#closed) {
            void fresh.close()
            throw new RuntimeClosedError(`model ${served.cid} was unloaded`)
          }
          served.proc = fresh
          this.#watch(served, fresh)
          return fresh
        },
        (err: unknown) => {
          this.#log.warn(
            { cid: served.cid, err: describeError(err) },
            'model process could not be replaced; model dropped',
          )
          if (this.#models.get(served.cid) === served) this.#models.delete(served.cid)
          served.closed = true
          if (err instanceof ModelLimitError) this.#o.onLimit?.(served.cid, err)
          throw err
        },
      )
      next.catch(() => {}) // awaited by the next run, if any
      served.ready = next
    })
  }

  /**
   * Runs a loaded model in its process. Inputs must match its schema (`TensorSchemaError` before
   * anything is sent). Throws `ModelLimitError` (`run-time`, `memory`, `output-size`, `crashed`)
   * when the model breaks a limit, `ModelRunError` when ONNX Runtime fails, `ModelNotLoadedError`.
   * A run cannot be interrupted once sent; an aborted `signal` fails the call at once and the
   * run's result is dropped.
   *
   * A language model's run (see `OnnxRuntime.run`) generates in the model's process; `onTokens`
   * is called here with each token as the process streams it, before the run resolves. Its
   * run-time limit grows with the tokens it may process (`lmTokenTimeMs`).
   */
  async run(cid: string, inputs: TensorMap, options: RunCallOptions = {}): Promise<RunResult> {
    const served = this.#served(cid, inputs)
    const lm = served.info.contextLength !== undefined
    const packed = packTensors(
      inputs,
      served.info.inputs.map((s) => s.name),
    )
    const claimed =
      lm && options.claimed !== undefined
        ? packTensors(
            options.claimed,
            LM_OUTPUTS.map((s) => s.name),
          )
        : undefined
    if (claimed !== undefined && claimed.bytes > this.limits.maxOutputBytes)
      throw new TensorLimitError(
        `claimed outputs of ${claimed.bytes} bytes exceed the ${this.limits.maxOutputBytes}-byte limit`,
      )
    const onTokens = lm ? options.onTokens : undefined
    const header = {
      op: 'run',
      cid,
      tensors: packed.tensors,
      ...(claimed === undefined ? {} : { claimed: claimed.tensors, tolerance: options.tolerance ?? { maxAbsPpm: 0 } }),
      ...(onTokens === undefined ? {} : { stream: true }),
    }
    const limitMs = lm ? this.#lmRunTimeMs(inputs, options.claimed) : this.limits.runTimeMs
    const reply = await this.#request(
      served,
      header,
      [...packed.parts, ...(claimed?.parts ?? [])],
      {
        limitMs,
        limit: 'run-time',
        ...(onTokens === undefined ? {} : { onProgress: (h) => onTokens(h.ids as number[]) }),
      },
      options.signal,
    )
    // as OnnxRuntime.run returns them: whatever ONNX Runtime produced, in the model's output order
    const outputs = unpackTensors(reply.header.tensors, reply.payload)
    return {
      outputs,
      computeMicros: Number(reply.header.computeMicros),
      ep: reply.header.ep as ExecutionProvider,
      ...(reply.header.lm === undefined ? {} : { lm: reply.header.lm as LmRunStats }),
    }
  }

  /** The run-time limit of a language model's run: `runTimeMs` plus `lmTokenTimeMs` per token it may process. */
  #lmRunTimeMs(inputs: TensorMap, claimed: TensorMap | undefined): number {
    const prompt = inputs.prompt_ids?.data.length ?? 0
    const maxTokens = Number(inputs.sampling?.data[0] ?? 0n)
    const claimedTokens = claimed?.output_ids?.data.length ?? 0
    const tokens = prompt + Math.min(maxTokens, 2 ** 20) + claimedTokens
    return this.limits.runTimeMs + tokens * this.limits.lmTokenTimeMs
  }

  /** Calibration (see `calibrate` in runtime.ts), run inside the model's process. */
  async calibrate(cid: string, sampleInputs: TensorMap, options: CalibrateOptions): Promise<Calibration> {
    if (!(options.durationMs >= 0)) throw new InvalidInputError('durationMs must be \u2265 0')
    const served = this.#served(cid, sampleInputs)
    const minRuns = options.minRuns ?? 3
    const packed = packTensors(
      sampleInputs,
      served.info.inputs.map((s) => s.name),
    )
    const header = { op: 'calibrate', cid, tensors: packed.tensors, durationMs: options.durationMs, minRuns }
    // every run may take up to the run-time limit, plus the warm-up run
    const lmTokens = LM_CALIBRATION.promptTokens + LM_CALIBRATION.outputTokens
    const perRun =
      this.limits.runTimeMs + (served.info.contextLength === undefined ? 0 : lmTokens * this.limits.lmTokenTimeMs)
    const limitMs = options.durationMs + (minRuns + 1) * perRun
    const reply = await this.#request(served, header, packed.parts, { limitMs, limit: 'run-time' }, options.signal)
    return reply.header.calibration as Calibration
  }

  /**
   * A model file's declared inputs and outputs, read in a one-off sandbox process (the safety
   * check runs first). Throws `UnsafeModelError`, `ModelLoadError` or `ModelLimitError`. A file
   * larger than `maxModelBytes` can only be a language model's graph (publishing one inspects
   * it): it may be up to `maxLmModelBytes`, with a language model's memory bounds.
   */
  async inspect(bytes: Uint8Array): Promise<{ inputs: TensorSpec[]; outputs: TensorSpec[] }> {
    this.#checkOpen()
    const maxBytes = Math.max(this.limits.maxModelBytes, this.limits.maxLmModelBytes)
    if (bytes.length > maxBytes)
      throw new InvalidInputError(`a model of ${bytes.length} bytes exceeds the ${maxBytes}-byte limit`)
    const { proc, value } = await this.#withProcess(
      async (p) => (await p.request({ op: 'inspect' }, [bytes])).header.schema,
      this.#memoryBounds(bytes.length, bytes.length > this.limits.maxModelBytes),
    )
    await proc.close()
    return value as { inputs: TensorSpec[]; outputs: TensorSpec[] }
  }

  /** Closes a model's process; `has(cid)` is false afterwards. */
  async unload(cid: string): Promise<void> {
    const served = this.#models.get(cid)
    if (served === undefined) return
    this.#models.delete(cid)
    served.closed = true
    await served.proc.close()
  }

  /** Closes every process; later calls fail with `RuntimeClosedError`. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#stopPoll?.()
    await Promise.allSettled([...this.#loading.values()])
    for (const served of this.#models.values()) served.closed = true
    this.#models.clear()
    await Promise.all([...this.#procs].map((p) => p.close()))
  }

  // ---- internals ----

  #served(cid: string, inputs: TensorMap): Served {
    this.#checkOpen()
    const served = this.#models.get(cid)
    if (served === undefined)
      throw new ModelNotLoadedError(`model ${cid} is not loaded; load it first`, { details: { cid } })
    this.#touch(cid)
    checkAgainstSchema(inputs, served.info.inputs, 'input')
    const bytes = tensorMapBytes(inputs)
    if (bytes > this.limits.maxInputBytes)
      throw new TensorLimitError(`inputs of ${bytes} bytes exceed the ${this.limits.maxInputBytes}-byte limit`, {
        details: { bytes, maxBytes: this.limits.maxInputBytes },
      })
    return served
  }

  async #request(
    served: Served,
    header: { op: string; [key: string]: unknown },
    parts: Uint8Array[],
    limits: RequestOptions,
    signal?: AbortSignal,
  ): Promise<{ header: Record<string, unknown>; payload: Uint8Array }> {
    if (signal?.aborted) throw new AbortError('inference was cancelled')
    const proc = await served.ready
    const request = proc.request(header, parts, limits)
    this.#ensurePolling() // the process is busy now: it can grow
    const reply = request.catch((err: unknown) => {
      if (err instanceof ModelLimitError) this.#o.onLimit?.(served.cid, err)
      throw err
    })
    if (signal === undefined) return reply
    reply.catch(() => {})
    return new Promise((resolve, reject) => {
      const onAbort = (): void => reject(new AbortError('inference was cancelled'))
      signal.addEventListener('abort', onAbort, { once: true })
      reply.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
    })
  }

  /**
   * Reads the resident memory of every process that can grow (one loading its model, or running a
   * request) and kills the ones over the limit, every `memoryPollMs` while there is such a process:
   * started when a process is spawned and when a request goes to one, it stops once none can grow,
   * so a runner whose models all wait for work holds no timer (an idle node wakes for nothing).
   */
  #ensurePolling(): void {
    if (this.#stopPoll !== undefined || this.#closed) return
    const tick = (): void => {
      this.#stopPoll = this.#clock.setTimer(this.limits.memoryPollMs, () => {
        void this.#pollMemory().finally(() => {
          if (!this.#closed && this.#growing().length > 0) tick()
          else this.#stopPoll = undefined
        })
      })
    }
    tick()
  }

  /** Whether the memory poll is scheduled (it is only while a process can grow). */
  get polling(): boolean {
    return this.#stopPoll !== undefined
  }

  /** Processes that can grow: busy, or not (yet) serving a model. An idle model process cannot. */
  #growing(): ModelProcess[] {
    const serving = new Set([...this.#models.values()].map((s) => s.proc))
    return [...this.#procs].filter((proc) => proc.busy || !serving.has(proc))
  }

  async #pollMemory(): Promise<void> {
    const byProc = new Map([...this.#models.values()].map((s) => [s.proc, s]))
    await Promise.all(
      this.#growing().map(async (proc) => {
        const rss = await proc.rssBytes()
        if (rss === undefined) return
        const served = byProc.get(proc)
        if (served !== undefined) served.rssBytes = rss
        const limit = this.#rssLimits.get(proc) ?? this.limits.maxRssBytes
        if (rss <= limit) return
        const mib = (n: number): string => `${Math.round(n / 2 ** 20)} MiB`
        proc.kill(
          new ModelLimitError(
            'memory',
            `the model's process grew to ${mib(rss)}, over the ${mib(limit)} memory limit; it was stopped`,
            {
              details: { rssBytes: rss, maxRssBytes: limit },
            },
          ),
        )
      }),
    )
  }

  /** Marks `cid` most recently used; false when it is not loaded. */
  #touch(cid: string): boolean {
    const served = this.#models.get(cid)
    if (served === undefined) return false
    this.#models.delete(cid)
    this.#models.set(cid, served)
    return true
  }

  #evictBeyondLimit(): void {
    for (const [cid, served] of this.#models) {
      if (this.#models.size <= this.#maxSessions) break
      this.#models.delete(cid)
      served.closed = true
      this.#log.debug({ cid }, 'model process evicted')
      // a run in flight finishes first (killing the process would fail it)
      void served.proc.drained().then(() => served.proc.close())
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new RuntimeClosedError('the sandboxed runner is closed')
  }
}
