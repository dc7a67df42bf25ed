/**
 * The multi-process libp2p run: `processes` worker processes (worker.ts), node i in worker
 * i mod processes, every node listening on TCP at 127.0.0.1 (Noise and Yamux over real sockets).
 * This process only orchestrates: it sends the same seeded keys, joins and lookups as the
 * single-process run and collects the outcomes, so the nodes' work is spread over the machine's
 * cores instead of sharing one event loop.
 *
 * Join differs in one way from the single-process run: all nodes start listening first (their
 * initial self-query finds an empty table), then node i dials its planned peers, `SIM_JOIN_CONCURRENCY`
 * joins at a time in index order; each dial still goes to a node started before i in the plan.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { performance } from 'node:perf_hooks'
import { createRng } from '../../chain/sim/index.ts'
import { SIM_JOIN_CONCURRENCY, SIM_WARMUP_CONCURRENCY } from './constants.ts'
import { SimulationError } from './errors.ts'
import type { SimDriver } from './measure.ts'
import type { FindPeerOutcome, GetOutcome, NodeConfig, PutOutcome } from './node.ts'
import { summarize, type Summary } from './stats.ts'
import type { WorkerReply, WorkerRequest, WorkerStats } from './worker.ts'

type Op = WorkerRequest['op']
type ArgsOf<O extends Op> = Extract<WorkerRequest, { op: O }>['args']

/** Heap limit of each worker (MiB): a few hundred nodes need more than Node's default. */
const WORKER_HEAP_MIB = 8192

/** The worker processes and the request/response protocol over their IPC channels. */
export class WorkerPool {
  readonly #children: ChildProcess[]
  readonly #pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>()
  #nextId = 0
  #closed = false

  private constructor(children: ChildProcess[]) {
    this.#children = children
    for (const [i, child] of children.entries()) {
      child.on('message', (reply: WorkerReply) => {
        const waiter = this.#pending.get(reply.id)
        if (waiter === undefined) return
        this.#pending.delete(reply.id)
        if ('error' in reply) waiter.reject(new SimulationError(`worker ${i}: ${reply.error}`))
        else waiter.resolve(reply.result)
      })
      child.on('exit', (code, signal) => {
        if (this.#closed) return
        const err = new SimulationError(`worker ${i} exited (code ${String(code)}, signal ${String(signal)})`)
        for (const waiter of this.#pending.values()) waiter.reject(err)
        this.#pending.clear()
      })
    }
  }

  static open(count: number): WorkerPool {
    const children = Array.from({ length: count }, () =>
      fork(new URL('./worker.ts', import.meta.url), [], {
        serialization: 'advanced',
        execArgv: [`--max-old-space-size=${WORKER_HEAP_MIB}`],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      }),
    )
    return new WorkerPool(children)
  }

  get size(): number {
    return this.#children.length
  }

  call<O extends Op>(worker: number, op: O, args: ArgsOf<O>): Promise<unknown> {
    const child = this.#children[worker]
    if (child === undefined || this.#closed) return Promise.reject(new SimulationError(`no worker ${worker}`))
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      child.send({ id, op, args } as WorkerRequest, (err) => {
        if (err === null) return
        this.#pending.delete(id)
        reject(err)
      })
    })
  }

  all<O extends Op>(op: O, args: ArgsOf<O>): Promise<unknown[]> {
    return Promise.all(this.#children.map((_, i) => this.call(i, op, args)))
  }

  /** Stops every worker's nodes, then waits for the workers to exit (killing any that do not within 30 s). */
  async close(): Promise<void> {
    if (this.#closed) return
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      this.all('stop', {}).catch(() => {}),
      new Promise((resolve) => (timer = setTimeout(resolve, 30_000))),
    ])
    clearTimeout(timer)
    this.#closed = true
    await Promise.all(
      this.#children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
        if (child.connected) child.disconnect()
        await exited
        clearTimeout(timer)
      }),
    )
  }
}

export interface ClusterOptions {
  config: NodeConfig
  seed: number
  processes: number
  joins: readonly (readonly number[])[]
  warmup: boolean
  warmupWalks: number
  onPhase?: (phase: 'join' | 'warmup') => void
  /** Told as each tenth of the warm-up's lookups is done. */
  onProgress?: (phase: 'warmup', done: number, total: number) => void
  signal?: AbortSignal
}

export interface ClusterSetup {
  joinMs: number
  joinDialFailures: number
  warmupMs: number
  connectionsOpened: number
  connectionsPerNode: Summary
  routingTablePerNode: Summary
  /** Sum of the workers' RSS after the warm-up. */
  rssAfterWarmupBytes: number
}

/** A network of nodes spread over worker processes; `driver` runs the DHT phase on it. */
export class Cluster {
  readonly pool: WorkerPool
  readonly peerIds: string[] = []
  readonly addresses: string[] = []
  /** Largest sum of the workers' RSS seen (sampled at each `stats`). */
  rssPeakBytes = 0
  heapUsedPeakBytes = 0

  constructor(processes: number) {
    this.pool = WorkerPool.open(processes)
  }

  workerOf(node: number): number {
    return node % this.pool.size
  }

  async stats(): Promise<{ routingTable: number[]; connections: number[]; opened: number; rss: number }> {
    const all = (await this.pool.all('stats', {})) as WorkerStats[]
    const routingTable: number[] = []
    const connections: number[] = []
    let opened = 0
    let rss = 0
    let heap = 0
    for (const s of all) {
      for (const [j, index] of s.indexes.entries()) {
        routingTable[index] = s.routingTable[j] as number
        connections[index] = s.connections[j] as number
      }
      opened += s.connectionsOpened
      rss += s.rssBytes
      heap += s.heapUsedBytes
    }
    this.rssPeakBytes = Math.max(this.rssPeakBytes, rss)
    this.heapUsedPeakBytes = Math.max(this.heapUsedPeakBytes, heap)
    return { routingTable, connections, opened, rss }
  }

  /** Starts, joins and warms up the network. */
  async build(o: ClusterOptions): Promise<ClusterSetup> {
    const { signal } = o
    await this.pool.all('init', { config: o.config })
    o.onPhase?.('join')
    const joinStart = performance.now()
    const keySeeds = createRng(o.seed).fork('keys')
    const seeds = Array.from({ length: o.config.nodes }, () => keySeeds.bytes(32))
    await runLimited(
      seeds.map((keySeed, index) => ({ keySeed, index })),
      8 * this.pool.size,
      async ({ keySeed, index }) => {
        signal?.throwIfAborted()
        const started = (await this.pool.call(this.workerOf(index), 'start', { index, keySeed })) as {
          peerId: string
          address: string
        }
        this.peerIds[index] = started.peerId
        this.addresses[index] = started.address
      },
    )
    const fallback = createRng(o.seed).fork('join-fallback')
    let joinDialFailures = 0
    await runLimited(
      o.joins.map((planned, index) => ({ planned, index })),
      SIM_JOIN_CONCURRENCY,
      async ({ planned, index }) => {
        signal?.throwIfAborted()
        joinDialFailures += await this.#join(index, planned, fallback)
      },
    )
    const joinMs = Math.round(performance.now() - joinStart)
    o.onPhase?.('warmup')
    const warmupStart = performance.now()
    if (o.warmup) {
      const walks = createRng(o.seed).fork('warmup')
      const jobs: Array<{ index: number; key?: Uint8Array }> = []
      for (let index = 0; index < o.config.nodes; index++) {
        jobs.push({ index })
        for (let w = 0; w < o.warmupWalks; w++) jobs.push({ index, key: walks.bytes(32) })
      }
      await runLimited(
        jobs,
        SIM_WARMUP_CONCURRENCY,
        async ({ index, key }) => {
          signal?.throwIfAborted()
          await this.pool.call(this.workerOf(index), 'warm', key === undefined ? { index } : { index, key })
        },
        everyTenth(jobs.length, (done) => o.onProgress?.('warmup', done, jobs.length)),
      )
    }
    // wait until the routing tables stop growing (the DHT pings each new contact before adding it)
    let last = -1
    let stats = await this.stats()
    for (let i = 0; i < 40; i++) {
      const total = stats.routingTable.reduce((a, b) => a + b, 0)
      if (total === last) break
      last = total
      await new Promise((resolve) => setTimeout(resolve, 250))
      stats = await this.stats()
    }
    return {
      joinMs,
      joinDialFailures,
      warmupMs: Math.round(performance.now() - warmupStart),
      // each connection opens at both ends
      connectionsOpened: Math.round(stats.opened / 2),
      connectionsPerNode: summarize(stats.connections),
      routingTablePerNode: summarize(stats.routingTable),
      rssAfterWarmupBytes: stats.rss,
    }
  }

  /** As scale.ts's join: a refused dial is replaced by one to another node earlier in the plan. */
  async #join(index: number, planned: readonly number[], fallback: ReturnType<typeof createRng>): Promise<number> {
    let failures = 0
    const tried = new Set<number>()
    for (const first of planned) {
      let peer = first
      for (let attempt = 0; ; attempt++) {
        tried.add(peer)
        try {
          await this.pool.call(this.workerOf(index), 'dial', { index, address: this.addresses[peer] as string })
          break
        } catch (err) {
          failures++
          if (attempt >= 10 || tried.size >= index) throw err
          do peer = fallback.int(0, index - 1)
          while (tried.has(peer))
        }
      }
    }
    return failures
  }

  driver(): SimDriver {
    return {
      peerIds: this.peerIds,
      findPeer: async (querier, target) =>
        (await this.pool.call(this.workerOf(querier), 'findPeer', {
          index: querier,
          target: this.peerIds[target] as string,
        })) as FindPeerOutcome,
      put: async (putter, key, value) =>
        (await this.pool.call(this.workerOf(putter), 'put', { index: putter, key, value })) as PutOutcome,
      get: async (getter, key, value, impl) =>
        (await this.pool.call(this.workerOf(getter), 'get', { index: getter, key, value, impl })) as GetOutcome,
      holds: async (nodes, key) => {
        const out: boolean[] = []
        await Promise.all(
          Array.from({ length: this.pool.size }, async (_, w) => {
            const mine = nodes.filter((n) => this.workerOf(n) === w)
            if (mine.length === 0) return
            const held = (await this.pool.call(w, 'holds', { indexes: mine, key })) as boolean[]
            for (const [j, n] of mine.entries()) out[nodes.indexOf(n)] = held[j] === true
          }),
        )
        return out
      },
    }
  }

  close(): Promise<void> {
    return this.pool.close()
  }
}

/** Runs `work` over `items` with at most `limit` at once. */
export async function runLimited<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
  onDone?: (done: number) => void,
): Promise<void> {
  let next = 0
  let done = 0
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      await work(items[next++] as T)
      onDone?.(++done)
    }
  })
  await Promise.all(lanes)
}

/** A counter's callback that calls `report(done)` each time another tenth of `total` is done. */
export function everyTenth(total: number, report: (done: number) => void): (done: number) => void {
  let tenth = 1
  return (done) => {
    if (done * 10 < tenth * total) return
    while (done * 10 >= tenth * total) tenth++
    report(done)
  }
}
