/**
 * The seeded sampler of generation jobs, and its audit check (teacher forcing).
 *
 * Every worker and auditor must draw the same token from the same logits, so the sampler is
 * defined exactly, in float64, with a counter-based random number instead of a generator's state:
 *
 *   u_t = (top 53 bits of sha256(seed as int64 big-endian || t as uint32 big-endian)) / 2^53
 *
 * for output token t (0 for the first generated token). u_t does not depend on earlier draws, so
 * an auditor can check token t alone.
 *
 * Sampling at step t from float32 logits l (`sampleToken`):
 *  1. temperature 0: arg-max of l, lowest id on ties (top_k and top_p are ignored);
 *  2. z_i = l_i / (temperature / 1000) in float64; e_i = exp(z_i - max z) (a stable softmax
 *     without the division: only ratios matter below);
 *  3. order: z descending, ties by lower id (z, not e: exp may round two z to one e). top_k > 0
 *     keeps the first k tokens (K);
 *  4. M_K = sum_{iinK} e_i, summed in id order. top_p < 1000 walks K in order, c_r = the running sum
 *     of the first r masses, and keeps the smallest prefix N with c_|N| >= p·M_K; M_N = c_|N|.
 *     top_p = 1000 keeps N = K, M_N = M_K;
 *  5. walking N in order, the token picked is the first whose running sum exceeds u_t · M_N (the
 *     last of N when rounding leaves none).
 * NaN logits count as -infinity. When every logit is -infinity or NaN, or some is +infinity, step 2 has no finite
 * softmax: the pick is the arg-max (step 1). `Math.exp` is V8's port of fdlibm, the same on every
 * platform, so equal logits give equal tokens everywhere; different runtimes may differ in the
 * logits themselves, which is what `checkToken`'s tolerance is for.
 */
import { InvalidInputError } from '../../core/errors.ts'
import { sha256 } from '../../core/hash.ts'

/** The sampling parameters of one generation (`GenerationInput` has them). */
export interface SamplerParams {
  /** Thousandths; 0 is greedy. */
  temperatureMilli: number
  /** Thousandths, 1-1000. */
  topPMilli: number
  /** 0: no cut. */
  topK: number
  seed: bigint
}

/** An audit's tolerance: how far (absolute, in logits) an honest worker's logits may be from the auditor's. */
export interface TokenTolerance {
  /** Millionths (1000 = 0.001), as the registry's `tolerance.maxAbsPpm`. */
  maxAbsPpm: number
}

const TWO_POW_53 = 2 ** 53
/** Slack for float64 rounding in `checkToken`'s comparisons (sums of <= 2^31 terms <= 1). */
const ROUNDING_SLACK = 1e-9

/** u_t in [0, 1): the uniform draw of output step `step` under `seed`. */
export function uniformAt(seed: bigint, step: number): number {
  if (!Number.isSafeInteger(step) || step < 0 || step > 0xffffffff)
    throw new InvalidInputError(`sampling step ${step} is out of range`)
  const input = new Uint8Array(12)
  const view = new DataView(input.buffer)
  view.setBigInt64(0, BigInt.asIntN(64, seed), false)
  view.setUint32(8, step, false)
  const digest = sha256(input)
  const word = new DataView(digest.buffer, digest.byteOffset, 8).getBigUint64(0, false)
  return Number(word >> 11n) / TWO_POW_53
}

/** Arg-max of `logits`, lowest id on ties; NaN never wins (all NaN: 0). */
export function argMax(logits: ArrayLike<number>): number {
  let best = 0
  let bestValue = -Infinity
  for (let i = 0; i < logits.length; i++) {
    const v = logits[i]!
    if (v > bestValue) {
      best = i
      bestValue = v
    }
  }
  return best
}

/**
 * z = l / T, and the masses e_i = exp(z_i - max z), each computed when first needed (most
 * samples read the masses of a few tokens only; the value is the same either way).
 */
class Dist {
  readonly z: Float64Array
  readonly max: number
  readonly #e: Float64Array

  constructor(z: Float64Array, max: number) {
    this.z = z
    this.max = max
    this.#e = new Float64Array(z.length).fill(NaN)
  }

  e(i: number): number {
    let v = this.#e[i]!
    if (Number.isNaN(v)) {
      v = Math.exp(this.z[i]! - this.max)
      this.#e[i] = v
    }
    return v
  }
}

/** The distribution of `logits` at a temperature; undefined when there is no finite softmax. */
function distribution(logits: ArrayLike<number>, temperatureMilli: number): Dist | undefined {
  const t = temperatureMilli / 1000
  const n = logits.length
  const z = new Float64Array(n)
  let max = -Infinity
  for (let i = 0; i < n; i++) {
    const v = logits[i]!
    const zi = Number.isNaN(v) ? -Infinity : v / t
    z[i] = zi
    if (zi > max) max = zi
  }
  return Number.isFinite(max) ? new Dist(z, max) : undefined
}

/** `a` comes before `b` in sampling order: z descending, ties by lower id (NaN-free: -infinity - -infinity falls to the ids). */
const byOrder =
  (z: Float64Array) =>
  (a: number, b: number): number =>
    z[b]! - z[a]! || a - b

/** Rearranges `ids` so its first `k` are the first `k` in sampling order (unsorted): quickselect. */
function selectFirst(ids: number[], k: number, z: Float64Array): void {
  const before = (a: number, b: number): boolean => z[a]! > z[b]! || (z[a] === z[b] && a < b)
  const swap = (i: number, j: number): void => {
    const t = ids[i]!
    ids[i] = ids[j]!
    ids[j] = t
  }
  let lo = 0
  let hi = ids.length - 1
  while (lo < hi) {
    swap((lo + hi) >> 1, hi)
    const pivot = ids[hi]!
    let store = lo
    for (let i = lo; i < hi; i++)
      if (before(ids[i]!, pivot)) {
        swap(i, store)
        store++
      }
    swap(store, hi) // the pivot is at its place in the order
    if (store === k - 1) return
    if (store > k - 1) hi = store - 1
    else lo = store + 1
  }
}

/** Buckets of z below the maximum, one nat wide; the last holds everything lower (and -infinity). */
const BUCKETS = 48

/**
 * A lazily sorted view of the tokens in sampling order. Most of the mass sits in few tokens, so
 * `prefix(need)` sorts only the tokens with z above a level when their mass reaches `need` (or
 * their count `top_k`): every token above the level comes before every token below it in the
 * order, so the prefix is the same as a full sort's. Levels are the bucket edges of one pass over
 * the vocabulary; the result never depends on them.
 */
class SortedTokens {
  readonly #z: Float64Array
  readonly #max: number
  readonly #limit: number
  readonly #count = new Float64Array(BUCKETS)
  /** Each bucket's mass: exact when every mass is needed anyway (no top_k), else a lower bound. */
  readonly #mass = new Float64Array(BUCKETS)
  #sorted: number[] = []
  /** Buckets 0...#upTo are sorted (-1: none yet). */
  #upTo = -1

  /** `topK`: only the first `topK` tokens of the order exist (0: all). */
  constructor(d: Dist, topK: number) {
    const z = d.z
    this.#z = z
    this.#max = d.max
    this.#limit = topK === 0 ? Infinity : topK
    const exact = topK === 0
    for (let i = 0; i < z.length; i++) {
      const depth = d.max - z[i]!
      const b = depth < BUCKETS - 1 ? depth | 0 : BUCKETS - 1
      this.#count[b]!++
      if (exact) this.#mass[b]! += d.e(i)
    }
    // each token of bucket b has e > exp(-(b+1)): enough buckets are sorted, perhaps one more
    if (!exact) for (let b = 0; b < BUCKETS; b++) this.#mass[b] = this.#count[b]! * Math.exp(-(b + 1))
  }

  /** The order's first tokens, at least until their mass reaches `need` (or `top_k` of them, or all). */
  prefix(need: number): readonly number[] {
    let count = 0
    let mass = 0
    let upTo = 0
    for (; upTo < BUCKETS - 1; upTo++) {
      count += this.#count[upTo]!
      mass += this.#mass[upTo]!
      // margin: a walk sums in another order than `mass` was summed in (relative error <= n·2^-53)
      if (count >= this.#limit || mass >= need * (1 + 1e-9) + Number.MIN_VALUE) break
    }
    if (upTo <= this.#upTo) return this.#sorted
    const ids: number[] = []
    const z = this.#z
    // the tokens of buckets 0...upTo (depth < upTo + 1, as the constructor counted them); the last bucket: all
    const all = upTo >= BUCKETS - 1
    for (let i = 0; i < z.length; i++) if (all || this.#max - z[i]! < upTo + 1) ids.push(i)
    if (ids.length > this.#limit) {
      selectFirst(ids, this.#limit, this.#z)
      ids.length = this.#limit
    }
    this.#sorted = ids.sort(byOrder(this.#z))
    this.#upTo = upTo
    return this.#sorted
  }
}

/** The kept set's mass M_K (step 4): top_k's tokens summed in id order. */
function keptMass(d: Dist, sorted: SortedTokens, topK: number): number {
  let mass = 0
  const n = d.z.length
  if (topK === 0 || topK >= n) {
    for (let i = 0; i < n; i++) mass += d.e(i)
    return mass
  }
  for (const id of [...sorted.prefix(Infinity)].sort((a, b) => a - b)) mass += d.e(id)
  return mass
}

function checkParams(p: SamplerParams, vocab: number): void {
  if (vocab < 1) throw new InvalidInputError('logits are empty')
  if (!Number.isSafeInteger(p.temperatureMilli) || p.temperatureMilli < 0)
    throw new InvalidInputError('temperature must be a non-negative integer (thousandths)')
  if (!Number.isSafeInteger(p.topPMilli) || p.topPMilli < 1 || p.topPMilli > 1000)
    throw new InvalidInputError('top_p must be an integer in 1\u20131000 (thousandths)')
  if (!Number.isSafeInteger(p.topK) || p.topK < 0) throw new InvalidInputError('top_k must be a non-negative integer')
}

/** The kept set N in order and its mass M_N (step 4), sorted only as far as `need` requires. */
function nucleus(
  sorted: SortedTokens,
  d: Dist,
  mass: number,
  topPMilli: number,
): { cut: (need: number) => readonly number[]; massN: number } {
  if (topPMilli >= 1000) return { cut: (need) => sorted.prefix(need), massN: mass }
  const goal = (topPMilli / 1000) * mass
  const order = sorted.prefix(goal)
  let c = 0
  let r = 0
  while (r < order.length && c < goal) c += d.e(order[r++]!)
  const kept = order.slice(0, r)
  return { cut: () => kept, massN: c }
}

/** The token the sampler draws at output step `step` (see the module comment). */
export function sampleToken(logits: ArrayLike<number>, p: SamplerParams, step: number): number {
  checkParams(p, logits.length)
  if (p.temperatureMilli === 0) return argMax(logits)
  const d = distribution(logits, p.temperatureMilli)
  if (d === undefined) return argMax(logits)
  const sorted = new SortedTokens(d, p.topK)
  const mass = keptMass(d, sorted, p.topK)
  const { cut, massN } = nucleus(sorted, d, mass, p.topPMilli)
  const target = uniformAt(p.seed, step) * massN
  const order = cut(target)
  let c = 0
  for (const id of order) {
    c += d.e(id)
    if (c > target) return id
  }
  return order[order.length - 1] ?? argMax(logits)
}

/**
 * Whether `claimed` could be the token an honest worker drew at step `step`, when its logits may
 * differ from these by at most eps = maxAbsPpm / 10^6 each (absolute, in logits: the registry's
 * tolerance, as `compareTensors` applies it to outputs).
 *
 *  - temperature 0: l_claimed >= max l - 2eps (the claimed logit may be eps higher on the worker, the
 *    maximum eps lower);
 *  - otherwise each z may differ by eps/T, so each mass by a factor within [1/r, r], r = exp(eps/T)
 *    (the common factor of the softmax cancels). With A = the tokens with z > z_c + 2eps/T (before
 *    c on every such worker) and B = the others with z >= z_c - 2eps/T (near-ties: either side):
 *      c may be kept: top_k = 0 or |A| < top_k, and |A| < L_max (below);
 *      c's interval may hold u_t: the worker picked c iff S' <= u·M' < S' + e'_c, with S' the
 *      mass before c and M' the kept mass, so it requires
 *        m(A)/r · (1 - u) <= u · (M_hi - m(A)) · r                    (S' small enough), and
 *        u · (M_lo - m(A U B) - e_c) / r < (1 - u) · (m(A U B) + e_c) · r   (S' + e'_c large enough),
 *      where M_lo <= M' <= M_hi bound the kept mass over such workers: tokens near the top_k or
 *      top_p boundary may be kept on one machine and not on another. With top_p < 1000, the
 *      position-l token is kept iff the mass before it is < p·M_K; M_lo is the mass before the
 *      first position some worker may drop (L_min) and M_hi the mass before the first position
 *      none keeps (L_max), each fraction compared after a factor r^4 (perturbation and
 *      near-tie swaps); otherwise both are M_K. M_lo is divided and M_hi multiplied by r^2 again
 *      for swaps at the top_k boundary, and e_c is added to M_hi when c is outside these sets.
 * Each comparison also allows 10^-9 of the kept mass for float64 rounding. The check accepts
 * every token such a worker can draw (`sampler.test.ts` checks it on perturbed logits), and
 * refuses a token whose interval lies farther than about 2eps/T (relative) from u_t: a worker that
 * picks tokens of its choosing passes only by luck.
 */
export function checkToken(
  logits: ArrayLike<number>,
  p: SamplerParams,
  step: number,
  claimed: number,
  tolerance: TokenTolerance,
): boolean {
  checkParams(p, logits.length)
  if (!Number.isSafeInteger(claimed) || claimed < 0 || claimed >= logits.length) return false
  if (!Number.isFinite(tolerance.maxAbsPpm) || tolerance.maxAbsPpm < 0)
    throw new InvalidInputError('tolerance.maxAbsPpm must be a non-negative number')
  const eps = tolerance.maxAbsPpm / 1e6
  const greedy = (): boolean => {
    const best = logits[argMax(logits)]!
    const own = logits[claimed]!
    if (Number.isNaN(best)) return true // every logit is NaN: any token is the arg-max
    if (Number.isNaN(own)) return false
    return own === best || own >= best - 2 * eps
  }
  if (p.temperatureMilli === 0) return greedy()
  const d = distribution(logits, p.temperatureMilli)
  if (d === undefined) return greedy()
  const z = d.z
  const epsZ = eps / (p.temperatureMilli / 1000)
  const r = Math.exp(epsZ)
  const r2 = r * r
  const r4 = r2 * r2
  const zc = z[claimed]!
  const ec = d.e(claimed)
  let before = 0 // |A|
  let massA = 0
  let massAB = 0
  for (let i = 0; i < z.length; i++) {
    if (i === claimed) continue
    if (z[i]! > zc + 2 * epsZ) {
      before++
      massA += d.e(i)
      massAB += d.e(i)
    } else if (z[i]! >= zc - 2 * epsZ) massAB += d.e(i)
  }
  if (p.topK > 0 && before >= p.topK) return false
  const sorted = new SortedTokens(d, p.topK)
  const mass = keptMass(d, sorted, p.topK)
  let lo = mass
  let hi = mass
  if (p.topPMilli < 1000) {
    const goal = p.topPMilli / 1000
    const order = sorted.prefix(Math.min(mass, goal * mass * r4))
    let c = 0
    let l = 0
    let minSet = false
    for (; l <= order.length; l++) {
      const rest = mass - c
      if (!minSet && (c * r4) / (c * r4 + rest) >= goal) {
        lo = c
        minSet = true
      }
      if (c / (c + rest * r4) >= goal || l === order.length) break
      c += d.e(order[l]!)
    }
    if (!minSet) lo = c
    hi = c
    if (before >= l) return false // c ranks after every token any worker keeps
    if (!order.slice(0, l).includes(claimed)) hi += ec
  } else if (p.topK > 0 && !sorted.prefix(Infinity).includes(claimed)) hi += ec
  if (p.topK > 0) {
    lo /= r2
    hi *= r2
  }
  const u = uniformAt(p.seed, step)
  const slack = ROUNDING_SLACK * hi
  const startOk = (massA / r) * (1 - u) <= u * Math.max(0, hi - massA) * r + slack
  const endOk = (u * Math.max(0, lo - massAB - ec)) / r < (1 - u) * (massAB + ec) * r + slack
  return startOk && endOk
}
