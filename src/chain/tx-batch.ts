/**
 * Transactions travel on the chain's gossip topic in batches: one gossip message carries up to
 * `MAX_TX_BATCH` transactions (`MAX_TX_BATCH_BYTES` in all), as a dag-cbor list of their encoded
 * bytes. A message costs every node it reaches the same fixed work whatever it carries (a Noise
 * frame to decrypt, a protobuf RPC, its id hashed, an IDONTWANT to each mesh peer, a Noise frame
 * out to each one it is relayed to); one message per transaction made that the larger part of a
 * validator's work under a transfer load (docs/performance.md).
 *
 * `TxBatcher` collects the transactions this node admitted from its own clients (the API, its own
 * queue, re-gossip of pending ones) and publishes them together: at most `TX_BATCH_MS` after the
 * first one, or at once when the batch is full. Transactions learned from gossip are not batched
 * again: gossipsub relays the message they came in.
 */
import { decode, encode } from '../core/codec.ts'
import { DecodeError } from '../core/errors.ts'
import type { Clock } from '../core/clock.ts'
import { MAX_TX_BYTES } from './tx.ts'

/** Most transactions in one gossip message. */
export const MAX_TX_BATCH = 256
/** Most bytes of encoded transactions in one gossip message (the framing aside). */
export const MAX_TX_BATCH_BYTES = 1024 * 1024
/** The longest a transaction admitted here waits for others to share its gossip message. */
export const TX_BATCH_MS = 5

/** A transaction's bytes as a string, to find copies within one batch. */
function batchKey(tx: Uint8Array): string {
  return Buffer.from(tx.buffer, tx.byteOffset, tx.byteLength).toString('latin1')
}

/** One gossip message's payload: the transactions' encoded bytes, as a dag-cbor list. */
export function encodeTxBatch(txs: readonly Uint8Array[]): Uint8Array {
  if (txs.length === 0 || txs.length > MAX_TX_BATCH)
    throw new RangeError(`a transaction batch holds 1 to ${MAX_TX_BATCH} transactions, not ${txs.length}`)
  return encode(txs)
}

/**
 * The transactions of one gossip message. Throws DecodeError for anything but a list of 1 to
 * `MAX_TX_BATCH` distinct byte strings, each at most `MAX_TX_BYTES` and `MAX_TX_BATCH_BYTES` in
 * all (the transactions themselves are decoded and checked one by one at admission).
 */
export function decodeTxBatch(bytes: Uint8Array): Uint8Array[] {
  // each transaction's length prefix is at most 5 bytes, the list's too
  const value = decode(bytes, { maxBytes: MAX_TX_BATCH_BYTES + 5 * (MAX_TX_BATCH + 1) })
  if (!Array.isArray(value)) throw new DecodeError('a transaction batch must be a list')
  if (value.length === 0 || value.length > MAX_TX_BATCH)
    throw new DecodeError(`a transaction batch holds 1 to ${MAX_TX_BATCH} transactions, not ${value.length}`)
  let total = 0
  const seen = new Set<string>()
  for (const tx of value) {
    if (!(tx instanceof Uint8Array)) throw new DecodeError('a transaction batch holds byte strings only')
    if (tx.byteLength === 0 || tx.byteLength > MAX_TX_BYTES)
      throw new DecodeError(`a transaction of ${tx.byteLength} bytes in a batch (1 to ${MAX_TX_BYTES})`)
    total += tx.byteLength
    // copies of one transaction would all reach the signature check before the first is pooled
    const key = batchKey(tx)
    if (seen.has(key)) throw new DecodeError('a transaction batch carries one transaction twice')
    seen.add(key)
  }
  if (total > MAX_TX_BATCH_BYTES)
    throw new DecodeError(`a transaction batch of ${total} bytes of transactions (at most ${MAX_TX_BATCH_BYTES})`)
  return value as Uint8Array[]
}

export interface TxBatcherOptions {
  /** Sends one encoded batch (the runtime publishes it on the transaction topic). */
  publish(batch: Uint8Array): void
  clock: Clock
  /** @default TX_BATCH_MS */
  waitMs?: number
}

/** Collects transactions to gossip and publishes them in batches (see the module comment). */
export class TxBatcher {
  readonly #publish: (batch: Uint8Array) => void
  readonly #clock: Clock
  readonly #waitMs: number
  #txs: Uint8Array[] = []
  #bytes = 0
  /** The queued transactions' bytes, as strings: a batch never carries one twice (decodeTxBatch). */
  #queued = new Set<string>()
  #cancel: (() => void) | undefined
  /** Batches published and transactions in them, since start. */
  readonly stats = { batches: 0, txs: 0 }

  constructor(options: TxBatcherOptions) {
    this.#publish = options.publish
    this.#clock = options.clock
    this.#waitMs = options.waitMs ?? TX_BATCH_MS
  }

  /** Transactions waiting for their batch. */
  get pending(): number {
    return this.#txs.length
  }

  /**
   * Queues one encoded transaction (one already queued is left as it is); the batch goes out when
   * full or `waitMs` after its first one.
   */
  add(tx: Uint8Array): void {
    const key = batchKey(tx)
    if (this.#queued.has(key)) return
    if (this.#bytes + tx.byteLength > MAX_TX_BATCH_BYTES) this.flush()
    this.#queued.add(key)
    this.#txs.push(tx)
    this.#bytes += tx.byteLength
    if (this.#txs.length >= MAX_TX_BATCH) this.flush()
    else this.#cancel ??= this.#clock.setTimer(this.#waitMs, () => this.flush())
  }

  /** Publishes what is queued now. */
  flush(): void {
    this.#cancel?.()
    this.#cancel = undefined
    if (this.#txs.length === 0) return
    const txs = this.#txs
    this.#txs = []
    this.#bytes = 0
    this.#queued = new Set()
    this.stats.batches++
    this.stats.txs += txs.length
    this.#publish(encodeTxBatch(txs))
  }

  /** Drops what is queued and the timer (the node is stopping). */
  stop(): void {
    this.#cancel?.()
    this.#cancel = undefined
    this.#txs = []
    this.#bytes = 0
    this.#queued = new Set()
  }
}
