import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ManualClock } from '../../core/clock.ts'
import { ExpertDirectory, expertHostKey, EXPERT_HOST_KEY_PREFIX } from './directory.ts'
import { MemoryRouting } from './memory-routing.ts'
import { cidOfBytes, RAW_CODE } from '../../core/cid.ts'
import { utf8 } from '../../core/bytes.ts'
import { testBlock } from './swarm.ts'

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

test('the host key is the raw CID of sha256("donghae/experts/host/" + block)', () => {
  const block = testBlock('x')
  const key = expertHostKey(block)
  assert.equal(key.code, RAW_CODE)
  assert.ok(key.equals(cidOfBytes(utf8(EXPERT_HOST_KEY_PREFIX + block), RAW_CODE)))
  assert.ok(!key.equals(expertHostKey(testBlock('y'))))
})

test('announced blocks are found by others, merged with hints, never listing oneself', async () => {
  const routing = new MemoryRouting()
  const clock = new ManualClock(1_000)
  const block = testBlock('b')
  const a = new ExpertDirectory({ routing: routing.for('did:a'), self: 'did:a', clock })
  const b = new ExpertDirectory({ routing: routing.for('did:b'), self: 'did:b', clock })
  const gw = new ExpertDirectory({ routing: routing.for('did:gw'), self: 'did:gw', clock, minQueryIntervalMs: 10_000 })
  await a.announce(block)
  await b.announce(block)
  assert.deepEqual(a.announced(), [block])
  assert.deepEqual((await gw.hostsOf(block)).sort(), ['did:a', 'did:b'])
  assert.deepEqual(await a.hostsOf(block), ['did:b'])
  gw.learn(block, 'did:hint')
  gw.learn(block, 'did:gw')
  assert.deepEqual((await gw.hostsOf(block)).sort(), ['did:a', 'did:b', 'did:hint'])
  // Within minQueryIntervalMs the cache answers without asking the DHT.
  const finds = routing.finds
  await gw.hostsOf(block)
  assert.equal(routing.finds, finds)
  await gw.hostsOf(block, { fresh: true })
  assert.equal(routing.finds, finds + 1)
  // Bounded by maxHosts.
  const few = new ExpertDirectory({ routing: routing.for('did:f'), clock })
  assert.equal((await few.hostsOf(block, { maxHosts: 1 })).length, 1)
  gw.forget(block, 'did:hint')
  assert.ok(!gw.cached(block).includes('did:hint'))
})

test('cached hosts expire after ttlMs unless seen again', async () => {
  const routing = new MemoryRouting()
  const clock = new ManualClock(0)
  const block = testBlock('c')
  const gw = new ExpertDirectory({ routing: routing.for('did:gw'), clock, ttlMs: 1_000 })
  gw.learn(block, 'did:a')
  gw.learn(block, 'did:b')
  clock.advance(600)
  gw.learn(block, 'did:b') // seen again
  clock.advance(500)
  assert.deepEqual(gw.cached(block), ['did:b'])
  clock.advance(600)
  assert.deepEqual(gw.cached(block), [])
})

test('announced blocks are re-announced every reannounceMs until withdrawn', async () => {
  const routing = new MemoryRouting()
  const clock = new ManualClock(0)
  const block = testBlock('d')
  const a = new ExpertDirectory({ routing: routing.for('did:a'), clock, reannounceMs: 60_000 })
  a.start()
  await a.announce(block)
  assert.equal(a.provides, 1)
  clock.advance(60_000)
  await flush()
  assert.equal(a.provides, 2)
  clock.advance(60_000)
  await flush()
  assert.equal(a.provides, 3)
  await a.withdraw(block)
  assert.deepEqual(a.announced(), [])
  const gw = new ExpertDirectory({ routing: routing.for('did:gw'), clock })
  assert.deepEqual(await gw.hostsOf(block), [])
  clock.advance(60_000)
  await flush()
  assert.equal(a.provides, 3)
  a.stop()
  assert.equal(clock.pending, 0)
})

test('a lookup is bounded by its timeout and a failing DHT leaves the cache as the answer', async () => {
  const clock = new ManualClock(0)
  const block = testBlock('e')
  const errors: string[] = []
  const hanging = new ExpertDirectory({
    clock,
    routing: {
      provide: () => Promise.resolve(),
      findProviders: (_key, signal) =>
        (async function* () {
          yield 'did:first'
          await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
        })(),
    },
  })
  const pending = hanging.hostsOf(block, { timeoutMs: 500 })
  await flush()
  clock.advance(500)
  assert.deepEqual(await pending, ['did:first'])

  const broken = new ExpertDirectory({
    clock,
    onError: (_err, what) => errors.push(what),
    routing: {
      provide: () => Promise.reject(new Error('no peers')),
      findProviders: () =>
        (async function* () {
          yield* []
          throw new Error('no peers')
        })(),
    },
  })
  broken.learn(block, 'did:hint')
  assert.deepEqual(await broken.hostsOf(block, { fresh: true }), ['did:hint'])
  await broken.announce(block)
  assert.deepEqual(errors.length, 2)
})

test('a generation never waits on the DHT for hosts it knows; with none known, the wait is bounded', async () => {
  const clock = new ManualClock(1_000)
  let lookups = 0
  // a DHT that never answers (a dead peer on the query path) and ignores the abort for a while
  const stuck = {
    provide: async () => {},
    findProviders: async function* (): AsyncGenerator<string> {
      lookups++
      await new Promise((resolve) => setTimeout(resolve, 200))
      yield* []
    },
  }
  const dir = new ExpertDirectory({
    routing: stuck,
    self: 'did:gw',
    clock,
    minQueryIntervalMs: 1_000,
    lookupTimeoutMs: 20,
  })
  const block = testBlock('expert')
  dir.learn(block, 'did:host')
  clock.advance(5_000) // the last query is old: a refresh is due
  const started = performance.now()
  assert.deepEqual(await dir.hostsOf(block), ['did:host'])
  assert.ok(performance.now() - started < 50, 'answered from the cache, not after the lookup')
  assert.equal(lookups, 1, 'a refresh started in the background')
  const unknown = testBlock('nobody hosts this')
  const timer = setInterval(() => clock.advance(10), 5)
  try {
    const t0 = performance.now()
    assert.deepEqual(await dir.hostsOf(unknown, { timeoutMs: 20 }), [])
    assert.ok(performance.now() - t0 < 150, `the unknown block's wait is bounded (${performance.now() - t0} ms)`)
  } finally {
    clearInterval(timer)
  }
})
