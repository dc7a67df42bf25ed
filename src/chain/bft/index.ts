/** chain/bft: Tendermint-style BFT consensus, independent of the block format. */
export {
  makeValidatorSet,
  findValidator,
  blockKey,
  twoThirdsQuorum,
  moreThanOneThird,
  type Validator,
  type ValidatorSet,
  type VoteType,
  type Vote,
  type UnsignedVote,
  type Proposal,
  type UnsignedProposal,
  type CommitCertificate,
  type DuplicateVoteEvidence,
  type ConsensusMessage,
  type QuorumRule,
} from './types.ts'
export {
  VOTE_SIGNING_KIND,
  PROPOSAL_SIGNING_KIND,
  voteSignBytes,
  proposalSignBytes,
  signVote,
  verifyVote,
  signProposal,
  verifyProposal,
  verifyCommit,
  checkDuplicateVoteEvidence,
  encodeConsensusMessage,
  decodeConsensusMessage,
  type Signer,
  type VerifyCommitOptions,
  type DecodeConsensusOptions,
} from './messages.ts'
export { selectProposer } from './proposer.ts'
export {
  PrivValidator,
  MemorySignStateStore,
  LevelSignStateStore,
  SIGN_STEP,
  type SignState,
  type SignStateStore,
  type SignStep,
  type SignLock,
} from './privval.ts'
export { VoteSet, HeightVoteSet, type AddVoteResult, type VoteNovelty } from './vote-set.ts'
export {
  ConsensusEngine,
  type ConsensusApp,
  type ConsensusEngineOptions,
  type EngineStatus,
  type EngineStep,
} from './engine.ts'
export {
  DEFAULT_TIMEOUTS,
  timeoutMs,
  roundTimeoutMs,
  minRoundMs,
  skippedRoundsMs,
  DEFAULT_MAX_MESSAGE_BYTES,
  type TimeoutConfig,
  type TimeoutKind,
} from './constants.ts'
export {
  ConsensusMessageError,
  InvalidCommitError,
  InvalidEvidenceError,
  DoubleSignError,
  SignStateError,
  InvalidValidatorSetError,
} from './errors.ts'
