// A hostile worker answers every job with an error whose text is 1 MiB of terminal escapes,
// forged log lines and bidi overrides, and an error reason the protocol does not have. The
// gateway is the real gateway component (worker table, signed adverts, draws, retries) reached
// through the real HTTP API; the worker is a peer on the in-process transport (MemoryHub) that
// speaks the worker protocol. What reaches the API's answer and the node's log is cut, and
// stripped of control characters (src/core/untrusted-text.ts).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { encode } from '../../src/core/codec.ts'
import { cidOfBytes, RAW_CODE } from '../../src/core/cid.ts'
import { createLogger } from '../../src/core/logger.ts'
import type { GenesisDoc, GenesisModel } from '../../src/chain/genesis.ts'
import { ADVERT_TOPIC, signAdvert } from '../../src/inference/adverts.ts'
import { INFER_PROTOCOL } from '../../src/inference/constants.ts'
import { SimNetwork, SIM_BLOCK_MS } from '../../src/inference/sim/network.ts'
import { createApiServer } from '../../src/api/server.ts'
import type { InferenceApi } from '../../src/api/inference-api.ts'
import { generateApiToken } from '../../src/api/auth.ts'
import { actor, makeGenesis } from '../helpers/chain.ts'
import { MemoryChain } from '../helpers/memory-chain.ts'
import { errorOf, rawRequest } from '../helpers/raw-http.ts'

/** Fixed port 15 610, used by no other test. */
const PORT = 15_610
const TOKEN = generateApiToken()
const [gateway, hostile] = [actor(), actor()]
const MODEL = cidOfBytes(new TextEncoder().encode('hostile-test-model'), RAW_CODE).toString()
const RUNTIME = 'onnxruntime-test'
const genesis: GenesisDoc = {
  ...makeGenesis([gateway], [[gateway, 1_000_000n]], { minWorkerBond: 1_000n, settleWindowMs: 60_000 }),
  inference: {
    models: [
      {
        owner: gateway.did,
        cid: MODEL,
        name: 'tiny',
        version: '1',
        price: 5n,
        kind: 'tensor',
        inputs: [{ name: 'x', type: 'float32', dims: [null, 2] }],
        outputs: [{ name: 'y', type: 'float32', dims: [null, 2] }],
        tolerance: { maxAbsPpm: 1_000, top1: true },
        size: 100,
      } as GenesisModel,
    ],
    workers: [{ did: hostile.did, bond: 10_000n, ep: 'cpu', runtime: RUNTIME, models: [MODEL] }],
  },
}

/** What the hostile worker says: escapes that clear a terminal, a forged log line, a bidi flip, and a lot of it. */
const HOSTILE =
  '\u001b[2J\u001b[H\u001b]0;owned\u0007\n{"level":30,"msg":"operator token accepted"}\r\n\u202egnp.exe ' +
  'A'.repeat(1 << 20)

test('hostile worker error text: 1 MiB of terminal escapes, forged log lines and an unknown reason reach the API answer and the log cut and cleaned', async (t) => {
  let log = ''
  const logger = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk: Buffer, _enc, done) {
        log += chunk.toString('utf8')
        done()
      },
    }),
  })
  // the gateway is the real one (createInference: worker table, signed adverts, draws, retries)
  const net = new SimNetwork({ seed: 1, genesis, logger })
  net.hub
    .join(hostile.did)
    .handle(INFER_PROTOCOL, async () => encode({ error: { reason: '\u001b[31mpwned', message: HOSTILE } }))
  const node = net.addNode(gateway.key, {
    blobs: { get: async () => undefined, fetch: async () => new Uint8Array() },
    canaryPpm: 0,
  })
  await node.inference.start()
  const deposit = node.inference.gateway.topUpSelfDeposit()
  for (let i = 0; i < 3; i++) {
    net.clock.advance(SIM_BLOCK_MS)
    net.commit()
    await net.quiesce()
  }
  await deposit
  const verdict = await net.publishAdvert(
    hostile.did,
    ADVERT_TOPIC,
    signAdvert(hostile.key, {
      chainId: genesis.chainId,
      ep: 'cpu',
      runtime: RUNTIME,
      models: [{ cid: MODEL, mjps: 100_000 }],
      free: 2,
      queue: 0,
      seq: 1,
      time: net.clock.now(),
    }),
  )
  assert.equal(verdict, 'accept', 'the hostile worker is bonded and its advert valid: the gateway takes it')
  const inference = { infer: (request) => node.inference.gateway.infer(request) } as Pick<
    InferenceApi,
    'infer'
  > as InferenceApi
  const app = createApiServer({
    chain: new MemoryChain({ genesis: makeGenesis([gateway], []), validators: [gateway] }),
    inference,
    operatorToken: TOKEN,
    logger,
  })
  await app.listen({ host: '127.0.0.1', port: PORT })
  try {
    const request = rawRequest(`http://127.0.0.1:${PORT}`, {
      method: 'POST',
      path: '/v1/infer',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ model: 'tiny', inputs: { x: { dims: [1, 2], type: 'float32', data: [1, 2] } } }),
    })
    // the gateway's retries and cool-downs run on the simulation's clock: move it while waiting
    let done = false
    void request.finally(() => (done = true))
    while (!done) {
      await new Promise((resolve) => setTimeout(resolve, 5))
      net.clock.advance(100)
    }
    const res = await request
    const error = errorOf(res)
    t.diagnostic(
      `the node answers: ${res.status} ${error.code} (${String(error.reason)}) ${error.message.slice(0, 300)}`,
    )
    assert.equal(res.status, 502, res.body.slice(0, 300))
    assert.equal(error.code, 'INFERENCE_UNAVAILABLE')
    assert.equal(error.reason, 'failed', 'a reason the protocol does not have is not passed on')
    assert.match(error.message, /no worker completed the job/)
    assert.match(error.message, /more characters cut/, 'the worker’s text was cut')
    assert.ok(error.message.length <= 1_100, `message of ${error.message.length} characters`)
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(error.message, /[\u0000-\u001f\u007f-\u009f\u202a-\u202e]/, 'no control characters')
    assert.ok(res.body.length < 2_000, `answer of ${res.body.length} bytes`)
    // The node's log has the attempts and the failure, each line bounded and without a forged entry.
    const lines = log.trim().split('\n')
    assert.ok(lines.some((l) => l.includes('worker failed; retrying on another')))
    assert.ok(lines.some((l) => l.includes('inference unavailable')))
    for (const line of lines) {
      assert.ok(line.length < 4_000, `a log line of ${line.length} bytes`)
      assert.doesNotMatch(line, /\\u001b|\\u202e|\\n\{"level"/, 'no escapes or forged lines logged')
    }
  } finally {
    await app.close()
    node.inference.stop()
    net.close()
  }
})
