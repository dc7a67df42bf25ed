/** Typed errors of the BFT consensus engine. Validation errors say whether to ignore or penalize the sender. */
import { DonghaeError, type DonghaeErrorOptions, type ErrorAction } from '../../core/errors.ts'

/** A consensus message that is malformed, badly signed, from a non-member or otherwise unacceptable. */
export class ConsensusMessageError extends DonghaeError {
  static override readonly code: string = 'CONSENSUS_MESSAGE_INVALID'
  override name = 'ConsensusMessageError'
  readonly action: ErrorAction
  constructor(message: string, options: DonghaeErrorOptions & { action?: ErrorAction } = {}) {
    super(message, options)
    this.action = options.action ?? 'reject'
  }
}

/** A commit certificate that does not prove more than 2/3 of the height's voting power precommitted its block. */
export class InvalidCommitError extends DonghaeError {
  static override readonly code: string = 'INVALID_COMMIT'
  override name = 'InvalidCommitError'
  readonly action: ErrorAction = 'reject'
}

/** Duplicate-vote evidence that does not prove a validator signed two different votes for one (h, r, type). */
export class InvalidEvidenceError extends DonghaeError {
  static override readonly code: string = 'INVALID_EVIDENCE'
  override name = 'InvalidEvidenceError'
  readonly action: ErrorAction = 'reject'
}

/** The private validator refused to sign: signing would conflict with, or go back before, what it already signed. */
export class DoubleSignError extends DonghaeError {
  static override readonly code: string = 'DOUBLE_SIGN_REFUSED'
  override name = 'DoubleSignError'
}

/** The private validator's persisted state is unreadable or belongs to a different key. */
export class SignStateError extends DonghaeError {
  static override readonly code: string = 'SIGN_STATE_INVALID'
  override name = 'SignStateError'
}

/** A validator set with duplicate members, zero or negative power, or a DID that does not match its key. */
export class InvalidValidatorSetError extends DonghaeError {
  static override readonly code: string = 'INVALID_VALIDATOR_SET'
  override name = 'InvalidValidatorSetError'
}
