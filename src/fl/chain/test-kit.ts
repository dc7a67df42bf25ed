/**
 * Test kit for the fl module (its tests and test/attacks/fl-chain.test.ts): an in-process chain
 * with the real bank, staking and fl modules, transactions signed, encoded and decoded as a block
 * carries them, each block with its own parent id (so each round draws its own roles), and
 * builders for a task's terms and its participants' transactions.
 */
import assert from 'node:assert/strict'
import { utf8 } from '../../core/bytes.ts'
import { cidOfBytes, RAW_CODE } from '../../core/cid.ts'
import { sha256 } from '../../core/hash.ts'
import { toHex } from '../../core/bytes.ts'
import {
  runBlock,
  runBlockResults,
  runRefused,
  runTo,
  type ModuleChain,
  type TxSpec,
} from '../../../test/helpers/module-chain.ts'
import { StateMachine, type ChainEvent, type TxResult } from '../../chain/host.ts'
import { StateOverlay } from '../../chain/state-view.ts'
import { SparseMerkleTree } from '../../chain/state/smt.ts'
import { DEFAULT_PARAMS, type ChainParams, type GenesisDoc } from '../../chain/genesis.ts'
import { bankModule, feeCollector } from '../../bank/bank.ts'
import { stakingModule } from '../../staking/staking.ts'
import { Ed25519KeyPair } from '../../identity/keys.ts'
import { didFromEd25519PublicKey } from '../../identity/did-key.ts'
import { flModule } from './module.ts'
import { readRound, readTask, type ModelRef, type OnnxRef, type RoundRecord } from './state.ts'

export interface Actor {
  key: Ed25519KeyPair
  did: string
}

/** A fresh key, or one derived from `seed` (reproducible worlds). */
export function actor(seed?: string): Actor {
  const key = seed === undefined ? Ed25519KeyPair.generate() : Ed25519KeyPair.fromSeed(sha256(utf8(seed)))
  return { key, did: didFromEd25519PublicKey(key.publicKey) }
}

export const cid = (seed: string): string => cidOfBytes(utf8(seed), RAW_CODE).toString()
export const digest = (seed: string): string => toHex(sha256(utf8(seed)))
export const model = (seed: string): ModelRef => ({ cid: cid(seed), digest: digest(seed) })
/** A vote's ONNX export (a CID of its own, a plausible size). */
export const onnx = (seed: string, bytes = 9_000): OnnxRef => ({ cid: cid(`onnx ${seed}`), bytes })

export const BALANCE = 1_000_000n
export const POOL = 12_000n
export const BOND = 1_000n

/** The terms of a 12-participant, 3-voter, Krum task of 3 rounds (overridable). */
export function terms(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'digits',
    widths: [64, 32, 10],
    inputDivisor: 16,
    initial: model('initial'),
    rule: 'krum',
    f: 3,
    rounds: 3,
    uploadBlocks: 4,
    voteBlocks: 4,
    joinBlocks: 20,
    pool: POOL,
    bond: BOND,
    participants: 12,
    voters: 3,
    slashPpm: 500_000,
    ...overrides,
  }
}

export interface World extends ModuleChain {
  validators: Actor[]
  creator: Actor
  /** Twelve funded participants (not yet joined). */
  clients: Actor[]
  outsider: Actor
}

/**
 * A chain at height 0 with three validators and a funded creator, twelve clients and an outsider;
 * with `seed`, every key is derived from it (the same seed, the same world).
 */
export function world(options: { params?: Partial<ChainParams>; clients?: number; seed?: number } = {}): World {
  const make = (label: string): Actor => actor(options.seed === undefined ? undefined : `${options.seed}/${label}`)
  const validators = Array.from({ length: 3 }, (_, i) => make(`validator ${i}`))
  const creator = make('creator')
  const clients = Array.from({ length: options.clients ?? 12 }, (_, i) => make(`client ${i}`))
  const outsider = make('outsider')
  const genesis: GenesisDoc = {
    chainId: 'donghae-test',
    genesisTime: 1_700_000_000_000,
    params: { ...DEFAULT_PARAMS, blockReward: 0n, ...options.params },
    accounts: [...validators, creator, ...clients, outsider].map((a) => ({ did: a.did, balance: BALANCE })),
    validators: validators.map((v) => ({ did: v.did, stake: 10_000n })),
  }
  const machine = new StateMachine({
    chainId: genesis.chainId,
    modules: [bankModule, stakingModule(genesis.params), flModule(genesis.params)],
    fees: feeCollector,
    minFee: genesis.params.minFee,
  })
  const state = new StateOverlay(SparseMerkleTree.empty())
  machine.initGenesis(state, genesis)
  return {
    genesis,
    machine,
    state,
    height: 0,
    validators,
    creator,
    clients,
    outsider,
    nonces: new Map(),
    rules: { proposer: () => validators[0]?.did ?? '', parentId: (height) => sha256(utf8(`block ${height - 1}`)) },
  }
}

export type { TxSpec }

/** Executes the next block with these transactions, failed ones included; returns each one's result. */
export const blockResults = (w: World, txs: TxSpec[]): { events: ChainEvent[]; results: TxResult[] } =>
  runBlockResults(w, txs)

/** Executes the next block with these transactions (each must succeed); returns its events. */
export const block = (w: World, txs: TxSpec[] = []): ChainEvent[] => runBlock(w, txs)

export const tx = (w: World, who: Actor, kind: string, body: unknown): ChainEvent[] => runBlock(w, [[who, kind, body]])

/** Runs one transaction that must fail with `reason` (in its own block, fee paid). */
export const refusedTx = (w: World, who: Actor, kind: string, body: unknown, reason: string, message?: RegExp): void =>
  runRefused(w, who, kind, body, reason, message)

export const advanceTo = (w: World, height: number): ChainEvent[] => runTo(w, height)

/** Creates a task with `terms(overrides)`; returns its id. */
export function createTask(w: World, overrides: Record<string, unknown> = {}): number {
  const events = tx(w, w.creator, 'fl.create', terms(overrides))
  const created = events.find((e) => e.type === 'fl.created')
  assert.ok(created !== undefined, 'fl.created')
  return Number(created.attributes.task)
}

/** Every client joins task `id` in one block, then one more block opens round 1; returns it. */
export function joinAll(w: World, id: number, clients = w.clients): RoundRecord {
  const task = readTask(w.state, id)
  assert.ok(task !== undefined)
  block(
    w,
    clients.map((c): TxSpec => [c, 'fl.join', { task: id, bond: task.bond }]),
  )
  block(w)
  const round = readRound(w.state, id, 1)
  assert.ok(round !== undefined, 'round 1 opened')
  return round
}

export const byDid = (w: World, did: string): Actor => {
  const found = w.clients.find((c) => c.did === did)
  assert.ok(found !== undefined, `${did} is a client`)
  return found
}

export function updateBody(id: number, round: number, seed: string, overrides: Record<string, unknown> = {}) {
  return { task: id, round, cid: cid(seed), digest: digest(seed), bytes: 12_000, samples: 100, ...overrides }
}

/** Every proposer of `round` (or those given) uploads an update in one block. */
export function uploadAll(w: World, round: RoundRecord, proposers = round.proposers): ChainEvent[] {
  return block(
    w,
    proposers.map((did): TxSpec => [
      byDid(w, did),
      'fl.update',
      updateBody(round.task, round.round, `${did} r${round.round}`),
    ]),
  )
}

export function voteBody(
  round: RoundRecord,
  aggregate: ModelRef | undefined,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    task: round.task,
    round: round.round,
    approve: aggregate !== undefined,
    ...(aggregate === undefined ? {} : { aggregate }),
    accuracyPpm: 900_000,
    excluded: [],
    ...overrides,
  }
}

/**
 * Runs the task's remaining rounds from `round`: every proposer uploads, every voter approves the
 * round's aggregate `model('agg <r>')` with its export `onnx('agg <r>')` (or what `vote` gives);
 * returns the events of the last settlement.
 */
export function runRounds(
  w: World,
  round: RoundRecord,
  vote: (round: RoundRecord, did: string) => Record<string, unknown> = (r) =>
    voteBody(r, model(`agg ${r.round}`), { onnx: onnx(`agg ${r.round}`) }),
): ChainEvent[] {
  const task = readTask(w.state, round.task)
  assert.ok(task !== undefined)
  let current = round
  for (;;) {
    uploadAll(w, current)
    voteAll(
      w,
      current,
      current.voters.map((did) => [did, vote(current, did)]),
    )
    const events = advanceTo(w, current.voteEnd)
    if (current.round >= task.rounds) return events
    current = readRound(w.state, round.task, current.round + 1) as RoundRecord
  }
}

/** Moves past the upload window, then the given voters vote in one block. */
export function voteAll(w: World, round: RoundRecord, votes: Array<[string, Record<string, unknown>]>): ChainEvent[] {
  advanceTo(w, round.uploadEnd)
  return block(
    w,
    votes.map(([did, body]): TxSpec => [byDid(w, did), 'fl.vote', body]),
  )
}
