/**
 * The wallet's wire protocols (issue 14, part 2) and the recipient's signed receipt. Every frame
 * is one canonical dag-cbor map, decoded with a size bound and checked field by field; anything
 * else is a `WalletProtocolError` (the peer that sent it is refused, nothing is stored).
 *
 *   /donghae/wallet/deliver/1    sender -> recipient   { envelope, tx }            -> Receipt
 *   /donghae/wallet/receipt/1    recipient -> sender   Receipt                      -> { ok: true }
 *   /donghae/wallet/mailbox/1    anyone -> holder      { op: 'put', to, envelope, tx, expires }   -> { ok: true }
 *                                recipient -> holder   { op: 'fetch' }             -> { items: [{ envelope, tx }] }
 *                                recipient -> holder   { op: 'ack', receipt }      -> { ok: true }
 *                                anyone -> holder      { op: 'receipts', envelopes: [hash...] } -> { receipts: [Receipt...] }
 *
 * `tx` is the hash of the committed bank.transfer that carries sha256(envelope). A receipt is the
 * recipient's Ed25519 signature (kind `wallet.receipt`) over dag-cbor({ envelope, id, to, at }):
 * "`to` holds the envelope with this hash and payment id since `at`". Only the recipient's key
 * can make one, so a mailbox holder that relays it cannot forge an acknowledgement.
 */
import { decode, encode } from '../core/codec.ts'
import { DonghaeError, type ErrorAction } from '../core/errors.ts'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import { verifySignature } from '../identity/keys.ts'
import { didFromEd25519PublicKey, ed25519PublicKeyFromDid } from '../identity/did-key.ts'
import { MAX_ENVELOPE_BYTES, PAYMENT_ID_LENGTH } from './envelope.ts'

export const DELIVER_PROTOCOL = '/donghae/wallet/deliver/1'
export const RECEIPT_PROTOCOL = '/donghae/wallet/receipt/1'
export const MAILBOX_PROTOCOL = '/donghae/wallet/mailbox/1'
export const RECEIPT_SIGNING_KIND = 'wallet.receipt'
/** Largest frame on any wallet protocol (an envelope and its hash, or a page of mailbox items). */
export const MAX_FRAME_BYTES = 4 * MAX_ENVELOPE_BYTES
/** Envelopes one `fetch` answer carries at most (the recipient fetches again for more). */
export const MAX_FETCH_ITEMS = 3
/** Receipts one `receipts` request asks about at most. */
export const MAX_RECEIPT_QUERIES = 64
const HASH_BYTES = 32

export class WalletProtocolError extends DonghaeError {
  static override readonly code: string = 'WALLET_PROTOCOL'
  override name = 'WalletProtocolError'
  /** A malformed frame is the sender's fault: the transport penalizes the peer. */
  readonly action: ErrorAction = 'reject'
}

export interface Receipt {
  /** sha256 of the envelope received. */
  envelope: Uint8Array
  /** The payment's id. */
  id: Uint8Array
  /** The recipient's DID (the signer). */
  to: string
  /** When the recipient stored it (ms since the epoch, its clock). */
  at: number
  signature: Uint8Array
}

export interface Delivery {
  envelope: Uint8Array
  tx: Uint8Array
}

export type MailboxRequest =
  | { op: 'put'; to: string; envelope: Uint8Array; tx: Uint8Array; expires: number }
  | { op: 'fetch' }
  | { op: 'ack'; receipt: Receipt }
  | { op: 'receipts'; envelopes: Uint8Array[] }

function receiptContent(r: Omit<Receipt, 'signature'>): Uint8Array {
  return encode({ envelope: r.envelope, id: r.id, to: r.to, at: r.at })
}

export function signReceipt(key: Ed25519KeyPair, r: Omit<Receipt, 'signature' | 'to'>): Receipt {
  const to = didFromEd25519PublicKey(key.publicKey)
  const unsigned = { envelope: r.envelope, id: r.id, to, at: r.at }
  return { ...unsigned, signature: key.sign(RECEIPT_SIGNING_KIND, receiptContent(unsigned)) }
}

/** Whether `receipt` is `to`'s signature (`to` from the payment the sender made, not from the receipt). */
export function verifyReceipt(receipt: Receipt, to: string): boolean {
  if (receipt.to !== to) return false
  let publicKey: Uint8Array
  try {
    publicKey = ed25519PublicKeyFromDid(to)
  } catch {
    return false
  }
  return verifySignature(publicKey, RECEIPT_SIGNING_KIND, receiptContent(receipt), receipt.signature)
}

function fail(message: string): never {
  throw new WalletProtocolError(message)
}

function decodeMap(bytes: Uint8Array, what: string): Record<string, unknown> {
  if (bytes.length > MAX_FRAME_BYTES) fail(`${what} of ${bytes.length} bytes exceeds ${MAX_FRAME_BYTES}`)
  let raw: unknown
  try {
    raw = decode(bytes, { maxBytes: MAX_FRAME_BYTES })
  } catch (err) {
    throw new WalletProtocolError(`${what} is not canonical dag-cbor: ${(err as Error).message}`, { cause: err })
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || raw instanceof Uint8Array)
    fail(`${what} is not a map`)
  return raw as Record<string, unknown>
}

function onlyKeys(map: Record<string, unknown>, keys: readonly string[], what: string): void {
  const extra = Object.keys(map).find((k) => !keys.includes(k))
  if (extra !== undefined) fail(`${what} has an unknown field ${extra}`)
}

function bytesOf(value: unknown, length: number | undefined, max: number, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) fail(`${what} must be bytes`)
  if (length !== undefined && value.length !== length) fail(`${what} must be ${length} bytes`)
  if (value.length > max) fail(`${what} exceeds ${max} bytes`)
  return value
}

function didOf(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length > 128) fail(`${what} must be a did:key`)
  try {
    ed25519PublicKeyFromDid(value)
  } catch {
    fail(`${what} must be an Ed25519 did:key`)
  }
  return value
}

function timeOf(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    fail(`${what} must be milliseconds since the epoch`)
  return value
}

function receiptFrom(map: Record<string, unknown>): Receipt {
  onlyKeys(map, ['envelope', 'id', 'to', 'at', 'signature'], 'a receipt')
  return {
    envelope: bytesOf(map.envelope, HASH_BYTES, HASH_BYTES, 'the receipt envelope hash'),
    id: bytesOf(map.id, PAYMENT_ID_LENGTH, PAYMENT_ID_LENGTH, 'the receipt payment id'),
    to: didOf(map.to, 'the receipt signer'),
    at: timeOf(map.at, 'the receipt time'),
    signature: bytesOf(map.signature, 64, 64, 'the receipt signature'),
  }
}

function receiptToMap(r: Receipt): Record<string, unknown> {
  return { envelope: r.envelope, id: r.id, to: r.to, at: r.at, signature: r.signature }
}

export function encodeReceipt(r: Receipt): Uint8Array {
  return encode(receiptToMap(r))
}

export function decodeReceipt(bytes: Uint8Array): Receipt {
  return receiptFrom(decodeMap(bytes, 'a receipt'))
}

export function encodeDelivery(d: Delivery): Uint8Array {
  return encode({ envelope: d.envelope, tx: d.tx })
}

export function decodeDelivery(bytes: Uint8Array): Delivery {
  const map = decodeMap(bytes, 'a delivery')
  onlyKeys(map, ['envelope', 'tx'], 'a delivery')
  return {
    envelope: bytesOf(map.envelope, undefined, MAX_ENVELOPE_BYTES, 'the envelope'),
    tx: bytesOf(map.tx, HASH_BYTES, HASH_BYTES, 'the transaction hash'),
  }
}

export function encodeMailboxRequest(r: MailboxRequest): Uint8Array {
  switch (r.op) {
    case 'put':
      return encode({ op: r.op, to: r.to, envelope: r.envelope, tx: r.tx, expires: r.expires })
    case 'fetch':
      return encode({ op: r.op })
    case 'ack':
      return encode({ op: r.op, receipt: receiptToMap(r.receipt) })
    case 'receipts':
      return encode({ op: r.op, envelopes: r.envelopes })
  }
}

export function decodeMailboxRequest(bytes: Uint8Array): MailboxRequest {
  const map = decodeMap(bytes, 'a mailbox request')
  switch (map.op) {
    case 'put':
      onlyKeys(map, ['op', 'to', 'envelope', 'tx', 'expires'], 'a put')
      return {
        op: 'put',
        to: didOf(map.to, 'the recipient'),
        envelope: bytesOf(map.envelope, undefined, MAX_ENVELOPE_BYTES, 'the envelope'),
        tx: bytesOf(map.tx, HASH_BYTES, HASH_BYTES, 'the transaction hash'),
        expires: timeOf(map.expires, 'expires'),
      }
    case 'fetch':
      onlyKeys(map, ['op'], 'a fetch')
      return { op: 'fetch' }
    case 'ack': {
      onlyKeys(map, ['op', 'receipt'], 'an ack')
      const receipt = map.receipt
      if (receipt === null || typeof receipt !== 'object' || Array.isArray(receipt)) fail('an ack carries a receipt')
      return { op: 'ack', receipt: receiptFrom(receipt as Record<string, unknown>) }
    }
    case 'receipts': {
      onlyKeys(map, ['op', 'envelopes'], 'a receipts query')
      if (!Array.isArray(map.envelopes) || map.envelopes.length > MAX_RECEIPT_QUERIES)
        fail(`a receipts query names at most ${MAX_RECEIPT_QUERIES} envelope hashes`)
      return {
        op: 'receipts',
        envelopes: map.envelopes.map((h: unknown) => bytesOf(h, HASH_BYTES, HASH_BYTES, 'an envelope hash')),
      }
    }
    default:
      return fail(`unknown mailbox operation ${String(map.op)}`)
  }
}

export function encodeFetchAnswer(items: Delivery[]): Uint8Array {
  return encode({ items: items.map((i) => ({ envelope: i.envelope, tx: i.tx })) })
}

export function decodeFetchAnswer(bytes: Uint8Array): Delivery[] {
  const map = decodeMap(bytes, 'a fetch answer')
  onlyKeys(map, ['items'], 'a fetch answer')
  if (!Array.isArray(map.items) || map.items.length > MAX_FETCH_ITEMS)
    fail(`a fetch answer carries at most ${MAX_FETCH_ITEMS} items`)
  return map.items.map((item: unknown) => {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) fail('a fetch item is a map')
    const m = item as Record<string, unknown>
    onlyKeys(m, ['envelope', 'tx'], 'a fetch item')
    return {
      envelope: bytesOf(m.envelope, undefined, MAX_ENVELOPE_BYTES, 'the envelope'),
      tx: bytesOf(m.tx, HASH_BYTES, HASH_BYTES, 'the transaction hash'),
    }
  })
}

export function encodeReceiptsAnswer(receipts: Receipt[]): Uint8Array {
  return encode({ receipts: receipts.map(receiptToMap) })
}

export function decodeReceiptsAnswer(bytes: Uint8Array): Receipt[] {
  const map = decodeMap(bytes, 'a receipts answer')
  onlyKeys(map, ['receipts'], 'a receipts answer')
  if (!Array.isArray(map.receipts) || map.receipts.length > MAX_RECEIPT_QUERIES)
    fail(`a receipts answer carries at most ${MAX_RECEIPT_QUERIES} receipts`)
  return map.receipts.map((r: unknown) => {
    if (r === null || typeof r !== 'object' || Array.isArray(r)) fail('a receipt is a map')
    return receiptFrom(r as Record<string, unknown>)
  })
}

export const OK_ANSWER: Uint8Array = encode({ ok: true })
