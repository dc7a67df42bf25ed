// Scale simulation: a small network of real js-libp2p nodes over the memory transport must answer
// every DHT lookup and deliver every gossip message, the same across worker processes over TCP,
// and the seeded choices must depend on the seed alone. The Kademlia model (not libp2p) is checked on the same properties at 500 nodes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { planScaleSimulation, runScaleSimulation, type ScaleOptions } from './scale.ts'
import { runKademliaModel } from './kademlia-model.ts'
import { QueryTrace } from './trace.ts'
import { SimulationOptionsError } from './errors.ts'
import { percentile, summarize } from './stats.ts'
import { createSimNode, type NodeConfig } from './node.ts'
import { everyTenth } from './processes.ts'

const SEED = Number(process.env.DONGHAE_SIM_SEED ?? 11)
const SMALL: ScaleOptions = { nodes: 30, seed: SEED, lookups: 8, messages: 3, warmup: false }

test(`30 libp2p nodes (seed ${SEED}): every lookup succeeds, hops ≥ 1, gossip reaches every node`, async (t) => {
  const result = await runScaleSimulation(SMALL)
  t.diagnostic(
    `join ${result.setup.joinMs} ms, warm-up ${result.setup.warmupMs} ms, findPeer p50 ${result.findPeer.latencyMs.p50} ms, ` +
      `get p50 ${result.getValue.latencyMs.p50} ms, gossip p99 ${result.gossip.latencyMs.p99} ms, ` +
      `RSS peak ${Math.round(result.memory.rssPeakBytes / 2 ** 20)} MiB, total ${result.durationMs} ms`,
  )
  assert.equal(result.kind, 'libp2p')
  assert.equal(result.dht.protocol, '/donghae/kad/1.0.0')
  assert.equal(result.nodes, 30)
  for (const stats of [result.findPeer, result.getValue]) {
    assert.equal(stats.attempted, SMALL.lookups)
    assert.equal(stats.succeeded, stats.attempted, `seed ${SEED}: ${JSON.stringify(stats)}`)
    assert.equal(stats.successRate, 1)
    assert.ok(stats.latencyMs.p50 > 0)
    assert.ok(stats.queried.min >= 1)
  }
  assert.ok(result.findPeer.hops.min >= 1)
  assert.ok(result.getValue.hops.count + result.getValue.localOnly === SMALL.lookups)
  if (result.getValue.hops.count > 0) assert.ok(result.getValue.hops.min >= 1)
  assert.equal(result.put.succeeded, SMALL.lookups)
  assert.equal(result.getValue.unstored, 0)
  assert.equal(result.gossip.expected, 3 * 29)
  assert.equal(result.gossip.deliveryRatio, 1, `seed ${SEED}: ${JSON.stringify(result.gossip)}`)
  assert.ok(result.gossip.latencyMs.p99 >= result.gossip.latencyMs.p50)
  assert.ok(result.memory.rssPeakBytes >= result.memory.rssBeforeBytes)
  assert.deepEqual(result.plan, planScaleSimulation(SMALL), 'the run used the seeded plan')
})

test(`24 libp2p nodes in 2 processes over TCP (seed ${SEED}): every lookup and get succeeds, every value reaches some of the k closest`, async (t) => {
  const options: ScaleOptions = { nodes: 24, seed: SEED, lookups: 8, messages: 0, processes: 2 }
  const result = await runScaleSimulation(options)
  t.diagnostic(
    `join ${result.setup.joinMs} ms, warm-up ${result.setup.warmupMs} ms, findPeer p50 ${result.findPeer.latencyMs.p50} ms, ` +
      `get p50 ${result.getValue.latencyMs.p50} ms, total ${result.durationMs} ms`,
  )
  assert.equal(result.processes, 2)
  assert.equal(result.transport.name, '@libp2p/tcp')
  assert.match(result.label, /2 processes/)
  // the node's get and kad-dht's own (the bench's same-run baseline) read back the same values
  for (const stats of [result.findPeer, result.getValue, result.getValueKad]) {
    assert.equal(stats.attempted, options.lookups)
    assert.equal(stats.succeeded, stats.attempted, `seed ${SEED}: ${JSON.stringify(stats)}`)
    assert.ok(stats.latencyMs.p50 > 0)
  }
  assert.deepEqual(result.getValue.failures, [])
  assert.ok(result.findPeer.hops.min >= 1 && result.findPeer.hops.max <= Math.ceil(Math.log2(24)))
  assert.equal(result.put.succeeded, options.lookups)
  // every value is held by some of the network's 20 closest to its key (all 20 on an idle machine;
  // under CPU load a put's lookup can miss a peer that answered too late)
  assert.ok(result.put.kClosestHolding.min >= 1, JSON.stringify(result.put))
  assert.ok(result.setup.routingTablePerNode.min >= 1)
  assert.equal(result.gossip.messages, 0, 'gossip is not measured across processes')
  assert.deepEqual(result.plan, planScaleSimulation(options), 'the run used the seeded plan')
  assert.deepEqual(
    result.plan.joins,
    planScaleSimulation(SMALL).joins.slice(0, 24),
    'the same join plan as one process',
  )
})

test('the seeded plan depends only on the seed and the counts', () => {
  const plan = planScaleSimulation(SMALL)
  assert.deepEqual(planScaleSimulation({ ...SMALL }), plan)
  assert.notDeepEqual(planScaleSimulation({ ...SMALL, seed: SEED + 1 }), plan)
  assert.deepEqual(planScaleSimulation({ ...SMALL, latencyMs: 5 }), plan, 'latency does not move node choices')
  for (const [i, peers] of plan.joins.entries()) {
    assert.ok(peers.every((p) => p < i))
    assert.equal(new Set(peers).size, peers.length)
    if (i >= 3)
      assert.ok(
        peers.some((p) => p < 3),
        'every joining node knows a bootstrap node',
      )
  }
  for (const [a, b] of [...plan.findPeer, ...plan.getValue]) assert.notEqual(a, b)
  assert.equal(plan.publishers.length, SMALL.messages)
})

test('options are checked before any node starts', async () => {
  await assert.rejects(runScaleSimulation({ ...SMALL, nodes: 1 }), SimulationOptionsError)
  await assert.rejects(runScaleSimulation({ ...SMALL, latencyMs: -1 }), SimulationOptionsError)
  await assert.rejects(runScaleSimulation({ ...SMALL, dhtProtocolPrefix: 'donghae' }), SimulationOptionsError)
  await assert.rejects(runScaleSimulation({ ...SMALL, processes: 2, messages: 1 }), SimulationOptionsError)
  await assert.rejects(runScaleSimulation({ ...SMALL, processes: 0 }), SimulationOptionsError)
  await assert.rejects(runScaleSimulation({ ...SMALL, maintenanceMs: 0 }), SimulationOptionsError)
  await assert.rejects(runScaleSimulation({ ...SMALL, maintenanceMs: 2 ** 31 }), SimulationOptionsError)
})

test('a node repeats its self-lookup and bucket refresh at maintenanceMs', async (t) => {
  const config: NodeConfig = {
    nodes: 2,
    latencyMs: 0,
    prefix: '/donghae',
    alpha: 3,
    k: 20,
    maxConnections: 10,
    lookupTimeoutMs: 5_000,
    maintenanceMs: 300,
  }
  const a = await createSimNode(config, new Uint8Array(32).fill(1), '/memory/maintenance-a')
  const b = await createSimNode(config, new Uint8Array(32).fill(2), '/memory/maintenance-b')
  t.after(() => Promise.all([a.stop(), b.stop()]))
  await a.dial(b.getMultiaddrs()[0]!)
  // kad-dht's self-query announces each round on the node's events; at its default 5 min none
  // would follow the first within 2 s
  let selfQueries = 0
  ;(a as unknown as EventTarget).addEventListener('kad-dht:query:self', () => void selfQueries++)
  await new Promise((resolve) => setTimeout(resolve, 2_000))
  assert.ok(selfQueries >= 3, `self-lookups in 2 s at a 300 ms interval: ${selfQueries}`)
  const refresh = (a.services.dht as unknown as { routingTableRefresh: { refreshInterval: number } })
    .routingTableRefresh
  assert.equal(refresh.refreshInterval, 300)
})

test('Kademlia model (not libp2p), 500 nodes: lookups succeed in few hops, deterministically', () => {
  const options = { nodes: 500, seed: SEED, lookups: 60 }
  const result = runKademliaModel(options)
  assert.equal(result.kind, 'kademlia-model')
  assert.match(result.label, /not libp2p/)
  assert.equal(result.findPeer.successRate, 1)
  assert.equal(result.getValue.successRate, 1)
  assert.ok(result.findPeer.hops.min >= 1 && result.findPeer.hops.max <= 6)
  assert.ok(result.findPeer.latencyMs.min >= 25, 'at least one round trip of ≥ 2 × 12.5 ms')
  assert.ok(result.routingTablePerNode.max <= 256 * 20)
  const again = runKademliaModel(options)
  assert.deepEqual({ ...again, durationMs: 0 }, { ...result, durationMs: 0 })
})

test('hops: shortest referral chain to the answering peer', () => {
  const peer = (id: string) => ({ toString: () => id }) as never
  const trace = new QueryTrace(['a', 'b'])
  const send = (to: string) => ({ name: 'SEND_QUERY', to: peer(to) }) as never
  const answer = (from: string, closer: string[]) =>
    ({ name: 'PEER_RESPONSE', from: peer(from), closer: closer.map((id) => ({ id: peer(id) })) }) as never
  trace.record(send('a'))
  trace.record(send('b'))
  trace.record(answer('a', ['c']))
  trace.record(send('c'))
  trace.record(answer('c', ['d', 'b']))
  trace.record(send('d'))
  assert.equal(trace.hopsTo('a'), 1)
  assert.equal(trace.hopsTo('b'), 1, 'a starting peer stays at 1 even when named later')
  assert.equal(trace.hopsTo('c'), 2)
  assert.equal(trace.hopsTo('d'), 3)
  assert.equal(trace.queried, 4)
})

test('percentiles are nearest-rank', () => {
  const values = Array.from({ length: 100 }, (_, i) => i + 1)
  assert.equal(percentile(values, 0.5), 50)
  assert.equal(percentile(values, 0.99), 99)
  assert.equal(summarize([3, 1, 2]).p50, 2)
  assert.ok(Number.isNaN(summarize([]).p50))
})

test('progress is reported at each tenth of the work, and at its end', () => {
  const seen: number[] = []
  const onDone = everyTenth(25, (done) => seen.push(done))
  for (let done = 1; done <= 25; done++) onDone(done)
  assert.deepEqual(seen, [3, 5, 8, 10, 13, 15, 18, 20, 23, 25])
  const few: number[] = []
  const small = everyTenth(3, (done) => few.push(done))
  for (let done = 1; done <= 3; done++) small(done)
  assert.deepEqual(few, [1, 2, 3])
})
