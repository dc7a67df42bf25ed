import { test } from 'node:test'
import assert from 'node:assert/strict'
import { InvalidInputError } from '../core/errors.ts'
import {
  MAX_HEADER_BYTES,
  SafetensorsError,
  readSafetensors,
  readSafetensorsHeader,
  writeSafetensors,
} from './safetensors.ts'

/** A file from a header object (or raw header text) and data bytes, as a hostile writer would make it. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), headerLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header))
  const out = new Uint8Array(8 + json.length + data.length)
  new DataView(out.buffer).setBigUint64(0, headerLength ?? BigInt(json.length), true)
  out.set(json, 8)
  out.set(data, 8 + json.length)
  return out
}

function u16(values: number[]): Uint8Array {
  const b = new Uint8Array(2 * values.length)
  const v = new DataView(b.buffer)
  values.forEach((x, i) => v.setUint16(2 * i, x, true))
  return b
}

function refused(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(
    () => readSafetensors(bytes),
    (err: unknown) => {
      assert.ok(err instanceof SafetensorsError, `expected SafetensorsError, got ${String(err)}`)
      assert.ok(err instanceof InvalidInputError)
      assert.equal(err.code, 'SAFETENSORS_INVALID')
      assert.match(err.message, pattern)
      return true
    },
  )
}

test('round trip: names sorted, header padded to 8, values exact, metadata kept', () => {
  const a = Float32Array.from({ length: 12 }, (_, i) => Math.sin(i) * 3)
  const b = Float32Array.of(1.5, -2.25, 0, Number.MIN_VALUE)
  const bytes = writeSafetensors(
    {
      'z.weight': { shape: [3, 4], data: a },
      'a.bias': { shape: [4], data: b },
      empty: { shape: [0, 5], data: new Float32Array(0) },
    },
    { format: 'pt' },
  )
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true))
  assert.equal(n % 8, 0)
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + n))
  assert.match(text, /^\{.*\} *$/)
  assert.ok(text.indexOf('"a.bias"') < text.indexOf('"empty"') && text.indexOf('"empty"') < text.indexOf('"z.weight"'))
  const header = readSafetensorsHeader(bytes)
  assert.deepEqual({ ...header.metadata }, { format: 'pt' })
  assert.equal(header.dataStart, 8 + n)
  assert.deepEqual(header.tensors['a.bias']?.offsets, [0, 16])
  const back = readSafetensors(bytes)
  assert.deepEqual([...back.keys()].sort(), ['a.bias', 'empty', 'z.weight'])
  assert.deepEqual(back.get('z.weight')?.shape, [3, 4])
  assert.equal(back.get('z.weight')?.dtype, 'F32')
  assert.deepEqual([...(back.get('z.weight')?.data ?? [])], [...a])
  assert.deepEqual([...(back.get('a.bias')?.data ?? [])], [...b])
  assert.equal(back.get('empty')?.data.length, 0)
  // Deterministic: the same tensors give the same bytes.
  assert.deepEqual(
    writeSafetensors(
      {
        'a.bias': { shape: [4], data: b },
        'z.weight': { shape: [3, 4], data: a },
        empty: { shape: [0, 5], data: new Float32Array(0) },
      },
      { format: 'pt' },
    ),
    bytes,
  )
})

test('round trip from an unaligned view, and an empty file of tensors', () => {
  const bytes = writeSafetensors({ x: { shape: [2], data: Float32Array.of(7, 8) } })
  const shifted = new Uint8Array(bytes.length + 3)
  shifted.set(bytes, 3)
  assert.deepEqual([...(readSafetensors(shifted.subarray(3)).get('x')?.data ?? [])], [7, 8])
  assert.equal(readSafetensors(writeSafetensors({})).size, 0)
  // A Node Buffer (from readFile): its slice() is a view of a shared pool; the data must not be.
  const buf = Buffer.from(bytes)
  const x = readSafetensors(buf).get('x')
  assert.equal(x?.data.length, 2)
  assert.equal(x?.data.buffer.byteLength, 8)
})

test('F16 decodes known values', () => {
  const half = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x3555, 0x0000, 0x8000, 0x7c00, 0xfc00]
  const bytes = rawFile({ h: { dtype: 'F16', shape: [half.length], data_offsets: [0, 2 * half.length] } }, u16(half))
  const t = readSafetensors(bytes).get('h')
  assert.equal(t?.dtype, 'F16')
  const d = [...(t?.data ?? [])]
  assert.deepEqual(d.slice(0, 5), [1, -2, 65504, 2 ** -24, 2 ** -14])
  assert.equal(d[5], Math.fround(0.333251953125))
  assert.ok(Object.is(d[6], 0) && Object.is(d[7], -0))
  assert.deepEqual(d.slice(8), [Infinity, -Infinity])
  const nan = readSafetensors(rawFile({ h: { dtype: 'F16', shape: [1], data_offsets: [0, 2] } }, u16([0x7e00]))).get(
    'h',
  )
  assert.ok(Number.isNaN(nan?.data[0]))
})

test('BF16 decodes known values', () => {
  const bf = [0x3f80, 0xc040, 0x4049, 0x0000, 0x7f80, 0x3e80]
  const bytes = rawFile(
    { __metadata__: { format: 'pt' }, b: { dtype: 'BF16', shape: [2, 3], data_offsets: [0, 12] } },
    u16(bf),
  )
  const t = readSafetensors(bytes).get('b')
  assert.deepEqual(t?.shape, [2, 3])
  assert.deepEqual([...(t?.data ?? [])], [1, -3, 3.140625, 0, Infinity, 0.25])
})

test('mixed dtypes in one file are each decoded', () => {
  const f32 = new Uint8Array(Float32Array.of(0.5).buffer)
  const data = new Uint8Array([...u16([0x3c00]), ...f32, ...u16([0x3f80])])
  const bytes = rawFile(
    {
      a: { dtype: 'F16', shape: [1], data_offsets: [0, 2] },
      b: { dtype: 'F32', shape: [1], data_offsets: [2, 6] },
      c: { dtype: 'BF16', shape: [], data_offsets: [6, 8] },
    },
    data,
  )
  const m = readSafetensors(bytes)
  assert.deepEqual([m.get('a')?.data[0], m.get('b')?.data[0], m.get('c')?.data[0]], [1, 0.5, 1])
})

test('malformed files are refused, each with its reason', () => {
  const four = new Uint8Array(4)
  const eight = new Uint8Array(8)
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['too short', new Uint8Array(5), /shorter than/],
    ['header length past the file', rawFile({}, new Uint8Array(0), 1000n), /past the end/],
    ['header length over the bound', rawFile({}, new Uint8Array(0), BigInt(MAX_HEADER_BYTES + 1)), /exceeds/],
    ['header length 2^64-1', rawFile({}, new Uint8Array(0), 2n ** 64n - 1n), /exceeds/],
    ['not JSON', rawFile('{nope'), /not valid JSON/],
    ['JSON array', rawFile('[1,2]'), /not a JSON object/],
    ['JSON null', rawFile('null'), /not a JSON object/],
    ['bad UTF-8', rawFile('{"?":{}}').map((b) => (b === 0x3f ? 0xff : b)), /UTF-8/],
    ['entry not an object', rawFile({ x: 3 }), /entry is not an object/],
    ['unknown dtype', rawFile({ x: { dtype: 'F7', shape: [1], data_offsets: [0, 4] } }, four), /unknown dtype/],
    ['unsupported dtype', rawFile({ x: { dtype: 'I32', shape: [1], data_offsets: [0, 4] } }, four), /not supported/],
    ['negative dim', rawFile({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, four), /shape/],
    ['fractional dim', rawFile({ x: { dtype: 'F32', shape: [1.5], data_offsets: [0, 4] } }, four), /shape/],
    ['string dim', rawFile({ x: { dtype: 'F32', shape: ['1'], data_offsets: [0, 4] } }, four), /shape/],
    ['unsafe dim', rawFile({ x: { dtype: 'F32', shape: [2 ** 60], data_offsets: [0, 4] } }, four), /shape/],
    ['shape missing', rawFile({ x: { dtype: 'F32', data_offsets: [0, 4] } }, four), /shape/],
    ['offsets missing', rawFile({ x: { dtype: 'F32', shape: [1] } }, four), /data_offsets/],
    ['three offsets', rawFile({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4, 8] } }, four), /data_offsets/],
    ['reversed offsets', rawFile({ x: { dtype: 'F32', shape: [0], data_offsets: [4, 0] } }, four), /reversed/],
    ['offsets past the data', rawFile({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, four), /past the/],
    [
      'byte count differs from the shape',
      rawFile({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, four),
      /needs 8 bytes/,
    ],
    [
      'overlap',
      rawFile(
        {
          x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
          y: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
        },
        eight,
      ),
      /overlaps/,
    ],
    ['gap', rawFile({ x: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, eight), /gap/],
    ['trailing bytes', rawFile({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, eight), /belong to none/],
    ['metadata not an object', rawFile({ __metadata__: 'x' }), /__metadata__ is not an object/],
    ['metadata value not a string', rawFile({ __metadata__: { n: 3 } }), /not a string/],
    [
      'dtype not a string',
      rawFile({ x: { dtype: 4, shape: [1], data_offsets: [0, 4] } }, four),
      /dtype is not a string/,
    ],
  ]
  for (const [label, bytes, pattern] of cases) {
    try {
      refused(bytes, pattern)
    } catch (err) {
      assert.fail(`${label}: ${String(err)}`)
    }
  }
})

test('a tensor called __proto__ is an ordinary tensor', () => {
  const bytes = rawFile(
    '{"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
    new Uint8Array(Float32Array.of(9).buffer),
  )
  const h = readSafetensorsHeader(bytes)
  assert.deepEqual(Object.keys(h.tensors), ['__proto__'])
  assert.equal(readSafetensors(bytes).get('__proto__')?.data[0], 9)
  const w = writeSafetensors({ ['__proto__']: { shape: [1], data: Float32Array.of(2) } } as Record<
    string,
    { shape: number[]; data: Float32Array }
  >)
  assert.equal(readSafetensors(w).get('__proto__')?.data[0], 2)
})

test('writeSafetensors refuses a shape that does not match the data, and non-string metadata', () => {
  assert.throws(() => writeSafetensors({ x: { shape: [3], data: new Float32Array(2) } }), SafetensorsError)
  assert.throws(() => writeSafetensors({ x: { shape: [-1], data: new Float32Array(0) } }), SafetensorsError)
  assert.throws(
    () => writeSafetensors({ x: { shape: [1], data: new Float32Array(1) } }, { n: 3 as unknown as string }),
    SafetensorsError,
  )
})
