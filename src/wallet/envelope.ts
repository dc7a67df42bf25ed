/**
 * Payment envelopes (issue 14, part 1; seed 002): the details of a payment - amount, memo, an
 * optional invoice - signed by the sender and sealed to the recipient, so that the chain carries
 * only the value and the hash of the envelope.
 *
 *   details   = { v: 1, id (16 B), chainId, from, to, amount, memo, invoice?, createdAt }
 *   terms     = sha256(dag-cbor({ chainId, from, to, amount, id }))     "the transfer hash"
 *   inner     = dag-cbor({ d: details, t: terms, sig })
 *               sig = Ed25519(sender, kind "wallet.payment", dag-cbor({ d: details, t: terms }))
 *   envelope  = crypto_box_seal(inner, X25519 key of the recipient's DID)          (libsodium)
 *   on chain  = bank.transfer { to, amount, envelope: sha256(envelope) }
 *
 * Why `terms` and not the transaction's hash: the transaction carries the envelope's hash, so the
 * envelope cannot carry the transaction's (each would have to be computed before the other). The
 * two are bound in both directions instead: the transaction names the envelope by hash, and the
 * envelope's signed terms name everything the transaction transfers (chain, sender, recipient,
 * amount). `matchTransfer` checks a committed transaction against an opened envelope; the node's
 * nonce and fee are left out on purpose, so a transaction re-signed at another nonce (the node's
 * own-transaction queue heals gaps that way) still matches.
 *
 * The seal is libsodium's `crypto_box_seal` (X25519 + XSalsa20-Poly1305 under an ephemeral key,
 * nonce = BLAKE2b(ephemeral || recipient)) through sodium-native, so any libsodium implementation
 * opens it: test/wallet-interop.test.ts opens ours with an independent libsodium build and ours
 * opens theirs. The recipient's key is the X25519 twin of its Ed25519 did:key, the key agreement
 * key of its DID document (libsodium's `crypto_sign_ed25519_pk_to_curve25519`). The older
 * `identity/sealed-box.ts` (HKDF + ChaCha20-Poly1305) stays for what uses it; it is not a format
 * another implementation can open without our code, which is what a payment needs.
 *
 * Errors, all `EnvelopeError`s, nothing written anywhere: `EnvelopeNotForUsError` (sealed to
 * another key, or damaged), `EnvelopeSignatureError` (the sender's signature does not verify),
 * `EnvelopeFormatError` (not a payment this code reads), `EnvelopeMismatchError` (the chain's
 * transfer does not match the envelope).
 */
import { randomBytes } from 'node:crypto'
import { toHex, utf8, equals } from '../core/bytes.ts'
import { decode, encode } from '../core/codec.ts'
import { DonghaeError } from '../core/errors.ts'
import { sha256 } from '../core/hash.ts'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import { verifySignature } from '../identity/keys.ts'
import { didFromEd25519PublicKey, ed25519PublicKeyFromDid, keyAgreementPublicKeyFromDid } from '../identity/did-key.ts'
import { openBox, sealBox } from '../core/sodium-box.ts'

export const PAYMENT_SIGNING_KIND = 'wallet.payment'
export const ENVELOPE_VERSION = 1
/** Largest memo, bytes of UTF-8. */
export const MAX_MEMO_BYTES = 1024
/** Largest invoice file. */
export const MAX_INVOICE_BYTES = 48 * 1024
/** Largest invoice file name, bytes of UTF-8. */
export const MAX_INVOICE_NAME_BYTES = 255
/** Largest envelope accepted anywhere (details, signature and the seal's 48 bytes). */
export const MAX_ENVELOPE_BYTES = 56 * 1024
export const PAYMENT_ID_LENGTH = 16

export class EnvelopeError extends DonghaeError {
  static override readonly code: string = 'ENVELOPE_ERROR'
  override name = 'EnvelopeError'
}

/** The envelope is not sealed to this key (it is another recipient's), or its bytes were damaged. */
export class EnvelopeNotForUsError extends EnvelopeError {
  static override readonly code: string = 'ENVELOPE_NOT_FOR_US'
  override name = 'EnvelopeNotForUsError'
}

/** The sender's signature inside the envelope does not verify. */
export class EnvelopeSignatureError extends EnvelopeError {
  static override readonly code: string = 'ENVELOPE_BAD_SIGNATURE'
  override name = 'EnvelopeSignatureError'
}

/** The envelope opened but is not a payment this code reads. */
export class EnvelopeFormatError extends EnvelopeError {
  static override readonly code: string = 'ENVELOPE_FORMAT'
  override name = 'EnvelopeFormatError'
}

/** The committed transfer does not match the envelope (amount, parties, chain or envelope hash). */
export class EnvelopeMismatchError extends EnvelopeError {
  static override readonly code: string = 'ENVELOPE_MISMATCH'
  override name = 'EnvelopeMismatchError'
}

export interface Invoice {
  name: string
  /** The file's bytes. */
  bytes: Uint8Array
}

export interface PaymentDetails {
  v: typeof ENVELOPE_VERSION
  /** 16 random bytes naming this payment on both sides. */
  id: Uint8Array
  chainId: string
  /** The sender's DID (its signature is inside). */
  from: string
  /** The recipient's DID (the envelope is sealed to its key). */
  to: string
  amount: bigint
  memo: string
  invoice?: Invoice
  /** Milliseconds since the Unix epoch, as the sender's clock said. */
  createdAt: number
}

export interface SealedPayment {
  details: PaymentDetails
  /** The sealed bytes that travel to the recipient. */
  envelope: Uint8Array
  /** sha256(envelope): the only extra data the transfer puts on chain. */
  envelopeHash: Uint8Array
  /** sha256 of the transfer's terms, covered by the sender's signature. */
  terms: Uint8Array
}

export interface PaymentRequest {
  chainId: string
  to: string
  amount: bigint
  memo?: string
  invoice?: Invoice
  /** @default Date.now() */
  createdAt?: number
  /** @default 16 random bytes */
  id?: Uint8Array
}

/** What a transfer carries that the envelope's terms must match. */
export interface TransferTerms {
  chainId: string
  from: string
  to: string
  amount: bigint
  id: Uint8Array
}

/** The hash the sender signs as "the transfer": chain, parties, amount and the payment's id. */
export function termsHash(terms: TransferTerms): Uint8Array {
  return sha256(encode({ chainId: terms.chainId, from: terms.from, to: terms.to, amount: terms.amount, id: terms.id }))
}

export function envelopeHash(envelope: Uint8Array): Uint8Array {
  return sha256(envelope)
}

function checkDetails(details: PaymentDetails): void {
  if (details.amount <= 0n) throw new EnvelopeFormatError('the amount must be positive')
  if (details.amount >= 2n ** 64n) throw new EnvelopeFormatError('the amount does not fit in 64 bits')
  if (utf8(details.memo).length > MAX_MEMO_BYTES)
    throw new EnvelopeFormatError(`the memo has more than ${MAX_MEMO_BYTES} bytes`)
  if (details.invoice !== undefined) {
    if (details.invoice.bytes.length > MAX_INVOICE_BYTES)
      throw new EnvelopeFormatError(`the invoice has more than ${MAX_INVOICE_BYTES} bytes`)
    const nameBytes = utf8(details.invoice.name).length
    if (nameBytes === 0 || nameBytes > MAX_INVOICE_NAME_BYTES || /[/\\\0]/.test(details.invoice.name))
      throw new EnvelopeFormatError('the invoice name must be 1\u2013255 bytes, without slashes or NUL')
  }
  if (details.id.length !== PAYMENT_ID_LENGTH) throw new EnvelopeFormatError('the payment id must be 16 bytes')
  if (!Number.isSafeInteger(details.createdAt) || details.createdAt < 0)
    throw new EnvelopeFormatError('createdAt must be milliseconds since the epoch')
}

function detailsToCbor(details: PaymentDetails): Record<string, unknown> {
  const out: Record<string, unknown> = {
    v: details.v,
    id: details.id,
    chainId: details.chainId,
    from: details.from,
    to: details.to,
    amount: details.amount,
    memo: details.memo,
    createdAt: details.createdAt,
  }
  if (details.invoice !== undefined) out.invoice = { name: details.invoice.name, bytes: details.invoice.bytes }
  return out
}

/** The recipient's X25519 public key from its DID (Ed25519 or X25519 did:key). */
export function recipientKey(did: string): Uint8Array {
  try {
    return keyAgreementPublicKeyFromDid(did)
  } catch (err) {
    throw new EnvelopeFormatError(`cannot encrypt to ${did}: ${(err as Error).message}`, { cause: err })
  }
}

/** libsodium's crypto_box_seal of `message` to an X25519 public key. */
export function boxSeal(message: Uint8Array, publicKey: Uint8Array): Uint8Array {
  try {
    return sealBox(message, publicKey)
  } catch (err) {
    // libsodium refuses a low-order point (an all-zero key, the Ed25519 identity's twin)
    throw new EnvelopeFormatError('cannot seal to this key (it is a low-order point)', { cause: err })
  }
}

/** libsodium's crypto_box_seal_open; undefined when the box is not for this key or was damaged. */
export const boxOpen = openBox

/** Builds, signs and seals a payment from `sender` to `request.to`. */
export function sealPayment(sender: Ed25519KeyPair, request: PaymentRequest): SealedPayment {
  const details: PaymentDetails = {
    v: ENVELOPE_VERSION,
    id: request.id ?? new Uint8Array(randomBytes(PAYMENT_ID_LENGTH)),
    chainId: request.chainId,
    from: didFromEd25519PublicKey(sender.publicKey),
    to: request.to,
    amount: request.amount,
    memo: request.memo ?? '',
    ...(request.invoice === undefined ? {} : { invoice: request.invoice }),
    createdAt: request.createdAt ?? Date.now(),
  }
  checkDetails(details)
  const terms = termsHash(details)
  const d = detailsToCbor(details)
  const sig = sender.sign(PAYMENT_SIGNING_KIND, encode({ d, t: terms }))
  const inner = encode({ d, t: terms, sig })
  const envelope = boxSeal(inner, recipientKey(request.to))
  if (envelope.length > MAX_ENVELOPE_BYTES)
    throw new EnvelopeFormatError(`the envelope would have ${envelope.length} bytes, above ${MAX_ENVELOPE_BYTES}`)
  return { details, envelope, envelopeHash: envelopeHash(envelope), terms }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Uint8Array)
}

function parseDetails(raw: unknown): PaymentDetails {
  if (!isRecord(raw)) throw new EnvelopeFormatError('the payment details are not a map')
  const { v, id, chainId, from, to, amount, memo, invoice, createdAt } = raw
  if (v !== ENVELOPE_VERSION)
    // typeof first: a decoded map whose `toString` key holds data cannot be turned into a string
    throw new EnvelopeFormatError(`unknown envelope version ${typeof v === 'number' ? v : typeof v}`)
  if (!(id instanceof Uint8Array)) throw new EnvelopeFormatError('the payment id is not bytes')
  if (typeof chainId !== 'string' || typeof from !== 'string' || typeof to !== 'string')
    throw new EnvelopeFormatError('chainId, from and to must be strings')
  if (typeof amount !== 'bigint' && !(typeof amount === 'number' && Number.isSafeInteger(amount)))
    throw new EnvelopeFormatError('amount is not an integer')
  if (typeof memo !== 'string') throw new EnvelopeFormatError('memo is not a string')
  if (typeof createdAt !== 'number') throw new EnvelopeFormatError('createdAt is not a number')
  let parsedInvoice: Invoice | undefined
  if (invoice !== undefined) {
    if (
      !isRecord(invoice) ||
      typeof invoice.name !== 'string' ||
      !(invoice.bytes instanceof Uint8Array) ||
      Object.keys(invoice).length !== 2
    )
      throw new EnvelopeFormatError('the invoice must be { name, bytes }')
    parsedInvoice = { name: invoice.name, bytes: invoice.bytes }
  }
  const extra = Object.keys(raw).filter(
    (k) => !['v', 'id', 'chainId', 'from', 'to', 'amount', 'memo', 'invoice', 'createdAt'].includes(k),
  )
  if (extra.length > 0) throw new EnvelopeFormatError(`unknown field ${extra[0] ?? ''} in the payment`)
  const details: PaymentDetails = {
    v: ENVELOPE_VERSION,
    id,
    chainId,
    from,
    to,
    amount: BigInt(amount),
    memo,
    ...(parsedInvoice === undefined ? {} : { invoice: parsedInvoice }),
    createdAt,
  }
  checkDetails(details)
  return details
}

/** The X25519 twin of a wallet's key, derived once per key pair (it costs about as much as the box). */
const X25519_KEYS = new WeakMap<Ed25519KeyPair, { publicKey: Uint8Array; secretKey: Uint8Array }>()

function x25519Of(key: Ed25519KeyPair): { publicKey: Uint8Array; secretKey: Uint8Array } {
  let keys = X25519_KEYS.get(key)
  if (keys === undefined) {
    const x = key.toX25519()
    keys = { publicKey: x.publicKey, secretKey: x.exportPrivateKey() }
    X25519_KEYS.set(key, keys)
  }
  return keys
}

export interface OpenedPayment {
  details: PaymentDetails
  envelopeHash: Uint8Array
  terms: Uint8Array
}

/**
 * Opens an envelope with the recipient's key and verifies the sender's signature and terms.
 * Throws an `EnvelopeError`; returns only a payment whose signature verified and which names
 * this key's DID as its recipient.
 */
export function openPayment(recipient: Ed25519KeyPair, envelope: Uint8Array): OpenedPayment {
  if (!(envelope instanceof Uint8Array) || envelope.length > MAX_ENVELOPE_BYTES)
    throw new EnvelopeFormatError(`an envelope is bytes, at most ${MAX_ENVELOPE_BYTES} of them`)
  const x = x25519Of(recipient)
  const inner = boxOpen(envelope, x.publicKey, x.secretKey)
  if (inner === undefined)
    throw new EnvelopeNotForUsError('this envelope is not sealed to this wallet (or it was damaged on the way)')
  let raw: unknown
  try {
    raw = decode(inner, { maxBytes: MAX_ENVELOPE_BYTES })
  } catch (err) {
    throw new EnvelopeFormatError(`the envelope's content is not dag-cbor: ${(err as Error).message}`, { cause: err })
  }
  if (!isRecord(raw) || !(raw.t instanceof Uint8Array) || !(raw.sig instanceof Uint8Array))
    throw new EnvelopeFormatError('the envelope holds no signed payment')
  if (Object.keys(raw).length !== 3) throw new EnvelopeFormatError('the envelope holds fields besides d, t and sig')
  const details = parseDetails(raw.d)
  const me = didFromEd25519PublicKey(recipient.publicKey)
  if (details.to !== me) throw new EnvelopeNotForUsError(`the payment names ${details.to} as its recipient, not us`)
  let senderKey: Uint8Array
  try {
    senderKey = ed25519PublicKeyFromDid(details.from)
  } catch (err) {
    throw new EnvelopeFormatError(`the sender ${details.from} is not an Ed25519 did:key`, { cause: err })
  }
  const terms = termsHash(details)
  if (!equals(terms, raw.t)) throw new EnvelopeSignatureError("the envelope's transfer hash does not match its terms")
  if (!verifySignature(senderKey, PAYMENT_SIGNING_KIND, encode({ d: raw.d, t: raw.t }), raw.sig))
    throw new EnvelopeSignatureError(`the signature is not ${details.from}'s`)
  return { details, envelopeHash: envelopeHash(envelope), terms }
}

/** The committed transaction a payment must match (the bank.transfer that carried its hash). */
export interface CommittedTransfer {
  chainId: string
  sender: string
  kind: string
  body: unknown
}

/** A decoded amount (dag-cbor gives a number below 2^53 and a bigint above), or undefined. */
function amountOf(value: unknown): bigint | undefined {
  if (typeof value === 'bigint') return value
  if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value)
  return undefined
}

/** Throws EnvelopeMismatchError unless `tx` is the transfer of `payment`. */
export function matchTransfer(payment: OpenedPayment, tx: CommittedTransfer): void {
  const problems: string[] = []
  const d = payment.details
  if (tx.kind !== 'bank.transfer') problems.push(`the transaction is ${tx.kind}, not bank.transfer`)
  if (tx.chainId !== d.chainId) problems.push(`chain ${tx.chainId} \u2260 the envelope's ${d.chainId}`)
  if (tx.sender !== d.from) problems.push(`sent by ${tx.sender}, the envelope is signed by ${d.from}`)
  const body = isRecord(tx.body) ? tx.body : {}
  if (body.to !== d.to) problems.push(`paid to ${String(body.to)}, the envelope names ${d.to}`)
  if (amountOf(body.amount) !== d.amount)
    problems.push(`amount ${String(body.amount)} \u2260 the envelope's ${d.amount}`)
  if (!(body.envelope instanceof Uint8Array) || !equals(body.envelope, payment.envelopeHash))
    problems.push(`the transfer carries another envelope hash than ${toHex(payment.envelopeHash)}`)
  if (problems.length > 0)
    throw new EnvelopeMismatchError(`the transfer does not match the envelope: ${problems.join('; ')}`, {
      details: { problems },
    })
}
