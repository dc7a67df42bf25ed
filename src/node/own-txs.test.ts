// The node's own-transaction queue over a real state machine and mempool (MemoryChain commits
// what the mempool reaps): nonces follow on while transactions are pending, and a transaction the
// chain drops leaves no gap behind it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { accountNonce } from '../chain/host.ts'
import { balanceOf } from '../bank/bank.ts'
import { actor, makeGenesis } from '../../test/helpers/chain.ts'
import { MemoryChain } from '../../test/helpers/memory-chain.ts'
import { OwnTxQueue } from './own-txs.ts'

function setup(): { chain: MemoryChain; queue: OwnTxQueue; abandoned: string[]; self: string; to: string } {
  const validator = actor()
  const self = actor()
  const to = actor()
  const genesis = makeGenesis([validator], [[self, 1_000_000n]])
  const chain = new MemoryChain({ genesis, validators: [validator] })
  const abandoned: string[] = []
  const queue = new OwnTxQueue({
    key: self.key,
    chainId: genesis.chainId,
    fee: genesis.params.minFee,
    state: () => chain.state,
    pendingFrom: (did) => chain.mempool.pendingFrom(did),
    inMempool: (hash) => chain.mempool.has(hash),
    dropFromMempool: (hash) => chain.mempool.drop(hash),
    submit: async (bytes) => (await chain.submitTx(bytes)).hash,
    onAbandoned: (kind, nonce) => abandoned.push(`${kind}@${nonce}`),
  })
  return { chain, queue, abandoned, self: self.did, to: to.did }
}

test('concurrent callers get consecutive nonces while earlier ones are pending, then the committed nonce', async () => {
  const { chain, queue, self, to } = setup()
  const sent = await Promise.all([1n, 2n, 3n].map((amount) => queue.submit('bank.transfer', { to, amount })))
  assert.deepEqual(
    sent.map((s) => s.nonce),
    [0n, 1n, 2n],
  )
  chain.commitPending()
  await queue.committed()
  assert.equal(queue.waiting, 0)
  assert.equal(balanceOf(chain.state, to), 6n)
  assert.equal((await queue.submit('bank.transfer', { to, amount: 4n })).nonce, accountNonce(chain.state, self))
})

test('a transaction the chain dropped is given up and the ones after it are signed again from its nonce', async () => {
  const { chain, queue, abandoned, self, to } = setup()
  const first = await queue.submit('bank.transfer', { to, amount: 10n })
  await queue.submit('bank.transfer', { to, amount: 20n })
  await queue.submit('bank.transfer', { to, amount: 30n })
  // what a proposer does with a transaction refused while it builds a block
  chain.mempool.drop(first.hash)
  chain.commitPending()
  assert.equal(accountNonce(chain.state, self), 0n, 'the gap at nonce 0 holds everything after it back')
  await queue.committed()
  assert.deepEqual(abandoned, ['bank.transfer@0'])
  assert.equal(queue.waiting, 2, 'the two later transfers, signed again at nonces 0 and 1')
  chain.commitPending()
  await queue.committed()
  assert.equal(queue.waiting, 0)
  assert.equal(balanceOf(chain.state, to), 50n, 'the two later transfers arrived, the dropped one did not')
  assert.equal((await queue.submit('bank.transfer', { to, amount: 1n })).nonce, 2n)
})

test('when the mempool lost the first of the waiting transactions, a new one refused as too far ahead makes the queue sign the waiting ones again at once, with no commit', async () => {
  const { chain, queue, self, to } = setup()
  const sent = []
  for (let i = 1n; i <= 64n; i++) sent.push(await queue.submit('bank.transfer', { to, amount: i }))
  // the account's next nonce leaves the mempool (dropped while a block was built, a restart of a
  // peer…): the 63 after it wait behind the gap, nothing can run, an idle chain makes no block
  chain.mempool.drop((sent[0] as { hash: Uint8Array }).hash)
  assert.equal(chain.mempool.pendingFrom(self), 63)
  await assert.rejects(queue.submit('bank.transfer', { to, amount: 1000n }), /too far ahead/)
  assert.equal(chain.mempool.pendingFrom(self), 64, 'the waiting ones were signed again from the next nonce')
  chain.commitPending()
  await queue.committed()
  assert.equal(balanceOf(chain.state, to), (64n * 65n) / 2n, 'all 64 arrived')
  assert.equal((await queue.submit('bank.transfer', { to, amount: 1n })).nonce, 64n)
})
