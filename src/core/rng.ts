/**
 * Randomness behind one interface: a small seeded PRNG (sfc32 seeded through splitmix32) for
 * simulations and tests, where every schedule is a pure function of its seed, and `cryptoRng()`
 * over the operating system's randomness for production. `fork(label)` derives an independent
 * stream, so adding a draw in one part of a simulation does not shift every other part's draws.
 */
import { randomBytes, randomInt } from 'node:crypto'

export interface Rng {
  readonly seed: number
  /** Uniform in [0, 1). */
  next(): number
  /** Uniform integer in [min, max]. */
  int(min: number, max: number): number
  /** True with probability p. */
  chance(p: number): boolean
  pick<T>(items: readonly T[]): T
  bytes(length: number): Uint8Array
  shuffle<T>(items: readonly T[]): T[]
  /** An independent stream for `label`. */
  fork(label: string): Rng
}

function splitmix32(state: number): () => number {
  let s = state >>> 0
  return () => {
    s = (s + 0x9e3779b9) >>> 0
    let z = s
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
    return (z ^ (z >>> 16)) >>> 0
  }
}

function hashLabel(seed: number, label: string): number {
  let h = (seed ^ 0x811c9dc5) >>> 0
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193) >>> 0
  return h
}

export function createRng(seed: number): Rng {
  const init = splitmix32(seed)
  let a = init()
  let b = init()
  let c = init()
  let d = init()
  const next32 = (): number => {
    const t = (((a + b) >>> 0) + d) >>> 0
    d = (d + 1) >>> 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) >>> 0
    c = ((c << 21) | (c >>> 11)) >>> 0
    c = (c + t) >>> 0
    return t
  }
  for (let i = 0; i < 12; i++) next32()
  const next = (): number => next32() / 4294967296
  const rng: Rng = {
    seed,
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    chance: (p) => next() < p,
    pick<T>(items: readonly T[]): T {
      return items[Math.floor(next() * items.length)] as T
    },
    bytes(length) {
      const out = new Uint8Array(length)
      for (let i = 0; i < length; i++) out[i] = next32() & 0xff
      return out
    },
    shuffle<T>(items: readonly T[]): T[] {
      const out = [...items]
      for (let i = out.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1))
        ;[out[i], out[j]] = [out[j] as T, out[i] as T]
      }
      return out
    },
    fork: (label) => createRng(hashLabel(seed, label)),
  }
  return rng
}

/**
 * The same interface over the operating system's randomness, for production: salts and draws
 * that nobody may predict. (The seeded generator above is for simulations and tests only.)
 */
export function cryptoRng(): Rng {
  const next = (): number => randomInt(0, 2 ** 48 - 1) / (2 ** 48 - 1)
  const rng: Rng = {
    seed: 0,
    next,
    int: (min, max) => randomInt(min, max + 1),
    chance: (p) => next() < p,
    pick<T>(items: readonly T[]): T {
      return items[randomInt(0, items.length)] as T
    },
    bytes: (length) => new Uint8Array(randomBytes(length)),
    shuffle<T>(items: readonly T[]): T[] {
      const out = [...items]
      for (let i = out.length - 1; i > 0; i--) {
        const j = randomInt(0, i + 1)
        ;[out[i], out[j]] = [out[j] as T, out[i] as T]
      }
      return out
    },
    fork: () => cryptoRng(),
  }
  return rng
}
