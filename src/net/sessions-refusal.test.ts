import { test } from 'node:test'
import assert from 'node:assert/strict'
import { OverBudgetError, TransportError } from '../core/transport.ts'
import { decodeRefusal, encodeRefusal } from './sessions.ts'

class NotHostedHere extends TransportError {
  static override readonly code: string = 'EXPERT_NOT_HOSTED'
  override name = 'NotHostedHere'
}

test('a refusal keeps the refusing peer’s code in details.remoteCode; OVER_BUDGET stays typed', () => {
  const notHosted = decodeRefusal(encodeRefusal(new NotHostedHere('no such expert here')))
  assert.ok(notHosted instanceof TransportError)
  assert.equal(notHosted.details.remoteCode, 'EXPERT_NOT_HOSTED')
  assert.match(notHosted.message, /no such expert here/)
  const budget = decodeRefusal(encodeRefusal(new OverBudgetError('slow down')))
  assert.ok(budget instanceof OverBudgetError)
  // a code that is not an error code (free text from a hostile peer) is not passed on
  const junk = decodeRefusal(new TextEncoder().encode('not a code!\nwhatever'))
  assert.equal(junk.details.remoteCode, undefined)
})
