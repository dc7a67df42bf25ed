// `donghae genesis` (the real CLI, a child process): a new network prunes settled jobs and makes no
// empty blocks unless --param says otherwise; --param values are checked like any genesis.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Ed25519KeyPair } from '../src/identity/keys.ts'
import { didFromEd25519PublicKey } from '../src/identity/did-key.ts'
import { readGenesisFile } from '../src/chain/genesis.ts'
import { runCli } from './helpers/cli.ts'

test('genesis --param: overrides go into the file; a new network prunes by default; bad keys and values exit 1 with one line', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-cli-genesis-'))
  try {
    const did = didFromEd25519PublicKey(Ed25519KeyPair.generate().publicKey)
    const base = ['--home', join(dir, 'home'), 'genesis', '--validator', did]
    const plain = await runCli([...base, '--out', join(dir, 'a.json')])
    assert.equal(plain.code, 0, plain.stderr)
    const a = await readGenesisFile(join(dir, 'a.json'))
    assert.equal(a.params.pruneFromHeight, 1)
    assert.equal(a.params.emptyBlockIntervalMs, 60_000)

    const tuned = await runCli([
      ...base,
      '--param',
      'settleWindowMs=300000',
      '--param',
      'pruneFromHeight=0',
      '--param',
      'minFee=3',
      '--out',
      join(dir, 'b.json'),
    ])
    assert.equal(tuned.code, 0, tuned.stderr)
    const b = await readGenesisFile(join(dir, 'b.json'))
    assert.deepEqual([b.params.settleWindowMs, b.params.pruneFromHeight, b.params.minFee], [300_000, 0, 3n])

    for (const [param, message] of [
      ['nope=1', /expected key=value with a key among/],
      ['settleWindowMs=soon', /params\.settleWindowMs must be a non-negative integer/],
    ] as const) {
      const bad = await runCli([...base, '--param', param, '--out', join(dir, 'c.json')])
      assert.equal(bad.code, 1, param)
      assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr)
      assert.match(bad.stderr, message)
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
