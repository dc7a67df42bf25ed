/**
 * OpenAI compatibility of POST /v1/chat/completions and /v1/completions: the request bodies the
 * official clients send, checked field by field before anything is charged, and the error shape
 * they read.
 *
 * Every parameter is known or refused: an unknown one is `400 unknown parameter "foo"`, a value
 * out of range is a 400 naming the field, and OpenAI parameters this network cannot honour are
 * accepted only with the value that means "off" (`frequency_penalty: 0`, `logprobs: false`,
 * `n: 1`, `tools: []` ...). `null` means "not given", as in OpenAI's API. Errors carry OpenAI's
 * `type` and `param` next to Donghae's `code` and `message` (see `openAiErrorBody`).
 */
import { InvalidInputError } from '../core/errors.ts'
import { GENERATION_LIMITS } from '../inference/lm/types.ts'
import type { ChatMessage, CompletionRequest } from './inference-api.ts'

/** A client mistake in one parameter; `param` is its path (`temperature`, `messages[2].content`). */
export class ParamError extends InvalidInputError {
  static override readonly code: string = 'BAD_PARAMETER'
  override name = 'ParamError'
  readonly param: string

  constructor(param: string, message: string) {
    super(message, { details: { param } })
    this.param = param
  }
}

/** Limits of the OpenAI-compatible routes. */
export const OPENAI_LIMITS = Object.freeze({
  /** Messages in one chat. */
  maxMessages: 256,
  /** Smallest `top_p` the sampler takes (thousandths); a lower one, 0 included, is raised to it: the most likely token only. */
  minTopP: 0.001,
  maxTemperature: GENERATION_LIMITS.maxTemperatureMilli / 1000,
  maxTokens: GENERATION_LIMITS.maxTokens,
  maxTopK: GENERATION_LIMITS.maxTopK,
  maxStop: GENERATION_LIMITS.maxStop,
  maxStopBytes: GENERATION_LIMITS.maxStopBytes,
})

/** A checked completion request, before the model is looked up. */
export interface OpenAiCompletion extends CompletionRequest {
  stream: boolean
  /** `stream_options.include_usage`: a last chunk with the usage and no choices. */
  includeUsage: boolean
}

type Body = Record<string, unknown>

const isObject = (v: unknown): v is Body => v !== null && typeof v === 'object' && !Array.isArray(v)
const show = (v: unknown): string => {
  const text = JSON.stringify(v) ?? String(v)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

/** Parameters accepted, but only with the value that changes nothing. */
const ONLY_OFF: Readonly<Record<string, { ok: (v: unknown) => boolean; off: string }>> = {
  frequency_penalty: { ok: (v) => v === 0, off: '0' },
  presence_penalty: { ok: (v) => v === 0, off: '0' },
  logit_bias: { ok: (v) => isObject(v) && Object.keys(v).length === 0, off: '{}' },
  top_logprobs: { ok: (v) => v === 0, off: '0' },
  response_format: {
    ok: (v) => isObject(v) && v.type === 'text' && Object.keys(v).length === 1,
    off: '{"type":"text"}',
  },
  tools: { ok: (v) => Array.isArray(v) && v.length === 0, off: '[] (no tool calling)' },
  tool_choice: { ok: (v) => v === 'none', off: '"none" (no tool calling)' },
  functions: { ok: (v) => Array.isArray(v) && v.length === 0, off: '[] (no function calling)' },
  function_call: { ok: (v) => v === 'none', off: '"none" (no function calling)' },
  store: { ok: (v) => v === false, off: 'false (nothing is stored)' },
  modalities: { ok: (v) => Array.isArray(v) && v.length === 1 && v[0] === 'text', off: '["text"]' },
  echo: { ok: (v) => v === false, off: 'false' },
  best_of: { ok: (v) => v === 1, off: '1' },
  suffix: { ok: (v) => v === '', off: '"" (no insertion)' },
}

/** Parameters accepted and ignored whatever their value (of the right type). */
const IGNORED: Readonly<Record<string, (v: unknown) => boolean>> = {
  user: (v) => typeof v === 'string',
  safety_identifier: (v) => typeof v === 'string',
  prompt_cache_key: (v) => typeof v === 'string',
  metadata: isObject,
  service_tier: (v) => typeof v === 'string',
  parallel_tool_calls: (v) => typeof v === 'boolean',
}

const SAMPLING = ['max_tokens', 'temperature', 'top_p', 'top_k', 'seed', 'stop', 'n', 'stream', 'stream_options']
const CHAT_PARAMS = new Set([
  'model',
  'messages',
  'max_completion_tokens',
  'logprobs',
  ...SAMPLING,
  ...Object.keys(ONLY_OFF).filter((k) => !['echo', 'best_of', 'suffix'].includes(k)),
  ...Object.keys(IGNORED),
])
const COMPLETION_PARAMS = new Set([
  'model',
  'prompt',
  'logprobs',
  'echo',
  'best_of',
  'suffix',
  'frequency_penalty',
  'presence_penalty',
  'logit_bias',
  ...SAMPLING,
  ...['user', 'safety_identifier', 'prompt_cache_key', 'metadata', 'service_tier'],
])

function number(
  body: Body,
  key: string,
  range: { min: number; max: number; integer?: boolean; minExclusive?: boolean },
): number | undefined {
  const v = body[key]
  if (v === undefined) return undefined
  const kind = range.integer === true ? 'an integer' : 'a number'
  if (typeof v !== 'number' || !Number.isFinite(v) || (range.integer === true && !Number.isInteger(v)))
    throw new ParamError(key, `${key} must be ${kind} from ${range.min} to ${range.max}, got ${show(v)}`)
  if (v < range.min || v > range.max)
    throw new ParamError(key, `${key} must be ${kind} from ${range.min} to ${range.max}, got ${v}`)
  return v
}

function stopList(v: unknown): string[] | undefined {
  if (v === undefined) return undefined
  const list = typeof v === 'string' ? [v] : v
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string'))
    throw new ParamError('stop', `stop must be a string or an array of at most ${OPENAI_LIMITS.maxStop} strings`)
  if (list.length > OPENAI_LIMITS.maxStop)
    throw new ParamError('stop', `stop takes at most ${OPENAI_LIMITS.maxStop} strings, got ${list.length}`)
  const encoder = new TextEncoder()
  list.forEach((s: string, i) => {
    const at = typeof v === 'string' ? 'stop' : `stop[${i}]`
    if (s.length === 0 || s.includes('\0')) throw new ParamError(at, `${at} must be non-empty, without NUL characters`)
    if (encoder.encode(s).length > OPENAI_LIMITS.maxStopBytes)
      throw new ParamError(at, `${at} is longer than ${OPENAI_LIMITS.maxStopBytes} bytes (UTF-8)`)
  })
  return list.length === 0 ? undefined : (list as string[])
}

/** `null` is "not given" in OpenAI's API: those keys are dropped (a shallow copy; the body is not changed). */
function withoutNulls(body: Body): Body {
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== null))
}

function checkKnown(body: Body, known: ReadonlySet<string>, route: string): void {
  for (const key of Object.keys(body))
    if (!known.has(key))
      throw new ParamError(
        key,
        `unknown parameter ${JSON.stringify(key)}; ${route} takes ${[...known].filter((k) => !(k in IGNORED)).join(', ')}`,
      )
  for (const [key, rule] of Object.entries(ONLY_OFF))
    if (body[key] !== undefined && !rule.ok(body[key]))
      throw new ParamError(key, `${key} is not supported: only ${rule.off} is accepted, got ${show(body[key])}`)
  for (const [key, ok] of Object.entries(IGNORED))
    if (body[key] !== undefined && !ok(body[key]))
      throw new ParamError(key, `${key} has the wrong type: ${show(body[key])}`)
}

function common(body: Body, chat: boolean): Omit<OpenAiCompletion, 'prompt' | 'messages'> {
  if (typeof body.model !== 'string' || body.model.length === 0 || body.model.length > 128)
    throw new ParamError('model', 'model must be the name or CID of a registered model (GET /v1/models lists them)')
  const maxTokensRange = { min: 1, max: OPENAI_LIMITS.maxTokens, integer: true }
  let maxTokens = number(body, 'max_tokens', maxTokensRange)
  if (chat) {
    const newer = number(body, 'max_completion_tokens', maxTokensRange)
    if (maxTokens !== undefined && newer !== undefined && maxTokens !== newer)
      throw new ParamError(
        'max_completion_tokens',
        'give max_completion_tokens or max_tokens, not two different values',
      )
    maxTokens ??= newer
  }
  const temperature = number(body, 'temperature', { min: 0, max: OPENAI_LIMITS.maxTemperature })
  const topP = number(body, 'top_p', { min: 0, max: 1 })
  const topK = number(body, 'top_k', { min: 0, max: OPENAI_LIMITS.maxTopK, integer: true })
  const seed = number(body, 'seed', { min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER, integer: true })
  const n = number(body, 'n', { min: 1, max: 128, integer: true })
  if (n !== undefined && n !== 1) throw new ParamError('n', `n must be 1: one choice per request (got ${n})`)
  if (body.logprobs !== undefined && body.logprobs !== false && body.logprobs !== 0)
    throw new ParamError('logprobs', `logprobs is not supported: only ${chat ? 'false' : '0'} is accepted`)
  if (body.stream !== undefined && typeof body.stream !== 'boolean')
    throw new ParamError('stream', 'stream must be true or false')
  let includeUsage = false
  if (body.stream_options !== undefined) {
    if (!isObject(body.stream_options))
      throw new ParamError('stream_options', 'stream_options must be an object { include_usage }')
    for (const [key, value] of Object.entries(body.stream_options)) {
      if (key !== 'include_usage' && key !== 'include_obfuscation')
        throw new ParamError(`stream_options.${key}`, `unknown parameter "stream_options.${key}"`)
      if (value !== null && typeof value !== 'boolean')
        throw new ParamError(`stream_options.${key}`, `stream_options.${key} must be true or false`)
    }
    includeUsage = body.stream_options.include_usage === true
  }
  const stop = stopList(body.stop)
  return {
    model: body.model,
    stream: body.stream === true,
    includeUsage,
    ...(maxTokens === undefined ? {} : { maxTokens }),
    ...(temperature === undefined ? {} : { temperature }),
    // 0 asks for the most likely token only: the smallest nucleus the sampler takes does that
    ...(topP === undefined ? {} : { topP: Math.max(topP, OPENAI_LIMITS.minTopP) }),
    ...(topK === undefined ? {} : { topK }),
    ...(seed === undefined ? {} : { seed: BigInt(seed) }),
    ...(stop === undefined ? {} : { stop }),
  }
}

function messageContent(raw: unknown, at: string, role: string): string {
  if (raw === undefined || raw === null) {
    if (role === 'assistant') return ''
    throw new ParamError(`${at}.content`, `${at}.content is missing`)
  }
  if (typeof raw === 'string') return raw
  if (!Array.isArray(raw))
    throw new ParamError(
      `${at}.content`,
      `${at}.content must be a string or an array of {"type":"text","text":...} parts`,
    )
  return raw
    .map((part: unknown, j) => {
      const where = `${at}.content[${j}]`
      if (!isObject(part) || typeof part.type !== 'string')
        throw new ParamError(where, `${where} must be a part {"type":"text","text":...}`)
      if (part.type !== 'text')
        throw new ParamError(
          where,
          `${where}: content parts of type ${show(part.type)} are not supported; only "text" (this network runs text models)`,
        )
      if (typeof part.text !== 'string') throw new ParamError(`${where}.text`, `${where}.text must be a string`)
      return part.text
    })
    .join('\n')
}

const ROLES = ['system', 'developer', 'user', 'assistant']

function chatMessages(raw: unknown): ChatMessage[] {
  if (!Array.isArray(raw) || raw.length === 0)
    throw new ParamError('messages', 'messages must be a non-empty array of { role, content }')
  if (raw.length > OPENAI_LIMITS.maxMessages)
    throw new ParamError('messages', `at most ${OPENAI_LIMITS.maxMessages} messages, got ${raw.length}`)
  return raw.map((m: unknown, i) => {
    const at = `messages[${i}]`
    if (!isObject(m)) throw new ParamError(at, `${at} must be an object { role, content }`)
    const role = m.role
    if (role === 'tool' || role === 'function')
      throw new ParamError(`${at}.role`, `${at}: ${role} messages are not supported (no tool calling)`)
    if (typeof role !== 'string' || !ROLES.includes(role))
      throw new ParamError(`${at}.role`, `${at}.role must be one of ${ROLES.join(', ')}, got ${show(role)}`)
    for (const [key, value] of Object.entries(m)) {
      if (key === 'role' || key === 'content' || value === null) continue
      if (key === 'name') {
        if (typeof value !== 'string') throw new ParamError(`${at}.name`, `${at}.name must be a string`)
        continue // accepted and ignored
      }
      if (key === 'tool_calls' && Array.isArray(value) && value.length === 0) continue
      throw new ParamError(`${at}.${key}`, `unknown parameter "${at}.${key}"`)
    }
    return { role: role === 'developer' ? 'system' : role, content: messageContent(m.content, at, role) }
  })
}

function bodyObject(body: unknown): Body {
  if (!isObject(body)) throw new ParamError('body', 'the body must be a JSON object')
  return withoutNulls(body)
}

/** Checks a POST /v1/chat/completions body; throws ParamError naming the field. */
export function parseChatCompletion(raw: unknown): OpenAiCompletion {
  const body = bodyObject(raw)
  checkKnown(body, CHAT_PARAMS, 'POST /v1/chat/completions')
  const messages = chatMessages(body.messages)
  return { ...common(body, true), messages }
}

/** Checks a POST /v1/completions body; throws ParamError naming the field. */
export function parseCompletion(raw: unknown): OpenAiCompletion {
  const body = bodyObject(raw)
  checkKnown(body, COMPLETION_PARAMS, 'POST /v1/completions')
  const p = body.prompt
  let prompt: string
  if (typeof p === 'string') prompt = p
  else if (Array.isArray(p) && p.length === 1 && typeof p[0] === 'string') prompt = p[0]
  else if (Array.isArray(p) && p.length > 1 && p.every((x) => typeof x === 'string'))
    throw new ParamError(
      'prompt',
      `batches of prompts are not supported: send one prompt per request (got ${p.length})`,
    )
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'number' || Array.isArray(x)))
    throw new ParamError('prompt', 'token-id prompts are not supported: send the prompt as text')
  else throw new ParamError('prompt', 'prompt must be a string')
  return { ...common(body, false), prompt }
}

/** OpenAI's error `type` for an HTTP status. */
export function openAiErrorType(status: number): string {
  if (status === 401) return 'authentication_error'
  if (status === 402) return 'insufficient_quota'
  if (status === 403) return 'permission_error'
  if (status === 429) return 'rate_limit_error'
  if (status >= 500) return 'server_error'
  return 'invalid_request_error'
}

/** The parameter an error is about: a ParamError's, or the field of a schema validation error. */
export function paramOfError(err: unknown): string | null {
  if (err instanceof ParamError) return err.param
  const validation = (err as { validation?: Array<{ instancePath?: string; params?: Record<string, unknown> }> })
    .validation
  const first = validation?.[0]
  if (first === undefined) return null
  const missing = first.params?.missingProperty ?? first.params?.additionalProperty
  const path = (first.instancePath ?? '')
    .split('/')
    .filter((p) => p !== '')
    .map((p, i) => (/^[0-9]+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`))
    .join('')
  const tail = typeof missing === 'string' ? (path === '' ? missing : `${path}.${missing}`) : path
  return tail === '' ? null : tail
}

/**
 * Adds OpenAI's `type` and `param` to a Donghae error answer (a serialized `{ "error": { code,
 * message, reason? } }`); anything else is returned as it is.
 */
export function openAiErrorBody(payload: string, status: number, param: string | null): string {
  let body: unknown
  try {
    body = JSON.parse(payload)
  } catch {
    return payload
  }
  if (!isObject(body) || !isObject(body.error)) return payload
  return JSON.stringify({ error: { ...body.error, type: openAiErrorType(status), param } })
}
