/**
 * The safetensors file format (https://github.com/huggingface/safetensors), read strictly and
 * written canonically. A file is an 8-byte little-endian header length N, N bytes of UTF-8 JSON
 * (`{ name: { dtype, shape, data_offsets: [begin, end] }, __metadata__?: { k: string } }`), then
 * the tensors' bytes, offsets relative to the end of the header.
 *
 * Reading never trusts the header: its length is bounded (<= 100 MB and within the file), every
 * entry's byte count must equal prod(shape)·size, and the entries must tile the data exactly (no
 * hole, no overlap, nothing past the end) - all checked before anything the size of a tensor is
 * allocated, so a header claiming huge shapes costs nothing.
 * Writing emits float32 only, names sorted, the header padded with spaces to a multiple of 8.
 */

import { InvalidInputError } from '../core/errors.ts'

/** A safetensors file that breaks the format or this reader's bounds. */
export class SafetensorsError extends InvalidInputError {
  static override readonly code: string = 'SAFETENSORS_INVALID'
  override name = 'SafetensorsError'
}

/** Largest header accepted (the reference implementation's bound). */
export const MAX_HEADER_BYTES = 100_000_000
/** Most dimensions a tensor may have. */
export const MAX_RANK = 16

/** Bytes per element of the dtypes the format defines. */
const DTYPE_SIZE: Readonly<Record<string, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
}

export interface SafetensorsEntry {
  dtype: string
  shape: number[]
  /** [begin, end) relative to `dataStart`. */
  offsets: [number, number]
}

export interface SafetensorsHeader {
  tensors: Record<string, SafetensorsEntry>
  metadata: Record<string, string>
  /** Offset of the data section in the file (8 + header length). */
  dataStart: number
}

export interface DecodedTensor {
  dtype: string
  shape: number[]
  data: Float32Array
}

function fail(message: string, details: Record<string, unknown> = {}): never {
  throw new SafetensorsError(message, { details })
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}

/** Parses and checks the header; the data section itself is not read. */
export function readSafetensorsHeader(bytes: Uint8Array): SafetensorsHeader {
  if (!(bytes instanceof Uint8Array)) fail('safetensors: expected bytes')
  if (bytes.length < 8) fail(`safetensors: ${bytes.length} bytes, shorter than the 8-byte header length`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const n = view.getBigUint64(0, true)
  if (n > BigInt(MAX_HEADER_BYTES))
    fail(`safetensors: header length ${n} exceeds ${MAX_HEADER_BYTES} bytes`, { headerBytes: n.toString() })
  const headerBytes = Number(n)
  if (8 + headerBytes > bytes.length) {
    fail(`safetensors: header length ${headerBytes} runs past the end of the ${bytes.length}-byte file`, {
      headerBytes,
    })
  }
  if (headerBytes < 2 || bytes[8] !== 0x7b) fail('safetensors: the header is not a JSON object')
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerBytes))
  } catch {
    fail('safetensors: the header is not valid UTF-8')
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    fail('safetensors: the header is not valid JSON')
  }
  if (!isPlainObject(parsed)) fail('safetensors: the header is not a JSON object')

  const dataStart = 8 + headerBytes
  const dataBytes = bytes.length - dataStart
  const tensors = Object.create(null) as Record<string, SafetensorsEntry>
  const metadata = Object.create(null) as Record<string, string>
  const spans: Array<{ name: string; begin: number; end: number }> = []

  for (const [name, value] of Object.entries(parsed)) {
    if (name === '__metadata__') {
      if (!isPlainObject(value)) fail('safetensors: __metadata__ is not an object')
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') fail(`safetensors: __metadata__.${k} is not a string`, { key: k })
        metadata[k] = v
      }
      continue
    }
    if (name.length === 0) fail('safetensors: a tensor has an empty name')
    if (!isPlainObject(value)) fail(`safetensors: tensor ${name}: entry is not an object`, { tensor: name })
    const { dtype, shape, data_offsets: offsets } = value
    if (typeof dtype !== 'string') fail(`safetensors: tensor ${name}: dtype is not a string`, { tensor: name })
    const size = Object.hasOwn(DTYPE_SIZE, dtype) ? DTYPE_SIZE[dtype] : undefined
    if (size === undefined)
      fail(`safetensors: tensor ${name}: unknown dtype ${JSON.stringify(dtype).slice(0, 40)}`, { tensor: name })
    if (!Array.isArray(shape) || shape.length > MAX_RANK || !shape.every(isCount)) {
      fail(`safetensors: tensor ${name}: shape must be at most ${MAX_RANK} non-negative safe integers`, {
        tensor: name,
      })
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !isCount(offsets[0]) || !isCount(offsets[1])) {
      fail(`safetensors: tensor ${name}: data_offsets must be two non-negative safe integers`, { tensor: name })
    }
    const [begin, end] = offsets as [number, number]
    if (begin > end) fail(`safetensors: tensor ${name}: data_offsets [${begin}, ${end}] are reversed`, { tensor: name })
    if (end > dataBytes) {
      fail(`safetensors: tensor ${name}: data_offsets end ${end} lies past the ${dataBytes}-byte data section`, {
        tensor: name,
      })
    }
    let count = BigInt(size)
    for (const d of shape as number[]) count *= BigInt(d)
    if (count !== BigInt(end - begin)) {
      fail(
        `safetensors: tensor ${name}: shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${count} bytes, data_offsets give ${end - begin}`,
        {
          tensor: name,
        },
      )
    }
    tensors[name] = { dtype, shape: [...(shape as number[])], offsets: [begin, end] }
    spans.push({ name, begin, end })
  }

  // The entries must tile the data section: sorted by start, each starts where the last ended.
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end)
  let cursor = 0
  for (const s of spans) {
    if (s.begin < cursor) fail(`safetensors: tensor ${s.name} overlaps the tensor before it`, { tensor: s.name })
    if (s.begin > cursor)
      fail(`safetensors: a gap of ${s.begin - cursor} bytes precedes tensor ${s.name}`, { tensor: s.name })
    cursor = s.end
  }
  if (cursor !== dataBytes)
    fail(`safetensors: ${dataBytes - cursor} bytes after the last tensor belong to none`, {
      trailing: dataBytes - cursor,
    })
  return { tensors, metadata, dataStart }
}

const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1
  const exp = (h >> 10) & 0x1f
  const frac = h & 0x3ff
  if (exp === 0) return sign * frac * 2 ** -24
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN
  return sign * (1 + frac / 1024) * 2 ** (exp - 15)
}

let halfTable: Float32Array | undefined
function halfLookup(): Float32Array {
  if (halfTable === undefined) {
    halfTable = new Float32Array(65536)
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h)
  }
  return halfTable
}

/** Decodes one entry's bytes (already bounds-checked) to float32. */
function decode(name: string, dtype: string, raw: Uint8Array): Float32Array {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength)
  if (dtype === 'F32') {
    if (LITTLE_ENDIAN) {
      // A copy into a buffer of its own (not raw.slice(): on a Node Buffer that is a view of the pool).
      const copy = new Uint8Array(raw.length)
      copy.set(raw)
      return new Float32Array(copy.buffer)
    }
    const out = new Float32Array(raw.length / 4)
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true)
    return out
  }
  if (dtype === 'F16') {
    const table = halfLookup()
    const out = new Float32Array(raw.length / 2)
    for (let i = 0; i < out.length; i++) out[i] = table[view.getUint16(2 * i, true)] as number
    return out
  }
  if (dtype === 'BF16') {
    const bits = new Uint32Array(raw.length / 2)
    for (let i = 0; i < bits.length; i++) bits[i] = view.getUint16(2 * i, true) << 16
    return new Float32Array(bits.buffer)
  }
  fail(`safetensors: tensor ${name}: dtype ${dtype} is not supported (F32, F16, BF16 only)`, { tensor: name, dtype })
}

/** Reads every tensor, decoding F32, F16 and BF16 to float32; any other dtype is refused. */
export function readSafetensors(bytes: Uint8Array): Map<string, DecodedTensor> {
  const header = readSafetensorsHeader(bytes)
  // Refuse unsupported dtypes before decoding anything.
  for (const [name, e] of Object.entries(header.tensors)) {
    if (e.dtype !== 'F32' && e.dtype !== 'F16' && e.dtype !== 'BF16') {
      fail(`safetensors: tensor ${name}: dtype ${e.dtype} is not supported (F32, F16, BF16 only)`, {
        tensor: name,
        dtype: e.dtype,
      })
    }
  }
  const out = new Map<string, DecodedTensor>()
  for (const [name, e] of Object.entries(header.tensors)) {
    const raw = bytes.subarray(header.dataStart + e.offsets[0], header.dataStart + e.offsets[1])
    out.set(name, { dtype: e.dtype, shape: e.shape, data: decode(name, e.dtype, raw) })
  }
  return out
}

/** Writes float32 tensors, names sorted, the header padded with spaces to a multiple of 8. */
export function writeSafetensors(
  tensors: Record<string, { shape: number[]; data: Float32Array }>,
  metadata?: Record<string, string>,
): Uint8Array {
  const names = Object.keys(tensors).sort()
  const header: Record<string, unknown> = {}
  if (metadata !== undefined) {
    const meta: Record<string, string> = {}
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') fail(`safetensors: metadata ${k} is not a string`, { key: k })
      meta[k] = v
    }
    if (Object.keys(meta).length > 0) header.__metadata__ = meta
  }
  let offset = 0
  for (const name of names) {
    if (name.length === 0 || name === '__metadata__') fail(`safetensors: invalid tensor name ${JSON.stringify(name)}`)
    const t = tensors[name] as { shape: number[]; data: Float32Array }
    if (!Array.isArray(t.shape) || t.shape.length > MAX_RANK || !t.shape.every(isCount)) {
      fail(`safetensors: tensor ${name}: shape must be at most ${MAX_RANK} non-negative safe integers`, {
        tensor: name,
      })
    }
    if (!(t.data instanceof Float32Array))
      fail(`safetensors: tensor ${name}: data is not a Float32Array`, { tensor: name })
    const count = t.shape.reduce((a, b) => a * b, 1)
    if (count !== t.data.length) {
      fail(
        `safetensors: tensor ${name}: shape [${t.shape.join(', ')}] holds ${count} values, data has ${t.data.length}`,
        { tensor: name },
      )
    }
    // Object.defineProperty: a tensor may be called "__proto__".
    Object.defineProperty(header, name, {
      value: { dtype: 'F32', shape: [...t.shape], data_offsets: [offset, offset + 4 * count] },
      enumerable: true,
      writable: true,
      configurable: true,
    })
    offset += 4 * count
  }
  let json = new TextEncoder().encode(JSON.stringify(header))
  const padded = Math.ceil(json.length / 8) * 8
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20)
    p.set(json)
    json = p
  }
  const out = new Uint8Array(8 + json.length + offset)
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true)
  out.set(json, 8)
  let at = 8 + json.length
  for (const name of names) {
    const data = (tensors[name] as { data: Float32Array }).data
    if (LITTLE_ENDIAN) {
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at)
    } else {
      const v = new DataView(out.buffer)
      for (let i = 0; i < data.length; i++) v.setFloat32(at + 4 * i, data[i] as number, true)
    }
    at += data.byteLength
  }
  return out
}
