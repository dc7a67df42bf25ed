/** A small seeded PRNG (mulberry32) for tests: the seed is printed so a failure can be replayed. */
export interface Rng {
  readonly seed: number
  /** Uniform in [0, 1). */
  next(): number
  /** Uniform integer in [min, max]. */
  int(min: number, max: number): number
}

export function createRng(seed: number): Rng {
  let state = seed >>> 0
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return { seed, next, int: (min, max) => min + Math.floor(next() * (max - min + 1)) }
}

/** The seed from DONGHAE_TEST_SEED, or a fresh one. */
export function testSeed(): number {
  const fromEnv = process.env.DONGHAE_TEST_SEED
  return fromEnv === undefined ? Math.floor(Math.random() * 2 ** 32) : Number(fromEnv)
}
