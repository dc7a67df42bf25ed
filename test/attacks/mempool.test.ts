// Attacks on mempool admission and on block space, run against real nodes (LevelDB, consensus
// engine, PoH, mempool, runtime) in one process over the in-memory network. Each test performs
// the attack and checks that it fails, with the reason the node gives.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { toHex } from '../../src/core/bytes.ts'
import { encodeTx, signTx, txHash } from '../../src/chain/tx.ts'
import { TxError } from '../../src/chain/errors.ts'
import { TX_TOPIC } from '../../src/chain/runtime.ts'
import { encodeTxBatch } from '../../src/chain/tx-batch.ts'
import { balanceOf } from '../../src/bank/bank.ts'
import { actor, makeGenesis, type Actor } from '../helpers/chain.ts'
import { FAST_PARAMS, testNet, waitFor } from '../helpers/chain-net.ts'
import type { DonghaeNode } from '../../src/node/index.ts'

const MAX_FEE = 2n ** 64n - 1n
const POOL = 10_000 // the node's default mempool bound
const PER_SENDER = 64 // the node's default per-sender bound

function transfer(from: Actor, nonce: bigint, fee: bigint, to: string, chainId: string, amount = 1n): Uint8Array {
  return encodeTx(signTx(from.key, { chainId, nonce, fee, kind: 'bank.transfer', body: { to, amount } }))
}

test('attack: unfunded transactions offering the largest fee (2^64−1) evict honest ones from a full mempool — refused as insufficient-funds, nothing evicted', async () => {
  const validators = [actor(), actor(), actor(), actor()]
  const senders = Array.from({ length: Math.ceil(POOL / PER_SENDER) }, () => actor())
  const genesis = makeGenesis(
    validators,
    [...validators, ...senders].map((a) => [a, 1_000_000n] as [Actor, bigint]),
    FAST_PARAMS,
  )
  const net = await testNet(validators, genesis)
  try {
    // Only one validator runs at first (no quorum, no blocks), so its mempool stays full.
    for (const v of validators.slice(1)) await net.stop(v)
    const node = net.nodes.get((validators[0] as Actor).did) as DonghaeNode
    const recipient = actor().did
    const honest: Uint8Array[] = []
    for (const s of senders)
      for (let n = 0n; n < BigInt(PER_SENDER) && honest.length < POOL; n++)
        honest.push(transfer(s, n, 1n, recipient, genesis.chainId))
    await Promise.all(honest.map((bytes) => node.runtime.submitTx(bytes)))
    assert.equal(node.mempool.size, POOL, 'the mempool is full of honest, payable transactions')

    // The attack: accounts with no money offer the largest fee there is, through the API path
    // and through gossip from a peer.
    const junk = [actor(), actor()].map((a) => transfer(a, 0n, MAX_FEE, recipient, genesis.chainId))
    for (const bytes of junk)
      await assert.rejects(
        node.runtime.submitTx(bytes),
        (err: unknown) => err instanceof TxError && err.reason === 'insufficient-funds',
      )
    const attacker = net.hub.join('attacker-peer')
    const rejectedBefore = node.runtime.stats.rejectedTxs
    for (const bytes of junk) attacker.publish(TX_TOPIC, encodeTxBatch([bytes]))
    await waitFor('both gossiped copies to be judged', () => node.runtime.stats.rejectedTxs >= rejectedBefore + 2)

    assert.equal(node.mempool.size, POOL)
    for (const bytes of honest) assert.ok(node.mempool.has(txHash(bytes)), 'no honest transaction was evicted')
    for (const bytes of junk) assert.ok(!node.mempool.has(txHash(bytes)))
    // Unfunded is not proof of malice (a peer may have seen a later block), so no penalty: ignored, not relayed.
    assert.ok(!net.hub.penalties.some((p) => p.peer === 'attacker-peer'))

    // With the other validators back, an honest transaction from the pool's tail commits.
    for (const v of validators.slice(1)) await net.start(v)
    const last = honest.at(-1) as Uint8Array
    await waitFor(
      'the last honest transaction to commit',
      async () => (await node.app.txHeight(txHash(last))) !== undefined,
      60_000,
    )
    for (const bytes of junk) assert.equal(await node.app.txHeight(txHash(bytes)), undefined)
  } finally {
    await net.close()
  }
})

test('attack: transactions that fail at execution fill blocks for free — each is now included as failed and pays its fee', async () => {
  const validators = [actor(), actor(), actor(), actor()]
  const spammer = actor()
  const genesis = makeGenesis(
    validators,
    [...validators.map((v) => [v, 1_000_000n] as [Actor, bigint]), [spammer, 10_000n]],
    FAST_PARAMS,
  )
  const net = await testNet(validators, genesis)
  try {
    const node = net.nodes.get((validators[0] as Actor).did) as DonghaeNode
    // Unbonding stake the spammer never bonded passes every admission check and fails in the body.
    const fee = 10n
    const spam = Array.from({ length: 20 }, (_, n) =>
      encodeTx(
        signTx(spammer.key, {
          chainId: genesis.chainId,
          nonce: BigInt(n),
          fee,
          kind: 'staking.unbond',
          body: { amount: 1_000n },
        }),
      ),
    )
    for (const bytes of spam) await node.runtime.submitTx(bytes)
    await waitFor('every spam transaction to be in a block', async () =>
      (await Promise.all(spam.map((b) => node.app.txOutcome(txHash(b))))).every((o) => o !== undefined),
    )
    for (const bytes of spam)
      assert.deepEqual(
        { ...(await node.app.txOutcome(txHash(bytes))), height: 0 },
        { height: 0, ok: false, reason: 'insufficient-stake' },
        toHex(txHash(bytes)),
      )
    assert.equal(balanceOf(node.app.state, spammer.did), 10_000n - 20n * fee, 'every failed transaction paid its fee')
  } finally {
    await net.close()
  }
})
