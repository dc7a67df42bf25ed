/** Typed errors of proof of history. Callers branch on the class or `code`, never on message text. */
import { DonghaeError } from '../../core/errors.ts'

/** The generator or verifier is not running (never started, or stopped while the call was pending). */
export class PohStoppedError extends DonghaeError {
  static override readonly code: string = 'POH_STOPPED'
  override name = 'PohStoppedError'
}

/** `reset()` discarded the chain a pending `record()` was writing to; record the mixin again. */
export class PohResetError extends DonghaeError {
  static override readonly code: string = 'POH_RESET'
  override name = 'PohResetError'
}

/** A PoH worker thread failed or exited on its own; `cause` holds what it reported. */
export class PohWorkerError extends DonghaeError {
  static override readonly code: string = 'POH_WORKER_FAILED'
  override name = 'PohWorkerError'
}
