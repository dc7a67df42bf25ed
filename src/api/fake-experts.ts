/**
 * A test double of `ExpertsApi` (the seam the experts routes use), for route tests that need no
 * chain or network: one family (`tiny-moe`, 2 layers × 4 experts, top-2) whose blocks, usage,
 * proposals and hosts are fixed records; a chat that routes each prompt token to experts by a
 * hash; propose and import that report a few progress lines; and a chunked upload that checks
 * order and sizes like a real one (409 out of order or unfinished, 413 over the chunk size, 404
 * unknown). Every call is recorded, so a test can assert that a refused request reached nothing.
 */
import { InvalidInputError } from '../core/errors.ts'
import { TooFewExpertsError } from '../experts/net/errors.ts'
import {
  expertName,
  parseExpertName,
  routerName,
  type BlockRecord,
  type MetaRecord,
  type ProposalRecord,
} from '../experts/types.ts'
import type {
  DagView,
  ExpertHostView,
  ExpertsApi,
  ExpertView,
  FamilyView,
  IntegrityStatus,
  MoeChatAnswer,
  MoeChatRequest,
  ProposeAnswer,
  ProposeRequest,
} from './experts-api.ts'

/** An error the routes answer with its status (as Fastify's own errors carry one). */
export class FakeStatusError extends Error {
  readonly statusCode: number
  constructor(statusCode: number, message: string) {
    super(message)
    this.statusCode = statusCode
  }
}

export const FAKE_FAMILY = 'tiny-moe'
export const FAKE_HOSTS = [
  'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK',
  'did:key:z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH',
] as const
export const FAKE_MINER = 'did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WxWufuXSdxf'
const LAYERS = 2
const EXPERTS = 4
const hash = (seed: string): string => {
  let h = 2166136261
  let out = ''
  for (let round = 0; round < 8; round++) {
    for (const c of `${seed}/${round}`) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0
    out += h.toString(16).padStart(8, '0')
  }
  return out
}

const META: MetaRecord = {
  family: FAKE_FAMILY,
  version: 1,
  arch: {
    vocabSize: 64,
    dModel: 16,
    nLayers: LAYERS,
    nHeads: 2,
    nKvHeads: 1,
    dFf: 32,
    contextLength: 128,
    ropeTheta: 10000,
    normEpsE9: 10000,
    expertsPerLayer: EXPERTS,
    topK: 2,
    gating: 'softmax-topk-renorm',
    ffn: 'swiglu',
    tieEmbeddings: true,
  },
  tokenizer: { json: 'bafkreifaketokenizer', config: 'bafkreifaketokenizerconfig' },
  trunk: 'bafkreifaketrunk',
  validation: { cid: 'bafkreifakevalidation', windows: 8, windowTokens: 32 },
  carry: [],
  note: 'fake',
  hash: hash('meta'),
  owner: FAKE_MINER,
  height: 0,
}

function view(layer: number, expert: number | null, i: number): ExpertView {
  const name = expert === null ? routerName(layer) : expertName(layer, expert)
  return {
    family: FAKE_FAMILY,
    version: 1,
    name,
    layer,
    expert,
    block: hash(name),
    miner: FAKE_MINER,
    height: expert === null ? 0 : 3 + i,
    payloadHash: `bafkreifake${name.replace('.', '')}`,
    payloadBytes: expert === null ? 256 : 6144,
    calls: expert === null ? 0 : (i * 37) % 101,
    meanLatencyMs: expert === null ? 0 : 2 + i / 4,
    lastUsedHeight: expert === null ? 0 : 10 + i,
    rewards: BigInt(i) * 1_000_000_000_000_000_000n,
    hosts: expert === null ? [] : [FAKE_HOSTS[i % 2] as string],
    indexKey: `657870657274732f696e6465782f${i.toString(16).padStart(2, '0')}`,
  }
}

export interface FakeExperts extends ExpertsApi {
  /** Every call, by method. */
  calls: {
    chat: MoeChatRequest[]
    /** Whether each chat's signal had aborted by the time it answered (a live client: false). */
    chatAborted: boolean[]
    propose: ProposeRequest[]
    quarantine: string[]
    recover: string[]
    chunks: Array<{ upload: string; index: number; bytes: number }>
    finish: string[]
    import: Array<{ dir: string; family: string }>
  }
  /** The bytes an upload got so far. */
  uploaded(upload: string): Uint8Array | undefined
  /** Families on chain (clear it for a node with none). */
  familyList: FamilyView[]
}

export function fakeExperts(options: { chunkBytes?: number } = {}): FakeExperts {
  const chunkBytes = options.chunkBytes ?? 4
  const experts: ExpertView[] = []
  let i = 0
  for (let layer = 0; layer < LAYERS; layer++) {
    experts.push(view(layer, null, i++))
    for (let e = 0; e < EXPERTS; e++) experts.push(view(layer, e, i++))
  }
  const score = { lossMicroNats: 2_345_678n, accuracyPpm: 412_000 }
  const proposals: ProposalRecord[] = [
    {
      id: hash('p1'),
      family: FAKE_FAMILY,
      version: 1,
      proposer: FAKE_MINER,
      blocks: [hash('layer0.expert1')],
      replaces: { 'layer0.expert1': hash('old') },
      claim: score,
      bond: 10_000n,
      height: 5,
      deadline: 25,
      status: 'accepted',
      reason: '',
      score,
      baseline: { lossMicroNats: 2_400_000n, accuracyPpm: 400_000 },
    },
    {
      id: hash('p2'),
      family: FAKE_FAMILY,
      version: 1,
      proposer: FAKE_MINER,
      blocks: [hash('forged')],
      replaces: { 'layer1.expert0': hash('layer1.expert0') },
      claim: { lossMicroNats: 1_000_000n, accuracyPpm: 900_000 },
      bond: 10_000n,
      height: 7,
      deadline: 27,
      status: 'refused',
      reason: 'forged-score',
      score: { lossMicroNats: 2_500_000n, accuracyPpm: 390_000 },
      baseline: score,
    },
  ]
  const hosts = new Map<string, ExpertHostView>(
    FAKE_HOSTS.map((did, n) => [
      did,
      {
        did,
        experts: experts.filter((e) => e.hosts.includes(did)).map((e) => `${FAKE_FAMILY}/1/${e.name}`),
        calls: 40 + n,
        failures: n,
        meanLatencyMs: 3.5,
        quarantined: false,
        quarantinedUntil: null,
        auditsPassed: 9,
        auditsFailed: n,
        lastSeen: 1_700_000_000_000,
      },
    ]),
  )
  const uploads = new Map<
    string,
    { expert: string; family: string | undefined; bytes: number; chunks: Uint8Array[]; received: number }
  >()
  let nextUpload = 0
  const answer = (block: string): ProposeAnswer => ({
    proposal: hash(`proposal/${block}`),
    txHash: hash(`tx/${block}`),
    block,
    claim: score,
    powNonce: 18_446_744_073_709_551_615n,
    powMs: 12,
  })
  const checkName = (name: string): void => {
    const parsed = parseExpertName(name)
    if (parsed === undefined || parsed.layer >= LAYERS || (parsed.expert ?? 0) >= EXPERTS)
      throw new InvalidInputError(`${name} is no slot of ${FAKE_FAMILY}`)
  }
  const fake: FakeExperts = {
    calls: { chat: [], chatAborted: [], propose: [], quarantine: [], recover: [], chunks: [], finish: [], import: [] },
    familyList: [
      {
        family: FAKE_FAMILY,
        version: 1,
        owner: FAKE_MINER,
        layers: LAYERS,
        expertsPerLayer: EXPERTS,
        topK: 2,
        blocks: experts.length,
        score,
      },
    ],
    uploaded: (upload) => {
      const u = uploads.get(upload)
      return u === undefined ? undefined : new Uint8Array(Buffer.concat(u.chunks))
    },
    families: () => fake.familyList,
    meta: (family, version) => (family === FAKE_FAMILY && (version ?? 1) === 1 ? META : undefined),
    list: ({ family, layer }) =>
      experts.filter(
        (e) => (family === undefined || e.family === family) && (layer === undefined || e.layer === layer),
      ),
    show: (family, name) => experts.find((e) => e.name === name && (family === undefined || e.family === family)),
    history: (family, name): BlockRecord[] => {
      const e = experts.find((x) => x.name === name && (family === undefined || x.family === family))
      if (e === undefined) return []
      const parsed = parseExpertName(name)
      return [
        {
          hash: e.block,
          proposal: hash('p1'),
          height: e.height,
          status: 'accepted',
          score,
          header: {
            index: 1,
            chainId: FAKE_FAMILY,
            version: 1,
            dependsOn: [META.hash],
            blockType: e.expert === null ? 'router' : 'expert',
            expertName: name,
            layerId: parsed?.layer ?? 0,
            payloadHash: e.payloadHash,
            payloadBytes: e.payloadBytes,
            shapes: { w1: [32, 16], w2: [16, 32], w3: [32, 16] },
            nonce: 2n ** 63n + 5n,
            miner: FAKE_MINER,
            payloadSig: new Uint8Array([1, 2, 255]),
          },
        },
      ]
    },
    proposals: ({ status, limit }) =>
      proposals
        .filter((p) => status === undefined || p.status === status)
        .toReversed()
        .slice(0, limit ?? 50),
    proposal: (id) => proposals.find((p) => p.id === id),
    top: ({ family, limit }) =>
      experts
        .filter((e) => e.expert !== null && (family === undefined || e.family === family))
        .toSorted((a, b) => b.calls - a.calls)
        .slice(0, limit ?? 10),
    dag: (family, version): DagView | undefined => {
      if ((family ?? FAKE_FAMILY) !== FAKE_FAMILY || (version ?? 1) !== 1) return undefined
      return {
        family: FAKE_FAMILY,
        version: 1,
        meta: META,
        blocks: experts.map((e, index) => ({
          hash: e.block,
          name: e.name,
          layer: e.layer,
          type: e.expert === null ? 'router' : 'expert',
          index,
          current: true,
          dependsOn: e.expert === null ? [META.hash] : [META.hash, hash(routerName(e.layer))],
        })),
      }
    },
    chat: async (request, signal): Promise<MoeChatAnswer> => {
      fake.calls.chat.push(request)
      await new Promise((r) => setTimeout(r, 5))
      fake.calls.chatAborted.push(signal?.aborted === true)
      const text = request.prompt ?? request.messages?.at(-1)?.content ?? ''
      if (text === '(no hosts)') throw new TooFewExpertsError('only 0 of 2 experts of layer 0 answered; 1 needed')
      const k = request.top_k_experts ?? 2
      const tokens = [...text].length
      return {
        family: request.family ?? FAKE_FAMILY,
        version: 1,
        text: ` and so on (${tokens} tokens in)`,
        promptTokens: tokens,
        outputTokens: request.max_tokens ?? 8,
        finish: 'length',
        layers: Array.from({ length: LAYERS }, (_, layer) => ({
          layer,
          experts: Array.from({ length: k }, (_, j) => {
            const e = experts.find((x) => x.layer === layer && x.expert === j) as ExpertView
            return {
              name: e.name,
              block: e.block,
              tokens: tokens + j,
              hosts: request.use_distributed === false ? [] : [...e.hosts],
            }
          }),
        })),
        masked: 0,
        elapsedMs: 5,
      }
    },
    hosts: () => [...hosts.values()],
    host: (did) => hosts.get(did),
    groups: () => [{ experts: ['layer0.expert0', 'layer1.expert1'], together: 12, hosts: [FAKE_HOSTS[0]] }],
    replicationSuggestions: () => [
      { expert: 'layer0.expert3', block: hash('layer0.expert3'), calls: 90, replicas: 1, wanted: 3 },
    ],
    training: () => ({
      enabled: true,
      running: false,
      expert: 'moby-moe/layer0.expert3',
      steps: 8,
      paused: 1,
      rounds: 2,
      lastYieldMs: 3,
      maxYieldMs: 7,
      lastGainMicroNats: 1200n,
      proposals: [],
    }),
    integrity: (): IntegrityStatus => ({
      auditPpm: 50_000,
      audits: 18,
      auditFailures: 1,
      quarantined: [...hosts.values()].filter((h) => h.quarantined).map((h) => h.did),
      masked: 0,
      failovers: 2,
    }),
    quarantine: (did) => {
      fake.calls.quarantine.push(did)
      const h = hosts.get(did)
      if (h === undefined) throw new FakeStatusError(404, `unknown host ${did}`)
      h.quarantined = true
      h.quarantinedUntil = 1_700_000_600_000
      return { ...h }
    },
    recover: (did) => {
      fake.calls.recover.push(did)
      const h = hosts.get(did)
      if (h === undefined) throw new FakeStatusError(404, `unknown host ${did}`)
      h.quarantined = false
      h.quarantinedUntil = null
      return { ...h }
    },
    propose: async (request, onProgress) => {
      fake.calls.propose.push(request)
      checkName(request.expert)
      onProgress?.(`reading ${request.weightsPath ?? `training ${request.train?.steps ?? 0} steps`}`)
      onProgress?.('scoring on the validation set: loss 2.345678')
      onProgress?.('proof of work: 12 ms')
      if (request.weightsPath?.includes('broken') === true) throw new InvalidInputError('the file is not safetensors')
      return answer(hash(`block/${request.expert}`))
    },
    uploadBegin: ({ expert, bytes, family }) => {
      checkName(expert)
      const upload = `up${nextUpload++}`
      uploads.set(upload, { expert, family, bytes, chunks: [], received: 0 })
      return { upload, chunkBytes }
    },
    uploadChunk: (upload, index, chunk) => {
      fake.calls.chunks.push({ upload, index, bytes: chunk.length })
      const u = uploads.get(upload)
      if (u === undefined) throw new FakeStatusError(404, `no upload ${upload}`)
      if (index !== u.chunks.length)
        throw new FakeStatusError(
          409,
          `chunk ${index} is out of order: upload ${upload} expects chunk ${u.chunks.length}`,
        )
      if (chunk.length > chunkBytes)
        throw new FakeStatusError(413, `chunk ${index} has ${chunk.length} bytes; chunks are ${chunkBytes} bytes`)
      if (u.received + chunk.length > u.bytes)
        throw new InvalidInputError(`chunk ${index} goes past the ${u.bytes} bytes the upload declared`)
      u.chunks.push(new Uint8Array(chunk))
      u.received += chunk.length
      return { received: u.received }
    },
    uploadFinish: async (upload) => {
      fake.calls.finish.push(upload)
      const u = uploads.get(upload)
      if (u === undefined) throw new FakeStatusError(404, `no upload ${upload}`)
      if (u.received !== u.bytes)
        throw new FakeStatusError(409, `upload ${upload} has ${u.received} of its ${u.bytes} bytes`)
      await new Promise((r) => setTimeout(r, 5))
      return answer(hash(`block/upload/${u.expert}`))
    },
    fork: async (request) => {
      const family = fake.familyList.find((f) => f.family === request.family)
      if (family === undefined) throw new FakeStatusError(404, `no family ${request.family}`)
      return { family: request.family, version: family.version + 1, carried: 18, txHash: hash('fork') }
    },
    importCheckpoint: async (request, onProgress) => {
      fake.calls.import.push(request)
      onProgress?.(`reading ${request.dir}/config.json`)
      onProgress?.(`MetaBlock ${request.family} v2`)
      onProgress?.(`${LAYERS * (EXPERTS + 1)} blocks`)
      return { family: request.family, version: 2, blocks: LAYERS * (EXPERTS + 1), proposal: hash('import') }
    },
  }
  return fake
}
