/**
 * Typed errors of the expert-call network (protocol.ts, directory.ts, coordinator.ts).
 *
 * A serving node's refusals extend `TransportError`, so their stable `code` travels in the
 * refusal frame (`encodeRefusal`) and the requester's transport rejects with a typed error. A
 * malformed request is refused with core's `DecodeError` (marked `action: 'reject'`): the
 * transport penalizes the peer that sent it. Not hosting an expert, being busy or missing the
 * deadline is this node's state, not the peer's fault, and is never penalized.
 */
import { DonghaeError } from '../../core/errors.ts'
import { TransportError } from '../../core/transport.ts'

/** This node does not host the asked expert block (the requester should forget it as a host). */
export class NotHostedError extends TransportError {
  static override readonly code: string = 'EXPERT_NOT_HOSTED'
  override name = 'NotHostedError'
}

/** This node runs as many expert calls as it allows; retry elsewhere. */
export class ExpertBusyError extends TransportError {
  static override readonly code: string = 'EXPERT_BUSY'
  override name = 'ExpertBusyError'
}

/** The call's deadline passed before the expert finished. */
export class ExpertDeadlineError extends TransportError {
  static override readonly code: string = 'EXPERT_DEADLINE'
  override name = 'ExpertDeadlineError'
}

/** The local expert computation failed (weights missing, runtime error, wrong output size). */
export class ExpertRunError extends TransportError {
  static override readonly code: string = 'EXPERT_RUN_FAILED'
  override name = 'ExpertRunError'
}

/** A host answered with something that is not the expert's output (wrong size, not finite, not decodable). */
export class BadAnswerError extends DonghaeError {
  static override readonly code: string = 'EXPERT_BAD_ANSWER'
  override name = 'BadAnswerError'
}

/** Fewer than `kMin` experts of a layer answered: the generation cannot go on. */
export class TooFewExpertsError extends DonghaeError {
  static override readonly code: string = 'EXPERTS_BELOW_KMIN'
  override name = 'TooFewExpertsError'
  /** HTTP status when it ends an API request: the network cannot serve it now. */
  readonly statusCode = 503
}

/** No host of an expert could be found or reached (every replica failed, or none is known). */
export class NoHostError extends DonghaeError {
  static override readonly code: string = 'EXPERT_NO_HOST'
  override name = 'NoHostError'
  /** HTTP status when it ends an API request: the network cannot serve it now. */
  readonly statusCode = 503
}
