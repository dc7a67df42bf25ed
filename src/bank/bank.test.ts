import { test } from 'node:test'
import assert from 'node:assert/strict'
import { signTx, type SignedTx } from '../chain/tx.ts'
import { TxError } from '../chain/errors.ts'
import { accountNonce } from '../chain/host.ts'
import type { ValidatorSet } from '../chain/bft/types.ts'
import { actor, genesisState, makeGenesis, makeMachine } from '../../test/helpers/chain.ts'
import { balanceOf, feePool, totalSupply } from './bank.ts'

const alice = actor()
const bob = actor()
const val = actor()
const genesis = makeGenesis([val], [[alice, 1_000n]])
const machine = makeMachine(genesis)
const noValidators: ValidatorSet = { validators: [], totalPower: 0n }
const ctx = {
  chainId: genesis.chainId,
  height: 1,
  time: 0,
  proposer: val.did,
  parentId: new Uint8Array(32),
  validators: noValidators,
  lastCommitSigners: null,
  txHash: new Uint8Array(32),
}

function transfer(nonce: bigint, amount: bigint, fee = 1n, chainId = genesis.chainId): SignedTx {
  return signTx(alice.key, { chainId, nonce, fee, kind: 'bank.transfer', body: { to: bob.did, amount } })
}

function rejects(fn: () => void, reason: string): void {
  assert.throws(fn, (err: unknown) => err instanceof TxError && err.reason === reason, reason)
}

test('genesis mints balances and stake into the supply', () => {
  const state = genesisState(genesis, machine)
  assert.equal(balanceOf(state, alice.did), 1_000n)
  assert.equal(totalSupply(state), 1_000n + 10_000n)
})

test('a transfer moves funds, charges the fee into the pool and advances the nonce', () => {
  const state = genesisState(genesis, machine)
  const events: string[] = []
  machine.deliver(state, transfer(0n, 100n, 2n), ctx, (e) => events.push(e.type))
  assert.equal(balanceOf(state, alice.did), 898n)
  assert.equal(balanceOf(state, bob.did), 100n)
  assert.equal(feePool(state), 2n)
  assert.equal(accountNonce(state, alice.did), 1n)
  assert.deepEqual(events, ['bank.transfer'])
  assert.equal(totalSupply(state), 11_000n, 'transfers and fees conserve supply')
})

test('invalid transactions change nothing: replay, wrong nonce, wrong chain, bad signature, unpayable fee, low fee', () => {
  const state = genesisState(genesis, machine)
  machine.deliver(state, transfer(0n, 100n), ctx, () => {})
  const before = state.changes().length
  const snapshot = [
    balanceOf(state, alice.did),
    balanceOf(state, bob.did),
    feePool(state),
    accountNonce(state, alice.did),
  ]
  rejects(() => machine.deliver(state, transfer(0n, 100n), ctx, () => {}), 'stale-nonce')
  rejects(() => machine.deliver(state, transfer(5n, 100n), ctx, () => {}), 'bad-nonce')
  rejects(() => machine.deliver(state, transfer(1n, 100n, 1n, 'other-chain'), ctx, () => {}), 'wrong-chain')
  rejects(
    () => machine.deliver(state, { ...transfer(1n, 100n), body: { to: bob.did, amount: 999n } }, ctx, () => {}),
    'bad-signature',
  )
  rejects(() => machine.deliver(state, transfer(1n, 1n, 5_000n), ctx, () => {}), 'insufficient-funds')
  rejects(() => machine.deliver(state, transfer(1n, 1n, 0n), ctx, () => {}), 'fee-too-low')
  rejects(
    () =>
      machine.deliver(
        state,
        signTx(alice.key, {
          chainId: genesis.chainId,
          nonce: 1n,
          fee: 1n,
          kind: 'bank.transfer',
          body: { to: 'did:key:zzz', amount: 1n },
        }),
        ctx,
        () => {},
      ),
    'malformed',
  )
  rejects(
    () =>
      machine.deliver(
        state,
        signTx(alice.key, { chainId: genesis.chainId, nonce: 1n, fee: 1n, kind: 'bank.mint', body: {} }),
        ctx,
        () => {},
      ),
    'unknown-kind',
  )
  assert.deepEqual(
    [balanceOf(state, alice.did), balanceOf(state, bob.did), feePool(state), accountNonce(state, alice.did)],
    snapshot,
  )
  assert.equal(state.changes().length, before)
})

test('a transfer that overspends is included as failed: the fee is charged, the nonce used, nothing moves', () => {
  const state = genesisState(genesis, machine)
  const events: Array<{ type: string; attributes: Record<string, string> }> = []
  const hash = new Uint8Array(32).fill(7)
  const result = machine.deliver(state, transfer(0n, 5_000n, 3n), { ...ctx, txHash: hash }, (e) => events.push(e))
  assert.ok(!result.ok && result.error instanceof TxError && result.error.reason === 'insufficient-funds')
  assert.equal(balanceOf(state, alice.did), 997n, 'only the fee left')
  assert.equal(balanceOf(state, bob.did), 0n)
  assert.equal(feePool(state), 3n)
  assert.equal(accountNonce(state, alice.did), 1n)
  assert.deepEqual(events, [{ type: 'tx.failed', attributes: { hash: '07'.repeat(32), reason: 'insufficient-funds' } }])
  assert.equal(totalSupply(state), 11_000n)
})

test('a transfer may carry a 32-byte envelope hash, reported in its event; any other length is malformed', () => {
  const state = genesisState(genesis, machine)
  const envelope = new Uint8Array(32).fill(7)
  const tx = signTx(alice.key, {
    chainId: genesis.chainId,
    nonce: accountNonce(state, alice.did),
    fee: 1n,
    kind: 'bank.transfer',
    body: { to: bob.did, amount: 5n, envelope },
  })
  const events: Array<{ type: string; attributes: Record<string, string> }> = []
  machine.deliver(state, tx, ctx, (e) => events.push(e))
  const event = events.find((e) => e.type === 'bank.transfer')
  assert.equal(event?.attributes.envelope, '07'.repeat(32))
  assert.equal(event?.attributes.tx, Buffer.from(ctx.txHash).toString('hex'))
  assert.equal(balanceOf(state, bob.did), 5n)
  const bad = signTx(alice.key, {
    chainId: genesis.chainId,
    nonce: accountNonce(state, alice.did),
    fee: 1n,
    kind: 'bank.transfer',
    body: { to: bob.did, amount: 5n, envelope: new Uint8Array(31) },
  })
  rejects(() => machine.deliver(state, bad, ctx, () => {}), 'malformed')
  assert.equal(balanceOf(state, bob.did), 5n)
})
