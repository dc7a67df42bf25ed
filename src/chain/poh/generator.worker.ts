/**
 * The PoH generator's thread: an endless hash loop that never returns to its event loop.
 *
 * Commands (record, reset, flush) arrive on a MessagePort that this thread reads synchronously
 * with `receiveMessageOnPort`; after posting one, the main thread bumps a shared "doorbell"
 * counter and notifies it. The loop looks at the doorbell every GENERATOR_CHECK_EVERY hashes, and
 * when paced it sleeps with `Atomics.wait` on the doorbell, so a command wakes it at once.
 * Entries go back in batches, encoded in one transferred buffer (wire.ts).
 *
 * Pacing (ticksPerSecond > 0): tick k after a (re)start is due at t0 + k/ticksPerSecond. The
 * loop hashes a tick, then waits until the tick is due and only then emits it; when it is behind
 * it emits at once and goes on without sleeping, so it catches up. A `record` emits the entry
 * with the plain hashes done since the previous entry plus the mixin, and the next tick starts
 * from zero hashes after it; a record that arrives while a finished tick waits for its due time
 * emits that tick first. With `maxTicks`, the loop rests (blocked on the doorbell, no CPU) once
 * that many ticks were emitted since the (re)start, until a command comes. A reset with `rest`
 * makes it rest at once, until the next reset without it (a height that waits for work).
 */
import { performance } from 'node:perf_hooks'
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads'
import { GENERATOR_CHECK_EVERY, GENERATOR_FLUSH_MS, GENERATOR_MAX_BATCH } from './constants.ts'
import type { PohEntry } from './entries.ts'
import { PohHasher } from './hasher.ts'
import { encodePohEntries } from './wire.ts'

export interface GeneratorWorkerData {
  start: Uint8Array
  hashesPerTick: number
  ticksPerSecond: number
  /** Paced ticks after a (re)start before the loop sleeps until a command; 0: no limit. */
  maxTicks: number
  /** The main thread's reset count; events carry it so stale ones can be dropped. */
  epoch: number
  /** Start resting (a thread started again while the chain waits, to record a mixin). */
  rest?: boolean
  /** Int32 counter of commands posted on `commands`. */
  doorbell: SharedArrayBuffer
  commands: MessagePort
}

export type GeneratorCommand =
  | { type: 'record'; id: number; mixin: Uint8Array }
  | { type: 'reset'; epoch: number; hash: Uint8Array; rest?: boolean }
  | { type: 'flush'; id: number }

export type GeneratorEvent =
  | { type: 'entries'; epoch: number; buffer: ArrayBuffer; records: Array<{ id: number; index: number }> }
  | { type: 'flushed'; epoch: number; id: number }

const data = workerData as GeneratorWorkerData
const bell = new Int32Array(data.doorbell)
const hashesPerTick = data.hashesPerTick
const periodMs = data.ticksPerSecond > 0 ? 1000 / data.ticksPerSecond : 0
const maxTicks = periodMs > 0 ? data.maxTicks : 0
const hasher = new PohHasher(data.start)

let epoch = data.epoch
let seen = 0
/** Plain hashes done since the last entry. */
let pending = 0
/** Ticks emitted since t0, for due times. */
let tickNo = 0
let t0 = performance.now()
let batch: PohEntry[] = []
let batchStart = hasher.hash
let records: Array<{ id: number; index: number }> = []
let lastFlush = t0
/** Set by a reset with `rest`: no ticks until the next reset without it. */
let resting = data.rest === true

function post(event: GeneratorEvent, transfer: ArrayBuffer[] = []): void {
  parentPort?.postMessage(event, transfer)
}

function flush(): void {
  lastFlush = performance.now()
  if (batch.length === 0) return
  const buffer = encodePohEntries(batchStart, batch) as ArrayBuffer
  post({ type: 'entries', epoch, buffer, records }, [buffer])
  batch = []
  records = []
  batchStart = hasher.hash
}

function emit(mixin?: Uint8Array): void {
  const numHashes = pending
  if (mixin !== undefined) hasher.mix(mixin)
  batch.push(mixin === undefined ? { numHashes, hash: hasher.hash } : { numHashes, mixin, hash: hasher.hash })
  pending = 0
}

function emitTick(): void {
  emit()
  tickNo++
}

function handle(command: GeneratorCommand): void {
  switch (command.type) {
    case 'record':
      if (pending === hashesPerTick) emitTick()
      emit(command.mixin)
      records.push({ id: command.id, index: batch.length - 1 })
      flush()
      break
    case 'reset':
      epoch = command.epoch
      hasher.set(command.hash)
      batch = []
      records = []
      batchStart = hasher.hash
      pending = 0
      tickNo = 0
      t0 = performance.now()
      resting = command.rest === true
      break
    case 'flush':
      flush()
      post({ type: 'flushed', epoch, id: command.id })
      break
  }
}

/** Handles every command the doorbell announces (the port may lag the counter by a moment). */
function takeCommands(): void {
  while (seen !== Atomics.load(bell, 0)) {
    const received = receiveMessageOnPort(data.commands)
    if (received === undefined) return
    seen = (seen + 1) | 0 // the doorbell is an Int32 and wraps the same way
    handle(received.message as GeneratorCommand)
  }
}

/** Sleeps until `due`, handling commands as they come; returns early when one ends the tick. */
function waitUntil(due: number): void {
  flush()
  for (;;) {
    const now = performance.now()
    if (now >= due || pending !== hashesPerTick) return
    const rung = Atomics.load(bell, 0)
    if (rung !== seen) takeCommands()
    else Atomics.wait(bell, 0, rung, due - now)
  }
}

/** Whether the loop sleeps: told to rest, or enough ticks since the (re)start. */
function restful(): boolean {
  return pending === 0 && (resting || (maxTicks > 0 && tickNo >= maxTicks))
}

/** Sleeps until a command changes `restful()` (a reset starts counting again). */
function rest(): void {
  flush()
  while (restful()) {
    const rung = Atomics.load(bell, 0)
    if (rung !== seen) takeCommands()
    else Atomics.wait(bell, 0, rung)
  }
}

for (;;) {
  if (restful()) rest()
  // a reset with `rest` that arrives mid-tick ends the tick (and the loop rests at the top)
  while (pending < hashesPerTick && !resting) {
    const n = Math.min(GENERATOR_CHECK_EVERY, hashesPerTick - pending)
    hasher.hashN(n)
    pending += n
    if (Atomics.load(bell, 0) !== seen) takeCommands()
  }
  // A command may have ended the tick (a record emits a finished tick first; a reset drops it).
  if (pending !== hashesPerTick) continue
  if (periodMs > 0) {
    waitUntil(t0 + (tickNo + 1) * periodMs)
    if (pending !== hashesPerTick) continue
    emitTick()
    flush()
  } else {
    emitTick()
    if (batch.length >= GENERATOR_MAX_BATCH || performance.now() - lastFlush >= GENERATOR_FLUSH_MS) flush()
  }
}
