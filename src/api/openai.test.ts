// The official `openai` npm client against the real server over a socket (the InferenceApi is
// the test double of fake-inference.ts): chat and text completions, streaming with usage, and
// errors the client raises as APIError with our message, status, type and param. Also the
// Donghae client's binary tensor forms (CBOR, base64 JSON, raw bytes) over the same socket.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import OpenAI from 'openai'
import { generateApiToken } from './auth.ts'
import { ApiError, DonghaeClient, tensorFromB64, tensorToB64, type BinaryTensor } from './client.ts'
import { fakeInference, type FakeInference } from './fake-inference.ts'
import { createApiServer } from './server.ts'
import { InferenceError } from '../inference/errors.ts'
import { actor, makeGenesis } from '../../test/helpers/chain.ts'
import { MemoryChain } from '../../test/helpers/memory-chain.ts'

const TOKEN = generateApiToken()
const validator = actor()

async function withServer(fn: (url: string, api: FakeInference) => Promise<void>): Promise<void> {
  const api = fakeInference()
  const app = createApiServer({
    chain: new MemoryChain({ genesis: makeGenesis([validator], []), validators: [validator] }),
    inference: api,
    operatorToken: TOKEN,
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  try {
    await fn(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, api)
  } finally {
    await app.close()
  }
}

const openai = (url: string, apiKey = TOKEN): OpenAI => new OpenAI({ baseURL: `${url}/v1`, apiKey, maxRetries: 0 })

test('openai client: chat and text completions, with usage, finish_reason and the donghae field; models.list', async () => {
  await withServer(async (url, api) => {
    const client = openai(url)
    const chat = await client.chat.completions.create({
      model: 'tiny-lm',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
      ],
      max_tokens: 12,
      temperature: 0.2,
      seed: 7,
      stop: ['\n\n'],
    })
    assert.equal(chat.choices[0]?.message.content, 'Hello world')
    assert.equal(chat.choices[0]?.finish_reason, 'stop')
    assert.deepEqual(chat.usage, { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 })
    assert.equal((chat as unknown as { donghae: { fee: string } }).donghae.fee, '9')
    assert.deepEqual(api.calls.complete[0], {
      model: 'tiny-lm',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
      ],
      maxTokens: 12,
      temperature: 0.2,
      seed: 7n,
      stop: ['\n\n'],
    })
    const text = await client.completions.create({ model: 'tiny-lm', prompt: 'Once', max_tokens: 5, top_p: 0.9 })
    assert.equal(text.choices[0]?.text, 'Hello world')
    assert.equal(text.usage?.total_tokens, 9)
    assert.deepEqual(api.calls.complete[1], { model: 'tiny-lm', prompt: 'Once', maxTokens: 5, topP: 0.9 })
    const models = []
    for await (const m of client.models.list()) models.push(m.id)
    assert.ok(models.includes('tiny-lm') && models.includes('chars'), models.join(', '))
  })
})

test('openai client: streaming chat yields the role, the pieces, the finish reason and (include_usage) the usage', async () => {
  await withServer(async (url) => {
    const stream = await openai(url).chat.completions.create({
      model: 'tiny-lm',
      messages: [{ role: 'user', content: 'Hi' }],
      stream: true,
      stream_options: { include_usage: true },
    })
    let text = ''
    let role: string | undefined
    let finish: string | null | undefined
    let usage: OpenAI.CompletionUsage | null | undefined
    for await (const chunk of stream) {
      role ??= chunk.choices[0]?.delta.role
      text += chunk.choices[0]?.delta.content ?? ''
      finish = chunk.choices[0]?.finish_reason ?? finish
      if (chunk.usage) usage = chunk.usage
    }
    assert.deepEqual([role, text, finish], ['assistant', 'Hello world', 'stop'])
    assert.deepEqual(usage, { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 })

    const completion = await openai(url).completions.create({ model: 'tiny-lm', prompt: 'x', stream: true })
    let pieces = ''
    for await (const chunk of completion) pieces += chunk.choices[0]?.text ?? ''
    assert.equal(pieces, 'Hello world')
  })
})

test('openai client: a bad parameter is a BadRequestError (400) with our message, type and param; a wrong key is an AuthenticationError; a stream that fails midway raises APIError', async () => {
  await withServer(async (url, api) => {
    const client = openai(url)
    await assert.rejects(
      client.chat.completions.create({
        model: 'tiny-lm',
        messages: [{ role: 'user', content: 'Hi' }],
        foo: 1,
      } as OpenAI.ChatCompletionCreateParamsNonStreaming),
      (err) => {
        assert.ok(err instanceof OpenAI.BadRequestError, String(err))
        assert.equal(err.status, 400)
        assert.match(err.message, /^400 unknown parameter "foo"/)
        assert.equal(err.param, 'foo')
        assert.equal(err.type, 'invalid_request_error')
        return true
      },
    )
    await assert.rejects(
      client.chat.completions.create({ model: 'tiny-lm', messages: [{ role: 'user', content: 'Hi' }], n: 2 }),
      (err) => err instanceof OpenAI.BadRequestError && err.param === 'n' && /n must be 1/.test(err.message),
    )
    await assert.rejects(
      client.completions.create({ model: 'no-such-model', prompt: 'x' }),
      (err) => err instanceof OpenAI.NotFoundError && err.param === 'model',
    )
    await assert.rejects(
      openai(url, 'wrong-key').chat.completions.create({
        model: 'tiny-lm',
        messages: [{ role: 'user', content: 'x' }],
      }),
      (err) => err instanceof OpenAI.AuthenticationError && err.status === 401,
    )
    assert.equal(api.calls.complete.length, 0, 'nothing was charged')

    api.completeWith(async (_request, onToken) => {
      onToken?.('Hel')
      throw new InferenceError('failed', 'the worker went away')
    })
    const stream = await client.chat.completions.create({
      model: 'tiny-lm',
      messages: [{ role: 'user', content: 'Hi' }],
      stream: true,
    })
    const seen: string[] = []
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) seen.push(chunk.choices[0]?.delta.content ?? '')
      })(),
      (err) => err instanceof OpenAI.APIError && /the worker went away/.test(err.message),
    )
    assert.equal(seen.join(''), 'Hel')
  })
})

test('DonghaeClient: binary tensors as CBOR, as base64 JSON and as raw bytes, read back as typed arrays', async () => {
  await withServer(async (url, api) => {
    const client = new DonghaeClient(url, { token: TOKEN })
    const pixels = Float32Array.from({ length: 3 * 640 * 640 }, (_, i) => (i % 255) / 255)
    const image: BinaryTensor = { dims: [1, 3, 640, 640], type: 'float32', data: pixels }
    const viaCbor = await client.inferBinary({ model: 'yolo', inputs: { images: image } })
    assert.equal(viaCbor.outputs.echo?.type, 'float32')
    assert.deepEqual(viaCbor.outputs.echo?.dims, [1, 3, 640, 640])
    assert.deepEqual(viaCbor.outputs.echo?.data, pixels)
    assert.equal(viaCbor.worker, api.workerDid)
    assert.match(viaCbor.receipt.id, /^[0-9a-f]{64}$/)

    const viaRaw = await client.inferRaw('yolo', image)
    assert.deepEqual(viaRaw.outputs.echo?.data, pixels)

    const ids: BinaryTensor = { dims: [2], type: 'int64', data: BigInt64Array.of(-5n, 2n ** 50n) }
    const flags: BinaryTensor = { dims: [3], type: 'uint8', data: Uint8Array.of(0, 1, 255) }
    const viaB64 = await client.inferBinary({ model: 'pair', inputs: { a: ids, b: flags } }, { encoding: 'b64' })
    assert.deepEqual(viaB64.outputs.echo?.data, ids.data)
    assert.deepEqual(viaB64.outputs.sum?.data, Float32Array.of(Number(-5n + 2n ** 50n)))
    assert.deepEqual(tensorFromB64(tensorToB64(flags)), flags)

    // errors are ApiErrors with the node's code, whatever the form
    await assert.rejects(
      client.inferRaw('yolo', { ...image, dims: [1, 3, 640, 639] }),
      (err) => err instanceof ApiError && err.status === 400 && /needs 4907520/.test(err.message),
    )
    await assert.rejects(
      client.inferBinary({ model: 'yolo', inputs: { wrong: image } }),
      (err) => err instanceof ApiError && err.status === 400 && /unknown input "wrong"/.test(err.message),
    )
    await assert.rejects(
      new DonghaeClient(url).inferRaw('yolo', image),
      (err) => err instanceof ApiError && err.code === 'UNAUTHORIZED',
    )
  })
})
