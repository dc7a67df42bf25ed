import { test } from 'node:test'
import assert from 'node:assert/strict'
import { hostedBy, hostsFor } from './assignment.ts'

const nodes = ['did:a', 'did:b', 'did:c', 'did:d']
const blocks = Array.from({ length: 64 }, (_, i) => `block${i}`)

test('every block gets `replicas` distinct hosts, the same on every call', () => {
  for (const b of blocks) {
    const hosts = hostsFor(b, nodes, 2)
    assert.equal(new Set(hosts).size, 2)
    assert.deepEqual(hostsFor(b, [...nodes].reverse(), 2), hosts)
  }
})

test('blocks spread over the nodes, and removing a node moves only its share', () => {
  const counts = nodes.map((n) => hostedBy(n, blocks, nodes, 1).length)
  assert.equal(
    counts.reduce((a, b) => a + b, 0),
    blocks.length,
  )
  for (const c of counts) assert.ok(c > 4, `each node hosts some blocks: ${counts.join(',')}`)
  const without = nodes.filter((n) => n !== 'did:c')
  for (const b of blocks) {
    const before = hostsFor(b, nodes, 1)[0]
    if (before !== 'did:c') assert.equal(hostsFor(b, without, 1)[0], before)
  }
})

test('replicas must be a positive integer', () => {
  assert.throws(() => hostsFor('b', nodes, 0), /replicas/)
})
