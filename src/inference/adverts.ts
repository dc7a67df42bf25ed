/**
 * Slot adverts: how workers offer capacity. Every worker gossips, about once a second and
 * whenever its capacity changes, a signed advert of the models it serves with their measured
 * throughput, its free slots and its queue. Gateways keep the latest advert per worker and never
 * send a worker more jobs than it has offered slots (pull-based: a worker's own adverts set its
 * pace, so a fast worker takes more jobs and a slow one still gets work at its own pace).
 *
 *   { worker, ep, runtime, models: [{ cid, mjps }], free, queue, seq, time, signature }
 *
 * `mjps` is throughput in thousandths of a job per second (integers on the wire).
 */
import { decode, encode } from '../core/codec.ts'
import { InvalidInputError } from '../core/errors.ts'
import type { Ed25519KeyPair } from '../identity/keys.ts'
import { verifySignature } from '../identity/keys.ts'
import { didFromEd25519PublicKey, ed25519PublicKeyFromDid } from '../identity/did-key.ts'
import { EXECUTION_PROVIDERS, type ExecutionProvider } from './job.ts'

export const ADVERT_SIGNING_KIND = 'inference.slots'
/** Adverts older than this are ignored. @default 5 s */
export const ADVERT_TTL_MS = 5_000
const MAX_MODELS = 64

/** The adverts' gossip topic (on the wire: `/donghae/<chainId>/inference-slots/1`). */
export const ADVERT_TOPIC = 'inference-slots'

export interface SlotAdvert {
  worker: string
  ep: ExecutionProvider
  runtime: string
  models: Array<{ cid: string; mjps: number }>
  free: number
  queue: number
  seq: number
  time: number
}

export interface SignedAdvert extends SlotAdvert {
  signature: Uint8Array
}

function fields(a: SlotAdvert): Record<string, unknown> {
  return {
    worker: a.worker,
    ep: a.ep,
    runtime: a.runtime,
    models: a.models.map((m) => ({ cid: m.cid, mjps: m.mjps })),
    free: a.free,
    queue: a.queue,
    seq: a.seq,
    time: a.time,
  }
}

export function signAdvert(key: Ed25519KeyPair, advert: Omit<SlotAdvert, 'worker'>): Uint8Array {
  const full: SlotAdvert = { ...advert, worker: didFromEd25519PublicKey(key.publicKey) }
  return encode({ ...fields(full), signature: key.sign(ADVERT_SIGNING_KIND, encode(fields(full))) })
}

const count = (v: unknown, name: string): number => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new InvalidInputError(`${name} must be a count`)
  return v
}

/** Decodes and verifies an advert; throws InvalidInputError for anything malformed or unsigned. */
export function decodeAdvert(bytes: Uint8Array): SignedAdvert {
  const raw = decode(bytes, { maxBytes: 16 * 1024 }) as Record<string, unknown>
  if (raw === null || typeof raw !== 'object') throw new InvalidInputError('advert must be a map')
  const { worker, ep, runtime, models, signature } = raw
  if (typeof worker !== 'string') throw new InvalidInputError('advert.worker must be a DID')
  if (typeof ep !== 'string' || !(EXECUTION_PROVIDERS as readonly string[]).includes(ep))
    throw new InvalidInputError('advert.ep is not a known execution provider')
  if (typeof runtime !== 'string' || runtime.length > 64) throw new InvalidInputError('advert.runtime must be a string')
  if (!Array.isArray(models) || models.length > MAX_MODELS) throw new InvalidInputError('advert.models must be a list')
  if (!(signature instanceof Uint8Array) || signature.length !== 64)
    throw new InvalidInputError('advert.signature must be 64 bytes')
  const advert: SlotAdvert = {
    worker,
    ep: ep as ExecutionProvider,
    runtime,
    models: models.map((m: Record<string, unknown>) => {
      if (typeof m?.cid !== 'string' || m.cid.length > 128) throw new InvalidInputError('advert model cid')
      return { cid: m.cid, mjps: count(m.mjps, 'mjps') }
    }),
    free: count(raw.free, 'free'),
    queue: count(raw.queue, 'queue'),
    seq: count(raw.seq, 'seq'),
    time: count(raw.time, 'time'),
  }
  let publicKey: Uint8Array
  try {
    publicKey = ed25519PublicKeyFromDid(worker)
  } catch {
    throw new InvalidInputError('advert.worker is not a did:key')
  }
  if (!verifySignature(publicKey, ADVERT_SIGNING_KIND, encode(fields(advert)), signature))
    throw new InvalidInputError('advert signature does not verify')
  return { ...advert, signature }
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

/** The gateway's view of who can take jobs, from the adverts it has heard. */
export class WorkerTable {
  readonly #entries = new Map<string, Entry>()
  readonly #now: () => number

  constructor(now: () => number = Date.now) {
    this.#now = now
  }

  /** Records an advert (older sequence numbers from the same worker are ignored). */
  update(advert: SlotAdvert): void {
    const prev = this.#entries.get(advert.worker)
    if (prev !== undefined && advert.seq <= prev.advert.seq && advert.time <= prev.advert.time) return
    this.#entries.set(advert.worker, {
      advert,
      receivedAt: this.#now(),
      outstanding: prev?.outstanding ?? [],
      rttMs: prev?.rttMs ?? 2,
      cooldownUntil: prev?.cooldownUntil ?? 0,
    })
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
