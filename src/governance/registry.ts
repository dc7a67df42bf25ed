/**
 * The registry of governed parameters: every parameter a `governance.propose` may change, with
 * its bounds and the default that holds until an accepted proposal sets it. A change naming
 * anything else, or a value outside its bounds, is refused at the edge (decodeBody).
 *
 * Governance's own rules (`governance.*`) are read by the governance module at use time, so a
 * change to them takes effect for the next proposal, deposit, vote or tally. The task-policy
 * parameters (`arena.*`, `fl.*`) and the model allow-list are declared here for the modules that
 * read them by name with `governedUint(state, name, governedDefault(name))` /
 * `governedList(…)`; until a consumer reads one, changing it only records the new value.
 *
 * The defaults are sized for a devnet: a vote of 100 blocks lasts about 40 s of a devnet's 0.4 s
 * blocks, long enough to vote by hand with `donghae gov vote`. A long-lived network raises
 * `governance.votingPeriodBlocks` and `governance.depositPeriodBlocks` with its first proposal
 * (ChainParams has no governance fields, so a genesis cannot).
 */
import { InvalidInputError } from '../core/errors.ts'
import { MODEL_NAME_PATTERN } from '../inference/chain/decode.ts'
import type { GovernedParam, GovernedValue } from './params.ts'

/** A registered parameter: its spec and the value it has until governance sets it. */
export interface RegisteredParam extends GovernedParam {
  default: GovernedValue
}

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
])

const BY_NAME: ReadonlyMap<string, RegisteredParam> = new Map(GOVERNED_PARAMS.map((p) => [p.name, p]))

/** The registered parameter called `name`, or undefined. */
export function registeredParam(name: string): RegisteredParam | undefined {
  return BY_NAME.get(name)
}

/** The default of a registered uint parameter (what `governedUint` falls back to). */
export function governedDefault(name: string): bigint {
  const spec = BY_NAME.get(name)
  if (spec === undefined || typeof spec.default !== 'bigint')
    throw new InvalidInputError(`${name} is not a registered uint parameter`)
  return spec.default
}
