// Attacks on the governable core chain parameters (chain.*, staking.*), each through the real
// governance module on a real state machine (bank, staking, governance) with signed transactions:
// proposals whose change would brick the chain — empty or oversized blocks, a fee floor no one can
// pay (then nothing, not even the proposal to lower it again, could be sent), stake that leaves
// before evidence against it expires, a reward that overflows the uint64 supply, downtime rules
// that jail every validator for one missed block — are refused at the edge, whole, and change
// nothing. A hostile value inside the bounds (a validator stake no one has) does not empty the
// validator set either.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { isGoverned } from '../../src/governance/params.ts'
import { CHAIN_PARAMS, GOV, GOVERNED_PARAMS, STAKING_PARAMS, governedDefault } from '../../src/governance/registry.ts'
import { readProposal } from '../../src/governance/chain/state.ts'
import { checkGovernedValue } from '../../src/governance/params.ts'
import { registeredParam } from '../../src/governance/registry.ts'
import { currentMaxBlockTxs, currentMinFee, governedKey } from '../../src/chain/governed.ts'
import { epochSet, stakingRules } from '../../src/staking/staking.ts'
import {
  advanceTo,
  edgeRefused,
  propose,
  proposeBody,
  votes,
  world,
  type World,
} from '../../src/governance/chain/test-kit.ts'

const PERIOD = Number(governedDefault(GOV.votingPeriodBlocks))
const DELAY = Number(governedDefault(GOV.minApplyDelayBlocks))
const U64_MAX = 2n ** 64n - 1n

function noParamChanged(w: World): void {
  for (const p of GOVERNED_PARAMS) assert.equal(isGoverned(w.state, p.name), false, p.name)
}

test('proposals that would brick the chain are refused at the edge and change nothing', () => {
  const w = world({ params: { minFee: 1n, maxBlockTxs: 500 } })
  w.rules.fee = 1n
  const [a] = w.validators
  const { maxEvidenceAge } = w.genesis.params
  const bricks: Array<[string, unknown, string]> = [
    // blocks: none at all, too few for a vote, or larger than a consensus message may carry
    [CHAIN_PARAMS.maxBlockTxs, 0n, 'no transaction could ever be included'],
    [CHAIN_PARAMS.maxBlockTxs, 1n, 'one transaction per block'],
    [CHAIN_PARAMS.maxBlockTxs, 501n, 'above the genesis value the proposal message is sized for'],
    [CHAIN_PARAMS.maxBlockTxs, 100_001n, 'above every bound'],
    // fees: free spam, or a floor no one can pay (and so no proposal to lower it)
    [CHAIN_PARAMS.minFee, 0n, 'free transactions'],
    [CHAIN_PARAMS.minFee, U64_MAX, 'unpayable (2^64 itself cannot even be encoded in a transaction)'],
    [CHAIN_PARAMS.minFee, 1_000_001n, 'above the cap'],
    // stake that escapes slashing
    [STAKING_PARAMS.unbondingBlocks, 0n, 'withdraw at once'],
    [STAKING_PARAMS.unbondingBlocks, BigInt(maxEvidenceAge) - 1n, 'withdraw before evidence expires'],
    [STAKING_PARAMS.slashDoubleSignBps, 0n, 'double signing for free'],
    [STAKING_PARAMS.reporterRewardBps, 10_000n, 'reporting oneself refunds the slash'],
    // the validator set
    [STAKING_PARAMS.maxValidators, 0n, 'no validators'],
    [STAKING_PARAMS.minValidatorStake, 0n, 'unstaked validators'],
    [STAKING_PARAMS.minSignedBps, 10_000n, 'one missed block jails'],
    [STAKING_PARAMS.slashDowntimeBps, 10_000n, 'one outage burns every stake'],
    [STAKING_PARAMS.downtimeWindow, 0n, 'a window of nothing'],
    [STAKING_PARAMS.downtimeJailBlocks, 0n, 'jail of no length'],
    // money
    [STAKING_PARAMS.blockReward, 2n ** 63n, 'the supply overflows uint64 within blocks'],
    [STAKING_PARAMS.minBond, 0n, 'free registry entries'],
    // shapes
    [CHAIN_PARAMS.minFee, -1, 'negative'],
    [CHAIN_PARAMS.minFee, '5', 'a string'],
    [STAKING_PARAMS.maxValidators, ['100'], 'a list'],
  ]
  for (const [param, value, why] of bricks) {
    assert.doesNotThrow(
      () =>
        edgeRefused(
          w,
          a!,
          'governance.propose',
          proposeBody({ changes: [{ param, value: value as bigint }] }),
          'param-out-of-bounds',
        ),
      `${param} = ${String(value)} (${why})`,
    )
  }
  // one hostile change among good ones refuses the whole proposal
  edgeRefused(
    w,
    a!,
    'governance.propose',
    proposeBody({
      changes: [
        { param: GOV.votingPeriodBlocks, value: 10n },
        { param: CHAIN_PARAMS.maxBlockTxs, value: 0n },
      ],
    }),
    'param-out-of-bounds',
  )
  // not governable at all: read at construction by the BFT engine, PoH and epoch arithmetic
  for (const param of ['chain.timeoutProposeMs', 'chain.timeoutCommitMs', 'chain.hashesPerTick', 'chain.epochLength'])
    edgeRefused(w, a!, 'governance.propose', proposeBody({ changes: [{ param, value: 1n }] }), 'unknown-param')
  assert.equal(readProposal(w.state, 1), undefined)
  noParamChanged(w)
  assert.equal(currentMinFee(w.state, w.genesis.params), 1n)
  assert.equal(currentMaxBlockTxs(w.state, w.genesis.params), 500)
  // and were a larger value in state anyway, the block size read stays capped at the genesis value
  w.state.write(governedKey(CHAIN_PARAMS.maxBlockTxs), 100_000n)
  assert.equal(currentMaxBlockTxs(w.state, w.genesis.params), 500)
})

test('the CLI check (no genesis at hand) applies the fixed bounds; the chain adds the genesis ones', () => {
  const spec = registeredParam(CHAIN_PARAMS.maxBlockTxs)!
  const genesis = world({ params: { maxBlockTxs: 500 } }).genesis
  assert.equal(checkGovernedValue(spec, 600n), 600n, 'within the fixed bounds')
  assert.throws(() => checkGovernedValue(spec, 600n, genesis.params), /at most the genesis value/)
  assert.throws(() => checkGovernedValue(spec, 0n), /must be in 1\.\.100000/)
})

test('a hostile value within bounds does not empty the validator set: a stake no one has keeps the current set', () => {
  const w = world({ params: { epochLength: 20 } })
  const before = epochSet(w.state, 0)
  const H = PERIOD + DELAY + 10 // 115: the next epoch edge is 120
  const id = propose(w, w.validators[0]!, {
    changes: [{ param: STAKING_PARAMS.minValidatorStake, value: 10n ** 18n }],
    applyAtHeight: H,
  })
  votes(
    w,
    id,
    w.validators.map((v) => [v, 'yes']),
  )
  advanceTo(w, H)
  assert.equal(stakingRules(w.state, w.genesis.params).minValidatorStake, 10n ** 18n)
  const edge = advanceTo(w, 120)
  assert.ok(edge.some((e) => e.type === 'staking.set-kept'))
  assert.deepEqual(epochSet(w.state, 6), before, 'the set deciding the next epoch is the current one')
})
