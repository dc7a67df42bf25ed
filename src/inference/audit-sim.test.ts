// The audit loop end to end on the real pieces (keys, receipts, ONNX Runtime, the inference chain
// module): dishonest workers are slashed within bounds, honest ones never, and a seed replays.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { AuditSim, type SimWorkerSpec } from './audit-sim.ts'

let sim: AuditSim

before(async () => {
  sim = await AuditSim.open()
})

after(() => sim.close())

const honest = (n: number): SimWorkerSpec[] => Array.from({ length: n }, () => ({}))

test('a worker cheating on half its jobs is slashed within 40 of them, and no honest worker is', async () => {
  for (const seed of [1, 2, 3]) {
    const workers = [{ behaviour: { kind: 'cheat', rate: 0.5 } } as const, ...honest(7)]
    const r = await sim.run({ seed, maxJobs: 2_000, workers })
    assert.ok(r.caught, `seed ${seed}: the cheater was not slashed in ${r.jobs} jobs`)
    assert.ok(r.dishonestJobs <= 40, `seed ${seed}: the cheater served ${r.dishonestJobs} jobs first`)
    assert.equal(r.honestSlashes, 0, `seed ${seed}`)
    assert.ok(r.quorumRuns >= 3, `seed ${seed}: a slash needs a quorum`)
  }
})

test('a lazy worker (random answers) is slashed within 20 of its jobs', async () => {
  for (const seed of [1, 2]) {
    const r = await sim.run({ seed, maxJobs: 1_000, workers: [{ behaviour: { kind: 'lazy' } }, ...honest(7)] })
    assert.ok(r.caught, `seed ${seed}: the lazy worker was not slashed`)
    assert.ok(r.dishonestJobs <= 20, `seed ${seed}: the lazy worker served ${r.dishonestJobs} jobs first`)
    assert.equal(r.honestSlashes, 0, `seed ${seed}`)
  }
})

test('honest workers on one provider are audited but never disputed or slashed', async () => {
  const r = await sim.run({ seed: 4, maxJobs: 400 })
  assert.equal(r.jobs, 400)
  assert.equal(r.honestSlashes, 0)
  assert.equal(r.disputes, 0)
  assert.deepEqual(r.refused, {})
  // every worker's first results are always audited (streak < auditThreshold)
  assert.ok(r.auditRuns >= 80, `only ${r.auditRuns} audits`)
  assert.ok(r.overheadLastHalf < r.overhead, 'audits thin out as streaks grow')
})

test('a run is a pure function of its seed', async () => {
  const workers = [{ behaviour: { kind: 'cheat', rate: 0.2 } } as const, ...honest(5)]
  const a = await sim.run({ seed: 9, maxJobs: 200, workers, stopAtSlash: false })
  const b = await sim.run({ seed: 9, maxJobs: 200, workers, stopAtSlash: false })
  const c = await sim.run({ seed: 10, maxJobs: 200, workers, stopAtSlash: false })
  assert.deepEqual(a, b)
  assert.notEqual(a.digest, c.digest)
})
