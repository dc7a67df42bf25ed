/**
 * did:key (W3C CCG did:key method, https://w3c-ccg.github.io/did-method-key/).
 * `did:key:` + multibase base58btc (`z`) of (multicodec varint || raw public key).
 * Ed25519 (0xed -> `z6Mk...`) is Donghae's identity key; X25519 (0xec -> `z6LS...`) DIDs resolve
 * too. Resolution follows the spec's document creation algorithm with encryption key
 * derivation on: an Ed25519 DID's document carries the X25519 keyAgreement key derived from it.
 */
import { base58btc } from 'multiformats/bases/base58'
import { concat, equals } from '../core/bytes.ts'
import { DidKeyError } from './errors.ts'
import { ed25519PublicKeyToX25519, isValidEd25519PublicKey } from './curve25519.ts'

export const ED25519_PUB_CODEC = 0xed
export const X25519_PUB_CODEC = 0xec
const ED25519_PREFIX = Uint8Array.of(0xed, 0x01)
const X25519_PREFIX = Uint8Array.of(0xec, 0x01)
const MAX_DID_LENGTH = 256

export type DidKeyType = 'Ed25519' | 'X25519'

export interface ParsedDidKey {
  did: string
  type: DidKeyType
  /** The multibase value (`z...`), also the fragment of the key's verification method id. */
  multibase: string
  publicKey: Uint8Array
}

/** Verification method formats the resolver can emit. */
export const DID_DOCUMENT_FORMATS = [
  'Ed25519VerificationKey2018',
  'Ed25519VerificationKey2020',
  'JsonWebKey2020',
  'Multikey',
] as const
export type DidDocumentFormat = (typeof DID_DOCUMENT_FORMATS)[number]

/** The spec's published test vectors use the 2018/2019 suites; so does Donghae by default. */
export const DEFAULT_DID_DOCUMENT_FORMAT: DidDocumentFormat = 'Ed25519VerificationKey2018'

export interface VerificationMethod {
  id: string
  type: string
  controller: string
  publicKeyBase58?: string
  publicKeyMultibase?: string
  publicKeyJwk?: { kty: 'OKP'; crv: 'Ed25519' | 'X25519'; x: string }
}

export interface DidDocument {
  '@context': string[]
  id: string
  verificationMethod: VerificationMethod[]
  assertionMethod?: string[]
  authentication?: string[]
  capabilityInvocation?: string[]
  capabilityDelegation?: string[]
  keyAgreement: string[]
}

function multibaseOf(prefix: Uint8Array, publicKey: Uint8Array): string {
  return base58btc.encode(concat(prefix, publicKey))
}

const didCache = new Map<string, string>()

/** The did:key of a raw 32-byte Ed25519 public key. */
export function didFromEd25519PublicKey(publicKey: Uint8Array): string {
  const id = publicKey instanceof Uint8Array && publicKey.length === 32 ? Buffer.from(publicKey).toString('base64') : ''
  const cached = didCache.get(id)
  if (cached !== undefined) return cached
  if (!isValidEd25519PublicKey(publicKey)) throw new DidKeyError('invalidPublicKey', 'not an Ed25519 public key')
  const did = `did:key:${multibaseOf(ED25519_PREFIX, publicKey)}`
  if (didCache.size >= PARSED_CACHE_SIZE) didCache.delete(didCache.keys().next().value ?? '')
  didCache.set(id, did)
  return did
}

/** The did:key of a raw 32-byte X25519 public key. */
export function didFromX25519PublicKey(publicKey: Uint8Array): string {
  if (publicKey.length !== 32) throw new DidKeyError('invalidPublicKeyLength', 'an X25519 key is 32 bytes')
  return `did:key:${multibaseOf(X25519_PREFIX, publicKey)}`
}

/** Valid DIDs already parsed: the curve check costs ~1 ms and chain code sees the same DIDs constantly. */
const parsedCache = new Map<string, ParsedDidKey>()
const PARSED_CACHE_SIZE = 10_000

/** Decodes and validates a did:key; throws `DidKeyError` with the spec's error name. */
export function parseDidKey(did: string): ParsedDidKey {
  const cached = typeof did === 'string' ? parsedCache.get(did) : undefined
  if (cached !== undefined) return { ...cached, publicKey: Uint8Array.from(cached.publicKey) }
  const parsed = parseUncached(did)
  if (parsedCache.size >= PARSED_CACHE_SIZE) parsedCache.delete(parsedCache.keys().next().value ?? '')
  parsedCache.set(did, { ...parsed, publicKey: Uint8Array.from(parsed.publicKey) })
  return parsed
}

function parseUncached(did: string): ParsedDidKey {
  if (typeof did !== 'string' || did.length > MAX_DID_LENGTH) {
    throw new DidKeyError('invalidDid', `a did:key is a string of at most ${MAX_DID_LENGTH} characters`)
  }
  const parts = did.split(':')
  if (parts.length !== 3 && parts.length !== 4) {
    throw new DidKeyError('invalidDid', 'expected did:key:<multibase> or did:key:<version>:<multibase>')
  }
  const [scheme, method] = parts
  const version = parts.length === 4 ? parts[2] : '1'
  const multibase = parts[parts.length - 1] ?? ''
  if (scheme !== 'did') throw new DidKeyError('invalidDid', 'the scheme must be "did"')
  if (method !== 'key') throw new DidKeyError('invalidDid', 'the method must be "key"')
  if (version === undefined || !/^[1-9][0-9]{0,8}$/.test(version)) {
    throw new DidKeyError('invalidDid', 'the version must be a positive integer')
  }
  if (!multibase.startsWith('z'))
    throw new DidKeyError('invalidDid', 'the multibase value must start with "z" (base58btc)')
  let bytes: Uint8Array
  try {
    bytes = base58btc.decode(multibase)
  } catch {
    throw new DidKeyError('invalidDid', 'the multibase value is not valid base58btc')
  }
  const { codec, length } = readVarint(bytes)
  const publicKey = bytes.subarray(length)
  if (codec === ED25519_PUB_CODEC || codec === X25519_PUB_CODEC) {
    if (publicKey.length !== 32) {
      throw new DidKeyError('invalidPublicKeyLength', `expected a 32-byte key, found ${publicKey.length} bytes`)
    }
    if (codec === ED25519_PUB_CODEC && !isValidEd25519PublicKey(publicKey)) {
      throw new DidKeyError('invalidPublicKey', 'the bytes are not a point on the Ed25519 curve')
    }
    // The canonical varint and base58 must round-trip: one key, one DID.
    const prefix = codec === ED25519_PUB_CODEC ? ED25519_PREFIX : X25519_PREFIX
    if (!equals(bytes.subarray(0, length), prefix))
      throw new DidKeyError('invalidDid', 'non-canonical multicodec prefix')
    return {
      did,
      type: codec === ED25519_PUB_CODEC ? 'Ed25519' : 'X25519',
      multibase,
      publicKey: Uint8Array.from(publicKey),
    }
  }
  throw new DidKeyError(
    'unsupportedPublicKeyType',
    `multicodec 0x${codec.toString(16)} is not supported (Ed25519 or X25519 only)`,
  )
}

function readVarint(bytes: Uint8Array): { codec: number; length: number } {
  let codec = 0
  for (let i = 0; i < 4 && i < bytes.length; i++) {
    const byte = bytes[i] ?? 0
    codec |= (byte & 0x7f) << (7 * i)
    if ((byte & 0x80) === 0) return { codec, length: i + 1 }
  }
  throw new DidKeyError('invalidDid', 'the multicodec prefix is not a valid varint')
}

/** The Ed25519 public key of an Ed25519 did:key (an X25519 DID cannot sign, so it is refused). */
export function ed25519PublicKeyFromDid(did: string): Uint8Array {
  const parsed = parseDidKey(did)
  if (parsed.type !== 'Ed25519')
    throw new DidKeyError('invalidPublicKeyType', 'this DID holds an X25519 key, not a signing key')
  return parsed.publicKey
}

/** The X25519 key to encrypt to for a DID: derived for Ed25519 DIDs, direct for X25519 ones. */
export function keyAgreementPublicKeyFromDid(did: string): Uint8Array {
  const parsed = parseDidKey(did)
  return parsed.type === 'Ed25519' ? ed25519PublicKeyToX25519(parsed.publicKey) : parsed.publicKey
}

const CONTEXTS: Record<DidDocumentFormat, { ed25519: string[]; x25519: string[] }> = {
  Ed25519VerificationKey2018: {
    ed25519: ['https://w3id.org/security/suites/ed25519-2018/v1', 'https://w3id.org/security/suites/x25519-2019/v1'],
    x25519: ['https://w3id.org/security/suites/x25519-2019/v1'],
  },
  Ed25519VerificationKey2020: {
    ed25519: ['https://w3id.org/security/suites/ed25519-2020/v1', 'https://w3id.org/security/suites/x25519-2020/v1'],
    x25519: ['https://w3id.org/security/suites/x25519-2020/v1'],
  },
  JsonWebKey2020: {
    ed25519: ['https://w3id.org/security/suites/jws-2020/v1'],
    x25519: ['https://w3id.org/security/suites/jws-2020/v1'],
  },
  Multikey: {
    ed25519: ['https://w3id.org/security/multikey/v1'],
    x25519: ['https://w3id.org/security/multikey/v1'],
  },
}

function verificationMethod(
  did: string,
  type: DidKeyType,
  publicKey: Uint8Array,
  format: DidDocumentFormat,
): VerificationMethod {
  const multibase = multibaseOf(type === 'Ed25519' ? ED25519_PREFIX : X25519_PREFIX, publicKey)
  const base = { id: `${did}#${multibase}`, controller: did }
  switch (format) {
    case 'Ed25519VerificationKey2018':
      return {
        id: base.id,
        type: type === 'Ed25519' ? 'Ed25519VerificationKey2018' : 'X25519KeyAgreementKey2019',
        controller: did,
        publicKeyBase58: base58btc.baseEncode(publicKey),
      }
    case 'Ed25519VerificationKey2020':
      return {
        id: base.id,
        type: type === 'Ed25519' ? 'Ed25519VerificationKey2020' : 'X25519KeyAgreementKey2020',
        controller: did,
        publicKeyMultibase: multibase,
      }
    case 'JsonWebKey2020':
      return {
        id: base.id,
        type: 'JsonWebKey2020',
        controller: did,
        publicKeyJwk: { kty: 'OKP', crv: type, x: Buffer.from(publicKey).toString('base64url') },
      }
    case 'Multikey':
      return { id: base.id, type: 'Multikey', controller: did, publicKeyMultibase: multibase }
  }
}

/** Resolves a did:key to its DID document (no network: the document is derived from the key). */
export function resolveDidKey(did: string, options: { format?: DidDocumentFormat } = {}): DidDocument {
  const format = options.format ?? DEFAULT_DID_DOCUMENT_FORMAT
  if (!DID_DOCUMENT_FORMATS.includes(format)) {
    throw new DidKeyError('unsupportedPublicKeyType', `unknown public key format ${JSON.stringify(format)}`)
  }
  const parsed = parseDidKey(did)
  const contexts = CONTEXTS[format]
  if (parsed.type === 'X25519') {
    const method = verificationMethod(did, 'X25519', parsed.publicKey, format)
    return {
      '@context': ['https://www.w3.org/ns/did/v1', ...contexts.x25519],
      id: did,
      verificationMethod: [method],
      keyAgreement: [method.id],
    }
  }
  const signing = verificationMethod(did, 'Ed25519', parsed.publicKey, format)
  const encryption = verificationMethod(did, 'X25519', ed25519PublicKeyToX25519(parsed.publicKey), format)
  return {
    '@context': ['https://www.w3.org/ns/did/v1', ...contexts.ed25519],
    id: did,
    verificationMethod: [signing, encryption],
    assertionMethod: [signing.id],
    authentication: [signing.id],
    capabilityInvocation: [signing.id],
    capabilityDelegation: [signing.id],
    keyAgreement: [encryption.id],
  }
}
