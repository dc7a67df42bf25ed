/**
 * Test kit for the governance module (its tests and test/attacks/governance.test.ts): an
 * in-process chain with the real bank, staking and governance modules, transactions signed,
 * encoded and decoded as a block carries them, validators with chosen stakes, and shorthands
 * for proposals and votes. Block rewards and fees are off, so balances move only by deposits.
 */
import assert from 'node:assert/strict'
import { decodeTx, txHash } from '../../chain/tx.ts'
import { TxError } from '../../chain/errors.ts'
import { StateMachine, type ChainEvent } from '../../chain/host.ts'
import {
  blockInfo,
  runBlock,
  runRefused,
  runTo,
  signedTx,
  type ModuleChain,
  type TxSpec,
} from '../../../test/helpers/module-chain.ts'
import { StateOverlay } from '../../chain/state-view.ts'
import { SparseMerkleTree } from '../../chain/state/smt.ts'
import { DEFAULT_PARAMS, type ChainParams, type GenesisDoc } from '../../chain/genesis.ts'
import { bankModule, feeCollector } from '../../bank/bank.ts'
import { stakingModule } from '../../staking/staking.ts'
import { Ed25519KeyPair } from '../../identity/keys.ts'
import { didFromEd25519PublicKey } from '../../identity/did-key.ts'
import { governanceModule } from './module.ts'
import type { VoteOption } from './state.ts'

export interface Actor {
  key: Ed25519KeyPair
  did: string
}

export function actor(): Actor {
  const key = Ed25519KeyPair.generate()
  return { key, did: didFromEd25519PublicKey(key.publicKey) }
}

export const BALANCE = 1_000_000n
/** Fees would go to the validators at the end of each block: the kit pays none, so balances move by deposits only. */
export const FEE = 0n

export interface World extends ModuleChain {
  validators: Actor[]
  outsider: Actor
  /** Every event of every block run so far, with its height. */
  log: Array<ChainEvent & { height: number }>
}

/** A chain at height 0 whose validators have `stakes` (default four of 10 000) and a funded outsider. */
export function world(options: { stakes?: bigint[]; params?: Partial<ChainParams> } = {}): World {
  const stakes = options.stakes ?? [10_000n, 10_000n, 10_000n, 10_000n]
  const validators = stakes.map(actor)
  const outsider = actor()
  const genesis: GenesisDoc = {
    chainId: 'donghae-test',
    genesisTime: 1_700_000_000_000,
    params: { ...DEFAULT_PARAMS, blockReward: 0n, minFee: 0n, epochLength: 1_000, ...options.params },
    accounts: [...validators, outsider].map((a) => ({ did: a.did, balance: BALANCE })),
    validators: validators.map((v, i) => ({ did: v.did, stake: stakes[i] as bigint })),
  }
  const machine = new StateMachine({
    chainId: genesis.chainId,
    modules: [bankModule, stakingModule(genesis.params), governanceModule(genesis.params)],
    fees: feeCollector,
    minFee: genesis.params.minFee,
  })
  const state = new StateOverlay(SparseMerkleTree.empty())
  machine.initGenesis(state, genesis)
  const log: World['log'] = []
  return {
    genesis,
    machine,
    state,
    height: 0,
    validators,
    outsider,
    nonces: new Map(),
    log,
    rules: {
      proposer: () => validators[0]?.did ?? '',
      fee: FEE,
      onBlock: (height, events) => log.push(...events.map((e) => ({ ...e, height }))),
    },
  }
}

export type { TxSpec }

/** Executes the next block with these transactions (each must succeed); returns its events. */
export const block = (w: World, txs: TxSpec[] = []): ChainEvent[] => runBlock(w, txs)

export const tx = (w: World, who: Actor, kind: string, body: unknown): ChainEvent[] => runBlock(w, [[who, kind, body]])

/** Runs one transaction whose body must fail with `reason` (in its own block; the fee is paid). */
export const refusedTx = (w: World, who: Actor, kind: string, body: unknown, reason: string): void =>
  runRefused(w, who, kind, body, reason)

/**
 * A transaction refused at the edge (`precheck`, what the mempool and a block's validation run):
 * it throws TxError with `reason` before any fee; nothing changes.
 */
export function edgeRefused(w: World, who: Actor, kind: string, body: unknown, reason: string): void {
  const { encoded } = signedTx(w, who, kind, body)
  assert.throws(
    () => w.machine.precheck(decodeTx(encoded)),
    (err: unknown) => err instanceof TxError && err.reason === reason,
    `expected ${kind} to be refused at the edge with ${reason}`,
  )
  const before = w.state.changes().length
  assert.throws(() =>
    w.machine.deliver(w.state, decodeTx(encoded), { ...blockInfo(w, w.height + 1), txHash: txHash(encoded) }, () => {}),
  )
  assert.equal(w.state.changes().length, before, 'a transaction refused at the edge writes nothing')
}

export const advanceTo = (w: World, height: number): ChainEvent[] => runTo(w, height)

export interface ProposeSpec {
  changes?: Array<{ param: string; value: bigint | string[] }>
  deposit?: bigint
  applyAtHeight?: number
  title?: string
}

export function proposeBody(spec: ProposeSpec = {}): Record<string, unknown> {
  return {
    title: spec.title ?? 'Shorter voting',
    description: 'Vote in 10 blocks instead of 20.',
    changes: spec.changes ?? [{ param: 'governance.votingPeriodBlocks', value: 10n }],
    deposit: spec.deposit ?? 10_000n,
    ...(spec.applyAtHeight === undefined ? {} : { applyAtHeight: spec.applyAtHeight }),
  }
}

/** Submits a proposal in its own block; returns its id (from the event). */
export function propose(w: World, who: Actor, spec: ProposeSpec = {}): number {
  const events = tx(w, who, 'governance.propose', proposeBody(spec))
  const proposed = events.find((e) => e.type === 'governance.proposed')
  assert.ok(proposed !== undefined, 'governance.proposed emitted')
  return Number(proposed.attributes.id)
}

/** Each listed validator votes in one block. */
export function votes(w: World, id: number, options: Array<[Actor, VoteOption]>): ChainEvent[] {
  return block(
    w,
    options.map(([who, option]): TxSpec => [who, 'governance.vote', { proposal: id, option }]),
  )
}
