// `donghae model fetch` and the client's streaming calls (fetchModel, fetches, chatStream) against
// the real API server over HTTP, backed by the test double of InferenceApi (fake-inference.ts):
// progress on stderr, a summary or JSON on stdout, and the errors a user meets.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { ApiError, DonghaeClient, type FetchJson } from '../src/api/client.ts'
import { generateApiToken } from '../src/api/auth.ts'
import {
  FAKE_FETCH_BYTES,
  FAKE_MODELS,
  FAKE_PEERS,
  fakeInference,
  type FakeInference,
} from '../src/api/fake-inference.ts'
import { createApiServer } from '../src/api/server.ts'
import { InferenceError } from '../src/inference/errors.ts'
import { actor, makeGenesis } from './helpers/chain.ts'
import { MemoryChain } from './helpers/memory-chain.ts'
import { runCli } from './helpers/cli.ts'

const TOKEN = generateApiToken()
const validator = actor()
const LM = FAKE_MODELS.find((m) => m.kind === 'lm') as (typeof FAKE_MODELS)[number]

async function withNode(fn: (url: string, api: FakeInference) => Promise<void>): Promise<void> {
  const api = fakeInference()
  const app: FastifyInstance = createApiServer({
    chain: new MemoryChain({ genesis: makeGenesis([validator], []), validators: [validator] }),
    inference: api,
    operatorToken: TOKEN,
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  try {
    await fn(`http://127.0.0.1:${port}`, api)
  } finally {
    await app.close()
  }
}

test('donghae model fetch: progress on stderr, a summary with bytes, seconds, MB/s and blocks per peer on stdout', async () => {
  await withNode(async (url, api) => {
    const run = await runCli(['model', 'fetch', LM.name, '--node', url, '--token', TOKEN])
    assert.equal(run.code, 0, run.stderr)
    assert.match(run.stderr, /tiny-lm \[#{20}\] 100% 4\.0\/4\.0 MB 2 peers/)
    const lines = run.stdout.trim().split('\n')
    assert.equal(lines.length, 1, run.stdout)
    assert.match(
      lines[0] ?? '',
      new RegExp(
        `^fetched tiny-lm \\(${LM.cid}\\): 4\\.0 MB in [0-9.]+ s, ([0-9.]+ MB/s|at once); blocks from 2 peers: did:key:z6MkfakePeer[AB] 8, did:key:z6MkfakePeer[AB] 8$`,
      ),
    )
    assert.deepEqual(api.calls.fetchModel, [LM.name])

    const json = await runCli(['model', 'fetch', LM.cid, '--json'], { DONGHAE_NODE: url, DONGHAE_API_TOKEN: TOKEN })
    assert.equal(json.code, 0, json.stderr)
    const done = JSON.parse(json.stdout) as FetchJson
    assert.equal(done.state, 'done')
    assert.equal(done.bytes, FAKE_FETCH_BYTES)
    assert.deepEqual(Object.keys(done.fromPeers).sort(), [...FAKE_PEERS].sort())
  })
})

test('donghae model fetch: an unknown model, a wrong token, no token, and a failed fetch exit 1 with one clear line', async () => {
  const home = await mkdtemp(join(tmpdir(), 'donghae-fetch-cli-'))
  try {
    await withNode(async (url, api) => {
      const unknown = await runCli(['model', 'fetch', 'nope', '--node', url, '--token', TOKEN])
      assert.equal(unknown.code, 1)
      assert.match(unknown.stderr, /unknown model "nope"/)
      assert.equal(unknown.stdout, '')

      const wrong = await runCli(['model', 'fetch', LM.name, '--node', url, '--token', 'wrong'])
      assert.equal(wrong.code, 1)
      assert.match(wrong.stderr, /token/i)

      const none = await runCli(['model', 'fetch', LM.name, '--node', url], { DONGHAE_HOME: home })
      assert.equal(none.code, 1)
      assert.match(none.stderr, /needs its operator token: pass --token/)
      assert.deepEqual(api.calls.fetchModel, [], 'nothing reached the fetch')

      api.fetchWith(async (m, onProgress) => {
        onProgress({
          model: m.cid,
          name: m.name,
          bytes: 500_000,
          totalBytes: 1_000_000,
          fromPeers: { [FAKE_PEERS[0] as string]: 2 },
          startedAt: Date.now(),
          state: 'fetching',
        })
        await new Promise((resolve) => setTimeout(resolve, 5))
        throw new InferenceError('no-worker', 'no peer has block bafkreiq')
      })
      const failed = await runCli(['model', 'fetch', LM.name, '--node', url, '--token', TOKEN])
      assert.equal(failed.code, 1)
      assert.match(failed.stderr, /\[#{10}\.{10}\] 50% 0\.5\/1\.0 MB 1 peer\n/, 'where it stopped')
      assert.match(failed.stderr, /no peer has block bafkreiq/)
      assert.equal(failed.stdout, '')
    })
  } finally {
    await rm(home, { recursive: true, force: true })
  }
})

test('client: fetchModel follows the progress and resolves with the finished fetch; fetches lists it; errors are ApiErrors', async () => {
  await withNode(async (url, api) => {
    const client = new DonghaeClient(url, { token: TOKEN })
    const seen: FetchJson[] = []
    const done = await client.fetchModel(LM.name, { onProgress: (p) => seen.push(p) })
    assert.equal(done.state, 'done')
    assert.ok(seen.length >= 2)
    assert.equal(seen.at(-1)?.state, 'done')
    const { fetches } = await new DonghaeClient(url).fetches()
    assert.deepEqual(
      fetches.map((f) => [f.name, f.state]),
      [[LM.name, 'done']],
    )

    await assert.rejects(
      new DonghaeClient(url).fetchModel(LM.name),
      (err) => err instanceof ApiError && err.status === 401 && err.code === 'UNAUTHORIZED',
    )
    await assert.rejects(
      client.fetchModel('nope'),
      (err) => err instanceof ApiError && err.status === 404 && err.code === 'NOT_FOUND',
    )
    api.fetchWith(async () => {
      throw new Error('the disk is full')
    })
    await assert.rejects(
      client.fetchModel(LM.name),
      (err) => err instanceof ApiError && err.code === 'FETCH_FAILED' && /the disk is full/.test(err.message),
    )
  })
})

test('client: chatStream gives the pieces as they come, then the text, usage, worker, fee and receipt', async () => {
  await withNode(async (url, api) => {
    const client = new DonghaeClient(url, { token: TOKEN })
    const pieces: string[] = []
    const out = await client.chatStream(
      { model: LM.name, messages: [{ role: 'user', content: 'hi' }], max_tokens: 8, temperature: 0.5 },
      { onText: (piece) => pieces.push(piece) },
    )
    assert.deepEqual(pieces, ['Hello', ' world'])
    assert.equal(out.text, 'Hello world')
    assert.equal(out.finishReason, 'stop')
    assert.deepEqual(out.usage, { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 })
    assert.equal(out.donghae?.worker, api.workerDid)
    assert.equal(out.donghae?.fee, '9')
    assert.equal(out.donghae?.ttftMs, 12.5)
    assert.equal(out.donghae?.receipts.length, 1)
    assert.equal(out.donghae?.receipt?.id, out.donghae?.receipts[0])
    assert.match(out.id, /^chatcmpl-/)
    assert.deepEqual(api.calls.complete[0], {
      model: LM.name,
      messages: [{ role: 'user', content: 'hi' }],
      maxTokens: 8,
      temperature: 0.5,
    })

    // a failure after the first piece arrives as the stream's error event
    api.completeWith(async (_request, onToken) => {
      onToken?.('Hel')
      await new Promise((resolve) => setTimeout(resolve, 5))
      throw new InferenceError('failed', 'the worker went away')
    })
    const partial: string[] = []
    await assert.rejects(
      client.chatStream(
        { model: LM.name, messages: [{ role: 'user', content: 'hi' }] },
        { onText: (p) => partial.push(p) },
      ),
      (err) => err instanceof ApiError && err.code === 'INFERENCE_FAILED' && /the worker went away/.test(err.message),
    )
    assert.deepEqual(partial, ['Hel'])
    // refused before the stream: the API's own error
    await assert.rejects(
      client.chatStream({ model: 'nope', messages: [{ role: 'user', content: 'hi' }] }),
      (err) => err instanceof ApiError && err.status === 404,
    )
  })
})
