// node-datachannel loads at its first use, and cleanup sees it whoever loaded it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'

/** Runs `body` in a fresh process (node-datachannel loads once per process) and returns its stdout lines. */
function fresh(body: string): string[] {
  const script = [
    `import * as dc from ${JSON.stringify(new URL('./datachannel.ts', import.meta.url).href)}`,
    body,
  ].join('\n')
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 })
  assert.equal(run.status, 0, run.stderr)
  return run.stdout.trim().split('\n')
}

test('cleanupDataChannels loads nothing when no WebRTC code ran; nodeDataChannel loads the native library', () => {
  const lines = fresh(
    [
      `const say = (s) => process.stdout.write(s + '\\n')`,
      `say(String(dc.dataChannelsLoaded()))`,
      `dc.cleanupDataChannels()`,
      `say(String(dc.dataChannelsLoaded()))`,
      `say(typeof dc.nodeDataChannel().PeerConnection)`,
      `say(String(dc.dataChannelsLoaded()))`,
      `dc.cleanupDataChannels()`,
    ].join('\n'),
  )
  assert.deepEqual(lines, ['false', 'false', 'function', 'true'])
})

test("dataChannelsLoaded sees the native library that libp2p's WebRTC transport (its ES build) loaded", () => {
  const lines = fresh(
    [
      `const say = (s) => process.stdout.write(s + '\\n')`,
      `say(String(dc.dataChannelsLoaded()))`,
      `await import('@libp2p/webrtc')`,
      `const pc = new (await import('node-datachannel')).PeerConnection('probe', { iceServers: [] })`,
      `say(String(dc.dataChannelsLoaded()))`,
      `pc.close()`,
      `dc.cleanupDataChannels()`,
    ].join('\n'),
  )
  assert.deepEqual(lines, ['false', 'true'])
})
