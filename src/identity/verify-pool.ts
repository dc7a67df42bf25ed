/**
 * Ed25519 verification on worker threads, for the hot paths (gossiped transactions, block
 * validation). Requests are buffered for at most `maxWaitMs` or `maxBatch` items (Lodestar's rule:
 * 100 ms or 32), then sent to the least busy worker as one packed buffer. Each item is a raw
 * 32-byte public key, the 32-byte domain-separated digest (core/signing.ts) and the signature.
 *
 * Threads cost memory (a Node worker with its own V8 heap is 10-30 MB), so a started pool spawns
 * them on first use, and a thread with nothing in flight for `idleMs` exits; the next batch starts
 * it again. An idle node therefore holds no signature thread (docs/performance.md). A few
 * signatures a second that find no thread alive are verified inline (`coldInlineMax`): a thread's
 * start would cost them tens of milliseconds.
 */
import { jsWorkerUrl } from '../core/js-worker.ts'
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { systemClock, type Clock } from '../core/clock.ts'
import { silentLogger, type Logger } from '../core/logger.ts'
import { DonghaeError, InvalidInputError } from '../core/errors.ts'
import { verifySignatureDigest } from './keys.ts'

export interface VerifyItem {
  publicKey: Uint8Array
  digest: Uint8Array
  signature: Uint8Array
}

export interface VerifyPoolOptions {
  /** @default max(1, availableParallelism() - 1) */
  workers?: number
  /** @default 5 */
  maxWaitMs?: number
  /** @default 64 */
  maxBatch?: number
  /** A thread with nothing in flight for this long exits (0: never). @default 30_000 */
  idleMs?: number
  /**
   * Signatures a pool with no thread alive verifies on the calling thread in any one second
   * (0: always on a thread). A thread's start costs tens of milliseconds before its first answer,
   * a signature about 0.07 ms: the first transactions after an idle spell should not wait for a
   * thread on every node they pass through. A batch that would go over it starts a thread as
   * before, so a steady stream, however thin, soon has one: at most this many signatures a
   * second are ever checked inline.
   * @default 16
   */
  coldInlineMax?: number
  /** Drives the idle timers (tests use a ManualClock). @default systemClock */
  clock?: Clock
  logger?: Logger
}

/** How long a signature thread waits for work before it exits. */
export const DEFAULT_VERIFY_IDLE_MS = 30_000

/** Signatures a second a pool with no thread alive verifies inline rather than starting one (`coldInlineMax`). */
export const DEFAULT_COLD_INLINE_MAX = 16

interface Waiting {
  item: VerifyItem
  resolve(ok: boolean): void
}

interface WorkerSlot {
  worker: Worker
  inFlight: Map<number, Waiting[]>
  /** Cancels the idle timer while the slot has nothing in flight. */
  cancelIdle?: () => void
}

export class VerifyPoolStoppedError extends DonghaeError {
  static override readonly code: string = 'VERIFY_POOL_STOPPED'
  override name = 'VerifyPoolStoppedError'
}

export class VerifyPool {
  readonly #size: number
  readonly #maxWaitMs: number
  readonly #maxBatch: number
  readonly #idleMs: number
  readonly #coldInlineMax: number
  /** Signatures verified inline for want of a thread in the second that began at `#coldSince`. */
  #coldCount = 0
  #coldSince = Number.NEGATIVE_INFINITY
  readonly #clock: Clock
  readonly #log: Logger
  #started = false
  /** Threads that failed: each one lowers the pool's size for good (none left: verify inline). */
  #failures = 0
  #slots: WorkerSlot[] = []
  #buffer: Waiting[] = []
  #timer: NodeJS.Timeout | undefined
  #nextId = 1
  /**
   * Signatures verified (on threads and inline), batches sent to threads, threads spawned, and
   * signatures verified inline for want of a thread (`coldInlineMax`), since start.
   */
  readonly stats = { verified: 0, batches: 0, spawned: 0, coldInline: 0 }

  constructor(options: VerifyPoolOptions = {}) {
    this.#size = options.workers ?? Math.max(1, availableParallelism() - 1)
    this.#maxWaitMs = options.maxWaitMs ?? 5
    this.#maxBatch = options.maxBatch ?? 64
    this.#idleMs = options.idleMs ?? DEFAULT_VERIFY_IDLE_MS
    this.#coldInlineMax = options.coldInlineMax ?? DEFAULT_COLD_INLINE_MAX
    // NaN or a negative number would turn the budget off, not down: every check inline
    if (!Number.isSafeInteger(this.#coldInlineMax) || this.#coldInlineMax < 0)
      throw new InvalidInputError('coldInlineMax must be a non-negative integer', {
        details: { coldInlineMax: String(options.coldInlineMax) },
      })
    this.#clock = options.clock ?? systemClock
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:identity:verify-pool')
  }

  /** Started and not stopped (its threads may not be running: they start on first use). */
  get running(): boolean {
    return this.#started
  }

  /** Signature threads alive now: 0 before the first batch and after `idleMs` without work. */
  get threads(): number {
    return this.#slots.length
  }

  start(): void {
    this.#started = true
  }

  /** Threads the pool may run: its size less the threads that failed. */
  get #capacity(): number {
    return this.#size - this.#failures
  }

  #spawn(): WorkerSlot {
    // as JavaScript: a .ts thread loads its own TypeScript stripper (core/js-worker.ts)
    const worker = new Worker(jsWorkerUrl(new URL('./verify-pool.worker.ts', import.meta.url)))
    const slot: WorkerSlot = { worker, inFlight: new Map() }
    worker.on('message', (msg: { id: number; results: Uint8Array }) => this.#done(slot, msg))
    worker.on('error', (err) => {
      this.#log.error({ err: err.message }, 'signature worker failed; verifying its batches inline')
      this.#failures++
      this.#recover(slot)
    })
    // a thread that exits while it has work (e.g. out of memory) hands its batches back like a failure
    worker.on('exit', () => this.#recover(slot))
    this.#slots.push(slot)
    this.stats.spawned++
    return slot
  }

  /** The least busy thread, or a new one while the pool is under its size and every thread is busy. */
  #pick(): WorkerSlot {
    let best: WorkerSlot | undefined
    for (const s of this.#slots) if (best === undefined || s.inFlight.size < best.inFlight.size) best = s
    if (best === undefined || (best.inFlight.size > 0 && this.#slots.length < this.#capacity)) best = this.#spawn()
    best.cancelIdle?.()
    best.cancelIdle = undefined
    return best
  }

  /** Lets a thread with nothing in flight exit after `idleMs`. */
  #armIdle(slot: WorkerSlot): void {
    if (this.#idleMs <= 0 || slot.inFlight.size > 0 || slot.cancelIdle !== undefined) return
    slot.cancelIdle = this.#clock.setTimer(this.#idleMs, () => {
      slot.cancelIdle = undefined
      if (slot.inFlight.size > 0 || !this.#slots.includes(slot)) return
      this.#slots = this.#slots.filter((s) => s !== slot)
      void slot.worker.terminate()
    })
  }

  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#started = false
    const slots = this.#slots
    this.#slots = []
    // Whatever is pending is answered inline, so no caller waits forever.
    for (const slot of slots) {
      slot.cancelIdle?.()
      this.#recover(slot)
    }
    this.#flushInline()
    await Promise.all(slots.map((s) => s.worker.terminate()))
  }

  /** Verifies one signature; resolves false for anything malformed. */
  verify(item: VerifyItem): Promise<boolean> {
    if (item.publicKey.length !== 32 || item.digest.length !== 32 || item.signature.length !== 64)
      return Promise.resolve(false)
    if (!this.#started || this.#capacity <= 0)
      return Promise.resolve(verifySignatureDigest(item.publicKey, item.digest, item.signature))
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
    if (!this.#started || this.#capacity <= 0) return this.#flushInline()
    if (this.#slots.length === 0 && this.#coldBudget(this.#buffer.length)) {
      // no thread alive and a few signatures: answered now, not after a thread's start
      this.stats.coldInline += this.#buffer.length
      this.stats.verified += this.#buffer.length
      return this.#flushInline()
    }
    while (this.#buffer.length > 0) {
      const batch = this.#buffer.splice(0, this.#maxBatch)
      const slot = this.#pick()
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

  /** Whether `n` more signatures fit this second's inline budget (taken when they do). */
  #coldBudget(n: number): boolean {
    const now = this.#clock.now()
    if (now - this.#coldSince >= 1_000) {
      this.#coldSince = now
      this.#coldCount = 0
    }
    if (this.#coldCount + n > this.#coldInlineMax) return false
    this.#coldCount += n
    return true
  }

  #done(slot: WorkerSlot, msg: { id: number; results: Uint8Array }): void {
    const batch = slot.inFlight.get(msg.id)
    if (batch === undefined) return
    slot.inFlight.delete(msg.id)
    this.stats.verified += batch.length
    batch.forEach((waiting, i) => waiting.resolve(msg.results[i] === 1))
    this.#armIdle(slot)
  }

  #recover(slot: WorkerSlot): void {
    if (!this.#slots.includes(slot) && slot.inFlight.size === 0) return
    for (const batch of slot.inFlight.values()) this.#buffer.push(...batch)
    slot.inFlight.clear()
    this.#slots = this.#slots.filter((s) => s !== slot)
    if (this.#buffer.length === 0) return
    if (this.#slots.length === 0 && (!this.#started || this.#capacity <= 0)) this.#flushInline()
    else this.#flush()
  }

  #flushInline(): void {
    for (const waiting of this.#buffer.splice(0)) {
      waiting.resolve(verifySignatureDigest(waiting.item.publicKey, waiting.item.digest, waiting.item.signature))
    }
  }
}
