/**
 * The registry of governed parameters: every parameter a `governance.propose` may change, with
 * its bounds and the default that holds until an accepted proposal sets it. A change naming
 * anything else, or a value outside its bounds, is refused at the edge (decodeBody).
 *
 * Governance's own rules (`governance.*`) are read by the governance module at use time, so a
 * change to them takes effect for the next proposal, deposit, vote or tally. The task-policy
 * parameters (`arena.*`, `fl.*`) and the model allow-list are declared here for the modules that
 * read them by name with `governedUint(state, name, governedDefault(name))` /
 * `governedList(...)`; until a consumer reads one, changing it only records the new value.
 *
 * The core chain parameters (`chain.*`, `staking.*`; `genesis` names the ChainParams field) default
 * to the chain's GENESIS value, not to a constant: their readers (host.ts and mempool.ts for the
 * fee floor, ChainApp for the block size, staking.ts) pass the genesis parameter as the fallback,
 * and `defaultOf(spec, genesis.params)` is their default (their `default` field holds the
 * DEFAULT_PARAMS value, the default genesis's). Their bounds keep a proposal from bricking the
 * chain: a fee floor no one can pay (then no proposal could lower it again), an empty block, stake
 * that can leave before evidence against it expires, a reward that would overflow the uint64
 * supply. `chain.maxBlockTxs` may only go down, or back up to its genesis value: the runtime
 * sizes the largest consensus message it reads from the genesis value (runtime.ts
 * `maxProposalBytes`), so a larger block would not get through. Consensus timeouts and proof of
 * history parameters are not governable (the BFT engine and PoH services read them once, at
 * construction; see docs/governance.md), nor are the epoch length and the evidence age.
 *
 * The defaults are sized for a devnet: a vote of 100 blocks lasts about 40 s of a devnet's 0.4 s
 * blocks, long enough to vote by hand with `donghae gov vote`. A long-lived network raises
 * `governance.votingPeriodBlocks` and `governance.depositPeriodBlocks` with its first proposal
 * (ChainParams has no governance fields, so a genesis cannot).
 */
import { InvalidInputError } from '../core/errors.ts'
import { DEFAULT_PARAMS, type ChainParams } from '../chain/genesis.ts'
import { CHAIN_PARAMS } from '../chain/governed.ts'
import { STAKING_PARAMS } from '../staking/staking.ts'
import { MODEL_NAME_PATTERN } from '../inference/chain/decode.ts'
import type { GovernedParam, GovernedValue } from './params.ts'

/**
 * A registered parameter: its spec and the value it has until governance sets it. For a
 * parameter with `genesis`, `default` is the DEFAULT_PARAMS value; the chain's own default is
 * `defaultOf(spec, genesis.params)`.
 */
export interface RegisteredParam extends GovernedParam {
  default: GovernedValue
}

export { CHAIN_PARAMS, STAKING_PARAMS }

/** Names of the governance module's own parameters. */
export const GOV = {
  votingPeriodBlocks: 'governance.votingPeriodBlocks',
  depositPeriodBlocks: 'governance.depositPeriodBlocks',
  minDeposit: 'governance.minDeposit',
  minInitialDepositBps: 'governance.minInitialDepositBps',
  minApplyDelayBlocks: 'governance.minApplyDelayBlocks',
  quorumBps: 'governance.quorumBps',
  thresholdBps: 'governance.thresholdBps',
  vetoBps: 'governance.vetoBps',
} as const

/** The model allow-list: model names or CIDs; empty = every registered model is allowed. */
// the inference registry reads it (below governance in the layer order), so the name is defined there
export { MODEL_ALLOW_LIST } from '../inference/chain/registry.ts'
import { LINEAGE_SHARE_BPS, LINEAGE_SHARE_PARAM } from '../inference/chain/lineage.ts'
import { MODEL_ALLOW_LIST } from '../inference/chain/registry.ts'

/** Task-policy parameters other modules read by name. */
export const TASK_POLICY = {
  arenaMinRewardPool: 'arena.minRewardPool',
  arenaMaxTasksOpen: 'arena.maxTasksOpen',
  flMinRewardPool: 'fl.minRewardPool',
  flMaxRoundBlocks: 'fl.maxRoundBlocks',
} as const

const MAX_AMOUNT = 10n ** 18n
const uint = (name: string, fallback: bigint, min: bigint, max: bigint, description: string): RegisteredParam => ({
  name,
  kind: 'uint',
  default: fallback,
  min,
  max,
  description,
})

/** A uint parameter whose default is the genesis parameter `key`. */
const genesisUint = (
  name: string,
  key: keyof ChainParams,
  min: bigint,
  max: bigint,
  description: string,
  genesisBounds?: GovernedParam['genesisBounds'],
): RegisteredParam => {
  const fallback = DEFAULT_PARAMS[key]
  return {
    ...uint(name, typeof fallback === 'bigint' ? fallback : BigInt(fallback as number), min, max, description),
    genesis: key,
    ...(genesisBounds === undefined ? {} : { genesisBounds }),
  }
}

const minOf = (a: bigint, b: bigint): bigint => (a < b ? a : b)

/** Fewest transactions a governed block size may go down to (room for votes and a proposal to undo it). */
export const MIN_BLOCK_TXS = 16n

export const GOVERNED_PARAMS: readonly RegisteredParam[] = Object.freeze([
  uint(
    GOV.votingPeriodBlocks,
    100n,
    2n,
    1_000_000n,
    'blocks a proposal is open for votes once its deposit is complete',
  ),
  uint(GOV.depositPeriodBlocks, 200n, 1n, 1_000_000n, 'blocks a proposal has to collect governance.minDeposit'),
  uint(GOV.minDeposit, 10_000n, 1n, MAX_AMOUNT, 'deposit a proposal needs before voting starts, base units'),
  uint(
    GOV.minInitialDepositBps,
    2_500n,
    0n,
    10_000n,
    'share of governance.minDeposit a proposal must bring itself, basis points',
  ),
  uint(
    GOV.minApplyDelayBlocks,
    5n,
    1n,
    1_000_000n,
    'fewest blocks between the end of voting and the height a change applies at',
  ),
  uint(GOV.quorumBps, 3_340n, 500n, 10_000n, 'share of bonded stake that must vote (abstain counts), basis points'),
  uint(GOV.thresholdBps, 5_000n, 5_000n, 10_000n, 'yes must be above this share of yes + no + veto, basis points'),
  uint(GOV.vetoBps, 3_340n, 1_000n, 10_000n, 'veto above this share of all votes burns the deposit, basis points'),
  {
    name: MODEL_ALLOW_LIST,
    kind: 'list',
    default: Object.freeze([]) as readonly string[],
    maxItems: 256,
    maxItemChars: 64,
    itemPattern: MODEL_NAME_PATTERN,
    itemDescription: 'a model name or CID (lowercase letters, digits, ".", "_" or "-")',
    description: 'models the network serves, by name or CID; empty means every registered model',
  },
  uint(
    LINEAGE_SHARE_PARAM,
    LINEAGE_SHARE_BPS,
    0n,
    5_000n,
    "share of a worker's earnings on a model with lineage (an arena winner) paid to its contributors, basis points",
  ),
  uint(TASK_POLICY.arenaMinRewardPool, 1_000n, 1n, MAX_AMOUNT, 'smallest reward pool of an arena task, base units'),
  uint(TASK_POLICY.arenaMaxTasksOpen, 64n, 1n, 10_000n, 'most arena tasks open at once'),
  uint(TASK_POLICY.flMinRewardPool, 1_000n, 1n, MAX_AMOUNT, 'smallest reward pool of a federated-learning task'),
  uint(TASK_POLICY.flMaxRoundBlocks, 200n, 5n, 100_000n, 'longest federated-learning round, in blocks'),
  // ---- core chain parameters: default = the genesis value ----
  genesisUint(
    CHAIN_PARAMS.minFee,
    'minFee',
    1n,
    1_000_000n,
    'smallest transaction fee, base units (admission and block execution); capped so validators can always pay to lower it again',
  ),
  genesisUint(CHAIN_PARAMS.maxBlockTxs, 'maxBlockTxs', 1n, 100_000n, 'most transactions in a block', {
    of: (p) => ({ min: minOf(MIN_BLOCK_TXS, BigInt(p.maxBlockTxs)), max: BigInt(p.maxBlockTxs) }),
    rule: `at least ${MIN_BLOCK_TXS} or the genesis value if lower; at most the genesis value, which sizes the largest consensus message`,
  }),
  genesisUint(
    STAKING_PARAMS.minBond,
    'minBond',
    1n,
    MAX_AMOUNT,
    'smallest staking.bond, base units (bonds from then on)',
  ),
  genesisUint(
    STAKING_PARAMS.unbondingBlocks,
    'unbondingBlocks',
    1n,
    10_000_000n,
    'blocks before unbonded stake can be withdrawn (unbondings started from then on)',
    {
      of: (p) => ({ min: minOf(BigInt(p.maxEvidenceAge), BigInt(p.unbondingBlocks)) }),
      rule: 'at least maxEvidenceAge or the genesis value if lower: stake stays slashable while evidence against it is accepted',
    },
  ),
  genesisUint(
    STAKING_PARAMS.slashDoubleSignBps,
    'slashDoubleSignBps',
    100n,
    10_000n,
    'share of bonded and unbonding stake slashed for double signing, basis points (evidence delivered from then on)',
  ),
  genesisUint(
    STAKING_PARAMS.reporterRewardBps,
    'reporterRewardBps',
    0n,
    5_000n,
    'share of a double-sign slash paid to the reporter, basis points (at most half, or reporting oneself would pay)',
  ),
  genesisUint(
    STAKING_PARAMS.slashDowntimeBps,
    'slashDowntimeBps',
    0n,
    1_000n,
    'share of stake slashed for downtime, basis points (at most 10 %: an outage must not wipe out the set)',
  ),
  genesisUint(
    STAKING_PARAMS.downtimeJailBlocks,
    'downtimeJailBlocks',
    1n,
    1_000_000n,
    'blocks a validator jailed for downtime waits before staking.unjail (jailings from then on)',
  ),
  genesisUint(
    STAKING_PARAMS.downtimeWindow,
    'downtimeWindow',
    10n,
    1_000_000n,
    'blocks of the window in which a validator must sign staking.minSignedBps of the heights',
  ),
  genesisUint(
    STAKING_PARAMS.minSignedBps,
    'minSignedBps',
    0n,
    9_000n,
    'share of the downtime window a validator must sign, basis points (at most 90 %: one missed block never jails)',
  ),
  genesisUint(
    STAKING_PARAMS.blockReward,
    'blockReward',
    0n,
    1_000_000_000n,
    'new tokens per block for the validators, base units (capped so the supply stays within uint64)',
  ),
  genesisUint(
    STAKING_PARAMS.minValidatorStake,
    'minValidatorStake',
    1n,
    MAX_AMOUNT,
    'bonded stake below which a validator is left out of the set (from the next epoch; an empty set keeps the current one)',
  ),
  genesisUint(STAKING_PARAMS.maxValidators, 'maxValidators', 1n, 1_000n, 'largest validator set (from the next epoch)'),
])

const BY_NAME: ReadonlyMap<string, RegisteredParam> = new Map(GOVERNED_PARAMS.map((p) => [p.name, p]))

/** The registered parameter called `name`, or undefined. */
export function registeredParam(name: string): RegisteredParam | undefined {
  return BY_NAME.get(name)
}

/** The default of a parameter on a chain with these genesis parameters: its genesis value, or its fixed default. */
export function defaultOf(spec: RegisteredParam, params: ChainParams): GovernedValue {
  if (spec.genesis === undefined) return spec.default
  const value = params[spec.genesis]
  return typeof value === 'bigint' ? value : BigInt(value as number)
}

/**
 * The default of a registered uint parameter (what `governedUint` falls back to). A parameter
 * that defaults to its genesis value needs the chain's genesis `params`.
 */
export function governedDefault(name: string, params?: ChainParams): bigint {
  const spec = BY_NAME.get(name)
  if (spec === undefined || typeof spec.default !== 'bigint')
    throw new InvalidInputError(`${name} is not a registered uint parameter`)
  if (spec.genesis === undefined) return spec.default
  if (params === undefined)
    throw new InvalidInputError(`${name} defaults to the genesis params.${spec.genesis}: pass the chain's parameters`)
  return defaultOf(spec, params) as bigint
}
