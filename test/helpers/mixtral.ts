/**
 * A tiny Mixtral checkpoint folder, as `donghae experts import DIR` reads one: `config.json`, one
 * `model.safetensors` in Hugging Face's tensor names with seeded random weights, and beside them
 * the demo family's tokenizer and validation tokens (vocabulary 2048), so the imported model can
 * be scored and chatted with.
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeSafetensors } from '../../src/experts/safetensors.ts'
import { DEMO_MOE_DIR } from '../../src/experts/demo.ts'

export interface TinyMixtral {
  layers: number
  experts: number
  dModel: number
}

export async function writeTinyMixtral(
  dir: string,
  shape: TinyMixtral = { layers: 1, experts: 4, dModel: 16 },
  seed = 7,
): Promise<void> {
  const { layers, experts, dModel: d } = shape
  const heads = 2
  const kvHeads = 1
  const hd = d / heads
  const ff = 2 * d
  const vocab = 2048
  let state = seed >>> 0
  const rand = (dims: number[], scale = 0.2) => {
    const n = dims.reduce((a, b) => a * b, 1)
    const data = new Float32Array(n)
    for (let i = 0; i < n; i++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0
      data[i] = (state / 2 ** 32 - 0.5) * 2 * scale
    }
    return { shape: dims, data }
  }
  const ones = (n: number) => ({ shape: [n], data: new Float32Array(n).fill(1) })
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {
    'model.embed_tokens.weight': rand([vocab, d]),
    'model.norm.weight': ones(d),
    'lm_head.weight': rand([vocab, d]),
  }
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`
    tensors[`${p}.input_layernorm.weight`] = ones(d)
    tensors[`${p}.post_attention_layernorm.weight`] = ones(d)
    tensors[`${p}.self_attn.q_proj.weight`] = rand([heads * hd, d])
    tensors[`${p}.self_attn.k_proj.weight`] = rand([kvHeads * hd, d])
    tensors[`${p}.self_attn.v_proj.weight`] = rand([kvHeads * hd, d])
    tensors[`${p}.self_attn.o_proj.weight`] = rand([d, heads * hd])
    tensors[`${p}.block_sparse_moe.gate.weight`] = rand([experts, d])
    for (let j = 0; j < experts; j++) {
      tensors[`${p}.block_sparse_moe.experts.${j}.w1.weight`] = rand([ff, d])
      tensors[`${p}.block_sparse_moe.experts.${j}.w2.weight`] = rand([d, ff])
      tensors[`${p}.block_sparse_moe.experts.${j}.w3.weight`] = rand([ff, d])
    }
  }
  await mkdir(dir, { recursive: true })
  await writeFile(
    join(dir, 'config.json'),
    JSON.stringify({
      model_type: 'mixtral',
      hidden_size: d,
      num_attention_heads: heads,
      num_key_value_heads: kvHeads,
      intermediate_size: ff,
      num_local_experts: experts,
      num_experts_per_tok: 2,
      num_hidden_layers: layers,
      rope_theta: 10000.0,
      rms_norm_eps: 1e-5,
      vocab_size: vocab,
      max_position_embeddings: 128,
      sliding_window: null,
      hidden_act: 'silu',
      tie_word_embeddings: false,
    }),
  )
  await writeFile(join(dir, 'model.safetensors'), writeSafetensors(tensors))
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'validation.bin'])
    await copyFile(join(DEMO_MOE_DIR, f), join(dir, f))
}
