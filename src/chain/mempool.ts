/**
 * The mempool: transactions waiting for a block. Admission is CheckTx (CometBFT) with the
 * Cosmos SDK ante handler's order, cheapest checks first so junk costs little:
 *
 *   duplicate -> shape (decode) -> chain, kind, fee floor, body, body against state -> nonce window (not stale, fewer
 *   than `maxPerSender` ahead) -> per-sender limit -> payable -> signature -> room (eviction)
 *
 * Payable: the sender's balance covers the cost (fee + what the body spends, `TxHandler.spends`)
 * of all its pending transactions plus this one. So an account with no money cannot place
 * anything, and whatever is pending can pay for itself when it is included. The signature comes
 * after the stateful checks (as the SDK's ante handler deducts the fee before verifying
 * signatures): an unfunded sender costs a state read, not an Ed25519 verification.
 *
 * When the pool is full, a new transaction that passed every check may evict the cheapest
 * transaction at the end of another sender's queue (never one in the middle, which would strand
 * the ones after it), and only if it pays a strictly higher fee. Transactions leave in
 * per-sender nonce order; after every block all pending transactions are re-checked against
 * the new state (CometBFT's recheck): stale nonces leave, and each sender's queue keeps only the
 * prefix its balance still pays for and whose fees still meet the floor (the fee floor is the
 * governed `chain.minFee` in force on the state, see host.ts).
 */
import { toHex } from '../core/bytes.ts'
import { MempoolError, TxError } from './errors.ts'
import { accountNonce, type BodySignature, type StateMachine } from './host.ts'
import type { StateReader } from './state-view.ts'
import { SparseMerkleTree } from './state/smt.ts'
import { decodeTx, txHash, verifyTxSignature, type SignedTx } from './tx.ts'

export interface MempoolOptions {
  /** @default 10 000 */
  maxTxs?: number
  /** @default 16 MiB */
  maxBytes?: number
  /** Most pending transactions per sender (also the largest nonce gap accepted). @default 64 */
  maxPerSender?: number
}

export interface PoolEntry {
  tx: SignedTx
  bytes: Uint8Array
  hash: Uint8Array
  id: string
  /** Fee + what the body spends: what the sender's balance must cover. */
  cost: bigint
  /** Labels of the body's signatures verified valid at admission (host.ts `TxContext.verified`). */
  verified?: ReadonlySet<string>
}

/** What admission found before the signature check (`Mempool.precheck`). */
export interface Prechecked {
  tx: SignedTx
  hash: Uint8Array
  cost: bigint
  /** The state it was checked against, and what it read there (for `add` to reuse). */
  state: StateReader
  next: bigint
  balance: bigint
}

/**
 * Hashes of recently committed transactions remembered, so that one a peer relays just after its
 * block is told apart (`already-included`) from a stale transaction.
 */
const RECENTLY_INCLUDED = 20_000

/**
 * Refusals that honest relaying causes under load, in races with blocks and with other peers (the
 * same transaction from two peers; one relayed just after it was committed): the runtime does not
 * count them against the relaying peer's budget of ignored transactions. They cost a decode and a
 * map lookup, less than the gossip message's own signature.
 */
export function isRelayRace(err: TxError): boolean {
  return err.reason === 'duplicate' || err.reason === 'already-included'
}

/**
 * A refusal because this node's pool is full (nothing pending pays less): this node's own state,
 * not the relaying peer's fault - a node that fell behind stays full while its peers, a block
 * ahead, relay what they made room for. It is decided before the signature (a decode and a few
 * state reads), and the runtime charges it a hundredth of an ignored transaction.
 */
export function isPoolFull(err: TxError): boolean {
  return err.reason === 'full'
}

interface SenderQueue {
  byNonce: Map<bigint, PoolEntry>
  /** Sum of the entries' costs. */
  cost: bigint
}

export class Mempool {
  readonly #machine: StateMachine
  readonly #maxTxs: number
  readonly #maxBytes: number
  readonly #maxPerSender: number
  readonly #byId = new Map<string, PoolEntry>()
  readonly #bySender = new Map<string, SenderQueue>()
  /** Ids of recently committed transactions, oldest first (at most RECENTLY_INCLUDED). */
  readonly #included = new Set<string>()
  #bytes = 0
  /** Pending transactions per fee, and the lowest fee pending (undefined: to be found again). */
  readonly #feeCounts = new Map<bigint, number>()
  #lowestFee: bigint | undefined

  constructor(machine: StateMachine, options: MempoolOptions = {}) {
    this.#machine = machine
    this.#maxTxs = options.maxTxs ?? 10_000
    this.#maxBytes = options.maxBytes ?? 16 * 1024 * 1024
    this.#maxPerSender = options.maxPerSender ?? 64
  }

  get size(): number {
    return this.#byId.size
  }

  get bytes(): number {
    return this.#bytes
  }

  /** How many transactions from `sender` are pending. */
  pendingFrom(sender: string): number {
    return this.#bySender.get(sender)?.byNonce.size ?? 0
  }

  /** What `sender`'s pending transactions cost together (fees + spends). */
  pendingCost(sender: string): bigint {
    return this.#bySender.get(sender)?.cost ?? 0n
  }

  /** The signatures `tx`'s body carries (settlement receipts), for admission to verify on the pool. */
  bodySignatures(tx: SignedTx): BodySignature[] {
    return this.#machine.bodySignatures(tx)
  }

  has(hash: Uint8Array): boolean {
    return this.#byId.has(toHex(hash))
  }

  /** The pending transaction with this hash, already decoded and signature-checked. */
  get(hash: Uint8Array): PoolEntry | undefined {
    return this.#byId.get(toHex(hash))
  }

  /**
   * Every admission check but the signature and the room in the pool. Throws TxError (or
   * MempoolError) with the reason and whether the sender of the gossip is to blame (`action`).
   */
  precheck(bytes: Uint8Array, state: StateReader, decoded?: SignedTx, earlier?: Prechecked): Prechecked {
    const hash = earlier?.hash ?? txHash(bytes)
    const id = toHex(hash)
    if (this.#byId.has(id))
      throw new MempoolError('duplicate', 'this transaction is already pending', { action: 'ignore' })
    if (this.#included.has(id))
      throw new MempoolError('already-included', 'this transaction is already in a block', { action: 'ignore' })
    // Checked a moment ago against this very tree (it never changes): what depends on the state
    // alone still holds; only what depends on the pool is checked again.
    const again = earlier !== undefined && earlier.state === state && state instanceof SparseMerkleTree
    const tx = again ? earlier.tx : (decoded ?? decodeTx(bytes))
    const cost = again ? earlier.cost : this.#machine.precheck(tx, state).cost
    const next = again ? earlier.next : accountNonce(state, tx.sender)
    if (tx.nonce < next)
      throw new TxError('stale-nonce', `nonce ${tx.nonce} was already used (next is ${next})`, { action: 'ignore' })
    if (tx.nonce - next >= BigInt(this.#maxPerSender))
      throw new MempoolError('nonce-too-far', `nonce ${tx.nonce} is too far ahead of the next one (${next})`, {
        action: 'ignore',
      })
    const queue = this.#bySender.get(tx.sender)
    const existing = queue?.byNonce.get(tx.nonce)
    if (existing !== undefined && tx.fee <= existing.tx.fee)
      throw new MempoolError('nonce-in-use', `nonce ${tx.nonce} is already pending; replace it with a higher fee`, {
        action: 'ignore',
      })
    if (existing === undefined && (queue?.byNonce.size ?? 0) >= this.#maxPerSender)
      throw new MempoolError('sender-limit', `at most ${this.#maxPerSender} pending transactions per sender`, {
        action: 'ignore',
      })
    const balance = again ? earlier.balance : this.#machine.balanceOf(state, tx.sender)
    const needed = (queue?.cost ?? 0n) - (existing?.cost ?? 0n) + cost
    // Not the sender's fault alone: a peer that has seen a later block may know a larger balance.
    if (needed > balance)
      throw new TxError(
        'insufficient-funds',
        `${tx.sender} has ${balance}, and its pending transactions with this one cost ${needed}`,
        { action: 'ignore' },
      )
    // A full pool where nothing pays less: refused here, before its signature is checked.
    if (existing === undefined && this.#full(bytes.length) && tx.fee <= this.#lowest())
      throw new MempoolError('full', 'the mempool is full; raise the fee', { action: 'ignore' })
    return { tx, hash, cost, state, next, balance }
  }

  /**
   * Admits an encoded transaction or throws a TxError/MempoolError saying why not. With
   * `signatureChecked` the caller has verified the signature (on the worker pool); `verified`:
   * the labels of the body signatures it verified valid (kept with the entry for execution).
   */
  add(
    bytes: Uint8Array,
    state: StateReader,
    options: {
      signatureChecked?: boolean
      decoded?: SignedTx
      verified?: ReadonlySet<string>
      /** This transaction's `precheck` a moment ago (the state checks are not repeated on the same tree). */
      prechecked?: Prechecked
    } = {},
  ): PoolEntry {
    const { tx, hash, cost } = this.precheck(bytes, state, options.decoded, options.prechecked)
    if (options.signatureChecked !== true && !verifyTxSignature(tx))
      throw new TxError('bad-signature', 'the signature does not verify for the sender')
    const existing = this.#bySender.get(tx.sender)?.byNonce.get(tx.nonce)
    const freed = existing === undefined ? 0 : 1
    const freedBytes = existing?.bytes.length ?? 0
    const victims: PoolEntry[] = []
    let count = this.#byId.size - freed
    let size = this.#bytes - freedBytes
    if (count + 1 > this.#maxTxs || size + bytes.length > this.#maxBytes) {
      const tails = this.#evictionOrder(tx.sender)
      while (count + 1 > this.#maxTxs || size + bytes.length > this.#maxBytes) {
        const victim = tails.shift()
        if (victim === undefined || victim.tx.fee >= tx.fee)
          throw new MempoolError('full', 'the mempool is full; raise the fee', { action: 'ignore' })
        victims.push(victim)
        count--
        size -= victim.bytes.length
      }
    }
    if (existing !== undefined) this.#remove(existing)
    for (const victim of victims) this.#remove(victim)
    const entry: PoolEntry = { tx, bytes, hash, id: toHex(hash), cost }
    if (options.verified !== undefined) entry.verified = options.verified
    this.#byId.set(entry.id, entry)
    this.#feeCounts.set(tx.fee, (this.#feeCounts.get(tx.fee) ?? 0) + 1)
    if (this.#lowestFee !== undefined && tx.fee < this.#lowestFee) this.#lowestFee = tx.fee
    let queue = this.#bySender.get(tx.sender)
    if (queue === undefined) {
      queue = { byNonce: new Map(), cost: 0n }
      this.#bySender.set(tx.sender, queue)
    }
    queue.byNonce.set(tx.nonce, entry)
    queue.cost += cost
    this.#bytes += bytes.length
    return entry
  }

  /** Whether `reap` would return anything: some sender's next nonce is pending (stops at the first). */
  hasReady(state: StateReader): boolean {
    for (const [sender, { byNonce }] of this.#bySender) if (byNonce.has(accountNonce(state, sender))) return true
    return false
  }

  /**
   * Up to `max` transactions that can run in order against `state`: each sender's run of
   * consecutive nonces from its next nonce; senders interleaved by fee, highest first.
   */
  reap(state: StateReader, max: number): PoolEntry[] {
    return [...this.inBlockOrder(state, max)]
  }

  /**
   * What `reap` returns, one at a time: each sender's runnable queue is read at the first call,
   * and each next entry costs one pass over the senders' heads, so a proposer that stops early
   * (its build budget spent) does not pay to order the rest. Dropping entries meanwhile is safe.
   */
  *inBlockOrder(state: StateReader, max: number): Generator<PoolEntry, void, undefined> {
    const queues: PoolEntry[][] = []
    for (const [sender, { byNonce }] of this.#bySender) {
      const queue: PoolEntry[] = []
      for (let nonce = accountNonce(state, sender); ; nonce++) {
        const entry = byNonce.get(nonce)
        if (entry === undefined) break
        queue.push(entry)
      }
      if (queue.length > 0) queues.push(queue)
    }
    const heads = queues.map(() => 0)
    for (let taken = 0; taken < max; taken++) {
      let best = -1
      for (let q = 0; q < queues.length; q++) {
        const head = (queues[q] as PoolEntry[])[heads[q] as number]
        if (head === undefined) continue
        const current = best === -1 ? undefined : (queues[best] as PoolEntry[])[heads[best] as number]
        if (
          current === undefined ||
          head.tx.fee > current.tx.fee ||
          (head.tx.fee === current.tx.fee && head.id < current.id)
        )
          best = q
      }
      if (best === -1) return
      const entry = (queues[best] as PoolEntry[])[heads[best] as number] as PoolEntry
      heads[best] = (heads[best] as number) + 1
      yield entry
    }
  }

  /**
   * After a block, re-checks every pending transaction against the new state (CometBFT's
   * recheck): those with used nonces leave (included ones among them), and each sender keeps,
   * in nonce order, only the transactions its balance still pays for and whose fee still meets
   * the floor (governance may have raised it). Signatures were checked at admission and do not
   * depend on state, so this costs a few state reads per sender. `included`: the hashes of the
   * block's transactions, remembered a while (a relayed copy is then `already-included`).
   */
  update(state: StateReader, included: readonly Uint8Array[] = []): void {
    for (const hash of included) {
      const id = toHex(hash)
      this.#included.delete(id)
      this.#included.add(id)
    }
    for (const id of this.#included) {
      if (this.#included.size <= RECENTLY_INCLUDED) break
      this.#included.delete(id)
    }
    const minFee = this.#machine.minFeeAt(state)
    for (const [sender, queue] of [...this.#bySender]) {
      const next = accountNonce(state, sender)
      const balance = this.#machine.balanceOf(state, sender)
      let spent = 0n
      let broke = false
      for (const entry of [...queue.byNonce.values()].sort((a, b) => (a.tx.nonce < b.tx.nonce ? -1 : 1))) {
        if (entry.tx.nonce < next) {
          this.#remove(entry)
          continue
        }
        // Once one is unpayable (or below the fee floor), so is what follows it (it could never run before it).
        broke ||= spent + entry.cost > balance || entry.tx.fee < minFee
        if (broke) this.#remove(entry)
        else spent += entry.cost
      }
    }
  }

  /** Removes one transaction (e.g. it failed while building a block). */
  drop(hash: Uint8Array): void {
    const entry = this.#byId.get(toHex(hash))
    if (entry !== undefined) this.#remove(entry)
  }

  /** Candidates for eviction: the last transaction of every other sender, cheapest first. */
  #evictionOrder(except: string): PoolEntry[] {
    const tails: PoolEntry[] = []
    for (const [sender, { byNonce }] of this.#bySender) {
      if (sender === except) continue
      let tail: PoolEntry | undefined
      for (const entry of byNonce.values()) if (tail === undefined || entry.tx.nonce > tail.tx.nonce) tail = entry
      if (tail !== undefined) tails.push(tail)
    }
    return tails.sort((a, b) => (a.tx.fee < b.tx.fee ? -1 : a.tx.fee > b.tx.fee ? 1 : 0))
  }

  /** Whether one more transaction of `bytes` bytes is over the pool's count or size. */
  #full(bytes: number): boolean {
    return this.#byId.size + 1 > this.#maxTxs || this.#bytes + bytes > this.#maxBytes
  }

  /** The lowest fee among pending transactions (0 when none is pending). */
  #lowest(): bigint {
    if (this.#lowestFee !== undefined) return this.#lowestFee
    let lowest: bigint | undefined
    for (const fee of this.#feeCounts.keys()) if (lowest === undefined || fee < lowest) lowest = fee
    this.#lowestFee = lowest
    return lowest ?? 0n
  }

  #remove(entry: PoolEntry): void {
    if (this.#byId.get(entry.id) === entry) {
      const left = (this.#feeCounts.get(entry.tx.fee) ?? 1) - 1
      if (left > 0) this.#feeCounts.set(entry.tx.fee, left)
      else {
        this.#feeCounts.delete(entry.tx.fee)
        if (entry.tx.fee === this.#lowestFee) this.#lowestFee = undefined
      }
    }
    this.#byId.delete(entry.id)
    const queue = this.#bySender.get(entry.tx.sender)
    if (queue !== undefined && queue.byNonce.get(entry.tx.nonce) === entry) {
      queue.byNonce.delete(entry.tx.nonce)
      queue.cost -= entry.cost
      if (queue.byNonce.size === 0) this.#bySender.delete(entry.tx.sender)
    }
    this.#bytes -= entry.bytes.length
  }
}
