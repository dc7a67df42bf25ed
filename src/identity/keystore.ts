/**
 * The encrypted keystore: one Ed25519 seed at rest, protected by a password.
 *
 * File format `donghae-keystore` version 1 (JSON, mode 0600):
 *   kdf:      scrypt(password, salt 32 B, N = 2^logN, r, p) -> 64 bytes = encKey || checkKey
 *             default logN = 17, r = 8, p = 1 (128 MiB, ~0.3 s on a laptop core)
 *   verifier: HMAC-SHA256(checkKey, "donghae/keystore-verifier/v1") - tells a wrong password
 *             apart from a tampered file
 *   cipher:   AES-256-GCM(encKey, nonce 12 B, aad = dag-cbor(header)) over dag-cbor({ seed })
 * The header (format, version, did, kdf, cipher) is authenticated, and the decrypted seed must
 * produce the header's DID. Writes are atomic (temp file, fsync, link/rename).
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, scrypt as scryptCallback } from 'node:crypto'
import { promises as fs, constants as fsConstants } from 'node:fs'
import { dirname, basename, join } from 'node:path'
import { utf8, constantTimeEquals } from '../core/bytes.ts'
import { encode, decode } from '../core/codec.ts'
import { InvalidInputError } from '../core/errors.ts'
import { Ed25519KeyPair, SEED_LENGTH } from './keys.ts'
import { didFromEd25519PublicKey } from './did-key.ts'
import { KeystoreExistsError, KeystoreFormatError, KeystoreTamperedError, WrongPasswordError } from './errors.ts'

export const KEYSTORE_FORMAT = 'donghae-keystore'
export const KEYSTORE_VERSION = 1
export const KEYSTORE_FILE_MODE = 0o600
const MAX_KEYSTORE_BYTES = 64 * 1024
const VERIFIER_LABEL = utf8('donghae/keystore-verifier/v1')

export interface ScryptParams {
  /** log2 of the CPU/memory cost N. */
  logN: number
  r: number
  p: number
}

/** 2^17 × 8 × 128 B = 128 MiB per derivation. */
export const DEFAULT_SCRYPT: ScryptParams = { logN: 17, r: 8, p: 1 }
/** Bounds accepted when reading a file, so a hostile file cannot make us allocate gigabytes. */
const SCRYPT_LIMITS = { logN: [10, 20], r: [1, 32], p: [1, 16] } as const

export interface KeystoreFile {
  format: typeof KEYSTORE_FORMAT
  version: typeof KEYSTORE_VERSION
  did: string
  kdf: { name: 'scrypt'; logN: number; r: number; p: number; salt: string }
  cipher: { name: 'aes-256-gcm'; nonce: string }
  verifier: string
  ciphertext: string
  tag: string
}

function checkScrypt(params: ScryptParams): void {
  for (const key of ['logN', 'r', 'p'] as const) {
    const [min, max] = SCRYPT_LIMITS[key]
    const value = params[key]
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new KeystoreFormatError(`keystore scrypt ${key} = ${String(value)} is outside ${min}..${max}`)
    }
  }
}

function deriveKeys(
  password: string,
  salt: Uint8Array,
  params: ScryptParams,
): Promise<{ encKey: Buffer; checkKey: Buffer }> {
  const N = 2 ** params.logN
  return new Promise((resolve, reject) => {
    scryptCallback(
      password.normalize('NFKC'),
      salt,
      64,
      { N, r: params.r, p: params.p, maxmem: 256 * N * params.r + 1024 * 1024 },
      (err, key) => (err ? reject(err) : resolve({ encKey: key.subarray(0, 32), checkKey: key.subarray(32) })),
    )
  })
}

function headerBytes(file: Pick<KeystoreFile, 'format' | 'version' | 'did' | 'kdf' | 'cipher'>): Uint8Array {
  return encode({ format: file.format, version: file.version, did: file.did, kdf: file.kdf, cipher: file.cipher })
}

function checkPassword(password: string): void {
  if (typeof password !== 'string' || password.length === 0)
    throw new InvalidInputError('the password must not be empty')
}

/** Encrypts `keyPair` under `password` into a keystore object (not yet written anywhere). */
export async function encryptKeystore(
  keyPair: Ed25519KeyPair,
  password: string,
  options: { scrypt?: ScryptParams } = {},
): Promise<KeystoreFile> {
  checkPassword(password)
  const params = options.scrypt ?? DEFAULT_SCRYPT
  checkScrypt(params)
  const salt = randomBytes(32)
  const nonce = randomBytes(12)
  const { encKey, checkKey } = await deriveKeys(password, salt, params)
  const header = {
    format: KEYSTORE_FORMAT,
    version: KEYSTORE_VERSION,
    did: didFromEd25519PublicKey(keyPair.publicKey),
    kdf: { name: 'scrypt', logN: params.logN, r: params.r, p: params.p, salt: salt.toString('base64') },
    cipher: { name: 'aes-256-gcm', nonce: nonce.toString('base64') },
  } as const
  const cipher = createCipheriv('aes-256-gcm', encKey, nonce)
  cipher.setAAD(headerBytes(header))
  const ciphertext = Buffer.concat([cipher.update(encode({ seed: keyPair.exportSeed() })), cipher.final()])
  return {
    ...header,
    verifier: createHmac('sha256', checkKey).update(VERIFIER_LABEL).digest('base64'),
    ciphertext: ciphertext.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
  }
}

function base64Field(value: unknown, name: string, length?: number): Buffer {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
    throw new KeystoreFormatError(`keystore field ${name} is missing or not base64`)
  }
  const bytes = Buffer.from(value, 'base64')
  if (length !== undefined && bytes.length !== length) {
    throw new KeystoreFormatError(`keystore field ${name} must be ${length} bytes, found ${bytes.length}`)
  }
  return bytes
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** Checks the shape of a parsed keystore; throws `KeystoreFormatError` naming the first problem. */
export function parseKeystore(text: string): KeystoreFile {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new KeystoreFormatError('the keystore is not valid JSON (truncated or not a keystore file)')
  }
  if (!isRecord(value) || value.format !== KEYSTORE_FORMAT) {
    throw new KeystoreFormatError(`not a ${KEYSTORE_FORMAT} file`)
  }
  if (value.version !== KEYSTORE_VERSION) {
    throw new KeystoreFormatError(
      `keystore version ${JSON.stringify(value.version)} is not supported (this Donghae reads version ${KEYSTORE_VERSION}); upgrade Donghae`,
    )
  }
  const { kdf, cipher, did } = value
  if (typeof did !== 'string') throw new KeystoreFormatError('keystore field did is missing')
  if (!isRecord(kdf) || kdf.name !== 'scrypt') throw new KeystoreFormatError('keystore kdf must be scrypt')
  if (!isRecord(cipher) || cipher.name !== 'aes-256-gcm')
    throw new KeystoreFormatError('keystore cipher must be aes-256-gcm')
  checkScrypt({ logN: kdf.logN as number, r: kdf.r as number, p: kdf.p as number })
  base64Field(kdf.salt, 'kdf.salt', 32)
  base64Field(cipher.nonce, 'cipher.nonce', 12)
  base64Field(value.verifier, 'verifier', 32)
  base64Field(value.tag, 'tag', 16)
  if (base64Field(value.ciphertext, 'ciphertext').length === 0)
    throw new KeystoreFormatError('keystore ciphertext is empty')
  const extra = Object.keys(value).filter(
    (k) => !['format', 'version', 'did', 'kdf', 'cipher', 'verifier', 'ciphertext', 'tag'].includes(k),
  )
  if (extra.length > 0) throw new KeystoreFormatError(`unexpected keystore field ${extra[0] ?? ''}`)
  return value as unknown as KeystoreFile
}

/** Decrypts a keystore. Wrong password -> `WrongPasswordError`; altered content -> `KeystoreTamperedError`. */
export async function decryptKeystore(file: KeystoreFile, password: string): Promise<Ed25519KeyPair> {
  checkPassword(password)
  const salt = base64Field(file.kdf.salt, 'kdf.salt', 32)
  const { encKey, checkKey } = await deriveKeys(password, salt, file.kdf)
  const verifier = createHmac('sha256', checkKey).update(VERIFIER_LABEL).digest()
  if (!constantTimeEquals(verifier, base64Field(file.verifier, 'verifier', 32))) {
    throw new WrongPasswordError('wrong password for this keystore')
  }
  let plaintext: Buffer
  try {
    const decipher = createDecipheriv('aes-256-gcm', encKey, base64Field(file.cipher.nonce, 'cipher.nonce', 12))
    decipher.setAAD(headerBytes(file))
    decipher.setAuthTag(base64Field(file.tag, 'tag', 16))
    plaintext = Buffer.concat([decipher.update(base64Field(file.ciphertext, 'ciphertext')), decipher.final()])
  } catch (err) {
    throw new KeystoreTamperedError('the keystore was altered: its contents fail authentication', { cause: err })
  }
  let seed: unknown
  try {
    seed = decode<{ seed?: unknown }>(plaintext).seed
  } catch (err) {
    throw new KeystoreTamperedError('the keystore payload is malformed', { cause: err })
  }
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_LENGTH) {
    throw new KeystoreTamperedError('the keystore payload holds no Ed25519 seed')
  }
  const keyPair = Ed25519KeyPair.fromSeed(seed)
  if (didFromEd25519PublicKey(keyPair.publicKey) !== file.did) {
    throw new KeystoreTamperedError('the keystore DID does not match its key')
  }
  return keyPair
}

/** Reads and parses a keystore file without decrypting it (the DID is stored in the clear). */
export async function readKeystoreFile(path: string): Promise<KeystoreFile> {
  let handle: fs.FileHandle
  try {
    handle = await fs.open(path, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new KeystoreFormatError(`no keystore at ${path}; run \`donghae init\` first`, { cause: err })
    }
    throw err
  }
  try {
    const { size } = await handle.stat()
    if (size > MAX_KEYSTORE_BYTES) throw new KeystoreFormatError(`${path} is too large to be a keystore`)
    return parseKeystore(await handle.readFile('utf8'))
  } finally {
    await handle.close()
  }
}

export async function loadKeystore(path: string, password: string): Promise<Ed25519KeyPair> {
  return decryptKeystore(await readKeystoreFile(path), password)
}

/** True when only the owner can read the file (mode & 0o077 === 0). */
export async function isKeystorePrivate(path: string): Promise<boolean> {
  const { mode } = await fs.stat(path)
  return (mode & 0o077) === 0
}

/**
 * Writes a keystore atomically with mode 0600. Without `overwrite`, an existing file is never
 * replaced (the final step is a hard link, which fails if the name exists).
 */
export async function writeKeystoreFile(
  path: string,
  file: KeystoreFile,
  options: { overwrite?: boolean } = {},
): Promise<void> {
  const dir = dirname(path)
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  const handle = await fs.open(
    temp,
    fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL,
    KEYSTORE_FILE_MODE,
  )
  try {
    await handle.writeFile(`${JSON.stringify(file, null, 2)}\n`)
    await handle.chmod(KEYSTORE_FILE_MODE)
    await handle.sync()
  } finally {
    await handle.close()
  }
  try {
    if (options.overwrite === true) {
      await fs.rename(temp, path)
    } else {
      try {
        await fs.link(temp, path)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new KeystoreExistsError(`a keystore already exists at ${path}; refusing to overwrite it`, {
            cause: err,
          })
        }
        throw err
      }
      await fs.unlink(temp)
    }
    const dirHandle = await fs.open(dir, 'r')
    try {
      await dirHandle.sync()
    } finally {
      await dirHandle.close()
    }
  } finally {
    await fs.rm(temp, { force: true })
  }
}
