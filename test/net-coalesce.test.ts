// TCP writes coalesced per turn of the event loop (src/net/coalesce.ts), over real libp2p
// sockets on loopback: a burst of small messages on a stream leaves in a few socket writes, not
// four per message as with libp2p's own TCP transport (measured here too, so the check can fail).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Socket } from 'node:net'
import type { Libp2p } from 'libp2p'
import type { Stream } from '@libp2p/interface'
import { loopbackHost, shippedLibp2p } from './helpers/loopback-host.ts'

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
  const a = await loopbackHost()
  const b = await loopbackHost()
  // libp2p with its own TCP transport: the same burst, for comparison
  const c = await shippedLibp2p()
  const d = await shippedLibp2p()
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
