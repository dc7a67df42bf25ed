// TCP writes coalesced per turn of the event loop (src/net/coalesce.ts), over real libp2p
// sockets on loopback: a burst of small messages on a stream leaves in a few socket writes, not
// four per message as with libp2p's own TCP transport (measured here too, so the check can fail).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Socket } from 'node:net'
import { createLibp2p, type Libp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import type { Stream } from '@libp2p/interface'
import { createHost } from '../src/net/host.ts'
import { Ed25519KeyPair } from '../src/identity/keys.ts'

const PROTOCOL = '/donghae-test/burst/1.0.0'
const MESSAGES = 100
const SIZE = 40

/** Socket writes (each a syscall) made by this process towards `port` while `run` runs. */
async function writesTo(port: number, run: () => Promise<void>): Promise<number> {
  const proto = Socket.prototype as unknown as Record<'_write' | '_writev', (...args: unknown[]) => unknown>
  const write = proto._write
  const writev = proto._writev
  let count = 0
  const counting = (original: (...args: unknown[]) => unknown) =>
    function (this: Socket, ...args: unknown[]): unknown {
      if (this.remotePort === port) count++
      return original.apply(this, args)
    }
  proto._write = counting(write)
  proto._writev = counting(writev)
  try {
    await run()
  } finally {
    proto._write = write
    proto._writev = writev
  }
  return count
}

/** Sends MESSAGES small messages in one synchronous run from `from` to `to`; the writes it took. */
async function burst(from: Libp2p, to: Libp2p): Promise<number> {
  let received = 0
  const all = Promise.withResolvers<void>()
  await to.handle(PROTOCOL, (stream: Stream) => {
    stream.addEventListener('message', (event) => {
      received += event.data.byteLength
      if (received >= MESSAGES * SIZE) all.resolve()
    })
  })
  const address = to.getMultiaddrs().find((ma) => ma.toString().includes('/tcp/'))
  assert.ok(address !== undefined)
  const port = Number(address.toString().split('/tcp/')[1]?.split('/')[0])
  const stream = await from.dialProtocol(address, PROTOCOL)
  await new Promise((resolve) => setTimeout(resolve, 100)) // the negotiation's own writes are done
  const writes = await writesTo(port, async () => {
    for (let i = 0; i < MESSAGES; i++) stream.send(new Uint8Array(SIZE).fill(i))
    await all.promise
  })
  await stream.close()
  return writes
}

test('a burst of small stream messages leaves in a few socket writes (coalescedTcp), not four per message', async (t) => {
  const options = { host: '127.0.0.1', port: 0, quic: false, webSockets: false, mdns: false } as const
  const a = await createHost({ key: Ed25519KeyPair.generate(), ...options })
  const b = await createHost({ key: Ed25519KeyPair.generate(), ...options })
  // libp2p with its own TCP transport: the same burst, for comparison
  const plain = (): Promise<Libp2p> =>
    createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
    })
  const c = await plain()
  const d = await plain()
  try {
    await Promise.all([a.start(), b.start()])
    const coalesced = await burst(a as unknown as Libp2p, b as unknown as Libp2p)
    const uncoalesced = await burst(c, d)
    t.diagnostic(
      `${MESSAGES} messages: ${coalesced} socket writes coalesced, ${uncoalesced} with libp2p's TCP transport`,
    )
    assert.ok(
      uncoalesced >= MESSAGES,
      `libp2p's TCP transport writes at least once per message (${uncoalesced} writes for ${MESSAGES})`,
    )
    assert.ok(coalesced <= 5, `${coalesced} socket writes for ${MESSAGES} messages sent in one run`)
  } finally {
    await Promise.all([a.stop(), b.stop(), c.stop(), d.stop()])
  }
})
