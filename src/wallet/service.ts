/**
 * The wallet of one node (issue 14; seed 002): sends payments whose value moves on chain and
 * whose details travel sealed to the recipient, receives them, and keeps both in the encrypted
 * local ledger, reconciled against the chain.
 *
 * Sending (`send`):
 *   1. seal the details to the recipient (envelope.ts), append the `payment` entry to the ledger
 *      and the envelope to the outbox (both on disk before anything leaves the node);
 *   2. submit bank.transfer { to, amount, envelope: sha256(envelope) } with the node's key;
 *   3. reconcile: a commit whose bank.transfer event carries the envelope hash appends a
 *      `status committed` entry; a failed body, or no commit within `pendingTimeoutMs` with
 *      the transaction gone from the mempool, appends `status failed` (a later commit still
 *      wins: the newest status entry is the payment's status);
 *   4. once committed, deliver: a direct stream to the recipient (found by its DID record),
 *      retried with exponential back-off; after the first failure the envelope is also left
 *      with up to `mailboxes` peers (mailbox.ts), whose receipts are polled on every attempt;
 *   5. the recipient's signed receipt (direct answer, its own receipt stream, or a mailbox)
 *      appends a `receipt` entry and ends the delivery.
 *
 * Receiving (`receive`, the deliver protocol and mailbox collection): open the envelope, verify
 * the sender's signature, find the committed transfer by its hash and check it matches
 * (`matchTransfer`), append a `payment` entry, answer with a signed receipt. Any failure is a
 * typed error and nothing is appended; a second delivery of one envelope answers the receipt
 * again and appends nothing.
 *
 * Time comes from the injected `Clock`; the node wires the chain and the network through the
 * two narrow ports below.
 */
import { randomInt } from 'node:crypto'
import { mkdir, readFile, rename, writeFile, open as openFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fromHex, toHex } from '../core/bytes.ts'
import type { Clock } from '../core/clock.ts'
import { describeError, DonghaeError, InvalidInputError } from '../core/errors.ts'
import { silentLogger, type Logger } from '../core/logger.ts'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import { didFromEd25519PublicKey, parseDidKey } from '../identity/did-key.ts'
import {
  EnvelopeMismatchError,
  matchTransfer,
  openPayment,
  recipientKey,
  sealPayment,
  type CommittedTransfer,
  type OpenedPayment,
  type PaymentDetails,
} from './envelope.ts'
import { WalletLedger, type LedgerEntry, type ScryptParams } from './ledger.ts'
import { Mailbox } from './mailbox.ts'
import {
  DELIVER_PROTOCOL,
  MAILBOX_PROTOCOL,
  MAX_FETCH_ITEMS,
  OK_ANSWER,
  RECEIPT_PROTOCOL,
  decodeDelivery,
  decodeFetchAnswer,
  decodeMailboxRequest,
  decodeReceipt,
  decodeReceiptsAnswer,
  encodeDelivery,
  encodeFetchAnswer,
  encodeMailboxRequest,
  encodeReceipt,
  encodeReceiptsAnswer,
  signReceipt,
  verifyReceipt,
  WalletProtocolError,
  type Receipt,
} from './protocol.ts'

/** Defaults of `WalletServiceOptions`. */
export const WALLET_DEFAULTS = {
  /** First retry of a direct delivery; doubles each attempt. */
  retryInitialMs: 1_000,
  /** Longest wait between two delivery attempts. */
  retryMaxMs: 60_000,
  /** Peers an undelivered envelope is left with. */
  mailboxes: 2,
  /** How long an envelope is offered (directly and in mailboxes). @default 7 days */
  deliveryTtlMs: 7 * 24 * 60 * 60 * 1000,
  /** A payment not committed after this long, and no longer in the mempool, is failed. */
  pendingTimeoutMs: 120_000,
  /** How long a recipient waits for its chain to reach a delivered payment's transfer. */
  commitWaitMs: 10_000,
  /** How often the recipient collects its envelopes from its peers' mailboxes. */
  collectEveryMs: 30_000,
  /** Peers asked per collection round. */
  collectPeers: 8,
  /** Deliveries a peer may make per minute (direct and receipts). */
  perPeerPerMinute: 60,
  /** Deliveries being verified at once (each may wait for the chain). */
  maxConcurrentReceives: 16,
  /** Direct delivery attempts in flight at once. */
  maxConcurrentDeliveries: 8,
} as const

export type WalletSettings = { [K in keyof typeof WALLET_DEFAULTS]: number }

export class WalletError extends DonghaeError {
  static override readonly code: string = 'WALLET_ERROR'
  override name = 'WalletError'
}

/** The balance does not cover amount + fee. */
export class InsufficientFundsError extends WalletError {
  static override readonly code: string = 'INSUFFICIENT_FUNDS'
  override name = 'InsufficientFundsError'
}

/** A delivered payment's transfer is not (yet) committed on this node's chain: the sender retries. */
export class NotCommittedError extends WalletError {
  static override readonly code: string = 'PAYMENT_NOT_COMMITTED'
  override name = 'NotCommittedError'
}

/** The node is busy verifying deliveries, or this peer sent too many: retry later. */
export class WalletBusyError extends WalletError {
  static override readonly code: string = 'WALLET_BUSY'
  override name = 'WalletBusyError'
}

export interface CommittedTx {
  height: number
  ok: boolean
  reason?: string
  tx: CommittedTransfer
}

/** What the wallet needs from the chain node. */
export interface WalletChainPort {
  readonly chainId: string
  readonly minFee: bigint
  balance(did: string): bigint
  /** Signs with the node key and submits; resolves with the transaction hash once in the mempool. */
  submitTransfer(body: { to: string; amount: bigint; envelope: Uint8Array }, fee: bigint): Promise<Uint8Array>
  /** The committed transaction with this hash and its outcome; undefined while not committed. */
  committedTx(hash: Uint8Array): Promise<CommittedTx | undefined>
  inMempool(hash: Uint8Array): boolean
  /** Called after every commit with the block's height and events. */
  onCommit(
    listener: (height: number, events: Array<{ type: string; attributes: Record<string, string> }>) => void,
  ): () => void
}

/** What the wallet needs from the network. */
export interface WalletNetPort {
  request(peer: string, protocol: string, data: Uint8Array, options?: { signal?: AbortSignal }): Promise<Uint8Array>
  handle(protocol: string, handler: (data: Uint8Array, from: string) => Promise<Uint8Array>): void
  peers(): string[]
  /** Finds how to reach `did` (its DID record's addresses) before a direct delivery. */
  locate?(did: string, signal: AbortSignal): Promise<void>
  /** Called when a peer connects (the recipient collects its mail then). */
  onPeer?(listener: (did: string) => void): () => void
}

export interface WalletServiceOptions {
  key: Ed25519KeyPair
  /** Folder of the ledger, outbox and mailbox. */
  dir: string
  password: string
  chain: WalletChainPort
  net?: WalletNetPort
  clock: Clock
  logger?: Logger
  /** scrypt parameters of a new ledger (an existing one keeps its own). */
  scrypt?: ScryptParams
  /** Keep a mailbox for other people's envelopes. @default true */
  mailbox?: boolean
  settings?: Partial<WalletSettings>
}

/** A payment as the ledger's entries make it. */
export interface PaymentState {
  id: string
  direction: 'sent' | 'received'
  from: string
  to: string
  amount: bigint
  memo: string
  invoice?: { name: string; bytes: Uint8Array }
  createdAt: number
  envelopeHash: string
  txHash?: string
  status: 'pending' | 'committed' | 'failed'
  height?: number
  failure?: string
  receipt?: { at: number; signature: string }
  ledgerIndex: number
  /** When the payment's entry was appended (ms since the epoch, this node's clock). */
  recordedAt: number
}

export interface OutboxItem {
  id: string
  to: string
  /** The envelope, base64. */
  envelope: string
  hash: string
  tx?: string
  committed: boolean
  attempts: number
  nextAttemptAt: number
  storedWith: string[]
  lastError?: string
  expiresAt: number
  createdAt: number
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`
  const fh = await openFile(tmp, 'w', 0o600)
  try {
    await fh.writeFile(text)
    await fh.sync()
  } finally {
    await fh.close()
  }
  await rename(tmp, path)
}

/** The ledger entry of a payment sent or received (its later status and receipt are entries of their own). */
function paymentEntry(dir: 'sent' | 'received', d: PaymentDetails, envelope: string): Record<string, unknown> {
  return {
    type: 'payment',
    dir,
    id: toHex(d.id),
    from: d.from,
    to: d.to,
    amount: d.amount.toString(),
    memo: d.memo,
    ...(d.invoice === undefined
      ? {}
      : { invoice: { name: d.invoice.name, base64: Buffer.from(d.invoice.bytes).toString('base64') } }),
    createdAt: d.createdAt,
    envelope,
  }
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : ''
}

export class WalletService {
  readonly did: string
  readonly ledger: WalletLedger
  readonly mailbox: Mailbox | undefined
  readonly #options: WalletServiceOptions
  readonly #settings: WalletSettings
  readonly #clock: Clock
  readonly #log: Logger
  readonly #payments = new Map<string, PaymentState>()
  readonly #byEnvelope = new Map<string, string>()
  readonly #outbox = new Map<string, OutboxItem>()
  readonly #stops: Array<() => void> = []
  readonly #inFlight = new Set<string>()
  readonly #perPeer = new Map<string, { count: number; windowStart: number }>()
  readonly #commitWaiters = new Set<() => void>()
  /** Envelopes being checked, by hash. */
  readonly #accepting = new Map<string, Promise<Receipt>>()
  #receiving = 0
  #outboxWrite: Promise<void> = Promise.resolve()
  #stopped = false
  #controller = new AbortController()

  private constructor(options: WalletServiceOptions, ledger: WalletLedger, mailbox: Mailbox | undefined) {
    this.#options = options
    this.#settings = { ...WALLET_DEFAULTS, ...options.settings }
    this.#clock = options.clock
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:wallet')
    this.did = didFromEd25519PublicKey(options.key.publicKey)
    this.ledger = ledger
    this.mailbox = mailbox
    for (const entry of ledger.entries()) this.#index(entry)
  }

  /** Opens (or creates) the ledger in `dir`, loads the outbox and the mailbox. Throws the ledger's errors. */
  static async open(options: WalletServiceOptions): Promise<WalletService> {
    await mkdir(options.dir, { recursive: true, mode: 0o700 })
    const path = join(options.dir, 'ledger')
    let ledger: WalletLedger
    try {
      ledger = await WalletLedger.open(path, options.password)
    } catch (err) {
      const missing = (err as Error).message.includes('ENOENT')
      if (!missing) throw err
      ledger = await WalletLedger.create(path, options.password, options.scrypt)
    }
    const mailbox =
      options.mailbox === false
        ? undefined
        : new Mailbox({
            dir: join(options.dir, 'mailbox'),
            clock: options.clock,
            verifyTransfer: async (tx, to, envelope) => {
              const committed = await options.chain.committedTx(tx)
              if (committed === undefined || !committed.ok) return false
              const body = committed.tx.body as { to?: unknown; envelope?: unknown }
              return (
                committed.tx.kind === 'bank.transfer' &&
                body.to === to &&
                body.envelope instanceof Uint8Array &&
                toHex(body.envelope) === toHex(envelope)
              )
            },
          })
    await mailbox?.load()
    const service = new WalletService(options, ledger, mailbox)
    await service.#loadOutbox()
    return service
  }

  get settings(): WalletSettings {
    return this.#settings
  }

  /** Handles the protocols, reconciles what is pending, starts delivering and collecting. */
  start(): void {
    const { chain, net } = this.#options
    this.#stops.push(chain.onCommit((height, events) => this.#onCommit(height, events)))
    if (net !== undefined) {
      net.handle(DELIVER_PROTOCOL, (data, from) => this.#onDeliver(data, from))
      net.handle(RECEIPT_PROTOCOL, (data, from) => this.#onReceipt(data, from))
      if (this.mailbox !== undefined) net.handle(MAILBOX_PROTOCOL, (data, from) => this.#onMailbox(data, from))
      const stopPeer = net.onPeer?.((did) => this.#onPeerConnected(did))
      if (stopPeer !== undefined) this.#stops.push(stopPeer)
    }
    this.#background(this.#reconcileAll(), 'reconciling pending payments')
    this.#schedulePump(0)
    this.#scheduleCollect(0)
  }

  stop(): void {
    this.#stopped = true
    this.#controller.abort()
    for (const stop of this.#stops.splice(0)) stop()
    for (const wake of this.#commitWaiters) wake()
  }

  /** Runs `work` without awaiting it; a failure is logged (nothing is written once stopped). */
  #background(work: Promise<unknown>, what: string): Promise<void> {
    return work.then(
      () => {},
      (err: unknown) => {
        if (!this.#stopped) this.#log.warn({ err: describeError(err) }, `wallet: ${what} failed`)
      },
    )
  }

  // ---- reading -------------------------------------------------------------------------------

  payments(): PaymentState[] {
    return [...this.#payments.values()].sort((a, b) => b.ledgerIndex - a.ledgerIndex)
  }

  payment(id: string): PaymentState | undefined {
    return this.#payments.get(id)
  }

  outbox(): OutboxItem[] {
    return [...this.#outbox.values()].sort((a, b) => a.createdAt - b.createdAt)
  }

  /** The outbox's item for a payment, while its envelope is still offered. */
  outboxItem(id: string): OutboxItem | undefined {
    return this.#outbox.get(id)
  }

  async verifyLedger(): Promise<{ count: number; head: string }> {
    return this.ledger.verify(this.#options.password)
  }

  // ---- sending -------------------------------------------------------------------------------

  async send(request: {
    to: string
    amount: bigint
    memo?: string
    invoice?: { name: string; bytes: Uint8Array }
    fee?: bigint
  }): Promise<PaymentState> {
    const { chain } = this.#options
    try {
      parseDidKey(request.to)
      recipientKey(request.to)
    } catch (err) {
      throw new InvalidInputError(`the recipient is not a did:key: ${describeError(err)}`, { cause: err })
    }
    if (request.to === this.did) throw new InvalidInputError('a wallet cannot pay itself')
    if (request.amount <= 0n) throw new InvalidInputError('the amount must be positive')
    const fee = request.fee ?? chain.minFee
    if (fee < chain.minFee) throw new InvalidInputError(`the fee must be at least the chain's minimum, ${chain.minFee}`)
    const balance = chain.balance(this.did)
    if (balance < request.amount + fee)
      throw new InsufficientFundsError(`the balance ${balance} does not cover ${request.amount} + fee ${fee}`, {
        details: { balance: balance.toString() },
      })
    const sealed = sealPayment(this.#options.key, {
      chainId: chain.chainId,
      to: request.to,
      amount: request.amount,
      createdAt: this.#clock.now(),
      ...(request.memo === undefined ? {} : { memo: request.memo }),
      ...(request.invoice === undefined ? {} : { invoice: request.invoice }),
    })
    const id = toHex(sealed.details.id)
    const hash = toHex(sealed.envelopeHash)
    const d = sealed.details
    await this.#append(paymentEntry('sent', d, hash))
    const now = this.#clock.now()
    const item: OutboxItem = {
      id,
      to: request.to,
      envelope: Buffer.from(sealed.envelope).toString('base64'),
      hash,
      committed: false,
      attempts: 0,
      nextAttemptAt: now,
      storedWith: [],
      expiresAt: now + this.#settings.deliveryTtlMs,
      createdAt: now,
    }
    this.#outbox.set(id, item)
    await this.#saveOutbox()
    try {
      const tx = await chain.submitTransfer(
        { to: request.to, amount: request.amount, envelope: sealed.envelopeHash },
        fee,
      )
      item.tx = toHex(tx)
      await this.#saveOutbox()
      const payment = this.#payments.get(id)
      if (payment !== undefined) payment.txHash = item.tx
    } catch (err) {
      this.#outbox.delete(id)
      await this.#saveOutbox()
      await this.#append({ type: 'status', id, status: 'failed', reason: `refused: ${describeError(err)}` })
      throw err
    }
    this.#log.info({ id, to: request.to, amount: request.amount.toString(), tx: item.tx }, 'payment sent')
    this.#schedulePump(0) // watches it until it commits (or its pending timeout passes)
    return this.#payments.get(id) as PaymentState
  }

  #onCommit(height: number, events: Array<{ type: string; attributes: Record<string, string> }>): void {
    for (const wake of [...this.#commitWaiters]) wake()
    for (const event of events) {
      if (event.type === 'bank.transfer' && event.attributes.from === this.did) {
        const hash = event.attributes.envelope
        const id = hash === undefined ? undefined : this.#byEnvelope.get(hash)
        const payment = id === undefined ? undefined : this.#payments.get(id)
        if (payment !== undefined && payment.direction === 'sent' && payment.status !== 'committed')
          this.#background(this.#markCommitted(payment, height, event.attributes.tx), 'recording a commit')
      } else if (event.type === 'tx.failed') {
        const item = this.outbox().find((i) => i.tx === event.attributes.hash)
        const payment = item === undefined ? undefined : this.#payments.get(item.id)
        if (item !== undefined && payment !== undefined && payment.status === 'pending')
          this.#background(
            this.#markFailed(payment, event.attributes.reason ?? 'failed', height),
            'recording a failure',
          )
      }
    }
  }

  async #markCommitted(payment: PaymentState, height: number, txHash?: string): Promise<void> {
    const item = this.#outbox.get(payment.id)
    const tx = txHash ?? item?.tx
    if (item !== undefined && tx !== undefined) item.tx = tx // the committed one (the node may have re-signed it)
    await this.#append({
      type: 'status',
      id: payment.id,
      status: 'committed',
      height,
      ...(tx === undefined ? {} : { tx }),
    })
    if (item !== undefined) {
      item.committed = true
      item.nextAttemptAt = this.#clock.now()
      await this.#saveOutbox()
      this.#schedulePump(0)
    }
  }

  async #markFailed(payment: PaymentState, reason: string, height?: number): Promise<void> {
    await this.#append({
      type: 'status',
      id: payment.id,
      status: 'failed',
      reason,
      ...(height === undefined ? {} : { height }),
    })
    if (this.#outbox.delete(payment.id)) await this.#saveOutbox()
  }

  /** Pending sent payments checked against the chain (at start, and for the pending timeout). */
  async #reconcileAll(): Promise<void> {
    for (const payment of this.#payments.values()) {
      if (payment.direction !== 'sent' || payment.status !== 'pending') continue
      await this.#reconcile(payment).catch((err: unknown) =>
        this.#log.warn({ id: payment.id, err: describeError(err) }, 'reconciling a payment failed'),
      )
    }
  }

  async #reconcile(payment: PaymentState): Promise<void> {
    const { chain } = this.#options
    const item = this.#outbox.get(payment.id)
    const tx = item?.tx ?? payment.txHash
    if (tx !== undefined) {
      const committed = await chain.committedTx(fromHex(tx))
      if (committed !== undefined) {
        if (committed.ok) await this.#markCommitted(payment, committed.height, tx)
        else await this.#markFailed(payment, committed.reason ?? 'failed', committed.height)
        return
      }
      if (chain.inMempool(fromHex(tx))) return
    }
    if (this.#clock.now() - payment.createdAt >= this.#settings.pendingTimeoutMs)
      await this.#markFailed(payment, 'not-committed')
  }

  // ---- delivering ----------------------------------------------------------------------------

  /** A peer connected: deliver what waits for it now, and collect what its mailbox holds for us. */
  #onPeerConnected(did: string): void {
    if (this.#stopped) return
    let due = false
    for (const item of this.#outbox.values())
      if (item.to === did && item.committed && !this.#inFlight.has(item.id)) {
        item.nextAttemptAt = this.#clock.now()
        due = true
      }
    if (due) this.#schedulePump(0)
    this.#background(this.#collectFrom([did]), 'collecting mail')
  }

  #schedulePump(delayMs: number): void {
    if (this.#stopped) return
    const cancel = this.#clock.setTimer(delayMs, () => {
      const i = this.#stops.indexOf(cancel)
      if (i >= 0) this.#stops.splice(i, 1)
      this.#background(this.#pump(), 'delivering')
    })
    this.#stops.push(cancel)
  }

  #pumping = false

  /** Starts every delivery that is due, then sleeps until the next one is. */
  async #pump(): Promise<void> {
    if (this.#stopped || this.#pumping) return
    this.#pumping = true
    try {
      const now = this.#clock.now()
      let next = Number.POSITIVE_INFINITY
      for (const payment of this.#payments.values())
        if (
          payment.direction === 'sent' &&
          payment.status === 'pending' &&
          now - payment.createdAt >= this.#settings.pendingTimeoutMs
        )
          await this.#reconcile(payment)
      for (const item of this.outbox()) {
        if (item.expiresAt <= now) {
          this.#outbox.delete(item.id)
          await this.#saveOutbox()
          this.#log.warn({ id: item.id, to: item.to }, 'gave up delivering a payment envelope: it expired')
          continue
        }
        if (!item.committed) {
          // look again when its pending timeout could have passed
          next = Math.min(next, now + Math.min(5_000, this.#settings.pendingTimeoutMs))
          continue
        }
        if (this.#inFlight.has(item.id)) continue
        if (item.nextAttemptAt <= now && this.#inFlight.size < this.#settings.maxConcurrentDeliveries) {
          this.#inFlight.add(item.id)
          this.#background(this.#attempt(item), 'a delivery attempt').finally(() => {
            this.#inFlight.delete(item.id)
            this.#schedulePump(0)
          })
        } else next = Math.min(next, Math.max(item.nextAttemptAt, now + 100))
      }
      if (Number.isFinite(next)) this.#schedulePump(Math.max(0, next - this.#clock.now()))
    } finally {
      this.#pumping = false
    }
  }

  #backoff(attempts: number): number {
    const base = Math.min(this.#settings.retryInitialMs * 2 ** Math.max(0, attempts - 1), this.#settings.retryMaxMs)
    return Math.round(base * (0.8 + randomInt(0, 401) / 1000))
  }

  async #attempt(item: OutboxItem): Promise<void> {
    const net = this.#options.net
    if (net === undefined || item.tx === undefined) return
    const signal = AbortSignal.any([this.#controller.signal, AbortSignal.timeout(15_000)])
    const delivery = encodeDelivery({ envelope: Buffer.from(item.envelope, 'base64'), tx: fromHex(item.tx) })
    try {
      await net.locate?.(item.to, signal).catch(() => {})
      const answer = await net.request(item.to, DELIVER_PROTOCOL, delivery, { signal })
      await this.#acknowledged(item.id, decodeReceipt(answer), 'direct')
      return
    } catch (err) {
      if (!this.#outbox.has(item.id)) return
      item.attempts += 1
      item.lastError = describeError(err)
      item.nextAttemptAt = this.#clock.now() + this.#backoff(item.attempts)
      this.#log.info(
        { id: item.id, to: item.to, attempts: item.attempts, err: item.lastError },
        'payment delivery failed; will retry',
      )
    }
    // not reachable: leave copies with peers, and ask those already holding one for a receipt
    await this.#storeWithPeers(item, signal)
    await this.#pollReceipts(item, signal)
    if (this.#outbox.has(item.id)) await this.#saveOutbox()
  }

  async #storeWithPeers(item: OutboxItem, signal: AbortSignal): Promise<void> {
    const net = this.#options.net
    if (net === undefined || item.tx === undefined || item.storedWith.length >= this.#settings.mailboxes) return
    const candidates = net.peers().filter((p) => p !== item.to && !item.storedWith.includes(p))
    const put = encodeMailboxRequest({
      op: 'put',
      to: item.to,
      envelope: Buffer.from(item.envelope, 'base64'),
      tx: fromHex(item.tx),
      expires: item.expiresAt,
    })
    for (const peer of candidates) {
      if (item.storedWith.length >= this.#settings.mailboxes) break
      try {
        await net.request(peer, MAILBOX_PROTOCOL, put, { signal })
        item.storedWith.push(peer)
        this.#log.info({ id: item.id, to: item.to, holder: peer }, 'left a payment envelope with a peer')
      } catch (err) {
        this.#log.debug({ id: item.id, holder: peer, err: describeError(err) }, 'a peer did not take the envelope')
      }
    }
  }

  async #pollReceipts(item: OutboxItem, signal: AbortSignal): Promise<void> {
    const net = this.#options.net
    if (net === undefined) return
    const query = encodeMailboxRequest({ op: 'receipts', envelopes: [fromHex(item.hash)] })
    for (const holder of item.storedWith) {
      try {
        const receipts = decodeReceiptsAnswer(await net.request(holder, MAILBOX_PROTOCOL, query, { signal }))
        for (const receipt of receipts) {
          if (toHex(receipt.envelope) === item.hash) {
            await this.#acknowledged(item.id, receipt, `mailbox ${holder}`)
            return
          }
        }
      } catch (err) {
        this.#log.debug({ id: item.id, holder, err: describeError(err) }, 'asking a mailbox for receipts failed')
      }
    }
  }

  /** Records the recipient's receipt for a sent payment (once); false when it is not the recipient's. */
  async #acknowledged(id: string, receipt: Receipt, via: string): Promise<boolean> {
    const item = this.#outbox.get(id)
    const payment = this.#payments.get(id)
    if (item === undefined || payment === undefined) return payment?.receipt !== undefined
    if (toHex(receipt.envelope) !== item.hash || toHex(receipt.id) !== id || !verifyReceipt(receipt, item.to)) {
      throw new WalletProtocolError(`the receipt for payment ${id} is not ${item.to}'s signature over its envelope`)
    }
    this.#outbox.delete(id)
    await this.#append({
      type: 'receipt',
      id,
      at: receipt.at,
      signature: Buffer.from(receipt.signature).toString('base64'),
      via,
    })
    await this.#saveOutbox()
    this.#log.info({ id, to: item.to, via }, 'payment acknowledged by its recipient')
    return true
  }

  // ---- receiving -----------------------------------------------------------------------------

  /** Charges a peer one delivery; throws WalletBusyError past the per-minute limit. */
  #charge(peer: string): void {
    const now = this.#clock.now()
    const window = this.#perPeer.get(peer)
    if (window === undefined || now - window.windowStart >= 60_000) {
      if (this.#perPeer.size > 10_000) this.#perPeer.clear()
      this.#perPeer.set(peer, { count: 1, windowStart: now })
      return
    }
    window.count += 1
    if (window.count > this.#settings.perPeerPerMinute)
      throw new WalletBusyError('too many wallet requests from this peer; retry in a minute')
  }

  async #onDeliver(data: Uint8Array, from: string): Promise<Uint8Array> {
    this.#charge(from)
    const delivery = decodeDelivery(data)
    const receipt = await this.receive(delivery.envelope, delivery.tx, `direct ${from}`)
    return encodeReceipt(receipt)
  }

  async #onReceipt(data: Uint8Array, from: string): Promise<Uint8Array> {
    this.#charge(from)
    const receipt = decodeReceipt(data)
    const id = this.#byEnvelope.get(toHex(receipt.envelope))
    if (id === undefined) throw new WalletError('no payment of this wallet has that envelope')
    await this.#acknowledged(id, receipt, `receipt from ${from}`)
    return OK_ANSWER
  }

  async #onMailbox(data: Uint8Array, from: string): Promise<Uint8Array> {
    const mailbox = this.mailbox
    if (mailbox === undefined) throw new WalletError('this node keeps no mailbox')
    this.#charge(from)
    const request = decodeMailboxRequest(data)
    switch (request.op) {
      case 'put':
        await mailbox.put(from, request)
        return OK_ANSWER
      case 'fetch':
        return encodeFetchAnswer(mailbox.fetch(from, MAX_FETCH_ITEMS))
      case 'ack':
        await mailbox.ack(request.receipt)
        return OK_ANSWER
      case 'receipts':
        return encodeReceiptsAnswer(mailbox.receipts(request.envelopes))
    }
  }

  /** Waits until `hash` is committed on this node's chain, at most `commitWaitMs`. */
  async #awaitCommitted(hash: Uint8Array): Promise<CommittedTx> {
    const deadline = this.#clock.now() + this.#settings.commitWaitMs
    for (;;) {
      const committed = await this.#options.chain.committedTx(hash)
      if (committed !== undefined) return committed
      const left = deadline - this.#clock.now()
      if (left <= 0 || this.#stopped)
        throw new NotCommittedError(`transfer ${toHex(hash)} is not committed on this node's chain yet; retry later`)
      await new Promise<void>((resolve) => {
        const done = (): void => {
          cancel()
          this.#commitWaiters.delete(done)
          resolve()
        }
        const cancel = this.#clock.setTimer(Math.min(left, 1_000), done)
        this.#commitWaiters.add(done)
      })
    }
  }

  /**
   * Opens, verifies and records a payment delivered to this wallet; answers the signed receipt.
   * Throws EnvelopeError / NotCommittedError / WalletBusyError and appends nothing then.
   */
  async receive(envelope: Uint8Array, tx: Uint8Array, via: string): Promise<Receipt> {
    const opened: OpenedPayment = openPayment(this.#options.key, envelope)
    const hash = toHex(opened.envelopeHash)
    // one envelope is checked and appended once at a time (it may arrive directly and from a
    // mailbox at once); a later copy finds it in the ledger and answers the same receipt
    const prior = this.#accepting.get(hash) ?? Promise.resolve()
    const run = prior.catch(() => {}).then(() => this.#accept(opened, tx, via))
    this.#accepting.set(hash, run)
    try {
      return await run
    } finally {
      if (this.#accepting.get(hash) === run) this.#accepting.delete(hash)
    }
  }

  async #accept(opened: OpenedPayment, tx: Uint8Array, via: string): Promise<Receipt> {
    const hash = toHex(opened.envelopeHash)
    const known = this.#byEnvelope.get(hash)
    const existing = known === undefined ? undefined : this.#payments.get(known)
    if (existing !== undefined && existing.direction === 'received') return this.#receiptFor(opened, existing)
    if (this.#receiving >= this.#settings.maxConcurrentReceives)
      throw new WalletBusyError('this wallet is verifying too many deliveries at once; retry later')
    this.#receiving += 1
    try {
      const committed = await this.#awaitCommitted(tx)
      if (!committed.ok)
        throw new EnvelopeMismatchError(`the transfer ${toHex(tx)} failed on chain (${committed.reason ?? 'failed'})`)
      matchTransfer(opened, committed.tx)
      const d = opened.details
      await this.#append({ ...paymentEntry('received', d, hash), tx: toHex(tx), height: committed.height, via })
      this.#log.info({ id: toHex(d.id), from: d.from, amount: d.amount.toString(), via }, 'payment received')
      return this.#receiptFor(opened, this.#payments.get(toHex(d.id)) as PaymentState)
    } finally {
      this.#receiving -= 1
    }
  }

  #receiptFor(opened: OpenedPayment, payment: PaymentState): Receipt {
    return signReceipt(this.#options.key, {
      envelope: opened.envelopeHash,
      id: opened.details.id,
      at: payment.recordedAt,
    })
  }

  #scheduleCollect(delayMs: number): void {
    if (this.#stopped || this.#options.net === undefined) return
    const cancel = this.#clock.setTimer(delayMs, () => {
      const i = this.#stops.indexOf(cancel)
      if (i >= 0) this.#stops.splice(i, 1)
      const peers = this.#options.net?.peers() ?? []
      const sample = [...peers].sort(() => randomInt(0, 3) - 1).slice(0, this.#settings.collectPeers)
      void this.#background(this.#collectFrom(sample), 'collecting mail').finally(() =>
        this.#scheduleCollect(this.#settings.collectEveryMs),
      )
    })
    this.#stops.push(cancel)
  }

  /** Collects this wallet's envelopes from the mailboxes of `peers`, acknowledging each one. */
  async #collectFrom(peers: string[]): Promise<void> {
    const net = this.#options.net
    if (net === undefined || this.#stopped) return
    const fetch = encodeMailboxRequest({ op: 'fetch' })
    for (const holder of peers) {
      try {
        for (let round = 0; round < 20 && !this.#stopped; round++) {
          const items = decodeFetchAnswer(
            await net.request(holder, MAILBOX_PROTOCOL, fetch, { signal: this.#controller.signal }),
          )
          if (items.length === 0) break
          let progressed = false
          for (const item of items) {
            let receipt: Receipt
            try {
              receipt = await this.receive(item.envelope, item.tx, `mailbox ${holder}`)
            } catch (err) {
              this.#log.warn({ holder, err: describeError(err) }, 'an envelope in a mailbox was refused')
              continue
            }
            progressed = true
            await net
              .request(holder, MAILBOX_PROTOCOL, encodeMailboxRequest({ op: 'ack', receipt }), {
                signal: this.#controller.signal,
              })
              .catch((err: unknown) =>
                this.#log.debug({ holder, err: describeError(err) }, 'acknowledging to a mailbox failed'),
              )
            const payment = this.#payments.get(toHex(receipt.id))
            if (payment !== undefined)
              await net
                .request(payment.from, RECEIPT_PROTOCOL, encodeReceipt(receipt), {
                  signal: AbortSignal.timeout(10_000),
                })
                .catch(() => {}) // the sender also finds the receipt in the mailbox
          }
          if (!progressed) break
        }
      } catch (err) {
        this.#log.debug({ holder, err: describeError(err) }, 'collecting from a mailbox failed')
      }
    }
  }

  // ---- the ledger's index and the outbox ------------------------------------------------------

  async #append(body: Record<string, unknown>): Promise<void> {
    const entry = await this.ledger.append(body, this.#clock.now())
    this.#index(entry)
  }

  /** Folds one ledger entry into the payment views. */
  #index(entry: LedgerEntry): void {
    const b = entry.body
    const id = str(b.id)
    if (b.type === 'payment') {
      const invoice = b.invoice as { name?: unknown; base64?: unknown } | undefined
      const payment: PaymentState = {
        id,
        direction: b.dir === 'received' ? 'received' : 'sent',
        from: str(b.from),
        to: str(b.to),
        amount: BigInt(str(b.amount) || '0'),
        memo: str(b.memo),
        ...(invoice === undefined
          ? {}
          : {
              invoice: { name: str(invoice.name), bytes: new Uint8Array(Buffer.from(str(invoice.base64), 'base64')) },
            }),
        createdAt: typeof b.createdAt === 'number' ? b.createdAt : entry.at,
        envelopeHash: str(b.envelope),
        ...(typeof b.tx === 'string' ? { txHash: b.tx } : {}),
        status: b.dir === 'received' ? 'committed' : 'pending',
        ...(typeof b.height === 'number' ? { height: b.height } : {}),
        ledgerIndex: entry.index,
        recordedAt: entry.at,
      }
      this.#payments.set(id, payment)
      this.#byEnvelope.set(payment.envelopeHash, id)
      return
    }
    const payment = this.#payments.get(id)
    if (payment === undefined) return
    if (b.type === 'status') {
      payment.status = b.status === 'committed' ? 'committed' : 'failed'
      if (typeof b.height === 'number') payment.height = b.height
      if (typeof b.tx === 'string') payment.txHash = b.tx
      if (payment.status === 'failed') payment.failure = str(b.reason)
      else delete payment.failure
    } else if (b.type === 'receipt') {
      payment.receipt = { at: typeof b.at === 'number' ? b.at : entry.at, signature: str(b.signature) }
    }
  }

  async #loadOutbox(): Promise<void> {
    const path = join(this.#options.dir, 'outbox.json')
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch {
      return
    }
    let items: OutboxItem[]
    try {
      items = JSON.parse(text) as OutboxItem[]
    } catch (err) {
      this.#log.error({ err: describeError(err) }, 'the wallet outbox is unreadable; its deliveries are lost')
      await writeFile(`${path}.corrupt`, text)
      return
    }
    for (const item of items) {
      const payment = this.#payments.get(item.id)
      // an item without its ledger entry was never sent; one already acknowledged is done
      if (payment === undefined || payment.receipt !== undefined || payment.status === 'failed') continue
      item.committed = item.committed || payment.status === 'committed'
      item.nextAttemptAt = Math.min(item.nextAttemptAt, this.#clock.now())
      this.#outbox.set(item.id, item)
    }
  }

  #saveOutbox(): Promise<void> {
    if (this.#stopped) return Promise.resolve() // its folder may be gone; what was written stays
    const path = join(this.#options.dir, 'outbox.json')
    const write = this.#outboxWrite.then(() => writeAtomic(path, JSON.stringify(this.outbox())))
    this.#outboxWrite = write.catch((err: unknown) =>
      this.#log.error({ err: describeError(err) }, 'writing the wallet outbox failed'),
    )
    return write
  }
}
