import { runScaleSimulation } from './scale.ts'
const n = Number(process.argv[2] ?? 30)
const t0 = Date.now()
const g = globalThis as any
const res = await runScaleSimulation({
  nodes: n,
  seed: 7,
  lookups: Number(process.argv[3] ?? 20),
  messages: Number(process.argv[4] ?? 5),
  latencyMs: Number(process.argv[5] ?? 0),
  warmupWalks: Number(process.argv[6] ?? 1),
  maxConnections: Number(process.argv[7] ?? 100),
  onPhase: (p, ms) =>
    process.stderr.write(
      `${p} ${Math.round(ms)}ms rss=${Math.round(process.memoryUsage().rss / 2 ** 20)}MiB opened=${g.__opened} closed=${g.__closed} cpu=${Math.round(process.cpuUsage().user / 1000)}\n`,
    ),
})
const { plan, ...rest } = res
const brief = {
  setup: rest.setup,
  findPeer: {
    ok: rest.findPeer.successRate,
    lat: rest.findPeer.latencyMs,
    hops: rest.findPeer.hops,
    q: rest.findPeer.queried,
  },
  get: {
    ok: rest.getValue.successRate,
    lat: rest.getValue.latencyMs,
    first: rest.getValue.firstValueMs,
    hops: rest.getValue.hops,
    q: rest.getValue.queried,
  },
  put: rest.put,
  gossip: {
    ratio: rest.gossip.deliveryRatio,
    lat: rest.gossip.latencyMs,
    mesh: rest.gossip.meshPeersPerNode,
    ready: rest.gossip.meshReadyMs,
  },
  memory: rest.memory,
  ms: rest.durationMs,
}
console.log(JSON.stringify(brief))
console.error('total', Date.now() - t0, 'ms')
