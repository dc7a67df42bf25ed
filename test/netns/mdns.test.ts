/**
 * LAN discovery: two real Donghae hosts with mDNS on and no bootstrap list, in two network
 * namespaces joined by one link (see lab.ts `LinkLab`), find each other by multicast DNS and then
 * connect. Loopback would not do: multicast there depends on the machine. Skips (with the reason)
 * only when network namespaces cannot be made (not root); CI runs as root.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import { LinkLab, LINK_A, LINK_B, namespacesUnavailable } from './lab.ts'

const HOST = fileURLToPath(new URL('./fixtures/donghae-host.ts', import.meta.url))
const unavailable = await namespacesUnavailable()

interface Line {
  event: string
  peerId: string
  addrs: string[]
  connected?: boolean
}

test(
  'mDNS: two hosts on one link, no bootstrap, find each other by multicast and connect',
  { timeout: 60_000 },
  async (t) => {
    if (unavailable !== undefined) {
      // Justified skip: only without root or network namespaces; the reason is printed.
      t.skip(unavailable) // justified: no root or no network namespaces here (see the comment above)
      return
    }
    const lab = await LinkLab.create()
    try {
      const options = JSON.stringify({ port: 4021, mdns: true, bootstrap: [] })
      const a = lab.node(lab.ns.a, HOST, [options])
      const idA = (await a.waitFor<Line>((l) => l.event === 'listening', 20_000, 'A listening')).peerId
      const b = lab.node(lab.ns.b, HOST, [options])
      const idB = (await b.waitFor<Line>((l) => l.event === 'listening', 20_000, 'B listening')).peerId
      const started = Date.now()

      // Neither dials anyone yet, so each can only have learnt of the other from a multicast answer.
      // (A hears of B at its next query: the host asks every 10 s.)
      const foundByB = await b.waitFor<Line>((l) => l.event === 'discovered' && l.peerId === idA, 20_000, 'B finds A')
      const foundByA = await a.waitFor<Line>((l) => l.event === 'discovered' && l.peerId === idB, 20_000, 'A finds B')
      t.diagnostic(`both found within ${Date.now() - started} ms`)
      for (const [found, addr] of [
        [foundByB, LINK_A],
        [foundByA, LINK_B],
      ] as const) {
        assert.equal(found.connected, false, 'found before any connection')
        assert.ok(
          found.addrs.some((m) => m.startsWith(`/ip4/${addr}/tcp/4021`)),
          `announces its link address: ${found.addrs}`,
        )
      }

      // The discovery service dials the peers in the peer book: the two connect over the link.
      b.child.stdin?.write('network\n')
      await a.waitFor<Line>((l) => l.event === 'connected' && l.peerId === idB, 15_000, 'A connected to B')
      await b.waitFor<Line>((l) => l.event === 'connected' && l.peerId === idA, 15_000, 'B connected to A')
      assert.equal(await a.stop('SIGTERM'), 0, a.stderr)
      assert.equal(await b.stop('SIGTERM'), 0, b.stderr)
    } finally {
      await lab.teardown()
    }
  },
)
