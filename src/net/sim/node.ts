/**
 * One simulated node and the DHT operations the simulations time on it. Shared by the
 * single-process run (scale.ts) and the worker processes of the multi-process run (worker.ts), so
 * both build the same node and measure the same way; every outcome is plain data (it crosses a
 * process boundary in the multi-process run).
 */
import { createHash } from 'node:crypto'
import { performance } from 'node:perf_hooks'
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
import { SIM_RECORD_NAMESPACE } from './constants.ts'
import { SimulationError } from './errors.ts'
import { QueryTrace } from './trace.ts'
import { dhtGet } from '../dht-get.ts'
import { dhtPut } from '../dht-put.ts'
import { coalescedTcp } from '../coalesce.ts'
import { installConnectionRules } from '../connection-rules.ts'
import { GOSSIP_OPTIONS } from '../gossip.ts'

export interface SimServices {
  identify: Identify
  ping: Ping
  dht: KadDHT
  pubsub: GossipSub
  [key: string]: unknown
}
export type SimNode = Libp2p<SimServices>

/** What a node needs to know about the run (a subset of scale.ts's resolved options). */
export interface NodeConfig {
  nodes: number
  latencyMs: number
  prefix: string
  alpha: number
  k: number
  maxConnections: number
  lookupTimeoutMs: number
  /** Interval of each node's self-lookup and bucket refresh (kad-dht's maintenance). */
  maintenanceMs: number
}

/** The part of kad-dht's bucket refresh set here (`routingTableRefresh` is public on the class; its interval has no option). */
interface TableRefreshView {
  refreshInterval: number
}

/** The parts of kad-dht's routing table read here (`routingTable` is public on the class, not the interface). */
interface RoutingTableView {
  size: number
  closestPeers(kadId: Uint8Array, options: { count: number }): PeerId[]
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

/**
 * `listen`: a `/memory/...` address (in-process transport) or `/ip4/127.0.0.1/tcp/0` (TCP). Over
 * TCP every simulated peer dials from 127.0.0.1, so js-libp2p's inbound limit per remote host (5
 * connections a second) would throttle the whole network as if it were one peer: it is raised to
 * the network's size here, since in a real deployment each peer has its own address.
 */
export async function createSimNode(c: NodeConfig, keySeed: Uint8Array, listen: string): Promise<SimNode> {
  const overTcp = listen.startsWith('/ip4/')
  installConnectionRules() // the same connection changes as a node's host
  const node = await createLibp2p({
    start: false,
    privateKey: await generateKeyPairFromSeed('Ed25519', keySeed),
    addresses: { listen: [listen] },
    logger: silentLogger,
    // over TCP, the transport a Donghae node dials with (writes coalesced per turn, src/net/coalesce.ts)
    transports: [overTcp ? coalescedTcp() : memory({ latency: c.latencyMs })],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: {
      maxConnections: c.maxConnections,
      ...(overTcp ? { inboundConnectionThreshold: Math.max(c.nodes, 5) } : {}),
    },
    // The monitor pings every connection every 10 s; it measures nothing here and costs CPU at scale.
    connectionMonitor: { enabled: false },
    services: {
      identify: identify(),
      ping: ping(),
      dht: kadDHT({
        protocol: `${c.prefix}/kad/1.0.0`,
        clientMode: false,
        kBucketSize: c.k,
        alpha: c.alpha,
        peerInfoMapper: passthroughMapper,
        allowQueryWithZeroPeers: true,
        querySelfInterval: c.maintenanceMs,
        validators: { [SIM_RECORD_NAMESPACE]: async () => {} },
        selectors: { [SIM_RECORD_NAMESPACE]: () => 0 },
      }),
      pubsub: gossipsub(GOSSIP_OPTIONS),
    },
  })
  const refresh = (node.services.dht as unknown as { routingTableRefresh?: TableRefreshView }).routingTableRefresh
  if (typeof refresh?.refreshInterval !== 'number') {
    throw new SimulationError(
      'kad-dht has no routingTableRefresh.refreshInterval: the simulation cannot set its bucket refresh',
    )
  }
  // read when the refresh reschedules itself; the first refresh runs at start (an empty table)
  refresh.refreshInterval = c.maintenanceMs
  await node.start()
  return node as unknown as SimNode
}

export function routingTableOf(node: SimNode): RoutingTableView | undefined {
  const table = (node.services.dht as unknown as { routingTable?: RoutingTableView }).routingTable
  return typeof table?.closestPeers === 'function' ? table : undefined
}

export function routingTableSize(node: SimNode): number {
  return routingTableOf(node)?.size ?? 0
}

export function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest())
}

/** The peers a query for `key` starts from: the querier's k closest (what kad-dht's query manager takes). */
function startingPeers(node: SimNode, key: Uint8Array, k: number): string[] {
  return (routingTableOf(node)?.closestPeers(sha256(key), { count: k }) ?? []).map((id) => id.toString())
}

export function lookupSignal(c: NodeConfig, signal?: AbortSignal): AbortSignal {
  const timeout = AbortSignal.timeout(c.lookupTimeoutMs)
  return signal === undefined ? timeout : AbortSignal.any([signal, timeout])
}

/** Runs a query to its end; its events are the DHT's own progress (it fills routing tables as it goes). */
export async function drainQuery(events: AsyncIterable<QueryEvent>): Promise<void> {
  for await (const event of events) void event
}

/** A self-lookup (`key` = the node's own id) or a random walk, run to its end; false if it failed. */
export async function warmUpLookup(
  node: SimNode,
  c: NodeConfig,
  key?: Uint8Array,
  signal?: AbortSignal,
): Promise<boolean> {
  try {
    await drainQuery(
      node.services.dht.getClosestPeers(key ?? node.peerId.toMultihash().bytes, { signal: lookupSignal(c, signal) }),
    )
    return true
  } catch {
    // a failed warm-up lookup leaves that node's table a little emptier; the lookups will show it
    signal?.throwIfAborted()
    return false
  }
}

/** Why a query call ended without its answer: the lookup timeout, or an error it threw. */
function failureOf(err: unknown, c: NodeConfig, start: number): { timedOut: boolean; error: string } {
  const elapsed = performance.now() - start
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err)
  return { timedOut: elapsed >= c.lookupTimeoutMs - 50, error: message }
}

export interface FindPeerOutcome {
  found: boolean
  ms: number
  hops: number
  queried: number
  timedOut: boolean
  error?: string
}

/** `findPeer` with `useCache: false`, returning at the first FINAL_PEER naming the target (as peerRouting.findPeer does). */
export async function findPeerOp(
  querier: SimNode,
  target: PeerId,
  c: NodeConfig,
  signal?: AbortSignal,
): Promise<FindPeerOutcome> {
  const trace = new QueryTrace(startingPeers(querier, target.toMultihash().bytes, c.k))
  const start = performance.now()
  let from: string | undefined
  let failure: { timedOut: boolean; error: string } | undefined
  try {
    for await (const event of querier.services.dht.findPeer(target, {
      signal: lookupSignal(c, signal),
      useCache: false,
    })) {
      trace.record(event)
      if (event.name === 'FINAL_PEER' && event.peer.id.equals(target)) {
        from = event.from.toString()
        break // as peerRouting.findPeer does: the first answer ends the lookup
      }
    }
  } catch (err) {
    signal?.throwIfAborted()
    failure = failureOf(err, c, start)
  }
  const ms = performance.now() - start
  if (from === undefined) {
    return { found: false, ms, hops: 0, queried: trace.queried, timedOut: failure?.timedOut ?? false, ...failure }
  }
  return { found: true, ms, hops: trace.hopsTo(from), queried: trace.queried, timedOut: false }
}

export interface PutOutcome {
  /** Peers that acknowledged the record (a PUT_VALUE answer carrying it). */
  acks: number
  /** Peers the put was sent to: the k closest the lookup found. */
  sentTo: number
  /** The lookup had not ended by half the timeout: the record went to the peers found by then. */
  fellBack: boolean
  ms: number
  timedOut: boolean
  error?: string
}

/**
 * `put` as a Donghae node runs it (`dhtPut`, src/net/dht-put.ts, what `publishDid` calls), with the
 * lookup timeout as its budget.
 */
export async function putOp(
  node: SimNode,
  key: Uint8Array,
  value: Uint8Array,
  c: NodeConfig,
  signal?: AbortSignal,
): Promise<PutOutcome> {
  const start = performance.now()
  const result = await dhtPut(node.services.dht, key, value, {
    budgetMs: c.lookupTimeoutMs,
    ...(signal === undefined ? {} : { signal }),
  })
  signal?.throwIfAborted()
  const failure = result.error === undefined ? undefined : failureOf(result.error, c, start)
  return {
    acks: result.acks,
    sentTo: result.sentTo,
    fellBack: result.fellBack,
    ms: performance.now() - start,
    timedOut: failure?.timedOut ?? false,
    ...(failure === undefined ? {} : { error: failure.error }),
  }
}

export interface GetOutcome {
  /** `get` returned the value put. */
  found: boolean
  ms: number
  /** Until the first network answer carrying the record (absent when none came). */
  firstValueMs?: number
  /** Hops to that first answer. */
  hops?: number
  /** Found only in the getter's own store (it was one of the peers the value was put at). */
  localOnly: boolean
  queried: number
  /** Network answers that carried the record, whether or not the call then returned it. */
  answersWithRecord: number
  timedOut: boolean
  error?: string
}

/** Which `get` a lookup runs: the node's (`dhtGet`) or kad-dht's own, which yields only when its query ends. */
export type GetImpl = 'donghae' | 'kad-dht'

/**
 * `get` as a Donghae node runs it (`dhtGet`, src/net/dht-get.ts, what `resolveDid` calls): it ends
 * once DHT_GET_QUORUM peers sent the record, or with the best answer seen when the lookup timeout
 * ends first. With `impl` 'kad-dht', the same query runs to its end and counts as found only if it
 * ended before the timeout, as kad-dht's own `get` (the same-run baseline of the bench).
 */
export async function getOp(
  getter: SimNode,
  key: Uint8Array,
  value: Uint8Array,
  c: NodeConfig,
  signal?: AbortSignal,
  impl: GetImpl = 'donghae',
): Promise<GetOutcome> {
  const trace = new QueryTrace(startingPeers(getter, key, c.k))
  const start = performance.now()
  let first: { at: number; from: string } | undefined
  let answersWithRecord = 0
  const result = await dhtGet(getter.services.dht, key, {
    accept: (bytes) => bytes,
    better: () => false, // one writer, one value: every answer agrees
    ...(impl === 'kad-dht' ? { quorum: Infinity } : {}),
    signal: lookupSignal(c, signal),
    onEvent: (event) => {
      trace.record(event)
      if (event.name === 'PEER_RESPONSE' && event.record !== undefined) {
        answersWithRecord++
        first ??= { at: performance.now(), from: event.from.toString() }
      }
    },
  })
  signal?.throwIfAborted()
  const failure = result.error === undefined ? undefined : failureOf(result.error, c, start)
  const ms = performance.now() - start
  const answered = impl === 'donghae' || (result.ended === 'exhausted' && result.error === undefined)
  const ok = answered && result.value !== undefined && sameBytes(result.value, value)
  return {
    found: ok,
    ms,
    ...(first === undefined ? {} : { firstValueMs: first.at - start, hops: trace.hopsTo(first.from) }),
    localOnly: ok && first === undefined,
    queried: trace.queried,
    answersWithRecord,
    timedOut: failure?.timedOut ?? false,
    ...(failure === undefined ? {} : { error: failure.error }),
  }
}

/** Whether `node` holds a record under `key` in its own DHT store. */
export async function holdsRecord(node: SimNode, key: Uint8Array): Promise<boolean> {
  const fetching = (
    node.services.dht as unknown as { contentFetching?: { getLocal(key: Uint8Array): Promise<unknown> } }
  ).contentFetching
  if (fetching === undefined) return false
  try {
    await fetching.getLocal(key)
    return true
  } catch {
    return false
  }
}

export function recordKey(seed: number, n: number): Uint8Array {
  return new TextEncoder().encode(`/${SIM_RECORD_NAMESPACE}/${seed}/${n}`)
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}
