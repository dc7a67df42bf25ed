/**
 * Directory records (issue 13). An answerer registers its DID with a directory: a description,
 * categories and tags to be found by ("restaurant"), the bootstrap multiaddrs of its DHT and the
 * http(s) endpoint it takes signalling at. The registration is signed by the DID's own Ed25519
 * key over the canonical dag-cbor of every other field (signing kind `directory.register`), so
 * only the DID's key can create or change its entry; a deletion `{ did, seq, signature }` is
 * signed the same way (kind `directory.delete`). Higher `seq` replaces lower; `expires` voids the
 * entry and may lie at most 30 days ahead.
 *
 * Decoders are strict (like `../net/did-records.ts`): unknown or missing fields, wrong types and
 * oversized values are refused with a `DirectoryError` whose `statusCode` an HTTP layer returns
 * as is (400 malformed, 403 bad signature, 409 stale, 413 too large, 429 rate limited).
 */
import { multiaddr } from '@multiformats/multiaddr'
import { decode, encode } from '../core/codec.ts'
import { utf8 } from '../core/bytes.ts'
import { DonghaeError, type DonghaeErrorOptions, type ErrorAction } from '../core/errors.ts'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import { SIGNATURE_LENGTH, verifySignature } from '../identity/keys.ts'
import { didFromEd25519PublicKey, ed25519PublicKeyFromDid } from '../identity/did-key.ts'

export const REGISTER_SIGNING_KIND = 'directory.register'
export const DELETE_SIGNING_KIND = 'directory.delete'

export const MAX_DESCRIPTION_BYTES = 1024
export const MAX_CATEGORIES = 8
export const MAX_TAGS = 16
export const MAX_BOOTSTRAP = 8
export const MAX_BOOTSTRAP_CHARS = 256
export const MAX_ENDPOINT_CHARS = 256
export const MAX_DID_CHARS = 128
/** How far ahead `expires` may lie. */
export const MAX_EXPIRY_MS = 30 * 24 * 60 * 60 * 1000
/** A category or tag: lowercase letters, digits and '-', 1 to 32 characters. */
export const LABEL_PATTERN = /^[a-z0-9-]{1,32}$/
/** Largest encoded registration accepted (the largest valid one is about 4.5 KiB). */
export const MAX_REGISTRATION_BYTES = 8 * 1024
/** Largest encoded deletion accepted. */
export const MAX_DELETION_BYTES = 512

/** Base of every directory error; `statusCode` is the HTTP status an API answers with. */
export class DirectoryError extends DonghaeError {
  static override readonly code: string = 'DIRECTORY_ERROR'
  override name = 'DirectoryError'
  readonly statusCode: number = 400
  /** What a gossip receiver does with a message that caused this error. */
  readonly action: ErrorAction = 'reject'
}

/** Malformed: wrong or unknown fields, bad types, bad labels, URLs or multiaddrs, expiry out of range. */
export class DirectoryInvalidError extends DirectoryError {
  static override readonly code: string = 'DIRECTORY_INVALID'
  override name = 'DirectoryInvalidError'
  override readonly statusCode: number = 400
}

/** The record has already expired, or expires further ahead than `MAX_EXPIRY_MS` (clock skew: not blamed). */
export class DirectoryExpiryError extends DirectoryInvalidError {
  static override readonly code: string = 'DIRECTORY_EXPIRY'
  override name = 'DirectoryExpiryError'
  override readonly action = 'ignore' as const
}

/** A field or the whole record is larger than allowed. */
export class DirectoryTooLargeError extends DirectoryError {
  static override readonly code: string = 'DIRECTORY_TOO_LARGE'
  override name = 'DirectoryTooLargeError'
  override readonly statusCode: number = 413
}

/** The signature does not verify for the DID named in the record (a stranger's key, a changed field). */
export class DirectorySignatureError extends DirectoryError {
  static override readonly code: string = 'DIRECTORY_BAD_SIGNATURE'
  override name = 'DirectorySignatureError'
  override readonly statusCode: number = 403
}

/** A replay or an older sequence number than the one stored (or a registration after its deletion). */
export class DirectoryStaleError extends DirectoryError {
  static override readonly code: string = 'DIRECTORY_STALE'
  override name = 'DirectoryStaleError'
  override readonly statusCode: number = 409
  override readonly action = 'ignore' as const
}

/** Too many registrations from this client or for this DID; retry after `retryAfterMs`. */
export class DirectoryRateLimitError extends DirectoryError {
  static override readonly code: string = 'DIRECTORY_RATE_LIMITED'
  override name = 'DirectoryRateLimitError'
  override readonly statusCode: number = 429
  override readonly action = 'ignore' as const
  readonly retryAfterMs: number
  constructor(message: string, retryAfterMs: number, options: DonghaeErrorOptions = {}) {
    super(message, { ...options, details: { ...options.details, retryAfterMs } })
    this.retryAfterMs = retryAfterMs
  }
}

/** What the answerer fills in; `did` comes from the signing key. */
export interface RegistrationFields {
  description: string
  categories: string[]
  tags: string[]
  /** Multiaddrs of DHT nodes to bootstrap from to find the DID's document. */
  bootstrap: string[]
  /** The http(s) URL the answerer takes signalling (SDP offers) at. */
  endpoint: string
  seq: number
  /** Milliseconds since the epoch; at most `MAX_EXPIRY_MS` ahead. */
  expires: number
}

export interface Registration extends RegistrationFields {
  did: string
}

export interface SignedRegistration extends Registration {
  signature: Uint8Array
}

export interface Deletion {
  did: string
  seq: number
}

export interface SignedDeletion extends Deletion {
  signature: Uint8Array
}

const REGISTRATION_KEYS = 'bootstrap,categories,description,did,endpoint,expires,seq,signature,tags'
const DELETION_KEYS = 'did,seq,signature'

function invalid(message: string): never {
  throw new DirectoryInvalidError(`invalid directory record: ${message}`)
}

function tooLarge(message: string): never {
  throw new DirectoryTooLargeError(`directory record too large: ${message}`)
}

function asMap(raw: unknown): Record<string, unknown> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || raw instanceof Uint8Array) invalid('not a map')
  return raw as Record<string, unknown>
}

function checkKeys(r: Record<string, unknown>, expected: string): void {
  const keys = Object.keys(r).sort().join(',')
  if (keys !== expected) {
    const want = new Set(expected.split(','))
    const unknown = Object.keys(r).filter((k) => !want.has(k))
    const missing = [...want].filter((k) => !(k in r))
    invalid(
      [
        unknown.length > 0 ? `unknown fields ${unknown.slice(0, 4).join(', ')}` : '',
        missing.length > 0 ? `missing fields ${missing.join(', ')}` : '',
      ]
        .filter((s) => s !== '')
        .join('; '),
    )
  }
}

function checkUint(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    invalid(`${field} must be an unsigned integer`)
  return value
}

/** The DID must be the canonical Ed25519 did:key of its key (one key, one entry). */
function checkDid(value: unknown): string {
  if (typeof value !== 'string') invalid('did must be a string')
  if (value.length > MAX_DID_CHARS) tooLarge(`did longer than ${MAX_DID_CHARS} characters`)
  let canonical: string
  try {
    canonical = didFromEd25519PublicKey(ed25519PublicKeyFromDid(value))
  } catch (err) {
    return invalid(`did: ${(err as Error).message}`)
  }
  if (canonical !== value) invalid('did must be the canonical did:key:z6Mk\u2026 form of an Ed25519 key')
  return value
}

function checkLabels(value: unknown, field: string, max: number, min: number): string[] {
  if (!Array.isArray(value)) invalid(`${field} must be a list`)
  if (value.length > max) tooLarge(`more than ${max} ${field}`)
  if (value.length < min) invalid(`at least ${min} of ${field} required`)
  for (const label of value) {
    if (typeof label !== 'string') invalid(`${field} must be strings`)
    if (label.length > 32) tooLarge(`a ${field} entry longer than 32 characters`)
    if (!LABEL_PATTERN.test(label)) invalid(`${field} entries are lowercase letters, digits and '-' (1-32)`)
  }
  if (new Set(value).size !== value.length) invalid(`${field} has duplicates`)
  return value as string[]
}

function checkDescription(value: unknown): string {
  if (typeof value !== 'string') invalid('description must be a string')
  if (value.length > MAX_DESCRIPTION_BYTES || utf8(value).length > MAX_DESCRIPTION_BYTES)
    tooLarge(`description over ${MAX_DESCRIPTION_BYTES} bytes of UTF-8`)
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(value)) invalid('description contains control characters')
  return value
}

function checkBootstrap(value: unknown): string[] {
  if (!Array.isArray(value)) invalid('bootstrap must be a list')
  if (value.length > MAX_BOOTSTRAP) tooLarge(`more than ${MAX_BOOTSTRAP} bootstrap addresses`)
  for (const addr of value) {
    if (typeof addr !== 'string') invalid('bootstrap addresses must be strings')
    if (addr.length > MAX_BOOTSTRAP_CHARS) tooLarge(`a bootstrap address longer than ${MAX_BOOTSTRAP_CHARS}`)
    let canonical: string
    try {
      canonical = multiaddr(addr).toString()
    } catch {
      return invalid(`bootstrap address ${JSON.stringify(addr.slice(0, 64))} is not a multiaddr`)
    }
    if (canonical !== addr) invalid(`bootstrap address ${JSON.stringify(addr.slice(0, 64))} is not canonical`)
  }
  if (new Set(value).size !== value.length) invalid('bootstrap has duplicates')
  return value as string[]
}

function checkEndpoint(value: unknown): string {
  if (typeof value !== 'string') invalid('endpoint must be a string')
  if (value.length > MAX_ENDPOINT_CHARS) tooLarge(`endpoint longer than ${MAX_ENDPOINT_CHARS} characters`)
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return invalid('endpoint is not a URL')
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') invalid('endpoint must be an http(s) URL')
  if (url.username !== '' || url.password !== '') invalid('endpoint must not carry credentials')
  if (url.hash !== '') invalid('endpoint must not have a fragment')
  return value
}

function checkSignature(value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== SIGNATURE_LENGTH) invalid('signature must be 64 bytes')
  return value
}

/** Checks every field but the signature and the expiry window; returns a clean copy. */
export function checkRegistrationFields(raw: unknown): Registration {
  const r = asMap(raw)
  const fields = { ...r }
  delete fields.signature
  checkKeys(fields, 'bootstrap,categories,description,did,endpoint,expires,seq,tags')
  return {
    did: checkDid(r.did),
    description: checkDescription(r.description),
    categories: [...checkLabels(r.categories, 'categories', MAX_CATEGORIES, 1)],
    tags: [...checkLabels(r.tags, 'tags', MAX_TAGS, 0)],
    bootstrap: [...checkBootstrap(r.bootstrap)],
    endpoint: checkEndpoint(r.endpoint),
    seq: checkUint(r.seq, 'seq'),
    expires: checkUint(r.expires, 'expires'),
  }
}

/** The bytes a registration's signature covers: canonical dag-cbor of everything but the signature. */
export function registrationSigningBytes(record: Registration): Uint8Array {
  return encode({
    did: record.did,
    description: record.description,
    categories: record.categories,
    tags: record.tags,
    bootstrap: record.bootstrap,
    endpoint: record.endpoint,
    seq: record.seq,
    expires: record.expires,
  })
}

export function deletionSigningBytes(deletion: Deletion): Uint8Array {
  return encode({ did: deletion.did, seq: deletion.seq })
}

/** Signs a registration with the DID's key; the fields are checked first (throws `DirectoryError`). */
export function signRegistration(key: Ed25519KeyPair, fields: RegistrationFields): SignedRegistration {
  const record = checkRegistrationFields({ ...fields, did: didFromEd25519PublicKey(key.publicKey) })
  return { ...record, signature: key.sign(REGISTER_SIGNING_KIND, registrationSigningBytes(record)) }
}

/** Signs the deletion of the key's entry; `seq` must be higher than the entry's. */
export function signDeletion(key: Ed25519KeyPair, seq: number): SignedDeletion {
  const deletion: Deletion = { did: didFromEd25519PublicKey(key.publicKey), seq: checkUint(seq, 'seq') }
  return { ...deletion, signature: key.sign(DELETE_SIGNING_KIND, deletionSigningBytes(deletion)) }
}

function checkExpiry(expires: number, now: number): void {
  if (expires <= now) throw new DirectoryExpiryError('directory record has expired')
  if (expires > now + MAX_EXPIRY_MS)
    throw new DirectoryExpiryError(`directory record expires more than ${MAX_EXPIRY_MS / 86_400_000} days ahead`)
}

/**
 * Strictly checks a registration (fields, sizes, signature by the DID's key, expiry window at
 * `now`) and returns a clean copy; throws a `DirectoryError` subclass.
 */
export function verifyRegistration(raw: unknown, now: number): SignedRegistration {
  const r = asMap(raw)
  checkKeys(r, REGISTRATION_KEYS)
  const record = checkRegistrationFields(r)
  const signature = checkSignature(r.signature)
  const publicKey = ed25519PublicKeyFromDid(record.did)
  if (!verifySignature(publicKey, REGISTER_SIGNING_KIND, registrationSigningBytes(record), signature))
    throw new DirectorySignatureError('the registration signature does not verify for its DID')
  checkExpiry(record.expires, now)
  return { ...record, signature: Uint8Array.from(signature) }
}

/** Strictly checks a deletion and its signature by the DID's key; returns a clean copy. */
export function verifyDeletion(raw: unknown): SignedDeletion {
  const r = asMap(raw)
  checkKeys(r, DELETION_KEYS)
  const deletion: Deletion = { did: checkDid(r.did), seq: checkUint(r.seq, 'seq') }
  const signature = checkSignature(r.signature)
  if (
    !verifySignature(
      ed25519PublicKeyFromDid(deletion.did),
      DELETE_SIGNING_KIND,
      deletionSigningBytes(deletion),
      signature,
    )
  )
    throw new DirectorySignatureError('the deletion signature does not verify for its DID')
  return { ...deletion, signature: Uint8Array.from(signature) }
}

export function encodeRegistration(record: SignedRegistration): Uint8Array {
  return encode({ ...registrationFieldsOf(record), signature: record.signature })
}

function registrationFieldsOf(record: Registration): Registration {
  return {
    did: record.did,
    description: record.description,
    categories: record.categories,
    tags: record.tags,
    bootstrap: record.bootstrap,
    endpoint: record.endpoint,
    seq: record.seq,
    expires: record.expires,
  }
}

export function encodeDeletion(deletion: SignedDeletion): Uint8Array {
  return encode({ did: deletion.did, seq: deletion.seq, signature: deletion.signature })
}

function decodeMap(bytes: Uint8Array, maxBytes: number): unknown {
  if (!(bytes instanceof Uint8Array)) invalid('expected bytes')
  if (bytes.length > maxBytes) tooLarge(`over ${maxBytes} bytes`)
  try {
    return decode(bytes, { maxBytes })
  } catch (err) {
    throw new DirectoryInvalidError(`invalid directory record: ${(err as Error).message}`, { cause: err })
  }
}

/** Decodes and verifies an encoded registration (see `verifyRegistration`). */
export function decodeRegistration(bytes: Uint8Array, now: number): SignedRegistration {
  return verifyRegistration(decodeMap(bytes, MAX_REGISTRATION_BYTES), now)
}

/** Decodes and verifies an encoded deletion. */
export function decodeDeletion(bytes: Uint8Array): SignedDeletion {
  return verifyDeletion(decodeMap(bytes, MAX_DELETION_BYTES))
}

/** A directory message on the wire (gossip): a registration or a deletion, told apart by their fields. */
export type DirectoryMessage =
  { type: 'register'; record: SignedRegistration } | { type: 'delete'; deletion: SignedDeletion }

export function decodeDirectoryMessage(bytes: Uint8Array, now: number): DirectoryMessage {
  const raw = asMap(decodeMap(bytes, MAX_REGISTRATION_BYTES))
  if (Object.keys(raw).length === 3 && 'did' in raw && 'seq' in raw && 'signature' in raw) {
    if (bytes.length > MAX_DELETION_BYTES) tooLarge(`a deletion over ${MAX_DELETION_BYTES} bytes`)
    return { type: 'delete', deletion: verifyDeletion(raw) }
  }
  return { type: 'register', record: verifyRegistration(raw, now) }
}

/** The JSON form an HTTP API exchanges: the same fields, the signature as base64url. */
export interface RegistrationJson extends Registration {
  signature: string
}

export interface DeletionJson extends Deletion {
  signature: string
}

function signatureFromJson(value: unknown): Uint8Array {
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]{86}$/.test(value))
    invalid('signature must be 64 bytes in base64url')
  return new Uint8Array(Buffer.from(value, 'base64url'))
}

export function registrationToJson(record: SignedRegistration): RegistrationJson {
  return { ...registrationFieldsOf(record), signature: Buffer.from(record.signature).toString('base64url') }
}

/** Parses and verifies a JSON registration (as `verifyRegistration`). */
export function registrationFromJson(json: unknown, now: number): SignedRegistration {
  const r = asMap(json)
  checkKeys(r, REGISTRATION_KEYS)
  return verifyRegistration({ ...r, signature: signatureFromJson(r.signature) }, now)
}

export function deletionToJson(deletion: SignedDeletion): DeletionJson {
  return { did: deletion.did, seq: deletion.seq, signature: Buffer.from(deletion.signature).toString('base64url') }
}

/** Parses and verifies a JSON deletion. */
export function deletionFromJson(json: unknown): SignedDeletion {
  const r = asMap(json)
  checkKeys(r, DELETION_KEYS)
  return verifyDeletion({ ...r, signature: signatureFromJson(r.signature) })
}
