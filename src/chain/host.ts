/**
 * The state-machine host. Modules register transaction kinds with handlers; the host checks
 * what every transaction shares (chain, signature, nonce, fee), charges the fee, routes the
 * body to its module, and runs the modules' begin/end-block hooks. Handlers only touch the
 * overlay they are given and report events; a handler that throws `TxError` leaves no trace
 * except that the transaction is refused.
 */
import { InvalidInputError } from '../core/errors.ts'
import { asUint64 } from '../core/uint.ts'
import type { ValidatorSet } from './bft/types.ts'
import { TxError } from './errors.ts'
import type { GenesisDoc } from './genesis.ts'
import type { StateOverlay, StateReader } from './state-view.ts'
import { readState } from './state-view.ts'
import { verifyTxSignature, type SignedTx } from './tx.ts'

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
  emit(event: ChainEvent): void
}

export interface BlockContext extends BlockInfo {
  emit(event: ChainEvent): void
}

export interface TxHandler<B> {
  /** Validates and types the body; throws TxError('malformed', …) for bad input. */
  decodeBody(body: unknown): B
  apply(state: StateOverlay, tx: SignedTx, body: B, ctx: TxContext): void
}

export interface ChainModule {
  readonly name: string
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each handler has its own body type
  readonly txs?: Readonly<Record<string, TxHandler<any>>>
  initGenesis?(state: StateOverlay, genesis: GenesisDoc): void
  beginBlock?(state: StateOverlay, ctx: BlockContext): void
  endBlock?(state: StateOverlay, ctx: BlockContext): void
}

/** Charges transaction fees; provided by the bank module (the host sits below it). */
export interface FeeCollector {
  chargeFee(state: StateOverlay, payer: string, fee: bigint): void
}

export interface HostOptions {
  chainId: string
  modules: readonly ChainModule[]
  fees: FeeCollector
  /** Smallest fee accepted, in base units. */
  minFee: bigint
}

const nonceKey = (did: string): string => `auth/nonce/${did}`

export function accountNonce(state: StateReader, did: string): bigint {
  const value = readState<unknown>(state, nonceKey(did))
  return value === undefined ? 0n : asUint64(value, 'nonce')
}

export class StateMachine {
  readonly chainId: string
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

  /**
   * Stateless checks plus the stateful ones that do not execute the body: chain, signature,
   * kind, body shape, fee floor, and nonce ≥ the account's next nonce (`exactNonce` demands equality).
   */
  check(state: StateReader, tx: SignedTx, options: { exactNonce: boolean; signatureChecked?: boolean }): void {
    if (tx.chainId !== this.chainId)
      throw new TxError(
        'wrong-chain',
        `transaction is for chain ${JSON.stringify(tx.chainId)}, this is ${JSON.stringify(this.chainId)}`,
      )
    const handler = this.#handlers.get(tx.kind)
    if (handler === undefined)
      throw new TxError('unknown-kind', `unknown transaction kind ${tx.kind}; known: ${this.txKinds.join(', ')}`)
    if (options.signatureChecked !== true && !verifyTxSignature(tx))
      throw new TxError('bad-signature', 'the signature does not verify for the sender')
    if (tx.fee < this.minFee) throw new TxError('fee-too-low', `fee ${tx.fee} is below the minimum ${this.minFee}`)
    handler.decodeBody(tx.body)
    const expected = accountNonce(state, tx.sender)
    if (tx.nonce < expected)
      throw new TxError('stale-nonce', `nonce ${tx.nonce} was already used (next is ${expected})`)
    if (options.exactNonce && tx.nonce !== expected)
      throw new TxError('bad-nonce', `nonce ${tx.nonce} is not the next one (${expected})`)
  }

  /**
   * Applies one transaction to `state` all-or-nothing: checks, fee, nonce, module handler.
   * Throws TxError (and leaves `state` unchanged) if anything fails.
   */
  deliver(
    state: StateOverlay,
    tx: SignedTx,
    ctx: Omit<TxContext, 'emit'>,
    emit: (e: ChainEvent) => void,
    options: { signatureChecked?: boolean } = {},
  ): void {
    this.check(state, tx, { exactNonce: true, signatureChecked: options.signatureChecked ?? false })
    const handler = this.#handlers.get(tx.kind) as TxHandler<unknown>
    const body = handler.decodeBody(tx.body)
    const scratch = state.fork()
    const events: ChainEvent[] = []
    this.#fees.chargeFee(scratch, tx.sender, tx.fee)
    scratch.write(nonceKey(tx.sender), tx.nonce + 1n)
    handler.apply(scratch, tx, body, { ...ctx, emit: (e) => events.push(e) })
    scratch.merge()
    for (const event of events) emit(event)
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
}
