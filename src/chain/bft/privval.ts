/**
 * The private validator: the only thing that signs votes and proposals with a validator key.
 *
 * Before a signature leaves, it persists (height, round, step, sha256(sign-bytes), signature)
 * through a `SignStateStore`. Then it refuses (`DoubleSignError`) to sign anything at an earlier
 * (height, round, step), or a different value at the same one; the identical value gets the
 * same signature back, so a node that restarts mid-step can resend what it already sent.
 *
 * It also persists what a restarted engine needs so a crash costs neither safety nor liveness:
 * - the lock: the (height, round, blockId) of the last non-nil precommit it signed. An honest
 *   node precommits a block only when it locks on it (rule 5), so that is the lock. Without it a
 *   restarted node would forget its lock and could prevote a conflicting block, which with a few
 *   crashes plus the f faulty validators breaks safety. With it, optionally, the locked block and
 *   the prevotes that justified it (what CometBFT's WAL replay gives back): a restarted node
 *   that remembers only the lock's id can neither re-propose the block nor show others its polka,
 *   and validators locked that way can stay locked forever;
 * - every vote signed at the current height (sign-bytes and signature), which the engine re-sends
 *   after a restart: a vote that was lost in the crash can never be signed again (that would be a
 *   step back), and the other validators may need it to reach a quorum.
 */
import { equals } from '../../core/bytes.ts'
import { sha256 } from '../../core/hash.ts'
import { didFromEd25519PublicKey } from '../../identity/did-key.ts'
import { dagCborCodec, utf8Codec, type Bucket, type Store } from '../../store/index.ts'
import { DoubleSignError, SignStateError } from './errors.ts'
import {
  PROPOSAL_SIGNING_KIND,
  VOTE_SIGNING_KIND,
  proposalSignBytes,
  voteFromSignBytes,
  voteSignBytes,
  type Signer,
} from './messages.ts'
import type { Proposal, UnsignedProposal, UnsignedVote, Vote, VoteType } from './types.ts'

/** Steps in signing order within a round. */
export const SIGN_STEP = Object.freeze({ proposal: 1, prevote: 2, precommit: 3 } as const)
export type SignStep = (typeof SIGN_STEP)[keyof typeof SIGN_STEP]

export interface SignLock {
  height: number
  round: number
  blockId: Uint8Array
  /** The locked block's encoding, when the engine supplied it. */
  block?: Uint8Array
  /** The 2/3+ prevotes for the block in `round` that the lock was taken on. */
  polka?: Vote[]
}

/** What the engine hands over with a non-nil precommit so the lock survives a crash whole. */
export interface LockProof {
  block: Uint8Array
  polka: Vote[]
}

/** One signature made at the current height. */
export interface SignedRecord {
  round: number
  step: SignStep
  signBytes: Uint8Array
  signature: Uint8Array
}

export interface SignState {
  height: number
  round: number
  step: SignStep
  signBytesHash: Uint8Array
  signature: Uint8Array
  /** The last non-nil precommit signed (the validator's lock), if any. */
  lock?: SignLock
  /** Every vote and proposal signed at `height`, in signing order. */
  signed?: SignedRecord[]
}

export interface SignStateStore {
  load(): Promise<SignState | undefined>
  /** Must be durable when it resolves. */
  save(state: SignState): Promise<void>
}

export class PrivValidator {
  readonly did: string
  readonly publicKey: Uint8Array
  readonly #key: Signer
  readonly #store: SignStateStore
  #state: SignState | undefined
  #loaded = false
  #queue: Promise<unknown> = Promise.resolve()

  constructor(key: Signer, store: SignStateStore) {
    this.#key = key
    this.#store = store
    this.publicKey = key.publicKey
    this.did = didFromEd25519PublicKey(key.publicKey)
  }

  /**
   * Signs a vote (whose `validator` must be this key's DID), after persisting the sign state. A
   * non-nil precommit is a lock; `proof` (the block and its polka) is persisted with it.
   */
  signVote(unsigned: UnsignedVote, proof?: LockProof): Promise<Vote> {
    return this.#serial(async () => {
      this.#checkSigner(unsigned.validator)
      const bytes = voteSignBytes(unsigned)
      let lock: SignLock | undefined
      if (unsigned.type === 'precommit' && unsigned.blockId !== null) {
        lock = { height: unsigned.height, round: unsigned.round, blockId: Uint8Array.from(unsigned.blockId) }
        if (proof !== undefined) {
          lock.block = proof.block
          lock.polka = proof.polka
        }
      }
      const step = signStepOf(unsigned.type)
      const signature = await this.#sign(unsigned.height, unsigned.round, step, VOTE_SIGNING_KIND, bytes, lock)
      return { ...unsigned, signature }
    })
  }

  /** Signs a proposal (whose `proposer` must be this key's DID), after persisting the sign state. */
  signProposal(unsigned: UnsignedProposal): Promise<Proposal> {
    return this.#serial(async () => {
      this.#checkSigner(unsigned.proposer)
      const bytes = proposalSignBytes(unsigned)
      const step = SIGN_STEP.proposal
      const signature = await this.#sign(unsigned.height, unsigned.round, step, PROPOSAL_SIGNING_KIND, bytes, undefined)
      return { ...unsigned, signature }
    })
  }

  /** The last persisted sign state (undefined before the first signature). */
  lastSignState(): Promise<SignState | undefined> {
    return this.#serial(async () => {
      await this.#load()
      return this.#state
    })
  }

  /** The votes this key signed at `height`, for a restarted engine to count and re-send. */
  async votesAt(height: number): Promise<Vote[]> {
    const state = await this.lastSignState()
    if (state === undefined || state.height !== height) return []
    const votes: Vote[] = []
    for (const record of state.signed ?? []) {
      if (record.step !== SIGN_STEP.proposal) votes.push(voteFromSignBytes(record.signBytes, record.signature))
    }
    return votes
  }

  /** The lock persisted for `height` (the last non-nil precommit signed at that height), if any. */
  async lockAt(height: number): Promise<SignLock | undefined> {
    const lock = (await this.lastSignState())?.lock
    return lock !== undefined && lock.height === height ? lock : undefined
  }

  #checkSigner(did: string): void {
    if (did !== this.did) throw new DoubleSignError(`refusing to sign as ${did}: this private validator is ${this.did}`)
  }

  async #sign(
    height: number,
    round: number,
    step: SignStep,
    kind: string,
    bytes: Uint8Array,
    lock: SignLock | undefined,
  ): Promise<Uint8Array> {
    await this.#load()
    const hash = sha256(bytes)
    const last = this.#state
    if (last !== undefined) {
      const order = compareHrs(height, round, step, last)
      const at = { height, round, step, last: { height: last.height, round: last.round, step: last.step } }
      if (order < 0) {
        throw new DoubleSignError(
          `refusing to sign at height ${height} round ${round} step ${step}: already signed at a later step`,
          { details: at },
        )
      }
      if (order === 0) {
        if (equals(hash, last.signBytesHash)) return last.signature
        throw new DoubleSignError(
          `refusing to sign a different value at height ${height} round ${round} step ${step} (double sign)`,
          { details: at },
        )
      }
    }
    const signature = this.#key.sign(kind, bytes)
    const keptLock = lock ?? last?.lock
    const earlier = last !== undefined && last.height === height ? (last.signed ?? []) : []
    const record: SignedRecord = { round, step, signBytes: Uint8Array.from(bytes), signature }
    const next: SignState = { height, round, step, signBytesHash: hash, signature, signed: [...earlier, record] }
    if (keptLock !== undefined) next.lock = keptLock
    await this.#store.save(next)
    this.#state = next
    return signature
  }

  async #load(): Promise<void> {
    if (this.#loaded) return
    const state = await this.#store.load()
    if (state !== undefined) checkSignState(state)
    this.#state = state
    this.#loaded = true
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn)
    this.#queue = run.catch(() => undefined)
    return run
  }
}

function compareHrs(height: number, round: number, step: SignStep, last: SignState): number {
  if (height !== last.height) return height < last.height ? -1 : 1
  if (round !== last.round) return round < last.round ? -1 : 1
  return step === last.step ? 0 : step < last.step ? -1 : 1
}

function checkSignState(state: SignState): void {
  const ok =
    Number.isSafeInteger(state.height) &&
    Number.isSafeInteger(state.round) &&
    (state.step === 1 || state.step === 2 || state.step === 3) &&
    state.signBytesHash instanceof Uint8Array &&
    state.signBytesHash.length === 32 &&
    state.signature instanceof Uint8Array &&
    (state.lock === undefined || isLock(state.lock)) &&
    (state.signed === undefined ||
      (Array.isArray(state.signed) &&
        state.signed.every(
          (r) =>
            Number.isSafeInteger(r.round) &&
            (r.step === 1 || r.step === 2 || r.step === 3) &&
            r.signBytes instanceof Uint8Array &&
            r.signature instanceof Uint8Array,
        )))
  if (!ok) throw new SignStateError('the private validator sign state is malformed; refusing to sign until it is fixed')
}

function isLock(lock: SignLock): boolean {
  return (
    Number.isSafeInteger(lock.height) &&
    Number.isSafeInteger(lock.round) &&
    lock.blockId instanceof Uint8Array &&
    (lock.block === undefined || lock.block instanceof Uint8Array) &&
    (lock.polka === undefined || Array.isArray(lock.polka))
  )
}

function copyLock(lock: SignLock): SignLock {
  const out: SignLock = { height: lock.height, round: lock.round, blockId: Uint8Array.from(lock.blockId) }
  if (lock.block !== undefined) out.block = Uint8Array.from(lock.block)
  if (lock.polka !== undefined) out.polka = lock.polka.map((v) => ({ ...v }))
  return out
}

function copyState(state: SignState): SignState {
  const out: SignState = {
    height: state.height,
    round: state.round,
    step: state.step,
    signBytesHash: Uint8Array.from(state.signBytesHash),
    signature: Uint8Array.from(state.signature),
  }
  if (state.lock !== undefined) out.lock = copyLock(state.lock)
  if (state.signed !== undefined) {
    out.signed = state.signed.map((r) => ({
      round: r.round,
      step: r.step,
      signBytes: Uint8Array.from(r.signBytes),
      signature: Uint8Array.from(r.signature),
    }))
  }
  return out
}

/** Sign state in memory: for tests and the simulator, where the object itself plays the node's disk. */
export class MemorySignStateStore implements SignStateStore {
  #state: SignState | undefined
  saves = 0

  async load(): Promise<SignState | undefined> {
    return this.#state === undefined ? undefined : copyState(this.#state)
  }

  async save(state: SignState): Promise<void> {
    this.#state = copyState(state)
    this.saves++
  }
}

const SIGN_STATE_KEY = 'sign-state'
const LOCK_KEY = 'lock'

type LockHeader = Pick<SignLock, 'height' | 'round' | 'blockId'>

function sameLock(a: LockHeader | undefined, b: LockHeader | undefined): boolean {
  if (a === undefined || b === undefined) return a === b
  return a.height === b.height && a.round === b.round && equals(a.blockId, b.blockId)
}

/**
 * Sign state in the node's LevelDB (bucket 'privval'), written with fsync before a signature is
 * released. The lock's block and polka are stored under their own key and rewritten only when
 * the lock changes (in the same atomic batch), so a vote does not rewrite a whole block.
 */
export class LevelSignStateStore implements SignStateStore {
  readonly #store: Store
  readonly #bucket: Bucket<string, unknown>
  #writtenLock: LockHeader | undefined
  #lockKnown = false

  constructor(store: Store) {
    this.#store = store
    this.#bucket = store.bucket('privval', utf8Codec, dagCborCodec<unknown>())
  }

  async load(): Promise<SignState | undefined> {
    const state = (await this.#bucket.get(SIGN_STATE_KEY)) as SignState | undefined
    const lock = (await this.#bucket.get(LOCK_KEY)) as SignLock | undefined
    this.#writtenLock = lock
    this.#lockKnown = true
    if (state === undefined) return undefined
    if (state.lock !== undefined) {
      if (lock === undefined || !sameLock(state.lock, lock)) {
        throw new SignStateError('the private validator lock record does not match its sign state')
      }
      state.lock = lock
    }
    checkSignState(state)
    return state
  }

  async save(state: SignState): Promise<void> {
    if (!this.#lockKnown) await this.load()
    const batch = this.#store.batch()
    const { lock, ...rest } = copyState(state)
    const header = lock === undefined ? undefined : { height: lock.height, round: lock.round, blockId: lock.blockId }
    batch.put(this.#bucket, SIGN_STATE_KEY, header === undefined ? rest : { ...rest, lock: header })
    if (lock !== undefined && !sameLock(lock, this.#writtenLock)) batch.put(this.#bucket, LOCK_KEY, lock)
    await batch.write({ sync: true })
    if (lock !== undefined) this.#writtenLock = header
  }
}

/** The step a vote type signs at. */
export function signStepOf(type: VoteType): SignStep {
  return type === 'prevote' ? SIGN_STEP.prevote : SIGN_STEP.precommit
}
