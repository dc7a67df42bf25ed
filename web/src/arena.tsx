// AI Arena: training tasks on chain (phase, pool, trainers and validators), and for a chosen task
// its leaderboard (consensus score per submission, duplicates and lookup flags, pay) and its
// validators (trust, pay, slashes). Polled from GET /v1/arena/tasks[/{id}]: the event stream
// does not carry them.
import { useState } from 'preact/hooks'
import type { NodeLive } from './live.ts'
import { amount, errorText } from './format.ts'
import { usePoll } from './poll.ts'
import { Badge, Card, Notice, Short, Stat, Table, type Tone } from './ui.tsx'

interface TaskJson {
  id: number
  name: string
  creator: string
  phase: string
  pool: string
  k1: number
  k2: number
  trainers: number
  validators: number
  submissions: number
  submitDeadline: number
  revealDeadline: number
  result?: {
    leaderboard: Array<{
      rank: number
      index: number
      trainer: string
      weightsCid: string
      status: string
      consensusPpm: number
      scorePpm: number
      payout: string
      slashed: string
    }>
    validators: Array<{
      did: string
      stake: string
      revealed: boolean
      trustPpm: number
      payout: string
      slashed: string
    }>
    refund: string
    winner?: { weightsCid: string; registered: boolean; reason?: string }
  }
}

async function getJson<T>(live: NodeLive, path: string, signal: AbortSignal): Promise<T> {
  const res = await fetch(new URL(path, live.client.baseUrl), { signal })
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`)
  return (await res.json()) as T
}

const percent = (ppm: number): string => `${(ppm / 10_000).toFixed(2)}%`

const PHASE_TONE: Readonly<Record<string, Tone>> = {
  submitting: 'neutral',
  publishing: 'neutral',
  scoring: 'warn',
  revealing: 'warn',
  settled: 'ok',
}

const STATUS_TONE: Readonly<Record<string, Tone>> = {
  ranked: 'ok',
  duplicate: 'bad',
  lookup: 'bad',
  unpublished: 'warn',
}

function Leaderboard(props: { live: NodeLive; id: number }) {
  const task = usePoll(
    (signal) => getJson<TaskJson>(props.live, `/v1/arena/tasks/${props.id}`, signal),
    10_000,
    props.id,
  )
  const t = task.value
  if (task.error !== undefined && t === undefined) return <Notice tone="bad">{errorText(task.error)}</Notice>
  if (t === undefined) return <p class="muted">loading…</p>
  if (t.result === undefined)
    return (
      <p class="muted">
        task {t.id} settles at height {t.revealDeadline}; its leaderboard appears then
      </p>
    )
  const r = t.result
  return (
    <>
      <div class="stats">
        <Stat label="pool" value={amount(t.pool)} />
        <Stat label="back to the creator" value={amount(r.refund)} />
        <Stat
          label="winner"
          value={r.winner === undefined ? '–' : <Short text={r.winner.weightsCid} />}
          hint={r.winner?.registered === true ? 'in the inference market' : r.winner?.reason}
        />
      </div>
      <Table
        testId="arena-leaderboard"
        rows={r.leaderboard}
        rowKey={(s) => String(s.index)}
        empty="no submissions"
        columns={[
          { label: 'rank', render: (s) => (s.rank === 0 ? '–' : s.rank), numeric: true },
          { label: 'trainer', render: (s) => <Short text={s.trainer} /> },
          { label: 'status', render: (s) => <Badge tone={STATUS_TONE[s.status] ?? 'neutral'}>{s.status}</Badge> },
          { label: 'consensus', render: (s) => percent(s.consensusPpm), numeric: true },
          { label: 'score', render: (s) => percent(s.scorePpm), numeric: true },
          { label: 'paid', render: (s) => amount(s.payout), numeric: true },
        ]}
      />
      <Table
        testId="arena-validators"
        rows={r.validators}
        rowKey={(v) => v.did}
        empty="no validators"
        columns={[
          { label: 'validator', render: (v) => <Short text={v.did} /> },
          { label: 'stake', render: (v) => amount(v.stake), numeric: true },
          { label: 'trust', render: (v) => (v.revealed ? percent(v.trustPpm) : 'no reveal'), numeric: true },
          { label: 'paid', render: (v) => amount(v.payout), numeric: true },
          { label: 'slashed', render: (v) => (v.slashed === '0' ? '–' : amount(v.slashed)), numeric: true },
        ]}
      />
    </>
  )
}

export function Arena(props: { live: NodeLive }) {
  const tasks = usePoll((signal) => getJson<{ tasks: TaskJson[] }>(props.live, '/v1/arena/tasks', signal), 10_000)
  const [chosen, setChosen] = useState<number | undefined>(undefined)
  const list = tasks.value?.tasks ?? []
  const shown = chosen ?? list[0]?.id
  return (
    <div class="grid">
      <Card title="Arena tasks" wide>
        {tasks.error === undefined ? null : <Notice tone="bad">{errorText(tasks.error)}</Notice>}
        <Table
          testId="arena-tasks"
          rows={list}
          rowKey={(t) => String(t.id)}
          empty="no arena tasks (post one with `donghae task create`)"
          columns={[
            {
              label: 'task',
              render: (t) => (
                <button type="button" class="link" onClick={() => setChosen(t.id)}>
                  #{t.id} {t.name}
                </button>
              ),
            },
            { label: 'phase', render: (t) => <Badge tone={PHASE_TONE[t.phase] ?? 'neutral'}>{t.phase}</Badge> },
            { label: 'pool', render: (t) => amount(t.pool), numeric: true },
            { label: 'k1 / k2', render: (t) => `${t.k1} / ${t.k2}` },
            { label: 'trainers', render: (t) => t.trainers, numeric: true },
            { label: 'validators', render: (t) => t.validators, numeric: true },
            { label: 'settles at', render: (t) => t.revealDeadline, numeric: true },
          ]}
        />
      </Card>
      {shown === undefined ? null : (
        <Card title={`Task #${shown}: leaderboard`} wide>
          <Leaderboard live={props.live} id={shown} />
        </Card>
      )}
    </div>
  )
}
