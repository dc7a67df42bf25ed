// GET /v1/node/resources over a real sampler on a manual clock: the samples as the sampler took
// them, `since` for what is new, a bad `since` rejected, the route in the OpenAPI document, and
// no route without a sampler.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ManualClock } from '../src/core/clock.ts'
import { ResourceSampler, type ResourceSources } from '../src/node/resources.ts'
import { createApiServer } from '../src/api/server.ts'
import type { ResourcesView } from '../src/api/resources-api.ts'
import { actor, makeGenesis } from './helpers/chain.ts'
import { MemoryChain } from './helpers/memory-chain.ts'

const T0 = 1_700_000_000_000
const validator = actor()
const chain = (): MemoryChain => new MemoryChain({ genesis: makeGenesis([validator], []), validators: [validator] })

test('GET /v1/node/resources: the samples, oldest first; ?since= the newer ones; in the OpenAPI document', async () => {
  const clock = new ManualClock(T0)
  let cpu = 0
  const sources: ResourceSources = {
    cpuMicros: () => cpu,
    rssBytes: () => 64 << 20,
    eventLoop: () => ({ p99Ms: 3.5, maxMs: 9 }),
    resetEventLoop: () => {},
    close: () => {},
  }
  const sampler = new ResourceSampler({ clock, sources })
  sampler.start()
  sampler.blockCommitted(1, T0 + 1_000)
  sampler.blockCommitted(2, T0 + 2_000)
  cpu = 1_000_000
  clock.advance(5_000)
  clock.advance(5_000)
  const app = createApiServer({ chain: chain(), resources: sampler })
  try {
    const all = await app.inject({ method: 'GET', url: '/v1/node/resources' })
    assert.equal(all.statusCode, 200, all.body)
    const view = all.json<ResourcesView>()
    assert.equal(view.intervalMs, 5_000)
    assert.equal(view.windowMs, 3_600_000)
    assert.deepEqual(view.samples[0], {
      at: T0 + 5_000,
      cpu: 0.2,
      rssBytes: 64 << 20,
      eventLoopDelayMs: 3.5,
      eventLoopMaxMs: 9,
      blockIntervalMs: 1_000,
      height: 2,
    })
    assert.deepEqual(
      view.samples.map((s) => [s.at - T0, s.cpu, s.blockIntervalMs]),
      [
        [5_000, 0.2, 1_000],
        [10_000, 0, 8_000],
      ],
    )

    const newer = await app.inject({ method: 'GET', url: `/v1/node/resources?since=${T0 + 5_000}` })
    assert.deepEqual(
      newer.json<ResourcesView>().samples.map((s) => s.at),
      [T0 + 10_000],
    )
    const none = await app.inject({ method: 'GET', url: `/v1/node/resources?since=${T0 + 10_000}` })
    assert.deepEqual(none.json<ResourcesView>().samples, [])

    const bad = await app.inject({ method: 'GET', url: '/v1/node/resources?since=yesterday' })
    assert.equal(bad.statusCode, 400)

    const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json<{
      paths: Record<string, { get?: { parameters?: Array<{ name: string }>; responses: Record<string, unknown> } }>
    }>()
    const route = doc.paths['/v1/node/resources']?.get
    assert.ok(route !== undefined, 'the route is in the OpenAPI document')
    assert.ok(route.parameters?.some((p) => p.name === 'since'))
    assert.ok(route.responses['200'] !== undefined)
  } finally {
    sampler.stop()
    await app.close()
  }
})

test('without a sampler the route does not exist', async () => {
  const app = createApiServer({ chain: chain() })
  try {
    assert.equal((await app.inject({ method: 'GET', url: '/v1/node/resources' })).statusCode, 404)
  } finally {
    await app.close()
  }
})
