// Attack (issue 10.4), "mislabelled receipts escape slashing": a receipt's provider and runtime
// were self-declared, and `inference.resolve` judged only sides labelled like the majority, so a
// cheater labelling its receipts with another provider was never judged. Now a worker's bond
// declares its provider and runtime, receipts that name another are refused at settlement, and a
// side on another provider than the quorum is judged by the model's tolerance on its outputs.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { jobId, jobIdHex, receiptValue } from '../../src/inference/job.ts'
import { createTensor, encodeTensorMap, hashTensorMap } from '../../src/inference/tensor.ts'
import { auditOpensAt, auditorsOf, quorumOf } from '../../src/inference/chain/draws.ts'
import { settlementOf, workerRecord } from '../../src/inference/chain/state.ts'
import {
  RUNTIME,
  advanceTo,
  block,
  inBlock,
  job,
  market,
  receipt,
  refused,
  rejections,
  rerun,
  settleBody,
  workerByDid,
} from '../helpers/market.ts'

const y = (values: number[]) => ({ y: createTensor('float32', [1, 3], Float32Array.from(values)) })

test('mislabelled receipts: a receipt naming a provider or runtime its worker did not declare is refused', () => {
  const m = market()
  const w = m.workers[0]!
  const body = settleBody([
    receipt(m, w, job(m), { ep: 'coreml' }),
    receipt(m, w, job(m), { runtime: 'onnxruntime-node/9.9.9 darwin-arm64' }),
    receipt(m, w, job(m)),
  ])
  const events = block(m, [[m.gateway, 'inference.settle', body]])
  assert.deepEqual(rejections(events), ['ep-mismatch', 'ep-mismatch'])
})

test('mislabelled receipts: a cheater on a provider nobody else runs is judged by tolerance and slashed', () => {
  // the cheater is the only CoreML worker: every auditor and the whole quorum run on CPU
  const m = market({ workers: ['coreml', 'cpu', 'cpu', 'cpu', 'cpu', 'cpu'] })
  const cheater = m.workers[0]!
  const truth = y([0.1, 0.7, 0.2])
  const lie = y([0.7, 0.1, 0.2])
  const j = job(m)
  block(m, [[m.gateway, 'inference.settle', settleBody([receipt(m, cheater, j, { outputHash: hashTensorMap(lie) })])]])
  const settlement = settlementOf(m.state, jobIdHex(j))!
  advanceTo(m, auditOpensAt(settlement))
  const auditor = auditorsOf(m.state, settlement, m.height + 1, m.genesis.params)[0]!
  assert.equal(auditor.ep, 'cpu')
  const audit = receiptValue(rerun(m, workerByDid(m, auditor.did), j, hashTensorMap(truth)))
  // across providers the audit must carry both output maps, and they disagree beyond tolerance
  block(m, [
    [
      m.outsider,
      'inference.audit',
      { jobId: jobId(j), audit, outputs: [encodeTensorMap(lie), encodeTensorMap(truth)] },
    ],
  ])
  const members = quorumOf(m.state, settlement, auditor, m.height + 1, m.genesis.params)
  assert.ok(
    members.every((x) => x.ep === 'cpu' && x.runtime === RUNTIME),
    'one provider group: CPU',
  )
  const quorum = members.map((x) => receiptValue(rerun(m, workerByDid(m, x.did), j, hashTensorMap(truth))))
  // without the maps the chain cannot judge the CoreML side, and says so
  inBlock(m, (tx) =>
    refused(() => tx(m.outsider, 'inference.resolve', { jobId: jobId(j), quorum, outputs: [] }), 'outputs-required'),
  )
  const events = block(m, [
    [
      m.outsider,
      'inference.resolve',
      { jobId: jobId(j), quorum, outputs: [encodeTensorMap(lie), encodeTensorMap(truth)] },
    ],
  ])
  const slashed = events.filter((e) => e.type === 'inference.slashed').map((e) => e.attributes.worker)
  assert.deepEqual(slashed, [cheater.did], 'judged, not skipped')
  assert.equal(workerRecord(m.state, cheater.did)!.slashes, 1)
})

test('mislabelled receipts: an honest worker on another provider, within tolerance, is vindicated', () => {
  const m = market({ workers: ['coreml', 'cpu', 'cpu', 'cpu', 'cpu', 'cpu'] })
  const honest = m.workers[0]!
  const cpu = y([0.1, 0.7, 0.2])
  const coreml = y([0.1003, 0.6996, 0.2001])
  const j = job(m)
  block(m, [
    [m.gateway, 'inference.settle', settleBody([receipt(m, honest, j, { outputHash: hashTensorMap(coreml) })])],
  ])
  const settlement = settlementOf(m.state, jobIdHex(j))!
  advanceTo(m, auditOpensAt(settlement))
  const auditor = auditorsOf(m.state, settlement, m.height + 1, m.genesis.params)[0]!
  // a dishonest auditor claims a mismatch without the maps: refused; with them: a pass
  const audit = receiptValue(rerun(m, workerByDid(m, auditor.did), j, hashTensorMap(cpu)))
  inBlock(m, (tx) =>
    refused(() => tx(m.outsider, 'inference.audit', { jobId: jobId(j), audit, outputs: [] }), 'outputs-required'),
  )
  const events = block(m, [
    [
      m.outsider,
      'inference.audit',
      { jobId: jobId(j), audit, outputs: [encodeTensorMap(coreml), encodeTensorMap(cpu)] },
    ],
  ])
  assert.ok(events.some((e) => e.type === 'inference.audit_passed'))
  assert.equal(workerRecord(m.state, honest.did)!.slashes, 0)
})
