// The DID directory's routes (routes/directory.ts) over the real server code and a DirectoryApi
// over a real DirectoryService (SQLite in a temp dir, a manual clock): statuses 201/200/409/403/
// 413/400/429 with Retry-After, the seed's aliases, search with scores and cursors, deletion,
// the operator routes' token, the client's methods, the 404s of a node without a directory, and
// the per-client key (an IPv6 address by its /64). The node's own DirectoryApi (resolve against
// the DHT, its own entry) is tested in src/node/directory.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { ManualClock } from '../core/clock.ts'
import { Ed25519KeyPair } from '../identity/keys.ts'
import { didFromEd25519PublicKey } from '../identity/did-key.ts'
import {
  deletionToJson,
  registrationToJson,
  signDeletion,
  signRegistration,
  type RegistrationFields,
} from '../directory/record.ts'
import { DirectoryService } from '../directory/service.ts'
import { generateApiToken } from './auth.ts'
import { ApiError, DonghaeClient } from './client.ts'
import { createApiServer } from './server.ts'
import { DIRECTORY_BODY_LIMIT, directoryClientKey } from './routes/directory.ts'
import type { DirectoryApi, DirectoryEntryView, DirectoryWriteResult } from './directory-api.ts'
import type { ErrorJson } from './schemas.ts'
import { actor, makeGenesis } from '../../test/helpers/chain.ts'
import { MemoryChain } from '../../test/helpers/memory-chain.ts'

const NOW = 1_700_000_000_000
const TOKEN = generateApiToken()
const auth = { authorization: `Bearer ${TOKEN}` }
const validator = actor()
const ENDPOINT = 'https://noodles.example.org/v1/webrtc/offer'

function fields(over: Partial<RegistrationFields> = {}): RegistrationFields {
  return {
    description: 'Cold buckwheat noodles by the harbour',
    categories: ['restaurant'],
    tags: ['noodles'],
    bootstrap: ['/ip4/192.0.2.1/tcp/4001'],
    endpoint: ENDPOINT,
    seq: 1,
    expires: NOW + 86_400_000,
    ...over,
  }
}

/** A JSON body with its signature as bytes (what the service verifies). */
function withBytes(body: unknown): unknown {
  const signature = (body as { signature?: unknown } | null)?.signature
  return typeof signature === 'string' && /^[A-Za-z0-9_-]{86}$/.test(signature)
    ? { ...(body as object), signature: new Uint8Array(Buffer.from(signature, 'base64url')) }
    : body
}

/** The DirectoryApi the routes need, straight over a DirectoryService; `key` is the "node's" key. */
function serviceApi(service: DirectoryService, key: Ed25519KeyPair): DirectoryApi {
  const did = didFromEd25519PublicKey(key.publicKey)
  const nextSeq = (): number => (service.index.seqOf(did) ?? 0) + 1
  return {
    register: (body, client) => {
      const { change, record } = service.register(withBytes(body), { client })
      return { did: record.did, seq: record.seq, expires: record.expires, change }
    },
    remove: (body, client) => {
      const { deletion } = service.delete(withBytes(body), { client })
      return { did: deletion.did, seq: deletion.seq, change: 'deleted' }
    },
    search: (query) => {
      const page = service.search(query)
      const ranked = query.query !== undefined
      const entries = page.hits.map((h) => ({ ...registrationToJson(h.record), ...(ranked ? { score: h.score } : {}) }))
      return page.cursor === undefined ? { entries } : { entries, cursor: page.cursor }
    },
    entry: (d) => {
      const record = service.get(d)
      return record === undefined ? undefined : registrationToJson(record)
    },
    resolve: async (d) => {
      const record = service.get(d)
      return record === undefined
        ? undefined
        : { entry: registrationToJson(record), consistent: false, problems: ['no DHT in this test'] }
    },
    registerOwn: (request, client) => {
      const record = signRegistration(key, {
        description: request.description,
        categories: request.categories,
        tags: request.tags ?? [],
        bootstrap: request.bootstrap ?? [],
        endpoint: request.endpoint ?? ENDPOINT,
        seq: nextSeq(),
        expires: NOW + (request.expiresInMs ?? 86_400_000),
      })
      const { change } = service.register(record, { client })
      return { did, seq: record.seq, expires: record.expires, change }
    },
    removeOwn: (client) => {
      const { deletion } = service.delete(signDeletion(key, nextSeq()), { client })
      return { did, seq: deletion.seq, change: 'deleted' }
    },
  }
}

interface Ctx {
  app: FastifyInstance
  service: DirectoryService
  key: Ed25519KeyPair
}

async function withApp(fn: (ctx: Ctx) => Promise<void>, options: { perClient?: number } = {}): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-directory-routes-'))
  const key = Ed25519KeyPair.generate()
  const service = new DirectoryService({
    dataDir: dir,
    clock: new ManualClock(NOW),
    limits: {
      perDid: { burst: 5, perMs: 5 * 60_000 },
      perClient: { burst: options.perClient ?? 1000, perMs: 60_000 },
    },
  })
  service.start()
  const app = createApiServer({
    chain: new MemoryChain({ genesis: makeGenesis([validator], []), validators: [validator] }),
    directory: serviceApi(service, key),
    operatorToken: TOKEN,
  })
  try {
    await fn({ app, service, key })
  } finally {
    await app.close()
    service.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

const errorOf = (res: { json: <T>() => T }) => res.json<ErrorJson>().error

function send(app: FastifyInstance, method: 'POST' | 'DELETE', url: string, body: unknown, remoteAddress?: string) {
  return app.inject({
    method,
    url,
    headers: { 'content-type': 'application/json' },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
    ...(remoteAddress === undefined ? {} : { remoteAddress }),
  })
}

test('register (201), update (200), replay (409 CONFLICT, reason DIRECTORY_STALE); entries, search with scores, aliases', async () => {
  await withApp(async ({ app }) => {
    const key = Ed25519KeyPair.generate()
    const first = registrationToJson(signRegistration(key, fields()))
    const added = await send(app, 'POST', '/v1/directory/register', first)
    assert.equal(added.statusCode, 201, added.body)
    assert.deepEqual(added.json<DirectoryWriteResult>(), {
      did: first.did,
      seq: 1,
      expires: first.expires,
      change: 'added',
    })
    const second = registrationToJson(signRegistration(key, fields({ seq: 2, tags: ['noodles', 'vegan'] })))
    const updated = await send(app, 'POST', '/register', second) // the seed's path
    assert.equal(updated.statusCode, 200, updated.body)
    assert.equal(updated.json<DirectoryWriteResult>().change, 'updated')

    const replay = await send(app, 'POST', '/v1/directory/register', first)
    assert.equal(replay.statusCode, 409)
    assert.equal(errorOf(replay).code, 'CONFLICT')
    assert.equal(errorOf(replay).reason, 'DIRECTORY_STALE')

    const entry = await app.inject({ method: 'GET', url: `/v1/directory/entries/${first.did}` })
    assert.equal(entry.statusCode, 200)
    assert.deepEqual(entry.json(), second)

    const found = await app.inject({ method: 'GET', url: '/v1/directory/search?query=buckwheat%20harbour' })
    const page = found.json<{ entries: DirectoryEntryView[] }>()
    assert.equal(page.entries.length, 1)
    assert.equal(page.entries[0]?.did, first.did)
    assert.equal(typeof page.entries[0]?.score, 'number', 'a text search ranks')
    const byTag = await app.inject({ method: 'GET', url: '/search?category=restaurant&tag=vegan' })
    const tagged = byTag.json<{ entries: DirectoryEntryView[] }>().entries
    assert.deepEqual(
      tagged.map((e) => e.did),
      [first.did],
    )
    assert.equal(tagged[0]?.score, undefined, 'no text, no score')
    const none = await app.inject({ method: 'GET', url: '/v1/directory/search?query=pizza' })
    assert.deepEqual(none.json(), { entries: [] })
    const unknown = await app.inject({
      method: 'GET',
      url: `/v1/directory/entries/${didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey)}`,
    })
    assert.equal(unknown.statusCode, 404)
    assert.equal((await app.inject({ method: 'GET', url: '/v1/directory/entries/did:key:nope' })).statusCode, 400)
  })
})

test('search pages with a keyset cursor; bad limits and labels are 400, an oversized query 413', async () => {
  await withApp(async ({ app }) => {
    for (let i = 0; i < 5; i++) {
      const record = registrationToJson(
        signRegistration(Ed25519KeyPair.generate(), fields({ description: `noodle bar ${i}` })),
      )
      assert.equal((await send(app, 'POST', '/v1/directory/register', record)).statusCode, 201)
    }
    const seen: string[] = []
    let cursor: string | undefined
    for (let pages = 0; pages < 5; pages++) {
      const url = `/v1/directory/search?query=noodle&limit=2${cursor === undefined ? '' : `&cursor=${cursor}`}`
      const page = (await app.inject({ method: 'GET', url })).json<{ entries: DirectoryEntryView[]; cursor?: string }>()
      seen.push(...page.entries.map((e) => e.did))
      cursor = page.cursor
      if (cursor === undefined) break
    }
    assert.equal(seen.length, 5)
    assert.equal(new Set(seen).size, 5)
    assert.equal((await app.inject({ method: 'GET', url: '/v1/directory/search?limit=51' })).statusCode, 400)
    assert.equal(
      (await app.inject({ method: 'GET', url: '/v1/directory/search?category=Bad%20Label' })).statusCode,
      400,
    )
    assert.equal((await app.inject({ method: 'GET', url: '/v1/directory/search?cursor=%21%21' })).statusCode, 400)
    const long = await app.inject({ method: 'GET', url: `/v1/directory/search?query=${'a'.repeat(300)}` })
    assert.equal(long.statusCode, 413)
    assert.equal(errorOf(long).code, 'PAYLOAD_TOO_LARGE')
  })
})

test('refusals: another key (403), oversized field (413), body over 16 KiB (413), malformed JSON and unknown fields (400)', async () => {
  await withApp(async ({ app }) => {
    const victim = Ed25519KeyPair.generate()
    const forged = {
      ...registrationToJson(signRegistration(Ed25519KeyPair.generate(), fields())),
      did: didFromEd25519PublicKey(victim.publicKey),
    }
    const bad = await send(app, 'POST', '/v1/directory/register', forged)
    assert.equal(bad.statusCode, 403)
    assert.equal(errorOf(bad).code, 'FORBIDDEN')
    assert.equal(errorOf(bad).reason, 'DIRECTORY_BAD_SIGNATURE')

    const record = registrationToJson(signRegistration(victim, fields()))
    const big = await send(app, 'POST', '/v1/directory/register', { ...record, description: 'x'.repeat(2000) })
    assert.equal(big.statusCode, 413)
    assert.equal(errorOf(big).reason, 'DIRECTORY_TOO_LARGE')

    const huge = await send(app, 'POST', '/v1/directory/register', {
      ...record,
      description: 'x'.repeat(DIRECTORY_BODY_LIMIT),
    })
    assert.equal(huge.statusCode, 413)
    assert.equal(errorOf(huge).code, 'PAYLOAD_TOO_LARGE')

    const malformed = await send(app, 'POST', '/v1/directory/register', '{"did": ')
    assert.equal(malformed.statusCode, 400)
    assert.equal(errorOf(malformed).code, 'BAD_REQUEST')
    const extra = await send(app, 'POST', '/v1/directory/register', { ...record, admin: true })
    assert.equal(extra.statusCode, 400)
    const notObject = await send(app, 'POST', '/v1/directory/register', '[1,2]')
    assert.equal(notObject.statusCode, 400)
    const badSignature = await send(app, 'POST', '/v1/directory/register', { ...record, signature: 'AAAA' })
    assert.equal(badSignature.statusCode, 400)

    // nothing was stored for the victim by any of these
    const entry = await app.inject({ method: 'GET', url: `/v1/directory/entries/${record.did}` })
    assert.equal(entry.statusCode, 404)
  })
})

test('rate limits: 429 with Retry-After; a client is keyed by its IPv4 address or its IPv6 /64', async () => {
  await withApp(
    async ({ app }) => {
      const post = (remoteAddress: string) =>
        send(
          app,
          'POST',
          '/v1/directory/register',
          registrationToJson(signRegistration(Ed25519KeyPair.generate(), fields())),
          remoteAddress,
        )
      for (let i = 0; i < 3; i++) assert.equal((await post('2001:db8:1:2::1')).statusCode, 201)
      // another address in the same /64 shares the budget
      const limited = await post('2001:db8:1:2:ffff:ffff:ffff:ffff')
      assert.equal(limited.statusCode, 429, limited.body)
      assert.equal(errorOf(limited).code, 'RATE_LIMITED')
      assert.equal(errorOf(limited).reason, 'DIRECTORY_RATE_LIMITED')
      assert.equal(limited.headers['retry-after'], '20', '60 s / 3 per token')
      // another /64, and an IPv4 client, have their own
      assert.equal((await post('2001:db8:1:3::1')).statusCode, 201)
      assert.equal((await post('203.0.113.5')).statusCode, 201)
    },
    { perClient: 3 },
  )
  assert.equal(directoryClientKey('2001:db8:1:2::1'), '2001:db8:1:2::/64')
  assert.equal(directoryClientKey('2001:0db8:0001:0002:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64')
  assert.equal(directoryClientKey('2001:db8::1'), '2001:db8:0:0::/64')
  assert.equal(directoryClientKey('::1'), '0:0:0:0::/64')
  assert.equal(directoryClientKey('fe80::1%eth0'), 'fe80:0:0:0::/64')
  assert.equal(directoryClientKey('::ffff:192.0.2.7'), '192.0.2.7')
  assert.equal(directoryClientKey('::192.0.2.7'), '0:0:0:0::/64')
  assert.equal(directoryClientKey('192.0.2.7'), '192.0.2.7')
  assert.equal(directoryClientKey(undefined), 'unknown')
})

test('deletion signed by the DID: 200, gone; a stale deletion 409; a stranger 403; the old registration cannot come back', async () => {
  await withApp(async ({ app }) => {
    const key = Ed25519KeyPair.generate()
    const record = registrationToJson(signRegistration(key, fields({ seq: 3 })))
    assert.equal((await send(app, 'POST', '/v1/directory/register', record)).statusCode, 201)
    const stale = await send(app, 'DELETE', '/v1/directory/register', deletionToJson(signDeletion(key, 3)))
    assert.equal(stale.statusCode, 409)
    const stranger = {
      ...deletionToJson(signDeletion(Ed25519KeyPair.generate(), 4)),
      did: record.did,
    }
    assert.equal((await send(app, 'DELETE', '/v1/directory/register', stranger)).statusCode, 403)
    const deleted = await send(app, 'DELETE', '/register', deletionToJson(signDeletion(key, 4)))
    assert.equal(deleted.statusCode, 200, deleted.body)
    assert.deepEqual(deleted.json(), { did: record.did, seq: 4, change: 'deleted' })
    assert.equal((await app.inject({ method: 'GET', url: `/v1/directory/entries/${record.did}` })).statusCode, 404)
    assert.equal((await send(app, 'POST', '/v1/directory/register', record)).statusCode, 409)
  })
})

test("operator routes: 401 without the token (before the body is read); with it, the node's own entry", async () => {
  await withApp(async ({ app, key }) => {
    const body = { description: 'Node noodles', categories: ['restaurant'] }
    for (const [method, payload] of [
      ['POST', body],
      ['POST', '{"to": '],
      ['DELETE', undefined],
    ] as const) {
      const res = await app.inject({
        method,
        url: '/v1/operator/directory/register',
        ...(payload === undefined
          ? {}
          : {
              headers: { 'content-type': 'application/json' },
              payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
            }),
      })
      assert.equal(res.statusCode, 401, `${method} ${String(payload)}`)
    }
    const added = await app.inject({
      method: 'POST',
      url: '/v1/operator/directory/register',
      headers: auth,
      payload: body,
    })
    assert.equal(added.statusCode, 201, added.body)
    assert.equal(added.json<DirectoryWriteResult>().did, didFromEd25519PublicKey(key.publicKey))
    const extra = await app.inject({
      method: 'POST',
      url: '/v1/operator/directory/register',
      headers: auth,
      payload: { ...body, seq: 5 },
    })
    assert.equal(extra.statusCode, 400, 'the node picks the seq')
    const tooLong = await app.inject({
      method: 'POST',
      url: '/v1/operator/directory/register',
      headers: auth,
      payload: { ...body, expiresInMs: 31 * 86_400_000 },
    })
    assert.equal(tooLong.statusCode, 400)
    const removed = await app.inject({ method: 'DELETE', url: '/v1/operator/directory/register', headers: auth })
    assert.equal(removed.statusCode, 200, removed.body)
    assert.equal(removed.json<DirectoryWriteResult>().change, 'deleted')
  })
})

test('DonghaeClient: register, search, entry, resolve, delete over a real socket; its errors carry the status', async () => {
  await withApp(async ({ app }) => {
    const url = await app.listen({ host: '127.0.0.1', port: 0 })
    const client = new DonghaeClient(url, { token: TOKEN })
    const key = Ed25519KeyPair.generate()
    const record = registrationToJson(signRegistration(key, fields()))
    assert.equal((await client.directoryRegister(record)).change, 'added')
    const page = await client.directorySearch({ query: 'noodles', category: 'restaurant' })
    assert.deepEqual(
      page.entries.map((e) => e.did),
      [record.did],
    )
    assert.deepEqual(await client.directoryEntry(record.did), record)
    assert.equal((await client.directoryResolve(record.did)).consistent, false)
    await assert.rejects(client.directoryRegister(record), (err: unknown) => {
      assert.ok(err instanceof ApiError)
      assert.equal(err.status, 409)
      assert.equal(err.reason, 'DIRECTORY_STALE')
      return true
    })
    assert.equal((await client.directoryDelete(deletionToJson(signDeletion(key, 2)))).change, 'deleted')
    await assert.rejects(
      client.directoryEntry(record.did),
      (err: unknown) => err instanceof ApiError && err.status === 404,
    )
    assert.equal((await client.directoryRegisterOwn({ description: 'me', categories: ['cafe'] })).change, 'added')
    assert.equal((await client.directoryDeleteOwn()).change, 'deleted')
  })
})

test('a node without a directory answers 404 on every directory path, saying so', async () => {
  const app = createApiServer({
    chain: new MemoryChain({ genesis: makeGenesis([validator], []), validators: [validator] }),
  })
  try {
    for (const [method, url] of [
      ['GET', '/v1/directory/search?query=x'],
      ['POST', '/v1/directory/register'],
      ['DELETE', '/register'],
      ['GET', '/search'],
      ['GET', '/v1/directory/resolve/did:key:z6Mk'],
      ['POST', '/v1/operator/directory/register'],
    ] as const) {
      const res = await app.inject({ method, url })
      assert.equal(res.statusCode, 404, `${method} ${url}`)
      assert.match(errorOf(res).message, /runs no DID directory/)
    }
  } finally {
    await app.close()
  }
})
