// The CLI as a user meets it: real processes, real files, exit codes and one-line errors.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli } from './helpers/cli.ts'

const PASSWORD = 'correct horse battery'
const vectors = JSON.parse(
  await readFile(new URL('./vectors/did-key/ed25519-x25519.json', import.meta.url), 'utf8'),
) as Record<string, { didDocument: unknown }>

async function tempHome(): Promise<{ dir: string; home: string; done: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-cli-'))
  return { dir, home: join(dir, 'home'), done: () => rm(dir, { recursive: true, force: true }) }
}

function oneLineError(stderr: string): string {
  const lines = stderr.trim().split('\n')
  assert.equal(lines.length, 1, `expected one error line, got: ${stderr}`)
  assert.match(lines[0] ?? '', /^donghae: /)
  return lines[0] ?? ''
}

test('--help lists the commands with examples; version prints JSON', async () => {
  const help = await runCli(['--help'])
  assert.equal(help.code, 0)
  for (const word of ['init', 'id', 'did', 'keys', 'config', 'version', 'Examples:', '--home'])
    assert.ok(help.stdout.includes(word), word)
  const version = await runCli(['version', '--json'])
  assert.equal(version.code, 0)
  const info = JSON.parse(version.stdout) as { donghae: string; node: string }
  assert.match(info.donghae, /^\d+\.\d+\.\d+/)
  assert.ok(Number(info.node.split('.')[0]) >= 24, 'runs on Node 24+')
})

test('usage mistakes exit 2; unknown commands say so', async () => {
  const result = await runCli(['frobnicate'])
  assert.equal(result.code, 2)
  assert.match(result.stderr, /unknown command/)
})

test('init creates the home (keystore 0600 + config), id shows the same DID, a second init refuses', async () => {
  const t = await tempHome()
  try {
    const init = await runCli(['--home', t.home, 'init', '--json'], { DONGHAE_PASSWORD: PASSWORD })
    assert.equal(init.code, 0, init.stderr)
    const created = JSON.parse(init.stdout) as { did: string; peerId: string }
    assert.match(created.did, /^did:key:z6Mk/)
    assert.match(created.peerId, /^12D3KooW/)
    assert.equal((await stat(join(t.home, 'keystore.json'))).mode & 0o777, 0o600)
    assert.equal((await stat(t.home)).mode & 0o777, 0o700)
    const config = JSON.parse(await readFile(join(t.home, 'config.json'), 'utf8')) as Record<string, unknown>
    assert.equal(config.logLevel, 'info')

    const id = await runCli(['id', '--json'], { DONGHAE_HOME: t.home })
    assert.equal(id.code, 0, id.stderr)
    const shown = JSON.parse(id.stdout) as { did: string; peerId: string }
    assert.deepEqual({ did: shown.did, peerId: shown.peerId }, { did: created.did, peerId: created.peerId })

    const before = await readFile(join(t.home, 'keystore.json'), 'utf8')
    const again = await runCli(['--home', t.home, 'init'], { DONGHAE_PASSWORD: PASSWORD })
    assert.equal(again.code, 1)
    assert.match(oneLineError(again.stderr), /refusing to overwrite/)
    assert.equal(await readFile(join(t.home, 'keystore.json'), 'utf8'), before, 'the keystore is untouched')

    const idempotent = await runCli(['--home', t.home, 'init', '--if-missing'], {})
    assert.equal(idempotent.code, 0)
  } finally {
    await t.done()
  }
})

test('init without a password source and without a terminal fails clearly and writes nothing', async () => {
  const t = await tempHome()
  try {
    const result = await runCli(['--home', t.home, 'init'], {})
    assert.equal(result.code, 1)
    assert.match(oneLineError(result.stderr), /DONGHAE_PASSWORD/)
    await assert.rejects(stat(t.home), { code: 'ENOENT' })
    const short = await runCli(['--home', t.home, 'init'], { DONGHAE_PASSWORD: 'short' })
    assert.match(oneLineError(short.stderr), /at least 8 characters/)
    await assert.rejects(stat(t.home), { code: 'ENOENT' })
    const badEnv = await runCli(['--home', t.home, 'init'], { DONGHAE_PASSWORD: PASSWORD, DONGHAE_LOG_LEVEL: 'loud' })
    assert.equal(badEnv.code, 1)
    assert.match(oneLineError(badEnv.stderr), /DONGHAE_LOG_LEVEL/)
  } finally {
    await t.done()
  }
})

test('init --password-file reads the password from a file', async () => {
  const t = await tempHome()
  try {
    const file = join(t.dir, 'pw')
    await writeFile(file, `${PASSWORD}\n`)
    const result = await runCli(['--home', t.home, 'init', '--password-file', file], {})
    assert.equal(result.code, 0, result.stderr)
    const exported = await runCli(['--home', t.home, 'keys', 'export'], { DONGHAE_PASSWORD: PASSWORD })
    assert.equal(exported.code, 0, 'the trailing newline is not part of the password')
  } finally {
    await t.done()
  }
})

test('did resolve prints the spec document; an invalid DID exits 1 with one line and no stdout', async () => {
  const [did, vector] = Object.entries(vectors)[0] ?? []
  assert.ok(did !== undefined && vector !== undefined)
  const ok = await runCli(['did', 'resolve', did])
  assert.equal(ok.code, 0)
  assert.deepEqual(JSON.parse(ok.stdout), vector.didDocument)
  const multikey = await runCli(['did', 'resolve', did, '--format', 'Multikey'])
  assert.equal(
    (JSON.parse(multikey.stdout) as { verificationMethod: Array<{ type: string }> }).verificationMethod[0]?.type,
    'Multikey',
  )
  for (const bad of ['did:key:not-base58!', 'did:web:example.com', `${did.slice(0, -3)}`]) {
    const result = await runCli(['did', 'resolve', bad])
    assert.equal(result.code, 1, bad)
    assert.equal(result.stdout, '')
    assert.match(oneLineError(result.stderr), /^donghae: (invalidDid|invalidPublicKey|unsupportedPublicKeyType)/)
  }
})

test('keys export checks the password; import restores the identity elsewhere and never clobbers silently', async () => {
  const a = await tempHome()
  const b = await tempHome()
  try {
    assert.equal((await runCli(['--home', a.home, 'init'], { DONGHAE_PASSWORD: PASSWORD })).code, 0)
    const wrong = await runCli(['--home', a.home, 'keys', 'export', '--out', join(a.dir, 'x.json')], {
      DONGHAE_PASSWORD: 'not the password',
    })
    assert.equal(wrong.code, 1)
    assert.match(oneLineError(wrong.stderr), /wrong password/)
    await assert.rejects(stat(join(a.dir, 'x.json')), { code: 'ENOENT' })

    const backup = join(a.dir, 'backup.json')
    const exported = await runCli(['--home', a.home, 'keys', 'export', '--out', backup], { DONGHAE_PASSWORD: PASSWORD })
    assert.equal(exported.code, 0, exported.stderr)
    assert.equal((await stat(backup)).mode & 0o777, 0o600)

    const imported = await runCli(['--home', b.home, 'keys', 'import', backup], { DONGHAE_PASSWORD: PASSWORD })
    assert.equal(imported.code, 0, imported.stderr)
    const idA = JSON.parse((await runCli(['--home', a.home, 'id', '--json'])).stdout) as { did: string }
    const idB = JSON.parse((await runCli(['--home', b.home, 'id', '--json'])).stdout) as { did: string }
    assert.equal(idB.did, idA.did)

    // A different identity into an existing home: refused without --force, backed up with it.
    const c = await tempHome()
    try {
      assert.equal((await runCli(['--home', c.home, 'init'], { DONGHAE_PASSWORD: PASSWORD })).code, 0)
      const refused = await runCli(['--home', c.home, 'keys', 'import', backup], { DONGHAE_PASSWORD: PASSWORD })
      assert.equal(refused.code, 1)
      assert.match(oneLineError(refused.stderr), /--force/)
      const forced = await runCli(['--home', c.home, 'keys', 'import', backup, '--force'], {
        DONGHAE_PASSWORD: PASSWORD,
      })
      assert.equal(forced.code, 0, forced.stderr)
      assert.ok((await readdir(c.home)).some((f) => f.startsWith('keystore.json.bak-')))
      const idC = JSON.parse((await runCli(['--home', c.home, 'id', '--json'])).stdout) as { did: string }
      assert.equal(idC.did, idA.did)
    } finally {
      await c.done()
    }

    await writeFile(join(b.dir, 'garbage.json'), '{"format":"donghae-keystore","version":1')
    const garbage = await runCli(['--home', b.home, 'keys', 'import', join(b.dir, 'garbage.json'), '--force'], {
      DONGHAE_PASSWORD: PASSWORD,
    })
    assert.equal(garbage.code, 1)
    assert.match(oneLineError(garbage.stderr), /not valid JSON/)
  } finally {
    await a.done()
    await b.done()
  }
})

test('id on a home that does not exist tells the user to run init', async () => {
  const t = await tempHome()
  try {
    const result = await runCli(['--home', t.home, 'id'])
    assert.equal(result.code, 1)
    assert.match(oneLineError(result.stderr), /donghae init/)
  } finally {
    await t.done()
  }
})

test('config show reports values with their sources: flag > env > file > default', async () => {
  const t = await tempHome()
  try {
    assert.equal(
      (await runCli(['--home', t.home, 'init', '--moniker', 'kitchen-mac'], { DONGHAE_PASSWORD: PASSWORD })).code,
      0,
    )
    const shown = await runCli(['--home', t.home, 'config', 'show', '--json'], { DONGHAE_LOG_LEVEL: 'debug' })
    assert.equal(shown.code, 0, shown.stderr)
    const config = JSON.parse(shown.stdout) as Record<string, { value: unknown; source: string }>
    assert.deepEqual(config.moniker, { value: 'kitchen-mac', source: 'file', env: 'DONGHAE_MONIKER' })
    assert.equal(config.logLevel?.source, 'env')
    const flagged = await runCli(['--home', t.home, '--log-level', 'error', 'config', 'show', '--json'], {
      DONGHAE_LOG_LEVEL: 'debug',
    })
    assert.equal((JSON.parse(flagged.stdout) as Record<string, { source: string }>).logLevel?.source, 'flag')
  } finally {
    await t.done()
  }
})
