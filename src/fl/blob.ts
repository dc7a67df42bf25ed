/**
 * The blobs of an FL Alliance task (issue 15, part 3), as they sit in the content store by CID.
 * Both are canonical dag-cbor maps of at most MAX_FL_BLOB_BYTES (one UnixFS chunk, so the CID is
 * the raw CID of the bytes wherever they are stored). Vectors are `encodeVector` bytes
 * (src/fl/weights.ts); a digest is `weightsDigest` of the values.
 *
 *   model   { v: 1, kind: 'model', task, round, weights }
 *           A global model: the initial one (task 0, round 0: made before the task has an id)
 *           or a round's aggregate. Plain (it becomes
 *           public), and deterministic: voters that aggregate the same updates produce the same
 *           bytes, so the same CID. On chain: the CID and the digest of `weights`.
 *
 *   update  { v: 1, kind: 'update', task, round, proposer, nonce, keys: [{ did, box }], data }
 *           A proposer's update, sealed to the round's voters: a fresh 32-byte content key
 *           encrypts the vector with AES-256-GCM (`data` = ciphertext || 16-byte tag, 12-byte
 *           `nonce`, the header { v, kind, task, round, proposer } as additional data, so a
 *           blob cannot be passed off as another proposer's or another round's); `box` is
 *           libsodium's crypto_box_seal of that key to the voter DID's X25519 key (the same seal
 *           as payment envelopes, src/wallet/envelope.ts). On chain (`fl.update`): the CID, the
 *           size and the digest of the plain vector, which each voter checks after opening.
 *
 *   onnx    The ONNX export of a round's aggregate (`encodeOnnx`): the MLP as the inference market
 *           serves it (src/inference/onnx-export.ts via the trainer seam's `exportOnnx`), with the
 *           task, round and weights digest in its metadata. Deterministic like the model blob, so
 *           honest voters name the same CID; each vote names it (`onnx: { cid, bytes }`) beside its
 *           aggregate, and a finished task with a price registers the majority's (chain/market.ts).
 *           Not dag-cbor: it has no header, the node checks it by exporting the aggregate again.
 *
 * Errors are `FlBlobError`s: `FlBlobFormatError` (not a blob this code reads, or one unlike what
 * the chain says it is), `FlBlobNotForUsError` (sealed to other keys, or damaged).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { decode, encode } from '../core/codec.ts'
import { cidOfBytes, RAW_CODE } from '../core/cid.ts'
import { DonghaeError } from '../core/errors.ts'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import { keyAgreementPublicKeyFromDid } from '../identity/did-key.ts'
import { MAX_FL_BLOB_BYTES } from './chain/decode.ts'
import { decodeVector, encodeVector, unflattenMlp, weightsDigest } from './weights.ts'
import { mlpTrainer } from '../inference/trainer.ts'
import { mlpTemplate } from './round.ts'
import { SEAL_BYTES, openBox, sealBox } from '../core/sodium-box.ts'

export { MAX_FL_BLOB_BYTES }

export const FL_BLOB_VERSION = 1
const KEY_BYTES = 32
const NONCE_BYTES = 12
const TAG_BYTES = 16

export class FlBlobError extends DonghaeError {
  static override readonly code: string = 'FL_BLOB'
  override name = 'FlBlobError'
}

/** Not a blob this code reads, or unlike what the chain says it is (task, round, proposer, digest, size). */
export class FlBlobFormatError extends FlBlobError {
  static override readonly code: string = 'FL_BLOB_FORMAT'
  override name = 'FlBlobFormatError'
}

/** The update is not sealed to this key (this voter is not among its recipients), or was damaged. */
export class FlBlobNotForUsError extends FlBlobError {
  static override readonly code: string = 'FL_BLOB_NOT_FOR_US'
  override name = 'FlBlobNotForUsError'
}

export interface BlobHeader {
  kind: 'model' | 'update'
  task: number
  round: number
  /** The proposer of an update. */
  proposer?: string
}

/** The CID of a blob's bytes (raw codec, sha2-256: the content store's CID of a one-chunk file). */
export function flBlobCid(bytes: Uint8Array): string {
  return cidOfBytes(bytes, RAW_CODE).toString()
}

function checkSize(bytes: Uint8Array): void {
  if (bytes.length > MAX_FL_BLOB_BYTES)
    throw new FlBlobFormatError(`an FL blob is at most ${MAX_FL_BLOB_BYTES} bytes, this one ${bytes.length}`)
}

function decodeMap(bytes: Uint8Array): Record<string, unknown> {
  checkSize(bytes)
  let value: unknown
  try {
    value = decode(bytes, { maxBytes: MAX_FL_BLOB_BYTES })
  } catch (err) {
    throw new FlBlobFormatError(`not an FL blob: ${(err as Error).message}`, { cause: err })
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array)
    throw new FlBlobFormatError('not an FL blob: not a map')
  const map = value as Record<string, unknown>
  if (map.v !== FL_BLOB_VERSION) throw new FlBlobFormatError(`FL blob version ${String(map.v)} is not supported`)
  return map
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0

/** The kind, task, round (and proposer) of a blob, without opening it (the node's route checks these). */
export function readBlobHeader(bytes: Uint8Array): BlobHeader {
  const map = decodeMap(bytes)
  if ((map.kind !== 'model' && map.kind !== 'update') || !isCount(map.task) || !isCount(map.round))
    throw new FlBlobFormatError('not an FL blob: kind, task or round missing')
  if (map.kind === 'update') {
    if (typeof map.proposer !== 'string') throw new FlBlobFormatError('an update blob names its proposer')
    return { kind: 'update', task: map.task, round: map.round, proposer: map.proposer }
  }
  return { kind: 'model', task: map.task, round: map.round }
}

// ---- models ------------------------------------------------------------------------------------

/** A global model's blob: deterministic bytes for the same task, round and weights. */
export function encodeModel(model: { task: number; round: number; weights: Float32Array }): Uint8Array {
  const bytes = encode({
    v: FL_BLOB_VERSION,
    kind: 'model',
    task: model.task,
    round: model.round,
    weights: encodeVector(model.weights),
  })
  checkSize(bytes)
  return bytes
}

/**
 * A model blob's weights, checked against what the chain says: their length and digest (the
 * digest binds the weights; `task` is informative: an initial model is made before its task has
 * an id, and says 0).
 */
export function decodeModel(bytes: Uint8Array, expect: { length: number; digest: string }): Float32Array {
  const map = decodeMap(bytes)
  if (map.kind !== 'model' || !(map.weights instanceof Uint8Array)) throw new FlBlobFormatError('not a model blob')
  let weights: Float32Array
  try {
    weights = decodeVector(map.weights, expect.length)
  } catch (err) {
    throw new FlBlobFormatError(`the model's weights do not decode: ${(err as Error).message}`, { cause: err })
  }
  if (weightsDigest(weights) !== expect.digest)
    throw new FlBlobFormatError(`the model's weights do not hash to ${expect.digest}`)
  return weights
}

// ---- the ONNX export -----------------------------------------------------------------------------

/** The producer the exports name (a change changes every CID: honest voters must agree on it). */
export const FL_ONNX_PRODUCER = 'donghae-fl'
export const FL_ONNX_PRODUCER_VERSION = '1'

/**
 * The ONNX export of a global model: deterministic bytes for the same task, round, shape and
 * weights (no timestamps, no host names). FlBlobFormatError when it would pass MAX_FL_BLOB_BYTES.
 */
export function encodeOnnx(model: {
  task: number
  round: number
  widths: readonly number[]
  inputDivisor: number
  weights: Float32Array
}): Uint8Array {
  let bytes: Uint8Array
  try {
    bytes = mlpTrainer.exportOnnx(unflattenMlp(model.weights, mlpTemplate(model.widths, model.inputDivisor)), {
      producerName: FL_ONNX_PRODUCER,
      producerVersion: FL_ONNX_PRODUCER_VERSION,
      graphName: 'fl',
      metadata: {
        'donghae.fl.task': String(model.task),
        'donghae.fl.round': String(model.round),
        'donghae.fl.digest': weightsDigest(model.weights),
      },
    })
  } catch (err) {
    throw new FlBlobFormatError(`the model does not export: ${(err as Error).message}`, { cause: err })
  }
  checkSize(bytes)
  // protobufjs hands a Buffer on Node: the same bytes as a plain Uint8Array
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

// ---- updates -----------------------------------------------------------------------------------

function aad(header: Required<BlobHeader>): Uint8Array {
  return encode({ v: FL_BLOB_VERSION, ...header })
}

/** libsodium's crypto_box_seal of `message` to an X25519 public key. */
function boxSeal(message: Uint8Array, publicKey: Uint8Array): Uint8Array {
  try {
    return sealBox(message, publicKey)
  } catch (err) {
    throw new FlBlobFormatError('cannot seal to this key (it is a low-order point)', { cause: err })
  }
}

function boxOpen(box: Uint8Array, publicKey: Uint8Array, secretKey: Uint8Array): Uint8Array | undefined {
  return box.length === KEY_BYTES + SEAL_BYTES ? openBox(box, publicKey, secretKey) : undefined
}

export interface SealedUpdate {
  bytes: Uint8Array
  cid: string
  /** `weightsDigest` of the plain update. */
  digest: string
}

/** Seals `update` to `voters` (their did:keys); see the file comment. */
export function sealUpdate(input: {
  task: number
  round: number
  proposer: string
  voters: readonly string[]
  update: Float32Array
}): SealedUpdate {
  const header = { kind: 'update' as const, task: input.task, round: input.round, proposer: input.proposer }
  const key = randomBytes(KEY_BYTES)
  const nonce = randomBytes(NONCE_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, nonce)
  cipher.setAAD(aad(header))
  const data = Buffer.concat([cipher.update(encodeVector(input.update)), cipher.final(), cipher.getAuthTag()])
  const keys = input.voters.map((did) => {
    let publicKey: Uint8Array
    try {
      publicKey = keyAgreementPublicKeyFromDid(did)
    } catch (err) {
      throw new FlBlobFormatError(`cannot seal to ${did}: ${(err as Error).message}`, { cause: err })
    }
    return { did, box: boxSeal(key, publicKey) }
  })
  key.fill(0)
  const bytes = encode({
    v: FL_BLOB_VERSION,
    ...header,
    nonce: new Uint8Array(nonce),
    keys,
    data: new Uint8Array(data),
  })
  checkSize(bytes)
  return { bytes, cid: flBlobCid(bytes), digest: weightsDigest(input.update) }
}

/** What a voter derives once from its key to open updates. */
export interface OpeningKey {
  did: string
  publicKey: Uint8Array
  secretKey: Uint8Array
}

export function openingKey(key: Ed25519KeyPair, did: string): OpeningKey {
  const x = key.toX25519()
  return { did, publicKey: x.publicKey, secretKey: x.exportPrivateKey() }
}

/**
 * Opens a sealed update with a voter's key and checks it against the chain's record: the task,
 * round and proposer in its header, the vector's length and its digest.
 */
export function openUpdate(
  bytes: Uint8Array,
  key: OpeningKey,
  expect: { task: number; round: number; proposer: string; length: number; digest: string },
): Float32Array {
  const map = decodeMap(bytes)
  const header = readBlobHeader(bytes)
  if (header.kind !== 'update' || header.task !== expect.task || header.round !== expect.round)
    throw new FlBlobFormatError(`not an update of FL task ${expect.task} round ${expect.round}`)
  if (header.proposer !== expect.proposer)
    throw new FlBlobFormatError(`the update names ${String(header.proposer)} as its proposer, not ${expect.proposer}`)
  if (!(map.nonce instanceof Uint8Array) || map.nonce.length !== NONCE_BYTES || !(map.data instanceof Uint8Array))
    throw new FlBlobFormatError('the update has no nonce or data')
  if (map.data.length < TAG_BYTES) throw new FlBlobFormatError('the update data is shorter than its tag')
  const entry = Array.isArray(map.keys)
    ? (map.keys as Array<Record<string, unknown>>).find((k) => k !== null && typeof k === 'object' && k.did === key.did)
    : undefined
  if (entry === undefined || !(entry.box instanceof Uint8Array))
    throw new FlBlobNotForUsError(`the update of ${expect.proposer} is not sealed to ${key.did}`)
  const contentKey = boxOpen(entry.box, key.publicKey, key.secretKey)
  if (contentKey === undefined)
    throw new FlBlobNotForUsError(`the update of ${expect.proposer} does not open with this key`)
  let plain: Buffer
  try {
    const decipher = createDecipheriv('aes-256-gcm', contentKey, map.nonce)
    decipher.setAAD(aad({ kind: 'update', task: header.task, round: header.round, proposer: expect.proposer }))
    decipher.setAuthTag(map.data.subarray(map.data.length - TAG_BYTES))
    plain = Buffer.concat([decipher.update(map.data.subarray(0, map.data.length - TAG_BYTES)), decipher.final()])
  } catch (err) {
    throw new FlBlobNotForUsError(`the update of ${expect.proposer} was damaged (authentication failed)`, {
      cause: err,
    })
  } finally {
    contentKey.fill(0)
  }
  let update: Float32Array
  try {
    update = decodeVector(new Uint8Array(plain.buffer, plain.byteOffset, plain.length), expect.length)
  } catch (err) {
    throw new FlBlobFormatError(`the update of ${expect.proposer} does not decode: ${(err as Error).message}`, {
      cause: err,
    })
  }
  if (weightsDigest(update) !== expect.digest)
    throw new FlBlobFormatError(`the update of ${expect.proposer} does not hash to the digest on chain`)
  return update
}
