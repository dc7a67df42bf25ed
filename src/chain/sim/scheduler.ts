/**
 * The simulator's clock: a discrete-event scheduler. Time jumps from one event to the next (no
 * real sleeping); events due at the same time run in the order they were scheduled. It implements
 * core's `Clock`, so the consensus engine runs on it unchanged.
 */
import type { Clock } from '../../core/clock.ts'
import { AbortError } from '../../core/errors.ts'

interface Entry {
  at: number
  seq: number
  fn: () => void
  cancelled: boolean
}

export class SimClock implements Clock {
  #now: number
  #seq = 0
  #heap: Entry[] = []
  #live = 0

  constructor(startMs = 0) {
    this.#now = startMs
  }

  now(): number {
    return this.#now
  }

  setTimer(ms: number, fn: () => void): () => void {
    const entry: Entry = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn, cancelled: false }
    this.#push(entry)
    this.#live++
    return () => {
      if (entry.cancelled) return
      entry.cancelled = true
      this.#live--
    }
  }

  sleep(ms: number, options?: { signal?: AbortSignal }): Promise<void> {
    const signal = options?.signal
    if (signal?.aborted === true) return Promise.reject(new AbortError())
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        cancel()
        reject(new AbortError())
      }
      const cancel = this.setTimer(ms, () => {
        signal?.removeEventListener('abort', onAbort)
        resolve()
      })
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Timers not yet fired or cancelled. */
  get pending(): number {
    return this.#live
  }

  /** Time of the next live event, if any. */
  peek(): number | undefined {
    this.#dropCancelled()
    return this.#heap[0]?.at
  }

  /** Runs the next event if it is due at or before `until`; returns false when there is none. */
  step(until = Number.POSITIVE_INFINITY): boolean {
    this.#dropCancelled()
    const top = this.#heap[0]
    if (top === undefined || top.at > until) return false
    this.#pop()
    top.cancelled = true
    this.#live--
    this.#now = top.at
    top.fn()
    return true
  }

  /** Moves time to `at` (not backwards) without running anything. */
  advanceTo(at: number): void {
    if (at > this.#now) this.#now = at
  }

  #dropCancelled(): void {
    while (this.#heap.length > 0 && (this.#heap[0] as Entry).cancelled) this.#pop()
  }

  #less(a: Entry, b: Entry): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq)
  }

  #push(entry: Entry): void {
    const heap = this.#heap
    heap.push(entry)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!this.#less(heap[i] as Entry, heap[parent] as Entry)) break
      ;[heap[i], heap[parent]] = [heap[parent] as Entry, heap[i] as Entry]
      i = parent
    }
  }

  #pop(): void {
    const heap = this.#heap
    const last = heap.pop() as Entry
    if (heap.length === 0) return
    heap[0] = last
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let best = i
      if (l < heap.length && this.#less(heap[l] as Entry, heap[best] as Entry)) best = l
      if (r < heap.length && this.#less(heap[r] as Entry, heap[best] as Entry)) best = r
      if (best === i) return
      ;[heap[i], heap[best]] = [heap[best] as Entry, heap[i] as Entry]
      i = best
    }
  }
}
