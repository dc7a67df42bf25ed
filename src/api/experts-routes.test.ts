// AI-Block's routes (routes/experts.ts) over the real server code and a test double of ExpertsApi
// (fake-experts.ts): shapes (bigint as strings), 404s, the seed's aliases, operator auth, the
// chunked upload's order and size errors, SSE progress, and POST /chat with use_moe.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { FastifyInstance } from 'fastify'
import { generateApiToken } from './auth.ts'
import { fakeExperts, FAKE_FAMILY, FAKE_HOSTS, type FakeExperts } from './fake-experts.ts'
import { fakeInference } from './fake-inference.ts'
import { createApiServer } from './server.ts'
import { MAX_EXPERT_CHUNK_BYTES } from './routes/experts.ts'
import type { ErrorJson } from './schemas.ts'
import { SseParser } from './sse.ts'
import { actor, makeGenesis } from '../../test/helpers/chain.ts'
import { MemoryChain } from '../../test/helpers/memory-chain.ts'

const TOKEN = generateApiToken()
const auth = { authorization: `Bearer ${TOKEN}` }
const validator = actor()

async function withApp(
  fn: (app: FastifyInstance, api: FakeExperts) => Promise<void>,
  options: { experts?: boolean } = {},
): Promise<void> {
  const api = fakeExperts()
  const app = createApiServer({
    chain: new MemoryChain({ genesis: makeGenesis([validator], []), validators: [validator] }),
    inference: fakeInference(),
    ...(options.experts === false ? {} : { experts: api }),
    operatorToken: TOKEN,
  })
  try {
    await fn(app, api)
  } finally {
    await app.close()
  }
}

const get = (app: FastifyInstance, url: string) => app.inject({ method: 'GET', url })
const post = (app: FastifyInstance, url: string, payload?: unknown, headers: Record<string, string> = auth) =>
  app.inject({
    method: 'POST',
    url,
    headers,
    ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
  })
const errorOf = (res: { json: <T>() => T }) => res.json<ErrorJson>().error

/** The `data:` messages of an SSE answer, and its `event: error` messages. */
function sseMessages(body: string): { data: unknown[]; errors: unknown[]; done: boolean } {
  const out = { data: [] as unknown[], errors: [] as unknown[], done: false }
  for (const m of new SseParser().push(body)) {
    if (m.data === '[DONE]') out.done = true
    else if (m.event === 'error') out.errors.push(JSON.parse(m.data))
    else out.data.push(JSON.parse(m.data))
  }
  return out
}

test('read routes: families, meta, list, show (indexKey), history, dag; bigint fields are decimal strings', async () => {
  await withApp(async (app) => {
    const families = await get(app, '/v1/experts/families')
    assert.equal(families.statusCode, 200, families.body)
    const [family] = families.json<{ families: Array<Record<string, unknown>> }>().families
    assert.equal(family?.family, FAKE_FAMILY)
    assert.deepEqual(family?.score, { lossMicroNats: '2345678', accuracyPpm: 412000 })

    const meta = await get(app, `/v1/experts/meta/${FAKE_FAMILY}`)
    assert.equal(meta.statusCode, 200, meta.body)
    assert.equal(meta.json<{ arch: { expertsPerLayer: number } }>().arch.expertsPerLayer, 4)
    assert.equal((await get(app, `/v1/experts/meta/${FAKE_FAMILY}?version=9`)).statusCode, 404)
    assert.equal((await get(app, '/v1/experts/meta/nope')).statusCode, 404)

    const list = await get(app, `/v1/experts?family=${FAKE_FAMILY}&layer=1`)
    assert.equal(list.statusCode, 200, list.body)
    const experts = list.json<{ experts: Array<{ layer: number; rewards: string; expert: number | null }> }>().experts
    assert.equal(experts.length, 5)
    assert.ok(experts.every((e) => e.layer === 1))
    assert.equal(experts[0]?.expert, null, 'the router first')
    assert.match(experts[1]?.rewards ?? '', /^[0-9]+$/)
    const unknownFamily = await get(app, '/v1/experts?family=other')
    assert.equal(unknownFamily.statusCode, 404)
    assert.match(errorOf(unknownFamily).message, /no MoE family "other"; on chain: tiny-moe/)
    assert.equal((await get(app, '/v1/experts?layer=-1')).statusCode, 400)

    const show = await get(app, '/v1/experts/show/layer0.expert3')
    assert.equal(show.statusCode, 200, show.body)
    const e = show.json<{ name: string; indexKey: string; rewards: string; hosts: string[] }>()
    assert.equal(e.name, 'layer0.expert3')
    assert.match(e.indexKey, /^[0-9a-f]+$/)
    assert.equal(e.rewards, '4000000000000000000', 'rewards beyond 2^53 stay exact')
    assert.equal((await get(app, '/v1/experts/show/layer0.expert99')).statusCode, 404)
    assert.equal((await get(app, '/v1/experts/show/not-a-name')).statusCode, 400)

    const history = await get(app, `/v1/experts/history/layer0.expert1?family=${FAKE_FAMILY}`)
    assert.equal(history.statusCode, 200, history.body)
    const [block] = history.json<{ blocks: Array<{ header: { nonce: string; payloadSig: string } }> }>().blocks
    assert.equal(block?.header.nonce, (2n ** 63n + 5n).toString())
    assert.equal(block?.header.payloadSig, '0102ff')

    const dag = await get(app, `/v1/experts/dag?family=${FAKE_FAMILY}`)
    assert.equal(dag.statusCode, 200, dag.body)
    const d = dag.json<{ meta: { hash: string }; blocks: Array<{ type: string; dependsOn: string[] }> }>()
    assert.equal(d.blocks.length, 10)
    assert.ok(d.blocks.every((b) => b.dependsOn.includes(d.meta.hash)))
    assert.equal((await get(app, '/v1/experts/dag')).statusCode, 200, 'the first family by default')
    assert.equal((await get(app, '/v1/experts/dag?version=2')).statusCode, 404)
  })
})

test('proposals (the accept/reject log), top and stats, and the seed’s aliases', async () => {
  await withApp(async (app) => {
    const all = await get(app, '/v1/experts/proposals')
    assert.equal(all.statusCode, 200, all.body)
    const proposals = all.json<{ proposals: Array<{ id: string; status: string; reason: string; bond: string }> }>()
      .proposals
    assert.deepEqual(
      proposals.map((p) => [p.status, p.reason]),
      [
        ['refused', 'forged-score'],
        ['accepted', ''],
      ],
    )
    assert.equal(proposals[0]?.bond, '10000')
    const refused = await get(app, '/v1/experts/proposals?status=refused&limit=5')
    assert.equal(refused.json<{ proposals: unknown[] }>().proposals.length, 1)
    assert.equal((await get(app, '/v1/experts/proposals?status=maybe')).statusCode, 400)
    const one = await get(app, `/v1/experts/proposals/${proposals[0]?.id ?? ''}`)
    assert.equal(one.statusCode, 200, one.body)
    assert.equal(one.json<{ score: { lossMicroNats: string } }>().score.lossMicroNats, '2500000')
    assert.equal((await get(app, `/v1/experts/proposals/${'ab'.repeat(32)}`)).statusCode, 404)

    const top = await get(app, '/v1/experts/top?limit=3')
    assert.equal(top.statusCode, 200, top.body)
    const calls = top.json<{ experts: Array<{ calls: number }> }>().experts.map((e) => e.calls)
    assert.equal(calls.length, 3)
    assert.deepEqual(
      calls,
      calls.toSorted((a, b) => b - a),
    )
    assert.equal((await get(app, '/experts/top?limit=3')).body, top.body, 'the seed’s path is an alias')

    const stats = await get(app, '/v1/experts/stats/layer1.expert2')
    assert.equal(stats.statusCode, 200, stats.body)
    const s = stats.json<{ name: string; calls: number; rewards: string; hosts: number }>()
    assert.equal(s.name, 'layer1.expert2')
    assert.equal(s.hosts, 1)
    assert.equal((await get(app, '/experts/stats/layer1.expert2')).body, stats.body)
    assert.equal((await get(app, '/experts/stats/layer7.expert2')).statusCode, 404)

    // the aliases stay out of the OpenAPI document
    await app.ready()
    const paths = Object.keys((app as unknown as { swagger(): { paths: Record<string, unknown> } }).swagger().paths)
    assert.ok(paths.includes('/v1/experts/top'))
    assert.ok(!paths.includes('/experts/top'))
  })
})

test('p2p and security: nodes, groups, replication, integrity, node status; quarantine and recover need the token', async () => {
  await withApp(async (app, api) => {
    for (const url of ['/v1/p2p/nodes', '/p2p/nodes']) {
      const res = await get(app, url)
      assert.equal(res.statusCode, 200, res.body)
      assert.equal(res.json<{ nodes: unknown[] }>().nodes.length, 2)
    }
    const groups = await get(app, '/p2p/expert_groups')
    assert.equal(groups.json<{ groups: Array<{ together: number }> }>().groups[0]?.together, 12)
    const suggestions = await get(app, '/v1/p2p/replication_suggestions')
    assert.equal(suggestions.json<{ suggestions: Array<{ wanted: number }> }>().suggestions[0]?.wanted, 3)
    assert.equal((await get(app, '/p2p/replication_suggestions')).statusCode, 200)
    const integrity = await get(app, '/security/integrity_status')
    assert.equal(integrity.statusCode, 200, integrity.body)
    assert.equal(integrity.json<{ auditPpm: number }>().auditPpm, 50_000)

    const did = FAKE_HOSTS[1]
    const status = await get(app, `/v1/security/node_status/${did}`)
    assert.equal(status.statusCode, 200, status.body)
    assert.equal(status.json<{ quarantined: boolean }>().quarantined, false)
    assert.equal((await get(app, `/security/node_status/${did}`)).statusCode, 200)
    assert.equal((await get(app, '/v1/security/node_status/did:key:nope')).statusCode, 400)
    const stranger = 'did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2'
    assert.equal((await get(app, `/v1/security/node_status/${stranger}`)).statusCode, 404)

    for (const url of [`/v1/security/quarantine_node/${did}`, `/security/quarantine_node/${did}`]) {
      const refused = await post(app, url, undefined, {})
      assert.equal(refused.statusCode, 401, url)
      assert.equal(errorOf(refused).code, 'UNAUTHORIZED')
    }
    assert.equal(
      (await post(app, `/v1/security/recover_node/${did}`, undefined, { authorization: 'Bearer nope' })).statusCode,
      401,
    )
    assert.deepEqual(api.calls.quarantine, [], 'nothing reached the service without the token')

    const quarantined = await post(app, `/security/quarantine_node/${did}`)
    assert.equal(quarantined.statusCode, 200, quarantined.body)
    assert.equal(quarantined.json<{ quarantined: boolean }>().quarantined, true)
    assert.deepEqual(integrity.json<{ quarantined: string[] }>().quarantined, [])
    assert.deepEqual((await get(app, '/v1/security/integrity_status')).json<{ quarantined: string[] }>().quarantined, [
      did,
    ])
    const recovered = await post(app, `/v1/security/recover_node/${did}`)
    assert.equal(recovered.json<{ quarantined: boolean }>().quarantined, false)
    assert.equal((await post(app, `/v1/security/quarantine_node/${stranger}`)).statusCode, 404)
  })
})

test('MoE chat: /v1/experts/chat and /chat with use_moe name the experts and nodes per layer; errors are clear', async () => {
  await withApp(async (app, api) => {
    assert.equal((await post(app, '/v1/experts/chat', { prompt: 'hi' }, {})).statusCode, 401)
    const res = await post(app, '/v1/experts/chat', { prompt: 'Call me', top_k_experts: 3, use_distributed: false })
    assert.equal(res.statusCode, 200, res.body)
    const answer = res.json<{
      family: string
      layers: Array<{ layer: number; experts: Array<{ name: string; hosts: string[] }> }>
    }>()
    assert.equal(answer.family, FAKE_FAMILY)
    assert.equal(answer.layers.length, 2)
    assert.equal(answer.layers[0]?.experts.length, 3)
    assert.deepEqual(api.calls.chat[0], { prompt: 'Call me', top_k_experts: 3, use_distributed: false, use_moe: true })
    const tooMany = await post(app, '/v1/experts/chat', { prompt: 'x', top_k_experts: 5 })
    assert.equal(tooMany.statusCode, 400)
    assert.match(errorOf(tooMany).message, /more than the 4 experts per layer/)
    assert.equal((await post(app, '/v1/experts/chat', { prompt: 'x', family: 'other' })).statusCode, 404)
    assert.equal((await post(app, '/v1/experts/chat', {})).statusCode, 400)
    // too few expert hosts answered: the network cannot serve it now (503 with the error's code), not a 500
    const unavailable = await post(app, '/v1/experts/chat', { prompt: '(no hosts)' })
    assert.equal(unavailable.statusCode, 503, unavailable.body)
    assert.equal(unavailable.json<ErrorJson>().error.code, 'EXPERTS_BELOW_KMIN')
    assert.equal((await post(app, '/v1/experts/chat', { prompt: 'x', bogus: 1 })).statusCode, 400)

    // POST /chat: use_moe goes to the experts service, with use_distributed and top_k_experts
    const chat = await post(app, '/chat', { prompt: 'Hello there', use_moe: true, top_k_experts: 2 })
    assert.equal(chat.statusCode, 200, chat.body)
    const body = chat.json<{
      response: string
      model: string
      moe: boolean
      distributed: boolean
      experts: Array<{ layer: number; experts: Array<{ name: string; hosts: string[] }> }>
    }>()
    assert.equal(body.moe, true)
    assert.equal(body.model, FAKE_FAMILY)
    assert.equal(body.distributed, true)
    assert.deepEqual(
      body.experts.map((l) => l.experts.map((e) => e.name)),
      [
        ['layer0.expert0', 'layer0.expert1'],
        ['layer1.expert0', 'layer1.expert1'],
      ],
    )
    assert.ok(body.experts[0]?.experts[0]?.hosts[0]?.startsWith('did:key:'))
    assert.deepEqual(api.calls.chat.at(-1), { prompt: 'Hello there', use_moe: true, top_k_experts: 2 })
    const local = await post(app, '/chat', { prompt: 'x', use_moe: true, use_distributed: false, model: FAKE_FAMILY })
    assert.equal(local.json<{ distributed: boolean }>().distributed, false)
    assert.equal(api.calls.chat.at(-1)?.family, FAKE_FAMILY)
    assert.equal((await post(app, '/chat', { prompt: 'x', use_moe: true, top_k_experts: 0 })).statusCode, 400)

    // without use_moe: the text model, as before
    const plain = await post(app, '/chat', { prompt: 'x' })
    assert.equal(plain.statusCode, 200, plain.body)
    assert.equal(plain.json<{ model: string; moe?: boolean }>().moe, undefined)
    assert.ok(
      api.calls.chatAborted.every((a) => !a),
      'a client waiting for the answer does not abort the chat',
    )

    // no family on chain: 404 naming the way out
    api.familyList = []
    const none = await post(app, '/chat', { prompt: 'x', use_moe: true })
    assert.equal(none.statusCode, 404)
    assert.match(errorOf(none).message, /no MoE family is on chain yet.*experts import/)
  })
  await withApp(
    async (app) => {
      const none = await post(app, '/chat', { prompt: 'x', use_moe: true })
      assert.equal(none.statusCode, 404)
      assert.match(errorOf(none).message, /no AI-Block experts service/)
      const plain = await post(app, '/chat', { prompt: 'x' })
      assert.equal(plain.statusCode, 200, 'the text model still answers')
      for (const url of ['/v1/experts/families', '/experts/top', '/p2p/nodes', '/v1/security/integrity_status']) {
        const res = await get(app, url)
        assert.equal(res.statusCode, 404, url)
        assert.match(errorOf(res).message, /no AI-Block experts service/)
      }
    },
    { experts: false },
  )
})

test('propose and import answer SSE: progress lines, the result, [DONE]; bad requests are plain errors; operator only', async () => {
  await withApp(async (app, api) => {
    const body = { expert: 'layer0.expert3', weightsPath: '/data/e3.safetensors' }
    assert.equal((await post(app, '/v1/operator/experts/propose', body, {})).statusCode, 401)
    const res = await post(app, '/v1/operator/experts/propose', body)
    assert.equal(res.statusCode, 200)
    assert.match(String(res.headers['content-type']), /^text\/event-stream/)
    const { data, errors, done } = sseMessages(res.body)
    assert.ok(done)
    assert.deepEqual(errors, [])
    const lines = data.filter((m) => 'progress' in (m as object)).map((m) => (m as { progress: string }).progress)
    assert.equal(lines.length, 3)
    const result = (data.at(-1) as { result: { proposal: string; powNonce: string; claim: { lossMicroNats: string } } })
      .result
    assert.equal(result.powNonce, '18446744073709551615')
    assert.equal(result.claim.lossMicroNats, '2345678')
    assert.match(result.proposal, /^[0-9a-f]{64}$/)

    const train = await post(app, '/v1/operator/experts/propose', {
      expert: 'layer1.router',
      train: { steps: 10, dataset: 'bafkreidata' },
    })
    assert.ok(sseMessages(train.body).data.some((m) => 'result' in (m as object)))
    assert.deepEqual(api.calls.propose.at(-1)?.train, { steps: 10, dataset: 'bafkreidata' })

    const bad = async (payload: unknown, status: number, pattern: RegExp): Promise<void> => {
      const r = await post(app, '/v1/operator/experts/propose', payload)
      assert.equal(r.statusCode, status, r.body)
      assert.match(errorOf(r).message, pattern)
    }
    await bad({ expert: 'layer0.expert3' }, 400, /exactly one of weightsPath/)
    await bad({ ...body, train: { steps: 1 } }, 400, /exactly one of weightsPath/)
    await bad({ expert: 'layer0.expert3', weightsPath: 'e3.safetensors' }, 400, /absolute path/)
    await bad({ expert: 'expert3', weightsPath: '/e3' }, 400, /expert/)
    await bad({ ...body, family: 'other' }, 404, /no MoE family/)
    assert.equal(api.calls.propose.length, 2, 'refused requests reached nothing')

    // a failure after the stream opened: event: error, then [DONE]
    const broken = await post(app, '/v1/operator/experts/propose', { ...body, weightsPath: '/data/broken.st' })
    const failed = sseMessages(broken.body)
    assert.ok(failed.done)
    assert.deepEqual(failed.errors, [{ error: { code: 'BAD_REQUEST', message: 'the file is not safetensors' } }])

    assert.equal((await post(app, '/v1/operator/experts/import', { dir: '/m', family: 'x' }, {})).statusCode, 401)
    assert.equal((await post(app, '/v1/operator/experts/import', { dir: 'm', family: 'x' })).statusCode, 400)
    const imported = await post(app, '/v1/operator/experts/import', { dir: '/models/mixtral', family: 'mix' })
    const msgs = sseMessages(imported.body)
    assert.ok(msgs.done)
    assert.deepEqual((msgs.data.at(-1) as { result: unknown }).result, {
      family: 'mix',
      version: 2,
      blocks: 10,
      proposal: (msgs.data.at(-1) as { result: { proposal: string } }).result.proposal,
    })
    assert.deepEqual(api.calls.import, [{ dir: '/models/mixtral', family: 'mix' }])

    // a fork: the next MetaBlock version with new router rules; operator only, bounded, 404 unknown
    assert.equal((await post(app, '/v1/operator/experts/fork', { family: 'tiny-moe', topK: 3 }, {})).statusCode, 401)
    assert.equal((await post(app, '/v1/operator/experts/fork', { family: 'tiny-moe', topK: 0 })).statusCode, 400)
    assert.equal((await post(app, '/v1/operator/experts/fork', { family: 'tiny-moe', colour: 'red' })).statusCode, 400)
    assert.equal((await post(app, '/v1/operator/experts/fork', { family: 'nope', topK: 3 })).statusCode, 404)
    const forked = await post(app, '/v1/operator/experts/fork', { family: 'tiny-moe', topK: 3 })
    assert.equal(forked.statusCode, 200, forked.body)
    assert.deepEqual(Object.keys(JSON.parse(forked.body) as object).sort(), ['carried', 'family', 'txHash', 'version'])
  })
})

test('chunked upload: begin, chunks in order (raw bytes), finish proposes; order, size, type and auth errors', async () => {
  await withApp(async (app, api) => {
    const put = (url: string, payload: Buffer, headers: Record<string, string> = auth) =>
      app.inject({ method: 'PUT', url, headers: { 'content-type': 'application/octet-stream', ...headers }, payload })
    assert.equal(
      (await post(app, '/v1/operator/experts/uploads', { expert: 'layer0.expert1', bytes: 10 }, {})).statusCode,
      401,
    )
    const begun = await post(app, '/v1/operator/experts/uploads', { expert: 'layer0.expert1', bytes: 10 })
    assert.equal(begun.statusCode, 201, begun.body)
    const { upload, chunkBytes, chunks } = begun.json<{ upload: string; chunkBytes: number; chunks: number }>()
    assert.equal(chunkBytes, 4)
    assert.equal(chunks, 3)
    const base = `/v1/operator/experts/uploads/${upload}`
    const file = Buffer.from('0123456789')

    assert.equal((await put(`${base}/chunks/0`, file.subarray(0, 4), {})).statusCode, 401)
    const outOfOrder = await put(`${base}/chunks/1`, file.subarray(4, 8))
    assert.equal(outOfOrder.statusCode, 409)
    assert.equal(errorOf(outOfOrder).code, 'CONFLICT')
    assert.match(errorOf(outOfOrder).message, /out of order.*expects chunk 0/)
    const early = await post(app, `${base}/finish`)
    assert.equal(early.statusCode, 409, 'a finish before the last chunk is a plain error')
    assert.match(errorOf(early).message, /0 of its 10 bytes/)

    const first = await put(`${base}/chunks/0`, file.subarray(0, 4))
    assert.equal(first.statusCode, 200, first.body)
    assert.deepEqual(first.json(), { upload, chunk: 0, received: 4 })
    const tooBig = await put(`${base}/chunks/1`, file.subarray(4, 10))
    assert.equal(tooBig.statusCode, 413)
    const json = await app.inject({
      method: 'PUT',
      url: `${base}/chunks/1`,
      headers: { ...auth, 'content-type': 'application/json' },
      payload: '{}',
    })
    assert.equal(json.statusCode, 415)
    assert.equal((await put(`${base}/chunks/1`, Buffer.alloc(0))).statusCode, 400)
    assert.equal((await put(`${base}/chunks/1`, file.subarray(4, 8))).statusCode, 200)
    assert.equal((await put(`${base}/chunks/2`, file.subarray(8, 10))).json<{ received: number }>().received, 10)
    assert.equal(Buffer.from(api.uploaded(upload) ?? []).toString(), '0123456789')

    const finished = await post(app, `${base}/finish`)
    assert.equal(finished.statusCode, 200)
    const { data, done } = sseMessages(finished.body)
    assert.ok(done)
    assert.match((data.at(-1) as { result: { block: string } }).result.block, /^[0-9a-f]{64}$/)

    assert.equal((await put('/v1/operator/experts/uploads/nope/chunks/0', file.subarray(0, 4))).statusCode, 404)
    assert.equal((await post(app, '/v1/operator/experts/uploads/nope/finish')).statusCode, 404)
    const huge = await put(`${base}/chunks/3`, Buffer.alloc(MAX_EXPERT_CHUNK_BYTES + 1))
    assert.equal(huge.statusCode, 413)
    assert.equal(
      (await post(app, '/v1/operator/experts/uploads', { expert: 'layer9.expert1', bytes: 10 })).statusCode,
      400,
    )
  })
})

test('the client and `donghae experts …` over HTTP: list, show, proposals, propose --upload --wait, import, chat', async () => {
  const { run } = await import('../cli/main.ts')
  const { DonghaeClient } = await import('./client.ts')
  const { PassThrough } = await import('node:stream')
  const { mkdtemp, rm, writeFile } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  await withApp(async (app, api) => {
    const url = await app.listen({ host: '127.0.0.1', port: 0 })
    const dir = await mkdtemp(join(tmpdir(), 'donghae-experts-cli-'))
    try {
      const cli = async (...args: string[]): Promise<{ code: number; out: string; err: string }> => {
        let out = ''
        let err = ''
        const stdout = new PassThrough()
        const stderr = new PassThrough()
        stdout.on('data', (c: Buffer) => (out += c.toString()))
        stderr.on('data', (c: Buffer) => (err += c.toString()))
        const code = await run(['--home', dir, ...args, '--node', url], {
          stdout,
          stderr: stderr as unknown as NodeJS.WriteStream,
          stdin: new PassThrough() as unknown as NodeJS.ReadStream,
          env: { DONGHAE_API_TOKEN: TOKEN },
        })
        await new Promise((r) => setImmediate(r))
        return { code, out, err }
      }
      const client = new DonghaeClient(url, { token: TOKEN })
      assert.equal((await client.expertFamilies()).families[0]?.family, FAKE_FAMILY)
      assert.equal((await client.expertDag()).blocks.length, 10)
      assert.equal((await client.topExperts({ limit: 2 })).experts.length, 2)
      assert.equal((await client.expertHosts()).nodes.length, 2)

      const list = await cli('experts', 'list', '--layer', '0')
      assert.equal(list.code, 0, list.err)
      assert.match(list.out, /tiny-moe v1\n {2}layer0\.router/)
      assert.equal(list.out.trim().split('\n').length, 6)
      const listed = await cli('experts', 'list', '--family', FAKE_FAMILY, '--json')
      assert.equal((JSON.parse(listed.out) as unknown[]).length, 10)
      assert.equal((await cli('experts', 'list', '--layer', 'x')).code, 1)

      const show = await cli('experts', 'show', 'layer0.expert3')
      assert.equal(show.code, 0, show.err)
      assert.match(show.out, /rewards +4000000000000000000/)
      assert.match(show.out, /index key +[0-9a-f]+/)
      assert.equal((await cli('experts', 'show', 'expert3')).code, 1)
      assert.match((await cli('experts', 'show', 'layer5.expert3')).err, /no current block/)
      assert.equal((await cli('experts', 'history', 'layer0.expert1')).code, 0)
      assert.match((await cli('experts', 'top', '--limit', '2')).out, /^ {2}1\. tiny-moe layer/)
      const refused = await cli('experts', 'proposals', '--status', 'refused')
      assert.match(refused.out, /refused \(forged-score\)/)
      assert.equal((await cli('experts', 'proposals', '--status', 'nope')).code, 1)

      // --weights is sent as an absolute path; --upload sends the bytes in chunks
      const proposed = await cli('experts', 'propose', '--expert', 'layer0.expert3', '--weights', 'e3.safetensors')
      assert.equal(proposed.code, 0, proposed.err)
      assert.equal(api.calls.propose.at(-1)?.weightsPath, join(process.cwd(), 'e3.safetensors'))
      assert.match(proposed.err, /scoring on the validation set/)
      assert.match(proposed.out, /^proposal [0-9a-f]{64}/)
      const file = join(dir, 'e3.safetensors')
      await writeFile(file, 'abcdefghij')
      // the fake's proposal ids are not in its log: --wait polls until the timeout
      const waited = await cli(
        'experts',
        'propose',
        '--expert',
        'layer0.expert3',
        '--weights',
        file,
        '--upload',
        '--wait',
        '--timeout',
        '1',
      )
      assert.equal(waited.code, 1)
      assert.match(waited.err, /sent chunk 3\/3/)
      assert.match(waited.err, /was not decided in time/)
      assert.equal(Buffer.from(api.uploaded('up0') ?? []).toString(), 'abcdefghij')
      assert.equal((await cli('experts', 'propose', '--expert', 'layer0.expert3')).code, 1)
      assert.equal((await cli('experts', 'propose', '--expert', 'layer0.expert3', '--train')).code, 1)
      const trained = await cli('experts', 'propose', '--expert', 'layer0.expert3', '--train', '--steps', '5', '--json')
      assert.equal(trained.code, 0, trained.err)
      assert.equal((JSON.parse(trained.out) as { powNonce: string }).powNonce, '18446744073709551615')

      const decided = await client.waitForProposal(api.proposals({})[0]?.id ?? '', { intervalMs: 10 })
      assert.equal(decided.status, 'refused')

      const imported = await cli('experts', 'import', dir, '--family', 'mix')
      assert.equal(imported.code, 0, imported.err)
      assert.match(imported.out, /imported mix v2: 10 blocks/)
      assert.deepEqual(api.calls.import.at(-1), { dir, family: 'mix' })

      const chat = await cli('experts', 'chat', 'Call me Ishmael.', '--top-k', '1', '--local')
      assert.equal(chat.code, 0, chat.err)
      assert.match(chat.out, /layer 0: expert0 ×16 @ local/)
      assert.deepEqual(api.calls.chat.at(-1), {
        prompt: 'Call me Ishmael.',
        top_k_experts: 1,
        use_distributed: false,
        use_moe: true,
      })
      const noToken = await run(['--home', dir, 'experts', 'chat', 'x', '--node', url], {
        stdout: new PassThrough(),
        stderr: new PassThrough() as unknown as NodeJS.WriteStream,
        stdin: new PassThrough() as unknown as NodeJS.ReadStream,
        env: {},
      })
      assert.equal(noToken, 1, 'no token, no chat')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
