// The governance module against the real state machine (bank, staking, governance): deposits
// and their accounting, the voting period, the tally's quorum, threshold and veto by bonded
// stake, scheduling and applying changes at the named height, and the refusals at the edge.
// Adversarial cases: test/attacks/governance.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { balanceOf, totalSupply } from '../../bank/bank.ts'
import { governedList, governedUint, isGoverned } from '../params.ts'
import {
  CHAIN_PARAMS,
  GOV,
  GOVERNED_PARAMS,
  MODEL_ALLOW_LIST,
  STAKING_PARAMS,
  defaultOf,
  governedDefault,
  registeredParam,
} from '../registry.ts'
import { TxError } from '../../chain/errors.ts'
import { currentMaxBlockTxs, currentMinFee } from '../../chain/governed.ts'
import type { ChainEvent } from '../../chain/host.ts'
import { Mempool } from '../../chain/mempool.ts'
import { decodeTx, encodeTx, signTx, txHash, type SignedTx } from '../../chain/tx.ts'
import { signVote } from '../../chain/bft/messages.ts'
import { stakingRules, unbondingOf, validatorRecord } from '../../staking/staking.ts'
import { blockInfo } from '../../../test/helpers/module-chain.ts'
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
  type Actor,
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
  edgeRefused(w, a!, 'governance.propose', change('chain.epochLength', 10n), 'unknown-param')
  edgeRefused(w, a!, 'governance.propose', change('chain.timeoutProposeMs', 2_000n), 'unknown-param')
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

// ---- core chain parameters (chain.*, staking.*): default = the genesis value ----

/** A bank transfer from `who` signed with this fee, at `nonce` (default: its next one in the kit). */
function transfer(w: World, who: Actor, fee: bigint, nonce = w.nonces.get(who.did) ?? 0n) {
  const to = w.validators[0]!.did
  const bytes = encodeTx(
    signTx(who.key, { chainId: w.genesis.chainId, nonce, fee, kind: 'bank.transfer', body: { to, amount: 1n } }),
  )
  return { bytes, tx: decodeTx(bytes) }
}

/** Runs the next block by hand: begin-block, `run(height)` delivering what it wants, end-block. */
function handBlock(w: World, run: (height: number, events: ChainEvent[]) => void): ChainEvent[] {
  const height = w.height + 1
  const events: ChainEvent[] = []
  const ctx = { ...blockInfo(w, height), emit: (e: ChainEvent) => events.push(e) }
  w.machine.beginBlock(w.state, ctx)
  run(height, events)
  w.machine.endBlock(w.state, ctx)
  w.height = height
  return events
}

/** Delivers a signed transaction in block `height` (its ante must pass) and counts the sender's nonce. */
function deliver(w: World, tx: SignedTx, bytes: Uint8Array, height: number, events: ChainEvent[]): void {
  const result = w.machine.deliver(w.state, tx, { ...blockInfo(w, height), txHash: txHash(bytes) }, (e) =>
    events.push(e),
  )
  assert.ok(result.ok)
  w.nonces.set(tx.sender, tx.nonce + 1n)
}

const isFeeTooLow = (err: unknown): boolean => err instanceof TxError && err.reason === 'fee-too-low'

test('the core chain parameters are registered with the genesis value as their default', () => {
  const genesis = world({ params: { minFee: 7n, maxBlockTxs: 300, slashDoubleSignBps: 250 } }).genesis
  for (const name of [...Object.values(CHAIN_PARAMS), ...Object.values(STAKING_PARAMS)]) {
    const spec = registeredParam(name)
    assert.ok(spec?.genesis !== undefined, name)
    assert.equal(governedDefault(name, genesis.params), BigInt(genesis.params[spec.genesis] as bigint | number), name)
    assert.throws(() => governedDefault(name), /genesis/, 'no default without the genesis')
  }
  assert.equal(defaultOf(registeredParam(CHAIN_PARAMS.minFee)!, genesis.params), 7n)
  assert.equal(defaultOf(registeredParam(GOV.minDeposit)!, genesis.params), MIN_DEPOSIT, 'others keep their constant')
  // not governable: read by the BFT engine, PoH and epoch arithmetic at construction
  for (const name of ['chain.timeoutProposeMs', 'chain.hashesPerTick', 'chain.epochLength', 'staking.epochLength'])
    assert.equal(registeredParam(name), undefined, name)
})

test('chain.minFee raised by a proposal: the old fee is admitted and executed before its height, refused from it at admission and in a block', () => {
  const w = world({ params: { minFee: 1n } })
  w.rules.fee = 1n
  const [v0, v1] = w.validators as [Actor, Actor]
  const payer = w.outsider
  const H = PERIOD + DELAY + 10
  const id = propose(w, v0, { changes: [{ param: CHAIN_PARAMS.minFee, value: 5n }], applyAtHeight: H })
  allYes(w, id)
  advanceTo(w, H - 2)
  const pool = new Mempool(w.machine)
  // before H: the genesis floor; a fee of 1 is admitted and executed (block H-1)
  assert.equal(currentMinFee(w.state, w.genesis.params), 1n)
  const early = transfer(w, payer, 1n)
  pool.add(early.bytes, w.state)
  handBlock(w, (height, events) => deliver(w, early.tx, early.bytes, height, events))
  pool.update(w.state)
  assert.equal(pool.size, 0, 'included')
  // admitted on the state after H-1 (the floor is still 1), waiting when block H begins
  const pending = transfer(w, v1, 1n)
  pool.add(pending.bytes, w.state)
  const late = transfer(w, payer, 1n)
  const events = handBlock(w, (height, out) => {
    // the change applies in begin-block: this block's transactions pay the new floor
    assert.equal(w.machine.minFeeAt(w.state), 5n)
    assert.throws(
      () => w.machine.deliver(w.state, late.tx, { ...blockInfo(w, height), txHash: txHash(late.bytes) }, () => {}),
      isFeeTooLow,
    )
    assert.throws(() => w.machine.check(w.state, pending.tx, { exactNonce: true }), isFeeTooLow)
    const paying = transfer(w, payer, 5n)
    deliver(w, paying.tx, paying.bytes, height, out)
  })
  assert.equal(w.height, H)
  assert.deepEqual(events.find((e) => e.type === 'governance.param')?.attributes, {
    proposal: String(id),
    param: CHAIN_PARAMS.minFee,
    value: '5',
    previous: '1',
  })
  // the recheck after the block drops what pays the old floor
  pool.update(w.state)
  assert.equal(pool.has(txHash(pending.bytes)), false)
  // admission from H on
  assert.throws(() => pool.add(transfer(w, payer, 4n).bytes, w.state), isFeeTooLow)
  assert.throws(() => pool.precheck(transfer(w, v1, 1n).bytes, w.state), isFeeTooLow)
  pool.add(transfer(w, payer, 5n).bytes, w.state)
  assert.equal(pool.size, 1)
  // without a state (shape and cost only) the genesis floor applies
  assert.equal(w.machine.precheck(transfer(w, payer, 1n).tx).cost, 2n, 'fee + amount')
})

test('core chain parameters out of their bounds are refused at the edge; chain.maxBlockTxs never above its genesis value', () => {
  const w = world({ params: { maxBlockTxs: 300 } })
  const [a] = w.validators
  const change = (param: string, value: bigint) => proposeBody({ changes: [{ param, value }] })
  for (const [param, value] of [
    [CHAIN_PARAMS.minFee, 0n],
    [CHAIN_PARAMS.minFee, 1_000_001n],
    [CHAIN_PARAMS.maxBlockTxs, 301n],
    [CHAIN_PARAMS.maxBlockTxs, 15n],
    [STAKING_PARAMS.unbondingBlocks, BigInt(w.genesis.params.maxEvidenceAge) - 1n],
    [STAKING_PARAMS.slashDoubleSignBps, 10_001n],
    [STAKING_PARAMS.reporterRewardBps, 5_001n],
    [STAKING_PARAMS.maxValidators, 0n],
  ] as const)
    edgeRefused(w, a!, 'governance.propose', change(param, value), 'param-out-of-bounds')
  // in bounds: the genesis value itself and the smallest block allowed
  block(w, [[a!, 'governance.propose', change(CHAIN_PARAMS.maxBlockTxs, 300n)]])
  block(w, [[a!, 'governance.propose', change(CHAIN_PARAMS.maxBlockTxs, 16n)]])
  assert.equal(listProposals(w.state, {}).length, 2)
})

test('staking parameters: a slash and an unbonding period changed by a proposal apply from its height on, to what happens from then on', () => {
  const w = world()
  const [v0, v1, v2, v3] = w.validators as [Actor, Actor, Actor, Actor]
  const reporter = w.outsider
  const H = PERIOD + DELAY + 10
  const id = propose(w, v0, {
    changes: [
      { param: STAKING_PARAMS.slashDoubleSignBps, value: 2_000n },
      { param: STAKING_PARAMS.unbondingBlocks, value: 300n },
    ],
    applyAtHeight: H,
  })
  allYes(w, id)
  const doubleSign = (who: Actor, height: number) => {
    const vote = { chainId: w.genesis.chainId, height, round: 0, type: 'precommit' as const, validator: who.did }
    return {
      a: signVote(who.key, { ...vote, blockId: new Uint8Array(32).fill(1) }),
      b: signVote(who.key, { ...vote, blockId: new Uint8Array(32).fill(2) }),
    }
  }
  const slashOf = (events: ChainEvent[]) => events.find((e) => e.type === 'staking.slash')?.attributes.amount
  const before = H - 2 + w.genesis.params.unbondingBlocks
  advanceTo(w, H - 3)
  tx(w, v1, 'staking.unbond', { amount: 1_000n }) // at H-2, under the genesis period
  assert.deepEqual(unbondingOf(w.state, v1.did), [{ amount: 1_000n, completes: before }])
  // before H (at H-1): the genesis 5 %
  assert.equal(slashOf(tx(w, reporter, 'staking.evidence', doubleSign(v2, H - 3))), '500')
  assert.equal(w.height, H - 1)
  assert.equal(stakingRules(w.state, w.genesis.params).slashDoubleSignBps, w.genesis.params.slashDoubleSignBps)
  // from H: 20 % of the offender's 10 000, whatever the height of the offence
  assert.equal(slashOf(tx(w, reporter, 'staking.evidence', doubleSign(v3, H - 3))), '2000')
  assert.equal(w.height, H)
  assert.equal(validatorRecord(w.state, v3.did)?.bonded, 8_000n)
  // an unbonding started now waits the new period; the one started before keeps its height
  tx(w, v1, 'staking.unbond', { amount: 1_000n })
  assert.deepEqual(unbondingOf(w.state, v1.did), [
    { amount: 1_000n, completes: before },
    { amount: 1_000n, completes: H + 1 + 300 },
  ])
  assert.equal(currentMaxBlockTxs(w.state, w.genesis.params), w.genesis.params.maxBlockTxs, 'untouched')
})
