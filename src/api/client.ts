/**
 * A typed client of the node's HTTP API (fetch-based; Node ≥ 18 and browsers). Answers are the
 * API's JSON as documented in schemas.ts: amounts are decimal strings (`BigInt(x)` them), bytes
 * are hex. Every failure is an `ApiError`: the API's own error answer (`code`, `reason`), or
 * `UNREACHABLE` / `TIMEOUT` / `BAD_RESPONSE` when no usable answer came back.
 */
import { toHex } from '../core/bytes.ts'
import { AbortError, InvalidInputError } from '../core/errors.ts'
import { DEFAULT_REQUEST_TIMEOUT_MS } from './constants.ts'
import { ApiError } from './errors.ts'
import type { DidRecordView, NatView, PeerView } from './net-api.ts'
import type { AccountJson, BlockJson, ProofJson, StatusJson, SubmitTxJson, TxStatusJson } from './schemas.ts'

export interface CallOptions {
  signal?: AbortSignal
}

export interface DonghaeClientOptions {
  /** Per-call limit; a call past it fails with code TIMEOUT. @default DEFAULT_REQUEST_TIMEOUT_MS */
  timeoutMs?: number
}

export class DonghaeClient {
  /** The node's base URL, without a trailing slash. */
  readonly baseUrl: string
  readonly #timeoutMs: number

  constructor(baseUrl: string, options: DonghaeClientOptions = {}) {
    let url: URL
    try {
      url = new URL(baseUrl)
    } catch {
      throw new InvalidInputError(
        `node URL ${JSON.stringify(baseUrl)} is not a URL; expected e.g. http://127.0.0.1:26657`,
      )
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new InvalidInputError(`node URL ${baseUrl} must use http or https`)
    }
    this.baseUrl = url.href.replace(/\/+$/, '')
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
  }

  status(options: CallOptions = {}): Promise<StatusJson> {
    return this.#request('GET', '/v1/status', undefined, options)
  }

  block(height: number, options: CallOptions = {}): Promise<BlockJson> {
    return this.#request('GET', `/v1/chain/blocks/${height}`, undefined, options)
  }

  account(did: string, options: CallOptions = {}): Promise<AccountJson> {
    return this.#request('GET', `/v1/accounts/${encodeURIComponent(did)}`, undefined, options)
  }

  /** Submits an encoded signed transaction (`encodeTx`); resolves once the mempool admitted it. */
  submitTx(bytes: Uint8Array, options: CallOptions = {}): Promise<SubmitTxJson> {
    return this.#request('POST', '/v1/tx', { tx: toHex(bytes) }, options)
  }

  /** Where a transaction was committed; ApiError NOT_FOUND while it is pending or unknown. */
  tx(hash: string | Uint8Array, options: CallOptions = {}): Promise<TxStatusJson> {
    const hex = typeof hash === 'string' ? hash : toHex(hash)
    return this.#request('GET', `/v1/tx/${encodeURIComponent(hex)}`, undefined, options)
  }

  proof(keyHex: string, options: CallOptions = {}): Promise<ProofJson> {
    return this.#request('GET', `/v1/state/proof?key=${encodeURIComponent(keyHex)}`, undefined, options)
  }

  /** This node's addresses, peers and NAT state. */
  net(options: CallOptions = {}): Promise<{ peerId: string; addresses: string[]; peers: PeerView[]; nat: NatView }> {
    return this.#request('GET', '/v1/net', undefined, options)
  }

  /** A DID's record in the DHT, as the node finds it. */
  didRecord(did: string, options: CallOptions = {}): Promise<DidRecordView> {
    return this.#request('GET', `/v1/did/${encodeURIComponent(did)}`, undefined, options)
  }

  async #request<T>(method: 'GET' | 'POST', path: string, body: unknown, options: CallOptions): Promise<T> {
    if (options.signal?.aborted === true) throw new AbortError()
    const url = `${this.baseUrl}${path}`
    const timeout = new AbortController()
    const timer = setTimeout(() => timeout.abort(), this.#timeoutMs)
    const signal = options.signal === undefined ? timeout.signal : AbortSignal.any([options.signal, timeout.signal])
    try {
      const response = await fetch(url, {
        method,
        signal,
        headers:
          body === undefined
            ? { accept: 'application/json' }
            : { accept: 'application/json', 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      })
      const text = await response.text()
      return this.#parse<T>(response.status, text, url)
    } catch (err) {
      if (err instanceof ApiError) throw err
      if (timeout.signal.aborted) {
        throw new ApiError({
          status: 0,
          code: 'TIMEOUT',
          message: `the node at ${this.baseUrl} did not answer ${method} ${path} within ${this.#timeoutMs} ms`,
          cause: err,
        })
      }
      if (signal.aborted) throw new AbortError(undefined, { cause: err })
      throw new ApiError({
        status: 0,
        code: 'UNREACHABLE',
        message: `cannot reach the node at ${this.baseUrl} (${networkDetail(err)})`,
        cause: err,
      })
    } finally {
      clearTimeout(timer)
    }
  }

  #parse<T>(status: number, text: string, url: string): T {
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      throw new ApiError({
        status,
        code: 'BAD_RESPONSE',
        message: `${url} answered HTTP ${status} with a body that is not JSON; is it a Donghae node?`,
      })
    }
    if (status >= 200 && status < 300) return json as T
    const error = (json as { error?: { code?: unknown; message?: unknown; reason?: unknown } } | null)?.error
    if (typeof error?.code !== 'string' || typeof error.message !== 'string') {
      throw new ApiError({
        status,
        code: 'BAD_RESPONSE',
        message: `${url} answered HTTP ${status} without a Donghae error body`,
      })
    }
    throw new ApiError({
      status,
      code: error.code,
      message: error.message,
      reason: typeof error.reason === 'string' ? error.reason : undefined,
    })
  }
}

/** The most useful line of a fetch failure: undici puts the system error in `cause`. */
function networkDetail(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause
  if (typeof cause?.code === 'string') return cause.code
  if (typeof cause?.message === 'string') return cause.message
  return err instanceof Error ? err.message : String(err)
}
