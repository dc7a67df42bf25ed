/**
 * NAT-PMP client (RFC 6886) over node:dgram. Requests go to the gateway's port 5351 from a
 * connected UDP socket (so only the gateway's answers are read, and an ICMP "port unreachable"
 * surfaces at once as "no NAT-PMP here"), are retried from 250 ms doubling up to 9 tries (§3.1),
 * and every answer is validated before use: size, version, opcode, result code and the
 * seconds-since-start-of-epoch, whose regression means the router lost its mappings (§3.6).
 */
import { createSocket } from 'node:dgram'
import { AbortError } from '../../core/errors.ts'
import { systemClock, type Clock } from '../../core/clock.ts'
import { silentLogger, type Logger } from '../../core/logger.ts'
import { NatPmpResultError, NatPmpUnavailableError, NatProtocolError, NatTimeoutError } from './errors.ts'

export const NATPMP_PORT = 5351
/** RFC 6886 §3.1: first retransmission after 250 ms, doubling, at most 9 tries. */
export const NATPMP_INITIAL_TIMEOUT_MS = 250
export const NATPMP_MAX_TRIES = 9

export type TransportProtocol = 'tcp' | 'udp'

const OP_EXTERNAL_ADDRESS = 0
const OP_MAP_UDP = 1
const OP_MAP_TCP = 2
const RESPONSE_BIT = 128
/** The longest NAT-PMP answer (a mapping response); anything larger is refused. */
export const NATPMP_MAX_RESPONSE = 16

export interface MapRequest {
  protocol: TransportProtocol
  internalPort: number
  /** Suggested external port; 0 lets the router choose. */
  externalPort: number
  /** Requested lease in seconds; 0 deletes the mapping. */
  lifetimeSeconds: number
}

export interface ExternalAddressResponse {
  epoch: number
  address: string
}

export interface MapResponse {
  epoch: number
  protocol: TransportProtocol
  internalPort: number
  externalPort: number
  lifetimeSeconds: number
}

function checkPort(port: number, name: string, allowZero: boolean): void {
  if (!Number.isInteger(port) || port < (allowZero ? 0 : 1) || port > 65_535) {
    throw new RangeError(`${name} must be an integer ${allowZero ? 0 : 1}-65535, got ${port}`)
  }
}

export function encodeExternalAddressRequest(): Uint8Array {
  return Uint8Array.of(0, OP_EXTERNAL_ADDRESS)
}

export function encodeMapRequest(request: MapRequest): Uint8Array {
  checkPort(request.internalPort, 'internalPort', false)
  checkPort(request.externalPort, 'externalPort', true)
  if (
    !Number.isInteger(request.lifetimeSeconds) ||
    request.lifetimeSeconds < 0 ||
    request.lifetimeSeconds > 0xffffffff
  ) {
    throw new RangeError(`lifetimeSeconds must be an integer 0-4294967295, got ${request.lifetimeSeconds}`)
  }
  const out = new Uint8Array(12)
  const view = new DataView(out.buffer)
  out[0] = 0
  out[1] = request.protocol === 'udp' ? OP_MAP_UDP : OP_MAP_TCP
  view.setUint16(4, request.internalPort)
  view.setUint16(6, request.externalPort)
  view.setUint32(8, request.lifetimeSeconds)
  return out
}

function malformed(reason: string, bytes: Uint8Array): never {
  throw new NatProtocolError(`malformed NAT-PMP answer: ${reason}`, {
    details: { bytes: Buffer.from(bytes.subarray(0, 32)).toString('hex'), length: bytes.length },
  })
}

/** Checks the 8-byte header shared by every answer; returns the epoch. Throws on a result code. */
function decodeHeader(bytes: Uint8Array, requestOpcode: number, successLength: number): number {
  if (bytes.length < 4) malformed(`${bytes.length} bytes is shorter than a header`, bytes)
  if (bytes.length > NATPMP_MAX_RESPONSE) malformed(`${bytes.length} bytes is oversized`, bytes)
  if (bytes[0] !== 0) malformed(`version ${bytes[0]} is not 0`, bytes)
  if (bytes[1] !== RESPONSE_BIT + requestOpcode) {
    malformed(`opcode ${bytes[1]} does not answer opcode ${requestOpcode}`, bytes)
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const result = view.getUint16(2)
  if (result !== 0) throw new NatPmpResultError(result)
  if (bytes.length !== successLength) malformed(`${bytes.length} bytes, expected ${successLength}`, bytes)
  return view.getUint32(4)
}

export function decodeExternalAddressResponse(bytes: Uint8Array): ExternalAddressResponse {
  const epoch = decodeHeader(bytes, OP_EXTERNAL_ADDRESS, 12)
  const address = Array.from(bytes.subarray(8, 12)).join('.')
  if (address === '0.0.0.0') malformed('external address 0.0.0.0', bytes)
  return { epoch, address }
}

/** Decodes a mapping answer to `request`; an answer for another internal port or protocol is refused. */
export function decodeMapResponse(bytes: Uint8Array, request: MapRequest): MapResponse {
  const opcode = request.protocol === 'udp' ? OP_MAP_UDP : OP_MAP_TCP
  const epoch = decodeHeader(bytes, opcode, 16)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const internalPort = view.getUint16(8)
  const externalPort = view.getUint16(10)
  const lifetimeSeconds = view.getUint32(12)
  if (internalPort !== request.internalPort) {
    malformed(`answer for internal port ${internalPort}, asked for ${request.internalPort}`, bytes)
  }
  if (request.lifetimeSeconds > 0 && (externalPort === 0 || lifetimeSeconds === 0)) {
    malformed(`mapping granted with external port ${externalPort} and lifetime ${lifetimeSeconds}`, bytes)
  }
  return { epoch, protocol: request.protocol, internalPort, externalPort, lifetimeSeconds }
}

/**
 * RFC 6886 §3.6: the router's seconds-since-start-of-epoch must grow at least 7/8 as fast as
 * our clock, with 2 s of slack; less means the router rebooted and lost its mappings.
 */
export class EpochTracker {
  #last: { epoch: number; atMs: number } | undefined

  /** Records an answer's epoch; returns true when it shows the router restarted. */
  observe(epoch: number, nowMs: number): boolean {
    const last = this.#last
    this.#last = { epoch, atMs: nowMs }
    if (last === undefined) return false
    const elapsedSeconds = Math.max(0, nowMs - last.atMs) / 1000
    const expected = last.epoch + (elapsedSeconds * 7) / 8
    return epoch + 2 < expected
  }

  reset(): void {
    this.#last = undefined
  }
}

export interface NatPmpClientOptions {
  gateway: string
  /** @default 5351 */
  port?: number
  clock?: Clock
  logger?: Logger
  /** @default 9 (RFC 6886) */
  tries?: number
  /** @default 250 */
  initialTimeoutMs?: number
}

export interface RequestOptions {
  signal?: AbortSignal
  /** Overrides the client's number of tries for this request. */
  tries?: number
}

export class NatPmpClient {
  readonly gateway: string
  readonly port: number
  readonly #clock: Clock
  readonly #log: Logger
  readonly #tries: number
  readonly #initialTimeoutMs: number

  constructor(options: NatPmpClientOptions) {
    this.gateway = options.gateway
    this.port = options.port ?? NATPMP_PORT
    this.#clock = options.clock ?? systemClock
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:net:nat')
    this.#tries = options.tries ?? NATPMP_MAX_TRIES
    this.#initialTimeoutMs = options.initialTimeoutMs ?? NATPMP_INITIAL_TIMEOUT_MS
  }

  externalAddress(options: RequestOptions = {}): Promise<ExternalAddressResponse> {
    return this.#request(encodeExternalAddressRequest(), decodeExternalAddressResponse, options)
  }

  map(request: MapRequest, options: RequestOptions = {}): Promise<MapResponse> {
    return this.#request(encodeMapRequest(request), (bytes) => decodeMapResponse(bytes, request), options)
  }

  /**
   * Deletes a mapping (lifetime 0). The external port is sent too: RFC 6886 says the server
   * ignores it, but miniupnpd deletes by external port, so sending the internal port there
   * would delete someone else's mapping.
   */
  unmap(request: Omit<MapRequest, 'lifetimeSeconds'>, options: RequestOptions = {}): Promise<MapResponse> {
    return this.map({ ...request, lifetimeSeconds: 0 }, options)
  }

  #request<T>(payload: Uint8Array, decode: (bytes: Uint8Array) => T, options: RequestOptions): Promise<T> {
    const { signal } = options
    if (signal?.aborted === true) return Promise.reject(new AbortError())
    const tries = Math.max(1, options.tries ?? this.#tries)
    const socket = createSocket('udp4')
    let cancelTimer = (): void => {}
    return new Promise<T>((resolve, reject) => {
      let attempt = 0
      let done = false
      const finish = (err: unknown, value?: T): void => {
        if (done) return
        done = true
        cancelTimer()
        signal?.removeEventListener('abort', onAbort)
        socket.removeAllListeners('message')
        socket.on('error', () => {})
        try {
          socket.close()
        } catch {
          // already closed
        }
        if (err === undefined) resolve(value as T)
        else reject(err)
      }
      const onAbort = (): void => finish(new AbortError())
      const send = (): void => {
        const timeout = this.#initialTimeoutMs * 2 ** attempt
        attempt++
        socket.send(payload, (err) => {
          if (err !== null && err !== undefined) finish(err)
        })
        cancelTimer = this.#clock.setTimer(timeout, () => {
          if (attempt < tries) send()
          else finish(new NatTimeoutError(`no NAT-PMP answer from ${this.gateway}:${this.port} after ${tries} tries`))
        })
      }
      socket.on('message', (msg: Buffer) => this.#onMessage(msg, payload, decode, finish))
      socket.on('error', (err: NodeJS.ErrnoException) => this.#onSocketError(err, finish))
      signal?.addEventListener('abort', onAbort, { once: true })
      socket.connect(this.port, this.gateway, () => send())
    })
  }

  #onMessage<T>(
    msg: Buffer,
    payload: Uint8Array,
    decode: (bytes: Uint8Array) => T,
    finish: (err: unknown, value?: T) => void,
  ): void {
    const bytes = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength)
    const answer = { gateway: this.gateway, request: Buffer.from(payload).toString('hex'), answer: msg.toString('hex') }
    try {
      const value = decode(bytes)
      this.#log.debug({ ...answer, decoded: value }, 'NAT-PMP answer')
      finish(undefined, value)
    } catch (err) {
      if (err instanceof NatProtocolError) {
        // A stray or broken datagram: drop it and keep waiting (RFC 6886 §3.5 "silently ignore").
        this.#log.debug({ ...answer, error: err.message }, 'NAT-PMP answer refused')
        return
      }
      this.#log.debug({ ...answer, error: (err as Error).message }, 'NAT-PMP answer with an error result')
      finish(err)
    }
  }

  #onSocketError(err: NodeJS.ErrnoException, finish: (err: unknown) => void): void {
    this.#log.debug({ gateway: this.gateway, error: err.code ?? err.message }, 'NAT-PMP socket error')
    if (err.code === 'ECONNREFUSED') {
      finish(new NatPmpUnavailableError(`nothing answers NAT-PMP at ${this.gateway}:${this.port} (port unreachable)`))
    } else finish(err)
  }
}
