/**
 * A running chain node: the BFT engine driving the ChainApp, consensus messages and
 * transactions over the transport's gossip topics, block sync over request/response, and
 * automatic reporting of double-sign evidence. Everything network-facing is validated before it
 * touches the engine or the mempool; senders of invalid data are penalized.
 *
 * Gossip is validated before it is relayed (the handlers' verdicts; see core/transport.ts):
 * - transactions, in batches of up to `MAX_TX_BATCH` per message (tx-batch.ts): mempool admission
 *   decides for each (decode, chain, kind, fee floor, body, nonce window, payable, then the
 *   signature on the worker pool); refusals carry their verdict (TxError.action). A batch is
 *   rejected when it is malformed or any of its transactions is (each one past the first is one
 *   more penalty, so a batch buys an attacker no extra bad signatures), relayed when at least one
 *   was admitted, ignored otherwise. A peer whose relayed transactions keep being ignored
 *   (`TX_IGNORE_BUDGET`) is flooding: the transactions of its next batches are not read, and each
 *   is a penalty, until the transport disconnects it;
 * - proposals: only for the height being decided (other heights: handed to the engine, which
 *   helps laggards or starts a sync, but not relayed), only from the proposer of their
 *   (height, round), correctly signed, and no larger than the block limit allows;
 * - votes: for the height being decided, only from its validators, correctly signed (other
 *   heights: to the engine, not relayed).
 * Signatures checked here are not checked again by the engine (it is handed the same objects).
 *
 * Evidence goes through the node's single own-transaction queue (`submitOwnTx`), so its nonce
 * follows the node's other pending transactions. It is retried after commits, with a back-off
 * in blocks (1, 2, 4 ... 32), until it is in a block or older than `maxEvidenceAge`.
 */
import { encode, decode } from '../core/codec.ts'
import { utf8 } from '../core/bytes.ts'
import { DonghaeError, describeError } from '../core/errors.ts'
import { systemClock, type Clock } from '../core/clock.ts'
import { silentLogger, type Logger } from '../core/logger.ts'
import { toHex } from '../core/bytes.ts'
import { sha256 } from '../core/hash.ts'
import { PeerBudgets } from '../core/budget.ts'
import { verifySignatureDigest } from '../identity/keys.ts'
import type { VerifyPool } from '../identity/verify-pool.ts'
import type { ChainApp } from './app.ts'
import type { Block } from './block.ts'
import { encodeCommit } from './block.ts'
import { ConsensusEngine, type EngineStatus } from './bft/engine.ts'
import { decodeConsensusMessage, encodeConsensusMessage, verifyProposal, verifyVote } from './bft/messages.ts'
import type { PrivValidator } from './bft/privval.ts'
import { selectProposer } from './bft/proposer.ts'
import {
  findValidator,
  type ConsensusMessage,
  type DuplicateVoteEvidence,
  type Proposal,
  type ValidatorSet,
  type Vote,
} from './bft/types.ts'
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_TIMEOUTS,
  MAX_ROUNDS_AHEAD,
  minRoundMs,
  type TimeoutConfig,
} from './bft/constants.ts'
import { ticksRequiredForRound } from './poh/round-proof.ts'
import { decodeBlock, decodeCommit } from './block.ts'
import { TxError } from './errors.ts'
import type { GenesisDoc } from './genesis.ts'
import { isPoolFull, isRelayRace, type Mempool } from './mempool.ts'
import { verifyBodySignatures } from './body-signatures.ts'
import { combineVerdicts, type GossipVerdict, type PeerTransport } from '../core/transport.ts'
import { decodeTx, MAX_TX_BYTES, txVerifyItem } from './tx.ts'
import { decodeTxBatch, TxBatcher } from './tx-batch.ts'

/** Gossip topics of the chain (on the wire: `/donghae/<chainId>/<topic>/1`). */
export const CONSENSUS_TOPIC = 'consensus'
/** Batches of transactions (tx-batch.ts); the name changed from `txs` when a message began to carry many. */
export const TX_TOPIC = 'tx-batches'
export const SYNC_PROTOCOL = '/donghae/sync/1'
export const STATUS_PROTOCOL = '/donghae/status/1'
const SYNC_BATCH = 32
/** How often peers are asked for their height; doubled after each check that finds nobody ahead, up to SYNC_IDLE_MS. */
const SYNC_INTERVAL_MS = 2_000
/**
 * The longest wait between height checks while nobody is ahead. A node that falls behind meanwhile
 * learns it sooner from the consensus messages of a later height (onFutureHeight); the checks are
 * the fallback, and each is a stream to every peer (issue 16: a node idles at about 0 %).
 */
const SYNC_IDLE_MS = 30_000
/**
 * A transaction submitted here and still in the mempool is gossiped again this often: a single
 * publish can reach nobody (no peer subscribed yet, a peer that dropped it while busy), and a node
 * that does not propose (not a validator, or jailed) would then hold it forever.
 */
export const TX_REBROADCAST_MS = 10_000
/** Transactions submitted here that are watched for re-gossip, at most. */
const MAX_LOCAL_TXS = 4_096
/** Longest wait, in blocks, before evidence that is neither pending nor included is submitted again. */
const EVIDENCE_MAX_BACKOFF = 32

/**
 * What a proposal may weigh besides its transactions: header, the previous certificate, PoH
 * entries (the round's required ticks plus one mixin per 64 transactions), encoding. @default 1 MiB
 */
const PROPOSAL_OVERHEAD_BYTES = 1024 * 1024
/** Bytes per PoH entry on the wire (a hash, a count, an optional mixin, dag-cbor framing). */
const POH_ENTRY_BYTES = 96

/**
 * The largest consensus message a proposal at `round` may be: `maxBlockTxs` transactions of at
 * most 64 KiB each, the PoH ticks its round requires, and the overhead - never above the
 * consensus decoder's bound.
 */
export function maxProposalBytes(genesis: GenesisDoc, round: number): number {
  const txs = genesis.params.maxBlockTxs * (MAX_TX_BYTES + 16)
  const poh = (ticksRequiredFor(genesis)(round) + Math.ceil(genesis.params.maxBlockTxs / 64)) * POH_ENTRY_BYTES
  return Math.min(DEFAULT_MAX_MESSAGE_BYTES, txs + poh + PROPOSAL_OVERHEAD_BYTES)
}

/**
 * Transactions one peer may relay that this node ignores (unpayable, stale, duplicate, too far
 * ahead) before the next ones count as flooding and are rejected unread (each a penalty): a
 * burst of 500, refilled at 10 a second. Honest peers relay only what their own mempool
 * admitted, so they come near it only in races with blocks. With the transport's ban at 20
 * penalty points, one peer costs this node at most about 520 junk transactions, plus 10 a second
 * if it sends slower than that - each an admission check that stops before the signature
 * (see mempool.ts).
 */
export const TX_IGNORE_BUDGET = { amount: 500, perMs: 50_000 }
/**
 * What a relay race (`duplicate`, `already-included`) costs a peer's ignore budget: honest nodes
 * cause them (a pending transaction re-gossiped by its origin, `MAX_REBROADCAST` a tick at most),
 * a replaying peer causes them without end; 10 000 in a burst, then 200 a second.
 */
export const RELAY_RACE_CHARGE = 1 / 20
/**
 * Transactions of a gossiped batch admitted together (the signature pool's batch): the next ones
 * only once all of these were valid, so a batch of bad signatures costs one slice of checks.
 */
export const TX_ADMIT_SLICE = 64
/**
 * What a refusal for a full pool costs a peer's ignore budget (mempool.ts isPoolFull): 50 000 in a
 * burst, then 1 000 a second - about 1 % of a core per peer at the most, and enough that a node a
 * block behind its peers under full load does not cut them off (it did with a whole charge: it
 * stayed full, refused everything they relayed, banned them all, and could never catch up).
 */
export const FULL_POOL_CHARGE = 1 / 100
/** Local transactions gossiped again per sync tick at most (oldest first). */
const MAX_REBROADCAST = 64
/**
 * A consensus payload seen again (gossip is unsigned, so a re-sent vote is a new message: net/gossip.ts)
 * is relayed without being checked or handed to the engine again, and at most once in this long:
 * a re-send after a round timeout still reaches the peers that missed it, a peer re-wrapping one
 * vote in a loop does not flood the network with it.
 */
export const CONSENSUS_RELAY_GAP_MS = 1_000
/**
 * After the engine stops on an error (a write that failed: a full disk), a new one starts from the
 * committed head after this long, doubling up to `ENGINE_RESTART_MAX_MS` while it keeps failing
 * (a commit that succeeds resets it): the node takes part again, and catches up by sync, as soon
 * as the cause is gone, instead of sitting out for good.
 */
export const ENGINE_RESTART_MS = 1_000
const ENGINE_RESTART_MAX_MS = 30_000
/** Consensus payloads remembered for that (the most recent; two rounds of a large set fit). */
const SEEN_CONSENSUS = 8_192

/** Signs a transaction with the node's key and submits it, in the node's one own-transaction queue. */
export type SubmitOwnTx = (kind: string, body: unknown) => Promise<{ hash: Uint8Array }>

interface PendingEvidence {
  evidence: DuplicateVoteEvidence
  /** The last submitted transaction carrying it. */
  hash?: Uint8Array
  /** Height from which it may be submitted again. */
  nextTry: number
  backoff: number
}

/** What the chain needs from the node's transport. */
export type ChainNetwork = Pick<PeerTransport, 'publish' | 'subscribe' | 'request' | 'handle' | 'peers' | 'penalize'>

export interface ChainRuntimeOptions {
  app: ChainApp
  mempool: Mempool
  transport: ChainNetwork
  /** Present for a validator; absent for a full node that only follows. */
  privval?: PrivValidator
  /** The node's own-transaction queue; evidence of double signing is reported through it (pays the fee). */
  submitOwnTx?: SubmitOwnTx
  clock?: Clock
  logger?: Logger
  /** Re-send own messages after this long without progress. */
  gossipMs?: number
  /** Worker threads for transaction signatures; inline on this thread without one. */
  verifyPool?: VerifyPool
}

/** The consensus timeouts a genesis prescribes. */
export function timeoutsOf(genesis: GenesisDoc): Partial<TimeoutConfig> {
  const p = genesis.params
  return {
    proposeMs: p.timeoutProposeMs,
    proposeDeltaMs: p.timeoutProposeDeltaMs,
    prevoteMs: p.timeoutPrevoteMs,
    prevoteDeltaMs: p.timeoutPrevoteDeltaMs,
    precommitMs: p.timeoutPrecommitMs,
    precommitDeltaMs: p.timeoutPrecommitDeltaMs,
    commitMs: p.timeoutCommitMs,
  }
}

/** PoH ticks a proposal in `round` must carry: the timeouts of rounds 0..round-1 at the chain's tick rate. */
export function ticksRequiredFor(genesis: GenesisDoc): (round: number) => number {
  const config: TimeoutConfig = { ...DEFAULT_TIMEOUTS, ...timeoutsOf(genesis) }
  return (round) => ticksRequiredForRound(round, (r) => minRoundMs(config, r), genesis.params.ticksPerSecond)
}

/** The proposer rule shared by the engine and block validation: seed = the chain id. */
export function proposerFor(genesis: GenesisDoc): (set: ValidatorSet, height: number, round: number) => string {
  const seed = utf8(genesis.chainId)
  return (set, height, round) => selectProposer(set, height, round, seed).did
}

export class ChainRuntime {
  readonly #opts: ChainRuntimeOptions
  readonly #app: ChainApp
  readonly #clock: Clock
  readonly #log: Logger
  #engine: ConsensusEngine<Block> | undefined
  readonly #unsubscribe: Array<() => void> = []
  #syncTimer: (() => void) | undefined
  /** Transactions submitted through this node (its API, its own queue), by hash: gossiped again until included. */
  readonly #localTxs = new Map<string, { bytes: Uint8Array; hash: Uint8Array; sentAt: number }>()
  #syncing = false
  /** The current wait between height checks (SYNC_INTERVAL_MS ... SYNC_IDLE_MS). */
  #syncEvery = SYNC_INTERVAL_MS
  /** Evidence seen, by offence, and the height of the offence (forgotten once too old to matter). */
  readonly #reported = new Map<string, number>()
  readonly #evidence = new Map<string, PendingEvidence>()
  #retrying = false
  /** Votes and proposals whose signatures gossip validation checked (the engine gets these very objects). */
  readonly #verified = new WeakSet<Vote | Proposal>()
  /** Hash of each consensus payload accepted recently -> when it was last relayed. */
  readonly #seenConsensus = new Map<string, number>()
  /** Validator sets by height, for gossip validation (a few recent heights). */
  readonly #sets = new Map<number, ValidatorSet>()
  readonly #proposer: (set: ValidatorSet, height: number, round: number) => string
  /** What each peer may still relay that gets ignored (see TX_IGNORE_BUDGET). */
  readonly #ignoredTxs: PeerBudgets
  /** Counters for status and metrics. */
  readonly stats = {
    rejectedMessages: 0,
    rejectedTxs: 0,
    evidenceSeen: 0,
    evidenceSubmitted: 0,
    evidenceIncluded: 0,
    /** Transactions rejected unread because their peer was over its ignore budget. */
    floodedTxs: 0,
    synced: 0,
    /** Engines started again after one stopped on an error. */
    engineRestarts: 0,
  }
  #restartDelay = ENGINE_RESTART_MS
  /** Gossips the transactions admitted here, many to a message. */
  readonly #batcher: TxBatcher
  #restartTimer: (() => void) | undefined
  #stopped = false

  constructor(options: ChainRuntimeOptions) {
    this.#opts = options
    this.#app = options.app
    this.#clock = options.clock ?? systemClock
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:chain')
    this.#proposer = proposerFor(options.app.genesis)
    this.#ignoredTxs = new PeerBudgets(TX_IGNORE_BUDGET, () => this.#clock.now())
    this.#batcher = new TxBatcher({
      publish: (batch) => options.transport.publish(TX_TOPIC, batch),
      clock: this.#clock,
    })
  }

  /** Transaction batches this node published, and the transactions in them. */
  get txBatches(): { batches: number; txs: number } {
    return { ...this.#batcher.stats }
  }

  get app(): ChainApp {
    return this.#app
  }

  get consensus(): EngineStatus | undefined {
    return this.#engine?.status()
  }

  start(): void {
    const { transport } = this.#opts
    this.#unsubscribe.push(transport.subscribe(CONSENSUS_TOPIC, (data, from) => this.#onConsensus(data, from)))
    this.#unsubscribe.push(transport.subscribe(TX_TOPIC, (data, from) => this.#onTxBatch(data, from)))
    transport.handle(SYNC_PROTOCOL, async (data) => this.#serveBlocks(data))
    transport.handle(STATUS_PROTOCOL, async () => encode({ height: this.#app.head.height }))
    this.#startEngine()
    this.#scheduleSync()
    this.#log.info(
      { height: this.#app.head.height, validator: this.#opts.privval !== undefined },
      'chain runtime started',
    )
  }

  async stop(): Promise<void> {
    this.#stopped = true
    this.#restartTimer?.()
    this.#restartTimer = undefined
    this.#syncTimer?.()
    this.#syncTimer = undefined
    for (const off of this.#unsubscribe.splice(0)) off()
    this.#batcher.flush() // what was admitted here still goes out
    this.#batcher.stop()
    const engine = this.#engine
    this.#engine = undefined
    engine?.stop()
    await engine?.idle()
  }

  /** Admits a transaction to the local mempool and gossips it. Rejects with TxError and the reason. */
  async submitTx(bytes: Uint8Array): Promise<Uint8Array> {
    const entry = await this.#admit(bytes)
    this.#batcher.add(bytes)
    if (this.#localTxs.size >= MAX_LOCAL_TXS) this.#localTxs.delete(this.#localTxs.keys().next().value as string)
    this.#localTxs.set(toHex(entry.hash), { bytes, hash: entry.hash, sentAt: this.#clock.now() })
    if (this.#syncEvery > SYNC_INTERVAL_MS && this.#syncTimer !== undefined && !this.#syncing) {
      // the idle cadence is over: this transaction is re-gossiped on time if it must be
      this.#syncEvery = SYNC_INTERVAL_MS
      this.#syncTimer()
      this.#scheduleSync()
    }
    return entry.hash
  }

  /** Gossips again the local transactions the mempool still holds and that were last sent a while ago. */
  #rebroadcast(): void {
    const now = this.#clock.now()
    let sent = 0
    for (const [key, local] of this.#localTxs) {
      if (sent >= MAX_REBROADCAST) return
      if (!this.#opts.mempool.has(local.hash)) {
        this.#localTxs.delete(key) // included, or dropped
        continue
      }
      if (now - local.sentAt < TX_REBROADCAST_MS) continue
      local.sentAt = now
      sent++
      this.#batcher.add(local.bytes)
    }
  }

  /**
   * Mempool admission: every cheap check first (decode, chain, kind, fee, body, nonce window,
   * payable), then the signature on the worker pool, then the pool re-checks against the state
   * of that moment and adds it.
   */
  async #admit(bytes: Uint8Array): Promise<{ hash: Uint8Array }> {
    const tx = decodeTx(bytes)
    const prechecked = this.#opts.mempool.precheck(bytes, this.#app.state, tx)
    const item = txVerifyItem(tx, bytes)
    if (item === undefined) throw new TxError('bad-signature', 'the sender is not a valid did:key')
    const pool = this.#opts.verifyPool
    const valid =
      pool === undefined ? verifySignatureDigest(item.publicKey, item.digest, item.signature) : await pool.verify(item)
    if (!valid) throw new TxError('bad-signature', 'the signature does not verify for the sender')
    // the body's own signatures (settlement receipts) on the pool too, so execution skips them
    const verified = await verifyBodySignatures(this.#opts.mempool.bodySignatures(tx), pool)
    const entry = this.#opts.mempool.add(bytes, this.#app.state, {
      signatureChecked: true,
      decoded: tx,
      verified,
      prechecked,
    })
    // A height waiting for work (no empty blocks) starts now: a block comes within a round trip.
    this.#engine?.workAvailable()
    return entry
  }

  #startEngine(): void {
    const app = this.#app
    const genesis = app.genesis
    const engine: ConsensusEngine<Block> = new ConsensusEngine<Block>({
      chainId: app.chainId,
      height: app.head.height + 1,
      app: {
        validatorSet: (h) => app.validatorSet(h),
        encodeBlock: (b) => app.encodeBlock(b),
        decodeBlock: (bytes) => decodeBlock(bytes),
        blockId: (b) => app.blockId(b),
        createBlock: (h, r) => app.createBlock(h, r, engine.lastCommit() ?? null),
        validateBlock: (b, h, r, options) => app.validateBlock(b, h, r, options),
        commit: async (b, cert) => {
          await app.commit(b, cert)
          this.#restartDelay = ENGINE_RESTART_MS
          void this.#retryEvidence()
        },
        proposerSeed: () => utf8(genesis.chainId),
      },
      ...(this.#opts.privval === undefined ? {} : { privval: this.#opts.privval }),
      verifyVote: (vote, key) => this.#verified.has(vote) || verifyVote(vote, key),
      verifyProposal: (proposal, key) => this.#verified.has(proposal) || verifyProposal(proposal, key),
      clock: this.#clock,
      send: (msg) => this.#opts.transport.publish(CONSENSUS_TOPIC, encodeConsensusMessage(msg)),
      timeouts: {
        ...timeoutsOf(genesis),
        ...(this.#opts.gossipMs === undefined ? {} : { gossipMs: this.#opts.gossipMs }),
      },
      logger: this.#log,
      onReject: (peer, error) => {
        this.stats.rejectedMessages++
        if (peer !== undefined && (error as { action?: string }).action === 'reject')
          this.#opts.transport.penalize(peer, error.message)
      },
      onEvidence: (evidence) => this.#report(evidence),
      onFutureHeight: () => void this.#sync(),
      onError: (error) => this.#restartEngine(engine, error),
      ...(genesis.params.emptyBlockIntervalMs > 0
        ? {
            waitForWork: {
              intervalMs: genesis.params.emptyBlockIntervalMs,
              hasWork: () => app.hasWork(),
              onWait: () => app.pausePoh(),
              onWake: () => app.resumePoh(),
            },
          }
        : {}),
    })
    this.#engine = engine
    engine.start()
  }

  /** A new engine from the committed head, `#restartDelay` after `failed` stopped on `error`. */
  #restartEngine(failed: ConsensusEngine<Block>, error: unknown): void {
    const delay = this.#restartDelay
    this.#restartDelay = Math.min(ENGINE_RESTART_MAX_MS, delay * 2)
    this.#log.error(
      { err: describeError(error), height: this.#app.head.height, restartInMs: delay },
      'consensus stopped on an error; starting again from the committed head',
    )
    this.#restartTimer?.()
    this.#restartTimer = this.#clock.setTimer(delay, () => {
      this.#restartTimer = undefined
      if (this.#stopped || this.#engine !== failed) return
      this.stats.engineRestarts++
      // the failed engine may have paused PoH for a waiting height; the new one pauses it again if it waits
      this.#app.resumePoh()
      this.#startEngine()
    })
  }

  /** Gossip validation of a consensus message (the transport penalizes the sender of a reject). */
  #onConsensus(data: Uint8Array, from: string): GossipVerdict {
    const engine = this.#engine
    if (engine === undefined) return 'ignore'
    const id = toHex(sha256(data))
    const relayedAt = this.#seenConsensus.get(id)
    if (relayedAt !== undefined) {
      const now = this.#clock.now()
      if (now - relayedAt < CONSENSUS_RELAY_GAP_MS) return 'ignore'
      this.#seenConsensus.set(id, now)
      return 'accept'
    }
    let msg: ConsensusMessage
    try {
      msg = decodeConsensusMessage(data)
    } catch (err) {
      return this.#refuse(from, describeError(err))
    }
    const height = engine.status().height
    const about = msg.kind === 'vote' ? msg.vote : msg.proposal
    if (about.chainId !== this.#app.chainId) return this.#refuse(from, 'consensus message for another chain')
    if (about.height !== height || about.round > engine.status().round + MAX_ROUNDS_AHEAD) {
      // Another height: the engine may help a laggard or start a sync, but it is not relayed.
      engine.receive(msg, from)
      return 'ignore'
    }
    const set = this.#validatorSet(height)
    if (set === undefined) return 'ignore'
    const refusal = msg.kind === 'vote' ? this.#checkVote(msg.vote, set) : this.#checkProposal(msg, data, set)
    if (refusal !== undefined) return this.#refuse(from, refusal)
    engine.receive(msg, from)
    if (this.#seenConsensus.size >= SEEN_CONSENSUS) {
      const oldest = this.#seenConsensus.keys().next().value
      if (oldest !== undefined) this.#seenConsensus.delete(oldest)
    }
    this.#seenConsensus.set(id, this.#clock.now())
    return 'accept'
  }

  /** Why a vote for the height being decided is invalid, or undefined. */
  #checkVote(vote: Vote, set: ValidatorSet): string | undefined {
    const member = findValidator(set, vote.validator)
    if (member === undefined) return 'vote from a validator outside the set'
    if (!verifyVote(vote, member.publicKey)) return 'vote signature is invalid'
    this.#verified.add(vote)
    return undefined
  }

  /** Why a proposal for the height being decided is invalid, or undefined. */
  #checkProposal(
    msg: ConsensusMessage & { kind: 'proposal' },
    data: Uint8Array,
    set: ValidatorSet,
  ): string | undefined {
    const p = msg.proposal
    if (!Number.isSafeInteger(p.round) || p.round < 0) return 'proposal round is invalid'
    if (p.proposer !== this.#proposer(set, p.height, p.round))
      return `${p.proposer} is not the proposer of height ${p.height} round ${p.round}`
    const limit = maxProposalBytes(this.#app.genesis, p.round)
    if (data.byteLength > limit) return `proposal of ${data.byteLength} bytes is over the block limit of ${limit}`
    const member = findValidator(set, p.proposer)
    if (member === undefined || !verifyProposal(p, member.publicKey)) return 'proposal signature is invalid'
    this.#verified.add(p)
    return undefined
  }

  #refuse(from: string, reason: string): GossipVerdict {
    this.stats.rejectedMessages++
    this.#log.debug({ peer: from, reason }, 'invalid consensus gossip')
    return 'reject'
  }

  /** The validator set deciding `height` (cached for a few heights; undefined if state cannot say). */
  #validatorSet(height: number): ValidatorSet | undefined {
    let set = this.#sets.get(height)
    if (set !== undefined) return set
    try {
      set = this.#app.validatorSet(height)
    } catch {
      return undefined
    }
    this.#sets.set(height, set)
    for (const h of this.#sets.keys()) if (h < height - 2) this.#sets.delete(h)
    return set
  }

  /**
   * Gossip validation of a batch of transactions: mempool admission decides for each, all at once
   * (the cheap checks of every one run before the first signature is sent to the pool).
   */
  async #onTxBatch(data: Uint8Array, from: string): Promise<GossipVerdict> {
    let txs: Uint8Array[]
    try {
      txs = decodeTxBatch(data)
    } catch (err) {
      this.stats.rejectedTxs++
      this.#log.debug({ peer: from, err: describeError(err) }, 'malformed transaction batch')
      return 'reject'
    }
    if (this.#ignoredTxs.available(from) <= 0) {
      // flooding: none of them is read, and each is a penalty, as when one came per message
      this.stats.floodedTxs += txs.length
      for (let n = 1; n < txs.length; n++) this.#opts.transport.penalize(from, 'transaction flood')
      return 'reject'
    }
    // A slice at a time (one signature-pool batch), stopping at the first slice with an invalid
    // transaction: a batch of bad signatures costs this node one slice of verifications, and its
    // sender a penalty for each bad one (the verdict is the first).
    const verdicts: GossipVerdict[] = []
    for (let i = 0; i < txs.length; i += TX_ADMIT_SLICE) {
      const slice = await Promise.all(txs.slice(i, i + TX_ADMIT_SLICE).map((tx) => this.#onTx(tx, from)))
      verdicts.push(...slice)
      const rejected = slice.filter((v) => v === 'reject').length
      if (rejected === 0) continue
      for (let n = 1; n < rejected; n++) this.#opts.transport.penalize(from, 'invalid transaction in a batch')
      return 'reject'
    }
    return combineVerdicts(verdicts)
  }

  /** One gossiped transaction: admitted ('accept'), or refused with its TxError's verdict. */
  async #onTx(data: Uint8Array, from: string): Promise<GossipVerdict> {
    try {
      await this.#admit(data)
      return 'accept'
    } catch (err) {
      if (!(err instanceof TxError)) {
        this.#log.error({ err: describeError(err) }, 'unexpected error admitting a gossiped transaction')
        return 'ignore'
      }
      this.stats.rejectedTxs++
      if (err.action !== 'ignore') this.#log.debug({ peer: from, reason: err.reason }, 'invalid transaction gossip')
      // honest relaying under load races blocks and other peers (mempool.ts isRelayRace): it counts
      // a twentieth, so a peer that replays one valid transaction as new gossip is still cut off
      else this.#ignoredTxs.charge(from, isRelayRace(err) ? RELAY_RACE_CHARGE : isPoolFull(err) ? FULL_POOL_CHARGE : 1)
      return err.action
    }
  }

  /** Reports a double sign seen by consensus as a staking.evidence transaction from this node. */
  #report(evidence: DuplicateVoteEvidence): void {
    this.stats.evidenceSeen++
    const id = `${evidence.a.validator}/${evidence.a.height}/${evidence.a.round}/${evidence.a.type}`
    this.#log.warn(
      { validator: evidence.a.validator, height: evidence.a.height, round: evidence.a.round },
      'double sign detected',
    )
    if (this.#opts.submitOwnTx === undefined || this.#reported.has(id)) return
    this.#reported.set(id, evidence.a.height)
    this.#evidence.set(id, { evidence, nextTry: 0, backoff: 1 })
    void this.#retryEvidence()
  }

  /** Pending evidence still the node's to report. */
  get pendingEvidence(): number {
    return this.#evidence.size
  }

  /**
   * Submits each piece of evidence that is neither pending in the mempool nor in a block, once
   * its back-off has passed; forgets evidence that is included (whatever its outcome: another
   * node's report may have been first) or older than `maxEvidenceAge`.
   */
  async #retryEvidence(): Promise<void> {
    const submit = this.#opts.submitOwnTx
    if (this.#retrying || submit === undefined || this.#stopped) return
    this.#retrying = true
    try {
      await this.#retryEvidenceOnce(submit)
    } catch (err) {
      // started after a commit or a report, it may still be reading when the node stops and its
      // store closes: the node is going away, and there is nothing to report
      if (!this.#stopped) this.#log.warn({ err: describeError(err) }, 'could not check pending evidence')
    } finally {
      this.#retrying = false
    }
  }

  /** One pass of #retryEvidence (which keeps a second from starting while this one runs). */
  async #retryEvidenceOnce(submit: SubmitOwnTx): Promise<void> {
    const head = this.#app.head.height
    const maxAge = this.#app.genesis.params.maxEvidenceAge
    for (const [id, height] of this.#reported) if (height + maxAge < head) this.#reported.delete(id)
    for (const [id, pending] of [...this.#evidence]) {
      if (pending.evidence.a.height + maxAge < head) {
        this.#evidence.delete(id)
        this.#log.warn({ id }, 'evidence expired before it was included')
        continue
      }
      if (pending.hash !== undefined) {
        if ((await this.#app.txOutcome(pending.hash)) !== undefined) {
          this.#evidence.delete(id)
          this.stats.evidenceIncluded++
          continue
        }
        if (this.#opts.mempool.has(pending.hash)) continue
      }
      if (head < pending.nextTry) continue
      pending.nextTry = head + pending.backoff
      pending.backoff = Math.min(EVIDENCE_MAX_BACKOFF, pending.backoff * 2)
      try {
        pending.hash = (await submit('staking.evidence', pending.evidence)).hash
        this.stats.evidenceSubmitted++
        this.#log.info({ id, tx: toHex(pending.hash) }, 'evidence submitted')
      } catch (err) {
        this.#log.warn({ id, err: describeError(err), retryAt: pending.nextTry }, 'could not submit evidence')
      }
    }
  }

  // ---- block sync -------------------------------------------------------------------------------

  async #serveBlocks(data: Uint8Array): Promise<Uint8Array> {
    const request = decode<{ from?: unknown; count?: unknown }>(data, { maxBytes: 1024 })
    const from =
      typeof request.from === 'number' && Number.isSafeInteger(request.from) && request.from > 0 ? request.from : 1
    const count =
      typeof request.count === 'number' ? Math.max(0, Math.min(SYNC_BATCH, Math.floor(request.count))) : SYNC_BATCH
    const out: Array<[Uint8Array, Uint8Array]> = []
    for (let h = from; h < from + count && h <= this.#app.head.height; h++) {
      const block = await this.#app.getBlockBytes(h)
      const commit = await this.#app.getCommit(h)
      if (block === undefined || commit === undefined) break
      out.push([block, encodeCommit(commit)])
    }
    return encode({ blocks: out })
  }

  #scheduleSync(): void {
    this.#syncTimer = this.#clock.setTimer(this.#syncEvery, () => {
      this.#rebroadcast()
      const syncedBefore = this.stats.synced
      void this.#sync().finally(() => {
        // behind (this check fetched blocks): check again soon; otherwise wait twice as long. Blocks
        // this node committed itself, through consensus, say it is live, not behind.
        const behind = this.stats.synced !== syncedBefore
        this.#syncEvery =
          behind || this.#localTxs.size > 0 ? SYNC_INTERVAL_MS : Math.min(SYNC_IDLE_MS, this.#syncEvery * 2)
        if (this.#syncTimer !== undefined) this.#scheduleSync()
      })
    })
  }

  /** Asks peers how far they are; fetches and feeds missing committed blocks to the engine. */
  async #sync(): Promise<void> {
    if (this.#syncing) return
    this.#syncing = true
    const { transport } = this.#opts
    try {
      for (const peer of transport.peers()) {
        let theirs: number
        try {
          const answer = decode<{ height?: unknown }>(await transport.request(peer, STATUS_PROTOCOL, encode({})), {
            maxBytes: 1024,
          })
          theirs = typeof answer.height === 'number' ? answer.height : 0
        } catch {
          continue
        }
        while (this.#engine !== undefined && theirs > this.#app.head.height) {
          const from = this.#app.head.height + 1
          const fetched = await this.#fetch(peer, from)
          if (fetched === 0) break
        }
      }
    } finally {
      this.#syncing = false
    }
  }

  async #fetch(peer: string, from: number): Promise<number> {
    const { transport } = this.#opts
    let blocks: Array<[Uint8Array, Uint8Array]>
    try {
      const answer = decode<{ blocks?: unknown }>(
        await transport.request(peer, SYNC_PROTOCOL, encode({ from, count: SYNC_BATCH })),
      )
      if (!Array.isArray(answer.blocks)) throw new DonghaeError('sync answer has no block list')
      blocks = answer.blocks as Array<[Uint8Array, Uint8Array]>
    } catch (err) {
      this.#log.debug({ peer, err: describeError(err) }, 'sync request failed')
      return 0
    }
    const engine = this.#engine
    if (engine === undefined) return 0
    let applied = 0
    for (const [blockBytes, commitBytes] of blocks) {
      try {
        const block = decodeBlock(blockBytes)
        const cert = decodeCommit(commitBytes)
        if (block.header.height !== from + applied) break
        engine.receiveCommit(block, cert, peer)
        applied++
      } catch (err) {
        transport.penalize(peer, `bad sync block: ${describeError(err)}`)
        break
      }
    }
    await engine.idle()
    const gained = this.#app.head.height - (from - 1)
    this.stats.synced += Math.max(0, gained)
    if (gained > 0) this.#log.info({ peer, to: this.#app.head.height }, 'synced blocks')
    return Math.max(0, gained)
  }
}
