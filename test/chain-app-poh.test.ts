// Which nodes prepare PoH ticks (ChainAppOptions.tickRounds): a real ChainApp (LevelDB, modules)
// on a real generator thread per node. Only the validator that proposes round 1 or 2 of the next
// height ticks; the others, and a node that is not a validator, rest at the head's PoH end.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Store } from '../src/store/store.ts'
import { ChainApp } from '../src/chain/app.ts'
import { Mempool } from '../src/chain/mempool.ts'
import { WorkerPohService } from '../src/chain/poh-service.ts'
import { PohGenerator } from '../src/chain/poh/generator.ts'
import { PohVerifier } from '../src/chain/poh/verifier.ts'
import { verifyPohEntries } from '../src/chain/poh/entries.ts'
import { proposerFor, ticksRequiredFor } from '../src/chain/runtime.ts'
import { retainedProofKeys, validatorSetAt } from '../src/staking/staking.ts'
import { actor, makeGenesis, makeMachine, type Actor } from './helpers/chain.ts'
import { removeDir } from './helpers/chain-app.ts'
import { FAST_PARAMS } from './helpers/chain-net.ts'

const TICK_ROUNDS = 3

test('only the proposers of rounds 1 and 2 of the next height tick; every other node rests until it must', async () => {
  const validators = [actor(), actor(), actor(), actor()]
  const outsider = actor()
  const genesis = makeGenesis(
    validators,
    validators.map((v) => [v, 1_000_000n]),
    { ...FAST_PARAMS, hashesPerTick: 64, ticksPerSecond: 1000 },
  )
  const dir = await mkdtemp(join(tmpdir(), 'donghae-poh-rounds-'))
  const opened: Array<{ who: Actor; app: ChainApp; generator: PohGenerator; close(): Promise<void> }> = []
  try {
    for (const [i, who] of [...validators, outsider].entries()) {
      const store = await Store.open(join(dir, `node${i}`))
      const generator = new PohGenerator({ hashesPerTick: 64, ticksPerSecond: 1000 })
      const verifier = new PohVerifier({ workers: 1 })
      generator.start()
      verifier.start()
      const app = await ChainApp.open({
        genesis,
        store,
        machine: makeMachine(genesis),
        mempool: new Mempool(makeMachine(genesis)),
        poh: new WorkerPohService(generator, verifier),
        validatorSet: (state, height) => validatorSetAt(state, height, genesis.params),
        retainProofs: (height) => retainedProofKeys(height, genesis.params),
        proposer: proposerFor(genesis),
        ticksRequired: ticksRequiredFor(genesis),
        tickRounds: TICK_ROUNDS,
        self: who.did,
      })
      opened.push({
        who,
        app,
        generator,
        close: async () => {
          await generator.stop()
          await verifier.stop()
          await store.close()
        },
      })
    }
    const set = opened[0]!.app.validatorSet(1)
    const proposer = proposerFor(genesis)
    const expected = new Set([proposer(set, 1, 1), proposer(set, 1, 2)])
    // every generator thread runs and has its reset (a round trip through its loop), then ~200 ms
    // go by: at 1000 ticks a second a ticking generator makes ~200 meanwhile
    for (const { generator } of opened) await generator.ready()
    await sleep(200)
    for (const { who, app, generator } of opened) {
      const prepares = expected.has(who.did)
      assert.equal(app.preparesTicks(1), prepares, `${who === outsider ? 'the outsider' : 'a validator'}`)
      const ticks = await generator.drain()
      if (prepares) {
        assert.ok(ticks.length >= 20, `the round-1/2 proposer ticks (${ticks.length})`)
        assert.equal(verifyPohEntries(app.head.pohEnd, ticks, 64).ok, true, 'from the head PoH end')
      } else assert.deepEqual(ticks, [], 'everybody else rests')
    }
    assert.ok(expected.size >= 1 && expected.size <= 2)
    assert.equal(opened.filter((o) => o.app.preparesTicks(1)).length, expected.size)
    // A node that rested and is the proposer of a later round makes its ticks when it proposes,
    // and the others accept the block.
    const rester = opened.find((o) => !expected.has(o.who.did) && o.who !== outsider)!
    let round = 3
    while (proposer(set, 1, round) !== rester.who.did) round++
    const block = await rester.app.createBlock(1, round)
    const required = ticksRequiredFor(genesis)(round)
    assert.ok(required > 100 && block.header.pohTicks >= required, `round ${round} needs ${required} ticks`)
    await opened[0]!.app.checkBlock(block, 1, round)
  } finally {
    for (const o of opened) await o.close()
    await removeDir(dir)
  }
})
