/**
 * Errors of the inference market. Each carries a `reason` the HTTP API maps to a status:
 * a client's mistake is a 4xx and nothing is charged; a network that cannot serve is a 503.
 */
import { DonghaeError } from '../core/errors.ts'

export type InferenceReason =
  | 'unknown-model'
  | 'bad-input'
  | 'oversized'
  | 'insufficient-balance'
  | 'insufficient-deposit'
  | 'not-drawn'
  | 'expired'
  | 'replayed'
  | 'bad-job'
  | 'fee-too-low'
  | 'no-worker'
  | 'busy'
  | 'failed'
  | 'not-text-model'

const STATUS: Readonly<Record<InferenceReason, number>> = {
  'unknown-model': 404,
  'bad-input': 400,
  oversized: 413,
  'insufficient-balance': 402,
  'insufficient-deposit': 402,
  'not-drawn': 403,
  expired: 400,
  replayed: 409,
  'bad-job': 400,
  'fee-too-low': 400,
  'no-worker': 503,
  busy: 503,
  failed: 502,
  'not-text-model': 400,
}

export class InferenceError extends DonghaeError {
  static override readonly code: string = 'INFERENCE_ERROR'
  override name = 'InferenceError'
  readonly reason: InferenceReason

  constructor(reason: InferenceReason, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.reason = reason
  }

  /** The HTTP status this error answers with. */
  get status(): number {
    return STATUS[this.reason]
  }
}

/** True for a reason this version knows (a peer's answer may carry anything). */
export function isInferenceReason(value: unknown): value is InferenceReason {
  return typeof value === 'string' && Object.hasOwn(STATUS, value)
}
