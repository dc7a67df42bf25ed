import { test } from 'node:test'
import assert from 'node:assert/strict'
import { signTx } from '../chain/tx.ts'
import { TxError } from '../chain/errors.ts'
import type { StateMachine, BlockInfo, TxResult } from '../chain/host.ts'
import type { StateOverlay } from '../chain/state-view.ts'
import { signVote } from '../chain/bft/messages.ts'
import { actor, genesisState, makeGenesis, makeMachine, type Actor } from '../../test/helpers/chain.ts'
import { balanceOf, totalSupply } from '../bank/bank.ts'
import {
  validatorRecord,
  validatorSetAt,
  unbondingOf,
  epochSet,
  genesisValidatorSet,
  registeredValidators,
  validatorSetFromValue,
  validatorSetKey,
  stakingRules,
  STAKING_PARAMS,
} from './staking.ts'
import { governedKey } from '../chain/governed.ts'
import { encode } from '../core/codec.ts'

const [v1, v2, v3, v4] = [actor(), actor(), actor(), actor()] as [Actor, Actor, Actor, Actor]
const user = actor()
const params = {
  epochLength: 10,
  unbondingBlocks: 5,
  downtimeWindow: 10,
  minSignedBps: 5_000,
  downtimeJailBlocks: 3,
  blockReward: 1_000n,
}
const genesis = makeGenesis(
  [v1, v2, v3, v4],
  [
    [user, 100_000n],
    [v1, 1_000n],
    [v2, 1_000n],
    [v3, 1_000n],
    [v4, 1_000n],
  ],
  params,
)

function setup(): { machine: StateMachine; state: StateOverlay; nonces: Map<string, bigint> } {
  const machine = makeMachine(genesis)
  return { machine, state: genesisState(genesis, machine), nonces: new Map() }
}

function info(state: StateOverlay, height: number, signers: Actor[] | null = null): BlockInfo {
  return {
    chainId: genesis.chainId,
    height,
    time: height * 1000,
    proposer: v1.did,
    parentId: new Uint8Array(32),
    validators: validatorSetAt(state, height, genesis.params),
    lastCommitSigners: signers === null ? null : new Set(signers.map((s) => s.did)),
  }
}

/** Delivers a transaction (fee 1); a body that fails still uses the nonce and pays the fee. */
function send(s: ReturnType<typeof setup>, who: Actor, kind: string, body: unknown, height: number): TxResult {
  const nonce = s.nonces.get(who.did) ?? 0n
  const tx = signTx(who.key, { chainId: genesis.chainId, nonce, fee: 1n, kind, body })
  const result = s.machine.deliver(s.state, tx, { ...info(s.state, height), txHash: new Uint8Array(32) }, () => {})
  s.nonces.set(who.did, nonce + 1n)
  return result
}

/** Why a delivered transaction's body failed (undefined when it succeeded). */
function failure(result: TxResult): string | undefined {
  return result.ok ? undefined : result.error.reason
}

/** Runs begin and end block for `height` with the given precommit signers of height−1. */
function block(s: ReturnType<typeof setup>, height: number, signers: Actor[] | null, events: string[] = []): void {
  const ctx = {
    ...info(s.state, height, signers),
    emit: (e: { type: string; attributes: Record<string, string> }) =>
      events.push(`${e.type}:${e.attributes.reason ?? ''}:${e.attributes.validator ?? ''}`),
  }
  s.machine.beginBlock(s.state, ctx)
  s.machine.endBlock(s.state, ctx)
}

test('genesis validators form the epoch-0 set with power = stake', () => {
  const s = setup()
  const set = validatorSetAt(s.state, 1, genesis.params)
  assert.equal(set.validators.length, 4)
  assert.equal(set.totalPower, 40_000n)
})

test('bond, unbond with an unbonding period, withdraw after it completes', () => {
  const s = setup()
  send(s, user, 'staking.bond', { amount: 5_000n }, 1)
  assert.equal(validatorRecord(s.state, user.did)?.bonded, 5_000n)
  assert.equal(balanceOf(s.state, user.did), 100_000n - 5_000n - 1n)
  send(s, user, 'staking.unbond', { amount: 2_000n }, 2)
  assert.deepEqual(unbondingOf(s.state, user.did), [{ amount: 2_000n, completes: 7 }])
  assert.equal(failure(send(s, user, 'staking.withdraw', {}, 6)), 'nothing-to-withdraw')
  send(s, user, 'staking.withdraw', {}, 7)
  assert.equal(balanceOf(s.state, user.did), 100_000n - 5_000n + 2_000n - 4n, 'the failed withdraw paid its fee')
  assert.equal(failure(send(s, user, 'staking.unbond', { amount: 9_999n }, 8)), 'insufficient-stake')
  assert.equal(validatorRecord(s.state, user.did)?.bonded, 3_000n)
})

test('a bond below minBond is malformed (never admitted, never in a block); withdrawing everything leaves the registry', () => {
  const s = setup()
  const small = signTx(user.key, {
    chainId: genesis.chainId,
    nonce: 0n,
    fee: 1n,
    kind: 'staking.bond',
    body: { amount: genesis.params.minBond - 1n },
  })
  assert.throws(
    () => s.machine.deliver(s.state, small, { ...info(s.state, 1), txHash: new Uint8Array(32) }, () => {}),
    (e: unknown) => e instanceof TxError && e.reason === 'bond-too-small',
  )
  assert.equal(s.machine.precheck({ ...small, body: { amount: 5_000n } }).cost, 5_001n, 'fee + bond')
  assert.ok(!registeredValidators(s.state).includes(user.did))
  send(s, user, 'staking.bond', { amount: 5_000n }, 1)
  assert.ok(registeredValidators(s.state).includes(user.did))
  send(s, user, 'staking.unbond', { amount: 5_000n }, 2)
  assert.ok(registeredValidators(s.state).includes(user.did), 'unbonding stake is still slashable')
  send(s, user, 'staking.withdraw', {}, 7)
  assert.deepEqual(registeredValidators(s.state), [v1, v2, v3, v4].map((v) => v.did).sort())
})

test('the validator set changes only at epoch edges: a new bonder joins at the next epoch', () => {
  const s = setup()
  send(s, user, 'staking.bond', { amount: 5_000n }, 3)
  for (let h = 1; h <= 9; h++) block(s, h, h === 1 ? null : [v1, v2, v3, v4])
  assert.equal(validatorSetAt(s.state, 9, genesis.params).validators.length, 4, 'unchanged inside the epoch')
  block(s, 10, [v1, v2, v3, v4])
  assert.equal(validatorSetAt(s.state, 11, genesis.params).validators.length, 5)
  assert.equal(epochSet(s.state, 1)?.find((v) => v.did === user.did)?.power, 5_000n)
})

test('block rewards and fees are paid pro rata to stake; supply grows by exactly the reward', () => {
  const s = setup()
  const before = [v1, v2, v3, v4].map((v) => balanceOf(s.state, v.did))
  const supply = totalSupply(s.state)
  send(s, user, 'bank.transfer', { to: v2.did, amount: 10n }, 1) // fee 1 into the pool
  block(s, 1, null)
  const after = [v1, v2, v3, v4].map((v) => balanceOf(s.state, v.did))
  // pool = 1 fee + 1000 reward = 1001, four equal stakes → 250 each, 1 of dust to the proposer (v1).
  assert.deepEqual(
    after.map((b, i) => b - (before[i] as bigint)),
    [251n, 260n, 250n, 250n],
  )
  assert.equal(totalSupply(s.state), supply + 1_000n)
})

test('double-sign evidence slashes 5% of bonded and unbonding stake, tombstones, rewards the reporter', () => {
  const s = setup()
  // v3 starts unbonding some stake before the offence: it stays slashable.
  send(s, v3, 'staking.unbond', { amount: 2_000n }, 1)
  const vote = { chainId: genesis.chainId, height: 2, round: 0, type: 'precommit' as const, validator: v3.did }
  const a = signVote(v3.key, { ...vote, blockId: new Uint8Array(32).fill(1) })
  const b = signVote(v3.key, { ...vote, blockId: new Uint8Array(32).fill(2) })
  const supply = totalSupply(s.state)
  const reporterBefore = balanceOf(s.state, user.did)
  const events: string[] = []
  const tx = signTx(user.key, {
    chainId: genesis.chainId,
    nonce: 0n,
    fee: 1n,
    kind: 'staking.evidence',
    body: { a, b },
  })
  const result = s.machine.deliver(s.state, tx, { ...info(s.state, 3), txHash: new Uint8Array(32) }, (e) =>
    events.push(`${e.type}:${e.attributes.reason}`),
  )
  assert.ok(result.ok)
  assert.deepEqual(events, ['staking.slash:double-sign'])
  const record = validatorRecord(s.state, v3.did)
  assert.equal(record?.bonded, 7_600n, '5% of the 8 000 still bonded')
  assert.deepEqual(unbondingOf(s.state, v3.did), [{ amount: 1_900n, completes: 6 }], '5% of the 2 000 unbonding')
  assert.equal(record?.tombstoned, true)
  // 400 + 100 slashed: 10% (50) to the reporter, 450 burned; the fee went to the pool.
  assert.equal(balanceOf(s.state, user.did), reporterBefore + 50n - 1n)
  assert.equal(totalSupply(s.state), supply - 450n)
  // The same offence cannot be punished twice, and a tombstoned validator cannot unjail.
  const again = signTx(user.key, {
    chainId: genesis.chainId,
    nonce: 1n,
    fee: 1n,
    kind: 'staking.evidence',
    body: { a, b },
  })
  assert.equal(
    failure(s.machine.deliver(s.state, again, { ...info(s.state, 3), txHash: new Uint8Array(32) }, () => {})),
    'evidence-duplicate',
  )
  const unjail = signTx(v3.key, { chainId: genesis.chainId, nonce: 1n, fee: 1n, kind: 'staking.unjail', body: {} })
  assert.equal(
    failure(s.machine.deliver(s.state, unjail, { ...info(s.state, 4), txHash: new Uint8Array(32) }, () => {})),
    'tombstoned',
  )
  // At the next epoch edge the offender leaves the set.
  for (let h = 4; h <= 10; h++) block(s, h, [v1, v2, v3, v4])
  assert.equal(
    validatorSetAt(s.state, 11, genesis.params).validators.some((v) => v.did === v3.did),
    false,
  )
})

test('evidence that proves nothing fails (its fee charged) and slashes nobody', () => {
  const s = setup()
  const vote = { chainId: genesis.chainId, height: 2, round: 0, type: 'prevote' as const, validator: v2.did }
  const a = signVote(v2.key, { ...vote, blockId: new Uint8Array(32).fill(1) })
  const same = signVote(v2.key, { ...vote, blockId: new Uint8Array(32).fill(1) })
  const forged = { ...signVote(v1.key, { ...vote, blockId: new Uint8Array(32).fill(2) }), validator: v2.did }
  const otherChain = signVote(v2.key, { ...vote, chainId: 'elsewhere', blockId: new Uint8Array(32).fill(3) })
  const balance = balanceOf(s.state, user.did)
  for (const b of [same, forged, otherChain])
    assert.equal(failure(send(s, user, 'staking.evidence', { a, b }, 3)), 'evidence-invalid')
  assert.equal(validatorRecord(s.state, v2.did)?.bonded, 10_000n)
  assert.equal(balanceOf(s.state, user.did), balance - 3n, 'three fees')
})

test('downtime: missing more than half the precommits of a window slashes 1% and jails; unjail after the wait', () => {
  const s = setup()
  const events: string[] = []
  block(s, 1, null, events)
  for (let h = 2; h <= 7; h++) block(s, h, [v1, v2, v3], events) // v4 misses every precommit
  assert.ok(events.includes(`staking.slash:downtime:${v4.did}`), events.join('\n'))
  const record = validatorRecord(s.state, v4.did)
  assert.equal(record?.bonded, 9_900n)
  assert.ok((record?.jailedUntil ?? 0) > 0)
  const jailedUntil = record?.jailedUntil ?? 0
  assert.equal(failure(send(s, v4, 'staking.unjail', {}, jailedUntil - 1)), 'still-jailed')
  assert.equal(failure(send(s, v4, 'staking.unjail', {}, jailedUntil)), undefined)
  assert.equal(validatorRecord(s.state, v4.did)?.jailedUntil, 0)
})

test('light-client helpers: the genesis set is the stored set of epoch 0; a stored set decodes from its value, and junk does not', () => {
  const { state } = setup()
  assert.deepEqual(genesisValidatorSet(genesis), validatorSetAt(state, 1, genesis.params))
  const stored = state.get(validatorSetKey(0))
  assert.ok(stored !== undefined)
  assert.deepEqual(validatorSetFromValue(stored), genesisValidatorSet(genesis))
  for (const junk of [
    encode({ did: v1.did }),
    encode([{ did: v1.did, power: 0 }]),
    encode([{ did: 'did:key:nope', power: 5 }]),
    encode([
      { did: v1.did, power: 5 },
      { did: v1.did, power: 5 },
    ]),
    encode([]),
    new Uint8Array([0xff]),
  ])
    assert.throws(() => validatorSetFromValue(junk), Error, String(junk))
})

test('governed staking parameters are read from state where used, the genesis value until set', () => {
  const s = setup()
  assert.deepEqual(stakingRules(s.state, genesis.params), {
    minBond: genesis.params.minBond,
    unbondingBlocks: 5,
    slashDoubleSignBps: genesis.params.slashDoubleSignBps,
    reporterRewardBps: genesis.params.reporterRewardBps,
    slashDowntimeBps: genesis.params.slashDowntimeBps,
    downtimeJailBlocks: 3,
    downtimeWindow: 10,
    minSignedBps: 5_000,
    blockReward: 1_000n,
    minValidatorStake: genesis.params.minValidatorStake,
    maxValidators: genesis.params.maxValidators,
  })
  // what an applied proposal writes (the governance module's writeGoverned)
  const set = (name: string, value: bigint): void => s.state.write(governedKey(name), value)
  set(STAKING_PARAMS.minBond, 6_000n)
  set(STAKING_PARAMS.blockReward, 0n)
  set(STAKING_PARAMS.maxValidators, 3n)
  set(STAKING_PARAMS.unbondingBlocks, 50n)
  // a bond below the governed minimum is invalid: refused at the edge, never in a block
  const small = signTx(user.key, {
    chainId: genesis.chainId,
    nonce: 0n,
    fee: 1n,
    kind: 'staking.bond',
    body: { amount: 5_000n },
  })
  assert.throws(
    () => s.machine.precheck(small, s.state),
    (e: unknown) => e instanceof TxError && e.reason === 'bond-too-small' && /6000/.test(e.message),
  )
  assert.equal(s.machine.precheck(small).cost, 5_001n, 'without a state: shape and cost only')
  send(s, user, 'staking.bond', { amount: 16_000n }, 1)
  send(s, user, 'staking.unbond', { amount: 1_000n }, 1)
  assert.deepEqual(unbondingOf(s.state, user.did), [{ amount: 1_000n, completes: 51 }], 'the governed period')
  // no reward minted; at the epoch edge at most 3 validators, the largest stakes first
  const supply = totalSupply(s.state)
  for (let h = 1; h <= 10; h++) block(s, h, h === 1 ? null : [v1, v2, v3, v4])
  assert.equal(totalSupply(s.state), supply, 'blockReward 0')
  const next = validatorSetAt(s.state, 11, genesis.params).validators
  assert.equal(next.length, 3)
  assert.ok(
    next.some((v) => v.did === user.did),
    '15 000 bonded outranks the 10 000 of each genesis validator',
  )
})
