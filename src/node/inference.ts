/**
 * The inference market inside a running node: model files, ONNX Runtime, the components built by
 * `createInference` (worker, gateway, settler, auditor) wired to the node's chain, own
 * transaction queue and transport, and the `InferenceApi` the HTTP routes serve.
 *
 * Model files: at start the node imports `*.onnx` (and the `.json` beside them) from the demo
 * models shipped with Donghae (`models/`) and from `<home>/models/` into its model files, so a
 * model registered on chain under one of those CIDs is served without a download; any other
 * registered model is fetched from the peers that have it and verified against its CID. On a
 * libp2p node (`libp2p` given) model files live in the content store (net/content-store.ts:
 * UnixFS over bitswap, any size, several peers at once, bounded by config `modelStorage`), else in
 * the blob store (model-files.ts).
 *
 * The gateway's reservations, the settler's queue and the worker's unsettled receipts are
 * journaled in the node's database (bucket `inference-journal`), so a restart neither loses a
 * worker's pay nor lets the gateway dispatch more than a deposit holds.
 */
import { readdir, readFile } from 'node:fs/promises'
import type { Dirent } from 'node:fs'
import { join } from 'node:path'
import { decode, encode } from '../core/codec.ts'
import { systemClock } from '../core/clock.ts'
import { describeError, InvalidInputError } from '../core/errors.ts'
import { cryptoRng } from '../core/rng.ts'
import { silentLogger, type Logger } from '../core/logger.ts'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import { bytesCodec, utf8Codec } from '../store/codecs.ts'
import type { Bucket } from '../store/store.ts'
import type { PeerTransport } from '../core/transport.ts'
import type {
  CompletionOutcome,
  CompletionRequest,
  FetchView,
  InferenceApi,
  ModelView,
  PublishModelRequest,
  SettlementView,
  WorkerView,
} from '../api/inference-api.ts'
import type { Libp2p } from '@libp2p/interface'
import type { BlobSource } from '../inference/models.ts'
import { ModelFetches, openModelFiles, type ModelFiles } from './model-files.ts'
import { InferenceError } from '../inference/errors.ts'
import { createInference, type Inference } from '../inference/index.ts'
import type { AdvertBus, AuditEvent, JobEvent, WorkerBehaviour } from '../inference/components.ts'
import type { OnnxRuntime } from '../inference/runtime.ts'
import type { ExecutionProviderChoice } from '../inference/runtime-facts.ts'
import { SandboxedRunner } from '../inference/runner/sandbox.ts'
import { SERVE_ALL, allows, type ServePolicy } from '../inference/serve-policy.ts'
import type { Journal } from '../inference/settler.ts'
import type { ReceiptKeeper } from '../inference/worker.ts'
import { parseReceipt, receiptValue } from '../inference/job.ts'
import { decodeModelSpec } from '../inference/chain/decode.ts'
import { settlementView } from './adapters.ts'
import { depositOf, isSchedulable, listModels, listWorkers, type ModelRecord } from '../inference/chain/state.ts'
import { workerScore } from '../inference/chain/rewards.ts'
import { TextCodec } from '../inference/text.ts'
import { complete as completeLm, type CompletionTokenizer } from '../inference/lm/completion.ts'
import { checkDecoderLayout, completionTokenizer, contextLengthOf, LM_TOLERANCE } from '../inference/lm/tokenizer.ts'
import { LM_FILES, LM_INPUTS, LM_OUTPUTS, LM_REQUIRED_FILES, type LmFiles } from '../inference/lm/types.ts'
import { ModelFolderError, readModelFolder } from '../inference/lm/folder.ts'
import { DEMO_MODELS_DIR } from '../inference/demo-models.ts'
import type { DonghaeNode } from './chain-node.ts'

/** The demo models shipped with the package. */
export const BUILTIN_MODELS_DIR = DEMO_MODELS_DIR

export interface NodeInferenceOptions {
  node: DonghaeNode
  key: Ed25519KeyPair
  transport: PeerTransport
  adverts: AdvertBus
  dataDir: string
  /** Stops the components (the node's root signal). */
  signal: AbortSignal
  /** Each model fetch's progress (the node's `model.fetch` events). */
  onFetch?(view: FetchView): void
  /** Extra directories whose `*.onnx` files are imported into the model files. */
  modelDirs?: string[]
  /** The node's libp2p host: model files then live in the content store (bitswap). @default the blob store */
  libp2p?: Libp2p
  /** Disk budget of the content store, bytes (config modelStorage). @default CONTENT_STORE_DEFAULTS.budgetBytes */
  modelStorageBytes?: number
  worker?: boolean
  slots?: number
  /** Memory for the worker's loaded models, bytes. @default half the machine's memory */
  memoryBudget?: number
  behaviour?: WorkerBehaviour
  canaryPpm?: number
  /** Execution provider: 'auto' (by platform), 'cpu', 'coreml' or 'cuda'. @default 'auto' */
  executionProvider?: ExecutionProviderChoice
  /** Which registered models the worker serves (config `serve`). @default all */
  serve?: ServePolicy
  /**
   * Where models run: 'sandbox', a child process per model in an empty directory with limits
   * (inference/runner/sandbox.ts), or 'in-process' (no isolation: trusted models only). @default 'sandbox'
   */
  runner?: RunnerChoice
  logger?: Logger
  onJob?(event: JobEvent): void
  onAudit?(event: AuditEvent): void
}

export type RunnerChoice = 'sandbox' | 'in-process'

/** Reads `DONGHAE_UNSAFE_WORKER` (tests and demos of the audit system only): `cheat:0.1`, `lazy` or `slow:<ms>`. */
export function behaviourFromEnv(value: string | undefined): WorkerBehaviour {
  if (value === undefined || value === '' || value === 'honest') return { kind: 'honest' }
  if (value === 'lazy') return { kind: 'lazy' }
  const m = /^cheat:(0(\.\d+)?|1(\.0+)?)$/.exec(value)
  if (m !== null) return { kind: 'cheat', rate: Number(m[1]) }
  const slow = /^slow:(\d{1,6})$/.exec(value)
  if (slow !== null) return { kind: 'slow', ms: Number(slow[1]) }
  throw new InvalidInputError(
    `DONGHAE_UNSAFE_WORKER must be honest, lazy, cheat:<rate 0..1> or slow:<ms>, not ${value}`,
  )
}

/** A journal over one key prefix of the node's `inference-journal` bucket. */
function bucketJournal(bucket: Bucket<string, Uint8Array>, prefix: string): Journal {
  return {
    put: (key, value) => bucket.put(`${prefix}${key}`, value),
    delete: (key) => bucket.delete(`${prefix}${key}`),
    list: async () => {
      const out: Array<[string, Uint8Array]> = []
      for await (const [key, value] of bucket.entries({ prefix: new TextEncoder().encode(prefix) }))
        out.push([key.slice(prefix.length), value])
      return out
    },
  }
}

function receiptKeeper(journal: Journal): ReceiptKeeper {
  return {
    put: (id, receipt) => journal.put(id, encode(receiptValue(receipt))),
    delete: (id) => journal.delete(id),
    list: async () => (await journal.list()).map(([, bytes]) => parseReceipt(decode(bytes))),
  }
}

export class NodeInference implements InferenceApi {
  readonly market: Inference
  /** Model files: the content store on a libp2p node, else the blob store (model-files.ts). */
  readonly blobs: ModelFiles
  readonly runtime: OnnxRuntime | SandboxedRunner
  readonly #o: NodeInferenceOptions
  readonly #blockTimes = new Map<number, number>()
  readonly #log: Logger
  readonly #codecs = new Map<string, TextCodec>()
  readonly #tokenizers = new Map<string, CompletionTokenizer>()
  readonly #started = Date.now()
  readonly #fetches: ModelFetches

  get did(): string {
    return this.#o.node.did
  }

  private constructor(
    options: NodeInferenceOptions,
    blobs: ModelFiles,
    runtime: OnnxRuntime | SandboxedRunner,
    market: Inference,
  ) {
    this.#o = options
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:inference')
    this.blobs = blobs
    this.runtime = runtime
    this.market = market
    this.#fetches = new ModelFetches(
      blobs,
      () => options.transport.peers().filter((p) => p !== options.node.did),
      options.onFetch,
    )
  }

  static async create(options: NodeInferenceOptions): Promise<NodeInference> {
    const logger = options.logger ?? silentLogger()
    const blobs = await openModelFiles({
      dataDir: options.dataDir,
      transport: options.transport,
      logger,
      ...(options.libp2p === undefined ? {} : { libp2p: options.libp2p }),
      ...(options.modelStorageBytes === undefined ? {} : { budgetBytes: options.modelStorageBytes }),
    })
    await importModelFiles(blobs, [BUILTIN_MODELS_DIR, ...(options.modelDirs ?? [])], logger)
    const runtimeOptions = {
      logger,
      ...(options.executionProvider === undefined ? {} : { executionProvider: options.executionProvider }),
    }
    const late: { market?: Inference; node?: NodeInference } = {}
    // a model that breaks a sandbox limit while serving is held back and reported (models.ts)
    // ONNX Runtime's binding is loaded only here, for the in-process runner; sandboxed models load
    // it in their own processes
    const runtime: OnnxRuntime | SandboxedRunner =
      options.runner === 'in-process'
        ? new (await import('../inference/runtime.ts')).OnnxRuntime(runtimeOptions)
        : new SandboxedRunner({
            ...runtimeOptions,
            onLimit: (cid, err) => {
              late.market?.worker?.models.broke(cid, err)
              void (runtime as SandboxedRunner).unload(cid).catch(() => {})
            },
          })
    const serve = options.serve ?? SERVE_ALL
    const { node, transport } = options
    const journal = node.store.bucket('inference-journal', utf8Codec, bytesCodec)
    // ids of the last blocks, for the audit draws one block before the chain records them
    const recentIds = new Map<number, Uint8Array>()
    node.onCommit((block) => {
      recentIds.set(block.header.height, node.app.blockId(block))
      recentIds.delete(block.header.height - 64)
    })
    // a registered model's graph the worker fetches goes through the node's fetches (progress,
    // events, the dashboard's row); everything else straight to the store
    const source: BlobSource = {
      get: (cid) => blobs.get(cid),
      ...(blobs.pin === undefined ? {} : { pin: (cid: string) => blobs.pin!(cid) }),
      fetch: async (cid, peers) => {
        const model = listModels(node.app.state).find((m) => m.cid === cid)
        if (model !== undefined && late.node !== undefined && blobs.content !== undefined) {
          await late.node.fetchModel(model.cid)
          const have = await blobs.get(cid)
          if (have !== undefined) return have
        }
        return blobs.fetch(cid, peers)
      },
    }
    const market = createInference({
      blobs: source,
      ...(options.worker === false
        ? {}
        : {
            worker: {
              runner: runtime,
              allows: (model) => allows(serve, model),
              keeper: receiptKeeper(bucketJournal(journal, 'k/')),
              ...(options.slots === undefined ? {} : { slots: options.slots }),
              ...(options.memoryBudget === undefined ? {} : { memoryBudget: options.memoryBudget }),
              ...(options.behaviour === undefined ? {} : { behaviour: options.behaviour }),
            },
          }),
      journals: { reservations: bucketJournal(journal, 'r/'), settlements: bucketJournal(journal, 's/') },
      ...(options.canaryPpm === undefined ? {} : { canaryPpm: options.canaryPpm }),
      ...(options.onJob === undefined ? {} : { onJob: options.onJob }),
      ...(options.onAudit === undefined ? {} : { onAudit: options.onAudit }),
    })({
      key: options.key,
      chain: {
        chainId: node.app.chainId,
        params: node.app.genesis.params,
        state: () => node.app.state,
        height: () => node.app.head.height,
        time: () => node.app.head.time,
        onCommit: (listener) => node.onCommit((block, events) => listener(block.header.height, events)),
        blockId: (height) => recentIds.get(height),
      },
      submitTx: (kind, body) => node.submitOwnTx(kind, body),
      transport,
      adverts: options.adverts,
      clock: systemClock,
      rng: cryptoRng(),
      logger,
      signal: options.signal,
    })
    late.market = market
    late.node = new NodeInference(options, blobs, runtime, market)
    return late.node
  }

  async start(): Promise<void> {
    await this.market.start()
  }

  async stop(): Promise<void> {
    this.market.stop()
    // settle what was served, so workers are paid without waiting for the journal's replay
    await this.market.settler.flush().catch(() => {})
    await this.runtime.close()
    await this.blobs.close()
  }

  // ---- InferenceApi ----------------------------------------------------------------------------

  async models(): Promise<ModelView[]> {
    const models = this.market.models().filter((m) => m.status === 'active')
    const times = await Promise.all(models.map((m) => this.#blockTime(m.registeredAt)))
    return models.map((m, i) => ({
      name: m.name,
      cid: m.cid,
      owner: m.owner,
      version: m.version,
      price: m.price,
      kind: m.kind,
      ...(m.kind === 'lm' ? { promptPrice: m.promptPrice ?? 0n, contextLength: m.contextLength ?? 0 } : {}),
      inputs: m.inputs,
      outputs: m.outputs,
      workers: m.workers,
      registeredAt: m.registeredAt,
      registeredTime: times[i] as number,
    }))
  }

  /** A committed block's time (the genesis time for height 0), cached: it never changes. */
  async #blockTime(height: number): Promise<number> {
    const known = this.#blockTimes.get(height)
    if (known !== undefined) return known
    const app = this.#o.node.app
    const time = height === 0 ? app.genesis.genesisTime : (await app.getBlock(height))?.header.time
    if (time === undefined) return app.genesis.genesisTime // pruned or not yet stored here
    if (this.#blockTimes.size < 4_096) this.#blockTimes.set(height, time)
    return time
  }

  infer(request: Parameters<InferenceApi['infer']>[0]): ReturnType<InferenceApi['infer']> {
    return this.market.gateway.infer(request)
  }

  async complete(request: CompletionRequest, onToken?: (piece: string) => void): Promise<CompletionOutcome> {
    const gateway = this.market.gateway
    const model = gateway.resolveModel(request.model)
    if (model.status !== 'active') throw new InferenceError('unknown-model', `model ${model.name} is ${model.status}`)
    if (model.kind === 'lm') {
      const tokenizer = await this.#lmTokenizer(model)
      const out = await completeLm(gateway, model, tokenizer, request, onToken)
      return {
        text: out.text,
        receipts: [out.receipt],
        finishReason: out.finishReason,
        promptTokens: out.promptTokens,
        completionTokens: out.completionTokens,
        worker: out.worker,
        ttftMs: out.ttftMs,
      }
    }
    if (model.kind !== 'text')
      throw new InferenceError('not-text-model', `${model.name} is a tensor model; use POST /v1/infer`)
    if (
      request.temperature !== undefined ||
      request.topP !== undefined ||
      request.topK !== undefined ||
      request.seed !== undefined ||
      (request.stop?.length ?? 0) > 0
    )
      throw new InferenceError(
        'bad-input',
        `${model.name} is a character model decoded greedily; temperature, top_p, top_k, seed and stop are for language models`,
      )
    return this.#completeChars(
      model,
      {
        prompt: request.prompt ?? request.messages?.at(-1)?.content ?? '',
        maxTokens: request.maxTokens ?? 16,
      },
      onToken,
    )
  }

  /** The demo character model: greedy, one job per character. */
  async #completeChars(
    model: ModelRecord,
    request: { prompt: string; maxTokens: number },
    onToken?: (piece: string) => void,
  ): Promise<CompletionOutcome> {
    const gateway = this.market.gateway
    const codec = await this.#codec(model)
    // One paid job per character: refuse up front rather than charge for half an answer.
    const cost = model.price * BigInt(request.maxTokens)
    await gateway.topUpSelfDeposit()
    const deposit =
      depositOf(this.#o.node.app.state, this.#o.node.did, this.#o.node.did).amount -
      gateway.reservedFor(this.#o.node.did)
    if (deposit < cost)
      throw new InferenceError(
        'insufficient-deposit',
        `${request.maxTokens} characters cost ${cost}; the node's own deposit holds ${deposit < 0n ? 0n : deposit}`,
      )
    let context = request.prompt
    let text = ''
    const receipts = []
    for (let i = 0; i < request.maxTokens; i++) {
      const out = await gateway.infer({ model: model.cid, inputs: codec.encode(context) })
      receipts.push(out.receipt)
      const piece = codec.decode(out.outputs)
      text += piece
      context += piece
      onToken?.(piece)
    }
    return {
      text,
      receipts,
      finishReason: 'length',
      promptTokens: codec.tokens(request.prompt),
      completionTokens: receipts.length,
    }
  }

  /** Publishes a language model: its graph and files stored by CID, registered as one `lm` model. */
  async #publishLm(request: PublishModelRequest): Promise<{ cid: string; txHash: Uint8Array }> {
    let graph: Uint8Array
    let files: LmFiles
    if (request.dir !== undefined) {
      const folder = await readModelFolder(request.dir)
      graph = new Uint8Array(await readFile(join(request.dir, folder.graph)))
      files = folder.files
    } else {
      graph = request.file
      files = {}
      for (const name of LM_FILES) if (request.files?.[name] !== undefined) files[name] = request.files[name]
      const missing = LM_REQUIRED_FILES.filter((name) => files[name] === undefined)
      if (missing.length > 0)
        throw new ModelFolderError(`a language model needs its tokenizer: ${missing.join(' and ')} missing`)
    }
    const { contextLength } = await lmSpecOf(this.runtime, graph, files)
    const fileCids: Record<string, string> = {}
    for (const [name, bytes] of Object.entries(files)) fileCids[name] = await this.blobs.put(bytes)
    const cid = await this.blobs.put(graph)
    const body = {
      cid,
      name: request.name,
      version: request.version,
      price: request.price,
      kind: 'lm',
      inputs: LM_INPUTS,
      outputs: LM_OUTPUTS,
      tolerance: LM_TOLERANCE,
      size: graph.length,
      files: fileCids,
      promptPrice: request.promptPrice ?? 0n,
      contextLength,
    }
    decodeModelSpec(body)
    const { hash } = await this.#o.node.submitOwnTx('inference.registerModel', body)
    this.#log.info({ name: request.name, cid, contextLength }, 'language model published')
    return { cid, txHash: hash }
  }

  /** A language model's tokenizer and chat template, from its registered files (cached per model). */
  async #lmTokenizer(model: ModelRecord): Promise<CompletionTokenizer> {
    const cached = this.#tokenizers.get(model.cid)
    if (cached !== undefined) return cached
    const files: LmFiles = {}
    for (const name of LM_FILES) {
      const cid = model.files?.[name]
      if (cid === undefined) continue
      try {
        files[name] = await this.#blob(cid, model.cid)
      } catch (err) {
        throw new InferenceError('no-worker', `the ${name} of ${model.name} is not here yet: ${describeError(err)}`)
      }
    }
    let tokenizer: CompletionTokenizer
    try {
      tokenizer = completionTokenizer(files)
    } catch (err) {
      throw new InferenceError('not-text-model', `the tokenizer of ${model.name} is unusable: ${describeError(err)}`)
    }
    if (this.#tokenizers.size >= 16) this.#tokenizers.delete(this.#tokenizers.keys().next().value as string)
    this.#tokenizers.set(model.cid, tokenizer)
    return tokenizer
  }

  /** A blob (a text model's tokenizer) from the store, or fetched and verified from the peers serving `model`, then any peer. */
  async #blob(cid: string, model: string): Promise<Uint8Array> {
    const have = await this.blobs.get(cid)
    if (have !== undefined) return have
    const self = this.#o.node.did
    const serving = this.market.table.serving(model).filter((p) => p !== self)
    const others = this.#o.transport.peers().filter((p) => p !== self && !serving.includes(p))
    return this.blobs.fetch(cid, [...serving, ...others])
  }

  /** The text codec of a text model: its registered tokenizer, else the JSON beside its ONNX file. */
  async #codec(model: { cid: string; name: string; codec?: string }): Promise<TextCodec> {
    const { cid } = model
    const cached = this.#codecs.get(cid)
    if (cached !== undefined) return cached
    let found: TextCodec | undefined
    if (model.codec !== undefined) {
      let bytes: Uint8Array
      try {
        bytes = await this.#blob(model.codec, cid)
      } catch (err) {
        throw new InferenceError('no-worker', `the tokenizer of ${model.name} is not here yet: ${describeError(err)}`)
      }
      try {
        found = TextCodec.fromJson(bytes, cid)
      } catch (err) {
        throw new InferenceError(
          'not-text-model',
          `the registered tokenizer of ${model.name} is unusable: ${describeError(err)}`,
        )
      }
    } else {
      found = await TextCodec.forModel(cid, [BUILTIN_MODELS_DIR, ...(this.#o.modelDirs ?? [])])
    }
    if (found === undefined)
      throw new InferenceError('not-text-model', `no tokenizer is known for text model ${model.name}`)
    this.#codecs.set(cid, found)
    return found
  }

  settlement(jobId: string): SettlementView | undefined {
    return settlementView(this.#o.node.app.state, jobId)
  }

  workers(): WorkerView[] {
    const state = this.#o.node.app.state
    const height = this.#o.node.app.head.height
    const live = new Map(this.market.liveWorkers().map((a) => [a.worker, a]))
    const params = this.#o.node.app.genesis.params
    return listWorkers(state).map((w) => {
      const advert = live.get(w.did)
      return {
        did: w.did,
        bonded: w.bonded,
        ep: w.ep,
        runtime: w.runtime,
        streak: w.streak,
        quarantined: w.quarantinedUntil > height + 1,
        schedulable: isSchedulable(state, w.did, height + 1, params),
        jobs: w.jobs,
        throughput: advert === undefined ? 0 : advert.models.reduce((s, m) => s + m.mjps, 0) / 1000,
        reputation: Number(
          workerScore(
            {
              // reputation over the worker's whole record (the epoch's own score decides its pay)
              usageFees: w.usage + w.epochFees,
              latencyMsTotal: w.latencyMsTotal,
              latencyJobs: w.latencyJobs,
              auditsPassed: w.auditsPassed,
              auditsFailed: w.auditsFailed,
              lastActiveHeight: w.lastActiveHeight,
            },
            height,
            params,
          ),
        ),
        auditsPassed: w.auditsPassed,
        auditsFailed: w.auditsFailed,
        slashes: w.slashes,
        live: advert !== undefined,
      }
    })
  }

  stats(): ReturnType<InferenceApi['stats']> {
    const { gateway, auditor, settler, worker } = this.market
    const sorted = [...gateway.stats.latencies].sort((a, b) => a - b)
    const q = (p: number): number => (sorted.length === 0 ? 0 : (sorted[Math.floor((sorted.length - 1) * p)] ?? 0))
    const seconds = Math.max(1, (Date.now() - this.#started) / 1000)
    const slashes = listWorkers(this.#o.node.app.state).reduce((n, w) => n + w.slashes, 0)
    return {
      jobs: gateway.stats.jobs,
      failures: gateway.stats.failures,
      jobsPerSecond: Math.round((gateway.stats.jobs / seconds) * 1000) / 1000,
      latencyMs: { p50: q(0.5), p99: q(0.99) },
      audits: auditor.stats.audits,
      auditsFailed: auditor.stats.auditsFailed,
      canaries: gateway.stats.canaries,
      slashes,
      pendingSettlement: settler.pending,
      worker: worker?.load() ?? { running: 0, queued: 0, paid: 0 },
      badModels: worker?.models.bad() ?? [],
    }
  }

  /** This node's deposit view of a client: what it locked here, and what jobs in flight hold. */
  deposit(client: string): { amount: bigint; unlocking: Array<{ amount: bigint; at: number }>; reserved: bigint } {
    const d = depositOf(this.#o.node.app.state, client, this.#o.node.did)
    return { ...d, reserved: this.market.gateway.reservedFor(client) }
  }

  async publishModel(request: PublishModelRequest): Promise<{ cid: string; txHash: Uint8Array }> {
    if (request.kind === 'lm') return this.#publishLm(request)
    if (request.dir !== undefined || request.files !== undefined)
      throw new InvalidInputError('a folder (dir, files) is for language models: use kind "lm"')
    let schema
    try {
      schema = await this.runtime.inspect(request.file)
    } catch (err) {
      throw new InvalidInputError(`the file is not a model ONNX Runtime can load: ${describeError(err)}`)
    }
    const cid = await this.blobs.cidOf(request.file)
    if (request.codec !== undefined) {
      if (request.kind !== 'text') throw new InvalidInputError('a tokenizer (codec) is for text models only')
      TextCodec.fromJson(request.codec, cid) // refuses what a gateway could not use
    }
    const body = {
      cid,
      name: request.name,
      version: request.version,
      price: request.price,
      kind: request.kind,
      inputs: schema.inputs,
      outputs: schema.outputs,
      tolerance: { maxAbsPpm: 1_000, top1: true },
      size: request.file.length,
      ...(request.codec === undefined ? {} : { codec: await this.blobs.cidOf(request.codec) }),
    }
    decodeModelSpec(body)
    await this.blobs.put(request.file)
    if (request.codec !== undefined) await this.blobs.put(request.codec)
    const { hash } = await this.#o.node.submitOwnTx('inference.registerModel', body)
    this.#log.info({ name: request.name, cid }, 'model published')
    return { cid, txHash: hash }
  }

  fetches(): FetchView[] {
    return this.#fetches.list()
  }

  /** Fetches a registered model's files into the content store (model-files.ts `ModelFetches`). */
  fetchModel(model: string, onProgress?: (progress: FetchView) => void): Promise<FetchView> {
    let record: ModelRecord
    try {
      record = this.market.gateway.resolveModel(model)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.#fetches.fetch(record, onProgress)
  }
}

/** The model-level checks of a language model's files: a decoder graph with a KV cache, a usable tokenizer. */
async function lmSpecOf(
  runtime: OnnxRuntime | SandboxedRunner,
  graph: Uint8Array,
  files: LmFiles,
): Promise<{ contextLength: number }> {
  let schema
  try {
    schema = await runtime.inspect(graph)
  } catch (err) {
    throw new ModelFolderError(`the graph is not a model ONNX Runtime can load: ${describeError(err)}`)
  }
  checkDecoderLayout(schema, files)
  try {
    completionTokenizer(files)
  } catch (err) {
    throw new ModelFolderError(`the tokenizer files are unusable: ${describeError(err)}`)
  }
  return { contextLength: contextLengthOf(files) }
}

/** Imports `*.onnx` files and the `.json` beside them from `dirs` into the blob store. */
async function importModelFiles(blobs: ModelFiles, dirs: readonly string[], logger: Logger): Promise<void> {
  const log = logger.forComponent('donghae:inference')
  for (const dir of dirs) {
    let entries: Dirent[]
    try {
      entries = await readdir(dir, { withFileTypes: true })
    } catch {
      continue
    }
    const files = entries.filter((e) => e.isFile() && (e.name.endsWith('.onnx') || e.name.endsWith('.json')))
    for (const e of files) {
      const cid = await blobs.putFile(join(dir, e.name))
      log.debug({ file: join(dir, e.name), cid }, 'model file imported')
    }
    // a language model is a folder (models/lm): its graph, tokenizer and configs, one level down
    for (const e of entries.filter((d) => d.isDirectory() && d.name !== 'data')) {
      const sub = join(dir, e.name)
      const names = await readdir(sub).catch((): string[] => [])
      if (!names.includes('tokenizer.json')) continue
      for (const name of names.filter((n) => n.endsWith('.onnx') || n.endsWith('.json'))) {
        const cid = await blobs.putFile(join(sub, name))
        log.debug({ file: join(sub, name), cid }, 'model file imported')
      }
    }
  }
}
