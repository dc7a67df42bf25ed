/**
 * Typed errors. Every error Donghae throws on purpose is a `DonghaeError` with a fixed `name`
 * and a stable `code`, so callers branch on the class or the code - never on message text.
 * Messages say what went wrong and what to do; they never contain secrets.
 */

/** What a receiver should do with the message that caused a validation error (Lodestar's IGNORE/REJECT). */
export type ErrorAction = 'ignore' | 'reject'

export interface DonghaeErrorOptions {
  cause?: unknown
  /** Structured, non-secret details for logs and API answers. */
  details?: Record<string, unknown>
}

export class DonghaeError extends Error {
  static readonly code: string = 'DONGHAE_ERROR'
  override name = 'DonghaeError'
  readonly code: string
  readonly details: Record<string, unknown>

  constructor(message: string, options: DonghaeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = (this.constructor as typeof DonghaeError).code
    this.details = options.details ?? {}
  }
}

/** Input that does not satisfy a documented shape or range. */
export class InvalidInputError extends DonghaeError {
  static override readonly code: string = 'INVALID_INPUT'
  override name = 'InvalidInputError'
}

/** Bytes that are not canonical dag-cbor (or not dag-cbor at all). */
export class DecodeError extends DonghaeError {
  static override readonly code: string = 'DECODE_ERROR'
  override name = 'DecodeError'
  readonly action: ErrorAction = 'reject'
}

/** A value that cannot be represented in dag-cbor (undefined, NaN, a class instance...). */
export class EncodeError extends DonghaeError {
  static override readonly code: string = 'ENCODE_ERROR'
  override name = 'EncodeError'
}

/** A signature that does not verify for the claimed key and kind. */
export class SignatureError extends DonghaeError {
  static override readonly code: string = 'BAD_SIGNATURE'
  override name = 'SignatureError'
  readonly action: ErrorAction = 'reject'
}

/** Configuration that fails validation; `details.key` and `details.source` say which and where. */
export class ConfigError extends DonghaeError {
  static override readonly code: string = 'CONFIG_INVALID'
  override name = 'ConfigError'
}

/** An operation was cancelled through its AbortSignal. */
export class AbortError extends DonghaeError {
  static override readonly code: string = 'ABORTED'
  override name = 'AbortError'
  constructor(message = 'the operation was aborted', options: DonghaeErrorOptions = {}) {
    super(message, options)
  }
}

export function isDonghaeError(err: unknown): err is DonghaeError {
  return err instanceof DonghaeError
}

/** A short, single-line description of any thrown value, safe for a CLI or log line. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0] ?? err.name
  return String(err)
}
