/**
 * The private validator: the only thing that signs votes and proposals with a validator key.
 *
 * Before a signature leaves, it persists (height, round, step, sha256(sign-bytes), signature)
 * through a `SignStateStore`. Then it refuses (`DoubleSignError`) to sign anything at an earlier
 * (height, round, step), or a different value at the same one; the identical value gets the
 * same signature back, so a node that restarts mid-step can resend what it already sent.
 *
 * It also persists the lock: the (height, round, blockId) of the last non-nil precommit it signed.
 * An honest node precommits a block only when it locks on it (rule 5), so that is the lock; after
 * a crash the engine restores it from here. Without it a restarted node would forget its lock and
 * could prevote a conflicting block, which with a few crashes plus the f faulty validators
 * breaks safety.
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
}

export interface SignState {
  height: number
  round: number
  step: SignStep
  signBytesHash: Uint8Array
  signature: Uint8Array
  /** The last non-nil precommit signed (the validator's lock), if any. */
  lock?: SignLock
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

  /** Signs a vote (whose `validator` must be this key's DID), after persisting the sign state. */
  signVote(unsigned: UnsignedVote): Promise<Vote> {
    return this.#serial(async () => {
      this.#checkSigner(unsigned.validator)
      const bytes = voteSignBytes(unsigned)
      const lock =
        unsigned.type === 'precommit' && unsigned.blockId !== null
          ? { height: unsigned.height, round: unsigned.round, blockId: Uint8Array.from(unsigned.blockId) }
          : undefined
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

  /** The lock persisted for `height` (the last non-nil precommit signed at that height), if any. */
  async lockAt(height: number): Promise<{ round: number; blockId: Uint8Array } | undefined> {
    const lock = (await this.lastSignState())?.lock
    return lock !== undefined && lock.height === height ? { round: lock.round, blockId: lock.blockId } : undefined
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
    const next: SignState = { height, round, step, signBytesHash: hash, signature }
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
    (state.lock === undefined ||
      (Number.isSafeInteger(state.lock.height) &&
        Number.isSafeInteger(state.lock.round) &&
        state.lock.blockId instanceof Uint8Array))
  if (!ok) throw new SignStateError('the private validator sign state is malformed; refusing to sign until it is fixed')
}

function copyState(state: SignState): SignState {
  const out: SignState = {
    height: state.height,
    round: state.round,
    step: state.step,
    signBytesHash: Uint8Array.from(state.signBytesHash),
    signature: Uint8Array.from(state.signature),
  }
  if (state.lock !== undefined) {
    out.lock = { height: state.lock.height, round: state.lock.round, blockId: Uint8Array.from(state.lock.blockId) }
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

/** Sign state in the node's LevelDB (bucket 'privval'), written with fsync before a signature is released. */
export class LevelSignStateStore implements SignStateStore {
  readonly #bucket: Bucket<string, SignState>

  constructor(store: Store) {
    this.#bucket = store.bucket('privval', utf8Codec, dagCborCodec<SignState>())
  }

  async load(): Promise<SignState | undefined> {
    const state = await this.#bucket.get(SIGN_STATE_KEY)
    if (state !== undefined) checkSignState(state)
    return state
  }

  async save(state: SignState): Promise<void> {
    await this.#bucket.put(SIGN_STATE_KEY, copyState(state), { sync: true })
  }
}

/** The step a vote type signs at. */
export function signStepOf(type: VoteType): SignStep {
  return type === 'prevote' ? SIGN_STEP.prevote : SIGN_STEP.precommit
}
