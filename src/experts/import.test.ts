import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { CheckpointImportError, detectScheme, importCheckpoint } from './import.ts'
import { readSafetensors, writeSafetensors } from './safetensors.ts'

type T = Record<string, { shape: number[]; data: Float32Array }>

const dirs: string[] = []
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

let seed = 12345
function rand(shape: number[]): { shape: number[]; data: Float32Array } {
  const n = shape.reduce((a, b) => a * b, 1)
  const data = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
    data[i] = (seed / 2 ** 32 - 0.5) * 2
  }
  return { shape, data }
}

async function checkpoint(
  config: Record<string, unknown>,
  files: Record<string, Uint8Array>,
  index?: Record<string, string>,
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-import-'))
  dirs.push(dir)
  await writeFile(join(dir, 'config.json'), JSON.stringify(config))
  for (const [name, bytes] of Object.entries(files)) await writeFile(join(dir, name), bytes)
  if (index !== undefined)
    await writeFile(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: { total_size: 0 }, weight_map: index }),
    )
  return dir
}

/** A safetensors file in BF16: each value's top 16 bits (what it decodes back to is returned too). */
function bf16File(tensors: T): { bytes: Uint8Array; decoded: T } {
  const names = Object.keys(tensors).sort()
  const header: Record<string, unknown> = {}
  let off = 0
  const decoded: T = {}
  for (const n of names) {
    const t = tensors[n] as { shape: number[]; data: Float32Array }
    header[n] = { dtype: 'BF16', shape: t.shape, data_offsets: [off, off + 2 * t.data.length] }
    off += 2 * t.data.length
    const bits = new Uint32Array(t.data.slice().buffer)
    for (let i = 0; i < bits.length; i++) bits[i] = (bits[i] as number) & 0xffff0000
    decoded[n] = { shape: t.shape, data: new Float32Array(bits.buffer) }
  }
  const json = new TextEncoder().encode(JSON.stringify(header))
  const out = new Uint8Array(8 + json.length + off)
  const view = new DataView(out.buffer)
  view.setBigUint64(0, BigInt(json.length), true)
  out.set(json, 8)
  let at = 8 + json.length
  for (const n of names) {
    const bits = new Uint32Array((decoded[n] as { data: Float32Array }).data.slice().buffer)
    for (let i = 0; i < bits.length; i++) view.setUint16(at + 2 * i, (bits[i] as number) >>> 16, true)
    at += 2 * bits.length
  }
  return { bytes: out, decoded }
}

const D = 8
const H = 2
const KV = 1
const HD = D / H
const F = 6
const E = 3
const V = 11
const NL = 2

function decoderTensors(scheme: 'mixtral' | 'qwen', opts: { head?: boolean } = {}): T {
  const t: T = {
    'model.embed_tokens.weight': rand([V, D]),
    'model.norm.weight': rand([D]),
  }
  if (opts.head !== false) t['lm_head.weight'] = rand([V, D])
  for (let i = 0; i < NL; i++) {
    const p = `model.layers.${i}`
    t[`${p}.input_layernorm.weight`] = rand([D])
    t[`${p}.post_attention_layernorm.weight`] = rand([D])
    t[`${p}.self_attn.q_proj.weight`] = rand([H * HD, D])
    t[`${p}.self_attn.k_proj.weight`] = rand([KV * HD, D])
    t[`${p}.self_attn.v_proj.weight`] = rand([KV * HD, D])
    t[`${p}.self_attn.o_proj.weight`] = rand([D, H * HD])
    if (scheme === 'mixtral') {
      t[`${p}.block_sparse_moe.gate.weight`] = rand([E, D])
      for (let j = 0; j < E; j++) {
        const e = `${p}.block_sparse_moe.experts.${j}`
        t[`${e}.w1.weight`] = rand([F, D])
        t[`${e}.w2.weight`] = rand([D, F])
        t[`${e}.w3.weight`] = rand([F, D])
      }
    } else {
      t[`${p}.mlp.gate.weight`] = rand([E, D])
      for (let j = 0; j < E; j++) {
        const e = `${p}.mlp.experts.${j}`
        t[`${e}.gate_proj.weight`] = rand([F, D])
        t[`${e}.down_proj.weight`] = rand([D, F])
        t[`${e}.up_proj.weight`] = rand([F, D])
      }
    }
  }
  return t
}

const MIXTRAL_CONFIG = {
  model_type: 'mixtral',
  hidden_size: D,
  num_attention_heads: H,
  num_key_value_heads: KV,
  intermediate_size: F,
  num_local_experts: E,
  num_experts_per_tok: 2,
  num_hidden_layers: NL,
  rope_theta: 1000000.0,
  rms_norm_eps: 1e-5,
  vocab_size: V,
  max_position_embeddings: 64,
  sliding_window: null,
  hidden_act: 'silu',
  tie_word_embeddings: false,
}

const QWEN_CONFIG = {
  model_type: 'qwen2_moe',
  hidden_size: D,
  num_attention_heads: H,
  num_key_value_heads: KV,
  intermediate_size: 32,
  moe_intermediate_size: F,
  shared_expert_intermediate_size: 16,
  num_experts: E,
  num_experts_per_tok: 2,
  norm_topk_prob: false,
  num_hidden_layers: NL,
  rope_theta: 10000,
  rms_norm_eps: 1e-6,
  vocab_size: V,
  max_position_embeddings: 48,
  use_sliding_window: false,
  sliding_window: 16,
  tie_word_embeddings: true,
}

function same(
  actual: { shape: number[]; data: Float32Array } | undefined,
  expected: { shape: number[]; data: Float32Array } | undefined,
  label: string,
): void {
  assert.ok(actual !== undefined, `${label}: missing`)
  assert.ok(expected !== undefined, `${label}: no source`)
  assert.deepEqual(actual.shape, expected.shape, `${label}: shape`)
  assert.deepEqual([...actual.data], [...expected.data], `${label}: values`)
}

function checkDecoder(
  result: Awaited<ReturnType<typeof importCheckpoint>>,
  src: T,
  expertNames: (i: number, j: number) => { w1: string; w2: string; w3: string },
  router: (i: number) => string,
  head: boolean,
): void {
  assert.ok(result.trunk !== undefined)
  const trunk = readSafetensors(result.trunk)
  const expectedTrunk = ['embed', 'norm', ...(head ? ['head'] : [])]
  for (let i = 0; i < NL; i++)
    for (const n of ['attn_norm', 'q', 'k', 'v', 'o', 'ffn_norm']) expectedTrunk.push(`layers.${i}.${n}`)
  assert.deepEqual([...trunk.keys()].sort(), expectedTrunk.sort())
  same(trunk.get('embed'), src['model.embed_tokens.weight'], 'embed')
  same(trunk.get('norm'), src['model.norm.weight'], 'norm')
  if (head) same(trunk.get('head'), src['lm_head.weight'], 'head')
  for (let i = 0; i < NL; i++) {
    const p = `model.layers.${i}`
    same(trunk.get(`layers.${i}.attn_norm`), src[`${p}.input_layernorm.weight`], 'attn_norm')
    same(trunk.get(`layers.${i}.ffn_norm`), src[`${p}.post_attention_layernorm.weight`], 'ffn_norm')
    for (const x of ['q', 'k', 'v', 'o']) same(trunk.get(`layers.${i}.${x}`), src[`${p}.self_attn.${x}_proj.weight`], x)
  }
  assert.equal(result.routers.length, NL)
  assert.equal(result.experts.length, NL)
  for (let i = 0; i < NL; i++) {
    const r = readSafetensors(result.routers[i] as Uint8Array)
    assert.deepEqual([...r.keys()], ['weight'])
    same(r.get('weight'), src[router(i)], `router ${i}`)
    assert.equal(result.experts[i]?.length, E)
    for (let j = 0; j < E; j++) {
      const e = readSafetensors(result.experts[i]?.[j] as Uint8Array)
      assert.deepEqual([...e.keys()].sort(), ['w1', 'w2', 'w3'])
      const n = expertNames(i, j)
      same(e.get('w1'), src[n.w1], `expert ${i}.${j} w1`)
      same(e.get('w2'), src[n.w2], `expert ${i}.${j} w2`)
      same(e.get('w3'), src[n.w3], `expert ${i}.${j} w3`)
    }
  }
}

const mixtralExpert = (i: number, j: number): { w1: string; w2: string; w3: string } => {
  const e = `model.layers.${i}.block_sparse_moe.experts.${j}`
  return { w1: `${e}.w1.weight`, w2: `${e}.w2.weight`, w3: `${e}.w3.weight` }
}
const qwenExpert = (i: number, j: number): { w1: string; w2: string; w3: string } => {
  const e = `model.layers.${i}.mlp.experts.${j}`
  return { w1: `${e}.gate_proj.weight`, w2: `${e}.down_proj.weight`, w3: `${e}.up_proj.weight` }
}

test('Mixtral, one file: architecture, trunk renamed, one router per layer, experts w1/w2/w3', async () => {
  const src = decoderTensors('mixtral')
  src['model.layers.0.self_attn.rotary_emb.inv_freq'] = rand([HD / 2])
  const dir = await checkpoint(MIXTRAL_CONFIG, { 'model.safetensors': writeSafetensors(src) })
  const result = await importCheckpoint(dir)
  assert.equal(result.scheme, 'mixtral')
  assert.deepEqual(result.arch, {
    vocabSize: V,
    dModel: D,
    nLayers: NL,
    nHeads: H,
    nKvHeads: KV,
    dFf: F,
    contextLength: 64,
    ropeTheta: 1000000,
    normEpsE9: 10000,
    expertsPerLayer: E,
    topK: 2,
    gating: 'softmax-topk-renorm',
    ffn: 'swiglu',
    tieEmbeddings: false,
  })
  assert.equal(result.runnable, true, result.reason)
  assert.deepEqual(result.skipped, ['model.layers.0.self_attn.rotary_emb.inv_freq'])
  assert.deepEqual(result.layerSources, ['model.layers.0', 'model.layers.1'])
  checkDecoder(result, src, mixtralExpert, (i) => `model.layers.${i}.block_sparse_moe.gate.weight`, true)
})

test('Mixtral, sharded with an index and a BF16 shard: every tensor found and widened to F32', async () => {
  const src = decoderTensors('mixtral')
  const names = Object.keys(src).sort()
  const first: T = {}
  const second: T = {}
  const index: Record<string, string> = {}
  names.forEach((n, i) => {
    const shard = i % 2 === 0 ? first : second
    shard[n] = src[n] as { shape: number[]; data: Float32Array }
    index[n] = i % 2 === 0 ? 'model-00001-of-00002.safetensors' : 'model-00002-of-00002.safetensors'
  })
  const bf = bf16File(second)
  const dir = await checkpoint(
    { ...MIXTRAL_CONFIG, sliding_window: 32 },
    {
      'model-00001-of-00002.safetensors': writeSafetensors(first),
      'model-00002-of-00002.safetensors': bf.bytes,
      'stray.safetensors': writeSafetensors({ x: rand([1]) }),
    },
    index,
  )
  const result = await importCheckpoint(dir)
  assert.equal(result.arch.contextLength, 32)
  assert.equal(result.runnable, true, result.reason)
  assert.deepEqual(result.skipped, [])
  checkDecoder(
    result,
    { ...first, ...bf.decoded },
    mixtralExpert,
    (i) => `model.layers.${i}.block_sparse_moe.gate.weight`,
    true,
  )
})

test('Qwen-MoE: gate_proj/up_proj/down_proj become w1/w3/w2, norm_topk_prob picks the gating, tied head', async () => {
  const src = decoderTensors('qwen', { head: false })
  const dir = await checkpoint(QWEN_CONFIG, { 'model.safetensors': writeSafetensors(src) })
  const result = await importCheckpoint(dir)
  assert.equal(result.scheme, 'qwen-moe')
  assert.equal(result.arch.gating, 'softmax-topk')
  assert.equal(result.arch.dFf, F)
  assert.equal(result.arch.normEpsE9, 1000)
  assert.equal(result.arch.contextLength, 48)
  assert.equal(result.arch.tieEmbeddings, true)
  assert.equal(result.runnable, true, result.reason)
  checkDecoder(result, src, qwenExpert, (i) => `model.layers.${i}.mlp.gate.weight`, false)

  const renorm = await importCheckpoint(
    await checkpoint({ ...QWEN_CONFIG, norm_topk_prob: true }, { 'model.safetensors': writeSafetensors(src) }),
  )
  assert.equal(renorm.arch.gating, 'softmax-topk-renorm')
})

test('Qwen-MoE with a shared expert is refused, naming it', async () => {
  const src = decoderTensors('qwen', { head: false })
  src['model.layers.0.mlp.shared_expert.gate_proj.weight'] = rand([16, D])
  src['model.layers.0.mlp.shared_expert_gate.weight'] = rand([1, D])
  const dir = await checkpoint(QWEN_CONFIG, { 'model.safetensors': writeSafetensors(src) })
  await assert.rejects(importCheckpoint(dir), (err: unknown) => {
    assert.ok(err instanceof CheckpointImportError)
    assert.match(err.message, /shared expert/)
    assert.match(err.message, /model\.layers\.0\.mlp\.shared_expert/)
    return true
  })
})

test('Qwen2 attention biases are skipped and make the import not runnable', async () => {
  const src = decoderTensors('qwen', { head: false })
  for (let i = 0; i < NL; i++) src[`model.layers.${i}.self_attn.q_proj.bias`] = rand([H * HD])
  const result = await importCheckpoint(await checkpoint(QWEN_CONFIG, { 'model.safetensors': writeSafetensors(src) }))
  assert.equal(result.runnable, false)
  assert.match(result.reason ?? '', /q_proj\.bias/)
  assert.deepEqual(result.skipped, ['model.layers.0.self_attn.q_proj.bias', 'model.layers.1.self_attn.q_proj.bias'])
  assert.equal(result.routers.length, NL)
})

test('Switch Transformer: routers and experts of the sparse blocks import as blocks, the trunk does not run', async () => {
  const d = 8
  const f = 12
  const e = 4
  const src: T = { 'shared.weight': rand([V, d]), 'encoder.final_layer_norm.weight': rand([d]) }
  const sparse = [
    ['encoder', 1, 1],
    ['encoder', 3, 1],
    ['decoder', 1, 2],
  ] as const
  src['encoder.block.0.layer.1.DenseReluDense.wi.weight'] = rand([f, d])
  src['encoder.block.0.layer.0.SelfAttention.q.weight'] = rand([d, d])
  for (const [stack, block, layer] of sparse) {
    const p = `${stack}.block.${block}.layer.${layer}.mlp`
    src[`${p}.router.classifier.weight`] = rand([e, d])
    for (let j = 0; j < e; j++) {
      src[`${p}.experts.expert_${j}.wi.weight`] = rand([f, d])
      src[`${p}.experts.expert_${j}.wo.weight`] = rand([d, f])
    }
  }
  const config = {
    model_type: 'switch_transformers',
    d_model: d,
    d_ff: f,
    num_heads: 2,
    d_kv: 4,
    num_experts: e,
    num_layers: 4,
    vocab_size: V,
    layer_norm_epsilon: 1e-6,
  }
  const result = await importCheckpoint(await checkpoint(config, { 'model.safetensors': writeSafetensors(src) }))
  assert.equal(result.scheme, 'switch')
  assert.equal(result.runnable, false)
  assert.match(result.reason ?? '', /decoder-only/)
  assert.equal(result.trunk, undefined)
  assert.deepEqual(result.arch, {
    vocabSize: V,
    dModel: d,
    nLayers: 3,
    nHeads: 2,
    nKvHeads: 2,
    dFf: f,
    contextLength: 512,
    ropeTheta: 10000,
    normEpsE9: 1000,
    expertsPerLayer: e,
    topK: 1,
    gating: 'softmax-topk',
    ffn: 'relu',
    tieEmbeddings: true,
  })
  assert.deepEqual(result.layerSources, ['encoder.block.1', 'encoder.block.3', 'decoder.block.1'])
  sparse.forEach(([stack, block, layer], i) => {
    const p = `${stack}.block.${block}.layer.${layer}.mlp`
    same(
      readSafetensors(result.routers[i] as Uint8Array).get('weight'),
      src[`${p}.router.classifier.weight`],
      `router ${i}`,
    )
    for (let j = 0; j < e; j++) {
      const x = readSafetensors(result.experts[i]?.[j] as Uint8Array)
      assert.deepEqual([...x.keys()].sort(), ['w1', 'w2'])
      same(x.get('w1'), src[`${p}.experts.expert_${j}.wi.weight`], `expert ${i}.${j} w1`)
      same(x.get('w2'), src[`${p}.experts.expert_${j}.wo.weight`], `expert ${i}.${j} w2`)
    }
  })
  assert.deepEqual(result.skipped, [
    'encoder.block.0.layer.0.SelfAttention.q.weight',
    'encoder.block.0.layer.1.DenseReluDense.wi.weight',
    'encoder.final_layer_norm.weight',
    'shared.weight',
  ])
})

async function refusedWith(dir: string, pattern: RegExp, tensor?: string): Promise<void> {
  await assert.rejects(importCheckpoint(dir), (err: unknown) => {
    assert.ok(err instanceof CheckpointImportError, String(err))
    assert.equal(err.code, 'EXPERTS_IMPORT_INVALID')
    assert.match(err.message, pattern)
    if (tensor !== undefined) assert.equal(err.details.tensor, tensor)
    return true
  })
}

test('dimension mismatches and missing tensors are refused, naming the tensor', async () => {
  const transposed = decoderTensors('mixtral')
  const w2 = 'model.layers.1.block_sparse_moe.experts.2.w2.weight'
  transposed[w2] = rand([F, D])
  await refusedWith(
    await checkpoint(MIXTRAL_CONFIG, { 'model.safetensors': writeSafetensors(transposed) }),
    /experts\.2\.w2\.weight has shape \[6, 8\], expected \[8, 6\]/,
    w2,
  )

  const wrongK = decoderTensors('mixtral')
  wrongK['model.layers.0.self_attn.k_proj.weight'] = rand([H * HD, D])
  await refusedWith(
    await checkpoint(MIXTRAL_CONFIG, { 'model.safetensors': writeSafetensors(wrongK) }),
    /k_proj/,
    'model.layers.0.self_attn.k_proj.weight',
  )

  const router = decoderTensors('mixtral')
  router['model.layers.0.block_sparse_moe.gate.weight'] = rand([E + 1, D])
  await refusedWith(
    await checkpoint(MIXTRAL_CONFIG, { 'model.safetensors': writeSafetensors(router) }),
    /gate\.weight/,
    'model.layers.0.block_sparse_moe.gate.weight',
  )

  const missing = decoderTensors('mixtral')
  delete missing['model.layers.1.block_sparse_moe.experts.0.w3.weight']
  await refusedWith(
    await checkpoint(MIXTRAL_CONFIG, { 'model.safetensors': writeSafetensors(missing) }),
    /is missing/,
    'model.layers.1.block_sparse_moe.experts.0.w3.weight',
  )

  const noHead = decoderTensors('mixtral', { head: false })
  await refusedWith(
    await checkpoint(MIXTRAL_CONFIG, { 'model.safetensors': writeSafetensors(noHead) }),
    /lm_head/,
    'lm_head.weight',
  )

  const vocab = decoderTensors('mixtral')
  await refusedWith(
    await checkpoint({ ...MIXTRAL_CONFIG, vocab_size: V + 1 }, { 'model.safetensors': writeSafetensors(vocab) }),
    /embed_tokens/,
    'model.embed_tokens.weight',
  )
})

test('bad folders and configs are refused', async () => {
  const src = writeSafetensors(decoderTensors('mixtral'))
  await refusedWith(
    await checkpoint({ ...MIXTRAL_CONFIG, num_local_experts: undefined }, { 'model.safetensors': src }),
    /num_local_experts/,
  )
  await refusedWith(
    await checkpoint({ ...MIXTRAL_CONFIG, num_key_value_heads: 3 }, { 'model.safetensors': src }),
    /num_key_value_heads/,
  )
  await refusedWith(await checkpoint({ ...MIXTRAL_CONFIG, head_dim: 8 }, { 'model.safetensors': src }), /head_dim/)
  await refusedWith(await checkpoint(MIXTRAL_CONFIG, {}), /no \*\.safetensors/)
  await refusedWith(
    await checkpoint(MIXTRAL_CONFIG, {
      'model.safetensors': writeSafetensors({ 'model.embed_tokens.weight': rand([V, D]) }),
    }),
    /no Mixture-of-Experts router/,
  )
  await refusedWith(
    await checkpoint(
      MIXTRAL_CONFIG,
      { 'model.safetensors': src },
      { 'model.embed_tokens.weight': '../model.safetensors' },
    ),
    /invalid shard name/,
  )
  await refusedWith(
    await checkpoint(
      MIXTRAL_CONFIG,
      { 'model.safetensors': src },
      { 'model.embed_tokens.weight': 'model.safetensors' },
    ),
    /not assigned to this shard/,
  )
  await refusedWith(
    await checkpoint(MIXTRAL_CONFIG, { 'a.safetensors': src, 'b.safetensors': src }),
    /more than one file/,
  )
  const corrupt = src.slice(0, src.length - 1)
  await refusedWith(
    await checkpoint(MIXTRAL_CONFIG, { 'model.safetensors': corrupt }),
    /model\.safetensors: safetensors/,
  )
  const dir = await checkpoint(MIXTRAL_CONFIG, { 'model.safetensors': src })
  await writeFile(join(dir, 'config.json'), '{')
  await refusedWith(dir, /config\.json is not valid JSON/)
})

test('detectScheme refuses a mix of schemes', () => {
  assert.equal(detectScheme(['model.layers.0.block_sparse_moe.gate.weight']), 'mixtral')
  assert.throws(
    () => detectScheme(['model.layers.0.block_sparse_moe.gate.weight', 'model.layers.1.mlp.gate.weight']),
    CheckpointImportError,
  )
})
