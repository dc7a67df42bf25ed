// Attack (issue 16.3): a settle transaction carrying one receipt with a forged worker signature,
// delivered in a proposer's block to a validator whose mempool never saw it. Receipt signatures
// are verified ahead of execution now (on the signature pool, at admission or block validation)
// and execution skips the ones verified valid: a forged one is never among them, so it is still
// refused in execution, and a block whose state root claims it settled is invalid.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { jobIdHex } from '../../src/inference/job.ts'
import { settlementOf } from '../../src/inference/chain/state.ts'
import { VerifyPool } from '../../src/identity/verify-pool.ts'
import { job, market, receipt, settleBody } from '../helpers/market.ts'
import { RecordingPool, openMarketNode, proposeAndCommit, txOf } from '../helpers/market-chain.ts'
import { certify } from '../helpers/chain-app.ts'

for (const withPool of [false, true])
  test(`a forged receipt signature in a block's settle is refused in execution (validator ${withPool ? 'with' : 'without'} a signature pool)`, async () => {
    const m = market()
    // the proposer's pool says yes to every signature: its block claims the forged receipt settled
    const liar = await openMarketNode(m, m.val, new RecordingPool(() => true))
    const honest = await openMarketNode(m, m.val)
    const pool = withPool ? new VerifyPool({ workers: 1 }) : undefined
    pool?.start()
    const victim = await openMarketNode(m, undefined, pool)
    const nodes = [liar, honest, victim]
    try {
      const deposit = txOf(m, m.client, 0n, 'inference.deposit', { gateway: m.gateway.did, amount: 10_000n })
      for (const n of [liar, honest]) await n.runtime.submitTx(deposit)
      await proposeAndCommit(m, liar, nodes)
      const [forgedJob, goodJob] = [job(m), job(m)]
      const forged = { ...receipt(m, m.workers[0]!, forgedJob), signature: new Uint8Array(64).fill(7) }
      const settle = txOf(
        m,
        m.gateway,
        0n,
        'inference.settle',
        settleBody([forged, receipt(m, m.workers[1]!, goodJob)]),
      )
      for (const n of [liar, honest]) await n.runtime.submitTx(settle)
      assert.equal(victim.mempool.size, 0, 'the victim never saw the transaction')
      for (const n of nodes) n.clock.advance(1_000)
      const height = victim.app.head.height + 1
      // the lying proposer's block: refused by the victim (its execution refuses the forged receipt,
      // so the state root differs)
      const lie = await liar.app.createBlock(height, 0)
      const received = victim.app.decodeBlock(liar.app.encodeBlock(lie))
      assert.equal(await victim.app.validateBlock(received, height, 0), false)
      // an honest proposer's block with the same transaction: valid, the forged receipt refused in
      // execution, the other one settled
      const block = await honest.app.createBlock(height, 0)
      const bytes = honest.app.encodeBlock(block)
      assert.equal(await victim.app.validateBlock(victim.app.decodeBlock(bytes), height, 0), true)
      await victim.app.commit(victim.app.decodeBlock(bytes), certify(block, honest.app.blockId(block), [m.val]))
      assert.equal(settlementOf(victim.app.state, jobIdHex(forgedJob)), undefined, 'the forged receipt never settles')
      assert.equal(settlementOf(victim.app.state, jobIdHex(goodJob))?.worker, m.workers[1]!.did)
      if (pool !== undefined) assert.ok(pool.stats.verified >= 3, 'the block’s signatures went through the pool')
    } finally {
      for (const n of nodes) await n.close()
      await pool?.stop()
    }
  })
