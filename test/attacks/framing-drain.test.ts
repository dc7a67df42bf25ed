// Attack (issue 10.1), "framing drain": Sybil workers submit `inference.audit` with their own
// receipt against an honest worker's settled job, at any age, and pick the `inference.resolve`
// quorum themselves, to cut the victim's bond 10 % per dispute and keep half. Before, the chain
// accepted any bonded auditor and any quorum of bonded workers. Now it draws the auditor and the
// quorum itself from a block id recorded in state, accepts an audit only from the drawn auditor in
// its slot, one audit per job, and a resolution only from drawn members.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { jobId, jobIdHex, receiptValue } from '../../src/inference/job.ts'
import { auditOpensAt, auditorsOf, quorumOf } from '../../src/inference/chain/draws.ts'
import { auditWindowEnd } from '../../src/inference/policy/audits.ts'
import { disputeOf, settlementOf, workerRecord } from '../../src/inference/chain/state.ts'
import {
  OUT_A,
  OUT_B,
  RUNTIME,
  advanceTo,
  block,
  inBlock,
  job,
  market,
  receipt,
  refused,
  rerun,
  settleBody,
  workerByDid,
} from '../helpers/market.ts'

test('framing drain: Sybil auditors and a self-picked quorum cannot slash an honest worker', () => {
  // worker 0 is the honest victim; workers 1-4 are one attacker's Sybils; 5 is honest
  const m = market()
  const victim = m.workers[0]!
  const sybils = m.workers.slice(1, 5)
  const bond = workerRecord(m.state, victim.did)!.bonded
  const j = job(m)
  block(m, [[m.gateway, 'inference.settle', settleBody([receipt(m, victim, j, { outputHash: OUT_A })])]])
  const settlement = settlementOf(m.state, jobIdHex(j))!
  const frame = (who: (typeof sybils)[number]) => ({
    jobId: jobId(j),
    audit: receiptValue(rerun(m, who, j, OUT_B)),
    outputs: [],
  })

  // too early: the block that draws the auditor is not committed yet
  inBlock(m, (tx) => refused(() => tx(sybils[0]!, 'inference.audit', frame(sybils[0]!)), 'too-early'))
  advanceTo(m, auditOpensAt(settlement))
  const drawn = auditorsOf(m.state, settlement, m.height + 1, m.genesis.params).map((c) => c.did)
  // every Sybil the chain did not draw first is refused in the first slot, whoever submits it
  inBlock(m, (tx) => {
    for (const sybil of sybils.filter((s) => s.did !== drawn[0])) {
      const reason = drawn.includes(sybil.did) ? 'not-your-slot' : 'not-drawn-auditor'
      refused(() => tx(sybil, 'inference.audit', frame(sybil)), reason)
    }
  })
  // the drawn auditor answers honestly: one audit per job, so no Sybil gets a second try
  const first = workerByDid(m, drawn[0]!)
  const honestFirst = !sybils.some((s) => s.did === first.did)
  block(m, [
    [
      m.outsider,
      'inference.audit',
      { jobId: jobId(j), audit: receiptValue(rerun(m, first, j, honestFirst ? OUT_A : OUT_B)), outputs: [] },
    ],
  ])
  for (const sybil of sybils)
    inBlock(m, (tx) => refused(() => tx(sybil, 'inference.audit', frame(sybil)), 'already-audited'))

  if (!honestFirst) {
    // a Sybil happened to be drawn and disputed: the quorum is the chain's, not theirs
    const members = quorumOf(
      m.state,
      settlement,
      { did: first.did, ep: 'cpu', runtime: RUNTIME },
      m.height + 1,
      m.genesis.params,
    )
    const picked = sybils.filter((s) => s.did !== first.did).map((s) => receiptValue(rerun(m, s, j, OUT_B)))
    const fromMembers = picked.filter((r) => members.some((x) => x.did === (r as { worker: string }).worker))
    if (fromMembers.length < m.genesis.params.quorumSize)
      inBlock(m, (tx) =>
        refused(
          () => tx(sybils[1]!, 'inference.resolve', { jobId: jobId(j), quorum: picked, outputs: [] }),
          'quorum-too-small',
        ),
      )
    assert.equal(disputeOf(m.state, jobIdHex(j))?.resolved, null)
  }
  assert.equal(workerRecord(m.state, victim.did)!.bonded, bond, 'the victim kept its whole bond')
})

test('framing drain: an audit of an old job is refused once its window has closed', () => {
  const m = market()
  const victim = m.workers[0]!
  const j = job(m)
  block(m, [[m.gateway, 'inference.settle', settleBody([receipt(m, victim, j)])]])
  const settlement = settlementOf(m.state, jobIdHex(j))!
  advanceTo(m, auditWindowEnd(auditOpensAt(settlement), m.genesis.params))
  const drawn = workerByDid(m, auditorsOf(m.state, settlement, m.height + 1, m.genesis.params)[0]!.did)
  inBlock(m, (tx) =>
    refused(
      () =>
        tx(drawn, 'inference.audit', { jobId: jobId(j), audit: receiptValue(rerun(m, drawn, j, OUT_B)), outputs: [] }),
      'audit-window-closed',
    ),
  )
})

test('framing drain: two Sybils among eight workers that dispute whenever drawn lose their own bonds, never the victim', () => {
  const m = market({ workers: ['cpu', 'cpu', 'cpu', 'cpu', 'cpu', 'cpu', 'cpu', 'cpu'] })
  const victim = m.workers[0]!
  const sybils = new Set(m.workers.slice(1, 3).map((w) => w.did))
  const sybilBonds = () => [...sybils].reduce((sum, did) => sum + workerRecord(m.state, did)!.bonded, 0n)
  const before = sybilBonds()
  let framed = 0
  for (let i = 0; i < 30 && framed < 3; i++) {
    const j = job(m)
    block(m, [[m.gateway, 'inference.settle', settleBody([receipt(m, victim, j)])]])
    const settlement = settlementOf(m.state, jobIdHex(j))!
    advanceTo(m, auditOpensAt(settlement))
    const auditor = auditorsOf(m.state, settlement, m.height + 1, m.genesis.params)[0]!
    if (!sybils.has(auditor.did)) continue
    // the Sybil is drawn: it claims the victim's answer was wrong
    framed++
    block(m, [
      [
        m.outsider,
        'inference.audit',
        { jobId: jobId(j), audit: receiptValue(rerun(m, workerByDid(m, auditor.did), j, OUT_B)), outputs: [] },
      ],
    ])
    const members = quorumOf(m.state, settlement, auditor, m.height + 1, m.genesis.params)
    // every drawn member answers: Sybils side with their auditor, honest ones compute the truth
    const quorum = members.map((x) =>
      receiptValue(rerun(m, workerByDid(m, x.did), j, sybils.has(x.did) ? OUT_B : OUT_A)),
    )
    const events = block(m, [[m.outsider, 'inference.resolve', { jobId: jobId(j), quorum, outputs: [] }]])
    const slashed = events.filter((e) => e.type === 'inference.slashed').map((e) => e.attributes.worker)
    assert.deepEqual(slashed, [auditor.did], 'the framing auditor is slashed, the victim is not')
  }
  assert.ok(framed > 0, 'in 30 jobs the Sybils were drawn at least once')
  assert.equal(workerRecord(m.state, victim.did)!.slashes, 0)
  assert.equal(workerRecord(m.state, victim.did)!.bonded, 10_000n)
  assert.ok(sybilBonds() < before, 'framing cost the Sybils their own stake')
})
