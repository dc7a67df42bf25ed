// A hostile worker answers every job with an error whose text is 1 MiB of terminal escapes,
// forged log lines and bidi overrides, and an error reason the protocol does not have. The
// gateway is the real InferenceService (worker table, signed adverts, retries, #runOn) reached
// through the real HTTP API; the worker is a peer on the in-process transport (MemoryHub) that
// speaks /donghae/infer/2.0.0. What reaches the API's answer and the node's log is cut, and
// stripped of control characters (src/core/untrusted-text.ts).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { encode } from '../../src/core/codec.ts'
import { cidOfBytes, RAW_CODE } from '../../src/core/cid.ts'
import { createLogger } from '../../src/core/logger.ts'
import { StateMachine } from '../../src/chain/host.ts'
import { StateOverlay } from '../../src/chain/state-view.ts'
import { SparseMerkleTree } from '../../src/chain/state/smt.ts'
import { MemoryHub } from '../../src/chain/transport.ts'
import type { GenesisDoc, GenesisModel } from '../../src/chain/genesis.ts'
import { bankModule, feeCollector } from '../../src/bank/bank.ts'
import { stakingModule } from '../../src/staking/staking.ts'
import { inferenceModule } from '../../src/inference/module.ts'
import { signAdvert } from '../../src/inference/adverts.ts'
import type { BlobStore } from '../../src/inference/blobs.ts'
import { INFER_PROTOCOL, InferenceService, type AdvertBus, type ModelRunner } from '../../src/inference/service.ts'
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
const params = { minWorkerBond: 1_000n, settleWindowMs: 60_000 }
const genesis: GenesisDoc = {
  ...makeGenesis([gateway], [[gateway, 1_000_000n]], params),
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
    workers: [{ did: hostile.did, bond: 10_000n, ep: 'cpu' }],
  },
}

/** What the hostile worker says: escapes that clear a terminal, a forged log line, a bidi flip, and a lot of it. */
const HOSTILE =
  '\u001b[2J\u001b[H\u001b]0;owned\u0007\n{"level":30,"msg":"operator token accepted"}\r\n\u202egnp.exe ' +
  'A'.repeat(1 << 20)

function hostileWorker(hub: MemoryHub): void {
  hub
    .join(hostile.did)
    .handle(INFER_PROTOCOL, async () => encode({ error: { reason: '\u001b[31mpwned', message: HOSTILE } }))
}

/** Gossip of slot adverts: the test delivers the hostile worker's signed advert itself. */
function advertBus(): AdvertBus & { deliver(data: Uint8Array, from: string): void } {
  const handlers: Array<(data: Uint8Array, from: string) => void> = []
  return {
    publish: () => {},
    subscribe: (_topic, handler) => {
      handlers.push(handler)
      return () => {}
    },
    deliver: (data, from) => handlers.forEach((h) => h(data, from)),
  }
}

test('hostile worker error text: 1 MiB of terminal escapes, forged log lines and an unknown reason reach the API answer and the log cut and cleaned', async (t) => {
  const machine = new StateMachine({
    chainId: genesis.chainId,
    modules: [bankModule, stakingModule(genesis.params), inferenceModule(genesis.params)],
    fees: feeCollector,
    minFee: genesis.params.minFee,
  })
  const overlay = new StateOverlay(SparseMerkleTree.empty())
  machine.initGenesis(overlay, genesis)
  const state = SparseMerkleTree.empty().apply(overlay.changes())
  const hub = new MemoryHub()
  hostileWorker(hub)
  const adverts = advertBus()
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
  const service = new InferenceService({
    chainId: genesis.chainId,
    params: genesis.params,
    key: gateway.key,
    transport: hub.join(gateway.did),
    adverts,
    state: () => state,
    height: () => 0,
    blockId: async () => undefined,
    submitTx: async () => ({ hash: new Uint8Array(32) }),
    txHeight: async () => undefined,
    blobs: { serve: () => {} } as unknown as BlobStore,
    runner: {} as ModelRunner,
    worker: false,
    audits: false,
    canaryPpm: 0,
    logger,
  })
  service.start()
  adverts.deliver(
    signAdvert(hostile.key, {
      ep: 'cpu',
      runtime: 'onnxruntime-test',
      models: [{ cid: MODEL, mjps: 100_000 }],
      free: 2,
      queue: 0,
      seq: 1,
      time: Date.now(),
    }),
    hostile.did,
  )
  const inference = { infer: (request) => service.infer(request) } as Pick<InferenceApi, 'infer'> as InferenceApi
  const app = createApiServer({
    chain: new MemoryChain({ genesis: makeGenesis([gateway], []), validators: [gateway] }),
    inference,
    operatorToken: TOKEN,
    logger,
  })
  await app.listen({ host: '127.0.0.1', port: PORT })
  try {
    const res = await rawRequest(`http://127.0.0.1:${PORT}`, {
      method: 'POST',
      path: '/v1/infer',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ model: 'tiny', inputs: { x: { dims: [1, 2], type: 'float32', data: [1, 2] } } }),
    })
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
    await service.stop()
  }
})
