// Attack (issue 10.2), "settling someone else's job": a worker answers `busy`, the gateway retries
// the job on another worker, and the first worker settles a receipt with any output hash for it
// (before, anyone could submit `inference.settle` and the first receipt won). Now a job names its
// gateway; only a receipt carrying that gateway's dispatch to its own worker settles, the gateway
// alone settles until `gatewayGraceMs` after the deadline, and a job settles once.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { balanceOf } from '../../src/bank/bank.ts'
import { jobIdHex } from '../../src/inference/job.ts'
import { settlementOf } from '../../src/inference/chain/state.ts'
import {
  OUT_A,
  OUT_B,
  advanceTo,
  block,
  inBlock,
  job,
  market,
  receipt,
  refused,
  rejections,
  settleBody,
  timeAt,
} from '../helpers/market.ts'

test('settling another worker’s job: the busy worker’s made-up receipt never settles, the worker that ran it is paid', () => {
  const m = market()
  const [busy, ran] = [m.workers[0]!, m.workers[1]!]
  const j = job(m, { deadline: timeAt(m.height) + 5_000 })
  // the gateway dispatched to `busy` first (it answered "busy"), then to `ran`
  const madeUp = receipt(m, busy, j, { outputHash: OUT_B })
  const honest = receipt(m, ran, j, { outputHash: OUT_A })
  // the busy worker races to settle before the gateway: too early, its gateway has priority
  inBlock(m, (tx) =>
    refused(() => tx(busy, 'inference.settle', settleBody([madeUp], [0])), 'no-valid-receipts', /too-early/),
  )
  // nor can a third party settle it for the worker
  inBlock(m, (tx) =>
    refused(() => tx(m.outsider, 'inference.settle', settleBody([madeUp])), 'no-valid-receipts', /not-yours/),
  )
  const before = balanceOf(m.state, ran.did)
  block(m, [[m.gateway, 'inference.settle', settleBody([honest])]])
  assert.equal(settlementOf(m.state, jobIdHex(j))?.worker, ran.did)
  assert.equal(balanceOf(m.state, ran.did), before + 90n, 'the worker that ran the job is paid')
  // after the grace period the busy worker tries again: the job settled once, already
  advanceTo(m, m.height + 20)
  const late = block(m, [[m.gateway, 'inference.settle', settleBody([receipt(m, ran, job(m))])]])
  assert.deepEqual(rejections(late), [])
  inBlock(m, (tx) =>
    refused(() => tx(busy, 'inference.settle', settleBody([madeUp], [0])), 'no-valid-receipts', /already-settled/),
  )
})

test('settling another worker’s job: a receipt without this worker’s dispatch, or with a forged one, never settles', () => {
  const m = market()
  const [never, ran] = [m.workers[2]!, m.workers[3]!]
  const j = job(m, { deadline: timeAt(m.height) + 2_000 })
  // a worker the gateway never dispatched to forges a dispatch with its own key
  const forged = receipt(m, never, j, { dispatchedBy: never })
  // or copies the dispatch the gateway gave another worker
  const resigned = receipt(m, never, j, { dispatch: receipt(m, ran, j).dispatch })
  const undispatched = receipt(m, never, j, { dispatch: null })
  const paid = receipt(m, ran, j)
  advanceTo(m, m.height + 15) // past the grace: workers may settle their own receipts now
  for (const bad of [forged, resigned])
    inBlock(m, (tx) =>
      refused(() => tx(never, 'inference.settle', settleBody([bad], [0])), 'no-valid-receipts', /bad-signature/),
    )
  inBlock(m, (tx) =>
    refused(
      () => tx(never, 'inference.settle', settleBody([undispatched], [0])),
      'no-valid-receipts',
      /not-dispatched/,
    ),
  )
  // the worker it was dispatched to settles its own receipt: the gateway vanished, the work is paid
  block(m, [[ran, 'inference.settle', settleBody([paid], [0])]])
  assert.equal(settlementOf(m.state, jobIdHex(j))?.worker, ran.did)
})
