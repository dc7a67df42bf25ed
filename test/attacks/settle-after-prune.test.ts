// Attack: settle a job a second time once the chain has pruned its record. Settled jobs' records
// are removed when their windows close (src/inference/chain/prune.ts), so "already-settled" can
// no longer be what stops a replay; the settle window must. A gateway (or its worker) replays
// the very receipt that was paid, and a fresh receipt for the same job, after the prune: both
// are refused as `expired`, and nobody is paid twice.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { balanceOf } from '../../src/bank/bank.ts'
import { jobIdHex } from '../../src/inference/job.ts'
import { pruneAfterBlocks } from '../../src/inference/chain/prune.ts'
import { depositOf, settlementOf } from '../../src/inference/chain/state.ts'
import {
  OUT_A,
  advanceTo,
  block,
  inBlock,
  job,
  market,
  receipt,
  refused,
  settleBody,
  timeAt,
  TEST_PARAMS,
} from '../helpers/market.ts'

test('replaying a settled receipt after its record was pruned: refused as expired, nobody paid twice', () => {
  const m = market({ params: { pruneFromHeight: 1 } })
  const worker = m.workers[0]!
  const j = job(m, { deadline: timeAt(m.height) + 5_000 })
  const paid = receipt(m, worker, j, { outputHash: OUT_A })
  block(m, [[m.gateway, 'inference.settle', settleBody([paid])]])
  const settled = settlementOf(m.state, jobIdHex(j))
  assert.ok(settled !== undefined, 'settled once')

  // past the height windows and the settle window (a block a second here)
  const windowBlocks = Math.ceil((TEST_PARAMS.settleWindowMs as number) / 1_000) + 10
  advanceTo(m, settled.height + Math.max(pruneAfterBlocks(m.genesis.params), windowBlocks) + 2)
  assert.equal(settlementOf(m.state, jobIdHex(j)), undefined, 'the record was pruned')
  const earned = balanceOf(m.state, worker.did)
  const deposit = depositOf(m.state, j.client, j.gateway).amount

  for (const replay of [paid, receipt(m, worker, j, { outputHash: OUT_A })]) {
    for (const sender of [m.gateway, worker])
      inBlock(m, (tx) =>
        refused(() => tx(sender, 'inference.settle', settleBody([replay])), 'no-valid-receipts', /expired/),
      )
  }
  // the worker paid the fees of its own two refused attempts, and earned nothing from them
  assert.equal(balanceOf(m.state, worker.did), earned - 2n, 'paid once')
  assert.equal(depositOf(m.state, j.client, j.gateway).amount, deposit, "the client's deposit was not charged again")
})

test('a chain begun before pruning (pruneFromHeight 0) keeps every record: its old blocks execute as they were made', () => {
  const m = market()
  assert.equal(m.genesis.params.pruneFromHeight, 0)
  const j = job(m, { deadline: timeAt(m.height) + 5_000 })
  block(m, [[m.gateway, 'inference.settle', settleBody([receipt(m, m.workers[0]!, j, { outputHash: OUT_A })])]])
  const settled = settlementOf(m.state, jobIdHex(j))!
  advanceTo(
    m,
    settled.height + pruneAfterBlocks(m.genesis.params) + (TEST_PARAMS.settleWindowMs as number) / 1_000 + 20,
  )
  assert.deepEqual(settlementOf(m.state, jobIdHex(j)), settled, 'kept')
})
