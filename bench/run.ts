/**
 * `npm run bench`: runs every benchmark and prints one JSON object per line.
 * Options: --round-ms N (default 300), --rounds N (default 5), --only NAME (substring of a bench name).
 */
import { parseArgs } from 'node:util'
import { cryptoBenches } from './crypto.bench.ts'
import { stateBenches, STATE_BENCH_NAMES } from './state.bench.ts'

const { values } = parseArgs({
  options: {
    'round-ms': { type: 'string', default: '300' },
    rounds: { type: 'string', default: '5' },
    only: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
})
if (values.help === true) {
  process.stdout.write('usage: npm run bench -- [--round-ms N] [--rounds N] [--only NAME]\n')
  process.exit(0)
}
const options = { roundMs: Number(values['round-ms']), rounds: Number(values.rounds) }
if (!(options.roundMs > 0) || !(options.rounds > 0)) {
  process.stderr.write('bench: --round-ms and --rounds must be positive numbers\n')
  process.exit(2)
}
const meta = {
  node: process.versions.node,
  platform: `${process.platform}-${process.arch}`,
  cpus: (await import('node:os')).availableParallelism(),
}
process.stdout.write(`${JSON.stringify({ bench: 'meta', ...meta, when: new Date().toISOString() })}\n`)
for (const result of cryptoBenches(options)) {
  if (values.only !== undefined && !result.bench.includes(values.only)) continue
  process.stdout.write(`${JSON.stringify(result)}\n`)
}
const only = values.only
if (only === undefined || STATE_BENCH_NAMES.some((name) => name.includes(only))) {
  for (const result of stateBenches(options)) {
    if (only !== undefined && !result.bench.includes(only)) continue
    process.stdout.write(`${JSON.stringify(result)}\n`)
  }
}
