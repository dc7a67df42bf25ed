// Network: this node's addresses, its peers, the NAT state and peer changes as they happen.
import type { NodeLive } from './live.ts'
import { useLive } from './live.ts'
import { Badge, Card, Short, Stat, Table } from './ui.tsx'

export function Network(props: { live: NodeLive }) {
  const s = useLive(props.live)
  const nat = s.nat
  return (
    <div class="grid">
      <Card title="This node">
        <div class="stats">
          <Stat label="peers" value={s.net?.peers.length ?? '–'} testId="peer-count" />
          <Stat label="NAT method" value={nat?.method ?? '–'} testId="nat-method" />
          <Stat label="external address" value={nat?.externalAddress ?? '–'} />
        </div>
        {nat?.reason === undefined ? null : <p class="muted">{nat.reason}</p>}
        {nat?.relay === undefined ? null : (
          <p class="muted">
            reachable through relay <Short text={nat.relay.peer} /> at <code>{nat.relay.address}</code>
          </p>
        )}
        <dl class="facts">
          <dt>peer id</dt>
          <dd>{s.net === undefined ? '–' : <Short text={s.net.peerId} head={16} />}</dd>
          <dt>addresses</dt>
          <dd>
            <ul class="plain">
              {(s.net?.addresses ?? []).map((a) => (
                <li key={a}>
                  <code class="wrap">{a}</code>
                </li>
              ))}
            </ul>
          </dd>
        </dl>
      </Card>
      <Card title="Peers">
        <Table
          testId="peers"
          rows={s.net?.peers ?? []}
          rowKey={(p) => p.peerId}
          empty="no peers connected"
          columns={[
            { label: 'DID', render: (p) => (p.did === '' ? '–' : <Short text={p.did} />) },
            { label: 'peer id', render: (p) => <Short text={p.peerId} /> },
            { label: 'address', render: (p) => <code class="wrap">{p.addresses[0] ?? ''}</code> },
          ]}
        />
      </Card>
      <Card title="Peer changes" wide>
        <Table
          rows={s.peerLog}
          rowKey={(p) => `${p.at}-${p.peerId}-${String(p.connected)}`}
          empty="no changes since the page opened"
          columns={[
            { label: 'time', render: (p) => new Date(p.at).toLocaleTimeString() },
            {
              label: 'change',
              render: (p) => (
                <Badge tone={p.connected ? 'ok' : 'warn'}>{p.connected ? 'connected' : 'disconnected'}</Badge>
              ),
            },
            { label: 'peer', render: (p) => <Short text={p.did || p.peerId} /> },
            { label: 'peers', render: (p) => p.peers, numeric: true },
          ]}
        />
      </Card>
    </div>
  )
}
