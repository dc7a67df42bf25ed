/**
 * Float32 kernels of the MoE runtime, on Float32Array, written as plain loops so every node
 * computes bit-identical results: what makes Proof-of-Learning scores reproducible.
 *
 * The rules every kernel follows:
 *  - inputs are float32; products and sums are computed in float64 (a product of two float32 is
 *    exact in float64) in the order written below, and each result is rounded to float32 once,
 *    when it is stored;
 *  - a dot product of length n (`dot`) sums four lanes, lane l holding the terms i == l (mod 4)
 *    for i < n - n mod 4 in increasing i, then ((s0 + s1) + (s2 + s3)), then the remaining terms
 *    in increasing i. The four lanes are for speed (independent additions); the order is fixed;
 *  - transcendental functions are V8's `Math.exp`, `Math.tanh`, `Math.cos`, `Math.sin`, `**`:
 *    ports of fdlibm, the same on every platform;
 *  - every row of a batch is computed on its own: a row's result never depends on the other rows,
 *    so a prompt processed as a batch gives the same numbers as one row at a time.
 *
 * A linear layer's weight is [out, in] (row-major), as in the weight files.
 */

/** sum a[aOff + i] · b[bOff + i] for i < n, in the order of the module comment (float64). */
export function dot(a: Float32Array, aOff: number, b: Float32Array, bOff: number, n: number): number {
  let s0 = 0
  let s1 = 0
  let s2 = 0
  let s3 = 0
  const n4 = n - (n & 3)
  let i = 0
  for (; i < n4; i += 4) {
    s0 += a[aOff + i]! * b[bOff + i]!
    s1 += a[aOff + i + 1]! * b[bOff + i + 1]!
    s2 += a[aOff + i + 2]! * b[bOff + i + 2]!
    s3 += a[aOff + i + 3]! * b[bOff + i + 3]!
  }
  let s = s0 + s1 + (s2 + s3)
  for (; i < n; i++) s += a[aOff + i]! * b[bOff + i]!
  return s
}

/** out[o] = W[o, :] · x (W is [outDim, inDim]); `out` is allocated when not given. */
export function matVec(
  w: Float32Array,
  x: Float32Array,
  outDim: number,
  inDim: number,
  out?: Float32Array,
): Float32Array {
  const y = out ?? new Float32Array(outDim)
  for (let o = 0; o < outDim; o++) y[o] = dot(w, o * inDim, x, 0, inDim)
  return y
}

/**
 * out[r, o] = W[o, :] · x[r, :] for `rows` rows of x ([rows, inDim] -> [rows, outDim]). Loops over
 * the weight's rows outside and the input rows inside, so each weight row is read from memory
 * once per batch.
 */
export function matMul(
  w: Float32Array,
  x: Float32Array,
  rows: number,
  outDim: number,
  inDim: number,
  out?: Float32Array,
): Float32Array {
  const y = out ?? new Float32Array(rows * outDim)
  for (let o = 0; o < outDim; o++) {
    const wOff = o * inDim
    for (let r = 0, xOff = 0, yOff = o; r < rows; r++, xOff += inDim, yOff += outDim)
      y[yOff] = dot(w, wOff, x, xOff, inDim)
  }
  return y
}

/**
 * RMSNorm of each row: x · (1 / sqrt(mean(x²) + eps)) · weight, mean(x²) summed in increasing order
 * (float64). `out` may be `x`.
 */
export function rmsNorm(
  x: Float32Array,
  weight: Float32Array,
  rows: number,
  d: number,
  eps: number,
  out?: Float32Array,
): Float32Array {
  const y = out ?? new Float32Array(rows * d)
  for (let r = 0, off = 0; r < rows; r++, off += d) {
    let ss = 0
    for (let i = 0; i < d; i++) {
      const v = x[off + i]!
      ss += v * v
    }
    const scale = 1 / Math.sqrt(ss / d + eps)
    for (let i = 0; i < d; i++) y[off + i] = x[off + i]! * scale * weight[i]!
  }
  return y
}

const invFreqCache = new Map<string, Float64Array>()

/** theta^(-2i/hd) for i < hd/2: the rotary frequencies. */
export function ropeFrequencies(headDim: number, theta: number): Float64Array {
  const key = `${headDim}:${theta}`
  let f = invFreqCache.get(key)
  if (f === undefined) {
    f = new Float64Array(headDim >> 1)
    for (let i = 0; i < f.length; i++) f[i] = 1 / theta ** ((2 * i) / headDim)
    invFreqCache.set(key, f)
  }
  return f
}

/**
 * Rotary positions, rotate-half (Llama/Mixtral): in each head of each row, for i < hd/2 with
 * angle a = position · theta^(-2i/hd): x[i] <- x[i]·cos a - x[i+hd/2]·sin a and
 * x[i+hd/2] <- x[i+hd/2]·cos a + x[i]·sin a. Row r is at position `startPos + r`. In place.
 */
export function rope(
  x: Float32Array,
  rows: number,
  heads: number,
  headDim: number,
  startPos: number,
  theta: number,
): Float32Array {
  const half = headDim >> 1
  const freq = ropeFrequencies(headDim, theta)
  const cos = new Float64Array(half)
  const sin = new Float64Array(half)
  const width = heads * headDim
  for (let r = 0; r < rows; r++) {
    const pos = startPos + r
    for (let i = 0; i < half; i++) {
      const a = pos * freq[i]!
      cos[i] = Math.cos(a)
      sin[i] = Math.sin(a)
    }
    for (let h = 0, off = r * width; h < heads; h++, off += headDim) {
      for (let i = 0; i < half; i++) {
        const x1 = x[off + i]!
        const x2 = x[off + half + i]!
        const c = cos[i]!
        const s = sin[i]!
        x[off + i] = x1 * c - x2 * s
        x[off + half + i] = x2 * c + x1 * s
      }
    }
  }
  return x
}

/**
 * Softmax of x[off ... off+n) in place: e_i = exp(x_i - max), each divided by sum e (summed in
 * increasing order, float64). -infinity entries get 0; when every entry is -infinity all get 0.
 */
export function softmax(x: Float32Array | Float64Array, off = 0, n = x.length - off): void {
  let max = -Infinity
  for (let i = off; i < off + n; i++) if (x[i]! > max) max = x[i]!
  if (max === -Infinity) {
    x.fill(0, off, off + n)
    return
  }
  let sum = 0
  for (let i = off; i < off + n; i++) {
    const e = Math.exp(x[i]! - max)
    x[i] = e
    sum += e
  }
  for (let i = off; i < off + n; i++) x[i] = x[i]! / sum
}

/** x · sigma(x) = x / (1 + e^(-x)). */
export function silu(v: number): number {
  return v / (1 + Math.exp(-v))
}

const GELU_C = Math.sqrt(2 / Math.PI)

/** GELU, tanh approximation: ½x(1 + tanh(sqrt(2/pi)(x + 0.044715x³))). */
export function gelu(v: number): number {
  return 0.5 * v * (1 + Math.tanh(GELU_C * (v + 0.044715 * v * v * v)))
}

/** max(0, x) (-0 and NaN give 0). */
export function relu(v: number): number {
  return v > 0 ? v : 0
}

/** Applies `f` to every element of `x` in place. */
export function mapInPlace(x: Float32Array, f: (v: number) => number): Float32Array {
  for (let i = 0; i < x.length; i++) x[i] = f(x[i]!)
  return x
}

export function siluInPlace(x: Float32Array): Float32Array {
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!
    x[i] = v / (1 + Math.exp(-v))
  }
  return x
}

export function geluInPlace(x: Float32Array): Float32Array {
  for (let i = 0; i < x.length; i++) x[i] = gelu(x[i]!)
  return x
}

export function reluInPlace(x: Float32Array): Float32Array {
  for (let i = 0; i < x.length; i++) x[i] = x[i]! > 0 ? x[i]! : 0
  return x
}

/** x <- x + y (each sum rounded to float32 as stored). */
export function addInPlace(x: Float32Array, y: Float32Array): Float32Array {
  for (let i = 0; i < x.length; i++) x[i] = x[i]! + y[i]!
  return x
}
