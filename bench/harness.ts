/**
 * A tiny benchmark harness: runs an operation in timed rounds after a warm-up and reports the
 * best round's rate (the least disturbed by other load on a shared machine), with all rounds kept.
 */
import { createPrivateKey, createPublicKey, randomBytes, sign, verify } from 'node:crypto'
import { performance } from 'node:perf_hooks'

export interface Measurement {
  /** Operations per second in the fastest round. */
  perSecond: number
  /** Operations per second in every round, in order. */
  rounds: number[]
}

export interface MeasureOptions {
  /** Milliseconds per round. @default 300 */
  roundMs?: number
  /** @default 5 */
  rounds?: number
}

/** `op(n)` must perform n operations; it is called with growing n until a round lasts `roundMs`. */
export function measure(op: (n: number) => void, options: MeasureOptions = {}): Measurement {
  const roundMs = options.roundMs ?? 300
  let n = 1
  for (;;) {
    const start = performance.now()
    op(n)
    const elapsed = performance.now() - start
    if (elapsed >= roundMs / 4 || n >= 2 ** 30) {
      n = Math.max(1, Math.round((n * roundMs) / Math.max(elapsed, 0.001)))
      break
    }
    n *= 4
  }
  const rounds: number[] = []
  for (let i = 0; i < (options.rounds ?? 5); i++) {
    const start = performance.now()
    op(n)
    rounds.push(n / ((performance.now() - start) / 1000))
  }
  return { perSecond: Math.max(...rounds), rounds }
}

/** One result line: the figure, and the baseline it is compared with, measured in the same run. */
export interface BenchLine {
  bench: string
  impl: string
  value: number
  unit: string
  baseline?: { impl: string; value: number }
  /** value ÷ baseline.value */
  ratio?: number
  target?: { value: number; met: boolean; note: string }
  rounds: number[]
}

export function line(fields: Omit<BenchLine, 'ratio'>): BenchLine {
  const out: BenchLine = { ...fields, value: Math.round(fields.value) }
  if (fields.baseline !== undefined) {
    out.baseline = { impl: fields.baseline.impl, value: Math.round(fields.baseline.value) }
    // three significant digits: a ratio far below 1 (a Merkle update vs a Map set) must not round to 0
    out.ratio = Number((fields.value / fields.baseline.value).toPrecision(3))
  }
  out.rounds = fields.rounds.map(Math.round)
  return out
}

/**
 * Raw Ed25519 verifications per second on one core (node:crypto, one key and message): the
 * ceiling that signature-bound figures (finalized transfers, mempool admission) are compared to.
 */
export function ed25519VerifyRate(options: MeasureOptions): Measurement {
  const privateKey = createPrivateKey({
    key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), randomBytes(32)]),
    format: 'der',
    type: 'pkcs8',
  })
  const publicKey = createPublicKey(privateKey)
  const message = randomBytes(32)
  const signature = sign(null, message, privateKey)
  return measure((n) => {
    for (let i = 0; i < n; i++) verify(null, message, publicKey, signature)
  }, options)
}
