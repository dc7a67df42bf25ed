import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PeerBudgets, MAX_BUDGET_PEERS } from './budget.ts'

test('peer budgets: a bucket per peer, spent and refilled continuously; debt is paid by waiting', () => {
  let now = 0
  const budgets = new PeerBudgets({ amount: 100, perMs: 1_000 }, () => now)
  assert.equal(budgets.available('a'), 100)
  budgets.charge('a', 150) // one large answer is allowed, into debt
  assert.equal(budgets.available('a'), -50)
  assert.equal(budgets.available('b'), 100, 'per peer')
  assert.equal(budgets.waitMs('a'), 510)
  now += 510
  assert.ok(budgets.available('a') > 0)
  now += 10_000
  assert.equal(budgets.available('a'), 100, 'never above the budget')
  assert.throws(() => new PeerBudgets({ amount: 0, perMs: 1 }), RangeError)
})

test('peer budgets: the table stays bounded under many peers', () => {
  const budgets = new PeerBudgets({ amount: 10, perMs: 1_000 }, () => 0)
  for (let i = 0; i < MAX_BUDGET_PEERS * 3; i++) budgets.charge(`peer-${i}`, 20)
  // Forgotten peers start full again: the bound trades memory for a fresh bucket.
  assert.ok(budgets.available('peer-0') === 10)
  assert.ok(budgets.available(`peer-${MAX_BUDGET_PEERS * 3 - 1}`) < 0)
})
