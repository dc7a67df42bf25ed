/**
 * NAT lab: the port-mapping code against a real home-router daemon (miniupnpd) in network
 * namespaces (see lab.ts). The node-under-test runs inside the LAN namespace as a child process
 * (the real `donghae nat probe` CLI or a fixture); the router's own nftables rules are read to
 * prove a mapping exists or is gone. Skips (with the reason) only without root, network
 * namespaces or miniupnpd; CI runs as root with the packages from .ci/run.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  NatLab,
  labUnavailable,
  LAN1,
  LAN2,
  PEER_WAN,
  ROUTER_WAN,
  type RouterMapping,
  type RouterVariant,
} from './lab.ts'

const BIN = fileURLToPath(new URL('../../bin/donghae.js', import.meta.url))
const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url))
const unavailable = await labUnavailable()

function labTest(name: string, fn: (lab: NatLab, t: TestContext) => Promise<void>, timeout = 60_000): void {
  test(name, { timeout }, async (t) => {
    if (unavailable !== undefined) {
      // Justified skip: only when not root, network namespaces cannot be created, or miniupnpd is
      // missing; the reason is printed. CI runs as root and installs miniupnpd, so it never skips there.
      t.skip(unavailable) // justified: no root or no network namespaces here (see the comment above)
      return
    }
    const lab = await NatLab.create()
    try {
      await fn(lab, t)
    } catch (err) {
      t.diagnostic(`miniupnpd log (${lab.variant ?? 'no router'}): ${await lab.routerLog()}`)
      throw err
    } finally {
      await lab.teardown()
    }
  })
}

interface ProbeResult {
  method: string
  externalAddress?: string
  leaseSeconds?: number
  internalAddress?: string
  upnpService?: string
  reason?: string
  fallback?: string
}

function probe(lab: NatLab, ns: string, args: string[]) {
  return lab.node(ns, BIN, ['nat', 'probe', '--json', ...args], { DONGHAE_HOME: join(lab.dir, 'home') })
}

async function mappedProbe(lab: NatLab, ns: string, args: string[]) {
  const proc = probe(lab, ns, ['--hold', '60', ...args])
  const result = await proc.waitFor<ProbeResult>((l) => typeof l.method === 'string', 20_000, 'probe result')
  return { proc, result }
}

const has = (mappings: RouterMapping[], externalPort: number, internalAddress: string, internalPort: number): boolean =>
  mappings.some(
    (m) =>
      m.protocol === 'tcp' &&
      m.externalPort === externalPort &&
      m.internalAddress === internalAddress &&
      m.internalPort === internalPort,
  )

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = Date.now()
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) assert.fail(`${what}: not within ${timeoutMs} ms`)
    await sleep(200)
  }
  return Date.now() - started
}

async function probeCase(lab: NatLab, variant: RouterVariant, method: 'pmp' | 'upnp', service?: string): Promise<void> {
  await lab.startRouter(variant)
  const { proc, result } = await mappedProbe(lab, lab.ns.lan1, ['--nat', 'auto', '--port', '4011'])
  assert.equal(result.method, method, JSON.stringify(result))
  assert.equal(result.externalAddress, `${ROUTER_WAN}:4011`)
  assert.equal(result.internalAddress, `${LAN1}:4011`)
  assert.equal(result.leaseSeconds, 3600)
  if (service !== undefined) assert.equal(result.upnpService, service)
  assert.ok(has(await lab.routerMappings(), 4011, LAN1, 4011), 'the router holds 4011 → 10.77.0.2:4011')
  assert.equal(await proc.stop('SIGINT'), 0, proc.stderr)
  assert.deepEqual(await lab.routerMappings(), [], 'the mapping is gone from the router after the probe')
}

labTest('NAT-PMP-only router: auto mode maps by NAT-PMP, and the mapping is removed at exit', async (lab) => {
  await probeCase(lab, 'pmp-only', 'pmp')
})

labTest('UPnP-only router, IGDv2: auto mode fails over to UPnP (WANIPConnection:2)', async (lab) => {
  await probeCase(lab, 'upnp-igd2', 'upnp', 'urn:schemas-upnp-org:service:WANIPConnection:2')
})

labTest('UPnP-only router, IGDv1 (force_igd_desc_v1): found and used (WANIPConnection:1)', async (lab) => {
  await lab.startRouter('upnp-igd1')
  const desc = await lab.exec(lab.ns.lan1, [
    process.execPath,
    '-e',
    'fetch("http://10.77.0.1:5555/rootDesc.xml").then((r) => r.text()).then((t) => process.stdout.write(t))',
  ])
  assert.match(desc.stdout, /device:InternetGatewayDevice:1</)
  assert.doesNotMatch(desc.stdout, /InternetGatewayDevice:2|WANIPConnection:2/)
  await probeCase(lab, 'upnp-igd1', 'upnp', 'urn:schemas-upnp-org:service:WANIPConnection:1')
})

labTest('router with NAT-PMP and UPnP: NAT-PMP is picked', async (lab) => {
  await probeCase(lab, 'both', 'pmp')
})

labTest('no port-mapping daemon: one clear line, exit 1, relay fallback signalled', async (lab) => {
  await lab.startRouter('none')
  const started = Date.now()
  const proc = probe(lab, lab.ns.lan1, ['--nat', 'auto', '--port', '4011'])
  const code = await proc.exited
  const took = Date.now() - started
  assert.equal(code, 1)
  const lines = proc.stderr.trim().split('\n')
  assert.equal(lines.length, 1, proc.stderr)
  assert.match(
    lines[0] ?? '',
    /^donghae: no port mapping available: NAT-PMP: .*10\.77\.0\.1:5351.*; UPnP: .*SSDP.*circuit relay$/,
  )
  const json = proc.lines[0] as ProbeResult
  assert.equal(json.method, 'none')
  assert.equal(json.fallback, 'circuit-relay')
  assert.ok(took < 15_000, `answered in ${took} ms`)
})

labTest(
  'two nodes behind one NAT ask for the same port: the second gets another, and each removes only its own',
  async (lab, t) => {
    for (const [variant, mode] of [
      ['both', 'pmp'],
      ['upnp-igd2', 'upnp'],
      ['upnp-igd1', 'upnp'],
    ] as const) {
      await lab.startRouter(variant)
      const a = await mappedProbe(lab, lab.ns.lan1, ['--nat', mode, '--port', '4011'])
      const b = await mappedProbe(lab, lab.ns.lan2, ['--nat', mode, '--port', '4011'])
      assert.equal(a.result.externalAddress, `${ROUTER_WAN}:4011`)
      const bPort = Number(b.result.externalAddress?.split(':')[1])
      assert.notEqual(bPort, 4011, `${variant}: B must not take A's port`)
      t.diagnostic(`${variant}/${mode}: A got 4011, B got ${bPort}`)
      let mappings = await lab.routerMappings()
      assert.ok(has(mappings, 4011, LAN1, 4011) && has(mappings, bPort, LAN2, 4011), JSON.stringify(mappings))
      assert.equal(await b.proc.stop('SIGINT'), 0, b.proc.stderr)
      mappings = await lab.routerMappings()
      assert.ok(
        has(mappings, 4011, LAN1, 4011),
        `${variant}: A's mapping survives B's exit: ${JSON.stringify(mappings)}`,
      )
      assert.ok(!mappings.some((m) => m.externalPort === bPort), `${variant}: B's mapping is gone`)
      assert.equal(await a.proc.stop('SIGINT'), 0, a.proc.stderr)
      assert.deepEqual(await lab.routerMappings(), [])
    }
  },
)

labTest(
  'lease renewal: a 4 s lease is renewed at half-life and outlives several leases; unrenewed, the router drops it',
  async (lab, t) => {
    await lab.startRouter('short-lease')
    const node = lab.node(lab.ns.lan1, join(FIXTURES, 'manager.ts'), [
      JSON.stringify({ mode: 'pmp', internalPort: 4011, leaseSeconds: 4, checkIntervalSeconds: 60 }),
    ])
    const mapped = await node.waitFor((l) => l.event === 'change' && l.method === 'pmp', 15_000, 'mapping')
    assert.equal(mapped.leaseSeconds, 4)
    const since = Date.now()
    await node.waitFor(
      () => node.lines.filter((x) => (x as { event?: string }).event === 'renewed').length >= 4,
      15_000,
      '4 renewals',
    )
    const elapsed = Date.now() - since
    t.diagnostic(`4 renewals in ${elapsed} ms`)
    assert.ok(elapsed >= 5500 && elapsed < 12_000, `renewed every ~2 s (4 renewals took ${elapsed} ms)`)
    assert.ok(has(await lab.routerMappings(), 4011, LAN1, 4011), 'still mapped after more than two leases')
    // control: a node that dies without renewing loses the mapping when the router's lease runs out
    await node.stop('SIGKILL')
    const gone = await until(
      'router drops the expired lease',
      async () => !has(await lab.routerMappings(), 4011, LAN1, 4011),
      15_000,
    )
    t.diagnostic(`router dropped the unrenewed mapping after ${gone} ms`)
  },
)

labTest('removal on stop: NAT-PMP and UPnP mappings are gone from the router after stop()', async (lab) => {
  await lab.startRouter('both')
  for (const [mode, port] of [
    ['pmp', 4011],
    ['upnp', 4012],
  ] as const) {
    const node = lab.node(lab.ns.lan1, join(FIXTURES, 'manager.ts'), [JSON.stringify({ mode, internalPort: port })])
    await node.waitFor((l) => l.event === 'change' && l.method === mode, 15_000, `${mode} mapping`)
    assert.ok(has(await lab.routerMappings(), port, LAN1, port), `${mode}: mapped on the router`)
    assert.equal(await node.stop('SIGTERM'), 0, node.stderr)
    assert.ok(node.lines.some((l) => (l as { event?: string }).event === 'stopped'))
    assert.ok(!(await lab.routerMappings()).some((m) => m.externalPort === port), `${mode}: gone from the router`)
  }
})

labTest(
  'router restart: the forgotten mapping is noticed and restored (NAT-PMP epoch, UPnP existence check)',
  async (lab, t) => {
    await lab.startRouter('both')
    const opts = { checkIntervalSeconds: 1, retryInitialSeconds: 1 }
    const pmp = lab.node(lab.ns.lan1, join(FIXTURES, 'manager.ts'), [
      JSON.stringify({ mode: 'pmp', internalPort: 4011, ...opts }),
    ])
    const upnp = lab.node(lab.ns.lan2, join(FIXTURES, 'manager.ts'), [
      JSON.stringify({ mode: 'upnp', internalPort: 4022, ...opts }),
    ])
    await pmp.waitFor((l) => l.event === 'change' && l.method === 'pmp', 15_000, 'pmp mapping')
    await upnp.waitFor((l) => l.event === 'change' && l.method === 'upnp', 15_000, 'upnp mapping')
    // RFC 6886 §3.6 detects a reboot by the epoch falling short of the time that passed (with 2 s
    // of slack), so the router must have been up a few seconds for its restart to be visible.
    await sleep(4000)
    assert.deepEqual(await lab.restartRouter(), [], 'the restarted router has forgotten every mapping')
    const took = await until(
      'both mappings restored',
      async () => {
        const m = await lab.routerMappings()
        return has(m, 4011, LAN1, 4011) && has(m, 4022, LAN2, 4022)
      },
      15_000,
    )
    t.diagnostic(`mappings restored ${took} ms after the restart`)
    assert.match(pmp.stderr, /router restarted/)
    assert.match(upnp.stderr, /no longer has port 4022/)
    await pmp.stop('SIGTERM')
    await upnp.stop('SIGTERM')
    assert.deepEqual(await lab.routerMappings(), [])
  },
)

labTest(
  'libp2p: a peer outside dials the node behind the NAT at its announced external address and pings it',
  async (lab, t) => {
    await lab.startRouter('both')
    const dial = (addr: string) =>
      lab
        .node(lab.ns.wan, join(FIXTURES, 'libp2p-dial.ts'), [addr])
        .waitFor<{ ok: boolean; rtt?: number; error?: string; remoteAddrs?: string[] }>(
          (l) => typeof l.ok === 'boolean',
          20_000,
          'dial result',
        )

    // before any mapping: the router has nothing on 4011, so the dial fails
    const unmapped = lab.node(lab.ns.lan1, join(FIXTURES, 'libp2p-node.ts'), ['off', '4011'])
    const first = await unmapped.waitFor<{ event: string; peerId: string }>(
      (l) => l.event === 'listening',
      20_000,
      'listening',
    )
    const before = await dial(`/ip4/${ROUTER_WAN}/tcp/4011/p2p/${first.peerId}`)
    assert.equal(before.ok, false, 'no dial through the NAT before the port is mapped')
    t.diagnostic(`before mapping: ${before.error}`)
    await unmapped.stop('SIGTERM')

    const node = lab.node(lab.ns.lan1, join(FIXTURES, 'libp2p-node.ts'), ['auto', '4011'])
    const change = await node.waitFor<{ event: string; addrs: string[]; change: { method: string } }>(
      (l) => l.event === 'change' && l.change.method !== 'none',
      20_000,
      'mapping',
    )
    const announced = change.addrs.find((a) => a.startsWith(`/ip4/${ROUTER_WAN}/tcp/4011/p2p/`))
    assert.ok(announced, `libp2p announces the external address: ${JSON.stringify(change.addrs)}`)
    const after = await dial(announced)
    assert.equal(after.ok, true, after.error)
    t.diagnostic(`after mapping: ping ${after.rtt} ms via ${announced}`)
    assert.ok(
      after.remoteAddrs?.some((a) => a.startsWith(`/ip4/${ROUTER_WAN}/tcp/4011`)),
      `identify carried it: ${JSON.stringify(after.remoteAddrs)}`,
    )
    assert.equal(await node.stop('SIGTERM'), 0)
    assert.deepEqual(await lab.routerMappings(), [])
  },
)

labTest(
  'circuit relay: with nothing to map, the node reserves a slot on a relay outside and a peer outside pings it through the relay',
  async (lab, t) => {
    await lab.startRouter('none')
    const host = (ns: string, options: Record<string, unknown>) =>
      lab.node(ns, join(FIXTURES, 'donghae-host.ts'), [JSON.stringify(options)])
    const relay = host(lab.ns.wan, { port: 4100, relayServer: true, relay: 'off' })
    const relayUp = await relay.waitFor<{ event: string; peerId: string }>(
      (l) => l.event === 'listening',
      20_000,
      'relay listening',
    )
    const relayAddr = `/ip4/${PEER_WAN}/tcp/4100/p2p/${relayUp.peerId}`
    const started = Date.now()
    const node = host(lab.ns.lan1, { port: 4011, nat: 'auto', bootstrap: [relayAddr] })
    const self = await node.waitFor<{ event: string; peerId: string }>(
      (l) => l.event === 'listening',
      20_000,
      'node listening',
    )
    interface RelayLine {
      event: string
      relay: { state: string; reason?: string; relay?: { peer: string; address: string } }
      nat?: { state: string; reason?: string }
      addrs: string[]
    }
    const reserved = await node.waitFor<RelayLine>(
      (l) => l.event === 'relay' && l.relay.state === 'reserved',
      30_000,
      'a relay reservation',
    )
    t.diagnostic(`reserved ${Date.now() - started} ms after start; ${reserved.relay.reason}`)
    assert.equal(reserved.nat?.state, 'unmapped', 'only after port mapping failed')
    assert.match(reserved.relay.reason ?? '', /^no port mapping available: NAT-PMP: .*; UPnP: /)
    const expected = `${relayAddr}/p2p-circuit/p2p/${self.peerId}`
    assert.deepEqual(reserved.relay.relay, { peer: relayUp.peerId, address: expected })
    assert.ok(reserved.addrs.includes(expected), `announced: ${JSON.stringify(reserved.addrs)}`)
    assert.match(node.stderr, /circuit relay reservation made/)

    const dial = (addr: string) =>
      lab
        .node(lab.ns.wan, join(FIXTURES, 'libp2p-dial.ts'), [addr])
        .waitFor<{ ok: boolean; rtt?: number; error?: string; via?: string; limited?: boolean }>(
          (l) => typeof l.ok === 'boolean',
          20_000,
          'dial result',
        )
    // control: the router forwards nothing, so the node's own port is closed from outside
    const direct = await dial(`/ip4/${ROUTER_WAN}/tcp/4011/p2p/${self.peerId}`)
    assert.equal(direct.ok, false, 'no direct dial through the NAT')
    const dialed = await dial(expected)
    assert.equal(dialed.ok, true, dialed.error)
    assert.equal(dialed.via, expected, 'the connection runs through the relay')
    assert.equal(dialed.limited, false, 'without data or time limits')
    t.diagnostic(`ping through the relay: ${dialed.rtt} ms via ${expected}`)
    assert.equal(await node.stop('SIGTERM'), 0, node.stderr)
    assert.equal(await relay.stop('SIGTERM'), 0, relay.stderr)
  },
)
