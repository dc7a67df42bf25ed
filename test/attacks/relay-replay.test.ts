// Attack (issue 16): relay races are not charged like junk. Under load honest nodes relay
// transactions the receiver already has (a pending one re-gossiped by its origin; one that just
// went into a block), so `duplicate` and `already-included` count a twentieth against the
// relaying peer's ignore budget (RELAY_RACE_CHARGE). A peer that replays one valid transaction as
// fresh gossip, again and again, must still be cut off: each copy costs the receiver a decode and
// a lookup, and gossip dedup cannot catch it (every copy is a new gossip message).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encodeTx, signTx } from '../../src/chain/tx.ts'
import { RELAY_RACE_CHARGE, TX_IGNORE_BUDGET, TX_TOPIC } from '../../src/chain/runtime.ts'
import { encodeTxBatch } from '../../src/chain/tx-batch.ts'
import type { DonghaeNode } from '../../src/node/index.ts'
import { actor, type Actor } from '../helpers/chain.ts'
import { testNet, waitFor } from '../helpers/chain-net.ts'

test('attack: one valid transaction replayed as fresh gossip is charged as a relay race until the peer is cut off', async (t) => {
  const validators = [actor(), actor(), actor(), actor()]
  const net = await testNet(validators)
  try {
    const victim = net.nodes.get((validators[0] as Actor).did) as DonghaeNode
    const sender = validators[1] as Actor
    const tx = encodeTx(
      signTx(sender.key, {
        chainId: net.genesis.chainId,
        nonce: 0n,
        fee: 1n,
        kind: 'bank.transfer',
        body: { to: actor().did, amount: 1n },
      }),
    )
    await victim.runtime.submitTx(tx)
    const replayer = net.hub.join('replayer')
    // twice the burst allowance in relay races (the budget refills meanwhile)
    const copies = Math.ceil((2 * TX_IGNORE_BUDGET.amount) / RELAY_RACE_CHARGE)
    const before = victim.runtime.stats.floodedTxs
    for (let i = 0; i < copies; i++) {
      replayer.publish(TX_TOPIC, encodeTxBatch([tx]))
      if (i % 500 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    await waitFor('the replayer cut off', () => victim.runtime.stats.floodedTxs > before, 30_000).catch(
      (err: unknown) => {
        t.diagnostic(JSON.stringify(victim.runtime.stats))
        throw err
      },
    )
    const flooded = victim.runtime.stats.floodedTxs - before
    t.diagnostic(`${copies} copies: ${flooded} rejected unread once the replayer's budget was spent`)
    assert.ok(flooded > 0 && flooded < copies, 'the first copies cost only a twentieth each, the rest are refused')
    // the transaction itself is unharmed
    await waitFor('the transfer to commit', () => victim.mempool.size === 0 && victim.app.head.height >= 1)
  } finally {
    await net.close()
  }
})
