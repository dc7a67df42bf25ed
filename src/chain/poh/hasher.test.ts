// The fast PoH loop must give exactly node:crypto's SHA-256, and the wire encoding must round-trip.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import fc from 'fast-check'
import { extendPoh, PohChain } from './entries.ts'
import { PohHasher } from './hasher.ts'
import { checkEncodedSlice, decodePohEntries, encodePohEntries } from './wire.ts'

function nodeChain(start: Uint8Array, count: number, mixin?: Uint8Array): Uint8Array {
  let h = Buffer.from(start)
  for (let i = 0; i < count; i++) h = createHash('sha256').update(h).digest()
  if (mixin !== undefined) h = createHash('sha256').update(h).update(mixin).digest()
  return new Uint8Array(h)
}

const hash32 = fc.uint8Array({ minLength: 32, maxLength: 32 })

test('hashN equals a node:crypto sha256 chain', () => {
  fc.assert(
    fc.property(hash32, fc.nat({ max: 300 }), (start, count) => {
      const hasher = new PohHasher(start)
      hasher.hashN(count)
      assert.deepEqual(hasher.hash, nodeChain(start, count))
    }),
  )
})

test('mix equals sha256(h ‖ mixin), read at an offset', () => {
  fc.assert(
    fc.property(hash32, hash32, fc.nat({ max: 20 }), fc.nat({ max: 8 }), (start, mixin, count, offset) => {
      const hasher = new PohHasher(start)
      hasher.hashN(count)
      const padded = new Uint8Array(offset + 32)
      padded.set(mixin, offset)
      hasher.mix(padded, offset)
      assert.deepEqual(hasher.hash, nodeChain(start, count, mixin))
      assert.deepEqual(hasher.hash, extendPoh(start, count, mixin))
    }),
  )
})

test('a long chain agrees with node:crypto (the loop does not drift after many steps)', () => {
  const start = new Uint8Array(32).fill(0xab)
  const hasher = new PohHasher(start)
  hasher.hashN(100_000)
  assert.deepEqual(hasher.hash, nodeChain(start, 100_000))
})

test('hashers do not share state', () => {
  const a = new PohHasher(new Uint8Array(32))
  const b = new PohHasher(new Uint8Array(32).fill(1))
  a.hashN(3)
  assert.deepEqual(b.hash, new Uint8Array(32).fill(1))
  assert.ok(a.equals(nodeChain(new Uint8Array(32), 3)))
  assert.equal(a.equals(new Uint8Array(31)), false)
})

test('encoded entries decode to the same entries and check from any slice start', () => {
  const chain = new PohChain(new Uint8Array(32).fill(9), 7)
  chain.tick(2)
  chain.record(new Uint8Array(32).fill(1), 3)
  chain.tick()
  chain.record(new Uint8Array(32).fill(2))
  const entries = chain.drain()
  const buffer = encodePohEntries(new Uint8Array(32).fill(9), entries)
  const decoded = decodePohEntries(buffer)
  assert.deepEqual(decoded.start, new Uint8Array(32).fill(9))
  assert.deepEqual(decoded.entries, entries)
  const hasher = new PohHasher()
  assert.deepEqual(checkEncodedSlice(hasher, buffer, 0, 5), { ok: true, end: chain.hash, ticks: 3 })
  assert.deepEqual(checkEncodedSlice(hasher, buffer, 2, 4), { ok: true, end: entries[3]?.hash, ticks: 1 })
})
