/**
 * The state-machine host. Modules register transaction kinds with handlers; the host checks
 * what every transaction shares (chain, signature, nonce, fee), charges the fee, routes the
 * body to its module, and runs the modules' begin/end-block hooks.
 *
 * Delivery follows the Cosmos SDK's split between the ante handler and the message:
 * - **ante** (chain, kind, body shape, signature, fee floor, exact nonce, fee paid from the
 *   balance): if it fails the transaction is invalid - a proposer must not include it and a block
 *   that does is invalid. `deliver` throws the `TxError`.
 * - **body** (the module's `apply`): it runs after the fee is charged and the nonce bumped, in a
 *   child overlay. If it throws `TxError` its writes and events are discarded, the fee and nonce
 *   stay, and the transaction is included as failed (event `tx.failed { hash, reason }`). So a
 *   failing transaction is never free.
 *
 * The fee floor is governed (`chain.minFee`, issue 15): checked against the state a transaction
 * runs on (the mempool's committed state at admission, the block's state in execution), falling
 * back to the genesis `minFee` while governance has not set it. Once a raise applies, a
 * transaction paying the old fee is refused ('fee-too-low') and a block carrying one is invalid.
 */
import { toHex } from '../core/bytes.ts'
import { InvalidInputError } from '../core/errors.ts'
import { asUint64 } from '../core/uint.ts'
import type { ValidatorSet } from './bft/types.ts'
import { TxError } from './errors.ts'
import type { GenesisDoc } from './genesis.ts'
import { currentMinFee } from './governed.ts'
import type { StateOverlay, StateReader } from './state-view.ts'
import { readState } from './state-view.ts'
import { verifyTxSignature, type SignedTx } from './tx.ts'
import type { VerifyItem } from '../identity/verify-pool.ts'

export interface ChainEvent {
  type: string
  attributes: Record<string, string>
}

export interface BlockInfo {
  chainId: string
  height: number
  time: number
  proposer: string
  /** The id of the previous block (the parent this block extends). */
  parentId: Uint8Array
  /** The validator set that decides this height. */
  validators: ValidatorSet
  /** Validators whose precommit for the previous height is in this block's certificate (null at height 1). */
  lastCommitSigners: ReadonlySet<string> | null
}

export interface TxContext extends BlockInfo {
  txHash: Uint8Array
  /**
   * Labels of the body's signatures (`TxHandler.signatures`) this node verified valid for this
   * very transaction before execution (on the signature pool, at mempool admission or block
   * validation). A handler skips those and verifies every other one itself.
   */
  verified?: ReadonlySet<string>
  emit(event: ChainEvent): void
}

/** A signature a transaction body carries besides the transaction's own, with its label. */
export interface BodySignature {
  /** Unique within the transaction (e.g. `3:worker`: receipt 3's worker signature). */
  label: string
  item: VerifyItem
}

export interface BlockContext extends BlockInfo {
  emit(event: ChainEvent): void
}

export interface TxHandler<B> {
  /** Validates and types the body; throws TxError('malformed', ...) for bad input. */
  decodeBody(body: unknown): B
  /**
   * What the body takes from the sender's balance when it succeeds, besides the fee (a
   * transfer's amount, a bond). Mempool admission counts it with the fee, so all of a sender's
   * pending transactions are payable together. @default 0
   */
  spends?(body: B): bigint
  /**
   * Checks of the body against state that make the transaction invalid rather than failed
   * (refused at the edge: mempool admission, and a block carrying it is invalid), for rules a
   * governed parameter sets (a bond's minimum). Throws TxError; runs before the fee is charged.
   */
  admit?(state: StateReader, body: B): void
  /**
   * The signatures inside the body that `apply` may check, so they can be verified on the
   * signature pool ahead of execution (`TxContext.verified`). Pure: the same transaction gives
   * the same list. A signature left out is simply verified by `apply` itself. @default none
   */
  signatures?(tx: SignedTx, body: B): BodySignature[]
  apply(state: StateOverlay, tx: SignedTx, body: B, ctx: TxContext): void
}

export interface ChainModule {
  readonly name: string
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each handler has its own body type
  readonly txs?: Readonly<Record<string, TxHandler<any>>>
  initGenesis?(state: StateOverlay, genesis: GenesisDoc): void
  beginBlock?(state: StateOverlay, ctx: BlockContext): void
  endBlock?(state: StateOverlay, ctx: BlockContext): void
  /**
   * Whether this module has something scheduled by height (a deadline a participant waits for, a
   * change due to apply) while no transaction is pending: with `emptyBlockIntervalMs` set, blocks
   * keep coming only while some module says so. Cheap and read-only; called once per height.
   */
  wantsBlock?(state: StateReader, height: number): boolean
}

/** Charges transaction fees; provided by the bank module (the host sits below it). */
export interface FeeCollector {
  /** Takes `fee` from `payer`; throws TxError('insufficient-funds') and writes nothing if it cannot. */
  chargeFee(state: StateOverlay, payer: string, fee: bigint): void
  /** What `payer` can spend (mempool admission checks pending fees and spends against it). */
  balanceOf(state: StateReader, payer: string): bigint
}

/** How a delivered transaction ended: its body succeeded, or failed after the fee was charged. */
export type TxResult = { ok: true } | { ok: false; error: TxError }

/** The event of a transaction included as failed. */
export const TX_FAILED_EVENT = 'tx.failed'

export interface HostOptions {
  chainId: string
  modules: readonly ChainModule[]
  fees: FeeCollector
  /** Smallest fee accepted, in base units: the genesis value (`chain.minFee` governs it from state). */
  minFee: bigint
}

const nonceKey = (did: string): string => `auth/nonce/${did}`

export function accountNonce(state: StateReader, did: string): bigint {
  const value = readState<unknown>(state, nonceKey(did))
  return value === undefined ? 0n : asUint64(value, 'nonce')
}

export class StateMachine {
  readonly chainId: string
  /** The genesis fee floor; the one in force is `minFeeAt(state)`. */
  readonly minFee: bigint
  readonly #modules: readonly ChainModule[]
  readonly #fees: FeeCollector
  readonly #handlers = new Map<string, TxHandler<unknown>>()

  constructor(options: HostOptions) {
    this.chainId = options.chainId
    this.minFee = options.minFee
    this.#modules = options.modules
    this.#fees = options.fees
    for (const module of options.modules) {
      for (const [action, handler] of Object.entries(module.txs ?? {})) {
        const kind = `${module.name}.${action}`
        if (this.#handlers.has(kind)) throw new InvalidInputError(`transaction kind ${kind} is registered twice`)
        this.#handlers.set(kind, handler as TxHandler<unknown>)
      }
    }
  }

  get txKinds(): string[] {
    return [...this.#handlers.keys()].sort()
  }

  /** The fee floor in force on top of `state`: governed `chain.minFee`, else the genesis one. */
  minFeeAt(state: StateReader): bigint {
    return currentMinFee(state, this)
  }

  /**
   * The checks that need no signature: chain, kind, fee floor, body shape, and the handler's
   * `admit` checks against `state`. Returns what the transaction takes from its sender's balance
   * if it succeeds (fee + `spends`). The fee floor is the one in force on `state`; without a
   * state (a caller that only wants the shape and cost) it is the genesis floor and `admit` is
   * skipped.
   */
  precheck(tx: SignedTx, state?: StateReader): { cost: bigint } {
    if (tx.chainId !== this.chainId)
      throw new TxError(
        'wrong-chain',
        `transaction is for chain ${JSON.stringify(tx.chainId)}, this is ${JSON.stringify(this.chainId)}`,
      )
    const handler = this.#handlers.get(tx.kind)
    if (handler === undefined)
      throw new TxError('unknown-kind', `unknown transaction kind ${tx.kind}; known: ${this.txKinds.join(', ')}`)
    const minFee = state === undefined ? this.minFee : this.minFeeAt(state)
    if (tx.fee < minFee) throw new TxError('fee-too-low', `fee ${tx.fee} is below the minimum ${minFee}`)
    const body = handler.decodeBody(tx.body)
    if (state !== undefined) handler.admit?.(state, body)
    return { cost: tx.fee + (handler.spends?.(body) ?? 0n) }
  }

  /**
   * The signatures `tx`'s body carries (its handler's `signatures`), to verify off the main
   * thread before execution; none for a kind without any or a body that does not decode.
   */
  bodySignatures(tx: SignedTx): BodySignature[] {
    const handler = this.#handlers.get(tx.kind)
    if (handler?.signatures === undefined) return []
    try {
      return handler.signatures(tx, handler.decodeBody(tx.body))
    } catch {
      return []
    }
  }

  /** What `did` can spend (the fee collector's balance). */
  balanceOf(state: StateReader, did: string): bigint {
    return this.#fees.balanceOf(state, did)
  }

  /**
   * Every check that does not execute the body: chain, signature, kind, body shape, the fee floor
   * in force on `state`, the handler's `admit`, and nonce >= the account's next nonce
   * (`exactNonce` demands equality).
   */
  check(state: StateReader, tx: SignedTx, options: { exactNonce: boolean; signatureChecked?: boolean }): void {
    this.precheck(tx, state)
    if (options.signatureChecked !== true && !verifyTxSignature(tx))
      throw new TxError('bad-signature', 'the signature does not verify for the sender')
    const expected = accountNonce(state, tx.sender)
    if (tx.nonce < expected)
      throw new TxError('stale-nonce', `nonce ${tx.nonce} was already used (next is ${expected})`)
    if (options.exactNonce && tx.nonce !== expected)
      throw new TxError('bad-nonce', `nonce ${tx.nonce} is not the next one (${expected})`)
  }

  /**
   * Delivers one transaction (see the file comment). The ante part - checks, fee, nonce - failing
   * throws TxError and leaves `state` unchanged: the transaction is invalid. Once the fee is
   * charged, a body that throws TxError is a failed result (its writes and events discarded,
   * `tx.failed` emitted); fee and nonce stay. `verified`: the body signatures already verified
   * valid for this transaction (see TxContext.verified).
   */
  deliver(
    state: StateOverlay,
    tx: SignedTx,
    ctx: Omit<TxContext, 'emit'>,
    emit: (e: ChainEvent) => void,
    options: { signatureChecked?: boolean; verified?: ReadonlySet<string> } = {},
  ): TxResult {
    this.check(state, tx, { exactNonce: true, signatureChecked: options.signatureChecked ?? false })
    const handler = this.#handlers.get(tx.kind) as TxHandler<unknown>
    const body = handler.decodeBody(tx.body)
    const ante = state.fork()
    this.#fees.chargeFee(ante, tx.sender, tx.fee)
    ante.write(nonceKey(tx.sender), tx.nonce + 1n)
    const scratch = ante.fork()
    const events: ChainEvent[] = []
    let result: TxResult = { ok: true }
    try {
      const verified = options.verified ?? ctx.verified
      handler.apply(scratch, tx, body, {
        ...ctx,
        ...(verified === undefined ? {} : { verified }),
        emit: (e) => events.push(e),
      })
      scratch.merge()
    } catch (err) {
      if (!(err instanceof TxError)) throw err
      result = { ok: false, error: err }
      events.length = 0
      events.push({ type: TX_FAILED_EVENT, attributes: { hash: toHex(ctx.txHash), reason: err.reason } })
    }
    ante.merge()
    for (const event of events) emit(event)
    return result
  }

  initGenesis(state: StateOverlay, genesis: GenesisDoc): void {
    for (const module of this.#modules) module.initGenesis?.(state, genesis)
  }

  beginBlock(state: StateOverlay, ctx: BlockContext): void {
    for (const module of this.#modules) module.beginBlock?.(state, ctx)
  }

  endBlock(state: StateOverlay, ctx: BlockContext): void {
    for (const module of this.#modules) module.endBlock?.(state, ctx)
  }

  /** Whether any module has work due at `height` or soon after (a chain without empty blocks makes one for it). */
  wantsBlock(state: StateReader, height: number): boolean {
    return this.#modules.some((module) => module.wantsBlock?.(state, height) === true)
  }
}
