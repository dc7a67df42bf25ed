/**
 * FL Alliance on the devnet (issue 15, part 3): a round's end-to-end time and where it goes, and
 * the accuracy matrix of the demonstration. It runs test/fl-devnet.test.ts (4 validator
 * processes, 12 `donghae fl join` processes) with the chosen variants and reads the one
 * `FLJSON` line each task prints, then prints one JSON line per figure:
 *
 *   fl-round-seconds      wall time of a round (task time ÷ rounds), against the bare block
 *                         windows (blocks per round × the block interval the run measured)
 *   fl-round-<role>-ms    the participants' own median phase timings
 *   fl-accuracy-<variant> the global model's held-out accuracy after N rounds, against the
 *                         centralised baseline measured in the same run
 *
 *   node bench/fl-round.bench.ts                          # fedavg-clean, 12 rounds (about 4 minutes)
 *   node bench/fl-round.bench.ts --matrix                 # every variant (about 20 minutes on 2 cores)
 *   node bench/fl-round.bench.ts --variants fedavg-3 --rounds 8
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const ALL = [
  'fedavg-clean',
  'multi-krum-clean',
  'multi-krum-2',
  'multi-krum-3',
  'median-3',
  'trimmed-mean-3',
  'fedavg-2',
  'fedavg-3',
]

interface FlTaskLine {
  variant: string
  rule: string
  attackers: number
  rounds: number
  seconds: number
  blocksPerRound: number
  final: number
  central: number
  perRound: string[]
  failedRounds: number
  slashedAttackers: number
  slashedHonest: number
  attackerSlashed: string[]
  proposerMs: Record<string, number>
  voterMs: Record<string, number>
}

const { values } = parseArgs({
  options: {
    matrix: { type: 'boolean' },
    variants: { type: 'string' },
    rounds: { type: 'string', default: '12' },
  },
})
const variants = values.matrix === true ? ALL : (values.variants ?? 'fedavg-clean').split(',')
const test = fileURLToPath(new URL('../test/fl-devnet.test.ts', import.meta.url))

const lines: FlTaskLine[] = []
const code = await new Promise<number | null>((resolve) => {
  const child = spawn(process.execPath, ['--test', '--test-reporter=tap', test], {
    env: { ...process.env, DONGHAE_FL_VARIANTS: variants.join(','), DONGHAE_FL_ROUNDS: values.rounds },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let buffer = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk
    const parts = buffer.split('\n')
    buffer = parts.pop() ?? ''
    for (const l of parts) {
      const at = l.indexOf('FLJSON ')
      if (at >= 0) lines.push(JSON.parse(l.slice(at + 'FLJSON '.length)) as FlTaskLine)
      else if (/^# (task| {2}a round|consensus|fedavg)/.test(l)) process.stderr.write(`${l}\n`)
    }
  })
  child.once('exit', resolve)
})
if (lines.length === 0) {
  process.stderr.write(`fl-round bench: the devnet run printed no task (exit ${String(code)})\n`)
  process.exit(1)
}

const print = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value)}\n`)
for (const l of lines) {
  const round = l.seconds / l.rounds
  print({
    bench: `fl-round-seconds-${l.variant}`,
    impl: `4 validator processes + 12 participant processes on loopback; ${l.blocksPerRound} blocks a round`,
    value: Number(round.toFixed(2)),
    unit: 's/round',
    breakdown: { proposerMs: l.proposerMs, voterMs: l.voterMs },
  })
  print({
    bench: `fl-accuracy-${l.variant}`,
    impl: `${l.rule}, ${l.attackers} sign-flippers of 12, ${l.rounds} rounds`,
    value: Number((l.final * 100).toFixed(2)),
    unit: '% held-out accuracy',
    baseline: {
      impl: 'centralised (consensus model fine-tuned on the union of the shards)',
      value: Number((l.central * 100).toFixed(2)),
    },
    perRound: l.perRound,
    failedRounds: l.failedRounds,
    slashed: { attackers: l.slashedAttackers, honest: l.slashedHonest, attackerAmounts: l.attackerSlashed },
  })
}
process.exitCode = code === 0 ? 0 : 1
