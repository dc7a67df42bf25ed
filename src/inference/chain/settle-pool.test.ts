// Settlement receipts' signatures are verified on the signature pool at mempool admission, and
// block execution (the proposer's, and a validator's that admitted the same transaction) does not
// verify them again.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { equals } from '../../core/bytes.ts'
import { jobIdHex } from '../job.ts'
import { settlementOf } from './state.ts'
import { job, market, receipt, settleBody } from '../../../test/helpers/market.ts'
import { RecordingPool, openMarketNode, proposeAndCommit, txOf } from '../../../test/helpers/market-chain.ts'

test('a settle transaction’s receipts are verified on the pool at admission, with the transaction’s own signature', async () => {
  const m = market()
  const pool = new RecordingPool()
  const node = await openMarketNode(m, m.val, pool)
  try {
    await node.runtime.submitTx(txOf(m, m.client, 0n, 'inference.deposit', { gateway: m.gateway.did, amount: 10_000n }))
    await proposeAndCommit(m, node, [node])
    const j = job(m)
    const receipts = [receipt(m, m.workers[0]!, j), receipt(m, m.workers[1]!, job(m))]
    pool.items.length = 0
    const hash = await node.runtime.submitTx(txOf(m, m.gateway, 0n, 'inference.settle', settleBody(receipts)))
    // the transaction's signature, then each receipt's worker and job signatures (the gateway
    // settles: its own dispatch is proven by the transaction)
    assert.equal(pool.items.length, 1 + 2 * receipts.length)
    for (const r of receipts) {
      assert.ok(
        pool.items.some((item) => equals(item.signature, r.signature)),
        'the worker signature',
      )
      assert.ok(
        pool.items.some((item) => equals(item.signature, r.job.signature)),
        'the job signature',
      )
    }
    assert.deepEqual([...(node.mempool.get(hash)?.verified ?? [])].sort(), ['0:job', '0:worker', '1:job', '1:worker'])
    await proposeAndCommit(m, node, [node])
    assert.equal(settlementOf(node.app.state, jobIdHex(j))?.worker, m.workers[0]!.did)
  } finally {
    await node.close()
  }
})

test('execution does not verify again what admission verified: a pool that says yes to a forged receipt is believed', async () => {
  // A pool that answers true to everything stands in for "verified at admission": if execution
  // verified receipts again, the forged one would be refused; it settles, so execution trusted the
  // pool's answers (and so never repeated the work). The honest pool refuses it (next test file).
  const m = market()
  const node = await openMarketNode(m, m.val, new RecordingPool(() => true))
  try {
    await node.runtime.submitTx(txOf(m, m.client, 0n, 'inference.deposit', { gateway: m.gateway.did, amount: 10_000n }))
    await proposeAndCommit(m, node, [node])
    const j = job(m)
    const forged = { ...receipt(m, m.workers[0]!, j), signature: new Uint8Array(64).fill(7) }
    await node.runtime.submitTx(txOf(m, m.gateway, 0n, 'inference.settle', settleBody([forged])))
    await proposeAndCommit(m, node, [node])
    assert.equal(settlementOf(node.app.state, jobIdHex(j))?.worker, m.workers[0]!.did)
  } finally {
    await node.close()
  }
})

test('with an honest pool a forged receipt in an admitted settle is refused in execution, the others settle', async () => {
  const m = market()
  const node = await openMarketNode(m, m.val, new RecordingPool())
  try {
    await node.runtime.submitTx(txOf(m, m.client, 0n, 'inference.deposit', { gateway: m.gateway.did, amount: 10_000n }))
    await proposeAndCommit(m, node, [node])
    const [bad, good] = [job(m), job(m)]
    const forged = { ...receipt(m, m.workers[0]!, bad), signature: new Uint8Array(64).fill(7) }
    const hash = await node.runtime.submitTx(
      txOf(m, m.gateway, 0n, 'inference.settle', settleBody([forged, receipt(m, m.workers[1]!, good)])),
    )
    assert.deepEqual([...(node.mempool.get(hash)?.verified ?? [])].sort(), ['0:job', '1:job', '1:worker'])
    await proposeAndCommit(m, node, [node])
    assert.equal(settlementOf(node.app.state, jobIdHex(bad)), undefined)
    assert.equal(settlementOf(node.app.state, jobIdHex(good))?.worker, m.workers[1]!.did)
  } finally {
    await node.close()
  }
})
