/**
 * Errors of the inference market. Each carries a `reason` the HTTP API maps to a status:
 * a client's mistake is a 4xx and nothing is charged; a network that cannot serve is a 503.
 */
import { DonghaeError, type DonghaeErrorOptions } from '../core/errors.ts'

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
  | 'too-large'
  | 'busy'
  | 'failed'
  | 'not-text-model'
  | 'unsafe-model'
  | 'model-limit'
  | 'not-recorded'

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
  'too-large': 503,
  busy: 503,
  failed: 502,
  'not-text-model': 400,
  'unsafe-model': 422,
  'model-limit': 502,
  // the node could not journal the receipt (its database refused the write): no answer it cannot keep
  'not-recorded': 503,
}

export class InferenceError extends DonghaeError {
  static override readonly code: string = 'INFERENCE_ERROR'
  override name = 'InferenceError'
  readonly reason: InferenceReason

  constructor(reason: InferenceReason, message: string, options?: DonghaeErrorOptions) {
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

/**
 * Which bound a model broke (see `runner/constants.ts` for the defaults):
 * - `unsafe`: the file refers to data outside itself or exceeds a structural bound (`onnx-check.ts`);
 * - `load-time`, `run-time`: its session took too long to open, or one run took too long;
 * - `memory`: its process grew past the resident-memory bound, or an allocation failed under the
 *   address-space bound;
 * - `output-size`: a run produced more bytes than a job may carry back;
 * - `crashed`: its process died (a signal, an abort, an out-of-memory kill).
 */
export type ModelLimit = 'unsafe' | 'load-time' | 'run-time' | 'memory' | 'output-size' | 'crashed'
export const MODEL_LIMITS: readonly ModelLimit[] = [
  'unsafe',
  'load-time',
  'run-time',
  'memory',
  'output-size',
  'crashed',
]

/**
 * A model broke one of the sandbox's limits. The job fails (a worker answers `model-limit`, and
 * the gateway tries another worker); the worker should mark the model bad (`BadModels`). The
 * runner has already killed and replaced the model's process when the limit required it.
 */
export class ModelLimitError extends InferenceError {
  static override readonly code: string = 'MODEL_LIMIT'
  override name = 'ModelLimitError'
  readonly limit: ModelLimit

  constructor(limit: ModelLimit, message: string, options?: DonghaeErrorOptions) {
    super(limit === 'unsafe' ? 'unsafe-model' : 'model-limit', message, {
      ...options,
      details: { ...options?.details, limit },
    })
    this.limit = limit
  }
}

/**
 * A model file refused before ONNX Runtime parses it: it carries external data (which ONNX Runtime
 * would read from the working directory), or exceeds a structural bound. `path` names the place,
 * e.g. `graph.node[3](Loop).body.initializer[0] "w"`.
 */
export class UnsafeModelError extends ModelLimitError {
  static override readonly code: string = 'UNSAFE_MODEL'
  override name = 'UnsafeModelError'
  readonly path: string

  constructor(path: string, message: string, options?: DonghaeErrorOptions) {
    super('unsafe', message, { ...options, details: { ...options?.details, path } })
    this.path = path
  }
}
