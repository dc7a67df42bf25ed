/** Key and value codecs for typed buckets. Key codecs must preserve order (byte order = key order). */
import { encode, decode } from '../core/codec.ts'
import { utf8, fromUtf8, asUint8Array } from '../core/bytes.ts'
import { InvalidInputError } from '../core/errors.ts'

export interface Codec<T> {
  encode(value: T): Uint8Array
  decode(bytes: Uint8Array): T
}

export const bytesCodec: Codec<Uint8Array> = {
  encode: (value) => value,
  decode: (bytes) => asUint8Array(bytes),
}

export const utf8Codec: Codec<string> = {
  encode: (value) => utf8(value),
  decode: (bytes) => fromUtf8(bytes),
}

const MAX_UINT64 = 2n ** 64n - 1n

/** Unsigned 64-bit big-endian: numeric order equals byte order (heights, sequence numbers). */
export const uint64Codec: Codec<bigint> = {
  encode(value) {
    if (typeof value !== 'bigint' || value < 0n || value > MAX_UINT64) {
      throw new InvalidInputError('a uint64 key is a bigint in 0..2^64-1')
    }
    const out = new Uint8Array(8)
    new DataView(out.buffer).setBigUint64(0, value)
    return out
  },
  decode(bytes) {
    if (bytes.length !== 8) throw new InvalidInputError('a uint64 key is 8 bytes')
    return new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0)
  },
}

/** Values as canonical dag-cbor. The type parameter is the caller's promise about the shape. */
export function dagCborCodec<T>(): Codec<T> {
  return { encode: (value) => encode(value), decode: (bytes) => decode<T>(bytes) }
}
