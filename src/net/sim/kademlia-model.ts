/**
 * A Kademlia routing **model** - not libp2p. It exists because a js-libp2p network of 500+ nodes
 * in one process on a small machine takes too long to be a routine benchmark (see `scale.ts` for
 * the real thing); its results are labelled `kind: 'kademlia-model'` and must never be reported as
 * libp2p measurements.
 *
 * What it models, with the parameters of the libp2p run:
 *  - 256-bit ids (sha256 of a seeded key, as kad-dht hashes peer ids), XOR distance;
 *  - routing tables of k-buckets, each holding at most k contacts and keeping old contacts over new
 *    ones (every node is alive, so pinging the oldest contact would always keep it). Two shapes:
 *    `kademlia` buckets by common prefix length with the owner (the paper's table), and
 *    `libp2p-trie` buckets by the first `prefixLength` bits of the contact's id (the shape of
 *    js-libp2p kad-dht 16's trie once split: up to 2^prefixLength × k contacts);
 *  - a node adds every peer that answers it and every peer that queries it;
 *  - joining as in the libp2p run (`planScaleSimulation`): node i knows one bootstrap node and a few
 *    earlier nodes, then looks itself up; after everyone has joined, each node looks itself up
 *    again and makes `warmupWalks` lookups of random ids;
 *  - iterative lookups: the querier starts from its k closest contacts and keeps alpha requests in
 *    flight to the closest contacts it has not asked yet, among the k closest it knows; it stops
 *    when those k have all answered. A `findPeer` ends when the target is named in an answer (or
 *    answers itself); a value `get` is answered by any of the k nodes the value was stored at.
 *  - latency: every message (request or response) takes a one-way delay drawn uniformly from
 *    [latencyMs / 2, 3 × latencyMs / 2]; processing takes no time; no message is lost; no churn.
 *
 * Hops are counted as in `trace.ts`: the length of the shortest referral chain to the node that
 * gave the answer, 1 being a node from the querier's own table.
 */
import { createHash } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { createRng } from '../../chain/sim/index.ts'
import { SIM_ALPHA, SIM_BOOTSTRAP_NODES, SIM_INITIAL_PEERS, SIM_K, SIM_WARMUP_WALKS } from './constants.ts'
import { SimulationOptionsError } from './errors.ts'
import { planScaleSimulation, type LookupStats } from './scale.ts'
import { summarize, type Summary } from './stats.ts'

export type ModelTable = 'kademlia' | 'libp2p-trie'

export interface KademliaModelOptions {
  nodes: number
  seed: number
  /** `findPeer` lookups, and as many values stored and read back. */
  lookups: number
  /** Mean one-way message latency. @default 25 */
  latencyMs?: number
  /** @default 20 */
  k?: number
  /** @default 3 */
  alpha?: number
  /** @default 'kademlia' */
  table?: ModelTable
  /** Trie depth of the `libp2p-trie` table (js-libp2p's `prefixLength`). @default 6 */
  prefixLength?: number
  /** @default 3 */
  bootstrapNodes?: number
  /** @default 3 */
  initialPeers?: number
  /** @default 0 */
  warmupWalks?: number
}

export interface KademliaModelResult {
  kind: 'kademlia-model'
  label: string
  nodes: number
  seed: number
  k: number
  alpha: number
  table: ModelTable
  latency: { meanOneWayMs: number; distribution: string }
  routingTablePerNode: Summary
  /** Until the target is named in an answer. */
  findPeer: LookupStats
  /** `latencyMs`: until the first answer carrying the value; `convergedMs`: until the lookup ends. */
  getValue: LookupStats & { convergedMs: Summary }
  /** Wall-clock time the model took to compute. */
  durationMs: number
}

interface ModelNode {
  id: bigint
  /** bucket index -> contacts (node indices), oldest first */
  buckets: Map<number, number[]>
  contacts: Set<number>
}

interface Net {
  nodes: ModelNode[]
  k: number
  alpha: number
  bucketOf: (owner: ModelNode, contact: ModelNode) => number
  latency: () => number
}

interface Outcome {
  /** Virtual time of the answer, or undefined when none came. */
  answeredAt?: number
  hops?: number
  convergedAt: number
  queried: number
  /** The k closest nodes that answered, closest first. */
  closest: number[]
}

const ID_BITS = 256

function idOf(bytes: Uint8Array): bigint {
  return BigInt(`0x${createHash('sha256').update(bytes).digest('hex')}`)
}

function bitLength(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length
}

function check(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) {
    throw new SimulationOptionsError(`${name} must be an integer \u2265 ${min}, got ${String(value)}`, {
      details: { option: name },
    })
  }
}

/** Runs the model; deterministic for a seed (it uses no wall clock except for `durationMs`). */
export function runKademliaModel(options: KademliaModelOptions): KademliaModelResult {
  const began = performance.now()
  const k = options.k ?? SIM_K
  const alpha = options.alpha ?? SIM_ALPHA
  const latencyMs = options.latencyMs ?? 25
  const table = options.table ?? 'kademlia'
  const prefixLength = options.prefixLength ?? 6
  const warmupWalks = options.warmupWalks ?? SIM_WARMUP_WALKS
  check('k', k, 1)
  check('alpha', alpha, 1)
  check('latencyMs', latencyMs, 0)
  check('prefixLength', prefixLength, 1)
  check('warmupWalks', warmupWalks, 0)
  const plan = planScaleSimulation({
    nodes: options.nodes,
    seed: options.seed,
    lookups: options.lookups,
    messages: 0,
    bootstrapNodes: options.bootstrapNodes ?? SIM_BOOTSTRAP_NODES,
    initialPeers: options.initialPeers ?? SIM_INITIAL_PEERS,
  })
  const rng = createRng(options.seed).fork('model')
  const delays = rng.fork('latency')
  const net: Net = {
    nodes: [],
    k,
    alpha,
    bucketOf:
      table === 'kademlia'
        ? (owner, contact) => ID_BITS - bitLength(owner.id ^ contact.id)
        : (_owner, contact) => Number(contact.id >> BigInt(ID_BITS - prefixLength)),
    latency: () => latencyMs * (0.5 + delays.next()),
  }
  const keys = createRng(options.seed).fork('keys')
  for (const [i, peers] of plan.joins.entries()) {
    net.nodes.push({ id: idOf(keys.bytes(32)), buckets: new Map(), contacts: new Set() })
    for (const peer of peers) {
      addContact(net, i, peer)
      addContact(net, peer, i)
    }
    lookup(net, i, (net.nodes[i] as ModelNode).id, {})
  }
  const walks = rng.fork('warmup')
  for (let i = 0; i < net.nodes.length; i++) {
    lookup(net, i, (net.nodes[i] as ModelNode).id, {})
    for (let w = 0; w < warmupWalks; w++) lookup(net, i, idOf(walks.bytes(32)), {})
  }

  const findPeer = measure(plan.findPeer.map(([q, t]) => lookup(net, q, (net.nodes[t] as ModelNode).id, { target: t })))
  const values = rng.fork('values')
  const gets = plan.getValue.map(([p, g]) => {
    const key = idOf(values.bytes(32))
    const holders = new Set(lookup(net, p, key, {}).closest)
    holders.add(p)
    return lookup(net, g, key, { holders })
  })
  const getValue = { ...measure(gets), convergedMs: summarize(gets.map((o) => o.convergedAt)) }
  return {
    kind: 'kademlia-model',
    label: `Kademlia routing model of ${net.nodes.length} nodes (not libp2p: simulated ${table} tables and message latency)`,
    nodes: net.nodes.length,
    seed: options.seed,
    k,
    alpha,
    table,
    latency: {
      meanOneWayMs: latencyMs,
      distribution: 'uniform [latencyMs/2, 3·latencyMs/2] per message, request and response drawn apart',
    },
    routingTablePerNode: summarize(net.nodes.map((node) => node.contacts.size)),
    findPeer,
    getValue,
    durationMs: Math.round(performance.now() - began),
  }
}

function measure(outcomes: readonly Outcome[]): LookupStats {
  const answered = outcomes.filter((o) => o.answeredAt !== undefined)
  return {
    attempted: outcomes.length,
    succeeded: answered.length,
    successRate: outcomes.length === 0 ? 0 : Number((answered.length / outcomes.length).toFixed(4)),
    latencyMs: summarize(answered.map((o) => o.answeredAt as number)),
    hops: summarize(answered.map((o) => o.hops as number)),
    queried: summarize(outcomes.map((o) => o.queried)),
  }
}

/** `owner` learns of `contact`: added if its bucket has room (old contacts are kept). */
function addContact(net: Net, owner: number, contact: number): void {
  const node = net.nodes[owner] as ModelNode
  if (owner === contact || node.contacts.has(contact)) return
  const index = net.bucketOf(node, net.nodes[contact] as ModelNode)
  const bucket = node.buckets.get(index) ?? []
  if (bucket.length >= net.k) return
  bucket.push(contact)
  node.buckets.set(index, bucket)
  node.contacts.add(contact)
}

/** The `count` contacts of `owner` closest to `key`, closest first, without `exclude`. */
function closestContacts(net: Net, owner: number, key: bigint, count: number, exclude: number): number[] {
  const node = net.nodes[owner] as ModelNode
  return [...node.contacts]
    .filter((c) => c !== exclude)
    .map((c) => ({ c, d: (net.nodes[c] as ModelNode).id ^ key }))
    .sort((a, b) => (a.d < b.d ? -1 : a.d > b.d ? 1 : 0))
    .slice(0, count)
    .map(({ c }) => c)
}

interface Candidate {
  node: number
  distance: bigint
  depth: number
  state: 'new' | 'asked' | 'answered'
}

/**
 * One iterative lookup of `key` by `querier` on a virtual clock starting at 0. `target`: a node
 * lookup answered when that node is named; `holders`: a value lookup answered by any holder.
 */
function lookup(net: Net, querier: number, key: bigint, goal: { target?: number; holders?: Set<number> }): Outcome {
  const known = new Map<number, Candidate>()
  const learn = (node: number, depth: number): void => {
    const seen = known.get(node)
    if (seen === undefined) {
      known.set(node, { node, distance: (net.nodes[node] as ModelNode).id ^ key, depth, state: 'new' })
    } else if (depth < seen.depth) seen.depth = depth
  }
  for (const c of closestContacts(net, querier, key, net.k, -1)) learn(c, 1)
  const inFlight: Array<{ node: number; at: number }> = []
  let now = 0
  let queried = 0
  let answeredAt: number | undefined
  let hops: number | undefined
  const closestK = (): Candidate[] =>
    [...known.values()].sort((a, b) => (a.distance < b.distance ? -1 : a.distance > b.distance ? 1 : 0)).slice(0, net.k)
  for (;;) {
    for (const candidate of closestK()) {
      if (inFlight.length >= net.alpha) break
      if (candidate.state !== 'new') continue
      candidate.state = 'asked'
      queried++
      addContact(net, candidate.node, querier) // the queried node hears from the querier
      inFlight.push({ node: candidate.node, at: now + net.latency() + net.latency() })
    }
    if (inFlight.length === 0) break
    inFlight.sort((a, b) => a.at - b.at)
    const { node: responder, at } = inFlight.shift() as { node: number; at: number }
    now = at
    const candidate = known.get(responder) as Candidate
    candidate.state = 'answered'
    addContact(net, querier, responder)
    const named = closestContacts(net, responder, key, net.k, querier)
    for (const c of named) learn(c, candidate.depth + 1)
    if (answeredAt === undefined) {
      const found =
        (goal.target !== undefined && (responder === goal.target || named.includes(goal.target))) ||
        (goal.holders?.has(responder) ?? false)
      if (found) {
        answeredAt = now
        hops = candidate.depth
        if (goal.target !== undefined) break // findPeer returns at the first answer
      }
    }
  }
  const closest = closestK()
    .filter((c) => c.state === 'answered')
    .map((c) => c.node)
  return { answeredAt, hops, convergedAt: now, queried, closest }
}
