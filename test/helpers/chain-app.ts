/** Opens a real ChainApp (real LevelDB, real modules, inline PoH) for integration tests. */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Store } from '../../src/store/store.ts'
import { ChainApp } from '../../src/chain/app.ts'
import { Mempool } from '../../src/chain/mempool.ts'
import { InlinePohService } from '../../src/chain/poh-service.ts'
import { proposerFor } from '../../src/chain/runtime.ts'
import { signVote } from '../../src/chain/bft/messages.ts'
import type { CommitCertificate } from '../../src/chain/bft/types.ts'
import type { Block } from '../../src/chain/block.ts'
import type { GenesisDoc } from '../../src/chain/genesis.ts'
import { retainedProofKeys, validatorSetAt } from '../../src/staking/staking.ts'
import { makeMachine, type Actor } from './chain.ts'
import { ManualClock } from '../../src/core/clock.ts'

export interface TestChain {
  app: ChainApp
  store: Store
  mempool: Mempool
  clock: ManualClock
  dir: string
  close(): Promise<void>
}

export async function openTestChain(
  genesis: GenesisDoc,
  self: Actor | undefined,
  dir?: string,
  clock = new ManualClock(genesis.genesisTime + 1_000),
  /** PoH ticks a proposal at a round needs. @default 1 at every round */
  ticksRequired: (round: number) => number = () => 1,
): Promise<TestChain> {
  const home = dir ?? (await mkdtemp(join(tmpdir(), 'donghae-chain-')))
  const store = await Store.open(join(home, 'db'))
  const machine = makeMachine(genesis)
  const mempool = new Mempool(machine)
  const app = await ChainApp.open({
    genesis,
    store,
    machine,
    mempool,
    poh: new InlinePohService(genesis.params.hashesPerTick),
    validatorSet: (state, height) => validatorSetAt(state, height, genesis.params),
    retainProofs: (height) => retainedProofKeys(height, genesis.params),
    proposer: proposerFor(genesis),
    ticksRequired,
    ...(self === undefined ? {} : { self: self.did }),
    clock,
  })
  return { app, store, mempool, clock, dir: home, close: () => store.close() }
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true })
}

/** A commit certificate for `block` signed by `signers` (precommits in round `round`). */
export function certify(
  block: Block,
  blockIdBytes: Uint8Array,
  signers: Actor[],
  round = block.header.round,
): CommitCertificate {
  return {
    height: block.header.height,
    round,
    blockId: blockIdBytes,
    precommits: signers.map((s) =>
      signVote(s.key, {
        chainId: block.header.chainId,
        height: block.header.height,
        round,
        type: 'precommit',
        blockId: blockIdBytes,
        validator: s.did,
      }),
    ),
  }
}
