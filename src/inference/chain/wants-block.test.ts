// A chain without empty blocks (docs/consensus.md) keeps making blocks while the market has
// something running by height: a settlement's audit slots, challenge window and a dispute's
// quorum. The module says so for two dispute windows after a settle batch, and not after.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { DEFAULT_PARAMS } from '../../chain/genesis.ts'
import { SparseMerkleTree } from '../../chain/state/smt.ts'
import { StateOverlay } from '../../chain/state-view.ts'
import { inferenceModule } from './module.ts'
import { batchCountKey } from './state.ts'

test('wantsBlock: blocks for two dispute windows after a settlement, none before or after', () => {
  const params = { ...DEFAULT_PARAMS, disputeWindowBlocks: 5 }
  const module = inferenceModule(params)
  const state = new StateOverlay(SparseMerkleTree.empty())
  const wants = (height: number): boolean => module.wantsBlock?.(state, height) === true
  assert.equal(wants(20), false, 'no settlement yet: an idle market asks for nothing')
  state.write(batchCountKey(20), 1)
  assert.equal(wants(20), false, 'the settlement block itself is not a reason')
  for (let h = 21; h <= 30; h++) assert.equal(wants(h), true, `height ${h}: within two windows of 20`)
  assert.equal(wants(31), false, 'two windows after it, the market is idle again')
})
