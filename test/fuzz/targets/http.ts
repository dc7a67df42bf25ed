/**
 * The HTTP API, schema-driven: the server runs in process (app.inject, no socket) over a memory
 * chain and the fake inference and experts services, and the requests come from its own OpenAPI
 * document (GET /docs/json): every path and method, path and query parameters and JSON bodies
 * generated from their schemas, then broken (a required field dropped, a wrong type, an extra
 * field, huge numbers, odd strings). An input is a request as text:
 *
 *   METHOD /path?query\n
 *   header: value\n …
 *   \n
 *   body bytes
 *
 * Oracle: every answer is a status below 500 (a 502/503/504 is allowed only with a typed error
 * code: the fakes report an unavailable network that way; 500 INTERNAL never), and every 4xx
 * carries the JSON error body `{ error: { code, message } }`.
 */
import type { FastifyInstance } from 'fastify'
import { createApiServer } from '../../../src/api/server.ts'
import { encodeCbor } from '../../../src/api/cbor.ts'
import { fakeInference } from '../../../src/api/fake-inference.ts'
import { fakeExperts } from '../../../src/api/fake-experts.ts'
import { encodeTx, signTx } from '../../../src/chain/tx.ts'
import { Ed25519KeyPair } from '../../../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../../../src/identity/did-key.ts'
import { MemoryChain } from '../../helpers/memory-chain.ts'
import { makeGenesis, type Actor } from '../../helpers/chain.ts'
import { OracleViolation, type FuzzTarget, type Rng } from '../harness.ts'

const TOKEN = 'fuzz-operator-token-0123456789abcdef'
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'] as const
type Method = (typeof METHODS)[number]
const fixedActor = (n: number): Actor => {
  const key = Ed25519KeyPair.fromSeed(new Uint8Array(32).fill(n))
  return { key, did: didFromEd25519PublicKey(key.publicKey) }
}
const validator = fixedActor(11)
const alice = fixedActor(12)
const genesis = makeGenesis([validator], [[alice, 1_000_000n]])
/** Paths that stream until the client goes away (server-sent events): not a request/answer. */
const STREAMING = /\/events\b|\/stream\b/

interface Operation {
  method: Method
  path: string
  parameters: Array<{ name: string; in: string; required?: boolean; schema?: Schema }>
  body?: Schema
}

interface Schema {
  type?: string | string[]
  properties?: Record<string, Schema>
  required?: string[]
  items?: Schema
  enum?: unknown[]
  const?: unknown
  anyOf?: Schema[]
  oneOf?: Schema[]
  allOf?: Schema[]
  minimum?: number
  maximum?: number
  minLength?: number
  maxLength?: number
  minItems?: number
  maxItems?: number
  pattern?: string
  additionalProperties?: boolean | Schema
}

let app: FastifyInstance | undefined
let operations: Operation[] = []
let served = 0

async function startApp(): Promise<FastifyInstance> {
  const server = createApiServer({
    chain: new MemoryChain({ genesis, validators: [validator], moniker: 'fuzz-node' }),
    inference: fakeInference(),
    experts: fakeExperts(),
    operatorToken: TOKEN,
    rateLimit: { max: 1e9, timeWindowMs: 60_000 },
  })
  await server.ready()
  return server
}

async function loadOperations(server: FastifyInstance): Promise<Operation[]> {
  const doc = (await server.inject({ method: 'GET', url: '/docs/json' })).json<{
    paths: Record<
      string,
      Record<
        string,
        { parameters?: Operation['parameters']; requestBody?: { content?: Record<string, { schema?: Schema }> } }
      >
    >
  }>()
  const ops: Operation[] = []
  for (const [path, methods] of Object.entries(doc.paths)) {
    if (STREAMING.test(path)) continue
    for (const [m, op] of Object.entries(methods)) {
      const method = m.toUpperCase() as Method
      if (!METHODS.includes(method)) continue
      const body = op.requestBody?.content?.['application/json']?.schema
      ops.push({ method, path, parameters: op.parameters ?? [], ...(body === undefined ? {} : { body }) })
    }
  }
  return ops
}

// ---- schema-driven values ---------------------------------------------------------------------

const pick = <T>(rng: Rng, items: readonly T[]): T => items[rng.int(0, items.length - 1)] as T
const ODD_STRINGS = [
  '',
  ' ',
  '0',
  '-1',
  'null',
  'did:key:z6Mk',
  '0x',
  'ä',
  '\u0000',
  '\u202e',
  '../..',
  '%00',
  'a'.repeat(300),
]

function sampleString(rng: Rng, s: Schema): string {
  if (s.pattern?.includes('0-9a-f') === true) return 'ab'.repeat(rng.int(0, 40))
  if (rng.next() < 0.3) return pick(rng, [alice.did, validator.did, genesis.chainId, 'tiny', '1', '100'])
  const len = rng.int(s.minLength ?? 0, Math.min(s.maxLength ?? 24, 64))
  return Array.from({ length: len }, () => String.fromCharCode(rng.int(0x61, 0x7a))).join('')
}

/** A value for `s`; with probability `breakP` at each level, one that breaks it. */
function sample(rng: Rng, s: Schema | undefined, depth: number, breakP: number): unknown {
  if (s === undefined || depth > 6) return null
  if (rng.next() < breakP) return pick(rng, [null, true, -1, 1e308, 2 ** 53, '', ODD_STRINGS[rng.int(0, 12)], [], {}])
  if (s.const !== undefined) return s.const
  if (s.enum !== undefined && s.enum.length > 0) return pick(rng, s.enum)
  const alternatives = s.anyOf ?? s.oneOf
  if (alternatives !== undefined && alternatives.length > 0)
    return sample(rng, pick(rng, alternatives), depth + 1, breakP)
  if (s.allOf !== undefined && s.allOf.length > 0) return sample(rng, s.allOf[0], depth + 1, breakP)
  const type = Array.isArray(s.type) ? pick(rng, s.type) : s.type
  switch (type) {
    case 'string':
      return sampleString(rng, s)
    case 'integer':
      return rng.int(Math.max(s.minimum ?? 0, -1e6), Math.min(s.maximum ?? 1000, 1e9))
    case 'number':
      return rng.next() * Math.min(s.maximum ?? 1000, 1e9)
    case 'boolean':
      return rng.next() < 0.5
    case 'null':
      return null
    case 'array':
      return Array.from({ length: rng.int(s.minItems ?? 0, Math.min(s.maxItems ?? 3, 4)) }, () =>
        sample(rng, s.items, depth + 1, breakP),
      )
    default: {
      const out: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(s.properties ?? {})) {
        const required = s.required?.includes(k) === true
        if (required ? rng.next() < breakP : rng.next() < 0.5) continue
        out[k] = sample(rng, v, depth + 1, breakP)
      }
      if (rng.next() < breakP) out[pick(rng, ['extra', '__proto__', 'constructor'])] = 1
      return out
    }
  }
}

function requestFor(rng: Rng, op: Operation): Uint8Array {
  const breakP = pick(rng, [0, 0.05, 0.2])
  let path = op.path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const p = op.parameters.find((x) => x.name === name && x.in === 'path')
    const v = sample(rng, p?.schema ?? { type: 'string' }, 0, breakP)
    return encodeURIComponent(typeof v === 'string' ? v : JSON.stringify(v))
  })
  const query = op.parameters
    .filter((p) => p.in === 'query' && (p.required === true || rng.next() < 0.5))
    .map((p) => `${encodeURIComponent(p.name)}=${encodeURIComponent(String(sample(rng, p.schema, 0, breakP)))}`)
  if (query.length > 0) path += `?${query.join('&')}`
  const headers = ['host: 127.0.0.1']
  if (rng.next() < 0.7) headers.push(`authorization: Bearer ${rng.next() < 0.9 ? TOKEN : 'wrong'}`)
  let body: Uint8Array = new Uint8Array(0)
  if (op.body !== undefined || (op.method !== 'GET' && op.method !== 'HEAD' && rng.next() < 0.3)) {
    const value = sample(rng, op.body, 0, breakP)
    // the same value as CBOR now and then: the inference routes take application/cbor bodies
    const cbor = rng.next() < 0.25 ? cborOf(value) : undefined
    headers.push(`content-type: application/${cbor === undefined ? 'json' : 'cbor'}`)
    body = cbor ?? new TextEncoder().encode(JSON.stringify(value) ?? 'null')
  }
  const head = new TextEncoder().encode(`${op.method} ${path}\n${headers.join('\n')}\n\n`)
  const out = new Uint8Array(head.length + body.length)
  out.set(head)
  out.set(body, head.length)
  return out
}

function cborOf(value: unknown): Uint8Array | undefined {
  try {
    return encodeCbor(value)
  } catch {
    return undefined
  }
}

/** Seeds: one valid-looking request per operation, plus a signed transaction submitted. */
function seedRequests(): Uint8Array[] {
  const rng = { seed: 1, next: mulberry(1), int: (a: number, b: number) => a + Math.floor(rng.next() * (b - a + 1)) }
  const out = operations.map((op) => requestFor(rng, op))
  const tx = signTx(alice.key, {
    chainId: genesis.chainId,
    nonce: 0n,
    fee: 1n,
    kind: 'bank.transfer',
    body: { to: validator.did, amount: 1n },
  })
  out.push(
    new TextEncoder().encode(
      `POST /v1/tx\nhost: 127.0.0.1\ncontent-type: application/json\n\n${JSON.stringify({ tx: Buffer.from(encodeTx(tx)).toString('hex') })}`,
    ),
  )
  return out
}

function mulberry(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// ---- the wire form of an input ----------------------------------------------------------------

interface ParsedRequest {
  method: Method
  url: string
  headers: Record<string, string>
  body: Buffer
}

const TOKEN_CHARS = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

export function parseRequest(input: Uint8Array): ParsedRequest {
  const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength)
  const split = buf.indexOf('\n\n')
  const head = (split === -1 ? buf : buf.subarray(0, split)).toString('latin1').split('\n')
  const body = split === -1 ? Buffer.alloc(0) : buf.subarray(split + 2)
  const [m = 'GET', rawUrl = '/'] = (head[0] ?? '').split(' ')
  const method = METHODS.find((x) => x === m.toUpperCase()) ?? 'GET'
  // what an HTTP parser would let through to the router: a path starting with '/', no spaces or
  // controls, and no backslash (a client's URL parser reads `/\x` as `//x`, another host)
  // eslint-disable-next-line no-control-regex
  const url = `/${rawUrl.replace(/^[/\\]+/, '').replace(/[\u0000-\u0020\u007f-\uffff\\]/g, (c) => encodeURIComponent(c))}`
  const headers: Record<string, string> = {}
  for (const line of head.slice(1)) {
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    const name = line.slice(0, colon).trim().toLowerCase()
    // what a header value may hold: no control characters but tab
    const CONTROLS = /[\u0000-\u0008\u000a-\u001f\u007f]/g // eslint-disable-line no-control-regex
    const value = line
      .slice(colon + 1)
      .trim()
      .replace(CONTROLS, '')
    if (TOKEN_CHARS.test(name) && name !== 'content-length' && name !== 'transfer-encoding') headers[name] = value
  }
  headers.host ??= '127.0.0.1'
  return { method, url, headers, body }
}

async function runRequest(input: Uint8Array): Promise<string> {
  if (app === undefined) throw new Error('the http target is not open')
  // The fakes record every call: a fresh server now and then keeps a long run's memory flat.
  if (++served % 5_000 === 0) {
    await app.close()
    app = await startApp()
  }
  const req = parseRequest(input)
  const res = await app.inject({
    method: req.method,
    url: req.url,
    headers: req.headers,
    ...(req.body.length > 0 && req.method !== 'GET' && req.method !== 'HEAD' ? { payload: req.body } : {}),
  })
  const route = (req.url.split('?')[0] ?? '').split('/').slice(0, 4).join('/')
  if (res.statusCode >= 400) {
    let code: unknown
    try {
      code = (res.json<{ error?: { code?: unknown; message?: unknown } }>().error ?? {}).code
    } catch {
      code = undefined
    }
    if (req.method !== 'HEAD' && typeof code !== 'string')
      throw new OracleViolation(
        `${req.method} ${req.url}: ${res.statusCode} without the JSON error body: ${res.body.slice(0, 200)}`,
      )
    if (res.statusCode === 500 || code === 'INTERNAL')
      throw new OracleViolation(`${req.method} ${req.url}: 500 ${res.body.slice(0, 300)}`)
    return `${req.method} ${route.slice(0, 40)} ${res.statusCode} ${String(code)}`
  }
  return `${req.method} ${route.slice(0, 40)} ${res.statusCode}`
}

export const httpTarget: FuzzTarget = {
  name: 'http',
  description: 'every HTTP route from the OpenAPI document (app.inject over a memory chain and the fakes)',
  async open() {
    app ??= await startApp()
    if (operations.length === 0) operations = await loadOperations(app)
  },
  async close() {
    await app?.close()
    app = undefined
  },
  async seeds() {
    await httpTarget.open?.()
    return seedRequests()
  },
  generate: (rng) => requestFor(rng, pick(rng, operations)),
  run: runRequest,
  dictionary: [
    'GET ',
    'POST ',
    'DELETE ',
    '/v1/',
    '/v1/operator/',
    '?limit=',
    '%',
    '%00',
    '..',
    'content-type: application/cbor\n',
    'content-type: application/octet-stream\n',
    'content-type: text/plain\n',
    'authorization: Bearer ',
    'accept: text/event-stream\n',
    '{}',
    '[]',
    'null',
    '"',
    '1e309',
    '-0',
  ],
  timeoutMs: 2_000,
  maxInputBytes: 32 * 1024,
}
