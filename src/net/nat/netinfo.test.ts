// Local network facts: default routes from /proc and `ip -j`, address classification, and the
// choice of the LAN address that faces the gateway.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { NetworkInterfaceInfo } from 'node:os'
import {
  addressScope,
  chooseLanAddress,
  defaultRoute,
  defaultRoute6,
  isPrivateAddress,
  isPublicAddress,
  parseIpRouteJson,
  parseProcIpv6Route,
  parseProcNetRoute,
  publicIpv6Addresses,
  type AddressScope,
} from './netinfo.ts'
import { GatewayNotFoundError } from './errors.ts'

const PROC_ROUTE = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t01004D0A\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t00004D0A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
tun0\t00000000\t00000000\t0201\t0\t0\t50\t00000000\t0\t0\t0
`

const PROC_IPV6_ROUTE = `fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000002 00000000 00000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo
`

test('/proc/net/route: default routes by metric, gateways decoded from host byte order; reject routes skipped', () => {
  assert.deepEqual(parseProcNetRoute(PROC_ROUTE, true), [
    { family: 4, interface: 'eth0', gateway: '10.77.0.1', metric: 100 },
    { family: 4, interface: 'wlan0', gateway: '192.168.1.1', metric: 600 },
  ])
  assert.equal(parseProcNetRoute(PROC_ROUTE.replace('0101A8C0', 'C0A80101'), false)[1]?.gateway, '192.168.1.1')
  assert.deepEqual(parseProcNetRoute('Iface\tDestination\n'), [])
  assert.deepEqual(parseProcNetRoute('garbage\nx y z\n'), [])
})

test('/proc/net/ipv6_route: the ::/0 route via a gateway, not the lo reject route', () => {
  assert.deepEqual(parseProcIpv6Route(PROC_IPV6_ROUTE), [
    { family: 6, interface: 'eth0', gateway: 'fe80::1', metric: 1024 },
  ])
})

test('`ip -j route show default` is the fallback when /proc/net/route is missing', async () => {
  const json =
    '[{"dst":"default","gateway":"10.77.0.1","dev":"lan0","flags":[]},{"dst":"default","gateway":"fd00::1","dev":"eth0","metric":1024}]'
  assert.deepEqual(parseIpRouteJson(json)[0], { family: 4, interface: 'lan0', gateway: '10.77.0.1', metric: 0 })
  assert.deepEqual(parseIpRouteJson('not json'), [])
  const route = await defaultRoute({
    readText: () => Promise.reject(new Error('ENOENT')),
    runIp: (args) => {
      assert.deepEqual(args, ['-j', '-4', 'route', 'show', 'default'])
      return Promise.resolve(json)
    },
  })
  assert.equal(route.gateway, '10.77.0.1')
  await assert.rejects(
    defaultRoute({ readText: () => Promise.resolve('Iface\n'), runIp: () => Promise.resolve('[]') }),
    GatewayNotFoundError,
  )
  const v6 = await defaultRoute6({
    readText: () => Promise.resolve(PROC_IPV6_ROUTE),
    runIp: () => Promise.resolve('[]'),
  })
  assert.equal(v6?.gateway, 'fe80::1')
})

test('address classification: IPv4', () => {
  const table: Array<[string, AddressScope]> = [
    ['10.0.0.1', 'private'],
    ['10.255.255.255', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.254', 'private'],
    ['172.32.0.1', 'public'],
    ['172.15.255.255', 'public'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'shared'],
    ['100.127.255.255', 'shared'],
    ['100.128.0.1', 'public'],
    ['100.63.255.255', 'public'],
    ['127.0.0.1', 'loopback'],
    ['169.254.10.1', 'link-local'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'reserved'],
    ['192.0.2.5', 'documentation'],
    ['198.51.100.5', 'documentation'],
    ['203.0.113.5', 'documentation'],
    ['198.18.0.1', 'reserved'],
    ['224.0.0.251', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['8.8.8.8', 'public'],
    ['11.0.0.1', 'public'],
    ['1.1.1.1', 'public'],
  ]
  for (const [ip, scope] of table) assert.equal(addressScope(ip), scope, ip)
  assert.equal(isPrivateAddress('100.64.0.1'), true)
  assert.equal(isPrivateAddress('8.8.8.8'), false)
  assert.equal(isPublicAddress('192.0.2.1'), false)
  assert.equal(isPrivateAddress('224.0.0.1'), false)
  assert.throws(() => addressScope('10.0.0.256'), RangeError)
})

test('address classification: IPv6', () => {
  const table: Array<[string, AddressScope]> = [
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['febf::1', 'link-local'],
    ['fec0::1', 'private'],
    ['fc00::1', 'unique-local'],
    ['fd12:3456:789a::1', 'unique-local'],
    ['ff02::1', 'multicast'],
    ['2001:db8::1', 'documentation'],
    ['2001:4860:4860::8888', 'public'],
    ['2a00:1450:4001:81b::200e', 'public'],
    ['::ffff:10.1.2.3', 'private'],
    ['::ffff:8.8.8.8', 'public'],
    ['::ffff:100.64.1.1', 'shared'],
    ['100::1', 'reserved'],
  ]
  for (const [ip, scope] of table) assert.equal(addressScope(ip), scope, ip)
  assert.equal(isPrivateAddress('fd00::2'), true)
  assert.equal(isPublicAddress('2001:4860::1'), true)
  assert.throws(() => addressScope('fe80::g'), RangeError)
})

const iface = (
  address: string,
  cidr: string,
  family: 'IPv4' | 'IPv6' = 'IPv4',
  internal = false,
): NetworkInterfaceInfo =>
  ({ address, cidr, family, internal, netmask: '', mac: '00:00:00:00:00:00' }) as NetworkInterfaceInfo

test('LAN address: the one in the gateway subnet on the route interface, else a fallback', () => {
  const interfaces = {
    lo: [iface('127.0.0.1', '127.0.0.1/8', 'IPv4', true)],
    docker0: [iface('172.17.0.1', '172.17.0.1/16')],
    eth0: [
      iface('fe80::1', 'fe80::1/64', 'IPv6'),
      iface('192.168.5.20', '192.168.5.20/24'),
      iface('10.77.0.2', '10.77.0.2/24'),
    ],
  }
  assert.equal(chooseLanAddress({ interface: 'eth0', gateway: '10.77.0.1' }, interfaces), '10.77.0.2')
  assert.equal(chooseLanAddress({ interface: 'eth0', gateway: '192.168.5.1' }, interfaces), '192.168.5.20')
  assert.equal(chooseLanAddress({ gateway: '172.17.0.254' }, interfaces), '172.17.0.1')
  assert.equal(chooseLanAddress({ interface: 'eth0', gateway: '10.9.9.9' }, interfaces), '192.168.5.20')
  assert.equal(chooseLanAddress({ interface: 'wlan9', gateway: '10.9.9.9' }, { lo: interfaces.lo }), undefined)
  assert.deepEqual(
    publicIpv6Addresses({
      eth0: [iface('2001:4860::5', '2001:4860::5/64', 'IPv6'), iface('fd00::5', 'fd00::5/64', 'IPv6')],
    }),
    ['2001:4860::5'],
  )
})
