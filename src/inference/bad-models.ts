/**
 * Models this worker will not serve for a while: each time a model breaks a sandbox limit
 * (`ModelLimitError.limit`) or cannot be loaded, it is marked, and not retried before its back-off
 * ends. The back-off doubles per failure from `baseMs` (1 minute) up to `maxMs` (1 day), so a
 * hostile model costs a worker one process start per back-off, not one every sync (2 s).
 *
 * A model that stays clean for two `maxMs` after its last failure starts again from `baseMs`.
 * Pure: time comes from the injected clock (`now` arguments default to it), nothing is stored.
 */
import type { Clock } from '../core/clock.ts'
import { InvalidInputError } from '../core/errors.ts'

export interface BadModelsOptions {
  clock: Pick<Clock, 'now'>
  /** First back-off, ms. @default 60_000 (1 minute) */
  baseMs?: number
  /** Longest back-off, ms. @default 86_400_000 (1 day) */
  maxMs?: number
  /** Models remembered; beyond this the one whose back-off ends first is forgotten. @default 4_096 */
  maxEntries?: number
}

export const BAD_MODEL_DEFAULTS = Object.freeze({ baseMs: 60_000, maxMs: 86_400_000, maxEntries: 4_096 })

/** One bad model, as `/v1/inference/stats` shows it. */
export interface BadModel {
  cid: string
  /** Why it was last marked: a `ModelLimit` (`run-time`, `memory`, ...) or another short reason. */
  reason: string
  /** Failures counted in the current back-off series. */
  failures: number
  /** When it was last marked (ms since the epoch). */
  markedAt: number
  /** Not retried before this time (ms since the epoch). */
  retryAt: number
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new InvalidInputError(`${name} must be a positive integer`)
  return value
}

export class BadModels {
  readonly #clock: Pick<Clock, 'now'>
  readonly #baseMs: number
  readonly #maxMs: number
  readonly #maxEntries: number
  readonly #entries = new Map<string, BadModel>()

  constructor(options: BadModelsOptions) {
    this.#clock = options.clock
    this.#baseMs = positive('baseMs', options.baseMs ?? BAD_MODEL_DEFAULTS.baseMs)
    this.#maxMs = positive('maxMs', options.maxMs ?? BAD_MODEL_DEFAULTS.maxMs)
    this.#maxEntries = positive('maxEntries', options.maxEntries ?? BAD_MODEL_DEFAULTS.maxEntries)
    if (this.#maxMs < this.#baseMs) throw new InvalidInputError('maxMs must be at least baseMs')
  }

  /** Records a failure of `cid` and returns its entry: back-off `baseMs · 2^(failures-1)`, at most `maxMs`. */
  mark(cid: string, reason: string, now: number = this.#clock.now()): BadModel {
    const previous = this.#entries.get(cid)
    const fresh = previous === undefined || now - previous.markedAt > 2 * this.#maxMs
    const failures = fresh ? 1 : previous.failures + 1
    const backoff = Math.min(this.#maxMs, this.#baseMs * 2 ** Math.min(failures - 1, 52))
    const entry: BadModel = { cid, reason, failures, markedAt: now, retryAt: now + backoff }
    this.#entries.delete(cid)
    this.#entries.set(cid, entry)
    this.#bound()
    return { ...entry }
  }

  /** Whether `cid` is still in its back-off at `now`. */
  isBad(cid: string, now: number = this.#clock.now()): boolean {
    const entry = this.#entries.get(cid)
    return entry !== undefined && now < entry.retryAt
  }

  /** Forgets `cid` (an operator cleared it, or it was unregistered). */
  forgive(cid: string): void {
    this.#entries.delete(cid)
  }

  /** Every remembered model, the soonest retry first. */
  list(): BadModel[] {
    return [...this.#entries.values()]
      .map((e) => ({ ...e }))
      .sort((a, b) => a.retryAt - b.retryAt || (a.cid < b.cid ? -1 : 1))
  }

  #bound(): void {
    while (this.#entries.size > this.#maxEntries) {
      const first = this.list()[0]
      if (first === undefined) return
      this.#entries.delete(first.cid)
    }
  }
}
