import { randomInt } from 'node:crypto'
import type { Command } from 'commander'
import {
  BYZANTINE_BEHAVIOURS,
  checkScheduleOptions,
  runSchedules,
  type ByzantineBehaviour,
  type Summary,
} from '../../chain/sim/index.ts'
import { SIM_BEHAVIOURS, runAuditSims, type SimBehaviourName } from '../../inference/sim/runs.ts'
import type { CliIo } from '../context.ts'
import { createContext } from '../context.ts'
import { CliError } from '../errors.ts'

interface SimConsensusOptions {
  nodes: string
  byzantine: string
  seed?: string
  count: string
  behaviours?: string
  json?: boolean
  trace?: boolean
}

const PROGRESS_EVERY_MS = 5000

function integer(value: string, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = /^[0-9]+$/.test(value) ? Number(value) : Number.NaN
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new CliError(`${flag} must be an integer from ${min} to ${max}`)
  return n
}

function parseBehaviours(value: string | undefined): ByzantineBehaviour[] | undefined {
  if (value === undefined) return undefined
  const list = value.split(',').map((s) => s.trim())
  for (const b of list) {
    if (!(BYZANTINE_BEHAVIOURS as readonly string[]).includes(b)) {
      throw new CliError(`--behaviours: unknown behaviour ${JSON.stringify(b)}; use ${BYZANTINE_BEHAVIOURS.join(', ')}`)
    }
  }
  return list as ByzantineBehaviour[]
}

export function registerSim(program: Command, io: CliIo): void {
  const sim = program.command('sim').description('simulations of Donghae components (nothing leaves this process)')
  registerSimAudit(sim, io)
  sim
    .command('consensus')
    .description(
      'run seeded adversarial schedules against the BFT consensus engine and check safety, validity, liveness',
    )
    .option('--nodes <n>', 'validators (equal stake unless a schedule draws otherwise)', '4')
    .option('--byzantine <f>', 'Byzantine validators; their power must stay below 1/3', '1')
    .option('--seed <s>', 'first seed; schedule i uses seed + i (default: random, printed)')
    .option('--count <c>', 'number of schedules', '100')
    .option('--behaviours <list>', `Byzantine behaviours to draw from (default all): ${BYZANTINE_BEHAVIOURS.join(',')}`)
    .option('--trace', 'print every send, commit, crash and partition to stderr (for replaying one seed)')
    .option('--json', 'print the summary as JSON')
    .addHelpText(
      'after',
      `
Each schedule draws from its seed: message delays (some longer than the timeouts), drops,
duplicates, partitions healed at GST, crashes with restarts from disk, and Byzantine validators
that equivocate, double-vote, run as twins, propose invalid blocks, or stay silent. Exit status
0 when no schedule broke safety, validity or liveness; 1 otherwise (the failing seeds are listed).

Examples:
  $ donghae sim consensus --nodes 4 --byzantine 1 --seed 1 --count 2000
  $ donghae sim consensus --nodes 7 --byzantine 2 --count 500 --json
  $ donghae sim consensus --nodes 4 --byzantine 1 --seed 1234 --count 1 --trace   # replay one seed`,
    )
    .action(async (options: SimConsensusOptions, command: Command) => {
      const ctx = createContext(command, io)
      const nodes = integer(options.nodes, '--nodes', 1, 64)
      const byzantine = integer(options.byzantine, '--byzantine', 0, 64)
      const count = integer(options.count, '--count', 1, 10_000_000)
      const seed = options.seed === undefined ? randomInt(0, 2 ** 31) : integer(options.seed, '--seed', 0, 2 ** 32 - 1)
      const behaviours = parseBehaviours(options.behaviours)
      const base = { nodes, byzantine, ...(behaviours === undefined ? {} : { behaviours }) }
      checkScheduleOptions(base)
      let lastReport = Date.now()
      const summary = await runSchedules({
        ...base,
        seed,
        count,
        ...(options.trace === true ? { trace: (line: string) => io.stderr.write(`${line}\n`) } : {}),
        onProgress: (done, total, last) => {
          if (!last.ok) io.stderr.write(`sim: seed ${last.seed} FAILED\n`)
          if (Date.now() - lastReport < PROGRESS_EVERY_MS || done === total) return
          lastReport = Date.now()
          io.stderr.write(`sim: ${done}/${total} schedules\n`)
        },
      })
      if (options.json === true) ctx.out(JSON.stringify(summary))
      else printSummary(ctx.out, summary)
      const failing = summary.failingSeeds.length
      if (failing > 0) {
        throw new CliError(
          `${failing} of ${summary.schedules} schedules failed; replay one with --count 1 --seed ${summary.failingSeeds[0]} --trace`,
        )
      }
    })
}

function printSummary(out: (line: string) => void, s: Summary): void {
  const last = s.seed + s.schedules - 1
  out(
    `consensus simulation: ${s.schedules} schedules, ${s.nodes} validators (${s.byzantine} Byzantine), seeds ${s.seed}..${last}`,
  )
  out(`  safety violations     ${s.safetyViolations}`)
  out(`  validity violations   ${s.validityViolations}`)
  out(`  liveness failures     ${s.livenessFailures}`)
  out(`  heights per schedule  min ${s.heights.min}, max ${s.heights.max}, total ${s.heights.total}`)
  out(`  highest round         ${s.maxRound}`)
  const behaviours = Object.entries(s.behaviours)
    .map(([b, n]) => `${b} ${n}`)
    .join(', ')
  out(`  Byzantine behaviours  ${behaviours}`)
  const t = s.totals
  out(
    `  faults injected       ${t.crashes} crashes, ${t.partitions} partitions, ${t.dropped} of ${t.sent} messages lost`,
  )
  out(`  engines reported      ${t.evidence} duplicate votes, ${t.rejected} rejected messages, ${t.syncs} block syncs`)
  out(`  time                  ${(s.elapsedMs / 1000).toFixed(1)} s (${s.schedulesPerSecond} schedules/s)`)
  if (s.failingSeeds.length > 0) {
    out(
      `  failing seeds         ${s.failingSeeds.slice(0, 20).join(', ')}${s.failingSeeds.length > 20 ? ', \u2026' : ''}`,
    )
    for (const v of s.firstFailure?.violations ?? [])
      out(`    ${v.kind} at height ${v.height} on ${v.node}: ${v.detail}`)
    if (s.firstFailure?.livenessFailure !== undefined) out(`    liveness: ${s.firstFailure.livenessFailure}`)
  }
  out(`result: ${s.failingSeeds.length === 0 ? 'OK' : 'FAILED'}`)
}

interface SimAuditOptions {
  behaviour: string
  seed?: string
  count: string
  jobs?: string
  parallel?: string
  json?: boolean
}

/** `donghae sim audit`: seeded runs of the market's audit loop with the production components. */
function registerSimAudit(sim: Command, io: CliIo): void {
  sim
    .command('audit')
    .description(
      'run seeded simulations of the inference market (the real gateway, workers, settler, auditor and chain module) with one dishonest worker, and measure how fast it is slashed and whether cheating paid',
    )
    .option(
      '--behaviour <b>',
      `the worker under test: ${SIM_BEHAVIOURS.join(', ')} (cheatN: wrong on N % of its jobs)`,
      'cheat10',
    )
    .option('--seed <s>', 'first seed; run i uses seed + i (default: random, printed)')
    .option('--count <c>', 'number of seeded runs', '20')
    .option('--jobs <n>', 'client jobs after which a run stops if nobody was slashed (default 60000; honest: 10000)')
    .option('--parallel <p>', 'worker threads (default: the cores available)')
    .option('--json', 'print one JSON line with the summary')
    .addHelpText(
      'after',
      `
Each run: 8 workers bonded on a simulated chain (the worker under test and 7 honest ones), one
gateway sending digits-mlp jobs (real ONNX Runtime, real signatures), its settler and auditor
following the chain's own audit draws, quorums and slashes. Printed: jobs the worker under test
served until its first slash (median, 95th percentile, worst), runs where it was never slashed,
slashes of honest workers, the share of compute spent on audits and canaries (second half of
each run), and cheaterNetOverHonest: the largest over the runs of (earnings \u2212 slashes) ÷ what the
same jobs earn honestly (below 1: cheating cost more than it paid). Exit status 1 if an honest
worker was slashed or a dishonest one got away.

Examples:
  $ donghae sim audit --behaviour cheat10 --seed 1 --count 200 --json
  $ donghae sim audit --behaviour lazy --seed 1 --count 200
  $ donghae sim audit --behaviour honest --seed 1 --count 10 --jobs 10000   # 100,000 honest jobs`,
    )
    .action(async (options: SimAuditOptions, command: Command) => {
      const ctx = createContext(command, io)
      if (!(SIM_BEHAVIOURS as readonly string[]).includes(options.behaviour))
        throw new CliError(`--behaviour must be one of ${SIM_BEHAVIOURS.join(', ')}`)
      const behaviour = options.behaviour as SimBehaviourName
      const count = integer(options.count, '--count', 1, 100_000)
      const seed = options.seed === undefined ? randomInt(0, 2 ** 31) : integer(options.seed, '--seed', 0, 2 ** 31)
      const maxJobs = options.jobs === undefined ? undefined : integer(options.jobs, '--jobs', 10, 10_000_000)
      const parallel = options.parallel === undefined ? undefined : integer(options.parallel, '--parallel', 1, 256)
      if (options.json !== true) io.stderr.write(`sim audit: ${behaviour}, seeds ${seed}..${seed + count - 1}\n`)
      let lastReport = Date.now()
      const summary = await runAuditSims({
        behaviour,
        seed,
        count,
        ...(maxJobs === undefined ? {} : { maxJobs }),
        ...(parallel === undefined ? {} : { parallel }),
        onRun: (r, done) => {
          if (r.honestSlashes > 0) io.stderr.write(`sim: seed ${r.seed}: an honest worker was slashed\n`)
          if (Date.now() - lastReport < PROGRESS_EVERY_MS && done !== count) return
          lastReport = Date.now()
          io.stderr.write(`sim: ${done}/${count} runs\n`)
        },
      })
      const line = { ...summary, seed }
      if (options.json === true) ctx.out(JSON.stringify(line))
      else {
        ctx.out(
          `audit simulation: ${summary.runs} runs of ${behaviour}, seeds ${seed}..${seed + count - 1}, ${summary.jobs} jobs`,
        )
        if (behaviour !== 'honest') {
          ctx.out(
            `  jobs until slashed    median ${summary.medianJobsToSlash}, p95 ${summary.p95JobsToSlash}, worst ${summary.worstJobsToSlash}`,
          )
          ctx.out(`  never slashed         ${summary.uncaught}`)
          ctx.out(
            `  net over honest       at most ${summary.cheaterNetOverHonest?.toFixed(3)} (below 1: cheating did not pay)`,
          )
        }
        ctx.out(`  honest slashes        ${summary.honestSlashes}`)
        ctx.out(`  audit compute         ${(summary.auditComputeShare * 100).toFixed(2)} % (audits, quorums, canaries)`)
      }
      if (summary.honestSlashes > 0 || summary.uncaught > 0)
        throw new CliError(
          summary.honestSlashes > 0
            ? `${summary.honestSlashes} honest slashes`
            : `${summary.uncaught} of ${summary.runs} runs ended with the dishonest worker unslashed; raise --jobs`,
        )
    })
}
