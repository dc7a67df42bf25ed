import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readDemoMoe } from './demo.ts'
import { readSafetensors, readSafetensorsHeader } from './safetensors.ts'
import { payloadShapes, trunkShapes } from './types.ts'

function shapes(bytes: Uint8Array): Record<string, number[]> {
  const h = readSafetensorsHeader(bytes)
  for (const e of Object.values(h.tensors)) assert.equal(e.dtype, 'F32')
  return Object.fromEntries(Object.entries(h.tensors).map(([n, e]) => [n, e.shape]))
}

test('models/moe: every file has the shapes its architecture names, and the PoL fixtures differ from the expert', async () => {
  const moe = await readDemoMoe()
  const { arch } = moe.meta
  assert.equal(moe.meta.family, 'moby-moe')
  assert.deepEqual(arch, {
    vocabSize: 2048,
    dModel: 64,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    dFf: 128,
    contextLength: 128,
    ropeTheta: 10000,
    normEpsE9: 10000,
    expertsPerLayer: 8,
    topK: 2,
    gating: 'softmax-topk-renorm',
    ffn: 'swiglu',
    tieEmbeddings: true,
  })
  assert.deepEqual(shapes(moe.trunk), trunkShapes(arch))
  assert.equal(moe.routers.length, arch.nLayers)
  for (const r of moe.routers) assert.deepEqual(shapes(r), payloadShapes(arch, 'router'))
  for (const row of moe.experts) {
    assert.equal(row.length, arch.expertsPerLayer)
    for (const e of row) assert.deepEqual(shapes(e), payloadShapes(arch, 'expert'))
  }
  assert.deepEqual(shapes(moe.pol.improved), payloadShapes(arch, 'expert'))
  assert.deepEqual(shapes(moe.pol.worse), payloadShapes(arch, 'expert'))
  const base = readSafetensors(moe.experts[moe.pol.layer]?.[moe.pol.expert] as Uint8Array).get('w1')?.data
  assert.notDeepEqual(readSafetensors(moe.pol.improved).get('w1')?.data, base)
  assert.notDeepEqual(readSafetensors(moe.pol.worse).get('w1')?.data, base)
  const ids = new DataView(moe.validation.buffer, moe.validation.byteOffset, moe.validation.byteLength)
  for (let i = 0; i < moe.validation.length / 4; i++) assert.ok(ids.getUint32(4 * i, true) < arch.vocabSize)
  assert.ok(moe.meta.pol.improved.delta_nats <= -0.002)
  assert.ok(moe.meta.pol.worse.delta_nats > 0)
  const tok = JSON.parse(new TextDecoder().decode(moe.tokenizer.json)) as { model: { vocab: Record<string, number> } }
  assert.equal(Object.keys(tok.model.vocab).length + 4, arch.vocabSize)
})
