// Attack: keep signature checks on the node's main thread. A signature pool with no thread alive
// checks a few signatures a second inline (its first answers would otherwise wait for a thread's
// start); an attacker who sends transactions one at a time, as fast as gossip or the API takes
// them, would like every one of them checked that way. The real pool, on the real clock: a
// trickle of single signatures (every one a forgery) for a second and a half. At most
// `coldInlineMax` a second are checked inline; the rest go to a thread the trickle started.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import { setImmediate as turn } from 'node:timers/promises'
import { Ed25519KeyPair } from '../../src/identity/keys.ts'
import { DEFAULT_COLD_INLINE_MAX, VerifyPool } from '../../src/identity/verify-pool.ts'
import { signingDigest } from '../../src/core/signing.ts'
import { utf8 } from '../../src/core/bytes.ts'

test('a trickle of single signatures cannot keep the checks on the main thread: at most coldInlineMax a second, then a thread', async () => {
  const key = Ed25519KeyPair.generate()
  const pool = new VerifyPool({ workers: 1, maxWaitMs: 1 })
  pool.start()
  try {
    const start = performance.now()
    let sent = 0
    while (performance.now() - start < 1_500) {
      const payload = utf8(`junk ${sent}`)
      const forged = {
        publicKey: key.publicKey,
        digest: signingDigest('test', payload),
        signature: new Uint8Array(64).fill(sent % 251),
      }
      assert.equal(await pool.verify(forged), false)
      sent++
      await turn()
    }
    const seconds = Math.ceil((performance.now() - start) / 1_000)
    assert.ok(sent > 4 * DEFAULT_COLD_INLINE_MAX, `the trickle sent only ${sent}`)
    assert.ok(
      pool.stats.coldInline <= DEFAULT_COLD_INLINE_MAX * seconds,
      `${pool.stats.coldInline} of ${sent} checked inline in ${seconds} s`,
    )
    assert.equal(pool.threads, 1, 'the trickle started a thread')
    assert.equal(pool.stats.verified, sent)
  } finally {
    await pool.stop()
  }
})
