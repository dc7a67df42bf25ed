import { DonghaeError, type ErrorAction } from '../core/errors.ts'

/**
 * A transaction that must not be applied: malformed, wrongly signed, for another chain, with the
 * wrong nonce, unaffordable, or refused by its module. `reason` is a stable machine-readable tag.
 */
export class TxError extends DonghaeError {
  static override readonly code: string = 'TX_REJECTED'
  override name = 'TxError'
  readonly reason: string
  readonly action: ErrorAction
  constructor(reason: string, message: string, options: { action?: ErrorAction; cause?: unknown } = {}) {
    // A refusal is an answer, not a fault to trace (a node under load refuses thousands a second:
    // full, duplicate, not payable): no stack trace, which was most of the cost of making one.
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(message, { cause: options.cause, details: { reason } })
    Error.stackTraceLimit = limit
    this.reason = reason
    this.action = options.action ?? 'reject'
  }
}

/** The mempool will not take this transaction now (full, duplicate, too far ahead...). */
export class MempoolError extends TxError {
  static override readonly code: string = 'MEMPOOL_REJECTED'
  override name = 'MempoolError'
}

/** A block that fails validation (structure, PoH, transactions, state root, certificate). */
export class BlockError extends DonghaeError {
  static override readonly code: string = 'BLOCK_INVALID'
  override name = 'BlockError'
  readonly action: ErrorAction = 'reject'
}

/** The genesis document is malformed or inconsistent. */
export class GenesisError extends DonghaeError {
  static override readonly code: string = 'GENESIS_INVALID'
  override name = 'GenesisError'
}
