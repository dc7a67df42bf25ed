// Generation as one job, on the real worker, gateway, settler and auditor components over the
// simulated network (src/inference/sim/network.ts), with the demo language model (models/lm) on a
// real ONNX Runtime:
//  - a completion is one job on one worker; its tokens stream back before the verified answer;
//  - the same request with the same seed gives the same text; the receipt charges tokens;
//  - every settled generation of a worker with no streak is audited by teacher forcing, and
//    honest ones pass;
//  - a worker that swaps one output token is caught by the audit, out-voted and slashed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ChainEvent } from '../src/chain/host.ts'
import { verifyReceipt } from '../src/inference/job.ts'
import { complete, type CompletionResult } from '../src/inference/lm/completion.ts'
import { completionTokenizer } from '../src/inference/lm/tokenizer.ts'
import { LM_FILES, type LmFiles } from '../src/inference/lm/types.ts'
import { modelByCid, workerRecord } from '../src/inference/chain/state.ts'
import { DEMO_LM_DIR, DEMO_LM_NAME, DEMO_MODELS_DIR } from '../src/inference/demo-models.ts'
import { LM_PRICE, LM_PROMPT_PRICE, SimMarket } from './helpers/sim-market.ts'

async function demoFiles(): Promise<LmFiles> {
  const files: LmFiles = {}
  for (const name of LM_FILES)
    try {
      files[name] = new Uint8Array(await readFile(join(DEMO_MODELS_DIR, DEMO_LM_DIR, name)))
    } catch {
      // optional files may be absent
    }
  return files
}

const ask = (text: string) => [{ role: 'user', content: text }]

test('a generation is one job: streamed, reproducible by seed, charged per token, audited by teacher forcing', async () => {
  const m = await SimMarket.open({
    seed: 21,
    model: DEMO_LM_NAME,
    workers: Array.from({ length: 4 }, () => ({ kind: 'honest' as const })),
  })
  try {
    const gateway = m.gateways[0]!.inference.gateway
    const model = modelByCid(m.net.state, m.model.cid)!
    const tokenizer = completionTokenizer(await demoFiles())
    const run = async (seed: bigint, onPiece?: (p: string) => void): Promise<CompletionResult> =>
      complete(
        gateway,
        model,
        tokenizer,
        { messages: ask('Call me Ishmael.'), maxTokens: 24, temperature: 0.9, seed },
        onPiece,
      )

    const pieces: string[] = []
    const first = await run(42n, (p) => pieces.push(p))
    assert.ok(pieces.length > 1, `tokens streamed as they came (${pieces.length} pieces)`)
    assert.equal(pieces.join(''), first.text, 'the streamed text is the verified answer')
    assert.ok(verifyReceipt(first.receipt))
    assert.equal(first.receipt.usage?.prompt, first.promptTokens)
    assert.equal(first.receipt.usage?.output, first.completionTokens)
    assert.equal(
      first.receipt.fee,
      BigInt(first.promptTokens) * LM_PROMPT_PRICE + BigInt(first.completionTokens) * LM_PRICE,
      'prompt and output tokens priced separately',
    )
    const again = await run(42n)
    assert.equal(again.text, first.text, 'the same seed gives the same text (whichever worker ran it)')
    const other = await run(7n)
    assert.notEqual(other.text, first.text, 'another seed samples another text')

    // settle and let the chain's draws audit them (no worker has a streak: all are audited)
    const events: ChainEvent[] = []
    m.net.onCommit((_, e) => events.push(...e))
    await m.blocks(14)
    const audited = events.filter((e) => e.type === 'inference.audited' || e.type === 'inference.audit')
    const passed = m.workers.reduce((sum, w) => sum + (workerRecord(m.net.state, w.did)?.auditsPassed ?? 0), 0)
    assert.ok(passed >= 1, `generations were audited and passed (${passed}; events ${audited.length})`)
    assert.ok(m.teacherForcedRuns >= passed, 'each audit checked the claimed tokens by teacher forcing')
    assert.equal(
      m.workers.reduce((sum, w) => sum + (workerRecord(m.net.state, w.did)?.slashes ?? 0), 0),
      0,
      'no honest worker slashed',
    )
  } finally {
    await m.close()
  }
})

test('a worker that swaps one output token is caught by teacher forcing, out-voted and slashed', async () => {
  const m = await SimMarket.open({
    seed: 22,
    model: DEMO_LM_NAME,
    workers: [{ kind: 'cheat', rate: 1 }, { kind: 'honest' }, { kind: 'honest' }, { kind: 'honest' }],
    params: { quorumSize: 2 },
  })
  try {
    const cheater = m.workers[0]!.did
    const gateway = m.gateways[0]!.inference.gateway
    const model = modelByCid(m.net.state, m.model.cid)!
    const tokenizer = completionTokenizer(await demoFiles())
    const events: ChainEvent[] = []
    m.net.onCommit((_, e) => events.push(...e))
    let byCheater = 0
    for (let i = 0; i < 30 && !events.some((e) => e.type === 'inference.slashed'); i++) {
      const out = await complete(gateway, model, tokenizer, {
        messages: ask(`What of the whale, number ${i}?`),
        maxTokens: 16,
        temperature: 0,
      })
      if (out.worker === cheater) byCheater++
      await m.block()
    }
    await m.blocks(10)
    assert.ok(byCheater > 0, 'the cheater served generations')
    const slashed = events.filter((e) => e.type === 'inference.slashed').map((e) => e.attributes.worker)
    assert.ok(slashed.includes(cheater), `the cheater was slashed (served ${byCheater})`)
    assert.ok(
      slashed.every((w) => w === cheater),
      'and nobody else',
    )
    assert.ok((workerRecord(m.net.state, cheater)?.slashes ?? 0) > 0)
    assert.ok(m.teacherForcedRuns > 0, 'the audit and the quorum checked the claimed tokens by teacher forcing')
  } finally {
    await m.close()
  }
})
