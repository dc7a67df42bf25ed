// Attack (issue 10.5), "washed usage and self-reported speed": price-0 models, fee-0 receipts
// settled by the worker for its own second key, and `finishedAt = startedAt` bought streak,
// usage and the whole epoch reward. Now prices have a floor, usage counts only fees from clients
// other than the worker, speed is the latency the GATEWAY measured and signed into its settlement,
// recency applies to every worker with usage left, and no worker is paid more in rewards than
// `rewardCapBps` of the fees outside clients paid it, which is less than the `protocolShareBps`
// every such fee gave the treasury: washing always costs more than it earns.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { balanceOf } from '../../src/bank/bank.ts'
import { recencyPpm } from '../../src/inference/chain/rewards.ts'
import { depositOf, workerRecord } from '../../src/inference/chain/state.ts'
import {
  MODEL,
  PRICE,
  advanceTo,
  block,
  inBlock,
  job,
  market,
  modelBody,
  receipt,
  refused,
  settleBody,
  timeAt,
  type Market,
} from '../helpers/market.ts'

test('washed usage: a free model cannot be registered', () => {
  const m = market()
  inBlock(m, (tx) =>
    refused(
      () =>
        tx(m.owner, 'inference.registerModel', {
          ...modelBody({ name: 'free', price: 0n }),
          cid: MODEL.replace(/.$/, 'q'),
        }),
      'price-too-low',
    ),
  )
})

/** The attacker's assets: the balances of its worker, client and gateway keys, and the client's deposit. */
const wealth = (m: Market, keys: { worker: string; client: string; gateway: string }): bigint =>
  balanceOf(m.state, keys.worker) +
  balanceOf(m.state, keys.client) +
  balanceOf(m.state, keys.gateway) +
  depositOf(m.state, keys.client, keys.gateway).amount

test('washed usage: a worker paying itself through a second key and its own gateway ends the epoch poorer', () => {
  const m = market({ deposit: 0n })
  const worker = m.workers[0]!
  // the attacker owns the client (m.client) and the gateway (m.gateway) too
  const keys = { worker: worker.did, client: m.client.did, gateway: m.gateway.did }
  block(m, [[m.client, 'inference.deposit', { gateway: m.gateway.did, amount: 100_000n }]])
  advanceTo(m, 10) // an epoch edge: start counting from a clean epoch
  const before = wealth(m, keys)
  let rewards = 0n
  let jobs = 0n
  for (let h = 11; h <= 20; h++) {
    const receipts = Array.from({ length: 20 }, () =>
      receipt(m, worker, job(m), { startedAt: timeAt(m.height), finishedAt: timeAt(m.height) }),
    )
    jobs += BigInt(receipts.length)
    // the attacker's gateway claims 0 ms latency for its own worker: the best speed there is
    const events = block(m, [
      [
        m.gateway,
        'inference.settle',
        settleBody(
          receipts,
          receipts.map(() => 0),
        ),
      ],
    ])
    for (const e of events)
      if (e.type === 'inference.reward' && e.attributes.worker === worker.did)
        rewards += BigInt(e.attributes.amount ?? 0)
  }
  const share = (jobs * PRICE * BigInt(m.genesis.params.protocolShareBps)) / 10_000n
  const after = wealth(m, keys)
  assert.ok(rewards > 0n, 'the washer was rewarded something')
  assert.ok(
    rewards <= (jobs * PRICE * BigInt(m.genesis.params.rewardCapBps)) / 10_000n,
    'at most rewardCapBps of its fees',
  )
  assert.ok(rewards < share, `rewards ${rewards} < the protocol share it paid ${share}`)
  assert.equal(after, before - share - 10n + rewards, 'washing lost the protocol share and the fees, and won back less')
  assert.ok(after < before, `washing cost the attacker ${before - after}`)
})

test('washed usage: jobs a worker pays itself count for no usage, and a worker’s own settlement carries no speed', () => {
  const m = market({ deposit: 0n })
  const worker = m.workers[1]!
  // the worker is its own client and gateway
  block(m, [[worker, 'inference.deposit', { gateway: worker.did, amount: 5_000n }]])
  const own = receipt(m, worker, job(m, { gateway: worker.did }, worker), { dispatchedBy: worker })
  block(m, [[worker, 'inference.settle', settleBody([own], [0])]])
  const record = workerRecord(m.state, worker.did)!
  assert.equal(record.jobs, 1)
  assert.equal(record.epochFees, 0n, 'self-paid fees are not usage')
  // a receipt the worker settles itself (its gateway gone) adds no latency sample, whatever its timestamps say
  const other = m.workers[2]!
  const j = job(m, { deadline: timeAt(m.height) + 1_000 })
  const r = receipt(m, other, j, { startedAt: timeAt(m.height), finishedAt: timeAt(m.height) })
  advanceTo(m, m.height + 12)
  block(m, [[other, 'inference.settle', settleBody([r], [0])]])
  assert.equal(workerRecord(m.state, other.did)!.epochLatencyJobs, 0)
})

test('recency applies: a worker idle since earlier epochs is still scored, at 0.8', () => {
  const m = market({ params: { recencyBlocks: 5, workerRewardPerEpoch: 100n }, deposit: 100_000n })
  const [early, late] = [m.workers[0]!, m.workers[1]!]
  const fifty = (w: typeof early) => settleBody(Array.from({ length: 50 }, () => receipt(m, w, job(m))))
  block(m, [[m.gateway, 'inference.settle', fifty(early)]])
  advanceTo(m, 9)
  block(m) // epoch edge 10: the early worker is paid from its room, and keeps some
  advanceTo(m, 17)
  block(m, [[m.gateway, 'inference.settle', fifty(late)]])
  advanceTo(m, 19)
  const edge = block(m) // epoch edge 20
  const scores = new Map(
    edge
      .filter((e) => e.type === 'inference.reward')
      .map((e) => [e.attributes.worker, BigInt(e.attributes.scorePpm ?? 0)]),
  )
  assert.ok(scores.has(early.did), 'the idle worker is scored (before, only the epoch’s active workers were)')
  assert.equal(recencyPpm(workerRecord(m.state, early.did)!.lastActiveHeight, 20, 5), 800_000n)
  assert.ok((scores.get(early.did) ?? 0n) < (scores.get(late.did) ?? 0n), 'idle usage counts less than recent usage')
})
