// Slot adverts: the gossip validator's verdicts, and the gateway's table staying bounded.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Ed25519KeyPair } from '../identity/keys.ts'
import { decode, encode } from '../core/codec.ts'
import { didFromEd25519PublicKey } from '../identity/did-key.ts'
import {
  ADVERT_FRESH_MS,
  ADVERT_IGNORE_BUDGET,
  ADVERT_TTL_MS,
  WorkerTable,
  advertValidator,
  signAdvert,
  type SlotAdvert,
} from './adverts.ts'

const CHAIN = 'donghae-test'
const worker = Ed25519KeyPair.generate()
const workerDid = didFromEd25519PublicKey(worker.publicKey)

function advert(overrides: Partial<Omit<SlotAdvert, 'worker'> & { chainId: string }> = {}): Uint8Array {
  return signAdvert(worker, {
    chainId: CHAIN,
    ep: 'cpu',
    runtime: 'onnxruntime-node/1.30.0',
    models: [{ cid: 'm', mjps: 5_000 }],
    free: 2,
    queue: 0,
    seq: 1,
    time: 1_000_000,
    ...overrides,
  })
}

test('advert validator: accept fresh adverts of bonded workers, whoever relays them; reject forged and foreign ones; ignore stale, unbonded and repeated ones', () => {
  const now = 1_000_000
  const table = new WorkerTable(() => now)
  const bonded = new Set([workerDid])
  const validate = advertValidator({ chainId: CHAIN, table, isBonded: (did) => bonded.has(did), now: () => now })
  const relay = 'did:key:z6MkRelay'
  assert.equal(validate(advert(), relay), 'accept')
  assert.equal(table.live().length, 1)
  assert.equal(validate(advert(), relay), 'ignore', 'the same sequence number again')
  assert.equal(validate(advert({ seq: 2, chainId: 'another-chain' }), relay), 'reject', 'wrong chain')
  const tampered = Uint8Array.from(advert({ seq: 3 }))
  tampered[tampered.length - 70] = (tampered[tampered.length - 70] ?? 0) ^ 1
  assert.equal(validate(tampered, relay), 'reject', 'the signature no longer verifies')
  assert.equal(validate(new Uint8Array([1, 2, 3]), relay), 'reject', 'not an advert')
  // the advert is signed by its worker: any peer may relay it (a replay is no newer than what the table holds)
  assert.equal(validate(advert({ seq: 4 }), 'did:key:z6MkOther'), 'accept', 'relayed by another peer')
  assert.equal(validate(advert({ seq: 4 }), relay), 'ignore', 'replayed')
  assert.equal(validate(advert({ seq: 5, time: now - ADVERT_FRESH_MS - 1 }), relay), 'ignore', 'stale')
  assert.equal(validate(advert({ seq: 6, time: now + ADVERT_FRESH_MS + 1 }), relay), 'ignore', 'future')
  bonded.clear()
  assert.equal(validate(advert({ seq: 7 }), relay), 'ignore', 'not bonded (in this node’s view)')
})

test("advert validator: a relay handing over useless adverts (invented workers, stale) is refused past its budget; a bonded worker's advert is checked for its signature", () => {
  const now = 1_000_000
  const table = new WorkerTable(() => now)
  const validate = advertValidator({ chainId: CHAIN, table, isBonded: (did) => did === workerDid, now: () => now })
  const invented = (i: number): Uint8Array =>
    signAdvert(Ed25519KeyPair.generate(), {
      chainId: CHAIN,
      ep: 'cpu',
      runtime: 'r',
      models: [],
      free: 1,
      queue: 0,
      seq: i,
      time: now,
    })
  const flood = Array.from({ length: ADVERT_IGNORE_BUDGET.amount }, (_, i) => invented(i))
  for (const bytes of flood) assert.equal(validate(bytes, 'did:key:z6MkFlooder'), 'ignore')
  assert.equal(validate(invented(-1 >>> 0), 'did:key:z6MkFlooder'), 'reject', 'past the budget')
  assert.equal(validate(invented(1), 'did:key:z6MkHonest'), 'ignore', 'another relay has its own budget')
  // a bonded worker's name on an advert it did not sign: provably invalid, whoever relays it
  const forged = signAdvert(Ed25519KeyPair.generate(), {
    chainId: CHAIN,
    ep: 'cpu',
    runtime: 'r',
    models: [],
    free: 1,
    queue: 0,
    seq: 9,
    time: now,
  })
  const swapped = encode({ ...(decode(forged) as Record<string, unknown>), worker: workerDid })
  assert.equal(validate(swapped, 'did:key:z6MkHonest'), 'reject')
  assert.equal(validate(advert({ seq: 10, time: now }), 'did:key:z6MkHonest'), 'accept')
})

test('worker table: bounded; a new worker waits while the table is full of fresh ones, then replaces a stale one; silent workers are forgotten', () => {
  let now = 0
  const table = new WorkerTable(() => now, { maxEntries: 3, forgetAfterMs: 60_000 })
  const base = { ep: 'cpu' as const, runtime: 'r', models: [{ cid: 'm', mjps: 1_000 }], free: 1, queue: 0 }
  const put = (worker: string, seq: number): boolean => table.update({ ...base, worker, seq, time: now })
  assert.ok(put('a', 1) && put('b', 1) && put('c', 1))
  assert.equal(put('d', 1), false, 'full of fresh workers')
  assert.equal(table.size, 3)
  now += ADVERT_TTL_MS + 1
  assert.ok(put('a', 2), 'known workers still refresh')
  assert.ok(put('d', 1), 'b and c went stale: the newcomer takes a place')
  assert.equal(table.size, 2)
  assert.deepEqual(table.serving('m').sort(), ['a', 'd'])
  now += 61_000
  for (let i = 0; i < 64; i++) put(`new-${i}`, 1)
  assert.ok(table.size <= 3)
})
