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
import { createHash } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { setTimeout as wait } from 'node:timers/promises'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { identify, type Identify } from '@libp2p/identify'
import type { ComponentLogger, Logger, PeerId } from '@libp2p/interface'
import { kadDHT, passthroughMapper, type KadDHT, type QueryEvent } from '@libp2p/kad-dht'
import { memory } from '@libp2p/memory'
import { ping, type Ping } from '@libp2p/ping'
import { createLibp2p, type Libp2p } from 'libp2p'
import { createRng, type Rng } from '../../chain/sim/index.ts'
import {
  DEFAULT_PROTOCOL_PREFIX,
  SIM_ALPHA,
  SIM_BOOTSTRAP_NODES,
  SIM_DELIVERY_TIMEOUT_MS,
  SIM_INITIAL_PEERS,
  SIM_K,
  SIM_LOOKUP_TIMEOUT_MS,
  SIM_MAX_CONNECTIONS,
  SIM_MESH_TIMEOUT_MS,
  SIM_MESSAGE_BYTES,
  SIM_RECORD_NAMESPACE,
  SIM_WARMUP_CONCURRENCY,
  SIM_WARMUP_WALKS,
} from './constants.ts'
import { SimulationError, SimulationOptionsError } from './errors.ts'
import { summarize, type Summary } from './stats.ts'
import { QueryTrace } from './trace.ts'

export interface ScaleOptions {
  /** Number of libp2p nodes (≥ 2). */
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
  /** @default 100 */
  maxConnections?: number
  /** @default 256 */
  messageBytes?: number
  /** @default 30 s */
  lookupTimeoutMs?: number
  /** @default 10 s */
  deliveryTimeoutMs?: number
  signal?: AbortSignal
  /** Told when a phase starts (for progress lines; library code does not print). */
  onPhase?: (phase: ScalePhase, elapsedMs: number) => void
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

export interface LookupStats {
  attempted: number
  succeeded: number
  successRate: number
  /** Milliseconds until the call returns, as the libp2p API call would. */
  latencyMs: Summary
  /** Successful lookups only; see `trace.ts`. */
  hops: Summary
  /** Distinct peers each lookup sent a request to. */
  queried: Summary
}

export interface ScaleResult {
  kind: 'libp2p'
  label: string
  nodes: number
  seed: number
  transport: { name: '@libp2p/memory'; latencyMs: number; note: string }
  encryption: 'noise'
  muxer: 'yamux'
  dht: { protocol: string; k: number; alpha: number; disjointPaths: number; mode: 'server' }
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
  findPeer: LookupStats
  /**
   * `get` of values put by other nodes; the call returns when the query has finished (js-libp2p
   * collects every record before choosing the best). `firstValueMs`: until the first network
   * answer carrying the record, where `hops` is measured. Only values whose put reached at least
   * one peer are looked up (`attempted`); `unstored` counts the others. `localOnly`: found only in
   * the getter's own store (it was one of the peers the value was put at).
   */
  getValue: LookupStats & { firstValueMs: Summary; localOnly: number; unstored: number }
  put: { attempted: number; succeeded: number; latencyMs: Summary }
  gossip: {
    topic: string
    messages: number
    expected: number
    delivered: number
    deliveryRatio: number
    /** Publish call → the `message` event on each receiving node. */
    latencyMs: Summary
    meshPeersPerNode: Summary
    meshReadyMs: number
  }
  memory: {
    rssBeforeBytes: number
    rssAfterWarmupBytes: number
    rssPeakBytes: number
    heapUsedPeakBytes: number
    /** (RSS after warm-up − RSS before) / nodes. */
    perNodeBytes: number
  }
  plan: ScalePlan
  durationMs: number
}

interface SimServices {
  identify: Identify
  ping: Ping
  dht: KadDHT
  pubsub: GossipSub
  [key: string]: unknown
}
type SimNode = Libp2p<SimServices>

/** The parts of kad-dht's routing table read here (`routingTable` is public on the class, not the interface). */
interface RoutingTableView {
  size: number
  closestPeers(kadId: Uint8Array, options: { count: number }): PeerId[]
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
  messageBytes: number
  lookupTimeoutMs: number
  deliveryTimeoutMs: number
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
    messageBytes: options.messageBytes ?? SIM_MESSAGE_BYTES,
    lookupTimeoutMs: options.lookupTimeoutMs ?? SIM_LOOKUP_TIMEOUT_MS,
    deliveryTimeoutMs: options.deliveryTimeoutMs ?? SIM_DELIVERY_TIMEOUT_MS,
  }
  const integer = (name: keyof Resolved, min: number): void => {
    const value = r[name]
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
      throw new SimulationOptionsError(`${name} must be an integer ≥ ${min}, got ${String(value)}`, {
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
  integer('deliveryTimeoutMs', 1)
  if (r.messageBytes < 8)
    throw new SimulationOptionsError('messageBytes must be ≥ 8', { details: { option: 'messageBytes' } })
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

/** Runs the simulation; every node is stopped before it returns or throws. */
export async function runScaleSimulation(options: ScaleOptions): Promise<ScaleResult> {
  const r = resolve(options)
  const plan = planScaleSimulation(options)
  const began = performance.now()
  const phase = (name: ScalePhase): void => options.onPhase?.(name, performance.now() - began)
  const signal = options.signal
  const sampler = startMemorySampler()
  const nodes: SimNode[] = []
  try {
    const setup = await buildNetwork(nodes, plan, r, phase, signal)
    const rssAfterWarmupBytes = process.memoryUsage().rss
    phase('find-peer')
    const findPeer = await measureFindPeer(nodes, plan, r, signal)
    phase('put')
    const { put, keys } = await putValues(nodes, plan, r, signal)
    phase('get')
    const getValue = await measureGetValue(nodes, plan, keys, r, signal)
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
    return { ...describe(r), setup, findPeer, getValue, put, gossip, memory, plan, durationMs }
  } finally {
    phase('stop')
    sampler.stop()
    await Promise.allSettled(nodes.map((node) => node.stop()))
  }
}

/** The fixed description of a run: what ran, over what. */
function describe(
  r: Resolved,
): Pick<ScaleResult, 'kind' | 'label' | 'nodes' | 'seed' | 'transport' | 'encryption' | 'muxer' | 'dht'> {
  return {
    kind: 'libp2p',
    label: `${r.nodes} js-libp2p nodes in one process over @libp2p/memory (noise, yamux, kad-dht, gossipsub)`,
    nodes: r.nodes,
    seed: r.seed,
    transport: {
      name: '@libp2p/memory',
      latencyMs: r.latencyMs,
      note:
        r.latencyMs === 0
          ? 'no added latency: buffers are handed over in the same process'
          : 'each buffer is delayed by latencyMs after the previous one on its connection (a burst of b buffers takes b × latencyMs), and each dial by latencyMs',
    },
    encryption: 'noise',
    muxer: 'yamux',
    dht: { protocol: `${r.prefix}/kad/1.0.0`, k: r.k, alpha: r.alpha, disjointPaths: r.alpha, mode: 'server' },
  }
}

/** Phases 1 and 2: starts and joins the nodes (pushed onto `nodes` as they start), then warms up. */
async function buildNetwork(
  nodes: SimNode[],
  plan: ScalePlan,
  r: Resolved,
  phase: (name: ScalePhase) => void,
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
  if (r.warmup) await warmUp(nodes, r, signal)
  await settleRoutingTables(nodes, signal)
  return {
    joinMs,
    joinDialFailures,
    warmupMs: Math.round(performance.now() - warmupStart),
    // each connection opens at both ends
    connectionsOpened: Math.round(connectionsOpened / 2),
    connectionsPerNode: summarize(nodes.map((node) => node.getConnections().length)),
    routingTablePerNode: summarize(nodes.map((node) => routingTableOf(node)?.size ?? 0)),
  }
}

/**
 * libp2p's debug loggers are off in the simulation: js-libp2p creates one per connection scope, and
 * at hundreds of nodes that alone costs measurable CPU (each checks the terminal).
 */
const silentLog: Logger = Object.assign(() => {}, {
  error: () => {},
  trace: () => {},
  enabled: false,
  newScope: (): Logger => silentLog,
})
const silentLogger: ComponentLogger = { forComponent: () => silentLog }

async function createSimNode(r: Resolved, keySeed: Uint8Array, listen: string): Promise<SimNode> {
  const node = await createLibp2p({
    privateKey: await generateKeyPairFromSeed('Ed25519', keySeed),
    addresses: { listen: [listen] },
    logger: silentLogger,
    transports: [memory({ latency: r.latencyMs })],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { maxConnections: r.maxConnections },
    // The monitor pings every connection every 10 s; it measures nothing here and costs CPU at scale.
    connectionMonitor: { enabled: false },
    services: {
      identify: identify(),
      ping: ping(),
      dht: kadDHT({
        protocol: `${r.prefix}/kad/1.0.0`,
        clientMode: false,
        kBucketSize: r.k,
        alpha: r.alpha,
        peerInfoMapper: passthroughMapper,
        allowQueryWithZeroPeers: true,
        validators: { [SIM_RECORD_NAMESPACE]: async () => {} },
        selectors: { [SIM_RECORD_NAMESPACE]: () => 0 },
      }),
      pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, emitSelf: false }),
    },
  })
  return node as unknown as SimNode
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

function routingTableOf(node: SimNode): RoutingTableView | undefined {
  const table = (node.services.dht as unknown as { routingTable?: RoutingTableView }).routingTable
  return typeof table?.closestPeers === 'function' ? table : undefined
}

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest())
}

/** The peers a query for `key` starts from: the querier's k closest (what kad-dht's query manager takes). */
function startingPeers(node: SimNode, key: Uint8Array, k: number): string[] {
  return (routingTableOf(node)?.closestPeers(sha256(key), { count: k }) ?? []).map((id) => id.toString())
}

function lookupSignal(r: Resolved, signal?: AbortSignal): AbortSignal {
  const timeout = AbortSignal.timeout(r.lookupTimeoutMs)
  return signal === undefined ? timeout : AbortSignal.any([signal, timeout])
}

/** Runs `work` over `items` with at most `limit` at once. */
async function runLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++] as T)
  })
  await Promise.all(lanes)
}

/** Runs a query to its end; its events are the DHT's own progress (it fills routing tables as it goes). */
async function drainQuery(events: AsyncIterable<QueryEvent>): Promise<void> {
  for await (const event of events) void event
}

async function warmUp(nodes: readonly SimNode[], r: Resolved, signal?: AbortSignal): Promise<void> {
  const rng = createRng(r.seed).fork('warmup')
  const jobs: Array<{ node: SimNode; key: Uint8Array }> = []
  for (const node of nodes) {
    jobs.push({ node, key: node.peerId.toMultihash().bytes })
    for (let w = 0; w < r.warmupWalks; w++) jobs.push({ node, key: rng.bytes(32) })
  }
  await runLimited(jobs, SIM_WARMUP_CONCURRENCY, async ({ node, key }) => {
    try {
      await drainQuery(node.services.dht.getClosestPeers(key, { signal: lookupSignal(r, signal) }))
    } catch {
      // a failed warm-up lookup leaves that node's table a little emptier; the lookups will show it
      signal?.throwIfAborted()
    }
  })
}

/** Waits until the routing tables stop growing (the DHT pings each new contact before adding it). */
async function settleRoutingTables(nodes: readonly SimNode[], signal?: AbortSignal): Promise<void> {
  const total = (): number => nodes.reduce((sum, node) => sum + (routingTableOf(node)?.size ?? 0), 0)
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

async function measureFindPeer(
  nodes: readonly SimNode[],
  plan: ScalePlan,
  r: Resolved,
  signal?: AbortSignal,
): Promise<LookupStats> {
  const latency: number[] = []
  const hops: number[] = []
  const queried: number[] = []
  for (const [q, t] of plan.findPeer) {
    const querier = nodes[q] as SimNode
    const target = (nodes[t] as SimNode).peerId
    const trace = new QueryTrace(startingPeers(querier, target.toMultihash().bytes, r.k))
    const start = performance.now()
    let from: string | undefined
    try {
      for await (const event of querier.services.dht.findPeer(target, {
        signal: lookupSignal(r, signal),
        useCache: false,
      })) {
        trace.record(event)
        if (event.name === 'FINAL_PEER' && event.peer.id.equals(target)) {
          from = event.from.toString()
          break // as peerRouting.findPeer does: the first answer ends the lookup
        }
      }
    } catch {
      signal?.throwIfAborted()
    }
    queried.push(trace.queried)
    if (from === undefined) continue
    latency.push(performance.now() - start)
    hops.push(trace.hopsTo(from))
  }
  return lookupStats(plan.findPeer.length, latency, hops, queried)
}

function lookupStats(attempted: number, latency: number[], hops: number[], queried: number[]): LookupStats {
  return {
    attempted,
    succeeded: latency.length,
    successRate: attempted === 0 ? 0 : Number((latency.length / attempted).toFixed(4)),
    latencyMs: summarize(latency),
    hops: summarize(hops),
    queried: summarize(queried),
  }
}

function recordKey(r: Resolved, n: number): Uint8Array {
  return new TextEncoder().encode(`/${SIM_RECORD_NAMESPACE}/${r.seed}/${n}`)
}

interface StoredValue {
  key: Uint8Array
  value: Uint8Array
  /** At least one peer acknowledged the put. */
  stored: boolean
}

async function putValues(
  nodes: readonly SimNode[],
  plan: ScalePlan,
  r: Resolved,
  signal?: AbortSignal,
): Promise<{ put: ScaleResult['put']; keys: StoredValue[] }> {
  const rng = createRng(r.seed).fork('values')
  const keys: StoredValue[] = []
  const latency: number[] = []
  for (const [n, [p]] of plan.getValue.entries()) {
    const entry = { key: recordKey(r, n), value: rng.bytes(32), stored: false }
    keys.push(entry)
    const start = performance.now()
    let stored = 0
    try {
      for await (const event of (nodes[p] as SimNode).services.dht.put(entry.key, entry.value, {
        signal: lookupSignal(r, signal),
      })) {
        if (event.name === 'PEER_RESPONSE' && event.messageName === 'PUT_VALUE') stored++
      }
    } catch {
      signal?.throwIfAborted()
    }
    if (stored === 0) continue
    entry.stored = true
    latency.push(performance.now() - start)
  }
  return {
    put: { attempted: plan.getValue.length, succeeded: latency.length, latencyMs: summarize(latency) },
    keys,
  }
}

async function measureGetValue(
  nodes: readonly SimNode[],
  plan: ScalePlan,
  keys: readonly StoredValue[],
  r: Resolved,
  signal?: AbortSignal,
): Promise<ScaleResult['getValue']> {
  const latency: number[] = []
  const firstValue: number[] = []
  const hops: number[] = []
  const queried: number[] = []
  let localOnly = 0
  for (const [n, [, g]] of plan.getValue.entries()) {
    const { key, value, stored } = keys[n] as StoredValue
    if (!stored) continue
    const getter = nodes[g] as SimNode
    const trace = new QueryTrace(startingPeers(getter, key, r.k))
    const start = performance.now()
    let first: { at: number; from: string } | undefined
    let found: Uint8Array | undefined
    try {
      for await (const event of getter.services.dht.get(key, { signal: lookupSignal(r, signal) })) {
        trace.record(event)
        if (event.name === 'PEER_RESPONSE' && event.record !== undefined && first === undefined) {
          first = { at: performance.now(), from: event.from.toString() }
        }
        if (event.name === 'VALUE') {
          found = event.value
          break // as contentRouting.get does
        }
      }
    } catch {
      signal?.throwIfAborted()
    }
    queried.push(trace.queried)
    if (found === undefined || !sameBytes(found, value)) continue
    latency.push(performance.now() - start)
    if (first === undefined) {
      localOnly++
      continue
    }
    firstValue.push(first.at - start)
    hops.push(trace.hopsTo(first.from))
  }
  const unstored = keys.filter((entry) => !entry.stored).length
  return {
    ...lookupStats(keys.length - unstored, latency, hops, queried),
    firstValueMs: summarize(firstValue),
    localOnly,
    unstored,
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
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
