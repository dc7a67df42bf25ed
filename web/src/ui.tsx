// The dashboard's small component library: cards, stats, badges, tables that turn into cards on
// a phone, form fields, a uPlot chart, and shortened identifiers that copy on click.
import type { ButtonHTMLAttributes, ComponentChildren } from 'preact'
import { useEffect, useRef, useState } from 'preact/hooks'
import uPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'

export function Card(props: {
  title: string
  actions?: ComponentChildren
  children: ComponentChildren
  wide?: boolean
}) {
  return (
    <section class={props.wide === true ? 'card wide' : 'card'}>
      <header class="card-head">
        <h2>{props.title}</h2>
        {props.actions}
      </header>
      {props.children}
    </section>
  )
}

export function Stat(props: { label: string; value: ComponentChildren; hint?: string; testId?: string }) {
  return (
    <div class="stat" title={props.hint}>
      <div class="stat-label">{props.label}</div>
      <div class="stat-value" data-testid={props.testId}>
        {props.value}
      </div>
    </div>
  )
}

export type Tone = 'ok' | 'warn' | 'bad' | 'neutral'

export function Badge(props: { tone: Tone; children: ComponentChildren; testId?: string }) {
  return (
    <span class={`badge ${props.tone}`} data-testid={props.testId}>
      {props.children}
    </span>
  )
}

/** An identifier shown by its ends; the whole value is in the tooltip and copied on click. */
export function Short(props: { text: string; head?: number; tail?: number }) {
  const { text } = props
  const head = props.head ?? 12
  const tail = props.tail ?? 6
  const [copied, setCopied] = useState(false)
  const shown = text.length > head + tail + 1 ? `${text.slice(0, head)}…${text.slice(-tail)}` : text
  const copy = (): void => {
    void navigator.clipboard?.writeText(text).then(() => {
      setCopied(true)
      setTimeout(() => setCopied(false), 1200)
    })
  }
  return (
    <button type="button" class="short" title={`${text} (click to copy)`} onClick={copy}>
      <code>{copied ? 'copied' : shown}</code>
    </button>
  )
}

export interface Column<T> {
  label: string
  render: (row: T) => ComponentChildren
  /** Right-aligned numbers. */
  numeric?: boolean
}

/** A table; under 640 px wide each row becomes a small card with the labels inline (CSS). */
export function Table<T>(props: {
  columns: Column<T>[]
  rows: readonly T[]
  rowKey: (row: T) => string
  empty: string
  testId?: string
}) {
  if (props.rows.length === 0) return <p class="empty">{props.empty}</p>
  return (
    <div class="table-wrap">
      <table class="table" data-testid={props.testId}>
        <thead>
          <tr>
            {props.columns.map((c) => (
              <th class={c.numeric === true ? 'num' : undefined}>{c.label}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.rows.map((row) => (
            <tr key={props.rowKey(row)}>
              {props.columns.map((c) => (
                <td data-label={c.label} class={c.numeric === true ? 'num' : undefined}>
                  {c.render(row)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}

export function Field(props: { label: string; children: ComponentChildren; hint?: string }) {
  return (
    <label class="field">
      <span class="field-label">{props.label}</span>
      {props.children}
      {props.hint === undefined ? null : <span class="field-hint">{props.hint}</span>}
    </label>
  )
}

export function Notice(props: { tone: Tone; children: ComponentChildren; testId?: string }) {
  return (
    <p class={`notice ${props.tone}`} data-testid={props.testId} role={props.tone === 'bad' ? 'alert' : 'status'}>
      {props.children}
    </p>
  )
}

export interface ChartSeries {
  label: string
  color: string
  /** Axis: 'y' (left) or 'y2' (right). @default 'y' */
  scale?: 'y' | 'y2'
}

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback
}

/** A uPlot line chart that follows its container's width and updates in place. */
export function Chart(props: {
  data: uPlot.AlignedData
  series: ChartSeries[]
  xLabel: string
  time?: boolean
  height?: number
  testId?: string
  yUnit?: string
  y2Unit?: string
}) {
  const box = useRef<HTMLDivElement>(null)
  const plot = useRef<uPlot | null>(null)
  const height = props.height ?? 180
  useEffect(() => {
    const el = box.current
    if (el === null) return
    const fg = cssVar('--muted', '#888')
    const grid = cssVar('--line', '#8884')
    const axis = (scale: string, unit = ''): uPlot.Axis => ({
      scale,
      stroke: fg,
      grid: { stroke: grid, width: 1 },
      ticks: { stroke: grid, width: 1 },
      size: 48,
      values: (_u, splits) => splits.map((v) => `${Number(v.toPrecision(3))}${unit}`),
      ...(scale === 'y2' ? { side: 1, grid: { show: false } } : {}),
    })
    const hasY2 = props.series.some((s) => s.scale === 'y2')
    const options: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      scales: { x: { time: props.time === true } },
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      series: [
        { label: props.xLabel },
        ...props.series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          scale: s.scale ?? 'y',
          points: { show: false },
          spanGaps: true,
        })),
      ],
      axes: [
        { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } },
        axis('y', props.yUnit),
        ...(hasY2 ? [axis('y2', props.y2Unit)] : []),
      ],
    }
    plot.current = new uPlot(options, props.data, el)
    const observer = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(200, el.clientWidth), height }))
    observer.observe(el)
    return () => {
      observer.disconnect()
      plot.current?.destroy()
      plot.current = null
    }
    // Built once; data updates go through setData below.
  }, [])
  useEffect(() => {
    plot.current?.setData(props.data)
  }, [props.data])
  return <div class="chart" ref={box} data-testid={props.testId} />
}

export function Button(props: ButtonHTMLAttributes<HTMLButtonElement> & { busy?: boolean }) {
  const { busy, children, ...rest } = props
  return (
    <button type="button" class="button" {...rest} disabled={busy === true || props.disabled === true}>
      {busy === true ? '…' : children}
    </button>
  )
}
