/**
 * docs/figures/cost.svg from the cost bench's readings: four line charts in hand-written SVG
 * (CPU and resident memory of one node against validators, and against load on 4 validators).
 * The x axes are categorical (evenly spaced, labelled with the measured points).
 */
import type { DhtReading, NetworkRun, Reading } from './cost.bench.ts'
import { esc, fmt, niceMax } from './svg.ts'

interface Series {
  name: string
  color: string
  /** y per x category; undefined where not measured. */
  values: Array<number | undefined>
  /** Points drawn hollow: a loaded window in which the chain committed no block. */
  stalled?: boolean[]
}

interface Panel {
  title: string
  xLabel: string
  yLabel: string
  categories: string[]
  series: Series[]
}

const WIDTH = 840
const PANEL_W = 400
const PANEL_H = 260
const MARGIN = { left: 58, right: 16, top: 46, bottom: 48 }
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd']

function panel(p: Panel, x0: number, y0: number): string {
  const w = PANEL_W - MARGIN.left - MARGIN.right
  const h = PANEL_H - MARGIN.top - MARGIN.bottom
  const left = x0 + MARGIN.left
  const top = y0 + MARGIN.top
  const all = p.series.flatMap((s) => s.values.filter((v): v is number => v !== undefined))
  const yMax = niceMax(Math.max(0, ...all))
  const xAt = (i: number): number => left + (p.categories.length === 1 ? w / 2 : (i * w) / (p.categories.length - 1))
  const yAt = (v: number): number => top + h - (v / yMax) * h
  const out: string[] = []
  out.push(`<text x="${x0 + PANEL_W / 2}" y="${y0 + 18}" class="title">${esc(p.title)}</text>`)
  for (let k = 0; k <= 5; k++) {
    const v = (yMax * k) / 5
    const y = yAt(v).toFixed(1)
    out.push(`<line x1="${left}" x2="${left + w}" y1="${y}" y2="${y}" class="grid"/>`)
    out.push(`<text x="${left - 6}" y="${y}" class="ytick">${fmt(v)}</text>`)
  }
  p.categories.forEach((c, i) => {
    out.push(`<text x="${xAt(i).toFixed(1)}" y="${top + h + 16}" class="xtick">${esc(c)}</text>`)
  })
  out.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${top + h}" class="axis"/>`)
  out.push(`<line x1="${left}" x2="${left + w}" y1="${top + h}" y2="${top + h}" class="axis"/>`)
  out.push(`<text x="${left + w / 2}" y="${top + h + 36}" class="label">${esc(p.xLabel)}</text>`)
  const ly = top + h / 2
  out.push(
    `<text x="${x0 + 14}" y="${ly}" class="label" transform="rotate(-90 ${x0 + 14} ${ly})">${esc(p.yLabel)}</text>`,
  )
  let legendX = left
  p.series.forEach((s) => {
    const points = s.values
      .map((v, i) => (v === undefined ? undefined : `${xAt(i).toFixed(1)},${yAt(v).toFixed(1)}`))
      .filter((v): v is string => v !== undefined)
    if (points.length > 1)
      out.push(`<polyline points="${points.join(' ')}" fill="none" stroke="${s.color}" stroke-width="2"/>`)
    s.values.forEach((v, i) => {
      if (v === undefined) return
      const cx = xAt(i).toFixed(1)
      const cy = yAt(v).toFixed(1)
      const stalled = s.stalled?.[i] === true
      const paint = stalled ? `fill="white" stroke="${s.color}" stroke-width="2"` : `fill="${s.color}"`
      const tip = `${s.name}: ${fmt(v)}${stalled ? ' (no block committed)' : ''}`
      out.push(`<circle cx="${cx}" cy="${cy}" r="5" ${paint}><title>${esc(tip)}</title></circle>`)
    })
    // legend: one row between the title and the plot
    const legendY = y0 + 32
    out.push(
      `<line x1="${legendX}" x2="${legendX + 16}" y1="${legendY}" y2="${legendY}" stroke="${s.color}" stroke-width="2"/>`,
    )
    out.push(`<text x="${legendX + 21}" y="${legendY + 4}" class="legend">${esc(s.name)}</text>`)
    legendX += 21 + s.name.length * 6 + 14
  })
  return out.join('\n')
}

const isStalled = (r: Reading | undefined): boolean => r !== undefined && r.load > 0 && r.blocks === 0

/** The SVG document. */
export function costSvg(runs: readonly NetworkRun[], dht: readonly DhtReading[] = []): string {
  const at = (n: number, load: number): Reading | undefined =>
    runs.find((r) => r.validators === n)?.readings.find((r) => r.load === load)
  const validators = runs.map((r) => r.validators)
  const loadOfValidators = Math.max(0, ...runs.flatMap((r) => r.readings.map((x) => x.load)).filter((l) => l <= 10))
  const four = runs.find((r) => r.validators === 4)?.readings ?? []
  const loads = four.map((r) => r.load)
  const vPanel = (metric: 'validatorCpu' | 'validatorRss', yLabel: string, title: string): Panel => ({
    title,
    xLabel: 'validator node processes (one machine, 2 cores)',
    yLabel,
    categories: validators.map(String),
    series: [
      { name: 'idle', color: COLORS[0] as string, values: validators.map((n) => at(n, 0)?.[metric]) },
      {
        name: `${loadOfValidators} transfers/s`,
        color: COLORS[1] as string,
        values: validators.map((n) => at(n, loadOfValidators)?.[metric]),
        stalled: validators.map((n) => isStalled(at(n, loadOfValidators))),
      },
    ],
  })
  const lPanel = (
    metrics: ['validatorCpu', 'workerCpu'] | ['validatorRss', 'workerRss'],
    yLabel: string,
    title: string,
  ): Panel => ({
    title,
    xLabel: 'transfers/s offered (4 validators)',
    yLabel,
    categories: loads.map(String),
    series: [
      {
        name: 'no models',
        color: COLORS[0] as string,
        values: four.map((r) => r[metrics[0]]),
        stalled: four.map(isStalled),
      },
      { name: 'worker: demo models + sandboxes', color: COLORS[2] as string, values: four.map((r) => r[metrics[1]]) },
    ],
  })
  const panels = [
    vPanel('validatorCpu', 'CPU, % of one core', 'CPU of one node vs validators'),
    vPanel('validatorRss', 'resident memory, MB', 'Memory of one node vs validators'),
    lPanel(['validatorCpu', 'workerCpu'], 'CPU, % of one core', 'CPU of one node vs load'),
    lPanel(['validatorRss', 'workerRss'], 'resident memory, MB', 'Memory of one node vs load'),
  ]
  const height = 2 * PANEL_H + 56
  const notes = [
    'Donghae cost bench (node bench/run.ts --only cost): one node = mean over the validator processes that serve no models.',
    runs.some((run) => run.readings.some(isStalled))
      ? 'Hollow point: the chain committed no block during that loaded window (consensus stalled).'
      : '',
    runs.some((run) => run.error !== undefined)
      ? `Not measured: ${runs
          .filter((run) => run.error !== undefined)
          .map((run) => `${run.validators} validators`)
          .join(', ')} (see the bench output).`
      : '',
    dht.length === 0
      ? ''
      : `DHT (js-libp2p, one process): ${dht.map((d) => `${d.nodes} nodes ${(d.perNodeKiB / 1024).toFixed(1)} MB/node`).join(', ')}.`,
  ].filter((t) => t !== '')
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    '<style>',
    '  .title { font-size: 14px; font-weight: bold; text-anchor: middle; }',
    '  .label { font-size: 11px; text-anchor: middle; fill: #333; }',
    '  .xtick { font-size: 11px; text-anchor: middle; fill: #333; }',
    '  .ytick { font-size: 11px; text-anchor: end; dominant-baseline: middle; fill: #333; }',
    '  .legend { font-size: 11px; fill: #333; }',
    '  .note { font-size: 11px; fill: #555; }',
    '  .grid { stroke: #e5e5e5; stroke-width: 1; }',
    '  .axis { stroke: #333; stroke-width: 1; }',
    '</style>',
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
    panel(panels[0] as Panel, 0, 0),
    panel(panels[1] as Panel, PANEL_W + 20, 0),
    panel(panels[2] as Panel, 0, PANEL_H),
    panel(panels[3] as Panel, PANEL_W + 20, PANEL_H),
    ...notes.map((t, i) => `<text x="10" y="${2 * PANEL_H + 14 + i * 14}" class="note">${esc(t)}</text>`),
    '</svg>',
    '',
  ].join('\n')
}
