/**
 * Test kit for the experts module (its tests and test/attacks/experts-chain.test.ts): an
 * in-process chain with the real bank, staking and experts modules, transactions signed, encoded
 * and decoded as a block carries them (each with its real hash, the proposal id), a tiny MoE
 * architecture, and builders for MetaBlocks and signed, stamped parameter blocks.
 */
import assert from 'node:assert/strict'
import { utf8 } from '../../core/bytes.ts'
import { cidOfBytes, RAW_CODE } from '../../core/cid.ts'
import { decodeTx, encodeTx, signTx, txHash } from '../../chain/tx.ts'
import { TxError } from '../../chain/errors.ts'
import { StateMachine, type ChainEvent } from '../../chain/host.ts'
import { StateOverlay } from '../../chain/state-view.ts'
import { SparseMerkleTree } from '../../chain/state/smt.ts'
import { DEFAULT_PARAMS, type ChainParams, type GenesisDoc, type GenesisExperts } from '../../chain/genesis.ts'
import { bankModule, feeCollector } from '../../bank/bank.ts'
import { stakingModule, validatorSetAt } from '../../staking/staking.ts'
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

export interface World {
  genesis: GenesisDoc
  machine: StateMachine
  state: StateOverlay
  height: number
  validators: Actor[]
  owner: Actor
  miner: Actor
  gateway: Actor
  outsider: Actor
  nonces: Map<string, bigint>
  /** Hash of the last delivered transaction (hex): a proposal's id. */
  lastTx: string
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
    lastTx: '',
  }
}

function info(w: World, height: number) {
  return {
    chainId: w.genesis.chainId,
    height,
    time: w.genesis.genesisTime + height * 1_000,
    proposer: w.validators[0]?.did ?? '',
    parentId: new Uint8Array(32),
    validators: validatorSetAt(w.state, height, w.genesis.params),
    lastCommitSigners: null,
  }
}

export type TxSpec = [Actor, string, unknown]

/** Delivers one transaction at `height`; a failed body throws its TxError (fee and nonce kept). */
function deliver(w: World, who: Actor, kind: string, body: unknown, height: number, events: ChainEvent[]): void {
  const nonce = w.nonces.get(who.did) ?? 0n
  const encoded = encodeTx(signTx(who.key, { chainId: w.genesis.chainId, nonce, fee: 1n, kind, body }))
  const hash = txHash(encoded)
  const result = w.machine.deliver(w.state, decodeTx(encoded), { ...info(w, height), txHash: hash }, (e) =>
    events.push(e),
  )
  w.nonces.set(who.did, nonce + 1n)
  w.lastTx = Buffer.from(hash).toString('hex')
  if (!result.ok) throw result.error
}

/** Executes the next block with these transactions (each must succeed); returns its events. */
export function block(w: World, txs: TxSpec[] = []): ChainEvent[] {
  const height = w.height + 1
  const events: ChainEvent[] = []
  const ctx = { ...info(w, height), emit: (e: ChainEvent) => events.push(e) }
  w.machine.beginBlock(w.state, ctx)
  for (const [who, kind, body] of txs) deliver(w, who, kind, body, height, events)
  w.machine.endBlock(w.state, ctx)
  w.height = height
  return events
}

/** Runs one transaction in its own block; returns the block's events. */
export function tx(w: World, who: Actor, kind: string, body: unknown): ChainEvent[] {
  return block(w, [[who, kind, body]])
}

/** Runs one transaction that must fail with `reason` (in its own block, fee paid). */
export function refusedTx(w: World, who: Actor, kind: string, body: unknown, reason: string, message?: RegExp): void {
  const height = w.height + 1
  const ctx = { ...info(w, height), emit: () => {} }
  w.machine.beginBlock(w.state, ctx)
  try {
    assert.throws(
      () => deliver(w, who, kind, body, height, []),
      (err: unknown) =>
        err instanceof TxError && err.reason === reason && (message === undefined || message.test(err.message)),
      `expected ${kind} to fail with ${reason}`,
    )
  } finally {
    w.machine.endBlock(w.state, ctx)
    w.height = height
  }
}

export function advanceTo(w: World, height: number): ChainEvent[] {
  const events: ChainEvent[] = []
  while (w.height < height) events.push(...block(w))
  return events
}

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
  return w.lastTx
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
