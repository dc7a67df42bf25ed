/**
 * libp2p merges `{ protocols: [p] }` into the peer store on both sides of every negotiated stream
 * (libp2p's connection.js), so a peer's record says which protocols it speaks. Each merge takes
 * the peer's write lock, reads and decodes the record, merges, encodes and compares: about a tenth
 * of an idle node's main thread in its first minute, where every gossip, DHT, ping and sync stream
 * is new, though after the first stream on a protocol the record already lists it.
 *
 * `skipKnownProtocolMerges` remembers, per peer, the protocols the record listed after its last
 * write (any save, patch or merge through the store returns the record), and answers a merge that
 * only adds protocols already listed at once. Every write refreshes what is remembered, a delete
 * forgets it, and an entry older than `ttlMs` is not trusted, so a record changed behind the
 * store's back (a peer expired on a read) is merged again within that time.
 */
import type { Peer, PeerData, PeerId, PeerStore } from '@libp2p/interface'
import { systemClock, type Clock } from '../core/clock.ts'

/** How long a record's protocols are trusted without a write. */
export const PROTOCOL_MERGE_TTL_MS = 60_000
/** Peers remembered; the least recently written leave first. */
export const PROTOCOL_MERGE_PEERS = 1_024

interface Known {
  peer: Peer
  protocols: ReadonlySet<string>
  at: number
}

export interface ProtocolMergeStats {
  /** Merges answered from memory. */
  skipped: number
  /** Merges passed to the store. */
  merged: number
}

/** Installs the rule on `store` (the host's own peer store object); returns its counters. */
export function skipKnownProtocolMerges(
  store: PeerStore,
  options: { clock?: Pick<Clock, 'now'>; ttlMs?: number; maxPeers?: number } = {},
): ProtocolMergeStats {
  const clock = options.clock ?? systemClock
  const ttlMs = options.ttlMs ?? PROTOCOL_MERGE_TTL_MS
  const maxPeers = options.maxPeers ?? PROTOCOL_MERGE_PEERS
  const known = new Map<string, Known>()
  const stats: ProtocolMergeStats = { skipped: 0, merged: 0 }
  const remember = (peer: Peer): Peer => {
    const id = peer.id.toString()
    known.delete(id) // re-inserted last: the map's order is the eviction order
    known.set(id, { peer, protocols: new Set(peer.protocols), at: clock.now() })
    if (known.size > maxPeers) known.delete(known.keys().next().value as string)
    return peer
  }
  const merge = store.merge.bind(store)
  const save = store.save.bind(store)
  const patch = store.patch.bind(store)
  const remove = store.delete.bind(store)
  store.merge = async (id: PeerId, data: PeerData, opts?) => {
    const entry = known.get(id.toString())
    if (entry !== undefined && onlyKnownProtocols(data, entry.protocols) && clock.now() - entry.at < ttlMs) {
      stats.skipped++
      return entry.peer
    }
    stats.merged++
    return remember(await merge(id, data, opts))
  }
  store.save = async (id: PeerId, data: PeerData, opts?) => remember(await save(id, data, opts))
  store.patch = async (id: PeerId, data: PeerData, opts?) => remember(await patch(id, data, opts))
  store.delete = async (id: PeerId, opts?) => {
    known.delete(id.toString())
    await remove(id, opts)
  }
  return stats
}

/** `data` sets nothing but protocols, all of them in `protocols`. */
function onlyKnownProtocols(data: PeerData, protocols: ReadonlySet<string>): boolean {
  const keys = Object.keys(data)
  return (
    keys.length === 1 &&
    keys[0] === 'protocols' &&
    data.protocols !== undefined &&
    data.protocols.every((p) => protocols.has(p))
  )
}
