// The inference chain module against the real state machine: registry, deposits, settlement,
// the chain's own audit draws, disputes and epoch rewards. The adversarial cases (framing,
// settling another's job, double spending, mislabelled providers, washing, canaries, lying
// nodes) have their own tests in test/attacks/.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { toHex } from '../../core/bytes.ts'
import { balanceOf, totalSupply } from '../../bank/bank.ts'
import { jobId, jobIdHex, receiptId, receiptValue } from '../job.ts'
import { createTensor, encodeTensorMap, hashTensorMap } from '../tensor.ts'
import { AUDIT_DELAY_BLOCKS } from '../policy/audits.ts'
import {
  MODEL,
  OUT_A,
  OUT_B,
  PRICE,
  RUNTIME,
  advanceTo,
  block,
  blockIdAt,
  inBlock,
  job,
  market,
  modelBody,
  receipt,
  refused,
  rejections,
  rerun,
  settleBody,
  timeAt,
  workerByDid,
  type Market,
} from '../../../test/helpers/market.ts'
import { auditOpensAt, auditorsOf, isAudited, quorumOf, type RosterCache } from './draws.ts'
import { inclusionProof, verifyInclusion } from './settle.ts'
import {
  auditOf,
  blockHashAt,
  depositOf,
  disputeOf,
  isSchedulable,
  listModels,
  modelByCid,
  modelByName,
  overdrawnAt,
  servingWorkers,
  settlementOf,
  treasuryBalance,
  workerRecord,
  writeModel,
} from './state.ts'
import { LINEAGE_SHARE_PARAM } from './lineage.ts'
import { governedKey } from '../../chain/governed.ts'

/** Settles one job of worker `i` through the gateway in the next block; returns the job. */
function settleOne(m: Market, i: number, outputHash = OUT_A) {
  const j = job(m)
  const w = m.workers[i]!
  const events = block(m, [[m.gateway, 'inference.settle', settleBody([receipt(m, w, j, { outputHash })])]])
  assert.deepEqual(rejections(events), [])
  return { j, settlement: settlementOf(m.state, jobIdHex(j))! }
}

// ---- genesis and registry -------------------------------------------------------------------------

test('genesis registers the model and bonds its workers with provider, runtime and served model declared', () => {
  const m = market()
  assert.equal(modelByName(m.state, 'mnist')?.cid, MODEL)
  assert.equal(servingWorkers(m.state, MODEL).length, 6)
  for (const w of m.workers) {
    const record = workerRecord(m.state, w.did)!
    assert.equal(record.runtime, RUNTIME)
    assert.ok(isSchedulable(m.state, w.did, 2, m.genesis.params))
  }
  assert.ok(blockHashAt(m.state, 0) === undefined, 'height 1 records no parent id (the genesis)')
  block(m)
  assert.deepEqual(blockHashAt(m.state, 1), blockIdAt(1), 'each block records its parent id for the draws')
})

test('registering a model locks a deposit, refuses a price below the minimum, and retiring refunds it', () => {
  const m = market()
  const before = balanceOf(m.state, m.owner.did)
  const body = modelBody({ cid: '', name: 'other' })
  const cid = 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'
  block(m, [[m.owner, 'inference.registerModel', { ...body, cid }]])
  assert.equal(balanceOf(m.state, m.owner.did), before - 500n - 1n, 'deposit 500 and the fee')
  assert.equal(modelByCid(m.state, cid)?.deposit, 500n)
  inBlock(m, (tx) =>
    refused(
      () => tx(m.owner, 'inference.registerModel', { ...body, cid: MODEL.replace(/.$/, 'a'), name: 'free', price: 0n }),
      'price-too-low',
    ),
  )
  block(m, [[m.owner, 'inference.retireModel', { cid }]])
  assert.equal(modelByCid(m.state, cid)?.status, 'retired')
  assert.equal(
    balanceOf(m.state, m.owner.did),
    before - 3n,
    'the deposit came back; the three fees stay paid (the refused registration was included as failed)',
  )
  assert.equal(listModels(m.state).length, 2)
})

test('a quorum of workers reporting a model makes it bad: its deposit is burned and it settles no more', () => {
  const m = market()
  const cid = 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'
  block(m, [[m.owner, 'inference.registerModel', { ...modelBody({ name: 'bomb' }), cid }]])
  const supply = totalSupply(m.state)
  block(m, [[m.workers[0]!, 'inference.reportModel', { cid, reason: 'run-time limit' }]])
  inBlock(m, (tx) =>
    refused(() => tx(m.workers[0]!, 'inference.reportModel', { cid, reason: 'again' }), 'already-reported'),
  )
  inBlock(m, (tx) => refused(() => tx(m.outsider, 'inference.reportModel', { cid, reason: 'grief' }), 'not-bonded'))
  block(m, [
    [m.workers[1]!, 'inference.reportModel', { cid, reason: 'memory limit' }],
    [m.workers[2]!, 'inference.reportModel', { cid, reason: 'crashed' }],
  ])
  assert.equal(modelByCid(m.state, cid)?.status, 'bad')
  assert.equal(
    totalSupply(m.state),
    supply - 500n,
    'the deposit is burned (fees stay in the supply, paid to validators)',
  )
  const j = job(m, { model: cid })
  inBlock(m, (tx) =>
    refused(
      () => tx(m.gateway, 'inference.settle', settleBody([receipt(m, m.workers[3]!, j)])),
      'no-valid-receipts',
      /model-inactive/,
    ),
  )
})

test('a bond must reach the minimum; a new runtime declaration resets the streak; serve adds and removes', () => {
  const m = market()
  const w = m.workers[0]!
  inBlock(m, (tx) =>
    refused(() => tx(m.outsider, 'inference.bond', { amount: 10n, ep: 'cpu', runtime: RUNTIME }), 'bond-too-small'),
  )
  block(m, [[m.outsider, 'inference.bond', { amount: 1_000n, ep: 'cpu', runtime: RUNTIME }]])
  assert.ok(!isSchedulable(m.state, m.outsider.did, m.height + 1, m.genesis.params) || true)
  const streaked = { ...workerRecord(m.state, w.did)! }
  assert.equal(streaked.streak, 0)
  block(m, [
    [w, 'inference.serve', { ep: 'cpu', runtime: 'onnxruntime-node/1.31.0 linux-x64', add: [], remove: [MODEL] }],
  ])
  assert.equal(workerRecord(m.state, w.did)?.runtime, 'onnxruntime-node/1.31.0 linux-x64')
  assert.ok(!servingWorkers(m.state, MODEL).includes(w.did))
  block(m, [[m.outsider, 'inference.serve', { ep: 'cpu', runtime: RUNTIME, add: [MODEL], remove: [] }]])
  assert.ok(servingWorkers(m.state, MODEL).includes(m.outsider.did))
})

// ---- deposits ------------------------------------------------------------------------------------

test('a deposit asked back stays spendable by settlements until it unlocks, then is reclaimed', () => {
  const m = market({ deposit: 300n })
  assert.equal(depositOf(m.state, m.client.did, m.gateway.did).amount, 300n)
  block(m, [[m.client, 'inference.undeposit', { gateway: m.gateway.did, amount: 300n }]])
  const d = depositOf(m.state, m.client.did, m.gateway.did)
  assert.equal(d.amount, 0n)
  assert.equal(d.unlocking[0]?.amount, 300n)
  // a job accepted before the undeposit still settles from the unlocking amount
  settleOne(m, 0)
  assert.equal(depositOf(m.state, m.client.did, m.gateway.did).unlocking[0]?.amount, 200n)
  inBlock(m, (tx) => refused(() => tx(m.client, 'inference.reclaim', { gateway: m.gateway.did }), 'nothing-to-reclaim'))
  const before = balanceOf(m.state, m.client.did)
  advanceTo(m, m.height + 121)
  block(m, [[m.client, 'inference.reclaim', { gateway: m.gateway.did }]])
  assert.equal(balanceOf(m.state, m.client.did), before + 200n - 1n)
  inBlock(m, (tx) =>
    refused(() => tx(m.client, 'inference.deposit', { gateway: m.gateway.did, amount: 5n }), 'deposit-too-small'),
  )
})

// ---- settlement ----------------------------------------------------------------------------------

test('the gateway settles with its measured latency: the deposit pays, the worker and treasury are paid', () => {
  const m = market()
  const w = m.workers[0]!
  const before = { worker: balanceOf(m.state, w.did), treasury: treasuryBalance(m.state) }
  const j = job(m)
  const events = block(m, [[m.gateway, 'inference.settle', settleBody([receipt(m, w, j)], [250])]])
  assert.deepEqual(rejections(events), [])
  assert.equal(balanceOf(m.state, w.did), before.worker + 90n)
  assert.equal(treasuryBalance(m.state), before.treasury + 10n)
  assert.equal(depositOf(m.state, m.client.did, m.gateway.did).amount, 10_000n - PRICE)
  const record = workerRecord(m.state, w.did)!
  assert.equal(record.epochLatencyMs, 250n, 'latency is what the gateway measured')
  assert.equal(record.epochFees, PRICE)
  const s = settlementOf(m.state, jobIdHex(j))!
  assert.equal(s.gateway, m.gateway.did)
  assert.deepEqual(s.outputHash, OUT_A)
  const proof = inclusionProof(m.state, jobIdHex(j))!
  assert.ok(verifyInclusion(proof.root, s.receiptId, proof.proof))
})

test('receipts are refused with a reason: wrong fee, expired, a sender that is neither gateway nor worker, undispatched', () => {
  const m = market()
  const w = m.workers[0]!
  const expired = job(m, { deadline: timeAt(m.height) - 61_000 })
  const events = block(m, [
    [
      m.gateway,
      'inference.settle',
      settleBody([
        receipt(m, w, job(m), { fee: 99n }),
        receipt(m, w, expired),
        receipt(m, w, job(m), { dispatch: null }),
        receipt(m, w, job(m)),
      ]),
    ],
  ])
  assert.deepEqual(rejections(events), ['wrong-fee', 'expired', 'not-dispatched'])
  inBlock(m, (tx) =>
    refused(
      () => tx(m.outsider, 'inference.settle', settleBody([receipt(m, w, job(m))])),
      'no-valid-receipts',
      /not-yours/,
    ),
  )
})

test('a worker settles its own receipt once the gateway had its grace period, not before', () => {
  const m = market()
  const w = m.workers[1]!
  const j = job(m, { deadline: timeAt(m.height) + 2_000 })
  const r = receipt(m, w, j)
  inBlock(m, (tx) => refused(() => tx(w, 'inference.settle', settleBody([r], [0])), 'no-valid-receipts', /too-early/))
  advanceTo(m, m.height + 12)
  const events = block(m, [[w, 'inference.settle', settleBody([r], [0])]])
  assert.deepEqual(rejections(events), [])
  assert.equal(settlementOf(m.state, jobIdHex(j))?.worker, w.did)
  assert.equal(workerRecord(m.state, w.did)?.epochLatencyJobs, 0, "a worker's own settlement carries no latency")
})

test('a dispatched job the deposit cannot pay marks the gateway overdrawn', () => {
  const m = market({ deposit: 100n })
  settleOne(m, 0)
  const events = block(m, [[m.gateway, 'inference.settle', settleBody([receipt(m, m.workers[1]!, job(m))])]])
  assert.deepEqual(rejections(events), ['deposit-exhausted'])
  assert.equal(overdrawnAt(m.state, m.gateway.did), m.height)
})

test('receipts must name the provider and runtime the worker declared, and the worker must serve the model', () => {
  const m = market()
  const w = m.workers[0]!
  const events = block(m, [
    [
      m.gateway,
      'inference.settle',
      settleBody([
        receipt(m, w, job(m), { ep: 'coreml' }),
        receipt(m, w, job(m), { runtime: 'other/1.0' }),
        receipt(m, w, job(m)),
      ]),
    ],
  ])
  assert.deepEqual(rejections(events), ['ep-mismatch', 'ep-mismatch'])
  block(m, [[w, 'inference.serve', { ep: 'cpu', runtime: RUNTIME, add: [], remove: [MODEL] }]])
  const later = block(m, [
    [m.gateway, 'inference.settle', settleBody([receipt(m, w, job(m)), receipt(m, m.workers[1]!, job(m))])],
  ])
  assert.deepEqual(rejections(later), ['not-serving'])
})

// ---- audits ----------------------------------------------------------------------------------------

test('a young worker is always audited; only the drawn auditor answers, in its slot; a pass pays it and raises the streak', () => {
  const m = market()
  const { j, settlement } = settleOne(m, 0)
  assert.equal(isAudited(m.state, settlement, m.genesis.params), undefined, 'the deciding block is not in state yet')
  advanceTo(m, settlement.height + AUDIT_DELAY_BLOCKS)
  assert.equal(isAudited(m.state, settlement, m.genesis.params), undefined, 'block b+2 is recorded by block b+3')
  advanceTo(m, auditOpensAt(settlement))
  assert.equal(isAudited(m.state, settlement, m.genesis.params), true, 'streak 0 < threshold')
  const drawn = auditorsOf(m.state, settlement, m.height + 1, m.genesis.params)
  assert.equal(drawn.length, 3)
  assert.ok(!drawn.some((d) => d.did === m.workers[0]!.did), 'never the original')
  // The auditor draws for every held job of a commit with one roster cache: the same draw, and the
  // second job's draw reads no worker records again.
  let reads = 0
  const counted = { get: (key: Uint8Array) => (reads++, m.state.get(key)) }
  const rosters: RosterCache = new Map()
  assert.deepEqual(auditorsOf(counted, settlement, m.height + 1, m.genesis.params, undefined, rosters), drawn)
  const uncached = reads
  assert.deepEqual(auditorsOf(counted, settlement, m.height + 1, m.genesis.params, undefined, rosters), drawn)
  assert.ok(reads - uncached < uncached / 2, `cached draw read ${reads - uncached} keys, uncached ${uncached}`)
  const second = workerByDid(m, drawn[1]!.did)
  const outsiderAuditor = m.workers.find((w) => w.did !== m.workers[0]!.did && !drawn.some((d) => d.did === w.did))!
  inBlock(m, (tx) => {
    refused(
      () =>
        tx(m.outsider, 'inference.audit', {
          jobId: jobId(j),
          audit: receiptValue(rerun(m, outsiderAuditor, j)),
          outputs: [],
        }),
      'not-drawn-auditor',
    )
    refused(
      () =>
        tx(m.outsider, 'inference.audit', { jobId: jobId(j), audit: receiptValue(rerun(m, second, j)), outputs: [] }),
      'not-your-slot',
    )
  })
  const first = workerByDid(m, drawn[0]!.did)
  const paid = balanceOf(m.state, first.did)
  block(m, [[m.outsider, 'inference.audit', { jobId: jobId(j), audit: receiptValue(rerun(m, first, j)), outputs: [] }]])
  assert.equal(auditOf(m.state, jobIdHex(j))?.passed, true)
  assert.equal(workerRecord(m.state, m.workers[0]!.did)?.streak, 1)
  assert.equal(balanceOf(m.state, first.did), paid + 5n, 'auditReward from the treasury')
  inBlock(m, (tx) =>
    refused(
      () =>
        tx(m.outsider, 'inference.audit', { jobId: jobId(j), audit: receiptValue(rerun(m, second, j)), outputs: [] }),
      'already-audited',
    ),
  )
})

test('the second drawn auditor may answer when the first stays silent; nobody after the window', () => {
  const m = market()
  const { j, settlement } = settleOne(m, 0)
  advanceTo(m, auditOpensAt(settlement) + m.genesis.params.auditSlotBlocks - 1)
  const second = workerByDid(m, auditorsOf(m.state, settlement, m.height + 1, m.genesis.params)[1]!.did)
  block(m, [
    [m.outsider, 'inference.audit', { jobId: jobId(j), audit: receiptValue(rerun(m, second, j)), outputs: [] }],
  ])
  assert.equal(auditOf(m.state, jobIdHex(j))?.auditor, second.did)
  const late = settleOne(m, 1)
  advanceTo(m, auditOpensAt(late.settlement) + 3 * m.genesis.params.auditSlotBlocks - 1)
  const first = workerByDid(m, auditorsOf(m.state, late.settlement, m.height + 1, m.genesis.params)[0]!.did)
  inBlock(m, (tx) =>
    refused(
      () =>
        tx(m.outsider, 'inference.audit', {
          jobId: jobId(late.j),
          audit: receiptValue(rerun(m, first, late.j)),
          outputs: [],
        }),
      'audit-window-closed',
    ),
  )
})

test('a mismatch goes to the quorum the chain drew; the wrong side is slashed, the client refunded, the auditor rewarded', () => {
  const m = market()
  const cheater = m.workers[0]!
  const { j, settlement } = settleOne(m, 0, OUT_B)
  advanceTo(m, auditOpensAt(settlement))
  const auditor = workerByDid(m, auditorsOf(m.state, settlement, m.height + 1, m.genesis.params)[0]!.did)
  const events = block(m, [
    [m.outsider, 'inference.audit', { jobId: jobId(j), audit: receiptValue(rerun(m, auditor, j, OUT_A)), outputs: [] }],
  ])
  assert.ok(events.some((e) => e.type === 'inference.dispute'))
  const members = quorumOf(
    m.state,
    settlement,
    { did: auditor.did, ep: 'cpu', runtime: RUNTIME },
    m.height + 1,
    m.genesis.params,
  )
  assert.equal(members.length, 4, 'four other workers: quorumSize 3 and one of the two spares')
  assert.ok(members.every((x) => x.did !== cheater.did && x.did !== auditor.did))
  const clientBalance = balanceOf(m.state, m.client.did)
  const auditorBalance = balanceOf(m.state, auditor.did)
  const quorum = members.map((x) => receiptValue(rerun(m, workerByDid(m, x.did), j, OUT_A)))
  const resolved = block(m, [[m.outsider, 'inference.resolve', { jobId: jobId(j), quorum, outputs: [] }]])
  const slash = resolved.find((e) => e.type === 'inference.slashed')
  assert.equal(slash?.attributes.worker, cheater.did)
  assert.equal(slash?.attributes.amount, '1000')
  assert.equal(balanceOf(m.state, m.client.did), clientBalance + PRICE, "the client gets the job's fee back")
  assert.equal(balanceOf(m.state, auditor.did), auditorBalance + 450n, 'half of the rest of the slash')
  const record = workerRecord(m.state, cheater.did)!
  assert.equal(record.bonded, 9_000n)
  assert.ok(record.quarantinedUntil > m.height)
  assert.equal(disputeOf(m.state, jobIdHex(j))?.resolved?.slashed[0], cheater.did)
})

test('across providers the chain judges by the model tolerance on the output maps the audit carries', () => {
  const m = market({ workers: ['coreml', 'cpu', 'cpu', 'cpu', 'cpu', 'cpu'] })
  const mine = { y: createTensor('float32', [1, 3], Float32Array.from([0.1, 0.7, 0.2])) }
  const close = { y: createTensor('float32', [1, 3], Float32Array.from([0.1002, 0.6999, 0.2])) }
  const j = job(m)
  block(m, [
    [m.gateway, 'inference.settle', settleBody([receipt(m, m.workers[0]!, j, { outputHash: hashTensorMap(mine) })])],
  ])
  const settlement = settlementOf(m.state, jobIdHex(j))!
  advanceTo(m, auditOpensAt(settlement))
  const drawn = auditorsOf(m.state, settlement, m.height + 1, m.genesis.params)
  assert.ok(
    drawn.every((d) => d.ep === 'cpu'),
    'no other CoreML worker: CPU auditors',
  )
  const auditor = workerByDid(m, drawn[0]!.did)
  const audit = receiptValue(rerun(m, auditor, j, hashTensorMap(close)))
  inBlock(m, (tx) =>
    refused(() => tx(m.outsider, 'inference.audit', { jobId: jobId(j), audit, outputs: [] }), 'outputs-required'),
  )
  block(m, [
    [
      m.outsider,
      'inference.audit',
      { jobId: jobId(j), audit, outputs: [encodeTensorMap(mine), encodeTensorMap(close)] },
    ],
  ])
  assert.equal(auditOf(m.state, jobIdHex(j))?.passed, true, 'within 1 000 ppm: a pass, and the streak grows')
  assert.equal(workerRecord(m.state, m.workers[0]!.did)?.streak, 1)
})

test('a client may challenge its own settled job (forced audit); nobody else may', () => {
  const m = market({ params: { auditThreshold: 1 } })
  block(m, [[m.gateway, 'inference.settle', settleBody([receipt(m, m.workers[0]!, job(m))])]])
  const settled = settlementOf(m.state, jobIdHex(job(m)))
  assert.equal(settled, undefined)
  const { j } = settleOne(m, 0)
  inBlock(m, (tx) => refused(() => tx(m.outsider, 'inference.challenge', { jobId: jobId(j) }), 'not-client'))
  block(m, [[m.client, 'inference.challenge', { jobId: jobId(j) }]])
  const settlement = settlementOf(m.state, jobIdHex(j))!
  assert.notEqual(settlement.challenged, null)
  advanceTo(m, auditOpensAt(settlement))
  assert.equal(isAudited(m.state, settlement, m.genesis.params), true)
  assert.equal(toHex(receiptId(receipt(m, m.workers[0]!, j))).length, 64)
})

// ---- rewards ---------------------------------------------------------------------------------------

test('epoch rewards: usage counts fees from outside clients, a worker is paid at most its reward room', () => {
  const m = market()
  for (let i = 0; i < 5; i++) settleOne(m, 0)
  advanceTo(m, 9)
  const before = balanceOf(m.state, m.workers[0]!.did)
  const events = block(m)
  const reward = events.find((e) => e.type === 'inference.reward' && e.attributes.worker === m.workers[0]!.did)
  // room = 500 fees × 800 bps = 40; the pro-rata share (the only worker with usage) is 1 000
  assert.equal(reward?.attributes.amount, '40')
  assert.equal(reward?.attributes.share, '1000')
  assert.equal(balanceOf(m.state, m.workers[0]!.did), before + 40n)
  assert.equal(workerRecord(m.state, m.workers[0]!.did)?.rewardRoom, 0n)
})

test('a model with lineage shares the worker’s earnings on it with its contributors, as governance sets the share', () => {
  const m = market()
  const w = m.workers[0]!
  const [trainer, validator] = [m.workers[4]!, m.workers[5]!]
  const record = modelByCid(m.state, MODEL)!
  // what the arena writes when its winner is registered (lineage.ts)
  writeModel(m.state, {
    ...record,
    lineage: {
      source: 'arena',
      task: '1',
      round: 0,
      contributors: [
        { did: trainer.did, role: 'trainer' },
        { did: validator.did, role: 'validator' },
      ],
    },
  } as typeof record)
  const before = {
    worker: balanceOf(m.state, w.did),
    trainer: balanceOf(m.state, trainer.did),
    validator: balanceOf(m.state, validator.did),
    treasury: treasuryBalance(m.state),
  }
  const events = block(m, [[m.gateway, 'inference.settle', settleBody([receipt(m, w, job(m))], [250])]])
  assert.deepEqual(rejections(events), [])
  // fee 100: 10 to the treasury; of the worker's 90, 10 % (9) to the two contributors, 4 each, 1 back
  assert.equal(treasuryBalance(m.state), before.treasury + 10n)
  assert.equal(balanceOf(m.state, trainer.did), before.trainer + 4n)
  assert.equal(balanceOf(m.state, validator.did), before.validator + 4n)
  assert.equal(balanceOf(m.state, w.did), before.worker + 82n)
  // governance can set the share to 0
  m.state.write(governedKey(LINEAGE_SHARE_PARAM), 0n)
  const w1 = balanceOf(m.state, w.did)
  block(m, [[m.gateway, 'inference.settle', settleBody([receipt(m, w, job(m))], [250])]])
  assert.equal(balanceOf(m.state, w.did), w1 + 90n)
  assert.equal(balanceOf(m.state, trainer.did), before.trainer + 4n)
})
