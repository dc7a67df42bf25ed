/**
 * The node's wallet (issue 14): `WalletApi` over a `WalletService` whose ledger, outbox and
 * mailbox live in `<data>/wallet/`, whose transfers are signed by the node's own-transaction
 * queue and whose envelopes travel on the node's libp2p transport. Recipients are located by
 * their DID record in the DHT (its addresses go into the peer store before a direct delivery).
 */
import { join } from 'node:path'
import type { Clock } from '../core/clock.ts'
import { systemClock } from '../core/clock.ts'
import { toHex } from '../core/bytes.ts'
import type { Logger } from '../core/logger.ts'
import type { PeerTransport } from '../core/transport.ts'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import { decodeTx, txHash } from '../chain/tx.ts'
import { currentMinFee } from '../chain/governed.ts'
import type { ScryptParams } from '../wallet/ledger.ts'
import {
  WalletService,
  type WalletSettings,
  type PaymentState,
  type WalletChainPort,
  type WalletNetPort,
} from '../wallet/service.ts'
import type {
  DeliveryView,
  LedgerVerification,
  WalletApi,
  WalletHistoryQuery,
  WalletPaymentView,
  WalletSendRequest,
  WalletSummary,
} from '../api/wallet-api.ts'
import type { DonghaeNode } from './chain-node.ts'
import type { Block } from '../chain/block.ts'
import type { ChainEvent } from '../chain/host.ts'
import type { ChainApi } from '../api/chain-api.ts'

export const DEFAULT_HISTORY_LIMIT = 50
export const MAX_HISTORY_LIMIT = 500

export interface NodeWalletOptions {
  /** The chain: a running node's (`nodeChainSource`). */
  chain: WalletChainSource
  key: Ed25519KeyPair
  dataDir: string
  /** The keystore password: the ledger is encrypted under a key derived from it. */
  password: string
  transport?: Pick<PeerTransport, 'request' | 'handle' | 'peers'>
  /** Adds the addresses of `did`'s DID record to the peer store (NetworkService.resolveDid). */
  locate?(did: string, signal: AbortSignal): Promise<void>
  onPeer?(listener: (did: string) => void): () => void
  mailbox?: boolean
  clock?: Clock
  logger?: Logger
  scrypt?: ScryptParams
  settings?: Partial<WalletSettings>
}

/** What the wallet's chain port is built from: a running node (`nodeChainSource`), or a test's chain. */
export interface WalletChainSource {
  genesis: { chainId: string; params: { minFee: bigint } }
  /** The fee floor in force (governed chain.minFee); absent, the genesis minFee. */
  minFee?(): bigint
  chain: Pick<ChainApi, 'account' | 'txOutcome' | 'block'>
  /** Signs with the node's key and submits (the node's own-transaction queue). */
  submit(kind: string, body: unknown, fee: bigint): Promise<{ hash: Uint8Array }>
  inMempool(hash: Uint8Array): boolean
  onCommit(listener: (block: Block, events: ChainEvent[]) => void): () => void
}

export function nodeChainSource(node: DonghaeNode): WalletChainSource {
  return {
    genesis: node.app.genesis,
    minFee: () => currentMinFee(node.app.state, node.app.genesis.params),
    chain: node.chainApi,
    submit: (kind, body, fee) => node.submitOwnTx(kind, body, fee),
    inMempool: (hash) => node.mempool.has(hash),
    onCommit: (listener) => node.onCommit(listener),
  }
}

/** The chain port of the wallet: committed transactions are found by hash in their block. */
export function walletChainPort(source: WalletChainSource): WalletChainPort {
  const { genesis, chain } = source
  return {
    chainId: genesis.chainId,
    get minFee() {
      return source.minFee?.() ?? genesis.params.minFee
    },
    balance: (did) => chain.account(did).balance,
    submitTransfer: async (body, fee) => (await source.submit('bank.transfer', body, fee)).hash,
    committedTx: async (hash) => {
      const outcome = await chain.txOutcome(hash)
      if (outcome === undefined) return undefined
      const stored = await chain.block(outcome.height)
      const wanted = toHex(hash)
      for (const bytes of stored?.block.txs ?? []) {
        if (toHex(txHash(bytes)) !== wanted) continue
        const tx = decodeTx(bytes)
        return {
          height: outcome.height,
          ok: outcome.ok,
          ...(outcome.reason === undefined ? {} : { reason: outcome.reason }),
          tx: { chainId: tx.chainId, sender: tx.sender, kind: tx.kind, body: tx.body },
        }
      }
      return undefined
    },
    inMempool: (hash) => source.inMempool(hash),
    onCommit: (listener) => source.onCommit((block, events) => listener(block.header.height, events)),
  }
}

function paymentView(p: PaymentState, queued: boolean, storedWith: number): WalletPaymentView {
  return {
    id: p.id,
    direction: p.direction,
    counterparty: p.direction === 'sent' ? p.to : p.from,
    from: p.from,
    to: p.to,
    amount: p.amount.toString(),
    memo: p.memo,
    ...(p.invoice === undefined ? {} : { invoice: { name: p.invoice.name, bytes: p.invoice.bytes.length } }),
    createdAt: p.createdAt,
    envelopeHash: p.envelopeHash,
    ...(p.txHash === undefined ? {} : { txHash: p.txHash }),
    status: p.status,
    ...(p.height === undefined ? {} : { height: p.height }),
    ...(p.failure === undefined ? {} : { failure: p.failure }),
    delivery:
      p.direction === 'received' || p.receipt !== undefined
        ? 'acknowledged'
        : queued && storedWith > 0
          ? 'stored'
          : 'queued',
    ...(p.receipt === undefined ? {} : { receipt: p.receipt }),
    ledgerIndex: p.ledgerIndex,
  }
}

export class NodeWallet implements WalletApi {
  readonly service: WalletService
  readonly #chain: WalletChainSource

  private constructor(service: WalletService, chain: WalletChainSource) {
    this.service = service
    this.#chain = chain
  }

  static async open(options: NodeWalletOptions): Promise<NodeWallet> {
    const { transport } = options
    const net: WalletNetPort | undefined =
      transport === undefined
        ? undefined
        : {
            request: (peer, protocol, data, opts) =>
              transport.request(peer, protocol, data, opts?.signal === undefined ? {} : { signal: opts.signal }),
            handle: (protocol, handler) => transport.handle(protocol, handler),
            peers: () => transport.peers(),
            ...(options.locate === undefined ? {} : { locate: options.locate }),
            ...(options.onPeer === undefined ? {} : { onPeer: options.onPeer }),
          }
    const service = await WalletService.open({
      key: options.key,
      dir: join(options.dataDir, 'wallet'),
      password: options.password,
      chain: walletChainPort(options.chain),
      ...(net === undefined ? {} : { net }),
      clock: options.clock ?? systemClock,
      ...(options.logger === undefined ? {} : { logger: options.logger }),
      ...(options.scrypt === undefined ? {} : { scrypt: options.scrypt }),
      ...(options.mailbox === undefined ? {} : { mailbox: options.mailbox }),
      ...(options.settings === undefined ? {} : { settings: options.settings }),
    })
    return new NodeWallet(service, options.chain)
  }

  start(): void {
    this.service.start()
  }

  stop(): void {
    this.service.stop()
  }

  #view(p: PaymentState): WalletPaymentView {
    const item = this.service.outboxItem(p.id)
    return paymentView(p, item !== undefined, item?.storedWith.length ?? 0)
  }

  summary(): WalletSummary {
    const payments = this.service.payments()
    const pending = payments.filter((p) => p.direction === 'sent' && p.status === 'pending')
    return {
      did: this.service.did,
      balance: this.#chain.chain.account(this.service.did).balance.toString(),
      pending: { count: pending.length, amount: pending.reduce((sum, p) => sum + p.amount, 0n).toString() },
      deliveriesPending: this.service.outbox().length,
      ledger: {
        entries: this.service.ledger.count,
        head: this.service.ledger.head,
      },
      fee: (this.#chain.minFee?.() ?? this.#chain.genesis.params.minFee).toString(),
    }
  }

  history(query: WalletHistoryQuery): { payments: WalletPaymentView[]; cursor?: string } {
    const limit = Math.min(Math.max(query.limit ?? DEFAULT_HISTORY_LIMIT, 1), MAX_HISTORY_LIMIT)
    const before = query.cursor === undefined ? Number.POSITIVE_INFINITY : Number(query.cursor)
    const all = this.service
      .payments()
      .filter((p) => p.ledgerIndex < before && (query.direction === undefined || p.direction === query.direction))
    const page = all.slice(0, limit)
    const last = page.at(-1)
    return {
      payments: page.map((p) => this.#view(p)),
      ...(all.length > limit && last !== undefined ? { cursor: String(last.ledgerIndex) } : {}),
    }
  }

  payment(id: string): WalletPaymentView | undefined {
    const p = this.service.payment(id)
    return p === undefined ? undefined : this.#view(p)
  }

  invoice(id: string): { name: string; bytes: Uint8Array } | undefined {
    return this.service.payment(id)?.invoice
  }

  async send(request: WalletSendRequest): Promise<WalletPaymentView> {
    return this.#view(await this.service.send(request))
  }

  deliveries(): DeliveryView[] {
    return this.service.outbox().map((i) => ({
      id: i.id,
      to: i.to,
      envelopeHash: i.hash,
      attempts: i.attempts,
      nextAttemptAt: i.nextAttemptAt,
      storedWith: [...i.storedWith],
      ...(i.lastError === undefined ? {} : { lastError: i.lastError }),
      expiresAt: i.expiresAt,
    }))
  }

  async verify(): Promise<LedgerVerification> {
    const { count, head } = await this.service.verifyLedger()
    return { ok: true, entries: count, head }
  }
}
