/**
 * A STUN Binding responder (RFC 5389), so that any node can tell its peers the address their NAT
 * gives them (their server-reflexive ICE candidate) without a third-party STUN server.
 *
 * It answers one thing: a well-formed Binding request carrying the magic cookie gets a Binding
 * success response with XOR-MAPPED-ADDRESS (and FINGERPRINT). A Binding request with a
 * comprehension-required attribute it does not know gets 420 (Unknown Attribute), as §7.3.1
 * requires. Everything else (indications, responses, other methods, RFC 3489 messages without the
 * cookie, truncated or malformed messages, a wrong FINGERPRINT) is dropped without an answer. Each
 * source address is rate limited by a token bucket, and all sources together by another, so a
 * spoofed flood cannot turn the node into a reflector (and an answer is small: 40 bytes over IPv4,
 * 52 over IPv6, a 420 at most 64 plus 2 per further unknown attribute).
 *
 *   const stun = new StunServer({ port: 3478, logger })
 *   await stun.start()   // ... stun.stop()
 *
 * `queryStun` is the matching client (one Binding request), used by tests and diagnostics.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { isIPv4, isIPv6 } from 'node:net'
import { crc32 } from 'node:zlib'
import { randomBytes } from 'node:crypto'
import { AbortError, DonghaeError, type ErrorAction } from '../core/errors.ts'
import { systemClock, type Clock } from '../core/clock.ts'
import { silentLogger, type Logger } from '../core/logger.ts'

export const STUN_MAGIC_COOKIE = 0x2112a442
/** The default STUN port (RFC 5389 §18.4). */
export const STUN_DEFAULT_PORT = 3478
export const STUN_HEADER_BYTES = 20

const BINDING_REQUEST = 0x0001
const BINDING_SUCCESS = 0x0101
const BINDING_ERROR = 0x0111

const ATTR_MAPPED_ADDRESS = 0x0001
const ATTR_ERROR_CODE = 0x0009
const ATTR_UNKNOWN_ATTRIBUTES = 0x000a
const ATTR_XOR_MAPPED_ADDRESS = 0x0020
const ATTR_FINGERPRINT = 0x8028
const FINGERPRINT_XOR = 0x5354554e

/**
 * Comprehension-required attributes (0x0000-0x7fff) a request may carry that the responder
 * understands well enough to ignore: it authenticates nothing, so USERNAME, MESSAGE-INTEGRITY,
 * REALM and NONCE carry no meaning for it, and ICE's PRIORITY and USE-CANDIDATE (RFC 8445) only
 * matter between peers.
 */
const IGNORED_REQUIRED_ATTRS: ReadonlySet<number> = new Set([0x0006, 0x0008, 0x0014, 0x0015, 0x0024, 0x0025])

/**
 * Requests answered per source address per second, and the burst allowed above it. A client
 * sends one request and retransmits at most 7 times (RFC 5389 §7.2.1); an ICE agent asks each
 * server once per local address. @default 10
 */
export const STUN_RATE_PER_ADDRESS = 10
/** @default 20 */
export const STUN_BURST_PER_ADDRESS = 20
/** Responses per second from all sources together. @default 1000 */
export const STUN_RATE_TOTAL = 1000
/** Source addresses whose buckets are remembered (the least recently seen is forgotten first). @default 4096 */
export const STUN_TRACKED_ADDRESSES = 4096
/** Longest wait for an answer in `queryStun`. @default 3 s */
export const STUN_QUERY_TIMEOUT_MS = 3000

/** A STUN answer that is malformed or does not match the request (`queryStun`). */
export class StunProtocolError extends DonghaeError {
  static override readonly code: string = 'STUN_BAD_RESPONSE'
  override name = 'StunProtocolError'
  readonly action: ErrorAction = 'reject'
}

/** No answer from the STUN server in time (`queryStun`). */
export class StunTimeoutError extends DonghaeError {
  static override readonly code: string = 'STUN_TIMEOUT'
  override name = 'StunTimeoutError'
}

export interface TransportAddress {
  family: 'IPv4' | 'IPv6'
  address: string
  port: number
}

/** What the responder makes of one datagram. */
export type StunVerdict =
  | { kind: 'binding'; transactionId: Uint8Array }
  | { kind: 'unknown-attributes'; transactionId: Uint8Array; attributes: number[] }
  | { kind: 'ignore'; why: string }

interface Attribute {
  type: number
  value: Uint8Array
  /** Offset of the attribute's header within the message. */
  at: number
}

/** Walks a message's attributes; undefined when they do not tile the body exactly. */
function attributes(msg: Uint8Array): Attribute[] | undefined {
  const view = new DataView(msg.buffer, msg.byteOffset, msg.byteLength)
  const out: Attribute[] = []
  let at = STUN_HEADER_BYTES
  while (at < msg.length) {
    if (at + 4 > msg.length) return undefined
    const type = view.getUint16(at)
    const length = view.getUint16(at + 2)
    const end = at + 4 + length
    if (end > msg.length) return undefined
    out.push({ type, value: msg.subarray(at + 4, end), at })
    at = end + ((4 - (length % 4)) % 4)
  }
  return at === msg.length ? out : undefined
}

function fingerprintOf(msg: Uint8Array): number {
  return (crc32(msg) ^ FINGERPRINT_XOR) >>> 0
}

/** The common checks of RFC 5389 §6-7.3 on any STUN message; the reason when it is not one. */
function checkHeader(msg: Uint8Array): string | undefined {
  if (msg.length < STUN_HEADER_BYTES) return 'shorter than a STUN header'
  const view = new DataView(msg.buffer, msg.byteOffset, msg.byteLength)
  if ((msg[0] as number) & 0xc0) return 'first two bits not zero (not STUN)'
  if (view.getUint32(4) !== STUN_MAGIC_COOKIE) return 'no magic cookie (RFC 3489 or not STUN)'
  const length = view.getUint16(2)
  if (length % 4 !== 0 || STUN_HEADER_BYTES + length !== msg.length) return 'length field does not match'
  return undefined
}

/** Checks a FINGERPRINT attribute when there is one: it must be last and match (§15.5). */
function fingerprintOk(msg: Uint8Array, attrs: Attribute[]): boolean {
  const i = attrs.findIndex((a) => a.type === ATTR_FINGERPRINT)
  if (i === -1) return true
  const fp = attrs[i] as Attribute
  if (i !== attrs.length - 1 || fp.value.length !== 4) return false
  const stated = new DataView(fp.value.buffer, fp.value.byteOffset, 4).getUint32(0)
  return stated === fingerprintOf(msg.subarray(0, fp.at))
}

/** Classifies one datagram received by the responder (pure). */
export function classifyRequest(msg: Uint8Array): StunVerdict {
  const bad = checkHeader(msg)
  if (bad !== undefined) return { kind: 'ignore', why: bad }
  const type = ((msg[0] as number) << 8) | (msg[1] as number)
  if (type !== BINDING_REQUEST)
    return { kind: 'ignore', why: `message type 0x${type.toString(16)} is not a Binding request` }
  const attrs = attributes(msg)
  if (attrs === undefined) return { kind: 'ignore', why: 'attributes overrun the message' }
  if (!fingerprintOk(msg, attrs)) return { kind: 'ignore', why: 'FINGERPRINT wrong or not last' }
  const transactionId = msg.slice(8, STUN_HEADER_BYTES)
  const unknown = attrs
    .map((a) => a.type)
    .filter((t) => t < 0x8000 && !IGNORED_REQUIRED_ATTRS.has(t))
    .filter((t, i, all) => all.indexOf(t) === i)
  if (unknown.length > 0) return { kind: 'unknown-attributes', transactionId, attributes: unknown }
  return { kind: 'binding', transactionId }
}

function ipBytes(addr: TransportAddress): Uint8Array {
  if (addr.family === 'IPv4') {
    if (!isIPv4(addr.address)) throw new RangeError(`not an IPv4 address: ${addr.address}`)
    return Uint8Array.from(addr.address.split('.').map(Number))
  }
  if (!isIPv6(addr.address)) throw new RangeError(`not an IPv6 address: ${addr.address}`)
  const [head = '', tail] = addr.address.split('::') as [string, string | undefined]
  const groups = (s: string): number[] => (s === '' ? [] : s.split(':').flatMap(group))
  const group = (g: string): number[] => {
    if (!g.includes('.')) return [parseInt(g, 16)]
    const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number]
    return [(a << 8) | b, (c << 8) | d]
  }
  const left = groups(head)
  const right = tail === undefined ? [] : groups(tail)
  const words = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right]
  const out = new Uint8Array(16)
  words.forEach((w, i) => {
    out[2 * i] = w >> 8
    out[2 * i + 1] = w & 0xff
  })
  return out
}

function ipString(family: 'IPv4' | 'IPv6', bytes: Uint8Array): string {
  if (family === 'IPv4') return Array.from(bytes).join('.')
  const words: string[] = []
  for (let i = 0; i < 16; i += 2) words.push((((bytes[i] as number) << 8) | (bytes[i + 1] as number)).toString(16))
  // the longest run of zero groups becomes '::' (RFC 5952)
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    let j = i
    while (j < 8 && words[j] === '0') j++
    if (j - i > bestLen) {
      best = i
      bestLen = j - i
    }
    i = j === i ? i + 1 : j
  }
  if (best === -1) return words.join(':')
  return `${words.slice(0, best).join(':')}::${words.slice(best + bestLen).join(':')}`
}

/** XOR-MAPPED-ADDRESS's value (§15.2): the port and address XORed with the cookie (and, for IPv6, the transaction id). */
export function encodeXorMappedAddress(addr: TransportAddress, transactionId: Uint8Array): Uint8Array {
  if (!Number.isInteger(addr.port) || addr.port < 0 || addr.port > 65_535) throw new RangeError(`bad port ${addr.port}`)
  const ip = ipBytes(addr)
  const key = xorKey(transactionId)
  const out = new Uint8Array(4 + ip.length)
  const view = new DataView(out.buffer)
  view.setUint8(1, addr.family === 'IPv4' ? 0x01 : 0x02)
  view.setUint16(2, addr.port ^ (STUN_MAGIC_COOKIE >>> 16))
  ip.forEach((b, i) => (out[4 + i] = b ^ (key[i] as number)))
  return out
}

export function decodeXorMappedAddress(value: Uint8Array, transactionId: Uint8Array): TransportAddress {
  return decodeAddress(value, xorKey(transactionId))
}

/** The XOR key of an address (§15.2): the magic cookie, then the transaction id. */
function xorKey(transactionId: Uint8Array): Uint8Array {
  const key = new Uint8Array(16)
  new DataView(key.buffer).setUint32(0, STUN_MAGIC_COOKIE)
  key.set(transactionId, 4)
  return key
}

/** MAPPED-ADDRESS (key all zero) or XOR-MAPPED-ADDRESS (key from `xorKey`). */
function decodeAddress(value: Uint8Array, key: Uint8Array): TransportAddress {
  const family = value[1] === 0x01 ? 'IPv4' : value[1] === 0x02 ? 'IPv6' : undefined
  const size = family === 'IPv4' ? 4 : 16
  if (family === undefined || value.length !== 4 + size)
    throw new StunProtocolError('the mapped address has an unknown family or a wrong length')
  const port =
    new DataView(value.buffer, value.byteOffset, 4).getUint16(2) ^ (((key[0] as number) << 8) | (key[1] as number))
  const ip = value.subarray(4).map((b, i) => b ^ (key[i] as number))
  return { family, address: ipString(family, ip), port }
}

/** Builds a STUN message: header, the attributes (padded to 4 bytes) and, when asked, FINGERPRINT. */
function encodeMessage(
  type: number,
  transactionId: Uint8Array,
  attrs: Array<[number, Uint8Array]>,
  fingerprint: boolean,
): Uint8Array {
  if (transactionId.length !== 12) throw new RangeError('a STUN transaction id is 12 bytes')
  const padded = (n: number): number => n + ((4 - (n % 4)) % 4)
  const body = attrs.reduce((n, [, v]) => n + 4 + padded(v.length), 0) + (fingerprint ? 8 : 0)
  const out = new Uint8Array(STUN_HEADER_BYTES + body)
  const view = new DataView(out.buffer)
  view.setUint16(0, type)
  view.setUint16(2, body)
  view.setUint32(4, STUN_MAGIC_COOKIE)
  out.set(transactionId, 8)
  let at = STUN_HEADER_BYTES
  for (const [t, v] of attrs) {
    view.setUint16(at, t)
    view.setUint16(at + 2, v.length)
    out.set(v, at + 4)
    at += 4 + padded(v.length)
  }
  if (fingerprint) {
    view.setUint16(at, ATTR_FINGERPRINT)
    view.setUint16(at + 2, 4)
    view.setUint32(at + 4, fingerprintOf(out.subarray(0, at)))
  }
  return out
}

/** A Binding success response telling the client the address its request came from. */
export function encodeBindingSuccess(transactionId: Uint8Array, from: TransportAddress): Uint8Array {
  return encodeMessage(
    BINDING_SUCCESS,
    transactionId,
    [[ATTR_XOR_MAPPED_ADDRESS, encodeXorMappedAddress(from, transactionId)]],
    true,
  )
}

/** A 420 (Unknown Attribute) error response listing the attributes not understood (§15.6, §15.9). */
export function encodeUnknownAttributes(transactionId: Uint8Array, unknown: readonly number[]): Uint8Array {
  const reason = new TextEncoder().encode('Unknown Attribute')
  const code = new Uint8Array(4 + reason.length)
  code[2] = 4
  code[3] = 20
  code.set(reason, 4)
  const list = new Uint8Array(2 * unknown.length)
  unknown.forEach((t, i) => new DataView(list.buffer).setUint16(2 * i, t))
  return encodeMessage(
    BINDING_ERROR,
    transactionId,
    [
      [ATTR_ERROR_CODE, code],
      [ATTR_UNKNOWN_ATTRIBUTES, list],
    ],
    true,
  )
}

/** A Binding request (client side) with FINGERPRINT. */
export function encodeBindingRequest(transactionId: Uint8Array): Uint8Array {
  return encodeMessage(BINDING_REQUEST, transactionId, [], true)
}

/** Reads the mapped address from a Binding success response to `transactionId` (client side). */
export function decodeBindingSuccess(msg: Uint8Array, transactionId: Uint8Array): TransportAddress {
  const bad = checkHeader(msg)
  if (bad !== undefined) throw new StunProtocolError(`not a STUN message: ${bad}`)
  const type = ((msg[0] as number) << 8) | (msg[1] as number)
  if (type !== BINDING_SUCCESS)
    throw new StunProtocolError(`expected a Binding success, got type 0x${type.toString(16)}`)
  if (!msg.subarray(8, STUN_HEADER_BYTES).every((b, i) => b === transactionId[i]))
    throw new StunProtocolError('the answer is to another transaction')
  const attrs = attributes(msg)
  if (attrs === undefined || !fingerprintOk(msg, attrs)) throw new StunProtocolError('malformed attributes')
  const xor = attrs.find((a) => a.type === ATTR_XOR_MAPPED_ADDRESS)
  if (xor !== undefined) return decodeXorMappedAddress(xor.value, transactionId)
  // RFC 3489 servers send only MAPPED-ADDRESS (the same layout, not XORed)
  const plain = attrs.find((a) => a.type === ATTR_MAPPED_ADDRESS)
  if (plain === undefined) throw new StunProtocolError('no XOR-MAPPED-ADDRESS in the answer')
  return decodeAddress(plain.value, new Uint8Array(16))
}

interface Bucket {
  tokens: number
  at: number
}

/** Token buckets per source address plus one for all sources (pure apart from the injected clock). */
export class StunRateLimiter {
  readonly #clock: Clock
  readonly #rate: number
  readonly #burst: number
  readonly #maxTracked: number
  readonly #buckets = new Map<string, Bucket>()
  readonly #total: Bucket
  readonly #totalRate: number

  constructor(
    init: {
      ratePerAddress?: number
      burstPerAddress?: number
      rateTotal?: number
      maxTracked?: number
      clock?: Clock
    } = {},
  ) {
    this.#clock = init.clock ?? systemClock
    this.#rate = init.ratePerAddress ?? STUN_RATE_PER_ADDRESS
    this.#burst = init.burstPerAddress ?? STUN_BURST_PER_ADDRESS
    this.#totalRate = init.rateTotal ?? STUN_RATE_TOTAL
    this.#maxTracked = init.maxTracked ?? STUN_TRACKED_ADDRESSES
    this.#total = { tokens: this.#totalRate, at: this.#clock.now() }
  }

  /** Takes one token for `address`; false when it (or the server as a whole) is over its rate. */
  take(address: string): boolean {
    const now = this.#clock.now()
    const bucket = this.#buckets.get(address) ?? { tokens: this.#burst, at: now }
    this.#buckets.delete(address) // re-inserted last: the map's order is least recently seen first
    refill(bucket, now, this.#rate, this.#burst)
    refill(this.#total, now, this.#totalRate, this.#totalRate)
    const ok = bucket.tokens >= 1 && this.#total.tokens >= 1
    if (ok) {
      bucket.tokens -= 1
      this.#total.tokens -= 1
    }
    this.#buckets.set(address, bucket)
    if (this.#buckets.size > this.#maxTracked) this.#buckets.delete(this.#buckets.keys().next().value as string)
    return ok
  }

  get tracked(): number {
    return this.#buckets.size
  }
}

function refill(bucket: Bucket, now: number, rate: number, cap: number): void {
  const elapsed = Math.max(0, now - bucket.at)
  bucket.tokens = Math.min(cap, bucket.tokens + (elapsed * rate) / 1000)
  bucket.at = now
}

/** The answer to one datagram from `from`, or undefined when it gets none. */
export function answerDatagram(msg: Uint8Array, from: TransportAddress): Uint8Array | undefined {
  const verdict = classifyRequest(msg)
  if (verdict.kind === 'binding') return encodeBindingSuccess(verdict.transactionId, from)
  if (verdict.kind === 'unknown-attributes') return encodeUnknownAttributes(verdict.transactionId, verdict.attributes)
  return undefined
}

/** `::ffff:1.2.3.4` (an IPv4 peer on a dual-stack socket) -> 1.2.3.4 over IPv4. */
function sourceOf(rinfo: RemoteInfo): TransportAddress {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(rinfo.address)?.[1]
  if (mapped !== undefined) return { family: 'IPv4', address: mapped, port: rinfo.port }
  return { family: rinfo.family === 'IPv6' ? 'IPv6' : 'IPv4', address: rinfo.address, port: rinfo.port }
}

export interface StunServerInit {
  /** UDP port. @default STUN_DEFAULT_PORT */
  port?: number
  /** Address to listen on. @default '0.0.0.0' */
  host?: string
  ratePerAddress?: number
  burstPerAddress?: number
  rateTotal?: number
  clock?: Clock
  logger?: Logger
}

export interface StunStats {
  answered: number
  ignored: number
  limited: number
}

/** The responder: one UDP socket, `start()` / `stop()`. */
export class StunServer {
  readonly #init: StunServerInit
  readonly #log: Logger
  readonly #limiter: StunRateLimiter
  #socket: Socket | undefined
  readonly #stats: StunStats = { answered: 0, ignored: 0, limited: 0 }

  constructor(init: StunServerInit = {}) {
    this.#init = init
    this.#log = (init.logger ?? silentLogger()).forComponent('donghae:net:stun')
    this.#limiter = new StunRateLimiter({
      ...(init.ratePerAddress === undefined ? {} : { ratePerAddress: init.ratePerAddress }),
      ...(init.burstPerAddress === undefined ? {} : { burstPerAddress: init.burstPerAddress }),
      ...(init.rateTotal === undefined ? {} : { rateTotal: init.rateTotal }),
      ...(init.clock === undefined ? {} : { clock: init.clock }),
    })
  }

  async start(): Promise<void> {
    if (this.#socket !== undefined) return
    const host = this.#init.host ?? '0.0.0.0'
    const socket = createSocket(isIPv6(host) ? 'udp6' : 'udp4')
    socket.on('message', (msg, rinfo) => this.#onMessage(socket, msg, rinfo))
    socket.on('error', (err) => this.#log.warn({ error: err.message }, 'STUN socket error'))
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject)
      socket.bind(this.#init.port ?? STUN_DEFAULT_PORT, host, () => {
        socket.off('error', reject)
        resolve()
      })
    })
    this.#socket = socket
    const { address, port } = socket.address()
    this.#log.info({ address, port }, 'answering STUN Binding requests')
  }

  async stop(): Promise<void> {
    const socket = this.#socket
    this.#socket = undefined
    if (socket !== undefined) await new Promise<void>((resolve) => socket.close(() => resolve()))
  }

  /** Where the socket listens (after `start`). */
  address(): { address: string; port: number } {
    if (this.#socket === undefined) throw new Error('the STUN server is not started')
    const { address, port } = this.#socket.address()
    return { address, port }
  }

  stats(): StunStats {
    return { ...this.#stats }
  }

  #onMessage(socket: Socket, msg: Buffer, rinfo: RemoteInfo): void {
    const from = sourceOf(rinfo)
    const answer = answerDatagram(msg, from)
    if (answer === undefined) {
      this.#stats.ignored++
      return
    }
    if (!this.#limiter.take(from.address)) {
      this.#stats.limited++
      return
    }
    this.#stats.answered++
    socket.send(answer, rinfo.port, rinfo.address)
  }
}

/**
 * Asks a STUN server which address this host's requests come from (one Binding request,
 * retransmitted at 250 ms doubling until `timeoutMs`).
 */
export async function queryStun(
  server: { host: string; port: number },
  options: { signal?: AbortSignal; timeoutMs?: number; localPort?: number } = {},
): Promise<TransportAddress> {
  if (options.signal?.aborted === true) throw new AbortError()
  const transactionId = randomBytes(12)
  const request = encodeBindingRequest(transactionId)
  const socket = createSocket(isIPv6(server.host) ? 'udp6' : 'udp4')
  const timeoutMs = options.timeoutMs ?? STUN_QUERY_TIMEOUT_MS
  const timers: NodeJS.Timeout[] = []
  let onAbort: (() => void) | undefined
  try {
    return await new Promise<TransportAddress>((resolve, reject) => {
      onAbort = () => reject(new AbortError())
      options.signal?.addEventListener('abort', onAbort, { once: true })
      const where = `${server.host}:${server.port}`
      timers.push(
        setTimeout(
          () => reject(new StunTimeoutError(`no STUN answer from ${where} within ${timeoutMs} ms`)),
          timeoutMs,
        ),
      )
      socket.on('error', reject)
      socket.on('message', (msg) => {
        try {
          resolve(decodeBindingSuccess(msg, transactionId))
        } catch {
          // not an answer to this request: keep waiting
        }
      })
      const send = (delay: number): void => {
        socket.send(request, server.port, server.host)
        timers.push(setTimeout(() => send(delay * 2), delay))
      }
      socket.bind(options.localPort ?? 0, () => send(250))
    })
  } finally {
    if (onAbort !== undefined) options.signal?.removeEventListener('abort', onAbort)
    for (const t of timers) clearTimeout(t)
    socket.close()
  }
}
