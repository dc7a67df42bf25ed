import { test } from 'node:test'
import assert from 'node:assert/strict'
import { EventBus } from './events.ts'
import { NodeMetrics } from './metrics.ts'

/** The value of one series in Prometheus text, e.g. value(text, 'donghae_peers'). */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

test('NodeMetrics follows the bus: height, txs, finality, peers, NAT state, slashes', async () => {
  const bus = new EventBus()
  const metrics = new NodeMetrics({ processMetrics: false })
  const detach = metrics.attach(bus)
  bus.publish('block', { height: 7, id: 'ab', time: 0, txs: 3, proposer: 'did:key:z6Mk' })
  bus.publish('finality', { height: 7, seconds: 0.4 })
  bus.publish('peer', { peerId: 'p', did: '', connected: true, peers: 2 })
  bus.publish('nat', { method: 'upnp', externalAddress: '203.0.113.7:26656' })
  bus.publish('slash', { module: 'staking', validator: 'did:key:z6Mk', amount: '50', reason: 'downtime' })
  bus.publish('slash', { module: 'inference', worker: 'did:key:z6Mk', amount: '9', reason: 'wrong-output' })
  bus.publish('job', { id: 'j', model: 'm', worker: 'w', latencyMs: 5, ok: true, fee: '1' })
  const text = await metrics.text()
  assert.equal(value(text, 'donghae_chain_height'), 7)
  assert.equal(value(text, 'donghae_chain_txs_total'), 3)
  assert.equal(value(text, 'donghae_finality_seconds_count'), 1)
  assert.equal(value(text, 'donghae_finality_seconds_bucket{le="0.5"}'), 1)
  assert.equal(value(text, 'donghae_finality_seconds_bucket{le="0.25"}'), 0)
  assert.equal(value(text, 'donghae_peers'), 2)
  assert.equal(value(text, 'donghae_nat_state{method="upnp"}'), 1)
  assert.equal(value(text, 'donghae_nat_state{method="off"}'), 0)
  assert.equal(value(text, 'donghae_slashes_total{module="staking",reason="downtime"}'), 1)
  assert.equal(value(text, 'donghae_slashes_total{module="inference",reason="wrong-output"}'), 1)
  assert.equal(
    value(text, 'donghae_jobs_total{model="m",role="gateway",result="ok"}'),
    undefined,
    'jobs come from jobCompleted, not the bus',
  )
  detach()
  bus.publish('peer', { peerId: 'p', did: '', connected: false, peers: 1 })
  assert.equal(value(await metrics.text(), 'donghae_peers'), 2, 'detached')
})

test('NodeMetrics: jobs, latency histogram and audits from the inference service; one registry per node', async () => {
  const a = new NodeMetrics()
  const b = new NodeMetrics()
  a.jobCompleted({ model: 'digits-mlp', latencySeconds: 0.012, ok: true, role: 'gateway' })
  a.jobCompleted({ model: 'digits-mlp', latencySeconds: 0.02, ok: false, role: 'gateway' })
  a.jobCompleted({ model: 'digits-mlp', latencySeconds: 0.003, ok: true, role: 'worker' })
  a.audit({ result: 'pass' })
  a.audit({ result: 'dispute' })
  const text = await a.text()
  assert.equal(value(text, 'donghae_jobs_total{model="digits-mlp",role="gateway",result="ok"}'), 1)
  assert.equal(value(text, 'donghae_jobs_total{model="digits-mlp",role="gateway",result="error"}'), 1)
  assert.equal(value(text, 'donghae_job_latency_seconds_count{model="digits-mlp",role="gateway"}'), 2)
  assert.equal(value(text, 'donghae_job_latency_seconds_bucket{le="0.025",model="digits-mlp",role="gateway"}'), 2)
  assert.equal(value(text, 'donghae_job_latency_seconds_bucket{le="0.01",model="digits-mlp",role="gateway"}'), 0)
  assert.equal(value(text, 'donghae_audits_total{result="pass"}'), 1)
  assert.equal(value(text, 'donghae_audits_total{result="dispute"}'), 1)
  assert.match(text, /^donghae_process_cpu_seconds_total /m, 'process metrics under the donghae_ prefix')
  const other = await b.text()
  assert.equal(value(other, 'donghae_audits_total{result="pass"}'), undefined, 'b shares nothing with a')
  // Every metric name is prefixed; counters end in _total and nothing else does (promtool's rule).
  const names = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m): [string, string] => [m[1] ?? '', m[2] ?? ''])
  for (const [name, type] of names) {
    assert.match(name, /^donghae_/)
    if (type === 'counter') assert.match(name, /_total$/, name)
    else assert.doesNotMatch(name, /_total$/, `${name} is a ${type}`)
  }
  assert.match(text, /^donghae_nodejs_active_handles\{/m, 'the per-type gauges stay')
  assert.match(a.contentType, /^text\/plain/)
})
