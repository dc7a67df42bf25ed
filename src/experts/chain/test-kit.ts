/**
 * Test kit for the experts module (its tests and test/attacks/experts-chain.test.ts): an
 * in-process chain with the real bank, staking and experts modules, transactions signed, encoded
 * and decoded as a block carries them (each with its real hash, the proposal id), a tiny MoE
 * architecture, and builders for MetaBlocks and signed, stamped parameter blocks.
 */
import assert from 'node:assert/strict'
import { utf8 } from '../../core/bytes.ts'
import { cidOfBytes, RAW_CODE } from '../../core/cid.ts'
import { runBlock, runRefused, runTo, type ModuleChain, type TxSpec } from '../../../test/helpers/module-chain.ts'
import { StateMachine, type ChainEvent } from '../../chain/host.ts'
import { StateOverlay } from '../../chain/state-view.ts'
import { SparseMerkleTree } from '../../chain/state/smt.ts'
import { DEFAULT_PARAMS, type ChainParams, type GenesisDoc, type GenesisExperts } from '../../chain/genesis.ts'
import { bankModule, feeCollector } from '../../bank/bank.ts'
import { stakingModule } from '../../staking/staking.ts'
import { Ed25519KeyPair } from '../../identity/keys.ts'
import { didFromEd25519PublicKey } from '../../identity/did-key.ts'
import { metaHash, signParamBlock } from '../block.ts'
import { findNonce } from '../pow.ts'
import {
  parseExpertName,
  payloadShapes,
  type MetaBlockBody,
  type MoeArchitecture,
  type ParamBlockHeader,
  type PolScore,
} from '../types.ts'
import { expertsModule } from './module.ts'

export interface Actor {
  key: Ed25519KeyPair
  did: string
}

export function actor(): Actor {
  const key = Ed25519KeyPair.generate()
  return { key, did: didFromEd25519PublicKey(key.publicKey) }
}

export const cid = (seed: string): string => cidOfBytes(utf8(seed), RAW_CODE).toString()

export const ARCH: MoeArchitecture = {
  vocabSize: 16,
  dModel: 8,
  nLayers: 2,
  nHeads: 2,
  nKvHeads: 1,
  dFf: 16,
  contextLength: 32,
  ropeTheta: 10_000,
  normEpsE9: 10_000,
  expertsPerLayer: 4,
  topK: 2,
  gating: 'softmax-topk-renorm',
  ffn: 'swiglu',
  tieEmbeddings: false,
}

export const TEST_PARAMS: Partial<ChainParams> = {
  blockReward: 0n,
  epochLength: 20,
  polDifficultyBits: 6,
  polWindowBlocks: 10,
  polBond: 1_000n,
  expertCallPrice: 1n,
}

export function metaBody(overrides: Partial<MetaBlockBody> = {}): MetaBlockBody {
  return {
    family: 'tiny-moe',
    version: 1,
    arch: ARCH,
    tokenizer: { json: cid('tokenizer.json'), config: cid('tokenizer_config.json') },
    trunk: cid(`trunk ${overrides.family ?? 'tiny-moe'} ${overrides.version ?? 1}`),
    validation: { cid: cid('validation'), windows: 4, windowTokens: 16 },
    carry: [],
    note: 'test',
    ...overrides,
  }
}

let payloadCounter = 0

/** A signed parameter block with its proof of work at `bits` (shapes from `arch` unless given). */
export function paramBlock(
  miner: Actor,
  spec: {
    family?: string
    version?: number
    index: number
    name: string
    dependsOn: string[]
    arch?: MoeArchitecture
    shapes?: Record<string, number[]>
    bits?: number
  },
): ParamBlockHeader {
  const parsed = parseExpertName(spec.name)
  const blockType = parsed?.expert === null ? 'router' : 'expert'
  const header = signParamBlock(miner.key, {
    index: spec.index,
    chainId: spec.family ?? 'tiny-moe',
    version: spec.version ?? 1,
    dependsOn: spec.dependsOn,
    blockType,
    expertName: spec.name,
    layerId: parsed?.layer ?? 0,
    payloadHash: cid(`payload ${payloadCounter++} ${spec.name}`),
    payloadBytes: 1_024,
    shapes: spec.shapes ?? payloadShapes(spec.arch ?? ARCH, blockType),
  })
  const nonce = findNonce(header, spec.bits ?? TEST_PARAMS.polDifficultyBits ?? 0)
  assert.ok(nonce !== undefined)
  return { ...header, nonce }
}

export const score = (loss: bigint, acc: number): PolScore => ({ lossMicroNats: loss, accuracyPpm: acc })

export interface World extends ModuleChain {
  validators: Actor[]
  owner: Actor
  miner: Actor
  gateway: Actor
  outsider: Actor
}

export const BALANCE = 1_000_000n

/** A chain at height 0 with three equal validators and funded owner, miner, gateway and outsider. */
export function world(
  options: { params?: Partial<ChainParams>; experts?: GenesisExperts; validators?: number } = {},
): World {
  const validators = Array.from({ length: options.validators ?? 3 }, actor)
  const [owner, miner, gateway, outsider] = [actor(), actor(), actor(), actor()]
  const genesis: GenesisDoc = {
    chainId: 'donghae-test',
    genesisTime: 1_700_000_000_000,
    params: { ...DEFAULT_PARAMS, ...TEST_PARAMS, ...options.params },
    accounts: [...validators, owner, miner, gateway, outsider].map((a) => ({ did: a.did, balance: BALANCE })),
    validators: validators.map((v) => ({ did: v.did, stake: 10_000n })),
    ...(options.experts === undefined ? {} : { experts: options.experts }),
  }
  const machine = new StateMachine({
    chainId: genesis.chainId,
    modules: [bankModule, stakingModule(genesis.params), expertsModule(genesis.params)],
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
    owner,
    miner,
    gateway,
    outsider,
    nonces: new Map(),
    rules: { proposer: () => validators[0]?.did ?? '' },
  }
}

export type { TxSpec }

/** Executes the next block with these transactions (each must succeed); returns its events. */
export const block = (w: World, txs: TxSpec[] = []): ChainEvent[] => runBlock(w, txs)

/** Runs one transaction in its own block; returns the block's events. */
export const tx = (w: World, who: Actor, kind: string, body: unknown): ChainEvent[] => runBlock(w, [[who, kind, body]])

/** Runs one transaction that must fail with `reason` (in its own block, fee paid). */
export const refusedTx = (w: World, who: Actor, kind: string, body: unknown, reason: string, message?: RegExp): void =>
  runRefused(w, who, kind, body, reason, message)

export const advanceTo = (w: World, height: number): ChainEvent[] => runTo(w, height)

/** Creates the family `tiny-moe` v1 owned by `w.owner`; returns its MetaBlock hash. */
export function createFamily(w: World, overrides: Partial<MetaBlockBody> = {}): string {
  const body = metaBody(overrides)
  tx(w, w.owner, 'experts.meta', body)
  return metaHash(body)
}

/**
 * Proposes `blocks` with `claim` from the miner; returns the proposal id. The blocks' indices
 * must be the family's next ones.
 */
export function propose(w: World, blocks: ParamBlockHeader[], claim: PolScore, who: Actor = w.miner): string {
  tx(w, who, 'experts.propose', { family: blocks[0]?.chainId, version: blocks[0]?.version, blocks, claim })
  return w.lastTx as string // the proposal's id is its transaction's hash
}

/** Every validator attests `body` for `id` in one block; returns the events. */
export function attestAll(
  w: World,
  id: string,
  body: Record<string, unknown>,
  validators = w.validators,
): ChainEvent[] {
  return block(
    w,
    validators.map((v): TxSpec => [v, 'experts.attest', { proposal: id, ...body }]),
  )
}
