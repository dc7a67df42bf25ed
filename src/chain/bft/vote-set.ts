/**
 * Vote bookkeeping. A `VoteSet` holds the votes of one (height, round, type): each validator's
 * power counts once; a second, different vote from the same validator is duplicate-vote evidence,
 * never a vote. A `HeightVoteSet` holds every round of one height and tracks which validators
 * have sent anything in each round (for the f+1 round skip).
 *
 * Votes added here must already be verified (signature, membership, chain, height).
 */
import { fromHex } from '../../core/bytes.ts'
import {
  blockKey,
  findValidator,
  moreThanOneThird,
  twoThirdsQuorum,
  type DuplicateVoteEvidence,
  type QuorumRule,
  type ValidatorSet,
  type Vote,
  type VoteType,
} from './types.ts'

/** How a vote relates to what a set already holds, before paying for a signature check. */
export type VoteNovelty = 'new' | 'same' | 'conflict' | 'conflict-full'

export type AddVoteResult =
  | { kind: 'added' }
  | { kind: 'duplicate' }
  | { kind: 'conflict'; evidence: DuplicateVoteEvidence | undefined }
  | { kind: 'ignored' }

/** Distinct conflicting votes kept per validator (beyond its first vote): bounds an equivocator's memory. */
const MAX_CONFLICTS_PER_VALIDATOR = 3

/**
 * Counting rule. A validator's FIRST vote counts; a later different vote is recorded as evidence
 * and counts nowhere, with one exception borrowed from CometBFT (its peer "maj23" claims): once
 * someone claims that block X had a quorum here (for prevotes: a signed re-proposal of X naming
 * this round as its valid round), conflicting votes for X are added to X's tally, each validator
 * still at most once. Without that, an equivocator can show one value to some honest validators
 * and another to the rest, so that the polka one of them locked on can never be seen by the
 * others and the lock can never be released. It stays safe: two values with more than 2/3 each
 * would need more than 1/3 of the power to have voted for both, i.e. an honest double vote.
 */
export class VoteSet {
  readonly height: number
  readonly round: number
  readonly type: VoteType
  readonly #set: ValidatorSet
  readonly #quorum: QuorumRule
  readonly #votes = new Map<string, Vote>()
  readonly #conflicts = new Map<string, Vote[]>()
  readonly #evidence: DuplicateVoteEvidence[] = []
  readonly #power = new Map<string, bigint>()
  readonly #claimed = new Map<string, bigint>()
  #total = 0n

  constructor(height: number, round: number, type: VoteType, set: ValidatorSet, quorum: QuorumRule = twoThirdsQuorum) {
    this.height = height
    this.round = round
    this.type = type
    this.#set = set
    this.#quorum = quorum
  }

  /** Whether `vote` is new, a repeat, or a conflicting vote worth checking (cheap; no signature check). */
  novelty(vote: Vote): VoteNovelty {
    const held = this.#votes.get(vote.validator)
    if (held === undefined) return 'new'
    const key = blockKey(vote.blockId)
    if (blockKey(held.blockId) === key) return 'same'
    const conflicts = this.#conflicts.get(vote.validator) ?? []
    if (conflicts.some((v) => blockKey(v.blockId) === key)) return 'same'
    return conflicts.length >= MAX_CONFLICTS_PER_VALIDATOR ? 'conflict-full' : 'conflict'
  }

  /**
   * Adds a verified vote. A different later vote from the same validator is kept aside (not
   * counted unless its block is claimed) and, the first time, returned as evidence.
   */
  add(vote: Vote): AddVoteResult {
    if (vote.height !== this.height || vote.round !== this.round || vote.type !== this.type) return { kind: 'ignored' }
    const member = findValidator(this.#set, vote.validator)
    if (member === undefined) return { kind: 'ignored' }
    const novelty = this.novelty(vote)
    if (novelty === 'same') return { kind: 'duplicate' }
    if (novelty === 'conflict-full') return { kind: 'ignored' }
    const key = blockKey(vote.blockId)
    if (novelty === 'conflict') {
      const conflicts = this.#conflicts.get(vote.validator) ?? []
      conflicts.push(vote)
      this.#conflicts.set(vote.validator, conflicts)
      const claimed = this.#claimed.get(key)
      if (claimed !== undefined) this.#claimed.set(key, claimed + member.power)
      if (conflicts.length > 1) return { kind: 'conflict', evidence: undefined }
      const evidence = { a: this.#votes.get(vote.validator) as Vote, b: vote }
      this.#evidence.push(evidence)
      return { kind: 'conflict', evidence }
    }
    this.#votes.set(vote.validator, vote)
    this.#power.set(key, (this.#power.get(key) ?? 0n) + member.power)
    this.#total += member.power
    return { kind: 'added' }
  }

  /** Someone claims `blockId` had a quorum here: from now on conflicting votes for it count for it. */
  claim(blockId: Uint8Array): void {
    const key = blockKey(blockId)
    if (this.#claimed.has(key)) return
    let extra = 0n
    for (const [did, conflicts] of this.#conflicts) {
      if (conflicts.some((v) => blockKey(v.blockId) === key)) extra += findValidator(this.#set, did)?.power ?? 0n
    }
    this.#claimed.set(key, extra)
  }

  get(validator: string): Vote | undefined {
    return this.#votes.get(validator)
  }

  /** Power of the votes for `blockId` (null: nil). */
  powerFor(blockId: Uint8Array | null): bigint {
    const key = blockKey(blockId)
    return (this.#power.get(key) ?? 0n) + (this.#claimed.get(key) ?? 0n)
  }

  /** Power of all counted first votes, whatever they are for. */
  get totalVoted(): bigint {
    return this.#total
  }

  /** 2/3+ of the power voted for `blockId` (null: nil). */
  hasQuorumFor(blockId: Uint8Array | null): boolean {
    return this.#quorum(this.powerFor(blockId), this.#set.totalPower)
  }

  /** 2/3+ of the power voted, for anything. */
  hasQuorumAny(): boolean {
    return this.#quorum(this.#total, this.#set.totalPower)
  }

  /** The values (block ids, null for nil) that have a quorum. At most one unless the quorum rule is weakened. */
  quorumValues(): (Uint8Array | null)[] {
    const out: (Uint8Array | null)[] = []
    const keys = new Set([...this.#power.keys(), ...this.#claimed.keys()])
    for (const key of keys) {
      if (!this.#quorum(this.powerFor(key === '' ? null : fromKey(key)), this.#set.totalPower)) continue
      out.push(key === '' ? null : fromKey(key))
    }
    return out
  }

  /** One vote per validator for `blockId` (null: nil), claimed conflicting ones included, in validator order. */
  votesFor(blockId: Uint8Array | null): Vote[] {
    const key = blockKey(blockId)
    const claimed = this.#claimed.has(key)
    const out: Vote[] = []
    for (const v of this.#set.validators) {
      const vote = this.#votes.get(v.did)
      if (vote === undefined) continue
      if (blockKey(vote.blockId) === key) out.push(vote)
      else if (claimed) {
        const other = this.#conflicts.get(v.did)?.find((c) => blockKey(c.blockId) === key)
        if (other !== undefined) out.push(other)
      }
    }
    return out
  }

  /** All counted first votes, in validator order. */
  votes(): Vote[] {
    const out: Vote[] = []
    for (const v of this.#set.validators) {
      const vote = this.#votes.get(v.did)
      if (vote !== undefined) out.push(vote)
    }
    return out
  }

  /** Evidence recorded in this set (one per equivocating validator). */
  evidence(): DuplicateVoteEvidence[] {
    return [...this.#evidence]
  }
}

function fromKey(key: string): Uint8Array {
  return fromHex(key)
}

/** Every round's prevotes and precommits of one height, and who spoke in each round. */
export class HeightVoteSet {
  readonly height: number
  readonly set: ValidatorSet
  readonly #quorum: QuorumRule
  readonly #rounds = new Map<number, { prevote: VoteSet; precommit: VoteSet }>()
  readonly #speakers = new Map<number, { dids: Set<string>; power: bigint }>()

  constructor(height: number, set: ValidatorSet, quorum: QuorumRule = twoThirdsQuorum) {
    this.height = height
    this.set = set
    this.#quorum = quorum
  }

  /** The vote set of (round, type), created on first use. */
  votes(round: number, type: VoteType): VoteSet {
    let entry = this.#rounds.get(round)
    if (entry === undefined) {
      entry = {
        prevote: new VoteSet(this.height, round, 'prevote', this.set, this.#quorum),
        precommit: new VoteSet(this.height, round, 'precommit', this.set, this.#quorum),
      }
      this.#rounds.set(round, entry)
    }
    return entry[type]
  }

  /** The vote set of (round, type) if any vote was ever looked up or added there. */
  peek(round: number, type: VoteType): VoteSet | undefined {
    return this.#rounds.get(round)?.[type]
  }

  /** Rounds with a vote set, ascending. */
  rounds(): number[] {
    return [...this.#rounds.keys()].sort((a, b) => a - b)
  }

  /** Adds a verified vote, and counts its sender as having spoken in its round. */
  add(vote: Vote): AddVoteResult {
    const result = this.votes(vote.round, vote.type).add(vote)
    if (result.kind === 'added') this.noteSpeaker(vote.round, vote.validator)
    return result
  }

  /** Records that `did` sent a valid message (vote or proposal) in `round`. */
  noteSpeaker(round: number, did: string): void {
    const member = findValidator(this.set, did)
    if (member === undefined) return
    let entry = this.#speakers.get(round)
    if (entry === undefined) {
      entry = { dids: new Set(), power: 0n }
      this.#speakers.set(round, entry)
    }
    if (entry.dids.has(did)) return
    entry.dids.add(did)
    entry.power += member.power
  }

  /** The highest round above `round` from which validators with more than 1/3 of the power have sent messages. */
  skipTarget(round: number): number | undefined {
    let best: number | undefined
    for (const [r, entry] of this.#speakers) {
      if (r > round && (best === undefined || r > best) && moreThanOneThird(entry.power, this.set.totalPower)) best = r
    }
    return best
  }
}
