/**
 * An idle home node (issue 16, goal 1), on the 4-process devnet over loopback, twice in one run:
 * the baseline network makes a block after every commit timeout whether or not there is anything
 * in it (`emptyBlockIntervalMs: 0`, the chain before this work); the measured one is a network
 * as `donghae devnet` makes it now (no empty blocks: a height waits for a transaction, a module's
 * due work or the one-minute empty-block interval; the PoH generator rests).
 *  - idle-cpu: CPU time of each node process (user + system, every thread, /proc) over
 *    `IDLE_WINDOW_MS` of wall time once start-up work is over, in percent of one core; the
 *    value is the busiest node (the target is ≤ 1 %);
 *  - idle-rss: resident memory of each node (VmRSS) at the end of that window, MB; every node
 *    serves the demo models (their sessions run in its sandbox processes, not counted); the
 *    value is the largest. Both networks' nodes start as `donghae devnet` starts them
 *    (NODE_PROCESS_FLAGS / nodeProcessVariables), so the baseline differs only in its blocks;
 *  - idle-cpu-steady, idle-rss-steady: the same two readings over a second window of
 *    `IDLE_WINDOW_MS`, from `STEADY_AT_MS` after every node answered: a node runs for days, and by
 *    then the start-up ramps are over (the chain's height checks back off to 16 s, the DHT's
 *    first refresh is done). Both
 *    networks are read over the same windows;
 *  - idle-tx-to-block: a transfer posted to node3's API after the windows, until `GET /v1/tx`
 *    on the same node answers it committed (5 ms polling), ms: how long a transaction waits for
 *    an idle chain to wake (target ≤ 100 ms beyond the baseline's own commit latency).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { didFromEd25519PublicKey } from '../src/identity/did-key.ts'
import { Ed25519KeyPair } from '../src/identity/keys.ts'
import { loadOrCreateKeys } from '../src/cli/local-network.ts'
import { NODE_PROCESS_FLAGS, nodeProcessVariables } from '../src/cli/node-process.ts'
import { encodeTx, signTx } from '../src/chain/tx.ts'
import { toHex } from '../src/core/bytes.ts'
import { BenchNetwork, getJson, waitUntil, type NodeProcess } from './inference.bench.ts'
import { line, type BenchLine } from './harness.ts'

export const IDLE_BENCH_NAMES = ['idle-cpu', 'idle-rss', 'idle-cpu-steady', 'idle-rss-steady', 'idle-tx-to-block']

/** Wall time over which idle CPU is read. */
const IDLE_WINDOW_MS = 30_000
/** Start-up work (calibration, first adverts, the first blocks' transactions) left out of the reading. */
const SETTLE_MS = 15_000
/** Where the steady-state window starts, after every node answered. */
const STEADY_AT_MS = 150_000
const CLOCK_TICKS = 100
/** Transfers timed per network (the median is reported). */
const TRANSFERS = 5

interface WindowReading {
  cpuPercent: Record<string, number>
  rssMb: Record<string, number>
  blocks: number
}

interface IdleReading extends WindowReading {
  steady: WindowReading
  txToBlockMs: number[]
}

async function cpuMsOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS
}

async function rssMbOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN)
  return kb / 1024
}

const heightOf = async (node: NodeProcess): Promise<number> =>
  (await getJson<{ height: number }>(`${node.api}/v1/status`))?.height ?? -1

async function post(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  return { status: response.status, json: (await response.json()) as Record<string, unknown> }
}

/** Starts the network with `emptyBlockIntervalMs`, lets it settle, and reads it idle, then times transfers. */
async function measureNetwork(emptyBlockIntervalMs: number): Promise<IdleReading> {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-idle-bench-'))
  const net = await BenchNetwork.create(dir)
  try {
    const genesisPath = join(dir, 'genesis.json')
    const genesis = JSON.parse(await readFile(genesisPath, 'utf8')) as {
      chainId: string
      params: Record<string, unknown>
    }
    genesis.params.emptyBlockIntervalMs = emptyBlockIntervalMs
    await writeFile(genesisPath, `${JSON.stringify(genesis, null, 2)}\n`)
    for (let i = 0; i < net.nodes.length; i++)
      await net.start(i, i === 1, { flags: NODE_PROCESS_FLAGS, env: nodeProcessVariables() })
    await waitUntil('every node to answer', async () => {
      for (const node of net.nodes) if ((await heightOf(node)) < 0) return false
      return true
    })
    const answered = performance.now()
    const pids = net.nodes.map((n) => n.child?.pid ?? -1)
    const window = async (): Promise<WindowReading> => {
      const before = await Promise.all(pids.map(cpuMsOf))
      const h0 = await heightOf(net.nodes[0] as NodeProcess)
      await sleep(IDLE_WINDOW_MS)
      const after = await Promise.all(pids.map(cpuMsOf))
      const h1 = await heightOf(net.nodes[0] as NodeProcess)
      const rss = await Promise.all(pids.map(rssMbOf))
      const cpuPercent: Record<string, number> = {}
      const rssMb: Record<string, number> = {}
      pids.forEach((_, i) => {
        cpuPercent[`node${i}`] = Number(((((after[i] ?? 0) - (before[i] ?? 0)) / IDLE_WINDOW_MS) * 100).toFixed(2))
        rssMb[`node${i}`] = Math.round(rss[i] ?? Number.NaN)
      })
      return { cpuPercent, rssMb, blocks: h1 - h0 }
    }
    await sleep(SETTLE_MS)
    const startUp = await window()
    await sleep(Math.max(0, STEADY_AT_MS - (performance.now() - answered)))
    const steady = await window()
    // transfers from node3's key, each after the chain went idle again
    const keys = await loadOrCreateKeys(dir, net.nodes.length, () => {})
    const sender = keys[3] as (typeof keys)[number]
    const from = didFromEd25519PublicKey(sender.publicKey)
    const to = didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey)
    const api = (net.nodes[3] as NodeProcess).api
    const txToBlockMs: number[] = []
    for (let n = 0; n < TRANSFERS; n++) {
      await sleep(2_000) // past the commit timeout of the last block: the next height is waiting (or ticking)
      const account = await getJson<{ nonce: string }>(`${api}/v1/accounts/${from}`)
      const tx = encodeTx(
        signTx(sender, {
          chainId: genesis.chainId,
          nonce: BigInt(account?.nonce ?? '0'),
          fee: 1n,
          kind: 'bank.transfer',
          body: { to, amount: 1n },
        }),
      )
      const started = performance.now()
      const submitted = await post(`${api}/v1/tx`, { tx: toHex(tx) })
      if (submitted.status !== 202) throw new Error(`idle bench: transfer refused: ${JSON.stringify(submitted.json)}`)
      const hash = String(submitted.json.hash)
      for (;;) {
        if ((await getJson<{ height: number }>(`${api}/v1/tx/${hash}`)) !== undefined) break
        if (performance.now() - started > 30_000) throw new Error('idle bench: a transfer did not commit in 30 s')
        await sleep(5)
      }
      txToBlockMs.push(performance.now() - started)
    }
    return { ...startUp, steady, txToBlockMs }
  } finally {
    await net.close()
    await rm(dir, { recursive: true, force: true })
  }
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN
}
const max = (record: Record<string, number>): number => Math.max(...Object.values(record))

/** Two devnets of node processes for minutes: nothing in the quick smoke mode (test/bench.test.ts). */
export async function idleBenches(quick = false): Promise<BenchLine[]> {
  if (quick) return []
  const baseline = await measureNetwork(0)
  const idle = await measureNetwork(60_000)
  const detail = (r: WindowReading) => ({ cpuPercent: r.cpuPercent, rssMb: r.rssMb, blocksInWindow: r.blocks })
  const cpu = max(idle.cpuPercent)
  const rss = max(idle.rssMb)
  const steadyCpu = max(idle.steady.cpuPercent)
  const steadyRss = max(idle.steady.rssMb)
  const txMs = median(idle.txToBlockMs)
  const baseTxMs = median(baseline.txToBlockMs)
  return [
    {
      ...line({
        bench: 'idle-cpu',
        impl: 'devnet node, no empty blocks (busiest of 4), % of a core',
        value: cpu * 100,
        unit: 'hundredths of a percent of one core',
        baseline: { impl: 'empty block after every commit timeout', value: max(baseline.cpuPercent) * 100 },
        target: { value: 100, met: cpu <= 1, note: '≤ 1 % of a core' },
        rounds: Object.values(idle.cpuPercent).map((v) => v * 100),
      }),
      idle: detail(idle),
      emptyBlocks: detail(baseline),
      windowMs: IDLE_WINDOW_MS,
    } as BenchLine,
    line({
      bench: 'idle-rss',
      impl: 'devnet node resident memory (largest of 4; each serves the demo models from sandbox processes), MB',
      value: rss,
      unit: 'MB',
      baseline: { impl: 'empty block after every commit timeout', value: max(baseline.rssMb) },
      target: { value: 150, met: rss <= 150, note: '≤ 150 MB with the demo models loaded' },
      rounds: Object.values(idle.rssMb),
    }),
    {
      ...line({
        bench: 'idle-cpu-steady',
        impl: `devnet node, no empty blocks (busiest of 4), ${STEADY_AT_MS / 1000}–${(STEADY_AT_MS + IDLE_WINDOW_MS) / 1000} s after start, % of a core`,
        value: steadyCpu * 100,
        unit: 'hundredths of a percent of one core',
        baseline: { impl: 'empty block after every commit timeout', value: max(baseline.steady.cpuPercent) * 100 },
        target: { value: 100, met: steadyCpu <= 1, note: '≤ 1 % of a core' },
        rounds: Object.values(idle.steady.cpuPercent).map((v) => v * 100),
      }),
      idle: detail(idle.steady),
      emptyBlocks: detail(baseline.steady),
      windowMs: IDLE_WINDOW_MS,
    } as BenchLine,
    line({
      bench: 'idle-rss-steady',
      impl: `devnet node resident memory ${(STEADY_AT_MS + IDLE_WINDOW_MS) / 1000} s after start (largest of 4), MB`,
      value: steadyRss,
      unit: 'MB',
      baseline: { impl: 'empty block after every commit timeout', value: max(baseline.steady.rssMb) },
      target: { value: 150, met: steadyRss <= 150, note: '≤ 150 MB with the demo models loaded' },
      rounds: Object.values(idle.steady.rssMb),
    }),
    line({
      bench: 'idle-tx-to-block',
      impl: 'transfer posted to an idle chain until committed (median), ms',
      value: txMs,
      unit: 'ms',
      baseline: { impl: 'empty block after every commit timeout', value: baseTxMs },
      target: {
        value: baseTxMs + 100,
        met: txMs <= baseTxMs + 100,
        note: 'a block within 100 ms of the transaction, beyond the commit latency of a chain that never idles',
      },
      rounds: idle.txToBlockMs,
    }),
  ]
}
