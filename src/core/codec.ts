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
  // most messages are maps, arrays, integers, bytes and ASCII text: checked in one pass over the
  // bytes' heads; anything else (floats, CIDs, other text) is re-encoded and compared, as before
  if (surelyCanonical(bytes)) return value
  let again: Uint8Array
  try {
    again = dagCbor.encode(value)
  } catch (err) {
    throw new DecodeError(`dag-cbor value is not re-encodable: ${(err as Error).message}`, { cause: err })
  }
  if (!equals(again, bytes)) throw new DecodeError('dag-cbor is not in canonical form')
  return value
}

/** A map key that is a plain object's prototype slot: left to the round trip, whatever the decoder does with it. */
const PROTO_KEY = '__proto__'

/**
 * Whether `bytes`, which dag-cbor has just decoded (so well-formed, one item, no trailing bytes),
 * surely are the canonical encoding of what it decoded, for the shapes most messages have: maps
 * whose keys are ASCII text, arrays, integers, byte strings, ASCII text, booleans and null. There
 * canonical means minimal heads and map keys in dag-cbor's order (shorter first, then bytewise),
 * which is what encoding the decoded value gives back. Anything else here (a float, a tag, text
 * that is not ASCII, a key a plain object swallows, an 8-byte length) answers false: "not sure",
 * and `decode` then compares a re-encoding, as it always did. So it never accepts what the round
 * trip refuses (test: src/core/codec.test.ts, "the one-pass check and the round trip agree").
 */
function surelyCanonical(bytes: Uint8Array): boolean {
  const n = bytes.length
  let at = 0
  // per open container: items left, whether it is a map, items read, the previous key's bounds
  const left: number[] = [1]
  const isMap: boolean[] = [false]
  const read: number[] = [0]
  const keyAt: number[] = [-1]
  const keyLen: number[] = [0]
  while (left.length > 0) {
    if (at >= n) return false
    const top = left.length - 1
    const head = bytes[at++] as number
    const major = head >> 5
    const info = head & 31
    let arg: number
    if (info < 24) arg = info
    else if (info === 24) {
      if (at + 1 > n) return false
      arg = bytes[at] as number
      at += 1
      if (arg < 24) return false
    } else if (info === 25) {
      if (at + 2 > n) return false
      arg = ((bytes[at] as number) << 8) | (bytes[at + 1] as number)
      at += 2
      if (arg < 0x100) return false
    } else if (info === 26) {
      if (at + 4 > n) return false
      arg =
        (bytes[at] as number) * 0x1000000 +
        (((bytes[at + 1] as number) << 16) | ((bytes[at + 2] as number) << 8) | (bytes[at + 3] as number))
      at += 4
      if (arg < 0x10000) return false
    } else if (info === 27 && major <= 1) {
      // a 64-bit integer: minimal when its high half is not zero
      if (at + 8 > n) return false
      const high =
        (bytes[at] as number) | (bytes[at + 1] as number) | (bytes[at + 2] as number) | (bytes[at + 3] as number)
      at += 8
      if (high === 0) return false
      arg = 0
    } else return false
    const inKey = isMap[top] === true && (read[top] as number) % 2 === 0
    if (inKey && major !== 3) return false
    read[top] = (read[top] as number) + 1
    left[top] = (left[top] as number) - 1
    switch (major) {
      case 0:
      case 1:
        break
      case 2:
        if (at + arg > n) return false
        at += arg
        break
      case 3: {
        if (at + arg > n) return false
        for (let i = at; i < at + arg; i++) if ((bytes[i] as number) >= 0x80) return false
        if (inKey) {
          if (arg === PROTO_KEY.length && isProtoKey(bytes, at)) return false
          const prevAt = keyAt[top] as number
          if (prevAt >= 0 && !keyBefore(bytes, prevAt, keyLen[top] as number, at, arg)) return false
          keyAt[top] = at
          keyLen[top] = arg
        }
        at += arg
        break
      }
      case 4:
      case 5:
        if (arg > 0) {
          left.push(major === 5 ? 2 * arg : arg)
          isMap.push(major === 5)
          read.push(0)
          keyAt.push(-1)
          keyLen.push(0)
        }
        break
      case 7:
        // false, true, null; undefined, floats and other simple values are not sure
        if (info < 20 || info > 22) return false
        break
      default:
        return false // tags
    }
    while (left.length > 0 && left[left.length - 1] === 0) {
      left.pop()
      isMap.pop()
      read.pop()
      keyAt.pop()
      keyLen.pop()
    }
  }
  return at === n
}

function isProtoKey(bytes: Uint8Array, at: number): boolean {
  for (let i = 0; i < PROTO_KEY.length; i++) if (bytes[at + i] !== PROTO_KEY.charCodeAt(i)) return false
  return true
}

/** dag-cbor's key order: the shorter key first, keys of one length bytewise; equal keys are not in order. */
function keyBefore(bytes: Uint8Array, a: number, aLen: number, b: number, bLen: number): boolean {
  if (aLen !== bLen) return aLen < bLen
  for (let i = 0; i < aLen; i++) {
    const x = bytes[a + i] as number
    const y = bytes[b + i] as number
    if (x !== y) return x < y
  }
  return false
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
