// A validator whose block write fails (a full disk: found by `donghae chaos`, docs/chaos.md) used
// to leave consensus for good: the engine stopped on the error and nothing started it again, not
// even sync. Now the runtime starts a new engine from the committed head after a back-off, so the
// node takes part again and catches up once writes succeed. Four in-process validators over a
// MemoryHub with real LevelDB; one node's commits fail for a while.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { toHex } from '../src/core/bytes.ts'
import { actor } from './helpers/chain.ts'
import { testNet, waitFor } from './helpers/chain-net.ts'

test('a validator whose commits fail (disk full) starts consensus again from its committed head and catches up', async (t) => {
  const validators = [actor(), actor(), actor(), actor()]
  const net = await testNet(validators)
  try {
    const nodes = validators.map((v) => net.nodes.get(v.did))
    const [full, ...others] = nodes as [NonNullable<(typeof nodes)[0]>, ...NonNullable<(typeof nodes)[0]>[]]
    await waitFor('height 2 everywhere', () => nodes.every((n) => (n?.app.head.height ?? 0) >= 2))

    // The disk fills: the next three commits on this node fail the way LevelDB fails then.
    const commit = full.app.commit.bind(full.app)
    let failures = 0
    full.app.commit = async (block, cert) => {
      if (failures < 3) {
        failures++
        throw new Error('IO error: No space left on device')
      }
      return commit(block, cert)
    }
    const stuckAt = full.app.head.height
    await waitFor('the three failed commits', () => failures === 3, 30_000)
    const othersAt = Math.max(...others.map((n) => n.app.head.height))
    // the others go on without it; it comes back, syncs, and decides new heights with them
    await waitFor('the node past the others’ height at the time', () => full.app.head.height > othersAt + 2, 60_000)
    t.diagnostic(
      `stuck at ${stuckAt}; ${full.runtime.stats.engineRestarts} engine restarts; now ${full.app.head.height}`,
    )
    assert.ok(full.runtime.stats.engineRestarts >= 1, 'the engine was started again')
    const h = full.app.head.height
    await waitFor('the others at that height', () => others.every((n) => n.app.head.height >= h))
    const ids = await Promise.all(nodes.map(async (n) => toHex((await n?.app.getBlockBytes(h)) ?? new Uint8Array())))
    assert.equal(new Set(ids).size, 1, 'every node has the same block at that height')
  } finally {
    await net.close()
  }
})
