// STUN Binding responder (RFC 5389): the RFC 5769 test vectors, the responder's answer/ignore
// rules, its rate limits on a manual clock, and the server and client over UDP on 127.0.0.1.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import fc from 'fast-check'
import { ManualClock } from '../core/clock.ts'
import {
  answerDatagram,
  classifyRequest,
  decodeBindingSuccess,
  decodeXorMappedAddress,
  encodeBindingRequest,
  encodeBindingSuccess,
  encodeXorMappedAddress,
  queryStun,
  StunProtocolError,
  StunRateLimiter,
  StunServer,
  StunTimeoutError,
  STUN_MAGIC_COOKIE,
  type TransportAddress,
} from './stun.ts'

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'))

// RFC 5769 §2.1-2.3 (the password of the MESSAGE-INTEGRITY, "VOkJxbRl1RmTxUk/WvJxBt", is not needed:
// the responder authenticates nothing).
const TXID = hex('b7e7a701 bc34d686 fa87dfae')
const RFC5769_REQUEST = hex(`
  00010058 2112a442 b7e7a701 bc34d686 fa87dfae
  80220010 5354554e 20746573 7420636c 69656e74
  00240004 6e0001ff
  80290008 932ff9b1 51263b36
  00060009 6576746a 3a683676 59202020
  00080014 9aeaa70c bfd8cb56 781ef2b5 b2d3f249 c1b571a2
  80280004 e57a3bcf`)
const RFC5769_IPV4_RESPONSE = hex(`
  0101003c 2112a442 b7e7a701 bc34d686 fa87dfae
  8022000b 74657374 20766563 746f7220
  00200008 0001a147 e112a643
  00080014 2b91f599 fd9e90c3 8c7489f9 2af9ba53 f06be7d7
  80280004 c07d4c96`)
const RFC5769_IPV6_RESPONSE = hex(`
  01010048 2112a442 b7e7a701 bc34d686 fa87dfae
  8022000b 74657374 20766563 746f7220
  00200014 0002a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9
  00080014 a382954e 4be67bf1 1784c97c 8292c275 bfe3ed41
  80280004 c8fb0b4c`)

const FROM_V4: TransportAddress = { family: 'IPv4', address: '192.0.2.1', port: 32853 }
const FROM_V6: TransportAddress = { family: 'IPv6', address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 }

test('RFC 5769 §2.1: the sample request (ICE attributes, MESSAGE-INTEGRITY, FINGERPRINT) is a Binding request', () => {
  const verdict = classifyRequest(RFC5769_REQUEST)
  assert.equal(verdict.kind, 'binding')
  assert.deepEqual(verdict.kind === 'binding' ? [...verdict.transactionId] : [], [...TXID])
})

test('RFC 5769 §2.2 and §2.3: the sample responses decode to 192.0.2.1:32853 and 2001:db8:…:6677:32853', () => {
  assert.deepEqual(decodeBindingSuccess(RFC5769_IPV4_RESPONSE, TXID), FROM_V4)
  assert.deepEqual(decodeBindingSuccess(RFC5769_IPV6_RESPONSE, TXID), FROM_V6)
  // and our encoder writes the same XOR-MAPPED-ADDRESS values as the samples
  assert.deepEqual([...encodeXorMappedAddress(FROM_V4, TXID)], [...hex('0001a147 e112a643')])
  assert.deepEqual([...encodeXorMappedAddress(FROM_V6, TXID)], [...hex('0002a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9')])
})

test('a Binding request is answered with a success response whose XOR-MAPPED-ADDRESS is the source', () => {
  for (const from of [FROM_V4, FROM_V6]) {
    const answer = answerDatagram(RFC5769_REQUEST, from)
    assert.ok(answer !== undefined)
    assert.equal(Buffer.from(answer.subarray(0, 2)).toString('hex'), '0101')
    assert.equal(Buffer.from(answer.subarray(4, 8)).readUInt32BE(0), STUN_MAGIC_COOKIE)
    assert.deepEqual([...answer.subarray(8, 20)], [...TXID], 'same transaction id')
    assert.deepEqual(decodeBindingSuccess(answer, TXID), from)
    // small answers: a poor amplifier (the rate limits do the rest)
    assert.ok(answer.length <= 64, `${answer.length} bytes`)
  }
  const minimal = encodeBindingRequest(TXID)
  assert.equal(minimal.length, 28)
  assert.deepEqual(decodeBindingSuccess(answerDatagram(minimal, FROM_V4) as Uint8Array, TXID), FROM_V4)
})

test('everything but a well-formed Binding request with the magic cookie is ignored', () => {
  const req = encodeBindingRequest(TXID)
  const mutate = (f: (b: Uint8Array) => void): Uint8Array => {
    const copy = req.slice()
    f(copy)
    return copy
  }
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['empty', new Uint8Array(0), /shorter/],
    ['truncated header', req.subarray(0, 19), /shorter/],
    ['no magic cookie (RFC 3489)', mutate((b) => (b[4] = 0)), /magic cookie/],
    ['top bits set (not STUN)', mutate((b) => (b[0] = 0x40)), /first two bits/],
    ['Binding indication', mutate((b) => (b[1] = 0x11)), /not a Binding request/],
    ['Binding success response', RFC5769_IPV4_RESPONSE, /not a Binding request/],
    ['Allocate request (TURN)', mutate((b) => (b[1] = 0x03)), /not a Binding request/],
    ['length field too long', mutate((b) => (b[3] = 12)), /length/],
    ['length not a multiple of 4', mutate((b) => (b[3] = 6)), /length/],
    ['trailing byte', Uint8Array.from([...req, 0]), /length/],
    ['wrong FINGERPRINT', mutate((b) => (b[27] = (b[27] as number) ^ 1)), /FINGERPRINT/],
    ['attribute overruns the body', hex('00010008 2112a442 b7e7a701 bc34d686 fa87dfae 80220010 00000000'), /overrun/],
  ]
  for (const [what, msg, why] of cases) {
    const verdict = classifyRequest(msg)
    assert.equal(verdict.kind, 'ignore', what)
    assert.match(verdict.kind === 'ignore' ? verdict.why : '', why, what)
    assert.equal(answerDatagram(msg, FROM_V4), undefined, what)
  }
})

test('a Binding request with an unknown comprehension-required attribute gets 420 listing it (§7.3.1)', () => {
  // CHANGE-REQUEST (0x0003, RFC 5780) is not supported; SOFTWARE (0x8022) is optional and ignored
  const msg = hex('00010010 2112a442 b7e7a701 bc34d686 fa87dfae 00030004 00000006 80220004 74657374')
  const verdict = classifyRequest(msg)
  assert.deepEqual(verdict, { kind: 'unknown-attributes', transactionId: TXID, attributes: [0x0003] })
  const answer = answerDatagram(msg, FROM_V4) as Uint8Array
  assert.equal(Buffer.from(answer.subarray(0, 2)).toString('hex'), '0111', 'Binding error response')
  assert.ok(answer.length <= 64, `${answer.length} bytes`)
  const body = Buffer.from(answer.subarray(20)).toString('hex')
  assert.match(body, /^0009001500000414/, 'ERROR-CODE 420')
  assert.match(body, /000a00020003/, 'UNKNOWN-ATTRIBUTES lists 0x0003')
  assert.throws(() => decodeBindingSuccess(answer, TXID), StunProtocolError)
})

test('property: XOR-MAPPED-ADDRESS round-trips every IPv4 and IPv6 address, port and transaction id', () => {
  const txid = fc.uint8Array({ minLength: 12, maxLength: 12 })
  const v4 = fc.ipV4().map((address) => ({ family: 'IPv4' as const, address }))
  const v6 = fc
    .array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 })
    .map((w) => ({ family: 'IPv6' as const, address: w.map((x) => x.toString(16)).join(':') }))
  fc.assert(
    fc.property(fc.oneof(v4, v6), fc.integer({ min: 0, max: 65_535 }), txid, (ip, port, id) => {
      const addr = { ...ip, port }
      const back = decodeXorMappedAddress(encodeXorMappedAddress(addr, id), id)
      assert.equal(back.port, port)
      assert.deepEqual(
        encodeXorMappedAddress(back, id),
        encodeXorMappedAddress(addr, id),
        `${addr.address} → ${back.address}`,
      )
      const answer = encodeBindingSuccess(id, addr)
      assert.deepEqual(decodeBindingSuccess(answer, id), back)
    }),
  )
  assert.equal(
    decodeXorMappedAddress(encodeXorMappedAddress({ family: 'IPv6', address: '::1', port: 1 }, TXID), TXID).address,
    '::1',
  )
  assert.equal(
    decodeXorMappedAddress(encodeXorMappedAddress({ family: 'IPv6', address: 'fe80::1:0:0:2', port: 1 }, TXID), TXID)
      .address,
    'fe80::1:0:0:2',
  )
})

test('property: the responder never throws and answers only Binding requests, whatever the bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), fc.boolean(), (bytes, withCookie) => {
      const msg = bytes.slice()
      if (withCookie && msg.length >= 20) {
        msg.set([0x21, 0x12, 0xa4, 0x42], 4)
        msg[2] = 0
        msg[3] = msg.length - 20
      }
      const answer = answerDatagram(msg, FROM_V4)
      if (answer !== undefined) {
        assert.equal(msg[0], 0x00)
        assert.equal(msg[1], 0x01)
      }
    }),
  )
})

test('rate limits: a burst per source address, then its rate; other addresses are not held back', () => {
  const clock = new ManualClock(1_000)
  const limiter = new StunRateLimiter({ ratePerAddress: 10, burstPerAddress: 20, rateTotal: 1000, clock })
  let granted = 0
  for (let i = 0; i < 50; i++) granted += Number(limiter.take('11.0.0.1'))
  assert.equal(granted, 20, 'the burst')
  assert.equal(limiter.take('11.0.0.2'), true, 'another address has its own bucket')
  clock.advance(1000)
  granted = 0
  for (let i = 0; i < 50; i++) granted += Number(limiter.take('11.0.0.1'))
  assert.equal(granted, 10, 'ten per second after the burst')
})

test('rate limits: all addresses together are bounded, and the table of addresses stays bounded', () => {
  const clock = new ManualClock(0)
  const limiter = new StunRateLimiter({
    ratePerAddress: 10,
    burstPerAddress: 20,
    rateTotal: 100,
    maxTracked: 64,
    clock,
  })
  let granted = 0
  for (let i = 0; i < 1000; i++) granted += Number(limiter.take(`10.0.${i >> 8}.${i & 255}`))
  assert.equal(granted, 100, 'a spoofed flood from many addresses is capped by the total rate')
  assert.equal(limiter.tracked, 64)
})

test('server on 127.0.0.1: queryStun learns its own address and port; junk gets no answer', async () => {
  const server = new StunServer({ host: '127.0.0.1', port: 0 })
  await server.start()
  try {
    const { port } = server.address()
    const mapped = await queryStun({ host: '127.0.0.1', port }, { localPort: 0 })
    assert.equal(mapped.family, 'IPv4')
    assert.equal(mapped.address, '127.0.0.1')
    assert.ok(mapped.port > 0)

    // a raw socket: the answer's XOR-MAPPED-ADDRESS carries this socket's own port; junk is dropped
    const socket = createSocket('udp4')
    socket.bind(0, '127.0.0.1')
    await once(socket, 'listening')
    const replies: Uint8Array[] = []
    socket.on('message', (m) => replies.push(m))
    socket.send(Buffer.from('hello, not STUN at all'), port, '127.0.0.1')
    socket.send(encodeBindingRequest(TXID), port, '127.0.0.1')
    const deadline = Date.now() + 3000
    while (replies.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    await new Promise((r) => setTimeout(r, 100))
    assert.equal(replies.length, 1, 'one answer, to the Binding request only')
    assert.deepEqual(decodeBindingSuccess(replies[0] as Uint8Array, TXID), {
      family: 'IPv4',
      address: '127.0.0.1',
      port: socket.address().port,
    })
    socket.close()
    assert.deepEqual(server.stats(), { answered: 2, ignored: 1, limited: 0 })
  } finally {
    await server.stop()
  }
})

test('queryStun: a silent server is a timeout, an aborted signal an AbortError', async () => {
  const silent = createSocket('udp4')
  silent.bind(0, '127.0.0.1')
  await once(silent, 'listening')
  try {
    const port = silent.address().port
    await assert.rejects(queryStun({ host: '127.0.0.1', port }, { timeoutMs: 300 }), StunTimeoutError)
    await assert.rejects(queryStun({ host: '127.0.0.1', port }, { signal: AbortSignal.timeout(50) }), {
      name: 'AbortError',
    })
  } finally {
    silent.close()
  }
})
