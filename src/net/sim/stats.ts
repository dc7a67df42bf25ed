/** Small summaries of measured samples: nearest-rank percentiles, mean, extremes. */

export interface Summary {
  count: number
  p50: number
  p99: number
  mean: number
  min: number
  max: number
}

/** Nearest-rank percentile of sorted values (q in (0, 1]); NaN when there are none. */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.max(1, Math.ceil(q * sorted.length))
  return sorted[Math.min(rank, sorted.length) - 1] as number
}

/** Summary of the samples, each figure rounded to `digits` decimals (NaN figures when empty). */
export function summarize(values: readonly number[], digits = 2): Summary {
  const sorted = [...values].sort((a, b) => a - b)
  const round = (x: number): number => (Number.isFinite(x) ? Number(x.toFixed(digits)) : x)
  const sum = sorted.reduce((acc, x) => acc + x, 0)
  return {
    count: sorted.length,
    p50: round(percentile(sorted, 0.5)),
    p99: round(percentile(sorted, 0.99)),
    mean: round(sorted.length === 0 ? Number.NaN : sum / sorted.length),
    min: round(sorted.length === 0 ? Number.NaN : (sorted[0] as number)),
    max: round(sorted.length === 0 ? Number.NaN : (sorted[sorted.length - 1] as number)),
  }
}
