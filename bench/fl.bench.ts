/**
 * Robust federated aggregation at scale (src/fl/aggregate.ts): 100 updates × 1,000,000 float32
 * parameters (400 MB of updates), f = 10 of them sign-flipped ×4 against 90 honest updates spread
 * around a common direction. One line per rule, milliseconds per aggregation (best repetition, all
 * kept in `rounds`), each against the floor measured in the same run: a plain loop that reads
 * every value once into one accumulator. Median and Krum carry the target "within 10× FedAvg"
 * with their ratio to FedAvg (`fedavgRatio`); note that Krum's pairwise distances are n/2 = 50
 * times FedAvg's arithmetic, so its target asks each of its operations to cost a fifth of one of
 * FedAvg's.
 *
 *   node bench/run.ts --only fl-aggregate        (1–2 minutes, 0.5 GB; quick mode: 20 × 20,000)
 */
import { performance } from 'node:perf_hooks'
import { AGGREGATION_RULES, aggregate, distanceKernel, type AggregationRule } from '../src/fl/aggregate.ts'
import { line, type BenchLine } from './harness.ts'

export const FL_BENCH_NAMES = ['fl-aggregate-floor', ...AGGREGATION_RULES.map((r) => `fl-aggregate-${r}`)]

/** The rules held to "within 10× FedAvg". */
const TARGETED: readonly AggregationRule[] = ['median', 'krum']
const TARGET_RATIO = 10

/** Honest updates: a shared direction plus noise; attackers send −4 × an honest-looking update. */
function makeUpdates(n: number, d: number, attackers: number): Float32Array[] {
  let state = 0x2545f491
  const uniform = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    return state / 4294967296 - 0.5
  }
  const direction = Float32Array.from({ length: d }, () => uniform() * 0.02)
  return Array.from({ length: n }, (_, i) => {
    const sign = i >= n - attackers ? -4 : 1
    const u = new Float32Array(d)
    for (let j = 0; j < d; j++) u[j] = sign * (direction[j]! + uniform() * 0.01)
    return u
  })
}

interface Timing {
  wallMs: number[]
  cpuMs: number[]
}

/** Wall-clock and CPU (user + system) milliseconds of one call. */
function timeOnce(op: () => void, into: Timing): void {
  const cpu = process.cpuUsage()
  const start = performance.now()
  op()
  into.wallMs.push(performance.now() - start)
  const used = process.cpuUsage(cpu)
  into.cpuMs.push((used.user + used.system) / 1000)
}

export function flBenches(options: { rounds?: number }, quick = false): BenchLine[] {
  const n = quick ? 20 : 100
  const d = quick ? 20_000 : 1_000_000
  const f = quick ? 2 : 10
  const reps = quick ? 1 : Math.min(options.rounds ?? 5, 3)
  const shape = `${n} updates × ${d.toLocaleString('en')} float32, f = ${f}`
  let sink = 0
  const floorOp = (updates: Float32Array[]): void => {
    let acc = 0
    for (const u of updates) for (let j = 0; j < u.length; j++) acc += u[j]!
    sink += acc
  }
  const ruleOp = (updates: Float32Array[], rule: AggregationRule, byzantine: number): void => {
    sink += aggregate(updates, { rule, f: byzantine }).result[0]!
  }
  // Compile every path on a small input first, so no figure includes the JIT.
  const small = makeUpdates(20, 20_000, 2)
  floorOp(small)
  for (const rule of AGGREGATION_RULES) ruleOp(small, rule, 2)

  const updates = makeUpdates(n, d, f)
  const floor: Timing = { wallMs: [], cpuMs: [] }
  const timings = new Map(AGGREGATION_RULES.map((rule) => [rule, { wallMs: [], cpuMs: [] } as Timing]))
  // Repetitions go round the rules in turn, so a burst of load on a shared machine hits all alike.
  for (let rep = 0; rep < reps; rep++) {
    timeOnce(() => floorOp(updates), floor)
    for (const rule of AGGREGATION_RULES) timeOnce(() => ruleOp(updates, rule, f), timings.get(rule)!)
  }
  if (Number.isNaN(sink)) throw new Error('the aggregates are not finite')

  const floorImpl = 'plain loop: every value added into one accumulator'
  const best = (t: Timing): number => Math.min(...t.wallMs)
  const bestCpu = (t: Timing): number => Math.round(Math.min(...t.cpuMs))
  const out: BenchLine[] = [
    {
      ...line({
        bench: 'fl-aggregate-floor',
        impl: `${floorImpl}, ${shape}`,
        value: best(floor),
        unit: 'ms',
        rounds: floor.wallMs,
      }),
      cpuMs: bestCpu(floor),
    } as BenchLine,
  ]
  const fedavg = best(timings.get('fedavg')!)
  for (const [rule, t] of timings) {
    const fedavgRatio = Number((best(t) / fedavg).toPrecision(3))
    const result = line({
      bench: `fl-aggregate-${rule}`,
      impl: `aggregate({ rule: '${rule}' }), ${shape} (conditions and finiteness checked${rule.includes('krum') || rule === 'bulyan' ? `; distances: ${distanceKernel()}` : ''})`,
      value: best(t),
      unit: 'ms',
      baseline: { impl: floorImpl, value: best(floor) },
      rounds: t.wallMs,
      ...(TARGETED.includes(rule)
        ? {
            target: {
              value: TARGET_RATIO,
              met: fedavgRatio <= TARGET_RATIO,
              note: `within ${TARGET_RATIO}× FedAvg (${fedavgRatio}× here)`,
            },
          }
        : {}),
    })
    out.push({ ...result, fedavgRatio, cpuMs: bestCpu(t) } as BenchLine)
  }
  return out
}
