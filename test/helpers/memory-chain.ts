/**
 * An in-process ChainApi for API and CLI tests, built from the real chain parts: the real
 * StateMachine (bank + staking modules), the real Mempool, a real sparse Merkle state tree, real
 * PoH entries and commit certificates signed by the genesis validators.
 *
 * `commitPending()` stands in for consensus (the BFT engine and ChainApp are tested elsewhere):
 * it executes what the mempool reaps as the next block (begin-block, `machine.deliver` per
 * transaction — failed bodies included with their fee, as ChainApp does — end-block), records the
 * block, its certificate (precommits of the members of the height's validator set that are among
 * `validators`) and the transaction index, and lets the mempool drop what was included. Every
 * height's state is kept, so `proveAt` answers any height.
 */
import { toHex } from '../../src/core/bytes.ts'
import { sha256 } from '../../src/core/hash.ts'
import { merkleRoot } from '../../src/core/merkle.ts'
import { signVote } from '../../src/chain/bft/messages.ts'
import type { CommitCertificate } from '../../src/chain/bft/types.ts'
import { blockId, checkBlockConsistency, commitHash, type Block, type BlockHeader } from '../../src/chain/block.ts'
import { TxError } from '../../src/chain/errors.ts'
import { genesisHash, type GenesisDoc } from '../../src/chain/genesis.ts'
import { accountNonce, type BlockInfo, type ChainEvent, type StateMachine } from '../../src/chain/host.ts'
import type { TxOutcome } from '../../src/chain/app.ts'
import { Mempool, type PoolEntry } from '../../src/chain/mempool.ts'
import { PohChain } from '../../src/chain/poh/entries.ts'
import { StateOverlay } from '../../src/chain/state-view.ts'
import { SparseMerkleTree } from '../../src/chain/state/smt.ts'
import { balanceOf } from '../../src/bank/bank.ts'
import { unbondingOf, validatorRecord, validatorSetAt } from '../../src/staking/staking.ts'
import type { ValidatorSet } from '../../src/chain/bft/types.ts'
import type { AccountView, ChainApi, NodeStatus } from '../../src/api/chain-api.ts'
import { genesisState, makeMachine, type Actor } from './chain.ts'

interface StoredBlock {
  block: Block
  id: Uint8Array
  commit: CommitCertificate
}

interface Head {
  height: number
  id: Uint8Array
  pohEnd: Uint8Array
  time: number
}

export interface MemoryChainOptions {
  genesis: GenesisDoc
  /** Validators with their keys (the genesis ones, and any that bond later); the first is "this node". */
  validators: Actor[]
  moniker?: string
  /** The state machine. @default bank + staking (helpers/chain.ts makeMachine) */
  machine?: StateMachine
}

export class MemoryChain implements ChainApi {
  readonly genesis: GenesisDoc
  readonly machine: StateMachine
  readonly mempool: Mempool
  readonly #validators: Actor[]
  readonly #moniker: string
  readonly #blocks: StoredBlock[] = []
  readonly #txIndex = new Map<string, TxOutcome>()
  /** The state after each height (0: the genesis). */
  readonly #trees: SparseMerkleTree[] = []
  #tree: SparseMerkleTree
  #head: Head
  readonly #commitListeners = new Set<(block: Block, events: ChainEvent[]) => void>()

  constructor(options: MemoryChainOptions) {
    if (options.validators.length === 0) throw new Error('MemoryChain needs at least one validator')
    this.genesis = options.genesis
    this.machine = options.machine ?? makeMachine(options.genesis)
    this.mempool = new Mempool(this.machine)
    this.#validators = options.validators
    this.#moniker = options.moniker ?? 'memory-node'
    this.#tree = SparseMerkleTree.empty().apply(genesisState(options.genesis, this.machine).changes())
    this.#trees.push(this.#tree)
    const gHash = genesisHash(options.genesis)
    this.#head = { height: 0, id: gHash, pohEnd: sha256(gHash), time: options.genesis.genesisTime }
  }

  get height(): number {
    return this.#head.height
  }

  /** The committed state (read-only). */
  get state(): SparseMerkleTree {
    return this.#tree
  }

  status(): NodeStatus {
    const next = this.#head.height + 1
    return {
      chainId: this.genesis.chainId,
      did: (this.#validators[0] as Actor).did,
      moniker: this.#moniker,
      height: this.#head.height,
      latestBlockId: this.#head.id,
      latestBlockTime: this.#head.time,
      stateRoot: this.#tree.root(),
      consensus: { height: next, round: 0, step: 'propose', idle: false },
      validators: validatorSetAt(this.#tree, next, this.genesis.params).validators.map((v) => ({
        did: v.did,
        power: v.power,
      })),
      mempool: { size: this.mempool.size, bytes: this.mempool.bytes },
      peers: 0,
    }
  }

  async block(
    height: number,
  ): Promise<{ block: Block; id: Uint8Array; commit: CommitCertificate | undefined } | undefined> {
    return height >= 1 ? this.#blocks[height - 1] : undefined
  }

  account(did: string): AccountView {
    const record = validatorRecord(this.#tree, did)
    const unbonding = unbondingOf(this.#tree, did)
    const hasStake = record !== undefined || unbonding.length > 0
    return {
      did,
      balance: balanceOf(this.#tree, did),
      nonce: accountNonce(this.#tree, did),
      stake: hasStake
        ? {
            bonded: record?.bonded ?? 0n,
            jailed: (record?.jailedUntil ?? 0) !== 0,
            jailedUntil: record?.jailedUntil ?? 0,
            tombstoned: record?.tombstoned ?? false,
            unbonding,
          }
        : null,
    }
  }

  async submitTx(bytes: Uint8Array): Promise<{ hash: Uint8Array }> {
    return { hash: this.mempool.add(bytes, this.#tree).hash }
  }

  async txOutcome(hash: Uint8Array): Promise<TxOutcome | undefined> {
    return this.#txIndex.get(toHex(hash))
  }

  prove(key: Uint8Array): ReturnType<ChainApi['prove']> {
    return {
      root: this.#tree.root(),
      height: this.#head.height,
      value: this.#tree.get(key),
      proof: this.#tree.prove(key),
    }
  }

  async proveAt(key: Uint8Array, height: number): ReturnType<NonNullable<ChainApi['proveAt']>> {
    const tree = this.#trees[height]
    if (tree === undefined) return undefined
    return { root: tree.root(), height, value: tree.get(key), proof: tree.prove(key) }
  }

  /** The state after `height` (0: the genesis). */
  stateAt(height: number): SparseMerkleTree | undefined {
    return this.#trees[height]
  }

  genesisDoc(): GenesisDoc {
    return this.genesis
  }

  /** Calls `listener` after every `commitPending` with the block and the events it emitted. */
  onCommit(listener: (block: Block, events: ChainEvent[]) => void): () => void {
    this.#commitListeners.add(listener)
    return () => this.#commitListeners.delete(listener)
  }

  /** Executes the pending transactions as the next block (consensus stand-in) and returns it. */
  commitPending(): Block {
    const height = this.#head.height + 1
    const lastCommit = this.#blocks.at(-1)?.commit ?? null
    const info: BlockInfo = {
      chainId: this.genesis.chainId,
      height,
      time: this.#head.time + 1_000,
      proposer: (this.#validators[0] as Actor).did,
      parentId: this.#head.id,
      validators: validatorSetAt(this.#tree, height, this.genesis.params),
      lastCommitSigners: lastCommit === null ? null : new Set(lastCommit.precommits.map((v) => v.validator)),
    }
    const overlay = new StateOverlay(this.#tree)
    const events: ChainEvent[] = []
    const emit = (event: ChainEvent): void => void events.push(event)
    this.machine.beginBlock(overlay, { ...info, emit })
    const included = this.#deliverPending(overlay, info, emit)
    this.machine.endBlock(overlay, { ...info, emit })
    const tree = this.#tree.apply(overlay.changes())
    const block = this.#buildBlock(
      info,
      included.map((i) => i.entry),
      tree.root(),
      lastCommit,
    )
    const id = blockId(block.header)
    this.#blocks.push({ block, id, commit: this.#certify(height, id, info.validators) })
    for (const { entry, reason } of included)
      this.#txIndex.set(entry.id, reason === undefined ? { height, ok: true } : { height, ok: false, reason })
    this.#tree = tree
    this.#trees.push(tree)
    this.#head = { height, id, pohEnd: block.header.pohEnd, time: info.time }
    this.mempool.update(tree)
    for (const listener of [...this.#commitListeners]) listener(block, events)
    return block
  }

  /** Each reaped transaction that passes its ante checks on top of the ones before it; the others leave the pool. */
  #deliverPending(
    overlay: StateOverlay,
    info: BlockInfo,
    emit: (event: ChainEvent) => void,
  ): Array<{ entry: PoolEntry; reason?: string }> {
    const included: Array<{ entry: PoolEntry; reason?: string }> = []
    for (const entry of this.mempool.reap(this.#tree, this.genesis.params.maxBlockTxs)) {
      try {
        const result = this.machine.deliver(overlay, entry.tx, { ...info, txHash: entry.hash }, emit, {
          signatureChecked: true,
        })
        included.push(result.ok ? { entry } : { entry, reason: result.error.reason })
      } catch (err) {
        if (!(err instanceof TxError)) throw err
        this.mempool.drop(entry.hash)
      }
    }
    return included
  }

  #buildBlock(
    info: BlockInfo,
    included: PoolEntry[],
    stateRoot: Uint8Array,
    lastCommit: CommitCertificate | null,
  ): Block {
    const hashes = included.map((e) => e.hash)
    const poh = new PohChain(this.#head.pohEnd, this.genesis.params.hashesPerTick)
    poh.tick()
    if (hashes.length > 0) poh.record(merkleRoot(hashes))
    const entries = poh.drain()
    const header: BlockHeader = {
      chainId: info.chainId,
      height: info.height,
      round: 0,
      time: info.time,
      proposer: info.proposer,
      parentId: this.#head.id,
      txRoot: merkleRoot(hashes),
      stateRoot,
      pohStart: this.#head.pohEnd,
      pohEnd: poh.hash,
      pohTicks: 1,
      lastCommitHash: commitHash(lastCommit),
    }
    const block: Block = {
      header,
      txs: included.map((e) => e.bytes),
      poh: entries,
      batches: hashes.length > 0 ? [hashes.length] : [],
      lastCommit,
    }
    checkBlockConsistency(block)
    return block
  }

  #certify(height: number, id: Uint8Array, set: ValidatorSet): CommitCertificate {
    const members = new Set(set.validators.map((v) => v.did))
    const precommits = this.#validators
      .filter((v) => members.has(v.did))
      .map((v) =>
        signVote(v.key, {
          chainId: this.genesis.chainId,
          height,
          round: 0,
          type: 'precommit',
          blockId: id,
          validator: v.did,
        }),
      )
    return { height, round: 0, blockId: id, precommits }
  }
}
