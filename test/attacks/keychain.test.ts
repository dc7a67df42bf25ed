// Attack: a planted <home>/keychain.json. Whoever can write into a home (a synced or shared
// directory, a restored backup) writes a marker naming another entry of the user's key store:
// another application's secret, or another Donghae identity's password. Donghae would then ask the
// store for it under its own name (on macOS the access prompt would say "donghae"), a confused
// deputy. Or the marker is made to hang or exhaust the reader (a FIFO, a symlink to /dev/zero), or
// to write terminal escapes into the error line.
// Defences: the marker may only name service `donghae` and the home's own keystore DID, checked
// before the store is opened; it is read without following links, only as a small regular file;
// values from it are printed JSON-escaped; `keys --no-keychain` deletes this keystore's entry,
// never the one the marker names.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli } from '../helpers/cli.ts'
import { secretServiceMissing, startSecretService } from '../helpers/secret-service.ts'
import { openSecretStore } from '../../src/identity/keychain.ts'

const PASSWORD = 'correct horse battery'
let dir: string
let home: string
let did: string
let marker: string

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'donghae-attack-keychain-'))
  home = join(dir, 'home')
  marker = join(home, 'keychain.json')
  const init = await runCli(['--home', home, 'init', '--json'], { DONGHAE_PASSWORD: PASSWORD })
  assert.equal(init.code, 0, init.stderr)
  did = (JSON.parse(init.stdout) as { did: string }).did
})

after(() => rm(dir, { recursive: true, force: true }))

function plant(value: Record<string, unknown>): Promise<void> {
  return writeFile(
    marker,
    JSON.stringify({ version: 1, service: 'donghae', account: did, backend: 'secret-service', ...value }),
  )
}

async function homeFiles(): Promise<string> {
  const names = ['keystore.json', 'config.json', 'api-token']
  return (await Promise.all(names.map((n) => readFile(join(home, n), 'utf8')))).join('\0')
}

/** `keys export` with no password source: the marker is the only way to a password. */
async function exportFails(expected: RegExp): Promise<void> {
  const before = await homeFiles()
  const result = await runCli(['--home', home, 'keys', 'export'])
  assert.equal(result.code, 1, result.stdout)
  const lines = result.stderr.trim().split('\n')
  assert.equal(lines.length, 1, result.stderr)
  assert.match(lines[0] ?? '', expected)
  assert.ok(!result.stderr.includes('\u001b'), 'no raw terminal escape reaches the terminal')
  assert.equal(await homeFiles(), before, 'nothing in the home changed')
}

test('a marker naming another service or another identity is refused before any store is opened', async () => {
  await plant({ service: 'github.com', account: 'octocat' })
  await exportFails(/names the service "github\.com", not donghae; refusing to read it/)
  await plant({ account: 'did:key:z6MkVictimIdentity' })
  await exportFails(/names the account "did:key:z6MkVictimIdentity", but this home's keystore is did:key:/)
  await plant({ account: 'did:key:\u001b]0;pwned\u0007\u001b[2J' })
  await exportFails(/names the account "did:key:\\u001b\]0;pwned\\u0007\\u001b\[2J"/)
  await rm(marker)
})

test('a marker that is a FIFO, a link to /dev/zero or oversized is refused at once', async () => {
  const fifo = spawnSync('mkfifo', [marker])
  assert.equal(fifo.status, 0, 'mkfifo')
  await exportFails(/keychain\.json is not a regular file/)
  await rm(marker)
  await symlink('/dev/zero', marker)
  await exportFails(/keychain\.json is a symbolic link; refusing to follow it/)
  await rm(marker)
  await writeFile(marker, `{"version":1,"pad":"${'x'.repeat(1 << 20)}"}`)
  await exportFails(/too large to be a keychain marker/)
  const forgot = await runCli(['--home', home, 'keys', '--no-keychain'])
  assert.equal(forgot.code, 0, forgot.stderr)
  assert.match(forgot.stderr, /removing an invalid marker/)
  await assert.rejects(stat(marker), { code: 'ENOENT' })
})

test('with a real Secret Service, --no-keychain under a planted marker leaves the named entries alone', async (t) => {
  const missing = secretServiceMissing()
  // justified: needs dbus-daemon and gnome-keyring-daemon (CI installs both, so it runs there)
  if (missing !== undefined) return t.skip(missing)
  const service = await startSecretService(dir)
  try {
    process.env.DBUS_SESSION_BUS_ADDRESS = service.address
    const victim = await openSecretStore({ service: 'github.com' })
    await victim.set('octocat', 'the victim token')
    const donghae = await openSecretStore()
    await donghae.set('did:key:z6MkVictimIdentity', 'the victim password')
    const bus = { DBUS_SESSION_BUS_ADDRESS: service.address }
    for (const planted of [{ service: 'github.com', account: 'octocat' }, { account: 'did:key:z6MkVictimIdentity' }]) {
      await plant(planted)
      const exported = await runCli(['--home', home, 'keys', 'export'], bus)
      assert.equal(exported.code, 1)
      assert.ok(!exported.stdout.includes('victim') && !exported.stderr.includes('victim token'))
      const forgot = await runCli(['--home', home, 'keys', '--no-keychain'], bus)
      assert.equal(forgot.code, 0, forgot.stderr)
      assert.match(forgot.stdout, new RegExp(`the Secret Service held no entry for ${did}`))
    }
    assert.equal(await victim.get('octocat'), 'the victim token')
    assert.equal(await donghae.get('did:key:z6MkVictimIdentity'), 'the victim password')
  } finally {
    delete process.env.DBUS_SESSION_BUS_ADDRESS
    await service.stop()
  }
  assert.ok(service.stopped(), 'no daemon left running')
})
