/**
 * A DHT `put` that stores the record even when its lookup cannot end within the budget.
 *
 * kad-dht's own `put` stores the record locally, looks up the k peers closest to the key, and only
 * when that lookup has ended sends PUT_VALUE to them: a lookup held by a peer that never answers
 * (kad-dht waits at least 5 s for each request), or by peers too busy to answer, that runs past
 * the caller's budget sends the record to nobody. Here, if kad-dht's lookup has not reached its
 * PUT_VALUE step by half the budget, it is stopped and the record goes to the k closest peers that
 * had answered it by then, with the rest of the budget. Those are the peers the lookup had
 * converged on so far, so a later lookup of the key passes by them; when the lookup ends in time,
 * kad-dht's own put runs unchanged.
 *
 * kad-dht has no public call that sends one request to one peer: `network.sendRequest` of its
 * class is used, and `assertKadInternals` (called by createHost) refuses to start a node whose
 * kad-dht lacks it, so a kad-dht release that moves it fails at start, not silently at a put.
 */
import type { PeerId } from '@libp2p/interface'
import { MessageType, Record as DhtRecord, type KadDHT, type QueryEvent } from '@libp2p/kad-dht'
import { systemClock, type Clock } from '../core/clock.ts'
import { equals } from '../core/bytes.ts'
import { ConfigError } from '../core/errors.ts'
import { sha256 } from '../core/hash.ts'

/** kad-dht's k: the peers a record is put at. */
export const DHT_PUT_PEERS = 20

interface KadNetwork {
  sendRequest(
    to: PeerId,
    message: { type: MessageType; key: Uint8Array; record: Uint8Array },
    options: { signal: AbortSignal; path: { index: number; queued: number; running: number; total: number } },
  ): AsyncIterable<QueryEvent>
}

function kadNetwork(dht: unknown): KadNetwork | undefined {
  const network = (dht as { network?: Partial<KadNetwork> } | undefined)?.network
  return typeof network?.sendRequest === 'function' ? (network as KadNetwork) : undefined
}

/** Throws a ConfigError when `dht` lacks the one internal `dhtPut` uses (module comment). */
export function assertKadInternals(dht: unknown): void {
  if (kadNetwork(dht) === undefined) throw missingInternals()
}

function missingInternals(): ConfigError {
  return new ConfigError(
    'this @libp2p/kad-dht has no network.sendRequest: DHT puts could not fall back to the peers found in time (src/net/dht-put.ts)',
  )
}

export interface DhtPutOptions {
  /** The put's whole budget, ms: the lookup gets half of it before the record goes to the peers it found. */
  budgetMs: number
  /** Ends the put early (the node stopping). */
  signal?: AbortSignal
  clock?: Clock
  /** Every event, kad-dht's and the fallback's, as it comes (tracing, counting). */
  onEvent?(event: QueryEvent): void
}

export interface DhtPutResult {
  /** Peers that acknowledged the record (answered PUT_VALUE with it). */
  acks: number
  /** Peers PUT_VALUE was sent to. */
  sentTo: number
  /** The lookup did not end within half the budget: the record went to the peers it had found. */
  fellBack: boolean
  /** What ended kad-dht's put or the fallback early (the budget, an error), if anything did. */
  error?: unknown
}

/** Puts `value` under `key` (module comment). The record is stored locally first, as kad-dht does. */
export async function dhtPut(
  dht: Pick<KadDHT, 'put'>,
  key: Uint8Array,
  value: Uint8Array,
  options: DhtPutOptions,
): Promise<DhtPutResult> {
  const clock = options.clock ?? systemClock
  const network = kadNetwork(dht)
  if (network === undefined) throw missingInternals()
  const budget = new AbortController()
  const lookup = new AbortController()
  const cancelBudget = clock.setTimer(options.budgetMs, () =>
    budget.abort(new DOMException(`the put's ${options.budgetMs} ms ended`, 'TimeoutError')),
  )
  const outer = options.signal === undefined ? budget.signal : AbortSignal.any([options.signal, budget.signal])
  const responders = new Map<string, PeerId>()
  let putting = false
  let fellBack = false
  let acks = 0
  let sentTo = 0
  const count = (event: QueryEvent): void => {
    options.onEvent?.(event)
    if (event.name === 'SEND_QUERY' && event.messageName === 'PUT_VALUE') {
      putting = true
      sentTo++
    }
    if (
      event.name === 'PEER_RESPONSE' &&
      event.messageName === 'PUT_VALUE' &&
      event.record !== undefined &&
      equals(event.record.value, value)
    )
      acks++
    if (event.name === 'PEER_RESPONSE' && event.messageName === 'FIND_NODE')
      responders.set(event.from.toString(), event.from)
  }
  const cancelHalf = clock.setTimer(Math.floor(options.budgetMs / 2), () => {
    if (putting) return
    fellBack = true
    lookup.abort(new DOMException('the lookup ran past half the budget', 'TimeoutError'))
  })
  let error: unknown
  try {
    for await (const event of dht.put(key, value, { signal: AbortSignal.any([outer, lookup.signal]) })) count(event)
  } catch (err) {
    if (!fellBack || outer.aborted) error = err
  } finally {
    cancelHalf()
  }
  try {
    if (fellBack && !outer.aborted) {
      const record = new DhtRecord(key, value, new Date()).serialize()
      const closest = closestTo(key, [...responders.values()], DHT_PUT_PEERS)
      const path = { index: -1, queued: 0, running: 0, total: 0 }
      const request = { type: MessageType.PUT_VALUE, key, record }
      // all at once: a peer that answered the lookup but holds PUT_VALUE open takes no one's turn
      await Promise.all(
        closest.map(async (peer) => {
          for await (const event of network.sendRequest(peer, request, { signal: outer, path })) count(event)
        }),
      )
      if (outer.aborted) error = outer.reason
    }
  } finally {
    cancelBudget()
  }
  return { acks, sentTo, fellBack, ...(error === undefined ? {} : { error }) }
}

/** The `count` peers of `peers` closest to `key` in kad-dht's key space (XOR of SHA-256 ids). */
function closestTo(key: Uint8Array, peers: PeerId[], count: number): PeerId[] {
  const target = sha256(key)
  const distance = (peer: PeerId): Uint8Array => {
    const id = sha256(peer.toMultihash().bytes)
    for (let i = 0; i < id.length; i++) id[i] = (id[i] as number) ^ (target[i] as number)
    return id
  }
  return peers
    .map((peer) => ({ peer, d: distance(peer) }))
    .sort((a, b) => Buffer.compare(a.d, b.d))
    .slice(0, count)
    .map((entry) => entry.peer)
}
