// FL Alliance (issue 15, part 3): federated tasks on chain (status, rule, round, who joined, the
// pool), and for a chosen task the global model's accuracy per round (uPlot), its rounds newest
// first (proposers and voters, the updates and votes, the settlement: pay and slashes) and its
// participants. Polled from GET /v1/fl/tasks[/{id}]: the event stream does not carry them.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import uPlot from 'uplot'
import type { FlParticipantJson, FlRoundJson, FlTaskDetailJson, FlTaskJson } from '../../src/api/fl-api.ts'
import type { NodeLive } from './live.ts'
import { amount, errorText } from './format.ts'
import { usePoll } from './poll.ts'
import { Badge, Card, Notice, Short, Stat, Table, type Tone } from './ui.tsx'

const LIST_POLL_MS = 4_000
/** Rounds last a few seconds on a devnet: the chosen task is read more often. */
const TASK_POLL_MS = 3_000

const STATUS_TONE: Readonly<Record<FlTaskJson['status'], Tone>> = {
  open: 'neutral',
  running: 'warn',
  finished: 'ok',
  cancelled: 'bad',
}

const ROUND_TONE: Readonly<Record<FlRoundJson['status'], Tone>> = { open: 'warn', passed: 'ok', failed: 'bad' }

async function getJson<T>(live: NodeLive, path: string, signal: AbortSignal): Promise<T> {
  const res = await fetch(new URL(path, live.client.baseUrl), { signal })
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`)
  return (await res.json()) as T
}

const percent = (ppm: number | undefined): string => (ppm === undefined ? '–' : `${(ppm / 10_000).toFixed(2)}%`)
const ruleText = (t: FlTaskJson): string => (t.f === 0 ? t.rule : `${t.rule}, f = ${t.f}`)

/** One line per DID that had a role in the round: its update or vote, its pay and its slash. */
interface RoleRow {
  did: string
  role: 'proposer' | 'voter'
  update?: FlRoundJson['updates'][number]
  vote?: FlRoundJson['votes'][number]
  excluded: boolean
  paid?: string
  slashes: Array<{ amount: string; reason: string }>
}

function roleRows(r: FlRoundJson): RoleRow[] {
  const excluded = new Set(r.excluded ?? [])
  const paid = new Map((r.payouts ?? []).map((p) => [p.did, p.amount]))
  const row = (did: string, role: RoleRow['role']): RoleRow => ({
    did,
    role,
    update: r.updates.find((u) => u.did === did),
    vote: r.votes.find((v) => v.did === did),
    excluded: excluded.has(did),
    paid: paid.get(did),
    slashes: (r.slashes ?? []).filter((s) => s.did === did),
  })
  return [...r.proposers.map((d) => row(d, 'proposer')), ...r.voters.map((d) => row(d, 'voter'))]
}

function roleContribution(x: RoleRow, r: FlRoundJson) {
  if (x.role === 'proposer') {
    if (x.update === undefined) return <span class="muted">{r.status === 'open' ? 'not yet' : 'no update'}</span>
    return (
      <span>
        update, {x.update.samples} samples{' '}
        {x.excluded ? <Badge tone="bad">excluded</Badge> : r.status === 'passed' ? <Badge tone="ok">kept</Badge> : null}
      </span>
    )
  }
  if (x.vote === undefined) return <span class="muted">{r.status === 'open' ? 'not yet' : 'no vote'}</span>
  return (
    <span>
      <Badge tone={x.vote.approve ? 'ok' : 'bad'}>{x.vote.approve ? 'approve' : 'reject'}</Badge>{' '}
      {percent(x.vote.accuracyPpm)}
      {x.vote.excluded.length === 0 ? '' : `, excludes ${x.vote.excluded.length}`}
    </span>
  )
}

function roundSummary(r: FlRoundJson): string {
  const approve = r.votes.filter((v) => v.approve).length
  const parts = [
    `${r.updates.length}/${r.proposers.length} updates`,
    `${r.votes.length}/${r.voters.length} votes (${approve} approve)`,
  ]
  if (r.accuracyPpm !== undefined) parts.unshift(`accuracy ${percent(r.accuracyPpm)}`)
  if ((r.slashes ?? []).length > 0) parts.push(`${(r.slashes ?? []).length} slashed`)
  return parts.join(' · ')
}

function Round(props: { r: FlRoundJson; open: boolean }) {
  const { r } = props
  const rows = roleRows(r)
  return (
    <details class="fl-round" open={props.open} data-testid="fl-round" data-round={r.round} data-status={r.status}>
      <summary>
        <strong>round {r.round}</strong> <Badge tone={ROUND_TONE[r.status]}>{r.status}</Badge>{' '}
        <span class="muted">{roundSummary(r)}</span>
      </summary>
      <dl class="facts">
        <dt>heights</dt>
        <dd>
          {r.start} → uploads until {r.uploadEnd} → votes until {r.voteEnd}
        </dd>
        <dt>base model</dt>
        <dd>
          <Short text={r.base.cid} />
        </dd>
        {r.aggregate === undefined ? null : (
          <>
            <dt>aggregate</dt>
            <dd>
              <Short text={r.aggregate.cid} />
            </dd>
          </>
        )}
        {r.majority === undefined ? null : (
          <>
            <dt>majority</dt>
            <dd>{r.majority} votes</dd>
          </>
        )}
        {r.pay === undefined ? null : (
          <>
            <dt>round budget</dt>
            <dd>{amount(r.pay)}</dd>
          </>
        )}
      </dl>
      <Table
        testId="fl-roles"
        rows={rows}
        rowKey={(x) => `${x.role}:${x.did}`}
        empty="no roles drawn"
        columns={[
          { label: 'participant', render: (x) => <Short text={x.did} head={16} /> },
          { label: 'role', render: (x) => x.role },
          { label: 'update or vote', render: (x) => roleContribution(x, r) },
          { label: 'paid', render: (x) => (x.paid === undefined ? '–' : amount(x.paid)), numeric: true },
          {
            label: 'slashed',
            render: (x) =>
              x.slashes.length === 0
                ? '–'
                : x.slashes.map((s, i) => (
                    <span key={i} class="fl-slash">
                      {amount(s.amount)} <Badge tone="bad">{s.reason}</Badge>
                    </span>
                  )),
          },
        ]}
      />
    </details>
  )
}

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback
}

/** Whole percentages around the data, 5 points of room; all of 0–100 % before there is any. */
function percentRange(_u: uPlot, min: number | null, max: number | null): uPlot.Range.MinMax {
  if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) return [0, 100]
  return [Math.max(0, Math.floor((min - 2) / 5) * 5), Math.min(100, Math.ceil((max + 2) / 5) * 5)]
}

/**
 * uPlot as ui.tsx's Chart draws it (built once, follows its container's width, data set in place),
 * for rounds: whole-number round ticks, a dot per round (a task has few), a failed round a gap.
 */
function RoundPlot(props: { data: uPlot.AlignedData; testId: string }) {
  const box = useRef<HTMLDivElement>(null)
  const plot = useRef<uPlot | null>(null)
  const height = 200
  useEffect(() => {
    const el = box.current
    if (el === null) return
    const fg = cssVar('--muted', '#888')
    const grid = cssVar('--line', '#8884')
    const options: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      scales: {
        x: {
          time: false,
          range: (_u, min, max) => (min === null || max === null ? [0, 1] : [min - 0.25, max + 0.25]),
        },
        y: { range: percentRange },
      },
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      series: [
        { label: 'round' },
        {
          label: 'global model',
          stroke: cssVar('--ok', '#1a7f37'),
          width: 2,
          points: { show: true, size: 7 },
          value: (_u, v) => (v === null ? '–' : `${v.toFixed(2)}%`),
        },
        {
          label: 'lowest vote',
          stroke: fg,
          width: 1,
          dash: [4, 4],
          points: { show: true, size: 4 },
          value: (_u, v) => (v === null ? '–' : `${v.toFixed(2)}%`),
        },
        {
          label: 'highest vote',
          stroke: fg,
          width: 1,
          dash: [1, 3],
          points: { show: true, size: 4 },
          value: (_u, v) => (v === null ? '–' : `${v.toFixed(2)}%`),
        },
      ],
      axes: [
        {
          stroke: fg,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid, width: 1 },
          incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500],
          values: (_u, splits) => splits.map((v) => (Number.isInteger(v) ? String(v) : '')),
        },
        {
          stroke: fg,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid, width: 1 },
          size: 48,
          values: (_u, splits) => splits.map((v) => `${Number(v.toPrecision(3))}%`),
        },
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

/**
 * The global model's accuracy after each settled round (a failed round leaves a gap), with the
 * lowest and highest accuracy a voter measured on its own data.
 */
function AccuracyChart(props: { rounds: FlRoundJson[] }) {
  const settled = props.rounds.filter((r) => r.status !== 'open').sort((a, b) => a.round - b.round)
  const key = settled.map((r) => `${r.round}:${r.accuracyPpm ?? '-'}`).join(',')
  const votesKey = settled.map((r) => r.votes.map((v) => v.accuracyPpm).join('/')).join(',')
  const data = useMemo(() => {
    const votes = settled.map((r) => r.votes.map((v) => v.accuracyPpm / 10_000))
    return [
      settled.map((r) => r.round),
      settled.map((r) => (r.status === 'passed' && r.accuracyPpm !== undefined ? r.accuracyPpm / 10_000 : null)),
      votes.map((v) => (v.length === 0 ? null : Math.min(...v))),
      votes.map((v) => (v.length === 0 ? null : Math.max(...v))),
    ] as uPlot.AlignedData
  }, [key, votesKey])
  const first = settled.find((r) => r.accuracyPpm !== undefined)
  return (
    <>
      {first === undefined ? (
        <p class="empty" data-testid="fl-chart-empty">
          plotted as rounds settle (one point per round)
        </p>
      ) : null}
      <div data-testid="fl-accuracy" data-points={key}>
        <RoundPlot data={data} testId="fl-accuracy-chart" />
      </div>
    </>
  )
}

function Participants(props: { rows: FlParticipantJson[] }) {
  return (
    <Table
      testId="fl-participants"
      rows={props.rows}
      rowKey={(p) => p.did}
      empty="nobody has joined yet"
      columns={[
        { label: 'participant', render: (p) => <Short text={p.did} head={16} /> },
        { label: 'joined at', render: (p) => p.joinedAt, numeric: true },
        { label: 'proposed / voted', render: (p) => `${p.proposed} / ${p.voted}`, numeric: true },
        { label: 'excluded', render: (p) => p.excluded, numeric: true },
        { label: 'bond left', render: (p) => amount(p.bond), numeric: true },
        { label: 'paid', render: (p) => amount(p.paid), numeric: true },
        { label: 'slashed', render: (p) => (p.slashed === '0' ? '–' : amount(p.slashed)), numeric: true },
        { label: 'returned', render: (p) => amount(p.returned), numeric: true },
      ]}
    />
  )
}

function TaskView(props: { live: NodeLive; id: number }) {
  const found = usePoll(
    (signal) => getJson<FlTaskDetailJson>(props.live, `/v1/fl/tasks/${props.id}`, signal),
    TASK_POLL_MS,
    props.id,
  )
  const d = found.value
  if (found.error !== undefined && d === undefined) return <Notice tone="bad">{errorText(found.error)}</Notice>
  if (d === undefined || d.task.id !== props.id) return <p class="muted">loading…</p>
  const t = d.task
  const rounds = [...d.rounds].sort((a, b) => b.round - a.round)
  const last = rounds.find((r) => r.status === 'passed' && r.accuracyPpm !== undefined)
  const joinBy = t.createdAt + t.joinBlocks
  return (
    <div class="stack" data-testid="fl-task" data-id={t.id} data-status={t.status}>
      <div class="stats">
        <Stat label="status" value={<Badge tone={STATUS_TONE[t.status]}>{t.status}</Badge>} testId="fl-task-status" />
        <Stat label="round" value={`${t.round} / ${t.rounds}`} testId="fl-task-round" />
        <Stat label="global accuracy" value={percent(last?.accuracyPpm)} hint="after the last passed round" />
        <Stat label="joined" value={`${t.joined} / ${t.participants}`} testId="fl-task-joined" />
        <Stat label="pool left" value={amount(t.remaining)} hint={`of ${amount(t.pool)}`} />
        <Stat label="paid" value={amount(t.paid)} />
        <Stat label="slashed" value={amount(t.slashed)} />
      </div>
      {t.status === 'open' ? (
        <div class="stack">
          <p class="muted fl-hint">
            Waiting for {t.participants - t.joined} more participant{t.participants - t.joined === 1 ? '' : 's'} (until
            height {joinBy}, at {d.height} now); each joins with a bond of {amount(t.bond)}:
          </p>
          <code class="fl-cmd" data-testid="fl-join-cmd">
            donghae fl join --task {t.id} --shard 0/{t.participants}
          </code>
        </div>
      ) : null}
      <dl class="facts">
        <dt>name</dt>
        <dd>{t.name}</dd>
        <dt>creator</dt>
        <dd>
          <Short text={t.creator} head={20} />
        </dd>
        <dt>aggregation</dt>
        <dd>
          {ruleText(t)}; {t.voters} voters a round, the others propose
        </dd>
        <dt>a round</dt>
        <dd>
          {t.uploadBlocks} blocks of uploads, then {t.voteBlocks} of votes
        </dd>
        <dt>bond</dt>
        <dd>
          {amount(t.bond)} each; {percent(t.slashPpm)} of what is left slashed per offence
        </dd>
        <dt>model</dt>
        <dd>MLP {t.widths.join(' → ')}</dd>
        <dt>global model</dt>
        <dd>
          <Short text={t.global.cid} />
          {t.global.cid === t.initial.cid ? <span class="muted"> (the initial one)</span> : null}
        </dd>
      </dl>
      <h3 class="fl-sub">Global model accuracy per round</h3>
      <AccuracyChart key={t.id} rounds={d.rounds} />
      <h3 class="fl-sub">Rounds</h3>
      {rounds.length === 0 ? (
        <p class="empty">no rounds yet: the first starts once {t.participants} have joined</p>
      ) : (
        <div class="fl-rounds" data-testid="fl-rounds">
          {rounds.map((r, i) => (
            <Round key={r.round} r={r} open={i === 0} />
          ))}
        </div>
      )}
      <h3 class="fl-sub">Participants</h3>
      <Participants rows={d.participants} />
    </div>
  )
}

export function Fl(props: { live: NodeLive }) {
  const tasks = usePoll((signal) => getJson<{ tasks: FlTaskJson[] }>(props.live, '/v1/fl/tasks', signal), LIST_POLL_MS)
  const [chosen, setChosen] = useState<number | undefined>(undefined)
  const list = tasks.value?.tasks ?? []
  const shown = chosen ?? list[0]?.id
  return (
    <div class="grid fl">
      <Card title="FL tasks" wide>
        {tasks.error === undefined ? null : <Notice tone="bad">{errorText(tasks.error)}</Notice>}
        {tasks.value === undefined && tasks.error === undefined ? <p class="muted">loading…</p> : null}
        {tasks.value === undefined ? null : (
          <Table
            testId="fl-tasks"
            rows={list}
            rowKey={(t) => String(t.id)}
            empty="no FL tasks (create one with `donghae fl create`)"
            columns={[
              {
                label: 'task',
                render: (t) => (
                  <button
                    type="button"
                    class="link"
                    data-testid="fl-task-link"
                    data-id={t.id}
                    aria-pressed={t.id === shown}
                    onClick={() => setChosen(t.id)}
                  >
                    #{t.id} {t.name}
                  </button>
                ),
              },
              { label: 'status', render: (t) => <Badge tone={STATUS_TONE[t.status]}>{t.status}</Badge> },
              { label: 'rule', render: ruleText },
              { label: 'round', render: (t) => `${t.round} / ${t.rounds}`, numeric: true },
              { label: 'joined', render: (t) => `${t.joined} / ${t.participants}`, numeric: true },
              { label: 'pool left', render: (t) => amount(t.remaining), numeric: true },
              { label: 'slashed', render: (t) => (t.slashed === '0' ? '–' : amount(t.slashed)), numeric: true },
            ]}
          />
        )}
      </Card>
      {shown === undefined ? null : (
        <Card title={`FL task #${shown}`} wide>
          <TaskView live={props.live} id={shown} />
        </Card>
      )}
    </div>
  )
}
