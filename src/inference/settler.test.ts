// The settler's rounds run only while receipts are pending: an idle gateway holds no settlement
// timer, a job's receipt starts the rounds, and they stop once the chain has settled it. The real
// Settler, Gateway and Worker built by createInference on the simulated network
// (src/inference/sim/network.ts: the real chain modules, a manual clock).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Ed25519KeyPair } from '../identity/keys.ts'
import { didFromEd25519PublicKey } from '../identity/did-key.ts'
import { SimNetwork, SIM_BLOCK_MS, type SimNode } from './sim/network.ts'
import type { ModelRunner } from './components.ts'
import { SETTLE_INTERVAL_MS } from './constants.ts'
import { createTensor } from './tensor.ts'
import { BYTES, MODEL, RUNTIME, pairGenesis } from '../../test/helpers/sim-pair.ts'

const runner: ModelRunner = {
  ep: 'cpu',
  runtime: RUNTIME,
  has: () => true,
  load: async () => {},
  run: async () => ({ outputs: { y: createTensor('float32', [1, 1], new Float32Array([0.5])) }, computeMicros: 1 }),
  calibrate: async () => ({ jobsPerSecond: 100 }),
}

/** One block: time moves on, every component acts, the block commits, they react. */
async function block(net: SimNetwork): Promise<void> {
  net.clock.advance(SIM_BLOCK_MS)
  await net.quiesce()
  net.commit()
  await net.quiesce()
}

test('settlement rounds run while a receipt is pending and stop once it is settled: an idle gateway holds no timer', async () => {
  const workerKey = Ed25519KeyPair.generate()
  const gatewayKey = Ed25519KeyPair.generate()
  const worker = didFromEd25519PublicKey(workerKey.publicKey)
  const genesis = pairGenesis(workerKey, gatewayKey, {
    bonded: true,
    chainId: 'donghae-settler-rounds',
    gatewayBalance: 10n ** 15n,
  })
  const net = new SimNetwork({ seed: 7, genesis })
  const blobs = { get: async () => BYTES, fetch: async () => BYTES }
  const nodes: SimNode[] = [
    net.addNode(workerKey, { blobs, worker: { runner }, gateway: false, selfDeposit: false }),
    net.addNode(gatewayKey, { blobs }),
  ]
  const gateway = nodes[1] as SimNode
  const settler = gateway.inference.settler
  try {
    for (const node of nodes) await node.inference.start()
    const topUp = gateway.inference.gateway.topUpSelfDeposit()
    for (let i = 0; i < 10 && !gateway.inference.table.serving(MODEL).includes(worker); i++) await block(net)
    await topUp
    await block(net)
    assert.ok(gateway.inference.table.serving(MODEL).includes(worker), 'the gateway hears the worker')
    assert.equal(settler.pending, 0)
    assert.equal(settler.scheduled, false, 'no receipt pending, no settlement round scheduled')

    await gateway.inference.gateway.infer({
      model: MODEL,
      inputs: { x: createTensor('float32', [1, 1], Float32Array.of(1)) },
    })
    assert.equal(settler.pending, 1)
    assert.equal(settler.scheduled, true, 'a receipt starts the rounds')
    // the round submits the settlement; the next block settles it
    net.clock.advance(SETTLE_INTERVAL_MS)
    await net.quiesce()
    for (let i = 0; i < 5 && settler.pending > 0; i++) await block(net)
    assert.equal(settler.pending, 0, 'the receipt was settled')
    net.clock.advance(SETTLE_INTERVAL_MS)
    await net.quiesce()
    assert.equal(settler.scheduled, false, 'nothing pending: the rounds stopped')
  } finally {
    for (const node of nodes) node.inference.stop()
    net.close()
  }
})
