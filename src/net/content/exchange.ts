/**
 * Fetching blocks over bitswap from several peers at once, each block from one peer.
 *
 * Helia's own bitswap client sends every want to every connected peer (`want`), or asks every
 * session peer for every block (sessions), so each peer that has a block sends it: with three
 * peers a file crosses the network three times. Here each block is asked of one peer - the
 * candidate with the fewest blocks in flight, so faster peers are given more - with a window of
 * blocks in flight per peer. Peers answer through the node's ordinary bitswap server (Helia's
 * `@helia/bitswap` on the same libp2p host), so any bitswap peer, a stock Helia or kubo node
 * included, can serve a Donghae fetch, and messages go out and come in through that bitswap
 * instance's network layer (`/ipfs/bitswap/1.2.0`).
 *
 * Every block that arrives is hashed (bitswap's want list names it by the CID of its bytes' hash)
 * and goes only to the want with that digest: bytes that hash to nothing this node asked that
 * peer for are invalid, and that peer is dropped from the fetch (its other blocks are asked of
 * other peers). The store checks each block against its CID once more before writing it. A peer that says it does not have a
 * block (DONT_HAVE), does not answer within `blockTimeoutMs`, or disconnects, has the block asked
 * of another; a block no peer has is asked again every `retryMs` until the fetch `stallMs` without
 * a block arriving, and then fails with `ContentUnavailableError`.
 */
import type { AbortOptions, Libp2p, PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import { AbortError, describeError } from '../../core/errors.ts'
import type { Logger } from '../../core/logger.ts'
import { ContentUnavailableError } from './errors.ts'

/** The bitswap protocol Helia serves and speaks. */
export const BITSWAP_PROTOCOL = '/ipfs/bitswap/1.2.0'
const SHA2_256 = 0x12

/** A want-list entry as `@helia/bitswap`'s network layer encodes it. */
interface WantEntry {
  cid: Uint8Array
  priority: number
  cancel: boolean
  wantType: 'WantBlock'
  sendDontHave: boolean
}

/** An outgoing message in the shape `@helia/bitswap` 4's `Network.sendMessage` takes (its QueuedBitswapMessage). */
interface OutgoingMessage {
  full: boolean
  pendingBytes: number
  wantlist: Map<string, WantEntry>
  blocks: Map<string, never>
  blockPresences: Map<string, never>
}

/** A block that arrived, as `@helia/bitswap`'s want list reports it: `cid` is computed from the bytes' hash. */
interface BlockEvent {
  sender: PeerId
  cid: CID
  block: Uint8Array
}

/** A HAVE or DONT_HAVE that arrived. */
interface PresenceEvent {
  sender: PeerId
  cid: CID
  has: boolean
  block?: Uint8Array
}

/**
 * The parts of `@helia/bitswap` 4's `Bitswap` used here: its network layer sends want lists, and
 * its want list, which hashes every block that arrives and names it by the CID of that hash,
 * reports blocks and presences.
 */
export interface BitswapParts {
  network: { sendMessage(peer: PeerId, message: OutgoingMessage, options?: AbortOptions): Promise<void> }
  wantList: {
    addEventListener(type: 'block' | 'presence', listener: (evt: CustomEvent) => void): void
    removeEventListener(type: 'block' | 'presence', listener: (evt: CustomEvent) => void): void
  }
}

export function isBitswapParts(value: unknown): value is BitswapParts {
  const v = value as { network?: { sendMessage?: unknown }; wantList?: { addEventListener?: unknown } } | undefined
  return typeof v?.network?.sendMessage === 'function' && typeof v.wantList?.addEventListener === 'function'
}

/** The map key of a sha2-256 CID: its digest in hex (the codec does not matter to a block's bytes). */
export function blockKey(cid: CID): string {
  return Buffer.from(cid.multihash.digest).toString('hex')
}

export interface SessionOptions {
  /** The peers that may be asked; called again as peers come and go. */
  peers(): PeerId[]
  /** Blocks in flight from one peer. @default 16 */
  perPeer?: number
  /** Blocks in flight in all. @default 48 */
  maxInFlight?: number
  /** A peer that has not answered a want in this time is asked no more for that block for now. @default 20 000 ms */
  blockTimeoutMs?: number
  /** A fetch with no block arriving for this long fails. @default 60 000 ms */
  stallMs?: number
  /** A block no candidate had is asked again after this. @default 1 000 ms */
  retryMs?: number
  signal?: AbortSignal
}

export const SESSION_DEFAULTS = Object.freeze({
  perPeer: 16,
  maxInFlight: 48,
  blockTimeoutMs: 20_000,
  stallMs: 60_000,
  retryMs: 1_000,
})

interface Want {
  cid: CID
  key: string
  resolve(block: { bytes: Uint8Array; from: PeerId }): void
  reject(err: unknown): void
  /** The peer asked now, and when. */
  peer?: PeerId
  sentAt: number
  /** Peers that lacked it or did not answer, and until when they are not asked again. */
  skip: Map<string, number>
}

/** What one fetch saw of each peer: blocks delivered, DONT_HAVEs, timeouts, invalid blocks. */
export interface PeerTally {
  blocks: number
  bytes: number
  dontHave: number
  timeouts: number
  invalid: number
}

/**
 * The blocks of one fetch: `get(cid)` resolves with verified bytes and the peer that sent them.
 * At most `perPeer` blocks are in flight from a peer and `maxInFlight` in all; the rest wait.
 */
export class BlockSession {
  readonly tally = new Map<string, PeerTally>()
  readonly #exchange: BlockExchange
  readonly #o: Required<Omit<SessionOptions, 'signal'>> & { signal?: AbortSignal }
  readonly #wants = new Map<string, Want>()
  readonly #queue: Want[] = []
  readonly #inFlight = new Map<string, Set<Want>>()
  readonly #dropped = new Map<string, number>()
  readonly #timer: NodeJS.Timeout
  readonly #onAbort: () => void
  #lastBlock = Date.now()
  #turn = 0
  #closed = false

  constructor(exchange: BlockExchange, options: SessionOptions) {
    this.#exchange = exchange
    this.#o = {
      peers: options.peers,
      perPeer: options.perPeer ?? SESSION_DEFAULTS.perPeer,
      maxInFlight: options.maxInFlight ?? SESSION_DEFAULTS.maxInFlight,
      blockTimeoutMs: options.blockTimeoutMs ?? SESSION_DEFAULTS.blockTimeoutMs,
      stallMs: options.stallMs ?? SESSION_DEFAULTS.stallMs,
      retryMs: options.retryMs ?? SESSION_DEFAULTS.retryMs,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    }
    this.#timer = setInterval(() => this.#tick(), Math.min(250, this.#o.retryMs))
    this.#onAbort = () => this.close(new AbortError('the fetch was aborted'))
    this.#o.signal?.addEventListener('abort', this.#onAbort, { once: true })
  }

  /** The block's bytes (their sha2-256 digest is the CID's) and who sent them. */
  get(cid: CID, options: { first?: boolean } = {}): Promise<{ bytes: Uint8Array; from: PeerId }> {
    if (this.#closed) return Promise.reject(new AbortError('the fetch is over'))
    const key = blockKey(cid)
    const known = this.#wants.get(key)
    if (known !== undefined)
      return new Promise((resolve, reject) => {
        const { resolve: r0, reject: j0 } = known
        known.resolve = (b) => (r0(b), resolve(b))
        known.reject = (e) => (j0(e), reject(e))
      })
    return new Promise((resolve, reject) => {
      const want: Want = { cid, key, resolve, reject, sentAt: 0, skip: new Map() }
      this.#wants.set(key, want)
      if (options.first === true) this.#queue.unshift(want)
      else this.#queue.push(want)
      if (this.#wants.size === 1) this.#lastBlock = Date.now() // the stall clock runs while something is wanted
      this.#pump()
    })
  }

  /** Ends the session: pending gets are rejected with `reason`, wants still out are cancelled. */
  close(reason: unknown = new AbortError('the fetch is over')): void {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#timer)
    this.#o.signal?.removeEventListener('abort', this.#onAbort)
    this.#exchange.detach(this)
    const cancels = new Map<string, { peer: PeerId; cids: CID[] }>()
    for (const want of this.#wants.values()) {
      if (want.peer !== undefined) {
        const entry = cancels.get(want.peer.toString()) ?? { peer: want.peer, cids: [] }
        entry.cids.push(want.cid)
        cancels.set(want.peer.toString(), entry)
      }
      want.reject(reason)
    }
    for (const { peer, cids } of cancels.values()) this.#exchange.cancel(peer, cids)
    this.#wants.clear()
    this.#queue.length = 0
    this.#inFlight.clear()
  }

  #count(peer: PeerId): PeerTally {
    const key = peer.toString()
    let t = this.tally.get(key)
    if (t === undefined) {
      t = { blocks: 0, bytes: 0, dontHave: 0, timeouts: 0, invalid: 0 }
      this.tally.set(key, t)
    }
    return t
  }

  #candidates(): PeerId[] {
    const now = Date.now()
    return this.#o.peers().filter((p) => (this.#dropped.get(p.toString()) ?? 0) <= now)
  }

  #load(peer: string): number {
    return this.#inFlight.get(peer)?.size ?? 0
  }

  /** Gives waiting wants to peers with room, fewest in flight first, and sends them. */
  #pump(): void {
    if (this.#closed || this.#queue.length === 0) return
    const peers = this.#candidates()
    if (peers.length === 0) return
    const now = Date.now()
    let total = 0
    for (const set of this.#inFlight.values()) total += set.size
    const batches = new Map<string, { peer: PeerId; wants: Want[] }>()
    for (let i = 0; i < this.#queue.length && total < this.#o.maxInFlight;) {
      if (peers.every((p) => this.#load(p.toString()) >= this.#o.perPeer)) break
      const want = this.#queue[i] as Want
      let best: PeerId | undefined
      let bestLoad = Infinity
      for (let j = 0; j < peers.length; j++) {
        const peer = peers[(j + this.#turn) % peers.length] as PeerId
        const key = peer.toString()
        if ((want.skip.get(key) ?? 0) > now) continue
        const load = this.#load(key)
        if (load < this.#o.perPeer && load < bestLoad) {
          best = peer
          bestLoad = load
        }
      }
      if (best === undefined) {
        i++
        continue
      }
      this.#turn++
      this.#queue.splice(i, 1)
      const key = best.toString()
      want.peer = best
      want.sentAt = now
      let set = this.#inFlight.get(key)
      if (set === undefined) this.#inFlight.set(key, (set = new Set()))
      set.add(want)
      total++
      const batch = batches.get(key) ?? { peer: best, wants: [] }
      batch.wants.push(want)
      batches.set(key, batch)
    }
    for (const { peer, wants } of batches.values()) {
      this.#exchange
        .want(
          peer,
          wants.map((w) => w.cid),
        )
        .catch((err: unknown) => {
          this.#exchange.log.debug({ peer: peer.toString(), err: describeError(err) }, 'bitswap want not sent')
          this.#drop(peer, 5_000)
        })
    }
  }

  /** Takes `want` back from the peer it was asked of (it waits for another). */
  #unassign(want: Want): void {
    if (want.peer === undefined) return
    this.#inFlight.get(want.peer.toString())?.delete(want)
    want.peer = undefined
  }

  /** Stops asking `peer` for `ms`; what it was asked goes to the others. */
  #drop(peer: PeerId, ms: number): void {
    const key = peer.toString()
    this.#dropped.set(key, Date.now() + ms)
    const wants = [...(this.#inFlight.get(key) ?? [])]
    for (const want of wants) {
      this.#unassign(want)
      this.#queue.unshift(want)
    }
    this.#pump()
  }

  /** A block arrived; 'accepted' when this session wanted it, 'late' when it was asked here before. */
  onBlock(peer: PeerId, key: string, bytes: Uint8Array): 'accepted' | 'unknown' {
    const want = this.#wants.get(key)
    if (want === undefined) return 'unknown'
    this.#wants.delete(key)
    const asked = want.peer
    this.#unassign(want)
    const i = this.#queue.indexOf(want)
    if (i >= 0) this.#queue.splice(i, 1)
    if (asked !== undefined && !asked.equals(peer)) this.#exchange.cancel(asked, [want.cid])
    const t = this.#count(peer)
    t.blocks++
    t.bytes += bytes.byteLength
    this.#lastBlock = Date.now()
    want.resolve({ bytes, from: peer })
    this.#pump()
    return 'accepted'
  }

  /** `peer` says it does not have the block: ask another. */
  onDontHave(peer: PeerId, key: string): void {
    const want = this.#wants.get(key)
    if (want?.peer === undefined || !want.peer.equals(peer)) return
    this.#count(peer).dontHave++
    this.#unassign(want)
    want.skip.set(peer.toString(), Date.now() + this.#o.retryMs)
    this.#queue.unshift(want)
    this.#pump()
  }

  /** `peer` sent bytes that hash to nothing it was asked for: it is not asked again in this fetch. */
  onInvalid(peer: PeerId): void {
    if (this.#load(peer.toString()) === 0) return
    this.#count(peer).invalid++
    this.#exchange.log.warn({ peer: peer.toString() }, 'peer sent a block that matches nothing it was asked for')
    this.#drop(peer, Infinity)
  }

  /** `peer` left: its wants go to the others at once. */
  onPeerGone(peer: PeerId): void {
    if (this.#load(peer.toString()) > 0) this.#drop(peer, 1_000)
  }

  #tick(): void {
    if (this.#closed) return
    const now = Date.now()
    for (const [key, set] of this.#inFlight) {
      for (const want of [...set]) {
        if (now - want.sentAt < this.#o.blockTimeoutMs || want.peer === undefined) continue
        const peer = want.peer
        this.#count(peer).timeouts++
        this.#unassign(want)
        want.skip.set(key, now + this.#o.retryMs)
        this.#exchange.cancel(peer, [want.cid])
        this.#queue.unshift(want)
      }
    }
    if (this.#wants.size > 0 && now - this.#lastBlock > this.#o.stallMs) {
      const peers = this.#candidates().length
      this.close(
        new ContentUnavailableError(
          `no block arrived for ${Math.round(this.#o.stallMs / 1000)} s: ${this.#wants.size} block(s) still missing from ${peers} peer(s)`,
          { details: { missing: this.#wants.size, peers } },
        ),
      )
      return
    }
    this.#pump()
  }
}

/**
 * The store's bitswap client: one listener on the bitswap network for every fetch, routing each
 * block (by its hash) and each DONT_HAVE to the session that asked for it.
 */
export class BlockExchange {
  readonly log: Logger
  readonly #bitswap: BitswapParts
  readonly #libp2p: Libp2p
  readonly #sessions = new Set<BlockSession>()
  /** Digests asked of each peer lately, to tell a late duplicate from invalid bytes. */
  readonly #asked = new Map<string, Map<string, number>>()
  readonly #onBlock: (evt: CustomEvent) => void
  readonly #onPresence: (evt: CustomEvent) => void
  readonly #onDisconnect: (evt: CustomEvent<PeerId>) => void
  readonly #onIdentify: (evt: CustomEvent<{ peerId: PeerId; protocols: string[] }>) => void
  /** Whether a peer speaks bitswap, as identify said (a peer not identified yet is tried). */
  readonly #speaks = new Map<string, boolean>()
  #pruned = Date.now()

  constructor(bitswap: BitswapParts, libp2p: Libp2p, log: Logger) {
    this.#bitswap = bitswap
    this.#libp2p = libp2p
    this.log = log
    this.#onBlock = (evt) => this.#block(evt.detail as BlockEvent)
    this.#onPresence = (evt) => this.#presence(evt.detail as PresenceEvent)
    this.#onDisconnect = (evt) => {
      this.#speaks.delete(evt.detail.toString())
      for (const s of this.#sessions) s.onPeerGone(evt.detail)
    }
    this.#onIdentify = (evt) =>
      void this.#speaks.set(evt.detail.peerId.toString(), evt.detail.protocols.includes(BITSWAP_PROTOCOL))
    bitswap.wantList.addEventListener('block', this.#onBlock)
    bitswap.wantList.addEventListener('presence', this.#onPresence)
    libp2p.addEventListener('peer:disconnect', this.#onDisconnect)
    libp2p.addEventListener('peer:identify', this.#onIdentify)
    // peers identified before this store opened
    for (const peer of libp2p.getPeers())
      void libp2p.peerStore
        .get(peer)
        .then(
          (p) => p.protocols.length > 0 && this.#speaks.set(peer.toString(), p.protocols.includes(BITSWAP_PROTOCOL)),
        )
        .catch(() => {})
  }

  stop(): void {
    for (const s of [...this.#sessions]) s.close()
    this.#bitswap.wantList.removeEventListener('block', this.#onBlock)
    this.#bitswap.wantList.removeEventListener('presence', this.#onPresence)
    this.#libp2p.removeEventListener('peer:disconnect', this.#onDisconnect)
    this.#libp2p.removeEventListener('peer:identify', this.#onIdentify)
  }

  session(options: SessionOptions): BlockSession {
    const s = new BlockSession(this, options)
    this.#sessions.add(s)
    return s
  }

  detach(session: BlockSession): void {
    this.#sessions.delete(session)
  }

  /** Connected peers that speak bitswap (or have not said yet what they speak). */
  bitswapPeers(): PeerId[] {
    return this.#libp2p.getPeers().filter((p) => this.#speaks.get(p.toString()) !== false)
  }

  async want(peer: PeerId, cids: CID[]): Promise<void> {
    const now = Date.now()
    const peerKey = peer.toString()
    let asked = this.#asked.get(peerKey)
    if (asked === undefined) this.#asked.set(peerKey, (asked = new Map()))
    for (const cid of cids) asked.set(blockKey(cid), now)
    this.#prune(now)
    await this.#send(
      peer,
      cids.map((cid) => ({ cid: cid.bytes, priority: 1, cancel: false, wantType: 'WantBlock', sendDontHave: true })),
    )
  }

  /** Withdraws wants from `peer` (after a DONT_HAVE, a timeout, or the block came from elsewhere). */
  cancel(peer: PeerId, cids: CID[]): void {
    this.#send(
      peer,
      cids.map((cid) => ({ cid: cid.bytes, priority: 0, cancel: true, wantType: 'WantBlock', sendDontHave: false })),
    ).catch(() => {}) // a peer that is gone has no wants left to cancel
  }

  async #send(peer: PeerId, entries: WantEntry[]): Promise<void> {
    const wantlist = new Map<string, WantEntry>()
    for (const entry of entries) wantlist.set(Buffer.from(entry.cid).toString('base64'), entry)
    await this.#bitswap.network.sendMessage(
      peer,
      {
        full: false,
        pendingBytes: 0,
        wantlist,
        blocks: new Map<string, never>(),
        blockPresences: new Map<string, never>(),
      },
      { signal: AbortSignal.timeout(10_000) },
    )
  }

  #prune(now: number): void {
    if (now - this.#pruned < 30_000) return
    this.#pruned = now
    for (const [peer, asked] of this.#asked) {
      for (const [key, at] of asked) if (now - at > 120_000) asked.delete(key)
      if (asked.size === 0) this.#asked.delete(peer)
    }
  }

  /** A block arrived, named by the hash of its bytes: it goes to the session that wants that hash. */
  #block({ sender, cid, block }: BlockEvent): void {
    if (this.#sessions.size === 0) return
    const key = cid.multihash.code === SHA2_256 && cid.multihash.digest.byteLength === 32 ? blockKey(cid) : undefined
    if (key !== undefined) for (const s of this.#sessions) if (s.onBlock(sender, key, block) === 'accepted') return
    // asked of this peer lately (a duplicate after a timeout or a cancel): no harm done
    if (key !== undefined && this.#asked.get(sender.toString())?.has(key) === true) return
    for (const s of this.#sessions) s.onInvalid(sender)
  }

  #presence({ sender, cid, has }: PresenceEvent): void {
    if (has || cid.multihash.code !== SHA2_256) return
    const key = blockKey(cid)
    for (const s of this.#sessions) s.onDontHave(sender, key)
  }
}
