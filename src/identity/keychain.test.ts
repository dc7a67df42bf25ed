import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  checkKeychainMarker,
  KEYCHAIN_MARKER_FILE,
  KeychainError,
  KeychainMarkerError,
  KeychainUnavailableError,
  openSecretStore,
  parseKeychainMarker,
  platformBackend,
  readKeychainMarker,
  removeKeychainMarker,
  writeKeychainMarker,
  type KeychainMarker,
  type KeyringBinding,
} from './keychain.ts'

const DID = 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK'
const MARKER: KeychainMarker = { version: 1, service: 'donghae', account: DID, backend: 'secret-service' }

async function withHome(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-keychain-unit-'))
  try {
    await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

test('the file fallback: a home without keychain.json has not opted in', async () => {
  await withHome(async (dir) => {
    assert.equal(await readKeychainMarker(dir), undefined)
    assert.equal(await removeKeychainMarker(dir), false)
  })
})

test('the marker round-trips with mode 0600 and is removed', async () => {
  await withHome(async (dir) => {
    await writeKeychainMarker(dir, MARKER)
    assert.equal((await stat(join(dir, KEYCHAIN_MARKER_FILE))).mode & 0o777, 0o600)
    assert.deepEqual(await readKeychainMarker(dir), MARKER)
    assert.deepEqual(JSON.parse(await readFile(join(dir, KEYCHAIN_MARKER_FILE), 'utf8')), MARKER)
    assert.equal(await removeKeychainMarker(dir), true)
    assert.equal(await readKeychainMarker(dir), undefined)
  })
})

test('malformed markers are KeychainMarkerError, each naming its problem', () => {
  const cases: [string, RegExp][] = [
    ['{', /not valid JSON/],
    ['[]', /not a JSON object/],
    [JSON.stringify({ ...MARKER, version: 2 }), /version 2/],
    [JSON.stringify({ ...MARKER, account: '' }), /account must be a non-empty string/],
    [JSON.stringify({ ...MARKER, account: 'x'.repeat(300) }), /account must be a non-empty string/],
    [JSON.stringify({ ...MARKER, backend: 'keyutils' }), /unknown backend "keyutils"/],
    [JSON.stringify({ ...MARKER, secret: 'hunter2' }), /unexpected field "secret"/],
  ]
  for (const [text, message] of cases) {
    assert.throws(
      () => parseKeychainMarker(text),
      (err: unknown) => {
        assert.ok(err instanceof KeychainMarkerError)
        assert.equal(err.code, 'KEYCHAIN_MARKER_INVALID')
        assert.match(err.message, message)
        return true
      },
    )
  }
})

test('a marker may only name service donghae and the keystore’s own DID', () => {
  checkKeychainMarker(MARKER, DID)
  assert.throws(() => checkKeychainMarker({ ...MARKER, service: 'github.com' }, DID), /names the service "github.com"/)
  assert.throws(
    () => checkKeychainMarker({ ...MARKER, account: 'did:key:z6MkOther' }, DID),
    (err: unknown) =>
      err instanceof KeychainMarkerError && /but this home's keystore is did:key:z6Mkha/.test(err.message),
  )
})

test('a symlinked or oversized marker is refused', async () => {
  await withHome(async (dir) => {
    await writeFile(join(dir, 'elsewhere.json'), JSON.stringify(MARKER))
    await symlink(join(dir, 'elsewhere.json'), join(dir, KEYCHAIN_MARKER_FILE))
    await assert.rejects(readKeychainMarker(dir), /symbolic link/)
    await rm(join(dir, KEYCHAIN_MARKER_FILE))
    await writeFile(join(dir, KEYCHAIN_MARKER_FILE), ' '.repeat(5000))
    await assert.rejects(readKeychainMarker(dir), /too large/)
  })
})

test('the store each platform uses', () => {
  assert.equal(platformBackend('darwin'), 'macos-keychain')
  assert.equal(platformBackend('linux'), 'secret-service')
  assert.equal(platformBackend('win32'), 'windows-credential-manager')
  assert.equal(platformBackend('aix'), undefined)
})

test('no native binding, or no store for the platform: KeychainUnavailableError', async () => {
  const missing = (): Promise<KeyringBinding> => Promise.reject(new Error("Cannot find module '@napi-rs/keyring'"))
  await assert.rejects(openSecretStore({ loadBinding: missing }), (err: unknown) => {
    assert.ok(err instanceof KeychainUnavailableError)
    assert.equal(err.code, 'KEYCHAIN_UNAVAILABLE')
    assert.match(err.message, /native keyring binding \(@napi-rs\/keyring\) cannot be loaded: Cannot find module/)
    return true
  })
  await assert.rejects(openSecretStore({ platform: 'aix' }), /knows no platform key store on aix/)
})

test('Linux without a D-Bus session: the real binding gives KeychainUnavailableError', async (t) => {
  // justified: the real binding's Secret Service path exists only on Linux (macOS uses the Keychain)
  if (process.platform !== 'linux') return t.skip(`the Secret Service is Linux's store (this is ${process.platform})`) // justified: see the comment above
  const saved = process.env.DBUS_SESSION_BUS_ADDRESS
  await withHome(async (dir) => {
    process.env.DBUS_SESSION_BUS_ADDRESS = `unix:path=${join(dir, 'no-bus')}`
    try {
      await assert.rejects(openSecretStore(), (err: unknown) => {
        assert.ok(err instanceof KeychainUnavailableError, String(err))
        assert.match(err.message, /^no Secret Service is reachable \(it needs the D-Bus session/)
        assert.match(err.message, /Failed to connect to socket/)
        return true
      })
    } finally {
      if (saved === undefined) delete process.env.DBUS_SESSION_BUS_ADDRESS
      else process.env.DBUS_SESSION_BUS_ADDRESS = saved
    }
  })
})

/**
 * keyring-rs failures that a test cannot cause on demand with the real store (a locked store, an
 * ambiguous entry, a message quoting the secret) stand in a binding whose calls reject.
 */
function failingBinding(message: string): KeyringBinding {
  const fail = (): Promise<never> => Promise.reject(Object.assign(new Error(message), { code: 'GenericFailure' }))
  return {
    AsyncEntry: class {
      getPassword = fail
      setPassword = fail
      deletePassword = fail
    },
  }
}

test('store failures: unavailable when locked or unreachable, KeychainError otherwise, never quoting the secret', async () => {
  const linux = { platform: 'linux' as const }
  const locked = await openSecretStore({
    ...linux,
    loadBinding: async () => failingBinding("Couldn't access platform secure storage: locked"),
  })
  await assert.rejects(
    locked.get(DID),
    (err: unknown) => err instanceof KeychainUnavailableError && /locked/.test(err.message),
  )
  const ambiguous = await openSecretStore({
    ...linux,
    loadBinding: async () => failingBinding('Entry is matched by 2 credentials'),
  })
  await assert.rejects(ambiguous.delete(DID), (err: unknown) => {
    assert.ok(err instanceof KeychainError && !(err instanceof KeychainUnavailableError))
    assert.equal(err.code, 'KEYCHAIN_ERROR')
    assert.equal(err.message, 'the Secret Service could not remove the entry: Entry is matched by 2 credentials')
    return true
  })
  const quoting = await openSecretStore({
    ...linux,
    loadBinding: async () => failingBinding('bad value hunter2 hunter2'),
  })
  await assert.rejects(quoting.set(DID, 'hunter2'), (err: unknown) => {
    assert.ok(err instanceof KeychainError)
    assert.ok(!err.message.includes('hunter2') && err.cause === undefined, err.message)
    assert.match(err.message, /bad value \[redacted\] \[redacted\]/)
    return true
  })
})
