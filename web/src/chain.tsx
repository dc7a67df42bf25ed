// Chain: height and consensus, blocks as they commit, the finality-time chart, validators.
import { useEffect, useMemo, useState } from 'preact/hooks'
import type { AccountJson } from '../../src/api/client.ts'
import type { NodeLive } from './live.ts'
import { useLive } from './live.ts'
import { amount, clock, seconds } from './format.ts'
import { Badge, Card, Chart, Short, Stat, Table } from './ui.tsx'

interface ValidatorRow {
  did: string
  power: string
  account: AccountJson | undefined
}

function validatorStatus(row: ValidatorRow) {
  const stake = row.account?.stake
  if (stake === undefined || stake === null) return <Badge tone="neutral">active</Badge>
  if (stake.tombstoned) return <Badge tone="bad">tombstoned</Badge>
  if (stake.jailed) return <Badge tone="warn">jailed until {stake.jailedUntil}</Badge>
  return <Badge tone="ok">active</Badge>
}

/** Validators with their stake, re-read every few blocks. */
function useValidators(live: NodeLive, validators: Array<{ did: string; power: string }>, height: number) {
  const [accounts, setAccounts] = useState(new Map<string, AccountJson>())
  const epoch = Math.floor(height / 5)
  const key = validators.map((v) => v.did).join(',')
  useEffect(() => {
    let cancelled = false
    void Promise.all(validators.map((v) => live.client.account(v.did).catch(() => undefined))).then((found) => {
      if (cancelled) return
      const map = new Map<string, AccountJson>()
      found.forEach((a) => a !== undefined && map.set(a.did, a))
      setAccounts(map)
    })
    return () => {
      cancelled = true
    }
  }, [key, epoch])
  return validators.map((v): ValidatorRow => ({ ...v, account: accounts.get(v.did) }))
}

export function Chain(props: { live: NodeLive }) {
  const s = useLive(props.live)
  const status = s.status
  const validators = useValidators(props.live, status?.validators ?? [], s.height)
  const finalityData = useMemo(() => [s.finality.heights, s.finality.seconds] as [number[], number[]], [s.finality])
  const last = s.finality.seconds.at(-1)
  return (
    <div class="grid">
      <Card title="Chain">
        <div class="stats">
          <Stat label="height" value={s.height} testId="chain-height" />
          <Stat
            label="consensus"
            value={status === undefined ? '–' : `h${status.consensus.height} r${status.consensus.round}`}
            hint={status?.consensus.step}
          />
          <Stat label="last finality" value={last === undefined ? '–' : seconds(last)} />
          <Stat label="mempool" value={status === undefined ? '–' : `${status.mempool.size} txs`} />
        </div>
        <dl class="facts">
          <dt>chain</dt>
          <dd>{status?.chainId ?? '–'}</dd>
          <dt>state root</dt>
          <dd>{status === undefined ? '–' : <Short text={status.stateRoot} />}</dd>
        </dl>
      </Card>
      <Card title="Finality time">
        {s.finality.heights.length < 2 ? <p class="empty">collecting… (one point per committed block)</p> : null}
        <Chart
          data={finalityData}
          xLabel="height"
          series={[{ label: 'seconds to finality', color: '#0a7bbd' }]}
          yUnit=" s"
          testId="finality-chart"
        />
      </Card>
      <Card title="Blocks" wide>
        <Table
          testId="blocks"
          rows={s.blocks}
          rowKey={(b) => String(b.height)}
          empty="waiting for the next block…"
          columns={[
            { label: 'height', render: (b) => b.height, numeric: true },
            { label: 'time', render: (b) => clock(b.time) },
            { label: 'txs', render: (b) => b.txs, numeric: true },
            { label: 'proposer', render: (b) => <Short text={b.proposer} /> },
            { label: 'id', render: (b) => <Short text={b.id} head={10} tail={4} /> },
          ]}
        />
      </Card>
      <Card title="Validators" wide>
        <Table
          testId="validators"
          rows={validators}
          rowKey={(v) => v.did}
          empty="no validators"
          columns={[
            { label: 'validator', render: (v) => <Short text={v.did} head={20} /> },
            { label: 'voting power', render: (v) => amount(v.power), numeric: true },
            { label: 'bonded stake', render: (v) => amount(v.account?.stake?.bonded), numeric: true },
            { label: 'balance', render: (v) => amount(v.account?.balance), numeric: true },
            { label: 'status', render: validatorStatus },
          ]}
        />
      </Card>
    </div>
  )
}
