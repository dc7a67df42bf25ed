/**
 * The mempool: transactions waiting for a block. Admission runs every check that does not
 * execute the body (shape, chain, signature, fee floor, nonce not stale), rejects duplicates,
 * bounds total size and each sender's share, and evicts the lowest fee when full. Transactions
 * leave in per-sender nonce order; after each block the pool drops what was included and
 * re-checks the rest against the new state.
 */
import { toHex } from '../core/bytes.ts'
import { MempoolError, TxError } from './errors.ts'
import { accountNonce, type StateMachine } from './host.ts'
import type { StateReader } from './state-view.ts'
import { decodeTx, txHash, type SignedTx } from './tx.ts'

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
}

export class Mempool {
  readonly #machine: StateMachine
  readonly #maxTxs: number
  readonly #maxBytes: number
  readonly #maxPerSender: number
  readonly #byId = new Map<string, PoolEntry>()
  /** sender → nonce → entry */
  readonly #bySender = new Map<string, Map<bigint, PoolEntry>>()
  #bytes = 0

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
    return this.#bySender.get(sender)?.size ?? 0
  }

  has(hash: Uint8Array): boolean {
    return this.#byId.has(toHex(hash))
  }

  /** The pending transaction with this hash, already decoded and signature-checked. */
  get(hash: Uint8Array): PoolEntry | undefined {
    return this.#byId.get(toHex(hash))
  }

  /** Admits an encoded transaction or throws a TxError/MempoolError saying why not. */
  add(
    bytes: Uint8Array,
    state: StateReader,
    options: { signatureChecked?: boolean; decoded?: SignedTx } = {},
  ): PoolEntry {
    const hash = txHash(bytes)
    const id = toHex(hash)
    if (this.#byId.has(id))
      throw new MempoolError('duplicate', 'this transaction is already pending', { action: 'ignore' })
    const tx = options.decoded ?? decodeTx(bytes)
    this.#machine.check(state, tx, { exactNonce: false, signatureChecked: options.signatureChecked ?? false })
    const next = accountNonce(state, tx.sender)
    if (tx.nonce - next >= BigInt(this.#maxPerSender)) {
      throw new MempoolError('nonce-too-far', `nonce ${tx.nonce} is too far ahead of the next one (${next})`, {
        action: 'ignore',
      })
    }
    const pending = this.#bySender.get(tx.sender)
    const existing = pending?.get(tx.nonce)
    if (existing !== undefined) {
      if (tx.fee <= existing.tx.fee)
        throw new MempoolError('nonce-in-use', `nonce ${tx.nonce} is already pending; replace it with a higher fee`, {
          action: 'ignore',
        })
      this.#remove(existing)
    } else if ((pending?.size ?? 0) >= this.#maxPerSender) {
      throw new MempoolError('sender-limit', `at most ${this.#maxPerSender} pending transactions per sender`, {
        action: 'ignore',
      })
    }
    while (this.#byId.size >= this.#maxTxs || this.#bytes + bytes.length > this.#maxBytes) {
      const cheapest = this.#cheapest()
      if (cheapest === undefined || cheapest.tx.fee >= tx.fee)
        throw new MempoolError('full', 'the mempool is full; raise the fee', { action: 'ignore' })
      this.#remove(cheapest)
    }
    const entry: PoolEntry = { tx, bytes, hash, id }
    this.#byId.set(id, entry)
    let senderMap = this.#bySender.get(tx.sender)
    if (senderMap === undefined) {
      senderMap = new Map()
      this.#bySender.set(tx.sender, senderMap)
    }
    senderMap.set(tx.nonce, entry)
    this.#bytes += bytes.length
    return entry
  }

  /**
   * Up to `max` transactions that can run in order against `state`: each sender's run of
   * consecutive nonces from its next nonce; senders interleaved by fee, highest first.
   */
  reap(state: StateReader, max: number): PoolEntry[] {
    const queues: PoolEntry[][] = []
    for (const [sender, byNonce] of this.#bySender) {
      const queue: PoolEntry[] = []
      for (let nonce = accountNonce(state, sender); ; nonce++) {
        const entry = byNonce.get(nonce)
        if (entry === undefined) break
        queue.push(entry)
      }
      if (queue.length > 0) queues.push(queue)
    }
    const out: PoolEntry[] = []
    const heads = queues.map(() => 0)
    while (out.length < max) {
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
      if (best === -1) break
      out.push((queues[best] as PoolEntry[])[heads[best] as number] as PoolEntry)
      heads[best] = (heads[best] as number) + 1
    }
    return out
  }

  /**
   * After a block: drop included transactions and those the new state makes invalid. With
   * `senders`, only those senders' transactions are re-checked (the others' nonces and balances
   * can only have grown, through rewards and transfers, so they stay admissible).
   */
  update(state: StateReader, senders?: ReadonlySet<string>): void {
    const entries =
      senders === undefined
        ? [...this.#byId.values()]
        : [...senders].flatMap((s) => [...(this.#bySender.get(s)?.values() ?? [])])
    for (const entry of entries) {
      try {
        this.#machine.check(state, entry.tx, { exactNonce: false, signatureChecked: true })
      } catch (err) {
        if (err instanceof TxError) this.#remove(entry)
        else throw err
      }
    }
  }

  /** Removes one transaction (e.g. it failed while building a block). */
  drop(hash: Uint8Array): void {
    const entry = this.#byId.get(toHex(hash))
    if (entry !== undefined) this.#remove(entry)
  }

  #cheapest(): PoolEntry | undefined {
    let cheapest: PoolEntry | undefined
    for (const entry of this.#byId.values())
      if (cheapest === undefined || entry.tx.fee < cheapest.tx.fee) cheapest = entry
    return cheapest
  }

  #remove(entry: PoolEntry): void {
    this.#byId.delete(entry.id)
    const senderMap = this.#bySender.get(entry.tx.sender)
    senderMap?.delete(entry.tx.nonce)
    if (senderMap?.size === 0) this.#bySender.delete(entry.tx.sender)
    this.#bytes -= entry.bytes.length
  }
}
