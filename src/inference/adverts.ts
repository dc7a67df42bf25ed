/**
 * Slot adverts: how workers offer capacity. Every worker gossips, every 10 s and whenever its
 * capacity changes, a signed advert of the models it serves with their measured throughput, its
 * free slots and its queue. Gateways keep the latest advert per worker and never
 * send a worker more jobs than it has offered slots (pull-based: a worker's own adverts set its
 * pace, so a fast worker takes more jobs and a slow one still gets work at its own pace).
 *
 *   { chainId, worker, ep, runtime, models: [{ cid, mjps, loaded?, ttftMs?, tpsMilli? }], free, queue,
 *     memoryMiB?, seq, time, signature }
 *
 * `mjps` is throughput in thousandths of a job per second (integers on the wire). `loaded` says
 * whether the model is in memory now (a worker loads lazily and evicts the least recently used
 * model when its memory budget, `memoryMiB`, is full; gateways prefer workers that hold the
 * model). A language model's entry carries the worker's measured time to first token and tokens
 * per second (thousandths). The optional fields are left out when unknown, so older adverts
 * still verify. The chain id
 * is inside the signed bytes, so an advert cannot be replayed on another chain.
 *
 * Gossip validation (`advertValidator`, before an advert is relayed): it decodes, is for this
 * chain and signed by its worker, was published by that worker, is fresh (its time within
 * `ADVERT_FRESH_MS` of this node's clock), and the worker is bonded and schedulable on chain.
 * The gateway's `WorkerTable` is bounded and forgets workers that stop advertising.
 */
import { decode, encode } from '../core/codec.ts'
import { InvalidInputError } from '../core/errors.ts'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import { verifySignature } from '../identity/keys.ts'
import { didFromEd25519PublicKey, ed25519PublicKeyFromDid } from '../identity/did-key.ts'
import type { GossipVerdict } from '../core/transport.ts'
import { PeerBudgets } from '../core/budget.ts'
import { EXECUTION_PROVIDERS, type ExecutionProvider } from './job.ts'
import type { WorkerOption } from './policy/worker-draw.ts'

export const ADVERT_SIGNING_KIND = 'inference.slots'
/** Adverts older than this are ignored: three heartbeats (ADVERT_INTERVAL_MS), so one lost advert costs nothing. @default 30 s */
export const ADVERT_TTL_MS = 30_000
/**
 * Gossip validation ignores an advert whose own time is further than this from the node's
 * clock: the TTL plus 10 s for clocks that disagree (workers and gateways are home machines).
 * @default 40 s
 */
export const ADVERT_FRESH_MS = 40_000
/** Workers the gateway's table holds at most. @default 1024 */
export const MAX_TABLE_WORKERS = 1_024
/** A worker not heard from for this long is forgotten (its round-trip estimate with it). @default 60 s */
export const FORGET_WORKER_MS = 60_000
const MAX_MODELS = 64

/** The adverts' gossip topic (on the wire: `/donghae/<chainId>/inference-slots/1`). */
export const ADVERT_TOPIC = 'inference-slots'

export interface SlotAdvert {
  worker: string
  ep: ExecutionProvider
  runtime: string
  models: AdvertModel[]
  free: number
  queue: number
  /** The worker's memory budget for models, MiB. */
  memoryMiB?: number
  seq: number
  time: number
}

export interface AdvertModel {
  cid: string
  mjps: number
  /** In memory now (no load before the first token). */
  loaded?: boolean
  /** Language models: measured time to first token, ms, and tokens per second in thousandths. */
  ttftMs?: number
  tpsMilli?: number
}

function modelFields(m: AdvertModel): Record<string, unknown> {
  return {
    cid: m.cid,
    mjps: m.mjps,
    ...(m.loaded === undefined ? {} : { loaded: m.loaded }),
    ...(m.ttftMs === undefined ? {} : { ttftMs: m.ttftMs }),
    ...(m.tpsMilli === undefined ? {} : { tpsMilli: m.tpsMilli }),
  }
}

export interface SignedAdvert extends SlotAdvert {
  /** The chain it is for (signed). */
  chainId: string
  signature: Uint8Array
}

function fields(a: SlotAdvert & { chainId: string }): Record<string, unknown> {
  return {
    chainId: a.chainId,
    worker: a.worker,
    ep: a.ep,
    runtime: a.runtime,
    models: a.models.map(modelFields),
    free: a.free,
    queue: a.queue,
    ...(a.memoryMiB === undefined ? {} : { memoryMiB: a.memoryMiB }),
    seq: a.seq,
    time: a.time,
  }
}

export function signAdvert(key: Ed25519KeyPair, advert: Omit<SlotAdvert, 'worker'> & { chainId: string }): Uint8Array {
  const full = { ...advert, worker: didFromEd25519PublicKey(key.publicKey) }
  return encode({ ...fields(full), signature: key.sign(ADVERT_SIGNING_KIND, encode(fields(full))) })
}

const count = (v: unknown, name: string): number => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new InvalidInputError(`${name} must be a count`)
  return v
}

/** Decodes and verifies an advert; throws InvalidInputError for anything malformed or unsigned. */
export function decodeAdvert(bytes: Uint8Array): SignedAdvert {
  const advert = parseAdvert(bytes)
  verifyAdvert(advert)
  return advert
}

/** Decodes an advert without checking its signature (`verifyAdvert` does); throws InvalidInputError. */
export function parseAdvert(bytes: Uint8Array): SignedAdvert {
  const raw = decode(bytes, { maxBytes: 16 * 1024 }) as Record<string, unknown>
  if (raw === null || typeof raw !== 'object') throw new InvalidInputError('advert must be a map')
  const { chainId, worker, ep, runtime, models, signature } = raw
  if (typeof chainId !== 'string' || chainId.length > 64)
    throw new InvalidInputError('advert.chainId must be a chain id')
  if (typeof worker !== 'string') throw new InvalidInputError('advert.worker must be a DID')
  if (typeof ep !== 'string' || !(EXECUTION_PROVIDERS as readonly string[]).includes(ep))
    throw new InvalidInputError('advert.ep is not a known execution provider')
  if (typeof runtime !== 'string' || runtime.length > 64) throw new InvalidInputError('advert.runtime must be a string')
  if (!Array.isArray(models) || models.length > MAX_MODELS) throw new InvalidInputError('advert.models must be a list')
  if (!(signature instanceof Uint8Array) || signature.length !== 64)
    throw new InvalidInputError('advert.signature must be 64 bytes')
  const advert = {
    chainId,
    worker,
    ep: ep as ExecutionProvider,
    runtime,
    models: models.map((m: Record<string, unknown>) => {
      if (typeof m?.cid !== 'string' || m.cid.length > 128) throw new InvalidInputError('advert model cid')
      if (m.loaded !== undefined && typeof m.loaded !== 'boolean') throw new InvalidInputError('advert model loaded')
      return {
        cid: m.cid,
        mjps: count(m.mjps, 'mjps'),
        ...(m.loaded === undefined ? {} : { loaded: m.loaded }),
        ...(m.ttftMs === undefined ? {} : { ttftMs: count(m.ttftMs, 'ttftMs') }),
        ...(m.tpsMilli === undefined ? {} : { tpsMilli: count(m.tpsMilli, 'tpsMilli') }),
      }
    }),
    free: count(raw.free, 'free'),
    queue: count(raw.queue, 'queue'),
    ...(raw.memoryMiB === undefined ? {} : { memoryMiB: count(raw.memoryMiB, 'memoryMiB') }),
    seq: count(raw.seq, 'seq'),
    time: count(raw.time, 'time'),
  }
  return { ...advert, signature }
}

/** Throws InvalidInputError unless the advert is signed by the worker it names. */
export function verifyAdvert(advert: SignedAdvert): void {
  let publicKey: Uint8Array
  try {
    publicKey = ed25519PublicKeyFromDid(advert.worker)
  } catch {
    throw new InvalidInputError('advert.worker is not a did:key')
  }
  const { signature, ...unsigned } = advert
  if (!verifySignature(publicKey, ADVERT_SIGNING_KIND, encode(fields(unsigned)), signature))
    throw new InvalidInputError('advert signature does not verify')
}

interface Entry {
  advert: SlotAdvert
  receivedAt: number
  /** When this gateway sent each job it is still waiting for (oldest first). */
  outstanding: number[]
  /** Round-trip estimate, ms (EWMA of request time minus compute time). */
  rttMs: number
  cooldownUntil: number
}

/**
 * Jobs this gateway sent that the worker's latest advert cannot yet count: those sent after
 * the advert left the worker (its arrival minus the round-trip estimate).
 */
function unseen(e: Entry): number {
  const since = e.receivedAt - e.rttMs
  let n = 0
  for (const t of e.outstanding) if (t > since) n++
  return n
}

export interface WorkerChoice {
  worker: string
  expectedMs: number
}

export interface AdvertValidatorOptions {
  chainId: string
  /** Where accepted adverts go. */
  table: Pick<WorkerTable, 'update'>
  /** Whether `did` is a bonded worker that may be scheduled now (committed state). */
  isBonded(did: string): boolean
  now?: () => number
}

/**
 * Adverts a relaying peer may hand this node that are of no use - stale, ahead of this node's
 * clock, or from a worker not bonded in its view - before each further one is a `reject`: honest
 * relays send a few (a node behind on the chain sees bonded workers as unbonded for a while), a
 * peer inventing workers sends them by the thousand. Their signature is not checked (only bonded
 * workers' are), so each costs this node a decode.
 */
export const ADVERT_IGNORE_BUDGET = { amount: 500, perMs: 60_000 }

/**
 * The slot-advert topic's gossip validator: `reject` (the relaying peer is penalized) for what is
 * provably invalid - undecodable, for another chain, a bonded worker's advert it did not sign -
 * and for useless adverts past the relay's `ADVERT_IGNORE_BUDGET`; `ignore` for what may be
 * honest but is not useful - stale or ahead of this node's clock, from a worker not bonded in
 * this node's view of the chain, no newer than what the table holds; `accept` (the table is
 * updated and the advert relayed) otherwise. Gossip carries no author: any peer may relay a
 * worker's signed advert.
 */
export function advertValidator(options: AdvertValidatorOptions): (data: Uint8Array, from: string) => GossipVerdict {
  const now = options.now ?? Date.now
  const useless = new PeerBudgets(ADVERT_IGNORE_BUDGET, now)
  const ignore = (from: string): GossipVerdict => {
    if (useless.available(from) < 1) return 'reject'
    useless.charge(from, 1)
    return 'ignore'
  }
  return (data, from) => {
    let advert: SignedAdvert
    try {
      advert = parseAdvert(data)
    } catch {
      return 'reject'
    }
    if (advert.chainId !== options.chainId) return 'reject'
    if (Math.abs(now() - advert.time) > ADVERT_FRESH_MS) return ignore(from)
    if (!options.isBonded(advert.worker)) return ignore(from)
    try {
      verifyAdvert(advert)
    } catch {
      return 'reject'
    }
    return options.table.update(advert) ? 'accept' : 'ignore'
  }
}

/** The gateway's view of who can take jobs, from the adverts it has heard. */
export class WorkerTable {
  readonly #entries = new Map<string, Entry>()
  readonly #now: () => number
  readonly #maxEntries: number
  readonly #forgetAfterMs: number
  #updates = 0

  constructor(now: () => number = Date.now, options: { maxEntries?: number; forgetAfterMs?: number } = {}) {
    this.#now = now
    this.#maxEntries = options.maxEntries ?? MAX_TABLE_WORKERS
    this.#forgetAfterMs = options.forgetAfterMs ?? FORGET_WORKER_MS
  }

  /** Workers currently held. */
  get size(): number {
    return this.#entries.size
  }

  /**
   * Records an advert; false when it was not taken: older than the worker's last one (sequence
   * and time), or a new worker while the table is full of workers heard from recently.
   */
  update(advert: SlotAdvert): boolean {
    const prev = this.#entries.get(advert.worker)
    if (prev !== undefined && advert.seq <= prev.advert.seq && advert.time <= prev.advert.time) return false
    if (prev === undefined && (++this.#updates % 64 === 0 || this.#entries.size >= this.#maxEntries)) this.#forget()
    if (prev === undefined && this.#entries.size >= this.#maxEntries) return false
    this.#entries.set(advert.worker, {
      advert,
      receivedAt: this.#now(),
      outstanding: prev?.outstanding ?? [],
      rttMs: prev?.rttMs ?? 2,
      cooldownUntil: prev?.cooldownUntil ?? 0,
    })
    return true
  }

  /** Drops workers not heard from within `forgetAfterMs`; when still full, those whose adverts are stale. */
  #forget(): void {
    const now = this.#now()
    for (const [worker, e] of this.#entries) if (now - e.receivedAt > this.#forgetAfterMs) this.#entries.delete(worker)
    if (this.#entries.size < this.#maxEntries) return
    for (const [worker, e] of this.#entries) if (now - e.receivedAt > ADVERT_TTL_MS) this.#entries.delete(worker)
  }

  /** Fresh adverts (within the TTL). */
  live(): SlotAdvert[] {
    const now = this.#now()
    return [...this.#entries.values()].filter((e) => now - e.receivedAt <= ADVERT_TTL_MS).map((e) => e.advert)
  }

  /** Workers with a fresh advert for `cid`. */
  serving(cid: string): string[] {
    return this.live()
      .filter((a) => a.models.some((m) => m.cid === cid))
      .map((a) => a.worker)
  }

  /**
   * The worker expected to finish a job on `cid` soonest, among those with a free slot, not in
   * `exclude`, not cooling down after a failure and accepted by `eligible` (e.g. bonded and not
   * quarantined on chain). Expected time = (queue + in flight + 1) ÷ throughput + round trip.
   */
  pick(cid: string, exclude: ReadonlySet<string>, eligible: (worker: string) => boolean): WorkerChoice | undefined {
    const now = this.#now()
    let best: WorkerChoice | undefined
    for (const [worker, e] of this.#entries) {
      if (exclude.has(worker) || now - e.receivedAt > ADVERT_TTL_MS || e.cooldownUntil > now) continue
      const model = e.advert.models.find((m) => m.cid === cid)
      if (model === undefined || model.mjps === 0) continue
      const inflight = unseen(e)
      if (e.advert.free - inflight <= 0) continue
      if (!eligible(worker)) continue
      const expectedMs = ((e.advert.queue + inflight + 1) * 1_000_000) / model.mjps + e.rttMs
      if (best === undefined || expectedMs < best.expectedMs) best = { worker, expectedMs }
    }
    return best
  }

  /**
   * Workers that could take a job on `cid` now, with what the gateway's draw weighs them by
   * (policy/worker-draw.ts): advertised throughput and free slots less jobs sent since.
   */
  options(cid: string, exclude: ReadonlySet<string>, eligible: (worker: string) => boolean): WorkerOption[] {
    const now = this.#now()
    const out: WorkerOption[] = []
    const loaded: WorkerOption[] = []
    for (const [worker, e] of this.#entries) {
      if (exclude.has(worker) || now - e.receivedAt > ADVERT_TTL_MS || e.cooldownUntil > now) continue
      const model = e.advert.models.find((m) => m.cid === cid)
      if (model === undefined || model.mjps === 0) continue
      const free = e.advert.free - unseen(e)
      if (free <= 0 || !eligible(worker)) continue
      const option = { worker, jobsPerSecond: model.mjps / 1000, free }
      out.push(option)
      if (model.loaded !== false) loaded.push(option)
    }
    // a worker that holds the model answers without loading it first (seconds for a large one)
    return loaded.length > 0 ? loaded : out
  }

  /** The largest memory budget among live adverts, MiB (undefined when none says). */
  largestMemoryMiB(): number | undefined {
    let most: number | undefined
    for (const a of this.live())
      if (a.memoryMiB !== undefined && (most === undefined || a.memoryMiB > most)) most = a.memoryMiB
    return most
  }

  /** A job was sent to `worker`: one slot fewer until it answers or a new advert comes. */
  assigned(worker: string): void {
    this.#entries.get(worker)?.outstanding.push(this.#now())
  }

  /** The job came back (or failed); `rttMs` updates the round-trip estimate. */
  finished(worker: string, result: { ok: boolean; rttMs?: number }): void {
    const e = this.#entries.get(worker)
    if (e === undefined) return
    e.outstanding.shift()
    if (result.rttMs !== undefined) e.rttMs = e.rttMs * 0.8 + Math.max(0, result.rttMs) * 0.2
    if (!result.ok) e.cooldownUntil = this.#now() + 3_000
  }

  /** Forgets a worker until it advertises again (it left, or was quarantined). */
  drop(worker: string): void {
    this.#entries.delete(worker)
  }
}
