import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { FastifyRequest } from 'fastify'
import { HostNotAllowedError, HostPolicy, OriginNotAllowedError, parseHostHeader } from './host-check.ts'

function request(headers: Record<string, string>, localAddress = '127.0.0.1'): FastifyRequest {
  return { headers, socket: { localAddress } } as unknown as FastifyRequest
}

function verdict(policy: HostPolicy, headers: Record<string, string>, localAddress?: string): string {
  try {
    policy.check(request(headers, localAddress))
    return 'ok'
  } catch (err) {
    if (err instanceof HostNotAllowedError) return 'host'
    if (err instanceof OriginNotAllowedError) return 'origin'
    throw err
  }
}

test('parseHostHeader: names, IPv4, bracketed IPv6, ports; garbage is undefined', () => {
  assert.deepEqual(parseHostHeader('LocalHost.:26657'), { name: 'localhost', port: 26657 })
  assert.deepEqual(parseHostHeader('[::1]:80'), { name: '::1', port: 80 })
  assert.deepEqual(parseHostHeader('10.0.0.5'), { name: '10.0.0.5', port: undefined })
  for (const bad of ['', 'a b', 'user@host', 'host:99999', '[::1', 'host:port', 'a/b']) {
    assert.equal(parseHostHeader(bad), undefined, bad)
  }
})

test('HostPolicy: loopback, the connection’s own address and configured names pass; rebound names are refused', () => {
  const policy = new HostPolicy({ allowedHosts: ['node.lan', 'proxy.example:8443'] })
  const cases: Array<[string, string, string | undefined]> = [
    ['127.0.0.1:26657', 'ok', undefined],
    ['localhost:8080', 'ok', undefined],
    ['[::1]:26657', 'ok', undefined],
    ['dash.localhost:26657', 'ok', undefined],
    ['192.168.1.5:26657', 'ok', '192.168.1.5'],
    ['192.168.1.5:26657', 'ok', '::ffff:192.168.1.5'],
    ['192.168.1.6:26657', 'host', '192.168.1.5'],
    ['node.lan:443', 'ok', undefined],
    ['proxy.example:8443', 'ok', undefined],
    ['proxy.example:443', 'host', undefined],
    ['evil.example:26657', 'host', undefined],
    ['localhost.evil.example', 'host', undefined],
    ['not a host', 'host', undefined],
  ]
  for (const [host, expected, local] of cases) assert.equal(verdict(policy, { host }, local), expected, host)
  assert.equal(verdict(policy, {}), 'ok', 'no Host (HTTP/1.0) passes')
  assert.equal(verdict(new HostPolicy({ allowedHosts: ['*'] }), { host: 'evil.example' }), 'ok', '* turns it off')
  assert.throws(() => new HostPolicy({ allowedHosts: ['bad host'] }), /is not a host\[:port\]/)
})

test('HostPolicy: Origin must be the origin the request is addressed to, or a CORS origin', () => {
  const policy = new HostPolicy({ cors: ['http://localhost:5173'] })
  const host = '127.0.0.1:26657'
  assert.equal(verdict(policy, { host, origin: 'http://127.0.0.1:26657' }), 'ok')
  assert.equal(verdict(policy, { host, origin: 'http://localhost:5173' }), 'ok')
  assert.equal(verdict(policy, { host, origin: 'http://localhost:26657' }), 'origin', 'another name is another origin')
  assert.equal(verdict(policy, { host, origin: 'http://evil.example' }), 'origin')
  assert.equal(verdict(policy, { host, origin: 'null' }), 'origin')
  assert.equal(verdict(policy, { host: 'node.lan', origin: 'https://node.lan' }, undefined), 'host')
  const proxied = new HostPolicy({ allowedHosts: ['node.example.org'] })
  assert.equal(verdict(proxied, { host: 'node.example.org', origin: 'https://node.example.org' }), 'ok')
  assert.equal(verdict(proxied, { host: 'node.example.org', origin: 'https://node.example.org:8443' }), 'origin')
})
