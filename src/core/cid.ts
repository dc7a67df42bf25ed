/** Content identifiers: CIDv1, dag-cbor (0x71) or raw (0x55), sha2-256. */
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { DAG_CBOR_CODE, encode } from './codec.ts'
import { sha256 } from './hash.ts'
import { InvalidInputError } from './errors.ts'

export { CID }

const SHA2_256_CODE = 0x12
export const RAW_CODE = 0x55

/** The CID of a value's canonical dag-cbor bytes. */
export function cidOf(value: unknown): CID {
  return cidOfBytes(encode(value), DAG_CBOR_CODE)
}

/** The CID of bytes already encoded with `codec` (dag-cbor by default; `RAW_CODE` for blobs). */
export function cidOfBytes(bytes: Uint8Array, codec: number = DAG_CBOR_CODE): CID {
  return CID.createV1(codec, Digest.create(SHA2_256_CODE, sha256(bytes)))
}

/** Parses a CID string, accepting only CIDv1 with sha2-256. */
export function parseCid(text: string): CID {
  let cid: CID
  try {
    cid = CID.parse(text)
  } catch (err) {
    throw new InvalidInputError(`not a CID: ${JSON.stringify(text.slice(0, 80))}`, { cause: err })
  }
  if (cid.version !== 1 || cid.multihash.code !== SHA2_256_CODE) {
    throw new InvalidInputError('only CIDv1 with sha2-256 is accepted', { details: { cid: text } })
  }
  return cid
}

/** True when `bytes` hash to `cid` (same codec, same digest). */
export function verifyCid(cid: CID, bytes: Uint8Array): boolean {
  return cidOfBytes(bytes, cid.code).equals(cid)
}
