/**
 * A home router in network namespaces, made fresh for each test (random names) and torn down
 * in `finally`:
 *
 *   lan1 10.77.0.2 ─┐
 *                   ├─ bridge rlan 10.77.0.1 [rtr: masquerade + miniupnpd] rwan 11.0.0.1 ── 11.0.0.2 wan
 *   lan2 10.77.0.3 ─┘
 *
 * 11.0.0.0/24 stands for the internet (miniupnpd and libp2p refuse a private WAN address); it
 * exists only inside these namespaces. Nothing touches the host's own network. Needs root, iproute2,
 * nftables and miniupnpd (Debian: miniupnpd-nftables); `labUnavailable()` says why not.
 *
 * `LinkLab` is the smaller setup for LAN discovery: two namespaces on one link, multicast on.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { createWriteStream, existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

export const LAN1 = '10.77.0.2'
export const LAN2 = '10.77.0.3'
export const ROUTER_LAN = '10.77.0.1'
export const ROUTER_WAN = '11.0.0.1'
export const PEER_WAN = '11.0.0.2'
export const UPNP_HTTP_PORT = 5555

/** Router flavours. `none` runs no daemon at all. */
export type RouterVariant = 'pmp-only' | 'upnp-igd2' | 'upnp-igd1' | 'both' | 'none' | 'short-lease'

export interface ExecResult {
  code: number
  stdout: string
  stderr: string
}

function run(cmd: string, args: readonly string[], input?: string): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: 20_000, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1
      resolve({ code, stdout, stderr: stderr || (err?.message ?? '') })
    })
    child.stdin?.on('error', () => {}) // a command that exits without reading its input
    child.stdin?.end(input ?? '')
  })
}

async function must(cmd: string, args: readonly string[], input?: string): Promise<string> {
  const r = await run(cmd, args, input)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`)
  return r.stdout
}

function onPath(binary: string): boolean {
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin'])
  return dirs.some((d) => d !== '' && existsSync(join(d, binary)))
}

/** Why network namespaces cannot be made here (not Linux, not root, no iproute2), or undefined. */
export async function namespacesUnavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'network namespaces need Linux'
  if (process.getuid?.() !== 0) return 'not root: network namespaces need root (CI runs as root)'
  if (!onPath('ip')) return 'ip is not installed (apt-get install iproute2)'
  const probe = `dhnat-probe-${randomBytes(3).toString('hex')}`
  const r = await run('ip', ['netns', 'add', probe])
  if (r.code !== 0) return `ip netns add failed: ${r.stderr.trim()}`
  await run('ip', ['netns', 'del', probe])
  return undefined
}

/** Why the lab cannot run here, or undefined when it can. */
export async function labUnavailable(): Promise<string | undefined> {
  const why = await namespacesUnavailable()
  if (why !== undefined) return why
  for (const bin of ['nft', 'miniupnpd']) {
    if (!onPath(bin)) return `${bin} is not installed (apt-get install miniupnpd-nftables nftables iproute2)`
  }
  return undefined
}

/** Starts a Node.js script inside a namespace (`process.execPath`), reading JSON lines from it. */
function spawnIn(ns: string, script: string, args: readonly string[], env: NodeJS.ProcessEnv): NodeProcess {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, script, ...args], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  return new NodeProcess(child)
}

const FILTER = (masq: string): string => `
table inet filter {
  chain forward {
    type filter hook forward priority 0; policy accept;
    ct state established,related accept
    iifname "rlan" accept
    iifname "rwan" jump miniupnpd
    iifname "rwan" drop
  }
  chain miniupnpd { }
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump prerouting_miniupnpd
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    jump postrouting_miniupnpd
    ${masq}
  }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
}
`

function routerConfig(variant: RouterVariant, uuid: string): string {
  const upnp = variant === 'pmp-only' ? 'no' : 'yes'
  const pmp = variant === 'upnp-igd1' || variant === 'upnp-igd2' ? 'no' : 'yes'
  return [
    'ext_ifname=rwan',
    'listening_ip=rlan',
    `http_port=${UPNP_HTTP_PORT}`,
    `enable_upnp=${upnp}`,
    `enable_natpmp=${pmp}`,
    ...(variant === 'upnp-igd1' ? ['force_igd_desc_v1=yes'] : []),
    'ipv6_disable=yes',
    'secure_mode=yes',
    // epoch counts from the daemon's start, so a restart shows as an epoch regression
    'system_uptime=no',
    'notify_interval=30',
    // miniupnpd 2.3.1 applies these to PCP only; NAT-PMP and UPnP grant the lease asked for
    ...(variant === 'short-lease' ? ['min_lifetime=2', 'max_lifetime=6'] : ['min_lifetime=120', 'max_lifetime=86400']),
    `uuid=${uuid}`,
    'allow 1024-65535 10.77.0.0/24 1024-65535',
    'deny 0-65535 0.0.0.0/0 0-65535',
    '',
  ].join('\n')
}

export interface RouterMapping {
  protocol: 'tcp' | 'udp'
  externalPort: number
  internalAddress: string
  internalPort: number
}

/** A running node-side process: JSON lines from stdout, stderr kept for failure messages. */
export class NodeProcess {
  readonly child: ChildProcess
  readonly lines: unknown[] = []
  stdout = ''
  stderr = ''
  readonly exited: Promise<number | null>
  #waiters: Array<() => void> = []

  constructor(child: ChildProcess) {
    this.child = child
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk
      const parts = this.stdout.split('\n')
      this.stdout = parts.pop() ?? ''
      for (const line of parts) {
        if (line.trim() === '') continue
        try {
          this.lines.push(JSON.parse(line))
        } catch {
          this.lines.push({ text: line })
        }
      }
      for (const w of this.#waiters.splice(0)) w()
    })
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk
    })
    this.exited = new Promise((resolve) =>
      child.on('close', (code) => {
        resolve(code)
        for (const w of this.#waiters.splice(0)) w()
      }),
    )
  }

  /** Waits for a JSON line matching `predicate` (already printed or still to come). */
  async waitFor<T = Record<string, unknown>>(
    predicate: (line: T) => boolean,
    timeoutMs = 20_000,
    what = 'a line',
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const hit = (this.lines as T[]).find(predicate)
      if (hit !== undefined) return hit
      if (this.child.exitCode !== null || Date.now() > deadline) {
        throw new Error(
          `no ${what} within ${timeoutMs} ms; stdout: ${JSON.stringify(this.lines)} stderr: ${this.stderr.slice(-3000)}`,
        )
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(10, Math.min(500, deadline - Date.now())))
        this.#waiters.push(() => {
          clearTimeout(t)
          resolve()
        })
      })
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGINT', timeoutMs = 15_000): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal)
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs)
    try {
      return await this.exited
    } finally {
      clearTimeout(timer)
    }
  }
}

export class NatLab {
  readonly id: string
  readonly ns: { lan1: string; lan2: string; rtr: string; wan: string }
  readonly dir: string
  #daemon: ChildProcess | undefined
  #variant: RouterVariant | undefined
  #children = new Set<NodeProcess>()
  #torn = false

  private constructor(id: string, dir: string) {
    this.id = id
    this.dir = dir
    this.ns = { lan1: `dhnat-${id}-lan1`, lan2: `dhnat-${id}-lan2`, rtr: `dhnat-${id}-rtr`, wan: `dhnat-${id}-wan` }
  }

  /** Builds the namespaces and the router's NAT (no daemon yet: see `startRouter`). */
  static async create(): Promise<NatLab> {
    const id = randomBytes(3).toString('hex')
    const lab = new NatLab(id, await mkdtemp(join(tmpdir(), `dhnat-${id}-`)))
    try {
      await lab.#build()
    } catch (err) {
      await lab.teardown()
      throw err
    }
    return lab
  }

  async #build(): Promise<void> {
    const { lan1, lan2, rtr, wan } = this.ns
    for (const ns of [lan1, lan2, rtr, wan]) {
      await must('ip', ['netns', 'add', ns])
      await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
    }
    await must('ip', ['-n', rtr, 'link', 'add', 'rlan', 'type', 'bridge'])
    for (const [ns, port, addr] of [
      [lan1, 'rlan1', LAN1],
      [lan2, 'rlan2', LAN2],
    ] as const) {
      await must('ip', ['link', 'add', 'lan0', 'netns', ns, 'type', 'veth', 'peer', 'name', port, 'netns', rtr])
      await must('ip', ['-n', rtr, 'link', 'set', port, 'master', 'rlan', 'up'])
      await must('ip', ['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'lan0'])
      await must('ip', ['-n', ns, 'link', 'set', 'lan0', 'up'])
      await must('ip', ['-n', ns, 'route', 'add', 'default', 'via', ROUTER_LAN])
    }
    await must('ip', ['link', 'add', 'wan0', 'netns', wan, 'type', 'veth', 'peer', 'name', 'rwan', 'netns', rtr])
    await must('ip', ['-n', rtr, 'addr', 'add', `${ROUTER_LAN}/24`, 'dev', 'rlan'])
    await must('ip', ['-n', rtr, 'link', 'set', 'rlan', 'up'])
    await must('ip', ['-n', rtr, 'addr', 'add', `${ROUTER_WAN}/24`, 'dev', 'rwan'])
    await must('ip', ['-n', rtr, 'link', 'set', 'rwan', 'up'])
    await must('ip', ['-n', wan, 'addr', 'add', `${PEER_WAN}/24`, 'dev', 'wan0'])
    await must('ip', ['-n', wan, 'link', 'set', 'wan0', 'up'])
    await must('ip', ['netns', 'exec', rtr, 'sysctl', '-qw', 'net.ipv4.ip_forward=1'])
    await must(
      'ip',
      ['netns', 'exec', rtr, 'nft', '-f', '-'],
      FILTER('oifname "rwan" ip saddr 10.77.0.0/24 masquerade'),
    )
  }

  /** Runs a command inside a namespace. */
  exec(ns: string, cmd: readonly string[]): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', ns, ...cmd])
  }

  /** Starts a Node.js script inside a namespace (`process.execPath`), reading JSON lines from it. */
  node(ns: string, script: string, args: readonly string[] = [], env: NodeJS.ProcessEnv = {}): NodeProcess {
    const proc = spawnIn(ns, script, args, env)
    this.#children.add(proc)
    return proc
  }

  get variant(): RouterVariant | undefined {
    return this.#variant
  }

  /** Writes the variant's miniupnpd config and starts the daemon (nothing for `none`). */
  async startRouter(variant: RouterVariant): Promise<void> {
    await this.stopRouter()
    this.#variant = variant
    if (variant === 'none') return
    const conf = join(this.dir, `miniupnpd-${variant}.conf`)
    await writeFile(conf, routerConfig(variant, randomUUID()))
    const log = createWriteStream(join(this.dir, 'miniupnpd.log'), { flags: 'a' })
    const daemon = spawn(
      'ip',
      ['netns', 'exec', this.ns.rtr, 'miniupnpd', '-d', '-f', conf, '-P', join(this.dir, 'miniupnpd.pid')],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    daemon.stdout.pipe(log)
    daemon.stderr.pipe(log)
    this.#daemon = daemon
    await this.#waitListening(variant)
  }

  async #waitListening(variant: RouterVariant): Promise<void> {
    const wants: Array<[string, string]> = []
    if (variant !== 'pmp-only') wants.push(['-Hlnt', `sport = :${UPNP_HTTP_PORT}`])
    if (variant !== 'upnp-igd1' && variant !== 'upnp-igd2') wants.push(['-Hlnu', 'sport = :5351'])
    const deadline = Date.now() + 10_000
    for (;;) {
      const ready = await Promise.all(wants.map(([flags, filter]) => this.exec(this.ns.rtr, ['ss', flags, filter])))
      if (ready.every((r) => r.stdout.trim() !== '')) return
      if (this.#daemon?.exitCode !== null || Date.now() > deadline) {
        throw new Error(`miniupnpd (${variant}) did not start: ${await this.routerLog()}`)
      }
      await sleep(50)
    }
  }

  async stopRouter(): Promise<void> {
    const daemon = this.#daemon
    this.#daemon = undefined
    if (daemon === undefined || daemon.exitCode !== null || daemon.signalCode !== null) return
    const exited = new Promise((resolve) => daemon.once('close', resolve))
    daemon.kill('SIGTERM')
    const timer = setTimeout(() => daemon.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
  }

  /**
   * A router reboot: the daemon stops, its port-forwarding table is lost, and it starts again.
   * Returns the table as it stood while the router was down (read before the daemon is back, since
   * a node checking every second may restore its mapping before a caller could look).
   */
  async restartRouter(): Promise<RouterMapping[]> {
    const variant = this.#variant
    if (variant === undefined) throw new Error('no router running')
    await this.stopRouter()
    for (const chain of ['miniupnpd', 'prerouting_miniupnpd', 'postrouting_miniupnpd']) {
      await must('ip', ['netns', 'exec', this.ns.rtr, 'nft', 'flush', 'chain', 'inet', 'filter', chain])
    }
    const whileDown = await this.routerMappings()
    await this.startRouter(variant)
    return whileDown
  }

  /** The port forwards the router holds right now, read from its nftables DNAT chain. */
  async routerMappings(): Promise<RouterMapping[]> {
    const out = await must('ip', [
      'netns',
      'exec',
      this.ns.rtr,
      'nft',
      'list',
      'chain',
      'inet',
      'filter',
      'prerouting_miniupnpd',
    ])
    const found: RouterMapping[] = []
    // nft prints miniupnpd's rules as `@nh,72,8 0x6 th dport 4011 dnat ip to 10.77.0.2:4011`
    // (older and newer versions may say `ip protocol tcp` or `meta l4proto tcp` instead)
    const rule =
      /(?:@nh,72,8 0x(6|11)|(?:ip protocol|meta l4proto) (tcp|udp)) .*?dport (\d+) dnat ip to ([\d.]+):(\d+)/g
    for (const m of out.matchAll(rule)) {
      const tcp = m[1] === '6' || m[2] === 'tcp'
      found.push({
        protocol: tcp ? 'tcp' : 'udp',
        externalPort: Number(m[3]),
        internalAddress: m[4] as string,
        internalPort: Number(m[5]),
      })
    }
    return found
  }

  async routerLog(): Promise<string> {
    return readFile(join(this.dir, 'miniupnpd.log'), 'utf8').then(
      (t) => t.slice(-4000),
      () => '(no log)',
    )
  }

  /** Stops every process and the daemon, deletes the namespaces and the temp dir. Idempotent. */
  async teardown(): Promise<void> {
    if (this.#torn) return
    this.#torn = true
    await Promise.all([...this.#children].map((c) => c.stop('SIGKILL', 3000).catch(() => null)))
    await this.stopRouter().catch(() => {})
    for (const ns of Object.values(this.ns)) await run('ip', ['netns', 'del', ns])
    await rm(this.dir, { recursive: true, force: true })
  }
}

export const LINK_A = '10.78.0.1'
export const LINK_B = '10.78.0.2'

/**
 * Two hosts on one Ethernet link, for LAN discovery: namespaces `a` (10.78.0.1) and `b`
 * (10.78.0.2) joined by a veth pair, with multicast (224.0.0.0/4) routed onto the link. Made fresh
 * (random names) and torn down in `finally`; needs root and iproute2 only (`namespacesUnavailable`).
 */
export class LinkLab {
  readonly ns: { a: string; b: string }
  #children = new Set<NodeProcess>()
  #torn = false

  private constructor(id: string) {
    this.ns = { a: `dhlink-${id}-a`, b: `dhlink-${id}-b` }
  }

  static async create(): Promise<LinkLab> {
    const lab = new LinkLab(randomBytes(3).toString('hex'))
    try {
      const { a, b } = lab.ns
      for (const ns of [a, b]) {
        await must('ip', ['netns', 'add', ns])
        await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
      }
      await must('ip', ['link', 'add', 'link0', 'netns', a, 'type', 'veth', 'peer', 'name', 'link0', 'netns', b])
      for (const [ns, addr] of [
        [a, LINK_A],
        [b, LINK_B],
      ] as const) {
        await must('ip', ['-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'link0'])
        await must('ip', ['-n', ns, 'link', 'set', 'link0', 'up', 'multicast', 'on'])
        await must('ip', ['-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'link0'])
      }
    } catch (err) {
      await lab.teardown()
      throw err
    }
    return lab
  }

  node(ns: string, script: string, args: readonly string[] = [], env: NodeJS.ProcessEnv = {}): NodeProcess {
    const proc = spawnIn(ns, script, args, env)
    this.#children.add(proc)
    return proc
  }

  /** Stops every process and deletes the namespaces. Idempotent. */
  async teardown(): Promise<void> {
    if (this.#torn) return
    this.#torn = true
    await Promise.all([...this.#children].map((c) => c.stop('SIGKILL', 3000).catch(() => null)))
    for (const ns of Object.values(this.ns)) await run('ip', ['netns', 'del', ns])
  }
}

export const HP_PUBLIC = '11.0.0.2'
export const HP_WAN_A = '11.0.0.11'
export const HP_WAN_B = '11.0.0.12'
export const HP_LAN_A = '10.77.1.2'
export const HP_LAN_B = '10.77.2.2'

/**
 * How a router translates: `masquerade` is Linux's default (it keeps the source port when it can,
 * so a socket keeps one public address:port for every destination — endpoint-independent mapping —
 * while conntrack lets in only answers from where it sent: address-and-port-dependent filtering);
 * `random` (`masquerade random`) picks a new random port per destination: endpoint-dependent
 * mapping, the "symmetric" NAT of RFC 3489.
 */
export type NatBehaviour = 'masquerade' | 'random'

/**
 * Two homes, each behind its own NAT router with no port-mapping daemon (UPnP and NAT-PMP off),
 * and a public host between them (the relay and STUN server):
 *
 *   a 10.77.1.2 ── [rtrA 10.77.1.1 │ 11.0.0.11] ──┐
 *                                                 ├── bridge ── pub 11.0.0.2
 *   b 10.77.2.2 ── [rtrB 10.77.2.1 │ 11.0.0.12] ──┘
 *
 * Each router masquerades its LAN and forwards nothing in from its WAN side that is not an answer
 * (conntrack `established`). Named nftables counters on each router count the UDP packets it
 * forwards to and from the other router's public address: the proof that traffic runs directly
 * between the homes and not through `pub`. Made fresh (random names) and torn down in `finally`;
 * needs root, iproute2 and nftables (`holePunchLabUnavailable`).
 */
export class HolePunchLab {
  readonly ns: { a: string; rtrA: string; b: string; rtrB: string; pub: string }
  #children = new Set<NodeProcess>()
  #torn = false

  private constructor(id: string) {
    this.ns = {
      a: `dhhp-${id}-a`,
      rtrA: `dhhp-${id}-rtra`,
      b: `dhhp-${id}-b`,
      rtrB: `dhhp-${id}-rtrb`,
      pub: `dhhp-${id}-pub`,
    }
  }

  static async create(nat: { a: NatBehaviour; b: NatBehaviour }): Promise<HolePunchLab> {
    const lab = new HolePunchLab(randomBytes(3).toString('hex'))
    try {
      await lab.#build(nat)
    } catch (err) {
      await lab.teardown()
      throw err
    }
    return lab
  }

  async #build(nat: { a: NatBehaviour; b: NatBehaviour }): Promise<void> {
    const { a, rtrA, b, rtrB, pub } = this.ns
    for (const ns of Object.values(this.ns)) {
      await must('ip', ['netns', 'add', ns])
      await must('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
    }
    await must('ip', ['-n', pub, 'link', 'add', 'pub0', 'type', 'bridge'])
    await must('ip', ['-n', pub, 'addr', 'add', `${HP_PUBLIC}/24`, 'dev', 'pub0'])
    await must('ip', ['-n', pub, 'link', 'set', 'pub0', 'up'])
    const homes = [
      [a, rtrA, HP_LAN_A, '10.77.1.1', HP_WAN_A, HP_WAN_B, nat.a, 'pa'],
      [b, rtrB, HP_LAN_B, '10.77.2.1', HP_WAN_B, HP_WAN_A, nat.b, 'pb'],
    ] as const
    for (const [home, rtr, lan, gw, wan, otherWan, behaviour, port] of homes) {
      await must('ip', ['link', 'add', 'lan0', 'netns', home, 'type', 'veth', 'peer', 'name', 'rlan', 'netns', rtr])
      await must('ip', ['link', 'add', 'rwan', 'netns', rtr, 'type', 'veth', 'peer', 'name', port, 'netns', pub])
      await must('ip', ['-n', pub, 'link', 'set', port, 'master', 'pub0', 'up'])
      await must('ip', ['-n', home, 'addr', 'add', `${lan}/24`, 'dev', 'lan0'])
      await must('ip', ['-n', home, 'link', 'set', 'lan0', 'up'])
      await must('ip', ['-n', home, 'route', 'add', 'default', 'via', gw])
      await must('ip', ['-n', rtr, 'addr', 'add', `${gw}/24`, 'dev', 'rlan'])
      await must('ip', ['-n', rtr, 'link', 'set', 'rlan', 'up'])
      await must('ip', ['-n', rtr, 'addr', 'add', `${wan}/24`, 'dev', 'rwan'])
      await must('ip', ['-n', rtr, 'link', 'set', 'rwan', 'up'])
      await must('ip', ['netns', 'exec', rtr, 'sysctl', '-qw', 'net.ipv4.ip_forward=1'])
      const lanNet = `${lan.split('.').slice(0, 3).join('.')}.0/24`
      await must('ip', ['netns', 'exec', rtr, 'nft', '-f', '-'], HOME_ROUTER(lanNet, otherWan, behaviour))
    }
  }

  /** UDP packets this home's router forwarded to (`out`) and from (`in`) the other home's router. */
  async directUdp(home: 'a' | 'b'): Promise<{ out: number; in: number }> {
    const rtr = home === 'a' ? this.ns.rtrA : this.ns.rtrB
    const read = async (name: string): Promise<number> => {
      const text = await must('ip', ['netns', 'exec', rtr, 'nft', 'list', 'counter', 'inet', 'home', name])
      return Number(/packets (\d+)/.exec(text)?.[1] ?? NaN)
    }
    return { out: await read('direct_out'), in: await read('direct_in') }
  }

  node(ns: string, script: string, args: readonly string[] = [], env: NodeJS.ProcessEnv = {}): NodeProcess {
    const proc = spawnIn(ns, script, args, env)
    this.#children.add(proc)
    return proc
  }

  exec(ns: string, cmd: readonly string[]): Promise<ExecResult> {
    return run('ip', ['netns', 'exec', ns, ...cmd])
  }

  /** Stops every process and deletes the namespaces. Idempotent. */
  async teardown(): Promise<void> {
    if (this.#torn) return
    this.#torn = true
    await Promise.all([...this.#children].map((c) => c.stop('SIGKILL', 3000).catch(() => null)))
    for (const ns of Object.values(this.ns)) await run('ip', ['netns', 'del', ns])
  }
}

const HOME_ROUTER = (lanNet: string, otherWan: string, behaviour: NatBehaviour): string => `
table inet home {
  counter direct_out { }
  counter direct_in { }
  chain forward {
    type filter hook forward priority 0; policy drop;
    iifname "rlan" oifname "rwan" ip daddr ${otherWan} meta l4proto udp counter name direct_out
    iifname "rwan" ip saddr ${otherWan} meta l4proto udp ct state established counter name direct_in
    ct state established,related accept
    iifname "rlan" oifname "rwan" accept
  }
  chain input {
    type filter hook input priority 0; policy accept;
    iifname "rwan" ct state new drop
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    oifname "rwan" ip saddr ${lanNet} masquerade${behaviour === 'random' ? ' random' : ''}
  }
}
`

/** Why the hole-punching lab cannot run here (no root, no namespaces, no nftables), or undefined. */
export async function holePunchLabUnavailable(): Promise<string | undefined> {
  const why = await namespacesUnavailable()
  if (why !== undefined) return why
  if (!onPath('nft')) return 'nft is not installed (apt-get install nftables): the NAT routers need it'
  return undefined
}
