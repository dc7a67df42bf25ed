// Transactions gossiped in batches (src/chain/tx-batch.ts): 200 transfers submitted to one node at
// once leave it in a handful of gossip messages, every other node admits them from those, and all
// commit. Attacks on the batch topic are in test/attacks/tx-batches.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encodeTx, signTx, txHash } from '../src/chain/tx.ts'
import { TX_TOPIC } from '../src/chain/runtime.ts'
import { decodeTxBatch } from '../src/chain/tx-batch.ts'
import type { DonghaeNode } from '../src/node/index.ts'
import { actor, makeGenesis, type Actor } from './helpers/chain.ts'
import { FAST_PARAMS, testNet, waitFor } from './helpers/chain-net.ts'

test('200 transfers submitted together go out in a few gossip messages and all commit on every node', async (t) => {
  const validators = [actor(), actor(), actor(), actor()]
  const senders = Array.from({ length: 4 }, () => actor())
  const genesis = makeGenesis(
    validators,
    [...validators, ...senders].map((a): [Actor, bigint] => [a, 1_000_000n]),
    FAST_PARAMS,
  )
  const net = await testNet(validators, genesis)
  try {
    const nodes = validators.map((v) => net.nodes.get(v.did) as DonghaeNode)
    const entry = nodes[0] as DonghaeNode
    // what the other nodes hear on the topic from the entry node
    const heard: number[] = []
    net.hub.join('listener').subscribe(TX_TOPIC, (data) => {
      heard.push(decodeTxBatch(data).length)
      return 'ignore'
    })
    const recipient = actor().did
    const txs = senders.flatMap((s) =>
      Array.from({ length: 50 }, (_, n) =>
        encodeTx(
          signTx(s.key, {
            chainId: genesis.chainId,
            nonce: BigInt(n),
            fee: 1n,
            kind: 'bank.transfer',
            body: { to: recipient, amount: 1n },
          }),
        ),
      ),
    )
    await Promise.all(txs.map((bytes) => entry.runtime.submitTx(bytes)))
    await waitFor(
      'all 200 committed on every node',
      async () =>
        (await Promise.all(nodes.flatMap((node) => txs.map(async (tx) => node.app.txHeight(txHash(tx)))))).every(
          (h) => h !== undefined,
        ),
      60_000,
    )
    const sent = entry.runtime.txBatches
    t.diagnostic(`${sent.txs} transactions in ${sent.batches} gossip messages (${heard.join(', ')})`)
    assert.equal(sent.txs, 200, 'every transaction was gossiped once')
    assert.ok(sent.batches <= 20, `${sent.batches} gossip messages for 200 transactions`)
    assert.equal(
      heard.reduce((a, b) => a + b, 0),
      200,
      'the listener heard each transaction once, in batches',
    )
    assert.ok(heard.length === sent.batches && heard.some((n) => n > 1))
    assert.deepEqual(net.hub.penalties, [], 'nobody was penalized')
  } finally {
    await net.close()
  }
})
