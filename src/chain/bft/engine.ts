/**
 * The Tendermint consensus engine (Buchman, Kwon, Milosevic, arXiv 1807.04938, Algorithm 1),
 * rules 1-10 of docs/consensus.md, independent of the block format.
 *
 * Everything that happens to the engine (a peer's message, a timeout, a synced commit) is an
 * event in one internal queue, handled one at a time to completion (including the application's
 * and the private validator's promises), so the same inputs in the same order always give the
 * same behaviour. After each event the rules are re-evaluated until none fires.
 *
 * Beyond the paper's pseudo-code, which assumes every message sent by a correct process is
 * eventually delivered to every correct process, the engine provides that delivery itself over a
 * lossy network:
 * - with no step change for `gossipMs`, it re-sends everything it signed at the current height,
 *   plus the prevotes (signed by others) that justify the valid round of its re-proposals;
 * - after a decision it keeps collecting precommits of the decided round (`lastCommit()`, for the
 *   next block's certificate) and re-sends the decided proposal with its precommits to a validator
 *   it hears from at the old height;
 * - messages from later heights are reported through `onFutureHeight` so a block-sync layer can
 *   fetch committed blocks, which come back through `receiveCommit(block, cert)`.
 */
import { equals, utf8 } from '../../core/bytes.ts'
import type { Clock } from '../../core/clock.ts'
import { describeError, DonghaeError, isDonghaeError } from '../../core/errors.ts'
import { silentLogger, type Logger } from '../../core/logger.ts'
import {
  DEFAULT_TIMEOUTS,
  MAX_PROPOSALS_PER_ROUND,
  MAX_QUEUED_MESSAGES,
  MAX_ROUNDS_AHEAD,
  timeoutMs,
  type TimeoutConfig,
  type TimeoutKind,
} from './constants.ts'
import { ConsensusMessageError, DoubleSignError } from './errors.ts'
import { verifyCommit, verifyProposal, verifyVote } from './messages.ts'
import type { LockProof, PrivValidator, SignLock } from './privval.ts'
import { selectProposer } from './proposer.ts'
import {
  blockKey,
  findValidator,
  twoThirdsQuorum,
  type CommitCertificate,
  type ConsensusMessage,
  type DuplicateVoteEvidence,
  type Proposal,
  type QuorumRule,
  type Validator,
  type ValidatorSet,
  type Vote,
  type VoteType,
} from './types.ts'
import { HeightVoteSet, VoteSet } from './vote-set.ts'

/** What the engine needs from the chain application. */
export interface ConsensusApp<B> {
  /** The validator set that decides `height` (sets change only at epoch edges). */
  validatorSet(height: number): ValidatorSet
  encodeBlock(block: B): Uint8Array
  /** Parses a peer's block; throws for malformed bytes. */
  decodeBlock(bytes: Uint8Array): B
  blockId(block: B): Uint8Array
  /**
   * A new block to propose at (height, round); it carries PoH covering the timeouts of rounds
   * 0..round-1. `lastCommit` is the previous height's certificate with the late precommits collected
   * since the decision (undefined after a restart: the app then uses the certificate it stored).
   */
  createBlock(height: number, round: number, lastCommit?: CommitCertificate): B | Promise<B>
  /**
   * Whether `block` may be decided at `height` when proposed in `round` (parent, transactions, PoH,
   * state). With `committed`, the block comes with a commit certificate that verified: more than
   * two thirds of the stake decided it, so rules that judge a proposal by this node's own view of
   * the moment (its time not too far in this clock's future) no longer apply; the rest do.
   */
  validateBlock(block: B, height: number, round: number, options?: { committed?: boolean }): boolean | Promise<boolean>
  /** Persists the decided block with its certificate; the engine moves to height + 1 when this resolves. */
  commit(block: B, cert: CommitCertificate): void | Promise<void>
  /** Seed of the proposer draw at `height` (e.g. the epoch's start hash). @default utf8(chainId) */
  proposerSeed?(height: number): Uint8Array
}

export type EngineStep = 'newHeight' | 'propose' | 'prevote' | 'precommit'

export interface EngineStatus {
  height: number
  round: number
  step: EngineStep
  lockedRound: number
  validRound: number
  /** Waiting for work before round 0 (an idle chain: see ConsensusEngineOptions.waitForWork). */
  waiting: boolean
}

export interface ConsensusEngineOptions<B> {
  chainId: string
  /** The first height to decide (last committed height + 1). */
  height: number
  app: ConsensusApp<B>
  /** Signs this node's votes and proposals; absent for an observer. */
  privval?: PrivValidator
  clock: Clock
  /** Broadcasts a message to the other validators. */
  send(msg: ConsensusMessage): void
  timeouts?: Partial<TimeoutConfig>
  logger?: Logger
  /** Quorum rule. Injectable ONLY so a test can weaken it and watch safety break. @default 3·power > 2·total */
  quorum?: QuorumRule
  /** A peer's message was dropped as invalid; `peerHint` is what was passed to `receive`. */
  onReject?(peerHint: string | undefined, error: DonghaeError): void
  /** A validator signed two different votes for one (height, round, type). */
  onEvidence?(evidence: DuplicateVoteEvidence): void
  /** A message from a later height arrived: this node is behind and should sync committed blocks. */
  onFutureHeight?(height: number, peerHint: string | undefined): void
  /** The application failed while committing, or another unexpected error: the engine stops. */
  onError?(error: unknown): void
  /** Signature checks; a shared cache may stand in for them. @default verifyVote / verifyProposal */
  verifyVote?(vote: Vote, publicKey: Uint8Array): boolean
  verifyProposal?(proposal: Proposal, publicKey: Uint8Array): boolean
  /**
   * No empty blocks (CometBFT's `create_empty_blocks = false` with `create_empty_blocks_interval`):
   * a height whose round 0 would have nothing to decide waits before its propose step until
   * `hasWork(height)` says there is something (a transaction, a module's due work; the runtime
   * calls `workAvailable()` when that changes), a message of this height arrives from another
   * validator (one of them has work), or `intervalMs` passes since the height began (0: never).
   * @default absent: every height starts round 0 after the commit timeout, as in the paper
   */
  waitForWork?: {
    intervalMs: number
    hasWork(height: number): boolean
    /** The height began to wait (the app may rest what only rounds need, such as PoH ticks). */
    onWait?(height: number): void
    /** The waiting height begins round 0. */
    onWake?(height: number): void
  }
}

interface Candidate<B> {
  block: B
  bytes: Uint8Array
  id: Uint8Array
  key: string
}

interface ProposalRecord<B> {
  proposal: Proposal
  candidate: Candidate<B>
  valid: boolean
  msg: ConsensusMessage
}

type EngineEvent<B> =
  | { type: 'start' }
  | { type: 'message'; msg: ConsensusMessage; peer: string | undefined }
  | { type: 'timeout'; kind: TimeoutKind; height: number; round: number }
  | { type: 'startHeight'; height: number }
  | { type: 'gossip'; height: number }
  | { type: 'commit'; block: B; cert: CommitCertificate; peer: string | undefined }
  | { type: 'work'; height: number | undefined }

/** Everything the engine knows about the height it is deciding. */
class HeightState<B> {
  readonly height: number
  readonly set: ValidatorSet
  readonly votes: HeightVoteSet
  readonly proposals = new Map<number, ProposalRecord<B>[]>()
  readonly proposers = new Map<number, Validator>()
  readonly validity = new Map<string, boolean>()
  readonly prevoteTimeouts = new Set<number>()
  readonly precommitTimeouts = new Set<number>()
  readonly lockDone = new Set<number>()
  /** What this node signed at this height, in order: re-sent by gossip. */
  readonly own: ConsensusMessage[] = []
  round = 0
  step: EngineStep = 'newHeight'
  started = false
  /** Waiting for work before round 0 (see ConsensusEngineOptions.waitForWork). */
  waiting = false
  /** Another validator's valid vote or proposal of this height arrived (it is deciding it: no waiting). */
  heard = false
  decided = false
  /** When round 0 began here (the clock's ms); undefined while the height has not started. */
  startedAt: number | undefined
  lockedRound = -1
  lockedKey: string | undefined
  validRound = -1
  validValue: Candidate<B> | undefined

  constructor(height: number, set: ValidatorSet, quorum: QuorumRule) {
    this.height = height
    this.set = set
    this.votes = new HeightVoteSet(height, set, quorum)
  }

  records(round: number): ProposalRecord<B>[] {
    return this.proposals.get(round) ?? []
  }
}

/** The decided height, kept to collect late precommits and to help validators still deciding it. */
interface LastCommit<B> {
  height: number
  round: number
  blockId: Uint8Array
  set: ValidatorSet
  precommits: VoteSet
  proposal: ProposalRecord<B> | undefined
  resentAt: number
  /** When this node began the height (or decided it, if it never did): the block interval's floor runs from here. */
  startedAt: number
  /** The next height's early start is already scheduled (#endPauseIfComplete). */
  endingPause: boolean
}

let sharedSilentLogger: Logger | undefined

export class ConsensusEngine<B> {
  readonly chainId: string
  readonly #app: ConsensusApp<B>
  readonly #privval: PrivValidator | undefined
  readonly #clock: Clock
  readonly #send: (msg: ConsensusMessage) => void
  readonly #timeouts: TimeoutConfig
  readonly #log: Logger
  readonly #quorum: QuorumRule
  readonly #options: ConsensusEngineOptions<B>
  readonly #verifyVote: (vote: Vote, publicKey: Uint8Array) => boolean
  readonly #verifyProposal: (proposal: Proposal, publicKey: Uint8Array) => boolean

  #hs: HeightState<B>
  #last: LastCommit<B> | undefined
  #queue: EngineEvent<B>[] = []
  #head = 0
  #queuedMessages = 0
  #running = false
  #stopped = false
  #startRequested = false
  #idleWaiters: (() => void)[] = []
  readonly #timers = new Set<() => void>()
  #gossipCancel: (() => void) | undefined
  /** Round-0 messages of the next height that came while this one was still being decided (#holdNext). */
  readonly #held = new Map<string, { height: number; msg: ConsensusMessage; peer: string | undefined }>()

  constructor(options: ConsensusEngineOptions<B>) {
    if (!Number.isSafeInteger(options.height) || options.height < 1) {
      throw new DonghaeError('the first height to decide must be a positive integer')
    }
    this.chainId = options.chainId
    this.#options = options
    this.#app = options.app
    this.#privval = options.privval
    this.#clock = options.clock
    this.#send = (msg) => {
      // A handler that was mid-way when stop() came must not speak any more.
      if (!this.#stopped) options.send(msg)
    }
    this.#timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts }
    this.#quorum = options.quorum ?? twoThirdsQuorum
    this.#verifyVote = options.verifyVote ?? verifyVote
    this.#verifyProposal = options.verifyProposal ?? verifyProposal
    sharedSilentLogger ??= silentLogger()
    this.#log = (options.logger ?? sharedSilentLogger).forComponent('donghae:chain:bft')
    this.#hs = new HeightState(options.height, this.#app.validatorSet(options.height), this.#quorum)
  }

  /** Restores the lock and round from the private validator, then starts round 0 (or the last signed round). */
  start(): void {
    if (this.#startRequested || this.#stopped) return
    this.#startRequested = true
    this.#enqueue({ type: 'start' })
  }

  /** Stops handling events and cancels every timer. */
  stop(): void {
    this.#stopped = true
    for (const cancel of this.#timers) cancel()
    this.#timers.clear()
    this.#gossipCancel?.()
    this.#queue = []
    this.#head = 0
    this.#resolveIdle()
  }

  /** Queues a peer's (decoded) message. Invalid ones are dropped and reported through `onReject`. */
  receive(msg: ConsensusMessage, peerHint?: string): void {
    if (this.#stopped) return
    if (this.#queuedMessages >= MAX_QUEUED_MESSAGES) {
      this.#reject(
        peerHint,
        new ConsensusMessageError('consensus queue is full; message dropped', { action: 'ignore' }),
      )
      return
    }
    this.#queuedMessages++
    this.#enqueue({ type: 'message', msg, peer: peerHint })
  }

  /** Queues a committed block fetched by block sync; it is decided if `cert` verifies against the height's set. */
  receiveCommit(block: B, cert: CommitCertificate, peerHint?: string): void {
    if (this.#stopped) return
    this.#enqueue({ type: 'commit', block, cert, peer: peerHint })
  }

  /**
   * There is work for the height being decided (a transaction reached the mempool, a module has
   * something due): a height waiting for work starts round 0.
   */
  workAvailable(): void {
    if (this.#stopped || !this.#hs.waiting) return
    this.#enqueue({ type: 'work', height: undefined })
  }

  /** Resolves when every queued event has been handled. */
  idle(): Promise<void> {
    if (!this.#running && this.#head >= this.#queue.length) return Promise.resolve()
    return new Promise((resolve) => this.#idleWaiters.push(resolve))
  }

  status(): EngineStatus {
    const hs = this.#hs
    return {
      height: hs.height,
      round: hs.round,
      step: hs.step,
      lockedRound: hs.lockedRound,
      validRound: hs.validRound,
      waiting: hs.waiting,
    }
  }

  /** The certificate of the last decided height with every precommit collected so far (late ones included). */
  lastCommit(): CommitCertificate | undefined {
    const last = this.#last
    if (last === undefined) return undefined
    return {
      height: last.height,
      round: last.round,
      blockId: last.blockId,
      precommits: last.precommits.votesFor(last.blockId),
    }
  }

  /** The proposer of (current height, round). */
  proposerOf(round: number): Validator {
    return this.#proposer(this.#hs, round)
  }

  // ---------------------------------------------------------------------------------------------
  // Event queue

  #enqueue(event: EngineEvent<B>): void {
    if (this.#stopped) return
    this.#queue.push(event)
    if (!this.#running) void this.#pump()
  }

  async #pump(): Promise<void> {
    this.#running = true
    try {
      while (this.#head < this.#queue.length && !this.#stopped) {
        const event = this.#queue[this.#head++] as EngineEvent<B>
        if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
          this.#queue = this.#queue.slice(this.#head)
          this.#head = 0
        }
        if (event.type === 'message') this.#queuedMessages--
        try {
          await this.#handle(event)
        } catch (err) {
          this.#fail(err)
        }
      }
    } finally {
      this.#running = false
      this.#resolveIdle()
    }
  }

  #resolveIdle(): void {
    if (this.#running) return
    const waiters = this.#idleWaiters
    this.#idleWaiters = []
    for (const resolve of waiters) resolve()
  }

  #fail(err: unknown): void {
    this.#log.error({ err: describeError(err) }, 'consensus engine stopped after an unexpected error')
    this.stop()
    this.#options.onError?.(err)
  }

  async #handle(event: EngineEvent<B>): Promise<void> {
    switch (event.type) {
      case 'start':
        await this.#onStart()
        break
      case 'message':
        await this.#onMessage(event.msg, event.peer)
        break
      case 'timeout':
        await this.#onTimeout(event.kind, event.height, event.round)
        break
      case 'startHeight':
        // twice for one height when the commit pause ended early (#endPauseIfComplete)
        if (event.height === this.#hs.height && !this.#hs.started && !this.#hs.waiting) await this.#startHeight()
        break
      case 'work':
        // workAvailable() is a hint (a transaction behind a nonce gap is not work): ask again;
        // the empty-block interval (its height set) starts the round regardless.
        if (
          event.height === undefined
            ? this.#options.waitForWork?.hasWork(this.#hs.height) === true
            : event.height === this.#hs.height
        )
          await this.#wake()
        break
      case 'gossip':
        if (event.height === this.#hs.height) this.#gossip()
        break
      case 'commit':
        await this.#onCommit(event.block, event.cert, event.peer)
        break
    }
    await this.#evaluate()
  }

  async #onStart(): Promise<void> {
    const hs = this.#hs
    let round = 0
    if (this.#privval !== undefined) {
      // A restart: the lock and the round this key last signed in survive; everything else was lost.
      const state = await this.#privval.lastSignState()
      if (state !== undefined && state.height === hs.height) round = state.round
      const lock = await this.#privval.lockAt(hs.height)
      if (lock !== undefined) this.#restoreLock(hs, lock)
      // Votes signed before the crash count again and go out again: they cannot be re-signed
      // differently, and others may still need them for a quorum.
      for (const vote of await this.#privval.votesAt(hs.height)) {
        hs.votes.add(vote)
        const msg: ConsensusMessage = { kind: 'vote', vote }
        hs.own.push(msg)
        this.#send(msg)
      }
    }
    if (round === 0 && hs.own.length === 0 && hs.lockedRound === -1) {
      // Nothing signed at this height before a restart: it begins like any other (and may wait for work).
      await this.#startHeight()
      return
    }
    hs.started = true
    await this.#startRound(round)
    const state = await this.#privval?.lastSignState()
    if (state !== undefined && state.height === hs.height && state.round === hs.round && state.step > 1) {
      // Resume at the step this key had reached; what it signed there stands.
      this.#setStep(hs, state.step === 2 ? 'prevote' : 'precommit')
    }
  }

  /** The lock survives a crash; with its block and polka it is also this node's valid value again. */
  #restoreLock(hs: HeightState<B>, lock: SignLock): void {
    hs.lockedRound = lock.round
    hs.lockedKey = blockKey(lock.blockId)
    if (lock.block === undefined) return
    let candidate: Candidate<B>
    try {
      candidate = this.#candidate(this.#app.decodeBlock(lock.block), lock.block)
    } catch (err) {
      this.#log.warn({ err: describeError(err) }, 'the locked block from the sign state does not decode')
      return
    }
    if (candidate.key !== hs.lockedKey) return
    hs.validValue = candidate
    hs.validRound = lock.round
    hs.validity.set(`${candidate.key}:${lock.round}`, true)
    for (const vote of lock.polka ?? []) {
      const member = findValidator(hs.set, vote.validator)
      if (member !== undefined && this.#verifyVote(vote, member.publicKey)) hs.votes.add(vote)
    }
  }

  async #startHeight(): Promise<void> {
    const hs = this.#hs
    const wait = this.#options.waitForWork
    // A vote or proposal of this height that came during the commit timeout means another validator
    // had work: waiting for this node's own would leave it out of the quorum.
    if (wait !== undefined && !hs.waiting && !hs.heard && !wait.hasWork(hs.height)) {
      // Nothing to decide: wait before round 0 (no propose timeout runs meanwhile).
      hs.waiting = true
      if (wait.intervalMs > 0) this.#setTimer(wait.intervalMs, { type: 'work', height: hs.height })
      this.#log.debug({ height: hs.height }, 'waiting for work before round 0')
      wait.onWait?.(hs.height)
      return
    }
    hs.waiting = false
    hs.started = true
    await this.#startRound(0)
  }

  /** Work arrived (or the empty-block interval passed, or another validator started): round 0 begins. */
  async #wake(): Promise<void> {
    const hs = this.#hs
    if (!hs.waiting || hs.started) return
    hs.waiting = false
    hs.started = true
    this.#options.waitForWork?.onWake?.(hs.height)
    await this.#startRound(0)
  }

  // ---------------------------------------------------------------------------------------------
  // Incoming messages

  async #onMessage(msg: ConsensusMessage, peer: string | undefined): Promise<void> {
    try {
      if (msg.kind === 'vote') await this.#onVote(msg.vote, peer)
      else if (msg.kind === 'proposal') await this.#onProposal(msg, peer)
      else throw new ConsensusMessageError('unknown consensus message kind')
    } catch (err) {
      if (err instanceof ConsensusMessageError) this.#reject(peer, err)
      else if (isDonghaeError(err) || err instanceof TypeError) {
        // A malformed object handed to receive() without going through the decoder.
        this.#reject(peer, new ConsensusMessageError(`malformed consensus message: ${describeError(err)}`))
      } else throw err
    }
  }

  #reject(peer: string | undefined, error: DonghaeError): void {
    this.#options.onReject?.(peer, error)
  }

  async #onVote(vote: Vote, peer: string | undefined): Promise<void> {
    if (vote.chainId !== this.chainId) throw new ConsensusMessageError('vote for another chain')
    const hs = this.#hs
    if (vote.height === hs.height) {
      this.#addVote(hs, vote)
      // Another validator is deciding this height: it had work, so this one has too.
      if (hs.waiting) await this.#wake()
      return
    }
    if (vote.height > hs.height) {
      if (vote.height === hs.height + 1) this.#holdNext({ kind: 'vote', vote }, peer)
      this.#options.onFutureHeight?.(vote.height, peer)
      return
    }
    const last = this.#last
    if (last !== undefined && vote.height === last.height) this.#onLastHeightVote(last, vote)
  }

  /**
   * A round-0 message of the next height while this node still decides this one: the validators
   * that decided first may be there already (a commit pause ends early once every precommit is
   * in, #endPauseIfComplete), and a proposal dropped here would cost this node the next height's
   * propose timeout. Kept, if a member of this height's set signed it (checked now) and, for a
   * proposal, if its signer proposes round 0 of the next height under this set, at most one per
   * signer and kind; handled as just arrived when the next height begins (#decide). A message of
   * a set that changes at the next height is not kept: it comes again with the gossip.
   */
  #holdNext(msg: ConsensusMessage, peer: string | undefined): void {
    const about = msg.kind === 'vote' ? msg.vote : msg.proposal
    if (about.round !== 0) return
    const hs = this.#hs
    const signer = msg.kind === 'vote' ? msg.vote.validator : msg.proposal.proposer
    const key = msg.kind === 'vote' ? `${msg.vote.type}:${signer}` : `proposal:${signer}`
    if (this.#held.get(key)?.height === about.height) return
    const member = findValidator(hs.set, signer)
    if (member === undefined) return
    if (msg.kind === 'proposal') {
      const seed = this.#app.proposerSeed?.(about.height) ?? utf8(this.chainId)
      if (selectProposer(hs.set, about.height, 0, seed).did !== signer) return
      if (!this.#verifyProposal(msg.proposal, member.publicKey))
        throw new ConsensusMessageError('proposal signature is invalid')
    } else {
      if (msg.vote.type !== 'prevote' && msg.vote.type !== 'precommit') return
      if (!this.#verifyVote(msg.vote, member.publicKey)) throw new ConsensusMessageError('vote signature is invalid')
    }
    this.#held.set(key, { height: about.height, msg, peer })
  }

  #addVote(hs: HeightState<B>, vote: Vote): void {
    if (!Number.isSafeInteger(vote.round) || vote.round < 0) throw new ConsensusMessageError('vote round is invalid')
    if (vote.round > hs.round + MAX_ROUNDS_AHEAD) return
    if (vote.type !== 'prevote' && vote.type !== 'precommit') throw new ConsensusMessageError('unknown vote type')
    if (vote.blockId !== null && !(vote.blockId instanceof Uint8Array)) {
      throw new ConsensusMessageError('vote blockId must be bytes or null')
    }
    const member = findValidator(hs.set, vote.validator)
    if (member === undefined) {
      throw new ConsensusMessageError('vote from a validator outside the set', {
        details: { validator: vote.validator },
      })
    }
    const set = hs.votes.votes(vote.round, vote.type)
    const novelty = set.novelty(vote)
    if (novelty === 'same' || novelty === 'conflict-full') return
    if (!this.#verifyVote(vote, member.publicKey)) throw new ConsensusMessageError('vote signature is invalid')
    const result = hs.votes.add(vote)
    hs.heard = true
    if (result.kind === 'conflict' && result.evidence !== undefined) this.#options.onEvidence?.(result.evidence)
  }

  /** A vote for the height just decided: a late precommit for the certificate, and a sign that its sender lags. */
  #onLastHeightVote(last: LastCommit<B>, vote: Vote): void {
    const member = findValidator(last.set, vote.validator)
    if (member === undefined) return
    if (vote.type === 'precommit' && vote.round === last.round && last.precommits.novelty(vote) === 'new') {
      if (!this.#verifyVote(vote, member.publicKey)) throw new ConsensusMessageError('vote signature is invalid')
      last.precommits.add(vote)
      this.#endPauseIfComplete()
    }
    if (vote.validator !== this.#privval?.did) this.#helpLaggard(last)
  }

  /** Re-sends the decided proposal and its precommits, at most once per gossip interval. */
  #helpLaggard(last: LastCommit<B>): void {
    const now = this.#clock.now()
    if (now - last.resentAt < this.#timeouts.gossipMs) return
    last.resentAt = now
    if (last.proposal !== undefined) this.#send(last.proposal.msg)
    for (const vote of last.precommits.votesFor(last.blockId)) this.#send({ kind: 'vote', vote })
  }

  async #onProposal(msg: ConsensusMessage & { kind: 'proposal' }, peer: string | undefined): Promise<void> {
    const p = msg.proposal
    if (p.chainId !== this.chainId) throw new ConsensusMessageError('proposal for another chain')
    const hs = this.#hs
    if (p.height !== hs.height) {
      if (p.height === hs.height + 1) this.#holdNext(msg, peer)
      if (p.height > hs.height) this.#options.onFutureHeight?.(p.height, peer)
      else if (this.#last !== undefined && p.height === this.#last.height) this.#helpLaggard(this.#last)
      return
    }
    if (!Number.isSafeInteger(p.round) || p.round < 0 || p.round > hs.round + MAX_ROUNDS_AHEAD) return
    if (!Number.isSafeInteger(p.validRound) || p.validRound < -1 || p.validRound >= p.round) {
      throw new ConsensusMessageError('proposal validRound must be -1 or before its round')
    }
    const proposer = this.#proposer(hs, p.round)
    if (p.proposer !== proposer.did) {
      throw new ConsensusMessageError('proposal from a validator that is not the proposer of its round', {
        details: { round: p.round, proposer: p.proposer },
      })
    }
    const records = hs.proposals.get(p.round) ?? []
    if (records.some((r) => equals(r.proposal.signature, p.signature))) return
    if (records.length >= MAX_PROPOSALS_PER_ROUND) return
    if (!this.#verifyProposal(p, proposer.publicKey)) throw new ConsensusMessageError('proposal signature is invalid')
    let block: B
    try {
      block = this.#app.decodeBlock(msg.block)
    } catch (err) {
      throw new ConsensusMessageError(`proposed block does not decode: ${describeError(err)}`, { cause: err })
    }
    const candidate = this.#candidate(block, msg.block)
    if (!equals(candidate.id, p.blockId)) throw new ConsensusMessageError('proposed block does not match its id')
    const valid = await this.#validate(hs, candidate, p.round)
    records.push({ proposal: p, candidate, valid, msg })
    hs.proposals.set(p.round, records)
    hs.heard = true
    hs.votes.noteSpeaker(p.round, p.proposer)
    // A re-proposal claims its block had a polka in its valid round (see VoteSet: claims).
    if (p.validRound >= 0) hs.votes.votes(p.validRound, 'prevote').claim(p.blockId)
    if (hs.waiting) await this.#wake()
  }

  async #onCommit(block: B, cert: CommitCertificate, peer: string | undefined): Promise<void> {
    const hs = this.#hs
    if (cert.height !== hs.height || hs.decided) return
    let candidate: Candidate<B>
    try {
      verifyCommit(cert, hs.set, this.chainId, { quorum: this.#quorum, verifyVote: this.#verifyVote })
      candidate = this.#candidate(block, this.#app.encodeBlock(block))
      if (!equals(candidate.id, cert.blockId)) throw new ConsensusMessageError('synced block does not match its commit')
    } catch (err) {
      if (!isDonghaeError(err)) throw err
      this.#reject(peer, err)
      return
    }
    // Judged as decided, apart from the proposal's verdict: a node whose clock was behind found the
    // proposal "too far in the future", and that verdict, kept for the height, refused the same
    // block from every peer's commit for good (the node never caught up; a chaos run found it).
    if (!(await this.#validate(hs, candidate, cert.round, { committed: true }))) {
      this.#reject(peer, new ConsensusMessageError('synced block is invalid'))
      return
    }
    const precommits = new VoteSet(hs.height, cert.round, 'precommit', hs.set, this.#quorum)
    for (const vote of cert.precommits) precommits.add(vote)
    await this.#decide(candidate, cert.round, precommits, undefined)
  }

  #candidate(block: B, bytes: Uint8Array): Candidate<B> {
    const id = this.#app.blockId(block)
    return { block, bytes, id, key: blockKey(id) }
  }

  async #validate(
    hs: HeightState<B>,
    candidate: Candidate<B>,
    round: number,
    options: { committed?: boolean } = {},
  ): Promise<boolean> {
    const key = `${candidate.key}:${round}${options.committed === true ? ':committed' : ''}`
    const known = hs.validity.get(key)
    if (known !== undefined) return known
    let valid: boolean
    try {
      valid = (await this.#app.validateBlock(candidate.block, hs.height, round, options)) === true
    } catch (err) {
      this.#log.debug({ err: describeError(err) }, 'block validation threw; treating the block as invalid')
      valid = false
    }
    hs.validity.set(key, valid)
    return valid
  }

  #proposer(hs: HeightState<B>, round: number): Validator {
    let proposer = hs.proposers.get(round)
    if (proposer === undefined) {
      const seed = this.#app.proposerSeed?.(hs.height) ?? utf8(this.chainId)
      proposer = selectProposer(hs.set, hs.height, round, seed)
      if (hs.proposers.size > 4 * MAX_ROUNDS_AHEAD) hs.proposers.clear()
      hs.proposers.set(round, proposer)
    }
    return proposer
  }

  // ---------------------------------------------------------------------------------------------
  // The rules

  /** Applies rules until none fires. */
  async #evaluate(): Promise<void> {
    for (let guard = 0; guard < 10_000 && !this.#stopped; guard++) {
      if (!(await this.#applyOneRule())) return
    }
  }

  async #applyOneRule(): Promise<boolean> {
    const hs = this.#hs
    // Rule 8: a decision at any round.
    if (!hs.decided) {
      const decision = this.#findDecision(hs)
      if (decision !== undefined) {
        const { record, round } = decision
        await this.#decide(record.candidate, round, hs.votes.votes(round, 'precommit'), record)
        return true
      }
    }
    if (!hs.started) return false
    // Rule 9: f+1 validators are in a later round.
    const skip = hs.votes.skipTarget(hs.round)
    if (skip !== undefined) {
      await this.#startRound(skip)
      return true
    }
    return (await this.#roundRules(hs)) || this.#timeoutRules(hs)
  }

  /** Rules 2, 3, 5 and 6: the steps of the current round that sign something. */
  async #roundRules(hs: HeightState<B>): Promise<boolean> {
    const round = hs.round
    if (hs.step === 'propose') {
      const choice = this.#prevoteChoice(hs)
      if (choice !== undefined) {
        this.#setStep(hs, 'prevote')
        await this.#vote(hs, 'prevote', choice)
        return true
      }
    }
    const prevotes = hs.votes.peek(round, 'prevote')
    if (prevotes === undefined) return false
    if ((hs.step === 'prevote' || hs.step === 'precommit') && !hs.lockDone.has(round)) {
      // Rule 5: a valid proposal of this round with 2/3+ prevotes.
      const polka = hs.records(round).find((r) => r.valid && prevotes.hasQuorumFor(r.candidate.id))
      if (polka !== undefined) {
        hs.lockDone.add(round)
        hs.validValue = polka.candidate
        hs.validRound = round
        if (hs.step === 'prevote') {
          hs.lockedRound = round
          hs.lockedKey = polka.candidate.key
          this.#setStep(hs, 'precommit')
          const proof = { block: polka.candidate.bytes, polka: prevotes.votesFor(polka.candidate.id) }
          await this.#vote(hs, 'precommit', polka.candidate.id, proof)
        }
        return true
      }
    }
    if (hs.step === 'prevote' && prevotes.hasQuorumFor(null)) {
      // Rule 6: 2/3+ prevoted nil.
      this.#setStep(hs, 'precommit')
      await this.#vote(hs, 'precommit', null)
      return true
    }
    return false
  }

  /** Rules 4 and 7: schedule the prevote and precommit timeouts the first time 2/3+ voted anything. */
  #timeoutRules(hs: HeightState<B>): boolean {
    const round = hs.round
    if (hs.step === 'prevote' && !hs.prevoteTimeouts.has(round) && hs.votes.peek(round, 'prevote')?.hasQuorumAny()) {
      hs.prevoteTimeouts.add(round)
      this.#scheduleTimeout(hs, 'prevote', round)
      return true
    }
    if (!hs.precommitTimeouts.has(round) && hs.votes.peek(round, 'precommit')?.hasQuorumAny()) {
      hs.precommitTimeouts.add(round)
      this.#scheduleTimeout(hs, 'precommit', round)
      return true
    }
    return false
  }

  /** Rules 2 and 3: what to prevote once this round's proposal is known (undefined: not yet). */
  #prevoteChoice(hs: HeightState<B>): Uint8Array | null | undefined {
    for (const record of hs.records(hs.round)) {
      const { validRound } = record.proposal
      const id = record.candidate.id
      if (validRound === -1) {
        const acceptable = hs.lockedRound === -1 || hs.lockedKey === record.candidate.key
        return record.valid && acceptable ? id : null
      }
      if (validRound < hs.round && hs.votes.peek(validRound, 'prevote')?.hasQuorumFor(id) === true) {
        const acceptable = hs.lockedRound <= validRound || hs.lockedKey === record.candidate.key
        return record.valid && acceptable ? id : null
      }
    }
    return undefined
  }

  /** Rule 8: a valid proposal of some round with 2/3+ precommits for it. */
  #findDecision(hs: HeightState<B>): { record: ProposalRecord<B>; round: number } | undefined {
    for (const round of hs.votes.rounds()) {
      const precommits = hs.votes.peek(round, 'precommit')
      if (precommits === undefined || !precommits.hasQuorumAny()) continue
      for (const blockId of precommits.quorumValues()) {
        if (blockId === null) continue
        const key = blockKey(blockId)
        const record = hs.records(round).find((r) => r.valid && r.candidate.key === key)
        if (record !== undefined) return { record, round }
      }
    }
    return undefined
  }

  /** Rule 1. */
  async #startRound(round: number): Promise<void> {
    const hs = this.#hs
    hs.round = round
    hs.startedAt ??= this.#clock.now()
    this.#setStep(hs, 'propose')
    this.#scheduleTimeout(hs, 'propose', round)
    const privval = this.#privval
    if (privval === undefined || this.#proposer(hs, round).did !== privval.did) return
    let candidate = hs.validValue
    const validRound = candidate === undefined ? -1 : hs.validRound
    if (candidate === undefined) {
      try {
        const block = await this.#app.createBlock(hs.height, round, this.lastCommit())
        candidate = this.#candidate(block, this.#app.encodeBlock(block))
      } catch (err) {
        this.#log.warn({ err: describeError(err), height: hs.height, round }, 'could not create a block to propose')
        return
      }
    }
    let proposal: Proposal
    try {
      proposal = await privval.signProposal({
        chainId: this.chainId,
        height: hs.height,
        round,
        blockId: candidate.id,
        validRound,
        proposer: privval.did,
      })
    } catch (err) {
      if (!(err instanceof DoubleSignError)) throw err
      this.#log.warn({ err: err.message }, 'private validator refused to sign a proposal')
      return
    }
    const msg: ConsensusMessage = { kind: 'proposal', proposal, block: candidate.bytes }
    const records = hs.proposals.get(round) ?? []
    records.push({ proposal, candidate, valid: true, msg })
    hs.proposals.set(round, records)
    hs.validity.set(`${candidate.key}:${round}`, true)
    hs.votes.noteSpeaker(round, privval.did)
    hs.own.push(msg)
    this.#send(msg)
    this.#sendPolka(hs, proposal)
  }

  /** With a re-proposal, the prevotes that justify its valid round (rule 3 needs them at every validator). */
  #sendPolka(hs: HeightState<B>, proposal: Proposal): void {
    if (proposal.validRound < 0) return
    const prevotes = hs.votes.peek(proposal.validRound, 'prevote')
    for (const vote of prevotes?.votesFor(proposal.blockId) ?? []) {
      if (vote.validator !== proposal.proposer) this.#send({ kind: 'vote', vote })
    }
  }

  async #vote(hs: HeightState<B>, type: VoteType, blockId: Uint8Array | null, proof?: LockProof): Promise<void> {
    const privval = this.#privval
    if (privval === undefined || findValidator(hs.set, privval.did) === undefined) return
    let vote: Vote
    try {
      const unsigned = {
        chainId: this.chainId,
        height: hs.height,
        round: hs.round,
        type,
        blockId,
        validator: privval.did,
      }
      vote = await privval.signVote(unsigned, proof)
    } catch (err) {
      if (!(err instanceof DoubleSignError)) throw err
      this.#log.warn({ err: err.message }, 'private validator refused to sign a vote')
      return
    }
    hs.votes.add(vote)
    const msg: ConsensusMessage = { kind: 'vote', vote }
    hs.own.push(msg)
    this.#send(msg)
  }

  async #decide(
    candidate: Candidate<B>,
    round: number,
    precommits: VoteSet,
    proposal: ProposalRecord<B> | undefined,
  ): Promise<void> {
    const hs = this.#hs
    hs.decided = true
    const cert: CommitCertificate = {
      height: hs.height,
      round,
      blockId: candidate.id,
      precommits: precommits.votesFor(candidate.id),
    }
    await this.#app.commit(candidate.block, cert)
    this.#log.debug({ height: hs.height, round }, 'decided')
    this.#last = {
      height: hs.height,
      round,
      blockId: candidate.id,
      set: hs.set,
      precommits,
      proposal,
      // Validators that decided with us send late precommits too; only one still talking about
      // this height a gossip interval later is really behind.
      resentAt: this.#clock.now(),
      startedAt: hs.startedAt ?? this.#clock.now(),
      endingPause: false,
    }
    for (const cancel of this.#timers) cancel()
    this.#timers.clear()
    const next = new HeightState<B>(hs.height + 1, this.#app.validatorSet(hs.height + 1), this.#quorum)
    this.#hs = next
    this.#touch(next)
    this.#setTimer(this.#timeouts.commitMs, { type: 'startHeight', height: next.height })
    // what the next height's validators said while this node was still deciding, handled now
    const held = [...this.#held.values()].filter((h) => h.height === next.height)
    this.#held.clear()
    for (const { msg, peer } of held) this.receive(msg, peer)
    this.#endPauseIfComplete()
  }

  /**
   * The commit pause collects late precommits for the certificate the next proposer carries; once
   * every validator's precommit for the decided block is in there is none left to wait for, and
   * the next height may begin before the pause ends (CometBFT's `skip_timeout_commit`) - but never
   * sooner than the commit timeout after the decided height began. That floor keeps the block
   * interval at least the commit timeout, so windows counted in blocks (settlement, FL rounds,
   * votes) keep their length in time on a fast network; a height that took longer than the
   * timeout to decide (a loaded one) is followed at once. Only on a chain that waits for work:
   * where every height starts after the pause (empty blocks), the pause is the block interval.
   */
  #endPauseIfComplete(): void {
    const last = this.#last
    const hs = this.#hs
    if (this.#options.waitForWork === undefined || last === undefined || hs.height !== last.height + 1) return
    if (last.endingPause || hs.started || hs.waiting) return
    if (last.precommits.powerFor(last.blockId) < last.set.totalPower) return
    last.endingPause = true
    const due = last.startedAt + this.#timeouts.commitMs - this.#clock.now()
    if (due > 0) this.#setTimer(due, { type: 'startHeight', height: hs.height })
    else this.#enqueue({ type: 'startHeight', height: hs.height })
  }

  // ---------------------------------------------------------------------------------------------
  // Timeouts and gossip

  async #onTimeout(kind: TimeoutKind, height: number, round: number): Promise<void> {
    const hs = this.#hs
    if (height !== hs.height || round !== hs.round || !hs.started) return
    if (kind === 'propose' && hs.step === 'propose') {
      this.#setStep(hs, 'prevote')
      await this.#vote(hs, 'prevote', null)
    } else if (kind === 'prevote' && hs.step === 'prevote') {
      this.#setStep(hs, 'precommit')
      await this.#vote(hs, 'precommit', null)
    } else if (kind === 'precommit') {
      await this.#startRound(round + 1)
    }
  }

  #scheduleTimeout(hs: HeightState<B>, kind: TimeoutKind, round: number): void {
    this.#setTimer(timeoutMs(this.#timeouts, kind, round), { type: 'timeout', kind, height: hs.height, round })
  }

  #setTimer(ms: number, event: EngineEvent<B>): void {
    if (this.#stopped) return
    const cancel = this.#clock.setTimer(ms, () => {
      this.#timers.delete(cancel)
      this.#enqueue(event)
    })
    this.#timers.add(cancel)
  }

  #setStep(hs: HeightState<B>, step: EngineStep): void {
    hs.step = step
    this.#touch(hs)
  }

  /** Progress was made: push the gossip deadline back. */
  #touch(hs: HeightState<B>): void {
    this.#gossipCancel?.()
    if (this.#stopped) return
    const height = hs.height
    this.#gossipCancel = this.#clock.setTimer(this.#timeouts.gossipMs, () => {
      this.#gossipCancel = undefined
      this.#enqueue({ type: 'gossip', height })
    })
  }

  /** No progress for a while: re-send what this node signed at this height (the network may have lost it). */
  #gossip(): void {
    const hs = this.#hs
    if (hs.waiting && hs.own.length === 0) return // idle: nothing to re-send until work wakes the height
    for (const msg of hs.own) {
      this.#send(msg)
      if (msg.kind === 'proposal') this.#sendPolka(hs, msg.proposal)
    }
    this.#touch(hs)
  }
}
