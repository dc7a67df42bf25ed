// The inference routes over the real server code (createApiServer, content-type parsers, limits,
// error handler) and a test double of InferenceApi (fake-inference.ts): the tensor forms (JSON
// arrays, data_b64, CBOR, raw octet-stream) and the OpenAI-compatible completion bodies.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { FastifyInstance } from 'fastify'
import { generateApiToken } from './auth.ts'
import { decodeCbor, encodeCbor } from './cbor.ts'
import { fakeInference, type FakeInference } from './fake-inference.ts'
import { createApiServer } from './server.ts'
import { COMPLETION_STREAM_OPEN_MS, MAX_INFER_BINARY_BYTES, MAX_INFER_JSON_BYTES } from './constants.ts'
import type { ErrorJson } from './schemas.ts'
import { DEFAULT_TENSOR_LIMITS, type Tensor } from '../inference/tensor.ts'
import { actor, makeGenesis } from '../../test/helpers/chain.ts'
import { MemoryChain } from '../../test/helpers/memory-chain.ts'

const TOKEN = generateApiToken()
const auth = { authorization: `Bearer ${TOKEN}` }
const validator = actor()

async function withApp(fn: (app: FastifyInstance, api: FakeInference) => Promise<void>): Promise<void> {
  const api = fakeInference()
  const app = createApiServer({
    chain: new MemoryChain({ genesis: makeGenesis([validator], []), validators: [validator] }),
    inference: api,
    operatorToken: TOKEN,
  })
  try {
    await fn(app, api)
  } finally {
    await app.close()
  }
}

type OpenAiError = ErrorJson & { error: { type?: string; param?: string | null } }

/** Float32 values 0, 1/7, 2/7 … as little-endian bytes. */
function floats(count: number): { values: Float32Array; bytes: Buffer } {
  const values = Float32Array.from({ length: count }, (_, i) => (i % 1000) / 7)
  return { values, bytes: Buffer.from(values.buffer) }
}

const post = (app: FastifyInstance, url: string, payload: unknown, headers: Record<string, string> = auth) =>
  app.inject({ method: 'POST', url, headers, payload: payload as Record<string, unknown> })

// ---- tensors ----------------------------------------------------------------------------------

test('JSON number arrays: a 1×3×64×96 float32 tensor (~0.3 MB of JSON, 413 before) is accepted; JSON bodies over 8 MiB are 413 naming the binary forms', async () => {
  await withApp(async (app, api) => {
    const { values } = floats(3 * 64 * 96)
    const payload = {
      model: 'detector',
      inputs: { images: { dims: [1, 3, 64, 96], type: 'float32', data: [...values] } },
    }
    const size = JSON.stringify(payload).length
    assert.ok(size > 256 * 1024, `${size} bytes of JSON: over the old 256 KiB limit`)
    const res = await post(app, '/v1/infer', payload)
    assert.equal(res.statusCode, 200, res.body.slice(0, 300))
    assert.deepEqual([...(api.calls.infer[0]?.inputs.images?.data ?? [])], [...values])

    const huge = {
      model: 'detector',
      inputs: { images: { dims: [1], type: 'float32', data_b64: 'A'.repeat(MAX_INFER_JSON_BYTES) } },
    }
    const tooLarge = await post(app, '/v1/infer', huge)
    assert.equal(tooLarge.statusCode, 413)
    const error = tooLarge.json<ErrorJson>().error
    assert.equal(error.code, 'PAYLOAD_TOO_LARGE')
    assert.match(
      error.message,
      /8 MiB limit of POST \/v1\/infer.*CBOR.*octet-stream|8 MiB limit of POST \/v1\/infer.*CBOR/,
    )
    assert.equal(api.calls.infer.length, 1, 'nothing else reached the network')
  })
})

test('data_b64: base64 of the little-endian bytes, in and (output_encoding b64) out; bad base64 and length mismatches are 400', async () => {
  await withApp(async (app, api) => {
    const { values, bytes } = floats(3 * 64 * 96)
    const res = await post(app, '/v1/infer', {
      model: 'detector',
      inputs: { images: { dims: [1, 3, 64, 96], type: 'float32', data_b64: bytes.toString('base64') } },
      output_encoding: 'b64',
    })
    assert.equal(res.statusCode, 200, res.body.slice(0, 300))
    assert.deepEqual([...(api.calls.infer[0]?.inputs.images?.data ?? [])], [...values])
    const body = res.json<{
      outputs: Record<string, { dims: number[]; type: string; data_b64: string; data?: unknown }>
    }>()
    assert.equal(body.outputs.echo?.data, undefined)
    assert.deepEqual(body.outputs.echo?.dims, [1, 3, 64, 96])
    assert.ok(Buffer.from(body.outputs.echo?.data_b64 ?? '', 'base64').equals(bytes), 'the same bytes come back')
    assert.equal(body.outputs.sum?.type, 'float32')

    // URL-safe and unpadded base64 is accepted too; int64 and uint8 are little-endian
    const ints = Buffer.from(BigInt64Array.of(-1n, 2n ** 40n).buffer)
    const pair = await post(app, '/v1/infer', {
      model: 'pair',
      inputs: {
        a: { dims: [2], type: 'int64', data_b64: ints.toString('base64url') },
        b: { dims: [3], type: 'uint8', data_b64: 'AQID' },
      },
    })
    assert.equal(pair.statusCode, 200, pair.body)
    assert.deepEqual([...(api.calls.infer[1]?.inputs.a?.data ?? [])], [-1n, 2n ** 40n])
    assert.deepEqual([...(api.calls.infer[1]?.inputs.b?.data ?? [])], [1, 2, 3])

    const bad = async (tensor: Record<string, unknown>, pattern: RegExp): Promise<void> => {
      const r = await post(app, '/v1/infer', {
        model: 'tiny',
        inputs: { x: { dims: [1, 2], type: 'float32', ...tensor } },
      })
      assert.equal(r.statusCode, 400, `${JSON.stringify(tensor).slice(0, 80)}: ${r.body}`)
      assert.match(r.json<ErrorJson>().error.message, pattern)
    }
    await bad({ data_b64: 'AAAA' }, /data_b64 holds 3 bytes but float32 \[1,2\] needs 8/)
    await bad({ data_b64: Buffer.alloc(12).toString('base64') }, /holds 12 bytes but float32 \[1,2\] needs 8/)
    await bad({ data_b64: 'AAAAAAAA!AA=' }, /not base64/)
    await bad({ data_b64: 'AAAAA' }, /not base64: a length of 5/)
    await bad(
      { data_b64: Buffer.from(Float32Array.of(1, NaN).buffer).toString('base64') },
      /data\[1\] = NaN is not a finite/,
    )
    await bad({ data: [1, 2], data_b64: 'AAAAAAAAAAA=' }, /exactly one of data .* or data_b64/)
    await bad({}, /exactly one of data .* or data_b64/)
    await bad({ data_b64: { a: 1 } }, /data_b64 must be string/)
    assert.equal(api.calls.infer.length, 2, 'no refused request reached the network')
  })
})

test('CBOR bodies: a 640×640 RGB float32 image (4.9 MB) as a byte string, answered in CBOR with accept: application/cbor', async () => {
  await withApp(async (app, api) => {
    const { values, bytes } = floats(3 * 640 * 640)
    const body = encodeCbor({
      model: 'yolo',
      inputs: { images: { dims: [1, 3, 640, 640], type: 'float32', data: bytes } },
    })
    assert.ok(body.length > 4_900_000)
    const res = await app.inject({
      method: 'POST',
      url: '/v1/infer',
      headers: { ...auth, 'content-type': 'application/cbor', accept: 'application/cbor' },
      payload: Buffer.from(body),
    })
    assert.equal(res.statusCode, 200, res.body.slice(0, 300))
    assert.match(String(res.headers['content-type']), /^application\/cbor/)
    const answer = decodeCbor(res.rawPayload) as {
      outputs: Record<string, { dims: number[]; type: string; data: Uint8Array }>
      receipt: { id: string; fee: string }
      worker: string
    }
    assert.ok(Buffer.from(answer.outputs.echo?.data ?? []).equals(bytes), 'the same bytes come back as a byte string')
    assert.deepEqual(answer.outputs.echo?.dims, [1, 3, 640, 640])
    assert.equal(answer.receipt.fee, '5')
    assert.equal(answer.worker, api.workerDid)
    const seen = api.calls.infer[0]?.inputs.images as Tensor
    assert.equal(seen.data.length, values.length)
    assert.equal(seen.data[12345], values[12345])

    // without accept: cbor, the answer is JSON (here with data_b64)
    const small = encodeCbor({
      model: 'tiny',
      inputs: { x: { dims: [1, 2], type: 'float32', data: [0.5, 2] } }, // arrays are accepted in CBOR too
      output_encoding: 'b64',
    })
    const json = await app.inject({
      method: 'POST',
      url: '/v1/infer',
      headers: { ...auth, 'content-type': 'application/cbor' },
      payload: Buffer.from(small),
    })
    assert.equal(json.statusCode, 200, json.body)
    assert.equal(
      json.json<{ outputs: { sum: { data_b64: string } } }>().outputs.sum.data_b64,
      Buffer.from(Float32Array.of(2.5).buffer).toString('base64'),
    )

    // a byte string whose length does not match the dims, and bytes that are not CBOR
    const short = encodeCbor({
      model: 'tiny',
      inputs: { x: { dims: [1, 2], type: 'float32', data: new Uint8Array(7) } },
    })
    for (const [payload, pattern] of [
      [short, /7 bytes, but float32 \[1,2\] needs 8/],
      [Uint8Array.of(0xff, 0x00), /CBOR body/],
      [Uint8Array.of(0xa1, 0x01, 0x01), /map keys must be text/],
    ] as const) {
      const r = await app.inject({
        method: 'POST',
        url: '/v1/infer',
        headers: { ...auth, 'content-type': 'application/cbor' },
        payload: Buffer.from(payload),
      })
      assert.equal(r.statusCode, 400, r.body)
      assert.match(r.json<ErrorJson>().error.message, pattern)
    }
    assert.equal(api.calls.infer.length, 2)
  })
})

test('raw bytes: POST /v1/infer/{model} with application/octet-stream and x-tensor-* headers (640×640 RGB float32)', async () => {
  await withApp(async (app, api) => {
    const { values, bytes } = floats(3 * 640 * 640)
    const raw = (url: string, payload: Buffer, headers: Record<string, string> = {}) =>
      app.inject({
        method: 'POST',
        url,
        headers: { ...auth, 'content-type': 'application/octet-stream', ...headers },
        payload,
      })
    const res = await raw('/v1/infer/yolo', bytes, {
      'x-tensor-dims': '1,3,640,640',
      'x-tensor-type': 'float32',
      accept: 'application/cbor',
    })
    assert.equal(res.statusCode, 200, res.body.slice(0, 300))
    const answer = decodeCbor(res.rawPayload) as { outputs: Record<string, { data: Uint8Array }> }
    assert.ok(Buffer.from(answer.outputs.echo?.data ?? []).equals(bytes))
    assert.equal((api.calls.infer[0]?.inputs.images as Tensor).data[99], values[99])

    // yolo fixes every dim and has one input: the headers may be left out; JSON answer with b64
    const bare = await raw('/v1/infer/yolo?output_encoding=b64', bytes)
    assert.equal(bare.statusCode, 200, bare.body.slice(0, 300))
    assert.ok(
      Buffer.from(bare.json<{ outputs: { echo: { data_b64: string } } }>().outputs.echo.data_b64, 'base64').equals(
        bytes,
      ),
    )

    const refused: Array<[string, Buffer, Record<string, string>, number, RegExp]> = [
      ['/v1/infer/detector', bytes, {}, 400, /x-tensor-dims is required/],
      ['/v1/infer/yolo', bytes.subarray(4), {}, 400, /4915196 bytes, but float32 \[1,3,640,640\] needs 4915200/],
      ['/v1/infer/yolo', bytes, { 'x-tensor-dims': '1,3,640,641' }, 400, /4915200 bytes, but float32 \[1,3,640,641\]/],
      ['/v1/infer/yolo', bytes, { 'x-tensor-dims': '1,3,x' }, 400, /x-tensor-dims/],
      ['/v1/infer/yolo', bytes, { 'x-tensor-type': 'float64' }, 400, /type must be one of/],
      ['/v1/infer/yolo', bytes, { 'x-tensor-name': 'pixels' }, 400, /no input "pixels"/],
      ['/v1/infer/pair', Buffer.alloc(8), { 'x-tensor-dims': '1', 'x-tensor-type': 'int64' }, 400, /has 2 inputs/],
      ['/v1/infer/nope', Buffer.alloc(8), { 'x-tensor-dims': '2' }, 404, /unknown model/],
    ]
    for (const [url, payload, headers, status, pattern] of refused) {
      const r = await raw(url, payload, headers)
      assert.equal(r.statusCode, status, `${url} ${JSON.stringify(headers)}: ${r.body}`)
      assert.match(r.json<ErrorJson>().error.message, pattern)
    }
    // a 640×640 image at the wrong size reaches the schema check (as for every form): 400
    const wrong = await raw('/v1/infer/yolo', Buffer.alloc(4 * 3 * 320 * 320), { 'x-tensor-dims': '1,3,320,320' })
    assert.equal(wrong.statusCode, 400)
    assert.match(wrong.json<ErrorJson>().error.message, /expected float32 \[1,3,640,640\], got float32 \[1,3,320,320\]/)

    // the operator token is checked before the body is read; other content types are 415
    const stranger = await app.inject({
      method: 'POST',
      url: '/v1/infer/yolo',
      headers: { 'content-type': 'application/octet-stream' },
      payload: bytes,
    })
    assert.equal(stranger.statusCode, 401)
    const json = await post(app, '/v1/infer/yolo', { model: 'yolo' })
    assert.equal(json.statusCode, 415, json.body)
    assert.equal(json.json<ErrorJson>().error.code, 'UNSUPPORTED_MEDIA_TYPE')
    assert.match(json.json<ErrorJson>().error.message, /takes application\/octet-stream bodies, not application\/json/)
    const octetToInfer = await raw('/v1/infer', bytes)
    assert.equal(octetToInfer.statusCode, 415)
    assert.match(
      octetToInfer.json<ErrorJson>().error.message,
      /POST \/v1\/infer takes application\/json or application\/cbor/,
    )
    const text = await app.inject({
      method: 'POST',
      url: '/v1/infer',
      headers: { ...auth, 'content-type': 'text/plain' },
      payload: 'hi',
    })
    assert.equal(text.statusCode, 415)
    // CBOR is only for the inference routes
    const cborTx = await app.inject({
      method: 'POST',
      url: '/v1/tx',
      headers: { 'content-type': 'application/cbor' },
      payload: Buffer.from([0xa0]),
    })
    assert.equal(cborTx.statusCode, 415)
    assert.equal(api.calls.infer.length, 3, 'two accepted, and the wrong-size image (refused by the schema check)')
  })
})

test('binary bodies over the limit are 413 before they are read, with the limit in the message', async () => {
  await withApp(async (app) => {
    const over = Buffer.alloc(MAX_INFER_BINARY_BYTES + 1)
    for (const [url, type] of [
      ['/v1/infer', 'application/cbor'],
      ['/v1/infer/yolo', 'application/octet-stream'],
    ]) {
      const res = await app.inject({ method: 'POST', url, headers: { ...auth, 'content-type': type }, payload: over })
      assert.equal(res.statusCode, 413, `${url}: ${res.body}`)
      assert.match(res.json<ErrorJson>().error.message, /16\.06 MiB limit/)
    }
    // the tensor limit is what reaches a worker: 16 MiB of data in one tensor
    assert.equal(DEFAULT_TENSOR_LIMITS.maxBytes + 64 * 1024, MAX_INFER_BINARY_BYTES)
  })
})

test('GET /v1/models: language models carry promptPrice and contextLength; the OpenAPI document lists the raw route', async () => {
  await withApp(async (app) => {
    const list = (await app.inject({ method: 'GET', url: '/v1/models' })).json<{
      data: Array<Record<string, unknown>>
    }>()
    const lm = list.data.find((m) => m.id === 'tiny-lm')
    assert.deepEqual([lm?.kind, lm?.price, lm?.promptPrice, lm?.contextLength], ['lm', '2', '1', 512])
    assert.equal(list.data.find((m) => m.id === 'tiny')?.promptPrice, undefined)
    const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json<{
      paths: Record<
        string,
        Record<string, { description?: string; requestBody?: { content: Record<string, unknown> } }>
      >
    }>()
    assert.ok(doc.paths['/v1/infer/{model}']?.post !== undefined)
    assert.deepEqual(Object.keys(doc.paths['/v1/infer']?.post?.requestBody?.content ?? {}), [
      'application/json',
      'application/cbor',
    ])
    assert.match(doc.paths['/v1/infer']?.post?.description ?? '', /8 MiB.*16\.06 MiB/s)
  })
})

// ---- completions ------------------------------------------------------------------------------

test('chat completions on a language model: the whole chat, sampling parameters mapped, usage and finish_reason from the outcome', async () => {
  await withApp(async (app, api) => {
    const res = await post(app, '/v1/chat/completions', {
      model: 'tiny-lm',
      messages: [
        { role: 'developer', content: 'Be brief.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Hi' },
            { type: 'text', text: 'there' },
          ],
          name: 'ann',
        },
        { role: 'assistant', content: null },
        { role: 'user', content: 'Again?' },
      ],
      max_completion_tokens: 20,
      temperature: 0.7,
      top_p: 0,
      top_k: 40,
      seed: 42,
      stop: 'END',
      n: 1,
      frequency_penalty: 0,
      presence_penalty: null,
      logprobs: false,
      user: 'someone',
      stream_options: null,
    })
    assert.equal(res.statusCode, 200, res.body)
    assert.deepEqual(api.calls.complete, [
      {
        model: 'tiny-lm',
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: 'Hi\nthere' },
          { role: 'assistant', content: '' },
          { role: 'user', content: 'Again?' },
        ],
        maxTokens: 20,
        temperature: 0.7,
        topP: 0.001,
        topK: 40,
        seed: 42n,
        stop: ['END'],
      },
    ])
    const body = res.json<
      Record<string, unknown> & { choices: unknown[]; usage: unknown; donghae: Record<string, unknown> }
    >()
    assert.equal(body.object, 'chat.completion')
    assert.equal(body.model, 'tiny-lm')
    assert.match(String(body.id), /^chatcmpl-[0-9a-f]{24}$/)
    assert.match(String(body.system_fingerprint), /^fp_/)
    assert.deepEqual(body.choices, [
      {
        index: 0,
        message: { role: 'assistant', content: 'Hello world', refusal: null },
        logprobs: null,
        finish_reason: 'stop',
      },
    ])
    assert.deepEqual(body.usage, { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 })
    assert.equal(body.donghae.fee, '9')
    assert.equal(body.donghae.worker, api.workerDid)
    assert.equal((body.donghae.receipts as string[]).length, 1)
    assert.equal(body.donghae.ttftMs, 12.5)
  })
})

test('completion parameters: unknown ones, values out of range and unsupported OpenAI features are 400 naming the parameter, and nothing is charged', async () => {
  await withApp(async (app, api) => {
    const chat = { model: 'tiny-lm', messages: [{ role: 'user', content: 'x' }] }
    const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
      ['/v1/chat/completions', { ...chat, foo: 1 }, 'foo', /unknown parameter "foo"/],
      [
        '/v1/chat/completions',
        { ...chat, reasoning_effort: 'high' },
        'reasoning_effort',
        /unknown parameter "reasoning_effort"/,
      ],
      ['/v1/chat/completions', { ...chat, n: 2 }, 'n', /n must be 1/],
      ['/v1/chat/completions', { ...chat, stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop', /at most 4 strings, got 5/],
      ['/v1/chat/completions', { ...chat, stop: ['a', ''] }, 'stop[1]', /stop\[1\] must be non-empty/],
      ['/v1/chat/completions', { ...chat, stop: 'x'.repeat(65) }, 'stop', /longer than 64 bytes/],
      [
        '/v1/chat/completions',
        { ...chat, temperature: 5.5 },
        'temperature',
        /temperature must be a number from 0 to 5, got 5\.5/,
      ],
      ['/v1/chat/completions', { ...chat, temperature: '1' }, 'temperature', /temperature must be a number/],
      ['/v1/chat/completions', { ...chat, top_p: 1.5 }, 'top_p', /top_p must be a number from 0 to 1/],
      ['/v1/chat/completions', { ...chat, top_k: -1 }, 'top_k', /top_k must be an integer/],
      ['/v1/chat/completions', { ...chat, seed: 1.5 }, 'seed', /seed must be an integer/],
      ['/v1/chat/completions', { ...chat, max_tokens: 0 }, 'max_tokens', /max_tokens must be an integer from 1/],
      ['/v1/chat/completions', { ...chat, max_tokens: 600 }, 'max_tokens', /context window of 512 tokens/],
      [
        '/v1/chat/completions',
        { ...chat, max_tokens: 5, max_completion_tokens: 6 },
        'max_completion_tokens',
        /not two different values/,
      ],
      ['/v1/chat/completions', { ...chat, frequency_penalty: 0.5 }, 'frequency_penalty', /only 0 is accepted/],
      ['/v1/chat/completions', { ...chat, logprobs: true }, 'logprobs', /logprobs is not supported/],
      ['/v1/chat/completions', { ...chat, tools: [{ type: 'function' }] }, 'tools', /no tool calling/],
      [
        '/v1/chat/completions',
        { ...chat, response_format: { type: 'json_object' } },
        'response_format',
        /only \{"type":"text"\}/,
      ],
      [
        '/v1/chat/completions',
        { ...chat, stream: true, stream_options: { include_usage: true, extra: 1 } },
        'stream_options.extra',
        /unknown parameter "stream_options.extra"/,
      ],
      ['/v1/chat/completions', { model: 'tiny-lm', messages: [] }, 'messages', /non-empty array/],
      [
        '/v1/chat/completions',
        { model: 'tiny-lm', messages: [{ role: 'tool', content: 'x' }] },
        'messages[0].role',
        /tool messages are not supported/,
      ],
      [
        '/v1/chat/completions',
        { model: 'tiny-lm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] },
        'messages[0].content[0]',
        /parts of type "image_url" are not supported; only "text"/,
      ],
      [
        '/v1/chat/completions',
        { model: 'tiny-lm', messages: [{ role: 'user', content: 'x', audio: {} }] },
        'messages[0].audio',
        /unknown parameter "messages\[0\].audio"/,
      ],
      [
        '/v1/chat/completions',
        { model: 'tiny-lm', messages: [{ role: 'user' }] },
        'messages[0].content',
        /content is missing/,
      ],
      ['/v1/completions', { model: 'tiny-lm', prompt: ['a', 'b'] }, 'prompt', /batches of prompts are not supported/],
      ['/v1/completions', { model: 'tiny-lm', prompt: [1, 2, 3] }, 'prompt', /token-id prompts are not supported/],
      ['/v1/completions', { model: 'tiny-lm', prompt: 'x', echo: true }, 'echo', /echo is not supported/],
      ['/v1/completions', { model: 'tiny-lm', prompt: 'x', best_of: 3 }, 'best_of', /only 1 is accepted/],
      ['/v1/completions', { model: 'tiny-lm', prompt: 'x', messages: [] }, 'messages', /unknown parameter "messages"/],
      ['/v1/completions', { model: 'tiny-lm' }, 'prompt', /prompt must be a string/],
    ]
    for (const [url, body, param, pattern] of cases) {
      const res = await post(app, url, body)
      const error = res.json<OpenAiError>().error
      assert.equal(res.statusCode, 400, `${JSON.stringify(body)}: ${res.body}`)
      assert.match(error.message, pattern, JSON.stringify(body))
      assert.equal(error.param, param, JSON.stringify(body))
      assert.equal(error.type, 'invalid_request_error')
      assert.equal(error.code, 'BAD_REQUEST')
    }
    const unknown = await post(app, '/v1/chat/completions', { ...chat, model: 'nope' })
    assert.equal(unknown.statusCode, 404)
    assert.equal(unknown.json<OpenAiError>().error.param, 'model')
    const tensor = await post(app, '/v1/completions', { model: 'tiny', prompt: 'x', stream: true })
    assert.equal(tensor.statusCode, 400)
    assert.match(tensor.json<OpenAiError>().error.message, /tiny is a tensor model/)
    const stranger = await post(app, '/v1/chat/completions', { ...chat, foo: 1 }, {})
    assert.equal(stranger.statusCode, 401, 'the token is checked before the parameters')
    assert.equal(stranger.json<OpenAiError>().error.type, 'authentication_error')
    assert.equal(api.calls.complete.length, 0, 'no refused request reached api.complete')
  })
})

test('text models keep working: the last message is the prompt, 16 tokens by default; /chat answers through complete', async () => {
  await withApp(async (app, api) => {
    const res = await post(app, '/v1/chat/completions', {
      model: 'chars',
      messages: [
        { role: 'system', content: 's' },
        { role: 'user', content: 'the sea' },
      ],
    })
    assert.equal(res.statusCode, 200, res.body)
    assert.deepEqual(api.calls.complete[0], { model: 'chars', prompt: 'the sea', maxTokens: 16 })
    const completion = await post(app, '/v1/completions', { model: 'chars', prompt: ['waves'], max_tokens: 3 })
    assert.equal(completion.statusCode, 200, completion.body)
    assert.deepEqual(api.calls.complete[1], { model: 'chars', prompt: 'waves', maxTokens: 3 })
    const body = completion.json<{ object: string; choices: Array<{ text: string; finish_reason: string }> }>()
    assert.equal(body.object, 'text_completion')
    assert.deepEqual(body.choices[0], { index: 0, text: 'Hello world', logprobs: null, finish_reason: 'stop' })
    const aiBlock = await post(app, '/chat', { prompt: 'hi', max_tokens: 4 })
    assert.equal(aiBlock.statusCode, 200, aiBlock.body)
    assert.deepEqual(api.calls.complete[2], { model: 'chars', prompt: 'hi', maxTokens: 4 })
    assert.equal(aiBlock.json<{ response: string }>().response, 'Hello world')
  })
})

function sseEvents(text: string): Array<{ event: string; data: string }> {
  return text
    .split('\n\n')
    .filter((block) => block.trim() !== '')
    .map((block) => {
      const lines = block.split('\n')
      const event = lines.find((l) => l.startsWith('event: '))?.slice(7) ?? 'message'
      return {
        event,
        data: lines
          .filter((l) => l.startsWith('data: '))
          .map((l) => l.slice(6))
          .join('\n'),
      }
    })
}

test('streaming: role first, content pieces, a finish chunk with donghae, the usage chunk, [DONE]; a failure before the first piece is a plain HTTP error, after it an SSE error event', async () => {
  await withApp(async (app, api) => {
    const res = await post(app, '/v1/chat/completions', {
      model: 'tiny-lm',
      messages: [{ role: 'user', content: 'x' }],
      stream: true,
      stream_options: { include_usage: true },
    })
    assert.equal(res.statusCode, 200)
    assert.match(String(res.headers['content-type']), /text\/event-stream/)
    const events = sseEvents(res.body)
    assert.equal(events.at(-1)?.data, '[DONE]')
    const chunks = events
      .slice(0, -1)
      .map((e) => JSON.parse(e.data) as Record<string, unknown> & { choices: Array<Record<string, unknown>> })
    assert.deepEqual(
      chunks.map((c) => [c.object, c.choices[0]?.delta, c.choices[0]?.finish_reason, c.usage]),
      [
        ['chat.completion.chunk', { role: 'assistant', content: '' }, null, null],
        ['chat.completion.chunk', { content: 'Hello' }, null, null],
        ['chat.completion.chunk', { content: ' world' }, null, null],
        ['chat.completion.chunk', {}, 'stop', null],
        ['chat.completion.chunk', undefined, undefined, { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 }],
      ],
    )
    assert.equal(chunks[3]?.donghae !== undefined, true)
    assert.deepEqual(chunks[4]?.choices, [])
    assert.equal(new Set(chunks.map((c) => c.id)).size, 1)

    // without include_usage: no usage fields, the finish chunk is the last
    const plain = sseEvents((await post(app, '/v1/completions', { model: 'tiny-lm', prompt: 'x', stream: true })).body)
    const last = JSON.parse(plain.at(-2)?.data ?? '{}') as {
      object: string
      usage?: unknown
      choices: Array<{ text: string; finish_reason: string }>
    }
    assert.deepEqual([last.object, last.usage, last.choices[0]?.finish_reason], ['text_completion', undefined, 'stop'])
    assert.equal(
      plain
        .slice(0, -1)
        .map((e) => (JSON.parse(e.data) as { choices: Array<{ text: string }> }).choices[0]?.text)
        .join(''),
      'Hello world',
    )

    const { InferenceError } = await import('../inference/errors.ts')
    api.completeWith(async () => {
      throw new InferenceError('no-worker', 'no worker serves tiny-lm right now')
    })
    const early = await post(app, '/v1/chat/completions', {
      model: 'tiny-lm',
      messages: [{ role: 'user', content: 'x' }],
      stream: true,
    })
    assert.equal(early.statusCode, 503, early.body)
    assert.deepEqual(
      [early.json<OpenAiError>().error.code, early.json<OpenAiError>().error.type],
      ['INFERENCE_UNAVAILABLE', 'server_error'],
    )
    api.completeWith(async (_request, onToken) => {
      onToken?.('Hel')
      throw new InferenceError('failed', 'the worker \u001b[31mvanished')
    })
    const late = await post(app, '/v1/chat/completions', {
      model: 'tiny-lm',
      messages: [{ role: 'user', content: 'x' }],
      stream: true,
    })
    assert.equal(late.statusCode, 200)
    const lateEvents = sseEvents(late.body)
    const error = lateEvents.find((e) => e.event === 'error')
    assert.ok(error !== undefined, late.body)
    const parsed = JSON.parse(error.data) as { error: { message: string; type: string } }
    assert.match(parsed.error.message, /the worker .*vanished/)
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(parsed.error.message, /\u001b/)
    assert.equal(parsed.error.type, 'server_error')
  })
})

test('streaming: a completion that takes longer than COMPLETION_STREAM_OPEN_MS before its first piece opens the stream anyway (a later failure is an SSE error event)', async () => {
  await withApp(async (app, api) => {
    const { InferenceError } = await import('../inference/errors.ts')
    api.completeWith(async () => {
      await new Promise((resolve) => setTimeout(resolve, COMPLETION_STREAM_OPEN_MS + 300))
      throw new InferenceError('no-worker', 'every worker went away')
    })
    const res = await post(app, '/v1/chat/completions', {
      model: 'tiny-lm',
      messages: [{ role: 'user', content: 'x' }],
      stream: true,
    })
    assert.equal(res.statusCode, 200)
    const events = sseEvents(res.body)
    assert.deepEqual(
      events.map((e) => e.event),
      ['message', 'error', 'message'],
    )
    assert.deepEqual(
      (JSON.parse(events[0]?.data ?? '{}') as { choices: Array<{ delta: unknown }> }).choices[0]?.delta,
      {
        role: 'assistant',
        content: '',
      },
    )
    assert.match(events[1]?.data ?? '', /every worker went away/)
    assert.equal(events[2]?.data, '[DONE]')
  })
})
