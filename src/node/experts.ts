/**
 * The experts (AI-Block) inside a running node: the ExpertsService (src/experts/service.ts) wired
 * to the node's chain, content store, transport and DHT, and the `ExpertsApi` the HTTP routes
 * serve: the chain's parameter DAG and ParamIndex, usage and rewards, MoE chat, the expert hosts
 * this node has called, and the operator's mining (propose, chunked upload, import).
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { describeError, InvalidInputError } from '../core/errors.ts'
import { silentLogger, type Logger } from '../core/logger.ts'
import type { PeerTransport } from '../core/transport.ts'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import type { Libp2p } from '@libp2p/interface'
import type {
  DagView,
  ExpertGroupView,
  ExpertHostView,
  ExpertsApi,
  ExpertView,
  FamilyView,
  ForkAnswer,
  IntegrityStatus,
  TrainingView,
  MoeChatAnswer,
  MoeChatRequest,
  ProposeAnswer,
  ProposeRequest,
  ReplicationSuggestion,
} from '../api/experts-api.ts'
import { validatorSetAt } from '../staking/staking.ts'
import {
  blockHistory,
  dagBlocks,
  indexKey,
  listFamilies,
  listProposals,
  paramIndex,
  readBlock,
  readFamily,
  readMeta,
  readProposal,
  readUsage,
} from '../experts/chain/state.ts'
import { ExpertsService, type ChatResult } from '../experts/service.ts'
import { ExpertUploadError } from '../experts/errors.ts'
import type { ExpertFiles } from '../experts/family.ts'
import { libp2pRouting } from '../experts/net/directory.ts'
import { encodeExpert } from '../experts/model/weights.ts'
import { importCheckpoint } from '../experts/import.ts'
import { readDemoMoe, DEMO_MOE_DIR } from '../experts/demo.ts'
import { DEMO_MOE_FAMILY, demoMoeFiles } from '../experts/genesis.ts'
import { metaHash, signParamBlock, unsignedOf } from '../experts/block.ts'
import { stampPow } from '../experts/pow.ts'
import { evaluateModel, parseValidationTokens } from '../experts/model/evaluate.ts'
import { StaticExperts } from '../experts/model/local.ts'
import { parseExpert, parseRouter, parseTrunk } from '../experts/model/weights.ts'
import {
  expertName,
  parseExpertName,
  payloadShapes,
  routerName,
  type BlockRecord,
  type Gating,
  type MetaBlockBody,
  type MetaRecord,
  type ParamBlockHeader,
  type ProposalRecord,
} from '../experts/types.ts'
import type { DonghaeNode } from './chain-node.ts'
import { peerDid } from './adapters.ts'

/** Largest upload (one expert payload) through the chunked upload routes. */
export const MAX_UPLOAD_BYTES = 256 * 2 ** 20
export const UPLOAD_CHUNK_BYTES = 4 * 2 ** 20
const MAX_UPLOADS = 8

export interface NodeExpertsOptions {
  node: DonghaeNode
  key: Ed25519KeyPair
  transport: PeerTransport
  files: ExpertFiles
  libp2p?: Libp2p
  replicas?: number
  memoryBytes?: number
  training?: boolean
  logger?: Logger
  signal: AbortSignal
}

interface Upload {
  family?: string
  expert: string
  bytes: number
  chunks: Uint8Array[]
  received: number
}

function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}

export class NodeExperts implements ExpertsApi {
  readonly service: ExpertsService
  readonly #o: NodeExpertsOptions
  readonly #uploads = new Map<string, Upload>()

  private constructor(options: NodeExpertsOptions, service: ExpertsService) {
    this.#o = options
    this.service = service
  }

  static async create(options: NodeExpertsOptions): Promise<NodeExperts> {
    const { node } = options
    // the demo family's files: every node has them in the package, so it serves them at once
    const trainingSets = await importDemoFiles(options.files, options.logger ?? silentLogger())
    const service = new ExpertsService({
      key: options.key,
      chain: {
        params: node.app.genesis.params,
        state: () => node.app.state,
        height: () => node.app.head.height,
        validators: () => {
          try {
            return validatorSetAt(node.app.state, node.app.head.height + 1, node.app.genesis.params).validators.map(
              (v) => v.did,
            )
          } catch {
            return node.app.genesis.validators.map((v) => v.did)
          }
        },
        onCommit: (listener) => node.onCommit((block, events) => listener(block.header.height, events)),
      },
      files: options.files,
      transport: options.transport,
      ...(options.libp2p === undefined
        ? {}
        : { routing: libp2pRouting(options.libp2p as never, (peer) => peerDid(peer)) }),
      submitTx: (kind, body) => node.submitOwnTx(kind, body),
      ...(options.replicas === undefined ? {} : { replicas: options.replicas }),
      ...(options.memoryBytes === undefined ? {} : { memoryBytes: options.memoryBytes }),
      ...(options.training === undefined ? {} : { training: options.training }),
      trainingSets,
      ...(options.logger === undefined ? {} : { logger: options.logger }),
      signal: options.signal,
    })
    return new NodeExperts(options, service)
  }

  start(): void {
    this.service.start()
  }

  async stop(): Promise<void> {
    await this.service.stop()
  }

  get #state() {
    return this.#o.node.app.state
  }

  #family(name: string | undefined): MetaRecord {
    return this.service.familyOf(name)
  }

  // ---- the chain's view ------------------------------------------------------------------------------

  families(): FamilyView[] {
    return listFamilies(this.#state).flatMap((f) => {
      const meta = readMeta(this.#state, f.family)
      if (meta === undefined) return []
      return [
        {
          family: f.family,
          version: meta.version,
          owner: f.owner,
          layers: meta.arch.nLayers,
          expertsPerLayer: meta.arch.expertsPerLayer,
          topK: meta.arch.topK,
          blocks: paramIndex(this.#state, f.family, meta.version).length,
          ...(f.score === undefined ? {} : { score: f.score }),
        },
      ]
    })
  }

  meta(family: string, version?: number): MetaRecord | undefined {
    return readMeta(this.#state, family, version)
  }

  #view(meta: MetaRecord, name: string, hash: string): ExpertView {
    const record = readBlock(this.#state, hash)
    const usage = readUsage(this.#state, hash)
    const slot = parseExpertName(name)
    const calls = Number(usage?.calls ?? 0n)
    const epochCalls = usage?.epochCalls ?? 0n
    const latency = usage?.epochLatencyMs ?? 0n
    return {
      family: meta.family,
      version: meta.version,
      name,
      layer: slot?.layer ?? 0,
      expert: slot?.expert ?? null,
      block: hash,
      miner: record?.header.miner ?? '',
      height: record?.height ?? 0,
      payloadHash: record?.header.payloadHash ?? '',
      payloadBytes: record?.header.payloadBytes ?? 0,
      calls,
      meanLatencyMs: epochCalls === 0n ? 0 : Number(latency / epochCalls),
      lastUsedHeight: usage?.lastUsedHeight ?? 0,
      rewards: usage?.rewards ?? 0n,
      hosts: this.service.directory.cached(hash),
      indexKey: indexKey(meta.family, meta.version, name),
    }
  }

  list(query: { family?: string; layer?: number }): ExpertView[] {
    const metas = query.family === undefined ? listFamilies(this.#state).map((f) => f.family) : [query.family]
    return metas.flatMap((family) => {
      const meta = readMeta(this.#state, family)
      if (meta === undefined) return []
      return paramIndex(this.#state, family, meta.version)
        .filter((e) => query.layer === undefined || parseExpertName(e.name)?.layer === query.layer)
        .map((e) => this.#view(meta, e.name, e.hash))
    })
  }

  show(family: string | undefined, name: string): ExpertView | undefined {
    const meta = this.#family(family)
    const hash = paramIndex(this.#state, meta.family, meta.version).find((e) => e.name === name)?.hash
    return hash === undefined ? undefined : this.#view(meta, name, hash)
  }

  history(family: string | undefined, name: string): BlockRecord[] {
    const meta = this.#family(family)
    return blockHistory(this.#state, meta.family, name).flatMap((h) => {
      const record = readBlock(this.#state, h.hash)
      return record === undefined ? [] : [record]
    })
  }

  proposals(query: { status?: ProposalRecord['status']; limit?: number }): ProposalRecord[] {
    return listProposals(this.#state, {
      ...(query.status === undefined ? {} : { status: query.status }),
      limit: query.limit ?? 50,
    })
  }

  proposal(id: string): ProposalRecord | undefined {
    return readProposal(this.#state, id)
  }

  top(query: { family?: string; limit?: number }): ExpertView[] {
    return this.list(query.family === undefined ? {} : { family: query.family })
      .filter((v) => v.expert !== null)
      .sort((a, b) => b.calls - a.calls || (a.name < b.name ? -1 : 1))
      .slice(0, query.limit ?? 10)
  }

  dag(family?: string, version?: number): DagView | undefined {
    const meta = family === undefined ? this.#family(undefined) : readMeta(this.#state, family, version)
    if (meta === undefined) return undefined
    const current = new Set(paramIndex(this.#state, meta.family, meta.version).map((e) => e.hash))
    return {
      family: meta.family,
      version: meta.version,
      meta,
      blocks: dagBlocks(this.#state, meta.family, meta.version).map((b) => ({
        hash: b.hash,
        name: b.header.expertName,
        layer: b.header.layerId,
        type: b.header.blockType,
        index: b.header.index,
        current: current.has(b.hash),
        dependsOn: b.header.dependsOn,
      })),
    }
  }

  // ---- chat --------------------------------------------------------------------------------------

  async chat(request: MoeChatRequest, signal?: AbortSignal): Promise<MoeChatAnswer> {
    if (request.prompt === undefined && request.messages === undefined)
      throw new InvalidInputError('give a prompt or messages')
    const result = await this.service.chat({
      ...(request.family === undefined ? {} : { family: request.family }),
      ...(request.prompt === undefined ? {} : { prompt: request.prompt }),
      ...(request.messages === undefined
        ? {}
        : { messages: request.messages.map((m) => ({ role: m.role, content: m.content })) }),
      distributed: request.use_distributed !== false,
      ...(request.top_k_experts === undefined ? {} : { topK: request.top_k_experts }),
      ...(request.max_tokens === undefined ? {} : { maxTokens: request.max_tokens }),
      ...(request.temperature === undefined ? {} : { temperatureMilli: Math.round(request.temperature * 1000) }),
      ...(request.seed === undefined ? {} : { seed: BigInt(request.seed) }),
      ...(signal === undefined ? {} : { signal }),
    })
    return chatAnswer(result)
  }

  // ---- the hosts this node called ---------------------------------------------------------------------

  #hostViews(): ExpertHostView[] {
    const byDid = new Map<string, ExpertHostView>()
    const announced = new Map<string, string[]>()
    for (const f of listFamilies(this.#state)) {
      const meta = readMeta(this.#state, f.family)
      if (meta === undefined) continue
      for (const e of paramIndex(this.#state, f.family, meta.version))
        for (const did of this.service.directory.cached(e.hash)) {
          const list = announced.get(did) ?? []
          list.push(`${f.family}/v${meta.version}/${e.name}`)
          announced.set(did, list)
        }
    }
    for (const [did, experts] of announced) byDid.set(did, { ...emptyHost(did), experts })
    const now = Date.now()
    for (const coordinator of this.service.coordinators())
      for (const h of coordinator.stats().hosts) {
        const view = byDid.get(h.did) ?? emptyHost(h.did)
        view.calls += h.calls
        view.failures += h.failures
        view.meanLatencyMs = Math.round(h.meanLatencyMs ?? 0)
        view.quarantined = view.quarantined || h.quarantinedUntil > now
        view.quarantinedUntil = h.quarantinedUntil > now ? h.quarantinedUntil : view.quarantinedUntil
        view.auditsPassed += h.auditsPassed
        view.auditsFailed += h.auditsFailed
        view.lastSeen = h.lastSeen === 0 ? view.lastSeen : Math.max(view.lastSeen ?? 0, h.lastSeen)
        byDid.set(h.did, view)
      }
    return [...byDid.values()].sort((a, b) => (a.did < b.did ? -1 : 1))
  }

  hosts(): ExpertHostView[] {
    return this.#hostViews()
  }

  host(did: string): ExpertHostView | undefined {
    return this.#hostViews().find((h) => h.did === did)
  }

  groups(): ExpertGroupView[] {
    const names = this.#blockNames()
    return this.service.coordinators().flatMap((c) =>
      c.groups().map((g) => ({
        experts: g.experts.map((e) => names.get(e.block) ?? e.block),
        together: g.count,
        hosts: g.hosts,
      })),
    )
  }

  #blockNames(): Map<string, string> {
    const names = new Map<string, string>()
    for (const f of listFamilies(this.#state)) {
      const meta = readMeta(this.#state, f.family)
      if (meta === undefined) continue
      for (const e of paramIndex(this.#state, f.family, meta.version)) names.set(e.hash, `${f.family}/${e.name}`)
    }
    return names
  }

  replicationSuggestions(): ReplicationSuggestion[] {
    const names = this.#blockNames()
    return this.service.coordinators().flatMap((c) =>
      c.replicationSuggestions().map((s) => ({
        expert: names.get(s.block) ?? s.block,
        block: s.block,
        calls: s.calls,
        replicas: s.replicas,
        wanted: s.wanted,
      })),
    )
  }

  training(): TrainingView {
    const t = this.service.training
    return { ...t, proposals: [...t.proposals] }
  }

  integrity(): IntegrityStatus {
    let audits = 0
    let failures = 0
    let masked = 0
    let failovers = 0
    for (const c of this.service.coordinators()) {
      const s = c.stats()
      audits += s.audits.run
      failures += s.audits.failed
      masked += s.masked
      failovers += s.failovers
    }
    return {
      auditPpm: 20_000,
      audits,
      auditFailures: failures,
      quarantined: this.#hostViews()
        .filter((h) => h.quarantined)
        .map((h) => h.did),
      masked,
      failovers,
    }
  }

  #coordinatorsForAll() {
    // a quarantine must hold for every family, including ones this node has not generated with yet
    for (const f of listFamilies(this.#state)) {
      try {
        this.service.remoteFor(this.service.familyOf(f.family))
      } catch {
        // a family without a MetaBlock: nothing to quarantine in
      }
    }
    return this.service.coordinators()
  }

  quarantine(did: string): ExpertHostView {
    for (const c of this.#coordinatorsForAll()) c.quarantine(did)
    return this.host(did) ?? { ...emptyHost(did), quarantined: true }
  }

  recover(did: string): ExpertHostView {
    for (const c of this.#coordinatorsForAll()) c.recover(did)
    return this.host(did) ?? emptyHost(did)
  }

  // ---- mining ------------------------------------------------------------------------------------

  async propose(request: ProposeRequest, onProgress: (line: string) => void = () => {}): Promise<ProposeAnswer> {
    let payload: Uint8Array
    if (request.weightsPath !== undefined) {
      try {
        payload = new Uint8Array(await readFile(request.weightsPath))
      } catch (err) {
        throw new InvalidInputError(`cannot read ${request.weightsPath}: ${describeError(err)}`)
      }
    } else if (request.train !== undefined) {
      const family = this.service.familyOf(request.family).family
      const dataset = request.train.dataset ?? this.service.trainingSetOf(family)
      if (dataset === undefined)
        throw new InvalidInputError(
          `no training set is known for ${family}: give a dataset (a CID, or a path on the node's disk) of uint32 little-endian token ids, other than the public validation set`,
        )
      let tokens: Uint8Array
      if (dataset.startsWith('/'))
        try {
          tokens = new Uint8Array(await readFile(dataset))
        } catch (err) {
          throw new InvalidInputError(`cannot read ${dataset}: ${describeError(err)}`)
        }
      else tokens = await this.service.families.file(dataset)
      const trained = await this.service.trainExpert(
        {
          ...(request.family === undefined ? {} : { family: request.family }),
          name: request.expert,
          tokens,
          steps: request.train.steps,
        },
        onProgress,
      )
      payload = encodeExpert(trained.weights)
    } else throw new InvalidInputError('give weightsPath or train')
    return answerOf(
      await this.service.propose(
        { ...(request.family === undefined ? {} : { family: request.family }), name: request.expert, payload },
        onProgress,
      ),
    )
  }

  uploadBegin(request: { family?: string; expert: string; bytes: number }): { upload: string; chunkBytes: number } {
    if (!Number.isSafeInteger(request.bytes) || request.bytes < 1 || request.bytes > MAX_UPLOAD_BYTES)
      throw new InvalidInputError(`an upload is 1 to ${MAX_UPLOAD_BYTES} bytes, not ${request.bytes}`)
    if (parseExpertName(request.expert) === undefined)
      throw new InvalidInputError(`${request.expert} is not an expert name (layer<L>.expert<J> or layer<L>.router)`)
    if (this.#uploads.size >= MAX_UPLOADS)
      throw new InvalidInputError(`${MAX_UPLOADS} uploads are open already: finish one first`)
    const upload = toHex(randomBytes(16))
    this.#uploads.set(upload, {
      ...(request.family === undefined ? {} : { family: request.family }),
      expert: request.expert,
      bytes: request.bytes,
      chunks: [],
      received: 0,
    })
    return { upload, chunkBytes: UPLOAD_CHUNK_BYTES }
  }

  uploadChunk(upload: string, index: number, chunk: Uint8Array): { received: number } {
    const u = this.#uploads.get(upload)
    if (u === undefined) throw new ExpertUploadError(404, `no upload ${upload}`)
    if (index !== u.chunks.length)
      throw new ExpertUploadError(409, `chunk ${index} is out of order: the next is ${u.chunks.length}`)
    if (chunk.byteLength === 0 || chunk.byteLength > UPLOAD_CHUNK_BYTES)
      throw new ExpertUploadError(413, `a chunk is 1 to ${UPLOAD_CHUNK_BYTES} bytes`)
    if (u.received + chunk.byteLength > u.bytes)
      throw new ExpertUploadError(413, `the chunks exceed the announced ${u.bytes} bytes`)
    u.chunks.push(chunk)
    u.received += chunk.byteLength
    return { received: u.received }
  }

  async uploadFinish(upload: string): Promise<ProposeAnswer> {
    const u = this.#uploads.get(upload)
    if (u === undefined) throw new ExpertUploadError(404, `no upload ${upload}`)
    if (u.received !== u.bytes) throw new ExpertUploadError(409, `the upload has ${u.received} of its ${u.bytes} bytes`)
    this.#uploads.delete(upload)
    const payload = new Uint8Array(u.bytes)
    let at = 0
    for (const c of u.chunks) {
      payload.set(c, at)
      at += c.byteLength
    }
    return answerOf(
      await this.service.propose({ ...(u.family === undefined ? {} : { family: u.family }), name: u.expert, payload }),
    )
  }

  async fork(request: { family: string; topK?: number; gating?: Gating; note?: string }): Promise<ForkAnswer> {
    const meta = readMeta(this.#state, request.family)
    if (meta === undefined) throw new InvalidInputError(`no expert family ${request.family}`)
    if (meta.owner !== this.#o.node.did)
      throw new InvalidInputError(`only the family's owner (${meta.owner}) can publish its next version`)
    const arch = {
      ...meta.arch,
      ...(request.topK === undefined ? {} : { topK: request.topK }),
      ...(request.gating === undefined ? {} : { gating: request.gating }),
    }
    if (!Number.isInteger(arch.topK) || arch.topK < 1 || arch.topK > arch.expertsPerLayer)
      throw new InvalidInputError(`top-k must be 1 to ${arch.expertsPerLayer}, not ${arch.topK}`)
    // router rules change, shapes do not: every current block still fits, so all are carried
    const carry = paramIndex(this.#state, meta.family, meta.version).map((e) => e.hash)
    const body: MetaBlockBody = {
      family: meta.family,
      version: meta.version + 1,
      tokenizer: meta.tokenizer,
      trunk: meta.trunk,
      validation: meta.validation,
      arch,
      carry,
      note: request.note ?? `fork of v${meta.version}: top-${arch.topK}, ${arch.gating}`,
    }
    const { hash } = await this.#o.node.submitOwnTx('experts.meta', body)
    await this.#until(() => readMeta(this.#state, meta.family, body.version) !== undefined, 'the MetaBlock')
    return { family: meta.family, version: body.version, carried: carry.length, txHash: toHex(hash) }
  }

  async importCheckpoint(
    request: { dir: string; family: string },
    onProgress: (line: string) => void = () => {},
  ): Promise<{ family: string; version: number; blocks: number; proposal: string }> {
    const imported = await importCheckpoint(request.dir)
    onProgress(
      `${imported.scheme}: ${imported.arch.nLayers} layers × ${imported.arch.expertsPerLayer} experts, top-${imported.arch.topK}`,
    )
    if (!imported.runnable || imported.trunk === undefined)
      throw new InvalidInputError(
        `the checkpoint's experts split, but the model cannot run here (${imported.reason ?? 'no trunk'}): Proof-of-Learning cannot score it`,
      )
    const read = async (name: string): Promise<Uint8Array> => {
      try {
        return new Uint8Array(await readFile(join(request.dir, name)))
      } catch (err) {
        throw new InvalidInputError(`the folder needs ${name}: ${describeError(err)}`)
      }
    }
    const [json, config, validation] = await Promise.all([
      read('tokenizer.json'),
      read('tokenizer_config.json'),
      read('validation.bin'),
    ])
    const arch = imported.arch
    const tokens = parseValidationTokens(validation, arch.vocabSize)
    const windowTokens = Math.min(64, arch.contextLength)
    const windows = Math.floor((tokens.length - 1) / windowTokens)
    if (windows < 1)
      throw new InvalidInputError(
        `validation.bin holds ${tokens.length} tokens: fewer than one window of ${windowTokens}`,
      )
    const files = this.#o.files
    const put = async (bytes: Uint8Array): Promise<string> => {
      const cid = await files.put(bytes)
      files.pin(cid)
      return cid
    }
    const existing = readFamily(this.#state, request.family)
    const version = existing === undefined ? 1 : existing.latest + 1
    const body: MetaBlockBody = {
      family: request.family,
      version,
      arch,
      tokenizer: { json: await put(json), config: await put(config) },
      trunk: await put(imported.trunk),
      validation: { cid: await put(validation), windows, windowTokens },
      carry: [],
      note: `import of a ${imported.scheme} checkpoint`,
    }
    onProgress(`MetaBlock v${version} (${metaHash(body).slice(0, 12)}\u2026)`)
    await this.#o.node.submitOwnTx('experts.meta', body)
    await this.#until(() => readMeta(this.#state, request.family, version) !== undefined, 'the MetaBlock')
    onProgress('scoring the imported model on its validation set (the claim)\u2026')
    const experts = new Map(
      imported.experts.flatMap((row, l) =>
        row.map((bytes, j) => [expertName(l, j), parseExpert(arch, bytes)] as const),
      ),
    )
    const claim = await evaluateModel({
      arch,
      trunk: parseTrunk(arch, imported.trunk),
      routers: imported.routers.map((r) => parseRouter(arch, r)),
      provider: new StaticExperts(experts),
      tokens,
      windows,
      windowTokens,
    })
    const family = readFamily(this.#state, request.family)
    if (family === undefined) throw new InvalidInputError(`family ${request.family} is not on chain`)
    const meta = metaHash(body)
    const headers: ParamBlockHeader[] = []
    let index = family.nextIndex
    const routerRefs: string[] = []
    const bits = this.#o.node.app.genesis.params.polDifficultyBits
    const stamp = async (h: ParamBlockHeader): Promise<ParamBlockHeader> => {
      return { ...h, nonce: (await stampPow(unsignedOf(h), bits, this.#o.signal)).nonce }
    }
    for (const [l, bytes] of imported.routers.entries()) {
      routerRefs.push(`#${index}`)
      headers.push(
        await stamp(
          signParamBlock(this.#o.key, {
            index: index++,
            chainId: request.family,
            version,
            dependsOn: [meta],
            blockType: 'router',
            expertName: routerName(l),
            layerId: l,
            payloadHash: await put(bytes),
            payloadBytes: bytes.byteLength,
            shapes: payloadShapes(arch, 'router'),
          }),
        ),
      )
    }
    for (const [l, row] of imported.experts.entries())
      for (const [j, bytes] of row.entries())
        headers.push(
          await stamp(
            signParamBlock(this.#o.key, {
              index: index++,
              chainId: request.family,
              version,
              dependsOn: [meta, routerRefs[l] as string],
              blockType: 'expert',
              expertName: expertName(l, j),
              layerId: l,
              payloadHash: await put(bytes),
              payloadBytes: bytes.byteLength,
              shapes: payloadShapes(arch, 'expert'),
            }),
          ),
        )
    onProgress(`${headers.length} blocks signed and stamped; proposing`)
    const { hash } = await this.#o.node.submitOwnTx('experts.propose', {
      family: request.family,
      version,
      blocks: headers,
      claim,
    })
    return { family: request.family, version, blocks: headers.length, proposal: toHex(hash) }
  }

  async #until(done: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
    const end = Date.now() + timeoutMs
    while (!done()) {
      if (Date.now() > end) throw new InvalidInputError(`${what} was not committed within ${timeoutMs / 1000} s`)
      await new Promise((r) => setTimeout(r, 200))
    }
  }
}

function emptyHost(did: string): ExpertHostView {
  return {
    did,
    experts: [],
    calls: 0,
    failures: 0,
    meanLatencyMs: 0,
    quarantined: false,
    quarantinedUntil: null,
    auditsPassed: 0,
    auditsFailed: 0,
    lastSeen: null,
  }
}

function answerOf(r: Awaited<ReturnType<ExpertsService['propose']>>): ProposeAnswer {
  return {
    proposal: r.proposal,
    txHash: r.txHash,
    block: r.block,
    claim: r.claim,
    powNonce: r.powNonce,
    powMs: r.powMs,
  }
}

function chatAnswer(result: ChatResult): MoeChatAnswer {
  return {
    family: result.family,
    version: result.version,
    text: result.text,
    promptTokens: result.promptTokens,
    outputTokens: result.ids.length,
    finish: result.finish,
    layers: result.blocks.map((row, layer) => ({
      layer,
      experts: row.flatMap((block, j) => {
        const tokens = result.routing.expertTokens[layer]?.[j] ?? 0
        if (tokens === 0 || block === '') return []
        return [{ name: expertName(layer, j), block, tokens, hosts: result.hostsByExpert[layer]?.[j] ?? [] }]
      }),
    })),
    masked: result.routing.masked,
    elapsedMs: Math.round(result.elapsedMs),
    timing: { trunkMs: Math.round(result.routing.trunkMs), expertMs: Math.round(result.routing.expertMs) },
  }
}

/**
 * Puts the demo family's files (models/moe/) into the node's content store, pinned; returns the
 * training sets it knows (the demo family's `train.bin`).
 */
async function importDemoFiles(files: ExpertFiles, logger: Logger): Promise<Record<string, string>> {
  try {
    const demo = await readDemoMoe(DEMO_MOE_DIR)
    for (const bytes of demoMoeFiles(demo)) files.pin(await files.put(bytes))
    return { [DEMO_MOE_FAMILY]: await files.put(demo.train) }
  } catch (err) {
    logger.warn({ err: describeError(err) }, 'the demo Mixture-of-Experts files could not be imported')
    return {}
  }
}
