/**
 * Sealed boxes: encrypt bytes to a DID so that only the holder of its key can read them.
 *
 *   box = 0x01 || ephemeralPublic (32) || nonce (12) || ChaCha20-Poly1305(key, nonce, aad = 0x01 || ephemeralPublic)
 *   key = HKDF-SHA256(ikm = X25519(ephemeral, recipient), salt = ephemeralPublic || recipientPublic,
 *                     info = "donghae/sealed-box/v1")
 *   plaintext = dag-cbor({ m: message, s?: { did, sig } })
 *
 * One fresh ephemeral key per message. With a sender, `sig` is the sender's Ed25519 signature
 * (kind `sealed-box`) over dag-cbor({ e: ephemeralPublic, m: message, r: recipientPublic }),
 * so an authenticated message cannot be re-sealed to someone else and still name its sender.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'
import { concat, utf8 } from '../core/bytes.ts'
import { encode, decode } from '../core/codec.ts'
import { DonghaeError } from '../core/errors.ts'
import { Ed25519KeyPair, X25519KeyPair, verifySignature } from './keys.ts'
import { didFromEd25519PublicKey, ed25519PublicKeyFromDid, keyAgreementPublicKeyFromDid } from './did-key.ts'
import { SealedBoxError } from './errors.ts'

const VERSION = 0x01
const HEADER_LENGTH = 1 + 32
const NONCE_LENGTH = 12
const TAG_LENGTH = 16
const INFO = utf8('donghae/sealed-box/v1')
const SIGNING_KIND = 'sealed-box'
/** Largest box `openSealedBox` accepts unless told otherwise. */
export const DEFAULT_MAX_SEALED_BOX_BYTES = 1024 * 1024

export interface SealOptions {
  /** Sign inside the box so the recipient learns (and can prove to itself) who sent it. */
  sender?: Ed25519KeyPair
}

export interface OpenedBox {
  message: Uint8Array
  /** The sender's DID when the box was signed; its signature has been verified. */
  sender?: string
}

function deriveKey(shared: Uint8Array, ephemeralPublic: Uint8Array, recipientPublic: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, concat(ephemeralPublic, recipientPublic), INFO, 32))
}

function signedContent(ephemeralPublic: Uint8Array, message: Uint8Array, recipientPublic: Uint8Array): Uint8Array {
  return encode({ e: ephemeralPublic, m: message, r: recipientPublic })
}

/** Seals `message` to a recipient given as a DID (Ed25519 or X25519 did:key) or a raw X25519 public key. */
export function seal(recipient: string | Uint8Array, message: Uint8Array, options: SealOptions = {}): Uint8Array {
  const recipientPublic = typeof recipient === 'string' ? keyAgreementPublicKeyFromDid(recipient) : recipient
  const ephemeral = X25519KeyPair.generate()
  const key = deriveKey(ephemeral.agree(recipientPublic), ephemeral.publicKey, recipientPublic)
  const header = concat(Uint8Array.of(VERSION), ephemeral.publicKey)
  const inner: { m: Uint8Array; s?: { did: string; sig: Uint8Array } } = { m: message }
  if (options.sender !== undefined) {
    const sig = options.sender.sign(SIGNING_KIND, signedContent(ephemeral.publicKey, message, recipientPublic))
    inner.s = { did: didFromEd25519PublicKey(options.sender.publicKey), sig }
  }
  const nonce = randomBytes(NONCE_LENGTH)
  const plaintext = encode(inner)
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_LENGTH })
  cipher.setAAD(header, { plaintextLength: plaintext.length })
  const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])
  return concat(header, nonce, body)
}

/** Opens a sealed box with the recipient's key. Any alteration, or the wrong key, -> `SealedBoxError`. */
export function openSealedBox(
  box: Uint8Array,
  recipient: Ed25519KeyPair | X25519KeyPair,
  options: { maxBytes?: number } = {},
): OpenedBox {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_SEALED_BOX_BYTES
  if (!(box instanceof Uint8Array)) throw new SealedBoxError('a sealed box is bytes')
  if (box.length > maxBytes) throw new SealedBoxError(`sealed box of ${box.length} bytes exceeds ${maxBytes}`)
  if (box.length < HEADER_LENGTH + NONCE_LENGTH + TAG_LENGTH + 1) throw new SealedBoxError('sealed box is too short')
  if (box[0] !== VERSION) throw new SealedBoxError(`unknown sealed box version ${String(box[0])}`)
  const keyPair = recipient instanceof Ed25519KeyPair ? recipient.toX25519() : recipient
  const header = box.subarray(0, HEADER_LENGTH)
  const ephemeralPublic = box.subarray(1, HEADER_LENGTH)
  const nonce = box.subarray(HEADER_LENGTH, HEADER_LENGTH + NONCE_LENGTH)
  const ciphertext = box.subarray(HEADER_LENGTH + NONCE_LENGTH, box.length - TAG_LENGTH)
  const tag = box.subarray(box.length - TAG_LENGTH)
  let plaintext: Buffer
  try {
    const key = deriveKey(keyPair.agree(ephemeralPublic), ephemeralPublic, keyPair.publicKey)
    const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_LENGTH })
    decipher.setAAD(header, { plaintextLength: ciphertext.length })
    decipher.setAuthTag(tag)
    plaintext = Buffer.concat([decipher.update(ciphertext), decipher.final()])
  } catch (err) {
    throw new SealedBoxError('cannot open sealed box: it was altered or is addressed to another key', { cause: err })
  }
  return readInner(plaintext, ephemeralPublic, keyPair.publicKey)
}

function readInner(plaintext: Uint8Array, ephemeralPublic: Uint8Array, recipientPublic: Uint8Array): OpenedBox {
  let inner: { m?: unknown; s?: unknown }
  try {
    inner = decode(plaintext)
  } catch (err) {
    throw new SealedBoxError('sealed box content is malformed', { cause: err })
  }
  if (!(inner.m instanceof Uint8Array)) throw new SealedBoxError('sealed box holds no message')
  const message = inner.m
  if (inner.s === undefined) return { message }
  const s = inner.s as { did?: unknown; sig?: unknown }
  if (typeof s.did !== 'string' || !(s.sig instanceof Uint8Array))
    throw new SealedBoxError('sealed box sender is malformed')
  let senderKey: Uint8Array
  try {
    senderKey = ed25519PublicKeyFromDid(s.did)
  } catch (err) {
    throw new SealedBoxError('sealed box sender DID is invalid', {
      cause: err instanceof DonghaeError ? err : undefined,
    })
  }
  if (!verifySignature(senderKey, SIGNING_KIND, signedContent(ephemeralPublic, message, recipientPublic), s.sig)) {
    throw new SealedBoxError(`sealed box signature does not verify for sender ${s.did}`)
  }
  return { message, sender: s.did }
}
