// Noise's frame decoder without a new RangeError at the end of every chunk (src/net/lp-decoder.ts):
// over real libp2p hosts on loopback, libp2p as shipped makes one per chunk read (counted first,
// in the same process, so the check can fail), a node's host none; frames split anywhere still
// come out whole and in order.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Libp2p } from 'libp2p'
import type { Stream } from '@libp2p/interface'
import { LengthPrefixedDecoder } from '@libp2p/utils'
import { shippedThenHosts } from './helpers/loopback-host.ts'
import { quietLengthDecoder } from '../src/net/lp-decoder.ts'

const PROTOCOL = '/donghae-test/lp/1.0.0'
const MESSAGES = 200
/** What Noise's length decoder throws for a buffer without a whole prefix (its encoder.js). */
const NOISE_MESSAGE = 'Could not decode int16BE'

/** RangeErrors made with Noise's message while `run` runs (global RangeError wrapped, then restored). */
async function rangeErrorsDuring(run: () => Promise<void>): Promise<number> {
  const original = globalThis.RangeError
  let count = 0
  const counted = (args: unknown[]): void => {
    if (args[0] === NOISE_MESSAGE) count++
  }
  globalThis.RangeError = new Proxy(original, {
    apply(target, self, args: unknown[]) {
      counted(args)
      return Reflect.apply(target, self, args)
    },
    construct(target, args: unknown[], newTarget) {
      counted(args)
      return Reflect.construct(target, args, newTarget)
    },
  })
  try {
    await run()
  } finally {
    globalThis.RangeError = original
  }
  return count
}

/** MESSAGES small messages from `from` to `to`, each in its own turn (its own chunk on the socket). */
async function trickle(from: Libp2p, to: Libp2p): Promise<number> {
  let received = 0
  const waiters: Array<{ bytes: number; resolve(): void }> = []
  await to.handle(PROTOCOL, (stream: Stream) => {
    stream.addEventListener('message', (event) => {
      received += event.data.byteLength
      for (const w of waiters) if (received >= w.bytes) w.resolve()
    })
  })
  const until = (bytes: number): Promise<void> =>
    received >= bytes ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ bytes, resolve }))
  const address = to.getMultiaddrs().find((ma) => ma.toString().includes('/tcp/'))
  assert.ok(address !== undefined)
  const stream = await from.dialProtocol(address, PROTOCOL)
  stream.send(new Uint8Array(40))
  await until(40)
  await sleep(50)
  const errors = await rangeErrorsDuring(async () => {
    for (let i = 1; i <= MESSAGES; i++) {
      stream.send(new Uint8Array(40).fill(i))
      await until((i + 1) * 40)
    }
  })
  await stream.close()
  return errors
}

test(
  'a node host reads chunks without a new RangeError each; libp2p as shipped makes one per chunk',
  { timeout: 60_000 },
  async (t) => {
    const { shipped, hosts: quiet } = await shippedThenHosts(trickle)
    t.diagnostic(`${MESSAGES} messages: ${shipped} RangeErrors as shipped, ${quiet} on node hosts`)
    assert.ok(shipped >= MESSAGES, `as shipped, each chunk read ends in a RangeError (${shipped})`)
    assert.ok(quiet <= MESSAGES / 20, `${quiet} RangeErrors on node hosts`)
  },
)

test('frames split anywhere come out whole and in order; a partial prefix waits for the rest', () => {
  let emptyCalls = 0
  const uint16 = (data: Uint8Array | { byteLength: number; get(i: number): number }): number => {
    if (data.byteLength === 0) emptyCalls++
    if (data.byteLength < 2) throw RangeError(NOISE_MESSAGE)
    const at = (i: number): number => (data instanceof Uint8Array ? (data[i] as number) : data.get(i))
    return (at(0) << 8) + at(1)
  }
  const frames = Array.from({ length: 300 }, (_, i) => new Uint8Array(1 + ((i * 37) % 700)).fill(i % 251))
  const wire = new Uint8Array(frames.reduce((n, f) => n + 2 + f.byteLength, 0))
  let offset = 0
  for (const f of frames) {
    wire[offset] = f.byteLength >> 8
    wire[offset + 1] = f.byteLength & 0xff
    wire.set(f, offset + 2)
    offset += 2 + f.byteLength
  }
  for (const cut of [1, 2, 3, 7, 64, 1_000, wire.byteLength]) {
    emptyCalls = 0
    const decoder = new LengthPrefixedDecoder({
      lengthDecoder: quietLengthDecoder(uint16 as never),
      encodingLength: () => 2,
    })
    const out: Uint8Array[] = []
    for (let at = 0; at < wire.byteLength; at += cut)
      for (const frame of decoder.decode(wire.subarray(at, at + cut))) out.push(frame.subarray())
    assert.equal(out.length, frames.length, `chunks of ${cut}`)
    out.forEach((frame, i) => assert.deepEqual(frame, frames[i], `chunks of ${cut}: frame ${i}`))
    assert.equal(emptyCalls, 0, `chunks of ${cut}: the inner decoder saw an empty buffer`)
  }
})
