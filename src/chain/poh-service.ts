/**
 * PoH for block production and validation. A block's PoH segment starts at the parent's PoH
 * end, carries at least the ticks its round requires (time since the parent, proven by
 * sequential hashing), then one mixin entry per transaction batch (order proof).
 *
 * `WorkerPohService` ticks on a worker thread (PohGenerator, paced to the chain's tick rate) from
 * the parent's end once a height has lasted past its commit timeout and half a second more (a
 * height that commits at round 0 needs one tick, made here), so by the time a later round's
 * proposer needs n ticks most exist already; it ticks only on a validator that proposes one of
 * the height's first rounds after round 0 (`ChainAppOptions.tickRounds`), and while the next
 * height waits for work it rests, starting again from the parent's end when round 0 begins
 * (`pause`, `resume`); verification
 * runs on a worker pool (PohVerifier). `InlinePohService` does both on the
 * calling thread (tests, tiny hashesPerTick).
 */
import { equals } from '../core/bytes.ts'
import type { PohService } from './app.ts'
import { extendPoh, PohChain, type PohEntry, type PohCheck } from './poh/entries.ts'
import type { PohGenerator } from './poh/generator.ts'
import { verifyPohInline, type PohVerifier } from './poh/verifier.ts'

/** Appends one zero-hash mixin entry per root after `entries`, continuing from their end. */
function withMixins(start: Uint8Array, entries: PohEntry[], mixins: readonly Uint8Array[]): PohEntry[] {
  let hash = entries.length === 0 ? start : (entries[entries.length - 1] as PohEntry).hash
  const out = [...entries]
  for (const mixin of mixins) {
    hash = extendPoh(hash, 0, mixin)
    out.push({ numHashes: 0, mixin, hash })
  }
  return out
}

export class InlinePohService implements PohService {
  readonly #hashesPerTick: number

  constructor(hashesPerTick: number) {
    this.#hashesPerTick = hashesPerTick
  }

  follow(): void {}

  async produce(start: Uint8Array, ticks: number, mixins: Uint8Array[]): Promise<PohEntry[]> {
    const chain = new PohChain(start, this.#hashesPerTick)
    chain.tick(ticks)
    return withMixins(start, chain.drain(), mixins)
  }

  async verify(start: Uint8Array, entries: readonly PohEntry[], hashesPerTick: number): Promise<PohCheck> {
    return verifyPohInline(start, entries, hashesPerTick)
  }
}

export class WorkerPohService implements PohService {
  readonly #generator: PohGenerator
  readonly #verifier: PohVerifier
  #start: Uint8Array = new Uint8Array(32)
  /** Tick entries produced from #start so far (drained from the generator). */
  #ticks: PohEntry[] = []

  constructor(generator: PohGenerator, verifier: PohVerifier) {
    this.#generator = generator
    this.#verifier = verifier
  }

  /**
   * Starts a new segment at a freshly committed block's PoH end; with `rest`, the generator waits
   * there without ticking until `resume` (this node is not expected to propose a later round).
   */
  follow(pohEnd: Uint8Array, options: { rest?: boolean } = {}): void {
    if (equals(pohEnd, this.#start)) return
    this.#start = Uint8Array.from(pohEnd)
    this.#ticks = []
    this.#generator.reset(pohEnd, options.rest === true ? { rest: true } : {})
  }

  /**
   * The next height waits for work: the generator stops ticking. Its ticks prove rounds that
   * have not begun; a block after the wait needs one tick at round 0 (made when asked for).
   */
  pause(): void {
    this.#ticks = []
    this.#generator.reset(this.#start, { rest: true })
  }

  /** The waiting height begins round 0: ticks again from the head's PoH end, counted from now. */
  resume(): void {
    this.#ticks = []
    this.#generator.reset(this.#start)
  }

  async produce(
    start: Uint8Array,
    ticks: number,
    mixins: Uint8Array[],
    options: { signal?: AbortSignal } = {},
  ): Promise<PohEntry[]> {
    this.follow(start)
    if (this.#ticks.length < ticks) this.#ticks.push(...(await this.#generator.drain(options)))
    const segment = this.#ticks.slice(0, ticks)
    if (segment.length < ticks) {
      // The paced generator has not produced enough (round 0's one tick, a generator whose thread
      // started late or not at all, a round skipped early through f+1 messages): extend flat out
      // from its last tick, on this thread, to the required count.
      const last = segment.length === 0 ? start : (segment[segment.length - 1] as PohEntry).hash
      const chain = new PohChain(last, this.#generator.hashesPerTick)
      chain.tick(ticks - segment.length)
      segment.push(...chain.drain())
    }
    return withMixins(start, segment, mixins)
  }

  verify(start: Uint8Array, entries: readonly PohEntry[], hashesPerTick: number): Promise<PohCheck> {
    return this.#verifier.verify(start, entries, hashesPerTick)
  }
}
