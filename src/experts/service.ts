/**
 * The experts service of a node (AI-Block, docs/experts.md): what a node does with the parameter
 * DAG the chain holds. Its parts, each small:
 *
 *   hosting     the expert blocks rendezvous hashing gives this node (assignment.ts) are served
 *               over `/donghae/experts/call/1` (net/protocol.ts) from an LRU of loaded experts,
 *               and announced in the DHT (net/directory.ts); every node also learns the assigned
 *               hosts of every block as hints.
 *   chat        a generation on a family's current ParamIndex: the trunk and routers here, the
 *               experts here (`use_distributed: false`) or on their hosts (net/coordinator.ts,
 *               deadlines, replicas, masking, audits, quarantine). Its routing counts go to the
 *               usage ledger, reported on chain in `experts.usage` every `usageFlushMs`.
 *   attest      on a validator: each proposal is reproduced (payloads fetched and checked, the
 *               baseline and the proposal scored on the validation set) and attested.
 *   propose     mining: a payload checked against the MetaBlock, stored, scored (the claim),
 *               signed, stamped with the chain's proof of work, submitted with its bond.
 *   training    (config expertTraining) while no generation runs, the built-in trainer
 *               fine-tunes the busiest hosted expert; it pauses within 50 ms of a generation.
 */
import { describeError, InvalidInputError } from '../core/errors.ts'
import { silentLogger, type Logger } from '../core/logger.ts'
import { cryptoRng, type Rng } from '../core/rng.ts'
import { systemClock, type Clock } from '../core/clock.ts'
import type { PeerTransport } from '../core/transport.ts'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import { didFromEd25519PublicKey } from '../identity/did-key.ts'
import type { ChainParams } from '../chain/genesis.ts'
import type { ChainEvent } from '../chain/host.ts'
import type { StateReader } from '../chain/state-view.ts'
import type { ChatMessage } from '../inference/lm/model-files.ts'
import { hostedBy, hostsFor } from './assignment.ts'
import { blockHash, signParamBlock, unsignedOf } from './block.ts'
import { stampPow } from './pow.ts'
import { allRouters, FamilyLoader, payloadOf, type ExpertFiles, type LoadedFamily } from './family.ts'
import {
  listFamilies,
  paramIndex,
  pendingProposals,
  readBlock,
  readFamily,
  readMeta,
  readAttestation,
  readProposal,
  readUsage,
} from './chain/state.ts'
import { MoeEngine, type RoutingStats } from './model/engine.ts'
import { evaluateModel, parseValidationTokens } from './model/evaluate.ts'
import { LocalExperts, runExpert, StaticExperts } from './model/local.ts'
import type { ExpertProvider } from './model/provider.ts'
import { encodeExpert, expertBytes, parseExpert, parseRouter, type ExpertWeights } from './model/weights.ts'
import { train } from './model/trainer.ts'
import { RemoteExperts } from './net/coordinator.ts'
import { ExpertDirectory, type ExpertRouting } from './net/directory.ts'
import { serveExperts, type ServeStats } from './net/protocol.ts'
import { UsageLedger } from './usage.ts'
import {
  parseExpertName,
  payloadShapes,
  type AttestBody,
  type BlockRecord,
  type MetaRecord,
  type ParamBlockHeader,
  type PolScore,
  type ProposeBody,
} from './types.ts'

export interface ExpertsChain {
  params: ChainParams
  state(): StateReader
  height(): number
  /** The current validators' DIDs (hosting assignment; Proof-of-Learning attesters). */
  validators(): string[]
  onCommit(listener: (height: number, events: readonly ChainEvent[]) => void): () => void
}

export interface ExpertsServiceOptions {
  key: Ed25519KeyPair
  chain: ExpertsChain
  files: ExpertFiles
  transport: PeerTransport
  /** The DHT; without it hosts are found only from the assignment hints and answers. */
  routing?: ExpertRouting
  submitTx(kind: string, body: unknown): Promise<{ hash: Uint8Array }>
  /** Hosts per expert block (config expertReplicas); 0: this node hosts nothing. @default 2 */
  replicas?: number
  /** Memory for loaded experts, bytes (config expertMemory). @default 256 MiB */
  memoryBytes?: number
  /** Idle-time fine-tuning (config expertTraining). @default false */
  training?: boolean
  /** Training tokens (uint32 LE) by family, by CID: `--train` without a dataset and idle training use them. */
  trainingSets?: Record<string, string>
  /** Steps of one idle training round. @default 4 */
  trainingSteps?: number
  /** How long without a generation before idle training runs, ms. @default 2000 */
  idleMs?: number
  /** How often routing counts are reported on chain. @default 10 s */
  usageFlushMs?: number
  /** Share of remote expert answers recomputed by a second host, ppm. @default 20 000 */
  auditPpm?: number
  /** Per-call deadline of a remote expert. @default 1000 ms */
  callTimeoutMs?: number
  logger?: Logger
  clock?: Clock
  rng?: Rng
  signal: AbortSignal
}

export interface ChatRequest {
  family?: string
  prompt?: string
  messages?: ChatMessage[]
  /** Call the experts' hosts (default) or run every expert here. */
  distributed?: boolean
  topK?: number
  maxTokens?: number
  /** Thousandths; 0 greedy. */
  temperatureMilli?: number
  seed?: bigint
  signal?: AbortSignal
  onToken?(piece: string): void
}

export interface ChatResult {
  family: string
  version: number
  text: string
  ids: number[]
  promptTokens: number
  finish: 'stop' | 'length'
  routing: RoutingStats
  /** Per layer: expert -> hosts that answered for it. */
  hostsByExpert: Array<Record<number, string[]>>
  blocks: string[][]
  elapsedMs: number
}

export interface ProposeResult {
  proposal: string
  txHash: string
  block: string
  claim: PolScore
  powNonce: bigint
  powMs: number
}

/** The trainer's state, for the operator's view. */
export interface TrainingStatus {
  /** Idle-time training is on (config expertTraining). */
  enabled: boolean
  running: boolean
  /** `family/layer{L}.expert{J}` being trained (or last trained). */
  expert?: string
  steps: number
  /** Times it paused for a generation. */
  paused: number
  /** Idle rounds completed. */
  rounds: number
  /** From the last generation's start to the trainer's pause, ms (inference first: <= 50 ms). */
  lastYieldMs: number | null
  maxYieldMs: number
  /** Validation gain of the last idle round, micro-nats (positive: better). */
  lastGainMicroNats: bigint | null
  /** Proposals idle training made. */
  proposals: string[]
}

/** A training run's outcome (idle training and `--train`). */
export interface TrainOutcome {
  family: string
  name: string
  losses: number[]
  weights: ExpertWeights
}

const DEFAULT_MEMORY = 256 * 2 ** 20
/** Training windows one run of the built-in trainer uses. */
const TRAIN_WINDOWS = 16

function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}

export class ExpertsService {
  readonly did: string
  readonly families: FamilyLoader
  readonly ledger = new UsageLedger()
  readonly directory: ExpertDirectory
  readonly serveStats: ServeStats
  readonly #o: ExpertsServiceOptions
  readonly #log: Logger
  readonly #clock: Clock
  readonly #replicas: number
  readonly #memory: number
  /** Loaded experts of this node (hosted ones and local generations), per family version. */
  readonly #local = new Map<string, LocalExperts>()
  readonly #remote = new Map<string, RemoteExperts>()
  #hosted = new Set<string>()
  /** Proposals this node attested (or is attesting). */
  readonly #attested = new Set<string>()
  #active = 0
  #lastActive = 0
  /** When the running generations began (the trainer's yield is measured from it). */
  #generationStarted = 0
  #chats = 0
  #trainLock: Promise<void> = Promise.resolve()
  #trainRuns = 0
  #attestQueue: Promise<void> = Promise.resolve()
  #stops: Array<() => void> = []
  /** Training state, for the operator's view. */
  training: TrainingStatus = {
    enabled: false,
    running: false,
    steps: 0,
    paused: 0,
    rounds: 0,
    lastYieldMs: null,
    maxYieldMs: 0,
    lastGainMicroNats: null,
    proposals: [],
  }

  constructor(options: ExpertsServiceOptions) {
    this.#o = options
    this.did = didFromEd25519PublicKey(options.key.publicKey)
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:experts')
    this.#clock = options.clock ?? systemClock
    this.#replicas = options.replicas ?? 2
    this.#memory = options.memoryBytes ?? DEFAULT_MEMORY
    this.families = new FamilyLoader(options.files, () => this.#peers())
    this.directory = new ExpertDirectory({
      routing: options.routing ?? { provide: async () => {}, findProviders: async function* () {} },
      self: this.did,
      clock: this.#clock,
      onError: (err, what) => this.#log.debug({ err: describeError(err), what }, 'expert directory'),
    })
    this.serveStats = serveExperts({
      transport: options.transport,
      hosts: (block) => this.#hosted.has(block),
      run: (call, signal) => this.#runHosted(call.family, call.version, call.block, call.input, call.rows, signal),
    })
  }

  #peers(): string[] {
    return this.#o.transport.peers().filter((p) => p !== this.did)
  }

  get state(): StateReader {
    return this.#o.chain.state()
  }

  /** Starts hosting, attesting, usage reports and (when enabled) idle training. */
  start(): void {
    this.directory.start()
    this.#stops.push(() => this.directory.stop())
    this.#rehost()
    this.#stops.push(
      this.#o.chain.onCommit((_height, events) => {
        let changed = false
        for (const e of events) {
          if (e.type === 'experts.proposed' && e.attributes.id !== undefined) void this.#attest(e.attributes.id)
          if (e.type === 'experts.accepted' || e.type === 'experts.meta') changed = true
        }
        if (changed) this.#rehost()
      }),
    )
    // proposals pending at start (a restart, or a node that joined late)
    this.attestPending(pendingProposals(this.state).map((p) => p.id))
    // the assignment again every minute: hints stay fresh in the directory (they expire), and a
    // changed validator set moves what this node hosts
    const rehost = setInterval(() => this.#rehost(), 60_000)
    rehost.unref()
    this.#stops.push(() => clearInterval(rehost))
    const flushMs = this.#o.usageFlushMs ?? 10_000
    const timer = setInterval(() => void this.flushUsage(), flushMs)
    timer.unref()
    this.#stops.push(() => clearInterval(timer))
    if (this.#o.training === true) {
      this.training.enabled = true
      void this.#trainLoop()
    }
  }

  async stop(): Promise<void> {
    for (const stop of this.#stops.splice(0).reverse()) stop()
    for (const r of this.#remote.values()) r.close()
    await this.flushUsage().catch(() => {})
  }

  // ---- hosting ---------------------------------------------------------------------------------

  /** The expert blocks of every family's latest version (current ParamIndex). */
  #currentBlocks(): Array<{ family: string; version: number; block: string }> {
    const out: Array<{ family: string; version: number; block: string }> = []
    for (const f of listFamilies(this.state)) {
      const meta = readMeta(this.state, f.family)
      if (meta === undefined) continue
      for (const block of indexExperts(this.state, meta))
        out.push({ family: meta.family, version: meta.version, block })
    }
    return out
  }

  /** Recomputes what this node hosts (after a new version or an accepted block) and announces it. */
  #rehost(): void {
    const validators = this.#o.chain.validators()
    const blocks = this.#currentBlocks().map((b) => b.block)
    const hosted = this.#replicas === 0 ? [] : hostedBy(this.did, blocks, validators, this.#replicas)
    const next = new Set(hosted)
    for (const b of this.#hosted) if (!next.has(b)) void this.directory.withdraw(b)
    for (const b of next) if (!this.#hosted.has(b)) void this.directory.announce(b, this.#o.signal).catch(() => {})
    this.#hosted = next
    void this.#prefetchHosted()
    for (const b of blocks)
      if (this.#replicas > 0)
        for (const did of hostsFor(b, validators, this.#replicas)) if (did !== this.did) this.directory.learn(b, did)
  }

  /**
   * Loads the experts this node hosts before anyone calls them (the seed's hot-expert
   * prefetch), busiest first by the usage the chain recorded, as far as the memory budget goes.
   */
  async #prefetchHosted(): Promise<void> {
    for (const f of listFamilies(this.state)) {
      const meta = readMeta(this.state, f.family)
      if (meta === undefined) continue
      const mine = indexExperts(this.state, meta)
        .filter((b) => this.#hosted.has(b))
        .sort((a, b) => Number((readUsage(this.state, b)?.calls ?? 0n) - (readUsage(this.state, a)?.calls ?? 0n)))
      const local = this.#localFor(meta)
      const room = Math.floor(local.budgetBytes / expertBytes(meta.arch))
      await local.prefetch(mine.slice(0, room), this.#o.signal).catch((err: unknown) => {
        this.#log.debug({ err: describeError(err) }, 'prefetch of hosted experts stopped')
      })
    }
  }

  /** Blocks this node serves now. */
  hosted(): string[] {
    return [...this.#hosted]
  }

  #localFor(meta: MetaRecord): LocalExperts {
    const key = `${meta.family}/${meta.version}`
    let local = this.#local.get(key)
    if (local === undefined) {
      const state = (): StateReader => this.state
      local = new LocalExperts({
        arch: meta.arch,
        load: (block) => this.families.file(payloadOf(state(), block)),
        budgetBytes: Math.max(this.#memory, expertBytes(meta.arch)),
      })
      this.#local.set(key, local)
    }
    return local
  }

  async #runHosted(
    family: string,
    version: number,
    block: string,
    input: Float32Array,
    rows: number,
    signal: AbortSignal,
  ): Promise<Float32Array> {
    const meta = readMeta(this.state, family, version)
    if (meta === undefined) throw new InvalidInputError(`no family ${family} v${version}`)
    if (rows * meta.arch.dModel !== input.length) throw new InvalidInputError('the call does not fit the model width')
    signal.throwIfAborted()
    const weights = await this.#localFor(meta).get(block)
    return runExpert(weights, input, rows)
  }

  /** The coordinator of a family version's remote experts (one per version, kept). */
  remoteFor(meta: MetaRecord): RemoteExperts {
    const key = `${meta.family}/${meta.version}`
    let remote = this.#remote.get(key)
    if (remote === undefined) {
      const local = this.#localFor(meta)
      remote = new RemoteExperts({
        transport: this.#o.transport,
        directory: this.directory,
        family: meta.family,
        version: meta.version,
        local: (call) =>
          this.#hosted.has(call.block)
            ? local.get(call.block).then((w) => runExpert(w, call.input, call.rows))
            : undefined,
        callTimeoutMs: this.#o.callTimeoutMs ?? 1_000,
        // a layer waits for its replicas before it masks anything: a call that misses its
        // deadline is re-routed at once, and masking (a different generation) is the last resort
        // when no replica answers within 2.5 deadlines
        layerDeadlineMs: Math.round((this.#o.callTimeoutMs ?? 1_000) * 2.5),
        // one missed deadline is enough to route around a host for a while: a killed host must
        // not cost a deadline per layer per token
        failuresToSuspend: 1,
        // a host that goes quiet (a killed process whose connection is not closed yet, a paused
        // machine) costs a hedge delay per call, not a deadline
        hedgeMinMs: 50,
        auditPpm: this.#o.auditPpm ?? 20_000,
        ...(this.#o.rng === undefined ? { rng: cryptoRng() } : { rng: this.#o.rng }),
        clock: this.#clock,
      })
      this.#remote.set(key, remote)
    }
    return remote
  }

  /** The coordinators of the families this node generated with (host stats, groups, audits). */
  coordinators(): RemoteExperts[] {
    return [...this.#remote.values()]
  }

  localStats(): Array<{ family: string; stats: ReturnType<LocalExperts['stats']> }> {
    return [...this.#local].map(([family, l]) => ({ family, stats: l.stats() }))
  }

  // ---- chat ------------------------------------------------------------------------------------

  /** The family a request names, or the first one. */
  familyOf(name: string | undefined): MetaRecord {
    const family = name ?? listFamilies(this.state)[0]?.family
    if (family === undefined) throw new InvalidInputError('no Mixture-of-Experts family is on chain')
    const meta = readMeta(this.state, family)
    if (meta === undefined) throw new InvalidInputError(`no expert family ${family}`)
    return meta
  }

  async chat(request: ChatRequest): Promise<ChatResult> {
    const started = this.#clock.now()
    const meta = this.familyOf(request.family)
    if (this.#active === 0) this.#generationStarted = this.#clock.now()
    this.#active++
    this.#lastActive = this.#clock.now()
    try {
      const loaded = await this.families.load(this.state, meta.family, meta.version)
      const { tokenizer, params } = loaded
      const prompt =
        request.messages !== undefined
          ? tokenizer.encodeChat(request.messages)
          : tokenizer.encode(request.prompt ?? '', { addSpecialTokens: false })
      if (prompt.length === 0) throw new InvalidInputError('the prompt is empty')
      const provider: ExpertProvider = request.distributed === false ? this.#localFor(meta) : this.remoteFor(meta)
      const engine = new MoeEngine(meta.arch, loaded.trunk, allRouters(loaded), provider, { blocks: params.experts })
      const room = meta.arch.contextLength - prompt.length
      if (room < 1)
        throw new InvalidInputError(
          `the prompt (${prompt.length} tokens) fills the context (${meta.arch.contextLength})`,
        )
      const stopIds = ['<|end|>', '<|endoftext|>']
        .map((t) => tokenizer.tokenId(t))
        .filter((x): x is number => x !== undefined)
      const detok = tokenizer.detokenizer()
      const generation = await engine.generate(prompt, {
        maxTokens: Math.min(request.maxTokens ?? 64, room),
        sampler: {
          temperatureMilli: request.temperatureMilli ?? 0,
          topPMilli: 1000,
          topK: 0,
          seed: request.seed ?? 0n,
        },
        stopIds,
        ...(request.topK === undefined ? {} : { topK: request.topK }),
        ...(request.signal === undefined ? {} : { signal: request.signal }),
        onToken: (id) => {
          const piece = detok.push(id)
          if (piece !== '') request.onToken?.(piece)
        },
      })
      const tail = detok.flush()
      if (tail !== '') request.onToken?.(tail)
      this.ledger.record(
        meta.family,
        meta.version,
        Object.entries(generation.routing.blocks).map(([block, b]) => ({
          block,
          calls: b.calls,
          latencyMs: b.latencyMs,
        })),
      )
      const hostsByExpert = hostsOfRouting(generation.routing, params.experts)
      // experts routed together for the same tokens are loaded and evicted together here
      if (++this.#chats % 8 === 0) {
        const coordinator = this.#remote.get(`${meta.family}/${meta.version}`)
        if (coordinator !== undefined)
          this.#localFor(meta).setGroups(coordinator.groups({ minCount: 4 }).map((g) => g.experts.map((e) => e.block)))
      }
      return {
        family: meta.family,
        version: meta.version,
        text: tokenizer.decode(generation.ids.filter((id) => !stopIds.includes(id))),
        ids: generation.ids,
        promptTokens: prompt.length,
        finish: generation.finish,
        routing: generation.routing,
        hostsByExpert,
        blocks: params.experts,
        elapsedMs: this.#clock.now() - started,
      }
    } finally {
      this.#active--
      this.#lastActive = this.#clock.now()
    }
  }

  /** Reports the routing counts gathered since the last report (experts.usage). */
  async flushUsage(): Promise<void> {
    if (this.ledger.empty) return
    const bodies = this.ledger.drain()
    for (const [i, body] of bodies.entries()) {
      try {
        await this.#o.submitTx('experts.usage', body)
      } catch (err) {
        this.#log.warn({ err: describeError(err) }, 'usage report failed; kept for the next one')
        this.ledger.restore(bodies.slice(i))
        return
      }
    }
  }

  // ---- Proof-of-Learning -------------------------------------------------------------------------

  /** Scores a family version with some slots replaced (name -> payload bytes): the PoL score. */
  async score(
    loaded: LoadedFamily,
    replace: ReadonlyMap<string, Uint8Array> = new Map(),
    signal?: AbortSignal,
  ): Promise<PolScore> {
    const { meta } = loaded
    const arch = meta.arch
    const experts = new Map<string, ExpertWeights>()
    const blocks = loaded.params.experts.map((row) => [...row])
    let routers = loaded.routers
    const files: Array<Promise<void>> = []
    for (let l = 0; l < arch.nLayers; l++)
      for (let j = 0; j < arch.expertsPerLayer; j++) {
        const name = `layer${l}.expert${j}`
        const replaced = replace.get(name)
        const block = (blocks[l] as string[])[j] as string
        if (replaced !== undefined) {
          ;(blocks[l] as string[])[j] = `new:${name}`
          experts.set(`new:${name}`, parseExpert(arch, replaced))
        } else if (block !== '')
          files.push(
            this.families.file(payloadOf(this.state, block)).then((bytes) => {
              experts.set(block, parseExpert(arch, bytes))
            }),
          )
      }
    for (let l = 0; l < arch.nLayers; l++) {
      const r = replace.get(`layer${l}.router`)
      if (r !== undefined) {
        routers = [...routers]
        routers[l] = parseRouter(arch, r)
      }
    }
    await Promise.all(files)
    return evaluateModel({
      arch,
      trunk: loaded.trunk,
      routers: allRouters({ meta, routers }),
      // scoring (claims, attestations, idle rounds) waits while a generation runs: inference first
      provider: yieldingTo(new StaticExperts(experts), () => this.#active > 0, signal),
      blocks,
      tokens: loaded.validation,
      windows: meta.validation.windows,
      windowTokens: meta.validation.windowTokens,
      ...(signal === undefined ? {} : { signal }),
    })
  }

  /** On a validator: reproduces a proposal's score and attests it. */
  #attest(id: string): Promise<void> {
    if (this.#attested.has(id)) return Promise.resolve()
    if (!this.#o.chain.validators().includes(this.did)) return Promise.resolve()
    this.#attested.add(id)
    // one reproduction at a time: a burst of proposals queues here instead of scoring all at once
    const run = this.#attestQueue.then(() => this.#reproduce(id))
    this.#attestQueue = run.catch(() => {})
    return run
  }

  async #reproduce(id: string): Promise<void> {
    const proposal = readProposal(this.state, id)
    if (proposal === undefined || proposal.status !== 'pending') return
    // attested before a restart: a second attestation would only be refused, for a fee
    if (readAttestation(this.state, id, this.did) !== undefined) return
    let body: AttestBody
    try {
      const loaded = await this.families.load(this.state, proposal.family, proposal.version)
      const replace = new Map<string, Uint8Array>()
      let fault: string | undefined
      for (const hash of proposal.blocks) {
        const record = readBlock(this.state, hash)
        if (record === undefined) continue
        const h = record.header
        let bytes: Uint8Array
        try {
          bytes = await this.families.file(h.payloadHash)
        } catch (err) {
          fault = `payload ${h.payloadHash} of ${h.expertName} cannot be fetched: ${describeError(err)}`
          break
        }
        if (bytes.byteLength !== h.payloadBytes) {
          fault = `payload of ${h.expertName} is ${bytes.byteLength} bytes, the header says ${h.payloadBytes}`
          break
        }
        try {
          if (h.blockType === 'router') parseRouter(loaded.meta.arch, bytes)
          else parseExpert(loaded.meta.arch, bytes)
        } catch (err) {
          fault = `payload of ${h.expertName} does not fit the MetaBlock: ${describeError(err)}`
          break
        }
        replace.set(h.expertName, bytes)
      }
      if (fault !== undefined) body = { proposal: id, fault: fault.slice(0, 200) }
      else {
        // a family's first blocks have no baseline: there is no model without them
        const complete = loaded.routers.every((r) => r !== null)
        const baseline = complete ? await this.score(loaded, new Map(), this.#o.signal) : undefined
        const score = await this.score(loaded, replace, this.#o.signal)
        body = baseline === undefined ? { proposal: id, score } : { proposal: id, score, baseline }
      }
    } catch (err) {
      this.#log.warn({ err: describeError(err), proposal: id }, 'could not reproduce a proposal')
      this.#attested.delete(id)
      return
    }
    try {
      await this.#o.submitTx('experts.attest', body)
      this.#log.info({ proposal: id, fault: body.fault, score: body.score?.lossMicroNats.toString() }, 'attested')
    } catch (err) {
      this.#log.warn({ err: describeError(err), proposal: id }, 'attestation not submitted')
    }
  }

  /** Attests every pending proposal this validator has not attested (at start, and on demand). */
  attestPending(ids: readonly string[]): void {
    for (const id of ids) void this.#attest(id)
  }

  // ---- mining ------------------------------------------------------------------------------------

  /** Proposes `payload` for slot `name` of `family` (default: the first family). */
  async propose(
    request: { family?: string; name: string; payload: Uint8Array },
    onProgress: (line: string) => void = () => {},
  ): Promise<ProposeResult> {
    const meta = this.familyOf(request.family)
    const slot = parseExpertName(request.name)
    if (
      slot === undefined ||
      slot.layer >= meta.arch.nLayers ||
      (slot.expert !== null && slot.expert >= meta.arch.expertsPerLayer)
    )
      throw new InvalidInputError(
        `${request.name} is not a slot of ${meta.family} v${meta.version} (layer0\u2026${meta.arch.nLayers - 1}, expert0\u2026${meta.arch.expertsPerLayer - 1} or router)`,
      )
    const type = slot.expert === null ? 'router' : 'expert'
    if (type === 'router') parseRouter(meta.arch, request.payload)
    else parseExpert(meta.arch, request.payload)
    onProgress(`${request.name}: shapes fit ${meta.family} v${meta.version}`)
    const cid = await this.#o.files.put(request.payload)
    this.#o.files.pin(cid)
    onProgress(`stored as ${cid}`)
    const loaded = await this.families.load(this.state, meta.family, meta.version)
    onProgress('scoring on the validation set (the claim)\u2026')
    const claim = await this.score(loaded, new Map([[request.name, request.payload]]), this.#o.signal)
    onProgress(`claim: loss ${claim.lossMicroNats} µnats, accuracy ${claim.accuracyPpm} ppm`)
    const family = readFamily(this.state, meta.family)
    if (family === undefined) throw new InvalidInputError(`no expert family ${meta.family}`)
    const dependsOn = [meta.hash]
    if (type === 'expert') {
      const router = loaded.params.routers[slot.layer]
      if (router !== undefined && router !== '') dependsOn.push(router)
    }
    const unsigned = signParamBlock(this.#o.key, {
      index: family.nextIndex,
      chainId: meta.family,
      version: meta.version,
      dependsOn,
      blockType: type,
      expertName: request.name,
      layerId: slot.layer,
      payloadHash: cid,
      payloadBytes: request.payload.byteLength,
      shapes: payloadShapes(meta.arch, type),
    })
    onProgress(`proof of work: ${this.#o.chain.params.polDifficultyBits} bits\u2026`)
    const pow = await stampPow(unsignedOf(unsigned), this.#o.chain.params.polDifficultyBits, this.#o.signal)
    const header: ParamBlockHeader = { ...unsigned, nonce: pow.nonce }
    onProgress(
      `nonce ${pow.nonce} after ${pow.tries} tries (${pow.ms} ms); submitting with a bond of ${this.#o.chain.params.polBond}`,
    )
    const body: ProposeBody = { family: meta.family, version: meta.version, blocks: [header], claim }
    const { hash } = await this.#o.submitTx('experts.propose', body)
    return {
      proposal: toHex(hash),
      txHash: toHex(hash),
      block: blockHash(header),
      claim,
      powNonce: pow.nonce,
      powMs: pow.ms,
    }
  }

  /** The training tokens the node knows for a family (config, or the demo family's `train.bin`). */
  trainingSetOf(family: string): string | undefined {
    return this.#o.trainingSets?.[family]
  }

  /** Fine-tunes slot `name` with the built-in trainer on `tokens` (uint32 LE). */
  async trainExpert(
    request: { family?: string; name: string; tokens: Uint8Array; steps: number; seed?: number },
    onProgress: (line: string) => void = () => {},
  ): Promise<TrainOutcome> {
    const meta = this.familyOf(request.family)
    const slot = parseExpertName(request.name)
    if (
      slot === undefined ||
      slot.expert === null ||
      slot.layer >= meta.arch.nLayers ||
      slot.expert >= meta.arch.expertsPerLayer
    )
      throw new InvalidInputError(`${request.name} is not an expert slot of ${meta.family}`)
    // one training at a time: an operator's request waits for the idle round in progress
    const previous = this.#trainLock
    let release = (): void => {}
    this.#trainLock = new Promise<void>((r) => (release = r))
    await previous
    try {
      return await this.#train(meta, slot as { layer: number; expert: number }, request, onProgress)
    } finally {
      release()
    }
  }

  async #train(
    meta: MetaRecord,
    slot: { layer: number; expert: number },
    request: { name: string; tokens: Uint8Array; steps: number; seed?: number },
    onProgress: (line: string) => void,
  ): Promise<TrainOutcome> {
    const loaded = await this.families.load(this.state, meta.family, meta.version)
    const block = (loaded.params.experts[slot.layer] as string[])[slot.expert] as string
    if (block === '') throw new InvalidInputError(`${request.name} is empty: there is nothing to fine-tune`)
    const local = this.#localFor(meta)
    const weights = await local.get(block)
    const all = parseValidationTokens(request.tokens, meta.arch.vocabSize)
    // a slice of TRAIN_WINDOWS windows, a different one each run: steps stay short (each evaluates
    // three candidates over the windows), and successive runs see the whole set
    const T = meta.validation.windowTokens
    const available = Math.floor((all.length - 1) / T)
    if (available < 1) throw new InvalidInputError(`the training set holds fewer than one window of ${T} tokens`)
    const windows = Math.min(TRAIN_WINDOWS, available)
    const start = ((this.#trainRuns++ * windows) % available) * T
    const tokens =
      start + windows * T + 1 <= all.length
        ? all.subarray(start, start + windows * T + 1)
        : all.subarray(0, windows * T + 1)
    this.training = { ...this.training, running: true, expert: `${meta.family}/${request.name}`, steps: 0 }
    try {
      const result = await train({
        arch: meta.arch,
        trunk: loaded.trunk,
        routers: allRouters(loaded),
        provider: local,
        blocks: loaded.params.experts,
        layer: slot.layer,
        expert: slot.expert,
        weights,
        tokens,
        windowTokens: meta.validation.windowTokens,
        steps: request.steps,
        seed: request.seed ?? this.training.rounds + 1,
        // inference first: the trainer pauses at its next unit of work once a generation starts
        shouldYield: () => this.#active > 0,
        onPause: () => {
          const waited = this.#clock.now() - this.#generationStarted
          this.training.paused++
          this.training.lastYieldMs = waited
          this.training.maxYieldMs = Math.max(this.training.maxYieldMs, waited)
        },
        onStep: (step, loss) => {
          this.training.steps = step
          onProgress(`step ${step}/${request.steps}: training loss ${loss.toFixed(4)} nats`)
        },
        signal: this.#o.signal,
      })
      return { family: meta.family, name: request.name, losses: result.losses, weights: result.weights }
    } finally {
      this.training = { ...this.training, running: false }
    }
  }

  /**
   * Idle-time training (seed 001's "idle resources -> background fine-tuning"): while no
   * generation has run for `idleMs`, fine-tune a hosted expert - hot path first (the most calls
   * the chain recorded), then round robin - for a few steps; when the result improves the
   * validation score by the chain's delta, propose it. Generations always come first.
   */
  async #trainLoop(): Promise<void> {
    let turn = 0
    while (!this.#o.signal.aborted) {
      await sleep(this.#o.idleMs ?? 2_000, this.#o.signal).catch(() => {})
      if (this.#o.signal.aborted) return
      if (this.#active > 0 || this.#clock.now() - this.#lastActive < (this.#o.idleMs ?? 2_000)) continue
      const candidates = [...this.#hosted]
        .map((hash) => ({ hash, record: readBlock(this.state, hash), calls: readUsage(this.state, hash)?.calls ?? 0n }))
        .filter(
          (c) => c.record?.header.blockType === 'expert' && this.trainingSetOf(c.record.header.chainId) !== undefined,
        )
        .sort((a, b) => (a.calls === b.calls ? (a.hash < b.hash ? -1 : 1) : a.calls > b.calls ? -1 : 1))
      if (candidates.length === 0) continue
      // hot path on even turns, round robin on odd ones: the busiest expert gets half the time
      const pick = candidates[turn % 2 === 0 ? 0 : ((turn - 1) / 2) % candidates.length] as (typeof candidates)[number]
      turn++
      const header = (pick.record as BlockRecord).header
      try {
        const tokens = await this.families.file(this.trainingSetOf(header.chainId) as string)
        const outcome = await this.trainExpert({
          family: header.chainId,
          name: header.expertName,
          tokens,
          steps: this.#o.trainingSteps ?? 4,
        })
        this.training.rounds++
        const payload = encodeExpert(outcome.weights)
        const loaded = await this.families.load(this.state, header.chainId)
        const [baseline, score] = [
          await this.score(loaded),
          await this.score(loaded, new Map([[header.expertName, payload]])),
        ]
        const gain = baseline.lossMicroNats - score.lossMicroNats
        this.training.lastGainMicroNats = gain
        if (gain >= this.#o.chain.params.polMinGainMicroNats) {
          const proposed = await this.propose({ family: header.chainId, name: header.expertName, payload })
          this.training.proposals.push(proposed.proposal)
          this.#log.info(
            { expert: header.expertName, gain: gain.toString(), proposal: proposed.proposal },
            'idle training proposed a better expert',
          )
        }
      } catch (err) {
        this.#log.debug({ err: describeError(err) }, 'idle training round stopped')
      }
    }
  }

  /** Whether a generation is running (training yields to it). */
  get busy(): boolean {
    return this.#active > 0
  }
}

/** The expert blocks of a version's ParamIndex (routers run on the gateway: they are not hosted). */
function indexExperts(state: StateReader, meta: MetaRecord): string[] {
  return paramIndex(state, meta.family, meta.version)
    .filter((e) => parseExpertName(e.name)?.expert !== null)
    .map((e) => e.hash)
}

function hostsOfRouting(
  routing: RoutingStats,
  experts: readonly (readonly string[])[],
): Array<Record<number, string[]>> {
  return experts.map((row, layer) => {
    const out: Record<number, string[]> = {}
    row.forEach((block, j) => {
      const tokens = routing.expertTokens[layer]?.[j] ?? 0
      if (tokens > 0 && block !== '') out[j] = routing.blocks[block]?.hosts ?? []
    })
    return out
  })
}

/** `provider`, but each layer waits while `busy()` (checked every 5 ms). */
function yieldingTo(provider: ExpertProvider, busy: () => boolean, signal?: AbortSignal): ExpertProvider {
  return {
    async runLayer(calls, callSignal) {
      while (busy()) await sleep(5, signal ?? callSignal ?? new AbortController().signal)
      return provider.runLayer(calls, callSignal)
    },
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms)
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer)
        reject(signal.reason as Error)
      },
      { once: true },
    )
  })
}
