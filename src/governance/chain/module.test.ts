// The governance module against the real state machine (bank, staking, governance): deposits
// and their accounting, the voting period, the tally's quorum, threshold and veto by bonded
// stake, scheduling and applying changes at the named height, and the refusals at the edge.
// Adversarial cases: test/attacks/governance.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { balanceOf, totalSupply } from '../../bank/bank.ts'
import { governedList, governedUint, isGoverned } from '../params.ts'
import { GOV, GOVERNED_PARAMS, MODEL_ALLOW_LIST, governedDefault, registeredParam } from '../registry.ts'
import {
  changeAt,
  decide,
  depositsOf,
  escrowBalance,
  govRules,
  listProposals,
  paramHistory,
  readProposal,
  tallyVotes,
  votesOf,
} from './state.ts'
import {
  BALANCE,
  FEE,
  advanceTo,
  block,
  edgeRefused,
  propose,
  proposeBody,
  refusedTx,
  tx,
  votes,
  world,
  type World,
} from './test-kit.ts'

const PERIOD = Number(governedDefault(GOV.votingPeriodBlocks))
const DELAY = Number(governedDefault(GOV.minApplyDelayBlocks))
const MIN_DEPOSIT = governedDefault(GOV.minDeposit)
const DEPOSIT_PERIOD = Number(governedDefault(GOV.depositPeriodBlocks))
const votingPeriod = (w: World): bigint => governedUint(w.state, GOV.votingPeriodBlocks, BigInt(PERIOD))

function allYes(w: World, id: number): void {
  votes(
    w,
    id,
    w.validators.map((v) => [v, 'yes']),
  )
}

test('the registry: defaults in bounds, the names other modules read, the model allow-list', () => {
  for (const p of GOVERNED_PARAMS) {
    if (typeof p.default === 'bigint') {
      assert.ok((p.min ?? 0n) <= p.default && p.default <= (p.max ?? p.default), p.name)
    } else assert.deepEqual(p.default, [], p.name)
  }
  for (const name of [
    'governance.votingPeriodBlocks',
    'governance.minDeposit',
    'inference.modelAllowList',
    'arena.minRewardPool',
    'arena.maxTasksOpen',
    'fl.minRewardPool',
    'fl.maxRoundBlocks',
  ])
    assert.ok(registeredParam(name) !== undefined, name)
  assert.equal(registeredParam(MODEL_ALLOW_LIST)?.kind, 'list')
  assert.equal(PERIOD, 100)
})

test('a proposal with the whole minimum deposit opens voting at once; the deposit is escrowed', () => {
  const w = world()
  const [v0] = w.validators
  const supply = totalSupply(w.state)
  const id = propose(w, v0!)
  assert.equal(id, 1)
  const p = readProposal(w.state, id)
  assert.equal(p?.status, 'voting')
  assert.equal(p?.votingStartHeight, 1)
  assert.equal(p?.votingEndHeight, 1 + PERIOD)
  assert.equal(p?.applyHeight, 1 + PERIOD + DELAY, 'the earliest allowed height when none is named')
  assert.equal(p?.totalDeposit, MIN_DEPOSIT)
  assert.equal(balanceOf(w.state, v0!.did), BALANCE - FEE - MIN_DEPOSIT)
  assert.equal(escrowBalance(w.state), MIN_DEPOSIT)
  assert.equal(totalSupply(w.state), supply, 'escrowed tokens stay in the supply')
  assert.deepEqual(depositsOf(w.state, id), [{ did: v0!.did, amount: MIN_DEPOSIT }])
  assert.equal(propose(w, v0!), 2, 'ids count up')
})

test('passed: every validator votes yes; deposit refunded at the end of voting; the change applies at the named height and not before', () => {
  const w = world()
  const [v0] = w.validators
  const H = PERIOD + DELAY + 15
  const id = propose(w, v0!, { applyAtHeight: H })
  allYes(w, id)
  advanceTo(w, PERIOD) // votingEnd = 21
  assert.equal(readProposal(w.state, id)?.status, 'voting')
  const end = block(w)
  const tallied = end.find((e) => e.type === 'governance.tally')
  assert.equal(tallied?.attributes.status, 'passed')
  assert.equal(tallied?.attributes.applyHeight, String(H))
  assert.deepEqual(readProposal(w.state, id)?.tally, {
    yes: 40_000n,
    no: 0n,
    abstain: 0n,
    veto: 0n,
    totalPower: 40_000n,
  })
  assert.equal(readProposal(w.state, id)?.status, 'passed')
  assert.equal(balanceOf(w.state, v0!.did), BALANCE - 2n * FEE, 'deposit back, two fees paid')
  assert.equal(escrowBalance(w.state), 0n)
  advanceTo(w, H - 1)
  assert.equal(votingPeriod(w), BigInt(PERIOD), 'still the old value at H-1')
  assert.equal(isGoverned(w.state, GOV.votingPeriodBlocks), false)
  const at = block(w)
  assert.equal(w.height, H)
  assert.equal(votingPeriod(w), 10n, 'the new value from H on')
  const param = at.find((e) => e.type === 'governance.param')
  assert.deepEqual(param?.attributes, {
    proposal: String(id),
    param: GOV.votingPeriodBlocks,
    value: '10',
    previous: String(PERIOD),
  })
  assert.equal(readProposal(w.state, id)?.status, 'applied')
  assert.equal(readProposal(w.state, id)?.appliedHeight, H)
  const history = paramHistory(w.state, GOV.votingPeriodBlocks)
  assert.deepEqual(history, [{ height: H, proposal: id, value: 10n }])
  assert.equal(changeAt(history, H - 1), undefined)
  assert.equal(changeAt(history, H)?.value, 10n)
  // the new rule is in force: the next proposal votes for 10 blocks
  const next = propose(w, v0!)
  assert.equal(readProposal(w.state, next)?.votingEndHeight, H + 1 + 10)
})

test('quorum not met: rejected, deposit refunded', () => {
  const w = world()
  const [v0] = w.validators
  const id = propose(w, v0!)
  votes(w, id, [[v0!, 'yes']]) // 25 % < 33.4 %
  advanceTo(w, 1 + PERIOD)
  const p = readProposal(w.state, id)
  assert.equal(p?.status, 'rejected')
  assert.equal(p?.reason, 'quorum')
  assert.equal(balanceOf(w.state, v0!.did), BALANCE - 2n * FEE)
  assert.equal(escrowBalance(w.state), 0n)
  advanceTo(w, 1 + PERIOD + DELAY + 2)
  assert.equal(votingPeriod(w), BigInt(PERIOD), 'a rejected proposal changes nothing')
})

test('threshold: yes must be above half of yes + no + veto; abstain counts for quorum only', () => {
  const tie = world()
  const [a, b, c, d] = tie.validators as [
    World['validators'][0],
    World['validators'][0],
    World['validators'][0],
    World['validators'][0],
  ]
  let id = propose(tie, a)
  votes(tie, id, [
    [a, 'yes'],
    [b, 'yes'],
    [c, 'no'],
    [d, 'no'],
  ])
  advanceTo(tie, 1 + PERIOD)
  assert.equal(readProposal(tie.state, id)?.status, 'rejected')
  assert.equal(readProposal(tie.state, id)?.reason, 'threshold', 'exactly half is not above half')

  const abstained = world()
  const [e, f, g] = abstained.validators as [World['validators'][0], World['validators'][0], World['validators'][0]]
  id = propose(abstained, e)
  votes(abstained, id, [
    [e, 'yes'],
    [f, 'abstain'],
    [g, 'abstain'],
  ])
  advanceTo(abstained, 1 + PERIOD)
  assert.equal(readProposal(abstained.state, id)?.status, 'passed', '1 yes of 1 decisive vote, quorum 75 %')

  const allAbstain = world()
  id = propose(allAbstain, allAbstain.validators[0]!)
  votes(
    allAbstain,
    id,
    allAbstain.validators.map((v) => [v, 'abstain']),
  )
  advanceTo(allAbstain, 1 + PERIOD)
  assert.equal(readProposal(allAbstain.state, id)?.reason, 'threshold', 'no decisive vote: rejected')
})

test('veto above a third of the votes burns the deposit; below it the vote counts as no', () => {
  const w = world()
  const [a, b, c, d] = w.validators as [
    World['validators'][0],
    World['validators'][0],
    World['validators'][0],
    World['validators'][0],
  ]
  const supply = totalSupply(w.state)
  const id = propose(w, a)
  votes(w, id, [
    [a, 'yes'],
    [b, 'yes'],
    [c, 'veto'],
    [d, 'veto'],
  ])
  advanceTo(w, 1 + PERIOD)
  const p = readProposal(w.state, id)
  assert.equal(p?.status, 'vetoed')
  assert.equal(p?.reason, 'veto')
  assert.equal(balanceOf(w.state, a.did), BALANCE - 2n * FEE - MIN_DEPOSIT, 'the deposit is not returned')
  assert.equal(escrowBalance(w.state), 0n)
  assert.equal(totalSupply(w.state), supply - MIN_DEPOSIT, 'the deposit left the supply')

  const below = world()
  const [e, f, g, h] = below.validators as [
    World['validators'][0],
    World['validators'][0],
    World['validators'][0],
    World['validators'][0],
  ]
  const id2 = propose(below, e)
  votes(below, id2, [
    [e, 'yes'],
    [f, 'yes'],
    [g, 'yes'],
    [h, 'veto'],
  ])
  advanceTo(below, 1 + PERIOD)
  assert.equal(readProposal(below.state, id2)?.status, 'passed', '25 % veto is below 33.4 %')
})

test('votes are weighed by bonded stake at tally time, over the current validator set', () => {
  const w = world({ stakes: [40_000n, 10_000n, 10_000n, 10_000n] })
  const [big, b, c] = w.validators as [World['validators'][0], World['validators'][0], World['validators'][0]]
  const id = propose(w, b)
  votes(w, id, [
    [big, 'yes'],
    [b, 'no'],
    [c, 'no'],
  ])
  const before = tallyVotes(w.state, id, w.validators)
  assert.deepEqual([before.yes, before.no, before.totalPower], [40_000n, 20_000n, 70_000n])
  // the big validator unbonds most of its stake before the end: its vote weighs what stays bonded
  tx(w, big, 'staking.unbond', { amount: 35_000n })
  advanceTo(w, 1 + PERIOD)
  const p = readProposal(w.state, id)
  assert.deepEqual(p?.tally, { yes: 5_000n, no: 20_000n, abstain: 0n, veto: 0n, totalPower: 35_000n })
  assert.equal(p?.status, 'rejected')
  assert.equal(p?.reason, 'threshold')
})

test('a changed vote counts once, as its latest option', () => {
  const w = world()
  const [a, b, c] = w.validators as [World['validators'][0], World['validators'][0], World['validators'][0]]
  const id = propose(w, a)
  votes(w, id, [
    [a, 'yes'],
    [b, 'yes'],
  ])
  const changed = votes(w, id, [[b, 'no']])
  assert.equal(changed.find((e) => e.type === 'governance.vote')?.attributes.previous, 'yes')
  votes(w, id, [[c, 'no']])
  assert.deepEqual(
    votesOf(w.state, id).map((v) => v.option),
    ['yes', 'no', 'no'],
  )
  advanceTo(w, 1 + PERIOD)
  const p = readProposal(w.state, id)
  assert.deepEqual([p?.tally?.yes, p?.tally?.no], [10_000n, 20_000n])
  assert.equal(p?.status, 'rejected')
})

test('only validators vote, only during the voting period', () => {
  const w = world()
  const [a] = w.validators
  refusedTx(w, a!, 'governance.vote', { proposal: 1, option: 'yes' }, 'unknown-proposal')
  const id = propose(w, w.outsider, { deposit: MIN_DEPOSIT }) // anyone may propose
  refusedTx(w, w.outsider, 'governance.vote', { proposal: id, option: 'yes' }, 'not-validator')
  allYes(w, id)
  advanceTo(w, readProposal(w.state, id)!.votingEndHeight!)
  refusedTx(w, a!, 'governance.vote', { proposal: id, option: 'no' }, 'not-voting')
  assert.equal(readProposal(w.state, id)?.status, 'passed')
  assert.equal(balanceOf(w.state, w.outsider.did), BALANCE - 2n * FEE, "the outsider's deposit back, two fees paid")
})

test('deposit period: a partial deposit waits, a top-up by anyone starts voting; refunds go to each depositor', () => {
  const w = world()
  const [a, b, c, d] = w.validators as [
    World['validators'][0],
    World['validators'][0],
    World['validators'][0],
    World['validators'][0],
  ]
  const rules = govRules(w.state)
  assert.equal(rules.minInitialDeposit, 2_500n)
  refusedTx(w, a, 'governance.propose', proposeBody({ deposit: 2_499n }), 'deposit-too-small')
  const supply = totalSupply(w.state)
  const id = propose(w, a, { deposit: 4_000n })
  let p = readProposal(w.state, id)
  assert.equal(p?.status, 'deposit')
  assert.equal(p?.depositEndHeight, 2 + DEPOSIT_PERIOD)
  refusedTx(w, b, 'governance.vote', { proposal: id, option: 'yes' }, 'not-voting')
  tx(w, w.outsider, 'governance.deposit', { proposal: id, amount: 3_000n })
  assert.equal(readProposal(w.state, id)?.status, 'deposit')
  const started = tx(w, b, 'governance.deposit', { proposal: id, amount: 3_000n })
  assert.equal(started.find((e) => e.type === 'governance.voting')?.attributes.votingEnd, String(w.height + PERIOD))
  p = readProposal(w.state, id)
  assert.equal(p?.status, 'voting')
  assert.equal(p?.totalDeposit, 10_000n)
  assert.equal(escrowBalance(w.state), 10_000n)
  assert.deepEqual(
    depositsOf(w.state, id).map((x) => x.amount),
    [4_000n, 3_000n, 3_000n],
  )
  votes(w, id, [
    [a, 'yes'],
    [b, 'yes'],
    [c, 'yes'],
    [d, 'no'],
  ])
  advanceTo(w, p!.votingEndHeight!)
  assert.equal(readProposal(w.state, id)?.status, 'passed')
  assert.equal(escrowBalance(w.state), 0n)
  assert.equal(balanceOf(w.state, a.did), BALANCE - 3n * FEE, 'refused propose, propose, vote: three fees')
  assert.equal(balanceOf(w.state, b.did), BALANCE - 3n * FEE)
  assert.equal(balanceOf(w.state, w.outsider.did), BALANCE - FEE)
  assert.deepEqual(depositsOf(w.state, id), [])
  assert.equal(totalSupply(w.state), supply)
})

test('a proposal short of the minimum at the end of its deposit period expires, refunded', () => {
  const w = world()
  const [a] = w.validators
  const id = propose(w, a!, { deposit: 5_000n })
  const end = readProposal(w.state, id)!.depositEndHeight
  advanceTo(w, end - 1)
  assert.equal(readProposal(w.state, id)?.status, 'deposit')
  const events = block(w)
  assert.equal(events.find((e) => e.type === 'governance.expired')?.attributes.id, String(id))
  assert.equal(readProposal(w.state, id)?.status, 'expired')
  assert.equal(balanceOf(w.state, a!.did), BALANCE - FEE)
  assert.equal(escrowBalance(w.state), 0n)
  refusedTx(w, a!, 'governance.deposit', { proposal: id, amount: 10_000n }, 'not-open')
})

test('applyAtHeight must leave the minimum delay after voting; a top-up that would start voting too late is refused', () => {
  const w = world()
  const [a, b] = w.validators
  refusedTx(
    w,
    a!,
    'governance.propose',
    proposeBody({ applyAtHeight: 1 + PERIOD + DELAY - 1 }),
    'apply-height-too-early',
  )
  const id = propose(w, a!, { deposit: 5_000n, applyAtHeight: 3 + PERIOD + DELAY + 1 })
  assert.equal(readProposal(w.state, id)?.status, 'deposit')
  block(w)
  block(w)
  // voting starting now (height 5) would end at 25 and could apply at 30 at the earliest > 29
  refusedTx(w, b!, 'governance.deposit', { proposal: id, amount: 5_000n }, 'apply-height-too-early')
  assert.equal(readProposal(w.state, id)?.status, 'deposit')
  refusedTx(w, a!, 'governance.propose', proposeBody({ applyAtHeight: 10_000_000 }), 'apply-height-too-late')
})

test('changes to the rules themselves: a new minimum deposit and quorum govern the next proposals', () => {
  const w = world()
  const [a, b] = w.validators
  const id = propose(w, a!, {
    changes: [
      { param: GOV.minDeposit, value: 20_000n },
      { param: GOV.quorumBps, value: 6_000n },
      { param: MODEL_ALLOW_LIST, value: ['digits-mlp', 'tiny-lm'] },
    ],
  })
  allYes(w, id)
  advanceTo(w, readProposal(w.state, id)!.applyHeight!)
  assert.equal(govRules(w.state).minDeposit, 20_000n)
  assert.deepEqual(governedList(w.state, MODEL_ALLOW_LIST, []), ['digits-mlp', 'tiny-lm'])
  // the old minimum no longer opens voting
  const next = propose(w, b!, { deposit: 10_000n })
  assert.equal(readProposal(w.state, next)?.status, 'deposit')
  // half the power voting is now below the 60 % quorum
  assert.deepEqual(decide({ yes: 20n, no: 0n, abstain: 0n, veto: 0n, totalPower: 40n }, govRules(w.state)), {
    status: 'rejected',
    reason: 'quorum',
  })
  assert.deepEqual(
    listProposals(w.state).map((p) => [p.id, p.status]),
    [
      [2, 'deposit'],
      [1, 'applied'],
    ],
  )
  assert.deepEqual(
    listProposals(w.state, { status: 'applied' }).map((p) => p.id),
    [1],
  )
})

test('two passed proposals on the same parameter at the same height: the later id wins', () => {
  const w = world()
  const [a, b] = w.validators
  const H = PERIOD + DELAY + 10
  const first = propose(w, a!, { applyAtHeight: H, changes: [{ param: GOV.votingPeriodBlocks, value: 12n }] })
  const second = propose(w, b!, { applyAtHeight: H, changes: [{ param: GOV.votingPeriodBlocks, value: 14n }] })
  allYes(w, first)
  allYes(w, second)
  advanceTo(w, H)
  assert.equal(votingPeriod(w), 14n)
  assert.deepEqual(
    paramHistory(w.state, GOV.votingPeriodBlocks).map((e) => [e.proposal, e.value]),
    [
      [first, 12n],
      [second, 14n],
    ],
  )
})

test('refused at the edge: unknown parameter, value out of bounds, malformed bodies', () => {
  const w = world()
  const [a] = w.validators
  const change = (param: string, value: unknown) => proposeBody({ changes: [{ param, value: value as bigint }] })
  edgeRefused(w, a!, 'governance.propose', change('chain.maxBlockTxs', 10n), 'unknown-param')
  edgeRefused(w, a!, 'governance.propose', change('governance.nope', 10n), 'unknown-param')
  edgeRefused(w, a!, 'governance.propose', change(GOV.votingPeriodBlocks, 1n), 'param-out-of-bounds')
  edgeRefused(w, a!, 'governance.propose', change(GOV.votingPeriodBlocks, 2_000_000n), 'param-out-of-bounds')
  edgeRefused(w, a!, 'governance.propose', change(GOV.minDeposit, 0n), 'param-out-of-bounds')
  edgeRefused(w, a!, 'governance.propose', change(GOV.thresholdBps, 4_999n), 'param-out-of-bounds')
  edgeRefused(w, a!, 'governance.propose', change(GOV.votingPeriodBlocks, ['10']), 'param-out-of-bounds')
  edgeRefused(w, a!, 'governance.propose', change(MODEL_ALLOW_LIST, 5n), 'param-out-of-bounds')
  edgeRefused(w, a!, 'governance.propose', change(MODEL_ALLOW_LIST, ['Not A Model']), 'param-out-of-bounds')
  edgeRefused(w, a!, 'governance.propose', change(MODEL_ALLOW_LIST, ['x', 'x']), 'param-out-of-bounds')
  edgeRefused(
    w,
    a!,
    'governance.propose',
    change(
      MODEL_ALLOW_LIST,
      Array(257)
        .fill('m')
        .map((m, i) => `${m}${i}`),
    ),
    'param-out-of-bounds',
  )
  edgeRefused(w, a!, 'governance.propose', proposeBody({ changes: [] }), 'malformed')
  edgeRefused(
    w,
    a!,
    'governance.propose',
    proposeBody({
      changes: [
        { param: GOV.minDeposit, value: 5n },
        { param: GOV.minDeposit, value: 6n },
      ],
    }),
    'malformed',
  )
  edgeRefused(w, a!, 'governance.propose', proposeBody({ deposit: 0n }), 'malformed')
  edgeRefused(w, a!, 'governance.propose', proposeBody({ title: 'x'.repeat(141) }), 'malformed')
  edgeRefused(w, a!, 'governance.propose', { ...proposeBody(), applyAtHeight: 0 }, 'malformed')
  edgeRefused(w, a!, 'governance.propose', { ...proposeBody(), extra: 1 }, 'malformed')
  edgeRefused(w, a!, 'governance.vote', { proposal: 1, option: 'maybe' }, 'malformed')
  edgeRefused(w, a!, 'governance.vote', { proposal: 0, option: 'yes' }, 'malformed')
  edgeRefused(w, a!, 'governance.deposit', { proposal: 1, amount: 0n }, 'malformed')
  assert.equal(balanceOf(w.state, a!.did), BALANCE, 'no fee for a transaction refused at the edge')
})
