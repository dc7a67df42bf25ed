/**
 * Federated aggregation rules (issue 15, part 3): FedAvg, coordinate-wise median, trimmed mean,
 * Krum, multi-Krum, Bulyan, over model updates flattened to Float32Array (src/fl/weights.ts).
 *
 * Deterministic: the same updates in the same order give the same bytes on every machine (voters
 * compare aggregates by hash). Every loop runs in a fixed order; means are summed in float64 and
 * rounded to float32 once; Krum's distances use a fixed float32-lane arithmetic that the
 * WebAssembly kernel and its JS fallback share bit for bit; ties (equal Krum scores, equal
 * distances to a median) are broken by position, never by a random draw.
 *
 * Built for 100 updates × 1,000,000 parameters: the per-coordinate rules copy a block of
 * coordinates of every update into one reused scratch array and select in place (quickselect with
 * a branch-free partition, no sort, no allocation per coordinate); Krum computes the n² pairwise
 * distances once, block by block so the block of every update stays in cache, in a small
 * WebAssembly SIMD kernel; Bulyan reuses those distances for its iterated Krum.
 */
import { DonghaeError } from '../core/errors.ts'

export const AGGREGATION_RULES = ['fedavg', 'median', 'trimmed-mean', 'krum', 'multi-krum', 'bulyan'] as const
export type AggregationRule = (typeof AGGREGATION_RULES)[number]

export interface AggregationOptions {
  rule: AggregationRule
  /** How many updates may be Byzantine (Krum needs n >= 2f + 3, Bulyan n >= 4f + 3). */
  f: number
  /** FedAvg: each update's weight (its sample count); @default equal weights. */
  weights?: readonly number[]
  /** Trimmed mean: values cut at each end per coordinate; @default f. */
  trim?: number
  /** Multi-Krum: how many updates are averaged; @default n - f. */
  m?: number
}

export interface Aggregate {
  result: Float32Array
  /** Indices of the updates the rule kept (Krum, multi-Krum, Bulyan); all for the others. */
  selected: number[]
}

/** The rule's condition on n and f does not hold, or the updates do not fit together. */
export class AggregationError extends DonghaeError {
  static override readonly code: string = 'FL_AGGREGATION'
  override name = 'AggregationError'
}

/** Coordinates per block of the pairwise-distance pass: 100 updates × 1024 float32 = 400 KiB, L2-sized (a multiple of 4). */
const DISTANCE_BLOCK = 1024

export function isAggregationRule(value: unknown): value is AggregationRule {
  return typeof value === 'string' && (AGGREGATION_RULES as readonly string[]).includes(value)
}

function count(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min)
    throw new AggregationError(`${name} must be an integer \u2265 ${min}, got ${value}`, { details: { [name]: value } })
}

/**
 * Throws AggregationError unless `rule` can run on `n` updates with `f` Byzantine. `extra` carries
 * the trimmed mean's `trim` (default f) and multi-Krum's `m` (default n - f) when they are not the
 * defaults.
 */
export function checkConditions(
  rule: AggregationRule,
  n: number,
  f: number,
  extra: Pick<AggregationOptions, 'trim' | 'm'> = {},
): void {
  if (!isAggregationRule(rule))
    throw new AggregationError(`unknown aggregation rule ${String(rule)}; use one of ${AGGREGATION_RULES.join(', ')}`)
  count('n', n, 1)
  count('f', f, 0)
  const refuse = (condition: string): never => {
    throw new AggregationError(`${rule} needs ${condition}, got n = ${n}, f = ${f}`, { details: { rule, n, f } })
  }
  switch (rule) {
    case 'fedavg':
    case 'median':
      return
    case 'trimmed-mean': {
      const trim = extra.trim ?? f
      count('trim', trim, 0)
      if (!(n > 2 * trim)) refuse(`n > 2·trim (trim = ${trim})`)
      return
    }
    case 'krum':
    case 'multi-krum':
      if (n < 2 * f + 3) refuse('n \u2265 2f + 3')
      if (rule === 'multi-krum' && extra.m !== undefined) {
        count('m', extra.m, 1)
        if (extra.m > n) refuse(`m \u2264 n (m = ${extra.m})`)
      }
      return
    case 'bulyan':
      if (n < 4 * f + 3) refuse('n \u2265 4f + 3')
  }
}

/** Index of the first non-finite value of `u`, or -1. (x - x is 0 for every finite x, NaN otherwise.) */
function firstNonFinite(u: Float32Array): number {
  for (let j = 0; j < u.length; j++) {
    const x = u[j]!
    if (x - x !== 0) return j
  }
  return -1
}

/** Checks the updates' shape and values; returns their common length. */
function checkUpdates(updates: readonly Float32Array[]): number {
  if (!Array.isArray(updates) || updates.length === 0) throw new AggregationError('there are no updates to aggregate')
  const d = updates[0]!.length
  updates.forEach((u, i) => {
    if (!(u instanceof Float32Array)) throw new AggregationError(`update ${i} is not a Float32Array`)
    if (u.length !== d)
      throw new AggregationError(`update ${i} has ${u.length} values, update 0 has ${d}: all must be the same length`, {
        details: { index: i, length: u.length, expected: d },
      })
    const at = firstNonFinite(u)
    if (at >= 0)
      throw new AggregationError(`update ${i} holds ${u[at]} at coordinate ${at}: it is refused`, {
        details: { index: i, coordinate: at },
      })
  })
  return d
}

/** Aggregates `updates` (all the same length) with the rule's conditions checked first. */
export function aggregate(updates: readonly Float32Array[], options: AggregationOptions): Aggregate {
  const { rule, f } = options
  checkConditions(rule, Array.isArray(updates) ? updates.length : 0, f, options)
  const d = checkUpdates(updates)
  const n = updates.length
  const all = Array.from({ length: n }, (_, i) => i)
  switch (rule) {
    case 'fedavg':
      return { result: weightedMean(updates, d, fedavgWeights(options.weights, n)), selected: all }
    case 'median':
      return { result: coordinateMedian(updates, d), selected: all }
    case 'trimmed-mean':
      return { result: trimmedMean(updates, d, options.trim ?? f), selected: all }
    case 'krum':
    case 'multi-krum': {
      const scores = krumScores(pairwiseDistances(updates, d), n, all, f)
      const ranked = all.slice().sort((a, b) => scores[a]! - scores[b]! || a - b)
      const m = rule === 'krum' ? 1 : (options.m ?? n - f)
      const selected = ranked.slice(0, m).sort((a, b) => a - b)
      return { result: plainMean(updates, d, selected), selected }
    }
    case 'bulyan': {
      const selected = iteratedKrum(pairwiseDistances(updates, d), n, f, n - 2 * f)
      return { result: bulyanCoordinates(updates, d, selected, n - 4 * f), selected }
    }
  }
}

// ---- means ----

function fedavgWeights(weights: readonly number[] | undefined, n: number): Float64Array {
  if (weights === undefined) return new Float64Array(n).fill(1 / n)
  if (weights.length !== n) throw new AggregationError(`there are ${weights.length} weights for ${n} updates`)
  let total = 0
  weights.forEach((w, i) => {
    if (!(Number.isFinite(w) && w >= 0)) throw new AggregationError(`weight ${i} must be finite and \u2265 0, got ${w}`)
    total += w
  })
  if (!(total > 0)) throw new AggregationError('the weights sum to 0')
  return Float64Array.from(weights, (w) => w / total)
}

/** sum w_i·u_i, update by update into a float64 accumulator (sequential reads, one rounding at the end). */
function weightedMean(updates: readonly Float32Array[], d: number, weights: Float64Array): Float32Array {
  const acc = new Float64Array(d)
  updates.forEach((u, i) => {
    const w = weights[i]!
    if (w === 0) return
    for (let j = 0; j < d; j++) acc[j]! += w * u[j]!
  })
  return Float32Array.from(acc)
}

/** The unweighted mean of the updates at `indices` (summed in that order, then divided). */
function plainMean(updates: readonly Float32Array[], d: number, indices: readonly number[]): Float32Array {
  const acc = new Float64Array(d)
  for (const i of indices) {
    const u = updates[i]!
    for (let j = 0; j < d; j++) acc[j]! += u[j]!
  }
  const out = new Float32Array(d)
  for (let j = 0; j < d; j++) out[j] = acc[j]! / indices.length
  return out
}

// ---- per-coordinate order statistics ----

/**
 * Rearranges `a[lo..hi]` (inclusive) so that `a[k]` holds the value a sort would put there, every
 * value before it <= and every value after it >=; returns that value. Quickselect with a
 * median-of-three pivot and a branch-free three-way partition (values below the pivot, then equal
 * to it): random data mispredicts a branchy partition half the time, and long runs of equal values
 * (frozen weights, zero updates) end in one round instead of n. A hostile ordering that keeps the
 * partitions lopsided is cut short by sorting the range, so one coordinate never costs more than
 * a sort. Deterministic.
 */
export function selectInPlace(a: Float32Array, lo: number, hi: number, k: number): number {
  for (let round = 0; hi > lo; round++) {
    if (round > 48) {
      a.subarray(lo, hi + 1).sort()
      break
    }
    const mid = (lo + hi) >>> 1
    const x = a[lo]!
    const y = a[mid]!
    const z = a[hi]!
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y
    const below = partition(a, lo, hi, pivot, false)
    if (k < below) {
      hi = below - 1
      continue
    }
    const notAbove = partition(a, below, hi, pivot, true)
    if (k < notAbove) return pivot
    lo = notAbove
  }
  return a[k]!
}

/** Moves the values of `a[lo..hi]` that are < pivot (<= when `orEqual`) to the front; returns where the rest start. */
function partition(a: Float32Array, lo: number, hi: number, pivot: number, orEqual: boolean): number {
  let store = lo
  if (orEqual) {
    for (let i = lo; i <= hi; i++) {
      const v = a[i]!
      a[i] = a[store]!
      a[store] = v
      store += +(v <= pivot)
    }
  } else {
    for (let i = lo; i <= hi; i++) {
      const v = a[i]!
      a[i] = a[store]!
      a[store] = v
      store += +(v < pivot)
    }
  }
  return store
}

/** Coordinates per block of the per-coordinate rules: 100 updates × 512 float32 = 200 KiB. */
const COORDINATE_BLOCK = 512

/**
 * Calls `each(block, offset, j)` for every coordinate j, where `block[offset .. offset + n)` holds
 * coordinate j of every update, in update order. The values are copied a block of coordinates at
 * a time (each update read sequentially) into one reused scratch array, which `each` may reorder.
 */
function forEachCoordinate(
  updates: readonly Float32Array[],
  d: number,
  each: (block: Float32Array, offset: number, j: number) => void,
): void {
  const n = updates.length
  const block = new Float32Array(n * COORDINATE_BLOCK)
  for (let j0 = 0; j0 < d; j0 += COORDINATE_BLOCK) {
    const j1 = Math.min(d, j0 + COORDINATE_BLOCK)
    for (let i = 0; i < n; i++) {
      const u = updates[i]!
      for (let j = j0, o = i; j < j1; j++, o += n) block[o] = u[j]!
    }
    for (let j = j0, o = 0; j < j1; j++, o += n) each(block, o, j)
  }
}

function coordinateMedian(updates: readonly Float32Array[], d: number): Float32Array {
  const n = updates.length
  const out = new Float32Array(d)
  const k = n >>> 1
  forEachCoordinate(updates, d, (block, o, j) => {
    const upper = selectInPlace(block, o, o + n - 1, o + k)
    if (n & 1) {
      out[j] = upper
      return
    }
    let lower = block[o]!
    for (let i = o + 1; i < o + k; i++) if (block[i]! > lower) lower = block[i]!
    out[j] = (lower + upper) / 2
  })
  return out
}

function trimmedMean(updates: readonly Float32Array[], d: number, trim: number): Float32Array {
  const n = updates.length
  const kept = n - 2 * trim
  const out = new Float32Array(d)
  forEachCoordinate(updates, d, (block, o, j) => {
    if (trim > 0) {
      selectInPlace(block, o, o + n - 1, o + trim)
      selectInPlace(block, o + trim, o + n - 1, o + n - 1 - trim)
    }
    let s = 0
    for (let i = o + trim; i < o + n - trim; i++) s += block[i]!
    out[j] = s / kept
  })
  return out
}

// ---- Krum and Bulyan ----

/**
 * Squared Euclidean distances between every pair of updates, n × n, row-major, symmetric, computed
 * once. A block of DISTANCE_BLOCK coordinates of every update is copied into one scratch area
 * (zero-padded to a multiple of 4), then every pair's partial sum over the block is added in:
 * the block is read from cache n times instead of from memory.
 *
 * The arithmetic is fixed as WebAssembly SIMD does it, so that it is the same everywhere: per
 * block, four float32 lanes (lane k takes coordinates j0 + 4m + k), each accumulating
 * fround((x - y)²) in float32; the block's partial is ((l0 + l1) + l2) + l3 in float64, added to
 * the pair's float64 total in block order. The WebAssembly kernel (one row against four partners,
 * 4 lanes at a time) is ~3.5× faster than the best plain-JS loop; `simd: false` runs the same
 * arithmetic in JS (Math.fround at each step, exact: float64 rounding then float32 rounding of a
 * float32 sum, difference or product is the float32 result) where WebAssembly SIMD is missing,
 * and for the test that the two agree bit for bit.
 */
export function pairwiseDistances(
  updates: readonly Float32Array[],
  d: number,
  options: { simd?: boolean } = {},
): Float64Array {
  const n = updates.length
  const kernel = options.simd === false ? undefined : simdKernel()
  const stride = DISTANCE_BLOCK * 4
  const scratch = kernel?.scratch(SCRATCH_ROWS_AT + n * stride) ?? new ArrayBuffer(SCRATCH_ROWS_AT + n * stride)
  const rows = new Float32Array(scratch, SCRATCH_ROWS_AT, n * DISTANCE_BLOCK)
  const sums = new Float64Array(scratch, 0, 4)
  const row = (i: number): number => SCRATCH_ROWS_AT + i * stride
  const dist = new Float64Array(n * n)
  for (let j0 = 0; j0 < d; j0 += DISTANCE_BLOCK) {
    const width = Math.min(d, j0 + DISTANCE_BLOCK) - j0
    const padded = (width + 3) & ~3
    for (let i = 0; i < n; i++) {
      rows.set(updates[i]!.subarray(j0, j0 + width), i * DISTANCE_BLOCK)
      rows.fill(0, i * DISTANCE_BLOCK + width, i * DISTANCE_BLOCK + padded)
    }
    for (let a = 0; a < n; a++)
      for (let b = a + 1; b < n; b += 4) {
        // The last group repeats its last partner; the extra sums are ignored.
        const p = [b, Math.min(b + 1, n - 1), Math.min(b + 2, n - 1), Math.min(b + 3, n - 1)] as const
        if (kernel) kernel.oneByFour(row(a), row(p[0]), row(p[1]), row(p[2]), row(p[3]), padded * 4)
        else oneByFourInJs(rows, a * DISTANCE_BLOCK, p, padded, sums)
        for (let k = 0; k < 4 && b + k < n; k++) dist[a * n + b + k]! += sums[k]!
      }
  }
  for (let a = 0; a < n; a++) for (let b = a + 1; b < n; b++) dist[b * n + a] = dist[a * n + b]!
  return dist
}

/** The 4 partial sums go to bytes 0..32 of the scratch area, the rows start here. */
const SCRATCH_ROWS_AT = 64

/** `oneByFour` in plain JS with the kernel's float32 lane arithmetic (see pairwiseDistances). */
function oneByFourInJs(
  rows: Float32Array,
  x: number,
  partners: readonly number[],
  padded: number,
  sums: Float64Array,
): void {
  const fr = Math.fround
  partners.forEach((b, k) => {
    const y = b * DISTANCE_BLOCK
    const lanes = [0, 0, 0, 0]
    for (let j = 0; j < padded; j++) {
      const t = fr(rows[x + j]! - rows[y + j]!)
      lanes[j & 3] = fr(lanes[j & 3]! + fr(t * t))
    }
    sums[k] = lanes[0]! + lanes[1]! + lanes[2]! + lanes[3]!
  })
}

interface SimdKernel {
  /** The kernel's memory as at least `bytes` bytes (grown when needed; earlier views go stale). */
  scratch(bytes: number): ArrayBuffer
  /** Squared distances of the row at byte `x` to the rows at u0..u3, over `len` bytes, into bytes 0..32. */
  oneByFour(x: number, u0: number, u1: number, u2: number, u3: number, len: number): void
}

/** The little of the WebAssembly JS API used here (this project's TypeScript libs do not declare it). */
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> }
}
interface WasmMemory {
  readonly buffer: ArrayBuffer
  grow(pages: number): number
}

let kernelCache: SimdKernel | null | undefined

/** Which distance kernel this process runs: WebAssembly SIMD, or its exact JS emulation. */
export function distanceKernel(): 'wasm-simd' | 'js' {
  return simdKernel() ? 'wasm-simd' : 'js'
}

/** The WebAssembly SIMD kernel, built once; null where WebAssembly SIMD is not available. */
function simdKernel(): SimdKernel | undefined {
  if (kernelCache === undefined) {
    try {
      const instance = new WebAssembly.Instance(new WebAssembly.Module(distanceModule()), {})
      const memory = instance.exports.memory as WasmMemory
      const run = instance.exports.oneByFour as SimdKernel['oneByFour']
      kernelCache = {
        scratch(bytes) {
          const missing = bytes - memory.buffer.byteLength
          if (missing > 0) memory.grow(Math.ceil(missing / 65536))
          return memory.buffer
        },
        oneByFour: run,
      }
    } catch {
      // No WebAssembly SIMD here: the JS lanes give the same bits, slower. (The tests assert that
      // Node 24 takes the SIMD path, so a broken module cannot hide behind this.)
      kernelCache = null
    }
  }
  return kernelCache ?? undefined
}

/**
 * The bytes of a WebAssembly module (MVP + fixed-width SIMD) exporting its memory and
 * `oneByFour(x, u0, u1, u2, u3, len)`: for j = 0, 16, ... < len, d = x[j..j+16) - u_k[j..j+16) as
 * f32x4, acc_k += d·d; then each acc_k's lanes, promoted to f64, summed in lane order, stored at 8k.
 */
function distanceModule(): Uint8Array {
  const leb = (v: number): number[] => {
    const out: number[] = []
    do {
      out.push((v & 0x7f) | (v > 0x7f ? 0x80 : 0))
      v >>>= 7
    } while (v > 0)
    return out
  }
  const vec = (items: number[][]): number[] => [...leb(items.length), ...items.flat()]
  const section = (id: number, body: number[]): number[] => [id, ...leb(body.length), ...body]
  const text = (s: string): number[] => vec([...s].map((c) => [c.charCodeAt(0)]))
  const [I32, V128] = [0x7f, 0x7b]
  const get = (i: number): number[] => [0x20, i]
  const set = (i: number): number[] => [0x21, i]
  const [I32_ADD, I32_GE_U, F64_ADD, F64_PROMOTE] = [0x6a, 0x4f, 0xa0, 0xbb]
  const V128_LOAD = [0xfd, 0x00, 0x04, 0x00] // align 2^4, offset 0
  const [F32X4_ADD, F32X4_SUB, F32X4_MUL] = [
    [0xfd, 0xe4, 0x01],
    [0xfd, 0xe5, 0x01],
    [0xfd, 0xe6, 0x01],
  ] as const
  const lane = (k: number): number[] => [0xfd, 0x1f, k, F64_PROMOTE] // f32x4.extract_lane k, promote
  // params 0 x, 1..4 u0..u3, 5 len; locals 6 j (i32), 7 xv, 8 t, 9..12 acc0..3 (v128, zeroed)
  const body: number[] = [
    ...vec([
      [1, I32],
      [6, V128],
    ]),
  ]
  body.push(0x02, 0x40, 0x03, 0x40) // block, loop
  body.push(...get(6), ...get(5), I32_GE_U, 0x0d, 1) // br_if out when j >= len
  body.push(...get(0), ...get(6), I32_ADD, ...V128_LOAD, ...set(7))
  for (let k = 0; k < 4; k++) {
    body.push(...get(7), ...get(1 + k), ...get(6), I32_ADD, ...V128_LOAD, ...F32X4_SUB, ...set(8))
    body.push(...get(9 + k), ...get(8), ...get(8), ...F32X4_MUL, ...F32X4_ADD, ...set(9 + k))
  }
  body.push(...get(6), 0x41, 16, I32_ADD, ...set(6), 0x0c, 0, 0x0b, 0x0b) // j += 16, br loop, end, end
  for (let k = 0; k < 4; k++) {
    const acc = 9 + k
    body.push(0x41, 0, ...get(acc), ...lane(0), ...get(acc), ...lane(1), F64_ADD)
    body.push(...get(acc), ...lane(2), F64_ADD, ...get(acc), ...lane(3), F64_ADD)
    body.push(0x39, 0x03, 8 * k) // f64.store align 2³, offset 8k
  }
  body.push(0x0b)
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32], [I32], [I32], [I32]]), 0]])), // (i32 ×6) -> ()
    ...section(3, vec([[0]])),
    ...section(5, vec([[0x00, 1]])), // one memory, 1 page to start
    ...section(
      7,
      vec([
        [...text('memory'), 0x02, 0],
        [...text('oneByFour'), 0x00, 0],
      ]),
    ),
    ...section(10, vec([[...leb(body.length), ...body]])),
  ])
}

/**
 * Krum scores of the updates in `among` (indices into the distance matrix), each against the
 * others of `among`: the sum of its |among| - f - 2 smallest squared distances (0 when that is
 * below 1, as in Bulyan's last iterations). Returns a sparse array indexed by update.
 */
function krumScores(dist: Float64Array, n: number, among: readonly number[], f: number): number[] {
  const nearest = Math.max(0, among.length - f - 2)
  const row = new Float64Array(among.length - 1)
  const scores: number[] = []
  for (const i of among) {
    let k = 0
    for (const o of among) if (o !== i) row[k++] = dist[i * n + o]!
    row.sort()
    let s = 0
    for (let q = 0; q < nearest; q++) s += row[q]!
    scores[i] = s
  }
  return scores
}

/** Bulyan's selection: Krum over the remaining updates, theta times; ascending indices of those chosen. */
function iteratedKrum(dist: Float64Array, n: number, f: number, theta: number): number[] {
  const remaining = Array.from({ length: n }, (_, i) => i)
  const chosen: number[] = []
  while (chosen.length < theta) {
    const scores = krumScores(dist, n, remaining, f)
    let best = remaining[0]!
    for (const i of remaining) if (scores[i]! < scores[best]!) best = i
    chosen.push(best)
    remaining.splice(remaining.indexOf(best), 1)
  }
  return chosen.sort((a, b) => a - b)
}

/**
 * Bulyan's second stage, per coordinate: of the theta selected values, the beta closest to their median
 * (a contiguous window of the sorted values, shrunk from the far end; on a tie the larger value
 * goes), averaged.
 */
function bulyanCoordinates(
  updates: readonly Float32Array[],
  d: number,
  selected: readonly number[],
  beta: number,
): Float32Array {
  const theta = selected.length
  const out = new Float32Array(d)
  forEachCoordinate(
    selected.map((i) => updates[i]!),
    d,
    (block, o, j) => {
      const sorted = block.subarray(o, o + theta).sort()
      const median = theta & 1 ? sorted[theta >>> 1]! : (sorted[theta / 2 - 1]! + sorted[theta / 2]!) / 2
      let lo = 0
      let hi = theta - 1
      while (hi - lo + 1 > beta) {
        if (median - sorted[lo]! > sorted[hi]! - median) lo++
        else hi--
      }
      let s = 0
      for (let i = lo; i <= hi; i++) s += sorted[i]!
      out[j] = s / beta
    },
  )
  return out
}
