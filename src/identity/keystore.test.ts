import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Ed25519KeyPair } from './keys.ts'
import { didFromEd25519PublicKey } from './did-key.ts'
import {
  decryptKeystore,
  encryptKeystore,
  loadKeystore,
  parseKeystore,
  writeKeystoreFile,
  type ScryptParams,
} from './keystore.ts'
import { KeystoreExistsError, KeystoreFormatError, KeystoreTamperedError, WrongPasswordError } from './errors.ts'

// Cheaper than the default (2^17) so the suite stays fast; the format records whatever was used.
const FAST: ScryptParams = { logN: 12, r: 8, p: 1 }

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'donghae-keystore-'))
}

test('round-trip: the same key comes back with the right password', async () => {
  const key = Ed25519KeyPair.generate()
  const file = await encryptKeystore(key, 'correct horse', { scrypt: FAST })
  assert.equal(file.did, didFromEd25519PublicKey(key.publicKey))
  assert.deepEqual((await decryptKeystore(file, 'correct horse')).exportSeed(), key.exportSeed())
})

test('the default cost parameters are the stated ones (scrypt N=2^17, r=8, p=1) and still round-trip', async () => {
  const key = Ed25519KeyPair.generate()
  const file = await encryptKeystore(key, 'pw-default')
  assert.deepEqual({ logN: file.kdf.logN, r: file.kdf.r, p: file.kdf.p }, { logN: 17, r: 8, p: 1 })
  assert.deepEqual((await decryptKeystore(file, 'pw-default')).publicKey, key.publicKey)
})

test('wrong password → WrongPasswordError', async () => {
  const file = await encryptKeystore(Ed25519KeyPair.generate(), 'right', { scrypt: FAST })
  await assert.rejects(decryptKeystore(file, 'wrong'), WrongPasswordError)
})

test('tampering with any authenticated part → KeystoreTamperedError or WrongPasswordError, never a key', async () => {
  const key = Ed25519KeyPair.generate()
  const file = await encryptKeystore(key, 'pw', { scrypt: FAST })
  const flip = (b64: string): string => {
    const bytes = Buffer.from(b64, 'base64')
    bytes[0] = (bytes[0] ?? 0) ^ 1
    return bytes.toString('base64')
  }
  const other = didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey)
  await assert.rejects(decryptKeystore({ ...file, ciphertext: flip(file.ciphertext) }, 'pw'), KeystoreTamperedError)
  await assert.rejects(decryptKeystore({ ...file, tag: flip(file.tag) }, 'pw'), KeystoreTamperedError)
  await assert.rejects(decryptKeystore({ ...file, did: other }, 'pw'), KeystoreTamperedError)
  await assert.rejects(
    decryptKeystore({ ...file, cipher: { ...file.cipher, nonce: flip(file.cipher.nonce) } }, 'pw'),
    KeystoreTamperedError,
  )
  // Changing the KDF inputs changes the derived key, which reads as a wrong password.
  await assert.rejects(
    decryptKeystore({ ...file, kdf: { ...file.kdf, salt: flip(file.kdf.salt) } }, 'pw'),
    WrongPasswordError,
  )
})

test('files: written with mode 0600, loaded back, never overwritten by accident', async () => {
  const dir = await tempDir()
  try {
    const path = join(dir, 'keystore.json')
    const key = Ed25519KeyPair.generate()
    await writeKeystoreFile(path, await encryptKeystore(key, 'pw', { scrypt: FAST }))
    assert.equal((await stat(path)).mode & 0o777, 0o600)
    assert.deepEqual((await loadKeystore(path, 'pw')).publicKey, key.publicKey)
    const other = await encryptKeystore(Ed25519KeyPair.generate(), 'pw', { scrypt: FAST })
    await assert.rejects(writeKeystoreFile(path, other), KeystoreExistsError)
    assert.deepEqual((await loadKeystore(path, 'pw')).publicKey, key.publicKey, 'the original is untouched')
    await writeKeystoreFile(path, other, { overwrite: true })
    assert.equal((await loadKeystore(path, 'pw')).exportSeed().length, 32)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('truncated, garbage, hostile or future-version files → KeystoreFormatError with a reason', async () => {
  const dir = await tempDir()
  try {
    const path = join(dir, 'keystore.json')
    await writeKeystoreFile(path, await encryptKeystore(Ed25519KeyPair.generate(), 'pw', { scrypt: FAST }))
    const text = await readFile(path, 'utf8')
    for (let cut = 0; cut < text.length - 2; cut += Math.max(1, Math.floor(text.length / 40))) {
      await writeFile(path, text.slice(0, cut))
      await assert.rejects(loadKeystore(path, 'pw'), KeystoreFormatError, `truncated at ${cut}`)
    }
    const json = JSON.parse(text) as Record<string, unknown>
    assert.throws(() => parseKeystore(JSON.stringify({ ...json, version: 2 })), /version 2 is not supported/)
    assert.throws(() => parseKeystore(JSON.stringify({ ...json, kdf: { ...(json.kdf as object), logN: 30 } })), /logN/)
    assert.throws(() => parseKeystore(JSON.stringify({ ...json, tag: 'AAAA' })), /tag must be 16 bytes/)
    assert.throws(() => parseKeystore('{"format":"something-else"}'), KeystoreFormatError)
    await assert.rejects(loadKeystore(join(dir, 'missing.json'), 'pw'), /donghae init/)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
