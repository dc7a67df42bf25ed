/**
 * The soak run's figure: four line charts in hand-written SVG (as bench/cost-plot.ts draws them)
 * against minutes of load: resident memory of each node process, its event-loop delay (p99 of
 * the minute), request latency p50/p99 (inference answer, transfer to commit) and block time,
 * with the V8 heap and the RSS of each node's process tree (node and model sandboxes) beside.
 * The fitted RSS lines of the second half are drawn dashed over the measured ones.
 */
import type { SoakSample, SoakSummary } from './soak.ts'
import { esc, fmt, niceMax } from './svg.ts'

interface Series {
  name: string
  color: string
  points: Array<[number, number]>
  dashed?: boolean
}

interface Panel {
  title: string
  yLabel: string
  series: Series[]
}

const WIDTH = 840
const PANEL_W = 420
const PANEL_H = 270
const MARGIN = { left: 62, right: 16, top: 46, bottom: 56 }
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b']

function panel(p: Panel, xMax: number, x0: number, y0: number): string {
  const w = PANEL_W - MARGIN.left - MARGIN.right
  const h = PANEL_H - MARGIN.top - MARGIN.bottom
  const left = x0 + MARGIN.left
  const top = y0 + MARGIN.top
  const yMax = niceMax(Math.max(0, ...p.series.flatMap((s) => s.points.map(([, y]) => y))))
  // minutes: a multiple of 5 past 10, so a 30-minute run fills its axis
  const xTop = xMax <= 10 ? niceMax(xMax) : Math.ceil(xMax / 5) * 5
  const xAt = (x: number): number => left + (x / xTop) * w
  const yAt = (v: number): number => top + h - (v / yMax) * h
  const out: string[] = [`<text x="${x0 + PANEL_W / 2}" y="${y0 + 18}" class="title">${esc(p.title)}</text>`]
  for (let k = 0; k <= 5; k++) {
    const v = (yMax * k) / 5
    const y = yAt(v).toFixed(1)
    out.push(`<line x1="${left}" x2="${left + w}" y1="${y}" y2="${y}" class="grid"/>`)
    out.push(`<text x="${left - 6}" y="${y}" class="ytick">${fmt(v)}</text>`)
    const x = xAt((xTop * k) / 5).toFixed(1)
    out.push(`<text x="${x}" y="${top + h + 16}" class="xtick">${fmt((xTop * k) / 5)}</text>`)
  }
  out.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${top + h}" class="axis"/>`)
  out.push(`<line x1="${left}" x2="${left + w}" y1="${top + h}" y2="${top + h}" class="axis"/>`)
  out.push(`<text x="${left + w / 2}" y="${top + h + 34}" class="label">minutes of load</text>`)
  const ly = top + h / 2
  out.push(
    `<text x="${x0 + 14}" y="${ly}" class="label" transform="rotate(-90 ${x0 + 14} ${ly})">${esc(p.yLabel)}</text>`,
  )
  let legendX = left
  for (const s of p.series) {
    const pts = s.points.map(([x, y]) => `${xAt(x).toFixed(1)},${yAt(y).toFixed(1)}`)
    const dash = s.dashed === true ? ' stroke-dasharray="5 4"' : ''
    if (pts.length > 1)
      out.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${s.color}" stroke-width="1.8"${dash}/>`)
    else if (pts.length === 1) {
      const [x, y] = (pts[0] as string).split(',')
      out.push(`<circle cx="${x}" cy="${y}" r="2.5" fill="${s.color}"/>`)
    }
    if (s.dashed === true) continue
    out.push(`<rect x="${legendX}" y="${top + h + 42}" width="10" height="3" fill="${s.color}"/>`)
    out.push(`<text x="${legendX + 14}" y="${top + h + 46}" class="legend">${esc(s.name)}</text>`)
    legendX += 14 + 7 * s.name.length + 12
  }
  return out.join('\n')
}

const defined = (pts: Array<[number, number | null | undefined]>): Array<[number, number]> =>
  pts.filter((p): p is [number, number] => p[1] !== null && p[1] !== undefined && Number.isFinite(p[1]))

/** The SVG document for a soak run's samples and verdict. */
export function soakSvg(samples: readonly SoakSample[], summary: SoakSummary): string {
  const names = samples[0]?.nodes.map((n) => n.node) ?? []
  const xMax = Math.max(1, ...samples.map((s) => s.minute))
  const rss: Series[] = names.map((name, i) => ({
    name,
    color: COLORS[i % COLORS.length] as string,
    points: defined(samples.map((s) => [s.minute, s.nodes[i]?.rssMb])),
  }))
  for (const [i, fit] of summary.rss.entries()) {
    if (fit.fit === undefined) continue
    const { from, to, intercept, slopePerMinute } = fit.fit
    rss.push({
      name: `${fit.node} fit`,
      color: COLORS[i % COLORS.length] as string,
      dashed: true,
      points: [
        [from, intercept + slopePerMinute * from],
        [to, intercept + slopePerMinute * to],
      ],
    })
  }
  const loop: Series[] = names.map((name, i) => ({
    name,
    color: COLORS[i % COLORS.length] as string,
    points: defined(samples.map((s) => [s.minute, s.nodes[i]?.eventLoopP99Ms])),
  }))
  const heap: Series[] = names.map((name, i) => ({
    name,
    color: COLORS[i % COLORS.length] as string,
    points: defined(samples.map((s) => [s.minute, s.nodes[i]?.heapUsedMb])),
  }))
  const tree: Series[] = names.map((name, i) => ({
    name,
    color: COLORS[i % COLORS.length] as string,
    points: defined(samples.map((s) => [s.minute, s.nodes[i]?.treeRssMb])),
  }))
  const latency: Series[] = [
    {
      name: 'infer p50',
      color: COLORS[0] as string,
      points: defined(samples.map((s) => [s.minute, s.latency.infer.p50])),
    },
    {
      name: 'infer p99',
      color: COLORS[1] as string,
      points: defined(samples.map((s) => [s.minute, s.latency.infer.p99])),
    },
    { name: 'tx p50', color: COLORS[2] as string, points: defined(samples.map((s) => [s.minute, s.latency.tx.p50])) },
    { name: 'tx p99', color: COLORS[3] as string, points: defined(samples.map((s) => [s.minute, s.latency.tx.p99])) },
  ]
  const blocks: Series[] = [
    {
      name: 'mean block time',
      color: COLORS[0] as string,
      points: defined(samples.map((s) => [s.minute, s.blockTimeS])),
    },
  ]
  const panels: Panel[] = [
    { title: 'Resident memory per node (dashed: 2nd-half fit)', yLabel: 'RSS (MB)', series: rss },
    { title: 'V8 heap in use per node', yLabel: 'heap (MB)', series: heap },
    { title: 'RSS of node + model sandboxes', yLabel: 'RSS (MB)', series: tree },
    { title: 'Event-loop delay per node (p99 of each sample)', yLabel: 'delay (ms)', series: loop },
    { title: 'Latency: inference answer, transfer to commit', yLabel: 'latency (ms)', series: latency },
    { title: 'Block time', yLabel: 'seconds per block', series: blocks },
  ]
  const rows = Math.ceil(panels.length / 2)
  const height = rows * PANEL_H + 44
  const verdict = summary.pass ? 'pass' : `FAIL: ${summary.failures.join('; ')}`
  const caption = `soak: ${summary.nodes} nodes, ${fmt(summary.minutes)} min, load ${summary.rate}/s; ${verdict}`
  const body = panels.map((p, i) => panel(p, xMax, (i % 2) * PANEL_W, 30 + Math.floor(i / 2) * PANEL_H)).join('\n')
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">
<style>
.title { font-size: 13px; font-weight: bold; text-anchor: middle }
.label { font-size: 11px; text-anchor: middle }
.xtick { font-size: 10px; text-anchor: middle }
.ytick { font-size: 10px; text-anchor: end; dominant-baseline: middle }
.legend { font-size: 10px; dominant-baseline: middle }
.grid { stroke: #e5e5e5 }
.axis { stroke: #333 }
.caption { font-size: 12px }
</style>
<rect width="100%" height="100%" fill="white"/>
<text x="12" y="18" class="caption">${esc(caption)}</text>
${body}
</svg>
`
}
