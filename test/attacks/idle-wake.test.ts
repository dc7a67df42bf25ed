// Attack (issue 16): keeping an idle chain busy for free. A chain without empty blocks
// (`emptyBlockIntervalMs`) starts a height when a transaction reaches the mempool; a stranger
// with a funded account gossips transactions it never lets run — nonces far ahead of its next
// one, each admitted (within the nonce window, paid for by its balance) but never includable —
// hoping each wakes every validator into a round and an empty block. The hint the runtime gives
// the engine is checked against what can run now (a sender's next nonce), so nothing is decided;
// the one transaction that can run makes exactly one block.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encodeTx, signTx } from '../../src/chain/tx.ts'
import type { DonghaeNode } from '../../src/node/index.ts'
import { actor, makeGenesis, type Actor } from '../helpers/chain.ts'
import { FAST_PARAMS, testNet, waitFor } from '../helpers/chain-net.ts'

test('attack: transactions that cannot run (nonces ahead of the next) do not wake an idle chain; one that can makes one block', async (t) => {
  const validators = [actor(), actor(), actor(), actor()]
  const stranger = actor()
  const genesis = makeGenesis(
    validators,
    [...validators.map((v): [Actor, bigint] => [v, 1_000_000n]), [stranger, 1_000_000n]],
    { ...FAST_PARAMS, emptyBlockIntervalMs: 60_000 },
  )
  const net = await testNet(validators, genesis)
  try {
    const first = net.nodes.get((validators[0] as Actor).did) as DonghaeNode
    const sink = actor()
    const transfer = (nonce: bigint): Uint8Array =>
      encodeTx(
        signTx(stranger.key, {
          chainId: genesis.chainId,
          nonce,
          fee: 1n,
          kind: 'bank.transfer',
          body: { to: sink.did, amount: 1n },
        }),
      )
    let messages = 0
    net.hub.join('spy').subscribe('consensus', () => {
      messages++
      return 'ignore'
    })
    // nonces 1..8: admitted (the stranger pays for them all), none can run before nonce 0
    for (let nonce = 1n; nonce <= 8n; nonce++) await first.runtime.submitTx(transfer(nonce))
    await waitFor('every mempool to hold the eight', () => [...net.nodes.values()].every((n) => n.mempool.size === 8))
    // Absence over a few of FAST_PARAMS' rounds (≈ 1 s each): no round started, nothing sent.
    await new Promise((resolve) => setTimeout(resolve, 3_000))
    for (const node of net.nodes.values()) {
      assert.equal(node.app.head.height, 0, 'no block for transactions that cannot run')
      assert.equal(node.runtime.consensus?.step, 'newHeight')
    }
    assert.equal(messages, 0, 'no consensus message at all')
    // nonce 0 lets all nine run: the chain wakes and includes them
    await first.runtime.submitTx(transfer(0n))
    await waitFor('the nine transfers to commit', () => first.app.head.height >= 1 && first.mempool.size === 0)
    const txs = (await first.app.getBlock(1))?.txs.length ?? 0
    t.diagnostic(`block 1 carries ${txs} transactions; ${messages} consensus messages were sent for it`)
    assert.equal(txs, 9, 'all nine in the first block')
  } finally {
    await net.close()
  }
})
