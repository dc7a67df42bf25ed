import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ManualClock } from '../../core/clock.ts'
import { createRng } from '../../core/rng.ts'
import { maxAbsDiff } from './coordinator.ts'
import { TooFewExpertsError } from './errors.ts'
import { ExpertSwarm, referenceExpert, testBlock, testCall } from './swarm.ts'

const FAST = { callTimeoutMs: 150, layerDeadlineMs: 300, rng: createRng(7) }

test('calls go to the hosts of each expert and come back with their outputs', async () => {
  const swarm = new ExpertSwarm()
  const c0 = testCall(0, 0)
  const c1 = testCall(0, 1)
  await swarm.addHost('did:a', [c0.block])
  await swarm.addHost('did:b', [c1.block])
  const { experts } = swarm.client('did:gw', FAST)
  const answers = await experts.runLayer([c0, c1])
  assert.equal(answers[0]?.host, 'did:a')
  assert.equal(answers[1]?.host, 'did:b')
  assert.deepEqual(answers[0]?.output, referenceExpert(c0))
  assert.deepEqual(answers[1]?.output, referenceExpert(c1))
  assert.equal(experts.stats().failovers, 0)
  assert.equal(experts.host('did:a')?.calls, 1)
})

test('a slow host misses the call deadline and the replica answers', async () => {
  const swarm = new ExpertSwarm()
  const call = testCall(0, 0)
  await swarm.addHost('did:a-slow', [call.block], 'slow')
  await swarm.addHost('did:b', [call.block])
  const { experts } = swarm.client('did:gw', FAST)
  const started = Date.now()
  const [answer] = await experts.runLayer([call])
  assert.equal(answer?.host, 'did:b')
  assert.deepEqual(answer?.output, referenceExpert(call))
  assert.ok(Date.now() - started >= FAST.callTimeoutMs - 5)
  assert.equal(experts.stats().failovers, 1)
  assert.equal(experts.host('did:a-slow')?.failures, 1)
  // The slow host's latency now counts a full timeout: the replica is asked first next time.
  const [again] = await experts.runLayer([call])
  assert.equal(again?.host, 'did:b')
  assert.equal(experts.stats().failovers, 1)
})

test('a dead host is failed over at once, and a host failing in a row is suspended', async () => {
  const swarm = new ExpertSwarm()
  const call = testCall(1, 3)
  await swarm.addHost('did:a', [call.block], 'failing')
  await swarm.addHost('did:b', [call.block])
  await swarm.addHost('did:c', [call.block])
  swarm.hub.setUp('did:b', false)
  const { experts } = swarm.client('did:gw', { ...FAST, failuresToSuspend: 2, suspendMs: 60_000 })
  const [answer] = await experts.runLayer([call])
  assert.equal(answer?.host, 'did:c')
  assert.equal(experts.stats().failovers, 2)
  assert.equal(experts.host('did:a')?.consecutiveFailures, 1)
  // c is now the fastest known; make a and b look best again by failing c once: a second failure
  // of a suspends it.
  swarm.hub.setUp('did:c', false)
  swarm.hub.setUp('did:b', true)
  const [second] = await experts.runLayer([call])
  assert.equal(second?.host, 'did:b')
  assert.ok((experts.host('did:a')?.suspendedUntil ?? 0) > Date.now())
  const callsOfA = swarm.hosts.get('did:a')?.calls
  await experts.runLayer([call])
  assert.equal(swarm.hosts.get('did:a')?.calls, callsOfA, 'a suspended host is not asked')
})

test('an expert whose hosts are all dead is masked; fewer than kMin answers throws', async () => {
  const swarm = new ExpertSwarm()
  const c0 = testCall(0, 0)
  const c1 = testCall(0, 1)
  await swarm.addHost('did:a', [c0.block])
  await swarm.addHost('did:b', [c1.block])
  await swarm.addHost('did:c', [c1.block])
  swarm.hub.setUp('did:b', false)
  swarm.hub.setUp('did:c', false)
  const { experts } = swarm.client('did:gw', FAST)
  const answers = await experts.runLayer([c0, c1])
  assert.equal(answers[0]?.host, 'did:a')
  assert.equal(answers[1], null)
  assert.equal(experts.stats().masked, 1)

  const strict = swarm.client('did:gw2', { ...FAST, kMin: 2 }).experts
  await assert.rejects(strict.runLayer([c0, c1]), TooFewExpertsError)
  // An expert nobody announced is masked too.
  const nobody = { ...testCall(0, 9), block: testBlock('nobody') }
  await assert.rejects(strict.runLayer([nobody]), TooFewExpertsError)
})

test('the layer deadline returns with kMin answers and leaves slow experts masked', async () => {
  const swarm = new ExpertSwarm()
  const fast = testCall(2, 0)
  const slow = testCall(2, 1)
  await swarm.addHost('did:a', [fast.block])
  await swarm.addHost('did:b', [slow.block], 'slow')
  const { experts } = swarm.client('did:gw', { callTimeoutMs: 1_500, layerDeadlineMs: 80, kMin: 1 })
  const started = Date.now()
  const answers = await experts.runLayer([fast, slow])
  assert.ok(Date.now() - started < 1_000, 'the layer did not wait for the slow host')
  assert.equal(answers[0]?.host, 'did:a')
  assert.equal(answers[1], null)
})

test('audit: a mismatch settled by a third opinion quarantines the liar, not the honest', async () => {
  const swarm = new ExpertSwarm()
  const call = testCall(0, 2)
  await swarm.addHost('did:a', [call.block], 'liar') // asked first (ties go by DID)
  await swarm.addHost('did:b', [call.block])
  await swarm.addHost('did:c', [call.block])
  const { experts } = swarm.client('did:gw', { ...FAST, auditPpm: 1_000_000, toleranceMicro: 10 })
  const [answer] = await experts.runLayer([call])
  assert.equal(answer?.host, 'did:a')
  await experts.idle()
  assert.ok(experts.isQuarantined('did:a'))
  assert.ok(!experts.isQuarantined('did:b'))
  assert.ok(!experts.isQuarantined('did:c'))
  assert.equal(experts.host('did:a')?.auditsFailed, 1)
  assert.deepEqual(experts.stats().audits, { run: 1, passed: 0, failed: 1, inconclusive: 0 })
  const [next] = await experts.runLayer([call])
  assert.notEqual(next?.host, 'did:a')
  assert.deepEqual(next?.output, referenceExpert(call))
})

test('audit: when the second opinion is the liar, the second is quarantined', async () => {
  const swarm = new ExpertSwarm()
  const call = testCall(0, 2)
  await swarm.addHost('did:a', [call.block])
  await swarm.addHost('did:b', [call.block], 'liar')
  await swarm.addHost('did:c', [call.block])
  const { experts } = swarm.client('did:gw', { ...FAST, auditPpm: 1_000_000, toleranceMicro: 10 })
  await experts.runLayer([call])
  await experts.idle()
  assert.ok(experts.isQuarantined('did:b'))
  assert.ok(!experts.isQuarantined('did:a'))
  assert.equal(experts.host('did:a')?.auditsPassed, 1)
})

test('audit: an honest answer passes; without a second opinion it is inconclusive', async () => {
  const swarm = new ExpertSwarm()
  const call = testCall(0, 1)
  const lone = testCall(0, 4)
  await swarm.addHost('did:a', [call.block, lone.block])
  await swarm.addHost('did:b', [call.block])
  const { experts } = swarm.client('did:gw', { ...FAST, auditPpm: 1_000_000 })
  await experts.runLayer([call, lone])
  await experts.idle()
  assert.deepEqual(experts.stats().audits, { run: 2, passed: 1, failed: 0, inconclusive: 1 })
  assert.equal(experts.stats().hosts.filter((h) => h.quarantinedUntil > 0).length, 0)
})

test('audit: the local runtime is a second opinion, and a local answer is used first', async () => {
  const swarm = new ExpertSwarm()
  const call = testCall(0, 5)
  const other = testCall(0, 6)
  await swarm.addHost('did:a', [call.block], 'liar')
  await swarm.addHost('did:b', [call.block])
  const local = (c: typeof call): Promise<Float32Array> | undefined =>
    c.block === other.block ? Promise.resolve(referenceExpert(c)) : undefined
  const { experts } = swarm.client('did:gw', { ...FAST, auditPpm: 1_000_000, toleranceMicro: 10, local })
  const answers = await experts.runLayer([call, other])
  assert.equal(answers[1]?.host, 'local')
  await experts.idle()
  // local cannot run `call`: b (second) disagrees with a; with no third opinion nobody is blamed.
  assert.deepEqual(experts.stats().audits, { run: 1, passed: 0, failed: 0, inconclusive: 1 })

  let audits = 0
  const withLocal = swarm.client('did:gw2', {
    ...FAST,
    auditPpm: 1_000_000,
    toleranceMicro: 10,
    local: (c, signal) => {
      void signal
      return c.block === call.block && audits++ > 0 ? Promise.resolve(referenceExpert(c)) : undefined
    },
  }).experts
  await withLocal.runLayer([call]) // the first local() call declines, so a answers; then local audits
  await withLocal.idle()
  assert.ok(withLocal.isQuarantined('did:a'))
  assert.ok(!withLocal.isQuarantined('did:b'))
})

test('operator quarantine and recover move calls away from a host and back', async () => {
  const swarm = new ExpertSwarm()
  const call = testCall(3, 0)
  await swarm.addHost('did:a', [call.block])
  await swarm.addHost('did:b', [call.block])
  const { experts } = swarm.client('did:gw', FAST)
  experts.quarantine('did:a')
  assert.ok(experts.isQuarantined('did:a'))
  assert.equal((await experts.runLayer([call]))[0]?.host, 'did:b')
  experts.recover('did:a')
  assert.ok(!experts.isQuarantined('did:a'))
  // b's latency is known now; recovering a (unknown latency) makes it a candidate again.
  assert.ok((await experts.runLayer([call]))[0] !== null)
  assert.ok((experts.host('did:a')?.quarantinedUntil ?? 0) === 0)
})

test('co-located hosts are preferred; groups and replication suggestions', async () => {
  const swarm = new ExpertSwarm()
  const e0 = testCall(0, 0)
  const e1 = testCall(0, 1)
  const e2 = testCall(1, 2)
  const e3 = testCall(1, 3)
  // did:a holds e0 only; did:z holds e0, e1 and e2 (a whole group): z is asked for e0 too.
  await swarm.addHost('did:a', [e0.block])
  await swarm.addHost('did:z', [e0.block, e1.block, e2.block])
  await swarm.addHost('did:y', [e3.block])
  const { experts } = swarm.client('did:gw', FAST)
  for (let t = 0; t < 4; t++) {
    const l0 = await experts.runLayer([e0, e1])
    assert.equal(l0[0]?.host, 'did:z')
    const l1 = await experts.runLayer(t % 2 === 0 ? [e2] : [e3])
    assert.ok(l1[0] !== null)
  }
  const groups = experts.groups()
  const top = groups[0]
  assert.ok(top !== undefined)
  assert.deepEqual(new Set(top.experts.map((e) => e.block)), new Set([e0.block, e1.block]))
  assert.equal(top.count, 4)
  assert.equal(top.share, 4 / 8)
  assert.deepEqual(top.hosts, ['did:z'])
  // Adjacent layers: (e0|e1, e2) twice each.
  const cross = groups.find(
    (g) => g.experts.some((e) => e.block === e2.block) && g.experts.some((e) => e.block === e1.block),
  )
  assert.equal(cross?.count, 2)

  const suggestions = experts.replicationSuggestions(
    [
      { block: e0.block, calls: 80 },
      { block: e3.block, calls: 10 },
      { block: e2.block, calls: 10 },
    ],
    { hosts: 4, factor: 1 },
  )
  // e0: share 0.8 → wanted ceil(3.2) = 4, 2 replicas; e3 and e2: wanted 1, have 1.
  assert.deepEqual(
    suggestions.map((s) => [s.block, s.wanted, s.replicas, s.missing]),
    [[e0.block, 4, 2, 2]],
  )
  // Its own counts by default.
  assert.ok(experts.replicationSuggestions().length >= 0)
})

test('maxAbsDiff compares element by element and refuses different sizes and NaN', () => {
  assert.equal(maxAbsDiff(new Float32Array([1, 2]), new Float32Array([1, 2.5])), 0.5)
  assert.equal(maxAbsDiff(new Float32Array([1]), new Float32Array([1, 2])), Number.POSITIVE_INFINITY)
  assert.equal(maxAbsDiff(new Float32Array([Number.NaN]), new Float32Array([1])), Number.POSITIVE_INFINITY)
})

test('hedged calls: a host that goes quiet costs a hedge delay, not the call deadline, and is not blamed', async () => {
  const swarm = new ExpertSwarm()
  const call = testCall(0, 2)
  await swarm.addHost('did:a-quiet', [call.block], 'slow')
  await swarm.addHost('did:b', [call.block])
  const { experts } = swarm.client('did:gw', { ...FAST, callTimeoutMs: 2_000, layerDeadlineMs: 4_000, hedgeMinMs: 30 })
  const started = Date.now()
  const [answer] = await experts.runLayer([call])
  const elapsed = Date.now() - started
  assert.equal(answer?.host, 'did:b')
  assert.deepEqual(answer?.output, referenceExpert(call))
  assert.ok(elapsed < 1_000, `answered after ${elapsed} ms, before the 2 s deadline`)
  assert.deepEqual([experts.stats().hedges, experts.stats().failovers], [1, 1])
  assert.equal(experts.host('did:a-quiet')?.failures, 0, 'losing a race is no failure')
  // its time so far fed its latency: the replica that answered is asked first next time
  assert.ok((experts.host('did:a-quiet')?.meanLatencyMs ?? 0) >= 30)
  const [again] = await experts.runLayer([call])
  assert.equal(again?.host, 'did:b')
  assert.equal(experts.stats().hedges, 1, 'no hedge when the first host answers')
})

test('without hedging a quiet host holds the call for the whole deadline', async () => {
  const swarm = new ExpertSwarm()
  const call = testCall(0, 2)
  await swarm.addHost('did:a-quiet', [call.block], 'slow')
  await swarm.addHost('did:b', [call.block])
  const { experts } = swarm.client('did:gw', { ...FAST, callTimeoutMs: 400, layerDeadlineMs: 1_000 })
  const started = Date.now()
  const [answer] = await experts.runLayer([call])
  assert.equal(answer?.host, 'did:b')
  assert.ok(Date.now() - started >= 395, 'the deadline was waited out')
  assert.equal(experts.stats().hedges, 0)
})

test('local runtime: bounded by the call deadline when replicas exist, awaited when it is the only host', async () => {
  const swarm = new ExpertSwarm()
  const call = testCall(1, 1)
  await swarm.addHost('did:b', [call.block])
  // weights still on their way: the local answer takes 600 ms
  const slowLocal = (c: typeof call): Promise<Float32Array> =>
    new Promise((resolve) => setTimeout(() => resolve(referenceExpert(c)), 600))
  const { experts } = swarm.client('did:gw', { ...FAST, callTimeoutMs: 100, layerDeadlineMs: 2_000, local: slowLocal })
  const started = Date.now()
  const [answer] = await experts.runLayer([call])
  assert.equal(answer?.host, 'did:b', 'the replica answered once the local runtime used its deadline')
  assert.ok(Date.now() - started < 500)

  const alone = new ExpertSwarm()
  const lonely = alone.client('did:gw', {
    ...FAST,
    callTimeoutMs: 100,
    layerDeadlineMs: 2_000,
    local: slowLocal,
  }).experts
  const [mine] = await lonely.runLayer([call])
  assert.equal(mine?.host, 'local', 'with no replica the local runtime is waited for')
  assert.deepEqual(mine?.output, referenceExpert(call))
})

test('when every host of an expert is suspended, the one that failed last is asked last', async () => {
  const swarm = new ExpertSwarm()
  const call = testCall(1, 4)
  await swarm.addHost('did:a', [call.block])
  await swarm.addHost('did:b', [call.block])
  const clock = new ManualClock(1_000_000)
  const { experts } = swarm.client('did:gw', { ...FAST, failuresToSuspend: 1, suspendMs: 60_000, clock })
  swarm.hub.setUp('did:a', false)
  assert.equal((await experts.runLayer([call]))[0]?.host, 'did:b') // a slips once: suspended
  clock.advance(1_000)
  swarm.hub.setUp('did:a', true)
  swarm.hub.setUp('did:b', false) // b dies: suspended after a
  assert.equal((await experts.runLayer([call]))[0]?.host, 'did:a')
  const failovers = experts.stats().failovers
  const callsOfB = swarm.hosts.get('did:b')?.calls
  // both suspended now: a (suspended first) is asked before the host that just died
  assert.equal((await experts.runLayer([call]))[0]?.host, 'did:a')
  assert.equal(experts.stats().failovers, failovers, 'no call went to b first')
  assert.equal(swarm.hosts.get('did:b')?.calls, callsOfB)
})
