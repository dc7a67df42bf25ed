/**
 * Transactions: a signed envelope in canonical dag-cbor.
 *
 *   { chainId, sender (did:key), nonce, fee, kind ("module.action"), body, signature }
 *
 * The signature is the sender's Ed25519 signature, kind `chain.tx`, over the dag-cbor of every
 * field but `signature`, so it commits to the chain (no cross-chain replay) and the nonce (no
 * replay on this chain). The transaction hash is sha256 of the whole encoded envelope.
 */
import { encode, decode } from '../core/codec.ts'
import { equals, utf8 } from '../core/bytes.ts'
import { signingDigest } from '../core/signing.ts'
import { sha256 } from '../core/hash.ts'
import { asUint64 } from '../core/uint.ts'
import type { DecodeError, InvalidInputError } from '../core/errors.ts'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import { verifySignature } from '../identity/keys.ts'
import { didFromEd25519PublicKey, ed25519PublicKeyFromDid } from '../identity/did-key.ts'
import type { VerifyItem } from '../identity/verify-pool.ts'
import { TxError } from './errors.ts'

export const TX_SIGNING_KIND = 'chain.tx'
/** Largest encoded transaction accepted anywhere. */
export const MAX_TX_BYTES = 64 * 1024
const KIND_PATTERN = /^[a-z][a-z0-9]*\.[a-z][a-zA-Z0-9]*$/

export interface UnsignedTx {
  chainId: string
  sender: string
  nonce: bigint
  fee: bigint
  kind: string
  body: unknown
}

export interface SignedTx extends UnsignedTx {
  signature: Uint8Array
}

function signBytes(tx: UnsignedTx): Uint8Array {
  return encode({ chainId: tx.chainId, sender: tx.sender, nonce: tx.nonce, fee: tx.fee, kind: tx.kind, body: tx.body })
}

/**
 * The end of every encoded transaction: dag-cbor sorts map keys by length first, so `signature`
 * (9 bytes, the longest key) is the last entry - its key (0x69 "signature") and its 64 bytes
 * (0x58 0x40 and the signature).
 */
const SIGNATURE_KEY = Uint8Array.of(0x69, ...utf8('signature'), 0x58, 0x40)
const SIGNATURE_ENTRY_BYTES = SIGNATURE_KEY.length + 64
/** A map of 7 entries (the signed envelope) and of 6 (what is signed), in one header byte each. */
const SIGNED_MAP = 0xa7
const UNSIGNED_MAP = 0xa6

/**
 * What the sender signed, cut from the canonical bytes `tx` was decoded from instead of encoded
 * again (the envelope less its last entry, its header counting one entry fewer): the same bytes,
 * since canonical dag-cbor has one encoding per value. Anything unexpected (bytes that do not
 * end in this transaction's signature entry) falls back to encoding.
 */
function signBytesFrom(tx: SignedTx, encoded: Uint8Array | undefined): Uint8Array {
  if (encoded === undefined || encoded[0] !== SIGNED_MAP || encoded.length <= 1 + SIGNATURE_ENTRY_BYTES)
    return signBytes(tx)
  const at = encoded.length - SIGNATURE_ENTRY_BYTES
  for (let i = 0; i < SIGNATURE_KEY.length; i++) if (encoded[at + i] !== SIGNATURE_KEY[i]) return signBytes(tx)
  const signature = encoded.subarray(at + SIGNATURE_KEY.length)
  if (!equals(signature, tx.signature)) return signBytes(tx)
  // a copy (a Buffer's slice would be a view, and this must not write into the caller's bytes)
  const unsigned = new Uint8Array(at)
  unsigned.set(encoded.subarray(0, at))
  unsigned[0] = UNSIGNED_MAP
  return unsigned
}

/** Builds and signs a transaction; `sender` is derived from the key. */
export function signTx(key: Ed25519KeyPair, tx: Omit<UnsignedTx, 'sender'>): SignedTx {
  const unsigned: UnsignedTx = { ...tx, sender: didFromEd25519PublicKey(key.publicKey) }
  return { ...unsigned, signature: key.sign(TX_SIGNING_KIND, signBytes(unsigned)) }
}

export function encodeTx(tx: SignedTx): Uint8Array {
  return encode({
    chainId: tx.chainId,
    sender: tx.sender,
    nonce: tx.nonce,
    fee: tx.fee,
    kind: tx.kind,
    body: tx.body,
    signature: tx.signature,
  })
}

export function txHash(encoded: Uint8Array): Uint8Array {
  return sha256(encoded)
}

/**
 * Decodes and checks the envelope's shape (not its signature, chain, nonce or body: see
 * `verifyTxSignature` and the host). Any problem is a `TxError` with action `reject`.
 */
export function decodeTx(bytes: Uint8Array): SignedTx {
  if (bytes.length > MAX_TX_BYTES)
    throw new TxError('oversized', `transaction of ${bytes.length} bytes exceeds ${MAX_TX_BYTES}`)
  let raw: unknown
  try {
    raw = decode(bytes, { maxBytes: MAX_TX_BYTES })
  } catch (err) {
    throw new TxError('malformed', `transaction is not canonical dag-cbor: ${(err as DecodeError).message}`, {
      cause: err,
    })
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new TxError('malformed', 'transaction must be a map')
  const fields = raw as Record<string, unknown>
  const expected = ['body', 'chainId', 'fee', 'kind', 'nonce', 'sender', 'signature']
  const keys = Object.keys(fields).sort()
  if (keys.length !== expected.length || keys.some((k, i) => k !== expected[i])) {
    throw new TxError('malformed', `transaction fields must be exactly ${expected.join(', ')}`)
  }
  const { chainId, sender, kind, signature } = fields
  if (typeof chainId !== 'string' || chainId.length === 0 || chainId.length > 64)
    throw new TxError('malformed', 'chainId must be a string of 1-64 characters')
  if (typeof sender !== 'string' || sender.length > 128) throw new TxError('malformed', 'sender must be a did:key')
  if (typeof kind !== 'string' || !KIND_PATTERN.test(kind))
    throw new TxError('malformed', 'kind must look like "module.action"')
  if (!(signature instanceof Uint8Array) || signature.length !== 64)
    throw new TxError('malformed', 'signature must be 64 bytes')
  let nonce: bigint
  let fee: bigint
  try {
    nonce = asUint64(fields.nonce, 'nonce')
    fee = asUint64(fields.fee, 'fee')
  } catch (err) {
    throw new TxError('malformed', (err as InvalidInputError).message, { cause: err })
  }
  return { chainId, sender, nonce, fee, kind, body: fields.body, signature }
}

/** True when the sender's key signed this transaction. Never throws. */
export function verifyTxSignature(tx: SignedTx): boolean {
  let publicKey: Uint8Array
  try {
    publicKey = ed25519PublicKeyFromDid(tx.sender)
  } catch {
    return false
  }
  return verifySignature(publicKey, TX_SIGNING_KIND, signBytes(tx), tx.signature)
}

/**
 * What a VerifyPool needs to check this transaction's signature, or undefined if the sender is not
 * a valid did:key. `encoded`: the bytes `tx` was decoded from (decodeTx), when the caller has
 * them: what was signed is cut from them rather than encoded again.
 */
export function txVerifyItem(tx: SignedTx, encoded?: Uint8Array): VerifyItem | undefined {
  let publicKey: Uint8Array
  try {
    publicKey = ed25519PublicKeyFromDid(tx.sender)
  } catch {
    return undefined
  }
  return { publicKey, digest: signingDigest(TX_SIGNING_KIND, signBytesFrom(tx, encoded)), signature: tx.signature }
}
