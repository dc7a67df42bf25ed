/**
 * Local network facts for port mapping: the default route's interface and gateway (from
 * /proc/net/route, then `ip -j route`, and /proc/net/ipv6_route for IPv6), which of our
 * addresses faces that gateway, and whether an address is private or publicly routable.
 */
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { endianness, networkInterfaces, type NetworkInterfaceInfo } from 'node:os'
import { isIPv4, isIPv6 } from 'node:net'
import { GatewayNotFoundError } from './errors.ts'

export interface DefaultRoute {
  family: 4 | 6
  interface: string
  gateway: string
  metric: number
}

const RTF_UP = 0x1
const RTF_GATEWAY = 0x2
const RTF_REJECT = 0x200

function hexToIpv4(hex: string, littleEndian: boolean): string {
  const bytes = [0, 2, 4, 6].map((i) => parseInt(hex.slice(i, i + 2), 16))
  return (littleEndian ? bytes.reverse() : bytes).join('.')
}

function byMetric(a: DefaultRoute, b: DefaultRoute): number {
  return a.metric - b.metric
}

/**
 * Default IPv4 routes in /proc/net/route text, lowest metric first. Addresses there are in host
 * byte order: little-endian on x86 and most ARM machines.
 */
export function parseProcNetRoute(text: string, littleEndian = endianness() === 'LE'): DefaultRoute[] {
  const routes: DefaultRoute[] = []
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/)
    if (f.length < 8) continue
    const [iface, dest, gateway, flagsHex, , , metric, mask] = f as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ]
    if (!/^[0-9A-Fa-f]{8}$/.test(dest) || !/^[0-9A-Fa-f]{8}$/.test(gateway) || !/^[0-9A-Fa-f]{8}$/.test(mask)) continue
    const flags = parseInt(flagsHex, 16)
    if (parseInt(dest, 16) !== 0 || parseInt(mask, 16) !== 0) continue
    if ((flags & (RTF_UP | RTF_GATEWAY)) !== (RTF_UP | RTF_GATEWAY) || (flags & RTF_REJECT) !== 0) continue
    routes.push({ family: 4, interface: iface, gateway: hexToIpv4(gateway, littleEndian), metric: Number(metric) || 0 })
  }
  return routes.sort(byMetric)
}

function hexToIpv6(hex: string): string {
  const groups = hex.match(/.{4}/g) ?? []
  return compressIpv6(groups.map((g) => parseInt(g, 16)))
}

/** Default IPv6 routes (::/0 via a gateway) in /proc/net/ipv6_route text, lowest metric first. */
export function parseProcIpv6Route(text: string): DefaultRoute[] {
  const routes: DefaultRoute[] = []
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/)
    if (f.length < 10) continue
    const [dest, prefix, , , gateway, metric, , , flagsHex, iface] = f as string[] as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ]
    if (!/^0{32}$/.test(dest) || prefix !== '00' || !/^[0-9a-fA-F]{32}$/.test(gateway) || /^0{32}$/.test(gateway))
      continue
    const flags = parseInt(flagsHex, 16)
    if ((flags & (RTF_UP | RTF_GATEWAY)) !== (RTF_UP | RTF_GATEWAY) || (flags & RTF_REJECT) !== 0 || iface === 'lo')
      continue
    routes.push({ family: 6, interface: iface, gateway: hexToIpv6(gateway), metric: parseInt(metric, 16) })
  }
  return routes.sort(byMetric)
}

/** Default routes in the output of `ip -j route show default` (either family). */
export function parseIpRouteJson(text: string): DefaultRoute[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return []
  }
  if (!Array.isArray(parsed)) return []
  const routes: DefaultRoute[] = []
  for (const r of parsed as Array<Record<string, unknown>>) {
    if (r === null || typeof r !== 'object' || r.dst !== 'default') continue
    const gateway = r.gateway
    const dev = r.dev
    if (typeof gateway !== 'string' || typeof dev !== 'string') continue
    const family = isIPv4(gateway) ? 4 : isIPv6(gateway) ? 6 : undefined
    if (family === undefined) continue
    routes.push({ family, interface: dev, gateway, metric: typeof r.metric === 'number' ? r.metric : 0 })
  }
  return routes.sort(byMetric)
}

export interface RouteSources {
  readText?: (path: string) => Promise<string>
  /** Runs `ip` with these arguments and returns stdout. */
  runIp?: (args: string[]) => Promise<string>
}

const readText = (path: string): Promise<string> => readFile(path, 'utf8')
const runIp = (args: string[]): Promise<string> =>
  new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: 5000, maxBuffer: 1 << 20 }, (err, stdout) => (err ? reject(err) : resolve(stdout)))
  })

/** The IPv4 default route: /proc/net/route first, then `ip -j -4 route show default`. */
export async function defaultRoute(sources: RouteSources = {}): Promise<DefaultRoute> {
  const read = sources.readText ?? readText
  const ip = sources.runIp ?? runIp
  const fromProc = await read('/proc/net/route').then(parseProcNetRoute, () => [])
  const route = fromProc[0] ?? (await ip(['-j', '-4', 'route', 'show', 'default']).then(parseIpRouteJson, () => []))[0]
  if (route === undefined) {
    throw new GatewayNotFoundError('no IPv4 default route: this machine has no gateway to ask for a port mapping')
  }
  return route
}

/** The IPv6 default route, if any. */
export async function defaultRoute6(sources: RouteSources = {}): Promise<DefaultRoute | undefined> {
  const read = sources.readText ?? readText
  const ip = sources.runIp ?? runIp
  const fromProc = await read('/proc/net/ipv6_route').then(parseProcIpv6Route, () => [])
  return fromProc[0] ?? (await ip(['-j', '-6', 'route', 'show', 'default']).then(parseIpRouteJson, () => []))[0]
}

function ipv4ToNumber(ip: string): number {
  return ip.split('.').reduce((n, part) => n * 256 + Number(part), 0)
}

/** The 8 16-bit groups of an IPv6 address (zone id dropped, embedded IPv4 allowed). */
export function ipv6Groups(ip: string): number[] {
  const bare = ip.split('%')[0] ?? ''
  if (!isIPv6(bare)) throw new RangeError(`${JSON.stringify(ip)} is not an IPv6 address`)
  let text = bare
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (v4 !== null) {
    const n = ipv4ToNumber(v4[1] as string)
    text = `${text.slice(0, v4.index)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`
  }
  const [head = '', tail] = text.split('::')
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)))
  const left = parse(head)
  const right = tail === undefined ? [] : parse(tail)
  const zeros = tail === undefined ? 0 : 8 - left.length - right.length
  return [...left, ...new Array<number>(zeros).fill(0), ...right]
}

function compressIpv6(groups: number[]): string {
  let bestStart = -1
  let bestLen = 0
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen && j - i > 1) [bestStart, bestLen] = [i, j - i]
    i = j
  }
  const hex = groups.map((g) => g.toString(16))
  if (bestStart < 0) return hex.join(':')
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`
}

export type AddressScope =
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'shared'
  | 'link-local'
  | 'unique-local'
  | 'multicast'
  | 'documentation'
  | 'reserved'
  | 'public'

/** [first address, prefix length, scope] for IPv4, most specific entries first where they overlap. */
const IPV4_RANGES: Array<[string, number, AddressScope]> = [
  ['0.0.0.0', 32, 'unspecified'],
  ['0.0.0.0', 8, 'reserved'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'shared'], // RFC 6598 carrier-grade NAT
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'reserved'],
  ['192.0.2.0', 24, 'documentation'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'reserved'],
  ['198.51.100.0', 24, 'documentation'],
  ['203.0.113.0', 24, 'documentation'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'],
]

function ipv4Scope(ip: string): AddressScope {
  const n = ipv4ToNumber(ip)
  for (const [base, bits, scope] of IPV4_RANGES) {
    const size = 2 ** (32 - bits)
    const start = ipv4ToNumber(base)
    if (n >= start && n < start + size) return scope
  }
  return 'public'
}

function ipv6Scope(ip: string): AddressScope {
  const g = ipv6Groups(ip)
  const [g0 = 0, g1 = 0] = g
  if (g.every((x) => x === 0)) return 'unspecified'
  if (g.slice(0, 7).every((x) => x === 0) && g[7] === 1) return 'loopback'
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return ipv4Scope(`${(g[6] ?? 0) >> 8}.${(g[6] ?? 0) & 255}.${(g[7] ?? 0) >> 8}.${(g[7] ?? 0) & 255}`)
  }
  if ((g0 & 0xffc0) === 0xfe80) return 'link-local'
  if ((g0 & 0xffc0) === 0xfec0) return 'private' // deprecated site-local
  if ((g0 & 0xfe00) === 0xfc00) return 'unique-local'
  if ((g0 & 0xff00) === 0xff00) return 'multicast'
  if (g0 === 0x2001 && g1 === 0x0db8) return 'documentation'
  if ((g0 & 0xe000) === 0x2000) return 'public'
  return 'reserved'
}

/** What kind of address this is (IPv4 or IPv6; IPv4-mapped IPv6 is judged as its IPv4). */
export function addressScope(ip: string): AddressScope {
  if (isIPv4(ip)) return ipv4Scope(ip)
  if (isIPv6(ip.split('%')[0] ?? '')) return ipv6Scope(ip)
  throw new RangeError(`${JSON.stringify(ip)} is not an IP address`)
}

const PRIVATE_SCOPES: ReadonlySet<AddressScope> = new Set([
  'loopback',
  'private',
  'shared',
  'link-local',
  'unique-local',
])

/** RFC 1918, CGNAT 100.64/10, link-local, ULA fc00::/7, site-local and loopback. */
export function isPrivateAddress(ip: string): boolean {
  return PRIVATE_SCOPES.has(addressScope(ip))
}

/** A globally routable unicast address: one that peers on the internet can dial. */
export function isPublicAddress(ip: string): boolean {
  return addressScope(ip) === 'public'
}

function inSubnet(address: string, cidr: string | null | undefined, gateway: string): boolean {
  if (cidr === null || cidr === undefined || !isIPv4(gateway) || !isIPv4(address)) return false
  const bits = Number(cidr.split('/')[1])
  if (!Number.isInteger(bits) || bits < 0 || bits > 32) return false
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
  return (ipv4ToNumber(address) & mask) >>> 0 === (ipv4ToNumber(gateway) & mask) >>> 0
}

/**
 * Our IPv4 address that faces the gateway: one in the gateway's subnet (on the route's
 * interface first), else the route interface's first address, else any private IPv4 address.
 */
export function chooseLanAddress(
  route: { interface?: string; gateway: string },
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces(),
): string | undefined {
  const v4 = (list: NetworkInterfaceInfo[] | undefined): NetworkInterfaceInfo[] =>
    (list ?? []).filter((a) => a.family === 'IPv4' && !a.internal)
  const onRoute = route.interface === undefined ? [] : v4(interfaces[route.interface])
  const all = Object.values(interfaces).flatMap(v4)
  const sameSubnet = (a: NetworkInterfaceInfo): boolean => inSubnet(a.address, a.cidr, route.gateway)
  const best =
    onRoute.find(sameSubnet) ?? all.find(sameSubnet) ?? onRoute[0] ?? all.find((a) => isPrivateAddress(a.address))
  return best?.address
}

/** Our globally routable IPv6 addresses (these need no NAT mapping, only an open firewall). */
export function publicIpv6Addresses(interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): string[] {
  const out: string[] = []
  for (const list of Object.values(interfaces)) {
    for (const a of list ?? [])
      if (a.family === 'IPv6' && !a.internal && isPublicAddress(a.address)) out.push(a.address)
  }
  return out
}
