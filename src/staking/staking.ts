/**
 * staking: bonded stake is voting power; slashing and jailing punish double signing and
 * downtime; block rewards and fees go to validators pro rata to stake (a chain module).
 *
 * State:
 *   staking/val/<did>     { bonded, jailedUntil, tombstoned, missed, windowStart }
 *   staking/unb/<did>     [{ amount, completes }]   unbonding stake, slashable until it completes
 *   staking/set/<epoch>   [{ did, power }]          the validator set of an epoch
 *   staking/ev/<id>       height                    evidence already used
 *   staking/registry/...    an IndexedSet (chain/indexed-set.ts) of every DID with stake bonded or
 *                         unbonding: one key per entry, so a bond does not rewrite a list
 * The set of epoch e+1 is computed at the end of the last block of epoch e (height (e+1)·E),
 * so it changes only at epoch edges. Jailing removes a validator from the next epoch's set and
 * stops its rewards at once. All arithmetic is bigint; basis points for fractions.
 *
 * Governed parameters (issue 15, `STAKING_PARAMS`, registered with their bounds in
 * src/governance/registry.ts): each is read from state where it is used, falling back to its
 * genesis value (`stakingRules`). A change applies from the block its proposal names and only to
 * what happens from then on:
 *   minBond            bonds admitted from then on (checked at the edge, `admit`)
 *   unbondingBlocks    unbondings started from then on; entries already unbonding keep their
 *                      completion height
 *   slashDoubleSignBps, reporterRewardBps
 *                      evidence delivered from then on, whatever the height of the offence
 *   slashDowntimeBps, downtimeJailBlocks, downtimeWindow, minSignedBps
 *                      the downtime check of every block from then on (a validator's current
 *                      window is measured against the new length)
 *   blockReward        the rewards of every block from then on
 *   minValidatorStake, maxValidators
 *                      the next validator-set update (the end of the current epoch); the set of
 *                      the current epoch is not touched
 * Not governed: epochLength (epoch arithmetic, light clients' validator-set proofs) and
 * maxEvidenceAge.
 */
import { decode, encode } from '../core/codec.ts'
import { sha256 } from '../core/hash.ts'
import { toHex, utf8 } from '../core/bytes.ts'
import { asUint64, cutEntries, shareOf } from '../core/uint.ts'
import { ed25519PublicKeyFromDid } from '../identity/did-key.ts'
import { TxError } from '../chain/errors.ts'
import type { BlockContext, ChainModule, TxHandler } from '../chain/host.ts'
import type { ChainParams, GenesisDoc } from '../chain/genesis.ts'
import { readState, type StateOverlay, type StateReader } from '../chain/state-view.ts'
import { IndexedSet } from '../chain/indexed-set.ts'
import { makeValidatorSet } from '../chain/bft/types.ts'
import type { DuplicateVoteEvidence, ValidatorSet, Vote } from '../chain/bft/types.ts'
import { checkDuplicateVoteEvidence } from '../chain/bft/messages.ts'
import { burn, credit, debit, mint, mintUnassigned, takeFeePool } from '../bank/bank.ts'
import { governedUint } from '../chain/governed.ts'

export interface ValidatorRecord {
  bonded: bigint
  /** Height from which `staking.unjail` is allowed; 0 when not jailed. */
  jailedUntil: number
  /** Slashed for double signing: never in the set again. */
  tombstoned: boolean
  missed: number
  windowStart: number
}

export interface UnbondingEntry {
  amount: bigint
  completes: number
}

/** Names of staking's governed parameters (their genesis values are the defaults). */
export const STAKING_PARAMS = {
  minBond: 'staking.minBond',
  unbondingBlocks: 'staking.unbondingBlocks',
  slashDoubleSignBps: 'staking.slashDoubleSignBps',
  reporterRewardBps: 'staking.reporterRewardBps',
  slashDowntimeBps: 'staking.slashDowntimeBps',
  downtimeJailBlocks: 'staking.downtimeJailBlocks',
  downtimeWindow: 'staking.downtimeWindow',
  minSignedBps: 'staking.minSignedBps',
  blockReward: 'staking.blockReward',
  minValidatorStake: 'staking.minValidatorStake',
  maxValidators: 'staking.maxValidators',
} as const satisfies Partial<Record<keyof ChainParams, string>>

/** The staking parameters that can be governed. */
export type StakingRules = Pick<ChainParams, keyof typeof STAKING_PARAMS>

/** One governed staking parameter in force on `state`, or its genesis value while governance has not set it. */
export function stakingRule(state: StateReader, params: ChainParams, key: keyof typeof STAKING_PARAMS): bigint {
  const genesis = params[key]
  return governedUint(state, STAKING_PARAMS[key], typeof genesis === 'bigint' ? genesis : BigInt(genesis))
}

/**
 * Every governed staking parameter in force on `state`. The registry's bounds keep the
 * number-typed ones within safe integers.
 */
export function stakingRules(state: StateReader, params: ChainParams): StakingRules {
  const uint = (key: keyof typeof STAKING_PARAMS): bigint => stakingRule(state, params, key)
  const int = (key: keyof typeof STAKING_PARAMS): number => Number(uint(key))
  return {
    minBond: uint('minBond'),
    unbondingBlocks: int('unbondingBlocks'),
    slashDoubleSignBps: int('slashDoubleSignBps'),
    reporterRewardBps: int('reporterRewardBps'),
    slashDowntimeBps: int('slashDowntimeBps'),
    downtimeJailBlocks: int('downtimeJailBlocks'),
    downtimeWindow: int('downtimeWindow'),
    minSignedBps: int('minSignedBps'),
    blockReward: uint('blockReward'),
    minValidatorStake: uint('minValidatorStake'),
    maxValidators: int('maxValidators'),
  }
}

const MAX_UNBONDING_ENTRIES = 16
const BPS = 10_000n

const valKey = (did: string): string => `staking/val/${did}`
const unbKey = (did: string): string => `staking/unb/${did}`
const setKey = (epoch: number): string => `staking/set/${epoch}`
const evKey = (id: string): string => `staking/ev/${id}`

export function epochOf(height: number, params: Pick<ChainParams, 'epochLength'>): number {
  return Math.floor((Math.max(height, 1) - 1) / params.epochLength)
}

function decodeRecord(raw: Record<string, unknown>): ValidatorRecord {
  return {
    bonded: asUint64(raw.bonded, 'bonded'),
    jailedUntil: raw.jailedUntil as number,
    tombstoned: raw.tombstoned === true,
    missed: raw.missed as number,
    windowStart: raw.windowStart as number,
  }
}

/**
 * Splits unbonding entries into what has completed by `height` (summed) and what has not;
 * throws TxError('nothing-to-withdraw') when nothing has. Shared by validator and worker bonds.
 */
export function takeMatured(
  entries: readonly UnbondingEntry[],
  height: number,
): { amount: bigint; remaining: UnbondingEntry[] } {
  const ready = entries.filter((e) => e.completes <= height)
  if (ready.length === 0) throw new TxError('nothing-to-withdraw', 'no unbonding stake has completed yet')
  return {
    amount: ready.reduce((sum, e) => sum + e.amount, 0n),
    remaining: entries.filter((e) => e.completes > height),
  }
}

export function validatorRecord(state: StateReader, did: string): ValidatorRecord | undefined {
  const raw = readState<Record<string, unknown>>(state, valKey(did))
  return raw === undefined ? undefined : decodeRecord(raw)
}

export function unbondingOf(state: StateReader, did: string): UnbondingEntry[] {
  const raw = readState<Array<Record<string, unknown>>>(state, unbKey(did)) ?? []
  return raw.map((e) => ({ amount: asUint64(e.amount, 'amount'), completes: e.completes as number }))
}

function writeRecord(state: StateOverlay, did: string, record: ValidatorRecord): void {
  state.write(valKey(did), record)
}

function writeUnbonding(state: StateOverlay, did: string, entries: UnbondingEntry[]): void {
  if (entries.length === 0) state.remove(unbKey(did))
  else state.write(unbKey(did), entries)
}

/** The state key of the validator set of `epoch` (what a light client asks a proof of). */
export function validatorSetKey(epoch: number): Uint8Array {
  return utf8(setKey(epoch))
}

/**
 * The keys whose proofs a node keeps at `height` (ChainApp `retainProofs`): at the last block of
 * each epoch, the next epoch's set, which that block writes. A light client that trusts the set
 * of epoch e checks the header of height (e+1)·E with it, then the set of e+1 against that
 * header's state root.
 */
export function retainedProofKeys(height: number, params: Pick<ChainParams, 'epochLength'>): Uint8Array[] {
  return height > 0 && height % params.epochLength === 0 ? [validatorSetKey(epochOf(height + 1, params))] : []
}

function toValidatorSet(entries: ReadonlyArray<{ did: string; power: bigint }>): ValidatorSet {
  return makeValidatorSet(
    entries.map((v) => ({ did: v.did, publicKey: ed25519PublicKeyFromDid(v.did), power: v.power })),
  )
}

/** The set of epoch 0, as initGenesis writes it: every genesis validator with its stake. */
export function genesisValidatorSet(genesis: Pick<GenesisDoc, 'validators'>): ValidatorSet {
  return toValidatorSet(genesis.validators.map((v) => ({ did: v.did, power: v.stake })))
}

/**
 * A validator set from the stored value of `validatorSetKey(epoch)` (bytes a light client got
 * with a proof). Throws (DecodeError, InvalidValidatorSetError, DidKeyError...) on anything else.
 */
export function validatorSetFromValue(value: Uint8Array): ValidatorSet {
  const raw = decode<unknown>(value)
  if (!Array.isArray(raw)) throw new TxError('malformed', 'a stored validator set must be a list')
  return toValidatorSet(
    raw.map((v: unknown, i) => {
      const entry = v as { did?: unknown; power?: unknown } | null
      if (entry === null || typeof entry !== 'object' || typeof entry.did !== 'string')
        throw new TxError('malformed', `validator ${i} of a stored set has no did`)
      return { did: entry.did, power: asUint64(entry.power, `validators[${i}].power`) }
    }),
  )
}

/** The stored set of an epoch as [did, power] pairs. */
export function epochSet(state: StateReader, epoch: number): Array<{ did: string; power: bigint }> | undefined {
  const raw = readState<Array<{ did: string; power: unknown }>>(state, setKey(epoch))
  return raw?.map((v) => ({ did: v.did, power: asUint64(v.power, 'power') }))
}

/** The validator set that decides `height` (needs the set of its epoch to be stored). */
export function validatorSetAt(
  state: StateReader,
  height: number,
  params: Pick<ChainParams, 'epochLength'>,
): ValidatorSet {
  const epoch = epochOf(height, params)
  const set = epochSet(state, epoch)
  if (set === undefined)
    throw new TxError('no-validator-set', `no validator set stored for epoch ${epoch} (height ${height})`, {
      action: 'ignore',
    })
  return toValidatorSet(set)
}

const registry = new IndexedSet('staking/registry')

/** Every DID with stake bonded or unbonding (genesis validators included), sorted. */
export function registeredValidators(state: StateReader): string[] {
  return registry.list(state).sort()
}

/** A DID whose stake is all withdrawn leaves the registry (its record stays, with its history). */
function unregisterIfEmpty(state: StateOverlay, did: string): void {
  const record = validatorRecord(state, did)
  if (record !== undefined && record.bonded === 0n && unbondingOf(state, did).length === 0) registry.delete(state, did)
}

/** Every validator record, in DID order (queries, the dashboard). */
export function listValidators(state: StateReader): Array<{ did: string } & ValidatorRecord> {
  const out: Array<{ did: string } & ValidatorRecord> = []
  for (const did of registeredValidators(state)) {
    const record = validatorRecord(state, did)
    if (record !== undefined) out.push({ did, ...record })
  }
  return out
}

function slash(state: StateOverlay, did: string, bps: number): bigint {
  const record = validatorRecord(state, did)
  if (record === undefined) return 0n
  const fromBonded = shareOf(record.bonded, bps)
  record.bonded -= fromBonded
  writeRecord(state, did, record)
  const unbonding = cutEntries(unbondingOf(state, did), bps)
  writeUnbonding(state, did, unbonding.kept)
  return fromBonded + unbonding.cut
}

function asRecord(body: unknown, kind: string, fields: string[]): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw new TxError('malformed', `${kind} body must be a map`)
  const extra = Object.keys(body).filter((k) => !fields.includes(k))
  if (extra.length > 0) throw new TxError('malformed', `${kind} has unknown field ${extra[0] ?? ''}`)
  return body as Record<string, unknown>
}

function positiveAmount(value: unknown): bigint {
  let amount: bigint
  try {
    amount = asUint64(value, 'amount')
  } catch (err) {
    throw new TxError('malformed', (err as Error).message, { cause: err })
  }
  if (amount === 0n) throw new TxError('malformed', 'amount must be positive')
  return amount
}

function decodeVote(value: unknown, field: string): Vote {
  const v = asRecord(value, field, ['chainId', 'height', 'round', 'type', 'blockId', 'validator', 'signature'])
  const ok =
    typeof v.chainId === 'string' &&
    typeof v.height === 'number' &&
    typeof v.round === 'number' &&
    (v.type === 'prevote' || v.type === 'precommit') &&
    (v.blockId === null || v.blockId instanceof Uint8Array) &&
    typeof v.validator === 'string' &&
    v.signature instanceof Uint8Array
  if (!ok) throw new TxError('malformed', `${field} is not a vote`)
  return v as unknown as Vote
}

/** Creates the staking module for a chain's parameters. */
export function stakingModule(params: ChainParams): ChainModule {
  const bond: TxHandler<{ amount: bigint }> = {
    decodeBody: (body) => ({ amount: positiveAmount(asRecord(body, 'staking.bond', ['amount']).amount) }),
    // the governed minimum in force: a smaller bond is invalid (never admitted, never in a block)
    admit(state, body) {
      const minBond = stakingRule(state, params, 'minBond')
      if (body.amount < minBond) throw new TxError('bond-too-small', `a bond must be at least ${minBond}`)
    },
    spends: (body) => body.amount,
    apply(state, tx, body, ctx) {
      debit(state, tx.sender, body.amount)
      const record = validatorRecord(state, tx.sender) ?? {
        bonded: 0n,
        jailedUntil: 0,
        tombstoned: false,
        missed: 0,
        windowStart: ctx.height,
      }
      record.bonded += body.amount
      writeRecord(state, tx.sender, record)
      registry.add(state, tx.sender)
      ctx.emit({
        type: 'staking.bond',
        attributes: { validator: tx.sender, amount: body.amount.toString(), bonded: record.bonded.toString() },
      })
    },
  }

  const unbond: TxHandler<{ amount: bigint }> = {
    decodeBody: (body) => ({ amount: positiveAmount(asRecord(body, 'staking.unbond', ['amount']).amount) }),
    apply(state, tx, body, ctx) {
      const record = validatorRecord(state, tx.sender)
      if (record === undefined || record.bonded < body.amount) {
        throw new TxError('insufficient-stake', `bonded stake ${record?.bonded ?? 0n} is less than ${body.amount}`)
      }
      const entries = unbondingOf(state, tx.sender)
      if (entries.length >= MAX_UNBONDING_ENTRIES)
        throw new TxError('too-many-unbondings', `at most ${MAX_UNBONDING_ENTRIES} unbondings at once; withdraw first`)
      record.bonded -= body.amount
      writeRecord(state, tx.sender, record)
      const completes = ctx.height + Number(stakingRule(state, params, 'unbondingBlocks'))
      writeUnbonding(state, tx.sender, [...entries, { amount: body.amount, completes }])
      ctx.emit({
        type: 'staking.unbond',
        attributes: { validator: tx.sender, amount: body.amount.toString(), completes: String(completes) },
      })
    },
  }

  const withdraw: TxHandler<Record<string, never>> = {
    decodeBody: (body) => {
      asRecord(body, 'staking.withdraw', [])
      return {}
    },
    apply(state, tx, _body, ctx) {
      const { amount, remaining } = takeMatured(unbondingOf(state, tx.sender), ctx.height)
      writeUnbonding(state, tx.sender, remaining)
      credit(state, tx.sender, amount)
      unregisterIfEmpty(state, tx.sender)
      ctx.emit({ type: 'staking.withdraw', attributes: { validator: tx.sender, amount: amount.toString() } })
    },
  }

  const evidence: TxHandler<DuplicateVoteEvidence> = {
    decodeBody(body) {
      const b = asRecord(body, 'staking.evidence', ['a', 'b'])
      return { a: decodeVote(b.a, 'a'), b: decodeVote(b.b, 'b') }
    },
    apply(state, tx, ev, ctx) {
      if (ev.a.height > ctx.height || ev.a.height + params.maxEvidenceAge < ctx.height) {
        throw new TxError(
          'evidence-too-old',
          `evidence from height ${ev.a.height} is outside the last ${params.maxEvidenceAge} blocks`,
        )
      }
      let set: ValidatorSet
      try {
        set = validatorSetAt(state, ev.a.height, params)
      } catch (err) {
        throw new TxError('evidence-invalid', `no validator set for height ${ev.a.height}`, { cause: err })
      }
      try {
        checkDuplicateVoteEvidence(ev, set, ctx.chainId)
      } catch (err) {
        throw new TxError('evidence-invalid', `evidence does not prove double signing: ${(err as Error).message}`, {
          cause: err,
        })
      }
      const offender = ev.a.validator
      const id = toHex(sha256(encode([ev.a.height, ev.a.round, ev.a.type, offender])))
      if (readState(state, evKey(id)) !== undefined)
        throw new TxError('evidence-duplicate', 'this double sign was already punished')
      const record = validatorRecord(state, offender)
      if (record === undefined) throw new TxError('evidence-invalid', `${offender} has no stake record`)
      if (record.tombstoned)
        throw new TxError('evidence-duplicate', `${offender} was already slashed for double signing`)
      const rules = stakingRules(state, params) // evidence is rare: read them all
      const slashed = slash(state, offender, rules.slashDoubleSignBps)
      const after = validatorRecord(state, offender) as ValidatorRecord
      after.tombstoned = true
      after.jailedUntil = Number.MAX_SAFE_INTEGER
      writeRecord(state, offender, after)
      state.write(evKey(id), ctx.height)
      const reward = (slashed * BigInt(rules.reporterRewardBps)) / BPS
      if (reward > 0n) credit(state, tx.sender, reward)
      burn(state, slashed - reward)
      ctx.emit({
        type: 'staking.slash',
        attributes: {
          validator: offender,
          reason: 'double-sign',
          amount: slashed.toString(),
          reporter: tx.sender,
          reward: reward.toString(),
          height: String(ev.a.height),
        },
      })
    },
  }

  const unjail: TxHandler<Record<string, never>> = {
    decodeBody: (body) => {
      asRecord(body, 'staking.unjail', [])
      return {}
    },
    apply(state, tx, _body, ctx) {
      const record = validatorRecord(state, tx.sender)
      if (record === undefined || record.jailedUntil === 0)
        throw new TxError('not-jailed', `${tx.sender} is not jailed`)
      if (record.tombstoned)
        throw new TxError('tombstoned', 'a validator slashed for double signing cannot be unjailed')
      if (record.jailedUntil > ctx.height)
        throw new TxError('still-jailed', `jailed until height ${record.jailedUntil}`)
      record.jailedUntil = 0
      record.missed = 0
      record.windowStart = ctx.height
      writeRecord(state, tx.sender, record)
      ctx.emit({ type: 'staking.unjail', attributes: { validator: tx.sender } })
    },
  }

  /** Counts missed precommits of the previous height; slashes and jails past the window's limit. */
  function trackDowntime(state: StateOverlay, ctx: BlockContext): void {
    if (ctx.lastCommitSigners === null || ctx.height < 2) return
    const previous = epochSet(state, epochOf(ctx.height - 1, params)) ?? []
    const rule = (key: keyof typeof STAKING_PARAMS): number => Number(stakingRule(state, params, key))
    const rules = {
      downtimeWindow: rule('downtimeWindow'),
      minSignedBps: rule('minSignedBps'),
      slashDowntimeBps: rule('slashDowntimeBps'),
      downtimeJailBlocks: rule('downtimeJailBlocks'),
    }
    const maxMissed = Math.floor((rules.downtimeWindow * (10_000 - rules.minSignedBps)) / 10_000)
    for (const { did } of previous) {
      const record = validatorRecord(state, did)
      if (record === undefined || record.jailedUntil !== 0) continue
      if (ctx.height - 1 - record.windowStart >= rules.downtimeWindow) {
        record.missed = 0
        record.windowStart = ctx.height - 1
      }
      if (!ctx.lastCommitSigners.has(did)) record.missed += 1
      if (record.missed > maxMissed) {
        writeRecord(state, did, record)
        const slashed = slash(state, did, rules.slashDowntimeBps)
        burn(state, slashed)
        const after = validatorRecord(state, did) as ValidatorRecord
        after.jailedUntil = ctx.height + rules.downtimeJailBlocks
        after.missed = 0
        after.windowStart = ctx.height
        writeRecord(state, did, after)
        ctx.emit({
          type: 'staking.slash',
          attributes: {
            validator: did,
            reason: 'downtime',
            amount: slashed.toString(),
            jailedUntil: String(after.jailedUntil),
          },
        })
        continue
      }
      writeRecord(state, did, record)
    }
  }

  /** Block reward plus fees, pro rata to the power of the un-jailed validators of this height; dust to the proposer. */
  function distributeRewards(state: StateOverlay, ctx: BlockContext): void {
    const pool = takeFeePool(state)
    const reward = stakingRule(state, params, 'blockReward')
    const total = pool + reward
    if (total === 0n) return
    const eligible = ctx.validators.validators.filter((v) => (validatorRecord(state, v.did)?.jailedUntil ?? 1) === 0)
    const power = eligible.reduce((sum, v) => sum + v.power, 0n)
    if (power === 0n) {
      burn(state, pool)
      return
    }
    mintUnassigned(state, reward)
    let paid = 0n
    for (const v of eligible) {
      const share = (total * v.power) / power
      if (share > 0n) credit(state, v.did, share)
      paid += share
    }
    if (total > paid) credit(state, ctx.proposer, total - paid)
  }

  /** At the last block of an epoch: the next epoch's set from bonded, un-jailed stake. */
  function rotateSet(state: StateOverlay, ctx: BlockContext, candidates: Iterable<string>): void {
    if (ctx.height % params.epochLength !== 0) return
    const next = epochOf(ctx.height + 1, params)
    const minValidatorStake = stakingRule(state, params, 'minValidatorStake')
    const maxValidators = Number(stakingRule(state, params, 'maxValidators'))
    const chosen = [...candidates]
      .map((did) => ({ did, record: validatorRecord(state, did) }))
      .filter(
        ({ record }) =>
          record !== undefined && !record.tombstoned && record.jailedUntil === 0 && record.bonded >= minValidatorStake,
      )
      .map(({ did, record }) => ({ did, power: (record as ValidatorRecord).bonded }))
      .sort((a, b) => (a.power === b.power ? (a.did < b.did ? -1 : 1) : a.power > b.power ? -1 : 1))
      .slice(0, maxValidators)
    if (chosen.length === 0) {
      // Never leave the chain without validators: keep the current set.
      state.write(setKey(next), epochSet(state, next - 1) ?? [])
      ctx.emit({ type: 'staking.set-kept', attributes: { epoch: String(next), reason: 'no eligible validators' } })
      return
    }
    chosen.sort((a, b) => (a.did < b.did ? -1 : 1))
    state.write(setKey(next), chosen)
    ctx.emit({ type: 'staking.set', attributes: { epoch: String(next), validators: String(chosen.length) } })
  }

  return {
    name: 'staking',
    txs: { bond, unbond, withdraw, evidence, unjail },
    initGenesis(state: StateOverlay, genesis: GenesisDoc) {
      for (const account of genesis.accounts) mint(state, account.did, account.balance)
      for (const v of genesis.validators) {
        mintUnassigned(state, v.stake)
        writeRecord(state, v.did, { bonded: v.stake, jailedUntil: 0, tombstoned: false, missed: 0, windowStart: 1 })
      }
      const set = genesis.validators
        .map((v) => ({ did: v.did, power: v.stake }))
        .sort((a, b) => (a.did < b.did ? -1 : 1))
      state.write(setKey(0), set)
      for (const v of set) registry.add(state, v.did)
    },
    beginBlock(state, ctx) {
      trackDowntime(state, ctx)
    },
    endBlock(state, ctx) {
      distributeRewards(state, ctx)
      rotateSet(state, ctx, registeredValidators(state))
    },
  }
}
