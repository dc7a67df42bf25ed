/**
 * Cost as work grows (issue 16, goal 5): CPU (percent of one core, user + system, every thread,
 * from /proc/<pid>/stat) and resident memory (VmRSS, MB) of one node process against
 *  - validators: 4, 7 and 16 node processes on loopback (devnet-style genesis, so no empty blocks:
 *    an idle chain makes no heights), idle and under `VALIDATOR_LOAD` transfers a second;
 *  - load: 0, 10, 50 and 200 transfers a second on 4 validators, with the mean transactions per
 *    block committed in the window (`/v1/chain/blocks/<h>`);
 *  - models loaded: node1 of each network serves the demo models (`DONGHAE_WORKER=1`, its
 *    sandbox children counted beside it), the others do not (`DONGHAE_WORKER=0`);
 *  - DHT size: real js-libp2p nodes in one process (src/net/sim, the DHT bench's network,
 *    `warmup: false`), resident memory per node at `DHT_NODES` nodes. Peers in a node process's
 *    own routing table cannot be varied on one machine (the devnet has at most 15 peers).
 * Nodes start as `donghae devnet` starts them (`NODE_PROCESS_FLAGS`, `nodeProcessEnv`).
 * "One node" is the mean over the nodes that serve no models; each window is `WINDOW_MS` of wall
 * time after `WARMUP_MS` of the same load. Transfers come from `SENDERS` accounts funded in the
 * genesis (a sender's mempool holds at most 64 of its transactions), each pinned to one node's
 * `POST /v1/tx`, from rotating 127.0.x.y source addresses (the API limits 1,200 requests a
 * minute per address). Every line's baseline is the 4-validator idle reading of the same run.
 * Writes docs/figures/cost.svg. Quick mode (the smoke test) runs nothing: the suite takes about
 * 6 minutes on 2 cores; run `node bench/run.ts --only cost`.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { Agent, request as httpRequest } from 'node:http'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { peerIdFromDid } from '../src/identity/peer-id.ts'
import { didFromEd25519PublicKey } from '../src/identity/did-key.ts'
import { Ed25519KeyPair } from '../src/identity/keys.ts'
import { LOCALNET_PASSWORD, loadOrCreateGenesis, loadOrCreateKeys } from '../src/cli/local-network.ts'
import { NODE_PROCESS_FLAGS, nodeProcessEnv } from '../src/cli/node-process.ts'
import { encodeTx, signTx } from '../src/chain/tx.ts'
import { toHex } from '../src/core/bytes.ts'
import { runScaleSimulation } from '../src/net/sim/index.ts'
import { line, type BenchLine } from './harness.ts'
import { costSvg } from './cost-plot.ts'

const BIN = fileURLToPath(new URL('../bin/donghae.js', import.meta.url))
const FIGURE = fileURLToPath(new URL('../docs/figures/cost.svg', import.meta.url))

/** Validator counts; the 4-validator network also runs every load of `LOADS`. */
export const VALIDATORS = [4, 7, 16] as const
/** Transfers a second offered to the 4-validator network (0 is the idle window). */
export const LOADS = [0, 10, 50, 200] as const
/** Transfers a second on the 7- and 16-validator networks. */
export const VALIDATOR_LOAD = 10
/** Libp2p nodes of the DHT memory runs (one process). */
export const DHT_NODES = [25, 50] as const

/** No name contains another suite's word (`--only idle` must not start this suite). */
export const COST_BENCH_NAMES = [
  ...LOADS.flatMap((r) => [`cost-cpu-load-${r}`, `cost-rss-load-${r}`]),
  ...VALIDATORS.filter((n) => n !== 4).flatMap((n) =>
    [0, VALIDATOR_LOAD].flatMap((r) => [`cost-cpu-validators-${n}-load-${r}`, `cost-rss-validators-${n}-load-${r}`]),
  ),
  'cost-models-cpu',
  'cost-models-rss',
  ...DHT_NODES.map((n) => `cost-dht-rss-${n}`),
]

const WINDOW_MS = 15_000
const WARMUP_MS = 3_000
/** After every node answers: the first heights (the genesis' worker declarations), connections. */
const SETTLE_MS = 10_000
const SETTLE_PER_NODE_MS = 500
/** Nodes spawned at once while a network starts. */
const START_BATCH = 4
const START_TIMEOUT_MS = 240_000
const SENDERS = 128
const SENDER_BALANCE = 1_000_000_000n
/** Requests from one loopback source address (the API allows 1,200 a minute per address). */
const REQUESTS_PER_ADDRESS = 500
const WORKER = 1
/** Nodes every node bootstraps to. */
const BOOTSTRAP_HUBS = 1
const CLOCK_TICKS = 100

const progress = (text: string): void => void process.stderr.write(`cost: ${text}\n`)

// ---- /proc --------------------------------------------------------------------------------------

interface ProcStat {
  ppid: number
  cpuMs: number
}

async function procStat(pid: number): Promise<ProcStat | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { ppid: Number(fields[1]), cpuMs: ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS }
  } catch {
    return undefined
  }
}

async function rssMbOf(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024
  } catch {
    return 0
  }
}

/** CPU ms of every process on the machine that descends from one of `roots`, by pid. */
async function snapshot(roots: readonly number[]): Promise<Map<number, { root: number; cpuMs: number }>> {
  const stats = new Map<number, ProcStat>()
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const stat = await procStat(Number(entry))
    if (stat !== undefined) stats.set(Number(entry), stat)
  }
  const out = new Map<number, { root: number; cpuMs: number }>()
  const rootOf = (pid: number): number | undefined => {
    for (let p = pid, depth = 0; p > 1 && depth < 16; depth++) {
      if (roots.includes(p)) return p
      p = stats.get(p)?.ppid ?? 0
    }
    return undefined
  }
  for (const [pid, stat] of stats) {
    const root = rootOf(pid)
    if (root !== undefined) out.set(pid, { root, cpuMs: stat.cpuMs })
  }
  return out
}

// ---- HTTP ---------------------------------------------------------------------------------------

const agent = new Agent({ keepAlive: true, maxSockets: Infinity })
let requestsSent = 0

/** The next loopback source address: a new one every `REQUESTS_PER_ADDRESS` requests of the run. */
function sourceAddress(): string {
  if (process.platform !== 'linux') return '127.0.0.1'
  const k = Math.floor(requestsSent++ / REQUESTS_PER_ADDRESS)
  return `127.0.${2 + Math.floor(k / 250)}.${1 + (k % 250)}`
}

function http(
  method: 'GET' | 'POST',
  url: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const payload = body === undefined ? undefined : JSON.stringify(body)
  const headers: Record<string, string | number> =
    payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
  return new Promise((resolve) => {
    const req = httpRequest(url, { method, agent, localAddress: sourceAddress(), headers, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        let json: Record<string, unknown> = {}
        try {
          json = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>
        } catch {
          // not JSON: an empty object
        }
        resolve({ status: res.statusCode ?? 0, json })
      })
      res.on('error', () => resolve({ status: 0, json: {} }))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', () => resolve({ status: 0, json: {} }))
    req.end(payload)
  })
}

async function getJson<T>(url: string): Promise<T | undefined> {
  const answer = await http('GET', url)
  return answer.status === 200 ? (answer.json as T) : undefined
}

// ---- the network --------------------------------------------------------------------------------

interface CostNode {
  home: string
  api: string
  child?: ChildProcess
  log: string
}

interface Sender {
  key: Ed25519KeyPair
  did: string
  nonce: bigint
  node: number
  busy: boolean
}

/** `n` validator processes on loopback; node `WORKER` serves the demo models. */
export class CostNetwork {
  readonly nodes: CostNode[]
  readonly senders: Sender[]
  readonly chainId: string
  readonly #dir: string

  private constructor(dir: string, nodes: CostNode[], senders: Sender[], chainId: string) {
    this.#dir = dir
    this.nodes = nodes
    this.senders = senders
    this.chainId = chainId
  }

  /** `hubs`: node i bootstraps to nodes 0..hubs-1 other than itself (1: node0, as `donghae devnet`). */
  static async create(dir: string, n: number, hubs = BOOTSTRAP_HUBS): Promise<CostNetwork> {
    // below the ephemeral range (32768+): API ports base.., p2p ports base+100..
    const base = 20_000 + Math.floor(Math.random() * 300) * 40
    const keys = await loadOrCreateKeys(dir, n, () => {})
    const senderKeys = Array.from({ length: SENDERS }, () => Ed25519KeyPair.generate())
    const fund = senderKeys.map((k) => `${didFromEd25519PublicKey(k.publicKey)}:${SENDER_BALANCE}`)
    const genesis = await loadOrCreateGenesis(dir, keys, fund, `donghae-cost-${n}`)
    await writeFile(join(dir, 'password'), LOCALNET_PASSWORD, { mode: 0o600 })
    const p2p = (i: number): string => {
      const did = didFromEd25519PublicKey((keys[i] as Ed25519KeyPair).publicKey)
      return `/ip4/127.0.0.1/tcp/${base + 100 + 2 * i}/p2p/${peerIdFromDid(did).toString()}`
    }
    const nodes: CostNode[] = []
    for (let i = 0; i < n; i++) {
      const home = join(dir, `node${i}`)
      await mkdir(home, { recursive: true })
      const config = {
        moniker: `node${i}`,
        apiHost: '127.0.0.1',
        apiPort: base + i,
        listenHost: '127.0.0.1',
        p2pPort: base + 100 + 2 * i,
        bootstrap: Array.from({ length: Math.min(n, hubs + 1) }, (_, h) => h)
          .filter((h) => h !== i)
          .slice(0, hubs)
          .map(p2p),
        mdns: false,
        nat: 'off',
        logLevel: 'warn',
      }
      await writeFile(join(home, 'config.json'), `${JSON.stringify(config)}\n`, { mode: 0o600 })
      nodes.push({ home, api: `http://127.0.0.1:${base + i}`, log: '' })
    }
    const senders = senderKeys.map((key, k) => ({
      key,
      did: didFromEd25519PublicKey(key.publicKey),
      nonce: 0n,
      node: k % n,
      busy: false,
    }))
    return new CostNetwork(dir, nodes, senders, genesis.chainId)
  }

  async start(i: number): Promise<void> {
    const node = this.nodes[i] as CostNode
    const args = [...NODE_PROCESS_FLAGS, BIN, '--home', node.home, 'node', '--genesis', join(this.#dir, 'genesis.json')]
    const child = spawn(process.execPath, [...args, '--password-file', join(this.#dir, 'password'), '--json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...nodeProcessEnv(),
        DONGHAE_PASSWORD: undefined,
        DONGHAE_WORKER: i === WORKER ? '1' : '0',
      },
    })
    node.child = child
    child.stderr?.setEncoding('utf8').on('data', (c: string) => (node.log = (node.log + c).slice(-4_000)))
    await new Promise<void>((resolve, reject) => {
      let buffer = ''
      child.stdout?.setEncoding('utf8').on('data', (c: string) => {
        buffer += c
        if (buffer.includes('\n')) resolve()
      })
      child.once('exit', (code) => reject(new Error(`node${i} exited (${String(code)}) during start: ${node.log}`)))
    })
  }

  /**
   * Starts every node, `START_BATCH` at a time, until each answers `/v1/status` (at most
   * `START_TIMEOUT_MS` in all); ms it took.
   */
  async startAll(): Promise<number> {
    const started = performance.now()
    const deadline = Date.now() + START_TIMEOUT_MS
    for (let i = 0; i < this.nodes.length; i += START_BATCH) {
      const batch = Promise.all(this.nodes.slice(i, i + START_BATCH).map((_, j) => this.start(i + j)))
      const timer = new AbortController()
      const late = sleep(Math.max(0, deadline - Date.now()), undefined, { signal: timer.signal }).then(() => {
        throw new Error(`only ${i} of ${this.nodes.length} nodes started in ${START_TIMEOUT_MS / 1000} s`)
      })
      late.catch(() => {})
      try {
        await Promise.race([batch, late])
      } finally {
        timer.abort()
      }
      progress(`  ${Math.min(i + START_BATCH, this.nodes.length)}/${this.nodes.length} nodes started`)
    }
    await waitUntil(
      'every node to answer',
      async () => {
        const heights = await Promise.all(this.nodes.map((node) => this.height(node)))
        return heights.every((h) => h >= 0)
      },
      Math.max(1_000, deadline - Date.now()),
    )
    return performance.now() - started
  }

  async height(node: CostNode = this.nodes[0] as CostNode): Promise<number> {
    return (await getJson<{ height: number }>(`${node.api}/v1/status`))?.height ?? -1
  }

  pids(): number[] {
    return this.nodes.map((node) => node.child?.pid ?? -1)
  }

  async close(): Promise<void> {
    await Promise.all(
      this.nodes.map(async ({ child }) => {
        if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
        await exited.finally(() => clearTimeout(timer))
      }),
    )
  }
}

async function waitUntil(what: string, check: () => Promise<boolean>, ms = START_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check()) return
    await sleep(250)
  }
  throw new Error(`cost bench: timed out after ${ms / 1000} s waiting for ${what}`)
}

// ---- load ---------------------------------------------------------------------------------------

interface LoadCounters {
  offered: number
  accepted: number
  rejected: number
  /** Due while every sender still waited for its previous answer (not sent). */
  skipped: number
  reasons: Record<string, number>
  /** Sum of the POST round trips, ms. */
  postMs: number
}

/** Transfers at `rate` a second, each sender one at a time to its own node, until stopped. */
export class Load {
  readonly counters: LoadCounters = { offered: 0, accepted: 0, rejected: 0, skipped: 0, reasons: {}, postMs: 0 }
  readonly #net: CostNetwork
  readonly #rate: number
  readonly #to = didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey)
  #stopped = false
  #next = 0
  readonly #inFlight = new Set<Promise<void>>()
  readonly #loop: Promise<void>

  constructor(net: CostNetwork, rate: number) {
    this.#net = net
    this.#rate = rate
    this.#loop = rate > 0 ? this.#run() : Promise.resolve()
  }

  async #run(): Promise<void> {
    const started = performance.now()
    let due = 0
    while (!this.#stopped) {
      const target = Math.floor((this.#rate * (performance.now() - started)) / 1000)
      for (; due < target; due++) {
        const sender = this.#free()
        if (sender === undefined) {
          this.counters.skipped++
          continue
        }
        const sent = this.#send(sender).finally(() => this.#inFlight.delete(sent))
        this.#inFlight.add(sent)
      }
      await sleep(10)
    }
    await Promise.all(this.#inFlight)
  }

  #free(): Sender | undefined {
    const senders = this.#net.senders
    for (let k = 0; k < senders.length; k++) {
      const sender = senders[(this.#next + k) % senders.length] as Sender
      if (!sender.busy) {
        this.#next = (this.#next + k + 1) % senders.length
        return sender
      }
    }
    return undefined
  }

  async #send(sender: Sender): Promise<void> {
    sender.busy = true
    this.counters.offered++
    try {
      const tx = signTx(sender.key, {
        chainId: this.#net.chainId,
        nonce: sender.nonce,
        fee: 1n,
        kind: 'bank.transfer',
        body: { to: this.#to, amount: 1n },
      })
      const api = (this.#net.nodes[sender.node] as CostNode).api
      const posted = performance.now()
      const answer = await http('POST', `${api}/v1/tx`, { tx: toHex(encodeTx(tx)) })
      this.counters.postMs += performance.now() - posted
      if (answer.status === 202) {
        this.counters.accepted++
        sender.nonce++
        return
      }
      this.counters.rejected++
      const error = answer.json.error as { reason?: string } | undefined
      const reason = `${answer.status} ${error?.reason ?? ''}`.trim()
      this.counters.reasons[reason] = (this.counters.reasons[reason] ?? 0) + 1
      // a nonce out of step (a lost answer): take the node's
      const account = await getJson<{ nonce: string }>(`${api}/v1/accounts/${sender.did}`)
      if (account !== undefined && BigInt(account.nonce) > sender.nonce) sender.nonce = BigInt(account.nonce)
    } finally {
      sender.busy = false
    }
  }

  async stop(): Promise<LoadCounters> {
    this.#stopped = true
    await this.#loop
    return this.counters
  }
}

// ---- one window ---------------------------------------------------------------------------------

export interface Reading {
  validators: number
  /** Transfers a second offered. */
  load: number
  windowMs: number
  /** Per node: its own process. */
  cpuPercent: number[]
  rssMb: number[]
  /** Per node: its child processes (model sandboxes). */
  childCpuPercent: number[]
  childRssMb: number[]
  /** Mean over the nodes without models. */
  validatorCpu: number
  validatorRss: number
  /** Node `WORKER` with its children. */
  workerCpu: number
  workerRss: number
  /** Every node process and child together, percent of one core (the machine has 2 cores). */
  totalCpu: number
  blocks: number
  txs: number
  txsPerBlock: number
  committedPerSecond: number
  offered: number
  accepted: number
  rejected: number
  skipped: number
  reasons: Record<string, number>
  /** Mean `POST /v1/tx` round trip, ms. */
  meanPostMs: number
  /** node0's consensus position at the end of the window (`height/round/step`). */
  consensus: string
  /** The machine's 1-minute load average at the end of the window (other work included). */
  loadAverage: number
}

async function blockTxs(net: CostNetwork, from: number, to: number): Promise<number> {
  let txs = 0
  const api = (net.nodes[0] as CostNode).api
  for (let h = from; h <= to; h++) {
    const block = await getJson<{ txs: unknown[] }>(`${api}/v1/chain/blocks/${h}`)
    txs += block?.txs.length ?? 0
  }
  return txs
}

const mean = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length)
const round2 = (v: number): number => Number(v.toFixed(2))

async function measureWindow(net: CostNetwork, rate: number): Promise<Reading> {
  const load = new Load(net, rate)
  if (rate > 0) await sleep(WARMUP_MS)
  const pids = net.pids()
  const h0 = await net.height()
  const before = await snapshot(pids)
  const t0 = performance.now()
  await sleep(WINDOW_MS)
  const after = await snapshot(pids)
  const windowMs = performance.now() - t0
  const status = await getJson<{ height: number; consensus?: { height: number; round: number; step: string } }>(
    `${(net.nodes[0] as CostNode).api}/v1/status`,
  )
  const h1 = status?.height ?? -1
  const position = status?.consensus
  const rss = await Promise.all(pids.map(rssMbOf))
  const children = pids.map(() => ({ cpuMs: 0, rssMb: 0 }))
  const own = pids.map(() => 0)
  for (const [pid, { root, cpuMs }] of after) {
    const i = pids.indexOf(root)
    const used = cpuMs - (before.get(pid)?.cpuMs ?? 0)
    if (pid === root) own[i] = used
    else {
      const child = children[i] as { cpuMs: number; rssMb: number }
      child.cpuMs += used
      child.rssMb += await rssMbOf(pid)
    }
  }
  const counted = performance.now()
  const { postMs, ...counters } = await load.stop()
  const txs = h1 > h0 ? await blockTxs(net, h0 + 1, h1) : 0
  const pct = (ms: number): number => round2((ms / windowMs) * 100)
  const cpuPercent = own.map(pct)
  const childCpuPercent = children.map((c) => pct(c.cpuMs))
  const plain = pids.map((_, i) => i).filter((i) => i !== WORKER)
  const reading: Reading = {
    validators: net.nodes.length,
    load: rate,
    windowMs: Math.round(windowMs),
    cpuPercent,
    rssMb: rss.map(Math.round),
    childCpuPercent,
    childRssMb: children.map((c) => Math.round(c.rssMb)),
    validatorCpu: round2(mean(plain.map((i) => cpuPercent[i] ?? 0))),
    validatorRss: Math.round(mean(plain.map((i) => rss[i] ?? 0))),
    workerCpu: round2((cpuPercent[WORKER] ?? 0) + (childCpuPercent[WORKER] ?? 0)),
    workerRss: Math.round((rss[WORKER] ?? 0) + (children[WORKER]?.rssMb ?? 0)),
    totalCpu: round2(cpuPercent.reduce((a, b) => a + b, 0) + childCpuPercent.reduce((a, b) => a + b, 0)),
    blocks: Math.max(0, h1 - h0),
    txs,
    txsPerBlock: h1 > h0 ? round2(txs / (h1 - h0)) : 0,
    committedPerSecond: round2((txs * 1000) / windowMs),
    ...counters,
    meanPostMs: counters.offered === 0 ? 0 : Math.round(postMs / counters.offered),
    loadAverage: round2(loadavg()[0] ?? 0),
    consensus: position === undefined ? '?' : `${position.height}/${position.round}/${position.step}`,
  }
  progress(
    `  (load stopped and ${reading.blocks} blocks read in ${((performance.now() - counted) / 1000).toFixed(1)} s)`,
  )
  progress(
    `  ${reading.validators} validators, ${rate} tx/s: node ${reading.validatorCpu} % / ${reading.validatorRss} MB, ` +
      `worker ${reading.workerCpu} % / ${reading.workerRss} MB, all ${reading.totalCpu} %, ` +
      `${reading.blocks} blocks, ${reading.txsPerBlock} txs/block, ${reading.accepted} accepted, ` +
      `${reading.rejected} rejected, ${reading.skipped} skipped, POST ${reading.meanPostMs} ms, load average ${reading.loadAverage}, node0 at ${reading.consensus}`,
  )
  return reading
}

export interface NetworkRun {
  validators: number
  startMs?: number
  readings: Reading[]
  /** Why the network could not be measured. */
  error?: string
}

/** Starts `n` validators, lets them settle, and reads one window per load of `loads`. */
export async function measureNetwork(n: number, loads: readonly number[]): Promise<NetworkRun> {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-cost-bench-'))
  progress(`${n} validators: starting`)
  const created = performance.now()
  const net = await CostNetwork.create(dir, n)
  progress(`${n} validators: keys and genesis in ${((performance.now() - created) / 1000).toFixed(1)} s`)
  try {
    const startMs = await net.startAll()
    progress(`${n} validators: answering after ${(startMs / 1000).toFixed(1)} s; settling`)
    await sleep(SETTLE_MS + SETTLE_PER_NODE_MS * n)
    await Promise.all(
      net.senders.map(async (s) => {
        const account = await getJson<{ nonce: string }>(`${(net.nodes[s.node] as CostNode).api}/v1/accounts/${s.did}`)
        s.nonce = BigInt(account?.nonce ?? '0')
      }),
    )
    const readings: Reading[] = []
    for (const rate of loads) readings.push(await measureWindow(net, rate))
    return { validators: n, startMs: Math.round(startMs), readings }
  } catch (err) {
    const tail = net.nodes.map((node, i) => (node.log === '' ? '' : `node${i}: ${node.log.slice(-300)}`)).join(' ')
    progress(`${n} validators: not measured: ${(err as Error).message.slice(0, 300)} ${tail}`)
    return { validators: n, readings: [], error: (err as Error).message.slice(0, 500) }
  } finally {
    const closing = performance.now()
    await net.close()
    await rm(dir, { recursive: true, force: true })
    progress(`${n} validators: stopped in ${((performance.now() - closing) / 1000).toFixed(1)} s`)
  }
}

// ---- DHT ----------------------------------------------------------------------------------------

export interface DhtReading {
  nodes: number
  perNodeKiB: number
  rssAfterMiB: number
  routingTableMean: number
  wallMs: number
}

/** Longest a DHT run may take (it may also end without settling: the sim is separate code). */
const DHT_TIMEOUT_MS = 120_000

async function measureDht(nodes: number): Promise<DhtReading | undefined> {
  progress(`DHT: ${nodes} libp2p nodes in one process`)
  const started = performance.now()
  // the timer also keeps this process's event loop alive while the simulation runs
  const timer = new AbortController()
  const timeout = sleep(DHT_TIMEOUT_MS, undefined, { signal: timer.signal }).then(() => {
    throw new Error(`did not finish in ${DHT_TIMEOUT_MS / 1000} s`)
  })
  timeout.catch(() => {})
  try {
    const result = await Promise.race([
      runScaleSimulation({ nodes, seed: 1, lookups: 1, messages: 0, warmup: false }),
      timeout,
    ])
    const reading = {
      nodes,
      perNodeKiB: Math.round(result.memory.perNodeBytes / 1024),
      rssAfterMiB: Math.round(result.memory.rssAfterWarmupBytes / 2 ** 20),
      routingTableMean: result.setup.routingTablePerNode.mean,
      wallMs: Math.round(performance.now() - started),
    }
    progress(
      `  ${nodes} nodes: ${reading.perNodeKiB} KiB a node, routing tables ${reading.routingTableMean} on average`,
    )
    return reading
  } catch (err) {
    progress(`  ${nodes} nodes: not measured: ${(err as Error).message}`)
    return undefined
  } finally {
    timer.abort()
  }
}

// ---- lines --------------------------------------------------------------------------------------

const detail = (r: Reading) => ({
  validators: r.validators,
  loadTxPerSecond: r.load,
  perNodeCpuPercent: r.cpuPercent,
  perNodeRssMb: r.rssMb,
  sandboxCpuPercent: r.childCpuPercent,
  sandboxRssMb: r.childRssMb,
  workerCpuPercent: r.workerCpu,
  workerRssMb: r.workerRss,
  allNodesCpuPercent: r.totalCpu,
  blocks: r.blocks,
  txs: r.txs,
  txsPerBlock: r.txsPerBlock,
  committedPerSecond: r.committedPerSecond,
  accepted: r.accepted,
  rejected: r.rejected,
  skipped: r.skipped,
  rejectReasons: r.reasons,
  meanPostMs: r.meanPostMs,
  loadAverage: r.loadAverage,
  consensusAtEnd: r.consensus,
  windowMs: r.windowMs,
})

function pointLines(name: string, r: Reading, base: Reading | undefined, what: string): BenchLine[] {
  const baseline = (value: number) =>
    base === undefined || base === r ? {} : { baseline: { impl: '4 validators, idle (same run)', value } }
  return [
    {
      ...line({
        bench: `cost-cpu-${name}`,
        impl: `node without models, ${what}, % of a core (mean of ${r.validators - 1})`,
        value: r.validatorCpu * 100,
        unit: 'hundredths of a percent of one core',
        ...baseline((base?.validatorCpu ?? 0) * 100),
        rounds: r.cpuPercent.filter((_, i) => i !== WORKER).map((v) => v * 100),
      }),
      ...detail(r),
    } as BenchLine,
    {
      ...line({
        bench: `cost-rss-${name}`,
        impl: `node without models, ${what}, resident MB (mean of ${r.validators - 1})`,
        value: r.validatorRss,
        unit: 'MB',
        ...baseline(base?.validatorRss ?? 0),
        rounds: r.rssMb.filter((_, i) => i !== WORKER),
      }),
      validators: r.validators,
      loadTxPerSecond: r.load,
    } as BenchLine,
  ]
}

export async function costBenches(quick = false): Promise<BenchLine[]> {
  if (quick) return []
  const started = performance.now()
  const runs: NetworkRun[] = []
  for (const n of VALIDATORS) runs.push(await measureNetwork(n, n === 4 ? LOADS : [0, VALIDATOR_LOAD]))
  const dht: DhtReading[] = []
  for (const n of DHT_NODES) {
    const reading = await measureDht(n)
    if (reading !== undefined) dht.push(reading)
  }
  progress(`done in ${((performance.now() - started) / 1000).toFixed(0)} s`)

  const four = runs[0] as NetworkRun
  const base = four.readings.find((r) => r.load === 0)
  const out: BenchLine[] = []
  for (const r of four.readings)
    out.push(...pointLines(`load-${r.load}`, r, base, `4 validators, ${r.load} transfers/s`))
  for (const run of runs.slice(1)) {
    for (const r of run.readings) {
      out.push(
        ...pointLines(
          `validators-${run.validators}-load-${r.load}`,
          r,
          base,
          `${run.validators} validators, ${r.load} transfers/s`,
        ),
      )
    }
  }
  if (base !== undefined) {
    const plainCpu = base.validatorCpu
    out.push(
      {
        ...line({
          bench: 'cost-models-cpu',
          impl: 'node serving the demo models (with its sandboxes), 4 validators idle, % of a core',
          value: base.workerCpu * 100,
          unit: 'hundredths of a percent of one core',
          baseline: { impl: 'node without models (mean of 3), same window', value: plainCpu * 100 },
          rounds: [base.workerCpu * 100],
        }),
        underLoad: four.readings.map((r) => ({ load: r.load, worker: r.workerCpu, validator: r.validatorCpu })),
      } as BenchLine,
      {
        ...line({
          bench: 'cost-models-rss',
          impl: 'node serving the demo models (with its sandboxes), 4 validators idle, resident MB',
          value: base.workerRss,
          unit: 'MB',
          baseline: { impl: 'node without models (mean of 3), same window', value: base.validatorRss },
          rounds: [base.workerRss],
        }),
        nodeProcessRssMb: base.rssMb[WORKER],
        sandboxRssMb: base.childRssMb[WORKER],
      } as BenchLine,
    )
  }
  const dhtBase = dht[0]
  for (const d of dht) {
    out.push({
      ...line({
        bench: `cost-dht-rss-${d.nodes}`,
        impl: `js-libp2p node (kad-dht, gossipsub) in a ${d.nodes}-node network in one process, resident KiB a node`,
        value: d.perNodeKiB,
        unit: 'KiB',
        ...(dhtBase === undefined || dhtBase === d
          ? {}
          : { baseline: { impl: `${dhtBase.nodes}-node network (same run)`, value: dhtBase.perNodeKiB } }),
        rounds: [d.perNodeKiB],
      }),
      routingTableMean: d.routingTableMean,
      processRssMiB: d.rssAfterMiB,
      wallMs: d.wallMs,
    } as BenchLine)
  }
  for (const run of runs) {
    if (run.error !== undefined) {
      out.push({
        bench: `cost-cpu-validators-${run.validators}-load-0`,
        impl: `${run.validators} validators: not measured (see error)`,
        error: run.error,
      } as unknown as BenchLine)
    }
  }
  await mkdir(join(FIGURE, '..'), { recursive: true })
  await writeFile(FIGURE, costSvg(runs, dht))
  progress(`wrote ${FIGURE}`)
  agent.destroy()
  return out
}
