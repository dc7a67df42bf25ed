// A node's data channel end to end: `donghae devnet --nodes 1` (a real `donghae node` process with
// the demo language model registered and served by its own worker) and, in this process, a real
// node-datachannel WebRtcOfferer, as another node or a browser would be:
//   signed offer ─ HTTP POST /v1/webrtc/offer (from a page on another origin) ─▶ 201 signed answer
//   answer verified (the node's DID, signature, nonce), the DTLS certificate actually negotiated
//   checked against the signed answer SDP, channel open, `info`, `chat` with streamed tokens,
//   the session listed for the operator, DELETE hangs up.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import nodeDataChannel, { type PeerConnection } from 'node-datachannel'
import { Ed25519KeyPair } from '../src/identity/keys.ts'
import { DEMO_LM_NAME } from '../src/inference/demo-models.ts'
import { ChannelClient } from '../src/net/webrtc/channel.ts'
import { WebRtcOfferer, defaultPeerConnectionFactory } from '../src/net/webrtc/peer.ts'
import { checkNegotiatedFingerprint, fingerprintOf, verifyAnswer } from '../src/net/webrtc/signal.ts'
import type { WebRtcChatAnswer, WebRtcInfo } from '../src/api/webrtc-api.ts'
import { DonghaeClient } from '../src/api/client.ts'
import { createRng, testSeed } from './helpers/random.ts'
import { waitFor } from './helpers/chain-net.ts'
import { exited, firstJsonLine, getJson, spawnDevnet } from './helpers/processes.ts'

interface DevnetInfo {
  nodes: Array<{ did: string; api: string; home: string }>
}

test('a node answers a signed offer over HTTP and serves its language model on the data channel', async (t) => {
  const rng = createRng(testSeed())
  // 17 000–17 800: API on base, p2p on base + 100
  const base = 17_000 + rng.int(0, 100) * 8
  const dir = await mkdtemp(join(tmpdir(), 'donghae-webrtc-'))
  const { child: devnet, stderr } = spawnDevnet(dir, 1, base)
  const offererPcs: PeerConnection[] = []
  const offerer = new WebRtcOfferer({
    key: Ed25519KeyPair.generate(),
    factory: (name, config) => {
      const pc = defaultPeerConnectionFactory(name, config)
      offererPcs.push(pc)
      return pc
    },
  })
  try {
    const info = (await firstJsonLine(devnet)) as DevnetInfo
    const node = info.nodes[0] as DevnetInfo['nodes'][number]
    const token = (await readFile(join(node.home, 'api-token'), 'utf8')).trim()
    await waitFor(
      `${DEMO_LM_NAME} served by the node's worker`,
      async () =>
        ((await getJson<{ data: Array<{ id: string; workers: number }> }>(`${node.api}/v1/models`))?.data.find(
          (m) => m.id === DEMO_LM_NAME,
        )?.workers ?? 0) > 0,
      120_000,
    )

    // ---- signalling over HTTP, from a page on another node's dashboard --------------------------
    const t0 = performance.now()
    const pending = await offerer.createOffer(node.did)
    const posted = await fetch(`${node.api}/v1/webrtc/offer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: 'http://127.0.0.1:1' },
      body: JSON.stringify(pending.offer),
    })
    const answer: unknown = await posted.json()
    assert.equal(posted.status, 201, JSON.stringify(answer))
    assert.equal(posted.headers.get('access-control-allow-origin'), '*')
    const location = posted.headers.get('location') ?? ''
    assert.match(location, /^\/v1\/webrtc\/sessions\/[0-9a-f]{32}$/)
    const verified = verifyAnswer(answer, pending.offer, { expectedDid: node.did, now: Date.now() })
    assert.equal(verified.nonce, pending.offer.nonce)

    const connection = await pending.accept(answer)
    const setupMs = performance.now() - t0
    assert.equal(connection.peerDid, node.did)
    // the certificate the DTLS handshake presented is the one the node signed in its answer
    const negotiated = offererPcs[0]?.remoteFingerprint()
    assert.ok(negotiated !== undefined)
    checkNegotiatedFingerprint(verified, negotiated)
    assert.equal(negotiated.value.toUpperCase(), fingerprintOf(verified.sdp))

    // ---- the channel: info, then a streamed chat --------------------------------------------------
    const client = new ChannelClient(connection.channel)
    const about = (await client.request({ op: 'info' })) as WebRtcInfo
    assert.equal(about.did, node.did)
    assert.equal(about.models[0]?.name, DEMO_LM_NAME)
    assert.equal(about.models[0]?.kind, 'lm')

    const tokens: string[] = []
    const t1 = performance.now()
    let firstTokenMs = 0
    const chat = (await client.request(
      { op: 'chat', messages: [{ role: 'user', content: 'Tell me of the white whale.' }], max_tokens: 32 },
      {
        onProgress: (p) => {
          if (tokens.length === 0) firstTokenMs = performance.now() - t1
          tokens.push((p as { token: string }).token)
        },
      },
    )) as WebRtcChatAnswer
    assert.equal(chat.model, DEMO_LM_NAME)
    assert.ok(chat.completionTokens > 0 && chat.promptTokens > 0)
    assert.ok(tokens.length > 1, `tokens streamed as they came (${tokens.length} progress frames)`)
    assert.equal(tokens.join(''), chat.text)
    t.diagnostic(
      `setup ${setupMs.toFixed(0)} ms (offer, POST, answer, ICE, DTLS, SCTP); first token ${firstTokenMs.toFixed(0)} ms; ${chat.completionTokens} tokens in ${tokens.length} frames: ${JSON.stringify(chat.text)}`,
    )

    // ---- the operator sees the session; DELETE hangs up -----------------------------------------
    const operator = new DonghaeClient(node.api, { token })
    const listed = await operator.webrtcSessions()
    const id = location.split('/').pop()
    const session = listed.sessions.find((s) => s.id === id)
    assert.equal(session?.state, 'connected')
    assert.equal(session.peer, offerer.did)
    assert.equal(session.requests, 2)
    const hangUp = await fetch(`${node.api}${location}`, {
      method: 'DELETE',
      headers: { origin: 'http://127.0.0.1:1' },
    })
    assert.equal(hangUp.status, 204)
    await connection.closed
    await assert.rejects(client.request({ op: 'info' }), /closed/)
    const after = await operator.webrtcSessions()
    assert.equal(after.sessions.find((s) => s.id === id)?.state, 'closed')
    assert.equal((await fetch(`${node.api}${location}`, { method: 'DELETE' })).status, 404)
  } catch (err) {
    t.diagnostic(`devnet stderr tail:\n${stderr().slice(-4000)}`)
    throw err
  } finally {
    offerer.stop()
    devnet.kill('SIGINT')
    await exited(devnet)
    nodeDataChannel.cleanup()
    await rm(dir, { recursive: true, force: true })
  }
})
