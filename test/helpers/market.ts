/**
 * An in-process chain with the real bank, staking and inference modules for market tests and
 * attacks: genesis with a model and bonded workers (provider, runtime and served model declared),
 * blocks that record their parent's id (so the chain's own audit draws work), transactions signed,
 * encoded and decoded as a block carries them, and builders for jobs, dispatches and receipts.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { sha256 } from '../../src/core/hash.ts'
import { cidOfBytes, RAW_CODE } from '../../src/core/cid.ts'
import { utf8 } from '../../src/core/bytes.ts'
import { decodeTx, encodeTx, signTx } from '../../src/chain/tx.ts'
import { TxError } from '../../src/chain/errors.ts'
import { StateMachine, type ChainEvent } from '../../src/chain/host.ts'
import { StateOverlay } from '../../src/chain/state-view.ts'
import { SparseMerkleTree } from '../../src/chain/state/smt.ts'
import type { ChainParams, GenesisDoc, GenesisModel } from '../../src/chain/genesis.ts'
import { bankModule, feeCollector } from '../../src/bank/bank.ts'
import { stakingModule, validatorSetAt } from '../../src/staking/staking.ts'
import { inferenceModule } from '../../src/inference/chain/module.ts'
import {
  inputsCommitment,
  receiptValue,
  signDispatch,
  signJob,
  signReceipt,
  type Receipt,
  type SignedJob,
} from '../../src/inference/job.ts'
import { actor, makeGenesis, type Actor } from './chain.ts'

export { actor, type Actor }

export const T0 = 1_700_000_000_000
export const PRICE = 100n
export const RUNTIME = 'onnxruntime-node/1.30.0 linux-x64'
export const OUT_A = sha256(utf8('answer A'))
export const OUT_B = sha256(utf8('answer B'))

export const cid = (seed: string): string => cidOfBytes(utf8(seed), RAW_CODE).toString()
export const MODEL = cid('mnist-v1')

export function modelBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cid: MODEL,
    name: 'mnist',
    version: '1',
    price: PRICE,
    kind: 'tensor',
    inputs: [{ name: 'x', type: 'float32', dims: [null, 4] }],
    outputs: [{ name: 'y', type: 'float32', dims: [null, 3] }],
    tolerance: { maxAbsPpm: 1_000, top1: true },
    size: 2_000,
    ...overrides,
  }
}

/** Parameters that keep market tests short (small windows, one-block epochs of 10). */
export const TEST_PARAMS: Partial<ChainParams> = {
  epochLength: 10,
  unbondingBlocks: 5,
  blockReward: 0n,
  minWorkerBond: 1_000n,
  protocolShareBps: 1_000,
  rewardCapBps: 800,
  settleWindowMs: 60_000,
  gatewayGraceMs: 10_000,
  maxJobTtlMs: 60_000,
  depositUnlockMs: 120_000,
  auditReward: 5n,
  workerSlashBps: 1_000,
  challengerRewardBps: 5_000,
  quarantineBlocks: 50,
  workerRewardPerEpoch: 1_000n,
  recencyBlocks: 15,
  modelDeposit: 500n,
  minDeposit: 100n,
  quorumSize: 3,
  auditCandidates: 3,
  auditSlotBlocks: 2,
  disputeWindowBlocks: 10,
  challengeFee: 20n,
}

export interface MarketWorker extends Actor {
  ep: 'cpu' | 'coreml'
}

export interface Market {
  genesis: GenesisDoc
  machine: StateMachine
  state: StateOverlay
  height: number
  /** Everyone the genesis funds. */
  val: Actor
  owner: Actor
  client: Actor
  gateway: Actor
  outsider: Actor
  workers: MarketWorker[]
  nonces: Map<string, bigint>
}

export interface MarketOptions {
  params?: Partial<ChainParams>
  /** Providers of the bonded workers, in order. @default six CPU workers */
  workers?: Array<'cpu' | 'coreml'>
  /** Deposit the client makes with the gateway at genesis height 1. @default 10 000 */
  deposit?: bigint
}

/** A chain at height 1 with the client's deposit with the gateway committed. */
export function market(options: MarketOptions = {}): Market {
  const [val, owner, client, gateway, outsider] = [actor(), actor(), actor(), actor(), actor()]
  const workers = (options.workers ?? ['cpu', 'cpu', 'cpu', 'cpu', 'cpu', 'cpu']).map((ep) => ({ ...actor(), ep }))
  const genesis: GenesisDoc = {
    ...makeGenesis(
      [val],
      [
        [client, 1_000_000n],
        [owner, 10_000n],
        [gateway, 10_000n],
        [outsider, 10_000n],
        ...workers.map((w): [Actor, bigint] => [w, 10_000n]),
      ],
      { ...TEST_PARAMS, ...options.params },
    ),
    inference: {
      models: [{ owner: owner.did, ...modelBody() } as GenesisModel],
      workers: workers.map((w) => ({ did: w.did, bond: 10_000n, ep: w.ep, runtime: RUNTIME, models: [MODEL] })),
    },
  }
  const machine = new StateMachine({
    chainId: genesis.chainId,
    modules: [bankModule, stakingModule(genesis.params), inferenceModule(genesis.params)],
    fees: feeCollector,
    minFee: genesis.params.minFee,
  })
  const state = new StateOverlay(SparseMerkleTree.empty())
  machine.initGenesis(state, genesis)
  const m: Market = {
    genesis,
    machine,
    state,
    height: 0,
    val,
    owner,
    client,
    gateway,
    outsider,
    workers,
    nonces: new Map(),
  }
  const deposit = options.deposit ?? 10_000n
  block(m, deposit > 0n ? [[client, 'inference.deposit', { gateway: gateway.did, amount: deposit }]] : [])
  return m
}

export const timeAt = (height: number): number => T0 + height * 1_000
export const blockIdAt = (height: number): Uint8Array => sha256(utf8(`test block ${height}`))

function info(m: Market, height: number) {
  return {
    chainId: m.genesis.chainId,
    height,
    time: timeAt(height),
    proposer: m.val.did,
    parentId: blockIdAt(height - 1),
    validators: validatorSetAt(m.state, height, m.genesis.params),
    lastCommitSigners: null,
  }
}

export type TxSpec = [Actor, string, unknown]

/**
 * Executes the next block with these transactions; each must succeed (a refusal throws its
 * TxError, leaving the block half applied: tests that expect a refusal use `refused`).
 */
export function block(m: Market, txs: TxSpec[] = []): ChainEvent[] {
  const height = m.height + 1
  const events: ChainEvent[] = []
  const ctx = { ...info(m, height), emit: (e: ChainEvent) => events.push(e) }
  m.machine.beginBlock(m.state, ctx)
  for (const [who, kind, body] of txs) deliver(m, who, kind, body, height, events)
  m.machine.endBlock(m.state, ctx)
  m.height = height
  return events
}

/** Opens the next block, runs `fn` in it (deliver with `tx`), closes it. */
export function inBlock<T>(m: Market, fn: (tx: (who: Actor, kind: string, body: unknown) => ChainEvent[]) => T): T {
  const height = m.height + 1
  const ctx = { ...info(m, height), emit: () => {} }
  m.machine.beginBlock(m.state, ctx)
  try {
    return fn((who, kind, body) => {
      const events: ChainEvent[] = []
      deliver(m, who, kind, body, height, events)
      return events
    })
  } finally {
    m.machine.endBlock(m.state, ctx)
    m.height = height
  }
}

function deliver(m: Market, who: Actor, kind: string, body: unknown, height: number, events: ChainEvent[]): void {
  const nonce = m.nonces.get(who.did) ?? 0n
  const tx = decodeTx(encodeTx(signTx(who.key, { chainId: m.genesis.chainId, nonce, fee: 1n, kind, body })))
  // Ante failures throw and use no nonce; a failed body is included (its fee paid, its nonce used)
  // and thrown here as the TxError it failed with, so `refused(...)` reads the same either way.
  const result = m.machine.deliver(m.state, tx, { ...info(m, height), txHash: new Uint8Array(32) }, (e) =>
    events.push(e),
  )
  m.nonces.set(who.did, nonce + 1n)
  if (!result.ok) throw result.error
}

/** Runs empty blocks until `height`. */
export function advanceTo(m: Market, height: number): void {
  while (m.height < height) block(m)
}

export function refused(fn: () => unknown, reason: string, message?: RegExp): void {
  assert.throws(
    fn,
    (err: unknown) =>
      err instanceof TxError && err.reason === reason && (message === undefined || message.test(err.message)),
    `expected a refusal with reason ${reason}`,
  )
}

/** A job of the client's through the gateway, deadline a minute after the current block. */
export function job(
  m: Market,
  overrides: Partial<Omit<SignedJob, 'client' | 'signature'>> = {},
  by: Actor = m.client,
): SignedJob {
  const salt = randomBytes(16)
  return signJob(by.key, {
    chainId: m.genesis.chainId,
    gateway: m.gateway.did,
    model: MODEL,
    inputsHash: inputsCommitment(salt, randomBytes(32)),
    maxFee: 200n,
    deadline: timeAt(m.height) + 30_000,
    salt,
    ...overrides,
  })
}

/** `worker`'s receipt for `j`, dispatched to it by the job's gateway (`dispatchedBy` to forge one). */
export function receipt(
  m: Market,
  worker: MarketWorker,
  j: SignedJob,
  overrides: Partial<Omit<Receipt, 'worker' | 'signature' | 'job'>> & { dispatchedBy?: Actor } = {},
): Receipt {
  const { dispatchedBy, ...rest } = overrides
  const signer = dispatchedBy ?? m.gateway
  return signReceipt(worker.key, {
    job: j,
    dispatch: signDispatch(signer.key, j, worker.did),
    outputHash: OUT_A,
    fee: PRICE,
    ep: worker.ep,
    runtime: RUNTIME,
    startedAt: timeAt(m.height),
    finishedAt: timeAt(m.height) + 5,
    computeMicros: 200,
    ...rest,
  })
}

/** An audit (or quorum) re-run receipt: no dispatch. */
export function rerun(m: Market, worker: MarketWorker, j: SignedJob, outputHash: Uint8Array = OUT_A): Receipt {
  return receipt(m, worker, j, { dispatch: null, outputHash })
}

export const settleBody = (receipts: Receipt[], latencies?: number[]) => ({
  receipts: receipts.map(receiptValue),
  latencies: latencies ?? receipts.map(() => 40),
})

export const rejections = (events: ChainEvent[]): string[] =>
  events.filter((e) => e.type === 'inference.receipt_rejected').map((e) => e.attributes.reason as string)

export const workerByDid = (m: Market, did: string): MarketWorker => {
  const w = m.workers.find((x) => x.did === did)
  assert.ok(w !== undefined, `${did} is not one of the market's workers`)
  return w
}
