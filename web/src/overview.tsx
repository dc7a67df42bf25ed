// Overview: health, identity, versions and the latest events.
import type { NodeLive } from './live.ts'
import { HEALTH_TONE, useLive } from './live.ts'
import { ago, seconds } from './format.ts'
import { Badge, Card, Short, Stat, Table } from './ui.tsx'

function describe(event: { type: string; data: unknown }): string {
  const d = event.data as Record<string, unknown>
  switch (event.type) {
    case 'block':
      return `block ${String(d.height)} with ${String(d.txs)} txs`
    case 'finality':
      return `height ${String(d.height)} final in ${seconds(Number(d.seconds))}`
    case 'job':
      return `job on ${String(d.model)}: ${d.ok === true ? 'ok' : 'failed'} in ${String(d.latencyMs)} ms, fee ${String(d.fee)}`
    case 'peer':
      return `${d.connected === true ? 'connected to' : 'lost'} ${String(d.did || d.peerId)} (${String(d.peers)} peers)`
    case 'nat':
      return `NAT: ${String(d.method)} ${String(d.externalAddress ?? d.reason ?? '')}`
    case 'slash':
      return `slash (${String(d.module)}): ${String(d.validator ?? d.worker)} lost ${String(d.amount)} for ${String(d.reason)}`
    case 'model.fetch':
      return `fetch of ${String(d.name)}: ${String(d.state)}${typeof d.error === 'string' ? ` (${d.error})` : ''}`
    default:
      return event.type
  }
}

export function Overview(props: { live: NodeLive }) {
  const s = useLive(props.live)
  const status = s.status
  return (
    <div class="grid">
      <Card title="Node">
        <div class="stats">
          <Stat
            label="health"
            value={
              <Badge tone={HEALTH_TONE[s.health]} testId="health">
                {s.health}
              </Badge>
            }
          />
          <Stat label="moniker" value={status?.moniker ?? '–'} />
          <Stat label="height" value={s.height} testId="overview-height" />
          <Stat label="last block" value={ago(s.lastBlockAt)} />
          <Stat label="peers" value={status?.peers ?? '–'} />
          <Stat label="NAT" value={s.nat?.method ?? '–'} />
        </div>
        <dl class="facts">
          <dt>DID</dt>
          <dd data-testid="node-did">{status === undefined ? '–' : <Short text={status.did} head={20} />}</dd>
          <dt>chain</dt>
          <dd>{status?.chainId ?? '–'}</dd>
          <dt>version</dt>
          <dd>
            {s.info === undefined
              ? '–'
              : `donghae ${s.info.version} · Node.js ${s.info.node} · ${s.info.platform} · up ${seconds(s.info.uptimeSeconds)}`}
          </dd>
        </dl>
      </Card>
      <Card title="Latest events">
        <Table
          rows={s.feed.slice(0, 12)}
          rowKey={(e) => String(e.seq)}
          empty="waiting for events…"
          columns={[
            { label: 'time', render: (e) => new Date(e.at).toLocaleTimeString() },
            { label: 'type', render: (e) => <Badge tone="neutral">{e.type}</Badge> },
            { label: 'what', render: (e) => describe(e) },
          ]}
        />
      </Card>
    </div>
  )
}
