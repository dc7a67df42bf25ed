/** Small builders for chain tests: keys, a genesis, a state machine with the real modules. */
import { Ed25519KeyPair } from '../../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../../src/identity/did-key.ts'
import { DEFAULT_PARAMS, type ChainParams, type GenesisDoc } from '../../src/chain/genesis.ts'
import { StateMachine } from '../../src/chain/host.ts'
import { StateOverlay } from '../../src/chain/state-view.ts'
import { SparseMerkleTree } from '../../src/chain/state/smt.ts'
import { bankModule, feeCollector } from '../../src/bank/bank.ts'
import { stakingModule } from '../../src/staking/staking.ts'

export interface Actor {
  key: Ed25519KeyPair
  did: string
}

export function actor(): Actor {
  const key = Ed25519KeyPair.generate()
  return { key, did: didFromEd25519PublicKey(key.publicKey) }
}

export function makeGenesis(
  validators: Actor[],
  accounts: Array<[Actor, bigint]>,
  params: Partial<ChainParams> = {},
): GenesisDoc {
  return {
    chainId: 'donghae-test',
    genesisTime: 1_700_000_000_000,
    params: { ...DEFAULT_PARAMS, ...params },
    accounts: accounts.map(([a, balance]) => ({ did: a.did, balance })),
    validators: validators.map((v) => ({ did: v.did, stake: 10_000n })),
  }
}

export function makeMachine(genesis: GenesisDoc): StateMachine {
  return new StateMachine({
    chainId: genesis.chainId,
    modules: [bankModule, stakingModule(genesis.params)],
    fees: feeCollector,
    minFee: genesis.params.minFee,
  })
}

/** Genesis state as an overlay on an empty tree. */
export function genesisState(genesis: GenesisDoc, machine = makeMachine(genesis)): StateOverlay {
  const state = new StateOverlay(SparseMerkleTree.empty())
  machine.initGenesis(state, genesis)
  return state
}
