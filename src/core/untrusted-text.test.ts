import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { MAX_UNTRUSTED_TEXT, untrustedText } from './untrusted-text.ts'

// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/

test('untrustedText: control characters, ANSI escapes, newlines and bidi overrides become spaces', () => {
  assert.equal(untrustedText('\u001b[2J\r\nFAKE: ok\u0007'), ' [2J  FAKE: ok ')
  assert.equal(untrustedText('abc\u202egnp.exe'), 'abc gnp.exe')
  assert.equal(untrustedText('tab\there\u0085'), 'tab here ')
  assert.equal(untrustedText('한국어 ✓ 😀'), '한국어 ✓ 😀', 'printable Unicode is kept')
  assert.equal(untrustedText('\ud800x'), '\ufffdx', 'a lone surrogate is replaced')
  assert.equal(untrustedText(undefined), 'undefined')
})

test('untrustedText: long text is cut to the bound with a note; a surrogate pair is never split', () => {
  const long = 'x'.repeat(1_000_000)
  const out = untrustedText(long)
  assert.ok(out.startsWith('x'.repeat(MAX_UNTRUSTED_TEXT)))
  assert.match(out, /… \(999800 more characters cut\)$/)
  assert.equal(untrustedText('ab😀', 3), 'ab… (2 more characters cut)')
  assert.equal(untrustedText('x'.repeat(10), 10), 'x'.repeat(10), 'exactly the bound is kept whole')
})

test('untrustedText (property): never longer than the bound plus the note, never an unsafe character', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 600 }), fc.integer({ min: 1, max: 300 }), (s, max) => {
      const out = untrustedText(s, max)
      assert.ok(!UNSAFE.test(out))
      assert.ok(out.length <= max + 40, `${out.length} > ${max} + note`)
      assert.doesNotThrow(() => encodeURIComponent(out), 'well-formed UTF-16')
    }),
  )
})
