/**
 * What the HTTP API needs from a running chain node. The node (src/node/chain-node.ts) implements it over
 * its ChainApp, Mempool and consensus engine; the API layer depends only on this interface.
 */
import type { Block } from '../chain/block.ts'
import type { CommitCertificate } from '../chain/bft/types.ts'
import type { GenesisDoc } from '../chain/genesis.ts'
import type { StateProof } from '../chain/state/proof.ts'
import type { TxOutcome } from '../chain/app.ts'

export interface NodeStatus {
  chainId: string
  /** This node's DID. */
  did: string
  moniker: string
  /** Latest committed height (0 before the first block). */
  height: number
  latestBlockId: Uint8Array
  latestBlockTime: number
  stateRoot: Uint8Array
  /**
   * Consensus position: the height being decided, its round and step; `idle` while the height waits
   * for work (a chain without empty blocks: the next transaction, or the empty-block interval, starts it).
   */
  consensus: { height: number; round: number; step: string; idle: boolean }
  validators: Array<{ did: string; power: bigint }>
  mempool: { size: number; bytes: number }
  peers: number
}

export interface AccountView {
  did: string
  balance: bigint
  /** The nonce the account's next transaction must carry. */
  nonce: bigint
  stake: {
    bonded: bigint
    jailed: boolean
    jailedUntil: number
    tombstoned: boolean
    unbonding: Array<{ amount: bigint; completes: number }>
  } | null
}

export interface ChainApi {
  status(): NodeStatus
  block(height: number): Promise<{ block: Block; id: Uint8Array; commit: CommitCertificate | undefined } | undefined>
  account(did: string): AccountView
  /** Admits an encoded signed transaction to the mempool (and gossips it); throws TxError with a reason. */
  submitTx(bytes: Uint8Array): Promise<{ hash: Uint8Array }>
  /**
   * Where a transaction was committed, if it was, and whether its body succeeded (a failed one
   * is in its block with its fee charged; `reason` is the TxError reason).
   */
  txOutcome(hash: Uint8Array): Promise<TxOutcome | undefined>
  /** A state inclusion proof for a raw state key, against the latest committed state root. */
  prove(key: Uint8Array): { root: Uint8Array; height: number; value: Uint8Array | undefined; proof: StateProof }
  /**
   * A proof of `key` against the state root of `height`: the latest height, or one whose proofs
   * the node kept (validator sets at epoch edges, ChainApp `retainProofs`); undefined otherwise.
   * Without it, GET /v1/state/proof?height= answers 404.
   */
  proveAt?(
    key: Uint8Array,
    height: number,
  ): Promise<{ root: Uint8Array; height: number; value: Uint8Array | undefined; proof: StateProof } | undefined>
  /** The genesis document (GET /v1/chain/genesis, where light clients start). */
  genesisDoc?(): GenesisDoc
}
