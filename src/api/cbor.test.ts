import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { CborBodyError, checkCbor, decodeCbor, encodeCbor } from './cbor.ts'

const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'))

test('plain data round-trips: objects, arrays, strings, safe integers, floats, booleans, null, byte strings (property)', () => {
  const value = fc.letrec((tie) => ({
    leaf: fc.oneof(
      fc.string(),
      fc.maxSafeInteger(),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.boolean(),
      fc.constant(null),
      fc.uint8Array({ maxLength: 40 }),
    ),
    node: fc.oneof({ depthSize: 'small' }, tie('leaf'), tie('array'), tie('object')),
    array: fc.array(tie('node'), { maxLength: 5 }),
    object: fc.dictionary(
      fc.string().filter((k) => k !== '__proto__'),
      tie('node'),
      { maxKeys: 5 },
    ),
  })).node
  fc.assert(
    fc.property(value, (v) => {
      const back = decodeCbor(encodeCbor(v))
      assert.deepEqual(normalize(back), normalize(v))
    }),
    { numRuns: 300 },
  )
})

/** Buffers as plain Uint8Arrays, -0 as 0. */
function normalize(v: unknown): unknown {
  if (Object.is(v, -0)) return 0
  if (v instanceof Uint8Array) return [...v]
  if (Array.isArray(v)) return v.map(normalize)
  if (v !== null && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]))
  return v
}

test('byte strings are untagged (major type 2); a tensor body reads as the same shape as JSON', () => {
  const bytes = encodeCbor({ data: Uint8Array.of(1, 2, 3) })
  assert.deepEqual([...bytes], [0xa1, 0x64, ...Buffer.from('data'), 0x43, 1, 2, 3])
  const body = decodeCbor(
    encodeCbor({ model: 'm', inputs: { x: { dims: [1, 2], type: 'float32', data: new Uint8Array(8) } } }),
  )
  assert.deepEqual(normalize(body), {
    model: 'm',
    inputs: { x: { dims: [1, 2], type: 'float32', data: [0, 0, 0, 0, 0, 0, 0, 0] } },
  })
})

test('checkCbor refuses what could cost memory or surprise the routes, naming the byte', () => {
  const refused: Array<[string, RegExp]> = [
    ['', /the body is empty/],
    ['5affffffff00', /byte 0: a string of 4294967295 bytes, but only 1 bytes follow/],
    ['9b00000001000000007f', /an array of 4294967296 items/],
    ['bb001fffffffffffff00', /a map of 9007199254740991 items/],
    ['1b0020000000000000', /beyond 2\^53 - 1/],
    ['9f00ff', /indefinite-length/],
    ['5f4100ff', /indefinite-length/],
    ['c249010000000000000000', /tags are not accepted \(tag 2\)/], // a bignum
    ['d8690100', /tags are not accepted \(tag 105\)/], // cbor-x records
    ['f7', /undefined is not accepted/],
    ['f820', /simple value 32/],
    ['a10101', /byte 1: map keys must be text strings/],
    ['a1400101', /byte 1: map keys must be text strings/],
    ['8201', /an array of 2 items, but only 1 bytes follow/],
    ['19ff', /ends inside an item head/],
    ['0000', /byte 1: 1 bytes after the end/],
    ['1c', /reserved additional information 28/],
    [`${'81'.repeat(17)}00`, /nested deeper than 16 levels/],
  ]
  for (const [h, pattern] of refused) {
    assert.throws(() => decodeCbor(hex(h)), pattern, h)
    assert.throws(() => decodeCbor(hex(h)), CborBodyError, h)
  }
  checkCbor(hex(`${'81'.repeat(16)}00`))
  checkCbor(hex('83f4f5f6')) // false, true, null
  checkCbor(hex('fb3ff8000000000000')) // a float64
  assert.throws(() => checkCbor(hex('8401020304'), { maxItems: 4 }), /more than 4 items/)
  const proto = decodeCbor(hex(`a169${Buffer.from('__proto__').toString('hex')}a1636a6f6201`)) as Record<
    string,
    unknown
  >
  assert.equal(Object.getPrototypeOf(proto), Object.prototype, 'a __proto__ key sets no prototype')
  assert.equal('job' in proto, false)
  assert.deepEqual(Object.keys(proto), ['__proto__'])
  assert.throws(() => decodeCbor(hex('a1616618' + '01')), /integer encoded in more bytes than necessary/)
  assert.throws(() => decodeCbor(hex('a2616101616102')), /repeat map key "a"/)
  assert.deepEqual(decodeCbor(hex('a2617a01616102')), { z: 1, a: 2 }, 'keys in any order')
  assert.deepEqual(decodeCbor(hex('a16166f93e00')), { f: 1.5 }, 'half-precision floats')
})

test('random bytes either decode to plain data or are refused with CborBodyError, never anything else (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), (bytes) => {
      try {
        decodeCbor(bytes)
      } catch (err) {
        assert.ok(err instanceof CborBodyError, String(err))
      }
    }),
    { numRuns: 2000 },
  )
})
