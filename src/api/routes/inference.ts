/**
 * Inference routes: the model registry (OpenAI's list format), tensor inference with receipts,
 * OpenAI-compatible completions on language and text models (with SSE streaming), AI-Block's
 * `/chat`, settlement proofs, and the live view of workers.
 *
 * Who pays: `POST /v1/infer` with a `job` signed by the client is public (the client pays); any
 * request the node signs itself (no `job`, raw tensors, and every text route) spends the node's
 * account, so it needs the operator token (`Authorization: Bearer ...`, which is also where OpenAI
 * clients put their API key). Client mistakes are 4xx and charge nothing: unknown model 404, bad
 * tensors or parameters 400, oversized 413, unsupported content type 415, insufficient balance or
 * deposit 402, not drawn for an audit 403, replayed job 409; no worker available 503.
 *
 * Tensors travel in three forms (`INFER_FORMS`): JSON (`data` as an array, or `data_b64` with the
 * little-endian bytes in base64), CBOR (`application/cbor`, `data` a byte string; answered in CBOR
 * when `Accept` names application/cbor), and raw bytes (`POST /v1/infer/{model}`,
 * `application/octet-stream`, for single-input models). Body limits (constants.ts): JSON 8 MiB,
 * CBOR and raw bytes 16 MiB + 64 KiB; completions 1 MiB.
 */
import { isAbsolute } from 'node:path'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import Type from '../schema-builder.ts'
import { randomBytes } from 'node:crypto'
import { Transform, type Readable } from 'node:stream'
import { toHex } from '../../core/bytes.ts'
import { describeError, InvalidInputError } from '../../core/errors.ts'
import { untrustedText } from '../../core/untrusted-text.ts'
import { jobFromJson, receiptToJson, type Receipt } from '../../inference/job.ts'
import {
  tensorFromBytes,
  tensorMapFromJson,
  tensorToB64Json,
  tensorToBinaryJson,
  tensorToJson,
  type Tensor,
} from '../../inference/tensor.ts'
import { InferenceError } from '../../inference/errors.ts'
import type {
  CompletionOutcome,
  CompletionRequest,
  FetchView,
  InferenceApi,
  InferOutcome,
  ModelView,
} from '../inference-api.ts'
import { NotFoundError } from '../errors.ts'
import { OPERATOR_SECURITY, requireOperator } from '../auth.ts'
import { ERROR_RESPONSES } from '../schemas.ts'
import { SSE_HEARTBEAT_MS } from './events.ts'
import { moeChatAnswer } from './experts.ts'
import {
  COMPLETION_STREAM_OPEN_MS,
  MAX_COMPLETION_BODY_BYTES,
  MAX_INFER_BINARY_BYTES,
  MAX_INFER_JSON_BYTES,
  MAX_MODEL_BODY_BYTES,
} from '../constants.ts'
import { CBOR_MEDIA_TYPE, decodeCbor, encodeCbor } from '../cbor.ts'
import {
  OPENAI_LIMITS,
  openAiErrorBody,
  ParamError,
  paramOfError,
  parseChatCompletion,
  parseCompletion,
  type OpenAiCompletion,
} from '../openai.ts'

type Static<T extends Type.TSchema> = Type.Static<T>

const JSON_MEDIA_TYPE = 'application/json'
const OCTET_STREAM = 'application/octet-stream'

const mib = (bytes: number): string => `${Number((bytes / 1024 / 1024).toFixed(2))} MiB`

/** How the tensor forms and their limits read in the OpenAPI document. */
const INFER_FORMS = [
  `Tensors: \`{ dims, type, data: [...] }\`, or \`{ dims, type, data_b64 }\` with the little-endian bytes in base64 (exactly product(dims) × 4 bytes for float32/int32, × 8 for int64, × 1 for uint8/bool).`,
  `Bodies: JSON up to ${mib(MAX_INFER_JSON_BYTES)} (a 640×640 RGB float32 image fits as data_b64, not as a number array); CBOR (\`content-type: application/cbor\`, the same shape with \`data\` as a byte string) up to ${mib(MAX_INFER_BINARY_BYTES)}; raw bytes: POST /v1/infer/{model}. One tensor holds at most 16 MiB and 4 194 304 values.`,
  'Answers: JSON with `data` arrays; `"output_encoding": "b64"` gives `data_b64` instead; `accept: application/cbor` gives CBOR with byte strings. Errors are always JSON.',
].join('\n\n')

const Amount = (description: string) => Type.String({ pattern: '^(0|[1-9][0-9]*)$', description })
const TensorSpec = Type.Object({
  name: Type.String(),
  type: Type.String(),
  dims: Type.Array(Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]), {
    description: 'null = any size (e.g. the batch)',
  }),
})
const TensorType = Type.String({ description: 'float32, int32, int64, uint8 or bool' })
const TensorDims = Type.Array(Type.Integer({ minimum: 0 }), { maxItems: 8 })
const TensorData = Type.Array(Type.Union([Type.Number(), Type.String(), Type.Boolean()]), {
  description: 'the values, row-major (int64 as decimal strings; NaN/Infinity as strings in outputs)',
})
const TensorB64 = Type.String({
  description: 'the values as little-endian bytes, base64 (standard or URL-safe alphabet, padding optional)',
})
/** Validated loosely: `tensorFromJson` checks each form with precise messages (and CBOR's byte strings). */
const TensorIn = Type.Object(
  {
    dims: TensorDims,
    type: TensorType,
    data: Type.Optional(
      Type.Unknown({
        description:
          'the values, row-major: a flat array (int64 as numbers or decimal strings, bool as true/false), or in a CBOR body a byte string of the little-endian values',
      }),
    ),
    data_b64: Type.Optional(TensorB64),
  },
  { additionalProperties: false, description: 'exactly one of data and data_b64' },
)
const TensorOut = Type.Object({
  dims: TensorDims,
  type: TensorType,
  data: Type.Optional(TensorData),
  data_b64: Type.Optional(TensorB64),
})
const ModelJson = Type.Object({
  id: Type.String({ description: 'the registered name' }),
  object: Type.Literal('model'),
  created: Type.Integer({ description: 'registration time, Unix seconds (the block that registered it)' }),
  height: Type.Integer({ description: 'height of the block that registered it (0: the genesis)' }),
  owned_by: Type.String({ description: "owner's DID" }),
  cid: Type.String(),
  version: Type.String(),
  price: Amount('fee per call, base units (language models: per output token)'),
  promptPrice: Type.Optional(Amount('language models: fee per prompt token, base units')),
  contextLength: Type.Optional(Type.Integer({ description: 'language models: the context window, tokens' })),
  kind: Type.Union([Type.Literal('tensor'), Type.Literal('text'), Type.Literal('lm')], {
    description: 'tensor: POST /v1/infer; text (the demo character model) and lm (a language model): completions',
  }),
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
    usage: Type.Optional(
      Type.Object(
        { prompt: Type.Integer(), output: Type.Integer() },
        { description: 'language models: the tokens the fee is computed from' },
      ),
    ),
    signature: Type.String(),
  },
  { description: "the worker's signed receipt; verify with `donghae receipt verify`" },
)
const OutputEncoding = Type.Union([Type.Literal('array'), Type.Literal('b64')], {
  description: 'how JSON answers carry output values: `data` arrays (default) or `data_b64`',
})
const InferBody = Type.Object(
  {
    model: Type.String({ minLength: 1, maxLength: 128, description: 'registered name or CID' }),
    inputs: Type.Record(Type.String(), TensorIn, { maxProperties: 64 }),
    output_encoding: Type.Optional(OutputEncoding),
    job: Type.Optional(
      Type.Object(
        {
          chainId: Type.String(),
          client: Type.String(),
          gateway: Type.String({ description: "this node's DID: the job is paid from the client's deposit here" }),
          model: Type.String(),
          inputsHash: Type.String({ description: 'sha256("donghae/inputs/v1" \u2016 salt \u2016 hash of the inputs)' }),
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
  outputs: Type.Record(Type.String(), TensorOut),
  receipt: ReceiptJsonSchema,
  worker: Type.String(),
  gateway: Type.String(),
  latencyMs: Type.Number(),
  attempts: Type.Integer(),
})
const RawInferHeaders = Type.Object({
  'x-tensor-dims': Type.Optional(
    Type.String({
      maxLength: 128,
      description: 'the dims, comma-separated (e.g. 1,3,640,640); may be left out when the model fixes every dim',
    }),
  ),
  'x-tensor-type': Type.Optional(
    Type.String({
      maxLength: 16,
      description: "float32, int32, int64, uint8 or bool (default: the model's input type)",
    }),
  ),
  'x-tensor-name': Type.Optional(
    Type.String({ maxLength: 256, description: "the input's name (default: the model's only input)" }),
  ),
})

// ---- OpenAI-compatible bodies (documentation: openai.ts checks them) ----

const nullNote = 'null = not given.'
const Sampling = {
  model: Type.String({ minLength: 1, maxLength: 128, description: 'registered name or CID of a text or lm model' }),
  max_tokens: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: OPENAI_LIMITS.maxTokens,
      description:
        "at most the model's context window (default: the model's generation_config, else 64; text models 16)",
    }),
  ),
  temperature: Type.Optional(
    Type.Number({
      minimum: 0,
      maximum: OPENAI_LIMITS.maxTemperature,
      description: '0 = greedy; rounded to thousandths',
    }),
  ),
  top_p: Type.Optional(
    Type.Number({ minimum: 0, maximum: 1, description: 'nucleus; rounded to thousandths, 0 = the most likely token' }),
  ),
  top_k: Type.Optional(
    Type.Integer({ minimum: 0, maximum: OPENAI_LIMITS.maxTopK, description: 'Donghae extension; 0 = no cut' }),
  ),
  seed: Type.Optional(
    Type.Integer({ description: 'a safe integer; without it the sampler is seeded from the job id (reproducible)' }),
  ),
  stop: Type.Optional(
    Type.Union([Type.String(), Type.Array(Type.String(), { maxItems: OPENAI_LIMITS.maxStop })], {
      description: `up to ${OPENAI_LIMITS.maxStop} strings of at most ${OPENAI_LIMITS.maxStopBytes} bytes`,
    }),
  ),
  n: Type.Optional(Type.Integer({ minimum: 1, maximum: 1, description: 'only 1' })),
  stream: Type.Optional(Type.Boolean({ description: 'SSE: chunks, then `data: [DONE]`' })),
  stream_options: Type.Optional(
    Type.Object(
      { include_usage: Type.Optional(Type.Boolean({ description: 'a last chunk with the usage and no choices' })) },
      { additionalProperties: false },
    ),
  ),
  user: Type.Optional(Type.String({ description: 'ignored' })),
  frequency_penalty: Type.Optional(Type.Number({ minimum: 0, maximum: 0, description: 'only 0' })),
  presence_penalty: Type.Optional(Type.Number({ minimum: 0, maximum: 0, description: 'only 0' })),
  logit_bias: Type.Optional(Type.Object({}, { description: 'only {}' })),
}
const ChatBody = Type.Object(
  {
    ...Sampling,
    messages: Type.Array(
      Type.Object({
        role: Type.Union([
          Type.Literal('system'),
          Type.Literal('developer'),
          Type.Literal('user'),
          Type.Literal('assistant'),
        ]),
        content: Type.Union([
          Type.String(),
          Type.Array(Type.Object({ type: Type.Literal('text'), text: Type.String() }), {
            description: 'text parts, joined with newlines',
          }),
        ]),
        name: Type.Optional(Type.String({ description: 'ignored' })),
      }),
      {
        minItems: 1,
        maxItems: OPENAI_LIMITS.maxMessages,
        description: "the whole chat: the model's chat template renders it (a text model continues the last message)",
      },
    ),
    max_completion_tokens: Type.Optional(Type.Integer({ minimum: 1, description: 'the same as max_tokens' })),
    logprobs: Type.Optional(Type.Boolean({ description: 'only false' })),
    top_logprobs: Type.Optional(Type.Integer({ minimum: 0, maximum: 0, description: 'only 0' })),
    response_format: Type.Optional(Type.Object({ type: Type.Literal('text') }, { description: 'only text' })),
    tools: Type.Optional(Type.Array(Type.Unknown(), { maxItems: 0, description: 'only [] (no tool calling)' })),
    tool_choice: Type.Optional(Type.Literal('none')),
    parallel_tool_calls: Type.Optional(Type.Boolean({ description: 'ignored' })),
    store: Type.Optional(Type.Literal(false)),
    metadata: Type.Optional(Type.Object({}, { description: 'ignored' })),
    service_tier: Type.Optional(Type.String({ description: 'ignored' })),
    modalities: Type.Optional(Type.Array(Type.Literal('text'), { minItems: 1, maxItems: 1 })),
  },
  {
    additionalProperties: false,
    description: `Any other parameter is 400 \`unknown parameter "\u2026"\`. ${nullNote}`,
  },
)
const CompletionBody = Type.Object(
  {
    ...Sampling,
    prompt: Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1, maxItems: 1 })], {
      description: 'one prompt (an array of one string is accepted; batches and token ids are not)',
    }),
    logprobs: Type.Optional(Type.Integer({ minimum: 0, maximum: 0, description: 'only 0' })),
    echo: Type.Optional(Type.Literal(false)),
    best_of: Type.Optional(Type.Integer({ minimum: 1, maximum: 1 })),
    suffix: Type.Optional(Type.Literal('')),
  },
  {
    additionalProperties: false,
    description: `Any other parameter is 400 \`unknown parameter "\u2026"\`. ${nullNote}`,
  },
)
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
    price: Amount('fee per call; a language model: per output token'),
    promptPrice: Type.Optional(Amount('language models: fee per prompt token')),
    version: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
    kind: Type.Optional(Type.Union([Type.Literal('tensor'), Type.Literal('text'), Type.Literal('lm')])),
    file: Type.Optional(Type.String({ description: 'the ONNX file, base64 (not with dir)' })),
    codec: Type.Optional(
      Type.String({ description: 'text models: the tokenizer JSON (models/chars-mlp.json is one), base64' }),
    ),
    files: Type.Optional(
      Type.Record(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' }), Type.String(), {
        description: 'language models: tokenizer.json, tokenizer_config.json, \u2026 by name, base64',
      }),
    ),
    dir: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 4096,
        description:
          'language models: an absolute path to the model folder on the node\u2019s own disk (any size; instead of file and files)',
      }),
    ),
  },
  { additionalProperties: false },
)
const WorkerJson = Type.Object({
  did: Type.String(),
  bonded: Amount('bonded stake'),
  ep: Type.String(),
  runtime: Type.String({ description: 'the runtime its bond declares; its receipts must name it' }),
  streak: Type.Integer({ description: 'consecutive audits passed, all drawn by the chain (BOINC\u2019s CV)' }),
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

const FetchJson = Type.Object({
  model: Type.String({ description: 'the model\u2019s CID (its graph)' }),
  name: Type.String({ description: 'its registry name' }),
  bytes: Type.Integer({ minimum: 0, description: 'bytes of the model\u2019s files in the content store so far' }),
  totalBytes: Type.Optional(
    Type.Integer({ minimum: 0, description: 'bytes in all (absent until the root block of every file is read)' }),
  ),
  fromPeers: Type.Record(Type.String(), Type.Integer({ minimum: 0 }), {
    description: 'blocks each peer delivered, by DID',
  }),
  startedAt: Type.Number({ description: 'ms since the Unix epoch' }),
  finishedAt: Type.Optional(Type.Number({ description: 'ms since the Unix epoch' })),
  state: Type.Union([Type.Literal('fetching'), Type.Literal('done'), Type.Literal('failed')]),
  error: Type.Optional(
    Type.String({ description: 'why it failed (the blocks fetched so far stay: a new fetch resumes)' }),
  ),
})

/** A FetchView as JSON: a copy (the node goes on changing its own), the error cut and cleaned. */
function fetchJson(f: FetchView): Static<typeof FetchJson> {
  return {
    model: f.model,
    name: f.name,
    bytes: f.bytes,
    ...(f.totalBytes === undefined ? {} : { totalBytes: f.totalBytes }),
    fromPeers: { ...f.fromPeers },
    startedAt: f.startedAt,
    ...(f.finishedAt === undefined ? {} : { finishedAt: f.finishedAt }),
    state: f.state,
    // a peer's words may be in it
    ...(f.error === undefined ? {} : { error: untrustedText(f.error, 1_000) }),
  }
}

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
    ...(m.promptPrice === undefined ? {} : { promptPrice: m.promptPrice.toString() }),
    ...(m.contextLength === undefined ? {} : { contextLength: m.contextLength }),
    kind: m.kind,
    inputs: m.inputs,
    outputs: m.outputs,
    workers: m.workers,
  }
}

async function findModel(api: InferenceApi, model: string): Promise<ModelView> {
  const found = (await api.models()).find((m) => m.name === model || m.cid === model)
  if (found === undefined)
    throw new InferenceError('unknown-model', `unknown model ${JSON.stringify(model)}; list them with GET /v1/models`)
  return found
}

// ---- bodies: content types and limits ----

/** An HTTP error with its status (toHttpError answers it with the status's code). */
class HttpStatusError extends Error {
  readonly statusCode: number
  constructor(statusCode: number, message: string) {
    super(message)
    this.statusCode = statusCode
  }
}

function mediaType(request: FastifyRequest): string {
  return (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? ''
}

/**
 * preParsing hook: the body's content type must be one of `limits`, and its size within that
 * type's limit: refused before it is read when it declares a larger length, and as soon as it
 * passes the limit when it does not (chunked). The route's `bodyLimit` is the largest of them.
 */
function bodyLimits(route: string, limits: Readonly<Record<string, number>>, hint = '') {
  return async (request: FastifyRequest, _reply: FastifyReply, payload: Readable): Promise<Readable> => {
    const type = mediaType(request)
    const limit = Object.hasOwn(limits, type) ? limits[type] : undefined
    if (limit === undefined)
      throw new HttpStatusError(
        415,
        `${route} takes ${Object.keys(limits).join(' or ')} bodies${type === '' ? ' (send a content-type)' : `, not ${type}`}`,
      )
    const tooLarge = (): Error =>
      new HttpStatusError(
        413,
        `the ${type} body is over the ${mib(limit)} limit of ${route}${type === JSON_MEDIA_TYPE ? hint : ''}`,
      )
    const declared = request.headers['content-length']
    if (declared !== undefined) {
      if (Number(declared) > limit) throw tooLarge()
      return payload // Node's parser stops a body at its declared length
    }
    let seen = 0
    const counted = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        seen += chunk.length
        if (seen > limit) done(tooLarge())
        else done(null, chunk)
      },
    })
    payload.on('error', (err) => counted.destroy(err))
    return payload.pipe(counted)
  }
}

const BIG_TENSOR_HINT = `; send big tensors as data_b64, as CBOR (application/cbor) or as raw bytes (POST /v1/infer/{model}), up to ${mib(MAX_INFER_BINARY_BYTES)}`

// ---- tensor answers ----

type OutputForm = 'array' | 'b64' | 'cbor'

function outputForm(request: FastifyRequest, asked: string | undefined): OutputForm {
  if (/\bapplication\/cbor\b/i.test(request.headers.accept ?? '')) return 'cbor'
  return asked === 'b64' ? 'b64' : 'array'
}

function inferAnswer(reply: FastifyReply, out: InferOutcome, form: OutputForm): unknown {
  const rest = {
    receipt: receiptToJson(out.receipt),
    worker: out.worker,
    gateway: out.gateway,
    latencyMs: Math.round(out.latencyMs * 1000) / 1000,
    attempts: out.attempts,
  }
  const outputs = (encode: (t: Tensor) => unknown): Record<string, unknown> =>
    Object.fromEntries(Object.entries(out.outputs).map(([name, t]) => [name, encode(t)]))
  if (form === 'cbor') {
    const bytes = encodeCbor({ outputs: outputs(tensorToBinaryJson), ...rest })
    return reply.type(CBOR_MEDIA_TYPE).send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  }
  return { outputs: outputs(form === 'b64' ? tensorToB64Json : tensorToJson), ...rest }
}

/** Text routes spend the node's funds on every call: operator only, checked before the body is read. */
const operatorText = { onRequest: requireOperator }

/**
 * POST /v1/infer is public with a client-signed `job` and an operator route without one: a body
 * with no `job` needs the token, checked before the body is validated (so a stranger learns
 * nothing from validation errors). The body must be parsed first to see whether it has a job, so a
 * body that is neither JSON nor CBOR is 400 (capped at the route's limits).
 */
const inferAuth = {
  preValidation: async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const body = request.body
    if (body === null || typeof body !== 'object' || !('job' in body)) await requireOperator(request, reply)
  },
}

/** `x-tensor-dims: 1,3,640,640` (or '' for a scalar); absent: the model's dims when it fixes them all. */
function rawDims(header: string | undefined, declared: ReadonlyArray<number | null>, model: string): number[] {
  if (header !== undefined) {
    if (!/^ *([0-9]{1,9}( *, *[0-9]{1,9})*)? *$/.test(header))
      throw new InvalidInputError(
        `x-tensor-dims must be the sizes separated by commas, e.g. 1,3,640,640 (got ${JSON.stringify(header.slice(0, 40))})`,
      )
    const text = header.trim()
    return text === '' ? [] : text.split(',').map((d) => Number(d.trim()))
  }
  if (declared.every((d): d is number => d !== null)) return [...declared]
  throw new InvalidInputError(
    `x-tensor-dims is required: ${model}'s input has free dims [${declared.map((d) => d ?? 'N').join(',')}]`,
  )
}

// ---- completions ----

function usage(out: CompletionOutcome): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  return {
    prompt_tokens: out.promptTokens,
    completion_tokens: out.completionTokens,
    total_tokens: out.promptTokens + out.completionTokens,
  }
}

interface DonghaeExtra {
  receipts: string[]
  receipt?: ReturnType<typeof receiptToJson>
  workers: string[]
  worker?: string
  fee: string
  ttftMs?: number
}

function donghaeExtra(out: Pick<CompletionOutcome, 'receipts' | 'worker' | 'ttftMs'>): DonghaeExtra {
  const receipts: Receipt[] = out.receipts
  return {
    receipts: receipts.map((r) => receiptToJson(r).id),
    // a language model's completion is one job: its whole receipt, for the client to verify and keep
    ...(receipts.length === 1 ? { receipt: receiptToJson(receipts[0] as Receipt) } : {}),
    workers: [...new Set(receipts.map((r) => r.worker))],
    ...(out.worker === undefined ? {} : { worker: out.worker }),
    fee: receipts.reduce((sum, r) => sum + r.fee, 0n).toString(),
    ...(out.ttftMs === undefined ? {} : { ttftMs: Math.round(out.ttftMs * 1000) / 1000 }),
  }
}

/** Starts an SSE answer; returns a writer of `data:` lines (and named events). */
function sse(reply: FastifyReply): { send: (data: unknown, event?: string) => void; end: () => void } {
  reply.hijack()
  reply.raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  })
  return {
    send: (data, event) =>
      reply.raw.write(
        `${event === undefined ? '' : `event: ${event}\n`}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`,
      ),
    end: () => reply.raw.end(),
  }
}

/** A text or language model, or the error a completion on anything else gets. */
async function textModel(api: InferenceApi, name: string): Promise<ModelView> {
  const found = await findModel(api, name)
  if (found.kind === 'tensor')
    throw new InferenceError('not-text-model', `${found.name} is a tensor model; use POST /v1/infer`)
  return found
}

/** What `api.complete` is asked: the checked parameters, fitted to the model's kind. */
function completionRequest(parsed: OpenAiCompletion, model: ModelView): CompletionRequest {
  const { maxTokens } = parsed
  if (maxTokens !== undefined && model.contextLength !== undefined && maxTokens > model.contextLength)
    throw new ParamError(
      'max_tokens',
      `max_tokens ${maxTokens} is more than ${model.name}'s context window of ${model.contextLength} tokens`,
    )
  const sampling: Omit<CompletionRequest, 'model'> = {
    ...(parsed.temperature === undefined ? {} : { temperature: parsed.temperature }),
    ...(parsed.topP === undefined ? {} : { topP: parsed.topP }),
    ...(parsed.topK === undefined ? {} : { topK: parsed.topK }),
    ...(parsed.seed === undefined ? {} : { seed: parsed.seed }),
    ...(parsed.stop === undefined ? {} : { stop: parsed.stop }),
  }
  if (model.kind === 'text') {
    // the demo character model has no chat template: it continues the last message
    const prompt = parsed.prompt ?? parsed.messages?.[parsed.messages.length - 1]?.content ?? ''
    return { model: parsed.model, prompt, maxTokens: maxTokens ?? 16, ...sampling }
  }
  return {
    model: parsed.model,
    ...(parsed.messages === undefined ? { prompt: parsed.prompt ?? '' } : { messages: parsed.messages }),
    ...(maxTokens === undefined ? {} : { maxTokens }),
    ...sampling,
  }
}

/**
 * One completion, answered as OpenAI does: a `chat.completion` / `text_completion` object, or
 * with `stream` SSE chunks (chat: `delta.role` first, then `delta.content` pieces), a last chunk
 * with `finish_reason` and Donghae's `donghae` field, a usage chunk with no choices when
 * `stream_options.include_usage`, then `data: [DONE]`. The stream's head is sent with the first
 * piece (or after COMPLETION_STREAM_OPEN_MS, then with heartbeats), so a request the node refuses
 * at once is still a plain HTTP error; a failure after that is an `event: error` carrying
 * `{ "error": { code, message, type } }`, which the openai client raises as an APIError.
 */
async function completionRoute(
  api: InferenceApi,
  request: FastifyRequest,
  reply: FastifyReply,
  parsed: OpenAiCompletion,
  chat: boolean,
): Promise<unknown> {
  const model = await textModel(api, parsed.model)
  const completion = completionRequest(parsed, model)
  const base = {
    id: `${chat ? 'chatcmpl' : 'cmpl'}-${toHex(randomBytes(12))}`,
    object: chat ? 'chat.completion' : 'text_completion',
    created: Math.floor(Date.now() / 1000),
    model: model.name,
    system_fingerprint: `fp_${model.cid.slice(-10)}`,
  }
  if (!parsed.stream) {
    const out = await api.complete(completion)
    const choice = chat
      ? {
          index: 0,
          message: { role: 'assistant', content: out.text, refusal: null },
          logprobs: null,
          finish_reason: out.finishReason,
        }
      : { index: 0, text: out.text, logprobs: null, finish_reason: out.finishReason }
    return { ...base, choices: [choice], usage: usage(out), donghae: donghaeExtra(out) }
  }
  const chunk = (delta: { role?: string; content?: string }, finish: string | null): Record<string, unknown> => ({
    ...base,
    object: chat ? 'chat.completion.chunk' : 'text_completion',
    choices: [
      chat
        ? { index: 0, delta, logprobs: null, finish_reason: finish }
        : { index: 0, text: delta.content ?? '', logprobs: null, finish_reason: finish },
    ],
    ...(parsed.includeUsage ? { usage: null } : {}),
  })
  let stream: ReturnType<typeof sse> | undefined
  let heartbeat: ReturnType<typeof setInterval> | undefined
  const open = (): ReturnType<typeof sse> => {
    if (stream === undefined) {
      stream = sse(reply)
      if (chat) stream.send(chunk({ role: 'assistant', content: '' }, null))
      heartbeat = setInterval(() => reply.raw.write(': keep-alive\n\n'), SSE_HEARTBEAT_MS)
    }
    return stream
  }
  const opener = setTimeout(open, COMPLETION_STREAM_OPEN_MS)
  let out: CompletionOutcome
  try {
    out = await api.complete(completion, (piece) => open().send(chunk({ content: piece }, null)))
  } catch (err) {
    if (stream === undefined) throw err // nothing sent yet: a plain HTTP error
    // a worker's words may be in it: cut, and stripped of control characters
    const message = untrustedText(describeError(err), 1_000)
    request.log.info({ err: message }, 'completion stream failed')
    const reason = err instanceof InferenceError ? { reason: err.reason } : {}
    stream.send({ error: { code: 'INFERENCE_FAILED', message, ...reason, type: 'server_error', param: null } }, 'error')
    stream.send('[DONE]')
    stream.end()
    return reply
  } finally {
    clearTimeout(opener)
    clearInterval(heartbeat)
  }
  const s = open()
  s.send({ ...chunk({}, out.finishReason), donghae: donghaeExtra(out) })
  if (parsed.includeUsage) s.send({ ...chunk({}, null), choices: [], usage: usage(out) })
  s.send('[DONE]')
  s.end()
  return reply
}

// ---- model fetches ----

/**
 * Least time between two progress messages of a fetch's SSE answer (at most 10 a second; the
 * final view is always sent).
 */
const FETCH_PROGRESS_MS = 100

/**
 * POST /v1/operator/models/{model}/fetch: starts (or joins) the fetch and answers SSE: a
 * `data: {FetchView}` per progress, at most every FETCH_PROGRESS_MS (the latest view; the last
 * one before a pause is sent when the interval has passed), the finished view (state done), then
 * `data: [DONE]`. A failure is an `event: error` carrying `{ "error": { code, message } }`, then
 * `[DONE]`. An unknown model is a plain 404 before the stream opens. A client that goes away does
 * not stop the fetch.
 */
async function fetchRoute(api: InferenceApi, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const { model } = request.params as { model: string }
  await findModel(api, model)
  const stream = sse(reply)
  const raw = reply.raw
  const open = (): boolean => !raw.destroyed && !raw.writableEnded
  const heartbeat = setInterval(() => {
    if (open()) raw.write(': keep-alive\n\n')
  }, SSE_HEARTBEAT_MS)
  let latest: Static<typeof FetchJson> | undefined
  let sentAt = -Infinity
  let pending: ReturnType<typeof setTimeout> | undefined
  const flush = (): void => {
    pending = undefined
    if (latest === undefined || !open()) return
    sentAt = Date.now()
    stream.send(latest)
  }
  const onProgress = (view: FetchView): void => {
    latest = fetchJson(view)
    if (pending !== undefined) return
    const wait = sentAt + FETCH_PROGRESS_MS - Date.now()
    if (wait <= 0) flush()
    else pending = setTimeout(flush, wait)
  }
  try {
    const done = await api.fetchModel(model, onProgress)
    clearTimeout(pending)
    if (open()) stream.send(fetchJson(done))
  } catch (err) {
    clearTimeout(pending)
    const message = untrustedText(describeError(err), 1_000)
    request.log.info({ err: message, model }, 'model fetch failed')
    const reason = err instanceof InferenceError ? { reason: err.reason } : {}
    if (open()) stream.send({ error: { code: 'FETCH_FAILED', message, ...reason } }, 'error')
  } finally {
    clearInterval(heartbeat)
  }
  if (open()) {
    stream.send('[DONE]')
    stream.end()
  }
  return reply
}

/** The parameter each failed OpenAI-compatible request was about, for its error answer. */
const errorParams = new WeakMap<FastifyRequest, string | null>()

/**
 * Route options of the OpenAI-compatible routes: errors get OpenAI's `type` and `param` beside
 * Donghae's `code` and `message` (the official clients read `error.message`, `type`, `param`),
 * and bodies are checked by openai.ts (the schema documents them; its messages name the field).
 */
const openAiRoute = {
  bodyLimit: MAX_COMPLETION_BODY_BYTES,
  validatorCompiler: () => () => true,
  errorHandler(err: Error, request: FastifyRequest): void {
    const modelError =
      err instanceof InferenceError && (err.reason === 'unknown-model' || err.reason === 'not-text-model')
    errorParams.set(request, modelError ? 'model' : paramOfError(err))
    throw err // answered by the server's error handler, then reshaped in onSend
  },
  onSend: async (request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> =>
    reply.statusCode >= 400 && typeof payload === 'string'
      ? openAiErrorBody(payload, reply.statusCode, errorParams.get(request) ?? null)
      : payload,
}

function inferenceRouteTable(api: InferenceApi): RouteOptions[] {
  return [
    {
      method: 'GET',
      url: '/v1/models',
      schema: {
        summary: 'Registered models, in OpenAI\u2019s list format (with Donghae\u2019s registry fields)',
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
      bodyLimit: Math.max(MAX_INFER_JSON_BYTES, MAX_INFER_BINARY_BYTES),
      preParsing: bodyLimits(
        'POST /v1/infer',
        { [JSON_MEDIA_TYPE]: MAX_INFER_JSON_BYTES, [CBOR_MEDIA_TYPE]: MAX_INFER_BINARY_BYTES },
        BIG_TENSOR_HINT,
      ),
      schema: {
        summary: 'Run a model on the network; the answer carries the worker\u2019s signed receipt',
        description: `With \`job\` (signed by the client) the client pays and no token is needed; without it the node signs the job and pays, which needs the operator token.\n\n${INFER_FORMS}`,
        tags: ['inference'],
        security: [{}, ...OPERATOR_SECURITY],
        consumes: [JSON_MEDIA_TYPE, CBOR_MEDIA_TYPE],
        produces: [JSON_MEDIA_TYPE, CBOR_MEDIA_TYPE],
        body: InferBody,
        response: { 200: InferResponse, ...ERROR_RESPONSES },
      },
      ...inferAuth,
      handler: async (request, reply) => {
        const body = request.body as Static<typeof InferBody>
        const inputs = tensorMapFromJson(body.inputs)
        const job = body.job === undefined ? undefined : jobFromJson(body.job)
        const out = await api.infer({ model: body.model, inputs, ...(job === undefined ? {} : { job }) })
        return inferAnswer(reply, out, outputForm(request, body.output_encoding))
      },
    },
    {
      method: 'POST',
      url: '/v1/infer/:model',
      // checked before the body is read, so a stranger's 16 MiB upload is refused unread
      onRequest: requireOperator,
      bodyLimit: MAX_INFER_BINARY_BYTES,
      preParsing: bodyLimits('POST /v1/infer/{model}', { [OCTET_STREAM]: MAX_INFER_BINARY_BYTES }),
      schema: {
        summary: 'Run a single-input model on raw tensor bytes (application/octet-stream); the node pays',
        description: `The body is the input's values, little-endian, row-major (exactly product(dims) × the type's size), up to ${mib(MAX_INFER_BINARY_BYTES)}; the headers say what they are. The answer is as for POST /v1/infer (\`?output_encoding=b64\` for data_b64, \`accept: application/cbor\` for CBOR).\n\n    curl -H "authorization: Bearer $TOKEN" -H 'content-type: application/octet-stream' -H 'x-tensor-dims: 1,3,640,640' -H 'x-tensor-type: float32' --data-binary @image.f32 $NODE/v1/infer/yolo`,
        tags: ['inference'],
        security: OPERATOR_SECURITY,
        params: Type.Object({
          model: Type.String({ minLength: 1, maxLength: 128, description: 'registered name or CID' }),
        }),
        querystring: Type.Object({ output_encoding: Type.Optional(OutputEncoding) }),
        headers: RawInferHeaders,
        produces: [JSON_MEDIA_TYPE, CBOR_MEDIA_TYPE],
        response: { 200: InferResponse, ...ERROR_RESPONSES },
      },
      handler: async (request, reply) => {
        const { model } = request.params as { model: string }
        const query = request.query as { output_encoding?: 'array' | 'b64' }
        const headers = request.headers as Static<typeof RawInferHeaders>
        const bytes = request.body
        if (!(bytes instanceof Uint8Array))
          throw new HttpStatusError(415, `POST /v1/infer/{model} takes the raw tensor bytes as ${OCTET_STREAM}`)
        const found = await findModel(api, model)
        const [spec, ...more] = found.inputs
        if (spec === undefined || more.length > 0)
          throw new InvalidInputError(
            `${found.name} has ${found.inputs.length} inputs (${found.inputs.map((i) => i.name).join(', ')}); raw bytes fit single-input models: POST /v1/infer with JSON or CBOR`,
          )
        const name = headers['x-tensor-name'] ?? spec.name
        if (name !== spec.name)
          throw new InvalidInputError(`${found.name} has no input ${JSON.stringify(name)}; its input is "${spec.name}"`)
        const dims = rawDims(headers['x-tensor-dims'], spec.dims, found.name)
        const tensor = tensorFromBytes(headers['x-tensor-type'] ?? spec.type, dims, bytes, name)
        const out = await api.infer({ model, inputs: { [name]: tensor } })
        return inferAnswer(reply, out, outputForm(request, query.output_encoding))
      },
    },
    {
      method: 'POST',
      url: '/v1/completions',
      ...operatorText,
      ...openAiRoute,
      schema: {
        summary: 'OpenAI-compatible text completion on a language or text model (SSE with `stream: true`)',
        description:
          'The answer\u2019s `usage` counts the model\u2019s tokens; `donghae` has the receipt ids, the worker and the fee. Unknown parameters, values out of range, and OpenAI features this network does not have (n > 1, logprobs, penalties, batched prompts) are 400 with the parameter in `error.param`, before anything is charged.',
        tags: ['inference'],
        security: OPERATOR_SECURITY,
        body: CompletionBody,
        response: ERROR_RESPONSES,
      },
      handler: async (request, reply) => completionRoute(api, request, reply, parseCompletion(request.body), false),
    },
    {
      method: 'POST',
      url: '/v1/chat/completions',
      ...operatorText,
      ...openAiRoute,
      schema: {
        summary: 'OpenAI-compatible chat completion on a language or text model (SSE with `stream: true`)',
        description:
          'The whole chat goes to the model (its chat template renders it); the demo text model, a character model, continues the last message. Unknown parameters, values out of range, and OpenAI features this network does not have (n > 1, tools, images, logprobs, penalties) are 400 with the parameter in `error.param`, before anything is charged.',
        tags: ['inference'],
        security: OPERATOR_SECURITY,
        body: ChatBody,
        response: ERROR_RESPONSES,
      },
      handler: async (request, reply) => completionRoute(api, request, reply, parseChatCompletion(request.body), true),
    },
    {
      method: 'POST',
      url: '/chat',
      ...operatorText,
      schema: {
        summary: 'AI-Block\u2019s chat route: a MoE family\u2019s experts with use_moe, else the text model',
        description:
          'With `use_moe: true` the node\u2019s experts service answers (as POST /v1/experts/chat): `model` names the MoE family (default: the first on chain), `top_k_experts` the experts per token, `use_distributed: false` keeps to this node\u2019s own copies; the answer adds `experts` (per layer: the experts used, their tokens and the nodes that served them), `masked` and `usage`. 404 when the node has no experts service or no family is on chain. Otherwise the completion path answers (always distributed): without `model`, the first text model (else the first language model).',
        tags: ['inference'],
        security: OPERATOR_SECURITY,
        body: AiBlockChatBody,
      },
      handler: async (request, reply) => {
        const body = request.body as Static<typeof AiBlockChatBody>
        if (body.use_moe === true) return moeChatAnswer(request, reply, body)
        const models = await api.models()
        const model = body.model ?? (models.find((m) => m.kind === 'text') ?? models.find((m) => m.kind === 'lm'))?.name
        if (model === undefined) throw new InferenceError('unknown-model', 'no text model is registered')
        const out = await api.complete({ model, prompt: body.prompt, maxTokens: body.max_tokens ?? 32 })
        return { response: out.text, model, distributed: true, donghae: donghaeExtra(out) }
      },
    },
    {
      method: 'GET',
      url: '/v1/jobs/:jobId/settlement',
      schema: {
        summary: 'Where a job\u2019s receipt was settled, with its Merkle inclusion proof in the batch',
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
        summary: 'This gateway\u2019s job counters and latency, and its worker\u2019s load',
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
              { description: 'this node\u2019s worker: jobs running now and jobs waiting for a slot' },
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
                { description: 'models this node\u2019s worker holds back after they broke a sandbox limit' },
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
      url: '/v1/inference/fetches',
      schema: {
        summary: 'Model files this node is fetching from its peers, or fetched recently (newest first)',
        description:
          'Each fetch: bytes in the content store so far and in all, the blocks each peer delivered, and its state. POST /v1/operator/models/{model}/fetch starts one; GET /v1/events?types=model.fetch follows them.',
        tags: ['inference'],
        response: { 200: Type.Object({ fetches: Type.Array(FetchJson) }), ...ERROR_RESPONSES },
      },
      handler: async () => ({ fetches: api.fetches().map(fetchJson) }),
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
        summary: 'Publish an ONNX model: store it, register it on chain under the node\u2019s key',
        tags: ['operator'],
        security: OPERATOR_SECURITY,
        body: PublishBody,
        response: { 202: Type.Object({ cid: Type.String(), txHash: Type.String() }), ...ERROR_RESPONSES },
      },
      handler: async (request, reply) => {
        const body = request.body as Static<typeof PublishBody>
        if (body.dir !== undefined && (body.file !== undefined || body.files !== undefined))
          throw new InvalidInputError('give either dir (a folder on the node) or file and files, not both')
        if (body.dir !== undefined && !isAbsolute(body.dir))
          throw new InvalidInputError('body/dir must be an absolute path on the node')
        const file = Buffer.from(body.file ?? '', 'base64')
        if (body.dir === undefined && file.length === 0)
          throw new InvalidInputError('body/file must be the ONNX file as base64 (or give dir for a language model)')
        const files =
          body.files === undefined
            ? undefined
            : Object.fromEntries(
                Object.entries(body.files).map(([name, b64]) => [name, new Uint8Array(Buffer.from(b64, 'base64'))]),
              )
        const out = await api.publishModel({
          name: body.name,
          price: BigInt(body.price),
          version: body.version ?? '1',
          kind: body.kind ?? (body.dir !== undefined || body.files !== undefined ? 'lm' : 'tensor'),
          file: new Uint8Array(file),
          ...(body.promptPrice === undefined ? {} : { promptPrice: BigInt(body.promptPrice) }),
          ...(body.codec === undefined ? {} : { codec: new Uint8Array(Buffer.from(body.codec, 'base64')) }),
          ...(files === undefined ? {} : { files }),
          ...(body.dir === undefined ? {} : { dir: body.dir }),
        })
        return reply.code(202).send({ cid: out.cid, txHash: toHex(out.txHash) })
      },
    },
    {
      method: 'POST',
      url: '/v1/operator/models/:model/fetch',
      onRequest: requireOperator,
      schema: {
        summary:
          'Fetch a registered model\u2019s files into this node\u2019s content store from its peers (SSE progress)',
        description:
          'Starts the fetch, or joins the one running (the files fetched so far stay after a failure: a new fetch resumes). The answer is text/event-stream: `data: {fetch}` (as GET /v1/inference/fetches lists them) as it progresses, at most 10 a second, the finished fetch (state done), then `data: [DONE]`; a failure is `event: error` with `{ "error": { code, message } }`, then `[DONE]`. An unknown model is 404 before the stream opens. Closing the stream does not stop the fetch.\n\n    curl -N -X POST -H "authorization: Bearer $TOKEN" $NODE/v1/operator/models/moby-lm/fetch',
        tags: ['operator'],
        security: OPERATOR_SECURITY,
        params: Type.Object({
          model: Type.String({ minLength: 1, maxLength: 128, description: 'registered name or CID' }),
        }),
        produces: ['text/event-stream'],
        response: ERROR_RESPONSES,
      },
      handler: async (request, reply) => fetchRoute(api, request, reply),
    },
  ]
}

export const inferenceRoutes: FastifyPluginAsync<{ inference: InferenceApi }> = async (app, { inference }) => {
  // Scoped to these routes (the plugin is encapsulated); each route's preParsing hook says which
  // types it takes and how big, so a parser only ever sees a body within its route's limit.
  app.addContentTypeParser(CBOR_MEDIA_TYPE, { parseAs: 'buffer' }, (_request, body, done) => {
    try {
      done(null, decodeCbor(body as Buffer))
    } catch (err) {
      done(err as Error, undefined)
    }
  })
  app.addContentTypeParser(OCTET_STREAM, { parseAs: 'buffer' }, (_request, body, done) => done(null, body))
  for (const route of inferenceRouteTable(inference)) app.route(route)
}
