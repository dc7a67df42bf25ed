// Resources: what the node costs its machine over the last hour — CPU, resident memory, event-loop
// delay and block interval — as the node samples them every few seconds (GET /v1/node/resources,
// the same sources as the process metrics at /metrics). Each chart is ui.tsx's uPlot Chart; the
// page asks only for the samples newer than the last one it has, every few seconds.
import { useEffect, useMemo, useState } from 'preact/hooks'
import type uPlot from 'uplot'
import type { ResourceSample, ResourcesView } from '../../src/api/resources-api.ts'
import type { NodeLive } from './live.ts'
import { errorText, size } from './format.ts'
import { Card, Chart, Notice, Stat } from './ui.tsx'

const POLL_MS = 3_000

export const cpuText = (s: ResourceSample): string => `${(s.cpu * 100).toFixed(1)} %`
export const rssText = (s: ResourceSample): string => size(s.rssBytes)
export const loopText = (s: ResourceSample): string => `${s.eventLoopDelayMs.toFixed(1)} ms`
export const blockText = (s: ResourceSample): string =>
  s.blockIntervalMs === null ? '–' : `${(s.blockIntervalMs / 1000).toFixed(2)} s`

interface Figure {
  id: 'cpu' | 'memory' | 'event-loop' | 'block-interval'
  title: string
  label: string
  hint: string
  color: string
  value: (s: ResourceSample) => number | null
  text: (s: ResourceSample) => string
}

const FIGURES: readonly Figure[] = [
  {
    id: 'cpu',
    title: 'CPU (% of one core)',
    label: 'CPU',
    hint: 'CPU time over each interval, in percent of one core (process_cpu_seconds_total)',
    color: '#2f81f7',
    value: (s) => s.cpu * 100,
    text: cpuText,
  },
  {
    id: 'memory',
    title: 'Resident memory (MB)',
    label: 'RSS',
    hint: 'resident set size (process_resident_memory_bytes)',
    color: '#8250df',
    value: (s) => s.rssBytes / 1e6,
    text: rssText,
  },
  {
    id: 'event-loop',
    title: 'Event-loop delay (ms, p99)',
    label: 'p99',
    hint: '99th percentile of the event-loop delay over each interval (nodejs_eventloop_lag_p99_seconds)',
    color: '#bf8700',
    value: (s) => s.eventLoopDelayMs,
    text: loopText,
  },
  {
    id: 'block-interval',
    title: 'Block interval (s)',
    label: 'interval',
    hint: 'mean time between the blocks committed in each interval; a stall shows as a growing interval',
    color: '#1a7f37',
    value: (s) => (s.blockIntervalMs === null ? null : s.blockIntervalMs / 1000),
    text: blockText,
  },
]

/** The samples of the last window, kept up to date by asking for the newer ones every few seconds. */
function useResources(live: NodeLive): { samples: ResourceSample[]; view?: ResourcesView; error?: string } {
  const [state, setState] = useState<{ samples: ResourceSample[]; view?: ResourcesView; error?: string }>({
    samples: [],
  })
  useEffect(() => {
    const abort = new AbortController()
    let last: number | undefined
    let kept: ResourceSample[] = []
    const run = async (): Promise<void> => {
      try {
        const url = new URL('/v1/node/resources', live.client.baseUrl)
        if (last !== undefined) url.searchParams.set('since', String(last))
        const res = await fetch(url, { signal: abort.signal })
        if (!res.ok) throw new Error(`the node answers HTTP ${res.status} for ${url.pathname}`)
        const view = (await res.json()) as ResourcesView
        const newest = view.samples.at(-1)
        if (newest !== undefined) last = newest.at
        const from = (newest?.at ?? Date.now()) - view.windowMs
        kept = [...kept, ...view.samples].filter((s) => s.at > from)
        if (!abort.signal.aborted) setState({ samples: kept, view })
      } catch (err) {
        if (!abort.signal.aborted) setState((s) => ({ ...s, error: errorText(err) }))
      }
    }
    void run()
    const timer = setInterval(() => void run(), POLL_MS)
    return () => {
      abort.abort()
      clearInterval(timer)
    }
  }, [live])
  return state
}

function FigureCard(props: { figure: Figure; samples: ResourceSample[] }) {
  const { figure, samples } = props
  const latest = samples.at(-1)
  const data = useMemo(
    () => [samples.map((s) => s.at / 1000), samples.map((s) => figure.value(s))] as uPlot.AlignedData,
    [samples],
  )
  const points = samples.filter((s) => figure.value(s) !== null).length
  return (
    <Card title={figure.title}>
      <div class="stats">
        <Stat
          label={latest === undefined ? 'now' : `at ${new Date(latest.at).toLocaleTimeString()}`}
          value={latest === undefined ? '–' : figure.text(latest)}
          hint={figure.hint}
          testId={`resources-${figure.id}-value`}
        />
      </div>
      <div data-testid={`resources-${figure.id}`} data-points={points} data-at={latest?.at ?? ''}>
        <Chart
          data={data}
          series={[{ label: figure.label, color: figure.color }]}
          xLabel="time"
          time
          height={140}
          testId={`resources-${figure.id}-chart`}
        />
      </div>
    </Card>
  )
}

export function Resources(props: { live: NodeLive }) {
  const { samples, view, error } = useResources(props.live)
  return (
    <div class="resources">
      {error !== undefined ? (
        <Notice tone="bad" testId="resources-error">
          {error}
        </Notice>
      ) : null}
      {samples.length === 0 ? (
        <p class="empty" data-testid="resources-empty">
          The node samples its resources every {view === undefined ? 'few' : view.intervalMs / 1000} seconds: the charts
          fill in as samples come.
        </p>
      ) : null}
      <div class="grid">
        {FIGURES.map((figure) => (
          <FigureCard key={figure.id} figure={figure} samples={samples} />
        ))}
      </div>
    </div>
  )
}
