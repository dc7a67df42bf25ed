// PortMappingManager's schedule (backoff, renewal at half the lease, reboot detection, removal
// on stop) driven by a ManualClock against a real NAT-PMP responder on 127.0.0.1.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ManualClock } from '../../core/clock.ts'
import { PortMappingManager, type NatChange, type PortMappingOptions } from './manager.ts'
import { FakePmpRouter } from './fake-pmp-router.test-helper.ts'
import { InvalidInputError } from '../../core/errors.ts'

interface Rig {
  clock: ManualClock
  router: FakePmpRouter
  changes: NatChange[]
  manager: PortMappingManager
}

async function rig(options: Partial<PortMappingOptions>, fn: (r: Rig) => Promise<void>): Promise<void> {
  const clock = new ManualClock(1_000_000)
  const router = await FakePmpRouter.start(() => clock.now())
  const changes: NatChange[] = []
  const manager = new PortMappingManager({
    mode: 'pmp',
    internalPort: 4011,
    gateway: '127.0.0.1',
    internalAddress: '127.0.0.1',
    pmpPort: router.port,
    clock,
    onChange: (c) => changes.push(c),
    ...options,
  })
  try {
    await fn({ clock, router, changes, manager })
  } finally {
    await manager.stop()
    await router.close()
  }
}

/** Waits (in real time, briefly) until the manager has acted on what the router answered. */
async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 2000
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}

const maps = (router: FakePmpRouter) => router.requests.filter((r) => r.opcode === 2)

test('options are checked', () => {
  assert.throws(() => new PortMappingManager({ mode: 'bogus' as 'auto', internalPort: 1 }), InvalidInputError)
  assert.throws(() => new PortMappingManager({ mode: 'pmp', internalPort: 70_000 }), InvalidInputError)
  assert.throws(() => new PortMappingManager({ mode: 'pmp', internalPort: 1, leaseSeconds: 1 }), InvalidInputError)
})

test('mode off: no request, and a "none" change that points to the relay', async () => {
  await rig({ mode: 'off' }, async ({ router, changes, manager }) => {
    await manager.start()
    assert.deepEqual(changes, [
      { method: 'none', reason: 'port mapping is off (--nat off)', fallback: 'circuit-relay' },
    ])
    assert.equal(manager.status().state, 'off')
    assert.equal(router.requests.length, 0)
  })
})

test('maps with the lease in seconds, then renews at half the lease the router granted', async () => {
  await rig({ leaseSeconds: 3600 }, async ({ clock, router, changes, manager }) => {
    router.respond = (req, r) => r.ok(req, { lifetimeSeconds: req.lifetimeSeconds === 0 ? 0 : 120 }) // the router cuts the lease
    await manager.start()
    assert.deepEqual(changes[0], {
      method: 'pmp',
      externalAddress: '11.0.0.1',
      externalPort: 4011,
      leaseSeconds: 120,
      internalAddress: '127.0.0.1',
      internalPort: 4011,
      protocol: 'tcp',
    })
    assert.equal(maps(router)[0]?.lifetimeSeconds, 3600, 'asked for 3600 s, not milliseconds')
    const start = clock.now()
    clock.advance(59_999)
    assert.equal(maps(router).length, 1, 'no renewal before half the granted lease')
    clock.advance(1)
    await router.waitForRequests(router.requests.length + 1)
    const renewal = maps(router)[1]
    assert.equal(renewal?.at, start + 60_000)
    assert.equal(renewal?.externalPort, 4011, 'renewal asks for the port it holds')
    await until(() => manager.status().mapping?.expiresAt === start + 60_000 + 120_000, 'renewed lease')
    clock.advance(60_000)
    await router.waitForRequests(maps(router).length + 2)
    assert.equal(maps(router)[2]?.at, start + 120_000)
    assert.equal(changes.length, 1, 'an unchanged renewal is not a change')
  })
})

test('a failed attempt says why, points to the relay, and is retried with doubling backoff', async () => {
  await rig({ retryInitialSeconds: 5, retryMaxSeconds: 20 }, async ({ clock, router, changes, manager }) => {
    let refusals = 4
    router.respond = (req, r) => (req.opcode === 2 && refusals-- > 0 ? r.error(req, 3) : r.ok(req))
    const t0 = clock.now()
    await manager.start()
    assert.deepEqual(changes[0], {
      method: 'none',
      reason: 'NAT-PMP: NAT-PMP router answered result 3 (network failure)',
      fallback: 'circuit-relay',
    })
    assert.equal(manager.status().state, 'unmapped')
    for (const [i, wait] of [5, 10, 20, 20].entries()) {
      const due = clock.now() + wait * 1000
      await until(() => manager.status().nextAttemptAt === due, `attempt ${i + 2} scheduled`)
      const before = maps(router).length
      clock.advance(wait * 1000 - 1)
      assert.equal(maps(router).length, before, `attempt ${i + 2} not before ${wait} s`)
      clock.advance(1)
      await until(() => maps(router).length === before + 1, `attempt ${i + 2}`)
    }
    assert.deepEqual(
      maps(router).map((r) => (r.at - t0) / 1000),
      [0, 5, 15, 35, 55],
    )
    await until(() => manager.status().state === 'mapped', 'mapped after the refusals')
    assert.equal(changes.at(-1)?.method, 'pmp')
  })
})

test('a router reboot (epoch regression) seen by the periodic check leads to a new mapping', async () => {
  await rig({ checkIntervalSeconds: 30 }, async ({ clock, router, changes, manager }) => {
    router.epoch = 5000
    await manager.start()
    const mapsBefore = maps(router).length
    // the router keeps time for the first check …
    router.epoch += 30
    const t0 = clock.now()
    clock.advance(30_000)
    await until(() => manager.status().mapping?.checkAt === t0 + 60_000, 'first check done, next one scheduled')
    assert.equal(router.requests.filter((r) => r.opcode === 0).length, 2, 'the check asked for the epoch')
    assert.equal(maps(router).length, mapsBefore, 'a healthy check does not re-map')
    // … then reboots: its epoch starts again from 0
    router.epoch = 3
    clock.advance(30_000)
    await until(() => maps(router).length === mapsBefore + 1, 're-map after the reboot')
    assert.equal(maps(router).at(-1)?.externalPort, 4011, 'asks for the same external port again')
    await until(() => manager.status().state === 'mapped', 'mapped again')
    assert.equal(changes.filter((c) => c.method === 'pmp').length, 1, 'same mapping, so no new change')
  })
})

test('stop deletes exactly the mapping it made: the external port the router gave, lease 0', async () => {
  await rig({}, async ({ router, changes, manager }) => {
    router.respond = (req, r) => r.ok(req, { externalPort: 4012 }) // 4011 was taken by someone else
    await manager.start()
    assert.equal(manager.status().mapping?.externalPort, 4012)
    await manager.stop()
    const del = router.requests.at(-1)
    assert.deepEqual([del?.opcode, del?.internalPort, del?.externalPort, del?.lifetimeSeconds], [2, 4011, 4012, 0])
    assert.deepEqual(changes.at(-1), { method: 'none', reason: 'stopped' })
    assert.equal(manager.status().state, 'stopped')
  })
})
