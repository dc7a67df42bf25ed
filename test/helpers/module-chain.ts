/**
 * Running blocks of a chain module's tests on the real StateMachine: transactions signed, encoded
 * and decoded as a block carries them, each sender's nonce counted, begin-block and end-block
 * around them. The module test kits (`src/<module>/chain/test-kit.ts`) build their world (genesis,
 * actors, machine) and run it through these.
 */
import assert from 'node:assert/strict'
import { toHex } from '../../src/core/bytes.ts'
import { decodeTx, encodeTx, signTx, txHash } from '../../src/chain/tx.ts'
import { TxError } from '../../src/chain/errors.ts'
import type { ChainEvent, StateMachine, TxResult } from '../../src/chain/host.ts'
import type { StateOverlay } from '../../src/chain/state-view.ts'
import type { GenesisDoc } from '../../src/chain/genesis.ts'
import type { Ed25519KeyPair } from '../../src/identity/keys.ts'
import { validatorSetAt } from '../../src/staking/staking.ts'

export interface Signer {
  key: Ed25519KeyPair
  did: string
}

export type TxSpec = [Signer, string, unknown]

/** How a kit's blocks are made. */
export interface BlockRules {
  /** Proposer of every block. */
  proposer(): string
  /** The parent id of block `height` (draws read it). @default 32 zero bytes */
  parentId?(height: number): Uint8Array
  /** The fee every transaction pays. @default 1 */
  fee?: bigint
  /** Told each block's height and events (a kit's event log). */
  onBlock?(height: number, events: ChainEvent[]): void
}

export interface ModuleChain {
  genesis: GenesisDoc
  machine: StateMachine
  state: StateOverlay
  height: number
  nonces: Map<string, bigint>
  /** Hash (hex) of the last transaction delivered. */
  lastTx?: string
  rules: BlockRules
}

const ZERO_ID = new Uint8Array(32)

export function blockInfo(w: ModuleChain, height: number) {
  return {
    chainId: w.genesis.chainId,
    height,
    time: w.genesis.genesisTime + height * 1_000,
    proposer: w.rules.proposer(),
    parentId: w.rules.parentId?.(height) ?? ZERO_ID,
    validators: validatorSetAt(w.state, height, w.genesis.params),
    lastCommitSigners: null,
  }
}

/** Signs `kind`/`body` from `who` at its next nonce (not yet counted). */
export function signedTx(
  w: ModuleChain,
  who: Signer,
  kind: string,
  body: unknown,
): { encoded: Uint8Array; nonce: bigint } {
  const nonce = w.nonces.get(who.did) ?? 0n
  const fee = w.rules.fee ?? 1n
  return { encoded: encodeTx(signTx(who.key, { chainId: w.genesis.chainId, nonce, fee, kind, body })), nonce }
}

/** Delivers one transaction at `height` and counts its nonce; returns how its body ended. */
export function deliverTx(
  w: ModuleChain,
  who: Signer,
  kind: string,
  body: unknown,
  height: number,
  events: ChainEvent[],
): TxResult {
  const { encoded, nonce } = signedTx(w, who, kind, body)
  const hash = txHash(encoded)
  const result = w.machine.deliver(w.state, decodeTx(encoded), { ...blockInfo(w, height), txHash: hash }, (e) =>
    events.push(e),
  )
  w.nonces.set(who.did, nonce + 1n)
  w.lastTx = toHex(hash)
  return result
}

function mustSucceed(result: TxResult): void {
  if (!result.ok) throw result.error
}

/** Executes the next block with these transactions, failed bodies included; returns each one's result. */
export function runBlockResults(w: ModuleChain, txs: TxSpec[]): { events: ChainEvent[]; results: TxResult[] } {
  const height = w.height + 1
  const events: ChainEvent[] = []
  const ctx = { ...blockInfo(w, height), emit: (e: ChainEvent) => events.push(e) }
  w.machine.beginBlock(w.state, ctx)
  const results = txs.map(([who, kind, body]) => deliverTx(w, who, kind, body, height, events))
  w.machine.endBlock(w.state, ctx)
  w.height = height
  w.rules.onBlock?.(height, events)
  return { events, results }
}

/** Executes the next block with these transactions (each must succeed); returns its events. */
export function runBlock(w: ModuleChain, txs: TxSpec[] = []): ChainEvent[] {
  const height = w.height + 1
  const events: ChainEvent[] = []
  const ctx = { ...blockInfo(w, height), emit: (e: ChainEvent) => events.push(e) }
  w.machine.beginBlock(w.state, ctx)
  // a failed body throws here, before the block ends (tests assert on that)
  for (const [who, kind, body] of txs) mustSucceed(deliverTx(w, who, kind, body, height, events))
  w.machine.endBlock(w.state, ctx)
  w.height = height
  w.rules.onBlock?.(height, events)
  return events
}

/** Runs one transaction whose body must fail with `reason` (in its own block; the fee is paid). */
export function runRefused(
  w: ModuleChain,
  who: Signer,
  kind: string,
  body: unknown,
  reason: string,
  message?: RegExp,
): void {
  const height = w.height + 1
  const events: ChainEvent[] = []
  const ctx = { ...blockInfo(w, height), emit: (e: ChainEvent) => events.push(e) }
  w.machine.beginBlock(w.state, ctx)
  try {
    assert.throws(
      () => mustSucceed(deliverTx(w, who, kind, body, height, events)),
      (err: unknown) =>
        err instanceof TxError && err.reason === reason && (message === undefined || message.test(err.message)),
      `expected ${kind} to fail with ${reason}`,
    )
  } finally {
    w.machine.endBlock(w.state, ctx)
    w.height = height
    w.rules.onBlock?.(height, events)
  }
}

/** Runs empty blocks until `height`; returns their events. */
export function runTo(w: ModuleChain, height: number): ChainEvent[] {
  const events: ChainEvent[] = []
  while (w.height < height) events.push(...runBlock(w))
  return events
}
