// NAT-PMP (RFC 6886): message encoding, strict answer validation, the epoch rule, and the
// client's retry schedule against a real UDP responder on 127.0.0.1.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createSocket } from 'node:dgram'
import fc from 'fast-check'
import { ManualClock } from '../../core/clock.ts'
import {
  decodeExternalAddressResponse,
  decodeMapResponse,
  encodeMapRequest,
  encodeExternalAddressRequest,
  EpochTracker,
  NatPmpClient,
  type MapRequest,
} from './natpmp.ts'
import { NatPmpResultError, NatPmpUnavailableError, NatProtocolError, NatTimeoutError } from './errors.ts'
import { FakePmpRouter } from './fake-pmp-router.test-helper.ts'

const TCP_REQ: MapRequest = { protocol: 'tcp', internalPort: 4011, externalPort: 4011, lifetimeSeconds: 3600 }
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'))

test('requests are encoded as RFC 6886 §3.2 and §3.3 lay them out (lease in seconds)', () => {
  assert.deepEqual([...encodeExternalAddressRequest()], [0, 0])
  assert.equal(Buffer.from(encodeMapRequest(TCP_REQ)).toString('hex'), '000200000fab0fab00000e10')
  assert.equal(
    Buffer.from(encodeMapRequest({ protocol: 'udp', internalPort: 1, externalPort: 0, lifetimeSeconds: 0 })).toString(
      'hex',
    ),
    '000100000001000000000000',
  )
  assert.throws(() => encodeMapRequest({ ...TCP_REQ, internalPort: 0 }), RangeError)
  assert.throws(() => encodeMapRequest({ ...TCP_REQ, lifetimeSeconds: 2 ** 32 }), RangeError)
})

test('valid answers decode (captured from miniupnpd 2.3.1)', () => {
  assert.deepEqual(decodeExternalAddressResponse(hex('0080 0000 00000001 0b000001')), { epoch: 1, address: '11.0.0.1' })
  assert.deepEqual(decodeMapResponse(hex('0082 0000 00000001 0fab 0fac 00000e10'), TCP_REQ), {
    epoch: 1,
    protocol: 'tcp',
    internalPort: 4011,
    externalPort: 4012,
    lifetimeSeconds: 3600,
  })
  // a deletion is answered with external port 0 and lifetime 0
  const del = decodeMapResponse(hex('0082 0000 00000006 0fab 0000 00000000'), { ...TCP_REQ, lifetimeSeconds: 0 })
  assert.equal(del.externalPort, 0)
})

test('malformed, oversized and mismatched answers are NatProtocolError (to be ignored)', () => {
  const cases: Array<[string, string, () => unknown]> = [
    ['short', '0080', () => decodeExternalAddressResponse(hex('0080'))],
    [
      'truncated success',
      '0080 0000 00000001 0b00',
      () => decodeExternalAddressResponse(hex('0080 0000 00000001 0b00')),
    ],
    [
      'oversized',
      '17 bytes',
      () =>
        decodeMapResponse(
          new Uint8Array(17).fill(0).map((_, i) => (i === 1 ? 130 : 0)),
          TCP_REQ,
        ),
    ],
    ['oversized 64 KiB', '65536 bytes', () => decodeExternalAddressResponse(new Uint8Array(65_536))],
    ['version 2 (PCP)', '0280…', () => decodeExternalAddressResponse(hex('0280 0000 00000001 0b000001'))],
    ['wrong opcode', '0081…', () => decodeExternalAddressResponse(hex('0081 0000 00000001 0b000001'))],
    ['request, not answer', '0002…', () => decodeMapResponse(hex('0002 0000 00000001 0fab 0fab 00000e10'), TCP_REQ)],
    ['UDP answer to TCP', '0081…', () => decodeMapResponse(hex('0081 0000 00000001 0fab 0fab 00000e10'), TCP_REQ)],
    ['other internal port', '…0fac…', () => decodeMapResponse(hex('0082 0000 00000001 0fac 0fab 00000e10'), TCP_REQ)],
    ['granted port 0', '…0000…', () => decodeMapResponse(hex('0082 0000 00000001 0fab 0000 00000e10'), TCP_REQ)],
    ['granted lifetime 0', '…', () => decodeMapResponse(hex('0082 0000 00000001 0fab 0fab 00000000'), TCP_REQ)],
    ['address 0.0.0.0', '…', () => decodeExternalAddressResponse(hex('0080 0000 00000001 00000000'))],
  ]
  for (const [name, , fn] of cases) assert.throws(fn, NatProtocolError, name)
})

test('error result codes are NatPmpResultError with the code (RFC 6886 §3.5)', () => {
  for (const code of [1, 2, 3, 4, 5, 99]) {
    const bytes = hex(`0082 ${code.toString(16).padStart(4, '0')} 00000001 0fab 0000 00000000`)
    assert.throws(
      () => decodeMapResponse(bytes, TCP_REQ),
      (err: unknown) => err instanceof NatPmpResultError && err.resultCode === code && err.code === 'NATPMP_RESULT',
    )
  }
  // an 8-byte "unsupported version" answer is still read as an error, not as garbage
  assert.throws(() => decodeExternalAddressResponse(hex('0080 0001 00000000')), NatPmpResultError)
})

test('decoders throw only their typed errors on any input (fuzz)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
      for (const decode of [decodeExternalAddressResponse, (b: Uint8Array) => decodeMapResponse(b, TCP_REQ)]) {
        try {
          decode(bytes)
        } catch (err) {
          if (!(err instanceof NatProtocolError || err instanceof NatPmpResultError)) throw err
        }
      }
    }),
    { numRuns: 2000 },
  )
})

test('epoch rule (RFC 6886 §3.6): growing epochs are fine, a fall beyond 7/8 of elapsed time − 2 s is a reboot', () => {
  const t = new EpochTracker()
  assert.equal(t.observe(1000, 0), false)
  assert.equal(t.observe(1060, 60_000), false) // grew exactly with our clock
  assert.equal(t.observe(1060 + 52, 120_000), false) // 52 s of 60: within 7/8 − 2 s slack
  assert.equal(t.observe(1112 + 50, 180_000), true) // 50 s of 60: fell short → rebooted
  assert.equal(t.observe(3, 181_000), true) // went backwards
  assert.equal(t.observe(4, 182_000), false)
})

async function withRouter(fn: (router: FakePmpRouter, clock: ManualClock) => Promise<void>): Promise<void> {
  const clock = new ManualClock(0)
  const router = await FakePmpRouter.start(() => clock.now())
  try {
    await fn(router, clock)
  } finally {
    await router.close()
  }
}

test('client skips junk datagrams from the router and takes the valid answer', async () => {
  await withRouter(async (router, clock) => {
    router.respond = (req, r) => [
      Buffer.alloc(3), // short
      Buffer.alloc(2000, 0xff), // oversized
      Buffer.from('00850000', 'hex'), // wrong opcode
      r.ok(req, { externalPort: 4012 }),
    ]
    const client = new NatPmpClient({ gateway: '127.0.0.1', port: router.port, clock })
    const answer = await client.map(TCP_REQ)
    assert.equal(answer.externalPort, 4012)
  })
})

test('client retries from 250 ms doubling, and gives up after 9 tries', async () => {
  await withRouter(async (router, clock) => {
    router.respond = () => undefined // a router that never answers
    const client = new NatPmpClient({ gateway: '127.0.0.1', port: router.port, clock })
    const pending = client.externalAddress()
    const failed = pending.then(
      () => assert.fail('should time out'),
      (err: unknown) => err,
    )
    for (let i = 1; i <= 9; i++) {
      await router.waitForRequests(i)
      clock.advance(250 * 2 ** (i - 1))
    }
    assert.ok((await failed) instanceof NatTimeoutError)
    assert.deepEqual(
      router.requests.map((r) => r.at),
      [0, 250, 750, 1750, 3750, 7750, 15_750, 31_750, 63_750],
    )
  })
})

test('client answers at once when nothing listens on the NAT-PMP port (ICMP port unreachable)', async () => {
  const socket = createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  const port = socket.address().port
  await new Promise<void>((resolve) => socket.close(() => resolve()))
  const client = new NatPmpClient({ gateway: '127.0.0.1', port, clock: new ManualClock(0) })
  await assert.rejects(client.externalAddress(), NatPmpUnavailableError)
})

test('client rejects a refusing router with its result code, and can be aborted', async () => {
  await withRouter(async (router, clock) => {
    router.respond = (req, r) => r.error(req, 2)
    const client = new NatPmpClient({ gateway: '127.0.0.1', port: router.port, clock })
    await assert.rejects(
      client.map(TCP_REQ),
      (err: unknown) => err instanceof NatPmpResultError && err.resultCode === 2,
    )
    router.respond = () => undefined
    const ac = new AbortController()
    const pending = client.externalAddress({ signal: ac.signal })
    ac.abort()
    await assert.rejects(pending, { name: 'AbortError' })
  })
})
