// Experts (AI-Block): per MoE family, the parameter DAG drawn by layer (the MetaBlock, each
// layer's router and experts as boxes, edges along `dependsOn`, the current ParamIndex
// highlighted), expert usage (calls, mean latency, rewards; the top list), and the accept/reject
// log of proposals with each decision's reason. Polled: the event stream does not carry them.
import { useState } from 'preact/hooks'
import { ApiError, type ExpertDagJson, type ExpertFamilyJson, type ScoreJson } from '../../src/api/client.ts'
import type { NodeLive } from './live.ts'
import { amount, errorText } from './format.ts'
import { usePoll } from './poll.ts'
import { Badge, Card, Field, Notice, Short, Stat, Table, type Tone } from './ui.tsx'

function notAvailable(error: unknown): boolean {
  return error instanceof ApiError && error.status === 404
}

function score(s: ScoreJson | undefined): string {
  if (s === undefined) return '–'
  return `loss ${(Number(s.lossMicroNats) / 1e6).toFixed(4)} · acc ${(s.accuracyPpm / 1e4).toFixed(2)}%`
}

const STATUS_TONE: Readonly<Record<string, Tone>> = {
  accepted: 'ok',
  refused: 'bad',
  expired: 'warn',
  pending: 'neutral',
}

const BOX_W = 112
const BOX_H = 26
const COL_W = 150
const ROW_H = 36
const PAD = 12

/** The DAG as an SVG: the MetaBlock on the left, one column per layer (router on top). */
function Dag(props: { dag: ExpertDagJson }) {
  const { dag } = props
  const layers = [...new Set(dag.blocks.map((b) => b.layer))].sort((a, b) => a - b)
  const placed = new Map<string, { x: number; y: number }>()
  const metaAt = { x: PAD, y: PAD }
  placed.set(dag.meta.hash, metaAt)
  let rows = 1
  layers.forEach((layer, column) => {
    const blocks = dag.blocks
      .filter((b) => b.layer === layer)
      .sort(
        (a, b) =>
          Number(a.type !== 'router') - Number(b.type !== 'router') ||
          a.name.localeCompare(b.name, 'en', { numeric: true }) ||
          Number(b.current) - Number(a.current) ||
          a.index - b.index,
      )
    blocks.forEach((b, row) => placed.set(b.hash, { x: PAD + (column + 1) * COL_W, y: PAD + row * ROW_H }))
    rows = Math.max(rows, blocks.length)
  })
  const width = PAD * 2 + (layers.length + 1) * COL_W
  const height = PAD * 2 + rows * ROW_H
  const edges: Array<{ from: { x: number; y: number }; to: { x: number; y: number }; key: string; current: boolean }> =
    []
  for (const b of dag.blocks) {
    const from = placed.get(b.hash)
    if (from === undefined) continue
    for (const dep of b.dependsOn) {
      const to = placed.get(dep)
      if (to !== undefined) edges.push({ from, to, key: `${b.hash}-${dep}`, current: b.current })
    }
  }
  return (
    <div style={{ overflowX: 'auto', maxWidth: '100%' }} data-testid="experts-dag">
      <svg
        width={width}
        height={height}
        viewBox={`0 0 ${width} ${height}`}
        role="img"
        aria-label={`${dag.family} v${dag.version}: ${dag.blocks.length} blocks in ${layers.length} layers`}
        style={{ fontSize: '11px', fontFamily: 'ui-monospace, monospace' }}
      >
        {edges.map((e) => {
          const fy = e.from.y + BOX_H / 2
          const ty = e.to.y + BOX_H / 2
          // a dependency in the same column (an expert on its router) bends round the left side
          const d =
            e.to.x === e.from.x
              ? `M ${e.from.x} ${fy} C ${e.from.x - 16} ${fy}, ${e.to.x - 16} ${ty}, ${e.to.x} ${ty}`
              : `M ${e.from.x} ${fy} L ${e.to.x + BOX_W} ${ty}`
          return (
            <path
              key={e.key}
              d={d}
              fill="none"
              stroke={e.current ? 'var(--accent)' : 'var(--line)'}
              stroke-width={1}
              opacity={e.current ? 0.5 : 0.8}
            />
          )
        })}
        <g>
          <rect x={metaAt.x} y={metaAt.y} width={BOX_W} height={BOX_H} rx={5} fill="var(--card)" stroke="var(--fg)" />
          <text x={metaAt.x + 8} y={metaAt.y + 17} fill="var(--fg)">
            meta v{dag.version}
          </text>
          <title>{`MetaBlock ${dag.meta.hash}`}</title>
        </g>
        {layers.map((layer, column) => (
          <text key={layer} x={PAD + (column + 1) * COL_W} y={height - 2} fill="var(--muted)">
            layer {layer}
          </text>
        ))}
        {dag.blocks.map((b) => {
          const at = placed.get(b.hash)
          if (at === undefined) return null
          const stroke = b.current ? (b.type === 'router' ? 'var(--ok)' : 'var(--accent)') : 'var(--line)'
          return (
            <g key={b.hash} data-current={b.current ? 'true' : 'false'}>
              <rect
                x={at.x}
                y={at.y}
                width={BOX_W}
                height={BOX_H}
                rx={5}
                fill="var(--card)"
                stroke={stroke}
                stroke-width={b.current ? 2 : 1}
                stroke-dasharray={b.current ? undefined : '3 3'}
              />
              <text x={at.x + 8} y={at.y + 17} fill={b.current ? 'var(--fg)' : 'var(--muted)'}>
                {b.name.replace(/^layer\d+\./, '')} #{b.index}
              </text>
              <title>{`${b.name} ${b.current ? '(current)' : '(replaced or pending)'}\nblock ${b.hash}`}</title>
            </g>
          )
        })}
      </svg>
    </div>
  )
}

function FamilyView(props: { live: NodeLive; family: ExpertFamilyJson }) {
  const { client } = props.live
  const name = props.family.family
  const dag = usePoll((signal) => client.expertDag({ family: name }, { signal }), 15_000, name)
  const experts = usePoll((signal) => client.experts({ family: name }, { signal }), 10_000, name)
  const top = usePoll((signal) => client.topExperts({ family: name, limit: 10 }, { signal }), 10_000, name)
  const list = experts.value?.experts ?? []
  const calls = list.reduce((n, e) => n + e.calls, 0)
  const rewards = list.reduce((n, e) => n + BigInt(e.rewards), 0n)
  return (
    <>
      <Card title={`${name} v${props.family.version}`} wide>
        <div class="stats">
          <Stat label="layers" value={props.family.layers} />
          <Stat label="experts per layer" value={props.family.expertsPerLayer} />
          <Stat label="top-k" value={props.family.topK} />
          <Stat label="blocks" value={props.family.blocks} testId="experts-blocks" />
          <Stat label="calls" value={calls} />
          <Stat label="rewards" value={amount(rewards.toString())} />
        </div>
        <p class="muted">
          accepted score: {score(props.family.score)} · owner <Short text={props.family.owner} />
        </p>
        {dag.value === undefined ? (
          dag.error === undefined ? (
            <p class="empty">Loading the DAG…</p>
          ) : (
            <Notice tone="bad">{errorText(dag.error)}</Notice>
          )
        ) : (
          <Dag dag={dag.value} />
        )}
        <p class="muted">
          Boxes are blocks by layer (router first); edges follow each block’s dependencies to its router and the
          MetaBlock. Solid: the current ParamIndex; dashed: replaced or still proposed.
        </p>
      </Card>
      <Card title="Top experts">
        <Table
          testId="experts-top"
          rows={top.value?.experts ?? []}
          rowKey={(e) => e.block}
          empty="no expert used yet"
          columns={[
            { label: 'expert', render: (e) => <code>{e.name}</code> },
            { label: 'calls', render: (e) => e.calls, numeric: true },
            { label: 'mean ms', render: (e) => e.meanLatencyMs.toFixed(1), numeric: true },
            { label: 'rewards', render: (e) => amount(e.rewards), numeric: true },
          ]}
        />
      </Card>
      <Card title="Expert usage">
        <Table
          testId="experts-usage"
          rows={list}
          rowKey={(e) => e.block}
          empty="no blocks"
          columns={[
            { label: 'slot', render: (e) => <code>{e.name}</code> },
            { label: 'block', render: (e) => <Short text={e.block} head={8} tail={4} /> },
            { label: 'calls', render: (e) => e.calls, numeric: true },
            { label: 'mean ms', render: (e) => e.meanLatencyMs.toFixed(1), numeric: true },
            { label: 'rewards', render: (e) => amount(e.rewards), numeric: true },
            { label: 'hosts', render: (e) => e.hosts.length, numeric: true },
          ]}
        />
      </Card>
    </>
  )
}

function ProposalLog(props: { live: NodeLive }) {
  const proposals = usePoll((signal) => props.live.client.expertProposals({ limit: 50 }, { signal }), 5_000)
  return (
    <Card title="Accept/reject log" wide>
      {proposals.error !== undefined && proposals.value === undefined ? (
        <Notice tone="bad">{errorText(proposals.error)}</Notice>
      ) : (
        <Table
          testId="experts-proposals"
          rows={proposals.value?.proposals ?? []}
          rowKey={(p) => p.id}
          empty="no proposals yet"
          columns={[
            { label: 'height', render: (p) => p.height, numeric: true },
            { label: 'proposal', render: (p) => <Short text={p.id} head={8} tail={4} /> },
            { label: 'family', render: (p) => `${p.family} v${p.version}` },
            { label: 'slots', render: (p) => Object.keys(p.replaces).join(', ') },
            {
              label: 'status',
              render: (p) => <Badge tone={STATUS_TONE[p.status] ?? 'neutral'}>{p.status}</Badge>,
            },
            { label: 'reason', render: (p) => (p.reason === '' ? '–' : <code>{p.reason}</code>) },
            { label: 'claimed', render: (p) => score(p.claim) },
            { label: 'measured', render: (p) => score(p.score) },
            { label: 'miner', render: (p) => <Short text={p.proposer} /> },
          ]}
        />
      )}
    </Card>
  )
}

export function Experts(props: { live: NodeLive }) {
  const families = usePoll((signal) => props.live.client.expertFamilies({ signal }), 10_000)
  const [chosen, setChosen] = useState<string | undefined>(undefined)
  if (notAvailable(families.error))
    return <Notice tone="warn">This node runs no AI-Block experts service (MoE families on chain).</Notice>
  const list = families.value?.families ?? []
  const family = list.find((f) => f.family === chosen) ?? list[0]
  return (
    <div class="grid">
      {families.value === undefined ? (
        families.error === undefined ? (
          <p class="empty">Loading…</p>
        ) : (
          <Notice tone="bad">{errorText(families.error)}</Notice>
        )
      ) : family === undefined ? (
        <Card title="Families" wide>
          <p class="empty" data-testid="experts-empty">
            No MoE family on chain yet: import one with <code>donghae experts import DIR --family NAME</code>.
          </p>
        </Card>
      ) : (
        <>
          {list.length > 1 ? (
            <Card title="Families" wide>
              <Field label="Family">
                <select value={family.family} onChange={(e) => setChosen((e.target as HTMLSelectElement).value)}>
                  {list.map((f) => (
                    <option key={f.family} value={f.family}>
                      {f.family} v{f.version}
                    </option>
                  ))}
                </select>
              </Field>
            </Card>
          ) : null}
          <FamilyView live={props.live} family={family} />
        </>
      )}
      <ProposalLog live={props.live} />
    </div>
  )
}
