/**
 * The values the consensus engine works with, independent of the block format. Heights and
 * rounds are JS numbers; voting power is bigint (never floating point). A block is only ever
 * referred to by its id (`blockId`, opaque bytes chosen by the application).
 */
import { toHex } from '../../core/bytes.ts'
import { didFromEd25519PublicKey } from '../../identity/did-key.ts'
import { InvalidValidatorSetError } from './errors.ts'

export interface Validator {
  did: string
  publicKey: Uint8Array
  power: bigint
}

export interface ValidatorSet {
  /** Sorted by DID (UTF-16 code unit order), no duplicates, every power > 0. */
  validators: readonly Validator[]
  totalPower: bigint
}

export type VoteType = 'prevote' | 'precommit'

export interface Vote {
  chainId: string
  height: number
  round: number
  type: VoteType
  /** The block voted for, or null for a nil vote. */
  blockId: Uint8Array | null
  validator: string
  signature: Uint8Array
}

export type UnsignedVote = Omit<Vote, 'signature'>

export interface Proposal {
  chainId: string
  height: number
  round: number
  blockId: Uint8Array
  /** The round in which the proposed block got a polka, or -1 for a new block. */
  validRound: number
  proposer: string
  signature: Uint8Array
}

export type UnsignedProposal = Omit<Proposal, 'signature'>

export interface CommitCertificate {
  height: number
  round: number
  blockId: Uint8Array
  precommits: Vote[]
}

/** Two votes by one validator for one (height, round, type) with different block ids. */
export interface DuplicateVoteEvidence {
  a: Vote
  b: Vote
}

/** What travels between nodes. `block` is the application's encoding of the proposed block. */
export type ConsensusMessage =
  { kind: 'proposal'; proposal: Proposal; block: Uint8Array } | { kind: 'vote'; vote: Vote }

/** Decides whether `power` out of `total` is a quorum. The default is "more than 2/3". */
export type QuorumRule = (power: bigint, total: bigint) => boolean

/** More than 2/3 of the total power, in integer arithmetic. */
export const twoThirdsQuorum: QuorumRule = (power, total) => 3n * power > 2n * total

/** More than 1/3 of the total power: enough that at least one honest validator is among them. */
export function moreThanOneThird(power: bigint, total: bigint): boolean {
  return 3n * power > total
}

/** A key for a block id in maps: lowercase hex, and '' for nil. */
export function blockKey(blockId: Uint8Array | null): string {
  return blockId === null ? '' : toHex(blockId)
}

/**
 * Builds a validator set: sorted by DID, every DID the did:key of its public key, no duplicate
 * DIDs or keys, every power a positive bigint. Throws `InvalidValidatorSetError` otherwise.
 */
export function makeValidatorSet(list: readonly Validator[]): ValidatorSet {
  if (list.length === 0) throw new InvalidValidatorSetError('a validator set needs at least one validator')
  const seenKeys = new Set<string>()
  const validators = list.map((v) => checkValidator(v, seenKeys))
  validators.sort((a, b) => (a.did < b.did ? -1 : a.did > b.did ? 1 : 0))
  let totalPower = 0n
  for (let i = 0; i < validators.length; i++) {
    const v = validators[i] as Validator
    if (i > 0 && validators[i - 1]?.did === v.did) {
      throw new InvalidValidatorSetError(`validator ${v.did} appears twice`, { details: { did: v.did } })
    }
    totalPower += v.power
  }
  const set: ValidatorSet = Object.freeze({ validators: Object.freeze(validators), totalPower })
  return set
}

function checkValidator(v: Validator, seenKeys: Set<string>): Validator {
  if (typeof v.power !== 'bigint' || v.power <= 0n) {
    throw new InvalidValidatorSetError(`validator ${String(v.did)} must have a positive bigint power`, {
      details: { did: v.did },
    })
  }
  let did: string
  try {
    did = didFromEd25519PublicKey(v.publicKey)
  } catch (err) {
    throw new InvalidValidatorSetError(`validator ${String(v.did)} has an invalid Ed25519 public key`, { cause: err })
  }
  if (did !== v.did) {
    throw new InvalidValidatorSetError(`validator DID ${String(v.did)} is not the did:key of its public key`, {
      details: { did: v.did },
    })
  }
  const keyHex = toHex(v.publicKey)
  if (seenKeys.has(keyHex)) throw new InvalidValidatorSetError(`validator key of ${v.did} appears twice`)
  seenKeys.add(keyHex)
  return Object.freeze({ did: v.did, publicKey: Uint8Array.from(v.publicKey), power: v.power })
}

const indexes = new WeakMap<ValidatorSet, Map<string, Validator>>()

/** The member with this DID, or undefined (O(1) after the first call for a set). */
export function findValidator(set: ValidatorSet, did: string): Validator | undefined {
  let index = indexes.get(set)
  if (index === undefined) {
    index = new Map(set.validators.map((v) => [v.did, v]))
    indexes.set(set, index)
  }
  return index.get(did)
}
