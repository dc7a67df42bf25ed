// The model-fetch routes over the real server code and the test double of InferenceApi
// (fake-inference.ts): GET /v1/inference/fetches (public, bigint-free JSON) and the operator's
// POST /v1/operator/models/{model}/fetch (SSE progress, at most 10 a second, the finished view,
// [DONE]; errors as `event: error`; an unknown model a plain 404).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { FastifyInstance } from 'fastify'
import { generateApiToken } from './auth.ts'
import { FAKE_FETCH_BYTES, FAKE_MODELS, FAKE_PEERS, fakeInference, type FakeInference } from './fake-inference.ts'
import type { FetchView } from './inference-api.ts'
import { createApiServer } from './server.ts'
import type { ErrorJson } from './schemas.ts'
import { InferenceError } from '../inference/errors.ts'
import { actor, makeGenesis } from '../../test/helpers/chain.ts'
import { MemoryChain } from '../../test/helpers/memory-chain.ts'

const TOKEN = generateApiToken()
const auth = { authorization: `Bearer ${TOKEN}` }
const validator = actor()
const LM = FAKE_MODELS.find((m) => m.kind === 'lm') as (typeof FAKE_MODELS)[number]

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

function sseEvents(text: string): Array<{ event: string; data: string }> {
  return text
    .split('\n\n')
    .filter((block) => block.trim() !== '' && !block.startsWith(':'))
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

const fetchUrl = (model: string): string => `/v1/operator/models/${encodeURIComponent(model)}/fetch`
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

test('POST /v1/operator/models/{model}/fetch streams the progress, the finished fetch, then [DONE]', async () => {
  await withApp(async (app, api) => {
    const res = await app.inject({ method: 'POST', url: fetchUrl(LM.name), headers: auth })
    assert.equal(res.statusCode, 200, res.body)
    assert.match(String(res.headers['content-type']), /^text\/event-stream/)
    const events = sseEvents(res.body)
    assert.equal(events.at(-1)?.data, '[DONE]')
    assert.ok(
      events.every((e) => e.event === 'message'),
      'no error event',
    )
    const views = events.slice(0, -1).map((e) => JSON.parse(e.data) as FetchView)
    assert.ok(views.length >= 2, `${views.length} messages`)
    const last = views.at(-1) as FetchView
    assert.equal(last.state, 'done')
    assert.equal(last.model, LM.cid)
    assert.equal(last.name, LM.name)
    assert.equal(last.bytes, FAKE_FETCH_BYTES)
    assert.equal(last.totalBytes, FAKE_FETCH_BYTES)
    assert.deepEqual(Object.keys(last.fromPeers).sort(), [...FAKE_PEERS].sort())
    assert.equal(typeof last.finishedAt, 'number')
    for (let i = 1; i < views.length; i++)
      assert.ok((views[i] as FetchView).bytes >= (views[i - 1] as FetchView).bytes, 'bytes only grow')
    assert.ok(
      views.slice(0, -1).every((v) => v.state === 'fetching'),
      'fetching until the end',
    )
    assert.deepEqual(api.calls.fetchModel, [LM.name])

    // by CID too
    const byCid = await app.inject({ method: 'POST', url: fetchUrl(LM.cid), headers: auth })
    assert.equal(byCid.statusCode, 200)
    assert.equal(sseEvents(byCid.body).at(-1)?.data, '[DONE]')
  })
})

test('the fetch route needs the operator token; an unknown model is a plain 404; nothing is fetched for either', async () => {
  await withApp(async (app, api) => {
    const stranger = await app.inject({ method: 'POST', url: fetchUrl(LM.name) })
    assert.equal(stranger.statusCode, 401)
    assert.equal(stranger.json<ErrorJson>().error.code, 'UNAUTHORIZED')
    const wrong = await app.inject({
      method: 'POST',
      url: fetchUrl(LM.name),
      headers: { authorization: 'Bearer nope' },
    })
    assert.equal(wrong.statusCode, 401)
    const unknown = await app.inject({ method: 'POST', url: fetchUrl('no-such-model'), headers: auth })
    assert.equal(unknown.statusCode, 404)
    assert.match(String(unknown.headers['content-type']), /application\/json/)
    assert.equal(unknown.json<ErrorJson>().error.code, 'NOT_FOUND')
    assert.match(unknown.json<ErrorJson>().error.message, /no-such-model/)
    assert.deepEqual(api.calls.fetchModel, [])
    assert.deepEqual((await app.inject({ method: 'GET', url: '/v1/inference/fetches' })).json(), { fetches: [] })
  })
})

test('progress is sent at most 10 times a second, with the latest view, and the finished one always', async () => {
  await withApp(async (app, api) => {
    const total = 1_000_000
    api.fetchWith(async (m, onProgress) => {
      const startedAt = Date.now()
      const view = (bytes: number): FetchView => ({
        model: m.cid,
        name: m.name,
        bytes,
        totalBytes: total,
        fromPeers: { [FAKE_PEERS[0] as string]: bytes / 1000 },
        startedAt,
        state: 'fetching',
      })
      // 200 updates over about 400 ms
      for (let i = 1; i <= 200; i++) {
        onProgress(view(i * 5_000))
        if (i % 10 === 0) await sleep(20)
      }
      return { ...view(total), state: 'done', finishedAt: Date.now() }
    })
    const started = Date.now()
    const res = await app.inject({ method: 'POST', url: fetchUrl(LM.name), headers: auth })
    const elapsed = Date.now() - started
    const views = sseEvents(res.body)
      .slice(0, -1)
      .map((e) => JSON.parse(e.data) as FetchView)
    const progress = views.filter((v) => v.state === 'fetching')
    assert.ok(progress.length >= 2, `${progress.length} progress messages`)
    assert.ok(
      progress.length <= Math.ceil(elapsed / 100) + 1,
      `${progress.length} progress messages in ${elapsed} ms: more than 10 a second`,
    )
    assert.equal(progress[0]?.bytes, 5_000, 'the first update goes out at once')
    assert.equal(views.at(-1)?.state, 'done')
    assert.equal(views.at(-1)?.bytes, total)
  })
})

test('a failed fetch ends the stream with an error event and [DONE]; GET /v1/inference/fetches shows it failed', async () => {
  await withApp(async (app, api) => {
    api.fetchWith(async (m, onProgress) => {
      onProgress({
        model: m.cid,
        name: m.name,
        bytes: 300,
        totalBytes: 1_000,
        fromPeers: { [FAKE_PEERS[1] as string]: 3 },
        startedAt: Date.now(),
        state: 'fetching',
      })
      await sleep(5)
      throw new InferenceError('no-worker', 'no peer has block bafkreiabc\u001b[31m')
    })
    const res = await app.inject({ method: 'POST', url: fetchUrl(LM.name), headers: auth })
    assert.equal(res.statusCode, 200)
    const events = sseEvents(res.body)
    assert.deepEqual(
      events.map((e) => e.event),
      ['message', 'error', 'message'],
    )
    assert.equal(events[2]?.data, '[DONE]')
    const error = (JSON.parse(events[1]?.data ?? '{}') as ErrorJson).error
    assert.equal(error.code, 'FETCH_FAILED')
    assert.equal(error.reason, 'no-worker')
    assert.match(error.message, /no peer has block bafkreiabc/)
    assert.ok(!error.message.includes('\u001b'), 'control characters are stripped')

    const list = await app.inject({ method: 'GET', url: '/v1/inference/fetches' })
    assert.equal(list.statusCode, 200)
    const [failed] = list.json<{ fetches: FetchView[] }>().fetches
    assert.equal(failed?.state, 'failed')
    assert.equal(failed?.bytes, 300)
    assert.match(failed?.error ?? '', /no peer has block/)
  })
})

test('GET /v1/inference/fetches lists fetches, newest first, as plain JSON, without a token', async () => {
  await withApp(async (app, api) => {
    await api.fetchModel('chars')
    await api.fetchModel(LM.name)
    const res = await app.inject({ method: 'GET', url: '/v1/inference/fetches' })
    assert.equal(res.statusCode, 200)
    const { fetches } = res.json<{ fetches: FetchView[] }>()
    assert.deepEqual(
      fetches.map((f) => [f.name, f.state, f.bytes, f.totalBytes]),
      [
        [LM.name, 'done', FAKE_FETCH_BYTES, FAKE_FETCH_BYTES],
        ['chars', 'done', FAKE_FETCH_BYTES, FAKE_FETCH_BYTES],
      ],
    )
    for (const f of fetches) {
      assert.equal(typeof f.startedAt, 'number')
      assert.equal(typeof f.finishedAt, 'number')
      assert.ok(Object.values(f.fromPeers).every((n) => Number.isInteger(n) && n > 0))
    }
  })
})

test('two fetches of one model at once: the second joins the first (one fetch runs), both streams finish', async () => {
  await withApp(async (app, api) => {
    let runs = 0
    let release = (): void => {}
    const gate = new Promise<void>((resolve) => (release = resolve))
    api.fetchWith(async (m, onProgress) => {
      runs++
      const view: FetchView = {
        model: m.cid,
        name: m.name,
        bytes: 10,
        totalBytes: 20,
        fromPeers: { [FAKE_PEERS[0] as string]: 1 },
        startedAt: Date.now(),
        state: 'fetching',
      }
      onProgress(view)
      await gate
      return { ...view, bytes: 20, state: 'done', finishedAt: Date.now() }
    })
    const first = app.inject({ method: 'POST', url: fetchUrl(LM.name), headers: auth })
    await sleep(20)
    const second = app.inject({ method: 'POST', url: fetchUrl(LM.cid), headers: auth })
    await sleep(20)
    release()
    const [a, b] = await Promise.all([first, second])
    assert.equal(runs, 1)
    for (const res of [a, b]) {
      const events = sseEvents(res.body)
      assert.equal(events.at(-1)?.data, '[DONE]')
      assert.equal((JSON.parse(events.at(-2)?.data ?? '{}') as FetchView).state, 'done')
    }
    assert.equal(api.fetches().length, 1)
  })
})
