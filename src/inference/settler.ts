/**
 * The settler role: batches the receipts this gateway accepted into `inference.settle`
 * transactions, with the latency the gateway measured for each, and follows them until the
 * chain settles or refuses each receipt. Its queue is journaled, so a gateway that restarts still
 * settles what it served (its workers are paid); a receipt the chain neither settles nor refuses
 * within SETTLE_TIMEOUT_MS is submitted again while its window lasts.
 */
import { decode, encode } from '../core/codec.ts'
import { toHex } from '../core/bytes.ts'
import { describeError } from '../core/errors.ts'
import { repeatWhileDue, type DueSchedule } from '../core/clock.ts'
import type { Logger } from '../core/logger.ts'
import type { ChainEvent } from '../chain/host.ts'
import type { InferenceComponents } from './components.ts'
import { SETTLE_BATCH, SETTLE_INTERVAL_MS, SETTLE_TIMEOUT_MS } from './constants.ts'
import { jobIdHex, parseReceipt, receiptId, receiptValue, type Receipt } from './job.ts'
import { settlementOf } from './chain/state.ts'
import { InferenceError } from './errors.ts'

/** Durable key -> bytes storage for a component's pending work (a LevelDB bucket in a node). */
export interface Journal {
  put(key: string, value: Uint8Array): Promise<void>
  delete(key: string): Promise<void>
  list(): Promise<Array<[string, Uint8Array]>>
}

/** A journal that forgets on restart (simulations, tests). */
export function memoryJournal(): Journal {
  const map = new Map<string, Uint8Array>()
  return {
    put: async (key, value) => void map.set(key, value),
    delete: async (key) => void map.delete(key),
    list: async () => [...map],
  }
}

export interface SettleItem {
  receipt: Receipt
  /** What the gateway measured from dispatch to verified answer, ms. */
  latencyMs: number
}

export interface SettlerInit {
  journal?: Journal
  /** The job was settled at `height` (or refused, or its window passed: `height` undefined). */
  onOutcome?(jobIdHex: string, height: number | undefined): void
}

interface Pending extends SettleItem {
  id: string
  receiptIdHex: string
  submittedAt?: number
}

export class Settler {
  readonly #c: InferenceComponents
  readonly #init: SettlerInit
  readonly #log: Logger
  readonly #pending = new Map<string, Pending>()
  readonly #byReceipt = new Map<string, string>()
  #unsubscribe: (() => void) | undefined
  /** Settlement rounds every SETTLE_INTERVAL_MS while receipts are pending; none while idle. */
  readonly #rounds: DueSchedule
  #started = false

  constructor(components: InferenceComponents, init: SettlerInit = {}) {
    this.#c = components
    this.#init = init
    this.#log = components.logger.forComponent('donghae:inference:settler')
    this.#rounds = repeatWhileDue(
      components.clock,
      SETTLE_INTERVAL_MS,
      async () => {
        await this.flush()
        return this.#pending.size > 0
      },
      {
        signal: components.signal,
        onError: (err) => this.#log.warn({ err: describeError(err) }, 'settlement round failed'),
      },
    )
  }

  async start(): Promise<void> {
    for (const [, bytes] of (await this.#init.journal?.list()) ?? []) {
      try {
        const raw = decode(bytes) as { receipt: unknown; latencyMs: number }
        void this.#track({ receipt: parseReceipt(raw.receipt), latencyMs: raw.latencyMs }, false)
      } catch (err) {
        this.#log.warn({ err: describeError(err) }, 'a journaled receipt does not decode; dropped')
      }
    }
    this.#unsubscribe = this.#c.chain.onCommit((height, events) => this.#onCommit(height, events))
    this.#started = true
    this.#rounds.wake()
  }

  stop(): void {
    this.#unsubscribe?.()
  }

  /** Whether a settlement round is scheduled: only while receipts are pending (an idle gateway wakes for nothing). */
  get scheduled(): boolean {
    return this.#rounds.active
  }

  /** Receipts accepted and not yet settled or refused. */
  get pending(): number {
    return this.#pending.size
  }

  /**
   * Follows a receipt until the chain settles or refuses it. Resolves once it is journaled, so a
   * caller that waits before answering its client never answers for a receipt a crash would lose;
   * rejects with InferenceError `not-recorded` when the journal refused it (a full disk). The
   * receipt is still followed while the process lives: the worker did the work.
   */
  add(item: SettleItem): Promise<void> {
    return this.#track(item, true)
  }

  #track(item: SettleItem, journal: boolean): Promise<void> {
    const id = jobIdHex(item.receipt.job)
    const receiptIdHex = toHex(receiptId(item.receipt))
    this.#pending.set(id, { ...item, id, receiptIdHex })
    this.#byReceipt.set(receiptIdHex, id)
    if (this.#started) this.#rounds.wake()
    if (!journal || this.#init.journal === undefined) return Promise.resolve()
    return this.#init.journal
      .put(id, encode({ receipt: receiptValue(item.receipt), latencyMs: item.latencyMs }))
      .catch((err: unknown) => {
        this.#log.warn({ err: describeError(err) }, 'receipt not journaled')
        throw new InferenceError(
          'not-recorded',
          `the gateway could not record the receipt (${describeError(err)}); the job may still be settled`,
          { cause: err },
        )
      })
  }

  #done(id: string, height: number | undefined): void {
    const item = this.#pending.get(id)
    if (item === undefined) return
    this.#pending.delete(id)
    this.#byReceipt.delete(item.receiptIdHex)
    void this.#init.journal?.delete(id).catch(() => {})
    this.#init.onOutcome?.(id, height)
  }

  /** Submits what is due: never sent, or sent SETTLE_TIMEOUT_MS ago without an outcome. */
  async flush(): Promise<void> {
    const c = this.#c
    const now = c.clock.now()
    const state = c.chain.state()
    const due: Pending[] = []
    for (const item of this.#pending.values()) {
      if (item.submittedAt !== undefined && now - item.submittedAt < SETTLE_TIMEOUT_MS) continue
      const settled = settlementOf(state, item.id)
      if (settled !== undefined) {
        this.#done(item.id, settled.height)
        continue
      }
      if (c.chain.time() > item.receipt.job.deadline + c.chain.params.settleWindowMs) {
        this.#log.warn({ job: item.id }, 'receipt never settled; its window has passed')
        this.#done(item.id, undefined)
        continue
      }
      due.push(item)
    }
    const size = Math.min(SETTLE_BATCH, c.chain.params.maxReceiptsPerSettle)
    for (let i = 0; i < due.length; i += size) {
      const batch = due.slice(i, i + size)
      try {
        await c.submitTx('inference.settle', {
          receipts: batch.map((b) => receiptValue(b.receipt)),
          latencies: batch.map((b) => Math.max(0, Math.round(b.latencyMs))),
        })
        for (const b of batch) b.submittedAt = now
        this.#log.debug({ receipts: batch.length, jobs: batch.map((b) => b.id.slice(0, 12)) }, 'settlement submitted')
      } catch (err) {
        this.#log.warn({ err: describeError(err), receipts: batch.length }, 'settlement not submitted; will retry')
        return
      }
    }
  }

  #onCommit(height: number, events: readonly ChainEvent[]): void {
    for (const e of events) {
      if (e.type === 'inference.settled') {
        const id = e.attributes.jobId
        if (id !== undefined && this.#pending.has(id)) this.#done(id, height)
      } else if (e.type === 'inference.receipt_rejected') {
        const id = this.#byReceipt.get(e.attributes.receiptId ?? '')
        if (id === undefined) continue
        this.#log.warn({ job: id, reason: e.attributes.reason }, 'the chain refused a receipt')
        this.#done(id, undefined)
      }
    }
  }
}
