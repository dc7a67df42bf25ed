/**
 * The fault schedule: a pure function of (seed, nodes, chaos time, fault kinds). The same seed
 * gives the same schedule on every machine, so a failing run is replayed by its seed, and a
 * shrunk schedule (a subset of the faults) is replayed from its JSON (`--schedule`).
 *
 * Faults run in lanes: a devnet of n validators tolerates f = floor((n - 1)/3) faulty ones, so it gets
 * max(1, f) lanes, each of which runs one fault at a time on its own nodes (node i belongs to
 * lane i mod lanes). Within a lane the kinds are drawn from a shuffled bag, so every enabled kind
 * appears before any appears twice. Liveness is allowed to suffer while faults overlap (a
 * partition of two lanes' nodes can leave no quorum); safety never is.
 */
import { createRng, type Rng } from '../core/rng.ts'
import { FAULT_MAX_MS, FAULT_MIN_MS, LOSS_MAX_PERCENT, LOSS_MIN_PERCENT, SKEW_CHOICES_MS } from './constants.ts'
import { ChaosOptionError } from './errors.ts'

/**
 * - `kill`: SIGKILL, then a restart from the node's data dir after the fault's duration
 * - `pause`: SIGSTOP, SIGCONT after the duration
 * - `restart`: SIGTERM (a graceful stop), a start again after the duration
 * - `partition`: no packets between `side` and the other nodes (both ways), for the duration
 * - `loss`: `percent` % of the packets from `node` to `to` dropped (one way), for the duration
 * - `skew`: `node`'s clock runs `skewMs` off (libfaketime), for the duration
 * - `disk-full`: `node`'s data disk is filled to the last byte, for the duration
 */
export type FaultKind = 'kill' | 'pause' | 'restart' | 'partition' | 'loss' | 'skew' | 'disk-full'
export const FAULT_KINDS: readonly FaultKind[] = ['kill', 'pause', 'restart', 'partition', 'loss', 'skew', 'disk-full']

export interface Fault {
  /** Position in the drawn schedule; a shrunk schedule keeps the ids of the faults it kept. */
  id: number
  kind: FaultKind
  /** Start, ms after the chaos phase begins. */
  atMs: number
  durationMs: number
  /** The node the fault hits (for a partition: one node of the isolated side). */
  node: number
  /** partition: the isolated side (includes `node`). */
  side?: number[]
  /** loss: the receiving node. */
  to?: number
  /** loss: share of packets dropped, percent. */
  percent?: number
  /** skew: the clock offset, ms (negative: behind). */
  skewMs?: number
}

export interface ScheduleOptions {
  nodes: number
  /** Length of the chaos phase, ms: every fault starts and ends inside it. */
  chaosMs: number
  kinds: readonly FaultKind[]
}

export function parseFaultKinds(list: string): FaultKind[] {
  const kinds = list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
  for (const k of kinds) {
    if (!(FAULT_KINDS as readonly string[]).includes(k))
      throw new ChaosOptionError(`unknown fault ${JSON.stringify(k)}; use ${FAULT_KINDS.join(', ')}`)
  }
  return [...new Set(kinds)] as FaultKind[]
}

export function laneCount(nodes: number): number {
  return Math.max(1, Math.floor((nodes - 1) / 3))
}

function drawFault(
  rng: Rng,
  id: number,
  kind: FaultKind,
  node: number,
  nodes: number,
  atMs: number,
  durationMs: number,
): Fault {
  const fault: Fault = { id, kind, atMs, durationMs, node }
  const others = Array.from({ length: nodes }, (_, i) => i).filter((i) => i !== node)
  if (kind === 'partition') {
    // an isolated node, or (n >= 4, one time in three) a pair: a 2-2 split of four nodes has no quorum on either side
    const pair = nodes >= 4 && rng.chance(1 / 3)
    fault.side = pair ? [node, rng.pick(others)].sort((a, b) => a - b) : [node]
  } else if (kind === 'loss') {
    fault.to = rng.pick(others)
    fault.percent = rng.int(LOSS_MIN_PERCENT, LOSS_MAX_PERCENT)
  } else if (kind === 'skew') {
    fault.skewMs = rng.pick(SKEW_CHOICES_MS) * (rng.chance(0.5) ? 1 : -1)
  }
  return fault
}

/** Draws the schedule of `seed`; see the module comment. */
export function drawSchedule(seed: number, options: ScheduleOptions): Fault[] {
  const { nodes, chaosMs, kinds } = options
  if (nodes < 1) throw new ChaosOptionError('a schedule needs at least one node')
  const usable = nodes < 2 ? kinds.filter((k) => k !== 'partition' && k !== 'loss') : [...kinds]
  if (usable.length === 0 || chaosMs < FAULT_MIN_MS) return []
  const rng = createRng(seed)
  const lanes = laneCount(nodes)
  // a fault's length scales with the chaos phase so a short run still draws every kind
  const maxMs = Math.max(FAULT_MIN_MS, Math.min(FAULT_MAX_MS, Math.floor(chaosMs / (2 * usable.length))))
  const drawn: Omit<Fault, 'id'>[] = []
  for (let lane = 0; lane < lanes; lane++) {
    const laneRng = rng.fork(`lane${lane}`)
    const own = Array.from({ length: nodes }, (_, i) => i).filter((i) => i % lanes === lane)
    let bag: FaultKind[] = []
    let t = laneRng.int(0, 2_000)
    for (;;) {
      const durationMs = laneRng.int(FAULT_MIN_MS, maxMs)
      if (t + durationMs > chaosMs) break
      if (bag.length === 0) bag = laneRng.shuffle(usable)
      const kind = bag.pop() as FaultKind
      const node = laneRng.pick(own)
      drawn.push(drawFault(laneRng, 0, kind, node, nodes, t, durationMs))
      t += durationMs + laneRng.int(500, Math.min(4_000, Math.floor(maxMs / 2)))
    }
  }
  drawn.sort((a, b) => a.atMs - b.atMs || a.node - b.node)
  return drawn.map((f, id) => ({ ...f, id }))
}

/** One line per fault, as the runner prints a schedule. */
export function describeFault(f: Fault): string {
  const at = `t=${(f.atMs / 1000).toFixed(1)}s`
  const len = `for ${(f.durationMs / 1000).toFixed(1)}s`
  switch (f.kind) {
    case 'partition':
      return `#${f.id} ${at} partition [${(f.side ?? [f.node]).map((i) => `node${i}`).join(',')}] from the rest ${len}`
    case 'loss':
      return `#${f.id} ${at} loss ${f.percent ?? 100}% node${f.node} -> node${f.to ?? '?'} ${len}`
    case 'skew':
      return `#${f.id} ${at} skew node${f.node} by ${f.skewMs ?? 0}ms ${len}`
    default:
      return `#${f.id} ${at} ${f.kind} node${f.node} ${len}`
  }
}

/** Reads a schedule back from JSON (a `--schedule` file, the `schedule` field of a result). */
export function parseSchedule(value: unknown, nodes: number): Fault[] {
  const list = (value as { schedule?: unknown } | null)?.schedule ?? value
  if (!Array.isArray(list))
    throw new ChaosOptionError('a schedule is a JSON array of faults (or an object with `schedule`)')
  return list.map((raw, i) => {
    const f = raw as Partial<Fault>
    const int = (v: unknown, what: string, min: number, max: number): number => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
        throw new ChaosOptionError(`schedule fault ${i}: ${what} must be an integer from ${min} to ${max}`)
      return v
    }
    if (typeof f.kind !== 'string' || !(FAULT_KINDS as readonly string[]).includes(f.kind))
      throw new ChaosOptionError(`schedule fault ${i}: kind must be one of ${FAULT_KINDS.join(', ')}`)
    const fault: Fault = {
      id: int(f.id ?? i, 'id', 0, 1_000_000),
      kind: f.kind,
      atMs: int(f.atMs, 'atMs', 0, 86_400_000),
      durationMs: int(f.durationMs, 'durationMs', 1, 86_400_000),
      node: int(f.node, 'node', 0, nodes - 1),
    }
    if (f.side !== undefined) fault.side = (f.side as unknown[]).map((s) => int(s, 'side', 0, nodes - 1))
    if (f.to !== undefined) fault.to = int(f.to, 'to', 0, nodes - 1)
    if (f.percent !== undefined) fault.percent = int(f.percent, 'percent', 1, 100)
    if (f.skewMs !== undefined) fault.skewMs = int(f.skewMs, 'skewMs', -86_400_000, 86_400_000)
    return fault
  })
}

/** The end of the last fault, ms after the chaos phase begins. */
export function scheduleEndMs(schedule: readonly Fault[]): number {
  return schedule.reduce((end, f) => Math.max(end, f.atMs + f.durationMs), 0)
}
