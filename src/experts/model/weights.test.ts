import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomMoe, SMALL_MOE } from '../../../test/helpers/moe.ts'
import { ArchitectureError, WeightShapeError } from '../errors.ts'
import { writeSafetensors } from '../safetensors.ts'
import {
  checkArchitecture,
  encodeExpert,
  expertBytes,
  parseExpert,
  parseRouter,
  parseTrunk,
  trunkBytes,
  weightsBytes,
} from './weights.ts'

const m = randomMoe(SMALL_MOE, 2)

test('expertBytes is the memory of a loaded expert', () => {
  assert.equal(expertBytes(SMALL_MOE), 3 * 32 * 48 * 4)
  assert.equal(expertBytes({ ...SMALL_MOE, ffn: 'gelu' }), 2 * 32 * 48 * 4)
  assert.equal(weightsBytes(m.experts[0]![0]!), expertBytes(SMALL_MOE))
  assert.ok(trunkBytes(SMALL_MOE) > 0)
})

test('files round-trip; a tied head is the embedding', () => {
  assert.deepEqual(parseExpert(m.arch, encodeExpert(m.experts[1]![2]!)), m.experts[1]![2]!)
  const tied = randomMoe({ ...SMALL_MOE, tieEmbeddings: true }, 2)
  assert.equal(tied.trunk.head, tied.trunk.embed)
  assert.equal(m.trunk.layers.length, 2)
})

test('a wrong, missing or extra tensor is a WeightShapeError naming it and both shapes', () => {
  const wrong = writeSafetensors({ weight: { shape: [8, 31], data: new Float32Array(8 * 31) } })
  assert.throws(
    () => parseRouter(m.arch, wrong),
    (err: unknown) =>
      err instanceof WeightShapeError &&
      err.details.tensor === 'weight' &&
      JSON.stringify(err.details.expected) === '[8,32]' &&
      JSON.stringify(err.details.actual) === '[8,31]' &&
      /weight is \[8, 31\]; the architecture needs \[8, 32\]/.test(err.message),
  )
  const w = m.experts[0]![0]!
  const missing = writeSafetensors({ w1: { shape: [48, 32], data: w.w1 }, w2: { shape: [32, 48], data: w.w2 } })
  assert.throws(
    () => parseExpert(m.arch, missing),
    (e: unknown) => e instanceof WeightShapeError && e.details.tensor === 'w3',
  )
  const extra = writeSafetensors({
    weight: { shape: [8, 32], data: new Float32Array(256) },
    bias: { shape: [8], data: new Float32Array(8) },
  })
  assert.throws(
    () => parseRouter(m.arch, extra),
    (e: unknown) => e instanceof WeightShapeError && e.details.tensor === 'bias' && e.details.expected === null,
  )
  assert.throws(() => parseTrunk({ ...m.arch, nLayers: 3 }, m.trunkBytes), WeightShapeError)
})

test('architectures that do not make a model are refused', () => {
  checkArchitecture(SMALL_MOE)
  assert.throws(() => checkArchitecture({ ...SMALL_MOE, nHeads: 5 }), ArchitectureError)
  assert.throws(() => checkArchitecture({ ...SMALL_MOE, nKvHeads: 3 }), ArchitectureError)
  assert.throws(() => checkArchitecture({ ...SMALL_MOE, topK: 9 }), ArchitectureError)
  assert.throws(() => checkArchitecture({ ...SMALL_MOE, dModel: 0 }), ArchitectureError)
  assert.throws(() => checkArchitecture({ ...SMALL_MOE, dModel: 36, nHeads: 12 }), ArchitectureError) // odd head dim
})
