// Operator routes over a real in-process chain (StateMachine, Mempool, state tree): the bearer
// token guards everything that spends the node's funds; without it nothing changes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import { toHex } from '../src/core/bytes.ts'
import { encodeTx, signTx } from '../src/chain/tx.ts'
import { createApiServer, type ApiServerOptions } from '../src/api/server.ts'
import { OPERATOR_SECURITY, generateApiToken, requireOperator } from '../src/api/auth.ts'
import type { OperatorApi } from '../src/api/operator-api.ts'
import type { AccountJson, ErrorJson, StatusJson } from '../src/api/schemas.ts'
import { actor, makeGenesis, type Actor } from './helpers/chain.ts'
import { MemoryChain } from './helpers/memory-chain.ts'

const node = actor()
const bob = actor()
const genesis = makeGenesis([node], [[node, 1_000_000n]])
const TOKEN = generateApiToken()

/** The node's own key signing transfers, as FullNode does through DonghaeNode.submitOwnTx. */
function operatorOver(chain: MemoryChain, self: Actor): OperatorApi {
  return {
    did: self.did,
    transfer: async ({ to, amount, memo, fee }) => {
      const nonce = BigInt(chain.account(self.did).nonce) + BigInt(chain.mempool.pendingFrom(self.did))
      const body = memo === undefined ? { to, amount } : { to, amount, memo }
      const tx = signTx(self.key, { chainId: genesis.chainId, nonce, fee: fee ?? 1n, kind: 'bank.transfer', body })
      const { hash } = await chain.submitTx(encodeTx(tx))
      return { hash, nonce }
    },
  }
}

async function withApp(
  options: Partial<ApiServerOptions>,
  fn: (app: FastifyInstance, chain: MemoryChain) => Promise<void>,
): Promise<void> {
  const chain = new MemoryChain({ genesis, validators: [node] })
  const app = createApiServer({ chain, operator: operatorOver(chain, node), operatorToken: TOKEN, ...options })
  try {
    await fn(app, chain)
  } finally {
    await app.close()
  }
}

function transfer(app: FastifyInstance, body: unknown, authorization?: string) {
  return app.inject({
    method: 'POST',
    url: '/v1/operator/transfer',
    headers: authorization === undefined ? {} : { authorization },
    payload: body as Record<string, unknown>,
  })
}

async function snapshot(app: FastifyInstance): Promise<unknown> {
  const status = (await app.inject('/v1/status')).json<StatusJson>()
  const accounts = await Promise.all(
    [node, bob].map(async (a) => (await app.inject(`/v1/accounts/${a.did}`)).json<AccountJson>()),
  )
  return { root: status.stateRoot, mempool: status.mempool, accounts }
}

test('operator routes without the token, or with a wrong one: 401 UNAUTHORIZED, and nothing changes', async () => {
  await withApp({}, async (app, chain) => {
    const before = await snapshot(app)
    const body = { to: bob.did, amount: '500' }
    for (const authorization of [
      undefined,
      '',
      'Bearer',
      `Bearer ${TOKEN}x`,
      `Bearer ${TOKEN.slice(1)}`,
      `Basic ${Buffer.from(`op:${TOKEN}`).toString('base64')}`,
      TOKEN,
    ]) {
      const res = await transfer(app, body, authorization)
      assert.equal(res.statusCode, 401, String(authorization))
      const error = res.json<ErrorJson>().error
      assert.equal(error.code, 'UNAUTHORIZED')
      assert.ok(!error.message.includes(TOKEN), 'the token never appears in a message')
      assert.match(String(res.headers['www-authenticate']), /^Bearer/)
    }
    // The token is checked before the body is read: a malformed body without it is 401 too.
    assert.equal((await transfer(app, { to: bob.did }, undefined)).statusCode, 401)
    assert.equal((await app.inject('/v1/operator')).statusCode, 401)
    assert.deepEqual(await snapshot(app), before, 'no transaction was signed or admitted')
    assert.equal(chain.mempool.size, 0)
  })
})

test('operator transfer with the token: 202, signed with the node key, committed, memo kept; GET /v1/operator', async () => {
  await withApp({}, async (app, chain) => {
    const who = await app.inject({ url: '/v1/operator', headers: { authorization: `Bearer ${TOKEN}` } })
    assert.equal(who.statusCode, 200)
    assert.deepEqual(who.json(), { did: node.did })
    const first = await transfer(app, { to: bob.did, amount: '500', memo: 'lunch' }, `bearer  ${TOKEN}`)
    assert.equal(first.statusCode, 202, first.body)
    const sent = first.json<{ hash: string; from: string; nonce: string }>()
    assert.match(sent.hash, /^[0-9a-f]{64}$/)
    assert.deepEqual([sent.from, sent.nonce], [node.did, '0'])
    const second = await transfer(app, { to: bob.did, amount: '25', fee: '3' }, `Bearer ${TOKEN}`)
    assert.equal(second.json<{ nonce: string }>().nonce, '1', 'the next nonce follows the pending one')
    chain.commitPending()
    assert.equal((await app.inject(`/v1/tx/${sent.hash}`)).statusCode, 200)
    assert.equal((await app.inject(`/v1/accounts/${bob.did}`)).json<AccountJson>().balance, '525')
    const block = (await app.inject('/v1/chain/blocks/1')).json<{ txs: Array<{ sender: string; body: unknown }> }>()
    assert.equal(block.txs[0]?.sender, node.did)
    assert.deepEqual(block.txs[0]?.body, { to: bob.did, amount: '500', memo: toHex(Buffer.from('lunch')) })
    assert.equal((await app.inject(`/v1/accounts/${node.did}`)).json<AccountJson>().nonce, '2')
  })
})

test('operator transfer: malformed bodies are 400 with a useful message; refused transfers say why', async () => {
  await withApp({}, async (app, chain) => {
    const auth = `Bearer ${TOKEN}`
    const cases: Array<[unknown, number, string, RegExp]> = [
      [{ amount: '5' }, 400, 'BAD_REQUEST', /to/],
      [{ to: bob.did }, 400, 'BAD_REQUEST', /amount/],
      [{ to: bob.did, amount: '0' }, 400, 'BAD_REQUEST', /amount/],
      [{ to: bob.did, amount: '-1' }, 400, 'BAD_REQUEST', /amount/],
      [{ to: bob.did, amount: '1.5' }, 400, 'BAD_REQUEST', /amount/],
      [{ to: bob.did, amount: '99999999999999999999' }, 400, 'BAD_REQUEST', /amount/],
      [{ to: bob.did, amount: '5', extra: true }, 400, 'BAD_REQUEST', /additional properties/],
      [{ to: 'did:key:nope', amount: '5' }, 400, 'INVALID_DID', /did/i],
      [{ to: bob.did, amount: '5', memo: '한'.repeat(400) }, 400, 'BAD_REQUEST', /memo is 1200 bytes/],
      [{ to: bob.did, amount: '2000000' }, 400, 'TX_REJECTED', /holds 1000000 and this transfer needs 2000000/],
    ]
    for (const [body, status, code, message] of cases) {
      const res = await transfer(app, body, auth)
      assert.equal(res.statusCode, status, JSON.stringify(body))
      const error = res.json<ErrorJson>().error
      assert.equal(error.code, code, JSON.stringify(body))
      assert.match(error.message, message, JSON.stringify(body))
    }
    const notJson = await app.inject({
      method: 'POST',
      url: '/v1/operator/transfer',
      headers: { authorization: auth, 'content-type': 'application/json' },
      payload: '{"to":',
    })
    assert.equal(notJson.statusCode, 400)
    chain.commitPending()
    assert.equal((await app.inject(`/v1/accounts/${bob.did}`)).json<AccountJson>().balance, '0')
  })
})

test('a node without an operator token refuses every operator route with a clear 401', async () => {
  await withApp({ operatorToken: undefined }, async (app) => {
    const res = await transfer(app, { to: bob.did, amount: '5' }, `Bearer ${TOKEN}`)
    assert.equal(res.statusCode, 401)
    assert.match(res.json<ErrorJson>().error.message, /no operator token/)
  })
})

test('requireOperator guards any route a plugin adds; the OpenAPI document declares the bearer scheme', async () => {
  const charged: string[] = []
  const plugin: FastifyPluginAsync = async (app) => {
    app.post('/v1/infer-like', {
      preHandler: requireOperator,
      schema: { security: OPERATOR_SECURITY },
      handler: async () => {
        charged.push('run')
        return { ok: true }
      },
    })
  }
  await withApp({}, async (app) => {
    app.register(plugin)
    assert.equal((await app.inject({ method: 'POST', url: '/v1/infer-like' })).statusCode, 401)
    assert.deepEqual(charged, [], 'the handler never ran')
    const ok = await app.inject({
      method: 'POST',
      url: '/v1/infer-like',
      headers: { authorization: `Bearer ${TOKEN}` },
    })
    assert.equal(ok.statusCode, 200)
    assert.deepEqual(charged, ['run'])
    const doc = (await app.inject('/docs/json')).json<{
      components: { securitySchemes: Record<string, { type: string; scheme: string }> }
      paths: Record<string, Record<string, { security?: unknown }>>
    }>()
    assert.deepEqual(
      {
        type: doc.components.securitySchemes.operatorToken?.type,
        scheme: doc.components.securitySchemes.operatorToken?.scheme,
      },
      { type: 'http', scheme: 'bearer' },
    )
    assert.deepEqual(doc.paths['/v1/operator/transfer']?.post?.security, [{ operatorToken: [] }])
    assert.deepEqual(doc.paths['/v1/infer-like']?.post?.security, [{ operatorToken: [] }])
    assert.equal(doc.paths['/v1/status']?.get?.security, undefined, 'read-only routes stay open')
  })
})

test('rate limits cover operator routes too: past the limit, 429 RATE_LIMITED even with the token', async () => {
  await withApp({ rateLimit: { max: 3, timeWindowMs: 60_000 } }, async (app) => {
    const auth = `Bearer ${TOKEN}`
    for (let i = 0; i < 3; i++) assert.equal((await transfer(app, { to: bob.did, amount: '1' }, auth)).statusCode, 202)
    const limited = await transfer(app, { to: bob.did, amount: '1' }, auth)
    assert.equal(limited.statusCode, 429)
    assert.equal(limited.json<ErrorJson>().error.code, 'RATE_LIMITED')
  })
})
