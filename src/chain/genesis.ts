/**
 * The genesis document: chain id, start time, parameters, initial balances and validators, and
 * optionally the inference market's initial models and workers and AI-Block's initial families
 * and parameter blocks (`experts`: nonces as decimal strings, signatures as hex in the JSON).
 * JSON on disk (amounts as decimal strings, since JSON numbers cannot hold 64-bit integers).
 *
 * The parameters that came after the first chains (`OPTIONAL_PARAM_KEYS`: the inference ones and
 * `minBond`) are optional in the JSON (missing -> default) and `genesisToJson` leaves out those
 * equal to their default, so a genesis written before them parses and hashes exactly as it did.
 */
import { readFile } from 'node:fs/promises'
import { parseUint64 } from '../core/uint.ts'
import { sha256 } from '../core/hash.ts'
import { encode } from '../core/codec.ts'
import { fromHex, toHex } from '../core/bytes.ts'
import { parseDidKey } from '../identity/did-key.ts'
import { GenesisError } from './errors.ts'

export interface ChainParams {
  /** Smallest transaction fee, base units. */
  minFee: bigint
  /** Blocks per epoch; the validator set changes only between epochs. */
  epochLength: number
  /** Blocks before unbonded stake can be withdrawn (it stays slashable until then). */
  unbondingBlocks: number
  /** Stake below which a validator is not in the set. */
  minValidatorStake: bigint
  /**
   * Smallest amount one `staking.bond` may add: each bonding account is an entry in the staking
   * registry that every epoch edge reads, so entries must cost locked stake.
   */
  minBond: bigint
  maxValidators: number
  /** Fraction of stake slashed for double signing, in basis points (500 = 5%). */
  slashDoubleSignBps: number
  /** Fraction slashed for downtime, basis points. */
  slashDowntimeBps: number
  /** Downtime window in blocks, and the share of them a validator must sign (basis points). */
  downtimeWindow: number
  minSignedBps: number
  /** Blocks a validator jailed for downtime must wait before `staking.unjail`. */
  downtimeJailBlocks: number
  /** Share of a slash paid to whoever submitted the evidence, basis points. */
  reporterRewardBps: number
  /** New tokens per block, shared by validators pro rata to stake with the block's fees. */
  blockReward: bigint
  /** Oldest evidence accepted, in blocks. */
  maxEvidenceAge: number
  /** Proof of history: hashes per tick and the nominal tick rate. */
  hashesPerTick: number
  ticksPerSecond: number
  /** Consensus timeouts, milliseconds: base for round 0 and the increment per round. */
  timeoutProposeMs: number
  timeoutProposeDeltaMs: number
  timeoutPrevoteMs: number
  timeoutPrevoteDeltaMs: number
  timeoutPrecommitMs: number
  timeoutPrecommitDeltaMs: number
  /** Pause after a commit before the next height (late precommits are collected meanwhile). */
  timeoutCommitMs: number
  /** Largest number of transactions in a block. */
  maxBlockTxs: number
  /**
   * No empty blocks (CometBFT's `create_empty_blocks_interval`): with a value above 0, a height
   * with no transaction ready and no module's due work waits this long before proposing an empty
   * block; a transaction or due work starts it at once. 0: a block after every commit timeout,
   * whether there is anything in it or not (the format before this parameter existed).
   */
  emptyBlockIntervalMs: number
  /**
   * The height from which settled jobs' records are pruned once their windows close
   * (src/inference/chain/prune.ts). 0: never - the default, so a chain begun before pruning
   * existed executes its blocks as they were made (their state roots do not include it); new
   * networks (`donghae genesis`, devnets) start at 1.
   */
  pruneFromHeight: number
  // ---- inference market (src/inference/chain/module.ts); unbonding reuses `unbondingBlocks` ----
  /** Bond below which a worker is not scheduled. */
  minWorkerBond: bigint
  /** Most receipts in one `inference.settle` (a typical receipt is ~620 bytes; a transaction <= 64 KiB). */
  maxReceiptsPerSettle: number
  /** A receipt settles only while block time <= job.deadline + this, milliseconds. */
  settleWindowMs: number
  /** Share of each fee kept by the protocol (the inference treasury), basis points. */
  protocolShareBps: number
  /** Results always audited while a worker's streak is below this; then with probability 1/streak. */
  auditThreshold: number
  /** Smallest quorum that resolves a dispute. */
  quorumSize: number
  /** Fraction of bonded and unbonding stake slashed from the loser of a dispute, basis points. */
  workerSlashBps: number
  /** Share of a dispute's slash paid to the winning side, basis points (the rest is burned). */
  challengerRewardBps: number
  /** Blocks a slashed worker is not scheduled. */
  quarantineBlocks: number
  /** Paid from the treasury to the first auditor who confirms a result (at most the job's protocol share). */
  auditReward: bigint
  /** New tokens per epoch, split among the workers who served jobs pro rata to their score. */
  workerRewardPerEpoch: bigint
  /** A worker active within this many blocks counts as recent (seed 001's "last hour"). */
  recencyBlocks: number
  /** Lowest price a model may be registered with (no free jobs to wash usage with). */
  minModelPrice: bigint
  /** Locked from a model's publisher while it is registered; lost if a quorum of workers finds it bad. */
  modelDeposit: bigint
  /** Smallest client deposit for a gateway, base units. */
  minDeposit: bigint
  /** A deposit asked back stays spendable by settlements this long (block time, ms) before it can be reclaimed. */
  depositUnlockMs: number
  /** Longest a job may run before its deadline, ms: workers refuse jobs whose deadline is further away. */
  maxJobTtlMs: number
  /** After a job's deadline, its gateway alone may settle it for this long (ms); then its worker may too. */
  gatewayGraceMs: number
  /** Least chance a settled result is audited once the worker's streak is past `auditThreshold`, ppm. */
  auditFloorPpm: number
  /** Drawn auditors per audited job; the i-th may answer from `i × auditSlotBlocks` blocks after the first. */
  auditCandidates: number
  auditSlotBlocks: number
  /** Blocks after a dispute within which the drawn quorum's receipts must be submitted. */
  disputeWindowBlocks: number
  /** What a client pays to have one of its own settled jobs audited (refunded if the worker loses). */
  challengeFee: bigint
  /** A worker's rewards never exceed this share of the fees outside clients paid it, basis points. */
  rewardCapBps: number
  /** Share of a worker's usage kept from one epoch to the next, basis points. */
  usageKeepBps: number
  /** Blocks during which workers refuse a gateway that dispatched more than a deposit held. */
  overdraftBanBlocks: number
  // ---- AI-Block experts (src/experts/chain/module.ts) ----
  /** Bond locked with an `experts.propose`: returned when accepted, stale or expired; kept when refused. */
  polBond: bigint
  /** Leading zero bits a parameter block's proof-of-work digest needs (src/experts/pow.ts). */
  polDifficultyBits: number
  /** Blocks a proposal stays open for attestations before it expires. */
  polWindowBlocks: number
  /** Largest |claimed - median| loss accepted, micro-nats; past it the claim is forged. */
  polToleranceMicroNats: bigint
  /** Largest |claimed - median| top-1 accuracy accepted, ppm. */
  polAccuracyTolerancePpm: number
  /** Least loss improvement (micro-nats) a proposal replacing blocks must bring (the seed's delta). */
  polMinGainMicroNats: bigint
  /** Paid into the experts pool per routing a gateway reports with `experts.usage`. */
  expertCallPrice: bigint
  /** A block used within this many blocks counts as recent for its reward. */
  expertRecencyBlocks: number
}

/** A model registered at genesis: an `inference.registerModel` body plus its owner. */
export interface GenesisModel {
  owner: string
  cid: string
  name: string
  version: string
  price: bigint
  /** The rest is checked by the inference module when it loads the genesis. */
  kind: string
  inputs: unknown
  outputs: unknown
  tolerance: unknown
  size: number
  /** Text models: CID of the tokenizer JSON (checked by the module like the rest). */
  codec?: unknown
  /** Language models: files by name -> CID, fee per prompt token, context window (checked by the module). */
  files?: unknown
  promptPrice?: unknown
  contextLength?: unknown
}

/** A worker bonded at genesis (the bond is minted, not taken from a balance). */
export interface GenesisWorker {
  did: string
  bond: bigint
  ep: string
  /** The runtime its receipts will name (e.g. `onnxruntime-node/1.30.0 linux-x64`); declared later if absent. */
  runtime?: string
  /** CIDs of the genesis models it serves from the start. */
  models?: string[]
}

export interface GenesisInference {
  models: GenesisModel[]
  workers: GenesisWorker[]
}

/** A validation score (src/experts/types.ts PolScore; this layer sits below experts). */
export interface GenesisPolScore {
  lossMicroNats: bigint
  accuracyPpm: number
}

/**
 * A parameter block header at genesis (src/experts/types.ts ParamBlockHeader, checked by the
 * experts module): the fields JSON cannot hold as they are, typed here.
 */
export interface GenesisParamHeader {
  nonce: bigint
  payloadSig: Uint8Array
}

/**
 * AI-Block families and blocks at genesis (checked by the experts module: a MetaBlockBody per
 * meta, a ParamBlockHeader per block; no bond, no proof of work, signatures must verify).
 */
export interface GenesisExperts {
  /** MetaBlocks, in order (a family's version 1 before its version 2). */
  metas: Array<{ owner: string; body: unknown }>
  /** Parameter blocks, accepted as they are, with their score if known. */
  blocks: Array<{ header: GenesisParamHeader; score?: GenesisPolScore }>
}

export interface GenesisDoc {
  chainId: string
  /** Milliseconds since the Unix epoch. */
  genesisTime: number
  params: ChainParams
  accounts: Array<{ did: string; balance: bigint }>
  validators: Array<{ did: string; stake: bigint }>
  /** Initial models and workers of the inference market. */
  inference?: GenesisInference
  /** Initial AI-Block families and parameter blocks. */
  experts?: GenesisExperts
}

/**
 * The empty-block interval new networks get (`donghae devnet`, `donghae genesis`): an idle chain
 * makes one block a minute; a transaction or a module's due work makes one at once.
 */
export const IDLE_EMPTY_BLOCK_INTERVAL_MS = 60_000

export const DEFAULT_PARAMS: ChainParams = {
  minFee: 1n,
  epochLength: 20,
  unbondingBlocks: 100,
  minValidatorStake: 1_000n,
  minBond: 1_000n,
  maxValidators: 100,
  slashDoubleSignBps: 500,
  slashDowntimeBps: 100,
  downtimeWindow: 50,
  minSignedBps: 5_000,
  downtimeJailBlocks: 20,
  reporterRewardBps: 1_000,
  blockReward: 1_000n,
  maxEvidenceAge: 100,
  hashesPerTick: 2_000,
  ticksPerSecond: 50,
  timeoutProposeMs: 1_000,
  timeoutProposeDeltaMs: 500,
  timeoutPrevoteMs: 500,
  timeoutPrevoteDeltaMs: 250,
  timeoutPrecommitMs: 500,
  timeoutPrecommitDeltaMs: 250,
  timeoutCommitMs: 200,
  maxBlockTxs: 5_000,
  emptyBlockIntervalMs: 0,
  pruneFromHeight: 0,
  minWorkerBond: 1_000n,
  maxReceiptsPerSettle: 96,
  settleWindowMs: 3_600_000,
  protocolShareBps: 500,
  auditThreshold: 30,
  quorumSize: 3,
  workerSlashBps: 1_000,
  challengerRewardBps: 5_000,
  quarantineBlocks: 600,
  auditReward: 10n,
  workerRewardPerEpoch: 1_000n,
  recencyBlocks: 60,
  minModelPrice: 1n,
  modelDeposit: 1_000n,
  minDeposit: 100n,
  depositUnlockMs: 7_200_000,
  maxJobTtlMs: 300_000,
  gatewayGraceMs: 60_000,
  auditFloorPpm: 35_000,
  auditCandidates: 3,
  auditSlotBlocks: 3,
  disputeWindowBlocks: 20,
  challengeFee: 20n,
  rewardCapBps: 400,
  usageKeepBps: 7_500,
  overdraftBanBlocks: 17_280,
  polBond: 1_000n,
  polDifficultyBits: 12,
  polWindowBlocks: 30,
  polToleranceMicroNats: 500n,
  polAccuracyTolerancePpm: 2_000,
  polMinGainMicroNats: 1_000n,
  expertCallPrice: 1n,
  expertRecencyBlocks: 300,
}

const BIGINT_PARAMS = [
  'minFee',
  'minValidatorStake',
  'minBond',
  'blockReward',
  'minWorkerBond',
  'auditReward',
  'workerRewardPerEpoch',
  'minModelPrice',
  'modelDeposit',
  'minDeposit',
  'challengeFee',
  'polBond',
  'polToleranceMicroNats',
  'polMinGainMicroNats',
  'expertCallPrice',
] as const

/** Parameters that may be missing from the JSON (default) and are written only when not the default. */
export const INFERENCE_PARAM_KEYS = [
  'minWorkerBond',
  'maxReceiptsPerSettle',
  'settleWindowMs',
  'protocolShareBps',
  'auditThreshold',
  'quorumSize',
  'workerSlashBps',
  'challengerRewardBps',
  'quarantineBlocks',
  'auditReward',
  'workerRewardPerEpoch',
  'recencyBlocks',
  'minModelPrice',
  'modelDeposit',
  'minDeposit',
  'depositUnlockMs',
  'maxJobTtlMs',
  'gatewayGraceMs',
  'auditFloorPpm',
  'auditCandidates',
  'auditSlotBlocks',
  'disputeWindowBlocks',
  'challengeFee',
  'rewardCapBps',
  'usageKeepBps',
  'overdraftBanBlocks',
] as const satisfies ReadonlyArray<keyof ChainParams>

/** The AI-Block experts parameters (optional like the inference ones). */
export const EXPERTS_PARAM_KEYS = [
  'polBond',
  'polDifficultyBits',
  'polWindowBlocks',
  'polToleranceMicroNats',
  'polAccuracyTolerancePpm',
  'polMinGainMicroNats',
  'expertCallPrice',
  'expertRecencyBlocks',
] as const satisfies ReadonlyArray<keyof ChainParams>

/** Parameters that may be missing from the JSON: the inference ones and those added since. */
export const OPTIONAL_PARAM_KEYS = [
  ...INFERENCE_PARAM_KEYS,
  'minBond',
  'emptyBlockIntervalMs',
  'pruneFromHeight',
  ...EXPERTS_PARAM_KEYS,
] as const satisfies ReadonlyArray<keyof ChainParams>

const isOptionalParam = (key: string): boolean => (OPTIONAL_PARAM_KEYS as readonly string[]).includes(key)

/** The genesis as JSON-safe values (bigints as decimal strings). */
export function genesisToJson(doc: GenesisDoc): unknown {
  const params: Record<string, unknown> = { ...doc.params }
  for (const key of OPTIONAL_PARAM_KEYS) if (doc.params[key] === DEFAULT_PARAMS[key]) delete params[key]
  for (const key of BIGINT_PARAMS) if (key in params) params[key] = doc.params[key].toString()
  const json: Record<string, unknown> = {
    chainId: doc.chainId,
    genesisTime: doc.genesisTime,
    params,
    accounts: doc.accounts.map((a) => ({ did: a.did, balance: a.balance.toString() })),
    validators: doc.validators.map((v) => ({ did: v.did, stake: v.stake.toString() })),
  }
  if (doc.inference !== undefined) json.inference = inferenceToJson(doc.inference)
  if (doc.experts !== undefined) json.experts = expertsToJson(doc.experts)
  return json
}

const scoreToJson = (s: GenesisPolScore): unknown => ({
  lossMicroNats: s.lossMicroNats.toString(),
  accuracyPpm: s.accuracyPpm,
})

/** Nonces as decimal strings, signatures as hex, scores' losses as decimal strings. */
function expertsToJson(section: GenesisExperts): unknown {
  return {
    metas: section.metas.map((m) => ({ owner: m.owner, body: m.body })),
    blocks: section.blocks.map((b) => ({
      header: { ...b.header, nonce: b.header.nonce.toString(), payloadSig: toHex(b.header.payloadSig) },
      ...(b.score === undefined ? {} : { score: scoreToJson(b.score) }),
    })),
  }
}

function inferenceToJson(section: GenesisInference): unknown {
  return {
    models: section.models.map((m) => ({
      ...m,
      price: m.price.toString(),
      ...(typeof m.promptPrice === 'bigint' ? { promptPrice: m.promptPrice.toString() } : {}),
    })),
    workers: section.workers.map((w) => ({ ...w, bond: w.bond.toString() })),
  }
}

function fail(message: string): never {
  throw new GenesisError(`genesis: ${message}`)
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function amount(value: unknown, field: string): bigint {
  if (typeof value !== 'string') fail(`${field} must be a decimal string`)
  try {
    return parseUint64(value, field)
  } catch (err) {
    return fail((err as Error).message)
  }
}

function did(value: unknown, field: string): string {
  if (typeof value !== 'string') fail(`${field} must be a did:key`)
  try {
    if (parseDidKey(value).type !== 'Ed25519') fail(`${field} must be an Ed25519 did:key`)
  } catch (err) {
    if (err instanceof GenesisError) throw err
    fail(`${field} is not a valid did:key (${(err as Error).message})`)
  }
  return value
}

/** Parses and validates a genesis document from its JSON value. */
export function parseGenesis(json: unknown): GenesisDoc {
  if (!isRecord(json)) fail('the document must be a JSON object')
  const { chainId, genesisTime, params, accounts, validators, inference, experts } = json
  if (typeof chainId !== 'string' || !/^[a-z0-9][a-z0-9-]{0,48}$/.test(chainId))
    fail('chainId must be 1-49 lowercase letters, digits or "-"')
  if (typeof genesisTime !== 'number' || !Number.isSafeInteger(genesisTime) || genesisTime < 0)
    fail('genesisTime must be milliseconds since the epoch')
  if (!isRecord(params)) fail('params must be an object')
  const merged: Record<string, unknown> = {}
  for (const key of Object.keys(DEFAULT_PARAMS) as Array<keyof ChainParams>) {
    const value = params[key] === undefined && isOptionalParam(key) ? jsonDefault(key) : params[key]
    if (value === undefined) fail(`params.${key} is missing`)
    if ((BIGINT_PARAMS as readonly string[]).includes(key)) merged[key] = amount(value, `params.${key}`)
    else if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
      fail(`params.${key} must be a non-negative integer`)
    else merged[key] = value
  }
  const unknown = Object.keys(params).filter((k) => !(k in DEFAULT_PARAMS))
  if (unknown.length > 0) fail(`unknown parameter params.${unknown[0] ?? ''}`)
  const p = merged as unknown as ChainParams
  for (const key of [
    'epochLength',
    'hashesPerTick',
    'ticksPerSecond',
    'downtimeWindow',
    'maxBlockTxs',
    'maxValidators',
    'maxReceiptsPerSettle',
    'auditThreshold',
    'quorumSize',
    'auditCandidates',
    'auditSlotBlocks',
    'disputeWindowBlocks',
    'polWindowBlocks',
  ] as const) {
    if (p[key] < 1) fail(`params.${key} must be at least 1`)
  }
  if (p.emptyBlockIntervalMs !== 0 && (p.emptyBlockIntervalMs < 1_000 || p.emptyBlockIntervalMs > 86_400_000))
    fail('params.emptyBlockIntervalMs must be 0 (always make blocks) or 1000-86400000 ms')
  if (p.polDifficultyBits > 64) fail('params.polDifficultyBits must be at most 64')
  if (p.polAccuracyTolerancePpm > 1_000_000) fail('params.polAccuracyTolerancePpm is in parts per million (0-1000000)')
  if (p.minModelPrice < 1n) fail('params.minModelPrice must be at least 1 (free jobs would wash usage)')
  if (p.auditFloorPpm > 1_000_000) fail('params.auditFloorPpm is in parts per million (0-1000000)')
  if (p.rewardCapBps >= p.protocolShareBps && p.rewardCapBps > 0)
    fail('params.rewardCapBps must be below params.protocolShareBps, or washed fees would pay')
  for (const key of [
    'slashDoubleSignBps',
    'slashDowntimeBps',
    'minSignedBps',
    'reporterRewardBps',
    'protocolShareBps',
    'workerSlashBps',
    'challengerRewardBps',
    'rewardCapBps',
    'usageKeepBps',
  ] as const) {
    if (p[key] > 10_000) fail(`params.${key} is in basis points (0-10000)`)
  }
  if (!Array.isArray(accounts) || !Array.isArray(validators)) fail('accounts and validators must be arrays')
  const seenAccounts = new Set<string>()
  const parsedAccounts = accounts.map((a: unknown, i) => {
    if (!isRecord(a)) fail(`accounts[${i}] must be an object`)
    const d = did(a.did, `accounts[${i}].did`)
    if (seenAccounts.has(d)) fail(`accounts[${i}] repeats ${d}`)
    seenAccounts.add(d)
    return { did: d, balance: amount(a.balance, `accounts[${i}].balance`) }
  })
  const seenValidators = new Set<string>()
  const parsedValidators = validators.map((v: unknown, i) => {
    if (!isRecord(v)) fail(`validators[${i}] must be an object`)
    const d = did(v.did, `validators[${i}].did`)
    if (seenValidators.has(d)) fail(`validators[${i}] repeats ${d}`)
    seenValidators.add(d)
    const stake = amount(v.stake, `validators[${i}].stake`)
    if (stake < p.minValidatorStake) fail(`validators[${i}].stake is below params.minValidatorStake`)
    return { did: d, stake }
  })
  if (parsedValidators.length === 0) fail('at least one validator is needed')
  const doc: GenesisDoc = { chainId, genesisTime, params: p, accounts: parsedAccounts, validators: parsedValidators }
  if (inference !== undefined) doc.inference = parseInference(inference)
  if (experts !== undefined) doc.experts = parseExperts(experts)
  return doc
}

function jsonDefault(key: keyof ChainParams): unknown {
  const value = DEFAULT_PARAMS[key]
  return typeof value === 'bigint' ? value.toString() : value
}

/**
 * The inference section's outline: owners, DIDs, amounts and uniqueness. The model schema
 * (kind, inputs, outputs, tolerance) is checked by the inference module when it loads the
 * genesis, since this layer sits below it.
 */
const MODEL_FIELDS = [
  'owner',
  'cid',
  'name',
  'version',
  'price',
  'kind',
  'inputs',
  'outputs',
  'tolerance',
  'size',
  'codec',
  'files',
  'promptPrice',
  'contextLength',
]

function parseInference(json: unknown): GenesisInference {
  if (!isRecord(json) || !Array.isArray(json.models) || !Array.isArray(json.workers))
    fail('inference must be an object with models and workers arrays')
  const extra = Object.keys(json).filter((k) => k !== 'models' && k !== 'workers')
  if (extra.length > 0) fail(`unknown field inference.${extra[0] ?? ''}`)
  const cids = new Set<string>()
  const models = json.models.map((m: unknown, i): GenesisModel => {
    const at = `inference.models[${i}]`
    if (!isRecord(m)) fail(`${at} must be an object`)
    const unknownField = Object.keys(m).find((k) => !MODEL_FIELDS.includes(k))
    if (unknownField !== undefined) fail(`unknown field ${at}.${unknownField}`)
    const { owner, cid, name, version, price, kind, inputs, outputs, tolerance, size, codec, files, contextLength } = m
    if (typeof cid !== 'string' || cids.has(cid)) fail(`${at}.cid must be a CID string, once`)
    cids.add(cid)
    if (typeof name !== 'string' || typeof version !== 'string') fail(`${at}.name and .version must be strings`)
    if (typeof kind !== 'string') fail(`${at}.kind must be a string`)
    if (typeof size !== 'number' || !Number.isSafeInteger(size)) fail(`${at}.size must be an integer`)
    return {
      owner: did(owner, `${at}.owner`),
      cid,
      name,
      version,
      price: amount(price, `${at}.price`),
      kind,
      inputs,
      outputs,
      tolerance,
      size,
      ...(codec === undefined ? {} : { codec }),
      ...(files === undefined ? {} : { files }),
      ...(m.promptPrice === undefined ? {} : { promptPrice: amount(m.promptPrice, `${at}.promptPrice`) }),
      ...(contextLength === undefined ? {} : { contextLength }),
    }
  })
  const seen = new Set<string>()
  const workers = json.workers.map((w: unknown, i): GenesisWorker => {
    const at = `inference.workers[${i}]`
    if (!isRecord(w)) fail(`${at} must be an object`)
    const d = did(w.did, `${at}.did`)
    if (seen.has(d)) fail(`${at} repeats ${d}`)
    seen.add(d)
    if (typeof w.ep !== 'string') fail(`${at}.ep must be an execution provider name`)
    const extraField = Object.keys(w).find((k) => !['did', 'bond', 'ep', 'runtime', 'models'].includes(k))
    if (extraField !== undefined) fail(`unknown field ${at}.${extraField}`)
    if (w.runtime !== undefined && (typeof w.runtime !== 'string' || w.runtime.length === 0 || w.runtime.length > 64))
      fail(`${at}.runtime must be a string of 1-64 characters`)
    if (w.models !== undefined && (!Array.isArray(w.models) || w.models.some((m) => typeof m !== 'string')))
      fail(`${at}.models must be a list of model CIDs`)
    return {
      did: d,
      bond: amount(w.bond, `${at}.bond`),
      ep: w.ep,
      ...(w.runtime === undefined ? {} : { runtime: w.runtime as string }),
      ...(w.models === undefined ? {} : { models: w.models as string[] }),
    }
  })
  return { models, workers }
}

function scoreFromJson(value: unknown, at: string): GenesisPolScore {
  if (!isRecord(value)) fail(`${at} must be an object`)
  const extra = Object.keys(value).find((k) => k !== 'lossMicroNats' && k !== 'accuracyPpm')
  if (extra !== undefined) fail(`unknown field ${at}.${extra}`)
  const { accuracyPpm } = value
  if (
    typeof accuracyPpm !== 'number' ||
    !Number.isSafeInteger(accuracyPpm) ||
    accuracyPpm < 0 ||
    accuracyPpm > 1_000_000
  )
    fail(`${at}.accuracyPpm must be 0-1000000`)
  return { lossMicroNats: amount(value.lossMicroNats, `${at}.lossMicroNats`), accuracyPpm }
}

/**
 * The experts section's outline: owners, nonces, signatures and scores. MetaBlock bodies and
 * headers are checked by the experts module when it loads the genesis.
 */
function parseExperts(json: unknown): GenesisExperts {
  if (!isRecord(json) || !Array.isArray(json.metas) || !Array.isArray(json.blocks))
    fail('experts must be an object with metas and blocks arrays')
  const extra = Object.keys(json).filter((k) => k !== 'metas' && k !== 'blocks')
  if (extra.length > 0) fail(`unknown field experts.${extra[0] ?? ''}`)
  const metas = json.metas.map((m: unknown, i) => {
    const at = `experts.metas[${i}]`
    if (!isRecord(m)) fail(`${at} must be an object`)
    const unknownField = Object.keys(m).find((k) => k !== 'owner' && k !== 'body')
    if (unknownField !== undefined) fail(`unknown field ${at}.${unknownField}`)
    if (!isRecord(m.body)) fail(`${at}.body must be a MetaBlock body`)
    return { owner: did(m.owner, `${at}.owner`), body: m.body }
  })
  const blocks = json.blocks.map((b: unknown, i) => {
    const at = `experts.blocks[${i}]`
    if (!isRecord(b) || !isRecord(b.header)) fail(`${at} must be an object with a header`)
    const unknownField = Object.keys(b).find((k) => k !== 'header' && k !== 'score')
    if (unknownField !== undefined) fail(`unknown field ${at}.${unknownField}`)
    const { nonce, payloadSig } = b.header
    if (typeof payloadSig !== 'string' || !/^[0-9a-f]{128}$/.test(payloadSig))
      fail(`${at}.header.payloadSig must be 128 hex characters`)
    const header = {
      ...b.header,
      nonce: amount(nonce, `${at}.header.nonce`),
      payloadSig: fromHex(payloadSig),
    } as GenesisParamHeader
    return b.score === undefined ? { header } : { header, score: scoreFromJson(b.score, `${at}.score`) }
  })
  return { metas, blocks }
}

export async function readGenesisFile(path: string): Promise<GenesisDoc> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new GenesisError(`cannot read genesis file ${path}: ${(err as Error).message}`, { cause: err })
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new GenesisError(`genesis file ${path} is not valid JSON: ${(err as Error).message}`)
  }
  return parseGenesis(json)
}

/** A hash that names this exact genesis (nodes refuse peers with another). */
export function genesisHash(doc: GenesisDoc): Uint8Array {
  return sha256(encode(genesisToJson(doc)))
}
