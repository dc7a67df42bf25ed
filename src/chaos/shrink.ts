/**
 * Shrinking a failing schedule: delta debugging (Zeller's ddmin) over the list of faults, with a
 * budget of re-runs. The empty schedule is tried first (a build that fails with no fault at all
 * says so at once); then halves, then complements, at finer granularity until the budget is
 * spent or no single fault can be removed. A re-run is a fresh devnet, stops at its first
 * violation, and replays its subset shifted to start at once, so each is short. The system is
 * not deterministic, so a subset that passes once may fail another time: the result is the
 * smallest schedule that was seen to fail, not a proof that a smaller one cannot.
 */
import type { Fault } from './schedule.ts'

export interface ShrinkOptions {
  /** Runs `schedule`; resolves true when it failed (some violation). */
  fails: (schedule: Fault[]) => Promise<boolean>
  /** Re-runs allowed. */
  maxRuns: number
  onTry?: (schedule: readonly Fault[], failed: boolean) => void
}

export interface ShrinkResult {
  schedule: Fault[]
  runs: number
  /** True when ddmin finished (1-minimal as far as the runs saw), false when the budget ran out. */
  complete: boolean
}

/** The subset moved so that its first fault starts at 0 (ids kept). */
export function rebase(schedule: readonly Fault[]): Fault[] {
  const first = Math.min(...schedule.map((f) => f.atMs))
  return schedule.map((f) => ({ ...f, atMs: f.atMs - first }))
}

function chunks<T>(items: readonly T[], n: number): T[][] {
  const out: T[][] = []
  const size = Math.ceil(items.length / n)
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

export async function shrinkSchedule(schedule: readonly Fault[], options: ShrinkOptions): Promise<ShrinkResult> {
  let runs = 0
  const attempt = async (subset: Fault[]): Promise<boolean> => {
    runs++
    const failed = await options.fails(subset.length === 0 ? [] : rebase(subset))
    options.onTry?.(subset, failed)
    return failed
  }
  if (options.maxRuns <= 0) return { schedule: [...schedule], runs, complete: false }
  if (await attempt([])) return { schedule: [], runs, complete: true }
  let current = [...schedule]
  let n = 2
  while (current.length >= 2) {
    if (runs >= options.maxRuns) return { schedule: current, runs, complete: false }
    const parts = chunks(current, n)
    let reduced = false
    for (const part of parts) {
      if (runs >= options.maxRuns) break
      if (await attempt(part)) {
        current = part
        n = 2
        reduced = true
        break
      }
    }
    if (!reduced && n > 2) {
      for (const part of parts) {
        if (runs >= options.maxRuns) break
        const complement = current.filter((f) => !part.includes(f))
        if (await attempt(complement)) {
          current = complement
          n = Math.max(n - 1, 2)
          reduced = true
          break
        }
      }
    }
    if (reduced) continue
    if (runs >= options.maxRuns) return { schedule: current, runs, complete: false }
    if (n >= current.length) break
    n = Math.min(current.length, 2 * n)
  }
  return { schedule: current, runs, complete: true }
}
