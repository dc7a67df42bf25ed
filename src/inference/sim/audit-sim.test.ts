// The audit loop end to end with the production components (gateway, workers, settler, auditor)
// on a simulated network: real keys, receipts, ONNX Runtime and the inference chain module.
// Dishonest workers are slashed within bounds and end with less than honest work would have
// earned, honest ones are never slashed, a seed replays, and a slow worker still gets its share.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { DEFAULT_PARAMS } from '../../chain/genesis.ts'
import { AuditSim, type SimWorkerSpec } from './audit-sim.ts'

let sim: AuditSim

before(async () => {
  sim = await AuditSim.open()
})

after(() => sim.close())

const honest = (n: number): SimWorkerSpec[] => Array.from({ length: n }, () => ({}))

test('a worker cheating on 10% of its jobs is slashed, and ends with less than honest work earns', async () => {
  for (const seed of [1, 2, 3]) {
    const r = await sim.run({
      seed,
      maxJobs: 3_000,
      workers: [{ behaviour: { kind: 'cheat', rate: 0.1 } }, ...honest(7)],
    })
    assert.ok(r.caught, `seed ${seed}: the cheater was not slashed in ${r.jobs} jobs`)
    assert.ok(r.dishonestJobs <= 100, `seed ${seed}: the cheater served ${r.dishonestJobs} jobs first`)
    assert.ok(r.netOverHonest < 1, `seed ${seed}: cheating paid ${r.netOverHonest} of honest work`)
    assert.equal(r.honestSlashes, 0, `seed ${seed}`)
    assert.ok(r.quorumRuns >= 3, `seed ${seed}: a slash needs the drawn quorum`)
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

test('honest workers on two providers are audited, never disputed or slashed, and audits thin out', async () => {
  const r = await sim.run({
    seed: 4,
    maxJobs: 800,
    workers: [...honest(5), { provider: 'fp16' }, { provider: 'fp16' }],
  })
  assert.equal(r.jobs, 800)
  assert.equal(r.honestSlashes, 0)
  assert.equal(r.disputes, 0)
  assert.deepEqual(r.refused, {})
  assert.ok(r.auditRuns >= 100, `only ${r.auditRuns} audits: every young worker's results are audited`)
  assert.ok(r.overheadLastHalf < r.overhead, 'audits thin out as streaks grow')
})

test('a run is a pure function of its seed', async () => {
  const workers = [{ behaviour: { kind: 'cheat', rate: 0.2 } } as const, ...honest(5)]
  const a = await sim.run({ seed: 9, maxJobs: 160, workers, stopAtSlash: false })
  const b = await sim.run({ seed: 9, maxJobs: 160, workers, stopAtSlash: false })
  const c = await sim.run({ seed: 10, maxJobs: 160, workers, stopAtSlash: false })
  assert.deepEqual(a, b)
  assert.notEqual(a.digest, c.digest)
})

test("seed 000's fairness: three workers of different speeds get jobs in proportion to their throughput", async (t) => {
  const speeds = [10, 20, 40]
  const workers = [...speeds.map((jobsPerSecond) => ({ jobsPerSecond })), ...honest(0)]
  const r = await sim.run({ seed: 5, maxJobs: 700, workers, params: { quorumSize: 1 } })
  const total = r.jobsByWorker.reduce((a, b) => a + b, 0)
  const shares = r.jobsByWorker.map((n) => n / total)
  const expected = speeds.map((s) => s / 70)
  t.diagnostic(
    `throughput 10 / 20 / 40: ${r.jobsByWorker.join(' / ')} jobs, shares ${shares.map((x) => x.toFixed(3)).join(' / ')} (expected 0.143 / 0.286 / 0.571)`,
  )
  for (const [i, share] of shares.entries())
    assert.ok(
      Math.abs(share - (expected[i] as number)) < 0.05,
      `worker ${i}: share ${share.toFixed(3)}, expected ${expected[i]?.toFixed(3)}`,
    )
  assert.ok((r.jobsByWorker[0] as number) > 0, 'the slowest worker is paid too')
})

test('a held job is looked at only when it can move: every job audited and nobody to draw costs a few looks, not one per block', async (t) => {
  // one worker: its streak never grows (no one can audit it), so every job is audited, and no
  // candidate is ever drawn; each held job waits out the whole audit window
  const r = await sim.run({ seed: 12, maxJobs: 200, workers: honest(1), stopAtSlash: false })
  const { auditCandidates, auditSlotBlocks } = DEFAULT_PARAMS
  const window = auditCandidates * auditSlotBlocks
  const perJob = r.auditorLooks / r.jobs
  t.diagnostic(
    `${r.auditorLooks} looks for ${r.jobs} jobs over ${r.blocks} blocks (${perJob.toFixed(2)} a job; window ${window} blocks)`,
  )
  assert.equal(r.auditRuns, 0)
  // the commit that decides, then one before each slot opens: auditCandidates + 1
  assert.ok(perJob <= auditCandidates + 1, `${perJob.toFixed(2)} looks a job`)
  assert.ok(perJob >= 1, 'each settled job is looked at when its draw is decided')
})
