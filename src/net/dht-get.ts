/**
 * A DHT `get` that returns once enough peers agree, instead of when the whole query ends.
 *
 * kad-dht's own `get` yields its value only after every path of the query has finished: one peer
 * that accepts the request and never answers holds the caller until kad-dht's per-request timeout
 * (at least 5 s, growing with the peer's past delays), and a caller with a shorter budget gets
 * nothing although several peers already sent the record. Such a peer costs its operator nothing
 * (a stream left open), and on a loaded machine an honest peer behaves the same. Here each answer
 * that carries a record is decoded as it arrives; the query stops when `quorum` distinct peers
 * have sent a record that ranks with the best seen, and when the budget ends first, the best seen
 * is returned rather than nothing.
 *
 * The trade: a query that stops early may miss a newer record held only by peers not yet asked.
 * A record put by its owner goes to the k peers closest to its key, which are the ones a lookup
 * converges on, so the first agreeing answers are mostly theirs; an attacker who wants an old
 * (validly signed) record chosen must answer `quorum` times before any holder of the new one,
 * and records expire (a DID record within an hour, `recordTtlMs` in network.ts).
 */
import type { KadDHT, QueryEvent } from '@libp2p/kad-dht'

/** Distinct peers whose answers must agree before a lookup stops early. */
export const DHT_GET_QUORUM = 3

export interface DhtGetOptions<T> {
  /** Decodes and checks a record; undefined refuses it (it never counts). */
  accept(bytes: Uint8Array): T | undefined
  /** Whether `a` is a better record than `b` (a newer sequence number). Records that neither beats agree. */
  better(a: T, b: T): boolean
  /** @default DHT_GET_QUORUM */
  quorum?: number
  /** Ends the lookup; the best record seen by then is returned. */
  signal?: AbortSignal
  /** Every event of the query, as it comes (tracing, counting). */
  onEvent?(event: QueryEvent): void
}

export interface DhtGetResult<T> {
  /** The best record seen, or undefined when none came. */
  value: T | undefined
  /** Distinct peers (this node included, for its own copy) that sent a record agreeing with `value`. */
  agreeing: number
  /** Why the lookup ended: enough peers agreed, the query ran out of peers, or the budget ended. */
  ended: 'quorum' | 'exhausted' | 'aborted'
  /** The error that ended the query, when it was not the quorum (a timeout, no peers). */
  error?: unknown
}

/** Looks `key` up in `dht`, returning early once `quorum` peers agree (module comment). */
export async function dhtGet<T>(
  dht: Pick<KadDHT, 'get'>,
  key: Uint8Array,
  options: DhtGetOptions<T>,
): Promise<DhtGetResult<T>> {
  const quorum = Math.max(1, options.quorum ?? DHT_GET_QUORUM)
  const stop = new AbortController()
  const signal = options.signal === undefined ? stop.signal : AbortSignal.any([options.signal, stop.signal])
  let best: T | undefined
  let agreeing = new Set<string>()
  const consider = (bytes: Uint8Array, from: string): void => {
    const value = options.accept(bytes)
    if (value === undefined) return
    if (best === undefined || options.better(value, best)) {
      best = value
      agreeing = new Set([from])
    } else if (!options.better(best, value)) {
      agreeing.add(from)
    }
  }
  try {
    for await (const event of dht.get(key, { signal })) {
      options.onEvent?.(event)
      // kad-dht checked the record against its validator before yielding the answer
      if (event.name === 'PEER_RESPONSE' && event.record !== undefined)
        consider(event.record.value, event.from.toString())
      // the query ended: its value is this node's own copy or one of the answers above
      else if (event.name === 'VALUE') consider(event.value, event.from.toString())
      if (agreeing.size >= quorum) {
        stop.abort()
        return { value: best, agreeing: agreeing.size, ended: 'quorum' }
      }
    }
    return { value: best, agreeing: agreeing.size, ended: 'exhausted' }
  } catch (err) {
    return { value: best, agreeing: agreeing.size, ended: signal.aborted ? 'aborted' : 'exhausted', error: err }
  }
}
