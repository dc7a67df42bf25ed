// Attack: a safetensors file whose header lies. It claims shapes of 2^50 floats, offsets far past
// the end of the file, a header length beyond the file (up to 2^64 − 1), or thousands of entries
// that all point at the same bytes. The reader must refuse each one from the header alone — before
// allocating anything the size of a claimed tensor — with a typed SafetensorsError.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { SafetensorsError, readSafetensors, readSafetensorsHeader } from '../../src/experts/safetensors.ts'

function file(header: unknown, dataBytes = 0, headerLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header))
  const out = new Uint8Array(8 + json.length + dataBytes)
  new DataView(out.buffer).setBigUint64(0, headerLength ?? BigInt(json.length), true)
  out.set(json, 8)
  return out
}

/** Runs `fn` and checks it throws SafetensorsError without the heap or array buffers growing much. */
function refusedCheaply(label: string, fn: () => unknown): void {
  const before = process.memoryUsage()
  const t0 = performance.now()
  assert.throws(fn, SafetensorsError, label)
  const after = process.memoryUsage()
  const grown = after.arrayBuffers - before.arrayBuffers + (after.heapUsed - before.heapUsed)
  assert.ok(grown < 64 * 2 ** 20, `${label}: grew ${grown} bytes`)
  assert.ok(performance.now() - t0 < 2000, `${label}: took too long`)
}

test('a header claiming huge shapes is refused without allocating', () => {
  const cases: Array<[string, Uint8Array]> = [
    ['2^50 floats over 16 bytes', file({ w: { dtype: 'F32', shape: [2 ** 25, 2 ** 25], data_offsets: [0, 16] } }, 16)],
    [
      '2^50 floats with matching offsets',
      file({ w: { dtype: 'F32', shape: [2 ** 25, 2 ** 25], data_offsets: [0, 2 ** 52] } }, 16),
    ],
    [
      'product overflowing 2^53',
      file({ w: { dtype: 'F32', shape: [2 ** 40, 2 ** 40, 2 ** 40], data_offsets: [0, 16] } }, 16),
    ],
    ['dimension beyond a safe integer', file({ w: { dtype: 'F32', shape: [2 ** 64], data_offsets: [0, 16] } }, 16)],
    ['rank 10000', file({ w: { dtype: 'F32', shape: new Array(10000).fill(1), data_offsets: [0, 4] } }, 4)],
    ['BF16 terabyte', file({ w: { dtype: 'BF16', shape: [2 ** 20, 2 ** 20], data_offsets: [0, 2 ** 41] } }, 8)],
  ]
  for (const [label, bytes] of cases) {
    refusedCheaply(label, () => readSafetensorsHeader(bytes))
    refusedCheaply(label, () => readSafetensors(bytes))
  }
})

test('offsets outside the file are refused', () => {
  const cases: Array<[string, Uint8Array]> = [
    ['end past the data', file({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8)],
    ['both far past the data', file({ w: { dtype: 'F32', shape: [1], data_offsets: [2 ** 40, 2 ** 40 + 4] } }, 8)],
    ['negative start', file({ w: { dtype: 'F32', shape: [1], data_offsets: [-4, 0] } }, 8)],
    ['start beyond a safe integer', file({ w: { dtype: 'F32', shape: [0], data_offsets: [2 ** 60, 2 ** 60] } }, 0)],
    ['string offsets', file({ w: { dtype: 'F32', shape: [1], data_offsets: ['0', '4'] } }, 4)],
  ]
  for (const [label, bytes] of cases) refusedCheaply(label, () => readSafetensors(bytes))
})

test('a header length beyond the file (or beyond 100 MB) is refused', () => {
  const cases: Array<[string, Uint8Array]> = [
    ['one byte past the file', file({}, 0, 3n)],
    ['a gigabyte', file({}, 0, 2n ** 30n)],
    ['2^64 - 1', file({}, 0, 2n ** 64n - 1n)],
    ['2^53 + 1', file({}, 0, 2n ** 53n + 1n)],
    ['only the length', new Uint8Array([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])],
  ]
  for (const [label, bytes] of cases) refusedCheaply(label, () => readSafetensors(bytes))
})

test('many entries aliasing the same bytes are refused', () => {
  const header: Record<string, unknown> = {}
  for (let i = 0; i < 20000; i++) header[`t${i}`] = { dtype: 'F32', shape: [1024], data_offsets: [0, 4096] }
  refusedCheaply('20000 aliases of one 4 KiB tensor', () => readSafetensors(file(header, 4096)))
})
