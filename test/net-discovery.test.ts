// The discovery pulse of NetworkService on real libp2p hosts: in a network smaller than the peer
// target, pulses that meet nobody new wait longer each time (an idle node stops walking the DHT
// every 10 s), and a lost peer brings the base interval back at once.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { DonghaeHost } from '../src/net/host.ts'
import { MAX_PULSE_BACKOFF, NetworkService } from '../src/net/network.ts'
import { Ed25519KeyPair } from '../src/identity/keys.ts'
import type { Clock } from '../src/core/clock.ts'
import { waitFor } from './helpers/chain-net.ts'
import { loopbackHost } from './helpers/loopback-host.ts'

/**
 * Real time, with each timer the service sets run 100 times faster, and the pulse's recorded: the
 * DID put a pulse may make (again at every pulse until a peer stores the record) sets its own
 * budget timers on the same clock (src/net/dht-put.ts), which are not pauses between pulses.
 */
function recordingClock(pauses: number[]): Clock {
  return {
    now: () => Date.now(),
    setTimer(ms, fn) {
      if (new Error().stack?.includes('dht-put.ts') !== true) pauses.push(ms)
      const timer = setTimeout(fn, ms / 100)
      return () => clearTimeout(timer)
    },
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms / 100)),
  }
}

const start = async (bootstrap: string[] = []): Promise<DonghaeHost> => {
  const host = await loopbackHost({ bootstrap })
  await host.start()
  return host
}

test('discovery pulses back off while they meet no one new, and come back to the base interval when a peer is lost', async () => {
  const a = await start()
  const b = await start()
  const c = await start([String(a.getMultiaddrs()[0])])
  const pauses: number[] = []
  const interval = 1_000
  const network = new NetworkService({
    host: c,
    key: Ed25519KeyPair.generate(),
    bootstrap: [String(a.getMultiaddrs()[0]), String(b.getMultiaddrs()[0])],
    intervalMs: interval,
    clock: recordingClock(pauses),
  })
  try {
    network.start()
    await waitFor(
      'the pauses to reach their longest',
      async () => pauses.includes(interval * MAX_PULSE_BACKOFF),
      30_000,
    )
    assert.equal(c.getPeers().length, 2, 'c met both bootstrap peers')
    const longest = pauses.indexOf(interval * MAX_PULSE_BACKOFF)
    // after the pulse that met the peers, each pause doubles: 2, 4, 8, 16 × the interval
    assert.deepEqual(
      pauses.slice(longest - 3, longest + 1).map((ms) => ms / interval),
      [2, 4, 8, 16],
      `pauses: ${pauses.join(', ')}`,
    )
    const before = pauses.length
    await b.stop()
    await waitFor('a pause at the base interval after b left', async () => pauses.slice(before).includes(interval))
  } finally {
    network.stop()
    await Promise.all([a.stop(), b.stop(), c.stop()])
  }
})
