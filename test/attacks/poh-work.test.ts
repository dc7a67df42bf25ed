// Attack: a proposer whose block's PoH makes every validator hash for hours. Tick entries are
// bounded (exactly hashesPerTick each, and no more ticks than the time since the parent allows),
// but a mixin entry's hash count is the proposer's word: one claiming 10^12 hashes used to be
// verified by hashing them (found by fuzzing, docs/fuzzing.md). The block is refused before any
// hashing, with the reason; an honest block (mixins at 0 hashes) still passes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encodeTx, signTx } from '../../src/chain/tx.ts'
import { BlockError } from '../../src/chain/errors.ts'
import { proposerFor } from '../../src/chain/runtime.ts'
import type { Block } from '../../src/chain/block.ts'
import { actor, makeGenesis, type Actor } from '../helpers/chain.ts'
import { openTestChain, removeDir, type TestChain } from '../helpers/chain-app.ts'

const validators = [actor(), actor(), actor(), actor()]
const alice = actor()
const genesis = makeGenesis(validators, [[alice, 1_000_000n], ...validators.map((v) => [v, 1_000n] as [Actor, bigint])])

test(
  'attack: a proposal whose PoH mixin claims 10^12 hashes is refused before any hashing',
  { timeout: 60_000 },
  async () => {
    const nodes = await Promise.all(validators.map(async (who) => ({ who, chain: await openTestChain(genesis, who) })))
    try {
      const height = 1
      const proposerDid = proposerFor(genesis)(nodes[0]!.chain.app.validatorSet(height), height, 0)
      const proposer = nodes.find((n) => n.who.did === proposerDid) as { chain: TestChain }
      const validator = nodes.find((n) => n !== proposer) as { chain: TestChain }
      const transfer = encodeTx(
        signTx(alice.key, {
          chainId: genesis.chainId,
          nonce: 0n,
          fee: 1n,
          kind: 'bank.transfer',
          body: { to: validators[0]!.did, amount: 5n },
        }),
      )
      proposer.chain.mempool.add(transfer, proposer.chain.app.state)
      for (const n of nodes) n.chain.clock.advance(1_000)
      const good = await proposer.chain.app.createBlock(height, 0)
      const mixins = good.poh.filter((e) => e.mixin !== undefined)
      assert.ok(mixins.length >= 1, 'the block mixes its transactions into PoH')
      assert.ok(
        mixins.every((e) => e.numHashes === 0),
        'an honest proposer records mixins at 0 hashes',
      )
      assert.ok(
        await validator.chain.app.validateBlock(
          validator.chain.app.decodeBlock(proposer.chain.app.encodeBlock(good)),
          height,
          0,
        ),
      )

      const bomb: Block = validator.chain.app.decodeBlock(proposer.chain.app.encodeBlock(good))
      const entry = bomb.poh.find((e) => e.mixin !== undefined)
      assert.ok(entry !== undefined)
      entry.numHashes = 1e12
      await assert.rejects(
        validator.chain.app.checkBlock(bomb, height, 0),
        (err: unknown) => err instanceof BlockError && /PoH mixin entries claim 1000000000000 hashes/.test(err.message),
      )
      assert.equal(validator.chain.app.head.height, 0, 'nothing committed')
    } finally {
      for (const { chain } of nodes) {
        await chain.close()
        await removeDir(chain.dir)
      }
    }
  },
)
