/**
 * The mailbox a node keeps for other people's payments (issue 14, part 2: store-and-forward).
 * A sender whose recipient is offline leaves the sealed envelope with a few peers; the recipient
 * collects it when it comes online, and its signed receipt is left here for the sender to pick
 * up. The holder cannot read an envelope (it is sealed to the recipient's key); what it sees is
 * listed in docs/wallet.md.
 *
 * What a put costs the sender, and what bounds the holder's cost:
 * - A put names the committed bank.transfer that carries sha256(envelope) and pays `to`
 *   (`verifyTransfer`, against the holder's own chain): every stored envelope was paid for with
 *   a transaction fee, so filling a mailbox costs fees, and no envelope is stored for a payment
 *   that did not happen.
 * - At most MAILBOX_LIMITS.perRecipient envelopes per recipient and .perPeer per sending peer,
 *   .total in all; an expiry at most .maxExpiryMs ahead; an envelope at most MAX_ENVELOPE_BYTES.
 * - Only the recipient itself (the authenticated peer of the stream) can fetch its envelopes,
 *   and only a receipt signed by the recipient removes one.
 *
 * Each item is one file `<dir>/<envelope hash>.cbor`, written atomically, so the mailbox survives
 * a restart; a receipt is kept in `<dir>/<envelope hash>.receipt` until the item's expiry.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { toHex } from '../core/bytes.ts'
import { decode, encode } from '../core/codec.ts'
import { DonghaeError } from '../core/errors.ts'
import type { Clock } from '../core/clock.ts'
import { envelopeHash } from './envelope.ts'
import { decodeReceipt, encodeReceipt, verifyReceipt, type Delivery, type Receipt } from './protocol.ts'

export const MAILBOX_LIMITS = {
  total: 2048,
  perRecipient: 64,
  perPeer: 64,
  /** Longest an envelope is kept. @default 7 days */
  maxExpiryMs: 7 * 24 * 60 * 60 * 1000,
} as const

export class MailboxError extends DonghaeError {
  static override readonly code: string = 'MAILBOX_REFUSED'
  override name = 'MailboxError'
}

interface Item {
  to: string
  from: string
  envelope: Uint8Array
  tx: Uint8Array
  expires: number
  hash: string
}

export interface MailboxOptions {
  /** Folder of the items; omitted: in memory only. */
  dir?: string
  clock: Clock
  /**
   * Whether `tx` is a committed, successful bank.transfer to `to` carrying `envelope` (the hash).
   * Rejects (or resolves false) otherwise.
   */
  verifyTransfer(tx: Uint8Array, to: string, envelope: Uint8Array): Promise<boolean>
  limits?: Partial<Record<keyof typeof MAILBOX_LIMITS, number>>
}

export class Mailbox {
  readonly #options: MailboxOptions
  readonly #limits: Record<keyof typeof MAILBOX_LIMITS, number>
  readonly #items = new Map<string, Item>()
  readonly #receipts = new Map<string, { receipt: Receipt; expires: number }>()

  constructor(options: MailboxOptions) {
    this.#options = options
    this.#limits = { ...MAILBOX_LIMITS, ...options.limits }
  }

  get size(): number {
    return this.#items.size
  }

  /** Loads the items a previous run left (dropping expired and unreadable ones). */
  async load(): Promise<void> {
    const dir = this.#options.dir
    if (dir === undefined) return
    await mkdir(dir, { recursive: true })
    const now = this.#options.clock.now()
    for (const name of await readdir(dir)) {
      const path = join(dir, name)
      try {
        if (name.endsWith('.cbor')) {
          const raw = decode<Omit<Item, 'hash'>>(await readFile(path))
          const item: Item = { ...raw, hash: toHex(envelopeHash(raw.envelope)) }
          if (item.expires <= now || `${item.hash}.cbor` !== name) await rm(path, { force: true })
          else this.#items.set(item.hash, item)
        } else if (name.endsWith('.receipt')) {
          const raw = decode<{ receipt: Uint8Array; expires: number }>(await readFile(path))
          if (raw.expires <= now) await rm(path, { force: true })
          else
            this.#receipts.set(name.slice(0, -'.receipt'.length), {
              receipt: decodeReceipt(raw.receipt),
              expires: raw.expires,
            })
        } else if (name.endsWith('.tmp')) {
          await rm(path, { force: true })
        }
      } catch {
        await rm(path, { force: true })
      }
    }
  }

  /** What the holder stores for `to` (ciphertext only): for tests and the docs' "what a relay saw". */
  heldFor(to: string): Delivery[] {
    return [...this.#items.values()].filter((i) => i.to === to).map((i) => ({ envelope: i.envelope, tx: i.tx }))
  }

  /** Stores an envelope for `to`, sent by peer `from`. Throws MailboxError when refused. */
  async put(
    from: string,
    request: { to: string; envelope: Uint8Array; tx: Uint8Array; expires: number },
  ): Promise<void> {
    const now = this.#options.clock.now()
    this.#sweep(now)
    const hash = toHex(envelopeHash(request.envelope))
    if (this.#items.has(hash) || this.#receipts.has(hash)) return // already held, or already collected
    if (request.expires <= now) throw new MailboxError('the envelope has already expired')
    const expires = Math.min(request.expires, now + this.#limits.maxExpiryMs)
    const items = [...this.#items.values()]
    if (items.length >= this.#limits.total) throw new MailboxError('this mailbox is full; try another peer')
    if (items.filter((i) => i.to === request.to).length >= this.#limits.perRecipient)
      throw new MailboxError(`this mailbox holds ${this.#limits.perRecipient} envelopes for ${request.to} already`)
    if (items.filter((i) => i.from === from).length >= this.#limits.perPeer)
      throw new MailboxError(`this mailbox holds ${this.#limits.perPeer} envelopes from you already`)
    let paid = false
    try {
      paid = await this.#options.verifyTransfer(request.tx, request.to, envelopeHash(request.envelope))
    } catch (err) {
      throw new MailboxError(`the transfer could not be checked: ${(err as Error).message}`, { cause: err })
    }
    if (!paid)
      throw new MailboxError(
        `no committed bank.transfer ${toHex(request.tx)} to ${request.to} carries this envelope's hash`,
      )
    const item: Item = { to: request.to, from, envelope: request.envelope, tx: request.tx, expires, hash }
    await this.#write(`${hash}.cbor`, encode({ to: item.to, from, envelope: item.envelope, tx: item.tx, expires }))
    this.#items.set(hash, item)
  }

  /** Envelopes for `to` (the authenticated peer asking), oldest expiry first. */
  fetch(to: string, max: number): Delivery[] {
    this.#sweep(this.#options.clock.now())
    return [...this.#items.values()]
      .filter((i) => i.to === to)
      .sort((a, b) => a.expires - b.expires)
      .slice(0, max)
      .map((i) => ({ envelope: i.envelope, tx: i.tx }))
  }

  /** The recipient's receipt: removes the envelope it acknowledges and keeps the receipt for its sender. */
  async ack(receipt: Receipt): Promise<void> {
    const hash = toHex(receipt.envelope)
    const item = this.#items.get(hash)
    if (item === undefined) {
      if (this.#receipts.has(hash)) return
      throw new MailboxError('this mailbox holds no envelope with that hash')
    }
    if (!verifyReceipt(receipt, item.to)) throw new MailboxError(`the receipt is not signed by ${item.to}`)
    await this.#write(`${hash}.receipt`, encode({ receipt: encodeReceipt(receipt), expires: item.expires }))
    this.#receipts.set(hash, { receipt, expires: item.expires })
    this.#items.delete(hash)
    await this.#remove(`${hash}.cbor`)
  }

  /** Receipts left here for envelopes with these hashes. */
  receipts(envelopes: Uint8Array[]): Receipt[] {
    const out: Receipt[] = []
    for (const e of envelopes) {
      const held = this.#receipts.get(toHex(e))
      if (held !== undefined) out.push(held.receipt)
    }
    return out
  }

  #sweep(now: number): void {
    for (const [hash, item] of this.#items)
      if (item.expires <= now) {
        this.#items.delete(hash)
        void this.#remove(`${hash}.cbor`)
      }
    for (const [hash, held] of this.#receipts)
      if (held.expires <= now) {
        this.#receipts.delete(hash)
        void this.#remove(`${hash}.receipt`)
      }
  }

  async #write(name: string, bytes: Uint8Array): Promise<void> {
    const dir = this.#options.dir
    if (dir === undefined) return
    const tmp = join(dir, `${name}.tmp`)
    await writeFile(tmp, bytes, { mode: 0o600 })
    await rename(tmp, join(dir, name))
  }

  async #remove(name: string): Promise<void> {
    const dir = this.#options.dir
    if (dir === undefined) return
    await rm(join(dir, name), { force: true })
  }
}
