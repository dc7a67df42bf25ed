/**
 * bank: balances, transfers and fees (a chain module). Amounts are bigint base units.
 *
 * State: `bank/bal/<did>` balance · `bank/supply` total supply · `bank/feepool` fees collected
 * in the current block (paid out by staking at end of block).
 */
import { asUint64 } from '../core/uint.ts'
import { parseDidKey } from '../identity/did-key.ts'
import { TxError } from '../chain/errors.ts'
import type { ChainModule, FeeCollector, TxHandler } from '../chain/host.ts'
import { readState, type StateOverlay, type StateReader } from '../chain/state-view.ts'

const balanceKey = (did: string): string => `bank/bal/${did}`
const SUPPLY_KEY = 'bank/supply'
const FEE_POOL_KEY = 'bank/feepool'
export const MAX_MEMO_BYTES = 1024

function readAmount(state: StateReader, key: string): bigint {
  const value = readState<unknown>(state, key)
  return value === undefined ? 0n : asUint64(value, key)
}

export function balanceOf(state: StateReader, did: string): bigint {
  return readAmount(state, balanceKey(did))
}

export function totalSupply(state: StateReader): bigint {
  return readAmount(state, SUPPLY_KEY)
}

export function feePool(state: StateReader): bigint {
  return readAmount(state, FEE_POOL_KEY)
}

function setAmount(state: StateOverlay, key: string, amount: bigint): void {
  if (amount === 0n) state.remove(key)
  else state.write(key, amount)
}

export function credit(state: StateOverlay, did: string, amount: bigint): void {
  setAmount(state, balanceKey(did), balanceOf(state, did) + amount)
}

export function debit(state: StateOverlay, did: string, amount: bigint): void {
  const balance = balanceOf(state, did)
  if (balance < amount) throw new TxError('insufficient-funds', `${did} has ${balance}, needs ${amount}`)
  setAmount(state, balanceKey(did), balance - amount)
}

/** Creates new tokens (block rewards, genesis). */
export function mint(state: StateOverlay, did: string, amount: bigint): void {
  credit(state, did, amount)
  setAmount(state, SUPPLY_KEY, totalSupply(state) + amount)
}

/** Destroys tokens already taken from an account or pool (slashing). */
export function burn(state: StateOverlay, amount: bigint): void {
  setAmount(state, SUPPLY_KEY, totalSupply(state) - amount)
}

/** Adds to the supply without crediting an account: for tokens that start life bonded (genesis stake). */
export function mintUnassigned(state: StateOverlay, amount: bigint): void {
  setAmount(state, SUPPLY_KEY, totalSupply(state) + amount)
}

/** Empties the fee pool and returns what it held. */
export function takeFeePool(state: StateOverlay): bigint {
  const amount = feePool(state)
  state.remove(FEE_POOL_KEY)
  return amount
}

export const feeCollector: FeeCollector = {
  chargeFee(state, payer, fee) {
    if (fee === 0n) return
    debit(state, payer, fee)
    setAmount(state, FEE_POOL_KEY, feePool(state) + fee)
  },
  balanceOf,
}

export interface TransferBody {
  to: string
  amount: bigint
  memo?: Uint8Array
  /** sha256 of a payment envelope sent to the recipient off chain (src/wallet/envelope.ts). */
  envelope?: Uint8Array
}

export const ENVELOPE_HASH_BYTES = 32

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

const transfer: TxHandler<TransferBody> = {
  decodeBody(body) {
    if (!isRecord(body)) throw new TxError('malformed', 'bank.transfer body must be a map')
    const extra = Object.keys(body).filter((k) => !['to', 'amount', 'memo', 'envelope'].includes(k))
    if (extra.length > 0) throw new TxError('malformed', `bank.transfer has unknown field ${extra[0] ?? ''}`)
    if (typeof body.to !== 'string') throw new TxError('malformed', 'bank.transfer needs a recipient DID')
    try {
      parseDidKey(body.to)
    } catch (err) {
      throw new TxError('malformed', `recipient is not a valid did:key: ${(err as Error).message}`, { cause: err })
    }
    let amount: bigint
    try {
      amount = asUint64(body.amount, 'amount')
    } catch (err) {
      throw new TxError('malformed', (err as Error).message, { cause: err })
    }
    if (amount === 0n) throw new TxError('malformed', 'amount must be positive')
    if (body.memo !== undefined && (!(body.memo instanceof Uint8Array) || body.memo.length > MAX_MEMO_BYTES)) {
      throw new TxError('malformed', `memo must be at most ${MAX_MEMO_BYTES} bytes`)
    }
    if (
      body.envelope !== undefined &&
      (!(body.envelope instanceof Uint8Array) || body.envelope.length !== ENVELOPE_HASH_BYTES)
    )
      throw new TxError('malformed', `envelope must be a ${ENVELOPE_HASH_BYTES}-byte hash`)
    return {
      to: body.to,
      amount,
      ...(body.memo === undefined ? {} : { memo: body.memo }),
      ...(body.envelope === undefined ? {} : { envelope: body.envelope }),
    }
  },
  spends: (body) => body.amount,
  apply(state, tx, body, ctx) {
    debit(state, tx.sender, body.amount)
    credit(state, body.to, body.amount)
    const attributes: Record<string, string> = { from: tx.sender, to: body.to, amount: body.amount.toString() }
    if (body.envelope !== undefined) {
      // the wallet reconciles its payments by these two (src/wallet/service.ts)
      attributes.envelope = Buffer.from(body.envelope).toString('hex')
      attributes.tx = Buffer.from(ctx.txHash).toString('hex')
    }
    ctx.emit({ type: 'bank.transfer', attributes })
  },
}

export const bankModule: ChainModule = { name: 'bank', txs: { transfer } }
