// Governance (issue 15, part 5): proposals newest first, each with its tally against the rules
// (turnout against the quorum, yes against the threshold, veto against the veto line), its voting
// end and apply heights; a chosen proposal's changes, votes and deposits; and the governed
// parameters (effective value, default, whether governance set it). Read-only: validators vote
// with the CLI (`donghae gov vote ID yes`), whose command is shown to copy. Polled from
// GET /v1/gov/proposals[/{id}] and /v1/gov/params: the event stream does not carry them.
import { Fragment } from 'preact'
import { useState } from 'preact/hooks'
import type {
  GovParamsView,
  ParamValueView,
  ParamView,
  ProposalStatusView,
  ProposalView,
  TallyView,
} from '../../src/api/governance-api.ts'
import type { NodeLive } from './live.ts'
import { amount, errorText } from './format.ts'
import { usePoll } from './poll.ts'
import { Badge, Card, Notice, Short, Stat, Table, type Tone } from './ui.tsx'

const LIST_POLL_MS = 4_000
const PARAMS_POLL_MS = 15_000
const STATUSES: readonly ProposalStatusView[] = [
  'deposit',
  'voting',
  'passed',
  'applied',
  'rejected',
  'vetoed',
  'expired',
]

const STATUS_TONE: Readonly<Record<ProposalStatusView, Tone>> = {
  deposit: 'neutral',
  voting: 'warn',
  passed: 'ok',
  applied: 'ok',
  rejected: 'bad',
  vetoed: 'bad',
  expired: 'neutral',
}

const OPTION_TONE: Readonly<Record<string, Tone>> = { yes: 'ok', no: 'bad', abstain: 'neutral', veto: 'bad' }

async function getJson<T>(live: NodeLive, path: string, signal: AbortSignal): Promise<T> {
  const res = await fetch(new URL(path, live.client.baseUrl), { signal })
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`)
  return (await res.json()) as T
}

/** `part` of `whole` in basis points (0 when the whole is 0), exact on big amounts. */
function bpsOf(part: string, whole: bigint): number {
  if (whole <= 0n) return 0
  try {
    return Number((BigInt(part) * 10_000n) / whole)
  } catch {
    return 0
  }
}

const big = (text: string): bigint => {
  try {
    return BigInt(text)
  } catch {
    return 0n
  }
}

const pct = (bps: number): string => `${(bps / 100).toFixed(bps % 100 === 0 ? 0 : 1)}%`
const width = (bps: number): string => `${Math.min(100, Math.max(0, bps / 100))}%`

/** The rules a tally is measured against, from the governed parameters (basis points). */
interface Rules {
  quorumBps: number
  thresholdBps: number
  vetoBps: number
}

function rulesOf(params: GovParamsView | undefined): Rules | undefined {
  if (params === undefined) return undefined
  const read = (name: string): number | undefined => {
    const v = params.params.find((p) => p.name === name)?.value
    return typeof v === 'string' ? Number(v) : undefined
  }
  const quorumBps = read('governance.quorumBps')
  const thresholdBps = read('governance.thresholdBps')
  const vetoBps = read('governance.vetoBps')
  if (quorumBps === undefined || thresholdBps === undefined || vetoBps === undefined) return undefined
  return { quorumBps, thresholdBps, vetoBps }
}

function verdict(t: TallyView): { text: string; tone: Tone } {
  const why = t.reason === undefined ? t.outcome : `${t.outcome}: ${t.reason}`
  if (t.final) return { text: why, tone: t.outcome === 'passed' ? 'ok' : 'bad' }
  return t.outcome === 'passed'
    ? { text: 'passing so far', tone: 'ok' }
    : { text: `failing so far (${t.reason ?? t.outcome})`, tone: 'warn' }
}

/**
 * The tally as two bars: every option's share of the voting power, with the quorum marked; and
 * yes against yes + no + veto, with the threshold marked. A line under each says it in numbers.
 */
function Tally(props: { tally: TallyView; rules: Rules | undefined }) {
  const t = props.tally
  const total = big(t.totalPower)
  const yes = bpsOf(t.yes, total)
  const no = bpsOf(t.no, total)
  const abstain = bpsOf(t.abstain, total)
  const veto = bpsOf(t.veto, total)
  const decisive = big(t.yes) + big(t.no) + big(t.veto)
  const voted = decisive + big(t.abstain)
  const yesOfDecisive = bpsOf(t.yes, decisive)
  const vetoOfVoted = bpsOf(t.veto, voted)
  const r = props.rules
  const v = verdict(t)
  return (
    <div
      class="tally"
      data-testid="gov-tally"
      data-yes={t.yes}
      data-no={t.no}
      data-abstain={t.abstain}
      data-veto={t.veto}
      data-total={t.totalPower}
      data-outcome={t.outcome}
      data-final={String(t.final)}
    >
      <div class="tally-bar" role="img" aria-label={`turnout ${pct(t.turnoutBps)} of the voting power`}>
        <span class="seg yes" style={{ width: width(yes) }} title={`yes ${amount(t.yes)}`} />
        <span class="seg no" style={{ width: width(no) }} title={`no ${amount(t.no)}`} />
        <span class="seg abstain" style={{ width: width(abstain) }} title={`abstain ${amount(t.abstain)}`} />
        <span class="seg veto" style={{ width: width(veto) }} title={`veto ${amount(t.veto)}`} />
        {r === undefined ? null : <span class="mark" style={{ left: width(r.quorumBps) }} title="quorum" />}
      </div>
      <p class="tally-line">
        <span class="key yes">yes {pct(yes)}</span> <span class="key no">no {pct(no)}</span>{' '}
        <span class="key abstain">abstain {pct(abstain)}</span> <span class="key veto">veto {pct(veto)}</span>
        <span class="muted">
          {' '}
          of {amount(t.totalPower)} staked · turnout {pct(t.turnoutBps)}
          {r === undefined ? '' : ` (quorum ${pct(r.quorumBps)})`}
        </span>
      </p>
      <div class="tally-bar thin" role="img" aria-label={`yes ${pct(yesOfDecisive)} of yes, no and veto`}>
        <span class="seg yes" style={{ width: width(yesOfDecisive) }} />
        {r === undefined ? null : <span class="mark" style={{ left: width(r.thresholdBps) }} title="threshold" />}
      </div>
      <p class="tally-line muted">
        yes {pct(yesOfDecisive)} of yes + no + veto{r === undefined ? '' : ` (passes above ${pct(r.thresholdBps)})`} ·
        veto {pct(vetoOfVoted)} of votes{r === undefined ? '' : ` (vetoes above ${pct(r.vetoBps)})`}
      </p>
      <Badge tone={v.tone} testId="gov-verdict">
        {v.text}
      </Badge>
    </div>
  )
}

/** A deposit still being collected: how far it is from the minimum that opens voting. */
function DepositBar(props: { p: ProposalView }) {
  const { p } = props
  const done = bpsOf(p.totalDeposit, big(p.minDeposit))
  return (
    <div class="tally">
      <div class="tally-bar thin" role="img" aria-label={`deposit ${pct(done)} of the minimum`}>
        <span class="seg deposit" style={{ width: width(done) }} />
      </div>
      <p class="tally-line muted">
        deposit {amount(p.totalDeposit)} of {amount(p.minDeposit)} until height {p.depositEndHeight}
      </p>
    </div>
  )
}

function heightsLine(p: ProposalView, head: number): string {
  const parts: string[] = []
  if (p.status === 'voting' && p.votingEndHeight !== undefined)
    parts.push(`voting ends at ${p.votingEndHeight} (${Math.max(0, p.votingEndHeight - head)} blocks left)`)
  else if (p.votingEndHeight !== undefined) parts.push(`voting ended at ${p.votingEndHeight}`)
  if (p.appliedHeight !== undefined) parts.push(`applied at ${p.appliedHeight}`)
  else if (p.applyHeight !== undefined)
    parts.push(p.status === 'voting' ? `applies at ${p.applyHeight} if it passes` : `applies at ${p.applyHeight}`)
  else if (p.requestedApplyHeight !== undefined) parts.push(`asks to apply at ${p.requestedApplyHeight}`)
  if (p.decidedHeight !== undefined && p.status !== 'passed' && p.status !== 'applied')
    parts.push(`decided at ${p.decidedHeight}`)
  return parts.join(' · ')
}

const valueText = (value: ParamValueView): string =>
  Array.isArray(value) ? (value.length === 0 ? '(empty)' : value.join(', ')) : amount(value)

/** A uint ending in Bps also as a percentage. */
function paramValue(name: string, value: ParamValueView): string {
  if (typeof value === 'string' && name.endsWith('Bps')) return `${amount(value)} bps (${pct(Number(value))})`
  return valueText(value)
}

/** A CLI command to copy (the dashboard signs nothing: votes and deposits go through `donghae gov`). */
function Command(props: { text: string; testId?: string }) {
  const [copied, setCopied] = useState(false)
  const copy = (): void => {
    void navigator.clipboard?.writeText(props.text).then(() => {
      setCopied(true)
      setTimeout(() => setCopied(false), 1200)
    })
  }
  return (
    <div class="cmd">
      <code data-testid={props.testId}>{props.text}</code>
      <button type="button" class="button secondary" onClick={copy}>
        {copied ? 'copied' : 'copy'}
      </button>
    </div>
  )
}

function Proposal(props: { live: NodeLive; id: number; rules: Rules | undefined; params: GovParamsView | undefined }) {
  const found = usePoll(
    (signal) => getJson<ProposalView>(props.live, `/v1/gov/proposals/${props.id}`, signal),
    LIST_POLL_MS,
    props.id,
  )
  const p = found.value
  if (found.error !== undefined && p === undefined) return <Notice tone="bad">{errorText(found.error)}</Notice>
  if (p === undefined || p.id !== props.id) return <p class="muted">loading…</p>
  const current = new Map((props.params?.params ?? []).map((x) => [x.name, x]))
  const total = big(p.tally?.totalPower ?? '0')
  const short = big(p.minDeposit) - big(p.totalDeposit)
  return (
    <div class="stack" data-testid="gov-detail" data-id={p.id} data-status={p.status}>
      <div class="gov-item-head">
        <strong class="gov-title">{p.title}</strong>
        <Badge tone={STATUS_TONE[p.status]}>
          {p.status}
          {p.reason === undefined ? '' : ` (${p.reason})`}
        </Badge>
      </div>
      {p.description === '' ? null : <p class="gov-description">{p.description}</p>}
      <dl class="facts">
        <dt>proposer</dt>
        <dd>
          <Short text={p.proposer} head={20} />
        </dd>
        <dt>submitted</dt>
        <dd>height {p.submitHeight}</dd>
        <dt>deposit</dt>
        <dd>
          {amount(p.totalDeposit)} (voting needs {amount(p.minDeposit)}; collected until {p.depositEndHeight})
        </dd>
        <dt>voting</dt>
        <dd>
          {p.votingStartHeight === undefined
            ? 'not started'
            : `heights ${p.votingStartHeight} to ${p.votingEndHeight ?? '?'}`}
        </dd>
        <dt>applies</dt>
        <dd>
          {p.appliedHeight !== undefined
            ? `applied at ${p.appliedHeight}`
            : p.applyHeight !== undefined
              ? `at height ${p.applyHeight}${p.status === 'voting' ? ' if it passes' : ''}`
              : p.requestedApplyHeight !== undefined
                ? `asked for height ${p.requestedApplyHeight}`
                : 'the earliest height allowed after voting'}
        </dd>
        {p.decidedHeight === undefined ? null : (
          <>
            <dt>decided</dt>
            <dd>height {p.decidedHeight}</dd>
          </>
        )}
      </dl>
      {p.status === 'voting' ? (
        <div class="stack">
          <p class="muted gov-hint">
            Validators vote with their node&apos;s key (yes, no, abstain or veto), weighed by bonded stake:
          </p>
          <Command text={`donghae gov vote ${p.id} yes`} testId="gov-vote-cmd" />
        </div>
      ) : null}
      {p.status === 'deposit' && short > 0n ? (
        <div class="stack">
          <p class="muted gov-hint">Voting starts once the deposit reaches {amount(p.minDeposit)}:</p>
          <Command text={`donghae gov deposit ${p.id} --amount ${short}`} testId="gov-deposit-cmd" />
        </div>
      ) : null}
      {p.tally === undefined ? null : <Tally tally={p.tally} rules={props.rules} />}
      <h3 class="gov-sub">Changes</h3>
      <Table
        testId="gov-changes"
        rows={p.changes}
        rowKey={(c) => c.param}
        empty="no changes"
        columns={[
          { label: 'parameter', render: (c) => <code class="wrap">{c.param}</code> },
          { label: 'proposed', render: (c) => <span class="wrap">{paramValue(c.param, c.value)}</span> },
          {
            label: 'now',
            render: (c) => {
              const now = current.get(c.param)
              return now === undefined ? '–' : <span class="wrap">{paramValue(c.param, now.value)}</span>
            },
          },
        ]}
      />
      <h3 class="gov-sub">Votes</h3>
      <Table
        testId="gov-votes"
        rows={p.votes ?? []}
        rowKey={(v) => v.voter}
        empty={p.status === 'deposit' ? 'voting has not started' : 'no votes yet'}
        columns={[
          { label: 'validator', render: (v) => <Short text={v.voter} head={20} /> },
          { label: 'vote', render: (v) => <Badge tone={OPTION_TONE[v.option] ?? 'neutral'}>{v.option}</Badge> },
          { label: 'stake', render: (v) => amount(v.power), numeric: true },
          { label: 'share', render: (v) => pct(bpsOf(v.power, total)), numeric: true },
        ]}
      />
      {p.deposits === undefined || p.deposits.length === 0 ? null : (
        <>
          <h3 class="gov-sub">Deposits</h3>
          <Table
            testId="gov-deposits"
            rows={p.deposits}
            rowKey={(d) => d.did}
            empty="no deposits"
            columns={[
              { label: 'depositor', render: (d) => <Short text={d.did} head={20} /> },
              { label: 'amount', render: (d) => amount(d.amount), numeric: true },
            ]}
          />
        </>
      )}
    </div>
  )
}

function ProposalItem(props: {
  p: ProposalView
  head: number
  rules: Rules | undefined
  chosen: boolean
  choose: () => void
}) {
  const { p } = props
  const heights = heightsLine(p, props.head)
  return (
    <li
      class={props.chosen ? 'gov-item chosen' : 'gov-item'}
      data-testid="gov-proposal"
      data-id={p.id}
      data-status={p.status}
    >
      <div class="gov-item-head">
        <button type="button" class="link gov-title" onClick={props.choose} aria-pressed={props.chosen}>
          #{p.id} {p.title}
        </button>
        <Badge tone={STATUS_TONE[p.status]} testId="gov-status">
          {p.status}
        </Badge>
      </div>
      <p class="gov-changes muted">{p.changes.map((c) => `${c.param} → ${valueText(c.value)}`).join('; ')}</p>
      {p.tally !== undefined ? (
        <Tally tally={p.tally} rules={props.rules} />
      ) : p.status === 'deposit' ? (
        <DepositBar p={p} />
      ) : null}
      {heights === '' ? null : (
        <p class="gov-heights" data-testid="gov-heights">
          {heights}
        </p>
      )}
    </li>
  )
}

function Params(props: { view: GovParamsView | undefined; error: unknown }) {
  const view = props.view
  if (props.error !== undefined && view === undefined) return <Notice tone="bad">{errorText(props.error)}</Notice>
  if (view === undefined) return <p class="muted">loading…</p>
  const fixed = Object.entries(view.fixed)
  return (
    <>
      <p class="muted gov-hint">
        At height {view.height}: {view.params.filter((p) => p.governed).length} of {view.params.length} set by
        governance.
      </p>
      <Table
        testId="gov-params"
        rows={view.params}
        rowKey={(p) => p.name}
        empty="no governed parameters"
        columns={[
          {
            label: 'parameter',
            render: (p: ParamView) => (
              <span class="param-name">
                <code class="wrap">{p.name}</code>
                <span class="muted">{p.description}</span>
              </span>
            ),
          },
          { label: 'value', render: (p) => <strong class="wrap">{paramValue(p.name, p.value)}</strong> },
          { label: 'default', render: (p) => <span class="wrap">{paramValue(p.name, p.default)}</span> },
          {
            label: 'set by',
            render: (p) =>
              p.governed ? (
                <Badge tone="ok">
                  #{p.proposal ?? '?'} at {p.changedAt ?? '?'}
                </Badge>
              ) : (
                <Badge tone="neutral">default</Badge>
              ),
          },
          {
            label: 'bounds',
            render: (p) =>
              p.kind === 'uint'
                ? `${amount(p.min ?? '0')} – ${p.max === undefined ? 'max' : amount(p.max)}`
                : `≤ ${p.maxItems ?? '?'} items`,
          },
        ]}
      />
      {fixed.length === 0 ? null : (
        <details class="gov-fixed">
          <summary>Genesis parameters (fixed, not governable)</summary>
          <dl class="facts">
            {fixed.map(([k, v]) => (
              <Fragment key={k}>
                <dt>{k}</dt>
                <dd>{typeof v === 'string' ? amount(v) : v}</dd>
              </Fragment>
            ))}
          </dl>
        </details>
      )}
    </>
  )
}

export function Governance(props: { live: NodeLive }) {
  const [status, setStatus] = useState<ProposalStatusView | ''>('')
  const query = status === '' ? '?limit=50' : `?limit=50&status=${status}`
  const list = usePoll(
    (signal) => getJson<{ height: number; proposals: ProposalView[] }>(props.live, `/v1/gov/proposals${query}`, signal),
    LIST_POLL_MS,
    query,
  )
  const params = usePoll((signal) => getJson<GovParamsView>(props.live, '/v1/gov/params', signal), PARAMS_POLL_MS)
  const [chosen, setChosen] = useState<number | undefined>(undefined)
  const proposals = list.value?.proposals ?? []
  const head = list.value?.height ?? 0
  const rules = rulesOf(params.value)
  const shown = chosen ?? proposals[0]?.id
  const open = proposals.filter((p) => p.status === 'voting').length
  return (
    <div class="grid governance">
      <Card
        title="Proposals"
        wide
        actions={
          <select
            class="compact"
            aria-label="show proposals by status"
            data-testid="gov-status-filter"
            value={status}
            onChange={(e) => setStatus((e.target as HTMLSelectElement).value as ProposalStatusView | '')}
          >
            <option value="">all</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        }
      >
        {list.error === undefined ? null : <Notice tone="bad">{errorText(list.error)}</Notice>}
        <div class="stats">
          <Stat label="height" value={list.value === undefined ? '–' : head} />
          <Stat label="in voting" value={list.value === undefined ? '–' : open} />
          <Stat label="quorum" value={rules === undefined ? '–' : pct(rules.quorumBps)} hint="of bonded stake" />
          <Stat
            label="threshold"
            value={rules === undefined ? '–' : pct(rules.thresholdBps)}
            hint="yes of yes + no + veto"
          />
        </div>
        {list.value !== undefined && proposals.length === 0 ? (
          <p class="empty" data-testid="gov-empty">
            {status === ''
              ? 'no proposals yet (make one with `donghae gov propose`)'
              : `no proposals with status ${status}`}
          </p>
        ) : (
          <ul class="gov-list" data-testid="gov-proposals">
            {proposals.map((p) => (
              <ProposalItem
                key={p.id}
                p={p}
                head={head}
                rules={rules}
                chosen={p.id === shown}
                choose={() => setChosen(p.id)}
              />
            ))}
          </ul>
        )}
      </Card>
      {shown === undefined ? null : (
        <Card title={`Proposal #${shown}`} wide>
          <Proposal live={props.live} id={shown} rules={rules} params={params.value} />
        </Card>
      )}
      <Card title="Governed parameters" wide>
        <Params view={params.value} error={params.error} />
      </Card>
    </div>
  )
}
