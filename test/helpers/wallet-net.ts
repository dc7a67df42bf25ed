/**
 * Wallets over a real in-process chain and transport, for the wallet's service and attack tests:
 * the real state machine and mempool (MemoryChain, which commits what is pending every few
 * milliseconds as consensus would), the in-memory transport hub, and the real WalletService with
 * the node's own chain port (`walletChainPort`). Every wallet's files live in a temporary folder.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { systemClock } from '../../src/core/clock.ts'
import { encodeTx, signTx } from '../../src/chain/tx.ts'
import { MemoryHub, type MemoryTransport } from '../../src/net/memory-transport.ts'
import { WalletService, type WalletSettings, type WalletNetPort } from '../../src/wallet/service.ts'
import { walletChainPort, type WalletChainSource } from '../../src/node/wallet.ts'
import { MemoryChain } from './memory-chain.ts'
import { actor, makeGenesis, type Actor } from './chain.ts'

export const WALLET_PASSWORD = 'wallet test password'
/** Cheap scrypt for tests (the default is exercised by the ledger's own tests). */
export const FAST_SCRYPT = { N: 2 ** 10, r: 8, p: 1 }
/** Short waits so the tests run in seconds. */
export const FAST_SETTINGS: Partial<WalletSettings> = {
  retryInitialMs: 20,
  retryMaxMs: 200,
  collectEveryMs: 100,
  commitWaitMs: 1_000,
  pendingTimeoutMs: 2_000,
}

export interface WalletWorld {
  chain: MemoryChain
  hub: MemoryHub
  dir: string
  actors: Record<'val' | 'alice' | 'bob' | 'carol' | 'mallory', Actor>
  transports: Map<string, MemoryTransport>
  /** Opens (or reopens) the wallet of `who` from its folder. */
  open(who: Actor, settings?: Partial<WalletSettings>): Promise<WalletService>
  /** Signs and submits a transaction from `who` at its next nonce (pending ones counted). */
  submit(who: Actor, kind: string, body: unknown, fee?: bigint): Promise<{ hash: Uint8Array }>
  close(): Promise<void>
}

export async function walletWorld(): Promise<WalletWorld> {
  const actors = { val: actor(), alice: actor(), bob: actor(), carol: actor(), mallory: actor() }
  const genesis = makeGenesis(
    [actors.val],
    [
      [actors.alice, 1_000_000n],
      [actors.mallory, 1_000_000n],
      [actors.carol, 10_000n],
    ],
  )
  const chain = new MemoryChain({ genesis, validators: [actors.val] })
  const producer = setInterval(() => {
    if (chain.mempool.size > 0) chain.commitPending()
  }, 10)
  const hub = new MemoryHub()
  const dir = await mkdtemp(join(tmpdir(), 'donghae-wallet-'))
  const transports = new Map<string, MemoryTransport>()
  const open = new Set<WalletService>()

  const submit = async (who: Actor, kind: string, body: unknown, fee = genesis.params.minFee) => {
    const nonce = chain.account(who.did).nonce + BigInt(chain.mempool.pendingFrom(who.did))
    const tx = signTx(who.key, { chainId: genesis.chainId, nonce, fee, kind, body })
    return chain.submitTx(encodeTx(tx))
  }

  const sourceFor = (who: Actor): WalletChainSource => ({
    genesis,
    chain,
    submit: (kind, body, fee) => submit(who, kind, body, fee),
    inMempool: (hash) => chain.mempool.has(hash),
    onCommit: (listener) => chain.onCommit(listener),
  })

  const transportOf = (who: Actor): MemoryTransport => {
    let transport = transports.get(who.did)
    if (transport === undefined) {
      transport = hub.join(who.did)
      transports.set(who.did, transport)
    }
    return transport
  }

  return {
    chain,
    hub,
    dir,
    actors,
    transports,
    submit,
    async open(who, settings = FAST_SETTINGS) {
      const transport = transportOf(who)
      const net: WalletNetPort = {
        request: (peer, protocol, data, options) =>
          transport.request(peer, protocol, data, options?.signal === undefined ? {} : { signal: options.signal }),
        handle: (protocol, handler) => transport.handle(protocol, handler),
        peers: () => transport.peers(),
      }
      const wallet = await WalletService.open({
        key: who.key,
        dir: join(dir, who.did.slice(-12)),
        password: WALLET_PASSWORD,
        chain: walletChainPort(sourceFor(who)),
        net,
        clock: systemClock,
        scrypt: FAST_SCRYPT,
        settings,
      })
      wallet.start()
      open.add(wallet)
      const stop = wallet.stop.bind(wallet)
      wallet.stop = () => {
        open.delete(wallet)
        stop()
      }
      return wallet
    },
    async close() {
      clearInterval(producer)
      for (const wallet of open) wallet.stop()
      // a stopped wallet may still finish a write it had started (a ledger append, the outbox):
      // rm retries the directory it finds not yet empty instead of failing the test
      await rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 })
    },
  }
}

/** Polls `check` every 10 ms until it holds; throws after `timeoutMs`. */
export async function eventually(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

export type { Actor }
