// When a worker advertises: on a change within ADVERT_COALESCE_MS (a model it starts to serve, the
// moment it becomes schedulable on chain), and otherwise every ADVERT_INTERVAL_MS. The real
// Worker, WorkerModels and gateway table built by createInference on the simulated network
// (src/inference/sim/network.ts: the real chain modules, a manual clock).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Ed25519KeyPair } from '../identity/keys.ts'
import { SimNetwork, type SimNode } from './sim/network.ts'
import type { ModelRunner } from './components.ts'
import { ADVERT_COALESCE_MS, ADVERT_INTERVAL_MS } from './constants.ts'
import { ADVERT_TTL_MS } from './adverts.ts'
import { createTensor } from './tensor.ts'
import { BOND, BYTES, MODEL, RUNTIME, pairGenesis } from '../../test/helpers/sim-pair.ts'

/** A runner whose `load` finishes only when the test says so. */
function gatedRunner(): { runner: ModelRunner; release: () => void; loads: () => number } {
  let open!: () => void
  const gate = new Promise<void>((resolve) => (open = resolve))
  let loads = 0
  const loaded = new Set<string>()
  return {
    runner: {
      ep: 'cpu',
      runtime: RUNTIME,
      has: (cid) => loaded.has(cid),
      load: async (cid) => {
        loads++
        await gate
        loaded.add(cid)
      },
      run: async () => ({ outputs: { y: createTensor('float32', [1, 1], new Float32Array([0])) }, computeMicros: 1 }),
      calibrate: async () => ({ jobsPerSecond: 100 }),
    },
    release: () => open(),
    loads: () => loads,
  }
}

/** A worker and a gateway on one simulated network, started. */
async function pair(bonded: boolean): Promise<{
  net: SimNetwork
  worker: SimNode
  gateway: SimNode
  workerKey: Ed25519KeyPair
  gated: ReturnType<typeof gatedRunner>
  close: () => void
}> {
  const workerKey = Ed25519KeyPair.generate()
  const gatewayKey = Ed25519KeyPair.generate()
  const net = new SimNetwork({
    seed: 1,
    genesis: pairGenesis(workerKey, gatewayKey, { bonded, chainId: 'donghae-worker-adverts' }),
  })
  const gated = gatedRunner()
  const blobs = { get: async () => BYTES, fetch: async () => BYTES }
  const worker = net.addNode(workerKey, { blobs, worker: { runner: gated.runner }, gateway: false, selfDeposit: false })
  const gateway = net.addNode(gatewayKey, { blobs, selfDeposit: false })
  await worker.inference.start()
  await gateway.inference.start()
  const close = (): void => {
    worker.inference.stop()
    gateway.inference.stop()
    net.close()
  }
  return { net, worker, gateway, workerKey, gated, close }
}

/**
 * Moves the clock on in small steps, letting every component act after each (a few turns of the
 * event loop: `net.quiesce()` would wait for the gated load too).
 */
async function advance(net: SimNetwork, ms: number): Promise<void> {
  for (let left = ms; left > 0; left -= 20) {
    net.clock.advance(Math.min(20, left))
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
  }
}

const heard = (gateway: SimNode, worker: SimNode): boolean =>
  gateway.inference.table.serving(MODEL).includes(worker.did)

test('a worker advertises a model it starts to serve within ADVERT_COALESCE_MS, not at the next heartbeat', async () => {
  const { net, worker, gateway, gated, close } = await pair(true)
  try {
    // the heartbeats before the load have nothing to offer
    await advance(net, ADVERT_INTERVAL_MS + 500)
    assert.equal(gated.loads(), 1, 'the model is loading')
    assert.equal(heard(gateway, worker), false, 'nothing advertised while no model is served')
    gated.release()
    await advance(net, ADVERT_COALESCE_MS + 20)
    assert.equal(heard(gateway, worker), true, 'the gateway heard the new model without waiting for a heartbeat')
  } finally {
    close()
  }
})

test('a worker advertises in the commit that makes it schedulable (bonded), not at the next heartbeat', async () => {
  const { net, worker, gateway, workerKey, gated, close } = await pair(false)
  try {
    gated.release()
    await advance(net, ADVERT_INTERVAL_MS + 500)
    assert.ok(worker.inference.worker?.models.serves(MODEL), 'the model is served here')
    assert.equal(heard(gateway, worker), false, 'an unbonded worker does not advertise')
    net.submit(workerKey, 'inference.bond', { amount: BOND, ep: 'cpu', runtime: RUNTIME })
    net.commit()
    await advance(net, ADVERT_COALESCE_MS + 20)
    assert.equal(heard(gateway, worker), true, 'the gateway heard the worker right after its bond committed')
  } finally {
    close()
  }
})

test('an unchanged worker advertises every ADVERT_INTERVAL_MS, and nothing between', async () => {
  const { net, worker, gateway, gated, close } = await pair(true)
  try {
    gated.release()
    await advance(net, ADVERT_COALESCE_MS + 20)
    const seq = (): number | undefined => gateway.inference.table.live().find((a) => a.worker === worker.did)?.seq
    const first = seq()
    assert.notEqual(first, undefined)
    await advance(net, ADVERT_INTERVAL_MS - ADVERT_COALESCE_MS - 100)
    assert.equal(seq(), first, 'no advert between heartbeats while nothing changes')
    await advance(net, 200)
    assert.ok((seq() ?? 0) > (first ?? 0), 'a heartbeat came')
    assert.ok(ADVERT_TTL_MS >= 3 * ADVERT_INTERVAL_MS, 'two lost heartbeats in a row cost nothing')
  } finally {
    close()
  }
})
