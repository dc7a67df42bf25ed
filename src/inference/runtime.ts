/**
 * The ONNX Runtime layer: verified model loading, a bounded session cache, runs timed for
 * receipts, and calibration.
 *
 * A model is addressed by the CID of its ONNX file; `load` refuses bytes that do not hash to the
 * CID before ONNX Runtime ever parses them. Sessions use a fixed number of intra-op threads
 * (default 1) so results do not depend on scheduling and several workers on one machine do not
 * fight over cores. The execution provider is chosen once per runtime (`chooseExecutionProvider`)
 * and reported with every run, because it goes into the receipt; if a session cannot be created
 * with it, the runtime falls back to the CPU for that model and every later one, and logs it.
 *
 * Every file passes the safety check (`onnx-check.ts`: no external data, bounded structure)
 * before ONNX Runtime parses it.
 *
 * A language model (`load` with `files`: its tokenizer and configs, `lm/types.ts`) is driven by an
 * `LmEngine` (`lm/engine.ts`): its runs take a generation's tensors (`LM_INPUTS`) and return its
 * outputs (`LM_OUTPUTS`), stream tokens, and audit another worker's output by teacher forcing.
 *
 * `session.run` computes on the calling thread inside a `setImmediate`: fine for trusted models
 * and the bench baseline. A node serves models through `SandboxedRunner` (`runner/sandbox.ts`),
 * which runs this same class in a child process per model, with limits.
 */
import * as ort from 'onnxruntime-node'
import { parseCid, verifyFileCid } from '../core/cid.ts'
import { AbortError, InvalidInputError, describeError } from '../core/errors.ts'
import { silentLogger, type Logger } from '../core/logger.ts'
import type { ExecutionProvider } from './job.ts'
import { checkModel, type ModelCheckLimits } from './onnx-check.ts'
import { UnsafeModelError } from './errors.ts'
import { checkAgainstSchema, type Tensor, type TensorMap, type TensorSpec, TENSOR_TYPES } from './tensor.ts'
import type { LmRunStats, ModelLoadOptions, RunOptions } from './components.ts'
import { LmEngine } from './lm/engine.ts'
import { parseLmFiles, type LmModelFiles } from './lm/model-files.ts'
import {
  LM_INPUTS,
  LM_OUTPUTS,
  generationTensors,
  outputTensors,
  parseGenerationTensors,
  parseOutputTensors,
  type GenerationInput,
} from './lm/types.ts'

import {
  ModelCidMismatchError,
  ModelLoadError,
  ModelNotLoadedError,
  ModelRunError,
  RUNTIME_DEFAULTS,
  RUNTIME_NAME,
  RuntimeClosedError,
  chooseExecutionProvider,
  isLmFiles,
  LM_CALIBRATION,
  type ExecutionProviderChoice,
} from './runtime-facts.ts'

export * from './runtime-facts.ts'

// ---- tensors to and from ONNX Runtime ----

function toOrt(t: Tensor): ort.Tensor {
  return new ort.Tensor(t.type, t.data, [...t.dims])
}

function fromOrt(name: string, t: ort.Tensor): Tensor {
  const type = t.type as string
  if (!(TENSOR_TYPES as readonly string[]).includes(type))
    throw new ModelRunError(`output ${JSON.stringify(name)} has type ${type}, which Donghae does not carry`)
  const data = (t.data as Float32Array | Int32Array | BigInt64Array | Uint8Array).slice()
  return { type, dims: [...t.dims], data } as Tensor
}

function specsOf(metadata: readonly ort.InferenceSession.ValueMetadata[]): TensorSpec[] {
  return metadata.map((m) =>
    m.isTensor
      ? { name: m.name, type: m.type, dims: m.shape.map((d) => (typeof d === 'number' ? d : null)) }
      : { name: m.name, type: 'non-tensor', dims: [] },
  )
}

// ---- the runtime ----

export interface OnnxRuntimeOptions {
  /** @default 'auto' */
  executionProvider?: ExecutionProviderChoice
  /** Threads ONNX Runtime may use inside one operator. @default 1 */
  intraOpThreads?: number
  /** Sessions kept open; the least recently used is closed beyond this. @default 8 */
  maxSessions?: number
  /** @default process.platform */
  platform?: string
  logger?: Logger
  /** A monotonic clock in microseconds, for `computeMicros` and calibration. @default process.hrtime */
  micros?: () => number
  /** Bounds of the safety check. @default MODEL_CHECK_DEFAULTS */
  modelCheck?: Partial<ModelCheckLimits>
  /**
   * TESTS ONLY: skip the safety check, to show what the sandbox alone prevents (test/attacks/).
   * @default false
   */
  unsafeSkipModelCheck?: boolean
}

/** A model the runtime has a session for. */
export interface LoadedModel {
  cid: string
  /** The provider its session runs on (after any fallback). */
  ep: ExecutionProvider
  inputs: TensorSpec[]
  outputs: TensorSpec[]
  /** ONNX file size, bytes. */
  size: number
  /** A language model's context window, tokens (absent for other models). */
  contextLength?: number
}

export interface RunResult {
  outputs: TensorMap
  /** Time inside `session.run`, microseconds (what the receipt's `computeMicros` carries). */
  computeMicros: number
  /** The provider that ran it (what the receipt's `ep` carries). */
  ep: ExecutionProvider
  /** A language model's run. */
  lm?: LmRunStats
}

/** Options of `run`: a language model's (`RunOptions`), and cancellation before the run starts. */
export interface RunCallOptions extends RunOptions {
  signal?: AbortSignal
}

/** Options of `load`: `files` and `reload` as every runner takes them (`reload` is unused here). */
export interface LoadOptions extends ModelLoadOptions {
  signal?: AbortSignal
}

export interface CalibrateOptions {
  /** How long to keep running the sample. */
  durationMs: number
  /** Run at least this many times whatever the duration. @default 3 */
  minRuns?: number
  signal?: AbortSignal
}

export interface Calibration {
  /** Runs of the sample (one job each) completed per second of wall time. */
  jobsPerSecond: number
  /** Median time inside `session.run`, microseconds. */
  p50Micros: number
  /** Rows per job: the leading dim of the sample's first input. */
  batch: number
  runs: number
}

interface Entry {
  info: LoadedModel
  session: ort.InferenceSession
  /** A language model's engine. */
  lm?: LmEngine
  busy: number
  evicted: boolean
}

/** The safety check; bytes that are not a protobuf message at all are a load error, as ONNX Runtime would say. */
function checkedModel(bytes: Uint8Array, limits: Partial<ModelCheckLimits>): void {
  try {
    checkModel(bytes, limits)
  } catch (err) {
    if (err instanceof UnsafeModelError && err.details.malformed === true)
      throw new ModelLoadError(`ONNX Runtime cannot load the file: ${err.message}`, { cause: err })
    throw err
  }
}

const hrMicros = (): number => Number(process.hrtime.bigint() / 1000n)

export class OnnxRuntime {
  readonly runtime: string = RUNTIME_NAME
  readonly #threads: number
  readonly #maxSessions: number
  readonly #log: Logger
  readonly #micros: () => number
  readonly #sessions = new Map<string, Entry>()
  readonly #loading = new Map<string, Promise<void>>()
  readonly #check: ((bytes: Uint8Array) => void) | undefined
  #ep: ExecutionProvider
  #closed = false

  constructor(options: OnnxRuntimeOptions = {}) {
    this.#threads = options.intraOpThreads ?? RUNTIME_DEFAULTS.intraOpThreads
    this.#maxSessions = options.maxSessions ?? RUNTIME_DEFAULTS.maxSessions
    if (!Number.isSafeInteger(this.#threads) || this.#threads < 1)
      throw new InvalidInputError('intraOpThreads must be a positive integer')
    if (!Number.isSafeInteger(this.#maxSessions) || this.#maxSessions < 1)
      throw new InvalidInputError('maxSessions must be a positive integer')
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:inference:runtime')
    this.#micros = options.micros ?? hrMicros
    const limits = options.modelCheck ?? {}
    this.#check = options.unsafeSkipModelCheck === true ? undefined : (bytes) => checkedModel(bytes, limits)
    this.#ep = chooseExecutionProvider({
      platform: options.platform ?? process.platform,
      requested: options.executionProvider ?? RUNTIME_DEFAULTS.executionProvider,
    })
  }

  /** The provider new sessions are created with (CPU after a fallback). Each run reports its own. */
  get ep(): ExecutionProvider {
    return this.#ep
  }

  has(cid: string): boolean {
    return this.#sessions.has(cid)
  }

  /** What the runtime knows about a loaded model: provider, input and output schema. */
  model(cid: string): LoadedModel | undefined {
    return this.#sessions.get(cid)?.info
  }

  /**
   * Verifies that `bytes` hash to `cid`, then opens a session (once per CID; concurrent loads
   * share it). Throws `ModelCidMismatchError` (nothing cached), `InvalidInputError` for a bad
   * CID, `UnsafeModelError` when the safety check refuses the file, `ModelLoadError` when the
   * file is not a model ONNX Runtime can run. With `files` (`LM_FILES`) the model is a language
   * model: `LmModelError` when its files or graph cannot be served.
   */
  async load(cid: string, bytes: Uint8Array, options: LoadOptions = {}): Promise<void> {
    this.#checkOpen()
    if (!(await verifyFileCid(parseCid(cid), bytes)))
      throw new ModelCidMismatchError(`the model bytes do not hash to ${cid}`, { details: { cid, size: bytes.length } })
    if (this.#touch(cid)) return
    const pending = this.#loading.get(cid)
    if (pending) return pending
    if (options.signal?.aborted) throw new AbortError('model load was cancelled')
    this.#check?.(bytes)
    // the files are checked before ONNX Runtime parses anything
    const lmFiles = isLmFiles(options.files) ? parseLmFiles(options.files) : undefined
    const loading = this.#open(cid, bytes, lmFiles).finally(() => this.#loading.delete(cid))
    this.#loading.set(cid, loading)
    return loading
  }

  async #open(cid: string, bytes: Uint8Array, lmFiles: LmModelFiles | undefined): Promise<void> {
    const started = this.#micros()
    const { session, ep } = await this.#createSession(cid, bytes)
    if (this.#closed) {
      await session.release()
      throw new RuntimeClosedError('the runtime was closed while the model loaded')
    }
    let lm: LmEngine | undefined
    try {
      lm = lmFiles === undefined ? undefined : new LmEngine(session, lmFiles, { micros: this.#micros })
    } catch (err) {
      await session.release()
      throw err
    }
    const info: LoadedModel = {
      cid,
      ep,
      // a language model's jobs are generations, whatever its graph's own inputs
      inputs: lm ? [...LM_INPUTS] : specsOf(session.inputMetadata),
      outputs: lm ? [...LM_OUTPUTS] : specsOf(session.outputMetadata),
      size: bytes.length,
      ...(lm ? { contextLength: lm.contextLength } : {}),
    }
    this.#sessions.set(cid, { info, session, ...(lm ? { lm } : {}), busy: 0, evicted: false })
    this.#log.info({ cid, ep, micros: this.#micros() - started }, 'model loaded')
    this.#evictBeyondLimit()
  }

  #sessionOptions(ep: ExecutionProvider): ort.InferenceSession.SessionOptions {
    return {
      executionProviders: [ep],
      intraOpNumThreads: this.#threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
    }
  }

  async #createSession(
    cid: string,
    bytes: Uint8Array,
  ): Promise<{ session: ort.InferenceSession; ep: ExecutionProvider }> {
    const ep = this.#ep
    try {
      return { session: await ort.InferenceSession.create(bytes, this.#sessionOptions(ep)), ep }
    } catch (err) {
      if (ep === 'cpu')
        throw new ModelLoadError(`ONNX Runtime cannot load ${cid}: ${describeError(err)}`, { cause: err })
      this.#log.warn({ cid, ep, err: describeError(err) }, 'execution provider failed; falling back to cpu')
    }
    try {
      const session = await ort.InferenceSession.create(bytes, this.#sessionOptions('cpu'))
      this.#ep = 'cpu' // the provider is unusable here; don't pay for the failure again
      return { session, ep: 'cpu' }
    } catch (err) {
      throw new ModelLoadError(`ONNX Runtime cannot load ${cid}: ${describeError(err)}`, { cause: err })
    }
  }

  /**
   * Reads a model file's declared inputs and outputs without keeping a session (publishing a
   * model: its registry entry carries this schema). Opens a CPU session and closes it again.
   * Throws `UnsafeModelError` (safety check) or `ModelLoadError` when ONNX Runtime cannot load it.
   */
  async inspect(bytes: Uint8Array): Promise<{ inputs: TensorSpec[]; outputs: TensorSpec[] }> {
    this.#checkOpen()
    this.#check?.(bytes)
    let session: ort.InferenceSession
    try {
      session = await ort.InferenceSession.create(bytes, this.#sessionOptions('cpu'))
    } catch (err) {
      throw new ModelLoadError(`ONNX Runtime cannot load the file: ${describeError(err)}`, { cause: err })
    }
    try {
      return { inputs: specsOf(session.inputMetadata), outputs: specsOf(session.outputMetadata) }
    } finally {
      await session.release()
    }
  }

  /** Marks `cid` most recently used; false when it is not loaded. */
  #touch(cid: string): boolean {
    const entry = this.#sessions.get(cid)
    if (!entry) return false
    this.#sessions.delete(cid)
    this.#sessions.set(cid, entry)
    return true
  }

  #evictBeyondLimit(): void {
    for (const [cid, entry] of this.#sessions) {
      if (this.#sessions.size <= this.#maxSessions) break
      this.#sessions.delete(cid)
      entry.evicted = true
      this.#log.debug({ cid }, 'session evicted')
      if (entry.busy === 0) void this.#release(entry)
    }
  }

  async #release(entry: Entry): Promise<void> {
    try {
      await entry.session.release()
    } catch (err) {
      this.#log.warn({ cid: entry.info.cid, err: describeError(err) }, 'session release failed')
    }
  }

  /**
   * Runs a loaded model. Inputs must match its schema exactly (names, types, fixed dims):
   * `TensorSchemaError` otherwise, before ONNX Runtime sees them.
   *
   * A language model's inputs are a generation's (`LM_INPUTS`, `has_seed` = 1: the caller
   * resolves the seed) and its outputs `LM_OUTPUTS`; `options.onTokens` gets each token as it is
   * drawn, and `options.claimed` makes the run an audit (see `RunOptions`, `LmEngine.verify`).
   * `computeMicros` is then the whole generation's time. Throws `InvalidInputError`
   * (`ContextLengthError` for a prompt that fills the context window) for a bad job.
   */
  async run(cid: string, inputs: TensorMap, options: RunCallOptions = {}): Promise<RunResult> {
    this.#checkOpen()
    const entry = this.#sessions.get(cid)
    if (!entry) throw new ModelNotLoadedError(`model ${cid} is not loaded; load it first`, { details: { cid } })
    this.#touch(cid)
    checkAgainstSchema(inputs, entry.info.inputs, 'input')
    if (options.signal?.aborted) throw new AbortError('inference was cancelled')
    if (entry.lm !== undefined) return this.#runLm(entry, entry.lm, inputs, options)
    const feeds = Object.fromEntries(Object.entries(inputs).map(([name, t]) => [name, toOrt(t)]))
    entry.busy++
    const started = this.#micros()
    let results: ort.InferenceSession.ReturnType
    try {
      results = await entry.session.run(feeds)
    } catch (err) {
      throw new ModelRunError(`ONNX Runtime failed to run ${cid}: ${describeError(err)}`, { cause: err })
    } finally {
      entry.busy--
      if (entry.evicted && entry.busy === 0) void this.#release(entry)
    }
    const computeMicros = Math.max(0, Math.round(this.#micros() - started))
    const outputs: TensorMap = {}
    for (const spec of entry.info.outputs) {
      const t = results[spec.name]
      if (t === undefined) throw new ModelRunError(`model ${cid} produced no output ${JSON.stringify(spec.name)}`)
      outputs[spec.name] = fromOrt(spec.name, t)
    }
    return { outputs, computeMicros, ep: entry.info.ep }
  }

  async #runLm(entry: Entry, lm: LmEngine, inputs: TensorMap, options: RunCallOptions): Promise<RunResult> {
    const input = lmInput(inputs)
    const claimed = options.claimed === undefined ? undefined : parseOutputTensors(options.claimed)
    entry.busy++
    try {
      if (claimed !== undefined) {
        const tolerance = options.tolerance ?? { maxAbsPpm: 0 }
        const v = await lm.verify(input, claimed, tolerance)
        return {
          outputs: outputTensors(v),
          computeMicros: v.stats.computeMicros,
          ep: entry.info.ep,
          lm: { ...lmStats(v.stats), firstMismatch: v.firstMismatch },
        }
      }
      const g = await lm.generate(input, options.onTokens === undefined ? {} : { onTokens: options.onTokens })
      return {
        outputs: outputTensors(g),
        computeMicros: g.stats.computeMicros,
        ep: entry.info.ep,
        lm: lmStats(g.stats),
      }
    } finally {
      entry.busy--
      if (entry.evicted && entry.busy === 0) void this.#release(entry)
    }
  }

  /**
   * Measures throughput on `sampleInputs` (see `calibrate`). A language model ignores them (a
   * registry schema's sample is no valid generation) and measures generations of
   * `LM_CALIBRATION`: greedy, fixed length, end-of-sequence tokens ignored; `jobsPerSecond` is
   * such generations per second.
   */
  calibrate(cid: string, sampleInputs: TensorMap, options: CalibrateOptions): Promise<Calibration> {
    const lm = this.#sessions.get(cid)?.lm
    if (lm === undefined) return calibrate(this, cid, sampleInputs, options)
    const input = lmCalibrationInput(lm.files)
    const runner = {
      run: async (): Promise<{ computeMicros: number }> => {
        this.#checkOpen()
        const g = await lm.generate(input, { ignoreEos: true })
        return { computeMicros: g.stats.computeMicros }
      },
    }
    return calibrate(runner, cid, generationTensors(input.promptIds, input), options)
  }

  /** Releases every session; later calls fail with `RuntimeClosedError`. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await Promise.allSettled([...this.#loading.values()])
    const entries = [...this.#sessions.values()]
    this.#sessions.clear()
    await Promise.all(entries.map((e) => this.#release(e)))
  }

  #checkOpen(): void {
    if (this.#closed) throw new RuntimeClosedError('the ONNX runtime is closed')
  }
}

/** A generation's input from its job tensors; the seed must be resolved (`has_seed` = 1). */
export function lmInput(inputs: TensorMap): GenerationInput {
  const { promptIds, params } = parseGenerationTensors(inputs)
  if (params.seed === null)
    throw new InvalidInputError(
      'a generation reaches the runner with its seed resolved (has_seed = 1): the worker seeds it from the job id',
    )
  return { ...params, promptIds, seed: params.seed }
}

function lmStats(s: { promptTokens: number; outputTokens: number; ttftMicros: number }): LmRunStats {
  return { promptTokens: s.promptTokens, outputTokens: s.outputTokens, ttftMicros: s.ttftMicros }
}

/** The calibration job of a language model (`LM_CALIBRATION`). */
export function lmCalibrationInput(files: LmModelFiles): GenerationInput {
  const encoded = files.tokenizer.encode(LM_CALIBRATION.prompt)
  const context = files.config.contextLength
  // a fixed length whatever the tokenizer: the text's tokens, repeated
  const n = Math.max(1, Math.min(LM_CALIBRATION.promptTokens, context - 1))
  return {
    promptIds: Array.from({ length: n }, (_, i) => encoded[i % encoded.length] ?? 0),
    maxTokens: Math.max(1, Math.min(LM_CALIBRATION.outputTokens, context - n)),
    temperatureMilli: 0,
    topPMilli: 1000,
    topK: 0,
    seed: 0n,
    stop: [],
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : Math.round((sorted[mid - 1]! + sorted[mid]!) / 2)
}

/**
 * Calibration (seed 000): runs the sample repeatedly for `durationMs` after one warm-up run and
 * reports jobs per second of wall time and the median compute time. A node runs it at start and
 * periodically, and advertises the result; it needs only `run`.
 */
export async function calibrate(
  runner: {
    run(cid: string, inputs: TensorMap, options?: { signal?: AbortSignal }): Promise<{ computeMicros: number }>
  },
  cid: string,
  sampleInputs: TensorMap,
  options: CalibrateOptions,
): Promise<Calibration> {
  if (!(options.durationMs >= 0)) throw new InvalidInputError('durationMs must be \u2265 0')
  const minRuns = options.minRuns ?? 3
  await runner.run(cid, sampleInputs, options) // warm-up: first runs allocate
  const times: number[] = []
  const started = performance.now()
  let elapsed = 0
  while (times.length < minRuns || elapsed < options.durationMs) {
    if (options.signal?.aborted) throw new AbortError('calibration was cancelled')
    times.push((await runner.run(cid, sampleInputs, options)).computeMicros)
    elapsed = performance.now() - started
  }
  const first = Object.values(sampleInputs)[0]
  return {
    jobsPerSecond: times.length / (Math.max(elapsed, 0.001) / 1000),
    p50Micros: median(times),
    batch: first?.dims[0] ?? 1,
    runs: times.length,
  }
}
