// Canary material: recent client inputs, bounded per model, each with the worker that ran it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CANARY_POOL, CanaryPool } from './canaries.ts'
import { createTensor, hashTensorMap, type TensorMap } from './tensor.ts'
import { toHex } from '../core/bytes.ts'

const row = (i: number): TensorMap => ({ input: createTensor('float32', [1, 2], Float32Array.from([i, -i])) })

test('canary pool: draws only inputs clients sent, with who ran them; bounded; per model', () => {
  const pool = new CanaryPool()
  assert.equal(pool.draw('m1'), undefined, 'nothing to draw before any client job')
  const sent = new Map<string, string>()
  for (let i = 0; i < 500; i++) {
    const inputs = row(i)
    const worker = `did:key:w${i % 5}`
    pool.remember('m1', inputs, worker)
    sent.set(toHex(hashTensorMap(inputs)), worker)
  }
  assert.equal(pool.size('m1'), CANARY_POOL, 'the pool stays bounded')
  assert.equal(pool.draw('m2'), undefined, 'pools are per model')
  const seen = new Set<string>()
  for (let i = 0; i < 400; i++) {
    const d = pool.draw('m1')
    assert.ok(d !== undefined)
    const key = toHex(hashTensorMap(d.inputs))
    assert.equal(sent.get(key), d.ranBy, 'a draw carries the worker that ran those very inputs')
    seen.add(key)
  }
  assert.ok(seen.size > CANARY_POOL / 2, `draws spread over the pool (${seen.size} distinct)`)
  // replacement keeps the pool fresh: after 500 more jobs, most of the old entries are gone
  for (let i = 500; i < 1_000; i++) pool.remember('m1', row(i), 'did:key:late')
  let old = 0
  for (let i = 0; i < 200; i++) if ((pool.draw('m1') as { ranBy: string }).ranBy !== 'did:key:late') old++
  assert.ok(old < 40, `${old} of 200 draws still from the first 500 jobs`)
})
