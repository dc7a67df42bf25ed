import { test } from 'node:test'
import assert from 'node:assert/strict'
import { clientKey } from './client-key.ts'

test('rate-limit keys: IPv4 as it is, IPv6 by its /64, IPv4-mapped IPv6 as IPv4', () => {
  assert.equal(clientKey('192.0.2.1'), '192.0.2.1')
  assert.equal(clientKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64')
  assert.equal(clientKey('2001:db8:1:2::1'), '2001:db8:1:2::/64', 'every address of a /64 is one client')
  assert.equal(clientKey('2001:DB8:0001:0002::FFFF'), '2001:db8:1:2::/64')
  assert.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64')
  assert.equal(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64')
  assert.equal(clientKey('::1'), '0:0:0:0::/64')
  assert.equal(clientKey('::ffff:192.0.2.7'), '192.0.2.7')
  assert.equal(clientKey('::ffff:c000:207'), '192.0.2.7')
  assert.equal(clientKey('64:ff9b::192.0.2.7'), '64:ff9b:0:0::/64')
  assert.equal(clientKey('not an address'), 'not an address')
})
