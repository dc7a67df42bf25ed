/** Small helpers of the SVG plots the benches draw (bench/cost-plot.ts, bench/soak-plot.ts). */

/** Text made safe for SVG. */
export const esc = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

/** A round axis maximum (1, 2, 2.5 or 5 × 10^k) at or above `max`. */
export function niceMax(max: number): number {
  if (!(max > 0)) return 1
  const power = 10 ** Math.floor(Math.log10(max))
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= max) return step * power
  return 10 * power
}

/** An axis label: integers as they are, others with one decimal (two under 1). */
export function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(v < 1 ? 2 : 1)
}
