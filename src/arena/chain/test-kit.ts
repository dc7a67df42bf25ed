/**
 * Test kit for the arena module (its tests, test/arena-task.test.ts, test/attacks/arena*.test.ts):
 * an in-process chain with the real bank, staking, inference, experts and arena modules,
 * transactions signed, encoded and decoded as a block carries them, and a parent id per height
 * (sha256 of the height) so that draws differ from block to block as on a real chain.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { utf8 } from '../../core/bytes.ts'
import { cidOfBytes, RAW_CODE } from '../../core/cid.ts'
import { sha256 } from '../../core/hash.ts'
import { runBlock, runRefused, runTo, type ModuleChain, type TxSpec } from '../../../test/helpers/module-chain.ts'
import { StateMachine, type ChainEvent } from '../../chain/host.ts'
import { StateOverlay } from '../../chain/state-view.ts'
import { SparseMerkleTree } from '../../chain/state/smt.ts'
import { DEFAULT_PARAMS, type ChainParams, type GenesisDoc } from '../../chain/genesis.ts'
import { bankModule, feeCollector } from '../../bank/bank.ts'
import { stakingModule } from '../../staking/staking.ts'
import { inferenceModule } from '../../inference/chain/module.ts'
import { expertsModule } from '../../experts/chain/module.ts'
import { Ed25519KeyPair } from '../../identity/keys.ts'
import { didFromEd25519PublicKey } from '../../identity/did-key.ts'
import type { ArenaTunables } from '../constants.ts'
import { scoresCommitment, submissionCommitment, type RevealedScore } from '../commitments.ts'
import { arenaModule, assignmentIn, readDraw } from './module.ts'

export interface Actor {
  key: Ed25519KeyPair
  did: string
}

/** A fresh actor; with a `name`, always the same one (its key seeded by the name), for replayable draws. */
export function actor(name?: string): Actor {
  const key = name === undefined ? Ed25519KeyPair.generate() : Ed25519KeyPair.fromSeed(sha256(utf8(`actor ${name}`)))
  return { key, did: didFromEd25519PublicKey(key.publicKey) }
}

export const BALANCE = 1_000_000n

export const TEST_PARAMS: Partial<ChainParams> = { blockReward: 0n, modelDeposit: 1_000n, minModelPrice: 1n }

export interface World extends ModuleChain {
  chainValidators: Actor[]
  creator: Actor
  outsider: Actor
}

/** A chain at height 0 with one chain validator and funded creator, outsider and `extra` accounts. */
export function world(options: { tunables?: Partial<ArenaTunables>; funded?: Actor[] } = {}): World {
  const chainValidators = [actor()]
  const [creator, outsider] = [actor(), actor()]
  const params = { ...DEFAULT_PARAMS, ...TEST_PARAMS }
  const genesis: GenesisDoc = {
    chainId: 'donghae-test',
    genesisTime: 1_700_000_000_000,
    params,
    accounts: [...chainValidators, creator, outsider, ...(options.funded ?? [])].map((a) => ({
      did: a.did,
      balance: BALANCE,
    })),
    validators: chainValidators.map((v) => ({ did: v.did, stake: 10_000n })),
  }
  const machine = new StateMachine({
    chainId: genesis.chainId,
    modules: [
      bankModule,
      stakingModule(params),
      inferenceModule(params),
      expertsModule(params),
      arenaModule(params, options.tunables),
    ],
    fees: feeCollector,
    minFee: params.minFee,
  })
  const state = new StateOverlay(SparseMerkleTree.empty())
  machine.initGenesis(state, genesis)
  return {
    genesis,
    machine,
    state,
    height: 0,
    chainValidators,
    creator,
    outsider,
    nonces: new Map(),
    rules: { proposer: () => chainValidators[0]?.did ?? '', parentId: (height) => blockId(height - 1) },
  }
}

/** The id of block `height` in this test chain (the parent id of height + 1). */
export const blockId = (height: number): Uint8Array => sha256(utf8(`test block ${height}`))

export type { TxSpec }

/** Executes the next block with these transactions (each must succeed); returns its events. */
export const block = (w: World, txs: TxSpec[] = []): ChainEvent[] => runBlock(w, txs)

export const tx = (w: World, who: Actor, kind: string, body: unknown): ChainEvent[] => runBlock(w, [[who, kind, body]])

/** Runs one transaction that must fail with `reason` (in its own block, fee paid). */
export const refusedTx = (w: World, who: Actor, kind: string, body: unknown, reason: string): void =>
  runRefused(w, who, kind, body, reason)

export const advanceTo = (w: World, height: number): ChainEvent[] => runTo(w, height)

/** A raw-codec CID of some bytes (what a weights file is named by). */
export const blobCidOf = (bytes: Uint8Array): string => cidOfBytes(bytes, RAW_CODE).toString()

/** Registers a tensor model (`name` v1) owned by `owner`; returns its CID. */
export function registerBase(w: World, owner: Actor, bytes: Uint8Array = utf8('base model'), name = 'base'): string {
  const cid = blobCidOf(bytes)
  tx(w, owner, 'inference.registerModel', {
    cid,
    name,
    version: '1',
    price: 5n,
    kind: 'tensor',
    inputs: [{ name: 'input', type: 'float32', dims: [null, 64] }],
    outputs: [{ name: 'probabilities', type: 'float32', dims: [null, 10] }],
    tolerance: { maxAbsPpm: 10_000, top1: true },
    size: bytes.length,
  })
  return cid
}

/** A create body with deadlines `gaps` blocks apart starting from the next block. */
export function createBody(
  w: World,
  base: string,
  overrides: Record<string, unknown> = {},
  gaps: [number, number, number, number] = [20, 5, 8, 5],
): Record<string, unknown> {
  const submitDeadline = w.height + gaps[0]
  const publishDeadline = submitDeadline + gaps[1]
  const scoreDeadline = publishDeadline + gaps[2]
  const revealDeadline = scoreDeadline + gaps[3]
  return {
    name: 'digits-arena',
    baseModel: { kind: 'model', cid: base },
    data: { kind: 'local' },
    validationCommitA: sha256(utf8('set A')),
    validationCommitB: sha256(utf8('set B')),
    submitDeadline,
    publishDeadline,
    scoreDeadline,
    revealDeadline,
    k1: 3,
    k2: 3,
    pool: 100_000n,
    ...overrides,
  }
}

/** A trainer's weights in hand: what it commits to and later publishes. */
export interface Weights {
  bytes: Uint8Array
  cid: string
  salt: Uint8Array
}

export function weights(bytes: Uint8Array, salt: Uint8Array = new Uint8Array(randomBytes(32))): Weights {
  return { bytes, cid: blobCidOf(bytes), salt }
}

export function submitBody(task: number, trainer: Actor, wts: Weights): Record<string, unknown> {
  return { task, commitment: submissionCommitment(sha256(wts.bytes), trainer.did, wts.salt) }
}

export function publishBody(task: number, wts: Weights): Record<string, unknown> {
  return { task, weightsCid: wts.cid, size: wts.bytes.length, salt: wts.salt }
}

/** A validator's scores over its assignment: `score(submission, set)`. */
export function scoresFor(
  w: World,
  task: number,
  validator: Actor,
  score: (submission: number, set: 'A' | 'B') => number,
): RevealedScore[] {
  const record = readDraw(w.state, task)
  assert.ok(record !== undefined, `task ${task} has not drawn yet`)
  return assignmentIn(record, validator.did).map((a) => ({ ...a, score: score(a.submission, a.set) }))
}

export function commitBody(task: number, validator: Actor, scores: RevealedScore[], salt: Uint8Array) {
  return { task, commitment: scoresCommitment(task, validator.did, scores, salt) }
}

export function revealBody(task: number, scores: RevealedScore[], salt: Uint8Array) {
  return { task, scores, salt }
}

export const events = (list: ChainEvent[], type: string): ChainEvent[] => list.filter((e) => e.type === type)
