// Inference: models, throughput and latency, workers, and a form that runs the digits model on
// an 8×8 drawing and shows the answer with the worker's signed receipt (checked in the browser).
import { useMemo, useRef, useState } from 'preact/hooks'
import {
  ApiError,
  verifyReceiptJson,
  type InferResponseJson,
  type ModelJson,
  type ReceiptCheck,
} from '../../src/api/client.ts'
import type { NodeLive } from './live.ts'
import { useLive } from './live.ts'
import { argmax, DIGIT_SAMPLES } from './digits.ts'
import { amount, clock, errorText } from './format.ts'
import { usePoll } from './poll.ts'
import { Badge, Button, Card, Chart, Field, Notice, Short, Stat, Table } from './ui.tsx'

const PIXELS = 64
const INK = 16

/** Tensor models whose input is one 8×8 image (64 values), e.g. digits-mlp. */
function takesDigits(m: ModelJson): boolean {
  const dims = m.inputs[0]?.dims ?? []
  return m.kind === 'tensor' && dims.reduce<number>((n, d) => n * (d ?? 1), 1) === PIXELS
}

function notAvailable(error: unknown): boolean {
  return error instanceof ApiError && error.status === 404
}

function DigitPad(props: { pixels: number[]; onChange(pixels: number[]): void }) {
  const painting = useRef<number | null>(null)
  const paint = (index: number): void => {
    if (painting.current === null || props.pixels[index] === painting.current) return
    const next = [...props.pixels]
    next[index] = painting.current
    props.onChange(next)
  }
  const cellAt = (e: PointerEvent): number | undefined => {
    const el = document.elementFromPoint(e.clientX, e.clientY) as HTMLElement | null
    const index = el?.dataset.cell
    return index === undefined ? undefined : Number(index)
  }
  return (
    <div
      class="digit-pad"
      role="grid"
      aria-label="8 by 8 drawing pad"
      onPointerDown={(e) => {
        const index = cellAt(e)
        if (index === undefined) return
        painting.current = (props.pixels[index] ?? 0) >= INK / 2 ? 0 : INK
        paint(index)
      }}
      onPointerMove={(e) => {
        const index = cellAt(e)
        if (index !== undefined) paint(index)
      }}
      onPointerUp={() => (painting.current = null)}
      onPointerLeave={() => (painting.current = null)}
    >
      {props.pixels.map((v, i) => (
        <div
          key={i}
          data-cell={i}
          class="pixel"
          style={{ opacity: 0.08 + (0.92 * v) / INK }}
          aria-label={`pixel ${i}: ${v}`}
        />
      ))}
    </div>
  )
}

function Probabilities(props: { values: number[] }) {
  const best = argmax(props.values)
  return (
    <ol class="bars" start={0} data-testid="probabilities">
      {props.values.map((p, i) => (
        <li key={i} class={i === best ? 'best' : undefined}>
          <span class="bar-label">{i}</span>
          <span class="bar" style={{ width: `${Math.max(1, p * 100)}%` }} />
          <span class="bar-value">{(p * 100).toFixed(1)}%</span>
        </li>
      ))}
    </ol>
  )
}

function Receipt(props: { result: InferResponseJson; check: ReceiptCheck | 'unsupported' | undefined }) {
  const { receipt } = props.result
  const check = props.check
  return (
    <div class="receipt" data-testid="receipt">
      <h3>
        Receipt{' '}
        {check === undefined ? (
          <Badge tone="neutral">checking…</Badge>
        ) : check === 'unsupported' ? (
          <Badge tone="warn">cannot check signatures in this browser</Badge>
        ) : check.valid ? (
          <Badge tone="ok" testId="receipt-valid">
            signatures valid
          </Badge>
        ) : (
          <Badge tone="bad">invalid: {check.reason}</Badge>
        )}
      </h3>
      <dl class="facts">
        <dt>worker</dt>
        <dd data-testid="receipt-worker">
          <Short text={receipt.worker} head={20} />
        </dd>
        <dt>gateway</dt>
        <dd>
          <Short text={props.result.gateway} head={20} />
        </dd>
        <dt>fee</dt>
        <dd data-testid="receipt-fee">{amount(receipt.fee)}</dd>
        <dt>execution</dt>
        <dd>
          {receipt.ep} · {receipt.runtime} · {(receipt.computeMicros / 1000).toFixed(2)} ms compute ·{' '}
          {Math.round(props.result.latencyMs)} ms total
        </dd>
        <dt>job id</dt>
        <dd>
          <Short text={receipt.jobId} />
        </dd>
        <dt>receipt id</dt>
        <dd>
          <Short text={receipt.id} />
        </dd>
        <dt>output hash</dt>
        <dd>
          <Short text={receipt.outputHash} />
        </dd>
      </dl>
    </div>
  )
}

function RunModel(props: { live: NodeLive; models: ModelJson[]; token: boolean }) {
  const usable = props.models.filter(takesDigits)
  const [modelId, setModelId] = useState<string | undefined>(undefined)
  const model = usable.find((m) => m.id === modelId) ?? usable.find((m) => m.id === 'digits-mlp') ?? usable[0]
  const [pixels, setPixels] = useState<number[]>([...(DIGIT_SAMPLES[3] ?? [])])
  const [busy, setBusy] = useState(false)
  const [result, setResult] = useState<InferResponseJson | undefined>(undefined)
  const [check, setCheck] = useState<ReceiptCheck | 'unsupported' | undefined>(undefined)
  const [error, setError] = useState<string | undefined>(undefined)
  if (model === undefined) return <p class="empty">No model on this network takes an 8×8 image.</p>
  const run = async (): Promise<void> => {
    setBusy(true)
    setError(undefined)
    setCheck(undefined)
    try {
      const input = model.inputs[0]?.name ?? 'input'
      const answer = await props.live.client.infer({
        model: model.id,
        inputs: { [input]: { dims: [1, PIXELS], type: 'float32', data: pixels } },
      })
      setResult(answer)
      verifyReceiptJson(answer.receipt).then(setCheck, () => setCheck('unsupported'))
    } catch (err) {
      setResult(undefined)
      setError(
        err instanceof ApiError && err.status === 401
          ? 'The node refused the operator token: set it on the Accounts page (this form spends the node’s funds).'
          : errorText(err),
      )
    } finally {
      setBusy(false)
    }
  }
  const output = result === undefined ? undefined : Object.values(result.outputs)[0]
  const probabilities = (output?.data ?? []).map(Number)
  return (
    <div class="run">
      <div class="run-input">
        <Field label="Model">
          <select value={model.id} onChange={(e) => setModelId((e.target as HTMLSelectElement).value)}>
            {usable.map((m) => (
              <option key={m.id} value={m.id}>
                {m.id} (fee {amount(m.price)})
              </option>
            ))}
          </select>
        </Field>
        <DigitPad pixels={pixels} onChange={setPixels} />
        <div class="samples" aria-label="sample digits">
          {DIGIT_SAMPLES.map((sample, digit) => (
            <button
              key={digit}
              type="button"
              class="sample"
              data-testid={`digit-sample-${digit}`}
              onClick={() => setPixels([...sample])}
            >
              {digit}
            </button>
          ))}
          <button type="button" class="sample" onClick={() => setPixels(new Array<number>(PIXELS).fill(0))}>
            clear
          </button>
        </div>
        <p class="muted">Pick a sample or draw: tap or drag on the pad (drag over ink to erase).</p>
        {props.token ? null : (
          <Notice tone="warn">Runs are paid by this node: set the operator token on the Accounts page.</Notice>
        )}
        <Button onClick={() => void run()} busy={busy} data-testid="run-model">
          Run {model.id}
        </Button>
      </div>
      <div class="run-output">
        {error === undefined ? null : (
          <Notice tone="bad" testId="run-error">
            {error}
          </Notice>
        )}
        {result === undefined ? (
          <p class="empty">The prediction and the worker’s receipt appear here.</p>
        ) : (
          <>
            <div class="prediction">
              <span class="muted">prediction</span>
              <strong data-testid="prediction">{argmax(probabilities)}</strong>
            </div>
            <Probabilities values={probabilities} />
            <Receipt result={result} check={check} />
          </>
        )}
      </div>
    </div>
  )
}

export function Inference(props: { live: NodeLive }) {
  const s = useLive(props.live)
  const models = usePoll((signal) => props.live.client.models({ signal }), 15_000)
  const workers = usePoll((signal) => props.live.client.workers({ signal }), 5_000)
  const stats = usePoll((signal) => props.live.client.inferenceStats({ signal }), 5_000)
  const chartData = useMemo(
    () => [s.jobSeries.t, s.jobSeries.perSecond, s.jobSeries.latencyMs] as [number[], number[], Array<number | null>],
    [s.jobSeries],
  )
  if (notAvailable(models.error)) return <Notice tone="warn">This node does not serve inference.</Notice>
  const st = stats.value
  return (
    <div class="grid">
      <Card title="Run a model" wide>
        <RunModel live={props.live} models={models.value?.data ?? []} token={s.token !== undefined} />
      </Card>
      <Card title="Jobs">
        <div class="stats">
          <Stat label="jobs" value={st?.jobs ?? '–'} testId="jobs-total" />
          <Stat label="jobs/s" value={st === undefined ? '–' : st.jobsPerSecond.toFixed(2)} />
          <Stat label="p50 latency" value={st === undefined ? '–' : `${Math.round(st.latencyMs.p50)} ms`} />
          <Stat label="p99 latency" value={st === undefined ? '–' : `${Math.round(st.latencyMs.p99)} ms`} />
          <Stat label="audits" value={st?.audits ?? '–'} />
          <Stat label="slashes" value={st?.slashes ?? '–'} />
        </div>
        <Chart
          data={chartData}
          xLabel="time"
          time
          series={[
            { label: 'jobs/s', color: '#0a7bbd' },
            { label: 'latency', color: '#d9822b', scale: 'y2' },
          ]}
          y2Unit=" ms"
          testId="jobs-chart"
        />
      </Card>
      <Card title="Models">
        <Table
          testId="models"
          rows={models.value?.data ?? []}
          rowKey={(m) => m.cid}
          empty={models.value === undefined ? 'loading…' : 'no models registered'}
          columns={[
            { label: 'model', render: (m) => <strong>{m.id}</strong> },
            { label: 'kind', render: (m) => m.kind },
            { label: 'fee', render: (m) => amount(m.price), numeric: true },
            { label: 'workers', render: (m) => m.workers, numeric: true },
            { label: 'cid', render: (m) => <Short text={m.cid} head={10} /> },
          ]}
        />
      </Card>
      {st?.badModels !== undefined && st.badModels.length > 0 && (
        <Card title="Models held back" wide>
          <Table
            testId="bad-models"
            rows={st.badModels}
            rowKey={(b) => b.cid}
            empty="none"
            columns={[
              { label: 'model', render: (b) => <Short text={b.cid} head={10} /> },
              { label: 'limit broken', render: (b) => <Badge tone="warn">{b.reason}</Badge> },
              { label: 'failures', render: (b) => b.failures, numeric: true },
              { label: 'retry at', render: (b) => clock(b.retryAt) },
            ]}
          />
        </Card>
      )}
      <Card title="Workers" wide>
        <Table
          testId="workers"
          rows={workers.value?.workers ?? []}
          rowKey={(w) => w.did}
          empty={workers.value === undefined ? 'loading…' : 'no workers'}
          columns={[
            { label: 'worker', render: (w) => <Short text={w.did} head={16} /> },
            { label: 'EP', render: (w) => w.ep },
            { label: 'bonded', render: (w) => amount(w.bonded), numeric: true },
            { label: 'jobs', render: (w) => w.jobs, numeric: true },
            { label: 'jobs/s', render: (w) => w.throughput.toFixed(1), numeric: true },
            { label: 'reputation', render: (w) => w.reputation.toFixed(2), numeric: true },
            { label: 'streak', render: (w) => w.streak, numeric: true },
            {
              label: 'status',
              render: (w) =>
                w.quarantined ? (
                  <Badge tone="warn">quarantined</Badge>
                ) : w.schedulable ? (
                  <Badge tone="ok">schedulable</Badge>
                ) : (
                  <Badge tone="neutral">idle</Badge>
                ),
            },
          ]}
        />
      </Card>
      <Card title="Recent jobs" wide>
        <Table
          rows={s.jobs}
          rowKey={(j) => j.id}
          empty="no jobs since the page opened"
          columns={[
            { label: 'job', render: (j) => <Short text={j.id} head={10} /> },
            { label: 'model', render: (j) => j.model },
            { label: 'worker', render: (j) => <Short text={j.worker} /> },
            { label: 'latency', render: (j) => `${Math.round(j.latencyMs)} ms`, numeric: true },
            { label: 'fee', render: (j) => amount(j.fee), numeric: true },
            { label: 'result', render: (j) => <Badge tone={j.ok ? 'ok' : 'bad'}>{j.ok ? 'ok' : 'failed'}</Badge> },
          ]}
        />
      </Card>
    </div>
  )
}
