/**
 * CBOR bodies of the HTTP API (`application/cbor`, RFC 8949), for tensors as byte strings instead
 * of JSON number arrays. Browser-safe (no Node imports): the client uses it too.
 *
 * Decoding is bounded before any value is built: `checkCbor` walks the item heads without
 * allocating and refuses, with a `CborBodyError` naming the offset,
 *  - a declared length (byte or text string, array, map) longer than the bytes left, so a 9-byte
 *    body claiming a 4 GiB array costs nothing;
 *  - nesting deeper than `maxDepth`, and more than `maxItems` items in all;
 *  - tags (CIDs, bignums, dates, typed arrays...), indefinite lengths, `undefined` and other
 *    simple values, map keys that are not text, integers beyond ±(2^53 - 1), and bytes after the
 *    one top-level item.
 * Only then is it decoded (@ipld/dag-cbor's decoder, which also refuses integers not written in
 * their shortest form, duplicate map keys, NaN and infinities; map key order and float widths are
 * free). What is left is plain data: objects (a `__proto__` key is an own property), arrays,
 * strings, numbers, booleans, null and byte strings. Answers are encoded as canonical dag-cbor.
 */
import * as dagCbor from '@ipld/dag-cbor'
import { InvalidInputError } from '../core/errors.ts'

export const CBOR_MEDIA_TYPE = 'application/cbor'

export interface CborLimits {
  /** Deepest nesting of arrays and maps. @default 16 */
  maxDepth: number
  /** Most items (values, keys, container heads) in the whole body. @default 4 259 840 (2^22 + 2^16) */
  maxItems: number
}

export const DEFAULT_CBOR_LIMITS: Readonly<CborLimits> = Object.freeze({ maxDepth: 16, maxItems: (1 << 22) + 65_536 })

/** A body that is not CBOR this API accepts. */
export class CborBodyError extends InvalidInputError {
  static override readonly code: string = 'BAD_CBOR'
  override name = 'CborBodyError'
}

const MAJOR_UNSIGNED = 0
const MAJOR_NEGATIVE = 1
const MAJOR_BYTES = 2
const MAJOR_TEXT = 3
const MAJOR_ARRAY = 4
const MAJOR_MAP = 5
const MAJOR_TAG = 6
/** Largest high 32 bits of a safe integer (2^53 - 1). */
const MAX_SAFE_HIGH = 0x1fffff

interface Frame {
  /** Items still to read in this array or map (a map counts keys and values). */
  left: number
  map: boolean
  /** Items read so far (in a map, even positions are keys). */
  read: number
}

function refuse(offset: number, message: string): never {
  throw new CborBodyError(`CBOR body, byte ${offset}: ${message}`)
}

/** Checks the structure of one CBOR item filling `bytes` (see the module comment); throws CborBodyError. */
export function checkCbor(bytes: Uint8Array, limits: Partial<CborLimits> = {}): void {
  const { maxDepth, maxItems } = { ...DEFAULT_CBOR_LIMITS, ...limits }
  if (bytes.length === 0) refuse(0, 'the body is empty')
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const stack: Frame[] = []
  let pos = 0
  let items = 0
  let done = false
  while (!done) {
    const at = pos
    if (pos >= bytes.length) refuse(at, 'the body ends inside an item')
    const top = stack[stack.length - 1]
    const initial = bytes[pos++] as number
    const major = initial >> 5
    const info = initial & 0x1f
    if (++items > maxItems) refuse(at, `more than ${maxItems} items`)
    if (top?.map === true && top.read % 2 === 0 && major !== MAJOR_TEXT) refuse(at, 'map keys must be text strings')
    // the argument: a count, a length or a value
    let argument: number
    if (info < 24) argument = info
    else if (info === 24 || info === 25 || info === 26 || info === 27) {
      const size = 1 << (info - 24)
      if (pos + size > bytes.length) refuse(at, 'the body ends inside an item head')
      if (info === 24) argument = view.getUint8(pos)
      else if (info === 25) argument = view.getUint16(pos)
      else if (info === 26) argument = view.getUint32(pos)
      else {
        const high = view.getUint32(pos)
        // floats (major 7) carry their bits here, not a count
        if (major !== 7 && high > MAX_SAFE_HIGH) refuse(at, 'an integer or length beyond 2^53 - 1')
        argument = high * 2 ** 32 + view.getUint32(pos + 4)
      }
      pos += size
    } else if (info === 31) refuse(at, 'indefinite-length items are not accepted')
    else refuse(at, `reserved additional information ${info}`)

    let opened: Frame | undefined
    switch (major) {
      case MAJOR_UNSIGNED:
      case MAJOR_NEGATIVE:
        break
      case MAJOR_BYTES:
      case MAJOR_TEXT:
        if (argument > bytes.length - pos)
          refuse(at, `a string of ${argument} bytes, but only ${bytes.length - pos} bytes follow`)
        pos += argument
        break
      case MAJOR_ARRAY:
      case MAJOR_MAP: {
        const count = major === MAJOR_MAP ? argument * 2 : argument
        // every item takes at least one byte
        if (count > bytes.length - pos)
          refuse(
            at,
            `${major === MAJOR_MAP ? 'a map' : 'an array'} of ${argument} items, but only ${bytes.length - pos} bytes follow`,
          )
        if (count > 0) {
          if (stack.length >= maxDepth) refuse(at, `nested deeper than ${maxDepth} levels`)
          opened = { left: count, map: major === MAJOR_MAP, read: 0 }
        }
        break
      }
      case MAJOR_TAG:
        refuse(at, `tags are not accepted (tag ${argument})`)
        break
      default:
        // major 7: false, true, null and floats only
        if (info === 20 || info === 21 || info === 22 || info === 25 || info === 26 || info === 27) break
        refuse(at, info === 23 ? 'undefined is not accepted' : `simple value ${argument} is not accepted`)
    }
    // this item is done (a container's head opens a frame whose items come next)
    if (top !== undefined) {
      top.left--
      top.read++
    }
    if (opened !== undefined) {
      stack.push(opened)
      continue
    }
    while (stack.length > 0 && (stack[stack.length - 1] as Frame).left === 0) stack.pop()
    done = stack.length === 0
  }
  if (pos !== bytes.length) refuse(pos, `${bytes.length - pos} bytes after the end of the body's item`)
}

/** Decodes a CBOR body after `checkCbor`; throws CborBodyError. */
export function decodeCbor(bytes: Uint8Array, limits: Partial<CborLimits> = {}): unknown {
  checkCbor(bytes, limits)
  try {
    return dagCbor.decode<unknown>(bytes)
  } catch (err) {
    throw new CborBodyError(`CBOR body: ${(err as Error).message.replace(/^CBOR decode error: /, '')}`, { cause: err })
  }
}

/**
 * Canonical CBOR (dag-cbor) of plain data: objects as maps with text keys, Uint8Arrays as byte
 * strings, integers as integers, other numbers as float64. No undefined, NaN or infinities.
 */
export function encodeCbor(value: unknown): Uint8Array {
  return dagCbor.encode(value)
}
