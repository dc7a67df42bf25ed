import { test } from 'node:test'
import assert from 'node:assert/strict'
import { signTx, encodeTx } from './tx.ts'
import { MempoolError, TxError } from './errors.ts'
import { Mempool } from './mempool.ts'
import { actor, genesisState, makeGenesis, makeMachine } from '../../test/helpers/chain.ts'
import type { ValidatorSet } from './bft/types.ts'
import { SparseMerkleTree } from './state/smt.ts'
import { encode } from '../core/codec.ts'
import { utf8 } from '../core/bytes.ts'

const alice = actor()
const carol = actor()
const bob = actor()
const val = actor()
const genesis = makeGenesis(
  [val],
  [
    [alice, 1_000_000n],
    [carol, 1_000_000n],
  ],
)
const machine = makeMachine(genesis)

function tx(who = alice, nonce: bigint, fee = 1n, amount = 1n): Uint8Array {
  return encodeTx(
    signTx(who.key, { chainId: genesis.chainId, nonce, fee, kind: 'bank.transfer', body: { to: bob.did, amount } }),
  )
}

function reason(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof TxError, String(err))
    return err.reason
  }
  return 'accepted'
}

test('admission: duplicates, stale nonces, bad signatures, far nonces and full pools are refused', () => {
  const state = genesisState(genesis, machine)
  const pool = new Mempool(machine, { maxTxs: 4, maxPerSender: 3 })
  pool.add(tx(alice, 0n), state)
  assert.equal(
    reason(() => pool.add(tx(alice, 0n), state)),
    'duplicate',
  )
  assert.equal(
    reason(() => pool.add(tx(alice, 3n), state)),
    'nonce-too-far',
  )
  assert.equal(
    reason(() => pool.add(new Uint8Array([1, 2, 3]), state)),
    'malformed',
  )
  const forged = signTx(alice.key, {
    chainId: genesis.chainId,
    nonce: 1n,
    fee: 1n,
    kind: 'bank.transfer',
    body: { to: bob.did, amount: 1n },
  })
  assert.equal(
    reason(() => pool.add(encodeTx({ ...forged, fee: 2n }), state)),
    'bad-signature',
  )
  assert.equal(
    reason(() => pool.add(tx(alice, 0n, 1n, 2n), state)),
    'nonce-in-use',
  )
  pool.add(tx(alice, 0n, 5n, 2n), state) // same nonce, higher fee: replaces
  assert.equal(pool.size, 1)
  pool.add(tx(alice, 1n), state)
  pool.add(tx(alice, 2n), state)
  assert.equal(
    reason(() => pool.add(tx(alice, 3n), state)),
    'nonce-too-far',
    'the per-sender bound',
  )
  pool.add(tx(carol, 0n, 1n), state)
  assert.equal(pool.size, 4)
  assert.equal(
    reason(() => pool.add(tx(carol, 1n, 1n), state)),
    'full',
  )
  pool.add(tx(carol, 1n, 9n), state) // evicts a cheaper one
  assert.equal(pool.size, 4)
  assert.ok(reason(() => pool.add(tx(carol, 1n, 9n), state)) === 'duplicate')
})

test('reap returns each sender in nonce order, highest fee first across senders; update drops included ones', () => {
  const state = genesisState(genesis, machine)
  const pool = new Mempool(machine)
  assert.equal(pool.hasReady(state), false, 'nothing pending')
  pool.add(tx(alice, 1n, 10n), state)
  assert.equal(pool.hasReady(state), false, "alice's nonce 1 waits behind the missing 0: nothing to reap")
  assert.deepEqual(pool.reap(state, 10), [])
  pool.add(tx(alice, 0n, 1n), state)
  assert.equal(pool.hasReady(state), true)
  pool.add(tx(carol, 0n, 5n), state)
  const order = pool.reap(state, 10).map((e) => `${e.tx.sender === alice.did ? 'a' : 'c'}${e.tx.nonce}`)
  assert.deepEqual(order, ['c0', 'a0', 'a1'])
  // Execute alice's first transaction: the pool forgets it and keeps the rest.
  const noSet: ValidatorSet = { validators: [], totalPower: 0n }
  const first = pool.reap(state, 10).find((e) => e.tx.sender === alice.did)
  assert.ok(first)
  machine.deliver(
    state,
    first.tx,
    {
      chainId: genesis.chainId,
      height: 1,
      time: 0,
      proposer: val.did,
      parentId: new Uint8Array(32),
      validators: noSet,
      lastCommitSigners: null,
      txHash: first.hash,
    },
    () => {},
  )
  pool.update(state)
  assert.equal(pool.size, 2)
  assert.ok(!pool.has(first.hash))
  assert.throws(
    () => pool.add(first.bytes, state),
    (err: unknown) => err instanceof TxError && !(err instanceof MempoolError) && err.reason === 'stale-nonce',
  )
})

test('payable: a sender’s pending fees and transfer amounts together must fit its balance; the unfunded place nothing', () => {
  const state = genesisState(genesis, machine)
  const pool = new Mempool(machine)
  const err = (fn: () => unknown): TxError => {
    try {
      fn()
    } catch (e) {
      assert.ok(e instanceof TxError)
      return e
    }
    throw new Error('accepted')
  }
  const unfunded = err(() => pool.add(tx(bob, 0n, 2n ** 64n - 1n), state))
  assert.deepEqual([unfunded.reason, unfunded.action], ['insufficient-funds', 'ignore'])
  // alice holds 1 000 000: 600 000 + 1 pending, then 399 998 + 1 fits exactly, then nothing more.
  pool.add(tx(alice, 0n, 1n, 600_000n), state)
  pool.add(tx(alice, 1n, 1n, 399_998n), state)
  assert.equal(pool.pendingCost(alice.did), 1_000_000n)
  assert.equal(
    reason(() => pool.add(tx(alice, 2n, 1n, 1n), state)),
    'insufficient-funds',
  )
  // Replacing a pending transaction counts the new cost instead of the old one.
  assert.equal(
    reason(() => pool.add(tx(alice, 1n, 2n, 399_998n), state)),
    'insufficient-funds',
  )
  pool.add(tx(alice, 1n, 2n, 399_997n), state)
  assert.equal(pool.pendingCost(alice.did), 1_000_000n)
  assert.equal(pool.size, 2)
})

test('eviction: only an admitted transaction evicts, only at the tail of another sender’s queue, only for a higher fee', () => {
  const state = genesisState(genesis, machine)
  const pool = new Mempool(machine, { maxTxs: 3 })
  const a0 = pool.add(tx(alice, 0n, 1n), state)
  const a1 = pool.add(tx(alice, 1n, 1n), state)
  const c0 = pool.add(tx(carol, 0n, 5n), state)
  // An unfunded sender offering the largest fee there is is refused before it can evict anything.
  assert.equal(
    reason(() => pool.add(tx(bob, 0n, 2n ** 64n - 1n), state)),
    'insufficient-funds',
  )
  assert.equal(pool.size, 3)
  // carol's second transaction (fee 3) evicts alice's tail (fee 1), not alice's head.
  pool.add(tx(carol, 1n, 3n), state)
  assert.ok(pool.has(a0.hash) && !pool.has(a1.hash) && pool.has(c0.hash))
  // alice at fee 2 may not evict carol's tail (fee 3), and never her own queue: the pool is full for her.
  assert.equal(
    reason(() => pool.add(tx(alice, 1n, 2n), state)),
    'full',
  )
})

test('a full pool refuses a fee no higher than the lowest pending at once, and the lowest follows admissions and removals', () => {
  const dave = actor()
  const g = makeGenesis(
    [val],
    [alice, carol, dave].map((a) => [a, 1_000_000n]),
  )
  const m = makeMachine(g)
  const state = genesisState(g, m)
  const t = (who: typeof alice, nonce: bigint, fee: bigint): Uint8Array =>
    encodeTx(
      signTx(who.key, { chainId: g.chainId, nonce, fee, kind: 'bank.transfer', body: { to: bob.did, amount: 1n } }),
    )
  const pool = new Mempool(m, { maxTxs: 3 })
  pool.add(t(carol, 0n, 3n), state)
  pool.add(t(carol, 1n, 3n), state)
  pool.add(t(alice, 0n, 3n), state)
  assert.equal(
    reason(() => pool.add(t(dave, 0n, 3n), state)),
    'full',
    'fee 3 is the lowest pending',
  )
  // alice's transaction is committed: it leaves, and alice's next one pays only 1
  state.write(`auth/nonce/${alice.did}`, 1n)
  pool.update(state)
  assert.equal(pool.size, 2)
  const a1 = pool.add(t(alice, 1n, 1n), state)
  // the lowest is 1 now: dave at 2 evicts alice's tail
  const d0 = pool.add(t(dave, 0n, 2n), state)
  assert.ok(!pool.has(a1.hash) && pool.has(d0.hash), "dave's fee 2 evicted alice's fee 1")
  // with fee 1 gone, the lowest is dave's 2: alice at 2 is refused, at 4 she evicts dave
  assert.equal(
    reason(() => pool.add(t(alice, 1n, 2n), state)),
    'full',
  )
  pool.add(t(alice, 1n, 4n), state)
  assert.ok(!pool.has(d0.hash))
})

test('add after precheck: on the same tree only the pool is checked again; on a newer tree everything is', () => {
  const tree = SparseMerkleTree.empty().apply(genesisState(genesis, machine).changes())
  const pool = new Mempool(machine)
  const first = tx(alice, 0n)
  const checked = pool.precheck(first, tree)
  assert.equal(checked.state, tree)
  assert.ok(pool.add(first, tree, { prechecked: checked }))
  // the same tree: what the precheck read there is reused (a balance it saw as 0 stays 0)
  const second = tx(alice, 1n)
  const seenPoor = { ...pool.precheck(second, tree), balance: 0n }
  assert.equal(
    reason(() => pool.add(second, tree, { prechecked: seenPoor })),
    'insufficient-funds',
  )
  // a newer tree (a block took alice's money meanwhile): checked again against it
  const poorer = tree.set(utf8(`bank/bal/${alice.did}`), encode(1n))
  assert.equal(
    reason(() => pool.add(second, poorer, { prechecked: pool.precheck(second, tree) })),
    'insufficient-funds',
  )
  // the pool part is always checked again: the same transaction cannot be added twice
  assert.equal(
    reason(() => pool.add(first, tree, { prechecked: checked })),
    'duplicate',
  )
  assert.ok(pool.add(second, tree, { prechecked: pool.precheck(second, tree) }))
})

test('recheck after a block: every sender is re-checked, and each keeps only the prefix its balance still pays for', () => {
  const state = genesisState(genesis, machine)
  const pool = new Mempool(machine)
  pool.add(tx(carol, 0n, 1n, 300_000n), state)
  pool.add(tx(carol, 1n, 1n, 300_000n), state)
  pool.add(tx(carol, 2n, 1n, 300_000n), state)
  pool.add(tx(carol, 3n, 1n, 1n), state)
  pool.add(tx(alice, 0n, 1n), state)
  // Something in a block took money from carol without a transaction of hers (e.g. an inference
  // settlement charging a client): her balance is now 650 000.
  state.write(`bank/bal/${carol.did}`, 650_000n)
  pool.update(state)
  assert.equal(
    pool.pendingFrom(carol.did),
    2,
    'the third no longer fits; it leaves, and the fourth (which could not run before it) too',
  )
  assert.equal(pool.pendingCost(carol.did), 600_002n)
  assert.equal(pool.pendingFrom(alice.did), 1)
})
