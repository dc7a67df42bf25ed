// Inference: models, throughput and latency, workers, model fetches, a form that runs the digits
// model on an 8×8 drawing and shows the answer with the worker's signed receipt (checked in the
// browser), and a chat with a language model whose answer streams in as the worker writes it.
import { useMemo, useRef, useState } from 'preact/hooks'
import {
  ApiError,
  verifyReceiptJson,
  type ChatStreamResult,
  type FetchJson,
  type InferResponseJson,
  type ModelJson,
  type ReceiptCheck,
} from '../../src/api/client.ts'
import type { NodeLive } from './live.ts'
import { useLive } from './live.ts'
import { argmax, DIGIT_SAMPLES } from './digits.ts'
import { amount, clock, errorText, seconds, size } from './format.ts'
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

const TOKEN_REFUSED =
  'The node refused the operator token: set it on the Accounts page (this form spends the node’s funds).'

/** A checked number field: undefined when empty, a message when out of range. */
function numberField(text: string, label: string, min: number, max: number, integer: boolean): number | undefined {
  if (text.trim() === '') return undefined
  const value = Number(text)
  if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value)))
    throw new Error(`${label} must be ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}`)
  return value
}

function Chat(props: { live: NodeLive; models: ModelJson[]; token: boolean }) {
  const lms = props.models.filter((m) => m.kind === 'lm')
  const [modelId, setModelId] = useState<string | undefined>(undefined)
  const model = lms.find((m) => m.id === modelId) ?? lms[0]
  const [prompt, setPrompt] = useState('')
  const [temperature, setTemperature] = useState('0.7')
  const [maxTokens, setMaxTokens] = useState('64')
  const [answer, setAnswer] = useState('')
  const [result, setResult] = useState<(ChatStreamResult & { ms: number }) | undefined>(undefined)
  const [check, setCheck] = useState<ReceiptCheck | 'unsupported' | undefined>(undefined)
  const [error, setError] = useState<string | undefined>(undefined)
  const running = useRef<AbortController | null>(null)
  const [busy, setBusy] = useState(false)
  if (model === undefined) return <p class="empty">No language model is registered on this network.</p>
  const send = async (): Promise<void> => {
    setError(undefined)
    setResult(undefined)
    setCheck(undefined)
    let request
    try {
      if (prompt.trim() === '') throw new Error('Write a message first.')
      const temp = numberField(temperature, 'temperature', 0, 5, false)
      const max = numberField(maxTokens, 'max tokens', 1, model.contextLength ?? 4096, true)
      request = {
        model: model.id,
        messages: [{ role: 'user' as const, content: prompt }],
        ...(temp === undefined ? {} : { temperature: temp }),
        ...(max === undefined ? {} : { max_tokens: max }),
      }
    } catch (err) {
      setError(errorText(err))
      return
    }
    const abort = new AbortController()
    running.current = abort
    setBusy(true)
    setAnswer('')
    const started = performance.now()
    let text = ''
    try {
      const out = await props.live.client.chatStream(request, {
        signal: abort.signal,
        onText: (piece) => {
          text += piece
          setAnswer(text)
        },
      })
      setAnswer(out.text)
      setResult({ ...out, ms: performance.now() - started })
      const receipt = out.donghae?.receipt
      if (receipt !== undefined) verifyReceiptJson(receipt).then(setCheck, () => setCheck('unsupported'))
    } catch (err) {
      if (!abort.signal.aborted)
        setError(err instanceof ApiError && err.status === 401 ? TOKEN_REFUSED : errorText(err))
    } finally {
      running.current = null
      setBusy(false)
    }
  }
  const extra = result?.donghae
  const usage = result?.usage
  return (
    <div class="run">
      <div class="run-input">
        <Field label="Model">
          <select value={model.id} onChange={(e) => setModelId((e.target as HTMLSelectElement).value)}>
            {lms.map((m) => (
              <option key={m.id} value={m.id}>
                {m.id} ({amount(m.price)} per token)
              </option>
            ))}
          </select>
        </Field>
        <Field label="Message">
          <textarea
            name="prompt"
            data-testid="chat-prompt"
            rows={3}
            placeholder="Call me Ishmael."
            value={prompt}
            onInput={(e) => setPrompt((e.target as HTMLTextAreaElement).value)}
          />
        </Field>
        <div class="row">
          <Field label="Temperature">
            <input
              name="temperature"
              inputMode="decimal"
              value={temperature}
              onInput={(e) => setTemperature((e.target as HTMLInputElement).value)}
            />
          </Field>
          <Field label="Max tokens">
            <input
              name="max_tokens"
              inputMode="numeric"
              value={maxTokens}
              onInput={(e) => setMaxTokens((e.target as HTMLInputElement).value)}
            />
          </Field>
        </div>
        {props.token ? null : (
          <Notice tone="warn">Answers are paid by this node: set the operator token on the Accounts page.</Notice>
        )}
        <div class="row">
          <Button onClick={() => void send()} busy={busy} data-testid="chat-send">
            Send
          </Button>
          {busy ? (
            <button type="button" class="button secondary" onClick={() => running.current?.abort()}>
              Stop
            </button>
          ) : null}
        </div>
      </div>
      <div class="run-output">
        {error === undefined ? null : (
          <Notice tone="bad" testId="chat-error">
            {error}
          </Notice>
        )}
        {answer === '' && !busy ? (
          <p class="empty">The answer streams in here as the worker writes it.</p>
        ) : (
          <p class="chat-answer" data-testid="chat-answer" aria-live="polite">
            {answer}
            {busy ? <span class="caret" aria-hidden="true" /> : null}
          </p>
        )}
        {result === undefined ? null : (
          <dl class="facts" data-testid="chat-result">
            <dt>worker</dt>
            <dd data-testid="chat-worker">
              {extra?.worker === undefined ? '–' : <Short text={extra.worker} head={20} />}
            </dd>
            <dt>tokens</dt>
            <dd data-testid="chat-usage">
              {usage === undefined
                ? '–'
                : `${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion = ${usage.total_tokens}`}
              {result.finishReason === undefined ? '' : ` (${result.finishReason})`}
            </dd>
            <dt>fee</dt>
            <dd data-testid="chat-fee">{amount(extra?.fee)}</dd>
            <dt>time</dt>
            <dd>
              {extra?.ttftMs === undefined ? '' : `first token ${Math.round(extra.ttftMs)} ms · `}
              {Math.round(result.ms)} ms in all
            </dd>
            <dt>receipt</dt>
            <dd data-testid="chat-receipt">
              {extra?.receipts[0] === undefined ? '–' : <Short text={extra.receipts[0]} />}{' '}
              {extra?.receipt === undefined || check === undefined ? null : check === 'unsupported' ? (
                <Badge tone="warn">not checked</Badge>
              ) : check.valid ? (
                <Badge tone="ok" testId="chat-receipt-valid">
                  signatures valid
                </Badge>
              ) : (
                <Badge tone="bad">invalid: {check.reason}</Badge>
              )}
            </dd>
          </dl>
        )}
      </div>
    </div>
  )
}

const FETCH_TONE = { fetching: 'neutral', done: 'ok', failed: 'bad' } as const

/** The newer of two views of one model's fetch: a later start, then an end, then more bytes. */
function newer(a: FetchJson, b: FetchJson): FetchJson {
  if (a.startedAt !== b.startedAt) return a.startedAt > b.startedAt ? a : b
  if ((a.state === 'fetching') !== (b.state === 'fetching')) return a.state === 'fetching' ? b : a
  return a.bytes >= b.bytes ? a : b
}

function FetchProgress(props: { fetch: FetchJson }) {
  const { bytes, totalBytes } = props.fetch
  if (totalBytes === undefined || totalBytes <= 0) return <span>{size(bytes)}</span>
  const share = Math.min(1, bytes / totalBytes)
  return (
    <span class="meter-line">
      <span
        class="meter"
        role="progressbar"
        aria-valuemin={0}
        aria-valuemax={totalBytes}
        aria-valuenow={bytes}
        aria-label={`${props.fetch.name}: ${Math.floor(share * 100)}%`}
      >
        <span style={{ width: `${share * 100}%` }} />
      </span>
      <span class="meter-text">
        {Math.floor(share * 100)}% {size(bytes)} / {size(totalBytes)}
      </span>
    </span>
  )
}

/** Model files this node fetches from its peers: live from `model.fetch` events, polled each second while one runs. */
function ModelFetches(props: { live: NodeLive; fromEvents: FetchJson[] }) {
  const [active, setActive] = useState(false)
  const polled = usePoll(
    async (signal) => {
      const { fetches } = await props.live.client.fetches({ signal })
      setActive(fetches.some((f) => f.state === 'fetching'))
      return fetches
    },
    active || props.fromEvents.some((f) => f.state === 'fetching') ? 1_000 : 10_000,
  )
  const byModel = new Map<string, FetchJson>()
  for (const f of [...(polled.value ?? []), ...props.fromEvents]) {
    const known = byModel.get(f.model)
    byModel.set(f.model, known === undefined ? f : newer(known, f))
  }
  const rows = [...byModel.values()].sort((a, b) => b.startedAt - a.startedAt)
  const now = Date.now()
  return (
    <Table
      testId="fetches"
      rows={rows}
      rowKey={(f) => f.model}
      empty={
        polled.value === undefined && polled.error === undefined
          ? 'loading…'
          : 'no model fetched since the node started'
      }
      columns={[
        {
          label: 'model',
          render: (f) => (
            <span title={f.model}>
              <strong>{f.name}</strong>
            </span>
          ),
        },
        { label: 'progress', render: (f) => <FetchProgress fetch={f} /> },
        {
          label: 'peers',
          numeric: true,
          render: (f) => {
            const peers = Object.entries(f.fromPeers).sort(([, a], [, b]) => b - a)
            return (
              <span
                data-testid="fetch-peers"
                title={
                  peers.length === 0
                    ? 'no blocks from peers yet'
                    : peers.map(([did, n]) => `${did}: ${n} blocks`).join('\n')
                }
              >
                {peers.length}
              </span>
            )
          },
        },
        {
          label: 'state',
          render: (f) => (
            <span title={f.error}>
              <Badge tone={FETCH_TONE[f.state]}>{f.state}</Badge>{' '}
              <span class="muted">{seconds(Math.max(0, (f.finishedAt ?? now) - f.startedAt) / 1000)}</span>
            </span>
          ),
        },
      ]}
    />
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
      <Card title="Chat with a language model" wide>
        <Chat live={props.live} models={models.value?.data ?? []} token={s.token !== undefined} />
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
      <Card title="Model fetches">
        <ModelFetches live={props.live} fromEvents={s.fetches} />
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
