import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ManualClock } from '../core/clock.ts'
import { MemoryHub } from '../net/memory-transport.ts'
import { Ed25519KeyPair } from '../identity/keys.ts'
import { signDeletion, signRegistration, type RegistrationFields } from './record.ts'
import { DirectoryService } from './service.ts'

const NOW = 1_700_000_000_000

function fields(over: Partial<RegistrationFields> = {}): RegistrationFields {
  return {
    description: 'Seafood restaurant at the harbour',
    categories: ['restaurant'],
    tags: ['seafood'],
    bootstrap: ['/ip4/192.0.2.7/tcp/4001'],
    endpoint: 'https://harbour.example/signal',
    seq: 1,
    expires: NOW + 60_000,
    ...over,
  }
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setImmediate(r))
  assert.ok(check())
}

test('a registration made at one directory is found by a search at another (gossip)', async () => {
  const clock = new ManualClock(NOW)
  const hub = new MemoryHub()
  const services = ['a', 'b', 'c'].map((id) => new DirectoryService({ clock, transport: hub.join(id) }))
  for (const s of services) s.start()
  const [a, b, c] = services as [DirectoryService, DirectoryService, DirectoryService]
  const key = Ed25519KeyPair.generate()
  const record = signRegistration(key, fields())
  assert.equal(a.register(record, { client: '198.51.100.1' }).change, 'added')
  await until(() => b.count() === 1 && c.count() === 1)
  assert.deepEqual(b.search({ query: 'restaurant' }).hits[0]?.record, record)
  assert.deepEqual(c.get(record.did), record)
  b.delete(signDeletion(key, 2))
  await until(() => a.count() === 0 && c.count() === 0)
  assert.equal(hub.penalties.length, 0)
  for (const s of services) s.stop()
})

test('the sweep timer removes expired entries on the injected clock; stop cancels it', async () => {
  const clock = new ManualClock(NOW)
  const service = new DirectoryService({ clock, sweepIntervalMs: 10_000 })
  service.start()
  service.register(signRegistration(Ed25519KeyPair.generate(), fields({ expires: NOW + 15_000 })))
  assert.equal(service.count(), 1)
  clock.advance(10_000)
  await new Promise((r) => setImmediate(r))
  assert.equal(service.count(), 1)
  clock.advance(10_000)
  await new Promise((r) => setImmediate(r))
  assert.equal(service.count(), 0)
  service.stop()
  assert.equal(clock.pending, 0)
  assert.equal(service.running, false)
})
