/** The arena's errors off chain (the chain module refuses with TxError reasons, chain/module.ts). */
import { DonghaeError, InvalidInputError } from '../core/errors.ts'

/** A weights file the built-in evaluator cannot read (not an MLP exported like `mlpToOnnx`). */
export class UnsupportedModelError extends InvalidInputError {
  static override readonly code: string = 'ARENA_UNSUPPORTED_MODEL'
  override name = 'UnsupportedModelError'
}

/** Bytes that do not hash to what the chain committed to (a validation set, a weights file). */
export class CommitmentMismatchError extends DonghaeError {
  static override readonly code: string = 'ARENA_COMMITMENT_MISMATCH'
  override name = 'CommitmentMismatchError'
}

/** An external training command that failed or broke the file contract (docs/arena.md). */
export class TrainerCommandError extends DonghaeError {
  static override readonly code: string = 'ARENA_TRAINER_COMMAND'
  override name = 'TrainerCommandError'
}
