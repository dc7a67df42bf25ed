import { runScaleSimulation } from './scale.ts'
const n = Number(process.argv[2] ?? 30)
const t0 = Date.now()
const res = await runScaleSimulation({
  nodes: n,
  seed: 7,
  lookups: Number(process.argv[3] ?? 20),
  messages: Number(process.argv[4] ?? 5),
  latencyMs: Number(process.argv[5] ?? 0),
  onPhase: (p, ms) =>
    process.stderr.write(`${p} ${Math.round(ms)}ms rss=${Math.round(process.memoryUsage().rss / 2 ** 20)}MiB\n`),
})
const { plan, ...rest } = res
console.log(JSON.stringify(rest, null, 1))
console.error('total', Date.now() - t0, 'ms')
