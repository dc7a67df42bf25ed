// The password's sources in order: --password-file, DONGHAE_PASSWORD, the keychain (only for a
// home that opted in), the prompt. The platform store is an in-memory SecretStore here; the real
// one is exercised in test/keychain-secret-service.test.ts.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { PassThrough } from 'node:stream'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Ed25519KeyPair } from '../identity/keys.ts'
import { encryptKeystore, writeKeystoreFile } from '../identity/keystore.ts'
import { WrongPasswordError } from '../identity/errors.ts'
import {
  KeychainMarkerError,
  KeychainPasswordMismatchError,
  KeychainUnavailableError,
  writeKeychainMarker,
  type KeychainBackend,
  type SecretStore,
} from '../identity/keychain.ts'
import { obtainPasswordWithOrigin, unlockHomeKeystore, type PasswordSource } from './password.ts'
import { CliError } from './errors.ts'

const PASSWORD = 'correct horse battery'
const FAST_SCRYPT = { logN: 10, r: 8, p: 1 }

/** An in-memory store that counts how often it was opened. */
function memoryStore(entries: Record<string, string> = {}, backend: KeychainBackend = 'secret-service') {
  const map = new Map(Object.entries(entries))
  const store: SecretStore = {
    backend,
    describe: () => (backend === 'secret-service' ? 'Secret Service' : 'macOS Keychain'),
    get: async (account) => map.get(account),
    set: async (account, secret) => void map.set(account, secret),
    delete: async (account) => map.delete(account),
  }
  const opened = { count: 0 }
  return {
    opened,
    map,
    openStore: async (): Promise<SecretStore> => {
      opened.count += 1
      return store
    },
  }
}

interface Home {
  dir: string
  keystore: string
  did: string
}

async function withHome(fn: (home: Home) => Promise<void>, optIn = true): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-password-'))
  try {
    const keyPair = Ed25519KeyPair.generate()
    const file = await encryptKeystore(keyPair, PASSWORD, { scrypt: FAST_SCRYPT })
    const keystore = join(dir, 'keystore.json')
    await writeKeystoreFile(keystore, file)
    if (optIn)
      await writeKeychainMarker(dir, { version: 1, service: 'donghae', account: file.did, backend: 'secret-service' })
    await fn({ dir, keystore, did: file.did })
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

function pipes(tty = false): { stdin: NodeJS.ReadStream; stderr: NodeJS.WriteStream; written: () => string } {
  const stdin = Object.assign(new PassThrough(), { isTTY: tty, isRaw: false, setRawMode: () => stdin })
  let text = ''
  const stderr = new PassThrough()
  stderr.on('data', (c: Buffer) => (text += c.toString()))
  return {
    stdin: stdin as unknown as NodeJS.ReadStream,
    stderr: stderr as unknown as NodeJS.WriteStream,
    written: () => text,
  }
}

function source(
  home: Home,
  openStore: () => Promise<SecretStore>,
  extra: Partial<PasswordSource> = {},
): PasswordSource {
  return { env: {}, ...pipes(), keychain: { homeDir: home.dir, did: home.did, openStore }, ...extra }
}

test('order: --password-file, then DONGHAE_PASSWORD, then the keychain', async () => {
  await withHome(async (home) => {
    const mem = memoryStore({ [home.did]: 'from the keychain' })
    const passwordFile = join(home.dir, 'pw')
    await writeFile(passwordFile, 'from the file\n')
    const request = { prompt: 'Password' }
    const fromFile = await obtainPasswordWithOrigin(
      request,
      source(home, mem.openStore, { passwordFile, env: { DONGHAE_PASSWORD: 'env' } }),
    )
    assert.deepEqual(fromFile, { password: 'from the file', origin: 'password-file' })
    const fromEnv = await obtainPasswordWithOrigin(
      request,
      source(home, mem.openStore, { env: { DONGHAE_PASSWORD: 'from env' } }),
    )
    assert.deepEqual(fromEnv, { password: 'from env', origin: 'env' })
    assert.equal(mem.opened.count, 0, 'the store is not opened when an earlier source answers')
    const fromKeychain = await obtainPasswordWithOrigin(request, source(home, mem.openStore))
    assert.deepEqual(fromKeychain, { password: 'from the keychain', origin: 'keychain', store: 'Secret Service' })
    await assert.rejects(
      obtainPasswordWithOrigin({ ...request, isNew: true }, source(home, mem.openStore)),
      /^CliError: no password: set DONGHAE_PASSWORD/,
      'a new password never comes from the keychain',
    )
  })
})

test('the file fallback: a home that has not opted in never opens the store', async () => {
  await withHome(async (home) => {
    const mem = memoryStore({ [home.did]: 'from the keychain' })
    await assert.rejects(
      obtainPasswordWithOrigin({ prompt: 'Password' }, source(home, mem.openStore)),
      (err: unknown) => {
        assert.ok(err instanceof CliError)
        assert.equal(err.message, 'no password: set DONGHAE_PASSWORD, pass --password-file FILE, or run in a terminal')
        return true
      },
    )
    assert.equal(mem.opened.count, 0)
    const io = pipes(true)
    const asked = obtainPasswordWithOrigin({ prompt: 'Password' }, { ...source(home, mem.openStore), ...io })
    io.stdin.push('typed\r')
    assert.deepEqual(await asked, { password: 'typed', origin: 'prompt' })
    assert.equal(io.written(), 'Password: \n')
  }, false)
})

test('opted in, store unavailable or entry missing: says so, then the prompt or the usual error', async () => {
  await withHome(async (home) => {
    const unavailable = async (): Promise<SecretStore> => {
      throw new KeychainUnavailableError('no Secret Service is reachable: no bus')
    }
    await assert.rejects(
      obtainPasswordWithOrigin({ prompt: 'Password' }, source(home, unavailable)),
      /^CliError: no password: this home keeps its password in the Secret Service, but no Secret Service is reachable: no bus; set DONGHAE_PASSWORD/,
    )
    const empty = memoryStore()
    await assert.rejects(
      obtainPasswordWithOrigin({ prompt: 'Password' }, source(home, empty.openStore)),
      /no password: the Secret Service has no entry for did:key:\S+ \(run `donghae keys --keychain` to store it again\)/,
    )
    const io = pipes(true)
    const asked = obtainPasswordWithOrigin({ prompt: 'Password' }, { ...source(home, empty.openStore), ...io })
    io.stdin.push('typed\n')
    assert.equal((await asked).origin, 'prompt')
    assert.match(io.written(), /^donghae: the Secret Service has no entry for did:key:\S+ .*\nPassword: \n$/)
    const elsewhere = memoryStore({ [home.did]: PASSWORD }, 'macos-keychain')
    await assert.rejects(
      obtainPasswordWithOrigin({ prompt: 'Password' }, source(home, elsewhere.openStore)),
      /keeps its password in the Secret Service, which this machine does not have/,
    )
  })
})

test('a marker for another keystore is refused before the store is opened', async () => {
  await withHome(async (home) => {
    const mem = memoryStore({ [home.did]: PASSWORD })
    const other = { ...home, did: 'did:key:z6MkOtherKeystore' }
    await assert.rejects(
      obtainPasswordWithOrigin({ prompt: 'Password' }, source(other, mem.openStore)),
      KeychainMarkerError,
    )
    assert.equal(mem.opened.count, 0)
  })
})

test('unlockHomeKeystore: the keychain password opens the keystore; a wrong one names the keychain', async () => {
  await withHome(async (home) => {
    const right = memoryStore({ [home.did]: PASSWORD })
    const unlocked = await unlockHomeKeystore(
      home,
      { prompt: 'Password' },
      { env: {}, ...pipes(), openStore: right.openStore },
    )
    assert.equal(unlocked.file.did, home.did)
    assert.equal(unlocked.origin, 'keychain')
    const stale = memoryStore({ [home.did]: 'an old password' })
    await assert.rejects(
      unlockHomeKeystore(home, { prompt: 'Password' }, { env: {}, ...pipes(), openStore: stale.openStore }),
      (err: unknown) => {
        assert.ok(err instanceof KeychainPasswordMismatchError && err instanceof WrongPasswordError)
        assert.equal(err.code, 'KEYCHAIN_WRONG_PASSWORD')
        assert.match(
          err.message,
          /^the password kept in the Secret Service for did:key:\S+ does not open .*keystore\.json; run `donghae keys --keychain`/,
        )
        assert.ok(!err.message.includes('an old password'))
        return true
      },
    )
    await assert.rejects(
      unlockHomeKeystore(
        home,
        { prompt: 'Password' },
        { env: { DONGHAE_PASSWORD: 'typo' }, ...pipes(), openStore: right.openStore },
      ),
      (err: unknown) => err instanceof WrongPasswordError && !(err instanceof KeychainPasswordMismatchError),
      'a wrong password from the environment stays a plain wrong password',
    )
    assert.deepEqual((await readdir(home.dir)).sort(), ['keychain.json', 'keystore.json'], 'nothing written')
  })
})
