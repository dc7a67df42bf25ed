/**
 * Many seeded audit simulations at once, summarised: what `donghae sim audit` and the audit
 * benchmark print. Seeds run on worker threads (one ONNX Runtime session each), so a long
 * experiment uses every core; each run is still a pure function of its seed.
 *
 * A run has 8 workers: the one under test (unless `honest`) and 7 honest ones. The worker under
 * test reports a calibrated throughput 10× the others', so the gateway's draw sends it about 59 %
 * of the jobs (a long experiment spends its time on the behaviour being measured), and the
 * gateway sends 4 jobs per block, so the worker under test serves 2-3 jobs per block, as in a
 * network where it is one of many.
 */
import { Worker } from 'node:worker_threads'
import { availableParallelism } from 'node:os'
import { InvalidInputError } from '../../core/errors.ts'
import type { AuditSimResult, SimBehaviour, SimWorkerSpec } from './audit-sim.ts'

export const SIM_BEHAVIOURS = ['honest', 'lazy', 'cheat1', 'cheat10', 'cheat50', 'cheat100'] as const
export type SimBehaviourName = (typeof SIM_BEHAVIOURS)[number]

export interface AuditRunsOptions {
  behaviour: SimBehaviourName
  /** First seed; run i uses seed + i. */
  seed: number
  count: number
  /** Client jobs after which a run stops if nothing was slashed. @default 60 000 (honest: 10 000) */
  maxJobs?: number
  /** Worker threads. @default the machine's available parallelism */
  parallel?: number
  /** Called after each finished run. */
  onRun?(result: AuditSimResult, done: number): void
}

export interface AuditRunsSummary {
  behaviour: SimBehaviourName
  runs: number
  /** Jobs the worker under test served until its first slash: median, 95th percentile, worst (caught runs). */
  medianJobsToSlash: number | null
  p95JobsToSlash: number | null
  worstJobsToSlash: number | null
  /** Runs that ended without the worker under test slashed. */
  uncaught: number
  honestSlashes: number
  /** Client jobs served over all runs. */
  jobs: number
  /**
   * Extra compute (audits, quorums, canaries) ÷ all compute, mean over the runs: over the second
   * half of a run that reached it, over the whole of one that ended at a slash (a young worker
   * is audited on every job, so such runs show the start-up cost, not the steady state).
   */
  auditComputeShare: number
  /** Largest over the runs of (earnings - slashes) ÷ what honest work earned for the same jobs. */
  cheaterNetOverHonest: number | null
}

export function behaviourOf(name: SimBehaviourName): SimBehaviour | undefined {
  if (name === 'honest') return undefined
  if (name === 'lazy') return { kind: 'lazy' }
  const rate = Number(name.slice('cheat'.length)) / 100
  return { kind: 'cheat', rate }
}

/** The workers of a run with `name` under test (first) and 7 honest ones. */
export function runWorkers(name: SimBehaviourName): SimWorkerSpec[] {
  const honest: SimWorkerSpec[] = Array.from({ length: 7 }, () => ({ jobsPerSecond: 10 }))
  const behaviour = behaviourOf(name)
  return [
    { jobsPerSecond: behaviour === undefined ? 10 : 100, ...(behaviour === undefined ? {} : { behaviour }) },
    ...honest,
  ]
}

const percentile = (sorted: readonly number[], p: number): number | null =>
  sorted.length === 0 ? null : (sorted[Math.min(sorted.length - 1, Math.ceil((sorted.length * p) / 100) - 1)] ?? null)

export function summarise(behaviour: SimBehaviourName, results: readonly AuditSimResult[]): AuditRunsSummary {
  const caught = results
    .filter((r) => r.caught)
    .map((r) => r.dishonestJobs)
    .sort((a, b) => a - b)
  const honest = behaviour === 'honest'
  return {
    behaviour,
    runs: results.length,
    medianJobsToSlash: honest ? null : percentile(caught, 50),
    p95JobsToSlash: honest ? null : percentile(caught, 95),
    worstJobsToSlash: honest ? null : (caught.at(-1) ?? null),
    uncaught: honest ? 0 : results.filter((r) => !r.caught).length,
    honestSlashes: results.reduce((n, r) => n + r.honestSlashes, 0),
    jobs: results.reduce((n, r) => n + r.jobs, 0),
    auditComputeShare: results.reduce((s, r) => s + r.overheadSteady, 0) / Math.max(1, results.length),
    cheaterNetOverHonest: honest ? null : Math.max(...results.map((r) => r.netOverHonest)),
  }
}

/** Runs `count` seeds on worker threads and summarises them. */
export async function runAuditSims(options: AuditRunsOptions): Promise<AuditRunsSummary> {
  if (!(SIM_BEHAVIOURS as readonly string[]).includes(options.behaviour))
    throw new InvalidInputError(`behaviour must be one of ${SIM_BEHAVIOURS.join(', ')}`)
  const maxJobs = options.maxJobs ?? (options.behaviour === 'honest' ? 10_000 : 60_000)
  const threads = Math.max(1, Math.min(options.parallel ?? availableParallelism(), options.count))
  const seeds = Array.from({ length: options.count }, (_, i) => options.seed + i)
  const results: AuditSimResult[] = []
  const workers = Array.from({ length: threads }, () => new Worker(new URL('./runs-worker.ts', import.meta.url)))
  try {
    await Promise.all(
      workers.map(async (worker) => {
        for (let seed = seeds.shift(); seed !== undefined; seed = seeds.shift()) {
          const result = await ask(worker, { seed, behaviour: options.behaviour, maxJobs })
          results.push(result)
          options.onRun?.(result, results.length)
        }
      }),
    )
  } finally {
    await Promise.all(workers.map((w) => w.terminate()))
  }
  results.sort((a, b) => a.seed - b.seed)
  return summarise(options.behaviour, results)
}

function ask(
  worker: Worker,
  job: { seed: number; behaviour: SimBehaviourName; maxJobs: number },
): Promise<AuditSimResult> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: { result?: AuditSimResult; error?: string }): void => {
      worker.off('error', onError)
      if (message.error !== undefined)
        reject(new InvalidInputError(`simulation seed ${job.seed} failed: ${message.error}`))
      else resolve(message.result as AuditSimResult)
    }
    const onError = (err: Error): void => {
      worker.off('message', onMessage)
      reject(err)
    }
    worker.once('message', onMessage)
    worker.once('error', onError)
    worker.postMessage(job)
  })
}
