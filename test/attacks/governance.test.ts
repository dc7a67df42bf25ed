// Attacks on governance, each against the real governance module through a real state machine
// (bank, staking, governance) with signed transactions: a flood of proposals (bounded by the
// deposits it must lock, and no obstacle to a real proposal), dust depositors, votes after the
// period, vote-weight inflation by repeated votes or by bonding after the fact, hostile parameter
// values out of bounds, and an applyAtHeight in the past. Each must fail with its reason, take
// nothing it should not, and leave the governed parameters as they were.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { balanceOf, totalSupply } from '../../src/bank/bank.ts'
import { governedUint, isGoverned } from '../../src/governance/params.ts'
import { GOV, GOVERNED_PARAMS, governedDefault } from '../../src/governance/registry.ts'
import {
  MAX_DEPOSITORS,
  escrowBalance,
  govRules,
  listProposals,
  readProposal,
} from '../../src/governance/chain/state.ts'
import {
  BALANCE,
  actor,
  advanceTo,
  block,
  edgeRefused,
  propose,
  proposeBody,
  refusedTx,
  tx,
  votes,
  world,
  type TxSpec,
  type World,
} from '../../src/governance/chain/test-kit.ts'

const PERIOD = Number(governedDefault(GOV.votingPeriodBlocks))

function noParamChanged(w: World): void {
  for (const p of GOVERNED_PARAMS) assert.equal(isGoverned(w.state, p.name), false, p.name)
}

test('a flood of proposals is bounded by the deposits it locks, and does not stop a real proposal', () => {
  const w = world()
  const [a, b, c] = w.validators as [World['validators'][0], World['validators'][0], World['validators'][0]]
  const attacker = w.outsider
  const initial = govRules(w.state).minInitialDeposit
  // the attacker keeps enough for ten proposals
  tx(w, attacker, 'bank.transfer', { to: a.did, amount: BALANCE - 10n * initial })
  const flood: TxSpec[] = Array.from({ length: 10 }, (_, i) => [
    attacker,
    'governance.propose',
    proposeBody({ title: `spam ${i}`, deposit: initial }),
  ])
  block(w, flood)
  refusedTx(w, attacker, 'governance.propose', proposeBody({ deposit: initial }), 'insufficient-funds')
  assert.equal(balanceOf(w.state, attacker.did), 0n)
  assert.equal(escrowBalance(w.state), 10n * initial)
  assert.equal(listProposals(w.state, { status: 'deposit' }).length, 10, 'none of them is put to a vote')
  // a real proposal goes through alongside
  const real = propose(w, b)
  votes(w, real, [
    [a, 'yes'],
    [b, 'yes'],
    [c, 'yes'],
  ])
  advanceTo(w, readProposal(w.state, real)!.votingEndHeight!)
  assert.equal(readProposal(w.state, real)?.status, 'passed')
  // blocks between the flood and its expiry do no governance work
  const quiet = advanceTo(w, readProposal(w.state, 1)!.depositEndHeight - 1)
  assert.deepEqual(
    quiet.filter(
      (e) => e.type.startsWith('governance.') && e.type !== 'governance.param' && e.type !== 'governance.applied',
    ),
    [],
  )
  const expiry = block(w)
  assert.equal(expiry.filter((e) => e.type === 'governance.expired').length, 10)
  assert.equal(escrowBalance(w.state), 0n)
})

test('dust depositors: at most MAX_DEPOSITORS accounts per proposal, so a refund walks a bounded list', () => {
  const w = world()
  const [a] = w.validators
  const id = propose(w, a!, { deposit: 5_000n })
  const dust = Array.from({ length: MAX_DEPOSITORS }, actor)
  block(
    w,
    dust.map((d): TxSpec => [w.outsider, 'bank.transfer', { to: d.did, amount: 10n }]),
  )
  block(
    w,
    dust.slice(0, MAX_DEPOSITORS - 1).map((d): TxSpec => [d, 'governance.deposit', { proposal: id, amount: 1n }]),
  )
  refusedTx(w, dust[MAX_DEPOSITORS - 1]!, 'governance.deposit', { proposal: id, amount: 1n }, 'too-many-depositors')
  tx(w, a!, 'governance.deposit', { proposal: id, amount: 1n }) // an existing depositor may still top up
  assert.equal(readProposal(w.state, id)?.totalDeposit, 5_000n + BigInt(MAX_DEPOSITORS - 1) + 1n)
})

test('a vote after the voting period is refused and changes nothing', () => {
  const w = world()
  const [a, b, c, d] = w.validators as [
    World['validators'][0],
    World['validators'][0],
    World['validators'][0],
    World['validators'][0],
  ]
  const id = propose(w, a)
  votes(w, id, [
    [a, 'no'],
    [b, 'no'],
  ])
  advanceTo(w, 1 + PERIOD)
  const decided = readProposal(w.state, id)
  assert.equal(decided?.status, 'rejected')
  refusedTx(w, c, 'governance.vote', { proposal: id, option: 'yes' }, 'not-voting')
  refusedTx(w, d, 'governance.vote', { proposal: id, option: 'yes' }, 'not-voting')
  assert.deepEqual(readProposal(w.state, id), decided)
  advanceTo(w, 1 + PERIOD + 10)
  noParamChanged(w)
})

test('vote weight cannot be inflated: repeated votes count once, stake bonded by an outsider does not vote', () => {
  const w = world()
  const [a, b] = w.validators as [World['validators'][0], World['validators'][0]]
  const id = propose(w, a)
  // the same validator votes yes five times in one block and again later
  block(
    w,
    Array.from({ length: 5 }, (): TxSpec => [a, 'governance.vote', { proposal: id, option: 'yes' }]),
  )
  votes(w, id, [[a, 'yes']])
  // an outsider bonds a large stake mid-period: it is not in the validator set deciding this epoch
  tx(w, w.outsider, 'staking.bond', { amount: 500_000n })
  refusedTx(w, w.outsider, 'governance.vote', { proposal: id, option: 'yes' }, 'not-validator')
  votes(w, id, [[b, 'no']])
  advanceTo(w, 1 + PERIOD)
  const p = readProposal(w.state, id)
  assert.deepEqual(p?.tally, { yes: 10_000n, no: 10_000n, abstain: 0n, veto: 0n, totalPower: 40_000n })
  assert.equal(p?.status, 'rejected')
  assert.equal(governedUint(w.state, GOV.votingPeriodBlocks, BigInt(PERIOD)), BigInt(PERIOD))
  assert.equal(isGoverned(w.state, GOV.votingPeriodBlocks), false)
})

test('hostile parameter values are refused at the edge: no quorum, no threshold, no voting period, overflow', () => {
  const w = world()
  const [a] = w.validators
  const hostile: Array<[string, unknown, string]> = [
    [GOV.quorumBps, 0n, 'param-out-of-bounds'],
    [GOV.thresholdBps, 1n, 'param-out-of-bounds'],
    [GOV.thresholdBps, 10_001n, 'param-out-of-bounds'],
    [GOV.vetoBps, 0n, 'param-out-of-bounds'],
    [GOV.votingPeriodBlocks, 0n, 'param-out-of-bounds'],
    [GOV.minApplyDelayBlocks, 0n, 'param-out-of-bounds'],
    [GOV.minDeposit, 2n ** 64n - 1n, 'param-out-of-bounds'],
    [GOV.minDeposit, -1, 'param-out-of-bounds'],
    [GOV.minDeposit, 1.5, 'param-out-of-bounds'],
    [GOV.minDeposit, '1000', 'param-out-of-bounds'],
    ['arena.maxTasksOpen', 1_000_000n, 'param-out-of-bounds'],
    ['inference.modelAllowList', ['ok', 'bad\u0000name'], 'param-out-of-bounds'],
    ['inference.modelAllowList', ['x'.repeat(65)], 'param-out-of-bounds'],
    ['gov/param/governance.minDeposit', 1n, 'unknown-param'],
    ['__proto__', 1n, 'unknown-param'],
  ]
  for (const [param, value, reason] of hostile)
    edgeRefused(w, a!, 'governance.propose', proposeBody({ changes: [{ param, value: value as bigint }] }), reason)
  assert.equal(readProposal(w.state, 1), undefined)
  noParamChanged(w)
})

test('applyAtHeight in the past (or too soon) fails with its reason and takes no deposit', () => {
  const w = world()
  const [a] = w.validators
  advanceTo(w, 30)
  const supply = totalSupply(w.state)
  for (const height of [1, 30, 31, 31 + PERIOD])
    refusedTx(w, a!, 'governance.propose', proposeBody({ applyAtHeight: height }), 'apply-height-too-early')
  assert.equal(balanceOf(w.state, a!.did), BALANCE)
  assert.equal(escrowBalance(w.state), 0n)
  assert.equal(totalSupply(w.state), supply)
  assert.equal(readProposal(w.state, 1), undefined)
})
