import { randomInt } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Command } from 'commander'
import {
  FAULT_KINDS,
  LOAD_KINDS,
  describeFault,
  drawSchedule,
  parseFaultKinds,
  parseSchedule,
  probeCapabilities,
  runChaos,
  shrinkSchedule,
  unavailableReason,
  type Fault,
  type FaultKind,
  type LoadKind,
  type RunOptions,
  type RunResult,
} from '../../chaos/index.ts'
import { DEFAULT_SHRINK_RUNS, SHRINK_RUN_MS } from '../../chaos/constants.ts'
import type { CliIo } from '../context.ts'
import { CliError } from '../errors.ts'

interface ChaosOptions {
  nodes: string
  minutes: string
  seed?: string
  faults: string
  load: string
  rate: string
  basePort: string
  dir?: string
  schedule?: string
  shrinkRuns: string
  livenessBound: string
  settleBound: string
  warmup: string
  failFast?: boolean
  json?: boolean
}

/** Violations listed one by one in the JSON line (the counts cover all of them). */
const MAX_DETAILS = 50

function integer(value: string, flag: string, min: number, max: number): number {
  const n = /^[0-9]+$/.test(value) ? Number(value) : Number.NaN
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new CliError(`${flag} must be an integer from ${min} to ${max}`)
  return n
}

function positive(value: string, flag: string, max: number): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0 || n > max)
    throw new CliError(`${flag} must be a number above 0 and at most ${max}`)
  return n
}

function parseLoad(value: string): LoadKind[] {
  const kinds = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
  for (const k of kinds)
    if (!(LOAD_KINDS as readonly string[]).includes(k))
      throw new CliError(`--load: unknown load ${JSON.stringify(k)}; use ${LOAD_KINDS.join(', ')}`)
  if (kinds.length === 0) throw new CliError(`--load needs at least one of ${LOAD_KINDS.join(', ')}`)
  return kinds as LoadKind[]
}

function summary(result: RunResult): string {
  const v = Object.entries(result.violations)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
  return v.length === 0 ? 'no violations' : `violations: ${v.join(', ')}`
}

export function registerChaos(program: Command, io: CliIo): void {
  program
    .command('chaos')
    .description(
      'run a devnet of real node processes under a seeded schedule of faults and load, checking safety invariants',
    )
    .option('--nodes <n>', 'validator processes (4 tolerates one faulty, 7 two)', '4')
    .option('--minutes <m>', 'length of the chaos phase (faults are drawn inside it); decimals allowed', '2')
    .option('--seed <s>', 'schedule seed: the same seed draws the same schedule (default: random, printed)')
    .option(
      '--faults <list>',
      `fault kinds to draw from, comma-separated: ${FAULT_KINDS.join(',')}`,
      FAULT_KINDS.join(','),
    )
    .option('--load <list>', `client load during the run: ${LOAD_KINDS.join(',')}`, LOAD_KINDS.join(','))
    .option('--rate <r>', 'client requests per second, all kinds together', '2')
    .option('--base-port <port>', 'node i serves its API on base-port + i and p2p on base-port + 100 + 2i', '40000')
    .option('--dir <dir>', 'where the nodes\u2019 homes and logs go (default: a new temp dir, printed)')
    .option(
      '--schedule <file>',
      'replay this schedule (JSON: a list of faults, or a result with `schedule`) instead of drawing one',
    )
    .option(
      '--shrink-runs <n>',
      'on failure, re-runs the shrinker may spend (0: do not shrink)',
      String(DEFAULT_SHRINK_RUNS),
    )
    .option('--liveness-bound <s>', 'seconds the chain may take to commit again after the last fault', '60')
    .option('--settle-bound <s>', 'seconds every receipt may take to settle after the load stops', '60')
    .option('--warmup <s>', 'seconds of load before the first fault', '10')
    .option('--fail-fast', 'end the run at the first violation')
    .option('--json', 'progress on stderr; the last line of stdout is one JSON object with the result')
    .addHelpText(
      'after',
      `
Faults: kill (SIGKILL, restart from the data dir), pause (SIGSTOP/SIGCONT), restart (SIGTERM,
start again), partition (nft drops between some nodes and the rest), loss (one-way packet loss
between two nodes), skew (the node's clock offset through libfaketime), disk-full (the node's
data tmpfs filled). partition and loss need root (a network namespace per node on a bridge);
disk-full needs root (mount); skew needs libfaketime (apt-get install faketime). A kind that
cannot run here is skipped with a line saying why.

Invariants, counted per kind: agreement (no two nodes commit different blocks at one height),
double-sign (no validator signs two votes for one height, round and type), committed-tx (a
transfer a client saw committed stays committed on every node), supply (changes only by minting
and slashing), receipts (every receipt a client got settles), liveness (the chain commits again
within --liveness-bound after the faults), node-crash (no node exits on its own).

Exit status 0 when no invariant was violated, 1 otherwise: the seed, the smallest failing
schedule the shrinker found (replay it with --schedule) and the logs dir are printed.

Examples:
  $ donghae chaos --nodes 4 --minutes 2 --seed 7 --json
  $ donghae chaos --nodes 7 --minutes 30 --faults kill,pause,partition --load tx,infer
  $ donghae chaos --nodes 4 --schedule failing.json --dir /tmp/replay`,
    )
    .action(async (options: ChaosOptions) => {
      const nodes = integer(options.nodes, '--nodes', 1, 16)
      const chaosMs = Math.round(positive(options.minutes, '--minutes', 24 * 60) * 60_000)
      const seed = options.seed === undefined ? randomInt(0, 2 ** 31) : integer(options.seed, '--seed', 0, 2 ** 32 - 1)
      const basePort = integer(options.basePort, '--base-port', 1024, 65_000 - 100 - 2 * nodes)
      const load = parseLoad(options.load)
      const rate = positive(options.rate, '--rate', 100)
      const shrinkRuns = integer(options.shrinkRuns, '--shrink-runs', 0, 100)
      const livenessBoundMs = positive(options.livenessBound, '--liveness-bound', 3_600) * 1_000
      const settleBoundMs = positive(options.settleBound, '--settle-bound', 3_600) * 1_000
      const warmupMs = positive(options.warmup, '--warmup', 3_600) * 1_000
      let requested: FaultKind[]
      try {
        requested = parseFaultKinds(options.faults)
      } catch (err) {
        throw new CliError(`--faults: ${(err as Error).message}`)
      }
      const progress = (line: string): void => void io.stderr.write(`${line}\n`)
      const caps = await probeCapabilities()
      const kinds = requested.filter((k) => {
        const why = unavailableReason(k, caps)
        if (why !== undefined) progress(`chaos: fault ${k} unavailable here, skipped: ${why}`)
        return why === undefined
      })
      let schedule: Fault[]
      if (options.schedule !== undefined) {
        try {
          schedule = parseSchedule(JSON.parse(await readFile(options.schedule, 'utf8')), nodes)
        } catch (err) {
          throw new CliError(`--schedule ${options.schedule}: ${(err as Error).message}`)
        }
        const skipped = schedule.filter((f) => !kinds.includes(f.kind))
        for (const f of skipped)
          progress(`chaos: ${describeFault(f)} skipped: ${f.kind} is unavailable or not in --faults`)
        schedule = schedule.filter((f) => kinds.includes(f.kind))
      } else schedule = drawSchedule(seed, { nodes, chaosMs, kinds })
      progress(`chaos: seed ${seed}; ${schedule.length} faults (${kinds.join(',') || 'none'})`)
      for (const f of schedule) progress(`  ${describeFault(f)}`)
      const base: Omit<RunOptions, 'schedule' | 'chaosMs' | 'dir'> = {
        seed,
        nodes,
        kinds,
        load,
        rate,
        caps,
        basePort,
        livenessBoundMs,
        settleBoundMs,
        warmupMs,
        failFast: options.failFast === true,
        progress,
      }
      const abort = new AbortController()
      const onSignal = (): void => {
        progress('chaos: interrupted; stopping the nodes')
        abort.abort()
      }
      process.once('SIGINT', onSignal)
      process.once('SIGTERM', onSignal)
      try {
        await run(base, schedule, chaosMs, options, abort.signal, shrinkRuns, progress, io)
      } finally {
        process.off('SIGINT', onSignal)
        process.off('SIGTERM', onSignal)
      }
    })
}

/** The run, the shrink when it failed, and the report. */
async function run(
  base: Omit<RunOptions, 'schedule' | 'chaosMs' | 'dir'>,
  schedule: Fault[],
  chaosMs: number,
  options: ChaosOptions,
  signal: AbortSignal,
  shrinkRuns: number,
  progress: (line: string) => void,
  io: CliIo,
): Promise<void> {
  const { seed, nodes, kinds } = base
  const result = await runChaos({
    ...base,
    schedule,
    chaosMs,
    signal,
    ...(options.dir === undefined ? {} : { dir: options.dir }),
  })
  progress(`chaos: ${summary(result)}; logs in ${result.dir}`)
  for (const v of result.details) progress(`  ${v.invariant}: ${v.detail}`)
  for (const e of result.errors) progress(`  error: ${e}`)
  let shrunk: { schedule: Fault[]; runs: number; complete: boolean } | undefined
  if (!result.ok && shrinkRuns > 0 && !signal.aborted) {
    progress(`chaos: FAILED with seed ${seed}; shrinking the schedule (at most ${shrinkRuns} re-runs)`)
    let attempt = 0
    shrunk = await shrinkSchedule(schedule, {
      maxRuns: shrinkRuns,
      fails: async (subset) => {
        attempt++
        const r = await runChaos({
          ...base,
          schedule: subset,
          chaosMs: Math.min(SHRINK_RUN_MS, Math.max(1_000, ...subset.map((f) => f.atMs + f.durationMs))),
          dir: join(result.dir, `shrink-${attempt}`),
          failFast: true,
          warmupMs: 5_000,
          progress: () => {},
          signal,
        })
        return !r.ok
      },
      onTry: (subset, failed) =>
        progress(`chaos: shrink try: ${subset.length} faults \u2192 ${failed ? 'fails' : 'passes'}`),
    })
    progress(
      `chaos: smallest failing schedule (${shrunk.schedule.length} faults, ${shrunk.runs} re-runs${shrunk.complete ? '' : ', budget spent'}):`,
    )
    if (shrunk.schedule.length === 0) progress('  (no faults: the run fails without any fault)')
    for (const f of shrunk.schedule) progress(`  ${describeFault(f)}`)
    const file = join(result.dir, 'shrunk-schedule.json')
    await writeFile(file, `${JSON.stringify(shrunk.schedule, null, 2)}\n`)
    progress(`chaos: replay it: donghae chaos --nodes ${nodes} --seed ${seed} --schedule ${file}`)
  }
  if (!result.ok) progress(`chaos: FAILED \u2014 seed ${seed}; node logs left in ${result.dir}`)
  const out = {
    seed,
    nodes,
    minutes: chaosMs / 60_000,
    faults: kinds,
    faultsApplied: result.faultsApplied,
    faultsFailed: result.faultsFailed,
    violations: result.violations,
    ok: result.ok,
    load: result.load,
    heights: result.heights,
    recoveryMs: result.recoveryMs,
    logs: result.dir,
    schedule,
    ...(shrunk === undefined ? {} : { shrunk: shrunk.schedule, shrinkRuns: shrunk.runs }),
    // the first MAX_DETAILS violations (all are counted in `violations`)
    details: result.details.slice(0, MAX_DETAILS),
    errors: result.errors,
  }
  if (options.json === true) io.stdout.write(`${JSON.stringify(out)}\n`)
  else {
    io.stdout.write(`chaos seed ${seed}: ${summary(result)}\n`)
    io.stdout.write(`faults applied: ${JSON.stringify(result.faultsApplied)}\n`)
  }
  if (!result.ok) {
    const total = Object.values(result.violations).reduce((a, b) => a + b, 0)
    throw new CliError(
      total > 0
        ? `chaos run failed: ${total} violations (seed ${seed}); logs in ${result.dir}`
        : `chaos run did not complete (seed ${seed}): ${result.errors[0] ?? 'interrupted'}; logs in ${result.dir}`,
    )
  }
}
