/**
 * AI-Block's routes (seed 001 §10.3): Mixture-of-Experts models whose routers and experts are
 * blocks on chain. Read routes show the parameter DAG, its ParamIndex and usage; MoE chat runs a
 * family's current model over the experts' hosts; the operator routes mine (propose a block,
 * upload its weights in chunks, import a checkpoint) and quarantine hosts. Registered by
 * createApiServer when the node has an ExpertsApi (`experts` option); without one every path
 * below answers 404 NOT_FOUND saying so.
 *
 *   our route                                          seed's path (alias, same handler)
 *   GET  /v1/experts/families                          -
 *   GET  /v1/experts/meta/{family}?version             -
 *   GET  /v1/experts?family&layer                      -
 *   GET  /v1/experts/show/{name}?family                -  (indexKey: prove it with GET /v1/state/proof?key=<hex of it>)
 *   GET  /v1/experts/history/{name}?family             -
 *   GET  /v1/experts/proposals?status&limit            -  (the accept/reject log)
 *   GET  /v1/experts/proposals/{id}                    -
 *   GET  /v1/experts/top?family&limit                  GET  /experts/top
 *   GET  /v1/experts/stats/{name}?family               GET  /experts/stats/{name}
 *   GET  /v1/experts/dag?family&version                -
 *   POST /v1/experts/chat              (operator)      POST /chat with use_moe (routes/inference.ts)
 *   GET  /v1/p2p/nodes                                 GET  /p2p/nodes
 *   GET  /v1/p2p/expert_groups                         GET  /p2p/expert_groups
 *   GET  /v1/p2p/replication_suggestions               GET  /p2p/replication_suggestions
 *   GET  /v1/security/integrity_status                 GET  /security/integrity_status
 *   GET  /v1/security/node_status/{id}                 GET  /security/node_status/{id}
 *   POST /v1/security/quarantine_node/{id}  (operator) POST /security/quarantine_node/{id}
 *   POST /v1/security/recover_node/{id}     (operator) POST /security/recover_node/{id}
 *   POST /v1/operator/experts/propose       (operator, SSE)
 *   POST /v1/operator/experts/uploads       (operator) + the seed's POST /upload_moe_experts, as
 *   PUT  /v1/operator/experts/uploads/{id}/chunks/{n}  | three steps: begin (the size), the raw
 *   POST /v1/operator/experts/uploads/{id}/finish (SSE)+ chunks in order, finish (proposes)
 *   POST /v1/operator/experts/import        (operator, SSE)
 *
 * Not served: POST /experts/reward/{name} (the chain pays miners from usage receipts; see
 * `rewards` in GET /v1/experts/show), POST /chat/distributed* (POST /v1/experts/chat with
 * use_distributed), POST /p2p/register*, DELETE /p2p/nodes/{id} and POST /p2p/heartbeat/{id}
 * (hosts announce themselves over libp2p), GET /security/dashboard and /threat_indicators (GET
 * /v1/security/integrity_status and /v1/p2p/nodes), POST /security/verify_audit (audits are
 * receipts on chain).
 *
 * JSON: bigint values (scores' loss, bonds, rewards, PoW nonces) are decimal strings, bytes hex,
 * as in the rest of the API. Operator routes need the bearer token (auth.ts), checked before the
 * body is read. Errors: an unknown family, expert, proposal, upload or host is 404; a bad
 * request 400 (InvalidInputError); an ExpertsApi may also throw an error carrying `statusCode`
 * (409 for an upload chunk out of order or a finish before the last chunk, 413 for a chunk over
 * the upload's chunk size), answered with that status. SSE answers (propose, finish, import) are
 * `data: {"progress": "line"}` messages, then `data: {"result": ...}`, then `data: [DONE]`; a
 * failure after the stream opened is `event: error` with `{ "error": { code, message } }`, then
 * `[DONE]`. A request refused before the work starts is a plain HTTP error.
 */
import { isAbsolute } from 'node:path'
import { Transform, type Readable } from 'node:stream'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import Type from '../schema-builder.ts'
import { toHex } from '../../core/bytes.ts'
import { describeError, InvalidInputError } from '../../core/errors.ts'
import { untrustedText } from '../../core/untrusted-text.ts'
import { InferenceError } from '../../inference/errors.ts'
import type { BlockRecord, MetaRecord, PolScore, ProposalRecord } from '../../experts/types.ts'
import type {
  DagView,
  ExpertHostView,
  ExpertsApi,
  ExpertView,
  FamilyView,
  MoeChatAnswer,
  MoeChatRequest,
  ProposeAnswer,
  ProposeRequest,
} from '../experts-api.ts'
import { OPERATOR_SECURITY, requireOperator } from '../auth.ts'
import { NotFoundError } from '../errors.ts'
import { ERROR_RESPONSES } from '../schemas.ts'
import { SSE_HEARTBEAT_MS } from './events.ts'

type Static<T extends Type.TSchema> = Type.Static<T>

/** Largest chunk of an expert upload (PUT .../chunks/{n}); an ExpertsApi may ask for smaller ones. */
export const MAX_EXPERT_CHUNK_BYTES = 8 * 1024 * 1024
/** Largest MoE chat body. */
const MAX_CHAT_BODY_BYTES = 1024 * 1024
const OCTET_STREAM = 'application/octet-stream'
const NO_EXPERTS = 'this node runs no AI-Block experts service (MoE families on chain): start it with experts enabled'

declare module 'fastify' {
  interface FastifyInstance {
    /** The node's ExpertsApi (routes/experts.ts), or null when it has none: POST /chat reads it. */
    donghaeExperts: ExpertsApi | null
  }
}

/** Installs the ExpertsApi on a server (createApiServer does), for routes outside this plugin. */
export function setExpertsApi(app: FastifyInstance, experts: ExpertsApi | undefined): void {
  app.decorate('donghaeExperts', experts ?? null)
}

// ---- schemas ----

const Amount = (description: string) => Type.String({ pattern: '^(0|[1-9][0-9]*)$', description })
const FamilyName = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' })
const ExpertNameParam = Type.String({
  pattern: '^layer[0-9]{1,4}\\.(expert[0-9]{1,5}|router)$',
  description: '`layer{L}.expert{J}` or `layer{L}.router`',
})
const DidParam = Type.String({ pattern: '^did:key:z[1-9A-HJ-NP-Za-km-z]{40,60}$' })
const HexId = Type.String({ pattern: '^[0-9a-f]{8,128}$' })
const Limit = Type.Integer({ minimum: 1, maximum: 1000 })

const ScoreJson = Type.Object(
  {
    lossMicroNats: Amount('mean negative log-likelihood per predicted token, micro-nats (lower is better)'),
    accuracyPpm: Type.Integer({ description: 'top-1 accuracy, parts per million' }),
  },
  { description: 'a validation score' },
)
const FamilyJson = Type.Object({
  family: Type.String(),
  version: Type.Integer(),
  owner: Type.String(),
  layers: Type.Integer(),
  expertsPerLayer: Type.Integer(),
  topK: Type.Integer(),
  blocks: Type.Integer({ description: "accepted blocks in the current version's ParamIndex" }),
  score: Type.Optional(ScoreJson),
})
const ExpertJson = Type.Object({
  family: Type.String(),
  version: Type.Integer(),
  name: Type.String(),
  layer: Type.Integer(),
  expert: Type.Union([Type.Integer(), Type.Null()], { description: 'null for a router' }),
  block: Type.String({ description: 'the block hash, hex' }),
  miner: Type.String(),
  height: Type.Integer({ description: 'height at which it was accepted (0: genesis)' }),
  payloadHash: Type.String({ description: 'UnixFS CID of the safetensors payload' }),
  payloadBytes: Type.Integer(),
  calls: Type.Integer({ description: 'routing calls the usage receipts recorded, all time' }),
  meanLatencyMs: Type.Number(),
  lastUsedHeight: Type.Integer(),
  rewards: Amount('rewards paid to the miner for this block, base units'),
  hosts: Type.Array(Type.String(), { description: 'nodes announcing that they host it' }),
  indexKey: Type.String({
    description: 'the state key of its ParamIndex entry: GET /v1/state/proof?key=<hex of its UTF-8 bytes> proves it',
  }),
})
const ArchJson = Type.Object({
  vocabSize: Type.Integer(),
  dModel: Type.Integer(),
  nLayers: Type.Integer(),
  nHeads: Type.Integer(),
  nKvHeads: Type.Integer(),
  dFf: Type.Integer(),
  contextLength: Type.Integer(),
  ropeTheta: Type.Number(),
  normEpsE9: Type.Integer(),
  expertsPerLayer: Type.Integer(),
  topK: Type.Integer(),
  gating: Type.String(),
  ffn: Type.String(),
  tieEmbeddings: Type.Boolean(),
})
const MetaJson = Type.Object({
  family: Type.String(),
  version: Type.Integer(),
  arch: ArchJson,
  tokenizer: Type.Object({ json: Type.String(), config: Type.String() }),
  trunk: Type.String({ description: 'the shared weights, a safetensors CID' }),
  validation: Type.Object({ cid: Type.String(), windows: Type.Integer(), windowTokens: Type.Integer() }),
  carry: Type.Array(Type.String()),
  note: Type.String(),
  hash: Type.String(),
  owner: Type.String(),
  height: Type.Integer(),
})
const ProposalStatusJson = Type.Union(
  [Type.Literal('pending'), Type.Literal('accepted'), Type.Literal('refused'), Type.Literal('expired')],
  { description: 'pending, accepted, refused or expired' },
)
const ProposalJson = Type.Object({
  id: Type.String(),
  family: Type.String(),
  version: Type.Integer(),
  proposer: Type.String(),
  blocks: Type.Array(Type.String()),
  replaces: Type.Record(Type.String(), Type.String(), {
    description: "for each slot the proposal fills: the block it replaces ('' for an empty slot)",
  }),
  claim: ScoreJson,
  bond: Amount('bonded by the proposer, base units'),
  height: Type.Integer(),
  deadline: Type.Integer(),
  status: ProposalStatusJson,
  reason: Type.String({ description: "why it was refused or expired (e.g. 'forged-score', 'no-improvement')" }),
  score: Type.Optional(ScoreJson),
  baseline: Type.Optional(ScoreJson),
})
const BlockRecordJson = Type.Object({
  hash: Type.String(),
  header: Type.Object({
    index: Type.Integer(),
    chainId: Type.String({ description: 'the family' }),
    version: Type.Integer(),
    dependsOn: Type.Array(Type.String()),
    blockType: Type.String(),
    expertName: Type.String(),
    layerId: Type.Integer(),
    payloadHash: Type.String(),
    payloadBytes: Type.Integer(),
    shapes: Type.Record(Type.String(), Type.Array(Type.Integer())),
    nonce: Amount('proof-of-work nonce'),
    miner: Type.String(),
    payloadSig: Type.String({ description: "the miner's signature, hex" }),
  }),
  proposal: Type.String(),
  height: Type.Integer(),
  status: ProposalStatusJson,
  score: Type.Optional(ScoreJson),
})
const DagJson = Type.Object({
  family: Type.String(),
  version: Type.Integer(),
  meta: MetaJson,
  blocks: Type.Array(
    Type.Object({
      hash: Type.String(),
      name: Type.String(),
      layer: Type.Integer(),
      type: Type.Union([Type.Literal('router'), Type.Literal('expert')]),
      index: Type.Integer(),
      current: Type.Boolean({ description: "in the version's ParamIndex now" }),
      dependsOn: Type.Array(Type.String()),
    }),
  ),
})
const HostJson = Type.Object({
  did: Type.String(),
  experts: Type.Array(Type.String(), { description: 'expert names it announces (family/version/name)' }),
  calls: Type.Integer(),
  failures: Type.Integer(),
  meanLatencyMs: Type.Number(),
  quarantined: Type.Boolean(),
  quarantinedUntil: Type.Union([Type.Number(), Type.Null()]),
  auditsPassed: Type.Integer(),
  auditsFailed: Type.Integer(),
  lastSeen: Type.Union([Type.Number(), Type.Null()]),
})
const GroupJson = Type.Object({
  experts: Type.Array(Type.String()),
  together: Type.Integer({ description: 'co-routings seen' }),
  hosts: Type.Array(Type.String(), { description: 'nodes that host the whole group' }),
})
const SuggestionJson = Type.Object({
  expert: Type.String(),
  block: Type.String(),
  calls: Type.Integer(),
  replicas: Type.Integer(),
  wanted: Type.Integer({ description: 'replicas the usage asks for' }),
})
const IntegrityJson = Type.Object({
  auditPpm: Type.Integer(),
  audits: Type.Integer(),
  auditFailures: Type.Integer(),
  quarantined: Type.Array(Type.String()),
  masked: Type.Integer(),
  failovers: Type.Integer(),
})
const TrainingJson = Type.Object({
  enabled: Type.Boolean({ description: 'idle-time training is on (config expertTraining)' }),
  running: Type.Boolean(),
  expert: Type.Optional(Type.String({ description: 'family/slot being (or last) trained' })),
  steps: Type.Integer(),
  paused: Type.Integer({ description: 'times it paused for a generation' }),
  rounds: Type.Integer({ description: 'idle rounds completed' }),
  lastYieldMs: Type.Union([Type.Number(), Type.Null()], {
    description: "from the last generation's start to the trainer's pause, ms",
  }),
  maxYieldMs: Type.Number(),
  lastGainMicroNats: Type.Union([Type.String(), Type.Null()], {
    description: 'validation gain of the last idle round, micro-nats (decimal)',
  }),
  proposals: Type.Array(Type.String(), { description: 'proposals idle training made' }),
})
const ChatBody = Type.Object(
  {
    prompt: Type.Optional(Type.String({ minLength: 1, maxLength: 65_536 })),
    messages: Type.Optional(
      Type.Array(Type.Object({ role: Type.String({ maxLength: 32 }), content: Type.String() }), {
        minItems: 1,
        maxItems: 256,
      }),
    ),
    family: Type.Optional(FamilyName),
    use_moe: Type.Optional(Type.Boolean({ description: 'accepted; this route always runs the MoE model' })),
    use_distributed: Type.Optional(
      Type.Boolean({ description: "run experts on their hosts (default); false: only this node's copies" }),
    ),
    top_k_experts: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 64, description: "experts per token (default: the family's topK)" }),
    ),
    max_tokens: Type.Optional(Type.Integer({ minimum: 1, maximum: 4096 })),
    temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 2 })),
    seed: Type.Optional(Type.Integer()),
  },
  { additionalProperties: false, description: 'exactly one of prompt and messages' },
)
const ChatAnswerJson = Type.Object({
  family: Type.String(),
  version: Type.Integer(),
  text: Type.String(),
  promptTokens: Type.Integer(),
  outputTokens: Type.Integer(),
  finish: Type.Union([Type.Literal('stop'), Type.Literal('length')]),
  layers: Type.Array(
    Type.Object({
      layer: Type.Integer(),
      experts: Type.Array(
        Type.Object({
          name: Type.String(),
          block: Type.String(),
          tokens: Type.Integer({ description: 'tokens routed to it' }),
          hosts: Type.Array(Type.String(), { description: 'the nodes that served it' }),
        }),
      ),
    }),
    { description: 'per layer: the experts used and the nodes that served them' },
  ),
  masked: Type.Integer({ description: 'experts masked because no host answered in time' }),
  elapsedMs: Type.Number(),
  timing: Type.Optional(
    Type.Object(
      {
        trunkMs: Type.Number({ description: 'attention, routers and head in the gateway' }),
        expertMs: Type.Number({ description: 'waiting for the experts (local or remote)' }),
      },
      { description: 'where the time went' },
    ),
  ),
})
const ProposeBody = Type.Object(
  {
    family: Type.Optional(FamilyName),
    expert: ExpertNameParam,
    weightsPath: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 4096,
        description: "an absolute path to a safetensors file on the node's own disk",
      }),
    ),
    train: Type.Optional(
      Type.Object(
        {
          steps: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
          dataset: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: "training data's CID" })),
        },
        { additionalProperties: false, description: 'train with the built-in trainer instead of weightsPath' },
      ),
    ),
  },
  { additionalProperties: false, description: 'exactly one of weightsPath and train' },
)
const UploadBody = Type.Object(
  {
    family: Type.Optional(FamilyName),
    expert: ExpertNameParam,
    bytes: Type.Integer({ minimum: 1, description: "the safetensors file's size" }),
  },
  { additionalProperties: false },
)
const ForkBody = Type.Object(
  {
    family: FamilyName,
    topK: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 1024, description: 'experts per token in the new version' }),
    ),
    gating: Type.Optional(
      Type.Union([Type.Literal('softmax-topk-renorm'), Type.Literal('softmax-topk')], {
        description: 'the router rule',
      }),
    ),
    note: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
)
const ForkAnswerJson = Type.Object({
  family: Type.String(),
  version: Type.Integer(),
  carried: Type.Integer({ description: 'blocks of the previous version carried into this one' }),
  txHash: Type.String(),
})
const ImportBody = Type.Object(
  {
    dir: Type.String({
      minLength: 1,
      maxLength: 4096,
      description:
        "an absolute path to the MoE checkpoint folder (safetensors, config.json, tokenizer) on the node's disk",
    }),
    family: FamilyName,
  },
  { additionalProperties: false },
)
const SseNote =
  'The answer is text/event-stream: `data: {"progress": "\u2026"}` lines as the work goes on, `data: {"result": \u2026}`, then `data: [DONE]`; a failure is `event: error` with `{ "error": { code, message } }`, then `[DONE]`. Closing the stream does not stop the work.'

// ---- JSON of the records ----

const scoreJson = (s: PolScore): Static<typeof ScoreJson> => ({
  lossMicroNats: s.lossMicroNats.toString(),
  accuracyPpm: s.accuracyPpm,
})

function familyJson(f: FamilyView): Static<typeof FamilyJson> {
  const { score, ...rest } = f
  return { ...rest, ...(score === undefined ? {} : { score: scoreJson(score) }) }
}

function expertJson(e: ExpertView): Static<typeof ExpertJson> {
  return { ...e, rewards: e.rewards.toString(), hosts: [...e.hosts] }
}

function metaJson(m: MetaRecord): Static<typeof MetaJson> {
  return { ...m, carry: [...m.carry] } as Static<typeof MetaJson>
}

function proposalJson(p: ProposalRecord): Static<typeof ProposalJson> {
  const { claim, bond, score, baseline, ...rest } = p
  return {
    ...rest,
    claim: scoreJson(claim),
    bond: bond.toString(),
    ...(score === undefined ? {} : { score: scoreJson(score) }),
    ...(baseline === undefined ? {} : { baseline: scoreJson(baseline) }),
  }
}

function blockRecordJson(b: BlockRecord): Static<typeof BlockRecordJson> {
  const { score, header, ...rest } = b
  return {
    ...rest,
    header: { ...header, nonce: header.nonce.toString(), payloadSig: toHex(header.payloadSig) },
    ...(score === undefined ? {} : { score: scoreJson(score) }),
  }
}

function dagJson(d: DagView): Static<typeof DagJson> {
  return { ...d, meta: metaJson(d.meta) }
}

function hostJson(h: ExpertHostView): Static<typeof HostJson> {
  return { ...h, experts: [...h.experts] }
}

function proposeJson(a: ProposeAnswer): {
  proposal: string
  txHash: string
  block: string
  claim: Static<typeof ScoreJson>
  powNonce: string
  powMs: number
} {
  return { ...a, claim: scoreJson(a.claim), powNonce: a.powNonce.toString() }
}

// ---- helpers ----

/** An HTTP error with its status (toHttpError answers it with the status's code). */
class HttpStatusError extends Error {
  readonly statusCode: number
  constructor(statusCode: number, message: string) {
    super(message)
    this.statusCode = statusCode
  }
}

function familyOf(api: ExpertsApi, family: string | undefined): FamilyView {
  const families = api.families()
  if (family === undefined) {
    const first = families[0]
    if (first === undefined)
      throw new NotFoundError(
        'no MoE family is on chain yet: import one with `donghae experts import DIR --family NAME`',
      )
    return first
  }
  const found = families.find((f) => f.family === family)
  if (found === undefined)
    throw new NotFoundError(
      `no MoE family ${JSON.stringify(family)}; on chain: ${families.map((f) => f.family).join(', ') || 'none'}`,
    )
  return found
}

/** Checks a chat request's family and top-k before any work (404 / 400). */
export function checkMoeChat(api: ExpertsApi, request: MoeChatRequest): FamilyView {
  const family = familyOf(api, request.family)
  if (request.top_k_experts !== undefined && request.top_k_experts > family.expertsPerLayer)
    throw new InvalidInputError(
      `top_k_experts ${request.top_k_experts} is more than the ${family.expertsPerLayer} experts per layer of ${family.family}`,
    )
  return family
}

/**
 * What POST /chat does with `use_moe: true` (routes/inference.ts): the node's ExpertsApi answers
 * with the experts and hosts per layer; 404 when the node has none or no family is on chain.
 */
export async function moeChatAnswer(
  request: FastifyRequest,
  reply: FastifyReply,
  body: { prompt: string; model?: string; max_tokens?: number; use_distributed?: boolean; top_k_experts?: number },
): Promise<Record<string, unknown>> {
  const api = request.server.donghaeExperts
  if (api === null || api === undefined) throw new NotFoundError(`use_moe: ${NO_EXPERTS}`)
  if (body.top_k_experts !== undefined && (!Number.isSafeInteger(body.top_k_experts) || body.top_k_experts < 1))
    throw new InvalidInputError('top_k_experts must be a positive whole number')
  const chat: MoeChatRequest = {
    prompt: body.prompt,
    use_moe: true,
    ...(body.model === undefined ? {} : { family: body.model }),
    ...(body.max_tokens === undefined ? {} : { max_tokens: body.max_tokens }),
    ...(body.use_distributed === undefined ? {} : { use_distributed: body.use_distributed }),
    ...(body.top_k_experts === undefined ? {} : { top_k_experts: body.top_k_experts }),
  }
  checkMoeChat(api, chat)
  const answer = await api.chat(chat, abortOnClose(reply))
  return {
    response: answer.text,
    model: answer.family,
    version: answer.version,
    moe: true,
    distributed: body.use_distributed ?? true,
    experts: answer.layers.map((l) => ({ layer: l.layer, experts: l.experts.map((e) => ({ ...e })) })),
    masked: answer.masked,
    usage: { prompt_tokens: answer.promptTokens, completion_tokens: answer.outputTokens },
    finish: answer.finish,
    elapsedMs: answer.elapsedMs,
  }
}

/** A signal that aborts when the client goes away before the answer is sent. */
function abortOnClose(reply: FastifyReply): AbortSignal {
  const abort = new AbortController()
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) abort.abort()
  })
  return abort.signal
}

/**
 * Runs `work` as an SSE answer: progress lines, the result, `[DONE]`, heartbeats while it runs,
 * and a failure as `event: error`. Client errors found before `work` starts must be thrown
 * before calling this (they are plain HTTP errors).
 */
async function sseWork(
  request: FastifyRequest,
  reply: FastifyReply,
  what: string,
  work: (progress: (line: string) => void) => Promise<unknown>,
): Promise<FastifyReply> {
  reply.hijack()
  const raw = reply.raw
  raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  })
  const open = (): boolean => !raw.destroyed && !raw.writableEnded
  const send = (data: unknown, event?: string): void => {
    if (open())
      raw.write(
        `${event === undefined ? '' : `event: ${event}\n`}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`,
      )
  }
  const heartbeat = setInterval(() => {
    if (open()) raw.write(': keep-alive\n\n')
  }, SSE_HEARTBEAT_MS)
  try {
    const result = await work((line) => send({ progress: untrustedText(line, 1_000) }))
    send({ result })
  } catch (err) {
    const message = untrustedText(describeError(err), 1_000)
    request.log.info({ err: message }, `${what} failed`)
    const status = (err as { statusCode?: unknown }).statusCode
    const reason =
      err instanceof InferenceError
        ? { reason: err.reason }
        : typeof status === 'number'
          ? { reason: `http-${status}` }
          : {}
    send(
      { error: { code: err instanceof InvalidInputError ? 'BAD_REQUEST' : 'EXPERTS_FAILED', message, ...reason } },
      'error',
    )
  } finally {
    clearInterval(heartbeat)
  }
  send('[DONE]')
  if (open()) raw.end()
  return reply
}

/** preParsing: a chunk must be application/octet-stream and at most MAX_EXPERT_CHUNK_BYTES. */
async function chunkBody(request: FastifyRequest, _reply: FastifyReply, payload: Readable): Promise<Readable> {
  const type = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? ''
  if (type !== OCTET_STREAM)
    throw new HttpStatusError(415, `an upload chunk is raw bytes: send content-type ${OCTET_STREAM}`)
  const tooLarge = (): Error =>
    new HttpStatusError(413, `an upload chunk is at most ${MAX_EXPERT_CHUNK_BYTES} bytes (see chunkBytes)`)
  const declared = request.headers['content-length']
  if (declared !== undefined) {
    if (Number(declared) > MAX_EXPERT_CHUNK_BYTES) throw tooLarge()
    return payload
  }
  let seen = 0
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length
      if (seen > MAX_EXPERT_CHUNK_BYTES) done(tooLarge())
      else done(null, chunk)
    },
  })
  payload.on('error', (err) => counted.destroy(err))
  return payload.pipe(counted)
}

function requireAbsolute(path: string, field: string): void {
  if (!isAbsolute(path)) throw new InvalidInputError(`${field} must be an absolute path on the node`)
}

/** The same route under the seed's path, left out of the OpenAPI document. */
function alias(route: RouteOptions, url: string): RouteOptions {
  return { ...route, url, schema: { ...route.schema, hide: true } as RouteOptions['schema'] }
}

// ---- the table ----

function expertsRouteTable(api: ExpertsApi): RouteOptions[] {
  const top: RouteOptions = {
    method: 'GET',
    url: '/v1/experts/top',
    schema: {
      summary: 'The most used experts (routing calls), with latency and rewards',
      tags: ['experts'],
      querystring: Type.Object({ family: Type.Optional(FamilyName), limit: Type.Optional(Limit) }),
      response: { 200: Type.Object({ experts: Type.Array(ExpertJson) }), ...ERROR_RESPONSES },
    },
    handler: async (request) => {
      const q = request.query as { family?: string; limit?: number }
      if (q.family !== undefined) familyOf(api, q.family)
      return {
        experts: api
          .top({ limit: q.limit ?? 10, ...(q.family === undefined ? {} : { family: q.family }) })
          .map(expertJson),
      }
    },
  }
  const stats: RouteOptions = {
    method: 'GET',
    url: '/v1/experts/stats/:name',
    schema: {
      summary: "An expert's usage: calls, mean latency, last use, rewards (the seed's /experts/stats)",
      tags: ['experts'],
      params: Type.Object({ name: ExpertNameParam }),
      querystring: Type.Object({ family: Type.Optional(FamilyName) }),
      response: {
        200: Type.Object({
          family: Type.String(),
          version: Type.Integer(),
          name: Type.String(),
          block: Type.String(),
          miner: Type.String(),
          calls: Type.Integer(),
          meanLatencyMs: Type.Number(),
          lastUsedHeight: Type.Integer(),
          rewards: Amount('base units'),
          hosts: Type.Integer({ description: 'nodes hosting it' }),
        }),
        ...ERROR_RESPONSES,
      },
    },
    handler: async (request) => {
      const { name } = request.params as { name: string }
      const e = showExpert(api, (request.query as { family?: string }).family, name)
      return {
        family: e.family,
        version: e.version,
        name: e.name,
        block: e.block,
        miner: e.miner,
        calls: e.calls,
        meanLatencyMs: e.meanLatencyMs,
        lastUsedHeight: e.lastUsedHeight,
        rewards: e.rewards.toString(),
        hosts: e.hosts.length,
      }
    },
  }
  const nodes: RouteOptions = {
    method: 'GET',
    url: '/v1/p2p/nodes',
    schema: {
      summary: 'Nodes hosting experts, as this node sees them: calls, failures, latency, audits, quarantine',
      tags: ['experts'],
      response: { 200: Type.Object({ nodes: Type.Array(HostJson) }), ...ERROR_RESPONSES },
    },
    handler: async () => ({ nodes: api.hosts().map(hostJson) }),
  }
  const groups: RouteOptions = {
    method: 'GET',
    url: '/v1/p2p/expert_groups',
    schema: {
      summary: 'Experts often routed together, and the nodes that host each whole group',
      tags: ['experts'],
      response: { 200: Type.Object({ groups: Type.Array(GroupJson) }), ...ERROR_RESPONSES },
    },
    handler: async () => ({ groups: api.groups().map((g) => ({ ...g })) }),
  }
  const replication: RouteOptions = {
    method: 'GET',
    url: '/v1/p2p/replication_suggestions',
    schema: {
      summary: 'Experts whose usage asks for more replicas than they have',
      tags: ['experts'],
      response: { 200: Type.Object({ suggestions: Type.Array(SuggestionJson) }), ...ERROR_RESPONSES },
    },
    handler: async () => ({ suggestions: api.replicationSuggestions().map((s) => ({ ...s })) }),
  }
  const integrity: RouteOptions = {
    method: 'GET',
    url: '/v1/security/integrity_status',
    schema: {
      summary: "The expert calls' integrity checks: audit rate, audits failed, quarantined nodes, masked experts",
      tags: ['experts'],
      response: { 200: IntegrityJson, ...ERROR_RESPONSES },
    },
    handler: async () => {
      const s = api.integrity()
      return { ...s, quarantined: [...s.quarantined] }
    },
  }
  const nodeStatus: RouteOptions = {
    method: 'GET',
    url: '/v1/security/node_status/:id',
    schema: {
      summary: "One expert host's record: calls, failures, audits, quarantine",
      tags: ['experts'],
      params: Type.Object({ id: DidParam }),
      response: { 200: HostJson, ...ERROR_RESPONSES },
    },
    handler: async (request) => {
      const { id } = request.params as { id: string }
      const found = api.host(id)
      if (found === undefined) throw new NotFoundError(`no expert host ${id} is known to this node`)
      return hostJson(found)
    },
  }
  const hostAction = (url: string, summary: string, act: (did: string) => ExpertHostView): RouteOptions => ({
    method: 'POST',
    url,
    onRequest: requireOperator,
    schema: {
      summary,
      tags: ['experts', 'operator'],
      security: OPERATOR_SECURITY,
      params: Type.Object({ id: DidParam }),
      response: { 200: HostJson, ...ERROR_RESPONSES },
    },
    handler: async (request) => {
      const { id } = request.params as { id: string }
      if (api.host(id) === undefined) throw new NotFoundError(`no expert host ${id} is known to this node`)
      return hostJson(act(id))
    },
  })
  const quarantine = hostAction(
    '/v1/security/quarantine_node/:id',
    "Quarantine an expert host: this node's gateway stops routing to it",
    (did) => api.quarantine(did),
  )
  const recover = hostAction(
    '/v1/security/recover_node/:id',
    'Lift a quarantine: the host is routed to again (and audited)',
    (did) => api.recover(did),
  )

  return [
    {
      method: 'GET',
      url: '/v1/experts/families',
      schema: {
        summary: 'MoE families on chain: current version, shape, accepted blocks, accepted score',
        tags: ['experts'],
        response: { 200: Type.Object({ families: Type.Array(FamilyJson) }), ...ERROR_RESPONSES },
      },
      handler: async () => ({ families: api.families().map(familyJson) }),
    },
    {
      method: 'GET',
      url: '/v1/experts/meta/:family',
      schema: {
        summary: "A family's MetaBlock: architecture, tokenizer, trunk weights, validation set",
        tags: ['experts'],
        params: Type.Object({ family: FamilyName }),
        querystring: Type.Object({ version: Type.Optional(Type.Integer({ minimum: 1 })) }),
        response: { 200: MetaJson, ...ERROR_RESPONSES },
      },
      handler: async (request) => {
        const { family } = request.params as { family: string }
        const { version } = request.query as { version?: number }
        const meta = api.meta(family, version)
        if (meta === undefined)
          throw new NotFoundError(`no MetaBlock for ${family}${version === undefined ? '' : ` version ${version}`}`)
        return metaJson(meta)
      },
    },
    {
      method: 'GET',
      url: '/v1/experts',
      schema: {
        summary: "The current blocks of a family's ParamIndex (routers and experts), with usage",
        tags: ['experts'],
        querystring: Type.Object({
          family: Type.Optional(FamilyName),
          layer: Type.Optional(Type.Integer({ minimum: 0, maximum: 9999 })),
        }),
        response: { 200: Type.Object({ experts: Type.Array(ExpertJson) }), ...ERROR_RESPONSES },
      },
      handler: async (request) => {
        const q = request.query as { family?: string; layer?: number }
        if (q.family !== undefined) familyOf(api, q.family)
        return {
          experts: api
            .list({
              ...(q.family === undefined ? {} : { family: q.family }),
              ...(q.layer === undefined ? {} : { layer: q.layer }),
            })
            .map(expertJson),
        }
      },
    },
    {
      method: 'GET',
      url: '/v1/experts/show/:name',
      schema: {
        summary: 'One current router or expert: block, miner, payload, usage, hosts, and its ParamIndex key',
        description:
          'The answer\u2019s `indexKey` is the state key of the ParamIndex entry: GET /v1/state/proof?key={hex of its UTF-8 bytes} proves it against a certified state root.',
        tags: ['experts'],
        params: Type.Object({ name: ExpertNameParam }),
        querystring: Type.Object({ family: Type.Optional(FamilyName) }),
        response: { 200: ExpertJson, ...ERROR_RESPONSES },
      },
      handler: async (request) => {
        const { name } = request.params as { name: string }
        return expertJson(showExpert(api, (request.query as { family?: string }).family, name))
      },
    },
    {
      method: 'GET',
      url: '/v1/experts/history/:name',
      schema: {
        summary: 'Every block proposed for one slot, oldest first, with its status and score',
        tags: ['experts'],
        params: Type.Object({ name: ExpertNameParam }),
        querystring: Type.Object({ family: Type.Optional(FamilyName) }),
        response: { 200: Type.Object({ blocks: Type.Array(BlockRecordJson) }), ...ERROR_RESPONSES },
      },
      handler: async (request) => {
        const { name } = request.params as { name: string }
        const { family } = request.query as { family?: string }
        if (family !== undefined) familyOf(api, family)
        return { blocks: api.history(family, name).map(blockRecordJson) }
      },
    },
    {
      method: 'GET',
      url: '/v1/experts/proposals',
      schema: {
        summary: 'Proposals, newest first: the accept/reject log with each decision\u2019s reason and scores',
        tags: ['experts'],
        querystring: Type.Object({ status: Type.Optional(ProposalStatusJson), limit: Type.Optional(Limit) }),
        response: { 200: Type.Object({ proposals: Type.Array(ProposalJson) }), ...ERROR_RESPONSES },
      },
      handler: async (request) => {
        const q = request.query as { status?: ProposalRecord['status']; limit?: number }
        return {
          proposals: api
            .proposals({ limit: q.limit ?? 50, ...(q.status === undefined ? {} : { status: q.status }) })
            .map(proposalJson),
        }
      },
    },
    {
      method: 'GET',
      url: '/v1/experts/proposals/:id',
      schema: {
        summary: 'One proposal: pending until the validators decide, then accepted or refused with the reason',
        tags: ['experts'],
        params: Type.Object({ id: HexId }),
        response: { 200: ProposalJson, ...ERROR_RESPONSES },
      },
      handler: async (request) => {
        const { id } = request.params as { id: string }
        const found = api.proposal(id)
        if (found === undefined) throw new NotFoundError(`no proposal ${id}`)
        return proposalJson(found)
      },
    },
    top,
    alias(top, '/experts/top'),
    stats,
    alias(stats, '/experts/stats/:name'),
    {
      method: 'GET',
      url: '/v1/experts/dag',
      schema: {
        summary: "A family version's parameter DAG: its MetaBlock and every block, with the current ones marked",
        tags: ['experts'],
        querystring: Type.Object({
          family: Type.Optional(FamilyName),
          version: Type.Optional(Type.Integer({ minimum: 1 })),
        }),
        response: { 200: DagJson, ...ERROR_RESPONSES },
      },
      handler: async (request) => {
        const q = request.query as { family?: string; version?: number }
        const family = familyOf(api, q.family).family
        const dag = api.dag(family, q.version)
        if (dag === undefined)
          throw new NotFoundError(`no DAG for ${family}${q.version === undefined ? '' : ` version ${q.version}`}`)
        return dagJson(dag)
      },
    },
    {
      method: 'POST',
      url: '/v1/experts/chat',
      onRequest: requireOperator,
      bodyLimit: MAX_CHAT_BODY_BYTES,
      schema: {
        summary: "Chat with a family's current MoE model; the answer names the experts and nodes used per layer",
        description:
          "The node runs the trunk and routers and calls each routed expert on a host that announces it (use_distributed: false keeps to this node's own copies); an expert no host answers in time is masked (counted in `masked`). Usage receipts go on chain, paid by the node: operator token. Without `family`, the first family on chain.",
        tags: ['experts'],
        security: OPERATOR_SECURITY,
        body: ChatBody,
        response: { 200: ChatAnswerJson, ...ERROR_RESPONSES },
      },
      handler: async (request, reply) => {
        const body = request.body as Static<typeof ChatBody>
        if ((body.prompt === undefined) === (body.messages === undefined))
          throw new InvalidInputError('give exactly one of prompt and messages')
        const chat: MoeChatRequest = { ...body, use_moe: true }
        checkMoeChat(api, chat)
        const answer: MoeChatAnswer = await api.chat(chat, abortOnClose(reply))
        return answer
      },
    },
    nodes,
    alias(nodes, '/p2p/nodes'),
    groups,
    alias(groups, '/p2p/expert_groups'),
    replication,
    alias(replication, '/p2p/replication_suggestions'),
    integrity,
    alias(integrity, '/security/integrity_status'),
    {
      method: 'GET',
      url: '/v1/experts/training',
      schema: {
        summary: "The built-in trainer: idle-time fine-tuning's state, its pauses for generations, its proposals",
        tags: ['experts'],
        response: { 200: TrainingJson, ...ERROR_RESPONSES },
      },
      handler: async () => {
        const t = api.training()
        return {
          ...t,
          lastGainMicroNats: t.lastGainMicroNats === null ? null : t.lastGainMicroNats.toString(),
          proposals: [...t.proposals],
        }
      },
    },
    nodeStatus,
    alias(nodeStatus, '/security/node_status/:id'),
    quarantine,
    alias(quarantine, '/security/quarantine_node/:id'),
    recover,
    alias(recover, '/security/recover_node/:id'),
    {
      method: 'POST',
      url: '/v1/operator/experts/propose',
      onRequest: requireOperator,
      schema: {
        summary:
          'Mine a block: weights from the node\u2019s disk or the built-in trainer, score, proof of work, propose (SSE)',
        description: `${SseNote} The result: \`{ proposal, txHash, block, claim, powNonce, powMs }\`; follow the decision with GET /v1/experts/proposals/{proposal}.\n\n    curl -N -X POST -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"expert":"layer0.expert3","weightsPath":"/data/e3.safetensors"}' $NODE/v1/operator/experts/propose`,
        tags: ['experts', 'operator'],
        security: OPERATOR_SECURITY,
        body: ProposeBody,
        produces: ['text/event-stream'],
        response: ERROR_RESPONSES,
      },
      handler: async (request, reply) => {
        const body = request.body as Static<typeof ProposeBody>
        if ((body.weightsPath === undefined) === (body.train === undefined))
          throw new InvalidInputError('give exactly one of weightsPath (a safetensors file on the node) and train')
        if (body.weightsPath !== undefined) requireAbsolute(body.weightsPath, 'body/weightsPath')
        familyOf(api, body.family)
        const propose: ProposeRequest = {
          expert: body.expert,
          ...(body.family === undefined ? {} : { family: body.family }),
          ...(body.weightsPath === undefined ? {} : { weightsPath: body.weightsPath }),
          ...(body.train === undefined ? {} : { train: { ...body.train } }),
        }
        return sseWork(request, reply, 'expert proposal', async (progress) =>
          proposeJson(await api.propose(propose, progress)),
        )
      },
    },
    {
      method: 'POST',
      url: '/v1/operator/experts/uploads',
      onRequest: requireOperator,
      schema: {
        summary:
          'Begin a chunked upload of an expert\u2019s safetensors file (the seed\u2019s POST /upload_moe_experts, step 1)',
        description:
          'Then PUT each chunk in order to /v1/operator/experts/uploads/{upload}/chunks/{n} (n from 0; each `chunkBytes` long but the last), then POST \u2026/{upload}/finish, which proposes the block.',
        tags: ['experts', 'operator'],
        security: OPERATOR_SECURITY,
        body: UploadBody,
        response: {
          201: Type.Object({
            upload: Type.String(),
            chunkBytes: Type.Integer({ description: 'bytes per chunk (the last may be shorter)' }),
            chunks: Type.Integer({ description: 'chunks to send' }),
          }),
          ...ERROR_RESPONSES,
        },
      },
      handler: async (request, reply) => {
        const body = request.body as Static<typeof UploadBody>
        familyOf(api, body.family)
        const begun = api.uploadBegin({
          expert: body.expert,
          bytes: body.bytes,
          ...(body.family === undefined ? {} : { family: body.family }),
        })
        const chunkBytes = Math.min(begun.chunkBytes, MAX_EXPERT_CHUNK_BYTES)
        return reply.code(201).send({ upload: begun.upload, chunkBytes, chunks: Math.ceil(body.bytes / chunkBytes) })
      },
    },
    {
      method: 'PUT',
      url: '/v1/operator/experts/uploads/:id/chunks/:n',
      onRequest: requireOperator,
      bodyLimit: MAX_EXPERT_CHUNK_BYTES,
      preParsing: chunkBody,
      schema: {
        summary: 'One chunk of an upload, raw bytes (application/octet-stream), in order',
        description: `At most ${MAX_EXPERT_CHUNK_BYTES / 1024 / 1024} MiB (and the upload's chunkBytes). A chunk out of order is 409; an unknown upload 404.`,
        tags: ['experts', 'operator'],
        security: OPERATOR_SECURITY,
        consumes: [OCTET_STREAM],
        params: Type.Object({
          id: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_-]+$' }),
          n: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
        }),
        response: {
          200: Type.Object({
            upload: Type.String(),
            chunk: Type.Integer(),
            received: Type.Integer({ description: 'bytes received so far' }),
          }),
          ...ERROR_RESPONSES,
        },
      },
      handler: async (request) => {
        const { id, n } = request.params as { id: string; n: number }
        const body = request.body
        if (!(body instanceof Uint8Array) || body.length === 0)
          throw new InvalidInputError('an upload chunk must hold at least one byte')
        const { received } = api.uploadChunk(id, n, new Uint8Array(body.buffer, body.byteOffset, body.byteLength))
        return { upload: id, chunk: n, received }
      },
    },
    {
      method: 'POST',
      url: '/v1/operator/experts/uploads/:id/finish',
      onRequest: requireOperator,
      schema: {
        summary: 'Finish an upload: check the file, score it, proof of work, propose the block (SSE)',
        description: `${SseNote} The result is as for POST /v1/operator/experts/propose. A finish before the last chunk is 409; an unknown upload 404 (both before the stream opens when the node can tell at once).`,
        tags: ['experts', 'operator'],
        security: OPERATOR_SECURITY,
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_-]+$' }) }),
        produces: ['text/event-stream'],
        response: ERROR_RESPONSES,
      },
      handler: async (request, reply) => {
        const { id } = request.params as { id: string }
        // started before the stream opens, so that an unknown or incomplete upload is a plain error
        const finishing = api.uploadFinish(id)
        let early: unknown
        const settled = await Promise.race([
          finishing.then(
            () => true,
            (err: unknown) => {
              early = err
              return true
            },
          ),
          new Promise<false>((resolve) => setImmediate(() => resolve(false))),
        ])
        if (settled && early !== undefined) throw early
        return sseWork(request, reply, 'expert upload', async (progress) => {
          progress(`upload ${id} received; scoring and proposing`)
          return proposeJson(await finishing)
        })
      },
    },
    {
      method: 'POST',
      url: '/v1/operator/experts/fork',
      onRequest: requireOperator,
      schema: {
        summary:
          "Publish the family's next MetaBlock version with new router rules (top-k, gating), carrying every current block (owner only)",
        description:
          'Answers once the MetaBlock is committed. Generations and proposals then use the new version; the old one stays on chain.',
        tags: ['experts', 'operator'],
        security: OPERATOR_SECURITY,
        body: ForkBody,
        response: { 200: ForkAnswerJson, ...ERROR_RESPONSES },
      },
      handler: async (request) => {
        const body = request.body as Static<typeof ForkBody>
        familyOf(api, body.family)
        return api.fork({
          family: body.family,
          ...(body.topK === undefined ? {} : { topK: body.topK }),
          ...(body.gating === undefined ? {} : { gating: body.gating }),
          ...(body.note === undefined ? {} : { note: body.note }),
        })
      },
    },
    {
      method: 'POST',
      url: '/v1/operator/experts/import',
      onRequest: requireOperator,
      schema: {
        summary:
          'Import a MoE checkpoint folder from the node\u2019s disk: a MetaBlock and one block per router and expert (SSE)',
        description: `${SseNote} The result: \`{ family, version, blocks, proposal }\`.`,
        tags: ['experts', 'operator'],
        security: OPERATOR_SECURITY,
        body: ImportBody,
        produces: ['text/event-stream'],
        response: ERROR_RESPONSES,
      },
      handler: async (request, reply) => {
        const body = request.body as Static<typeof ImportBody>
        requireAbsolute(body.dir, 'body/dir')
        return sseWork(request, reply, 'checkpoint import', async (progress) => ({
          ...(await api.importCheckpoint({ dir: body.dir, family: body.family }, progress)),
        }))
      },
    },
  ]
}

function showExpert(api: ExpertsApi, family: string | undefined, name: string): ExpertView {
  if (family !== undefined) familyOf(api, family)
  const found = api.show(family, name)
  if (found === undefined)
    throw new NotFoundError(`no current block ${name}${family === undefined ? '' : ` in ${family}`}`)
  return found
}

/** Every path of the table (and the seed's aliases), for the 404 routes of a node without experts. */
const EXPERT_PREFIXES = [
  '/v1/experts',
  '/v1/p2p',
  '/v1/security',
  '/v1/operator/experts',
  '/experts',
  '/p2p',
  '/security',
]

export const expertsRoutes: FastifyPluginAsync<{ experts: ExpertsApi }> = async (app, { experts }) => {
  app.addContentTypeParser(OCTET_STREAM, { parseAs: 'buffer' }, (_request, body, done) => done(null, body))
  for (const route of expertsRouteTable(experts)) app.route(route)
}

/** A node without an ExpertsApi: the experts paths answer 404 saying why. */
export const noExpertsRoutes: FastifyPluginAsync = async (app) => {
  for (const prefix of EXPERT_PREFIXES)
    for (const url of [prefix, `${prefix}/*`])
      app.route({
        method: ['GET', 'POST', 'PUT', 'DELETE'],
        url,
        schema: { hide: true },
        handler: async () => {
          throw new NotFoundError(NO_EXPERTS)
        },
      })
}
