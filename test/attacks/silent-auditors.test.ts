// Bonded workers that declare a model and never answer (offline, or validators that run no
// worker) are drawn as auditors like anyone: a gateway that asked each one once per held job sent
// 100-350 failed requests a second in the inference bench, each a stream and a protocol
// negotiation on both sides (docs/performance.md, "Audits that asked the silent"). Now a silent
// auditor is asked again after AUDITOR_RETRY_BLOCKS by no held job, and the first request to an
// unknown auditor is the probe the others wait for. Run on the audit simulation: production
// gateway, workers, settler and auditor on the in-memory network, with real ONNX Runtime.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { AuditSim, type SimWorkerSpec } from '../../src/inference/sim/audit-sim.ts'
import { AUDITOR_RETRY_BLOCKS } from '../../src/inference/auditor.ts'

let sim: AuditSim

before(async () => {
  sim = await AuditSim.open()
})

after(() => sim.close())

const honest = (n: number): SimWorkerSpec[] => Array.from({ length: n }, () => ({}))

test('attack: bonded workers that never answer audits cost the gateway one request each per retry window, not one per held job', async (t) => {
  // two of six bonded workers run no node: on a young network every job is audited, and they are
  // drawn as often as anyone; each held job used to ask them itself
  const workers: SimWorkerSpec[] = [...honest(4), { offline: true }, { offline: true }]
  const r = await sim.run({ seed: 21, maxJobs: 400, workers, stopAtSlash: false })
  const perWindow = Math.ceil(r.blocks / AUDITOR_RETRY_BLOCKS) + 1
  t.diagnostic(
    `${r.requestsToOffline} requests to the 2 offline workers for ${r.jobs} jobs over ${r.blocks} blocks (${r.auditRuns} audits answered)`,
  )
  assert.ok(
    r.requestsToOffline <= 2 * perWindow,
    `${r.requestsToOffline} requests to the offline workers, more than one each per ${AUDITOR_RETRY_BLOCKS} blocks (${2 * perWindow})`,
  )
  assert.ok(r.requestsToOffline > 0, 'the offline workers were drawn and asked')
  assert.ok(r.auditRuns >= 100, `only ${r.auditRuns} audits: the online auditors must still be asked`)
  assert.equal(r.honestSlashes, 0)
  assert.deepEqual(r.refused, {})
})
