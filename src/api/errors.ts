import { DonghaeError } from '../core/errors.ts'

/** Error codes the API answers with, in `{ "error": { "code", "message", "reason"? } }`. */
export const API_ERROR_CODES = [
  'BAD_REQUEST',
  'INVALID_DID',
  'TX_REJECTED',
  'UNAUTHORIZED',
  'ORIGIN_NOT_ALLOWED',
  'FORBIDDEN',
  'NOT_FOUND',
  'REQUEST_TIMEOUT',
  'HOST_NOT_ALLOWED',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'RATE_LIMITED',
  'INFERENCE_REJECTED',
  'INFERENCE_UNAVAILABLE',
  'TOO_MANY_STREAMS',
  'INTERNAL',
] as const

/** Client-side codes for failures that never got an API answer. */
export type ClientErrorCode = 'UNREACHABLE' | 'TIMEOUT' | 'BAD_RESPONSE'

/** Something the server looked for and does not have (a block, a committed transaction). */
export class NotFoundError extends DonghaeError {
  static override readonly code: string = 'NOT_FOUND'
  override name = 'NotFoundError'
}

export interface ApiErrorInit {
  /** HTTP status, or 0 when the node did not answer. */
  status: number
  code: string
  message: string
  /** The stable machine-readable tag of a rejected transaction or DID (`stale-nonce`, `invalidDid`...). */
  reason?: string | undefined
  cause?: unknown
}

/**
 * What `DonghaeClient` throws: the API's error answer, or a failure to get one (`UNREACHABLE`,
 * `TIMEOUT`, `BAD_RESPONSE`, with status 0 or the HTTP status). Branch on `code` and `reason`.
 */
export class ApiError extends DonghaeError {
  static override readonly code: string = 'API_ERROR'
  override name = 'ApiError'
  override readonly code: string
  readonly status: number
  readonly reason: string | undefined

  constructor(init: ApiErrorInit) {
    super(init.message, { cause: init.cause, details: { status: init.status, code: init.code, reason: init.reason } })
    this.code = init.code
    this.status = init.status
    this.reason = init.reason
  }
}
