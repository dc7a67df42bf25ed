/**
 * Tensors as Donghae exchanges, hashes and compares them.
 *
 * JSON form (HTTP):   { "dims": [1, 64], "type": "float32", "data": [0, 3.5, ...] }
 *                     { "dims": [1, 64], "type": "float32", "data_b64": "<base64 of the little-endian bytes>" }
 *                     (CBOR bodies: `data` may also be a byte string of the little-endian values)
 * Binary form (wire): canonical dag-cbor map { <name>: { data: <little-endian bytes>, dims, type } }
 *
 * `hashTensorMap` = sha256(binary form) is THE definition of a job's `inputsHash` and a receipt's
 * `outputHash`, so the binary form is canonical: float32 values are rounded to float32 before
 * anything else, -0 is written as +0 and every NaN as 0x7fc00000; `decodeTensorMap` refuses any
 * other spelling, so decode -> encode gives back the very same bytes.
 */
import { decode, encode } from '../core/codec.ts'
import { sha256 } from '../core/hash.ts'
import { DecodeError, InvalidInputError, type DonghaeErrorOptions } from '../core/errors.ts'

export const TENSOR_TYPES = ['float32', 'int32', 'int64', 'uint8', 'bool'] as const
export type TensorType = (typeof TENSOR_TYPES)[number]

/** The typed array behind each tensor type (`bool` is one byte per value, 0 or 1). */
export interface TensorDataTypes {
  float32: Float32Array
  int32: Int32Array
  int64: BigInt64Array
  uint8: Uint8Array
  bool: Uint8Array
}
export type TensorData = TensorDataTypes[TensorType]

/** A dense row-major tensor. `data.length` is always the product of `dims`. */
export type Tensor = { [K in TensorType]: { type: K; dims: readonly number[]; data: TensorDataTypes[K] } }[TensorType]
export type TensorMap = Record<string, Tensor>

/**
 * One named input or output of a model; `null` dims accept any size (a batch, a sequence).
 * `type` is a `TensorType` name; it is typed `string` so registry records (decoded from the
 * chain) can be passed as they are: an unknown type simply never matches.
 */
export interface TensorSpec {
  name: string
  type: string
  dims: readonly (number | null)[]
}
export type TensorSchema = readonly TensorSpec[]

/** Bounds applied to untrusted tensors (JSON bodies, wire messages). */
export interface TensorLimits {
  /** Most values across all tensors of one map. @default 4_194_304 (2^22) */
  maxElements: number
  /** Most data bytes across all tensors of one map. @default 16 MiB */
  maxBytes: number
  /** Most tensors in one map. @default 64 */
  maxTensors: number
}

/**
 * Big enough for real inputs (a 640×640 RGB float32 image is 1.2 M values, 4.9 MB) and bounded
 * by what reaches a worker: a job's inputs travel in one worker-protocol message of at most
 * 16 MiB (inference/constants.ts MAX_MESSAGE_BYTES), so larger tensors could never run.
 */
export const DEFAULT_TENSOR_LIMITS: Readonly<TensorLimits> = Object.freeze({
  maxElements: 1 << 22,
  maxBytes: 16 * 1024 * 1024,
  maxTensors: 64,
})

export interface TensorParseOptions {
  limits?: Partial<TensorLimits>
  /** Accept NaN and ±Infinity (outputs may hold them; inputs may not). @default false */
  allowNonFinite?: boolean
}

/** Most dimensions a tensor may have. */
export const MAX_RANK = 8
const MAX_NAME_LENGTH = 256
const BYTES_PER_ELEMENT: Record<TensorType, number> = { float32: 4, int32: 4, int64: 8, uint8: 1, bool: 1 }
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1
const CANONICAL_NAN_BITS = 0x7fc00000
const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n

/** A tensor or tensor map over the size limits. */
export class TensorLimitError extends InvalidInputError {
  static override readonly code: string = 'TENSOR_TOO_LARGE'
  override name = 'TensorLimitError'
}

/** Tensors that do not match a model's declared inputs or outputs (names, types, dims). */
export class TensorSchemaError extends InvalidInputError {
  static override readonly code: string = 'TENSOR_SCHEMA_MISMATCH'
  override name = 'TensorSchemaError'
}

function limitsOf(options: TensorParseOptions): TensorLimits {
  return { ...DEFAULT_TENSOR_LIMITS, ...options.limits }
}

function fail(name: string, message: string, options?: DonghaeErrorOptions): never {
  throw new InvalidInputError(`tensor ${JSON.stringify(name)}: ${message}`, options)
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array)
}

function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) < 0x20) return true
  return false
}

function checkName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_LENGTH || hasControlCharacter(name))
    throw new InvalidInputError(`tensor names must be 1-${MAX_NAME_LENGTH} characters without control characters`)
  // Assigning this key to a plain object would set its prototype instead of adding a tensor.
  if (name === '__proto__') throw new InvalidInputError('"__proto__" is not a valid tensor name')
  return name
}

function checkDims(raw: unknown, name: string): number[] {
  if (!Array.isArray(raw) || raw.length > MAX_RANK) fail(name, `dims must be an array of at most ${MAX_RANK} sizes`)
  for (const d of raw)
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)
      fail(name, `dims must be non-negative integers, got ${JSON.stringify(raw)}`)
  return [...(raw as number[])]
}

function checkType(raw: unknown, name: string): TensorType {
  if (typeof raw !== 'string' || !(TENSOR_TYPES as readonly string[]).includes(raw))
    fail(name, `type must be one of ${TENSOR_TYPES.join(', ')}, got ${JSON.stringify(raw)}`)
  return raw as TensorType
}

/** The number of values `dims` describes; over `maxElements` is a `TensorLimitError`. */
export function elementCount(dims: readonly number[], maxElements = Number.MAX_SAFE_INTEGER): number {
  let n = 1
  for (const d of dims) {
    n *= d
    if (n > maxElements)
      throw new TensorLimitError(`dims [${dims.join(',')}] exceed the limit of ${maxElements} values`, {
        details: { dims: [...dims], maxElements },
      })
  }
  return n
}

function checkSize(name: string, type: TensorType, dims: readonly number[], limits: TensorLimits): number {
  const count = elementCount(dims, limits.maxElements)
  const bytes = count * BYTES_PER_ELEMENT[type]
  if (bytes > limits.maxBytes)
    throw new TensorLimitError(
      `tensor ${JSON.stringify(name)}: ${bytes} bytes exceed the ${limits.maxBytes}-byte limit`,
      {
        details: { name, bytes, maxBytes: limits.maxBytes },
      },
    )
  return count
}

/** Builds a tensor, checking that `data` holds exactly the values `dims` describe. */
export function createTensor<K extends TensorType>(type: K, dims: readonly number[], data: TensorDataTypes[K]): Tensor {
  const checked = checkDims(dims, 'tensor')
  if (elementCount(checked) !== data.length)
    throw new InvalidInputError(`${data.length} values do not fill dims [${checked.join(',')}]`)
  return { type, dims: checked, data } as Tensor
}

// ---- JSON form ----

function jsonFloats(values: unknown[], name: string, allowNonFinite: boolean): Float32Array {
  const out = new Float32Array(values.length)
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    let x: number
    if (typeof v === 'number') x = v
    else if (allowNonFinite && (v === 'NaN' || v === 'Infinity' || v === '-Infinity')) x = Number(v)
    else fail(name, `data[${i}] must be a number, got ${JSON.stringify(v)}`)
    out[i] = x
    if (!allowNonFinite && !Number.isFinite(out[i])) fail(name, `data[${i}] = ${String(v)} is not a finite float32`)
  }
  return out
}

function jsonInts(values: unknown[], name: string, min: number, max: number): number[] {
  return values.map((v, i) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
      fail(name, `data[${i}] must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`)
    return v
  })
}

function jsonInt64(values: unknown[], name: string): BigInt64Array {
  const out = new BigInt64Array(values.length)
  for (let i = 0; i < values.length; i++) {
    const v = values[i]
    let n: bigint | undefined
    if (typeof v === 'number' && Number.isSafeInteger(v)) n = BigInt(v)
    else if (typeof v === 'string' && /^-?(0|[1-9][0-9]{0,18})$/.test(v)) n = BigInt(v)
    else if (typeof v === 'bigint') n = v
    if (n === undefined || n < INT64_MIN || n > INT64_MAX)
      fail(name, `data[${i}] must be an int64 (a safe integer or a decimal string), got ${JSON.stringify(String(v))}`)
    out[i] = n
  }
  return out
}

function jsonBools(values: unknown[], name: string): Uint8Array {
  return Uint8Array.from(values, (v, i) => {
    if (v === true || v === 1) return 1
    if (v === false || v === 0) return 0
    return fail(name, `data[${i}] must be true or false, got ${JSON.stringify(v)}`)
  })
}

function dataFromJson(type: TensorType, values: unknown[], name: string, allowNonFinite: boolean): TensorData {
  switch (type) {
    case 'float32':
      return jsonFloats(values, name, allowNonFinite)
    case 'int32':
      return Int32Array.from(jsonInts(values, name, -(2 ** 31), 2 ** 31 - 1))
    case 'int64':
      return jsonInt64(values, name)
    case 'uint8':
      return Uint8Array.from(jsonInts(values, name, 0, 255))
    case 'bool':
      return jsonBools(values, name)
  }
}

// ---- raw little-endian values (data_b64, CBOR byte strings) ----

/** The number of bytes `base64` decodes to, or -1 when no base64 string has that length. */
function base64DecodedLength(text: string): number {
  let end = text.length
  while (end > 0 && end > text.length - 2 && text.charCodeAt(end - 1) === 0x3d /* = */) end--
  if (end !== text.length && text.length % 4 !== 0) return -1 // padding, but not to a multiple of 4
  if (end % 4 === 1) return -1
  return Math.floor((end * 3) / 4)
}

const BASE64_STANDARD = /^[A-Za-z0-9+/]*={0,2}$/
const BASE64_URL = /^[A-Za-z0-9_-]*={0,2}$/

/**
 * Decodes strict base64 (standard or URL-safe alphabet, padding optional) of exactly `expected`
 * bytes. The length is checked before anything is decoded, so a string that would decode to more
 * than the dims say costs nothing.
 */
function bytesFromBase64(text: string, name: string, expected: number, type: TensorType, dims: number[]): Uint8Array {
  const length = base64DecodedLength(text)
  if (length === -1) fail(name, `data_b64 is not base64: a length of ${text.length} characters is impossible`)
  if (length !== expected)
    fail(
      name,
      `data_b64 holds ${length} bytes but ${type} [${dims.join(',')}] needs ${expected} (${expected / BYTES_PER_ELEMENT[type]} values of ${BYTES_PER_ELEMENT[type]} bytes, little-endian)`,
      { details: { name, bytes: length, expected } },
    )
  if (!BASE64_STANDARD.test(text) && !BASE64_URL.test(text))
    fail(name, 'data_b64 is not base64: it has characters outside A-Z a-z 0-9 + / (or - _) and = padding')
  const buffer = Buffer.from(text, 'base64')
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
}

/** Base64 (standard alphabet, padded) of `bytes`. */
function base64Of(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
}

/**
 * Values from little-endian bytes a client sent (data_b64, a CBOR byte string). Unlike the wire
 * form, any spelling of a float is accepted (-0 and every NaN; the canonical bytes are made when
 * the tensor is hashed), but inputs must be finite, and bools 0 or 1.
 */
function dataFromLittleEndian(type: TensorType, bytes: Uint8Array, name: string, allowNonFinite: boolean): TensorData {
  const copy = new Uint8Array(bytes.length) // aligned and owned (a Buffer's slice() would be a view)
  copy.set(bytes)
  const count = copy.length / BYTES_PER_ELEMENT[type]
  const view = new DataView(copy.buffer)
  switch (type) {
    case 'float32': {
      const out = LITTLE_ENDIAN
        ? new Float32Array(copy.buffer)
        : Float32Array.from({ length: count }, (_, i) => view.getFloat32(i * 4, true))
      if (!allowNonFinite)
        for (let i = 0; i < count; i++)
          if (!Number.isFinite(out[i])) fail(name, `data[${i}] = ${String(out[i])} is not a finite float32`)
      return out
    }
    case 'int32':
      return LITTLE_ENDIAN
        ? new Int32Array(copy.buffer)
        : Int32Array.from({ length: count }, (_, i) => view.getInt32(i * 4, true))
    case 'int64':
      return LITTLE_ENDIAN
        ? new BigInt64Array(copy.buffer)
        : BigInt64Array.from({ length: count }, (_, i) => view.getBigInt64(i * 8, true))
    case 'uint8':
      return copy
    case 'bool': {
      const bad = copy.findIndex((b) => b > 1)
      if (bad !== -1) fail(name, `data[${bad}] = ${copy[bad]} is not a bool (0 or 1)`)
      return copy
    }
  }
}

/**
 * A tensor from raw little-endian values (e.g. the body of `POST /v1/infer/{model}`), checked
 * like the JSON form: the limits, and exactly `product(dims) × size of type` bytes.
 */
export function tensorFromBytes(
  type: string,
  dims: readonly number[],
  bytes: Uint8Array,
  name: string,
  options: TensorParseOptions = {},
): Tensor {
  const checkedType = checkType(type, name)
  const checkedDims = checkDims(dims, name)
  const count = checkSize(name, checkedType, checkedDims, limitsOf(options))
  const expected = count * BYTES_PER_ELEMENT[checkedType]
  if (bytes.length !== expected)
    fail(
      name,
      `${bytes.length} bytes, but ${checkedType} [${checkedDims.join(',')}] needs ${expected} (${count} values of ${BYTES_PER_ELEMENT[checkedType]} bytes, little-endian)`,
      { details: { name, bytes: bytes.length, expected } },
    )
  return {
    type: checkedType,
    dims: checkedDims,
    data: dataFromLittleEndian(checkedType, bytes, name, options.allowNonFinite ?? false),
  } as Tensor
}

const JSON_FIELDS = ['dims', 'type', 'data', 'data_b64']

/**
 * Parses and validates the JSON form of one tensor: `{ dims, type, data: [...] }`, or
 * `{ dims, type, data_b64 }` with the little-endian bytes in base64 (standard or URL-safe), or
 * (from a CBOR body) `{ dims, type, data: <byte string> }`. float32 values are rounded to float32
 * here, so the tensor (and its hash) is what the model will actually see. Throws
 * `InvalidInputError` (or `TensorLimitError`) naming the tensor.
 */
export function tensorFromJson(raw: unknown, name: string, options: TensorParseOptions = {}): Tensor {
  if (!isRecord(raw)) fail(name, 'must be an object { dims, type, data } or { dims, type, data_b64 }')
  const extra = Object.keys(raw).filter((k) => !JSON_FIELDS.includes(k))
  if (extra.length > 0)
    fail(name, `unknown field ${JSON.stringify(extra[0])}; expected dims, type, and data or data_b64`)
  const type = checkType(raw.type, name)
  const dims = checkDims(raw.dims, name)
  const count = checkSize(name, type, dims, limitsOf(options))
  const allowNonFinite = options.allowNonFinite ?? false
  if ((raw.data === undefined) === (raw.data_b64 === undefined))
    fail(name, 'give the values in exactly one of data (an array) or data_b64 (base64 of the little-endian bytes)')
  if (raw.data_b64 !== undefined) {
    if (typeof raw.data_b64 !== 'string') fail(name, 'data_b64 must be a base64 string')
    const bytes = bytesFromBase64(raw.data_b64, name, count * BYTES_PER_ELEMENT[type], type, dims)
    return { type, dims, data: dataFromLittleEndian(type, bytes, name, allowNonFinite) } as Tensor
  }
  if (raw.data instanceof Uint8Array) return tensorFromBytes(type, dims, raw.data, name, options)
  if (!Array.isArray(raw.data)) fail(name, 'data must be a flat array of values')
  if (raw.data.length !== count)
    fail(name, `has ${raw.data.length} values but dims [${dims.join(',')}] need ${count}`, {
      details: { name, dims, values: raw.data.length },
    })
  return { type, dims, data: dataFromJson(type, raw.data, name, allowNonFinite) } as Tensor
}

/** The shortest decimal (<= 9 significant digits) that reads back to the same float32. */
function shortestFloat32(x: number): number {
  let lo = 1
  let hi = 9 // 9 significant digits always round-trip a float32
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (Math.fround(Number(x.toPrecision(mid))) === x) hi = mid
    else lo = mid + 1
  }
  const y = Number(x.toPrecision(lo))
  return Math.fround(y) === x ? y : x
}

function floatToJson(x: number): number | string {
  if (!Number.isFinite(x)) return String(x)
  return x === 0 ? 0 : shortestFloat32(x)
}

/**
 * The JSON form of a tensor. A float32 value is written as the shortest decimal that rounds back
 * to the same float32 (0.1, not 0.10000000149011612); NaN and ±Infinity become the strings "NaN",
 * "Infinity", "-Infinity"; int64 values are decimal strings (lossless); bools are true/false.
 */
export function tensorToJson(t: Tensor): { dims: number[]; type: TensorType; data: (number | string | boolean)[] } {
  let data: (number | string | boolean)[]
  if (t.type === 'float32') data = Array.from(t.data, floatToJson)
  else if (t.type === 'int64') data = Array.from(t.data, (v) => v.toString())
  else if (t.type === 'bool') data = Array.from(t.data, (v) => v !== 0)
  else data = Array.from(t.data)
  return { dims: [...t.dims], type: t.type, data }
}

/** The base64 JSON form: `{ dims, type, data_b64 }`, the canonical little-endian bytes (`tensorBytes`). */
export function tensorToB64Json(t: Tensor): { dims: number[]; type: TensorType; data_b64: string } {
  return { dims: [...t.dims], type: t.type, data_b64: base64Of(tensorBytes(t)) }
}

/** The form CBOR bodies carry: `{ dims, type, data }` with `data` the canonical little-endian bytes. */
export function tensorToBinaryJson(t: Tensor): { dims: number[]; type: TensorType; data: Uint8Array } {
  return { dims: [...t.dims], type: t.type, data: tensorBytes(t) }
}

function checkMapSize(names: string[], limits: TensorLimits): void {
  if (names.length > limits.maxTensors)
    throw new TensorLimitError(`${names.length} tensors exceed the limit of ${limits.maxTensors}`, {
      details: { tensors: names.length, maxTensors: limits.maxTensors },
    })
}

function checkTotals(map: TensorMap, limits: TensorLimits): void {
  let elements = 0
  let bytes = 0
  for (const t of Object.values(map)) {
    elements += t.data.length
    bytes += t.data.length * BYTES_PER_ELEMENT[t.type]
  }
  if (elements > limits.maxElements || bytes > limits.maxBytes)
    throw new TensorLimitError(
      `the tensors hold ${elements} values (${bytes} bytes); the limit is ${limits.maxElements} values, ${limits.maxBytes} bytes`,
      { details: { elements, bytes, maxElements: limits.maxElements, maxBytes: limits.maxBytes } },
    )
}

/** Parses `{ <name>: <tensor JSON>, ... }`, applying the limits to each tensor and to the whole map. */
export function tensorMapFromJson(raw: unknown, options: TensorParseOptions = {}): TensorMap {
  if (!isRecord(raw))
    throw new InvalidInputError('tensors must be an object { <name>: { dims, type, data | data_b64 } }')
  const limits = limitsOf(options)
  const names = Object.keys(raw)
  checkMapSize(names, limits)
  const map: TensorMap = {}
  for (const name of names) map[checkName(name)] = tensorFromJson(raw[name], name, options)
  checkTotals(map, limits)
  return map
}

export function tensorMapToJson(map: TensorMap): Record<string, ReturnType<typeof tensorToJson>> {
  return Object.fromEntries(Object.entries(map).map(([name, t]) => [name, tensorToJson(t)]))
}

// ---- binary form ----

function canonicalFloatBits(bits: number): number {
  if (bits === 0x80000000) return 0 // -0 -> +0
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x007fffff) !== 0) return CANONICAL_NAN_BITS
  return bits
}

/** The canonical little-endian bytes of a tensor's values. */
export function tensorBytes(t: Tensor): Uint8Array {
  const { data } = t
  if (t.type === 'float32') {
    const bits = new Uint32Array(data.buffer, data.byteOffset, data.length)
    const out = new Uint8Array(data.length * 4)
    const view = new DataView(out.buffer)
    for (let i = 0; i < bits.length; i++) view.setUint32(i * 4, canonicalFloatBits(bits[i]!), true)
    return out
  }
  const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  if (LITTLE_ENDIAN || BYTES_PER_ELEMENT[t.type] === 1) return raw.slice()
  const out = new Uint8Array(raw.length)
  const view = new DataView(out.buffer)
  if (t.type === 'int32') t.data.forEach((v, i) => view.setInt32(i * 4, v, true))
  else if (t.type === 'int64') t.data.forEach((v, i) => view.setBigInt64(i * 8, v, true))
  return out
}

function checkTensor(name: string, t: Tensor): void {
  if (!isRecord(t)) fail(name, 'is not a tensor')
  checkType(t.type, name)
  const dims = checkDims(t.dims, name)
  if (elementCount(dims) !== t.data.length) fail(name, `${t.data.length} values do not fill dims [${dims.join(',')}]`)
}

/** The canonical dag-cbor bytes of a tensor map: `{ <name>: { data, dims, type } }`, keys sorted by dag-cbor. */
export function encodeTensorMap(map: TensorMap): Uint8Array {
  if (!isRecord(map)) throw new InvalidInputError('tensors must be a map of name \u2192 tensor')
  const value: Record<string, unknown> = {}
  for (const [name, t] of Object.entries(map)) {
    checkName(name)
    checkTensor(name, t)
    value[name] = { data: tensorBytes(t), dims: [...t.dims], type: t.type }
  }
  return encode(value)
}

/** sha256 of `encodeTensorMap(map)`: a job's `inputsHash`, a receipt's `outputHash`. */
export function hashTensorMap(map: TensorMap): Uint8Array {
  return sha256(encodeTensorMap(map))
}

function dataFromBytes(type: TensorType, bytes: Uint8Array, name: string, allowNonFinite: boolean): TensorData {
  const copy = bytes.slice() // aligned, owned
  const view = new DataView(copy.buffer)
  const count = copy.length / BYTES_PER_ELEMENT[type]
  switch (type) {
    case 'float32': {
      const out = new Float32Array(count)
      for (let i = 0; i < count; i++) {
        const bits = view.getUint32(i * 4, true)
        if (canonicalFloatBits(bits) !== bits)
          throw new DecodeError(`tensor ${JSON.stringify(name)}: data[${i}] is -0 or a non-canonical NaN`)
        out[i] = view.getFloat32(i * 4, true)
        if (!allowNonFinite && !Number.isFinite(out[i]))
          throw new DecodeError(`tensor ${JSON.stringify(name)}: data[${i}] is not finite`)
      }
      return out
    }
    case 'int32':
      return LITTLE_ENDIAN
        ? new Int32Array(copy.buffer)
        : Int32Array.from({ length: count }, (_, i) => view.getInt32(i * 4, true))
    case 'int64':
      return LITTLE_ENDIAN
        ? new BigInt64Array(copy.buffer)
        : BigInt64Array.from({ length: count }, (_, i) => view.getBigInt64(i * 8, true))
    case 'uint8':
      return copy
    case 'bool':
      if (copy.some((b) => b > 1)) throw new DecodeError(`tensor ${JSON.stringify(name)}: bool values must be 0 or 1`)
      return copy
  }
}

function tensorFromWire(name: string, raw: unknown, limits: TensorLimits, allowNonFinite: boolean): Tensor {
  if (!isRecord(raw)) throw new DecodeError(`tensor ${JSON.stringify(name)} must be a map { data, dims, type }`)
  const keys = Object.keys(raw).sort().join(',')
  if (keys !== 'data,dims,type')
    throw new DecodeError(`tensor ${JSON.stringify(name)} fields must be exactly data, dims, type`)
  let type: TensorType
  let dims: number[]
  try {
    type = checkType(raw.type, name)
    dims = checkDims(raw.dims, name)
  } catch (err) {
    throw new DecodeError((err as Error).message, { cause: err })
  }
  const count = checkSize(name, type, dims, limits)
  if (!(raw.data instanceof Uint8Array) || raw.data.length !== count * BYTES_PER_ELEMENT[type])
    throw new DecodeError(`tensor ${JSON.stringify(name)}: data must be ${count * BYTES_PER_ELEMENT[type]} bytes`)
  return { type, dims, data: dataFromBytes(type, raw.data, name, allowNonFinite) } as Tensor
}

/**
 * Decodes the binary form, accepting only canonical bytes (so `hashTensorMap(decodeTensorMap(b))`
 * equals `sha256(b)`). Structure errors are `DecodeError`s; size errors `TensorLimitError`s.
 */
export function decodeTensorMap(bytes: Uint8Array, options: TensorParseOptions = {}): TensorMap {
  const limits = limitsOf(options)
  // Room for the map's own structure (names, dims, type strings) on top of the data bytes.
  const overhead = 1024 + limits.maxTensors * (MAX_NAME_LENGTH + 128)
  const raw = decode(bytes, { maxBytes: limits.maxBytes + overhead })
  if (!isRecord(raw)) throw new DecodeError('a tensor map must be a dag-cbor map')
  const names = Object.keys(raw)
  checkMapSize(names, limits)
  const map: TensorMap = {}
  for (const name of names) {
    try {
      checkName(name)
    } catch (err) {
      throw new DecodeError((err as Error).message, { cause: err })
    }
    map[name] = tensorFromWire(name, raw[name], limits, options.allowNonFinite ?? false)
  }
  checkTotals(map, limits)
  return map
}

// ---- schemas ----

/** `float32 [N,64]`: how errors print a type and shape (`N` for a free dim). */
export function formatSpec(type: string, dims: readonly (number | null)[]): string {
  return `${type} [${dims.map((d) => (d === null ? 'N' : String(d))).join(',')}]`
}

function fitsDims(dims: readonly number[], expected: readonly (number | null)[]): boolean {
  return dims.length === expected.length && expected.every((e, i) => e === null || e === dims[i])
}

/**
 * Checks tensors against a model's declared inputs (or outputs): every declared name present,
 * no other names, types equal, dims equal where the schema fixes them. Throws `TensorSchemaError`,
 * e.g. `input "input": expected float32 [N,64], got float32 [1,63]`.
 */
export function checkAgainstSchema(map: TensorMap, schema: TensorSchema, role: 'input' | 'output' = 'input'): void {
  const declared = new Map(schema.map((s) => [s.name, s]))
  const list = schema.map((s) => `"${s.name}" (${formatSpec(s.type, s.dims)})`).join(', ')
  for (const name of Object.keys(map))
    if (!declared.has(name))
      throw new TensorSchemaError(`unknown ${role} ${JSON.stringify(name)}; the model's ${role}s are ${list}`, {
        details: { name, role },
      })
  for (const spec of schema) {
    const t = map[spec.name]
    if (t === undefined)
      throw new TensorSchemaError(
        `missing ${role} ${JSON.stringify(spec.name)} (${formatSpec(spec.type, spec.dims)})`,
        {
          details: { name: spec.name, role },
        },
      )
    if (t.type !== spec.type || !fitsDims(t.dims, spec.dims)) {
      const expected = formatSpec(spec.type, spec.dims)
      const got = formatSpec(t.type, t.dims)
      throw new TensorSchemaError(`${role} ${JSON.stringify(spec.name)}: expected ${expected}, got ${got}`, {
        details: { name: spec.name, role, expected, got },
      })
    }
  }
}

// ---- comparison (audits across execution providers) ----

export interface Tolerance {
  /** Largest allowed absolute difference of any value, in millionths (1000 = 0.001). */
  maxAbsPpm: number
  /** Also require the same arg-max along the last axis of every row. */
  top1: boolean
}

export interface Comparison {
  /** Largest absolute difference (Infinity when shapes or types differ, or a NaN meets a number). */
  maxAbs: number
  /** Every row's arg-max agrees (near-ties within the tolerance count as agreeing; see `compareTensors`). */
  top1Agree: boolean
  /** Within tolerance: `maxAbs <= maxAbsPpm/1e6` and, when `tolerance.top1`, `top1Agree`. */
  ok: boolean
}

function valueAt(t: Tensor, i: number): number {
  return Number(t.data[i]!)
}

function absDiff(x: number, y: number): number {
  if (Number.isNaN(x) || Number.isNaN(y)) return Number.isNaN(x) && Number.isNaN(y) ? 0 : Infinity
  if (x === y) return 0 // equal infinities
  return Math.abs(x - y)
}

function argMax(t: Tensor, start: number, length: number): number {
  let best = start
  for (let i = start + 1; i < start + length; i++) if (valueAt(t, i) > valueAt(t, best)) best = i
  return best
}

/** True when rows of `a` and `b` agree on the arg-max, or both treat the two candidates as a tie. */
function rowAgrees(a: Tensor, b: Tensor, start: number, length: number, eps: number): boolean {
  const ia = argMax(a, start, length)
  const ib = argMax(b, start, length)
  if (ia === ib) return true
  return Math.abs(valueAt(a, ia) - valueAt(a, ib)) <= eps && Math.abs(valueAt(b, ia) - valueAt(b, ib)) <= eps
}

/**
 * Compares two results of the same job, e.g. a worker's CUDA output and an auditor's CPU output.
 * Floating-point results legitimately differ across execution providers, so the test is a
 * tolerance, not equality. A row whose top two candidates are within the tolerance of each other
 * in *both* tensors counts as agreeing on top-1: such near-ties can flip under honest float
 * differences, and an audit must not punish them.
 */
export function compareTensors(a: Tensor, b: Tensor, tolerance: Tolerance): Comparison {
  const eps = tolerance.maxAbsPpm / 1e6
  if (a.type !== b.type || a.dims.length !== b.dims.length || a.dims.some((d, i) => d !== b.dims[i]))
    return { maxAbs: Infinity, top1Agree: false, ok: false }
  let maxAbs = 0
  for (let i = 0; i < a.data.length; i++) maxAbs = Math.max(maxAbs, absDiff(valueAt(a, i), valueAt(b, i)))
  const rowLength = a.dims.length === 0 ? 1 : a.dims[a.dims.length - 1]!
  let top1Agree = true
  for (let start = 0; rowLength > 0 && start < a.data.length && top1Agree; start += rowLength)
    top1Agree = rowAgrees(a, b, start, rowLength, eps)
  return { maxAbs, top1Agree, ok: maxAbs <= eps && (!tolerance.top1 || top1Agree) }
}

/** Compares two output maps name by name; missing or extra names fail. */
export function compareTensorMaps(
  a: TensorMap,
  b: TensorMap,
  tolerance: Tolerance,
): Comparison & { byName: Record<string, Comparison> } {
  const names = new Set([...Object.keys(a), ...Object.keys(b)])
  const byName: Record<string, Comparison> = {}
  let maxAbs = 0
  let top1Agree = true
  let ok = true
  for (const name of names) {
    const x = a[name]
    const y = b[name]
    const c = x && y ? compareTensors(x, y, tolerance) : { maxAbs: Infinity, top1Agree: false, ok: false }
    byName[name] = c
    maxAbs = Math.max(maxAbs, c.maxAbs)
    top1Agree &&= c.top1Agree
    ok &&= c.ok
  }
  return { maxAbs, top1Agree, ok, byName }
}
