// nextAuditLook: the commit at which a held job with nobody to ask is looked at again. The whole
// auditor runs in src/inference/sim/audit-sim.test.ts (production components on a manual clock).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { nextAuditLook } from './auditor.ts'

const params = { auditCandidates: 3, auditSlotBlocks: 3 }
// slots open at 10, 13 and 16; the window ends at 19

test('nextAuditLook: the commit before the next slot opens', () => {
  assert.equal(nextAuditLook(undefined, 9, 10, params), 12) // slot 0 open at 10: next look asks slot 1 at 13
  assert.equal(nextAuditLook(undefined, 10, 10, params), 12)
  assert.equal(nextAuditLook(undefined, 11, 10, params), 12)
  assert.equal(nextAuditLook(undefined, 12, 10, params), 15)
  assert.equal(nextAuditLook(undefined, 5, 10, params), 9) // not open yet: the commit before it opens
})

test('nextAuditLook: after the last slot, the commit at which the window closes and the job is forgotten', () => {
  assert.equal(nextAuditLook(undefined, 15, 10, params), 18)
  assert.equal(nextAuditLook(undefined, 17, 10, params), 18)
  assert.equal(nextAuditLook(undefined, 18, 10, params), 19) // never the same height again
})

test('nextAuditLook: an auditor that did not answer is asked again after four blocks, if that comes first', () => {
  assert.equal(nextAuditLook(new Map([['did:key:a', 10]]), 10, 10, params), 12) // slot 1 first
  assert.equal(nextAuditLook(new Map([['did:key:a', 13]]), 13, 10, params), 15) // slot 2 first
  assert.equal(nextAuditLook(new Map([['did:key:a', 16]]), 16, 10, params), 18) // window end first
  const params2 = { auditCandidates: 2, auditSlotBlocks: 8 } // slots at 10 and 18
  assert.equal(nextAuditLook(new Map([['did:key:a', 10]]), 10, 10, params2), 14) // the retry first
  assert.equal(nextAuditLook(new Map([['did:key:a', 2]]), 10, 10, params2), 17) // an old one is due already
})
