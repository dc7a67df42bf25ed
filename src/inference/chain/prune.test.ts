// Pruning of settled jobs, on the simulated market (real gateway, settler, worker components,
// real ONNX Runtime, the chain's modules on a manual clock): records stay while a window is open,
// go once both the height and the time windows have passed, and a second settlement is still refused.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { toHex, utf8 } from '../../core/bytes.ts'
import { jobId } from '../job.ts'
import { SimMarket } from '../../../test/helpers/sim-market.ts'
import { SIM_BLOCK_MS } from '../sim/network.ts'
import { pruneAfterBlocks, pruneSettled } from './prune.ts'
import { rejectReason } from './settle.ts'
import { batchCount, PRUNE_NEXT_KEY, settleBatch, settlementOf } from './state.ts'
import { readState, StateOverlay } from '../../chain/state-view.ts'
import { SparseMerkleTree } from '../../chain/state/smt.ts'

const SETTLE_WINDOW_MS = 3 * 60_000

test('settled jobs are pruned once past the dispute and audit windows and the settle window; a second settlement stays refused', async () => {
  const market = await SimMarket.open({ seed: 7, params: { settleWindowMs: SETTLE_WINDOW_MS, pruneFromHeight: 1 } })
  try {
    const gateway = market.gateways[0]!
    const answers = []
    for (let i = 0; i < 4; i++)
      answers.push(await gateway.inference.gateway.infer({ model: market.model.cid, inputs: market.inputs(i) }))
    await market.blocks(3)
    const state = (): StateOverlay => market.net.state
    const ids = answers.map((a) => toHex(jobId(a.receipt.job)))
    for (const id of ids) assert.ok(settlementOf(state(), id) !== undefined, `job ${id.slice(0, 8)} settled`)
    const heights = [...new Set(ids.map((id) => settlementOf(state(), id)!.height))]
    const batch = settleBatch(state(), heights[0]!, 0)
    assert.equal(batch?.jobIds?.length, batch?.count, 'a batch names its jobs')

    // Past the height windows but not the settle window: everything stays.
    const lag = pruneAfterBlocks(market.net.genesis.params)
    await market.blocks(lag + 2)
    const deadline = Math.max(...answers.map((a) => a.receipt.job.deadline))
    for (const id of ids) assert.ok(settlementOf(state(), id) !== undefined, 'kept inside the settle window')

    // Past both (the simulated chain's block time moves SIM_BLOCK_MS a block): the records of
    // those heights go, and the walk's cursor moves past them.
    const chainTime = (): number => market.net.genesis.genesisTime + market.net.height * SIM_BLOCK_MS
    assert.ok(chainTime() <= deadline + SETTLE_WINDOW_MS, 'the chain is still inside the settle window')
    await market.blocks(Math.ceil((deadline + SETTLE_WINDOW_MS - chainTime()) / SIM_BLOCK_MS) + 2)
    for (const id of ids) assert.equal(settlementOf(state(), id), undefined, 'pruned')
    for (const h of heights) assert.equal(batchCount(state(), h), 0, `batch count of height ${h} pruned`)
    assert.ok((readState<number>(state(), PRUNE_NEXT_KEY) ?? 0) > Math.max(...heights))
    for (const h of heights) assert.equal(settleBatch(state(), h, 0), undefined, `batch record of height ${h} pruned`)

    // The receipts cannot be settled a second time: the settle window has closed.
    for (const a of answers) {
      const reason = rejectReason(
        state(),
        a.receipt,
        gateway.did,
        {
          chainId: market.net.genesis.chainId,
          time: chainTime(),
        },
        market.net.genesis.params,
      )
      assert.deepEqual(reason, { reason: 'expired' })
    }
  } finally {
    await market.close()
  }
})

test('pruneSettled: the first block only starts the walk; a height still in its settle window stops it', () => {
  const params = { auditCandidates: 3, auditSlotBlocks: 3, disputeWindowBlocks: 20, settleWindowMs: 1_000 }
  const state = new StateOverlay(SparseMerkleTree.empty())
  pruneSettled(state, { height: 10, time: 0 }, params)
  assert.equal(readState<number>(state, PRUNE_NEXT_KEY), 10, 'batches from before the first block are never walked')
  const batch = (deadline: number) => ({
    root: new Uint8Array(32),
    count: 1,
    receiptIds: [new Uint8Array(32)],
    jobIds: [utf8(`job-${deadline}`).subarray(0, 8)],
    lastDeadline: deadline,
  })
  state.write('inference/batches/10', 1)
  state.write('inference/batch/10/0', batch(0))
  state.write('inference/batches/11', 1)
  state.write('inference/batch/11/0', batch(5_000))
  const far = 10 + pruneAfterBlocks(params) + 5
  pruneSettled(state, { height: far, time: 2_000 }, params)
  assert.equal(batchCount(state, 10), 0, 'height 10: past both windows, pruned')
  assert.equal(batchCount(state, 11), 1, 'height 11: its job is still in the settle window')
  assert.equal(readState<number>(state, PRUNE_NEXT_KEY), 11, 'the walk waits at height 11')
  pruneSettled(state, { height: far + 1, time: 6_001 }, params)
  assert.equal(batchCount(state, 11), 0)
  assert.equal(readState<number>(state, PRUNE_NEXT_KEY), far + 1 - pruneAfterBlocks(params) + 1)
})
