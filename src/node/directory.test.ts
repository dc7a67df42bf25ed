// NodeDirectory, the node's DirectoryApi, through the real API server: resolve checks an entry
// against the DID record the DHT gives (same key, endpoint, the DID's own addresses); the
// operator routes sign the node's own entry with its key and pick its seq; a write accepted over
// HTTP is gossiped again 5 s and 30 s later (on the injected clock), so a directory that joined
// after the first publication still learns of it, a superseded write is not gossiped again, and
// stop() cancels what waits.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { ManualClock } from '../core/clock.ts'
import { MemoryHub } from '../net/memory-transport.ts'
import { Ed25519KeyPair } from '../identity/keys.ts'
import { didFromEd25519PublicKey } from '../identity/did-key.ts'
import { peerIdFromDid } from '../identity/peer-id.ts'
import { signDidRecord, type SignedDidRecord } from '../net/did-records.ts'
import { registrationToJson, signRegistration, type RegistrationFields } from '../directory/record.ts'
import { generateApiToken } from '../api/auth.ts'
import { createApiServer } from '../api/server.ts'
import type { DirectoryEntryView, DirectoryResolution, DirectoryWriteResult } from '../api/directory-api.ts'
import { actor, makeGenesis } from '../../test/helpers/chain.ts'
import { MemoryChain } from '../../test/helpers/memory-chain.ts'
import { NodeDirectory } from './directory.ts'

const TOKEN = generateApiToken()
const auth = { authorization: `Bearer ${TOKEN}` }
const validator = actor()
const NOW = 1_700_000_000_000

function fields(over: Partial<RegistrationFields> = {}): RegistrationFields {
  return {
    description: 'Noodles by the harbour',
    categories: ['restaurant'],
    tags: [],
    bootstrap: [],
    endpoint: 'https://noodles.example.org/v1/webrtc/offer',
    seq: 1,
    expires: NOW + 86_400_000,
    ...over,
  }
}

interface Ctx {
  app: FastifyInstance
  directory: NodeDirectory
  clock: ManualClock
  key: Ed25519KeyPair
  /** What the fake DHT answers for a DID. */
  records: Map<string, SignedDidRecord>
}

async function withApp(
  fn: (ctx: Ctx) => Promise<void>,
  options: { perClient?: number; nodeKey?: Ed25519KeyPair } = {},
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-node-directory-'))
  const clock = new ManualClock(NOW)
  const key = options.nodeKey ?? Ed25519KeyPair.generate()
  const records = new Map<string, SignedDidRecord>()
  const directory = new NodeDirectory({
    dataDir: dir,
    clock,
    key,
    endpoint: () => 'http://127.0.0.1:26657/v1/webrtc/offer',
    addresses: () => [`/ip4/127.0.0.1/tcp/26656/p2p/${peerIdFromDid(didFromEd25519PublicKey(key.publicKey))}`],
    resolveDid: async (did) => records.get(did),
    limits: {
      perDid: { burst: 5, perMs: 5 * 60_000 },
      perClient: { burst: options.perClient ?? 1000, perMs: 60_000 },
    },
  })
  directory.start()
  const app = createApiServer({
    chain: new MemoryChain({ genesis: makeGenesis([validator], []), validators: [validator] }),
    directory,
    operatorToken: TOKEN,
  })
  try {
    await fn({ app, directory, clock, key, records })
  } finally {
    await app.close()
    directory.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

function send(app: FastifyInstance, method: 'POST' | 'DELETE', url: string, body: unknown) {
  return app.inject({ method, url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) })
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r))
}

test('a directory that subscribes after a registration gets it from the re-publication', async () => {
  const clock = new ManualClock(NOW)
  const hub = new MemoryHub()
  const a = new NodeDirectory({ clock, transport: hub.join('a') })
  const late = new NodeDirectory({ clock, transport: hub.join('late') })
  a.start()
  const key = Ed25519KeyPair.generate()
  const record = registrationToJson(signRegistration(key, fields()))
  a.register(record, '198.51.100.1')
  await settle()
  late.start() // joins after the first publication
  await settle()
  assert.equal(late.entry(record.did), undefined)
  clock.advance(5_000)
  await settle()
  assert.deepEqual(late.entry(record.did), record)

  // superseded before its re-publication: only the newer one is gossiped again
  const old = registrationToJson(signRegistration(key, fields({ seq: 2 })))
  a.register(old, '198.51.100.1')
  const newer = registrationToJson(signRegistration(key, fields({ seq: 3 })))
  a.register(newer, '198.51.100.1')
  const third = new NodeDirectory({ clock, transport: hub.join('third') })
  third.start()
  clock.advance(5_000)
  await settle()
  assert.equal(third.entry(record.did)?.seq, 3)
  for (const d of [a, late, third]) d.stop()
})

test('stop() cancels the re-publications waiting', async () => {
  const clock = new ManualClock(NOW)
  const hub = new MemoryHub()
  const a = new NodeDirectory({ clock, transport: hub.join('a') })
  a.start()
  a.register(registrationToJson(signRegistration(Ed25519KeyPair.generate(), fields())), '198.51.100.1')
  a.stop()
  const late = new NodeDirectory({ clock, transport: hub.join('late') })
  late.start()
  clock.advance(60_000)
  await settle()
  assert.equal(late.service.count(), 0)
  late.stop()
})

test('resolve: the entry checked against the DID record in the DHT (same key, endpoint, own addresses)', async () => {
  await withApp(async ({ app, records }) => {
    const key = Ed25519KeyPair.generate()
    const did = didFromEd25519PublicKey(key.publicKey)
    const own = `/ip4/192.0.2.9/tcp/4001/p2p/${peerIdFromDid(did)}`
    const record = registrationToJson(signRegistration(key, fields({ bootstrap: [own, '/ip4/192.0.2.1/tcp/4001'] })))
    assert.equal((await send(app, 'POST', '/v1/directory/register', record)).statusCode, 201)
    const resolve = async () => {
      const res = await app.inject({ method: 'GET', url: `/v1/directory/resolve/${did}` })
      assert.equal(res.statusCode, 200, res.body)
      return res.json<DirectoryResolution>()
    }
    const missing = await resolve()
    assert.equal(missing.consistent, false)
    assert.equal(missing.document, undefined)
    assert.match(missing.problems.join('\n'), /no DID record/)

    records.set(
      did,
      signDidRecord(key, {
        addresses: [own],
        services: [{ id: `${did}#api`, type: 'DonghaeNodeApi', serviceEndpoint: 'https://noodles.example.org' }],
        seq: 1,
        expires: NOW + 3_600_000,
      }),
    )
    const good = await resolve()
    assert.deepEqual(good.problems, [])
    assert.equal(good.consistent, true)
    assert.deepEqual(good.entry, record)
    assert.deepEqual(good.document?.addresses, [own])

    records.set(
      did,
      signDidRecord(key, {
        addresses: ['/ip4/198.51.100.1/tcp/4001'],
        services: [{ id: `${did}#api`, type: 'DonghaeNodeApi', serviceEndpoint: 'https://elsewhere.example.org' }],
        seq: 2,
        expires: NOW + 3_600_000,
      }),
    )
    const bad = await resolve()
    assert.equal(bad.consistent, false)
    assert.equal(bad.problems.length, 2, bad.problems.join('\n'))
    assert.match(bad.problems[0] ?? '', /endpoint/)
    assert.match(bad.problems[1] ?? '', /bootstrap address/)
    const unknown = didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey)
    assert.equal((await app.inject({ method: 'GET', url: `/v1/directory/resolve/${unknown}` })).statusCode, 404)
  })
})

test("operator routes: 401 without the token; the node's own entry signed with its key, seq chosen above the stored", async () => {
  const nodeKey = Ed25519KeyPair.generate()
  const nodeDid = didFromEd25519PublicKey(nodeKey.publicKey)
  await withApp(
    async ({ app, clock }) => {
      const body = { description: 'Node noodles', categories: ['restaurant'], tags: ['noodles'] }
      const anonymous = await send(app, 'POST', '/v1/operator/directory/register', body)
      assert.equal(anonymous.statusCode, 401)
      const register = () =>
        app.inject({ method: 'POST', url: '/v1/operator/directory/register', headers: auth, payload: body })
      const first = await register()
      assert.equal(first.statusCode, 201, first.body)
      const added = first.json<DirectoryWriteResult>()
      assert.equal(added.did, nodeDid)
      assert.equal(added.seq, NOW, 'the clock, the first time')
      assert.equal(added.expires, NOW + 7 * 86_400_000)
      const again = (await register()).json<DirectoryWriteResult>()
      assert.equal(again.change, 'updated')
      assert.equal(again.seq, NOW + 1, 'one above the stored in the same millisecond')
      const entry = (
        await app.inject({ method: 'GET', url: `/v1/directory/entries/${nodeDid}` })
      ).json<DirectoryEntryView>()
      assert.equal(entry.endpoint, 'http://127.0.0.1:26657/v1/webrtc/offer')
      assert.match(entry.bootstrap[0] ?? '', /\/p2p\/12D3KooW/)
      const tooLong = await app.inject({
        method: 'POST',
        url: '/v1/operator/directory/register',
        headers: auth,
        payload: { ...body, expiresInMs: 31 * 86_400_000 },
      })
      assert.equal(tooLong.statusCode, 400)
      clock.advance(5)
      assert.equal((await app.inject({ method: 'DELETE', url: '/v1/operator/directory/register' })).statusCode, 401)
      const removed = await app.inject({ method: 'DELETE', url: '/v1/operator/directory/register', headers: auth })
      assert.equal(removed.statusCode, 200, removed.body)
      assert.deepEqual(removed.json(), { did: nodeDid, seq: NOW + 5, change: 'deleted' })
      assert.equal((await app.inject({ method: 'GET', url: `/v1/directory/entries/${nodeDid}` })).statusCode, 404)
    },
    { nodeKey },
  )
})
