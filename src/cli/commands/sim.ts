import { randomInt } from 'node:crypto'
import type { Command } from 'commander'
import {
  BYZANTINE_BEHAVIOURS,
  checkScheduleOptions,
  runSchedules,
  type ByzantineBehaviour,
  type Summary,
} from '../../chain/sim/index.ts'
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
    out(`  failing seeds         ${s.failingSeeds.slice(0, 20).join(', ')}${s.failingSeeds.length > 20 ? ', …' : ''}`)
    for (const v of s.firstFailure?.violations ?? [])
      out(`    ${v.kind} at height ${v.height} on ${v.node}: ${v.detail}`)
    if (s.firstFailure?.livenessFailure !== undefined) out(`    liveness: ${s.firstFailure.livenessFailure}`)
  }
  out(`result: ${s.failingSeeds.length === 0 ? 'OK' : 'FAILED'}`)
}
