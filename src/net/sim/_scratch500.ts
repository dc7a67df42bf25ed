import { runScaleSimulation } from './scale.ts'
const n = Number(process.argv[2] ?? 500)
const g = globalThis as any
const t0 = Date.now()
const timer = setInterval(
  () =>
    process.stderr.write(
      `  t=${Math.round((Date.now() - t0) / 1000)}s rss=${Math.round(process.memoryUsage().rss / 2 ** 20)}MiB opened=${g.__opened} closed=${g.__closed} cpu=${Math.round(process.cpuUsage().user / 1e6)}s\n`,
    ),
  15000,
)
timer.unref()
const res = await runScaleSimulation({
  nodes: n,
  seed: 7,
  lookups: Number(process.argv[3] ?? 50),
  messages: Number(process.argv[4] ?? 10),
  warmupWalks: Number(process.argv[5] ?? 0),
  maxConnections: Number(process.argv[6] ?? 100),
  onPhase: (p, ms) =>
    process.stderr.write(
      `${p} ${Math.round(ms)}ms rss=${Math.round(process.memoryUsage().rss / 2 ** 20)}MiB opened=${g.__opened} closed=${g.__closed} cpu=${Math.round(process.cpuUsage().user / 1000)}\n`,
    ),
})
const { plan, ...rest } = res
console.log(JSON.stringify(rest))
console.error('total', Date.now() - t0, 'ms')
