// Attacks on the DID directory's HTTP routes (routes/directory.ts) over a real socket: the API
// server listening on loopback, a real NodeDirectory (SQLite in a temp dir) behind it. Oversized
// fields and bodies (413, also chunked without a length), malformed JSON and prototype keys
// (400), a registration signed by another key (403), 10,000 registrations from one key (429 with
// Retry-After once the client's or the DID's budget is spent, and the refusals cost the server
// less than a signature check), and a bystander's entry unchanged after every attack. The per-
// client key groups an IPv6 /64 (unit level: loopback has one IPv6 address).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, request as httpRequest } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { FastifyInstance } from 'fastify'
import { ManualClock } from '../../src/core/clock.ts'
import { Ed25519KeyPair } from '../../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../../src/identity/did-key.ts'
import {
  registrationToJson,
  signRegistration,
  type RegistrationFields,
  type RegistrationJson,
} from '../../src/directory/record.ts'
import { NodeDirectory } from '../../src/node/directory.ts'
import { createApiServer } from '../../src/api/server.ts'
import type { DirectoryApi } from '../../src/api/directory-api.ts'
import { directoryClientKey } from '../../src/api/routes/directory.ts'
import { createRng, testSeed } from '../helpers/random.ts'
import { errorOf, rawRequest, type RawResponse } from '../helpers/raw-http.ts'
import { actor, makeGenesis } from '../helpers/chain.ts'
import { MemoryChain } from '../helpers/memory-chain.ts'

const NOW = Date.now()
/** The flooder's source address, used by no other test (Linux routes all of 127/8 to lo). */
const FLOOD_ADDRESS = '127.0.0.4'
const floodAgent = new Agent({ keepAlive: true, maxSockets: 1, localAddress: FLOOD_ADDRESS })
const clock = new ManualClock(NOW) // the rate limiters' buckets do not refill during a test

function fields(over: Partial<RegistrationFields> = {}): RegistrationFields {
  return {
    description: 'Cold buckwheat noodles by the harbour',
    categories: ['restaurant'],
    tags: ['noodles'],
    bootstrap: ['/ip4/192.0.2.1/tcp/4001'],
    endpoint: 'https://noodles.example.org/v1/webrtc/offer',
    seq: 1,
    expires: NOW + 86_400_000,
    ...over,
  }
}

let dir = ''
let app: FastifyInstance
let directory: NodeDirectory
let api = ''
let bystander: RegistrationJson
/** Time spent inside DirectoryApi.register, by outcome (status and message). */
const timings = new Map<string, number[]>()

function timed(inner: DirectoryApi): DirectoryApi {
  const record = (key: string, started: number): void => {
    const list = timings.get(key) ?? []
    list.push(performance.now() - started)
    timings.set(key, list)
  }
  return {
    register: (body, client) => {
      const started = performance.now()
      try {
        const result = inner.register(body, client)
        record('ok', started)
        return result
      } catch (err) {
        record(`${(err as { statusCode?: number }).statusCode ?? 500} ${(err as Error).message}`, started)
        throw err
      }
    },
    remove: (body, client) => inner.remove(body, client),
    search: (query, client) => inner.search(query, client),
    entry: (did) => inner.entry(did),
    resolve: (did, signal) => inner.resolve(did, signal),
  }
}

function post(body: string, headers: Record<string, string> = {}, path = '/v1/directory/register') {
  return rawRequest(api, {
    method: 'POST',
    path,
    headers: { 'content-type': 'application/json', ...headers },
    body,
  })
}

/** POST from the flooder's address on one kept-alive connection. */
function flood(body: string): Promise<{ status: number; retryAfter: string | undefined; body: string }> {
  const url = new URL(`${api}/v1/directory/register`)
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        agent: floodAgent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => (text += c))
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            retryAfter: res.headers['retry-after'] as string | undefined,
            body: text,
          }),
        )
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

/** The bystander's entry is exactly as registered, and a search still finds it. */
async function bystanderUnchanged(): Promise<void> {
  const entry = await fetch(`${api}/v1/directory/entries/${bystander.did}`)
  assert.equal(entry.status, 200)
  assert.deepEqual(await entry.json(), bystander)
  const found = (await (await fetch(`${api}/v1/directory/search?query=bystander`)).json()) as {
    entries: Array<{ did: string }>
  }
  assert.deepEqual(
    found.entries.map((e) => e.did),
    [bystander.did],
  )
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'donghae-directory-attacks-'))
  directory = new NodeDirectory({ dataDir: dir, clock })
  directory.start()
  const validator = actor()
  app = createApiServer({
    chain: new MemoryChain({ genesis: makeGenesis([validator], []), validators: [validator] }),
    directory: timed(directory),
    // the directory's own limits are under test, not the API's per-address limit
    rateLimit: { max: 1_000_000, timeWindowMs: 60_000 },
  })
  api = await app.listen({ host: '127.0.0.1', port: 0 })
  bystander = registrationToJson(
    signRegistration(Ed25519KeyPair.generate(), fields({ description: 'bystander dumplings', categories: ['cafe'] })),
  )
  // from another client address than every attack below (Linux routes all of 127/8 to lo)
  const res = await rawRequest(api, {
    method: 'POST',
    path: '/v1/directory/register',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(bystander),
    localAddress: '127.0.0.2',
  })
  assert.equal(res.status, 201, res.body)
})

after(async () => {
  floodAgent.destroy()
  await app.close()
  directory.stop()
  await rm(dir, { recursive: true, force: true })
})

test('oversized fields are 413 (the record checks), oversized bodies 413 before they are parsed — with or without a length', async (t) => {
  const key = Ed25519KeyPair.generate()
  const good = registrationToJson(signRegistration(key, fields()))
  const oversized: Array<[string, Partial<RegistrationJson>, number]> = [
    ['description of 2 KB', { description: 'x'.repeat(2048) }, 413],
    ['description of 600 three-byte characters', { description: '가'.repeat(600) }, 413],
    ['100 categories', { categories: Array.from({ length: 100 }, (_, i) => `c${i}`) }, 413],
    ['a 33-character tag', { tags: ['t'.repeat(33)] }, 413],
    ['9 bootstrap addresses', { bootstrap: Array.from({ length: 9 }, (_, i) => `/ip4/10.0.0.${i}/tcp/1`) }, 413],
    ['a 2 KB endpoint', { endpoint: `https://example.org/${'a'.repeat(2000)}` }, 413],
    ['an upper-case category', { categories: ['Restaurant'] }, 400],
    ['a javascript: endpoint', { endpoint: 'javascript:alert(1)' }, 400],
    // signed as it is: the expiry window is checked after the signature
    [
      'expiry a year ahead',
      registrationToJson(signRegistration(key, fields({ expires: NOW + 365 * 86_400_000 }))),
      400,
    ],
    ['expired', registrationToJson(signRegistration(key, fields({ expires: NOW - 1 }))), 400],
    ['a negative seq', { seq: -1 }, 400],
  ]
  for (const [what, over, status] of oversized) {
    const res = await post(JSON.stringify({ ...good, ...over }))
    assert.equal(res.status, status, `${what}: ${res.body.slice(0, 200)}`)
  }
  const big = JSON.stringify({ ...good, description: 'x'.repeat(1024 * 1024) })
  const withLength = await post(big, { 'content-length': String(Buffer.byteLength(big)) })
  assert.equal(withLength.status, 413)
  assert.equal(errorOf(withLength).code, 'PAYLOAD_TOO_LARGE')
  const chunked = await post(big, { 'transfer-encoding': 'chunked' })
  assert.equal(chunked.status, 413)
  const deletionBody = JSON.stringify({ did: good.did, seq: 2, signature: 'x'.repeat(20_000) })
  const deletion = await rawRequest(api, {
    method: 'DELETE',
    path: '/register',
    headers: { 'content-type': 'application/json' },
    body: deletionBody,
  })
  assert.equal(deletion.status, 413, deletion.body)
  const query = await rawRequest(api, { path: `/v1/directory/search?query=${'noodle%20'.repeat(40)}` })
  assert.equal(query.status, 413, query.body)
  assert.equal((await fetch(`${api}/v1/directory/entries/${good.did}`)).status, 404, 'nothing stored')
  await bystanderUnchanged()
  t.diagnostic(`last refusal: ${errorOf(withLength).message}`)
})

test('malformed JSON, prototype keys, wrong types, a wrong media type: 400/415, nothing stored', async () => {
  const good = registrationToJson(signRegistration(Ed25519KeyPair.generate(), fields()))
  const bodies: Array<[string, string, number]> = [
    ['truncated', '{"did": ', 400],
    ['empty', '', 400],
    ['not an object', '[1, 2, 3]', 400],
    ['a string', '"register me"', 400],
    ['nested 5,000 deep', `${'['.repeat(5000)}${']'.repeat(5000)}`, 400],
    ['__proto__', JSON.stringify(good).replace('{', '{"__proto__": {"admin": true},'), 400],
    ['constructor.prototype', JSON.stringify({ ...good, constructor: { prototype: { admin: true } } }), 400],
    ['unknown field', JSON.stringify({ ...good, admin: true }), 400],
    ['seq as an object', JSON.stringify({ ...good, seq: { $gt: 0 } }), 400],
    ['short signature', JSON.stringify({ ...good, signature: 'AAAA' }), 400],
    [
      'duplicate keys, the last one tampered',
      JSON.stringify(good).replace('{', '{"seq": 1,').replace('"seq":1', '"seq":7'),
      403,
    ],
  ]
  for (const [what, body, status] of bodies) {
    const res = await post(body)
    assert.equal(res.status, status, `${what}: ${res.body.slice(0, 200)}`)
    assert.ok(typeof errorOf(res).message === 'string')
  }
  const xml = await post(JSON.stringify(good), { 'content-type': 'application/xml' })
  assert.equal(xml.status, 415)
  const text = await post(JSON.stringify(good), { 'content-type': 'text/plain' })
  assert.equal(text.status, 400, 'a text body is a string, not a registration')
  assert.equal(({} as Record<string, unknown>).admin, undefined, 'no prototype was polluted')
  assert.equal((await fetch(`${api}/v1/directory/entries/${good.did}`)).status, 404)
  await bystanderUnchanged()
})

test('a registration signed by another key is 403, for a new DID and for the bystander; its entry stays', async () => {
  const attacker = Ed25519KeyPair.generate()
  const victim = didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey)
  for (const did of [victim, bystander.did]) {
    const forged = {
      ...registrationToJson(signRegistration(attacker, fields({ seq: 1_000_000, endpoint: 'https://evil.example/' }))),
      did,
    }
    const res = await post(JSON.stringify(forged))
    assert.equal(res.status, 403, res.body)
    assert.equal(errorOf(res).reason, 'DIRECTORY_BAD_SIGNATURE')
  }
  // the bystander's own record, with one field changed after signing
  const tampered = await post(JSON.stringify({ ...bystander, seq: bystander.seq + 1 }))
  assert.equal(tampered.status, 403)
  assert.equal((await fetch(`${api}/v1/directory/entries/${victim}`)).status, 404)
  await bystanderUnchanged()
})

test('10,000 registrations from one key: 5 accepted, then 429 with Retry-After; past the client budget the refusals skip the signature check', async (t) => {
  const key = Ed25519KeyPair.generate()
  const signing = performance.now()
  const bodies = Array.from({ length: 10_000 }, (_, i) =>
    JSON.stringify(registrationToJson(signRegistration(key, fields({ seq: i + 1, description: `flood ${i}` })))),
  )
  t.diagnostic(`signed 10,000 registrations in ${Math.round(performance.now() - signing)} ms`)
  timings.clear()
  const statuses = new Map<number, number>()
  let retryAfter: string | undefined
  const started = performance.now()
  for (const body of bodies) {
    const res = await flood(body)
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
    if (res.status === 429) retryAfter ??= res.retryAfter ?? 'missing'
  }
  const elapsed = performance.now() - started
  t.diagnostic(`statuses ${JSON.stringify(Object.fromEntries(statuses))} in ${Math.round(elapsed)} ms`)
  assert.equal(statuses.get(201), 1)
  assert.equal(statuses.get(200), 4, 'the DID’s burst is 5')
  assert.equal(statuses.get(429), 9_995)
  assert.equal(retryAfter, '60', 'a DID refills one update per minute')

  const outcomes = [...timings.entries()].map(([k, v]) => ({
    outcome: k,
    count: v.length,
    meanUs: Math.round((v.reduce((a, b) => a + b, 0) / v.length) * 1000),
  }))
  t.diagnostic(JSON.stringify(outcomes))
  const ofOutcome = (pattern: RegExp) => outcomes.find((o) => pattern.test(o.outcome))
  const verified = ofOutcome(/^ok$/)
  const perDid = ofOutcome(/^429 too many directory updates for this DID/)
  const perClient = ofOutcome(/^429 too many directory requests from this client/)
  // the client's burst (60) reached the signature check; the 9,940 others were refused before it
  assert.equal(perDid?.count, 55)
  assert.equal(perClient?.count, 9_940)
  assert.ok(
    (perClient?.meanUs ?? Infinity) < (verified?.meanUs ?? 0) / 2,
    `a refusal by the client's budget (${perClient?.meanUs} µs) costs less than half a verified write (${verified?.meanUs} µs)`,
  )
  const last = await fetch(`${api}/v1/directory/entries/${didFromEd25519PublicKey(key.publicKey)}`)
  assert.equal(((await last.json()) as { seq: number }).seq, 5, 'the 5th registration is the one kept')
  // another client is not held back by the flooder
  const other = await rawRequest(api, {
    method: 'POST',
    path: '/v1/directory/register',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(registrationToJson(signRegistration(Ed25519KeyPair.generate(), fields()))),
    localAddress: '127.0.0.3',
  })
  assert.equal(other.status, 201, other.body)
  await bystanderUnchanged()
})

test('429 answers: Retry-After in whole seconds, the reason, and the flooder’s address only', async () => {
  const res = await flood(JSON.stringify(registrationToJson(signRegistration(Ed25519KeyPair.generate(), fields()))))
  assert.equal(res.status, 429, 'the flooding address is still out of budget')
  assert.match(String(res.retryAfter), /^[1-9][0-9]*$/)
  const error = errorOf(res as unknown as RawResponse)
  assert.equal(error.code, 'RATE_LIMITED')
  assert.equal(error.reason, 'DIRECTORY_RATE_LIMITED')
  assert.match(error.message, /from this client/)
  // the same key from another address: its budget is its own
  const other = await post(JSON.stringify(registrationToJson(signRegistration(Ed25519KeyPair.generate(), fields()))))
  assert.equal(other.status, 201, other.body)
  // reads are not charged to the directory's write budget
  assert.equal((await fetch(`${api}/v1/directory/search?category=restaurant`)).status, 200)
  await bystanderUnchanged()
})

test('IPv6 clients are keyed by their /64: 1,000 addresses of one /64 are one client, other /64s are others', () => {
  const rng = createRng(testSeed())
  const group = (): string => rng.int(0, 0xffff).toString(16)
  const keys = new Set<string>()
  for (let i = 0; i < 1000; i++) {
    const host = [group(), group(), group(), group()].join(':')
    keys.add(directoryClientKey(`2001:db8:aa:bb:${host}`))
    keys.add(directoryClientKey(`2001:0db8:00aa:00bb:${host}%eth0`))
  }
  assert.deepEqual([...keys], ['2001:db8:aa:bb::/64'])
  assert.notEqual(directoryClientKey('2001:db8:aa:bc::1'), directoryClientKey('2001:db8:aa:bb::1'))
  assert.equal(directoryClientKey('2001:db8:aa::1'), '2001:db8:aa:0::/64')
  assert.equal(directoryClientKey('::ffff:203.0.113.9'), '203.0.113.9', 'an IPv4-mapped address is its IPv4 address')
})
