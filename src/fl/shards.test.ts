// Non-IID splits: seeded (same seed, same split), every example dealt exactly once, no client
// empty; label skew gives each client exactly its number of classes; Dirichlet skews more as α
// shrinks; impossible requests are refused.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { InvalidInputError } from '../core/errors.ts'
import { createRng, type Dataset } from '../inference/trainer.ts'
import { describeShards, dirichletShards, formatShards, labelSkewShards, type Shard } from './shards.ts'

/** 10 classes, 50 examples each (labels shuffled), one feature that records the example's index. */
function labelled(perClass = 50, classes = 10): Dataset {
  const labels = Int32Array.from({ length: perClass * classes }, (_, i) => i % classes)
  createRng(1).shuffle(labels)
  return { features: Float32Array.from(labels, (_, i) => i), labels, featureCount: 1, classCount: classes }
}

function assertPartition(d: Dataset, shards: Shard[]): void {
  const seen = new Int32Array(d.labels.length)
  for (const s of shards) {
    assert.ok(s.indices.length > 0, 'no client is empty')
    s.indices.forEach((i, k) => {
      seen[i]!++
      assert.equal(s.data.labels[k], d.labels[i], 'the shard holds the indexed example')
      assert.equal(s.data.features[k], i)
      if (k > 0) assert.ok(i > s.indices[k - 1]!, 'indices ascend')
    })
  }
  assert.ok(
    seen.every((c) => c === 1),
    'every example is used exactly once',
  )
}

test('label skew: each client holds exactly classesPerClient classes, dealt evenly, seeded', () => {
  const d = labelled()
  const shards = labelSkewShards(d, 12, { classesPerClient: 2, seed: 3 })
  assert.equal(shards.length, 12)
  assertPartition(d, shards)
  const summary = describeShards(shards)
  for (const s of summary) assert.equal(s.classes.filter((c) => c > 0).length, 2, `client ${s.client}`)
  // 24 slots over 10 classes: 4 classes have 3 holders (50 → 17/17/16), 6 have 2 (25 each)
  const sizes = summary.map((s) => s.size)
  assert.equal(
    sizes.reduce((a, b) => a + b),
    500,
  )
  assert.ok(Math.min(...sizes) >= 32 && Math.max(...sizes) <= 50, sizes.join())
  assert.deepEqual(labelSkewShards(d, 12, { classesPerClient: 2, seed: 3 }), shards)
  assert.notDeepEqual(
    labelSkewShards(d, 12, { classesPerClient: 2, seed: 4 }).map((s) => [...s.indices]),
    shards.map((s) => [...s.indices]),
  )
  assert.match(formatShards(shards)[0]!, /^client 0 \(\d+\): \d:\d+ \d:\d+$/)
})

test('label skew refuses what cannot be done', () => {
  const d = labelled(2, 10)
  assert.throws(() => labelSkewShards(d, 3, { classesPerClient: 2, seed: 1 }), /cannot cover 10 classes/)
  assert.throws(() => labelSkewShards(d, 5, { classesPerClient: 11, seed: 1 }), /classesPerClient must be 1..10/)
  assert.throws(() => labelSkewShards(d, 0, { classesPerClient: 2, seed: 1 }), InvalidInputError)
  assert.throws(() => labelSkewShards(d, 21, { classesPerClient: 2, seed: 1 }), /cannot give 21 clients one each/)
  // 2 examples a class, 3 holders each: someone gets nothing
  assert.throws(() => labelSkewShards(d, 15, { classesPerClient: 2, seed: 1 }), /would get no examples/)
})

/** Mean over clients of the share of the client's examples in its most common class. */
function dominance(shards: Shard[]): number {
  const s = describeShards(shards)
  return s.reduce((sum, c) => sum + Math.max(...c.classes) / c.size, 0) / s.length
}

test('Dirichlet: a partition, seeded, more skewed as α shrinks, no client empty even at tiny α', () => {
  const d = labelled()
  const moderate = dirichletShards(d, 12, { alpha: 1, seed: 5 })
  assertPartition(d, moderate)
  assert.deepEqual(dirichletShards(d, 12, { alpha: 1, seed: 5 }), moderate)
  const extreme = dirichletShards(d, 12, { alpha: 0.05, seed: 5 })
  assertPartition(d, extreme)
  const nearlyIid = dirichletShards(d, 12, { alpha: 1000, seed: 5 })
  assertPartition(d, nearlyIid)
  assert.ok(dominance(extreme) > dominance(moderate), `${dominance(extreme)} > ${dominance(moderate)}`)
  assert.ok(dominance(moderate) > dominance(nearlyIid), `${dominance(moderate)} > ${dominance(nearlyIid)}`)
  assert.ok(dominance(nearlyIid) < 0.2, 'α = 1000 is close to the 10% of an even split')
  assert.throws(() => dirichletShards(d, 12, { alpha: 0, seed: 1 }), /alpha must be > 0/)
  // as many clients as examples: each gets one
  const tiny = labelled(1, 10)
  assert.ok(dirichletShards(tiny, 10, { alpha: 0.1, seed: 2 }).every((s) => s.indices.length === 1))
})
