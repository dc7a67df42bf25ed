/**
 * Consensus messages: canonical sign-bytes, signing and verification of votes and proposals,
 * commit certificates, duplicate-vote evidence, and the strict wire codec.
 *
 * Sign-bytes are the canonical dag-cbor of the unsigned message, chain id included, signed under
 * the kinds `chain.vote` and `chain.proposal` (core/signing.ts): a vote for another chain, another
 * height or round, or re-read as a proposal, never verifies.
 */
import { asUint8Array, equals } from '../../core/bytes.ts'
import { decode, encode } from '../../core/codec.ts'
import { isDonghaeError } from '../../core/errors.ts'
import { verifySignature } from '../../identity/keys.ts'
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  MAX_BLOCK_ID_BYTES,
  MAX_CHAIN_ID_LENGTH,
  MAX_DID_LENGTH,
  MAX_ROUND,
} from './constants.ts'
import { ConsensusMessageError, InvalidCommitError, InvalidEvidenceError } from './errors.ts'
import {
  blockKey,
  findValidator,
  twoThirdsQuorum,
  type CommitCertificate,
  type ConsensusMessage,
  type DuplicateVoteEvidence,
  type Proposal,
  type QuorumRule,
  type UnsignedProposal,
  type UnsignedVote,
  type ValidatorSet,
  type Vote,
} from './types.ts'

export const VOTE_SIGNING_KIND = 'chain.vote'
export const PROPOSAL_SIGNING_KIND = 'chain.proposal'
const SIGNATURE_BYTES = 64

/** What signs: an `Ed25519KeyPair`, or anything shaped like one (a remote signer, a recording wrapper). */
export interface Signer {
  readonly publicKey: Uint8Array
  sign(kind: string, payload: Uint8Array): Uint8Array
}

/** The canonical bytes a vote's signature covers. */
export function voteSignBytes(vote: UnsignedVote): Uint8Array {
  return encode({
    chainId: vote.chainId,
    height: vote.height,
    round: vote.round,
    type: vote.type,
    blockId: vote.blockId,
    validator: vote.validator,
  })
}

/** The canonical bytes a proposal's signature covers. */
export function proposalSignBytes(proposal: UnsignedProposal): Uint8Array {
  return encode({
    chainId: proposal.chainId,
    height: proposal.height,
    round: proposal.round,
    blockId: proposal.blockId,
    validRound: proposal.validRound,
    proposer: proposal.proposer,
  })
}

/** Rebuilds a vote from its sign-bytes and signature (a private validator's record of what it signed). */
export function voteFromSignBytes(bytes: Uint8Array, signature: Uint8Array): Vote {
  const body = decode<Record<string, unknown>>(bytes)
  const vote = parseVote({ ...body, signature })
  if (!equals(voteSignBytes(vote), bytes)) throw new ConsensusMessageError('sign-bytes are not a vote')
  return vote
}

/** Signs a vote directly with a key. Validators should sign through a `PrivValidator`, which refuses double signs. */
export function signVote(key: Signer, unsigned: UnsignedVote): Vote {
  return { ...pickVote(unsigned), signature: key.sign(VOTE_SIGNING_KIND, voteSignBytes(unsigned)) }
}

/** Signs a proposal directly with a key (see `signVote`). */
export function signProposal(key: Signer, unsigned: UnsignedProposal): Proposal {
  return { ...pickProposal(unsigned), signature: key.sign(PROPOSAL_SIGNING_KIND, proposalSignBytes(unsigned)) }
}

/** True when `vote.signature` is `publicKey`'s signature of the vote. Never throws. */
export function verifyVote(vote: Vote, publicKey: Uint8Array): boolean {
  try {
    return verifySignature(publicKey, VOTE_SIGNING_KIND, voteSignBytes(vote), vote.signature)
  } catch {
    return false
  }
}

/** True when `proposal.signature` is `publicKey`'s signature of the proposal. Never throws. */
export function verifyProposal(proposal: Proposal, publicKey: Uint8Array): boolean {
  try {
    return verifySignature(publicKey, PROPOSAL_SIGNING_KIND, proposalSignBytes(proposal), proposal.signature)
  } catch {
    return false
  }
}

function pickVote(v: UnsignedVote): UnsignedVote {
  return {
    chainId: v.chainId,
    height: v.height,
    round: v.round,
    type: v.type,
    blockId: v.blockId,
    validator: v.validator,
  }
}

function pickProposal(p: UnsignedProposal): UnsignedProposal {
  return {
    chainId: p.chainId,
    height: p.height,
    round: p.round,
    blockId: p.blockId,
    validRound: p.validRound,
    proposer: p.proposer,
  }
}

export interface VerifyCommitOptions {
  /** Quorum rule; only tests weaken it. @default more than 2/3 */
  quorum?: QuorumRule
  /** Signature check; a cache may stand in for it. @default verifyVote */
  verifyVote?: (vote: Vote, publicKey: Uint8Array) => boolean
}

/**
 * Checks that `cert` proves its block was committed: precommits for exactly (height, round,
 * blockId) on `chainId`, from distinct members of `set` (the set of that height), every signature
 * valid, and together more than 2/3 of `set.totalPower`. Throws `InvalidCommitError` otherwise.
 */
export function verifyCommit(
  cert: CommitCertificate,
  set: ValidatorSet,
  chainId: string,
  options: VerifyCommitOptions = {},
): void {
  const fail = (message: string, details: Record<string, unknown> = {}): InvalidCommitError =>
    new InvalidCommitError(`invalid commit certificate: ${message}`, {
      details: { height: cert?.height, round: cert?.round, ...details },
    })
  if (!isInteger(cert?.height, 0) || !isInteger(cert.round, 0)) throw fail('height and round must be integers')
  if (!isBytes(cert.blockId, 1, MAX_BLOCK_ID_BYTES)) throw fail('blockId must be bytes')
  if (!Array.isArray(cert.precommits)) throw fail('precommits must be a list')
  if (cert.precommits.length > set.validators.length) throw fail('more precommits than validators')
  const verify = options.verifyVote ?? verifyVote
  const signers = new Set<string>()
  let power = 0n
  for (const [index, vote] of cert.precommits.entries()) {
    const at = { index, validator: vote?.validator }
    if (vote?.type !== 'precommit' || vote.chainId !== chainId)
      throw fail('a vote is not a precommit of this chain', at)
    if (vote.height !== cert.height || vote.round !== cert.round) {
      throw fail('a precommit is for another height or round', at)
    }
    if (!(vote.blockId instanceof Uint8Array) || !equals(vote.blockId, cert.blockId)) {
      throw fail('a precommit is for another block', at)
    }
    const member = findValidator(set, vote.validator)
    if (member === undefined) throw fail('a precommit is from a non-member', at)
    if (signers.has(vote.validator)) throw fail('a validator signed twice', at)
    if (!verify(vote, member.publicKey)) throw fail('a precommit signature is invalid', at)
    signers.add(vote.validator)
    power += member.power
  }
  if (!(options.quorum ?? twoThirdsQuorum)(power, set.totalPower)) {
    throw fail('the precommits do not carry more than 2/3 of the voting power', {
      power: power.toString(),
      totalPower: set.totalPower.toString(),
    })
  }
}

/**
 * Checks duplicate-vote evidence: two votes, both validly signed by the same member of `set`,
 * for the same (chain, height, round, type) with different block ids. Throws `InvalidEvidenceError` otherwise.
 */
export function checkDuplicateVoteEvidence(
  ev: DuplicateVoteEvidence,
  set: ValidatorSet,
  chainId: string,
  options: Pick<VerifyCommitOptions, 'verifyVote'> = {},
): void {
  const fail = (message: string): InvalidEvidenceError =>
    new InvalidEvidenceError(`invalid duplicate-vote evidence: ${message}`, {
      details: { validator: ev?.a?.validator },
    })
  const a = ev?.a
  const b = ev?.b
  if (a === undefined || b === undefined || a === null || b === null) throw fail('two votes are needed')
  if (a.validator !== b.validator) throw fail('the votes are from different validators')
  if (a.chainId !== chainId || b.chainId !== chainId) throw fail('a vote is for another chain')
  if (a.height !== b.height || a.round !== b.round || a.type !== b.type) throw fail('the votes are for different steps')
  if (!isBlockIdOrNull(a.blockId) || !isBlockIdOrNull(b.blockId)) throw fail('a block id is malformed')
  if (blockKey(a.blockId) === blockKey(b.blockId)) throw fail('the votes are for the same block')
  const member = findValidator(set, a.validator)
  if (member === undefined) throw fail('the validator is not in the set')
  const verify = options.verifyVote ?? verifyVote
  if (!verify(a, member.publicKey) || !verify(b, member.publicKey)) throw fail('a signature is invalid')
}

function isBlockIdOrNull(value: unknown): boolean {
  return value === null || isBytes(value, 1, MAX_BLOCK_ID_BYTES)
}

// ---------------------------------------------------------------------------------------------
// Wire format: canonical dag-cbor of
//   { kind: 'vote', vote: { blockId, chainId, height, round, signature, type, validator } }
//   { kind: 'proposal', proposal: { blockId, chainId, height, proposer, round, signature, validRound }, block }

export interface DecodeConsensusOptions {
  /** Refuse encodings longer than this. @default 8 MiB */
  maxBytes?: number
}

export function encodeConsensusMessage(msg: ConsensusMessage): Uint8Array {
  if (msg.kind === 'vote')
    return encode({ kind: 'vote', vote: { ...pickVote(msg.vote), signature: msg.vote.signature } })
  return encode({
    kind: 'proposal',
    proposal: { ...pickProposal(msg.proposal), signature: msg.proposal.signature },
    block: msg.block,
  })
}

/**
 * Decodes and strictly validates a consensus message. Anything else than a well-formed message
 * (not canonical dag-cbor, unknown or missing fields, wrong types, out-of-range numbers) is a
 * `ConsensusMessageError` with action 'reject'. Signatures are not checked here.
 */
export function decodeConsensusMessage(bytes: Uint8Array, options: DecodeConsensusOptions = {}): ConsensusMessage {
  let value: unknown
  try {
    value = decode(bytes, { maxBytes: options.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES })
  } catch (err) {
    throw new ConsensusMessageError(`consensus message is not canonical dag-cbor: ${(err as Error).message}`, {
      cause: err,
    })
  }
  try {
    return parseMessage(value)
  } catch (err) {
    if (isDonghaeError(err)) throw err
    // A shape check above should have caught this; keep the decoder's promise of one error type.
    throw new ConsensusMessageError('consensus message is malformed', { cause: err })
  }
}

function parseMessage(value: unknown): ConsensusMessage {
  const kind = isRecord(value) ? value.kind : undefined
  if (kind === 'vote') {
    const msg = record(value, ['kind', 'vote'], 'message')
    return { kind: 'vote', vote: parseVote(msg.vote) }
  }
  if (kind === 'proposal') {
    const msg = record(value, ['block', 'kind', 'proposal'], 'message')
    if (!(msg.block instanceof Uint8Array)) throw bad('block must be bytes')
    return { kind: 'proposal', proposal: parseProposal(msg.proposal), block: asUint8Array(msg.block) }
  }
  throw bad("message kind must be 'vote' or 'proposal'")
}

function parseVote(value: unknown): Vote {
  const v = record(value, ['blockId', 'chainId', 'height', 'round', 'signature', 'type', 'validator'], 'vote')
  if (v.type !== 'prevote' && v.type !== 'precommit') throw bad("vote type must be 'prevote' or 'precommit'")
  if (v.blockId !== null && !isBytes(v.blockId, 1, MAX_BLOCK_ID_BYTES)) {
    throw bad(`vote blockId must be null or 1..${MAX_BLOCK_ID_BYTES} bytes`)
  }
  return {
    chainId: chainIdField(v.chainId),
    height: heightField(v.height),
    round: roundField(v.round),
    type: v.type,
    blockId: v.blockId === null ? null : asUint8Array(v.blockId as Uint8Array),
    validator: didField(v.validator),
    signature: signatureField(v.signature),
  }
}

function parseProposal(value: unknown): Proposal {
  const p = record(value, ['blockId', 'chainId', 'height', 'proposer', 'round', 'signature', 'validRound'], 'proposal')
  if (!isBytes(p.blockId, 1, MAX_BLOCK_ID_BYTES)) throw bad(`proposal blockId must be 1..${MAX_BLOCK_ID_BYTES} bytes`)
  const round = roundField(p.round)
  if (!isInteger(p.validRound, -1) || (p.validRound as number) >= round) {
    throw bad('proposal validRound must be -1 or a round before the proposal round')
  }
  return {
    chainId: chainIdField(p.chainId),
    height: heightField(p.height),
    round,
    blockId: asUint8Array(p.blockId as Uint8Array),
    validRound: p.validRound as number,
    proposer: didField(p.proposer),
    signature: signatureField(p.signature),
  }
}

function bad(message: string): ConsensusMessageError {
  return new ConsensusMessageError(`malformed consensus message: ${message}`)
}

function isRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false
  const proto = Object.getPrototypeOf(value) as unknown
  return proto === Object.prototype || proto === null
}

/** A plain object with exactly these keys (sorted). */
function record(value: unknown, keys: readonly string[], what: string): Record<string, unknown> {
  if (!isRecord(value)) throw bad(`${what} must be a map`)
  const actual = Object.keys(value).sort()
  if (actual.length !== keys.length || actual.some((k, i) => k !== keys[i])) {
    throw bad(`${what} must have exactly the fields ${keys.join(', ')}`)
  }
  return value
}

function isInteger(value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max
}

function isBytes(value: unknown, min: number, max: number): value is Uint8Array {
  return value instanceof Uint8Array && value.length >= min && value.length <= max
}

function heightField(value: unknown): number {
  if (!isInteger(value, 1)) throw bad('height must be a positive safe integer')
  return value
}

function roundField(value: unknown): number {
  if (!isInteger(value, 0, MAX_ROUND)) throw bad(`round must be an integer in 0..${MAX_ROUND}`)
  return value
}

function chainIdField(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_CHAIN_ID_LENGTH) {
    throw bad(`chainId must be a string of 1..${MAX_CHAIN_ID_LENGTH} characters`)
  }
  return value
}

function didField(value: unknown): string {
  if (typeof value !== 'string' || !value.startsWith('did:key:z') || value.length > MAX_DID_LENGTH) {
    throw bad(`validator must be a did:key of at most ${MAX_DID_LENGTH} characters`)
  }
  return value
}

function signatureField(value: unknown): Uint8Array {
  if (!isBytes(value, SIGNATURE_BYTES, SIGNATURE_BYTES)) throw bad(`signature must be ${SIGNATURE_BYTES} bytes`)
  return asUint8Array(value)
}
