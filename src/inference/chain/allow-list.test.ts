// Governance's model allow-list (inference.modelAllowList): while it is empty every model may be
// registered; once governance sets it, a registration whose name and CID are both off the list is
// refused and changes nothing, and one on the list (by name or by CID) goes through.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { governedKey } from '../../chain/governed.ts'
import { cid, inBlock, market, modelBody, refused } from '../../../test/helpers/market.ts'
import { modelByCid } from './state.ts'
import { MODEL_ALLOW_LIST } from './registry.ts'

test('the model allow-list: empty allows all; set, it refuses a model neither named nor listed by CID', () => {
  const m = market()
  const register = (name: string, seed: string) => (tx: Parameters<Parameters<typeof inBlock>[1]>[0]) =>
    tx(m.owner, 'inference.registerModel', modelBody({ cid: cid(seed), name, version: '1' }))
  inBlock(m, (tx) => register('free-model', 'free')(tx))
  assert.ok(modelByCid(m.state, cid('free')) !== undefined, 'an empty list allows every model')

  // what the governance module writes when a proposal setting the list applies
  m.state.write(governedKey(MODEL_ALLOW_LIST), ['digits-approved', cid('by-cid')])
  inBlock(m, (tx) => {
    refused(() => register('unlisted', 'unlisted')(tx), 'model-not-allowed', /allow-list/)
    register('digits-approved', 'approved')(tx)
    register('anything', 'by-cid')(tx)
  })
  assert.equal(modelByCid(m.state, cid('unlisted')), undefined, 'the refused model was not registered')
  assert.ok(modelByCid(m.state, cid('approved')) !== undefined)
  assert.ok(modelByCid(m.state, cid('by-cid')) !== undefined)
})
