/**
 * The PoH generator: a sequential hash chain computed on its own worker thread, emitting a tick
 * every `hashesPerTick` hashes (paced to `ticksPerSecond`, or flat out) and an entry with a mixin
 * whenever `record` is called. The main thread keeps the entries produced since the last `drain`.
 * See generator.worker.ts for the loop and its pacing rules.
 */
import { MessageChannel, type MessagePort, type Worker } from 'node:worker_threads'
import { systemClock, type Clock } from '../../core/clock.ts'
import { AbortError, InvalidInputError } from '../../core/errors.ts'
import { silentLogger, type Logger } from '../../core/logger.ts'
import { POH_HASH_LENGTH, type PohEntry } from './entries.ts'
import { PohResetError, PohStoppedError, PohWorkerError } from './errors.ts'
import { spawnPohWorker } from './threads.ts'
import { decodePohEntries } from './wire.ts'
import type { GeneratorCommand, GeneratorEvent, GeneratorWorkerData } from './generator.worker.ts'

export interface PohGeneratorOptions {
  /** Plain hashes per tick; the chain's parameter. */
  hashesPerTick: number
  /** Ticks per second to pace to; 0 or undefined runs flat out. */
  ticksPerSecond?: number
  /** The hash the chain continues from. @default 32 zero bytes */
  startHash?: Uint8Array
  /**
   * Paced ticks to produce after a (re)start before the loop sleeps until the next command: an
   * idle chain (no empty blocks) needs only the ticks of its first rounds, and a proposer that
   * needs more extends the chain itself. 0: no limit. @default 0
   */
  maxTicks?: number
  /**
   * A generator told to rest (`reset` with `rest`) for this long ends its thread, which holds
   * about 15 MB while it sleeps; the next reset without `rest` (or a `record`) starts a new one
   * from the same hash. Until the new thread has sent its first entries, `drain` gives what it
   * has (nothing) without waiting for it to start. 0: the thread lives until `stop`. @default 0
   */
  idleMs?: number
  /**
   * A generator asked to tick while no thread runs starts one only after it has been asked for
   * this long with no reset in between (a `record` or `ready` starts one at once). Until then
   * `drain` gives nothing, and a caller that needs ticks makes them itself (WorkerPohService
   * extends flat out): a chain whose heights end quickly never pays for the thread, nor for ticks
   * nobody uses. 0: a thread starts at once. @default 0
   */
  threadDelayMs?: number
  /** Drives the idle and delay timers (tests use a ManualClock). @default systemClock */
  clock?: Clock
  logger?: Logger
}

export interface PohSignalOptions {
  signal?: AbortSignal
}

interface Pending<T> {
  resolve(value: T): void
  reject(err: unknown): void
}

interface TickWaiter extends Pending<void> {
  ticks: number
}

interface Running {
  worker: Worker
  port: MessagePort
  doorbell: Int32Array
  /** Whether the thread has sent anything yet (it is started and listening). */
  heard: boolean
  error?: unknown
}

function assertHash(bytes: Uint8Array, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== POH_HASH_LENGTH) {
    throw new InvalidInputError(`${what} must be 32 bytes`)
  }
}

export class PohGenerator {
  readonly hashesPerTick: number
  readonly ticksPerSecond: number
  readonly maxTicks: number
  readonly #idleMs: number
  readonly #threadDelayMs: number
  readonly #clock: Clock
  readonly #log: Logger
  /** Between `start` and `stop`, whether or not a thread runs now (it ends while resting). */
  #started = false
  #running: Running | undefined
  /** Told to rest by the latest reset. */
  #resting = false
  #cancelIdle: (() => void) | undefined
  #cancelSpawn: (() => void) | undefined
  #hash: Uint8Array
  #entries: PohEntry[] = []
  #ticks = 0
  #epoch = 0
  #nextId = 1
  #records = new Map<number, Pending<PohEntry>>()
  #drains = new Map<number, Pending<PohEntry[]>>()
  #pings = new Map<number, Pending<void>>()
  #waiters = new Set<TickWaiter>()

  constructor(options: PohGeneratorOptions) {
    const { hashesPerTick, ticksPerSecond = 0 } = options
    if (!Number.isSafeInteger(hashesPerTick) || hashesPerTick < 1) {
      throw new InvalidInputError('hashesPerTick must be a positive integer', { details: { hashesPerTick } })
    }
    if (!Number.isFinite(ticksPerSecond) || ticksPerSecond < 0) {
      throw new InvalidInputError('ticksPerSecond must be a non-negative number', { details: { ticksPerSecond } })
    }
    const startHash = options.startHash ?? new Uint8Array(POH_HASH_LENGTH)
    assertHash(startHash, 'the PoH start hash')
    const maxTicks = options.maxTicks ?? 0
    if (!Number.isSafeInteger(maxTicks) || maxTicks < 0) {
      throw new InvalidInputError('maxTicks must be a non-negative integer', { details: { maxTicks } })
    }
    const idleMs = options.idleMs ?? 0
    if (!(idleMs >= 0)) throw new InvalidInputError('idleMs must be a non-negative number of milliseconds')
    const threadDelayMs = options.threadDelayMs ?? 0
    if (!(threadDelayMs >= 0)) {
      throw new InvalidInputError('threadDelayMs must be a non-negative number of milliseconds')
    }
    this.hashesPerTick = hashesPerTick
    this.ticksPerSecond = ticksPerSecond
    this.maxTicks = maxTicks
    this.#idleMs = idleMs
    this.#threadDelayMs = threadDelayMs
    this.#clock = options.clock ?? systemClock
    this.#hash = Uint8Array.from(startHash)
    this.#log = (options.logger ?? silentLogger()).forComponent('donghae:chain:poh')
  }

  /** The hash of the latest entry received from the worker (the start hash before any). */
  get hash(): Uint8Array {
    return Uint8Array.from(this.#hash)
  }

  /** Ticks produced since the last reset or drain. */
  get ticks(): number {
    return this.#ticks
  }

  /** Between `start` and `stop` (or a failed thread), even while its thread has ended to rest. */
  get running(): boolean {
    return this.#started
  }

  /**
   * Whether a thread runs now: false before `start`, after `stop`, after `idleMs` of rest, and
   * for `threadDelayMs` after a reset asks a generator without one to tick.
   */
  get threadAlive(): boolean {
    return this.#running !== undefined
  }

  /** Starts the hash loop from `hash`. Does nothing when already running. */
  start(): void {
    if (this.#started) return
    this.#started = true
    if (this.#threadDelayMs > 0) this.#wantThread()
    else this.#spawn()
    this.#log.info(
      { hashesPerTick: this.hashesPerTick, ticksPerSecond: this.ticksPerSecond },
      this.ticksPerSecond > 0 ? 'PoH generator started' : 'PoH generator started (unpaced)',
    )
  }

  /**
   * Ticks are asked for and no thread runs: one starts now, or after `threadDelayMs` unless a
   * reset comes first (which asks again, from its own time).
   */
  #wantThread(): void {
    this.#disarmSpawn()
    if (this.#resting) return
    if (this.#threadDelayMs <= 0) return this.#spawn()
    // stop, a reset with rest and any other start (record, ready) disarm this timer first
    this.#cancelSpawn = this.#clock.setTimer(this.#threadDelayMs, () => {
      this.#cancelSpawn = undefined
      this.#spawn()
      this.#log.debug({ threadDelayMs: this.#threadDelayMs }, 'PoH generator thread started after a reset')
    })
  }

  #disarmSpawn(): void {
    this.#cancelSpawn?.()
    this.#cancelSpawn = undefined
  }

  /** Starts a thread from the current hash and epoch, resting if the latest reset said so. */
  #spawn(): void {
    this.#disarmSpawn()
    const doorbell = new SharedArrayBuffer(4)
    const { port1, port2 } = new MessageChannel()
    const workerData: GeneratorWorkerData = {
      start: this.#hash,
      hashesPerTick: this.hashesPerTick,
      ticksPerSecond: this.ticksPerSecond,
      maxTicks: this.maxTicks,
      doorbell,
      commands: port2,
      epoch: this.#epoch,
      ...(this.#resting ? { rest: true } : {}),
    }
    const worker = spawnPohWorker(new URL('./generator.worker.ts', import.meta.url), {
      workerData,
      transferList: [port2],
    })
    const running: Running = { worker, port: port1, doorbell: new Int32Array(doorbell), heard: false }
    worker.on('message', (event: GeneratorEvent) => {
      running.heard = true
      this.#onEvent(event)
    })
    worker.on('error', (err) => {
      running.error = err
    })
    worker.on('exit', (exitCode) => this.#onExit(running, exitCode))
    this.#running = running
    if (this.#resting) this.#armIdle() // started again to record while resting: it ends again
  }

  /** Terminates the worker. Pending calls reject with `PohStoppedError`; entries not drained are kept. */
  async stop(): Promise<void> {
    if (!this.#started) return
    this.#started = false
    this.#disarmIdle()
    this.#disarmSpawn()
    const running = this.#running
    this.#running = undefined
    running?.port.close()
    this.#failAll(new PohStoppedError('the PoH generator was stopped'))
    await running?.worker.terminate()
    this.#log.info('PoH generator stopped')
  }

  /** After `idleMs` of rest with nothing asked of it, the thread ends (a later reset starts one). */
  #armIdle(): void {
    if (this.#idleMs <= 0 || this.#cancelIdle !== undefined || this.#running === undefined) return
    this.#cancelIdle = this.#clock.setTimer(this.#idleMs, () => {
      this.#cancelIdle = undefined
      const running = this.#running
      if (running === undefined || !this.#resting) return
      if (this.#records.size + this.#drains.size + this.#pings.size > 0) return this.#armIdle() // busy: later
      this.#running = undefined // first: #onExit reads the exit as on purpose
      running.port.close()
      void running.worker.terminate()
      this.#log.debug({ idleMs: this.#idleMs }, 'PoH generator thread ended while resting')
    })
  }

  #disarmIdle(): void {
    this.#cancelIdle?.()
    this.#cancelIdle = undefined
  }

  /**
   * Discards the entries not yet drained and continues from `startHash`, with no ticks counted.
   * Pending `record` calls reject with `PohResetError`. With `rest`, the loop starts from
   * `startHash` but makes no tick until the next reset without it: `drain` then gives nothing.
   */
  reset(startHash: Uint8Array, options: { rest?: boolean } = {}): void {
    assertHash(startHash, 'the PoH start hash')
    this.#epoch++
    this.#hash = Uint8Array.from(startHash)
    this.#entries = []
    this.#ticks = 0
    const discarded = new PohResetError('the PoH chain was reset before the mixin was recorded')
    for (const record of this.#records.values()) record.reject(discarded)
    this.#records.clear()
    this.#resting = options.rest === true
    if (this.#resting) this.#armIdle()
    else this.#disarmIdle()
    if (this.#running === undefined) {
      // no thread (ended while resting, or not started yet): a resting chain needs none
      if (this.#started) this.#wantThread()
      return
    }
    this.#send({
      type: 'reset',
      epoch: this.#epoch,
      hash: this.#hash,
      ...(this.#resting ? { rest: true } : {}),
    })
  }

  /**
   * Mixes `mixin` (32 bytes) into the chain: the entry carries the plain hashes done since the
   * previous entry, and the next tick counts its hashes from zero after it. An aborted call may
   * still have been recorded; only its answer is dropped.
   */
  record(mixin: Uint8Array, options: PohSignalOptions = {}): Promise<PohEntry> {
    try {
      assertHash(mixin, 'a PoH mixin')
    } catch (err) {
      return Promise.reject(err)
    }
    const copy = Uint8Array.from(mixin)
    return this.#request(this.#records, options.signal, (id) => ({ type: 'record', id, mixin: copy }))
  }

  /**
   * The entries produced since the last drain (or reset), in order; the tick count restarts. A
   * thread that has not started yet (or has ended to rest) has produced nothing more than what
   * this thread holds: that comes back at once.
   */
  drain(options: PohSignalOptions = {}): Promise<PohEntry[]> {
    if (this.#running === undefined || !this.#running.heard) {
      if (options.signal?.aborted === true) return Promise.reject(new AbortError())
      return Promise.resolve(this.#take())
    }
    return this.#request(this.#drains, options.signal, (id) => ({ type: 'flush', id }))
  }

  /**
   * Resolves once the thread runs and has answered a command sent now: every command before it
   * (a reset) has reached its loop. Starts a thread that ended while resting.
   */
  ready(options: PohSignalOptions = {}): Promise<void> {
    return this.#request(this.#pings, options.signal, (id) => ({ type: 'flush', id }))
  }

  /** Resolves once `ticks` ticks have been produced since the last reset or drain. */
  waitForTicks(ticks: number, options: PohSignalOptions = {}): Promise<void> {
    const { signal } = options
    if (signal?.aborted === true) return Promise.reject(new AbortError())
    if (this.#ticks >= ticks) return Promise.resolve()
    if (!this.#started) {
      return Promise.reject(new PohStoppedError('the PoH generator is not running; call start() first'))
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => waiter.reject(new AbortError())
      const done = (): void => {
        this.#waiters.delete(waiter)
        signal?.removeEventListener('abort', onAbort)
      }
      const waiter: TickWaiter = {
        ticks,
        resolve: () => {
          done()
          resolve()
        },
        reject: (err) => {
          done()
          reject(err)
        },
      }
      this.#waiters.add(waiter)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Sends a command whose answer arrives later under its id, and registers the caller in `pending`. */
  #request<T>(
    pending: Map<number, Pending<T>>,
    signal: AbortSignal | undefined,
    command: (id: number) => GeneratorCommand,
  ): Promise<T> {
    if (signal?.aborted === true) return Promise.reject(new AbortError())
    if (!this.#started) {
      return Promise.reject(new PohStoppedError('the PoH generator is not running; call start() first'))
    }
    if (this.#running === undefined) this.#spawn() // ended while resting: it starts resting again
    const id = this.#nextId++
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => entry.reject(new AbortError())
      const done = (): void => {
        pending.delete(id)
        signal?.removeEventListener('abort', onAbort)
      }
      const entry: Pending<T> = {
        resolve: (value) => {
          done()
          resolve(value)
        },
        reject: (err) => {
          done()
          reject(err)
        },
      }
      pending.set(id, entry)
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#send(command(id))
    })
  }

  #send(command: GeneratorCommand): void {
    const running = this.#running
    if (running === undefined) return
    running.port.postMessage(command)
    Atomics.add(running.doorbell, 0, 1)
    Atomics.notify(running.doorbell, 0)
  }

  #onEvent(event: GeneratorEvent): void {
    if (event.type === 'flushed') {
      this.#drains.get(event.id)?.resolve(this.#take())
      this.#pings.get(event.id)?.resolve()
      return
    }
    if (event.epoch !== this.#epoch) return // produced before a reset
    const { entries } = decodePohEntries(event.buffer)
    for (const entry of entries) {
      this.#entries.push(entry)
      if (entry.mixin === undefined) this.#ticks++
      this.#hash = entry.hash
    }
    for (const { id, index } of event.records) {
      const entry = entries[index]
      if (entry !== undefined) this.#records.get(id)?.resolve(entry)
    }
    for (const waiter of this.#waiters) if (this.#ticks >= waiter.ticks) waiter.resolve()
  }

  #take(): PohEntry[] {
    const out = this.#entries
    this.#entries = []
    this.#ticks = 0
    return out
  }

  #onExit(running: Running, exitCode: number): void {
    if (this.#running !== running) return // stopped on purpose, or ended while resting
    this.#running = undefined
    this.#started = false
    this.#disarmIdle()
    this.#disarmSpawn()
    running.port.close()
    this.#log.error({ exitCode, err: running.error }, 'PoH generator worker exited')
    this.#failAll(new PohWorkerError('the PoH generator worker failed', { cause: running.error }))
  }

  #failAll(err: Error): void {
    const pending = [...this.#records.values(), ...this.#drains.values(), ...this.#pings.values(), ...this.#waiters]
    for (const one of pending) one.reject(err)
  }
}
