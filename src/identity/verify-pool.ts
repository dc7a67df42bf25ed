/**
 * Ed25519 verification on worker threads, for the hot paths (gossiped transactions, block
 * validation). Requests are buffered for at most `maxWaitMs` or `maxBatch` items (Lodestar's rule:
 * 100 ms or 32), then sent to the least busy worker as one packed buffer. Each item is a raw
 * 32-byte public key, the 32-byte domain-separated digest (core/signing.ts) and the signature.
 */
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { silentLogger, type Logger } from '../core/logger.ts'
import { DonghaeError } from '../core/errors.ts'
import { verifySignatureDigest } from './keys.ts'

export interface VerifyItem {
  publicKey: Uint8Array
  digest: Uint8Array
  signature: Uint8Array
}

export interface VerifyPoolOptions {
  /** @default max(1, availableParallelism() − 1) */
  workers?: number
  /** @default 5 */
  maxWaitMs?: number
  /** @default 64 */
  maxBatch?: number
  logger?: Logger
}

interface Waiting {
  item: VerifyItem
  resolve(ok: boolean): void
}

interface WorkerSlot {
  worker: Worker
  inFlight: Map<number, Waiting[]>
}

export class VerifyPoolStoppedError extends DonghaeError {
  static override readonly code: string = 'VERIFY_POOL_STOPPED'
  override name = 'VerifyPoolStoppedError'
}

export class VerifyPool {
  readonly #size: number
  readonly #maxWaitMs: number
  readonly #maxBatch: number
  readonly #log: Logger
  #slots: WorkerSlot[] = []
  #buffer: Waiting[] = []
  #timer: NodeJS.Timeout | undefined
  #nextId = 1
  /** Signatures verified, and batches sent, since start (for benchmarks and metrics). */
  readonly stats = { verified: 0, batches: 0 }

  constructor(options: VerifyPoolOptions = {}) {
    this.#size = options.workers ?? Math.max(1, availableParallelism() - 1)
    this.#maxWaitMs = options.maxWaitMs ?? 5
    this.#maxBatch = options.maxBatch ?? 64
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:identity:verify-pool')
  }

  get running(): boolean {
    return this.#slots.length > 0
  }

  start(): void {
    if (this.running) return
    for (let i = 0; i < this.#size; i++) {
      const worker = new Worker(new URL('./verify-pool.worker.ts', import.meta.url))
      const slot: WorkerSlot = { worker, inFlight: new Map() }
      worker.on('message', (msg: { id: number; results: Uint8Array }) => this.#done(slot, msg))
      worker.on('error', (err) => {
        this.#log.error({ err: err.message }, 'signature worker failed; verifying its batches inline')
        this.#recover(slot)
      })
      this.#slots.push(slot)
    }
  }

  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    const slots = this.#slots
    this.#slots = []
    // Whatever is pending is answered inline, so no caller waits forever.
    for (const slot of slots) this.#recover(slot)
    this.#flushInline()
    await Promise.all(slots.map((s) => s.worker.terminate()))
  }

  /** Verifies one signature; resolves false for anything malformed. */
  verify(item: VerifyItem): Promise<boolean> {
    if (item.publicKey.length !== 32 || item.digest.length !== 32 || item.signature.length !== 64)
      return Promise.resolve(false)
    if (!this.running) return Promise.resolve(verifySignatureDigest(item.publicKey, item.digest, item.signature))
    return new Promise((resolve) => {
      this.#buffer.push({ item, resolve })
      if (this.#buffer.length >= this.#maxBatch) this.#flush()
      else this.#timer ??= setTimeout(() => this.#flush(), this.#maxWaitMs)
    })
  }

  verifyAll(items: readonly VerifyItem[]): Promise<boolean[]> {
    return Promise.all(items.map((item) => this.verify(item)))
  }

  #flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    while (this.#buffer.length > 0) {
      const batch = this.#buffer.splice(0, this.#maxBatch)
      const slot = this.#slots.reduce(
        (best, s) => (s.inFlight.size < best.inFlight.size ? s : best),
        this.#slots[0] as WorkerSlot,
      )
      const packed = new Uint8Array(batch.length * 128)
      batch.forEach(({ item }, i) => {
        packed.set(item.publicKey, i * 128)
        packed.set(item.digest, i * 128 + 32)
        packed.set(item.signature, i * 128 + 64)
      })
      const id = this.#nextId++
      slot.inFlight.set(id, batch)
      this.stats.batches++
      slot.worker.postMessage({ id, packed }, [packed.buffer])
    }
  }

  #done(slot: WorkerSlot, msg: { id: number; results: Uint8Array }): void {
    const batch = slot.inFlight.get(msg.id)
    if (batch === undefined) return
    slot.inFlight.delete(msg.id)
    this.stats.verified += batch.length
    batch.forEach((waiting, i) => waiting.resolve(msg.results[i] === 1))
  }

  #recover(slot: WorkerSlot): void {
    for (const batch of slot.inFlight.values()) this.#buffer.push(...batch)
    slot.inFlight.clear()
    this.#slots = this.#slots.filter((s) => s !== slot)
    if (this.#slots.length === 0) this.#flushInline()
  }

  #flushInline(): void {
    for (const waiting of this.#buffer.splice(0)) {
      waiting.resolve(verifySignatureDigest(waiting.item.publicKey, waiting.item.digest, waiting.item.signature))
    }
  }
}
