import { DonghaeError, type ErrorAction } from '../../core/errors.ts'

/**
 * A state proof that is malformed: bytes that are not a canonical dag-cbor proof, hashes of the
 * wrong length, more siblings than the 256-bit key space allows. A proof that is well formed but
 * does not match a root is not an error: `verifyProof` returns false.
 */
export class StateProofError extends DonghaeError {
  static override readonly code: string = 'STATE_PROOF_INVALID'
  override name = 'StateProofError'
  readonly action: ErrorAction = 'reject'
}
