// LazySerializers: Fastify's response serializers compiled on first use, once per schema object,
// answering exactly what Fastify's own compiler answers; every schema of the node's API compiles.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import Fastify, { type FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { MemoryChain } from '../../test/helpers/memory-chain.ts'
import { actor, makeGenesis } from '../../test/helpers/chain.ts'
import { EventBus } from './events.ts'
import { LazySerializers } from './serializers.ts'
import { createApiServer, requestValidators, responseSerializers, type ApiServerOptions } from './server.ts'

const ErrorBody = Type.Object({ error: Type.Object({ code: Type.String(), message: Type.String() }) })
const ERRORS = { '4xx': ErrorBody, '5xx': ErrorBody }

/** Three routes: two answers of their own, one error body for all (as the node's routes have). */
function routes(app: FastifyInstance): FastifyInstance {
  const answer = (schema: object) => ({ schema: { response: { 200: schema, ...ERRORS } } })
  app.get('/a', answer(Type.Object({ n: Type.Integer(), s: Type.String() })), async () => ({ n: 7, s: 'x', secret: 1 }))
  app.get('/b', answer(Type.Object({ list: Type.Array(Type.String()) })), async () => ({
    list: ['p', 'q'],
    extra: true,
  }))
  app.get('/c', answer(Type.Object({ ok: Type.Boolean() })), async (_request, reply) =>
    reply.code(404).send({ error: { code: 'NOT_FOUND', message: 'none', stack: 'hidden' } }),
  )
  return app
}

test('LazySerializers: a response schema compiles on the first answer that needs it, a shared one once; answers are byte for byte those of Fastify’s own compiler', async () => {
  const lazy = new LazySerializers()
  const app = routes(Fastify({ schemaController: { compilersFactory: { buildSerializer: lazy.buildSerializer } } }))
  const eager = routes(Fastify())
  try {
    await Promise.all([app.ready(), eager.ready()])
    assert.equal(lazy.uncompiled, 4, "three routes' own answers and one error body shared by all six error statuses")
    for (const [url, left] of [
      ['/a', 3],
      ['/a', 3],
      ['/b', 2],
      ['/c', 1],
    ] as const) {
      const [mine, theirs] = await Promise.all([app.inject(url), eager.inject(url)])
      assert.equal(mine.statusCode, theirs.statusCode, url)
      assert.equal(mine.body, theirs.body, `${url}: the same bytes`)
      assert.equal(lazy.uncompiled, left, `${url}: compiled once, on its first answer`)
    }
    assert.equal((await app.inject('/a')).body, '{"n":7,"s":"x"}', 'properties outside the schema are left out')
    assert.equal((await app.inject('/c')).body, '{"error":{"code":"NOT_FOUND","message":"none"}}')
  } finally {
    await Promise.all([app.close(), eager.close()])
  }
})

test('LazySerializers: a schema that cannot compile fails its own answers (500) and compileAll, not the others', async () => {
  const lazy = new LazySerializers()
  const app = Fastify({ schemaController: { compilersFactory: { buildSerializer: lazy.buildSerializer } } })
  app.get('/broken', { schema: { response: { 200: { $ref: '#/definitions/missing' }, ...ERRORS } } }, async () => ({}))
  app.get('/fine', { schema: { response: { 200: Type.Object({ ok: Type.Boolean() }) } } }, async () => ({ ok: true }))
  try {
    await app.ready()
    const broken = await app.inject('/broken')
    assert.equal(broken.statusCode, 500)
    assert.equal((await app.inject('/fine')).body, '{"ok":true}')
    assert.throws(() => lazy.compileAll(), /missing/)
  } finally {
    await app.close()
  }
})

test("the node's API: every response and request schema of every route group compiles, and an idle server compiled none of them", async () => {
  const validator = actor()
  const genesis = makeGenesis([validator], [])
  const chain = new MemoryChain({ genesis, validators: [validator], moniker: 'serializers' })
  // Route registration only keeps the APIs; no route is called here, so empty objects stand in.
  const unused = {} as never
  const options: ApiServerOptions = {
    chain,
    events: new EventBus(),
    inference: unused,
    experts: unused,
    fl: unused,
    governance: unused,
    arena: unused,
    net: unused,
    webrtc: unused,
    directory: unused,
    wallet: unused,
    metrics: unused,
    resources: unused,
    operator: unused,
  }
  const app = createApiServer(options)
  let statuses = 0
  let parts = 0
  app.addHook('onRoute', (route) => {
    statuses += Object.keys((route.schema?.response as object | undefined) ?? {}).length
    // the OpenAI-compatible routes check their bodies themselves (their own validatorCompiler)
    for (const part of ['body', 'querystring', 'params', 'headers'] as const)
      if (route.schema?.[part] !== undefined && route.validatorCompiler === undefined) parts++
  })
  try {
    await app.ready()
    const serializers = responseSerializers(app)
    assert.ok(serializers !== undefined)
    const waiting = serializers.uncompiled
    assert.ok(statuses > 300, `every route group registered (${statuses} response statuses)`)
    assert.ok(waiting > 50 && waiting < statuses / 2, `${waiting} schemas for ${statuses} statuses: shared ones once`)
    serializers.compileAll()
    assert.equal(serializers.uncompiled, 0)
    const validators = requestValidators(app)
    assert.ok(validators !== undefined)
    assert.ok(parts > 100, `every route group registered (${parts} request parts with a schema)`)
    assert.equal(validators.uncompiled, parts, 'no request schema compiled before a request needs it')
    validators.compileAll()
    assert.equal(validators.uncompiled, 0)
  } finally {
    await app.close()
  }
})
