/**
 * Client load for a devnet under test: transfers and inference jobs sent through the nodes'
 * operator API, with a record of what each client saw - every transaction it saw committed (hash,
 * height, node) and every receipt it got. The chaos runner checks those records against the chain
 * after the faults (`invariants.ts`); a soak test can use the same generator on its own.
 *
 * ```ts
 * const load = startLoad({ targets: [{ url, token }], kinds: ['tx', 'infer'], rate: 2, rng: createRng(seed) })
 * // ... faults, time ...
 * await load.stop()
 * load.stats()     // what was sent, what failed and why (by error code)
 * load.committed() // CommittedTx[]: transactions a client saw committed
 * load.receipts()  // ReceivedReceipt[]: inference receipts clients received
 * ```
 *
 * A request that fails (a node killed, paused, partitioned) is counted by its error code and
 * not retried: the generator stands for many independent clients, not one that must get through.
 * Nothing here prints; `onEvent` reports each outcome to whoever wants a log.
 */
import { ApiError, DonghaeClient, type ReceiptJson, type TensorJson } from '../api/client.ts'
import { systemClock, type Clock } from '../core/clock.ts'
import type { Rng } from '../core/rng.ts'
import { Ed25519KeyPair } from '../identity/keys.ts'
import { didFromEd25519PublicKey } from '../identity/did-key.ts'
import {
  DEFAULT_INFER_MODEL,
  DEFAULT_LOAD_RATE,
  LOAD_MAX_IN_FLIGHT,
  LOAD_REQUEST_TIMEOUT_MS,
  TX_COMMIT_TIMEOUT_MS,
  TX_POLL_MS,
} from './constants.ts'
import { ChaosOptionError } from './errors.ts'

/** What the generator sends: `tx` a bank transfer from a node's account, `infer` an inference job. */
export type LoadKind = 'tx' | 'infer'
export const LOAD_KINDS: readonly LoadKind[] = ['tx', 'infer']

/** A node the clients talk to: its API base URL and its operator token (`<home>/api-token`). */
export interface LoadTarget {
  url: string
  token: string
}

export interface LoadInit {
  /** The nodes; each request goes to one drawn at random. */
  targets: readonly LoadTarget[]
  /** What to send. @default ['tx', 'infer'] */
  kinds?: readonly LoadKind[]
  /** Requests per second, all kinds together. @default DEFAULT_LOAD_RATE */
  rate?: number
  /** Draws the kind, the node, the recipient, the amount and the inputs: one seed, one sequence. */
  rng: Rng
  /** The model inference jobs run. @default DEFAULT_INFER_MODEL */
  model?: string
  clock?: Clock
  /** Aborting stops the generator as `stop()` does. */
  signal?: AbortSignal
  /** Called for every outcome (for a log); never for control. */
  onEvent?: (event: LoadEvent) => void
}

/** A transfer a client saw committed: the node that told it, and the height it told. */
export interface CommittedTx {
  hash: string
  height: number
  /** API URL of the node that reported the commit. */
  node: string
  to: string
  amount: string
  /** Wall-clock ms when the client saw it committed. */
  seenAt: number
}

/** An inference receipt a client received from a gateway. */
export interface ReceivedReceipt {
  jobId: string
  receiptId: string
  worker: string
  gateway: string
  fee: string
  deadline: number
  /** API URL of the gateway node the client called. */
  node: string
  receivedAt: number
}

export interface LoadStats {
  sent: Record<LoadKind, number>
  /** Transfers seen committed, receipts received. */
  ok: Record<LoadKind, number>
  /** Failures by kind and error code (`UNREACHABLE`, `TIMEOUT`, an API code such as `NO_WORKER`). */
  failed: Record<LoadKind, Record<string, number>>
  /** Requests still running. */
  inFlight: number
  /** Ticks skipped because LOAD_MAX_IN_FLIGHT requests were already running. */
  skipped: number
}

export type LoadEvent =
  | { type: 'committed'; tx: CommittedTx }
  | { type: 'receipt'; receipt: ReceivedReceipt }
  | { type: 'failed'; kind: LoadKind; node: string; code: string; message: string }

export interface LoadHandle {
  /** Stops sending, cancels the requests in flight and waits for them to settle. */
  stop(): Promise<void>
  stats(): LoadStats
  committed(): CommittedTx[]
  receipts(): ReceivedReceipt[]
}

/** Recipients of the transfers: fresh keys from the rng, so a run's transfers are reproducible. */
function sinks(rng: Rng, count: number): string[] {
  return Array.from({ length: count }, () => didFromEd25519PublicKey(Ed25519KeyPair.fromSeed(rng.bytes(32)).publicKey))
}

/** The 8×8 digit image the demo model `digits-mlp` takes, as 64 pixel values 0-16. */
function digitInput(rng: Rng): Record<string, TensorJson> {
  return { input: { type: 'float32', dims: [1, 64], data: Array.from({ length: 64 }, () => rng.int(0, 16)) } }
}

/** An error's stable code: the API's, TIMEOUT, or UNREACHABLE for a refused or reset connection. */
export function errorCode(err: unknown): string {
  if (err instanceof ApiError) return err.code
  if (err instanceof Error && err.name === 'AbortError') return 'ABORTED'
  return 'UNREACHABLE'
}

class Load implements LoadHandle {
  readonly #init: LoadInit
  readonly #clock: Clock
  readonly #rng: Rng
  readonly #kinds: readonly LoadKind[]
  readonly #sinks: string[]
  readonly #abort = new AbortController()
  readonly #inFlight = new Set<Promise<void>>()
  readonly #committed: CommittedTx[] = []
  readonly #receipts: ReceivedReceipt[] = []
  readonly #stats: LoadStats = {
    sent: { tx: 0, infer: 0 },
    ok: { tx: 0, infer: 0 },
    failed: { tx: {}, infer: {} },
    inFlight: 0,
    skipped: 0,
  }
  readonly #loop: Promise<void>

  constructor(init: LoadInit) {
    this.#init = init
    this.#clock = init.clock ?? systemClock
    this.#rng = init.rng
    this.#kinds = init.kinds ?? LOAD_KINDS
    this.#sinks = sinks(init.rng.fork('sinks'), 8)
    init.signal?.addEventListener('abort', () => this.#abort.abort(), { once: true })
    this.#loop = this.#run()
  }

  async #run(): Promise<void> {
    const interval = 1_000 / (this.#init.rate ?? DEFAULT_LOAD_RATE)
    const signal = this.#abort.signal
    while (!signal.aborted) {
      // jitter ±50 % so the requests do not march in step with the nodes' own timers
      await this.#clock.sleep(interval * (0.5 + this.#rng.next()), { signal }).catch(() => undefined)
      if (signal.aborted) break
      if (this.#inFlight.size >= LOAD_MAX_IN_FLIGHT) {
        this.#stats.skipped++
        continue
      }
      const kind = this.#rng.pick(this.#kinds)
      const target = this.#rng.pick(this.#init.targets)
      const request = kind === 'tx' ? this.#transfer(target) : this.#infer(target)
      const tracked: Promise<void> = request.finally(() => this.#inFlight.delete(tracked))
      this.#inFlight.add(tracked)
    }
  }

  #client(target: LoadTarget): DonghaeClient {
    return new DonghaeClient(target.url, { token: target.token, timeoutMs: LOAD_REQUEST_TIMEOUT_MS })
  }

  async #transfer(target: LoadTarget): Promise<void> {
    const signal = this.#abort.signal
    const to = this.#rng.pick(this.#sinks)
    const amount = String(this.#rng.int(1, 100))
    this.#stats.sent.tx++
    try {
      const client = this.#client(target)
      const { hash } = await client.transfer({ to, amount }, { signal })
      const { height } = await this.#waitCommitted(client, hash, signal)
      const tx: CommittedTx = { hash, height, node: target.url, to, amount, seenAt: this.#clock.now() }
      this.#committed.push(tx)
      this.#stats.ok.tx++
      this.#init.onEvent?.({ type: 'committed', tx })
    } catch (err) {
      this.#fail('tx', target, err)
    }
  }

  /** Polls one node for the transaction; a node that restarts in between is asked again. */
  async #waitCommitted(client: DonghaeClient, hash: string, signal: AbortSignal): Promise<{ height: number }> {
    const deadline = this.#clock.now() + TX_COMMIT_TIMEOUT_MS
    for (;;) {
      try {
        return await client.tx(hash, { signal })
      } catch (err) {
        if (signal.aborted) throw err
        if (err instanceof ApiError && err.code !== 'NOT_FOUND' && err.status !== 0) throw err
      }
      if (this.#clock.now() >= deadline)
        throw new ApiError({ status: 0, code: 'TIMEOUT', message: `transaction ${hash} not committed in time` })
      await this.#clock.sleep(TX_POLL_MS, { signal })
    }
  }

  async #infer(target: LoadTarget): Promise<void> {
    const signal = this.#abort.signal
    const inputs = digitInput(this.#rng)
    this.#stats.sent.infer++
    try {
      const answer = await this.#client(target).infer(
        { model: this.#init.model ?? DEFAULT_INFER_MODEL, inputs },
        { signal },
      )
      const r: ReceiptJson = answer.receipt
      const receipt: ReceivedReceipt = {
        jobId: r.jobId,
        receiptId: r.id,
        worker: r.worker,
        gateway: r.job.gateway,
        fee: r.fee,
        deadline: r.job.deadline,
        node: target.url,
        receivedAt: this.#clock.now(),
      }
      this.#receipts.push(receipt)
      this.#stats.ok.infer++
      this.#init.onEvent?.({ type: 'receipt', receipt })
    } catch (err) {
      this.#fail('infer', target, err)
    }
  }

  #fail(kind: LoadKind, target: LoadTarget, err: unknown): void {
    const code = errorCode(err)
    if (code === 'ABORTED' && this.#abort.signal.aborted) return
    const failed = this.#stats.failed[kind]
    failed[code] = (failed[code] ?? 0) + 1
    const message = err instanceof Error ? err.message : String(err)
    this.#init.onEvent?.({ type: 'failed', kind, node: target.url, code, message })
  }

  async stop(): Promise<void> {
    this.#abort.abort()
    await this.#loop
    await Promise.allSettled([...this.#inFlight])
  }

  stats(): LoadStats {
    return {
      sent: { ...this.#stats.sent },
      ok: { ...this.#stats.ok },
      failed: { tx: { ...this.#stats.failed.tx }, infer: { ...this.#stats.failed.infer } },
      inFlight: this.#inFlight.size,
      skipped: this.#stats.skipped,
    }
  }

  committed(): CommittedTx[] {
    return [...this.#committed]
  }

  receipts(): ReceivedReceipt[] {
    return [...this.#receipts]
  }
}

/** Starts sending at once; see the module comment. */
export function startLoad(init: LoadInit): LoadHandle {
  if (init.targets.length === 0) throw new ChaosOptionError('startLoad needs at least one target')
  const rate = init.rate ?? DEFAULT_LOAD_RATE
  if (!(rate > 0 && rate <= 1_000))
    throw new ChaosOptionError('startLoad: rate must be in (0, 1000] requests per second')
  return new Load(init)
}
