/**
 * Scale simulation with real js-libp2p nodes: N nodes in one process over `@libp2p/memory`, each
 * with Noise, Yamux, identify, ping, kad-dht in server mode under Donghae's protocol
 * (`/donghae/kad/1.0.0`) and gossipsub. Nothing is mocked above the transport: the DHT fills its
 * routing tables with its own machinery (self-lookups, pinging new contacts, peers named in
 * answers), and lookups and gossip run the libraries' real code paths.
 *
 * Phases:
 *  1. join: node i starts and dials one of the first `bootstrapNodes` nodes and `initialPeers - 1`
 *     random nodes already up, so every node knows a handful of peers at start;
 *  2. warm-up (unless `warmup: false`): every node makes a self-lookup and `warmupWalks` random-walk
 *     lookups (`getClosestPeers`), then the routing tables are left to settle;
 *  3. DHT: `lookups` × `findPeer` of a random node from another random node, bypassing the local
 *     peer store (`useCache: false`) so every lookup crosses the network, then `lookups` values put
 *     by random nodes and read back by other random nodes (`get`), one lookup at a time;
 *  4. gossip: every node subscribes to one topic; once the meshes have formed, `messages` messages
 *     are published one after another by random nodes, each timed until it has reached every node.
 *
 * Latency figures are wall-clock times in this one process: every node's work shares the same
 * event loop (and the machine's cores), so they include the CPU cost of all the nodes, not only the
 * simulated link latency. See `trace.ts` for what "hops" means.
 */
import { performance } from 'node:perf_hooks'
import { setTimeout as wait } from 'node:timers/promises'
import { createRng, type Rng } from '../../chain/sim/index.ts'
import {
  DEFAULT_PROTOCOL_PREFIX,
  SIM_ALPHA,
  SIM_BOOTSTRAP_NODES,
  SIM_DELIVERY_TIMEOUT_MS,
  SIM_INITIAL_PEERS,
  SIM_K,
  SIM_LOOKUP_TIMEOUT_MS,
  SIM_MAINTENANCE_MS,
  SIM_MAX_CONNECTIONS,
  MAX_TIMER_MS,
  SIM_MESH_TIMEOUT_MS,
  SIM_MESSAGE_BYTES,
  SIM_WARMUP_CONCURRENCY,
  SIM_WARMUP_WALKS,
} from './constants.ts'
import { SimulationError, SimulationOptionsError } from './errors.ts'
import { measureDht, type DhtMeasurements, type GetStats, type PutStats, type SimDriver } from './measure.ts'
import {
  createSimNode,
  findPeerOp,
  getOp,
  holdsRecord,
  putOp,
  routingTableSize,
  warmUpLookup,
  type SimNode,
} from './node.ts'
import { Cluster, everyTenth, runLimited } from './processes.ts'
import { summarize, type Summary } from './stats.ts'

export type { LookupStats, GetStats, PutStats, GetFailure, FindPeerFailure } from './measure.ts'

export interface ScaleOptions {
  /** Number of libp2p nodes (>= 2). */
  nodes: number
  /** Seeds node keys, the join topology and every random choice of nodes and keys. */
  seed: number
  /** `findPeer` lookups, and as many values put and read back. */
  lookups: number
  /** Gossip messages published. */
  messages: number
  /** Delay added by `@libp2p/memory` to every buffer it carries (see `ScaleResult.transport`). @default 0 */
  latencyMs?: number
  /** The DHT protocol is `<prefix>/kad/1.0.0`. @default '/donghae' */
  dhtProtocolPrefix?: string
  /** @default 3 */
  alpha?: number
  /** @default 20 */
  kBucketSize?: number
  /** @default 3 */
  bootstrapNodes?: number
  /** @default 3 */
  initialPeers?: number
  /**
   * Whether every node looks itself up again once all have joined. Off, the routing tables hold
   * what the DHT learned by itself while the nodes joined (its self-query one second after start,
   * and the peers that queried each node). @default true
   */
  warmup?: boolean
  /** Random-walk lookups per node after the self-lookups of the warm-up. @default 0 */
  warmupWalks?: number
  /**
   * How often each node repeats its self-lookup and refreshes its buckets, as kad-dht does by
   * itself. Nodes that share a few cores run their protocol slower than nodes with a core each, so
   * a long run at kad-dht's 5 minutes makes its maintenance a far larger share of the work than on
   * real nodes; the bench stretches it (bench/net.bench.ts). @default 5 min (kad-dht's)
   */
  maintenanceMs?: number
  /** @default 100 */
  maxConnections?: number
  /** @default 256 */
  messageBytes?: number
  /** @default 30 s */
  lookupTimeoutMs?: number
  /** @default 10 s */
  deliveryTimeoutMs?: number
  /**
   * Worker processes hosting the nodes (node i in worker i mod processes), each node listening on
   * TCP at 127.0.0.1; 1 runs every node in this process over `@libp2p/memory`. With more than one,
   * gossip is not measured (`messages` must be 0) and `latencyMs` must be 0. @default 1
   */
  processes?: number
  signal?: AbortSignal
  /** Told when a phase starts (for progress lines; library code does not print). */
  onPhase?: (phase: ScalePhase, elapsedMs: number) => void
  /** Told as each tenth of the warm-up's lookups is done (the longest phase of a large run). */
  onProgress?: (phase: 'warmup', done: number, total: number, elapsedMs: number) => void
}

export type ScalePhase = 'join' | 'warmup' | 'find-peer' | 'put' | 'get' | 'mesh' | 'gossip' | 'stop'

/** The seeded choices of a run: a pure function of the options. */
export interface ScalePlan {
  /** `joins[i]`: the nodes node i dials when it starts (all started before it). */
  joins: number[][]
  /** `[querier, target]` of each `findPeer` lookup. */
  findPeer: Array<[number, number]>
  /** `[putter, getter]` of each value. */
  getValue: Array<[number, number]>
  /** Publisher of each gossip message. */
  publishers: number[]
}

export interface ScaleResult {
  kind: 'libp2p'
  label: string
  nodes: number
  seed: number
  /** Processes the nodes ran in (1: this one; more: worker processes, this one only orchestrating). */
  processes: number
  transport: { name: '@libp2p/memory' | '@libp2p/tcp'; latencyMs: number; note: string }
  encryption: 'noise'
  muxer: 'yamux'
  dht: { protocol: string; k: number; alpha: number; disjointPaths: number; mode: 'server'; maintenanceMs: number }
  setup: {
    joinMs: number
    /** Join dials refused (the peer was at its connection limit) and replaced by another node. */
    joinDialFailures: number
    warmupMs: number
    /** Connections opened during join and warm-up (pings of new contacts and lookups open them). */
    connectionsOpened: number
    connectionsPerNode: Summary
    routingTablePerNode: Summary
  }
  /** `findPeer` with `useCache: false`; the call returns at the first FINAL_PEER event. */
  findPeer: DhtMeasurements['findPeer']
  /**
   * `get` of values put by other nodes, as a node runs it (`dhtGet`, src/net/dht-get.ts): the call
   * returns once DHT_GET_QUORUM peers sent the record, or with the best answer seen at the lookup
   * timeout. `firstValueMs`: until the first network answer carrying the record, where `hops` is
   * measured. Only values whose put reached at least one peer are looked up (`attempted`);
   * `unstored` counts the others. `localOnly`: found only in the getter's own store (it was one of
   * the peers the value was put at). `failures`: why each failed get failed.
   */
  getValue: GetStats
  /** The same values by the same getters with kad-dht's own `get` (yields once its query has ended). */
  getValueKad: GetStats
  put: PutStats
  /** Not measured (0 messages) in the multi-process run. */
  gossip: {
    topic: string
    messages: number
    expected: number
    delivered: number
    deliveryRatio: number
    /** Publish call -> the `message` event on each receiving node. */
    latencyMs: Summary
    meshPeersPerNode: Summary
    meshReadyMs: number
  }
  memory: {
    rssBeforeBytes: number
    rssAfterWarmupBytes: number
    rssPeakBytes: number
    heapUsedPeakBytes: number
    /** (RSS after warm-up - RSS before) / nodes. */
    perNodeBytes: number
  }
  plan: ScalePlan
  durationMs: number
}

interface Resolved {
  nodes: number
  seed: number
  lookups: number
  messages: number
  latencyMs: number
  prefix: string
  alpha: number
  k: number
  bootstrapNodes: number
  initialPeers: number
  warmup: boolean
  warmupWalks: number
  maxConnections: number
  maintenanceMs: number
  messageBytes: number
  lookupTimeoutMs: number
  deliveryTimeoutMs: number
  processes: number
}

let runCounter = 0

function resolve(options: ScaleOptions): Resolved {
  const r: Resolved = {
    nodes: options.nodes,
    seed: options.seed,
    lookups: options.lookups,
    messages: options.messages,
    latencyMs: options.latencyMs ?? 0,
    prefix: options.dhtProtocolPrefix ?? DEFAULT_PROTOCOL_PREFIX,
    alpha: options.alpha ?? SIM_ALPHA,
    k: options.kBucketSize ?? SIM_K,
    bootstrapNodes: options.bootstrapNodes ?? SIM_BOOTSTRAP_NODES,
    initialPeers: options.initialPeers ?? SIM_INITIAL_PEERS,
    warmup: options.warmup ?? true,
    warmupWalks: options.warmupWalks ?? SIM_WARMUP_WALKS,
    maxConnections: options.maxConnections ?? SIM_MAX_CONNECTIONS,
    maintenanceMs: options.maintenanceMs ?? SIM_MAINTENANCE_MS,
    messageBytes: options.messageBytes ?? SIM_MESSAGE_BYTES,
    lookupTimeoutMs: options.lookupTimeoutMs ?? SIM_LOOKUP_TIMEOUT_MS,
    deliveryTimeoutMs: options.deliveryTimeoutMs ?? SIM_DELIVERY_TIMEOUT_MS,
    processes: options.processes ?? 1,
  }
  const integer = (name: keyof Resolved, min: number): void => {
    const value = r[name]
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
      throw new SimulationOptionsError(`${name} must be an integer \u2265 ${min}, got ${String(value)}`, {
        details: { option: name },
      })
    }
  }
  integer('nodes', 2)
  integer('seed', 0)
  if (r.seed > 0xffffffff) throw new SimulationOptionsError('seed must fit in 32 bits', { details: { option: 'seed' } })
  for (const name of ['lookups', 'messages', 'latencyMs', 'warmupWalks'] as const) integer(name, 0)
  for (const name of ['alpha', 'k', 'bootstrapNodes', 'initialPeers', 'maxConnections', 'messageBytes'] as const) {
    integer(name, 1)
  }
  integer('lookupTimeoutMs', 1)
  integer('maintenanceMs', 1)
  if (r.maintenanceMs > MAX_TIMER_MS) {
    throw new SimulationOptionsError(`maintenanceMs must be at most ${MAX_TIMER_MS} (a timer's limit)`, {
      details: { option: 'maintenanceMs' },
    })
  }
  integer('deliveryTimeoutMs', 1)
  integer('processes', 1)
  if (r.processes > 1 && (r.messages > 0 || r.latencyMs > 0)) {
    throw new SimulationOptionsError('with processes > 1, messages and latencyMs must be 0', {
      details: { option: 'processes' },
    })
  }
  if (r.messageBytes < 8)
    throw new SimulationOptionsError('messageBytes must be \u2265 8', { details: { option: 'messageBytes' } })
  if (!r.prefix.startsWith('/')) {
    throw new SimulationOptionsError('dhtProtocolPrefix must start with /', {
      details: { option: 'dhtProtocolPrefix' },
    })
  }
  return r
}

/** Two distinct random nodes. */
function pair(rng: Rng, n: number): [number, number] {
  const a = rng.int(0, n - 1)
  const b = (a + rng.int(1, n - 1)) % n
  return [a, b]
}

/** The seeded choices of a run with these options (what `runScaleSimulation` reports as `plan`). */
export function planScaleSimulation(options: ScaleOptions): ScalePlan {
  const r = resolve(options)
  const rng = createRng(r.seed)
  const topology = rng.fork('topology')
  const bootstraps = Math.min(r.bootstrapNodes, r.nodes)
  const joins: number[][] = []
  for (let i = 0; i < r.nodes; i++) {
    if (i < bootstraps) {
      joins.push(Array.from({ length: i }, (_, j) => j))
      continue
    }
    const chosen = new Set([topology.int(0, bootstraps - 1)])
    const want = Math.min(r.initialPeers, i)
    while (chosen.size < want) chosen.add(topology.int(0, i - 1))
    joins.push([...chosen])
  }
  const lookups = rng.fork('find-peer')
  const values = rng.fork('get-value')
  const gossip = rng.fork('gossip')
  return {
    joins,
    findPeer: Array.from({ length: r.lookups }, () => pair(lookups, r.nodes)),
    getValue: Array.from({ length: r.lookups }, () => pair(values, r.nodes)),
    publishers: Array.from({ length: r.messages }, () => gossip.int(0, r.nodes - 1)),
  }
}

/** Runs the simulation; every node (and worker process) is stopped before it returns or throws. */
export async function runScaleSimulation(options: ScaleOptions): Promise<ScaleResult> {
  const r = resolve(options)
  if (r.processes > 1) return await runAcrossProcesses(r, options)
  const plan = planScaleSimulation(options)
  const began = performance.now()
  const phase = (name: ScalePhase): void => options.onPhase?.(name, performance.now() - began)
  const signal = options.signal
  const sampler = startMemorySampler()
  const nodes: SimNode[] = []
  try {
    const progress = (done: number, total: number): void =>
      options.onProgress?.('warmup', done, total, performance.now() - began)
    const setup = await buildNetwork(nodes, plan, r, phase, progress, signal)
    const rssAfterWarmupBytes = process.memoryUsage().rss
    const dht = await measureDht(localDriver(nodes, r, signal), plan, { seed: r.seed, k: r.k, onPhase: phase, signal })
    const gossip = await measureGossip(nodes, plan, r, phase, signal)
    const peak = sampler.peak()
    const memory = {
      rssBeforeBytes: sampler.before,
      rssAfterWarmupBytes,
      rssPeakBytes: peak.rss,
      heapUsedPeakBytes: peak.heapUsed,
      perNodeBytes: Math.round((rssAfterWarmupBytes - sampler.before) / r.nodes),
    }
    const durationMs = Math.round(performance.now() - began)
    return { ...describe(r), setup, ...dht, gossip, memory, plan, durationMs }
  } finally {
    phase('stop')
    sampler.stop()
    await Promise.allSettled(nodes.map((node) => node.stop()))
  }
}

/** The multi-process run (processes.ts): the same plan and DHT phase; no gossip. */
async function runAcrossProcesses(r: Resolved, options: ScaleOptions): Promise<ScaleResult> {
  const plan = planScaleSimulation(options)
  const began = performance.now()
  const phase = (name: ScalePhase): void => options.onPhase?.(name, performance.now() - began)
  const signal = options.signal
  const rssBeforeBytes = process.memoryUsage().rss
  const cluster = new Cluster(r.processes)
  try {
    const { rssAfterWarmupBytes, ...setup } = await cluster.build({
      config: r,
      seed: r.seed,
      processes: r.processes,
      joins: plan.joins,
      warmup: r.warmup,
      warmupWalks: r.warmupWalks,
      onPhase: phase,
      onProgress: (name, done, total) => options.onProgress?.(name, done, total, performance.now() - began),
      ...(signal === undefined ? {} : { signal }),
    })
    const dht = await measureDht(cluster.driver(), plan, { seed: r.seed, k: r.k, onPhase: phase, signal })
    await cluster.stats()
    const memory = {
      rssBeforeBytes,
      rssAfterWarmupBytes,
      rssPeakBytes: cluster.rssPeakBytes,
      heapUsedPeakBytes: cluster.heapUsedPeakBytes,
      perNodeBytes: Math.round(rssAfterWarmupBytes / r.nodes),
    }
    const gossip = {
      topic: `${r.prefix}/sim/gossip/1`,
      messages: 0,
      expected: 0,
      delivered: 0,
      deliveryRatio: 0,
      latencyMs: summarize([]),
      meshPeersPerNode: summarize([]),
      meshReadyMs: 0,
    }
    const durationMs = Math.round(performance.now() - began)
    return { ...describe(r), setup, ...dht, gossip, memory, plan, durationMs }
  } finally {
    phase('stop')
    await cluster.close()
  }
}

/** The DHT phase's view of nodes in this process. */
function localDriver(nodes: readonly SimNode[], r: Resolved, signal?: AbortSignal): SimDriver {
  const at = (i: number): SimNode => nodes[i] as SimNode
  return {
    peerIds: nodes.map((node) => node.peerId.toString()),
    findPeer: (q, t) => findPeerOp(at(q), at(t).peerId, r, signal),
    put: (p, key, value) => putOp(at(p), key, value, r, signal),
    get: (g, key, value, impl) => getOp(at(g), key, value, r, signal, impl),
    holds: (list, key) => Promise.all(list.map((i) => holdsRecord(at(i), key))),
  }
}

/** The fixed description of a run: what ran, over what. */
function describe(
  r: Resolved,
): Pick<ScaleResult, 'kind' | 'label' | 'nodes' | 'seed' | 'processes' | 'transport' | 'encryption' | 'muxer' | 'dht'> {
  const common = {
    kind: 'libp2p' as const,
    nodes: r.nodes,
    seed: r.seed,
    processes: r.processes,
    encryption: 'noise' as const,
    muxer: 'yamux' as const,
    dht: {
      protocol: `${r.prefix}/kad/1.0.0`,
      k: r.k,
      alpha: r.alpha,
      disjointPaths: r.alpha,
      mode: 'server' as const,
      maintenanceMs: r.maintenanceMs,
    },
  }
  if (r.processes > 1) {
    return {
      ...common,
      label: `${r.nodes} js-libp2p nodes in ${r.processes} processes over TCP on 127.0.0.1 (noise, yamux, kad-dht)`,
      transport: {
        name: '@libp2p/tcp',
        latencyMs: 0,
        note: 'TCP over the loopback interface between processes: no added latency, real sockets',
      },
    }
  }
  return {
    ...common,
    label: `${r.nodes} js-libp2p nodes in one process over @libp2p/memory (noise, yamux, kad-dht, gossipsub)`,
    transport: {
      name: '@libp2p/memory',
      latencyMs: r.latencyMs,
      note:
        r.latencyMs === 0
          ? 'no added latency: buffers are handed over in the same process'
          : 'each buffer is delayed by latencyMs after the previous one on its connection (a burst of b buffers takes b × latencyMs), and each dial by latencyMs',
    },
  }
}

/** Phases 1 and 2: starts and joins the nodes (pushed onto `nodes` as they start), then warms up. */
async function buildNetwork(
  nodes: SimNode[],
  plan: ScalePlan,
  r: Resolved,
  phase: (name: ScalePhase) => void,
  progress: (done: number, total: number) => void,
  signal?: AbortSignal,
): Promise<ScaleResult['setup']> {
  phase('join')
  const joinStart = performance.now()
  const keySeeds = createRng(r.seed).fork('keys')
  const fallback = createRng(r.seed).fork('join-fallback')
  const run = ++runCounter
  let joinDialFailures = 0
  let connectionsOpened = 0
  const countOpen = (): void => void connectionsOpened++
  for (let i = 0; i < r.nodes; i++) {
    signal?.throwIfAborted()
    const node = await createSimNode(r, keySeeds.bytes(32), `/memory/donghae-sim-${process.pid}-${run}-${i}`)
    nodes.push(node)
    node.addEventListener('connection:open', countOpen)
    joinDialFailures += await join(node, i, plan.joins[i] ?? [], nodes, fallback, signal)
  }
  const joinMs = Math.round(performance.now() - joinStart)
  phase('warmup')
  const warmupStart = performance.now()
  if (r.warmup) await warmUp(nodes, r, progress, signal)
  await settleRoutingTables(nodes, signal)
  return {
    joinMs,
    joinDialFailures,
    warmupMs: Math.round(performance.now() - warmupStart),
    // each connection opens at both ends
    connectionsOpened: Math.round(connectionsOpened / 2),
    connectionsPerNode: summarize(nodes.map((node) => node.getConnections().length)),
    routingTablePerNode: summarize(nodes.map(routingTableSize)),
  }
}

/**
 * Dials the planned peers of node `index`. A refused dial (the peer is at `maxConnections`, which
 * happens to popular bootstrap nodes) is replaced by a dial to another node already up, drawn
 * from `fallback`, so each node still starts with as many peers as planned. Returns the refusals.
 */
async function join(
  node: SimNode,
  index: number,
  planned: readonly number[],
  nodes: readonly SimNode[],
  fallback: Rng,
  signal?: AbortSignal,
): Promise<number> {
  let failures = 0
  const tried = new Set<number>()
  for (const first of planned) {
    let peer = first
    for (let attempt = 0; ; attempt++) {
      tried.add(peer)
      try {
        await dialPeer(node, nodes[peer] as SimNode, signal)
        break
      } catch (err) {
        signal?.throwIfAborted()
        failures++
        if (attempt >= 10 || tried.size >= index) throw err
        do peer = fallback.int(0, index - 1)
        while (tried.has(peer))
      }
    }
  }
  return failures
}

async function dialPeer(node: SimNode, peer: SimNode, signal?: AbortSignal): Promise<void> {
  const timeout = AbortSignal.timeout(10_000)
  const address = peer.getMultiaddrs()[0]
  if (address === undefined) throw new SimulationError(`node ${peer.peerId.toString()} has no listen address`)
  await node.dial(address, {
    signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]),
  })
}

async function warmUp(
  nodes: readonly SimNode[],
  r: Resolved,
  progress: (done: number, total: number) => void,
  signal?: AbortSignal,
): Promise<void> {
  const rng = createRng(r.seed).fork('warmup')
  const jobs: Array<{ node: SimNode; key: Uint8Array }> = []
  for (const node of nodes) {
    jobs.push({ node, key: node.peerId.toMultihash().bytes })
    for (let w = 0; w < r.warmupWalks; w++) jobs.push({ node, key: rng.bytes(32) })
  }
  await runLimited(
    jobs,
    SIM_WARMUP_CONCURRENCY,
    async ({ node, key }) => {
      await warmUpLookup(node, r, key, signal)
    },
    everyTenth(jobs.length, (done) => progress(done, jobs.length)),
  )
}

/** Waits until the routing tables stop growing (the DHT pings each new contact before adding it). */
async function settleRoutingTables(nodes: readonly SimNode[], signal?: AbortSignal): Promise<void> {
  const total = (): number => nodes.reduce((sum, node) => sum + routingTableSize(node), 0)
  let last = -1
  for (let i = 0; i < 40; i++) {
    const now = total()
    if (now === last) return
    last = now
    await sleep(250, signal)
  }
}

async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  await wait(ms, undefined, signal === undefined ? {} : { signal })
}

async function measureGossip(
  nodes: readonly SimNode[],
  plan: ScalePlan,
  r: Resolved,
  phase: (name: ScalePhase) => void,
  signal?: AbortSignal,
): Promise<ScaleResult['gossip']> {
  const topic = `${r.prefix}/sim/gossip/1`
  phase('mesh')
  const meshStart = performance.now()
  for (const node of nodes) node.services.pubsub.subscribe(topic)
  // getMeshPeers is public on gossipsub's class, not on its exported interface
  const meshOf = (node: SimNode): string[] =>
    (node.services.pubsub as unknown as { getMeshPeers(topic: string): string[] }).getMeshPeers(topic)
  const meshSizes = (): number[] => nodes.map((node) => meshOf(node).length)
  const meshTarget = Math.min(4, nodes.length - 1) // gossipsub's D_lo
  while (performance.now() - meshStart < SIM_MESH_TIMEOUT_MS && Math.min(...meshSizes()) < meshTarget) {
    await sleep(250, signal)
  }
  const meshReadyMs = Math.round(performance.now() - meshStart)
  const meshPeersPerNode = summarize(meshSizes())

  phase('gossip')
  const latency: number[] = []
  const published: number[] = []
  const received: number[] = []
  let waiter: { message: number; resolve: () => void } | undefined
  const listeners = nodes.map((node) => {
    const seen = new Set<number>()
    const listener = (evt: CustomEvent<{ topic: string; data: Uint8Array }>): void => {
      const at = performance.now()
      const { topic: got, data } = evt.detail
      if (got !== topic || data.length < 8) return
      const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
      const message = view.getUint32(0)
      if (view.getUint32(4) !== r.seed >>> 0 || seen.has(message) || published[message] === undefined) return
      seen.add(message)
      latency.push(at - (published[message] as number))
      received[message] = (received[message] ?? 0) + 1
      if (waiter?.message === message && received[message] === nodes.length - 1) waiter.resolve()
    }
    node.services.pubsub.addEventListener('message', listener as never)
    return { node, listener }
  })
  try {
    const rng = createRng(r.seed).fork('payloads')
    for (const [message, publisher] of plan.publishers.entries()) {
      signal?.throwIfAborted()
      const data = rng.bytes(r.messageBytes)
      const view = new DataView(data.buffer)
      view.setUint32(0, message)
      view.setUint32(4, r.seed >>> 0)
      const done = new Promise<void>((resolve) => {
        waiter = { message, resolve }
      })
      published[message] = performance.now()
      await (nodes[publisher] as SimNode).services.pubsub.publish(topic, data)
      await raceTimeout(done, r.deliveryTimeoutMs)
    }
  } finally {
    for (const { node, listener } of listeners) node.services.pubsub.removeEventListener('message', listener as never)
  }
  const expected = plan.publishers.length * (nodes.length - 1)
  return {
    topic,
    messages: plan.publishers.length,
    expected,
    delivered: latency.length,
    deliveryRatio: expected === 0 ? 0 : Number((latency.length / expected).toFixed(4)),
    latencyMs: summarize(latency),
    meshPeersPerNode,
    meshReadyMs,
  }
}

async function raceTimeout(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))])
  } finally {
    clearTimeout(timer)
  }
}

interface MemorySampler {
  before: number
  peak(): { rss: number; heapUsed: number }
  stop(): void
}

/** Samples RSS and heap every 200 ms (and at `peak()`), keeping the largest values. */
function startMemorySampler(): MemorySampler {
  const first = process.memoryUsage()
  let rss = first.rss
  let heapUsed = first.heapUsed
  const sample = (): void => {
    const now = process.memoryUsage()
    rss = Math.max(rss, now.rss)
    heapUsed = Math.max(heapUsed, now.heapUsed)
  }
  const timer = setInterval(sample, 200)
  timer.unref()
  return {
    before: first.rss,
    peak: () => {
      sample()
      return { rss, heapUsed }
    },
    stop: () => clearInterval(timer),
  }
}
