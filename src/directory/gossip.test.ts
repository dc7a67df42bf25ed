import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encode } from '../core/codec.ts'
import { ManualClock } from '../core/clock.ts'
import { Ed25519KeyPair } from '../identity/keys.ts'
import {
  encodeDeletion,
  encodeRegistration,
  signDeletion,
  signRegistration,
  MAX_EXPIRY_MS,
  type RegistrationFields,
} from './record.ts'
import { DirectoryIndex } from './store.ts'
import { DIRECTORY_TOPIC, DirectoryGossip } from './gossip.ts'
import type { GossipHandler } from '../core/transport.ts'

const NOW = 1_700_000_000_000

function fields(over: Partial<RegistrationFields> = {}): RegistrationFields {
  return {
    description: 'noodle bar',
    categories: ['restaurant'],
    tags: [],
    bootstrap: [],
    endpoint: 'https://a.example/signal',
    seq: 1,
    expires: NOW + 3_600_000,
    ...over,
  }
}

function setup(perPeer?: { amount: number; perMs: number }) {
  const clock = new ManualClock(NOW)
  const index = new DirectoryIndex({ clock })
  const published: Uint8Array[] = []
  let handler: GossipHandler | undefined
  const transport = {
    publish: (topic: string, data: Uint8Array) => {
      assert.equal(topic, DIRECTORY_TOPIC)
      published.push(data)
    },
    subscribe: (topic: string, h: GossipHandler) => {
      assert.equal(topic, DIRECTORY_TOPIC)
      handler = h
      return () => (handler = undefined)
    },
  }
  const gossip = new DirectoryGossip(transport, index, { now: () => clock.now(), ...(perPeer ? { perPeer } : {}) })
  gossip.start()
  return { clock, index, gossip, published, handler: () => handler }
}

test('verdicts: new → accept (stored), known or older → ignore, invalid → reject', async () => {
  const { index, gossip, handler } = setup()
  const key = Ed25519KeyPair.generate()
  const v2 = signRegistration(key, fields({ seq: 2 }))
  const h = handler()
  assert.ok(h !== undefined)
  assert.equal(await h(encodeRegistration(v2), 'peer-a'), 'accept')
  assert.equal(index.get(v2.did)?.seq, 2)
  assert.equal(gossip.receive(encodeRegistration(v2), 'peer-b'), 'ignore')
  assert.equal(gossip.receive(encodeRegistration(signRegistration(key, fields({ seq: 1 }))), 'peer-b'), 'ignore')
  // Forged: a stranger's signature on the DID's record.
  const forged = { ...signRegistration(Ed25519KeyPair.generate(), fields({ seq: 9 })), did: v2.did }
  assert.equal(gossip.receive(encodeRegistration(forged), 'peer-c'), 'reject')
  assert.equal(gossip.receive(Uint8Array.of(1, 2, 3), 'peer-c'), 'reject')
  assert.equal(gossip.receive(encode({ ...v2, extra: true }), 'peer-c'), 'reject')
  assert.equal(gossip.receive(new Uint8Array(9000), 'peer-c'), 'reject')
  assert.equal(index.get(v2.did)?.seq, 2)
  // Expired or too far ahead by this node's clock: not blamed.
  assert.equal(
    gossip.receive(encodeRegistration(signRegistration(key, fields({ seq: 5, expires: NOW }))), 'p'),
    'ignore',
  )
  assert.equal(
    gossip.receive(
      encodeRegistration(signRegistration(key, fields({ seq: 5, expires: NOW + MAX_EXPIRY_MS + 1 }))),
      'p',
    ),
    'ignore',
  )
  // Deletions: a stranger's is rejected; the owner's is accepted once.
  const strangers = { ...signDeletion(Ed25519KeyPair.generate(), 3), did: v2.did }
  assert.equal(gossip.receive(encodeDeletion(strangers), 'peer-c'), 'reject')
  assert.equal(gossip.receive(encodeDeletion(signDeletion(key, 3)), 'peer-a'), 'accept')
  assert.equal(gossip.receive(encodeDeletion(signDeletion(key, 3)), 'peer-b'), 'ignore')
  assert.equal(index.get(v2.did), undefined)
})

test('a flooding peer is ignored past its budget; other peers are still heard', () => {
  const { gossip } = setup({ amount: 3, perMs: 60_000 })
  const message = () => encodeRegistration(signRegistration(Ed25519KeyPair.generate(), fields()))
  for (let i = 0; i < 3; i++) assert.equal(gossip.receive(message(), 'flood'), 'accept')
  assert.equal(gossip.receive(message(), 'flood'), 'ignore')
  assert.equal(gossip.receive(message(), 'other'), 'accept')
})

test('publish sends the encoded record on directory/1; stop unsubscribes', () => {
  const { gossip, published, handler } = setup()
  const record = signRegistration(Ed25519KeyPair.generate(), fields())
  gossip.publishRegistration(record)
  assert.deepEqual(published[0], encodeRegistration(record))
  gossip.stop()
  assert.equal(handler(), undefined)
})
