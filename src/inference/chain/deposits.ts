/**
 * Client deposits: what pays for jobs.
 *
 * A client locks funds for ONE gateway (`inference/dep/<client>/<gateway>`); only jobs that name
 * that gateway spend them, and only that gateway dispatches such jobs. So one balance cannot be
 * spent at two gateways: a second gateway finds no deposit of its own. Asked back, a deposit
 * stays spendable by settlements for `depositUnlockMs` of block time (longer than a job may run
 * plus the time its gateway or worker has to settle it), so a client cannot move funds away
 * between a worker's acceptance and its payment.
 *
 *   deposit   { gateway, amount }   balance -> deposit (at least `minDeposit` in it afterwards)
 *   undeposit { gateway, amount }   deposit -> unlocking, reclaimable from block time + depositUnlockMs
 *   reclaim   { gateway }           matured unlocking -> balance
 *
 * Settlements draw on the deposit first, then on unlocking amounts, oldest first. Choice and
 * reasons: payment channels (Filecoin's) give the same guarantee per pair but need one channel
 * per client and worker; a deposit per client and gateway needs one per pair that actually
 * trade, and the gateway is the one party that sees every job the deposit pays for.
 */
import type { TxHandler } from '../../chain/host.ts'
import type { StateOverlay } from '../../chain/state-view.ts'
import { credit, debit } from '../../bank/bank.ts'
import { amountOf, didOf, fields, refuse } from './decode.ts'
import {
  MAX_DEPOSIT_UNLOCKS,
  depositOf,
  depositTotal,
  writeDeposit,
  type Deposit,
  type InferenceParams,
} from './state.ts'

/** Takes `fee` from the deposit (then from its unlocking amounts); false if it holds less. */
export function spendDeposit(state: StateOverlay, client: string, gateway: string, fee: bigint): boolean {
  const deposit = depositOf(state, client, gateway)
  if (depositTotal(deposit) < fee) return false
  let left = fee
  const fromAmount = deposit.amount < left ? deposit.amount : left
  deposit.amount -= fromAmount
  left -= fromAmount
  const unlocking: Deposit['unlocking'] = []
  for (const u of deposit.unlocking) {
    const take = u.amount < left ? u.amount : left
    left -= take
    if (u.amount - take > 0n) unlocking.push({ amount: u.amount - take, at: u.at })
  }
  writeDeposit(state, client, gateway, { amount: deposit.amount, unlocking })
  return true
}

interface DepositBody {
  gateway: string
  amount: bigint
}

export function depositTx(params: InferenceParams): TxHandler<DepositBody> {
  return {
    decodeBody(body) {
      const b = fields(body, 'inference.deposit', ['gateway', 'amount'])
      return { gateway: didOf(b.gateway, 'gateway'), amount: amountOf(b.amount, 'amount', { positive: true }) }
    },
    spends: (body) => body.amount,
    apply(state, tx, body, ctx) {
      debit(state, tx.sender, body.amount)
      const deposit = depositOf(state, tx.sender, body.gateway)
      deposit.amount += body.amount
      if (deposit.amount < params.minDeposit)
        refuse(
          'deposit-too-small',
          `a deposit must hold at least ${params.minDeposit}; this one would hold ${deposit.amount}`,
        )
      writeDeposit(state, tx.sender, body.gateway, deposit)
      ctx.emit({
        type: 'inference.deposit',
        attributes: {
          client: tx.sender,
          gateway: body.gateway,
          amount: String(body.amount),
          total: String(deposit.amount),
        },
      })
    },
  }
}

export function undepositTx(params: InferenceParams): TxHandler<DepositBody> {
  return {
    decodeBody(body) {
      const b = fields(body, 'inference.undeposit', ['gateway', 'amount'])
      return { gateway: didOf(b.gateway, 'gateway'), amount: amountOf(b.amount, 'amount', { positive: true }) }
    },
    apply(state, tx, body, ctx) {
      const deposit = depositOf(state, tx.sender, body.gateway)
      if (deposit.amount < body.amount)
        refuse('insufficient-deposit', `the deposit for ${body.gateway} holds ${deposit.amount}, not ${body.amount}`)
      if (deposit.unlocking.length >= MAX_DEPOSIT_UNLOCKS)
        refuse('too-many-unlocks', `at most ${MAX_DEPOSIT_UNLOCKS} unlocks at once; reclaim first`)
      const at = ctx.time + params.depositUnlockMs
      deposit.amount -= body.amount
      deposit.unlocking.push({ amount: body.amount, at })
      writeDeposit(state, tx.sender, body.gateway, deposit)
      ctx.emit({
        type: 'inference.undeposit',
        attributes: { client: tx.sender, gateway: body.gateway, amount: String(body.amount), at: String(at) },
      })
    },
  }
}

export const reclaimTx: TxHandler<{ gateway: string }> = {
  decodeBody: (body) => ({ gateway: didOf(fields(body, 'inference.reclaim', ['gateway']).gateway, 'gateway') }),
  apply(state, tx, body, ctx) {
    const deposit = depositOf(state, tx.sender, body.gateway)
    const ready = deposit.unlocking.filter((u) => u.at <= ctx.time)
    if (ready.length === 0) refuse('nothing-to-reclaim', 'no unlocking deposit has matured yet')
    const amount = ready.reduce((sum, u) => sum + u.amount, 0n)
    writeDeposit(state, tx.sender, body.gateway, {
      amount: deposit.amount,
      unlocking: deposit.unlocking.filter((u) => u.at > ctx.time),
    })
    credit(state, tx.sender, amount)
    ctx.emit({
      type: 'inference.reclaim',
      attributes: { client: tx.sender, gateway: body.gateway, amount: String(amount) },
    })
  },
}
