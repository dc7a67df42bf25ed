/**
 * A parameter block's identity and signature (seed 001 §8.2: payload_sig by miner_pub, nonce for
 * proof of work).
 *
 *   blockHash(header)           hex sha256 of the dag-cbor of the header without `payloadSig`
 *                               (the nonce is part of the identity; the signature is not, so a
 *                               block cannot be renamed by re-signing it)
 *   payloadSigningBytes(header) signingDigest('experts.block', dag-cbor of the header without
 *                               `nonce` and `payloadSig`): the 32 bytes the miner signs (Ed25519,
 *                               domain-separated like every signature in Donghae) and the prefix
 *                               the proof of work hashes (pow.ts), so the miner signs once and
 *                               then searches nonces
 *   metaHash(body)              hex sha256 of a MetaBlock body's dag-cbor
 */
import { encode } from '../core/codec.ts'
import { sha256 } from '../core/hash.ts'
import { toHex } from '../core/bytes.ts'
import { signingDigest } from '../core/signing.ts'
import { verifySignatureDigest, type Ed25519KeyPair } from '../identity/keys.ts'
import { didFromEd25519PublicKey, ed25519PublicKeyFromDid } from '../identity/did-key.ts'
import type { MetaBlockBody, ParamBlockHeader } from './types.ts'

/** Signing kind of a parameter block's payload signature. */
export const BLOCK_SIGNING_KIND = 'experts.block'

/** A header as it is signed: every field but the nonce and the signature. */
function signedFields(header: Omit<ParamBlockHeader, 'payloadSig' | 'nonce'>): Record<string, unknown> {
  return {
    index: header.index,
    chainId: header.chainId,
    version: header.version,
    dependsOn: header.dependsOn,
    blockType: header.blockType,
    expertName: header.expertName,
    layerId: header.layerId,
    payloadHash: header.payloadHash,
    payloadBytes: header.payloadBytes,
    shapes: header.shapes,
    miner: header.miner,
  }
}

/** A header as it is hashed: every field but the signature (nonce as bigint). */
function hashedFields(header: Omit<ParamBlockHeader, 'payloadSig'>): Record<string, unknown> {
  return { ...signedFields(header), nonce: BigInt(header.nonce) }
}

/** Hex sha256 of the dag-cbor of the header without `payloadSig`. */
export function blockHash(header: Omit<ParamBlockHeader, 'payloadSig'>): string {
  return toHex(sha256(encode(hashedFields(header))))
}

/** The 32-byte digest the miner signs and the proof of work builds on (header less nonce and signature). */
export function payloadSigningBytes(header: Omit<ParamBlockHeader, 'payloadSig' | 'nonce'>): Uint8Array {
  return signingDigest(BLOCK_SIGNING_KIND, encode(signedFields(header)))
}

/**
 * Signs a header with the miner's key. `header.miner` must be the key's DID (it is filled in when
 * absent). The nonce starts at 0: stamp the proof of work afterwards (`stampPow`).
 */
export function signParamBlock(
  key: Ed25519KeyPair,
  header: Omit<ParamBlockHeader, 'payloadSig' | 'nonce' | 'miner'> & { miner?: string },
): ParamBlockHeader {
  const miner = header.miner ?? didFromEd25519PublicKey(key.publicKey)
  const unsigned = { ...header, miner }
  const payloadSig = key.sign(BLOCK_SIGNING_KIND, encode(signedFields(unsigned)))
  return { ...unsigned, nonce: 0n, payloadSig }
}

/** Whether `payloadSig` is the miner's signature over the header. Never throws. */
export function verifyPayloadSig(header: ParamBlockHeader): boolean {
  let publicKey: Uint8Array
  try {
    publicKey = ed25519PublicKeyFromDid(header.miner)
  } catch {
    return false
  }
  if (!(header.payloadSig instanceof Uint8Array)) return false
  try {
    return verifySignatureDigest(publicKey, payloadSigningBytes(header), header.payloadSig)
  } catch {
    return false
  }
}

/** Hex sha256 of a MetaBlock body's dag-cbor (the hash parameter blocks depend on). */
export function metaHash(body: MetaBlockBody): string {
  return toHex(sha256(encode(body)))
}

/** The header without its nonce and signature (to re-sign after an edit). */
export function unsignedOf(header: ParamBlockHeader): Omit<ParamBlockHeader, 'payloadSig' | 'nonce'> {
  const copy: Partial<ParamBlockHeader> = { ...header }
  delete copy.payloadSig
  delete copy.nonce
  return copy as Omit<ParamBlockHeader, 'payloadSig' | 'nonce'>
}
