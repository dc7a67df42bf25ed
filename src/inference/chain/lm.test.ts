// Language models on chain: a registration names its tokenizer files, prompt price and context;
// a generation's receipt charges prompt tokens × promptPrice + output tokens × price, and the
// chain refuses any other fee, a usage beyond the context, and token usage on other models.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { jobIdHex, parseReceipt, receiptValue, verifyWorkerSignature } from '../job.ts'
import { LM_INPUTS, LM_OUTPUTS } from '../lm/types.ts'
import {
  block,
  cid,
  inBlock,
  job,
  market,
  modelBody,
  receipt,
  refused,
  rejections,
  settleBody,
} from '../../../test/helpers/market.ts'
import { feeFor, maxFeeFor, modelByCid, settlementOf } from './state.ts'

const LM = cid('tiny-lm-v1')

function lmBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ...modelBody({ cid: LM, name: 'tiny-lm', kind: 'lm', price: 3n, inputs: LM_INPUTS, outputs: LM_OUTPUTS }),
    files: { 'tokenizer.json': cid('tok'), 'tokenizer_config.json': cid('tok-config') },
    promptPrice: 1n,
    contextLength: 256,
    ...overrides,
  }
}

function withLm() {
  const m = market()
  block(m, [[m.owner, 'inference.registerModel', lmBody()]])
  assert.equal(modelByCid(m.state, LM)?.kind, 'lm')
  // the genesis workers declare it
  block(
    m,
    m.workers.map((w) => [
      w,
      'inference.serve',
      { ep: w.ep, runtime: 'onnxruntime-node/1.30.0 linux-x64', add: [LM], remove: [] },
    ]),
  )
  return m
}

test('a language model registers with its files, prompt price and context; without a tokenizer it is refused', () => {
  const m = market()
  inBlock(m, (tx) => {
    refused(
      () => tx(m.owner, 'inference.registerModel', lmBody({ files: { 'tokenizer.json': cid('tok') } })),
      'malformed',
      /tokenizer_config\.json/,
    )
    refused(() => tx(m.owner, 'inference.registerModel', lmBody({ contextLength: 1 })), 'malformed', /contextLength/)
    refused(
      () => tx(m.owner, 'inference.registerModel', lmBody({ inputs: [{ name: 'x', type: 'float32', dims: [1] }] })),
      'malformed',
      /generation tensors/,
    )
    refused(
      () => tx(m.owner, 'inference.registerModel', { ...modelBody({ cid: cid('t2'), name: 't2' }), promptPrice: 1n }),
      'malformed',
      /language models/,
    )
  })
  block(m, [[m.owner, 'inference.registerModel', lmBody()]])
  const record = modelByCid(m.state, LM)!
  assert.equal(record.promptPrice, 1n)
  assert.equal(record.contextLength, 256)
  assert.equal(record.files?.['tokenizer.json'], cid('tok'))
})

test('fees per token: prompt and output priced separately, usage bounded by the context', () => {
  const model = {
    ...(lmBody() as never as Parameters<typeof feeFor>[0]),
    price: 3n,
    promptPrice: 1n,
    contextLength: 256,
  }
  assert.equal(feeFor(model, { prompt: 10, output: 20 }), 10n * 1n + 20n * 3n)
  assert.equal(feeFor(model, undefined), undefined, 'a generation must say what it used')
  assert.equal(feeFor(model, { prompt: 200, output: 57 }), undefined, 'beyond the context window')
  assert.equal(feeFor(model, { prompt: 0, output: 3 }), undefined, 'no prompt')
  assert.equal(maxFeeFor(model, 10, 1_000), 10n + 246n * 3n, 'max_tokens is capped by the context window')
  const tensor = { ...model, kind: 'tensor' as const }
  assert.equal(feeFor(tensor, undefined), 3n)
  assert.equal(feeFor(tensor, { prompt: 1, output: 1 }), undefined, 'tensor receipts carry no usage')
})

test('the chain settles a generation at its token fee and refuses any other fee', () => {
  const m = withLm()
  const w = m.workers[0]!
  const good = job(m, { model: LM, maxFee: 500n })
  const usage = { prompt: 12, output: 30 }
  const fee = 12n * 1n + 30n * 3n
  const events = block(m, [[m.gateway, 'inference.settle', settleBody([receipt(m, w, good, { fee, usage })])]])
  assert.deepEqual(rejections(events), [])
  assert.ok(settlementOf(m.state, jobIdHex(good)) !== undefined)

  const cases: Array<[string, Parameters<typeof receipt>[3]]> = [
    ['wrong fee for the usage', { fee: fee + 1n, usage }],
    ['no usage on a generation', { fee }],
    ['usage beyond the context', { fee: 12n + 250n * 3n, usage: { prompt: 12, output: 250 } }],
  ]
  for (const [what, overrides] of cases) {
    const j = job(m, { model: LM, maxFee: 5_000n })
    inBlock(m, (tx) =>
      refused(
        () => tx(m.gateway, 'inference.settle', settleBody([receipt(m, w, j, overrides)])),
        'no-valid-receipts',
        /wrong-fee/,
      ),
    )
    assert.equal(settlementOf(m.state, jobIdHex(j)), undefined, what)
  }
  // a tensor model's receipt with a usage field is refused too
  const t = job(m, { maxFee: 500n })
  inBlock(m, (tx) =>
    refused(
      () => tx(m.gateway, 'inference.settle', settleBody([receipt(m, w, t, { usage: { prompt: 1, output: 1 } })])),
      'no-valid-receipts',
      /wrong-fee/,
    ),
  )
  // the usage is inside the signed receipt: changing it after signing breaks the signature
  const signed = receipt(m, w, job(m, { model: LM, maxFee: 500n }), { fee, usage })
  assert.ok(verifyWorkerSignature(signed))
  const tampered = parseReceipt({ ...receiptValue(signed), usage: { prompt: 13, output: 30 } })
  assert.equal(verifyWorkerSignature(tampered), false)
})
