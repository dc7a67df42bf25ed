/**
 * Which worker a gateway sends a job to (seed 000: "a fast node takes more jobs, a slow node
 * still gets work at its own pace").
 *
 * Among workers with a free slot, one is drawn at random with probability proportional to its
 * measured throughput (jobs per second from its calibration). So at low load, when every worker
 * has a free slot, a worker twice as fast gets twice the jobs and a slow honest worker still gets
 * its share, rather than the fastest free worker (usually the gateway's own) taking them all;
 * under load, slots fill and the free ones take the rest. A worker known to be much slower than
 * it claims (the gateway's own measurement) is weighted by what was measured.
 */

export interface WorkerOption {
  worker: string
  /** Advertised throughput, jobs per second. */
  jobsPerSecond: number
  /** Slots it can take now (advertised free slots less jobs sent since). */
  free: number
  /** Throughput the gateway measured itself (jobs per second per slot), when it has enough samples. */
  measuredJobsPerSecond?: number
}

/** The weight a worker is drawn with: its throughput, capped by what the gateway measured. */
export function drawWeight(option: WorkerOption): number {
  if (option.free <= 0 || !(option.jobsPerSecond > 0)) return 0
  const measured = option.measuredJobsPerSecond
  return measured !== undefined && measured > 0 ? Math.min(option.jobsPerSecond, measured) : option.jobsPerSecond
}

/**
 * Draws a worker in proportion to `drawWeight`; `random` returns a uniform number in [0, 1)
 * (the gateway's injected random source). Undefined when no worker has a free slot.
 */
export function drawWorker(options: readonly WorkerOption[], random: () => number): string | undefined {
  const weighted = options
    .map((o) => ({ worker: o.worker, weight: drawWeight(o) }))
    .filter((o) => o.weight > 0)
    .sort((a, b) => (a.worker < b.worker ? -1 : a.worker > b.worker ? 1 : 0))
  const total = weighted.reduce((sum, o) => sum + o.weight, 0)
  if (total <= 0) return undefined
  let point = random() * total
  for (const o of weighted) {
    point -= o.weight
    if (point < 0) return o.worker
  }
  return weighted[weighted.length - 1]?.worker
}
