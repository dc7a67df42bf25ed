/**
 * The DHT phase of the libp2p scale simulation, the same in one process and across processes: the
 * nodes are reached through a `SimDriver` (in-process calls, or requests to worker processes), so
 * both modes run the same seeded lookups one at a time and diagnose failures the same way.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import { createRng } from '../../chain/sim/index.ts'
import { recordKey, sha256, type FindPeerOutcome, type GetImpl, type GetOutcome, type PutOutcome } from './node.ts'
import { summarize, type Summary } from './stats.ts'

/** What the DHT phase needs of a running network. */
export interface SimDriver {
  /** Peer id of node i. */
  readonly peerIds: readonly string[]
  findPeer(querier: number, target: number): Promise<FindPeerOutcome>
  put(putter: number, key: Uint8Array, value: Uint8Array): Promise<PutOutcome>
  get(getter: number, key: Uint8Array, value: Uint8Array, impl: GetImpl): Promise<GetOutcome>
  /** Whether each of `nodes` holds a record under `key`. */
  holds(nodes: readonly number[], key: Uint8Array): Promise<boolean[]>
}

export interface LookupStats {
  attempted: number
  succeeded: number
  successRate: number
  /** Failed lookups that ran into the lookup timeout (the Kademlia model has no timeout: absent). */
  timedOut?: number
  /** Milliseconds until the call returns, as the libp2p API call would. */
  latencyMs: Summary
  /** Successful lookups only; see `trace.ts`. */
  hops: Summary
  /** Distinct peers each lookup sent a request to. */
  queried: Summary
}

/** One failed `get`, with what it takes to tell why. */
export interface GetFailure {
  /** Index of the value in the plan. */
  value: number
  putter: number
  getter: number
  /** Peers that acknowledged the put. */
  putAcks: number
  /** Of the network's k closest nodes to the key (by XOR of sha256 ids), those holding the record. */
  kClosestHolding: number
  /** Network answers to the get that carried the record. */
  answersWithRecord: number
  queried: number
  ms: number
  timedOut: boolean
  error?: string
}

export interface FindPeerFailure {
  querier: number
  target: number
  queried: number
  ms: number
  timedOut: boolean
  error?: string
}

export interface PutStats {
  attempted: number
  /** Puts that at least one peer acknowledged. */
  succeeded: number
  latencyMs: Summary
  /** Acknowledgements per put (at most k). */
  acks: Summary
  /** Of the network's k closest nodes to each key, those holding the record once all puts are done. */
  kClosestHolding: Summary
  timedOut: number
  /** Puts whose lookup had not ended by half the timeout, so the record went to the peers found by then. */
  fellBack: number
}

export interface GetStats extends LookupStats {
  /** Until the first network answer carrying the record, where `hops` is measured. */
  firstValueMs: Summary
  /** Found only in the getter's own store (it was one of the peers the value was put at). */
  localOnly: number
  /** Values whose put reached no peer: not looked up. */
  unstored: number
  failures: GetFailure[]
}

export interface DhtMeasurements {
  findPeer: LookupStats & { failures: FindPeerFailure[] }
  put: PutStats
  /** `get` as a node runs it (`dhtGet`). */
  getValue: GetStats
  /** kad-dht's own `get` of the same values by the same getters, in the same run (the baseline). */
  getValueKad: GetStats
}

/** The seeded pairs the DHT phase uses (a subset of `ScalePlan`). */
export interface DhtPlan {
  findPeer: ReadonlyArray<readonly [number, number]>
  getValue: ReadonlyArray<readonly [number, number]>
}

export interface DhtPhaseOptions {
  seed: number
  k: number
  onPhase?: (phase: 'find-peer' | 'put' | 'get') => void
  signal?: AbortSignal
}

/** `findPeer` of every planned pair, then every value put and read back, one call at a time. */
export async function measureDht(driver: SimDriver, plan: DhtPlan, o: DhtPhaseOptions): Promise<DhtMeasurements> {
  o.onPhase?.('find-peer')
  const findPeer = await measureFindPeer(driver, plan, o)
  o.onPhase?.('put')
  const { put, values, acks } = await putValues(driver, plan, o)
  o.onPhase?.('get')
  const { getValue, getValueKad } = await measureGetValue(driver, plan, values, acks, o)
  return { findPeer, put, getValue, getValueKad }
}

function lookupStats(
  attempted: number,
  latency: number[],
  hops: number[],
  queried: number[],
  timedOut: number,
): LookupStats {
  return {
    attempted,
    succeeded: latency.length,
    successRate: attempted === 0 ? 0 : Number((latency.length / attempted).toFixed(4)),
    timedOut,
    latencyMs: summarize(latency),
    hops: summarize(hops),
    queried: summarize(queried),
  }
}

async function measureFindPeer(
  driver: SimDriver,
  plan: DhtPlan,
  o: DhtPhaseOptions,
): Promise<DhtMeasurements['findPeer']> {
  const latency: number[] = []
  const hops: number[] = []
  const queried: number[] = []
  const failures: FindPeerFailure[] = []
  for (const [q, t] of plan.findPeer) {
    o.signal?.throwIfAborted()
    const outcome = await driver.findPeer(q, t)
    queried.push(outcome.queried)
    if (!outcome.found) {
      failures.push({
        querier: q,
        target: t,
        queried: outcome.queried,
        ms: Math.round(outcome.ms),
        timedOut: outcome.timedOut,
        ...(outcome.error === undefined ? {} : { error: outcome.error }),
      })
      continue
    }
    latency.push(outcome.ms)
    hops.push(outcome.hops)
  }
  const timedOut = failures.filter((f) => f.timedOut).length
  return { ...lookupStats(plan.findPeer.length, latency, hops, queried, timedOut), failures }
}

interface PlannedValue {
  key: Uint8Array
  value: Uint8Array
  /** At least one peer acknowledged the put. */
  stored: boolean
}

/** The k nodes whose ids are XOR-closest to the key's (both hashed with sha256, as kad-dht does). */
class ClosestNodes {
  readonly #kadIds: Uint8Array[]

  constructor(peerIds: readonly string[]) {
    this.#kadIds = peerIds.map((id) => sha256(peerIdFromString(id).toMultihash().bytes))
  }

  of(key: Uint8Array, k: number): number[] {
    const target = sha256(key)
    const distance = (i: number): Uint8Array => (this.#kadIds[i] as Uint8Array).map((b, j) => b ^ (target[j] as number))
    const order = this.#kadIds.map((_, i) => ({ i, d: distance(i) }))
    order.sort((a, b) => compareBytes(a.d, b.d))
    return order.slice(0, k).map((entry) => entry.i)
  }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number)
  return 0
}

async function putValues(
  driver: SimDriver,
  plan: DhtPlan,
  o: DhtPhaseOptions,
): Promise<{ put: PutStats; values: PlannedValue[]; acks: number[] }> {
  const rng = createRng(o.seed).fork('values')
  const values: PlannedValue[] = []
  const latency: number[] = []
  const acks: number[] = []
  let timedOut = 0
  let fellBack = 0
  for (const [n, [p]] of plan.getValue.entries()) {
    o.signal?.throwIfAborted()
    const entry = { key: recordKey(o.seed, n), value: rng.bytes(32), stored: false }
    values.push(entry)
    const outcome = await driver.put(p, entry.key, entry.value)
    acks.push(outcome.acks)
    if (outcome.timedOut) timedOut++
    if (outcome.fellBack) fellBack++
    if (outcome.acks === 0) continue
    entry.stored = true
    latency.push(outcome.ms)
  }
  const closest = new ClosestNodes(driver.peerIds)
  const holding: number[] = []
  for (const entry of values) {
    if (!entry.stored) continue
    const held = await driver.holds(closest.of(entry.key, o.k), entry.key)
    holding.push(held.filter(Boolean).length)
  }
  return {
    put: {
      attempted: plan.getValue.length,
      succeeded: latency.length,
      latencyMs: summarize(latency),
      acks: summarize(acks),
      kClosestHolding: summarize(holding),
      timedOut,
      fellBack,
    },
    values,
    acks,
  }
}

/** What the gets of one implementation add up to. */
class GetTally {
  readonly latency: number[] = []
  readonly firstValue: number[] = []
  readonly hops: number[] = []
  readonly queried: number[] = []
  readonly failures: GetFailure[] = []
  localOnly = 0

  stats(attempted: number, unstored: number): GetStats {
    const timedOut = this.failures.filter((f) => f.timedOut).length
    return {
      ...lookupStats(attempted, this.latency, this.hops, this.queried, timedOut),
      firstValueMs: summarize(this.firstValue),
      localOnly: this.localOnly,
      unstored,
      failures: this.failures,
    }
  }
}

/**
 * Every stored value is read back twice by its getter: with the node's `get` and with kad-dht's
 * own, in turns (the first of the two every other value), so neither always finds the connections
 * the other opened.
 */
async function measureGetValue(
  driver: SimDriver,
  plan: DhtPlan,
  values: readonly PlannedValue[],
  acks: readonly number[],
  o: DhtPhaseOptions,
): Promise<{ getValue: GetStats; getValueKad: GetStats }> {
  const tallies: Record<GetImpl, GetTally> = { donghae: new GetTally(), 'kad-dht': new GetTally() }
  let closest: ClosestNodes | undefined
  for (const [n, [p, g]] of plan.getValue.entries()) {
    o.signal?.throwIfAborted()
    const { key, value, stored } = values[n] as PlannedValue
    if (!stored) continue
    const order: GetImpl[] = n % 2 === 0 ? ['donghae', 'kad-dht'] : ['kad-dht', 'donghae']
    for (const impl of order) {
      const tally = tallies[impl]
      const outcome = await driver.get(g, key, value, impl)
      tally.queried.push(outcome.queried)
      if (!outcome.found) {
        closest ??= new ClosestNodes(driver.peerIds)
        const held = await driver.holds(closest.of(key, o.k), key)
        tally.failures.push({
          value: n,
          putter: p,
          getter: g,
          putAcks: acks[n] ?? 0,
          kClosestHolding: held.filter(Boolean).length,
          answersWithRecord: outcome.answersWithRecord,
          queried: outcome.queried,
          ms: Math.round(outcome.ms),
          timedOut: outcome.timedOut,
          ...(outcome.error === undefined ? {} : { error: outcome.error }),
        })
        continue
      }
      tally.latency.push(outcome.ms)
      if (outcome.localOnly || outcome.firstValueMs === undefined || outcome.hops === undefined) {
        tally.localOnly++
        continue
      }
      tally.firstValue.push(outcome.firstValueMs)
      tally.hops.push(outcome.hops)
    }
  }
  const unstored = values.filter((entry) => !entry.stored).length
  const attempted = values.length - unstored
  return {
    getValue: tallies.donghae.stats(attempted, unstored),
    getValueKad: tallies['kad-dht'].stats(attempted, unstored),
  }
}
