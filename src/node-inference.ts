/**
 * The inference market inside a running node: blob store, ONNX Runtime, the service (worker,
 * gateway, settler, auditor) and the `InferenceApi` the HTTP routes serve. FullNode builds one.
 *
 * Model files: at start the node imports `*.onnx` (and their `.json` sidecars) from the demo
 * models shipped with Donghae (`models/`) and from `<home>/models/` into its blob store, so a
 * model registered on chain under one of those CIDs is served without a download; any other
 * registered model is fetched from a peer that serves it and verified against its CID.
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { toHex } from './core/bytes.ts'
import { describeError, InvalidInputError } from './core/errors.ts'
import { silentLogger, type Logger } from './core/logger.ts'
import type { Ed25519KeyPair } from './identity/keys.ts'
import type { PeerTransport } from './core/transport.ts'
import type { DonghaeNode } from './node.ts'
import type {
  CompletionOutcome,
  InferenceApi,
  ModelView,
  PublishModelRequest,
  SettlementView,
  WorkerView,
} from './api/inference-api.ts'
import { BlobStore, blobCid } from './inference/blobs.ts'
import { InferenceError } from './inference/errors.ts'
import { InferenceService, type AdvertBus, type JobEvent, type WorkerBehaviour } from './inference/service.ts'
import { OnnxRuntime, type ExecutionProviderChoice } from './inference/runtime.ts'
import {
  batchKey,
  inclusionProof,
  isSchedulable,
  listWorkers,
  workerScore,
  decodeModelSpec,
} from './inference/module.ts'
import { TextCodec } from './inference/text.ts'
import { DEMO_MODELS_DIR } from './inference/demo-models.ts'
import { balanceOf } from './bank/bank.ts'

/** The demo models shipped with the package. */
export const BUILTIN_MODELS_DIR = DEMO_MODELS_DIR

export interface NodeInferenceOptions {
  node: DonghaeNode
  key: Ed25519KeyPair
  transport: PeerTransport
  adverts: AdvertBus
  dataDir: string
  /** Extra directories whose `*.onnx` files are imported into the blob store. */
  modelDirs?: string[]
  worker?: boolean
  slots?: number
  behaviour?: WorkerBehaviour
  canaryPpm?: number
  /** Execution provider: 'auto' (by platform), 'cpu', 'coreml' or 'cuda'. @default 'auto' */
  executionProvider?: ExecutionProviderChoice
  logger?: Logger
  onJob?(event: JobEvent): void
  onAudit?(event: { result: 'pass' | 'fail' | 'dispute'; worker: string; jobId: string }): void
}

/** Reads `DONGHAE_EXECUTION_PROVIDER`: auto (default), cpu, coreml or cuda. */
export function executionProviderFromEnv(value: string | undefined): ExecutionProviderChoice {
  if (value === undefined || value === '') return 'auto'
  if (value === 'auto' || value === 'cpu' || value === 'coreml' || value === 'cuda') return value
  throw new InvalidInputError(`DONGHAE_EXECUTION_PROVIDER must be auto, cpu, coreml or cuda, not ${value}`)
}

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

export class NodeInference implements InferenceApi {
  readonly service: InferenceService
  readonly blobs: BlobStore
  readonly runtime: OnnxRuntime
  readonly #o: NodeInferenceOptions
  readonly #blockTimes = new Map<number, number>()
  readonly #log: Logger
  readonly #codecs = new Map<string, TextCodec>()
  readonly #started = Date.now()

  private constructor(
    options: NodeInferenceOptions,
    blobs: BlobStore,
    runtime: OnnxRuntime,
    service: InferenceService,
  ) {
    this.#o = options
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:inference')
    this.blobs = blobs
    this.runtime = runtime
    this.service = service
  }

  static async create(options: NodeInferenceOptions): Promise<NodeInference> {
    const blobs = new BlobStore(
      join(options.dataDir, 'blobs'),
      options.logger === undefined ? {} : { logger: options.logger },
    )
    await blobs.init()
    const log = (options.logger ?? silentLogger()).forComponent('donghae:inference')
    for (const dir of [BUILTIN_MODELS_DIR, ...(options.modelDirs ?? [])]) {
      let names: string[]
      try {
        names = await readdir(dir)
      } catch {
        continue
      }
      // weights, and the JSON beside them (a text model's tokenizer is registered by CID)
      for (const name of names.filter((n) => n.endsWith('.onnx') || n.endsWith('.json'))) {
        const cid = await blobs.put(new Uint8Array(await readFile(join(dir, name))))
        log.debug({ file: join(dir, name), cid }, 'model file imported')
      }
    }
    const runtime = new OnnxRuntime({
      ...(options.logger === undefined ? {} : { logger: options.logger }),
      ...(options.executionProvider === undefined ? {} : { executionProvider: options.executionProvider }),
    })
    const node = options.node
    const service = new InferenceService({
      chainId: node.app.chainId,
      params: node.app.genesis.params,
      key: options.key,
      transport: options.transport,
      adverts: options.adverts,
      state: () => node.app.state,
      height: () => node.app.head.height,
      blockId: async (height) => {
        const block = await node.app.getBlock(height)
        return block === undefined ? undefined : node.app.blockId(block)
      },
      submitTx: (kind, body) => node.submitOwnTx(kind, body),
      txHeight: (hash) => node.app.txHeight(hash),
      blobs,
      runner: runtime,
      worker: options.worker ?? true,
      ...(options.slots === undefined ? {} : { slots: options.slots }),
      ...(options.behaviour === undefined ? {} : { behaviour: options.behaviour }),
      ...(options.canaryPpm === undefined ? {} : { canaryPpm: options.canaryPpm }),
      ...(options.logger === undefined ? {} : { logger: options.logger }),
      ...(options.onJob === undefined ? {} : { onJob: options.onJob }),
      ...(options.onAudit === undefined ? {} : { onAudit: options.onAudit }),
    })
    return new NodeInference(options, blobs, runtime, service)
  }

  start(): void {
    this.service.start()
  }

  async stop(): Promise<void> {
    await this.service.stop()
    await this.runtime.close()
  }

  // ---- InferenceApi ----------------------------------------------------------------------------

  async models(): Promise<ModelView[]> {
    const models = this.service.models()
    const times = await Promise.all(models.map((m) => this.#blockTime(m.registeredAt)))
    return models.map((m, i) => ({
      name: m.name,
      cid: m.cid,
      owner: m.owner,
      version: m.version,
      price: m.price,
      kind: m.kind,
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
    return this.service.infer(request)
  }

  async complete(
    request: { model: string; prompt: string; maxTokens: number },
    onToken?: (piece: string) => void,
  ): Promise<CompletionOutcome> {
    const model = this.service.resolveModel(request.model)
    if (model.kind !== 'text')
      throw new InferenceError('not-text-model', `${model.name} is a tensor model; use POST /v1/infer`)
    const codec = await this.#codec(model)
    // One paid job per character: refuse up front rather than charge for half an answer.
    const cost = model.price * BigInt(request.maxTokens)
    const balance = balanceOf(this.#o.node.app.state, this.#o.node.did)
    if (balance < cost)
      throw new InferenceError(
        'insufficient-balance',
        `${request.maxTokens} characters cost ${cost}; the node's account has ${balance}`,
      )
    let context = request.prompt
    let text = ''
    const receipts = []
    for (let i = 0; i < request.maxTokens; i++) {
      const out = await this.service.infer({ model: model.cid, inputs: codec.encode(context) })
      receipts.push(out.receipt)
      const piece = codec.decode(out.outputs)
      text += piece
      context += piece
      onToken?.(piece)
    }
    return { text, receipts, finishReason: 'length', promptTokens: codec.tokens(request.prompt) }
  }

  /** The text codec of a text model: the JSON beside its ONNX file that names its CID. */
  async #codec(model: { cid: string; name: string; codec?: string }): Promise<TextCodec> {
    const { cid } = model
    const cached = this.#codecs.get(cid)
    if (cached !== undefined) return cached
    let found: TextCodec | undefined
    if (model.codec !== undefined) {
      let bytes: Uint8Array
      try {
        bytes = await this.service.blob(model.codec, cid)
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
    const found = inclusionProof(this.#o.node.app.state, jobId)
    if (found === undefined) return undefined
    return {
      jobId,
      receiptId: toHex(found.settlement.receiptId),
      worker: found.settlement.worker,
      height: found.settlement.height,
      batchKey: batchKey(found.settlement.height, found.settlement.batch),
      root: toHex(found.root),
      index: found.proof.index,
      count: found.proof.count,
      proof: found.proof.siblings.map((s) => ({ hash: toHex(s.hash), right: s.right })),
    }
  }

  workers(): WorkerView[] {
    const state = this.#o.node.app.state
    const height = this.#o.node.app.head.height
    const live = new Map(this.service.liveWorkers().map((a) => [a.worker, a]))
    const params = this.#o.node.app.genesis.params
    return listWorkers(state).map((w) => {
      const advert = live.get(w.did)
      return {
        did: w.did,
        bonded: w.bonded,
        ep: w.ep,
        streak: w.streak,
        quarantined: w.quarantinedUntil > height + 1,
        schedulable: isSchedulable(state, w.did, height + 1, params),
        jobs: w.jobs,
        throughput: advert === undefined ? 0 : advert.models.reduce((s, m) => s + m.mjps, 0) / 1000,
        reputation: Number(
          workerScore(
            {
              // reputation over the worker's whole record (the epoch's own score decides its pay)
              calls: w.jobs,
              latencyMsTotal: w.latencyMsTotal,
              auditsPassed: w.auditsPassed,
              auditsFailed: w.auditsFailed,
              lastActiveHeight: w.lastActiveHeight,
            },
            height,
            params.recencyBlocks,
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
    const s = this.service.stats()
    const seconds = Math.max(1, (Date.now() - this.#started) / 1000)
    const slashes = listWorkers(this.#o.node.app.state).reduce((n, w) => n + w.slashes, 0)
    return {
      jobs: s.jobs,
      failures: s.failures,
      jobsPerSecond: Math.round((s.jobs / seconds) * 1000) / 1000,
      latencyMs: s.latencyMs,
      audits: s.audits,
      auditsFailed: s.auditsFailed,
      canaries: s.canaries,
      slashes,
      pendingSettlement: s.pendingSettlement,
      worker: s.worker,
    }
  }

  async publishModel(request: PublishModelRequest): Promise<{ cid: string; txHash: Uint8Array }> {
    let schema
    try {
      schema = await this.runtime.inspect(request.file)
    } catch (err) {
      throw new InvalidInputError(`the file is not a model ONNX Runtime can load: ${describeError(err)}`)
    }
    const cid = blobCid(request.file)
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
      ...(request.codec === undefined ? {} : { codec: blobCid(request.codec) }),
    }
    decodeModelSpec(body)
    await this.blobs.put(request.file)
    if (request.codec !== undefined) await this.blobs.put(request.codec)
    const { hash } = await this.#o.node.submitOwnTx('inference.registerModel', body)
    this.#log.info({ name: request.name, cid }, 'model published')
    return { cid, txHash: hash }
  }
}
