/**
 * Errors of AI-Block (src/experts): a model's weights that do not fit its architecture, a memory
 * budget that cannot hold an expert, experts that could not be run, a validation set that does not
 * fit the model. Other modules of src/experts may add classes here.
 */
import { DonghaeError, InvalidInputError } from '../core/errors.ts'

/** Something went wrong running or serving a Mixture-of-Experts model. */
export class ExpertsError extends DonghaeError {
  static override readonly code: string = 'EXPERTS_ERROR'
  override name = 'ExpertsError'
}

/** An architecture whose numbers do not make a model (`details.field` names the field). */
export class ArchitectureError extends InvalidInputError {
  static override readonly code: string = 'EXPERTS_BAD_ARCH'
  override name = 'ArchitectureError'
}

/**
 * A weights file whose tensor is missing, unexpected or of the wrong shape:
 * `details` has `tensor`, `expected` (dims, or null when the tensor should not be there) and
 * `actual` (dims, or null when it is missing).
 */
export class WeightShapeError extends InvalidInputError {
  static override readonly code: string = 'EXPERTS_BAD_SHAPE'
  override name = 'WeightShapeError'
}

/** A memory budget that cannot hold what it must (one expert, the pinned experts). */
export class ExpertBudgetError extends InvalidInputError {
  static override readonly code: string = 'EXPERTS_BUDGET'
  override name = 'ExpertBudgetError'
}

/** Fewer experts of a layer answered than the provider needs (`details`: layer, answered, needed). */
export class ExpertUnavailableError extends ExpertsError {
  static override readonly code: string = 'EXPERTS_UNAVAILABLE'
  override name = 'ExpertUnavailableError'
}

/** A validation or training token set that does not fit the model (bad length, token outside the vocabulary). */
export class TokenSetError extends InvalidInputError {
  static override readonly code: string = 'EXPERTS_BAD_TOKENS'
  override name = 'TokenSetError'
}

/** A chunked upload used out of order, unknown, or over its size (`statusCode`: what HTTP answers). */
export class ExpertUploadError extends InvalidInputError {
  static override readonly code: string = 'EXPERTS_UPLOAD'
  override name = 'ExpertUploadError'
  readonly statusCode: 404 | 409 | 413

  constructor(statusCode: 404 | 409 | 413, message: string) {
    super(message)
    this.statusCode = statusCode
  }
}
