// `donghae keys --keychain` against a real Secret Service (gnome-keyring on a private D-Bus
// session bus), through the real CLI in child processes without a terminal.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli } from './helpers/cli.ts'
import { secretServiceMissing, startSecretService, type SecretService } from './helpers/secret-service.ts'
import { openSecretStore, type SecretStore } from '../src/identity/keychain.ts'

const PASSWORD = 'correct horse battery'
const missing = secretServiceMissing()

/** The store as the CLI sees it, opened in this process on the test's bus. */
async function storeOn(service: SecretService): Promise<SecretStore> {
  process.env.DBUS_SESSION_BUS_ADDRESS = service.address
  return openSecretStore()
}

test('keys --keychain keeps the password in the Secret Service; commands then need none; --no-keychain undoes it', async (t) => {
  if (missing !== undefined) return t.skip(missing)
  const dir = await mkdtemp(join(tmpdir(), 'donghae-keychain-'))
  const home = join(dir, 'home')
  const service = await startSecretService(dir)
  try {
    const bus = { DBUS_SESSION_BUS_ADDRESS: service.address }
    const init = await runCli(['--home', home, 'init', '--json'], { DONGHAE_PASSWORD: PASSWORD })
    assert.equal(init.code, 0, init.stderr)
    const { did } = JSON.parse(init.stdout) as { did: string }

    const wrong = await runCli(['--home', home, 'keys', '--keychain'], { ...bus, DONGHAE_PASSWORD: 'not it at all' })
    assert.equal(wrong.code, 1)
    assert.match(wrong.stderr, /wrong password/)
    await assert.rejects(stat(join(home, 'keychain.json')), { code: 'ENOENT' }, 'no marker after a wrong password')

    await writeFile(join(dir, 'password'), `${PASSWORD}\n`, { mode: 0o600 })
    const stored = await runCli(['--home', home, 'keys', '--keychain', '--password-file', join(dir, 'password')], bus)
    assert.equal(stored.code, 0, stored.stderr)
    assert.match(stored.stdout, /now kept in the Secret Service/)
    const marker = JSON.parse(await readFile(join(home, 'keychain.json'), 'utf8')) as Record<string, unknown>
    assert.deepEqual(marker, { version: 1, service: 'donghae', account: did, backend: 'secret-service' })
    assert.equal((await stat(join(home, 'keychain.json'))).mode & 0o777, 0o600)
    const store = await storeOn(service)
    assert.equal(await store.get(did), PASSWORD, 'the entry is service donghae, account = the DID')

    // No DONGHAE_PASSWORD, no --password-file, stdin a pipe: the password comes from the Secret Service.
    const exported = await runCli(['--home', home, 'keys', 'export'], bus)
    assert.equal(exported.code, 0, exported.stderr)
    assert.equal((JSON.parse(exported.stdout) as { did: string }).did, did)
    const noBus = await runCli(['--home', home, 'keys', 'export'], {
      DBUS_SESSION_BUS_ADDRESS: `unix:path=${dir}/none`,
    })
    assert.equal(noBus.code, 1)
    assert.match(
      noBus.stderr,
      /^donghae: no password: this home keeps its password in the Secret Service, but no Secret/,
    )

    await store.set(did, 'a stale password')
    const stale = await runCli(['--home', home, 'keys', 'export'], bus)
    assert.equal(stale.code, 1)
    assert.match(stale.stderr, /the password kept in the Secret Service for did:key:\S+ does not open/)
    assert.ok(!stale.stderr.includes('a stale password'), 'the secret is never printed')
    await store.set(did, PASSWORD)

    const forgot = await runCli(['--home', home, 'keys', '--no-keychain'], bus)
    assert.equal(forgot.code, 0, forgot.stderr)
    assert.match(forgot.stdout, /removed the entry donghae\/did:key:\S+ from the Secret Service/)
    await assert.rejects(stat(join(home, 'keychain.json')), { code: 'ENOENT' })
    assert.equal(await store.get(did), undefined)
    const after = await runCli(['--home', home, 'keys', 'export'], bus)
    assert.equal(after.code, 1)
    assert.equal(
      after.stderr.trim(),
      'donghae: no password: set DONGHAE_PASSWORD, pass --password-file FILE, or run in a terminal',
    )
    assert.equal((await runCli(['--home', home, 'keys', 'export'], { ...bus, DONGHAE_PASSWORD: PASSWORD })).code, 0)
  } finally {
    await service.stop()
    await rm(dir, { recursive: true, force: true })
  }
  assert.ok(service.stopped(), 'dbus-daemon and gnome-keyring-daemon have exited')
})
