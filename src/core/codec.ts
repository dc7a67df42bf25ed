/**
 * Canonical dag-cbor. `encode` produces the one canonical byte string for a value; `decode`
 * accepts only such strings: bytes that decode but would not re-encode to themselves
 * (non-minimal integers or lengths, unsorted or duplicate map keys, indefinite lengths,
 * short floats, undefined, trailing bytes...) are rejected with a `DecodeError`.
 */
import * as dagCbor from '@ipld/dag-cbor'
import { DecodeError, EncodeError } from './errors.ts'
import { equals } from './bytes.ts'

/** The dag-cbor multicodec code (0x71). */
export const DAG_CBOR_CODE = dagCbor.code

/** Upper bound on input size accepted by `decode` unless the caller raises it. */
export const DEFAULT_MAX_DECODE_BYTES = 16 * 1024 * 1024

export function encode(value: unknown): Uint8Array {
  try {
    return dagCbor.encode(value)
  } catch (err) {
    throw new EncodeError(`value cannot be encoded as dag-cbor: ${(err as Error).message}`, { cause: err })
  }
}

export interface DecodeOptions {
  /** Reject inputs longer than this many bytes. @default 16 MiB */
  maxBytes?: number
}

export function decode<T = unknown>(bytes: Uint8Array, options: DecodeOptions = {}): T {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_DECODE_BYTES
  if (!(bytes instanceof Uint8Array)) throw new DecodeError('expected bytes to decode')
  if (bytes.length > maxBytes) {
    throw new DecodeError(`input of ${bytes.length} bytes exceeds the ${maxBytes}-byte limit`, {
      details: { length: bytes.length, maxBytes },
    })
  }
  if (bytes.length === 0) throw new DecodeError('empty input is not dag-cbor')
  let value: T
  try {
    value = dagCbor.decode<T>(bytes)
  } catch (err) {
    throw new DecodeError(`invalid dag-cbor: ${(err as Error).message}`, { cause: err })
  }
  let again: Uint8Array
  try {
    again = dagCbor.encode(value)
  } catch (err) {
    throw new DecodeError(`dag-cbor value is not re-encodable: ${(err as Error).message}`, { cause: err })
  }
  if (!equals(again, bytes)) throw new DecodeError('dag-cbor is not in canonical form')
  return value
}

/**
 * Decodes dag-cbor this node wrote itself, or that a hash it trusts commits to (values in the
 * chain's state tree): without `decode`'s round trip through the encoder, which is most of the
 * cost of a small value. Anything from the network goes through `decode`. Throws DecodeError.
 */
export function decodeTrusted<T = unknown>(bytes: Uint8Array): T {
  try {
    return dagCbor.decode<T>(bytes)
  } catch (err) {
    throw new DecodeError(`invalid dag-cbor: ${(err as Error).message}`, { cause: err })
  }
}
