// Attack (issue 10.6), "recognisable canaries": a canary reused a recent client's inputs, whose
// `inputsHash` was public in settle transactions, so a worker could spot a repeat. Now a job
// commits to its inputs with a per-job salt (on-chain data cannot link two jobs with the same
// inputs), a canary goes to a worker that never saw those inputs, and it is signed by the
// gateway's key like every job the gateway pays for (operator requests, completions): the
// client, model, price and deadline of a canary are those of the gateway's paid traffic. A wrong
// canary is challenged by its client, which makes the chain draw an audit, and the cheater is
// slashed by the drawn quorum. Run with the real gateway, worker and auditor components.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { equals } from '../../src/core/bytes.ts'
import type { ChainEvent } from '../../src/chain/host.ts'
import { inputsCommitment } from '../../src/inference/job.ts'
import { hashTensorMap } from '../../src/inference/tensor.ts'
import { DEFAULT_DEADLINE_MS } from '../../src/inference/constants.ts'
import { SimMarket } from '../helpers/sim-market.ts'

let market: SimMarket | undefined
after(() => market?.close())

test('recognisable canaries: the same inputs give unlinkable commitments on chain', async () => {
  const m = (market = await SimMarket.open({ seed: 11 }))
  const gateway = m.gateways[0]!.inference.gateway
  const inputs = m.inputs(5)
  const a = await gateway.infer({ model: m.model.cid, inputs })
  const b = await gateway.infer({ model: m.model.cid, inputs })
  assert.ok(
    !equals(a.receipt.job.inputsHash, b.receipt.job.inputsHash),
    'two jobs on the same inputs commit differently',
  )
  assert.ok(!equals(a.receipt.job.inputsHash, hashTensorMap(inputs)), 'the bare inputs hash appears nowhere')
  assert.ok(equals(a.receipt.job.inputsHash, inputsCommitment(a.receipt.job.salt, hashTensorMap(inputs))))
})

test('recognisable canaries: a canary looks like the gateway’s paid jobs, and a wrong one gets its worker slashed', async () => {
  const m = await SimMarket.open({
    seed: 12,
    workers: [{ kind: 'cheat', rate: 1 }, ...Array.from({ length: 5 }, () => ({ kind: 'honest' as const }))],
    canaryPpm: 1_000_000,
  })
  try {
    const cheater = m.workers[0]!.did
    const events: ChainEvent[] = []
    m.net.onCommit((_, e) => events.push(...e))
    const gateway = m.gateways[0]!
    const jobs = []
    for (let i = 0; i < 40 && !events.some((e) => e.type === 'inference.slashed'); i++) {
      jobs.push(await gateway.inference.gateway.infer({ model: m.model.cid, inputs: m.inputs(i) }))
      await m.block()
    }
    await m.blocks(8)
    assert.ok(gateway.inference.gateway.stats.canaries > 0, 'canaries were sent')
    // what a worker sees of a paid job and of a canary: the same client, model, price and deadline rule
    for (const j of jobs) {
      assert.equal(j.receipt.job.client, gateway.did)
      assert.equal(j.receipt.job.maxFee, 100n)
      assert.equal(j.receipt.job.deadline - j.receipt.startedAt <= DEFAULT_DEADLINE_MS, true)
    }
    const challenged = events.filter((e) => e.type === 'inference.challenge')
    assert.ok(challenged.length > 0, 'a wrong canary was challenged by its client, the gateway')
    assert.ok(
      challenged.every((e) => e.attributes.worker === cheater),
      'only the cheater’s canaries were wrong',
    )
    const slashed = events.filter((e) => e.type === 'inference.slashed').map((e) => e.attributes.worker)
    assert.ok(slashed.includes(cheater), 'the cheater was slashed')
    assert.ok(
      slashed.every((w) => w === cheater),
      'and nobody else',
    )
  } finally {
    await m.close()
  }
})
