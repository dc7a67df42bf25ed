/**
 * The audit system's figures (docs/verification.md, "What is measured"), from seeded runs of the
 * market with its production components (src/inference/sim/runs.ts: the real gateway, workers,
 * settler, auditor and chain module, real signatures and ONNX Runtime on digits-mlp), on worker
 * threads. 8 workers: the one under test and 7 honest ones.
 *  - audit-detect-cheat10: a worker wrong on 10 % of its jobs: its jobs until its first slash,
 *    median (value), p95 and worst; goal ≤ 100 in ≥ 95 % of seeds, median ≤ 20.
 *  - audit-detect-lazy: a worker that never runs the model; goal ≤ 20 in every seed.
 *  - audit-cheating-pays-cheat1|cheat10|cheat50|cheat100: the largest over the seeds of
 *    (earnings − slashes) ÷ honest earnings for the same jobs; goal < 1 in every seed (the run goes
 *    on until the cheater is slashed, up to its job cap).
 *  - audit-false-positive: honest runs: honest jobs per honest slash; goal 0 slashed over ≥ 100,000.
 *  - audit-overhead: in those runs, audit, quorum and canary runs ÷ all runs over the second half
 *    of each run, in basis points; goal ≤ 500 (BOINC's adaptive replication runs at 500–1,000).
 * `--quick` runs a handful of seeds (the bench smoke test); the full sizes take tens of minutes.
 */
import { runAuditSims, type AuditRunsSummary, type SimBehaviourName } from '../src/inference/sim/runs.ts'
import { line, type BenchLine, type MeasureOptions } from './harness.ts'

export const AUDIT_BENCH_NAMES = [
  'audit-detect-cheat10',
  'audit-detect-lazy',
  'audit-cheating-pays',
  'audit-false-positive',
  'audit-overhead',
]

interface Sizes {
  /** Seeds per dishonest behaviour. */
  seeds: number
  /** Honest runs, and the jobs of each. */
  honestRuns: number
  honestJobs: number
}

const FULL: Sizes = { seeds: 200, honestRuns: 10, honestJobs: 10_000 }
const QUICK: Sizes = { seeds: 2, honestRuns: 1, honestJobs: 300 }

/** Extra figures beside the line's value. */
type AuditLine = BenchLine & { [extra: string]: unknown }

function detection(bench: string, s: AuditRunsSummary, goal: number, seeds: number): AuditLine {
  const p95 = s.p95JobsToSlash ?? Infinity
  return {
    ...line({
      bench,
      impl: `8 workers (1 ${s.behaviour}), ${s.runs} seeds: median of its jobs until slashed`,
      value: s.medianJobsToSlash ?? 0,
      unit: 'jobs',
      target: {
        value: goal,
        met:
          s.uncaught === 0 &&
          (bench === 'audit-detect-lazy'
            ? (s.worstJobsToSlash ?? Infinity) <= goal
            : p95 <= 100 && (s.medianJobsToSlash ?? Infinity) <= 20),
        note:
          bench === 'audit-detect-lazy' ? `worst of ${seeds} seeds ≤ ${goal}` : '≤ 100 in ≥ 95 % of seeds, median ≤ 20',
      },
      rounds: [s.medianJobsToSlash ?? 0, s.p95JobsToSlash ?? 0, s.worstJobsToSlash ?? 0],
    }),
    p95: s.p95JobsToSlash,
    worst: s.worstJobsToSlash,
    uncaught: s.uncaught,
    honestSlashes: s.honestSlashes,
    cheaterNetOverHonest: s.cheaterNetOverHonest,
  }
}

export async function auditBenches(_options: MeasureOptions, quick = false): Promise<BenchLine[]> {
  const sizes = quick ? QUICK : FULL
  const run = (behaviour: SimBehaviourName, count: number, maxJobs?: number): Promise<AuditRunsSummary> =>
    runAuditSims({ behaviour, seed: 1, count, ...(maxJobs === undefined ? {} : { maxJobs }) })
  const cheat10 = await run('cheat10', sizes.seeds)
  const lazy = await run('lazy', sizes.seeds)
  const pays: AuditRunsSummary[] = [
    await run('cheat1', sizes.seeds),
    cheat10,
    await run('cheat50', sizes.seeds),
    await run('cheat100', sizes.seeds),
  ]
  const honest = await run('honest', sizes.honestRuns, sizes.honestJobs)
  const worstNet = Math.max(...pays.map((s) => s.cheaterNetOverHonest ?? 1))
  return [
    detection('audit-detect-cheat10', cheat10, 100, sizes.seeds),
    detection('audit-detect-lazy', lazy, 20, sizes.seeds),
    {
      ...line({
        bench: 'audit-cheating-pays',
        impl: `cheat1, cheat10, cheat50, cheat100 × ${sizes.seeds} seeds: largest (earnings − slashes) ÷ honest earnings`,
        value: Math.round(worstNet * 1_000) / 1_000,
        unit: 'ratio',
        target: { value: 1, met: worstNet < 1 && pays.every((s) => s.uncaught === 0), note: 'below 1 in every seed' },
        rounds: pays.map((s) => Math.round((s.cheaterNetOverHonest ?? 1) * 1_000) / 1_000),
      }),
      byBehaviour: Object.fromEntries(
        pays.map((s) => [
          s.behaviour,
          { net: s.cheaterNetOverHonest, uncaught: s.uncaught, median: s.medianJobsToSlash, worst: s.worstJobsToSlash },
        ]),
      ),
    },
    {
      ...line({
        bench: 'audit-false-positive',
        impl: `${honest.runs} runs of 8 honest CPU workers, ${honest.jobs} jobs: honest jobs per honest slash (≥ when none)`,
        value: honest.jobs / Math.max(1, honest.honestSlashes),
        unit: 'jobs',
        target: {
          value: 100_000,
          met: honest.honestSlashes === 0 && honest.jobs >= 100_000,
          note: '0 slashed over ≥ 100,000 jobs',
        },
        rounds: [honest.jobs],
      }),
      honestSlashes: honest.honestSlashes + pays.reduce((n, s) => n + s.honestSlashes, 0) + lazy.honestSlashes,
    },
    {
      ...line({
        bench: 'audit-overhead',
        impl: '(audit + quorum + canary runs) ÷ all runs, second half of each honest run',
        value: Math.round(honest.auditComputeShare * 10_000),
        unit: 'bps',
        target: { value: 500, met: honest.auditComputeShare <= 0.05, note: '≤ 5 % at steady state' },
        rounds: [Math.round(honest.auditComputeShare * 10_000)],
      }),
      anchor: "BOINC's adaptive replication: 500–1,000 bps",
    },
  ]
}

if (import.meta.main === true) {
  const quick = process.argv.includes('--quick')
  for (const l of await auditBenches({}, quick)) process.stdout.write(`${JSON.stringify(l)}\n`)
}
