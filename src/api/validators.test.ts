// LazyValidators: Fastify's request validators compiled on first use, accepting, coercing and
// refusing exactly as Fastify's own compiler does.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import Fastify, { type FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { HeaderCaseError, LazyValidators } from './validators.ts'

const AJV = { customOptions: { removeAdditional: false } } as const

/** A body, a querystring with a default and coercion, params, and a header. */
function routes(app: FastifyInstance): FastifyInstance {
  app.post(
    '/tx/:id',
    {
      schema: {
        params: Type.Object({ id: Type.Integer({ minimum: 1 }) }),
        querystring: Type.Object({ wait: Type.Boolean({ default: false }), n: Type.Optional(Type.Integer()) }),
        body: Type.Object(
          { to: Type.String({ minLength: 3 }), amount: Type.String() },
          { additionalProperties: false },
        ),
        headers: Type.Object({ 'x-tag': Type.Optional(Type.String({ pattern: '^[a-z]+$' })) }),
      },
    },
    async (request) => ({ params: request.params, query: request.query, body: request.body }),
  )
  app.get('/plain', async () => ({ ok: true }))
  return app
}

const REQUESTS = [
  { method: 'POST', url: '/tx/7?n=3', payload: { to: 'abc', amount: '5' } },
  { method: 'POST', url: '/tx/7', payload: { to: 'abc', amount: '5' }, headers: { 'x-tag': 'abc' } },
  { method: 'POST', url: '/tx/0', payload: { to: 'abc', amount: '5' } },
  { method: 'POST', url: '/tx/seven', payload: { to: 'abc', amount: '5' } },
  { method: 'POST', url: '/tx/7?wait=maybe', payload: { to: 'abc', amount: '5' } },
  { method: 'POST', url: '/tx/7', payload: { to: 'ab', amount: '5' } },
  { method: 'POST', url: '/tx/7', payload: { to: 'abc', amount: '5', extra: 1 } },
  { method: 'POST', url: '/tx/7', payload: { to: 'abc', amount: '5' }, headers: { 'x-tag': 'ABC' } },
  { method: 'POST', url: '/tx/7?wait=true&n=x', payload: { to: 'abc', amount: '5' } },
  { method: 'GET', url: '/plain' },
] as const

test('LazyValidators: a request schema compiles on the first request that needs it; requests are accepted, coerced and refused byte for byte as with Fastify’s own compiler', async () => {
  const lazy = new LazyValidators()
  const app = routes(
    Fastify({ ajv: AJV, schemaController: { compilersFactory: { buildValidator: lazy.buildValidator } } }),
  )
  const eager = routes(Fastify({ ajv: AJV }))
  try {
    await Promise.all([app.ready(), eager.ready()])
    assert.equal(lazy.uncompiled, 4, 'params, querystring, body and headers of the one route with schemas')
    const first = await app.inject(REQUESTS[0])
    assert.equal(first.statusCode, 200)
    assert.deepEqual(first.json(), {
      params: { id: 7 },
      query: { wait: false, n: 3 },
      body: { to: 'abc', amount: '5' },
    })
    assert.equal(lazy.uncompiled, 0, 'a request that passes every part compiles all four')
    let refused = 0
    for (const request of REQUESTS) {
      const [mine, theirs] = await Promise.all([app.inject(request), eager.inject(request)])
      assert.equal(mine.statusCode, theirs.statusCode, request.url)
      assert.equal(mine.body, theirs.body, `${request.method} ${request.url}: the same bytes`)
      if (mine.statusCode === 400) refused++
    }
    assert.equal(refused, 7, 'every bad part is refused')
  } finally {
    await Promise.all([app.close(), eager.close()])
  }
})

test('LazyValidators: a part validated first compiles alone; a schema that cannot compile fails its own requests (500) and compileAll, not the others', async () => {
  const lazy = new LazyValidators()
  const app = Fastify({ ajv: AJV, schemaController: { compilersFactory: { buildValidator: lazy.buildValidator } } })
  app.get('/broken', { schema: { querystring: { $ref: '#/definitions/missing' } } }, async () => ({}))
  app.get('/fine/:n', { schema: { params: Type.Object({ n: Type.Integer() }) } }, async (r) => r.params)
  try {
    await app.ready()
    assert.equal(lazy.uncompiled, 4, 'two routes, each also as HEAD')
    assert.equal((await app.inject('/fine/4')).body, '{"n":4}')
    assert.equal(lazy.uncompiled, 3, 'only the route asked compiled')
    assert.equal((await app.inject('/broken')).statusCode, 500)
    assert.equal((await app.inject('/fine/x')).statusCode, 400)
    assert.throws(() => lazy.compileAll(), /missing/)
  } finally {
    await app.close()
  }
})

test('LazyValidators: a headers schema naming a header in upper case is refused when the route is registered (Fastify would not lower-case it for this compiler)', async () => {
  const lazy = new LazyValidators()
  const app = Fastify({ ajv: AJV, schemaController: { compilersFactory: { buildValidator: lazy.buildValidator } } })
  app.get(
    '/h',
    { schema: { headers: Type.Object({ 'x-ok': Type.String(), 'X-Tag': Type.Optional(Type.String()) }) } },
    async () => ({}),
  )
  try {
    await assert.rejects(
      async () => app.ready(),
      (err: Error) => {
        assert.match(err.message, /GET \/h: the headers schema must name header "X-Tag" in lower case/)
        return true
      },
    )
  } finally {
    await app.close()
  }
  assert.throws(
    () =>
      lazy.buildValidator(
        {},
        {},
      )({
        schema: { type: 'object', required: ['Authorization'] },
        method: 'GET',
        url: '/r',
        httpPart: 'headers',
      } as never),
    HeaderCaseError,
  )
})
