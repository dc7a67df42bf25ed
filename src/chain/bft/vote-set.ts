/**
 * Vote bookkeeping. A `VoteSet` holds the votes of one (height, round, type): each validator's
 * power counts once; a second, different vote from the same validator is duplicate-vote evidence,
 * never a vote. A `HeightVoteSet` holds every round of one height and tracks which validators
 * have sent anything in each round (for the f+1 round skip).
 *
 * Votes added here must already be verified (signature, membership, chain, height).
 */
import { equals } from '../../core/bytes.ts'
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
export type VoteNovelty = 'new' | 'same' | 'conflict' | 'conflict-known'

export type AddVoteResult =
  | { kind: 'added' }
  | { kind: 'duplicate' }
  | { kind: 'evidence'; evidence: DuplicateVoteEvidence }
  | { kind: 'ignored' }

export class VoteSet {
  readonly height: number
  readonly round: number
  readonly type: VoteType
  readonly #set: ValidatorSet
  readonly #quorum: QuorumRule
  readonly #votes = new Map<string, Vote>()
  readonly #conflicts = new Map<string, DuplicateVoteEvidence>()
  readonly #power = new Map<string, bigint>()
  #total = 0n

  constructor(height: number, round: number, type: VoteType, set: ValidatorSet, quorum: QuorumRule = twoThirdsQuorum) {
    this.height = height
    this.round = round
    this.type = type
    this.#set = set
    this.#quorum = quorum
  }

  /** Whether `vote` is new, a repeat of the held vote, or conflicts with it (cheap; no signature check). */
  novelty(vote: Vote): VoteNovelty {
    const held = this.#votes.get(vote.validator)
    if (held === undefined) return 'new'
    if (blockKey(held.blockId) === blockKey(vote.blockId)) return 'same'
    return this.#conflicts.has(vote.validator) ? 'conflict-known' : 'conflict'
  }

  /** Adds a verified vote. A different second vote from one validator becomes evidence and is not counted. */
  add(vote: Vote): AddVoteResult {
    if (vote.height !== this.height || vote.round !== this.round || vote.type !== this.type) return { kind: 'ignored' }
    const member = findValidator(this.#set, vote.validator)
    if (member === undefined) return { kind: 'ignored' }
    const held = this.#votes.get(vote.validator)
    if (held !== undefined) {
      if (blockKey(held.blockId) === blockKey(vote.blockId)) return { kind: 'duplicate' }
      if (this.#conflicts.has(vote.validator)) return { kind: 'ignored' }
      const evidence = { a: held, b: vote }
      this.#conflicts.set(vote.validator, evidence)
      return { kind: 'evidence', evidence }
    }
    this.#votes.set(vote.validator, vote)
    const key = blockKey(vote.blockId)
    this.#power.set(key, (this.#power.get(key) ?? 0n) + member.power)
    this.#total += member.power
    return { kind: 'added' }
  }

  get(validator: string): Vote | undefined {
    return this.#votes.get(validator)
  }

  /** Power of the votes for `blockId` (null: nil). */
  powerFor(blockId: Uint8Array | null): bigint {
    return this.#power.get(blockKey(blockId)) ?? 0n
  }

  /** Power of all counted votes, whatever they are for. */
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
    for (const [key, power] of this.#power) {
      if (!this.#quorum(power, this.#set.totalPower)) continue
      out.push(key === '' ? null : this.#blockIdOf(key))
    }
    return out
  }

  /** The counted votes for `blockId` (null: nil), in validator order. */
  votesFor(blockId: Uint8Array | null): Vote[] {
    return this.votes().filter((v) => (blockId === null ? v.blockId === null : isFor(v, blockId)))
  }

  /** All counted votes, in validator order. */
  votes(): Vote[] {
    const out: Vote[] = []
    for (const v of this.#set.validators) {
      const vote = this.#votes.get(v.did)
      if (vote !== undefined) out.push(vote)
    }
    return out
  }

  /** Evidence recorded in this set. */
  evidence(): DuplicateVoteEvidence[] {
    return [...this.#conflicts.values()]
  }

  #blockIdOf(key: string): Uint8Array {
    for (const vote of this.#votes.values()) if (blockKey(vote.blockId) === key) return vote.blockId as Uint8Array
    throw new Error('unreachable: a counted block id has a vote')
  }
}

function isFor(vote: Vote, blockId: Uint8Array): boolean {
  return vote.blockId !== null && equals(vote.blockId, blockId)
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
