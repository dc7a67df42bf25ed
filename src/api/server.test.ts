// The HTTP API over a real in-process chain (real StateMachine, Mempool, state tree), through
// app.inject and through a listening socket with DonghaeClient.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import fc from 'fast-check'
import type { FastifyInstance } from 'fastify'
import { toHex, utf8 } from '../core/bytes.ts'
import { AbortError, InvalidInputError } from '../core/errors.ts'
import { createLogger } from '../core/logger.ts'
import { encodeTx, signTx, txHash, type SignedTx } from '../chain/tx.ts'
import { decodeProof, verifyProof } from '../chain/state/proof.ts'
import { actor, makeGenesis, type Actor } from '../../test/helpers/chain.ts'
import { MemoryChain } from '../../test/helpers/memory-chain.ts'
import { FAST_PARAMS, testNet, waitFor } from '../../test/helpers/chain-net.ts'
import type { ChainApi } from './chain-api.ts'
import { DonghaeClient } from './client.ts'
import { ApiError } from './errors.ts'
import { decodeTxText, submitManyLimit } from './routes/chain.ts'
import { createApiServer, type ApiServerOptions } from './server.ts'
import { MAX_SUBMIT_TXS } from './schemas.ts'
import type { AccountJson, BlockJson, ErrorJson, ProofJson, StatusJson, SubmitTxsJson } from './schemas.ts'

const validator = actor()
const alice = actor()
const bob = actor()
const genesis = makeGenesis([validator], [[alice, 1_000_000n]])

function newChain(): MemoryChain {
  return new MemoryChain({ genesis, validators: [validator], moniker: 'test-node' })
}

function transfer(from: Actor, nonce: bigint, amount = 100n, overrides: { chainId?: string } = {}): SignedTx {
  return signTx(from.key, {
    chainId: overrides.chainId ?? genesis.chainId,
    nonce,
    fee: 1n,
    kind: 'bank.transfer',
    body: { to: bob.did, amount },
  })
}

async function withApp(
  options: Partial<ApiServerOptions>,
  fn: (app: FastifyInstance, chain: MemoryChain) => Promise<void>,
): Promise<void> {
  const chain = newChain()
  const app = createApiServer({ chain, ...options })
  try {
    await fn(app, chain)
  } finally {
    await app.close()
  }
}

async function get<T>(app: FastifyInstance, url: string): Promise<{ status: number; body: T }> {
  const res = await app.inject({ method: 'GET', url })
  return { status: res.statusCode, body: res.json<T>() }
}

async function post<T>(app: FastifyInstance, payload: unknown): Promise<{ status: number; body: T }> {
  const res = await app.inject({ method: 'POST', url: '/v1/tx', payload: payload as Record<string, unknown> })
  return { status: res.statusCode, body: res.json<T>() }
}

test('GET /v1/status: chain, height, ids as hex, voting power as a decimal string', async () => {
  await withApp({}, async (app, chain) => {
    const { status, body } = await get<StatusJson>(app, '/v1/status')
    assert.equal(status, 200)
    assert.equal(body.chainId, 'donghae-test')
    assert.equal(body.did, validator.did)
    assert.equal(body.moniker, 'test-node')
    assert.equal(body.height, 0)
    assert.match(body.latestBlockId, /^[0-9a-f]{64}$/)
    assert.equal(body.stateRoot, toHex(chain.state.root()))
    assert.deepEqual(body.consensus, { height: 1, round: 0, step: 'propose', idle: false })
    assert.deepEqual(body.validators, [{ did: validator.did, power: '10000' }])
    assert.deepEqual(body.mempool, { size: 0, bytes: 0 })
    assert.equal(body.peers, 0)
  })
})

test('GET /v1/accounts/:did: balances and stake as strings; an invalid DID is 400 with the did:key reason', async () => {
  await withApp({}, async (app) => {
    const a = await get<AccountJson>(app, `/v1/accounts/${alice.did}`)
    assert.equal(a.status, 200)
    assert.deepEqual(a.body, { did: alice.did, balance: '1000000', nonce: '0', stake: null })
    const v = await get<AccountJson>(app, `/v1/accounts/${encodeURIComponent(validator.did)}`)
    assert.deepEqual(v.body.stake, { bonded: '10000', jailed: false, jailedUntil: 0, tombstoned: false, unbonding: [] })
    const bad = await get<ErrorJson>(app, '/v1/accounts/did:key:notbase58!')
    assert.equal(bad.status, 400)
    assert.equal(bad.body.error.code, 'INVALID_DID')
    assert.equal(bad.body.error.reason, 'invalidDid')
    const other = await get<ErrorJson>(app, '/v1/accounts/did:web:example.com')
    assert.equal(other.status, 400)
    assert.equal(other.body.error.reason, 'invalidDid')
  })
})

test('POST /v1/tx: accepted (202), then committed, then visible in the block, the account and the tx index', async () => {
  await withApp({}, async (app, chain) => {
    const bytes = encodeTx(transfer(alice, 0n, 250n))
    const submitted = await post<{ hash: string }>(app, { tx: toHex(bytes) })
    assert.equal(submitted.status, 202)
    assert.match(submitted.body.hash, /^[0-9a-f]{64}$/)
    const pending = await get<ErrorJson>(app, `/v1/tx/${submitted.body.hash}`)
    assert.equal(pending.status, 404)
    assert.equal(pending.body.error.code, 'NOT_FOUND')
    assert.deepEqual((await get<StatusJson>(app, '/v1/status')).body.mempool, { size: 1, bytes: bytes.length })

    chain.commitPending()

    assert.deepEqual((await get(app, `/v1/tx/${submitted.body.hash.toUpperCase()}`)).body, {
      hash: submitted.body.hash,
      height: 1,
      ok: true,
    })
    assert.deepEqual((await get<AccountJson>(app, `/v1/accounts/${alice.did}`)).body, {
      did: alice.did,
      balance: '999749',
      nonce: '1',
      stake: null,
    })
    assert.equal((await get<AccountJson>(app, `/v1/accounts/${bob.did}`)).body.balance, '250')
    const block = await get<BlockJson>(app, '/v1/chain/blocks/1')
    assert.equal(block.status, 200)
    assert.equal(block.body.height, 1)
    assert.match(block.body.hash, /^[0-9a-f]{64}$/)
    assert.equal(block.body.header.proposer, validator.did)
    assert.equal(block.body.header.stateRoot, toHex(chain.state.root()))
    assert.deepEqual(block.body.txs, [
      {
        hash: submitted.body.hash,
        sender: alice.did,
        nonce: '0',
        fee: '1',
        kind: 'bank.transfer',
        body: { to: bob.did, amount: '250' },
      },
    ])
    assert.equal(block.body.lastCommit, null)
    assert.deepEqual(block.body.commit, {
      height: 1,
      round: 0,
      blockId: block.body.hash,
      precommits: 1,
      signers: [validator.did],
    })
    assert.equal((await get<StatusJson>(app, '/v1/status')).body.height, 1)
  })
})

test('GET /v1/tx: a transaction whose body fails is committed as failed, with its reason, and pays its fee', async () => {
  await withApp({}, async (app, chain) => {
    // Unbonding stake alice never bonded: the ante checks pass (signature, nonce, fee), the body fails.
    const unbond = signTx(alice.key, {
      chainId: genesis.chainId,
      nonce: 0n,
      fee: 7n,
      kind: 'staking.unbond',
      body: { amount: 5n },
    })
    const submitted = await post<{ hash: string }>(app, { tx: toHex(encodeTx(unbond)) })
    assert.equal(submitted.status, 202)
    chain.commitPending()
    assert.deepEqual((await get(app, `/v1/tx/${submitted.body.hash}`)).body, {
      hash: submitted.body.hash,
      height: 1,
      ok: false,
      reason: 'insufficient-stake',
    })
    const account = (await get<AccountJson>(app, `/v1/accounts/${alice.did}`)).body
    assert.deepEqual([account.balance, account.nonce], ['999993', '1'], 'the fee is charged and the nonce used')
  })
})

test('POST /v1/tx accepts base64 and 0x-hex; transfers with a memo show it as hex', async () => {
  await withApp({}, async (app, chain) => {
    const memo = signTx(alice.key, {
      chainId: genesis.chainId,
      nonce: 0n,
      fee: 1n,
      kind: 'bank.transfer',
      body: { to: bob.did, amount: 5n, memo: utf8('hi') },
    })
    assert.equal((await post(app, { tx: Buffer.from(encodeTx(memo)).toString('base64') })).status, 202)
    assert.equal((await post(app, { tx: `0x${toHex(encodeTx(transfer(alice, 1n)))}` })).status, 202)
    chain.commitPending()
    const block = await get<BlockJson>(app, '/v1/chain/blocks/1')
    assert.equal(block.body.txs.length, 2)
    assert.deepEqual(block.body.txs[0]?.body, { to: bob.did, amount: '5', memo: toHex(utf8('hi')) })
  })
})

test('malformed bodies are 400 with a useful message; oversized bodies are 413', async () => {
  await withApp({}, async (app) => {
    const missing = await post<ErrorJson>(app, {})
    assert.equal(missing.status, 400)
    assert.equal(missing.body.error.code, 'BAD_REQUEST')
    assert.match(missing.body.error.message, /tx/)
    const extra = await post<ErrorJson>(app, { tx: 'a7', more: 1 })
    assert.equal(extra.status, 400)
    assert.match(extra.body.error.message, /additional properties/)
    const notEncoded = await post<ErrorJson>(app, { tx: 'not an encoding!' })
    assert.equal(notEncoded.status, 400)
    assert.match(notEncoded.body.error.message, /hex or base64/)
    const garbage = await post<ErrorJson>(app, { tx: 'deadbeef' })
    assert.equal(garbage.status, 400)
    assert.deepEqual([garbage.body.error.code, garbage.body.error.reason], ['TX_REJECTED', 'malformed'])
    const notJson = await app.inject({
      method: 'POST',
      url: '/v1/tx',
      headers: { 'content-type': 'application/json' },
      payload: '{"tx":',
    })
    assert.equal(notJson.statusCode, 400)
    assert.equal(notJson.json<ErrorJson>().error.code, 'BAD_REQUEST')
    const huge = await post<ErrorJson>(app, { tx: 'ab'.repeat(200 * 1024) })
    assert.equal(huge.status, 413)
    assert.equal(huge.body.error.code, 'PAYLOAD_TOO_LARGE')
  })
})

test('wrongly signed, wrong-chain and replayed transactions are 400 with the reason and change nothing', async () => {
  await withApp({}, async (app, chain) => {
    const good = encodeTx(transfer(alice, 0n))
    assert.equal((await post(app, { tx: toHex(good) })).status, 202)
    const dup = await post<ErrorJson>(app, { tx: toHex(good) })
    assert.deepEqual([dup.status, dup.body.error.code, dup.body.error.reason], [409, 'TX_REJECTED', 'duplicate'])
    chain.commitPending()
    const root = toHex(chain.state.root())
    // Bob signs as alice (who can pay, so admission gets as far as the signature).
    const forged = { ...transfer(bob, 1n), sender: alice.did }
    const wrongChain = transfer(alice, 1n, 100n, { chainId: 'other-chain' })
    const cases: Array<[Uint8Array, string]> = [
      [encodeTx(forged), 'bad-signature'],
      [encodeTx(wrongChain), 'wrong-chain'],
      [good, 'stale-nonce'],
    ]
    for (const [bytes, reason] of cases) {
      const res = await post<ErrorJson>(app, { tx: toHex(bytes) })
      assert.equal(res.status, 400, reason)
      assert.equal(res.body.error.code, 'TX_REJECTED')
      assert.equal(res.body.error.reason, reason)
      assert.ok(res.body.error.message.length > 0)
    }
    const status = (await get<StatusJson>(app, '/v1/status')).body
    assert.equal(status.stateRoot, root)
    assert.deepEqual(status.mempool, { size: 0, bytes: 0 })
    assert.deepEqual((await get<AccountJson>(app, `/v1/accounts/${alice.did}`)).body, {
      did: alice.did,
      balance: '999899',
      nonce: '1',
      stake: null,
    })
    assert.equal((await get<AccountJson>(app, `/v1/accounts/${bob.did}`)).body.balance, '100')
    chain.commitPending()
    assert.equal((await get<BlockJson>(app, '/v1/chain/blocks/2')).body.txs.length, 0)
  })
})

test('blocks: unknown height is 404, a non-integer height is 400; unknown routes are 404 JSON', async () => {
  await withApp({}, async (app) => {
    const missing = await get<ErrorJson>(app, '/v1/chain/blocks/7')
    assert.equal(missing.status, 404)
    assert.deepEqual(missing.body, { error: { code: 'NOT_FOUND', message: 'no committed block at height 7' } })
    assert.equal((await get(app, '/v1/chain/blocks/0')).status, 404)
    for (const bad of ['abc', '1.5', '-1']) {
      const res = await get<ErrorJson>(app, `/v1/chain/blocks/${bad}`)
      assert.equal(res.status, 400, bad)
      assert.equal(res.body.error.code, 'BAD_REQUEST')
      assert.match(res.body.error.message, /height/)
    }
    assert.equal((await get<ErrorJson>(app, '/v1/tx/xyz')).status, 400)
    const nowhere = await get<ErrorJson>(app, '/v2/nothing?x=1')
    assert.deepEqual(nowhere, {
      status: 404,
      body: { error: { code: 'NOT_FOUND', message: 'no route GET /v2/nothing' } },
    })
  })
})

test('GET /v1/state/proof: present and absent keys verify against the returned root', async () => {
  await withApp({}, async (app, chain) => {
    await post(app, { tx: toHex(encodeTx(transfer(alice, 0n))) })
    chain.commitPending()
    const key = utf8(`auth/nonce/${alice.did}`)
    const present = await get<ProofJson>(app, `/v1/state/proof?key=${toHex(key)}`)
    assert.equal(present.status, 200)
    assert.equal(present.body.height, 1)
    assert.equal(present.body.root, toHex(chain.state.root()))
    assert.notEqual(present.body.value, null)
    const value = Buffer.from(present.body.value ?? '', 'hex')
    assert.ok(verifyProof(chain.state.root(), key, value, decodeProof(Buffer.from(present.body.proof, 'hex'))))
    const absentKey = utf8('no/such/key')
    const absent = await get<ProofJson>(app, `/v1/state/proof?key=${toHex(absentKey)}`)
    assert.equal(absent.body.value, null)
    assert.ok(verifyProof(chain.state.root(), absentKey, undefined, decodeProof(Buffer.from(absent.body.proof, 'hex'))))
    assert.equal((await get(app, '/v1/state/proof?key=zz')).status, 400)
    assert.equal((await get(app, '/v1/state/proof')).status, 400)
  })
})

test('rate limit: past the configured maximum the answer is 429 RATE_LIMITED', async () => {
  await withApp({ rateLimit: { max: 2, timeWindowMs: 60_000 } }, async (app) => {
    assert.equal((await get(app, '/v1/status')).status, 200)
    assert.equal((await get(app, '/v1/status')).status, 200)
    const limited = await app.inject({ method: 'GET', url: '/v1/status' })
    assert.equal(limited.statusCode, 429)
    assert.equal(limited.json<ErrorJson>().error.code, 'RATE_LIMITED')
    assert.ok(limited.headers['retry-after'] !== undefined)
  })
})

test('POST /v1/txs: each transaction judged on its own, results in order; admitted ones commit', async () => {
  await withApp({}, async (app, chain) => {
    const first = encodeTx(transfer(alice, 0n, 10n))
    const second = encodeTx(transfer(alice, 1n, 20n))
    const res = await app.inject({
      method: 'POST',
      url: '/v1/txs',
      payload: {
        txs: [
          toHex(first),
          toHex(encodeTx(transfer(alice, 2n, 1n, { chainId: 'elsewhere' }))),
          'zz-not-a-tx',
          `0x${toHex(second)}`,
          toHex(first),
        ],
      },
    })
    assert.equal(res.statusCode, 200)
    const body = res.json<SubmitTxsJson>()
    assert.equal(body.accepted, 2)
    assert.deepEqual(body.results[0], { hash: toHex(txHash(first)) })
    assert.deepEqual(
      body.results.slice(1).map((r) => ('hash' in r ? r.hash : [r.status, r.error.code, r.error.reason ?? null])),
      [
        [400, 'TX_REJECTED', 'wrong-chain'],
        [400, 'BAD_REQUEST', null],
        toHex(txHash(second)),
        [409, 'TX_REJECTED', 'duplicate'],
      ],
    )
    chain.commitPending()
    assert.deepEqual((await get(app, `/v1/tx/${toHex(txHash(second))}`)).body, {
      hash: toHex(txHash(second)),
      height: 1,
      ok: true,
    })
    assert.equal((await get<AccountJson>(app, `/v1/accounts/${bob.did}`)).body.balance, '30')
  })
})

test('POST /v1/txs: an empty list, too many or a wrong shape is 400 and admits nothing', async () => {
  await withApp({ rateLimit: { max: 100 * MAX_SUBMIT_TXS, timeWindowMs: 60_000 } }, async (app, chain) => {
    const tx = toHex(encodeTx(transfer(alice, 0n)))
    for (const payload of [
      { txs: [] },
      { txs: Array.from({ length: MAX_SUBMIT_TXS + 1 }, () => tx) },
      { tx },
      { txs: [{}] },
      { txs: [tx], extra: 1 },
    ]) {
      const res = await app.inject({ method: 'POST', url: '/v1/txs', payload })
      assert.equal(res.statusCode, 400, JSON.stringify(payload).slice(0, 80))
    }
    assert.equal(chain.mempool.size, 0)
  })
})

test('POST /v1/txs: its rate limit counts transactions, full batches of MAX_SUBMIT_TXS per request', async () => {
  await withApp({ rateLimit: { max: 2 * MAX_SUBMIT_TXS + 1, timeWindowMs: 60_000 } }, async (app) => {
    const one = (nonce: bigint) => ({ txs: [toHex(encodeTx(transfer(alice, nonce)))] })
    assert.equal((await app.inject({ method: 'POST', url: '/v1/txs', payload: one(0n) })).statusCode, 200)
    assert.equal((await app.inject({ method: 'POST', url: '/v1/txs', payload: one(1n) })).statusCode, 200)
    const limited = await app.inject({ method: 'POST', url: '/v1/txs', payload: one(2n) })
    assert.equal(limited.statusCode, 429)
    assert.equal(limited.json<ErrorJson>().error.code, 'RATE_LIMITED')
  })
  assert.deepEqual(submitManyLimit({ max: 1200, timeWindowMs: 60_000 }), { max: 4, timeWindowMs: 60_000 })
  assert.deepEqual(submitManyLimit({ max: 10, timeWindowMs: 1_000 }), { max: 1, timeWindowMs: 1_000 })
})

test('CORS: only configured origins get access-control headers', async () => {
  await withApp({ cors: ['http://wallet.test'] }, async (app) => {
    const allowed = await app.inject({ method: 'GET', url: '/v1/status', headers: { origin: 'http://wallet.test' } })
    assert.equal(allowed.headers['access-control-allow-origin'], 'http://wallet.test')
    const other = await app.inject({ method: 'GET', url: '/v1/status', headers: { origin: 'http://evil.test' } })
    assert.equal(other.headers['access-control-allow-origin'], undefined)
  })
  await withApp({}, async (app) => {
    const res = await app.inject({ method: 'GET', url: '/v1/status', headers: { origin: 'http://wallet.test' } })
    assert.equal(res.headers['access-control-allow-origin'], undefined)
  })
})

test('a failure inside the chain is 500 without internals', async () => {
  const chain = newChain()
  const broken: ChainApi = {
    ...Object.fromEntries(
      ['block', 'account', 'submitTx', 'txOutcome', 'prove'].map((m) => [
        m,
        (chain as unknown as Record<string, unknown>)[m],
      ]),
    ),
    status: () => {
      throw new Error('disk /secret/path exploded')
    },
  } as unknown as ChainApi
  const lines: string[] = []
  const logger = createLogger({ level: 'error', destination: { write: (line: string) => void lines.push(line) } })
  const app = createApiServer({ chain: broken, logger })
  try {
    const res = await app.inject({ method: 'GET', url: '/v1/status' })
    assert.equal(res.statusCode, 500)
    assert.equal(res.json<ErrorJson>().error.code, 'INTERNAL')
    assert.doesNotMatch(res.body, /secret|exploded/)
    const logged = lines.map((l) => JSON.parse(l) as { component?: string; err?: { message?: string } })
    assert.ok(
      logged.some((l) => l.component === 'donghae:api' && l.err?.message === 'disk /secret/path exploded'),
      lines.join(''),
    )
  } finally {
    await app.close()
  }
})

test('OpenAPI document at /docs/json lists every route; Swagger UI at /docs', async () => {
  await withApp({}, async (app) => {
    const doc = await get<{ openapi: string; paths: Record<string, Record<string, unknown>> }>(app, '/docs/json')
    assert.equal(doc.status, 200)
    assert.match(doc.body.openapi, /^3\./)
    const routes = Object.entries(doc.body.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`),
    )
    for (const route of [
      'GET /v1/status',
      'GET /v1/chain/blocks/{height}',
      'GET /v1/accounts/{did}',
      'POST /v1/tx',
      'POST /v1/txs',
      'GET /v1/tx/{hash}',
      'GET /v1/state/proof',
    ]) {
      assert.ok(routes.includes(route), `${route} in ${routes.join(', ')}`)
    }
    const ui = await app.inject({ method: 'GET', url: '/docs' })
    assert.ok(ui.statusCode < 400, `GET /docs answered ${ui.statusCode}`)
  })
})

test('decodeTxText: hex and base64 of any transaction-like bytes decode to the same bytes; junk is InvalidInputError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), (tail) => {
      const bytes = Uint8Array.of(0xa7, ...tail)
      const b64 = Buffer.from(bytes).toString('base64')
      assert.deepEqual(decodeTxText(toHex(bytes)), bytes)
      assert.deepEqual(decodeTxText(b64), bytes)
      assert.deepEqual(decodeTxText(b64.replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_')), bytes)
    }),
  )
  fc.assert(
    fc.property(fc.string(), (text) => {
      try {
        decodeTxText(text)
      } catch (err) {
        assert.ok(err instanceof InvalidInputError)
      }
    }),
  )
})

test('DonghaeClient over a real socket: status, account, submit, commit, block, proof and typed errors', async () => {
  const chain = newChain()
  const app = createApiServer({ chain })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  const url = `http://127.0.0.1:${port}`
  const client = new DonghaeClient(`${url}/`)
  try {
    assert.equal(client.baseUrl, url)
    const status = await client.status()
    assert.equal(status.chainId, genesis.chainId)
    assert.equal((await client.account(alice.did)).balance, '1000000')

    const { hash } = await client.submitTx(encodeTx(transfer(alice, 0n, 42n)))
    await assert.rejects(
      client.tx(hash),
      (err) => err instanceof ApiError && err.status === 404 && err.code === 'NOT_FOUND',
    )
    chain.commitPending()
    assert.deepEqual(await client.tx(hash), { hash, height: 1, ok: true })
    const block = await client.block(1)
    assert.equal(block.txs[0]?.hash, hash)
    assert.equal((await client.account(bob.did)).balance, '42')
    const proof = await client.proof(toHex(utf8(`auth/nonce/${alice.did}`)))
    assert.equal(proof.root, toHex(chain.state.root()))
    const many = await client.submitTxs([encodeTx(transfer(alice, 1n, 1n)), encodeTx(transfer(alice, 0n, 42n))])
    assert.equal(many.accepted, 1)
    assert.deepEqual(
      many.results.map((r) => ('hash' in r ? 'admitted' : r.error.reason)),
      ['admitted', 'stale-nonce'],
    )

    await assert.rejects(client.submitTx(encodeTx(transfer(alice, 1n, 1n, { chainId: 'elsewhere' }))), (err) => {
      assert.ok(err instanceof ApiError)
      assert.deepEqual([err.status, err.code, err.reason], [400, 'TX_REJECTED', 'wrong-chain'])
      return true
    })
    await assert.rejects(
      client.account('did:key:z'),
      (err) => err instanceof ApiError && err.code === 'INVALID_DID' && err.reason === 'invalidDid',
    )
    await assert.rejects(client.block(99), (err) => err instanceof ApiError && err.status === 404)
    const aborted = new AbortController()
    aborted.abort()
    await assert.rejects(client.status({ signal: aborted.signal }), AbortError)
  } finally {
    await app.close()
  }
  await assert.rejects(client.status(), (err) => {
    assert.ok(err instanceof ApiError)
    assert.equal(err.code, 'UNREACHABLE')
    assert.equal(err.status, 0)
    assert.ok(err.message.includes(url), err.message)
    return true
  })
  assert.throws(() => new DonghaeClient('not a url'), InvalidInputError)
  assert.throws(() => new DonghaeClient('ftp://example.com'), InvalidInputError)
})

test('against a real single-validator DonghaeNode (consensus, LevelDB, PoH): submit, commit, read back', async () => {
  const v = actor()
  const genesis = makeGenesis([v], [[alice, 1_000_000n]], FAST_PARAMS)
  const net = await testNet([v], genesis)
  const node = net.nodes.get(v.did)
  assert.ok(node !== undefined)
  const app = createApiServer({ chain: node.chainApi })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const client = new DonghaeClient(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`)
  try {
    const status = await client.status()
    assert.equal(status.did, v.did)
    const tx = signTx(alice.key, {
      chainId: genesis.chainId,
      nonce: 0n,
      fee: 1n,
      kind: 'bank.transfer',
      body: { to: bob.did, amount: 77n },
    })
    const { hash } = await client.submitTx(encodeTx(tx))
    // A replay is refused: as a duplicate while pending, or as a stale nonce if a block already took it.
    await assert.rejects(
      client.submitTx(encodeTx(tx)),
      (err) =>
        err instanceof ApiError &&
        (err.reason === 'duplicate' || err.reason === 'already-included' || err.reason === 'stale-nonce'),
    )
    let height: number | undefined
    await waitFor('the transfer to commit', async () => {
      height = await client.tx(hash).then(
        (t) => t.height,
        () => undefined,
      )
      return height !== undefined
    })
    const block = await client.block(height as number)
    assert.ok(block.txs.some((t) => t.hash === hash))
    assert.ok(block.commit !== null && block.commit.signers.includes(v.did))
    assert.equal((await client.account(bob.did)).balance, '77')
    assert.equal((await client.account(alice.did)).nonce, '1')
    await assert.rejects(
      client.submitTx(encodeTx(tx)),
      // the mempool remembers recently committed transactions: the same bytes are 'already-included'
      (err) => err instanceof ApiError && err.reason === 'already-included',
    )
  } finally {
    await app.close()
    await net.close()
  }
})
