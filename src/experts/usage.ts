/**
 * The gateway's usage ledger: the routing counts of the generations it ran, kept until they are
 * reported on chain in `experts.usage` transactions (the receipts that expert rewards are paid
 * from). Counts are per expert block: calls (token routings) and their summed latency.
 */
import type { UsageBody } from './types.ts'

/** Most entries one `experts.usage` carries (the chain module's bound). */
export const MAX_USAGE_ENTRIES = 256

interface Tally {
  calls: number
  latencyMs: number
}

export class UsageLedger {
  readonly #pending = new Map<
    string,
    { family: string; version: number; generations: number; blocks: Map<string, Tally> }
  >()

  /** Adds one generation's routing counts. */
  record(
    family: string,
    version: number,
    calls: ReadonlyArray<{ block: string; calls: number; latencyMs: number }>,
  ): void {
    const key = `${family}\u0000${version}`
    let entry = this.#pending.get(key)
    if (entry === undefined) {
      entry = { family, version, generations: 0, blocks: new Map() }
      this.#pending.set(key, entry)
    }
    entry.generations += 1
    for (const c of calls) {
      if (c.calls <= 0) continue
      const t = entry.blocks.get(c.block) ?? { calls: 0, latencyMs: 0 }
      t.calls += c.calls
      t.latencyMs += Math.max(0, Math.round(c.latencyMs))
      entry.blocks.set(c.block, t)
    }
  }

  /** Whether anything waits to be reported. */
  get empty(): boolean {
    return this.#pending.size === 0
  }

  /** Takes what is pending as transaction bodies (at most MAX_USAGE_ENTRIES entries each). */
  drain(): UsageBody[] {
    const out: UsageBody[] = []
    for (const entry of this.#pending.values()) {
      const entries = [...entry.blocks].map(([block, t]) => ({ block, calls: t.calls, latencyMs: t.latencyMs }))
      entries.sort((a, b) => (a.block < b.block ? -1 : a.block > b.block ? 1 : 0))
      for (let i = 0; i < entries.length; i += MAX_USAGE_ENTRIES)
        out.push({
          family: entry.family,
          version: entry.version,
          entries: entries.slice(i, i + MAX_USAGE_ENTRIES),
          generations: i === 0 ? entry.generations : 0,
        })
    }
    this.#pending.clear()
    return out
  }

  /** Puts bodies back (a report that could not be submitted is retried with the next one). */
  restore(bodies: readonly UsageBody[]): void {
    for (const body of bodies) {
      this.record(body.family, body.version, body.entries)
      const entry = this.#pending.get(`${body.family}\u0000${body.version}`)
      if (entry !== undefined) entry.generations += body.generations - 1
    }
  }
}
