import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { utf8 } from '../../core/bytes.ts'
import { LmModelError } from './errors.ts'
import { parseLmFiles, readLmFolder } from './model-files.ts'
import { checkDecoderLayout, completionTokenizer, contextLengthOf } from './tokenizer.ts'
import type { LmFiles } from './types.ts'

// The demo language model (models/train-lm.py). Its weights may be retrained; nothing here depends on them.
const LM_DIR = fileURLToPath(new URL('../../../models/lm/', import.meta.url))
const files = await readLmFolder(LM_DIR)
const json = (name: keyof LmFiles): Record<string, unknown> =>
  JSON.parse(new TextDecoder().decode(files[name])) as Record<string, unknown>
const withJson = (name: keyof LmFiles, change: (o: Record<string, unknown>) => void): LmFiles => {
  const o = json(name)
  change(o)
  return { ...files, [name]: utf8(JSON.stringify(o)) }
}

test('the demo tokenizer encodes as the Python trainer did, and decodes back', async () => {
  const { tokenizer } = parseLmFiles(files)
  let probe: { text: string; ids: number[] } | undefined
  try {
    probe = (JSON.parse(await readFile(`${LM_DIR}training.json`, 'utf8')) as { tokenizer_probe: typeof probe })
      .tokenizer_probe
  } catch {
    // training.json is the trainer's report; without it only the round trip is checked
  }
  if (probe !== undefined) {
    assert.deepEqual(tokenizer.encode(probe.text), probe.ids)
    assert.equal(tokenizer.decode(probe.ids, { skipSpecialTokens: false }), probe.text)
  }
  for (const text of ['Call me Ishmael.', 'naïve café — 日本語 🐋 \n\n  spaces', '<|user|>\nhi<|end|>'])
    assert.equal(tokenizer.decode(tokenizer.encode(text), { skipSpecialTokens: false }), text)
  // special tokens are one id each and skipped by default
  const ids = tokenizer.encode('<|user|>\nhi<|end|>')
  assert.equal(ids[0], tokenizer.tokenId('<|user|>'))
  assert.equal(tokenizer.decode(ids), '\nhi')
})

test('round trip: any text', () => {
  const { tokenizer } = parseLmFiles(files)
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme', maxLength: 60 }), (text) => {
      assert.equal(tokenizer.decode(tokenizer.encode(text), { skipSpecialTokens: false }), text)
    }),
    { numRuns: 200 },
  )
})

test('the chat template renders with the special tokens', () => {
  const { tokenizer } = parseLmFiles(files)
  const messages = [
    { role: 'user', content: 'Where is Ahab?' },
    { role: 'assistant', content: 'Below.' },
    { role: 'user', content: 'Why?' },
  ]
  assert.equal(
    tokenizer.renderChat(messages),
    '<|endoftext|><|user|>\nWhere is Ahab?<|end|>\n<|assistant|>\nBelow.<|end|>\n<|user|>\nWhy?<|end|>\n<|assistant|>\n',
  )
  assert.equal(
    tokenizer.renderChat(messages.slice(0, 1), { addGenerationPrompt: false }),
    '<|endoftext|><|user|>\nWhere is Ahab?<|end|>\n',
  )
  assert.deepEqual(tokenizer.encodeChat(messages), tokenizer.encode(tokenizer.renderChat(messages)))
  // a list of named templates: "default" is taken
  const listed = withJson('tokenizer_config.json', (o) => {
    o.chat_template = [
      { name: 'tool_use', template: 'TOOLS' },
      { name: 'default', template: '{{ bos_token }}{{ messages[0].content }}' },
    ]
  })
  assert.equal(parseLmFiles(listed).tokenizer.renderChat(messages), '<|endoftext|>Where is Ahab?')
  // a template that raises, and one that does not parse
  const raising = withJson('tokenizer_config.json', (o) => {
    o.chat_template = "{{ raise_exception('roles must alternate') }}"
  })
  assert.throws(
    () => parseLmFiles(raising).tokenizer.renderChat(messages),
    (e: unknown) => e instanceof LmModelError && e.problem === 'bad-template' && /alternate/.test(e.message),
  )
  const broken = withJson('tokenizer_config.json', (o) => {
    o.chat_template = '{% for %}'
  })
  assert.throws(
    () => parseLmFiles(broken),
    (e: unknown) => e instanceof LmModelError && e.problem === 'bad-template',
  )
  const none = withJson('tokenizer_config.json', (o) => {
    delete o.chat_template
  })
  assert.throws(() => parseLmFiles(none).tokenizer.renderChat(messages), LmModelError)
})

test('configs: context length, end-of-sequence ids, attention shape, sampling defaults', () => {
  const { config } = parseLmFiles(files)
  const c = json('config.json')
  assert.equal(config.contextLength, c.n_positions)
  assert.equal(config.layers, c.n_layer)
  assert.equal(config.headDim, (c.n_embd as number) / (c.n_head as number))
  // the union of generation_config, config and the tokenizer's eos_token
  const g = json('generation_config.json')
  assert.deepEqual(
    config.eosIds,
    [...new Set([...(g.eos_token_id as number[]), c.eos_token_id as number])].sort((a, b) => a - b),
  )
  const single = withJson('generation_config.json', (o) => {
    o.eos_token_id = 7
  })
  assert.ok(parseLmFiles(single).config.eosIds.includes(7))
  const greedy = withJson('generation_config.json', (o) => {
    o.do_sample = false
  })
  assert.equal(parseLmFiles(greedy).config.defaults.temperature, 0)
  // names of other architectures; grouped-query attention
  const llama = withJson('config.json', (o) => {
    for (const k of ['n_positions', 'n_ctx', 'n_head', 'n_embd', 'head_dim']) delete o[k]
    o.max_position_embeddings = 4096
    o.num_attention_heads = 32
    o.num_key_value_heads = 8
    o.hidden_size = 4096
  })
  const l = parseLmFiles(llama).config
  assert.deepEqual([l.contextLength, l.heads, l.kvHeads, l.headDim], [4096, 32, 8, 128])
  assert.equal(contextLengthOf(llama), 4096)
})

test('missing or bad files are typed errors naming the file', () => {
  const problem = (f: LmFiles, p: string, file?: string) =>
    assert.throws(
      () => parseLmFiles(f),
      (e: unknown) => e instanceof LmModelError && e.problem === p && (file === undefined || e.details.file === file),
    )
  const noTokenizer: LmFiles = { ...files, 'tokenizer.json': undefined }
  problem(noTokenizer, 'missing-file', 'tokenizer.json')
  problem({ ...files, 'config.json': utf8('{ not json') }, 'bad-file', 'config.json')
  problem({ ...files, 'generation_config.json': utf8('[1]') }, 'bad-file', 'generation_config.json')
  problem({ ...files, 'tokenizer.json': utf8('{"model": {"type": "Nonsense"}}') }, 'bad-file', 'tokenizer.json')
  const noConfig: LmFiles = { ...files, 'config.json': undefined }
  const unlimited = withJson('tokenizer_config.json', (o) => {
    o.model_max_length = 1e30
  })
  problem({ ...noConfig, 'tokenizer_config.json': unlimited['tokenizer_config.json']! }, 'bad-config')
  // without config.json the tokenizer's model_max_length is the context
  assert.equal(parseLmFiles(noConfig).config.contextLength, json('tokenizer_config.json').model_max_length)
})

test('the incremental detokenizer yields the decoded text, never half a character', () => {
  const { tokenizer } = parseLmFiles(files)
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (text) => {
      const ids = tokenizer.encode(text)
      const detok = tokenizer.detokenizer()
      const pieces = ids.map((id) => detok.push(id))
      pieces.push(detok.flush())
      for (const p of pieces) assert.ok(!p.includes('\uFFFD') || text.includes('\uFFFD'))
      assert.equal(pieces.join(''), tokenizer.decode(ids))
      assert.equal(detok.text, tokenizer.decode(ids))
    }),
    { numRuns: 100 },
  )
  // any ids at all, invalid UTF-8 included: the pieces still add up to the decoded text
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: parseLmFiles(files).config.vocabSize! - 1 }), { maxLength: 30 }),
      (ids) => {
        const detok = tokenizer.detokenizer()
        const text = ids.map((id) => detok.push(id)).join('') + detok.flush()
        assert.equal(text, tokenizer.decode(ids))
      },
    ),
    { numRuns: 100 },
  )
  // the completion view streams the same text
  const decoder = completionTokenizer(files).decoder()
  const ids = tokenizer.encode('🐋 whale')
  assert.equal(ids.map((id) => decoder.push([id])).join('') + decoder.flush(), '🐋 whale')
})

test('checkDecoderLayout: a decoder with a KV cache, or a typed error saying what is missing', () => {
  const past = (i: number, kind: string) => ({
    name: `past_key_values.${i}.${kind}`,
    type: 'float32',
    dims: [null, 4, null, 48],
  })
  const present = (i: number, kind: string) => ({
    name: `present.${i}.${kind}`,
    type: 'float32',
    dims: [null, 4, null, 48],
  })
  const inputs = [
    { name: 'input_ids', type: 'int64', dims: [null, null] },
    { name: 'attention_mask', type: 'int64', dims: [null, null] },
    past(0, 'key'),
    past(0, 'value'),
  ]
  const outputs = [
    { name: 'logits', type: 'float32', dims: [null, null, 2048] },
    present(0, 'key'),
    present(0, 'value'),
  ]
  const layout = checkDecoderLayout({ inputs, outputs })
  assert.deepEqual([layout.kvHeads, layout.headDim, layout.positionIds, layout.layers.length], [4, 48, false, 1])
  const bad = (schema: { inputs: typeof inputs; outputs: typeof outputs }, pattern: RegExp) =>
    assert.throws(
      () => checkDecoderLayout(schema),
      (e: unknown) => e instanceof LmModelError && e.problem === 'bad-graph' && pattern.test(e.message),
    )
  bad({ inputs: inputs.slice(0, 2), outputs: outputs.slice(0, 1) }, /no past_key_values/)
  bad({ inputs: [...inputs, { name: 'pixel_values', type: 'float32', dims: [] }], outputs }, /pixel_values/)
  bad({ inputs: [...inputs, past(1, 'key')], outputs }, /layer 1/)
  bad({ inputs, outputs: outputs.slice(1) }, /logits/)
  bad(
    { inputs: inputs.map((s) => (s.name.startsWith('past') ? { ...s, type: 'int8' } : s)), outputs },
    /float32 or float16/,
  )
  // symbolic cache shape: config.json supplies it (grouped-query attention)
  const symbolic = inputs.map((s) => (s.name.startsWith('past') ? { ...s, dims: [null, null, null, null] } : s))
  bad({ inputs: symbolic, outputs }, /symbolic/)
  const gqa = withJson('config.json', (o) => {
    o.num_key_value_heads = 2
  })
  assert.equal(checkDecoderLayout({ inputs: symbolic, outputs }, gqa).kvHeads, 2)
})
