/**
 * A NAT-PMP responder on 127.0.0.1 for unit tests: a real UDP socket speaking RFC 6886 (a test
 * peer, not a mock of our code). Each request is recorded with the test clock's time; `respond`
 * decides the answer (or silence), so tests can script junk, errors, lease cuts and reboots.
 */
import { createSocket, type RemoteInfo } from 'node:dgram'

export interface PmpRequest {
  at: number
  opcode: number
  internalPort: number
  externalPort: number
  lifetimeSeconds: number
  bytes: Buffer
}

export type Responder = (req: PmpRequest, router: FakePmpRouter) => Buffer | Buffer[] | undefined

export class FakePmpRouter {
  readonly requests: PmpRequest[] = []
  epoch = 100
  externalAddress = [11, 0, 0, 1]
  respond: Responder = (req, router) => router.ok(req)
  #socket = createSocket('udp4')
  #now: () => number
  #waiters: Array<() => void> = []

  private constructor(now: () => number) {
    this.#now = now
  }

  static async start(now: () => number): Promise<FakePmpRouter> {
    const router = new FakePmpRouter(now)
    router.#socket.on('message', (msg, rinfo) => router.#onMessage(msg, rinfo))
    await new Promise<void>((resolve) => router.#socket.bind(0, '127.0.0.1', resolve))
    return router
  }

  get port(): number {
    return this.#socket.address().port
  }

  /** Resolves when the n-th request (1-based) has arrived. */
  async waitForRequests(n: number, timeoutMs = 2000): Promise<PmpRequest> {
    const deadline = Date.now() + timeoutMs
    while (this.requests.length < n) {
      if (Date.now() > deadline) throw new Error(`only ${this.requests.length} of ${n} NAT-PMP requests arrived`)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 20)
        this.#waiters.push(() => {
          clearTimeout(t)
          resolve()
        })
      })
    }
    return this.requests[n - 1] as PmpRequest
  }

  /** A success answer for `req` granting what was asked (or `grant` overrides). */
  ok(req: PmpRequest, grant: { externalPort?: number; lifetimeSeconds?: number } = {}): Buffer {
    if (req.opcode === 0) {
      return Buffer.from([0, 128, 0, 0, ...this.#epochBytes(), ...this.externalAddress])
    }
    const out = Buffer.alloc(16)
    out[1] = 128 + req.opcode
    out.writeUInt32BE(this.epoch, 4)
    out.writeUInt16BE(req.internalPort, 8)
    const deleting = req.lifetimeSeconds === 0
    out.writeUInt16BE(deleting ? 0 : (grant.externalPort ?? (req.externalPort || req.internalPort)), 10)
    out.writeUInt32BE(deleting ? 0 : (grant.lifetimeSeconds ?? req.lifetimeSeconds), 12)
    return out
  }

  /** An error answer with this result code. */
  error(req: PmpRequest, result: number): Buffer {
    const out = Buffer.alloc(req.opcode === 0 ? 12 : 16)
    out[1] = 128 + req.opcode
    out.writeUInt16BE(result, 2)
    out.writeUInt32BE(this.epoch, 4)
    return out
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#socket.close(() => resolve()))
  }

  #epochBytes(): number[] {
    const b = Buffer.alloc(4)
    b.writeUInt32BE(this.epoch)
    return [...b]
  }

  #onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    const req: PmpRequest = {
      at: this.#now(),
      opcode: msg[1] ?? -1,
      internalPort: msg.length >= 6 ? msg.readUInt16BE(4) : 0,
      externalPort: msg.length >= 8 ? msg.readUInt16BE(6) : 0,
      lifetimeSeconds: msg.length >= 12 ? msg.readUInt32BE(8) : 0,
      bytes: Buffer.from(msg),
    }
    this.requests.push(req)
    const answer = this.respond(req, this)
    for (const part of answer === undefined ? [] : Array.isArray(answer) ? answer : [answer]) {
      this.#socket.send(part, rinfo.port, rinfo.address)
    }
    for (const w of this.#waiters.splice(0)) w()
  }
}
