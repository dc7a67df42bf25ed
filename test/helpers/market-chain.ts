/**
 * The market's chain (bank, staking, inference: test/helpers/market.ts) as real ChainApps
 * (LevelDB, inline PoH), one validator (`market.val`), with a ChainRuntime for mempool admission
 * (no network: a stub transport). For tests of what a node verifies where.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Store } from '../../src/store/store.ts'
import { ChainApp } from '../../src/chain/app.ts'
import { Mempool } from '../../src/chain/mempool.ts'
import { InlinePohService } from '../../src/chain/poh-service.ts'
import { ChainRuntime, proposerFor } from '../../src/chain/runtime.ts'
import { StateMachine } from '../../src/chain/host.ts'
import { encodeTx, signTx } from '../../src/chain/tx.ts'
import type { Block } from '../../src/chain/block.ts'
import { bankModule, feeCollector } from '../../src/bank/bank.ts'
import { retainedProofKeys, stakingModule, validatorSetAt } from '../../src/staking/staking.ts'
import { inferenceModule } from '../../src/inference/chain/module.ts'
import { VerifyPool, type VerifyItem } from '../../src/identity/verify-pool.ts'
import { ManualClock } from '../../src/core/clock.ts'
import { certify } from './chain-app.ts'
import type { Actor } from './chain.ts'
import type { Market } from './market.ts'

export interface MarketNode {
  app: ChainApp
  mempool: Mempool
  runtime: ChainRuntime
  clock: ManualClock
  close(): Promise<void>
}

/** A pool that records what it is asked, and answers inline (or `answer` when given: a lying pool). */
export class RecordingPool extends VerifyPool {
  readonly items: VerifyItem[] = []
  readonly #answer: ((item: VerifyItem) => boolean) | undefined
  constructor(answer?: (item: VerifyItem) => boolean) {
    super({ workers: 1 })
    this.#answer = answer
  }
  override verify(item: VerifyItem): Promise<boolean> {
    this.items.push(item)
    return this.#answer === undefined ? super.verify(item) : Promise.resolve(this.#answer(item))
  }
}

const stubNetwork = {
  publish: () => {},
  subscribe: () => () => {},
  request: () => Promise.reject(new Error('no network')),
  handle: () => {},
  peers: () => [],
  penalize: () => {},
}

export async function openMarketNode(m: Market, self: Actor | undefined, pool?: VerifyPool): Promise<MarketNode> {
  const genesis = m.genesis
  const home = await mkdtemp(join(tmpdir(), 'donghae-market-chain-'))
  const store = await Store.open(join(home, 'db'))
  const machine = new StateMachine({
    chainId: genesis.chainId,
    modules: [bankModule, stakingModule(genesis.params), inferenceModule(genesis.params)],
    fees: feeCollector,
    minFee: genesis.params.minFee,
  })
  const mempool = new Mempool(machine)
  const clock = new ManualClock(genesis.genesisTime + 1_000)
  const app = await ChainApp.open({
    genesis,
    store,
    machine,
    mempool,
    poh: new InlinePohService(genesis.params.hashesPerTick),
    validatorSet: (state, height) => validatorSetAt(state, height, genesis.params),
    retainProofs: (height) => retainedProofKeys(height, genesis.params),
    proposer: proposerFor(genesis),
    ticksRequired: () => 1,
    ...(self === undefined ? {} : { self: self.did }),
    ...(pool === undefined ? {} : { verifyPool: pool }),
    clock,
  })
  const runtime = new ChainRuntime({
    app,
    mempool,
    transport: stubNetwork as never,
    ...(pool === undefined ? {} : { verifyPool: pool }),
  })
  return {
    app,
    mempool,
    runtime,
    clock,
    close: async () => {
      await store.close()
      await rm(home, { recursive: true, force: true })
    },
  }
}

/** A signed, encoded transaction of `who` with this nonce. */
export function txOf(m: Market, who: Actor, nonce: bigint, kind: string, body: unknown): Uint8Array {
  return encodeTx(signTx(who.key, { chainId: m.genesis.chainId, nonce, fee: 1n, kind, body }))
}

/** `proposer` builds the next block from its mempool (a second later); every node in `all` commits it. */
export async function proposeAndCommit(m: Market, proposer: MarketNode, all: MarketNode[]): Promise<Block> {
  for (const n of all) n.clock.advance(1_000)
  const height = proposer.app.head.height + 1
  const block = await proposer.app.createBlock(height, 0)
  const cert = certify(block, proposer.app.blockId(block), [m.val])
  for (const n of all)
    await n.app.commit(n === proposer ? block : n.app.decodeBlock(proposer.app.encodeBlock(block)), cert)
  return block
}
