// A devnet's genesis with --param overrides: applied to a new network and checked like any
// genesis; refused, not ignored, for a network that has its genesis already.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Ed25519KeyPair } from '../identity/keys.ts'
import { GenesisError } from '../chain/errors.ts'
import { CliError } from './errors.ts'
import { loadOrCreateGenesis } from './local-network.ts'

test('loadOrCreateGenesis: --param values go into a new genesis; bad ones are clear errors; an existing genesis refuses them', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'donghae-local-network-'))
  try {
    const keys = [Ed25519KeyPair.generate(), Ed25519KeyPair.generate()]
    await assert.rejects(loadOrCreateGenesis(dir, keys, [], 'x', ['nope=1']), (err: unknown) => {
      assert.ok(err instanceof CliError)
      assert.match(err.message, /--param "nope=1": expected key=value with a key among .*settleWindowMs/)
      return true
    })
    await assert.rejects(loadOrCreateGenesis(dir, keys, [], 'x', ['settleWindowMs=soon']), GenesisError)
    const doc = await loadOrCreateGenesis(dir, keys, [], 'x', ['settleWindowMs=300000', 'minFee=2'])
    assert.equal(doc.params.settleWindowMs, 300_000)
    assert.equal(doc.params.minFee, 2n)
    assert.equal(doc.params.pruneFromHeight, 1, 'a new network prunes settled jobs')
    await assert.rejects(loadOrCreateGenesis(dir, keys, [], 'x', ['settleWindowMs=1000']), (err: unknown) => {
      assert.ok(err instanceof CliError)
      assert.match(err.message, /--param applies to a new network, and .*genesis\.json exists/)
      return true
    })
    assert.equal((await loadOrCreateGenesis(dir, keys, [], 'x')).params.settleWindowMs, 300_000, 'kept as made')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
