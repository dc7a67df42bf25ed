/**
 * Inference routes: the model registry (OpenAI's list format), tensor inference with receipts,
 * OpenAI-compatible text completions (with SSE streaming), AI-Block's `/chat`, settlement proofs,
 * and the live view of workers.
 *
 * Who pays: `POST /v1/infer` with a `job` signed by the client is public (the client pays); any
 * request the node signs itself (no `job`, and every text route) spends the node's account, so it
 * needs the operator token (`Authorization: Bearer …`, which is also where OpenAI clients put
 * their API key). Client mistakes are 4xx and charge nothing: unknown model 404, bad tensors 400,
 * oversized 413, insufficient balance or deposit 402, not drawn for an audit 403, replayed job 409; no worker available 503.
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import Type from 'typebox'
import { randomBytes } from 'node:crypto'
import { toHex } from '../../core/bytes.ts'
import { describeError, InvalidInputError } from '../../core/errors.ts'
import { untrustedText } from '../../core/untrusted-text.ts'
import { jobFromJson, receiptToJson, type Receipt } from '../../inference/job.ts'
import { tensorFromJson, tensorToJson, type Tensor } from '../../inference/tensor.ts'
import { InferenceError } from '../../inference/errors.ts'
import type { InferenceApi, ModelView } from '../inference-api.ts'
import { NotFoundError } from '../errors.ts'
import { OPERATOR_SECURITY, requireOperator } from '../auth.ts'
import { ERROR_RESPONSES } from '../schemas.ts'
import { MAX_MODEL_BODY_BYTES } from '../constants.ts'

type Static<T extends Type.TSchema> = Type.Static<T>

const Amount = (description: string) => Type.String({ pattern: '^(0|[1-9][0-9]*)$', description })
const TensorSpec = Type.Object({
  name: Type.String(),
  type: Type.String(),
  dims: Type.Array(Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]), {
    description: 'null = any size (e.g. the batch)',
  }),
})
const TensorJson = Type.Object(
  {
    dims: Type.Array(Type.Integer({ minimum: 0 })),
    type: Type.String({ description: 'float32, int32, int64, uint8 or bool' }),
    data: Type.Array(Type.Union([Type.Number(), Type.String(), Type.Boolean()])),
  },
  { additionalProperties: false },
)
const ModelJson = Type.Object({
  id: Type.String({ description: 'the registered name' }),
  object: Type.Literal('model'),
  created: Type.Integer({ description: 'registration time, Unix seconds (the block that registered it)' }),
  height: Type.Integer({ description: 'height of the block that registered it (0: the genesis)' }),
  owned_by: Type.String({ description: "owner's DID" }),
  cid: Type.String(),
  version: Type.String(),
  price: Amount('fee per call, base units'),
  kind: Type.Union([Type.Literal('tensor'), Type.Literal('text')]),
  inputs: Type.Array(TensorSpec),
  outputs: Type.Array(TensorSpec),
  workers: Type.Integer({ description: 'workers advertising the model now' }),
})
const ReceiptJsonSchema = Type.Object(
  {
    id: Type.String(),
    jobId: Type.String(),
    job: Type.Object({
      chainId: Type.String(),
      client: Type.String(),
      gateway: Type.String({ description: 'the gateway whose deposit from the client pays' }),
      model: Type.String(),
      inputsHash: Type.String({ description: 'salted commitment to the inputs' }),
      maxFee: Type.String(),
      deadline: Type.Integer(),
      salt: Type.String(),
      signature: Type.String(),
    }),
    dispatch: Type.Union([Type.String(), Type.Null()], {
      description: "the gateway's signature dispatching the job to this worker (null for an audit re-run)",
    }),
    worker: Type.String(),
    outputHash: Type.String(),
    fee: Type.String(),
    ep: Type.String({ description: 'execution provider: cpu, coreml, cuda' }),
    runtime: Type.String(),
    startedAt: Type.Integer(),
    finishedAt: Type.Integer(),
    computeMicros: Type.Integer(),
    signature: Type.String(),
  },
  { description: "the worker's signed receipt; verify with `donghae receipt verify`" },
)
const InferBody = Type.Object(
  {
    model: Type.String({ minLength: 1, maxLength: 128, description: 'registered name or CID' }),
    inputs: Type.Record(Type.String(), TensorJson),
    job: Type.Optional(
      Type.Object(
        {
          chainId: Type.String(),
          client: Type.String(),
          gateway: Type.String({ description: "this node's DID: the job is paid from the client's deposit here" }),
          model: Type.String(),
          inputsHash: Type.String({ description: 'sha256("donghae/inputs/v1" ‖ salt ‖ hash of the inputs)' }),
          maxFee: Type.String(),
          deadline: Type.Integer(),
          salt: Type.String(),
          signature: Type.String(),
        },
        {
          description:
            "a job signed by the client, naming this node as gateway (then no operator token is needed; the client's deposit here pays)",
        },
      ),
    ),
  },
  { additionalProperties: false },
)
const InferResponse = Type.Object({
  outputs: Type.Record(Type.String(), TensorJson),
  receipt: ReceiptJsonSchema,
  worker: Type.String(),
  gateway: Type.String(),
  latencyMs: Type.Number(),
  attempts: Type.Integer(),
})
const CompletionBody = Type.Object({
  model: Type.String({ minLength: 1, maxLength: 128 }),
  prompt: Type.Union([Type.String({ maxLength: 4096 }), Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 1 })]),
  max_tokens: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
  temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 2 })),
  stream: Type.Optional(Type.Boolean()),
  user: Type.Optional(Type.String()),
})
const ChatBody = Type.Object({
  model: Type.String({ minLength: 1, maxLength: 128 }),
  messages: Type.Array(
    Type.Object({
      role: Type.String(),
      content: Type.String({ maxLength: 4096 }),
      name: Type.Optional(Type.String()),
    }),
    { minItems: 1, maxItems: 64 },
  ),
  max_tokens: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
  temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 2 })),
  stream: Type.Optional(Type.Boolean()),
  user: Type.Optional(Type.String()),
})
const AiBlockChatBody = Type.Object({
  prompt: Type.String({ minLength: 1, maxLength: 4096 }),
  model: Type.Optional(Type.String()),
  max_tokens: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
  use_moe: Type.Optional(Type.Boolean()),
  use_distributed: Type.Optional(Type.Boolean()),
  top_k_experts: Type.Optional(Type.Integer()),
})
const PublishBody = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' }),
    price: Amount('fee per call'),
    version: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
    kind: Type.Optional(Type.Union([Type.Literal('tensor'), Type.Literal('text')])),
    file: Type.String({ description: 'the ONNX file, base64' }),
    codec: Type.Optional(
      Type.String({ description: 'text models: the tokenizer JSON (models/chars-mlp.json is one), base64' }),
    ),
  },
  { additionalProperties: false },
)
const WorkerJson = Type.Object({
  did: Type.String(),
  bonded: Amount('bonded stake'),
  ep: Type.String(),
  runtime: Type.String({ description: 'the runtime its bond declares; its receipts must name it' }),
  streak: Type.Integer({ description: 'consecutive audits passed, all drawn by the chain (BOINC’s CV)' }),
  quarantined: Type.Boolean(),
  schedulable: Type.Boolean(),
  jobs: Type.Integer(),
  throughput: Type.Number({ description: 'advertised jobs per second' }),
  reputation: Type.Number({
    description: 'seed 001 score (usage × speed × quality × recency) over its whole record, 1.0 = base',
  }),
  auditsPassed: Type.Integer(),
  auditsFailed: Type.Integer(),
  slashes: Type.Integer(),
  live: Type.Boolean({ description: 'advertised within the last few seconds' }),
})

function modelJson(m: ModelView): Static<typeof ModelJson> {
  return {
    id: m.name,
    object: 'model',
    created: Math.floor(m.registeredTime / 1000),
    height: m.registeredAt,
    owned_by: m.owner,
    cid: m.cid,
    version: m.version,
    price: m.price.toString(),
    kind: m.kind,
    inputs: m.inputs,
    outputs: m.outputs,
    workers: m.workers,
  }
}

function tensorsFromJson(raw: Record<string, unknown>): Record<string, Tensor> {
  const map: Record<string, Tensor> = {}
  for (const [name, value] of Object.entries(raw)) map[name] = tensorFromJson(value, name)
  return map
}

/** Text routes spend the node's funds on every call: operator only, checked before the body is read. */
const operatorText = { onRequest: requireOperator }

/**
 * POST /v1/infer is public with a client-signed `job` and an operator route without one: a body
 * with no `job` needs the token, checked before the body is validated (so a stranger learns
 * nothing from validation errors). The body must be parsed first to see whether it has a job, so a
 * body that is not JSON at all is 400 (capped at MAX_BODY_BYTES, like every public route).
 */
const inferAuth = {
  preValidation: async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const body = request.body
    if (body === null || typeof body !== 'object' || !('job' in body)) await requireOperator(request, reply)
  },
}

function promptOf(prompt: string | string[]): string {
  return Array.isArray(prompt) ? (prompt[0] ?? '') : prompt
}

function usage(promptTokens: number, completion: number): Record<string, number> {
  return { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion }
}

function donghaeExtra(receipts: Receipt[]): { receipts: string[]; workers: string[]; fee: string } {
  return {
    receipts: receipts.map((r) => receiptToJson(r).id),
    workers: [...new Set(receipts.map((r) => r.worker))],
    fee: receipts.reduce((sum, r) => sum + r.fee, 0n).toString(),
  }
}

/** Starts an SSE answer; returns a writer of `data:` lines. */
function sse(reply: FastifyReply): { send: (data: unknown) => void; end: () => void } {
  reply.hijack()
  reply.raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  })
  return {
    send: (data) => reply.raw.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`),
    end: () => reply.raw.end(),
  }
}

async function completionRoute(
  api: InferenceApi,
  request: FastifyRequest,
  reply: FastifyReply,
  input: { model: string; prompt: string; maxTokens: number; stream: boolean; chat: boolean },
): Promise<unknown> {
  const id = `${input.chat ? 'chatcmpl' : 'cmpl'}-${toHex(randomBytes(12))}`
  const created = Math.floor(Date.now() / 1000)
  const object = input.chat ? 'chat.completion' : 'text_completion'
  if (!input.stream) {
    const out = await api.complete({ model: input.model, prompt: input.prompt, maxTokens: input.maxTokens })
    const choice = input.chat
      ? { index: 0, message: { role: 'assistant', content: out.text }, finish_reason: out.finishReason }
      : { index: 0, text: out.text, logprobs: null, finish_reason: out.finishReason }
    return {
      id,
      object,
      created,
      model: input.model,
      choices: [choice],
      usage: usage(out.promptTokens, out.receipts.length),
      donghae: donghaeExtra(out.receipts),
    }
  }
  // Validate the model before the stream starts, so a bad name is still a plain 4xx.
  const found = (await api.models()).find((m) => m.name === input.model || m.cid === input.model)
  if (found === undefined)
    throw new InferenceError(
      'unknown-model',
      `unknown model ${JSON.stringify(input.model)}; list them with GET /v1/models`,
    )
  if (found.kind !== 'text')
    throw new InferenceError('not-text-model', `${found.name} is a tensor model; use POST /v1/infer`)
  const chunkObject = input.chat ? 'chat.completion.chunk' : 'text_completion'
  const stream = sse(reply)
  const chunk = (text: string | undefined, finish: string | null): unknown => ({
    id,
    object: chunkObject,
    created,
    model: input.model,
    choices: [
      input.chat
        ? { index: 0, delta: text === undefined ? {} : { content: text }, finish_reason: finish }
        : { index: 0, text: text ?? '', logprobs: null, finish_reason: finish },
    ],
  })
  if (input.chat)
    stream.send({
      ...(chunk(undefined, null) as object),
      choices: [{ index: 0, delta: { role: 'assistant' }, finish_reason: null }],
    })
  try {
    const out = await api.complete({ model: input.model, prompt: input.prompt, maxTokens: input.maxTokens }, (piece) =>
      stream.send(chunk(piece, null)),
    )
    stream.send({ ...(chunk(undefined, out.finishReason) as object), donghae: donghaeExtra(out.receipts) })
  } catch (err) {
    // a worker's words may be in it: cut, and stripped of control characters
    const message = untrustedText(describeError(err), 1_000)
    request.log.info({ err: message }, 'completion stream failed')
    stream.send({ error: { code: 'INFERENCE_FAILED', message } })
  }
  stream.send('[DONE]')
  stream.end()
  return reply
}

function inferenceRouteTable(api: InferenceApi): RouteOptions[] {
  return [
    {
      method: 'GET',
      url: '/v1/models',
      schema: {
        summary: 'Registered models, in OpenAI’s list format (with Donghae’s registry fields)',
        tags: ['inference'],
        response: {
          200: Type.Object({ object: Type.Literal('list'), data: Type.Array(ModelJson) }),
          ...ERROR_RESPONSES,
        },
      },
      handler: async () => ({ object: 'list', data: (await api.models()).map(modelJson) }),
    },
    {
      method: 'GET',
      url: '/v1/models/:model',
      schema: {
        summary: 'One registered model, by name or CID',
        tags: ['inference'],
        params: Type.Object({ model: Type.String({ maxLength: 128 }) }),
        response: { 200: ModelJson, ...ERROR_RESPONSES },
      },
      handler: async (request) => {
        const { model } = request.params as { model: string }
        const found = (await api.models()).find((m) => m.name === model || m.cid === model)
        if (found === undefined) throw new NotFoundError(`unknown model ${JSON.stringify(model)}`)
        return modelJson(found)
      },
    },
    {
      method: 'POST',
      url: '/v1/infer',
      schema: {
        summary: 'Run a model on the network; the answer carries the worker’s signed receipt',
        description:
          'With `job` (signed by the client) the client pays and no token is needed; without it the node signs the job and pays, which needs the operator token.',
        tags: ['inference'],
        security: [{}, ...OPERATOR_SECURITY],
        body: InferBody,
        response: { 200: InferResponse, ...ERROR_RESPONSES },
      },
      ...inferAuth,
      handler: async (request) => {
        const body = request.body as Static<typeof InferBody>
        const inputs = tensorsFromJson(body.inputs)
        const job = body.job === undefined ? undefined : jobFromJson(body.job)
        const out = await api.infer({ model: body.model, inputs, ...(job === undefined ? {} : { job }) })
        const outputs: Record<string, unknown> = {}
        for (const [name, t] of Object.entries(out.outputs)) outputs[name] = tensorToJson(t)
        return {
          outputs,
          receipt: receiptToJson(out.receipt),
          worker: out.worker,
          gateway: out.gateway,
          latencyMs: Math.round(out.latencyMs * 1000) / 1000,
          attempts: out.attempts,
        }
      },
    },
    {
      method: 'POST',
      url: '/v1/completions',
      ...operatorText,
      schema: {
        summary: 'OpenAI-compatible text completion on a text model (SSE with `stream: true`)',
        tags: ['inference'],
        security: OPERATOR_SECURITY,
        body: CompletionBody,
      },
      handler: async (request, reply) => {
        const body = request.body as Static<typeof CompletionBody>
        return completionRoute(api, request, reply, {
          model: body.model,
          prompt: promptOf(body.prompt),
          maxTokens: body.max_tokens ?? 16,
          stream: body.stream === true,
          chat: false,
        })
      },
    },
    {
      method: 'POST',
      url: '/v1/chat/completions',
      ...operatorText,
      schema: {
        summary: 'OpenAI-compatible chat completion on a text model (SSE with `stream: true`)',
        description: 'The demo text model is a character model: it continues the last message.',
        tags: ['inference'],
        security: OPERATOR_SECURITY,
        body: ChatBody,
      },
      handler: async (request, reply) => {
        const body = request.body as Static<typeof ChatBody>
        const last = body.messages[body.messages.length - 1]
        return completionRoute(api, request, reply, {
          model: body.model,
          prompt: last?.content ?? '',
          maxTokens: body.max_tokens ?? 16,
          stream: body.stream === true,
          chat: true,
        })
      },
    },
    {
      method: 'POST',
      url: '/chat',
      ...operatorText,
      schema: {
        summary: 'AI-Block’s chat route, answered by the text model through the completion path',
        description:
          'use_moe, use_distributed and top_k_experts are accepted for compatibility; inference is always distributed.',
        tags: ['inference'],
        security: OPERATOR_SECURITY,
        body: AiBlockChatBody,
      },
      handler: async (request) => {
        const body = request.body as Static<typeof AiBlockChatBody>
        const model = body.model ?? (await api.models()).find((m) => m.kind === 'text')?.name
        if (model === undefined) throw new InferenceError('unknown-model', 'no text model is registered')
        const out = await api.complete({ model, prompt: body.prompt, maxTokens: body.max_tokens ?? 32 })
        return { response: out.text, model, distributed: true, donghae: donghaeExtra(out.receipts) }
      },
    },
    {
      method: 'GET',
      url: '/v1/jobs/:jobId/settlement',
      schema: {
        summary: 'Where a job’s receipt was settled, with its Merkle inclusion proof in the batch',
        tags: ['inference'],
        params: Type.Object({ jobId: Type.String({ pattern: '^[0-9a-f]{64}$' }) }),
        response: {
          200: Type.Object({
            jobId: Type.String(),
            receiptId: Type.String(),
            worker: Type.String(),
            height: Type.Integer(),
            batchKey: Type.String({ description: 'state key of the batch record (prove it with /v1/state/proof)' }),
            root: Type.String(),
            index: Type.Integer(),
            count: Type.Integer(),
            proof: Type.Array(Type.Object({ hash: Type.String(), right: Type.Boolean() })),
          }),
          ...ERROR_RESPONSES,
        },
      },
      handler: async (request) => {
        const { jobId } = request.params as { jobId: string }
        const found = api.settlement(jobId)
        if (found === undefined) throw new NotFoundError(`job ${jobId} is not settled (yet)`)
        return found
      },
    },
    {
      method: 'GET',
      url: '/v1/inference/workers',
      schema: {
        summary: 'Bonded workers: stake, audit streak, quarantine, throughput, reputation',
        tags: ['inference'],
        response: { 200: Type.Object({ workers: Type.Array(WorkerJson) }), ...ERROR_RESPONSES },
      },
      handler: async () => ({
        workers: api.workers().map((w) => ({ ...w, bonded: w.bonded.toString(), reputation: w.reputation / 1e6 })),
      }),
    },
    {
      method: 'GET',
      url: '/v1/inference/stats',
      schema: {
        summary: 'This gateway’s job counters and latency, and its worker’s load',
        tags: ['inference'],
        response: {
          200: Type.Object({
            jobs: Type.Integer(),
            failures: Type.Integer(),
            jobsPerSecond: Type.Number(),
            latencyMs: Type.Object({ p50: Type.Number(), p99: Type.Number() }),
            audits: Type.Integer(),
            auditsFailed: Type.Integer(),
            canaries: Type.Integer(),
            slashes: Type.Integer(),
            pendingSettlement: Type.Integer(),
            worker: Type.Object(
              {
                running: Type.Integer(),
                queued: Type.Integer(),
                paid: Type.Integer({ description: 'of the running jobs, those paid by clients (the rest are audits)' }),
              },
              { description: 'this node’s worker: jobs running now and jobs waiting for a slot' },
            ),
            badModels: Type.Optional(
              Type.Array(
                Type.Object({
                  cid: Type.String(),
                  reason: Type.String({
                    description: 'the limit it broke: unsafe, load-time, run-time, memory, output-size, crashed',
                  }),
                  failures: Type.Integer(),
                  markedAt: Type.Integer({ description: 'ms since the Unix epoch' }),
                  retryAt: Type.Integer({ description: 'not retried before this time, ms since the Unix epoch' }),
                }),
                { description: 'models this node’s worker holds back after they broke a sandbox limit' },
              ),
            ),
          }),
          ...ERROR_RESPONSES,
        },
      },
      handler: async () => api.stats(),
    },
    {
      method: 'GET',
      url: '/v1/inference/deposits/:client',
      schema: {
        summary: 'What a client has deposited with this node as its gateway, and what its jobs in flight hold',
        tags: ['inference'],
        params: Type.Object({ client: Type.String({ pattern: '^did:key:z[1-9A-HJ-NP-Za-km-z]{40,60}$' }) }),
        response: {
          200: Type.Object({
            client: Type.String(),
            gateway: Type.String(),
            amount: Amount('spendable by new jobs'),
            reserved: Amount('held by jobs dispatched and not yet settled'),
            unlocking: Type.Array(Type.Object({ amount: Amount('asked back'), at: Type.Integer() })),
          }),
          ...ERROR_RESPONSES,
        },
      },
      handler: async (request) => {
        const { client } = request.params as { client: string }
        const d = api.deposit(client)
        return {
          client,
          gateway: api.did,
          amount: d.amount.toString(),
          reserved: d.reserved.toString(),
          unlocking: d.unlocking.map((u) => ({ amount: u.amount.toString(), at: u.at })),
        }
      },
    },
    {
      method: 'POST',
      url: '/v1/operator/models',
      // checked before the body is read, so a stranger's 20 MiB upload is refused unread
      onRequest: requireOperator,
      bodyLimit: MAX_MODEL_BODY_BYTES,
      schema: {
        summary: 'Publish an ONNX model: store it, register it on chain under the node’s key',
        tags: ['operator'],
        security: OPERATOR_SECURITY,
        body: PublishBody,
        response: { 202: Type.Object({ cid: Type.String(), txHash: Type.String() }), ...ERROR_RESPONSES },
      },
      handler: async (request, reply) => {
        const body = request.body as Static<typeof PublishBody>
        const file = Buffer.from(body.file, 'base64')
        if (file.length === 0) throw new InvalidInputError('body/file must be the ONNX file as base64')
        const out = await api.publishModel({
          name: body.name,
          price: BigInt(body.price),
          version: body.version ?? '1',
          kind: body.kind ?? 'tensor',
          file: new Uint8Array(file),
          ...(body.codec === undefined ? {} : { codec: new Uint8Array(Buffer.from(body.codec, 'base64')) }),
        })
        return reply.code(202).send({ cid: out.cid, txHash: toHex(out.txHash) })
      },
    },
  ]
}

export const inferenceRoutes: FastifyPluginAsync<{ inference: InferenceApi }> = async (app, { inference }) => {
  for (const route of inferenceRouteTable(inference)) app.route(route)
}
