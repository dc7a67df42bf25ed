/**
 * What one DHT query's events say about its route. js-libp2p's kad-dht reports every request it
 * sends (`SEND_QUERY`) and every answer (`PEER_RESPONSE`, with the closer peers it names); from
 * those, `QueryTrace` rebuilds the referral graph: who told the querier about whom.
 *
 * **Hops** of a lookup = the length of the shortest referral chain that reaches the peer which gave
 * the answer, counting that peer. 1 means a peer from the querier's own routing table (one of the k
 * closest it starts from) answered; 2 means the answering peer was named by one of those; and so
 * on. It is the number of sequential request/response round trips on the successful path, which
 * is what bounds the latency when there is no queueing. A contacted peer that was neither among
 * the starting peers nor named by any responder (the routing table changed between the snapshot
 * and the query's start) counts as 1.
 */
import type { QueryEvent } from '@libp2p/kad-dht'

export class QueryTrace {
  readonly #start: ReadonlySet<string>
  readonly #queried = new Set<string>()
  /** responder -> the closer peers it named */
  readonly #referrals = new Map<string, string[]>()

  /** `startPeers`: the peers the query starts from (the querier's k closest to the key). */
  constructor(startPeers: Iterable<string>) {
    this.#start = new Set(startPeers)
  }

  record(event: QueryEvent): void {
    if (event.name === 'SEND_QUERY') this.#queried.add(event.to.toString())
    else if (event.name === 'PEER_RESPONSE') {
      this.#referrals.set(
        event.from.toString(),
        event.closer.map((peer) => peer.id.toString()),
      )
    }
  }

  /** Distinct peers the query sent a request to. */
  get queried(): number {
    return this.#queried.size
  }

  /** Hops to `peer` (see the module comment). */
  hopsTo(peer: string): number {
    const named = new Set<string>()
    for (const list of this.#referrals.values()) for (const id of list) named.add(id)
    const depth = new Map<string, number>()
    let frontier: string[] = []
    for (const id of [...this.#start, ...this.#queried]) {
      if (depth.has(id) || (!this.#start.has(id) && named.has(id))) continue
      depth.set(id, 1)
      frontier.push(id)
    }
    while (frontier.length > 0 && !depth.has(peer)) {
      const next: string[] = []
      for (const id of frontier) {
        for (const named of this.#referrals.get(id) ?? []) {
          if (depth.has(named)) continue
          depth.set(named, (depth.get(id) as number) + 1)
          next.push(named)
        }
      }
      frontier = next
    }
    return depth.get(peer) ?? 1
  }
}
