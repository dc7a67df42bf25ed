/**
 * The chain application: executes blocks against the state, builds proposals from the mempool,
 * validates peers' proposals (structure, PoH, certificate, transactions, state root), and
 * commits atomically to the store. It is the `ConsensusApp` the BFT engine drives, and what
 * sync feeds with fetched blocks.
 *
 * A block's transactions must all pass the ante checks (host.ts); a transaction whose body
 * fails is included as failed, its fee charged, and the tx index records its reason.
 *
 * Store buckets: blocks (height -> block), commits (height -> certificate of that block),
 * state (key -> value, the current state), txs (tx hash -> height, or { height, reason } for a
 * failed one), meta (head), proofs (height || key -> the key's value and state proof against that
 * height's root, for the keys `retainProofs` names: what a light client needs to follow
 * validator-set changes long after). One committed height = one atomic write batch of all six.
 */
import { toHex, equals } from '../core/bytes.ts'
import { sha256 } from '../core/hash.ts'
import { merkleRoot } from '../core/merkle.ts'
import { systemClock, type Clock } from '../core/clock.ts'
import { silentLogger, type Logger } from '../core/logger.ts'
import type { Store, Bucket } from '../store/store.ts'
import { bytesCodec, dagCborCodec, uint64Codec, utf8Codec } from '../store/codecs.ts'
import { verifyCommit } from './bft/messages.ts'
import { findValidator, type CommitCertificate, type ValidatorSet } from './bft/types.ts'
import {
  blockId as headerId,
  checkBlockConsistency,
  commitHash,
  decodeBlock as decodeBlockBytes,
  decodeCommit,
  encodeBlock as encodeBlockBytes,
  encodeCommit,
  ZERO_HASH,
  type Block,
  type BlockHeader,
} from './block.ts'
import { BlockError, TxError } from './errors.ts'
import { genesisHash, type GenesisDoc } from './genesis.ts'
import { currentMaxBlockTxs } from './governed.ts'
import type { ChainEvent, StateMachine, TxResult } from './host.ts'
import type { Mempool } from './mempool.ts'
import { countTicks, type PohCheck, type PohEntry } from './poh/entries.ts'
import { SparseMerkleTree } from './state/smt.ts'
import { encodeProof, decodeProof, type StateProof } from './state/proof.ts'
import { StateOverlay, type StateReader } from './state-view.ts'
import { decodeTx, txVerifyItem, type SignedTx } from './tx.ts'
import { verifySignatureDigest } from '../identity/keys.ts'
import type { VerifyPool } from '../identity/verify-pool.ts'
import { verifyBodySignatures } from './body-signatures.ts'

export interface ChainHead {
  height: number
  blockId: Uint8Array
  stateRoot: Uint8Array
  pohEnd: Uint8Array
  time: number
}

/** How the app produces and checks PoH (a worker-thread generator/verifier in a node; inline in tests). */
export interface PohService {
  /** Entries from `start` holding at least `ticks` ticks, then one mixin entry per batch root. */
  produce(start: Uint8Array, ticks: number, mixins: Uint8Array[]): Promise<PohEntry[]>
  verify(start: Uint8Array, entries: readonly PohEntry[], hashesPerTick: number): Promise<PohCheck>
  /**
   * Told the PoH end of each committed head, so it can start ticking from there; with `rest`, it
   * starts from there but makes no tick until `resume` (this node will not need them).
   */
  follow?(pohEnd: Uint8Array, options?: { rest?: boolean }): void
  /** The next height waits for work: ticks would prove rounds that have not begun. */
  pause?(): void
  /** The waiting height begins round 0: tick from the head's PoH end again. */
  resume?(): void
}

export interface ChainAppOptions {
  genesis: GenesisDoc
  store: Store
  machine: StateMachine
  mempool: Mempool
  poh: PohService
  /** The validator set deciding `height`, read from committed state (staking). */
  validatorSet(state: StateReader, height: number): ValidatorSet
  /** The selected proposer of (height, round). */
  proposer(set: ValidatorSet, height: number, round: number): string
  /** PoH ticks a round-r proposal must carry. */
  ticksRequired(round: number): number
  /**
   * Rounds whose PoH ticks are prepared in the background (`PohService.follow`): only on the
   * validator that proposes one of rounds 1 ... `tickRounds` - 1 of the next height. The round-0
   * proposer needs one tick, made when it proposes; a later round's proposer, or one that was not
   * expected, extends the PoH flat out to what its round needs (`produce`), as it always could.
   * @default every node ticks after every commit
   */
  tickRounds?: number
  /** This node's DID when it proposes. */
  self?: string
  /**
   * How long building a proposal at `round` may take, in this app's clock: once spent, the
   * block closes with the transactions taken so far (at least one). @default proposalBuildMs
   */
  buildBudgetMs?(round: number): number
  clock?: Clock
  logger?: Logger
  /** How far in the future a block's time may be. @default 5000 ms */
  maxFutureMs?: number
  /** Worker threads for the signatures of block transactions not already seen in the mempool. */
  verifyPool?: VerifyPool
  /** Called after each commit with the block and the events it produced. */
  onCommit?(block: Block, events: ChainEvent[]): void
  /**
   * State keys whose proofs against the state root of `height` are kept with the block (staking's
   * validator-set key at each epoch edge), so `provenAt` can serve them for good. @default none
   */
  retainProofs?(height: number): Uint8Array[]
}

/** A value (undefined: absent) and its proof against the state root of a height. */
export interface ProvenValue {
  height: number
  root: Uint8Array
  value: Uint8Array | undefined
  proof: StateProof
}

/** A kept proof: the store key is height (8 bytes, big-endian) || state key. */
interface KeptProof {
  value: Uint8Array | null
  proof: Uint8Array
}

function keptProofKey(height: number, key: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + key.length)
  new DataView(out.buffer).setBigUint64(0, BigInt(height))
  out.set(key, 8)
  return out
}

interface Execution {
  overlay: StateOverlay
  events: ChainEvent[]
  tree: SparseMerkleTree
  /** Each transaction's failure reason, in block order (undefined: it succeeded). */
  failures: Array<string | undefined>
  /**
   * Each transaction's hash, in block order: the ones whose Merkle root the block's header
   * carries (checked before execution), so the commit of a block with that header indexes them.
   */
  hashes: readonly Uint8Array[]
}

/** Where and how a transaction was committed. */
export interface TxOutcome {
  height: number
  ok: boolean
  /** The failed body's TxError reason. */
  reason?: string
}

/** The tx index holds a height for a success (the format before failed transactions existed). */
type TxIndexValue = number | { height: number; reason: string }

const failureOf = (result: TxResult): string | undefined => (result.ok ? undefined : result.error.reason)

const TX_BATCH = 64
/** Transactions taken into a proposal between two looks at its build budget's clock. */
const BUDGET_CHECK_EVERY = 16

/** How much earlier than its PoH ticks prove a block's time may be (clock skew between validators). */
const POH_TIME_SLACK_MS = 1_000

/**
 * What share of the round's propose timeout a proposer may spend taking transactions into its
 * block: the block must still be signed, sent and decoded by every validator before their own
 * propose timeout (started with the round) fires, or the round fails and the next proposer builds
 * again. A quarter leaves the rest of the timeout for that on a busy machine.
 */
const PROPOSAL_BUILD_SHARE = 4

/**
 * The time a proposer spends taking transactions into a block at `round`: a quarter of the
 * round's propose timeout (250 ms in round 0 with the default 1 s). Under a backlog it bounds a
 * block by what this machine executes in that time instead of by `maxBlockTxs` alone: a
 * proposal of 5 000 transfers that takes longer to build and validate than the round lasts fails
 * the round, and the next proposer starts over.
 */
export function proposalBuildMs(
  params: Pick<GenesisDoc['params'], 'timeoutProposeMs' | 'timeoutProposeDeltaMs'>,
  round: number,
): number {
  return Math.floor((params.timeoutProposeMs + params.timeoutProposeDeltaMs * round) / PROPOSAL_BUILD_SHARE)
}

/** The time `ticks` PoH ticks prove, at the chain's tick rate. */
const provenMsOf = (ticks: number, params: Pick<GenesisDoc['params'], 'ticksPerSecond'>): number =>
  Math.floor((ticks * 1000) / params.ticksPerSecond)

export class ChainApp {
  readonly genesis: GenesisDoc
  readonly chainId: string
  readonly #opts: ChainAppOptions
  readonly #clock: Clock
  readonly #log: Logger
  readonly #blocks: Bucket<bigint, Uint8Array>
  readonly #commits: Bucket<bigint, Uint8Array>
  readonly #state: Bucket<Uint8Array, Uint8Array>
  readonly #txIndex: Bucket<Uint8Array, TxIndexValue>
  readonly #meta: Bucket<string, ChainHead>
  readonly #proofs: Bucket<Uint8Array, KeptProof>
  #tree: SparseMerkleTree = SparseMerkleTree.empty()
  #head!: ChainHead
  /** Executions of blocks validated but not yet committed, by block id. */
  readonly #pending = new Map<string, Execution>()

  private constructor(options: ChainAppOptions) {
    this.#opts = options
    this.genesis = options.genesis
    this.chainId = options.genesis.chainId
    this.#clock = options.clock ?? systemClock
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:chain:app')
    const { store } = options
    this.#blocks = store.bucket('blocks', uint64Codec, bytesCodec)
    this.#commits = store.bucket('commits', uint64Codec, bytesCodec)
    this.#state = store.bucket('state', bytesCodec, bytesCodec)
    this.#txIndex = store.bucket('txs', bytesCodec, dagCborCodec<TxIndexValue>())
    this.#meta = store.bucket('meta', utf8Codec, dagCborCodec<ChainHead>())
    this.#proofs = store.bucket('proofs', bytesCodec, dagCborCodec<KeptProof>())
  }

  /** Opens the chain from the store, initializing genesis state on first start. */
  static async open(options: ChainAppOptions): Promise<ChainApp> {
    const app = new ChainApp(options)
    await app.#load()
    return app
  }

  async #load(): Promise<void> {
    const head = await this.#meta.get('head')
    if (head === undefined) {
      await this.#initGenesis()
      return
    }
    const entries: Array<[Uint8Array, Uint8Array]> = []
    for await (const entry of this.#state.entries()) entries.push(entry)
    this.#tree = SparseMerkleTree.fromEntries(entries)
    if (!equals(this.#tree.root(), head.stateRoot)) {
      throw new BlockError(
        `stored state does not match the committed state root at height ${head.height}; the database is corrupt`,
      )
    }
    this.#head = head
    this.#followPoh()
    this.#log.info({ height: head.height, keys: entries.length }, 'chain loaded')
  }

  async #initGenesis(): Promise<void> {
    const overlay = new StateOverlay(this.#tree)
    this.#opts.machine.initGenesis(overlay, this.genesis)
    this.#tree = this.#tree.apply(overlay.changes())
    const gHash = genesisHash(this.genesis)
    this.#head = {
      height: 0,
      blockId: gHash,
      stateRoot: this.#tree.root(),
      pohEnd: sha256(gHash),
      time: this.genesis.genesisTime,
    }
    const batch = this.#opts.store.batch()
    for (const [key, value] of overlay.changes()) {
      if (value === undefined) batch.delete(this.#state, key)
      else batch.put(this.#state, key, value)
    }
    batch.put(this.#meta, 'head', this.#head)
    await batch.write({ sync: true })
    this.#followPoh()
    this.#log.info({ chainId: this.chainId }, 'genesis state written')
  }

  get head(): ChainHead {
    return this.#head
  }

  /** The committed state (read-only view). */
  get state(): StateReader {
    return this.#tree
  }

  get stateTree(): SparseMerkleTree {
    return this.#tree
  }

  /**
   * Whether the next height has something to decide: a mempool transaction that can run now (a
   * sender's next nonce; a transaction waiting behind a nonce gap does not count), or a module's
   * due work. A chain with `emptyBlockIntervalMs` waits for this before proposing.
   */
  hasWork(): boolean {
    if (this.#opts.mempool.hasReady(this.#tree)) return true
    return this.#opts.machine.wantsBlock(this.#tree, this.#head.height + 1)
  }

  /** The next height waits for work: PoH stops ticking until it begins round 0 (`resumePoh`). */
  pausePoh(): void {
    this.#opts.poh.pause?.()
  }

  /** The waiting height begins round 0: PoH ticks again from the head's end, if this node may need them. */
  resumePoh(): void {
    if (this.preparesTicks(this.#head.height + 1)) this.#opts.poh.resume?.()
  }

  /**
   * Whether this node prepares PoH ticks for `height` (the head's next): it proposes one of rounds
   * 1 ... `tickRounds` - 1 there (see `ChainAppOptions.tickRounds`).
   */
  preparesTicks(height: number): boolean {
    const rounds = this.#opts.tickRounds
    if (rounds === undefined) return true
    const self = this.#opts.self
    if (self === undefined) return false
    let set: ValidatorSet
    try {
      set = this.validatorSet(height)
    } catch {
      return true // state cannot say (called after a commit's write, which must not fail): tick as before
    }
    if (findValidator(set, self) === undefined) return false
    for (let round = 1; round < rounds; round++) if (this.#opts.proposer(set, height, round) === self) return true
    return false
  }

  /** Starts PoH's next segment at the head's end, ticking only where it may be needed. */
  #followPoh(): void {
    this.#opts.poh.follow?.(this.#head.pohEnd, { rest: !this.preparesTicks(this.#head.height + 1) })
  }

  validatorSet(height: number): ValidatorSet {
    return this.#opts.validatorSet(this.#tree, height)
  }

  encodeBlock(block: Block): Uint8Array {
    return encodeBlockBytes(block)
  }

  decodeBlock(bytes: Uint8Array): Block {
    return decodeBlockBytes(bytes)
  }

  blockId(block: Block): Uint8Array {
    return headerId(block.header)
  }

  async getBlock(height: number): Promise<Block | undefined> {
    const bytes = await this.#blocks.get(BigInt(height))
    return bytes === undefined ? undefined : decodeBlockBytes(bytes)
  }

  async getBlockBytes(height: number): Promise<Uint8Array | undefined> {
    return this.#blocks.get(BigInt(height))
  }

  async getCommit(height: number): Promise<CommitCertificate | undefined> {
    const bytes = await this.#commits.get(BigInt(height))
    return bytes === undefined ? undefined : decodeCommit(bytes)
  }

  async txHeight(hash: Uint8Array): Promise<number | undefined> {
    return (await this.txOutcome(hash))?.height
  }

  /** The height a transaction was committed at and whether its body succeeded. */
  async txOutcome(hash: Uint8Array): Promise<TxOutcome | undefined> {
    const value = await this.#txIndex.get(hash)
    if (value === undefined) return undefined
    return typeof value === 'number'
      ? { height: value, ok: true }
      : { height: value.height, ok: false, reason: value.reason }
  }

  /**
   * `key`'s value and proof against the state root of `height`: from the live tree at the head,
   * from what `retainProofs` kept at earlier heights; undefined when the node has neither.
   */
  async provenAt(height: number, key: Uint8Array): Promise<ProvenValue | undefined> {
    const head = this.#head
    if (height === head.height)
      return { height, root: head.stateRoot, value: this.#tree.get(key), proof: this.#tree.prove(key) }
    if (height > head.height) return undefined
    const kept = await this.#proofs.get(keptProofKey(height, key))
    const block = kept === undefined ? undefined : await this.getBlock(height)
    if (kept === undefined || block === undefined) return undefined
    const value = kept.value === null ? undefined : kept.value
    return { height, root: block.header.stateRoot, value, proof: decodeProof(kept.proof) }
  }

  // ---- execution ------------------------------------------------------------------------------

  #blockInfo(header: Pick<BlockHeader, 'height' | 'time' | 'proposer'>, lastCommit: CommitCertificate | null) {
    const signers =
      lastCommit === null
        ? null
        : new Set(
            lastCommit.precommits
              .filter((v) => v.blockId !== null && equals(v.blockId, lastCommit.blockId))
              .map((v) => v.validator),
          )
    return {
      chainId: this.chainId,
      height: header.height,
      time: header.time,
      proposer: header.proposer,
      parentId: this.#head.blockId,
      validators: this.validatorSet(header.height),
      lastCommitSigners: signers,
    }
  }

  /** Runs begin-block, the transactions (each must pass its ante checks; bodies may fail), end-block. */
  #execute(
    header: Pick<BlockHeader, 'height' | 'time' | 'proposer'>,
    txs: readonly SignedTx[],
    hashes: readonly Uint8Array[],
    lastCommit: CommitCertificate | null,
    signaturesChecked = false,
    /** Body signatures verified valid during block validation, per transaction (body-signatures.ts). */
    verified: ReadonlyArray<ReadonlySet<string> | undefined> = [],
  ): Execution {
    const info = this.#blockInfo(header, lastCommit)
    const overlay = new StateOverlay(this.#tree)
    const events: ChainEvent[] = []
    const emit = (e: ChainEvent): void => {
      events.push(e)
    }
    this.#opts.machine.beginBlock(overlay, { ...info, emit })
    // the governed limit in force at this height (a change applies in begin-block)
    const maxTxs = currentMaxBlockTxs(overlay, this.genesis.params)
    if (txs.length > maxTxs) throw new BlockError(`more than ${maxTxs} transactions (chain.maxBlockTxs)`)
    const failures = txs.map((tx, i) => {
      try {
        // A transaction admitted to our mempool had its signatures (its own, its body's) checked
        // then on the pool: do not pay twice.
        const txHash = hashes[i] as Uint8Array
        const pending = this.#opts.mempool.get(txHash)
        const result = this.#opts.machine.deliver(overlay, tx, { ...info, txHash }, emit, {
          signatureChecked: signaturesChecked || pending !== undefined,
          verified: pending?.verified ?? verified[i],
        })
        return failureOf(result)
      } catch (err) {
        if (err instanceof TxError)
          throw new BlockError(`transaction ${i} is invalid (${err.reason}): ${err.message}`, { cause: err })
        throw err
      }
    })
    this.#opts.machine.endBlock(overlay, { ...info, emit })
    return { overlay, events, tree: this.#tree.apply(overlay.changes()), failures, hashes }
  }

  async createBlock(height: number, round: number, lastCommit?: CommitCertificate | null): Promise<Block> {
    const parent = this.#head
    if (height !== parent.height + 1) throw new BlockError(`cannot propose height ${height} on top of ${parent.height}`)
    const proposer = this.#opts.self
    if (proposer === undefined) throw new BlockError('this node has no key to propose with')
    const commit = lastCommit ?? (height === 1 ? null : ((await this.getCommit(parent.height)) ?? null))
    // The block's PoH must cover the rounds skipped before `round` (ticksRequired), and a block's
    // time may not be earlier than its ticks prove (validateBlock, 1 s slack). Rounds can end
    // sooner than their nominal timeouts (a nil prevote quorum needs no prevote timeout; f+1
    // messages skip ahead), and then the PoH segment is extended flat out to the required count,
    // so it can run ahead of this clock: the block then claims the time its ticks prove, as far
    // as the slack allows, or an honest proposal would be refused and every later round, needing
    // still more ticks, with it.
    const ticks = Math.max(1, this.#opts.ticksRequired(round))
    const time = Math.max(
      this.#clock.now(),
      parent.time + 1,
      parent.time + provenMsOf(ticks, this.genesis.params) - POH_TIME_SLACK_MS,
    )
    const header0 = { height, time, proposer }
    // One pass: each mempool transaction that passes its ante checks on top of the ones before
    // it is included (its body may fail: it pays its fee anyway); one that does not is dropped
    // from the mempool with the rest of its sender's run (their nonces now follow a gap), so the
    // sender (and the node's own-transaction queue) starts again from its state nonce.
    const info = this.#blockInfo(header0, commit)
    const overlay = new StateOverlay(this.#tree)
    const events: ChainEvent[] = []
    const emit = (e: ChainEvent): void => {
      events.push(e)
    }
    this.#opts.machine.beginBlock(overlay, { ...info, emit })
    const chosen: Array<{ tx: SignedTx; bytes: Uint8Array; hash: Uint8Array }> = []
    const failures: Array<string | undefined> = []
    const blocked = new Set<string>()
    const budget = this.#opts.buildBudgetMs?.(round) ?? proposalBuildMs(this.genesis.params, round)
    const closeAt = this.#clock.now() + budget
    let taken = 0
    for (const entry of this.#opts.mempool.inBlockOrder(this.#tree, currentMaxBlockTxs(overlay, this.genesis.params))) {
      // the clock is read every BUDGET_CHECK_EVERY transactions; what is left waits for the next block
      if (++taken % BUDGET_CHECK_EVERY === 0 && chosen.length > 0 && this.#clock.now() >= closeAt) break
      if (blocked.has(entry.tx.sender)) {
        this.#opts.mempool.drop(entry.hash)
        continue
      }
      try {
        const result = this.#opts.machine.deliver(overlay, entry.tx, { ...info, txHash: entry.hash }, emit, {
          signatureChecked: true,
          verified: entry.verified,
        })
        chosen.push({ tx: entry.tx, bytes: entry.bytes, hash: entry.hash })
        failures.push(failureOf(result))
      } catch (err) {
        if (!(err instanceof TxError)) throw err
        this.#opts.mempool.drop(entry.hash)
        blocked.add(entry.tx.sender)
      }
    }
    this.#opts.machine.endBlock(overlay, { ...info, emit })
    const execution: Execution = {
      overlay,
      events,
      tree: this.#tree.apply(overlay.changes()),
      failures,
      hashes: chosen.map((c) => c.hash),
    }
    const batches: number[] = []
    const mixins: Uint8Array[] = []
    for (let i = 0; i < chosen.length; i += TX_BATCH) {
      const slice = chosen.slice(i, i + TX_BATCH)
      batches.push(slice.length)
      mixins.push(merkleRoot(slice.map((c) => c.hash)))
    }
    const poh = await this.#opts.poh.produce(parent.pohEnd, ticks, mixins)
    const header: BlockHeader = {
      chainId: this.chainId,
      height,
      round,
      time,
      proposer,
      parentId: parent.blockId,
      txRoot: merkleRoot(chosen.map((c) => c.hash)),
      stateRoot: execution.tree.root(),
      pohStart: parent.pohEnd,
      pohEnd: poh.length === 0 ? parent.pohEnd : (poh[poh.length - 1] as PohEntry).hash,
      pohTicks: countTicks(poh),
      lastCommitHash: commitHash(commit),
    }
    const block: Block = { header, txs: chosen.map((c) => c.bytes), poh, batches, lastCommit: commit }
    this.#pending.set(toHex(headerId(header)), execution)
    return block
  }

  /**
   * Full validation of a proposal at (height, round); returns false with a logged reason. The
   * block may have been made in an earlier round (a re-proposed valid value): its own round
   * decides its proposer and the PoH ticks it needs. `committed`: the block comes with a verified
   * commit certificate (block sync), and this node's clock no longer judges its time (checkBlock).
   */
  async validateBlock(
    block: Block,
    height: number,
    round: number,
    options: { committed?: boolean } = {},
  ): Promise<boolean> {
    try {
      await this.checkBlock(block, height, round, options)
      return true
    } catch (err) {
      if (!(err instanceof BlockError)) throw err
      this.#log.warn({ height, round, reason: err.message }, 'invalid block')
      return false
    }
  }

  /** Like validateBlock but throws BlockError with the reason. */
  async checkBlock(
    block: Block,
    height: number,
    round: number,
    options: {
      skipProposerCheck?: boolean
      /**
       * The block has a verified commit certificate: more than two thirds of the stake found its
       * time acceptable, so it is not refused for being ahead of this node's clock (a node whose
       * clock is behind must still follow the chain). Every other rule still applies.
       */
      committed?: boolean
    } = {},
  ): Promise<void> {
    const { header } = block
    const parent = this.#head
    const params = this.genesis.params
    if (header.chainId !== this.chainId) throw new BlockError(`block is for chain ${header.chainId}`)
    if (header.height !== height || height !== parent.height + 1)
      throw new BlockError(`block height ${header.height} is not ${parent.height + 1}`)
    // A block made in round r may be re-proposed (as the valid value) in a later round.
    if (header.round > round)
      throw new BlockError(`block says round ${header.round}, proposed in earlier round ${round}`)
    if (!equals(header.parentId, parent.blockId)) throw new BlockError('block does not extend the committed head')
    if (!equals(header.pohStart, parent.pohEnd)) throw new BlockError("PoH does not start at the parent's PoH end")
    if (header.time <= parent.time) throw new BlockError('block time is not after its parent')
    if (options.committed !== true && header.time > this.#clock.now() + (this.#opts.maxFutureMs ?? 5_000))
      throw new BlockError('block time is too far in the future')
    const set = this.validatorSet(height)
    if (options.skipProposerCheck !== true && header.proposer !== this.#opts.proposer(set, height, header.round)) {
      throw new BlockError(`${header.proposer} is not the proposer of height ${height} round ${header.round}`)
    }
    const hashes = checkBlockConsistency(block)
    const required = Math.max(1, this.#opts.ticksRequired(header.round))
    if (header.pohTicks < required)
      throw new BlockError(`PoH has ${header.pohTicks} ticks; round ${header.round} needs ${required}`)
    // The claimed time must not be earlier than the PoH ticks prove has elapsed (1 s slack).
    if (header.time - parent.time + POH_TIME_SLACK_MS < provenMsOf(header.pohTicks, params))
      throw new BlockError('block time is earlier than its PoH ticks allow')
    if (height === 1) {
      if (block.lastCommit !== null) throw new BlockError('the first block has no previous commit')
    } else {
      const cert = block.lastCommit
      if (cert === null) throw new BlockError('the previous commit certificate is missing')
      if (cert.height !== height - 1 || !equals(cert.blockId, parent.blockId))
        throw new BlockError('the certificate is not for the parent block')
      try {
        verifyCommit(cert, this.validatorSet(height - 1), this.chainId)
      } catch (err) {
        throw new BlockError(`previous commit is invalid: ${(err as Error).message}`, { cause: err })
      }
    }
    // Bound the hashing a proposal can ask of every validator before doing any: ticks are bounded
    // by the time since the parent (above), but a mixin entry's hash count is the proposer's word
    // (an honest generator records 0, or the hashes of a tick under way). A proposer claiming 10^12
    // would keep every validator hashing for hours (found by fuzzing: docs/fuzzing.md).
    const mixinHashes = block.poh.reduce(
      (sum, entry) => (entry.mixin === undefined ? sum : sum + Math.max(0, Number(entry.numHashes) || 0)),
      0,
    )
    if (mixinHashes > Math.max(1, header.pohTicks) * params.hashesPerTick)
      throw new BlockError(
        `PoH mixin entries claim ${mixinHashes} hashes, more than its ${header.pohTicks} ticks' ${header.pohTicks * params.hashesPerTick}`,
      )
    const check = await this.#opts.poh.verify(header.pohStart, block.poh, params.hashesPerTick)
    if (!check.ok) throw new BlockError(`PoH entry ${check.index} is invalid: ${check.reason}`)
    // the genesis value caps the governed one (chain.maxBlockTxs, checked in #execute)
    if (block.txs.length > params.maxBlockTxs) throw new BlockError(`more than ${params.maxBlockTxs} transactions`)
    const txs = block.txs.map((bytes, i): SignedTx => {
      try {
        return this.#opts.mempool.get(hashes[i] as Uint8Array)?.tx ?? decodeTx(bytes)
      } catch (err) {
        throw new BlockError(`undecodable transaction: ${(err as Error).message}`, { cause: err })
      }
    })
    const verified = await this.#verifySignatures(txs, hashes, block.txs)
    const execution = this.#execute(header, txs, hashes, block.lastCommit, true, verified)
    if (!equals(execution.tree.root(), header.stateRoot))
      throw new BlockError('the state root does not match the executed transactions')
    this.#pending.set(toHex(headerId(header)), execution)
  }

  /**
   * Checks every signature not already checked at mempool admission, in parallel on the pool:
   * each transaction's own (any invalid one makes the block invalid), and its body's (settlement
   * receipts: returns the labels of those valid, per transaction, for execution to skip).
   */
  async #verifySignatures(
    txs: readonly SignedTx[],
    hashes: readonly Uint8Array[],
    encoded: readonly Uint8Array[],
  ): Promise<Array<ReadonlySet<string> | undefined>> {
    const pending: Array<Promise<boolean>> = []
    const bodies: Array<Promise<ReadonlySet<string> | undefined>> = []
    const pool = this.#opts.verifyPool
    txs.forEach((tx, i) => {
      if (this.#opts.mempool.has(hashes[i] as Uint8Array)) {
        bodies.push(Promise.resolve(undefined))
        return
      }
      bodies.push(verifyBodySignatures(this.#opts.mempool.bodySignatures(tx), pool))
      const item = txVerifyItem(tx, encoded[i])
      if (item === undefined) pending.push(Promise.resolve(false))
      else
        pending.push(
          pool === undefined
            ? Promise.resolve(verifySignatureDigest(item.publicKey, item.digest, item.signature))
            : pool.verify(item),
        )
    })
    const [results, verified] = await Promise.all([Promise.all(pending), Promise.all(bodies)])
    if (results.some((ok) => !ok)) throw new BlockError('a transaction signature does not verify')
    return verified
  }

  /** Writes a decided block, its certificate and the new state in one atomic batch. */
  async commit(block: Block, cert: CommitCertificate): Promise<void> {
    const id = headerId(block.header)
    if (!equals(cert.blockId, id) || cert.height !== block.header.height)
      throw new BlockError('certificate is for another block')
    let execution = this.#pending.get(toHex(id))
    if (execution === undefined) {
      await this.checkBlock(block, block.header.height, block.header.round, { skipProposerCheck: true })
      execution = this.#pending.get(toHex(id)) as Execution
    }
    const height = block.header.height
    const head: ChainHead = {
      height,
      blockId: id,
      stateRoot: execution.tree.root(),
      pohEnd: block.header.pohEnd,
      time: block.header.time,
    }
    const batch = this.#opts.store.batch()
    batch.put(this.#blocks, BigInt(height), encodeBlockBytes(block))
    batch.put(this.#commits, BigInt(height), encodeCommit(cert))
    for (const [key, value] of execution.overlay.changes()) {
      if (value === undefined) batch.delete(this.#state, key)
      else batch.put(this.#state, key, value)
    }
    const hashes = execution.hashes
    hashes.forEach((hash, i) => {
      const reason = execution.failures[i]
      batch.put(this.#txIndex, hash, reason === undefined ? height : { height, reason })
    })
    for (const key of this.#opts.retainProofs?.(height) ?? []) {
      const value = execution.tree.get(key)
      batch.put(this.#proofs, keptProofKey(height, key), {
        value: value ?? null,
        proof: encodeProof(execution.tree.prove(key)),
      })
    }
    batch.put(this.#meta, 'head', head)
    await batch.write({ sync: true })
    this.#tree = execution.tree
    this.#head = head
    this.#pending.clear()
    this.#followPoh()
    // Recheck: every pending transaction against the new state (balances can fall outside
    // transactions too: slashing, a failed transaction's fee).
    this.#opts.mempool.update(this.#tree, hashes)
    this.#log.debug({ height, txs: block.txs.length }, 'committed')
    this.#opts.onCommit?.(block, execution.events)
  }

  /** Sync: verifies a fetched block against the validator set of its height, then commits it. */
  async applySynced(block: Block, cert: CommitCertificate): Promise<void> {
    const height = this.#head.height + 1
    if (block.header.height !== height) throw new BlockError(`expected height ${height}, got ${block.header.height}`)
    if (!equals(cert.blockId, headerId(block.header)) || cert.height !== height)
      throw new BlockError('certificate is for another block')
    try {
      verifyCommit(cert, this.validatorSet(height), this.chainId)
    } catch (err) {
      throw new BlockError(`commit certificate is invalid: ${(err as Error).message}`, { cause: err })
    }
    await this.checkBlock(block, height, block.header.round, { skipProposerCheck: false })
    await this.commit(block, cert)
  }
}

export { ZERO_HASH }
