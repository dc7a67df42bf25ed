/**
 * Injectable time. Consensus, scheduling and audits take a `Clock` so tests drive them with
 * `ManualClock` (deterministic, no sleeping) and production uses `systemClock`.
 */
import { AbortError } from './errors.ts'

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number
  /** Calls `fn` after `ms`; returns a function that cancels it. */
  setTimer(ms: number, fn: () => void): () => void
  /** Resolves after `ms`, or rejects with `AbortError` when `signal` aborts. */
  sleep(ms: number, options?: { signal?: AbortSignal }): Promise<void>
}

function sleepWith(clock: Pick<Clock, 'setTimer'>, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted === true) return Promise.reject(new AbortError())
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      cancel()
      reject(new AbortError())
    }
    const cancel = clock.setTimer(ms, () => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    })
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    const timer = setTimeout(fn, ms)
    return () => clearTimeout(timer)
  },
  sleep(ms, options) {
    return sleepWith(systemClock, ms, options?.signal)
  },
}

interface PendingTimer {
  at: number
  seq: number
  fn: () => void
}

/** A clock that moves only when told to. Timers fire in (time, creation) order during `advance`. */
export class ManualClock implements Clock {
  #now: number
  #seq = 0
  #timers: PendingTimer[] = []

  constructor(startMs = 0) {
    this.#now = startMs
  }

  now(): number {
    return this.#now
  }

  setTimer(ms: number, fn: () => void): () => void {
    const timer: PendingTimer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn }
    this.#timers.push(timer)
    return () => {
      this.#timers = this.#timers.filter((t) => t !== timer)
    }
  }

  sleep(ms: number, options?: { signal?: AbortSignal }): Promise<void> {
    return sleepWith(this, ms, options?.signal)
  }

  /** Number of timers not yet fired. */
  get pending(): number {
    return this.#timers.length
  }

  /** Moves time forward by `ms`, firing every timer that falls due (including ones set while firing). */
  advance(ms: number): void {
    const target = this.#now + ms
    for (;;) {
      const next = this.#nextDue(target)
      if (next === undefined) break
      this.#timers = this.#timers.filter((t) => t !== next)
      this.#now = next.at
      next.fn()
    }
    this.#now = target
  }

  #nextDue(target: number): PendingTimer | undefined {
    let best: PendingTimer | undefined
    for (const t of this.#timers) {
      if (t.at > target) continue
      if (best === undefined || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t
    }
    return best
  }
}

/**
 * Runs `task` every `ms` on `clock` until `signal` aborts. Runs never overlap: a run still going
 * when the next is due skips it. Errors go to `onError` and the schedule goes on.
 */
export function repeat(
  clock: Pick<Clock, 'setTimer'>,
  ms: number,
  task: () => Promise<void> | void,
  options: { signal: AbortSignal; onError: (err: unknown) => void },
): void {
  let running = false
  const schedule = (): void => {
    if (options.signal.aborted) return
    const cancel = clock.setTimer(ms, () => {
      options.signal.removeEventListener('abort', cancel)
      schedule()
      if (running) return
      running = true
      void (async () => task())()
        .catch(options.onError)
        .finally(() => (running = false))
    })
    options.signal.addEventListener('abort', cancel, { once: true })
  }
  schedule()
}

/** What `repeatWhileDue` returns: `wake` starts the schedule (or keeps it going) after new work. */
export interface DueSchedule {
  wake(): void
  /** Whether a run is scheduled or going. */
  readonly active: boolean
}

/**
 * `repeat` for work that comes and goes: after `wake()`, runs `task` every `ms` while it returns
 * true (work left), then holds no timer until the next `wake()`. A `wake()` during a run keeps the
 * schedule going whatever that run returns (it may have looked before the new work came). Runs
 * never overlap; errors go to `onError` and count as work left; an abort ends it for good.
 */
export function repeatWhileDue(
  clock: Pick<Clock, 'setTimer'>,
  ms: number,
  task: () => Promise<boolean> | boolean,
  options: { signal: AbortSignal; onError: (err: unknown) => void },
): DueSchedule {
  let scheduled = false
  let running = false
  let wokenWhileRunning = false
  const run = async (): Promise<void> => {
    running = true
    wokenWhileRunning = false
    let more = true
    try {
      more = await task()
    } catch (err) {
      options.onError(err)
    }
    running = false
    if (more || wokenWhileRunning) schedule()
  }
  const schedule = (): void => {
    if (options.signal.aborted || scheduled) return
    scheduled = true
    const cancel = clock.setTimer(ms, () => {
      options.signal.removeEventListener('abort', onAbort)
      scheduled = false
      void run()
    })
    const onAbort = (): void => {
      cancel()
      scheduled = false
    }
    options.signal.addEventListener('abort', onAbort, { once: true })
  }
  return {
    wake: () => {
      if (running) wokenWhileRunning = true
      else schedule()
    },
    get active() {
      return scheduled || running
    },
  }
}
