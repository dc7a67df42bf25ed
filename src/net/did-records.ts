/**
 * DID records in the DHT: a node publishes its signed DID document (addresses, service
 * endpoints, sequence number, expiry) under `/donghae-did/<did>`. The DHT's validator refuses
 * records whose signature does not verify for the DID named in the key, and its selector keeps
 * the highest sequence number, so a stale or forged record never replaces a newer one.
 */
import { encode, decode } from '../core/codec.ts'
import { utf8, fromUtf8 } from '../core/bytes.ts'
import { DonghaeError } from '../core/errors.ts'
import { asSafeUint } from '../core/uint.ts'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import { verifySignature } from '../identity/keys.ts'
import { didFromEd25519PublicKey, ed25519PublicKeyFromDid } from '../identity/did-key.ts'

export const DID_RECORD_PREFIX = 'donghae-did'
const SIGNING_KIND = 'net.did-record'
/** Largest record accepted. */
export const MAX_DID_RECORD_BYTES = 16 * 1024

export interface ServiceEndpoint {
  id: string
  type: string
  serviceEndpoint: string
}

export interface DidRecord {
  did: string
  /** Multiaddrs the node can be dialled at. */
  addresses: string[]
  services: ServiceEndpoint[]
  /** Higher replaces lower. */
  seq: number
  /** Milliseconds since the epoch after which the record is void. */
  expires: number
}

export interface SignedDidRecord extends DidRecord {
  signature: Uint8Array
}

export class DidRecordError extends DonghaeError {
  static override readonly code: string = 'DID_RECORD_INVALID'
  override name = 'DidRecordError'
  readonly action = 'reject' as const
}

export function didRecordKey(did: string): Uint8Array {
  return utf8(`/${DID_RECORD_PREFIX}/${did}`)
}

function signedPart(record: DidRecord): Uint8Array {
  return encode({
    did: record.did,
    addresses: record.addresses,
    services: record.services,
    seq: record.seq,
    expires: record.expires,
  })
}

export function signDidRecord(key: Ed25519KeyPair, record: Omit<DidRecord, 'did'>): SignedDidRecord {
  const full: DidRecord = { ...record, did: didFromEd25519PublicKey(key.publicKey) }
  return { ...full, signature: key.sign(SIGNING_KIND, signedPart(full)) }
}

export function encodeDidRecord(record: SignedDidRecord): Uint8Array {
  return encode({ ...record })
}

function fail(message: string): never {
  throw new DidRecordError(`invalid DID record: ${message}`)
}

/** Strict decoding plus signature check; `now` enforces expiry. */
export function decodeDidRecord(bytes: Uint8Array, now = Date.now()): SignedDidRecord {
  if (bytes.length > MAX_DID_RECORD_BYTES) fail(`larger than ${MAX_DID_RECORD_BYTES} bytes`)
  let raw: unknown
  try {
    raw = decode(bytes, { maxBytes: MAX_DID_RECORD_BYTES })
  } catch (err) {
    throw new DidRecordError(`invalid DID record: ${(err as Error).message}`, { cause: err })
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail('not a map')
  const r = raw as Record<string, unknown>
  const keys = Object.keys(r).sort().join(',')
  if (keys !== 'addresses,did,expires,seq,services,signature') fail('wrong fields')
  if (typeof r.did !== 'string') fail('did must be a string')
  if (
    !Array.isArray(r.addresses) ||
    r.addresses.length > 32 ||
    !r.addresses.every((a) => typeof a === 'string' && a.length < 256)
  )
    fail('addresses must be up to 32 multiaddr strings')
  if (!Array.isArray(r.services) || r.services.length > 16) fail('services must be a list of up to 16 entries')
  for (const s of r.services as unknown[]) {
    const e = s as Record<string, unknown> | null
    if (
      e === null ||
      typeof e !== 'object' ||
      typeof e.id !== 'string' ||
      typeof e.type !== 'string' ||
      typeof e.serviceEndpoint !== 'string'
    )
      fail('a service needs id, type and serviceEndpoint')
  }
  if (!(r.signature instanceof Uint8Array)) fail('signature must be bytes')
  let seq: number
  let expires: number
  try {
    seq = asSafeUint(r.seq, 'seq')
    expires = asSafeUint(r.expires, 'expires')
  } catch (err) {
    return fail((err as Error).message)
  }
  const record: SignedDidRecord = {
    did: r.did,
    addresses: r.addresses as string[],
    services: r.services as ServiceEndpoint[],
    seq,
    expires,
    signature: r.signature,
  }
  let publicKey: Uint8Array
  try {
    publicKey = ed25519PublicKeyFromDid(record.did)
  } catch (err) {
    return fail(`did: ${(err as Error).message}`)
  }
  if (!verifySignature(publicKey, SIGNING_KIND, signedPart(record), record.signature))
    fail('signature does not verify for the DID')
  if (expires <= now) fail('expired')
  return record
}

/** The kad-dht validator for `/donghae-did/<did>` keys: the record must be valid and about that DID. */
export async function validateDidRecord(key: Uint8Array, value: Uint8Array): Promise<void> {
  const text = fromUtf8(key)
  const prefix = `/${DID_RECORD_PREFIX}/`
  if (!text.startsWith(prefix)) fail('key is not a DID record key')
  const record = decodeDidRecord(value)
  if (record.did !== text.slice(prefix.length)) fail('record is for another DID than its key')
}

/** The kad-dht selector: the valid record with the highest sequence number wins. */
export function selectDidRecord(_key: Uint8Array, records: Uint8Array[]): number {
  let best = 0
  let bestSeq = -1
  records.forEach((bytes, i) => {
    try {
      const { seq } = decodeDidRecord(bytes)
      if (seq > bestSeq) {
        best = i
        bestSeq = seq
      }
    } catch {
      // invalid records never win
    }
  })
  return best
}
