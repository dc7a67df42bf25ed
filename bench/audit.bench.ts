/**
 * The audit system's figures (verification.md "What to measure"), from seeded runs of
 * src/inference/sim/audit-sim.ts: real keys, signed jobs and receipts, ONNX Runtime on digits-mlp, the
 * inference chain module settling, auditing and resolving block after block, service.ts's rules.
 * 8 workers bonded at genesis, 16 jobs settled per block, 2% canaries (service.ts's default),
 * DEFAULT_PARAMS (audit threshold 10, quorum 3).
 *  - audit-detect-cheat10: a worker that rotates its answer on 10% of jobs: its jobs until its
 *    first slash, median (value) and worst over N seeds. Goal ≤ 100.
 *  - audit-detect-lazy: a worker that never runs the model. Goal ≤ 20.
 *  - audit-false-positive: 8 honest CPU workers over ≥ 10,000 jobs; honest jobs per honest slash
 *    (a lower bound: the run's honest jobs when none is slashed). Goal: 0 slashed.
 *  - audit-overhead: in that run, (audit + quorum re-runs) ÷ all runs over its second half, in
 *    basis points; beside it the whole run, and both with the canary runs (the gateway's own run and
 *    the worker's) counted as extra. Goal ≤ 5%; BOINC's adaptive replication runs at 5–10%.
 *  - audit-false-positive-mixed-ep: cheat10 runs where 2 of the 7 honest workers are an emulated
 *    fp16 provider (CoreML-like): honest jobs per honest slash, and honest-vs-honest disputes.
 */
import { AuditSim, type AuditSimResult, type SimBehaviour, type SimWorkerSpec } from '../src/inference/sim/audit-sim.ts'
import { line, type BenchLine, type MeasureOptions } from './harness.ts'

export const AUDIT_BENCH_NAMES = [
  'audit-detect-cheat10',
  'audit-detect-lazy',
  'audit-false-positive',
  'audit-overhead',
  'audit-false-positive-mixed-ep',
]

interface Sizes {
  /** Seeded runs per detection figure. */
  seeds: number
  /** Job cap of a run with a dishonest worker (it gets an eighth of them). */
  cap: number
  /** Jobs of the honest run (false positives and overhead). */
  honestJobs: number
  /** Seeded runs across providers. */
  mixedSeeds: number
}

const FULL: Sizes = { seeds: 50, cap: 20_000, honestJobs: 10_000, mixedSeeds: 30 }
const QUICK: Sizes = { seeds: 3, cap: 2_000, honestJobs: 400, mixedSeeds: 2 }
const WORKERS = 8
const HONEST: SimWorkerSpec = {}
const FP16: SimWorkerSpec = { provider: 'fp16' }

/** Extra figures beside the line's value. */
type AuditLine = BenchLine & { [extra: string]: unknown }

const percentile = (sorted: readonly number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0

const sum = (results: readonly AuditSimResult[], f: (r: AuditSimResult) => number): number =>
  results.reduce((n, r) => n + f(r), 0)

async function seeded(seeds: number, run: (seed: number) => Promise<AuditSimResult>): Promise<AuditSimResult[]> {
  const results: AuditSimResult[] = []
  for (let seed = 1; seed <= seeds; seed++) results.push(await run(seed))
  return results
}

function withOne(behaviour: SimBehaviour, others: readonly SimWorkerSpec[]): SimWorkerSpec[] {
  return [{ behaviour }, ...others]
}

/** Jobs served by the dishonest worker until its first slash, over `sizes.seeds` seeds. */
async function detection(
  sim: AuditSim,
  bench: string,
  behaviour: SimBehaviour,
  goal: number,
  sizes: Sizes,
): Promise<AuditLine> {
  const workers = withOne(
    behaviour,
    Array.from({ length: WORKERS - 1 }, () => HONEST),
  )
  const results = await seeded(sizes.seeds, (seed) => sim.run({ seed, maxJobs: sizes.cap, workers }))
  const jobs = results.map((r) => r.dishonestJobs).sort((a, b) => a - b)
  const uncaught = results.filter((r) => !r.caught).length
  const worst = jobs.at(-1) ?? 0
  return {
    ...line({
      bench,
      impl: `${WORKERS} workers (1 ${behaviour.kind}), ${sizes.seeds} seeds, median of its jobs until slashed`,
      value: percentile(jobs, 50),
      unit: 'jobs',
      target: { value: goal, met: uncaught === 0 && worst <= goal, note: `worst of ${sizes.seeds} seeds ≤ ${goal}` },
      rounds: jobs,
    }),
    p90: percentile(jobs, 90),
    worst,
    uncaught,
    totalJobsMedian: percentile(
      results.map((r) => r.jobs).sort((a, b) => a - b),
      50,
    ),
    auditRuns: sum(results, (r) => r.auditRuns),
    quorumRuns: sum(results, (r) => r.quorumRuns),
    honestSlashes: sum(results, (r) => r.honestSlashes),
  }
}

/** One long honest run: false positives, and the audit overhead as it settles. */
async function honestRun(sim: AuditSim, sizes: Sizes): Promise<AuditLine[]> {
  const r = await sim.run({
    seed: 1,
    maxJobs: sizes.honestJobs,
    workers: Array.from({ length: WORKERS }, () => HONEST),
  })
  const bps = (share: number): number => Math.round(share * 10_000)
  return [
    {
      ...line({
        bench: 'audit-false-positive',
        impl: `${WORKERS} honest CPU workers, ${r.jobs} jobs: honest jobs per honest slash (≥ when none)`,
        value: r.jobs / Math.max(1, r.honestSlashes),
        unit: 'jobs',
        target: { value: 10_000, met: r.honestSlashes === 0 && r.jobs >= 10_000, note: '0 slashed over ≥ 10,000 jobs' },
        rounds: [r.jobs],
      }),
      honestSlashes: r.honestSlashes,
      disputes: r.disputes,
      auditRuns: r.auditRuns,
    },
    {
      ...line({
        bench: 'audit-overhead',
        impl: `(audit + quorum re-runs) ÷ all runs, second half of ${r.jobs} honest jobs`,
        value: bps(r.overheadLastHalf),
        unit: 'bps',
        target: { value: 500, met: r.overheadLastHalf <= 0.05, note: 'verification.md ≤ 5% at steady state' },
        rounds: [bps(r.overhead), bps(r.overheadLastHalf)],
      }),
      wholeRunBps: bps(r.overhead),
      withCanariesBps: bps(r.overheadWithCanariesLastHalf),
      withCanariesWholeRunBps: bps(r.overheadWithCanaries),
      auditRuns: r.auditRuns,
      quorumRuns: r.quorumRuns,
      canaryRuns: r.canaryRuns,
      anchor: "BOINC's adaptive replication: 500–1,000 bps",
    },
  ]
}

/** Cheat10 runs with two honest workers on an emulated fp16 provider. */
async function acrossProviders(sim: AuditSim, sizes: Sizes): Promise<AuditLine> {
  const others = [...Array.from({ length: WORKERS - 3 }, () => HONEST), FP16, FP16]
  const workers = withOne({ kind: 'cheat', rate: 0.1 }, others)
  const results = await seeded(sizes.mixedSeeds, (seed) => sim.run({ seed, maxJobs: sizes.cap, workers }))
  const honestJobs = sum(results, (r) => r.jobs - r.dishonestJobs)
  const honestSlashes = sum(results, (r) => r.honestSlashes)
  return {
    ...line({
      bench: 'audit-false-positive-mixed-ep',
      impl: `${WORKERS} workers (5 CPU, 2 fp16-emulated, 1 cheat10), ${sizes.mixedSeeds} seeds: honest jobs per honest slash`,
      value: honestJobs / Math.max(1, honestSlashes),
      unit: 'jobs',
      target: {
        value: 10_000,
        met: honestSlashes === 0 && honestJobs >= 10_000,
        note: '0 slashed over ≥ 10,000 honest jobs across providers',
      },
      rounds: results.map((r) => r.honestSlashes),
    }),
    honestSlashes,
    honestJobs,
    honestDisputes: sum(results, (r) => r.honestDisputes),
    auditRuns: sum(results, (r) => r.auditRuns),
    caught: results.filter((r) => r.caught).length,
  }
}

export async function auditBenches(_options: MeasureOptions, quick = false): Promise<BenchLine[]> {
  const sizes = quick ? QUICK : FULL
  const sim = await AuditSim.open()
  try {
    return [
      await detection(sim, 'audit-detect-cheat10', { kind: 'cheat', rate: 0.1 }, 100, sizes),
      await detection(sim, 'audit-detect-lazy', { kind: 'lazy' }, 20, sizes),
      ...(await honestRun(sim, sizes)),
      await acrossProviders(sim, sizes),
    ]
  } finally {
    await sim.close()
  }
}

if (import.meta.main === true) {
  const quick = process.argv.includes('--quick')
  for (const l of await auditBenches({}, quick)) process.stdout.write(`${JSON.stringify(l)}\n`)
}
