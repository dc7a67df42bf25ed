// Yamux window updates once half the receive window is used (src/net/yamux-window.ts), over
// real libp2p hosts on loopback: small messages on a long-lived stream get no update back each,
// as they do with libp2p's yamux as shipped (measured first, in the same process, so the check
// can fail), and a transfer of many windows still completes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Libp2p } from 'libp2p'
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import type { Stream } from '@libp2p/interface'
import { shippedThenHosts } from './helpers/loopback-host.ts'
import { windowUpdateDue } from '../src/net/yamux-window.ts'

const PROTOCOL = '/donghae-test/window/1.0.0'
const MESSAGES = 200
const SIZE = 40
const WINDOW = 256 * 1024 // yamux's initial stream window

/**
 * Window updates `stream` receives while `run` runs (the hosts' other streams, gossip, DHT,
 * identify and ping, open and answer streams of their own meanwhile: not counted).
 */
async function updatesDuring(stream: Stream, run: () => Promise<void>): Promise<number> {
  const proto = YamuxStream.prototype as unknown as { handleWindowUpdate: (...args: unknown[]) => unknown }
  const original = proto.handleWindowUpdate
  let count = 0
  proto.handleWindowUpdate = function (this: unknown, ...args: unknown[]) {
    if (this === stream) count++
    return original.apply(this, args)
  }
  try {
    await run()
  } finally {
    proto.handleWindowUpdate = original
  }
  return count
}

/** A stream from `from` to `to` whose receiver counts the bytes; resolves `until(n)` at n bytes. */
async function channel(
  from: Libp2p,
  to: Libp2p,
  protocol: string,
): Promise<{ stream: Stream; until(bytes: number): Promise<void> }> {
  let received = 0
  const waiters: Array<{ bytes: number; resolve(): void }> = []
  await to.handle(protocol, (stream: Stream) => {
    stream.addEventListener('message', (event) => {
      received += event.data.byteLength
      for (const w of waiters) if (received >= w.bytes) w.resolve()
    })
  })
  const address = to.getMultiaddrs().find((ma) => ma.toString().includes('/tcp/'))
  assert.ok(address !== undefined)
  const stream = await from.dialProtocol(address, protocol)
  return {
    stream,
    until: (bytes) =>
      received >= bytes ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ bytes, resolve })),
  }
}

/** MESSAGES small messages, each in its own turn (its own data frame): the updates they drew. */
async function trickle(from: Libp2p, to: Libp2p): Promise<number> {
  const { stream, until } = await channel(from, to, `${PROTOCOL}/trickle`)
  stream.send(new Uint8Array(SIZE)) // the stream's SYN and the receiver's ACK come first
  await until(SIZE)
  await sleep(50)
  const updates = await updatesDuring(stream, async () => {
    for (let i = 1; i <= MESSAGES; i++) {
      stream.send(new Uint8Array(SIZE).fill(i))
      await until((i + 1) * SIZE)
    }
    await sleep(50) // an update sent for the last message arrives
  })
  await stream.close()
  return updates
}

test('windowUpdateDue: flags and pauses always go out; an established stream waits for half its window', () => {
  const at = (state: StreamState, capacity: number) =>
    windowUpdateDue({ state, recvWindow: WINDOW, recvWindowCapacity: capacity })
  assert.equal(at(StreamState.Init, WINDOW), true, 'SYN')
  assert.equal(at(StreamState.SYNReceived, WINDOW), true, 'ACK')
  assert.equal(at(StreamState.Paused, 0), true, 'pausing is yamux own business')
  assert.equal(at(StreamState.Established, WINDOW - 1), false, 'one byte used')
  assert.equal(at(StreamState.SYNSent, WINDOW / 2 + 1), false, 'just under half used')
  assert.equal(at(StreamState.Established, WINDOW / 2), true, 'half used')
  assert.equal(at(StreamState.Established, 0), true, 'all used')
  assert.equal(windowUpdateDue({ state: StreamState.Established } as never), true, 'fields renamed: yamux decides')
})

test(
  'small messages on a stream draw no window update each (half-window rule); many windows still flow',
  { timeout: 60_000 },
  async (t) => {
    // libp2p's yamux as shipped first, before createHost installs the rule in this process
    let bulk = 0
    const total = 16 * WINDOW
    const { shipped, hosts: halved } = await shippedThenHosts(trickle, async (a, b) => {
      // 16 initial windows one way on one stream
      const { stream, until } = await channel(a, b, `${PROTOCOL}/bulk`)
      const chunk = new Uint8Array(32 * 1024).fill(7)
      bulk = await updatesDuring(stream, async () => {
        for (let sent = 0; sent < total; sent += chunk.byteLength) {
          if (!stream.send(chunk))
            await new Promise((resolve) => stream.addEventListener('drain', resolve, { once: true }))
        }
        await until(total)
      })
      await stream.close()
    })
    t.diagnostic(`${MESSAGES} messages of ${SIZE} bytes: ${shipped} window updates as shipped, ${halved} with the rule`)
    assert.ok(shipped >= MESSAGES, `libp2p's yamux answers every data frame (${shipped} updates)`)
    assert.ok(halved <= 1, `${halved} updates for ${(MESSAGES * SIZE) / 1024} KiB, under half a window`)
    t.diagnostic(`${total / 1024 / 1024} MiB in ${total / (32 * 1024)} messages: ${bulk} window updates`)
    // without credit the sender stops after one window (and this test times out); the window
    // grows as the updates come quickly (yamux's auto-tuning, up to 16 MiB), so they are few
    assert.ok(bulk >= 1, `the receiver gave credit as it went (${bulk} updates)`)
  },
)
