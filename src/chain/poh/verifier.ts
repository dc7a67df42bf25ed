/**
 * Parallel PoH verification. A list of entries is one long sequential chain to produce, but not
 * to check: every entry names the hash it ends on, so a slice of entries can be re-hashed from
 * the hash the entry before it claims, independently of the other slices. The verifier cuts the
 * list into contiguous slices of about equal hash work, checks them on a pool of worker threads
 * and combines the answers: the first failing slice gives the first bad index, otherwise the
 * ticks add up and the last slice's end is the end. Small lists are checked on the calling thread.
 *
 * Shapes (`entryShapeError`) are checked first, on the calling thread and without hashing, so a
 * malformed list costs nothing to refuse. When a list has both a malformed entry and, earlier,
 * a hash that does not follow, the malformed entry is the one reported (`verifyPohEntries` would
 * report the hash); either way the list is refused.
 *
 * Threads cost memory (10-30 MB each), so a started verifier spawns them when a list needs the
 * pool, up to its size, and a thread without a slice for `idleMs` exits (docs/performance.md).
 */
import { availableParallelism } from 'node:os'
import type { Worker } from 'node:worker_threads'
import { systemClock, type Clock } from '../../core/clock.ts'
import { AbortError, InvalidInputError } from '../../core/errors.ts'
import { silentLogger, type Logger } from '../../core/logger.ts'
import { DEFAULT_INLINE_THRESHOLD, DEFAULT_SLICES_PER_WORKER } from './constants.ts'
import { POH_HASH_LENGTH, entryShapeError, type PohCheck, type PohEntry } from './entries.ts'
import { PohStoppedError, PohWorkerError } from './errors.ts'
import { PohHasher } from './hasher.ts'
import { spawnPohWorker } from './threads.ts'
import { checkEncodedSlice, encodePohEntries } from './wire.ts'
import type { VerifyTask } from './verifier.worker.ts'

export interface PohVerifierOptions {
  /** Worker threads in the pool. @default max(1, availableParallelism() - 1) */
  workers?: number
  /** Lists with fewer hashes than this are checked on the calling thread. @default 20_000 */
  inlineThreshold?: number
  /** Slices per worker for a list checked by the pool. @default 2 */
  slicesPerWorker?: number
  /** A thread without a slice for this long exits; the next list starts it again (0: never). @default 30_000 */
  idleMs?: number
  /** Drives the idle timers (tests use a ManualClock). @default systemClock */
  clock?: Clock
  logger?: Logger
}

/** How long a PoH verifier thread waits for a slice before it exits. */
export const DEFAULT_POH_VERIFIER_IDLE_MS = 30_000

export interface VerifyOptions {
  signal?: AbortSignal
}

interface Job {
  results: (PohCheck | undefined)[]
  /** Lowest slice known to fail; slices after it need not be checked. */
  firstFailure: number
  done: boolean
  resolve(check: PohCheck): void
  reject(err: unknown): void
}

interface Task {
  job: Job
  slice: number
  message: VerifyTask
}

interface PoolWorker {
  worker: Worker
  task?: Task
  error?: unknown
  /** Cancels the idle timer while the worker has no slice. */
  cancelIdle?: () => void
}

/** Hash work of an entry: its hashes, its mixin, and a little for the comparison. */
function workOf(entry: PohEntry): number {
  return entry.numHashes + (entry.mixin === undefined ? 0 : 1) + 1
}

/** Cuts [0, entries.length) into at most `parts` contiguous, non-empty slices of about equal work. */
export function sliceByWork(entries: readonly PohEntry[], parts: number): Array<{ from: number; to: number }> {
  let total = 0
  for (const entry of entries) total += workOf(entry)
  const slices: Array<{ from: number; to: number }> = []
  let from = 0
  let done = 0
  for (let i = 0; i < entries.length - 1 && slices.length < parts - 1; i++) {
    done += workOf(entries[i] as PohEntry)
    if (done * parts >= total * (slices.length + 1)) {
      slices.push({ from, to: i + 1 })
      from = i + 1
    }
  }
  if (from < entries.length) slices.push({ from, to: entries.length })
  return slices
}

function assertInputs(start: Uint8Array, hashesPerTick: number): void {
  if (!(start instanceof Uint8Array) || start.length !== POH_HASH_LENGTH) {
    throw new InvalidInputError('the PoH start hash must be 32 bytes')
  }
  if (!Number.isSafeInteger(hashesPerTick) || hashesPerTick < 1) {
    throw new InvalidInputError('hashesPerTick must be a positive integer', { details: { hashesPerTick } })
  }
}

/** The first malformed entry as a failed check, and otherwise the list's total hash work. */
function shapeCheck(entries: readonly PohEntry[], hashesPerTick: number): PohCheck | number {
  let hashes = 0
  for (let index = 0; index < entries.length; index++) {
    const entry = entries[index] as PohEntry
    const reason = entryShapeError(entry, hashesPerTick)
    if (reason !== undefined) return { ok: false, index, reason }
    hashes += entry.numHashes + (entry.mixin === undefined ? 0 : 1)
  }
  return hashes
}

let mainThreadHasher: PohHasher | undefined

function checkInline(start: Uint8Array, entries: readonly PohEntry[]): PohCheck {
  mainThreadHasher ??= new PohHasher()
  return checkEncodedSlice(mainThreadHasher, encodePohEntries(start, entries), 0, entries.length)
}

/**
 * Checks entries on the calling thread with the fast hash loop. Same answers as
 * `PohVerifier.verify` (and as `verifyPohEntries` for lists without malformed entries).
 */
export function verifyPohInline(start: Uint8Array, entries: readonly PohEntry[], hashesPerTick: number): PohCheck {
  assertInputs(start, hashesPerTick)
  const shape = shapeCheck(entries, hashesPerTick)
  if (typeof shape !== 'number') return shape
  return checkInline(start, entries)
}

export class PohVerifier {
  readonly #size: number
  readonly #inlineThreshold: number
  readonly #slicesPerWorker: number
  readonly #idleMs: number
  readonly #clock: Clock
  readonly #log: Logger
  #pool: PoolWorker[] = []
  #queue: Task[] = []
  #running = false
  #nextTaskId = 1

  constructor(options: PohVerifierOptions = {}) {
    this.#size = options.workers ?? Math.max(1, availableParallelism() - 1)
    this.#inlineThreshold = options.inlineThreshold ?? DEFAULT_INLINE_THRESHOLD
    this.#slicesPerWorker = options.slicesPerWorker ?? DEFAULT_SLICES_PER_WORKER
    if (!Number.isSafeInteger(this.#size) || this.#size < 1) {
      throw new InvalidInputError('the PoH verifier needs at least one worker', { details: { workers: this.#size } })
    }
    if (!(this.#inlineThreshold >= 0)) {
      throw new InvalidInputError('inlineThreshold must be a non-negative number of hashes')
    }
    if (!Number.isSafeInteger(this.#slicesPerWorker) || this.#slicesPerWorker < 1) {
      throw new InvalidInputError('slicesPerWorker must be a positive integer')
    }
    this.#idleMs = options.idleMs ?? DEFAULT_POH_VERIFIER_IDLE_MS
    this.#clock = options.clock ?? systemClock
    if (!(this.#idleMs >= 0)) throw new InvalidInputError('idleMs must be a non-negative number of milliseconds')
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:chain:poh')
  }

  /** Most worker threads the pool runs at once. */
  get workers(): number {
    return this.#size
  }

  /** Worker threads alive now: none until a list needs the pool, and none after `idleMs` without one. */
  get threads(): number {
    return this.#pool.length
  }

  get running(): boolean {
    return this.#running
  }

  start(): void {
    if (this.#running) return
    this.#running = true
    this.#log.debug({ workers: this.#size, inlineThreshold: this.#inlineThreshold }, 'PoH verifier started')
  }

  /** Terminates the workers; pending verifications reject with `PohStoppedError`. */
  async stop(): Promise<void> {
    if (!this.#running) return
    this.#running = false
    const pool = this.#pool
    this.#pool = []
    const stopped = new PohStoppedError('the PoH verifier was stopped')
    for (const task of this.#queue) task.job.reject(stopped)
    for (const member of pool) {
      member.cancelIdle?.()
      member.task?.job.reject(stopped)
    }
    this.#queue = []
    await Promise.all(pool.map((member) => member.worker.terminate()))
    this.#log.debug('PoH verifier stopped')
  }

  /**
   * Checks `entries` from `start`: shapes first, then hashes, on the pool when the list holds at
   * least `inlineThreshold` hashes. Rejects with `AbortError` when `signal` aborts (a slice already
   * being hashed runs to its end, but its answer is dropped), and with `PohStoppedError` when a
   * list that needs the pool arrives before `start()` or after `stop()`.
   */
  verify(
    start: Uint8Array,
    entries: readonly PohEntry[],
    hashesPerTick: number,
    options: VerifyOptions = {},
  ): Promise<PohCheck> {
    const { signal } = options
    if (signal?.aborted === true) return Promise.reject(new AbortError())
    try {
      assertInputs(start, hashesPerTick)
      const shape = shapeCheck(entries, hashesPerTick)
      if (typeof shape !== 'number') return Promise.resolve(shape)
      if (shape < this.#inlineThreshold || entries.length === 0) return Promise.resolve(checkInline(start, entries))
      if (!this.#running) throw new PohStoppedError('the PoH verifier is not running; call start() first')
      return this.#verifyOnPool(start, entries, signal)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  #verifyOnPool(start: Uint8Array, entries: readonly PohEntry[], signal: AbortSignal | undefined): Promise<PohCheck> {
    const buffer = encodePohEntries(start, entries, true) as SharedArrayBuffer
    const slices = sliceByWork(entries, this.#size * this.#slicesPerWorker)
    return new Promise<PohCheck>((resolve, reject) => {
      const onAbort = (): void => job.reject(new AbortError())
      const finish = (): void => {
        job.done = true
        signal?.removeEventListener('abort', onAbort)
        this.#queue = this.#queue.filter((task) => task.job !== job)
      }
      const job: Job = {
        results: new Array<PohCheck | undefined>(slices.length).fill(undefined),
        firstFailure: slices.length,
        done: false,
        resolve: (check) => {
          if (job.done) return
          finish()
          resolve(check)
        },
        reject: (err) => {
          if (job.done) return
          finish()
          reject(err)
        },
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      slices.forEach(({ from, to }, slice) => {
        this.#queue.push({ job, slice, message: { taskId: this.#nextTaskId++, buffer, from, to } })
      })
      this.#pump()
    })
  }

  #spawn(): PoolWorker {
    const member: PoolWorker = { worker: spawnPohWorker(new URL('./verifier.worker.ts', import.meta.url)) }
    member.worker.on('message', (answer: { taskId: number; check: PohCheck }) => this.#onAnswer(member, answer))
    member.worker.on('error', (err) => {
      member.error = err
    })
    member.worker.on('exit', (exitCode) => this.#onExit(member, exitCode))
    return member
  }

  /**
   * Hands queued slices to idle workers, skipping slices that can no longer change the answer;
   * starts workers (up to the pool's size) while slices wait, and lets the ones left without a
   * slice time out.
   */
  #pump(): void {
    this.#queue = this.#queue.filter((task) => !task.job.done && task.slice <= task.job.firstFailure)
    let free = 0
    for (const member of this.#pool) if (member.task === undefined) free++
    while (this.#running && free < this.#queue.length && this.#pool.length < this.#size) {
      this.#pool.push(this.#spawn())
      free++
    }
    for (const member of this.#pool) {
      if (member.task !== undefined) continue
      const task = this.#queue.shift()
      if (task === undefined) {
        this.#armIdle(member)
        continue
      }
      member.cancelIdle?.()
      member.cancelIdle = undefined
      member.task = task
      member.worker.postMessage(task.message)
    }
  }

  /** Ends a worker that has had no slice for `idleMs`. */
  #armIdle(member: PoolWorker): void {
    if (this.#idleMs <= 0 || member.cancelIdle !== undefined) return
    member.cancelIdle = this.#clock.setTimer(this.#idleMs, () => {
      member.cancelIdle = undefined
      const index = this.#pool.indexOf(member)
      if (member.task !== undefined || index < 0) return
      this.#pool.splice(index, 1) // out of the pool first: #onExit reads it as on purpose
      void member.worker.terminate()
    })
  }

  #onAnswer(member: PoolWorker, answer: { taskId: number; check: PohCheck }): void {
    const task = member.task
    member.task = undefined
    if (task !== undefined && task.message.taskId === answer.taskId && !task.job.done) {
      const { job } = task
      job.results[task.slice] = answer.check
      if (!answer.check.ok) job.firstFailure = Math.min(job.firstFailure, task.slice)
      settleIfKnown(job)
    }
    this.#pump()
  }

  #onExit(member: PoolWorker, exitCode: number): void {
    const index = this.#pool.indexOf(member)
    if (index < 0) return // stopped on purpose
    this.#log.error({ exitCode, err: member.error }, 'PoH verifier worker exited; replacing it')
    member.cancelIdle?.()
    member.task?.job.reject(new PohWorkerError('a PoH verifier worker failed', { cause: member.error }))
    this.#pool.splice(index, 1) // the next slice that waits starts a new one
    this.#pump()
  }
}

/** Resolves a job once every slice up to the first failing one (or every slice) has answered. */
function settleIfKnown(job: Job): void {
  let ticks = 0
  let end: Uint8Array | undefined
  for (const result of job.results) {
    if (result === undefined) return
    if (!result.ok) return job.resolve(result)
    ticks += result.ticks
    end = result.end
  }
  if (end !== undefined) job.resolve({ ok: true, end, ticks })
}
