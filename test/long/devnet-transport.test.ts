// `donghae devnet --transport quic`: two validator processes that have QUIC only (no TCP
// listener, no TCP transport) meet over QUIC and commit a transfer (two validators of two: the
// block needs both nodes' votes); each node's addresses and its connection to the other are QUIC
// (GET /v1/net). The WebSocket-only
// case runs at host level (transports.test.ts), where it costs a second instead of a devnet.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BIN } from '../helpers/cli.ts'
import { createRng, testSeed } from '../helpers/random.ts'
import { waitFor } from '../helpers/chain-net.ts'
import { exited, firstJsonLine, getJson } from '../helpers/processes.ts'

interface DevnetInfo {
  transport: string
  password: string
  nodes: Array<{ node: string; did: string; api: string; home: string; p2p: string }>
}

interface NetView {
  addresses: string[]
  peers: Array<{ did: string; addresses: string[] }>
}

type Node = DevnetInfo['nodes'][number]

const QUIC = /^\/ip4\/127\.0\.0\.1\/udp\/\d+\/quic-v1(\/|$)/

async function height(api: string): Promise<number> {
  return (await getJson<{ height: number }>(`${api}/v1/status`))?.height ?? -1
}

test('devnet --transport quic: 2 QUIC-only validator processes connect over /quic-v1 and commit a transfer', async (t) => {
  const started = performance.now()
  const rng = createRng(testSeed())
  const dir = await mkdtemp(join(tmpdir(), 'donghae-devnet-quic-'))
  // below 32768 (Linux's ephemeral ports), away from 26657 and the other devnet tests' 20000-22400
  const base = 30_200 + rng.int(0, 300) * 8
  t.diagnostic(`base port ${base}`)
  const devnet = spawn(
    process.execPath,
    [BIN, '--home', dir, 'devnet', '--nodes', '2', '--base-port', String(base), '--transport', 'quic', '--json'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let stderr = ''
  devnet.stderr.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-20_000)))
  try {
    const info = (await firstJsonLine(devnet)) as DevnetInfo
    const up = performance.now()
    assert.equal(info.transport, 'quic')
    const [n0, n1] = info.nodes as [Node, Node]
    for (const n of info.nodes) assert.match(n.p2p, QUIC, `${n.node}'s bootstrap address`)
    const peerOf = async (self: Node, other: Node): Promise<NetView['peers'][number] | undefined> =>
      (await getJson<NetView>(`${self.api}/v1/net`))?.peers.find((p) => p.did === other.did)
    // node1 dials node0 (its bootstrap address, QUIC) as it starts
    await waitFor('the two nodes to connect', async () => (await peerOf(n0, n1)) !== undefined, 30_000)

    // The chain makes no empty blocks: a transfer from node0's account makes one. It goes through
    // node0's operator API, which signs with the node's own transaction queue: a CLI transfer
    // could race the node's own start-up transactions for the account's next nonce.
    const token = (await readFile(join(n0.home, 'api-token'), 'utf8')).trim()
    const res = await fetch(`${n0.api}/v1/operator/transfer`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ to: n1.did, amount: '1' }),
    })
    assert.equal(res.status, 202, await res.clone().text())
    const { hash } = (await res.json()) as { hash: string }
    let committed = -1
    await waitFor(
      'the transfer to commit',
      async () => {
        committed = (await getJson<{ height: number }>(`${n0.api}/v1/tx/${hash}`))?.height ?? -1
        return committed > 0
      },
      60_000,
    )
    const transferred = performance.now()
    // two validators of two: the block could not commit without node1's votes, which came over QUIC
    await waitFor('both nodes to have the transfer', async () => (await height(n1.api)) >= committed, 60_000)
    assert.equal(
      (await getJson<{ hash: string }>(`${n0.api}/v1/chain/blocks/${committed}`))?.hash,
      (await getJson<{ hash: string }>(`${n1.api}/v1/chain/blocks/${committed}`))?.hash,
      'both nodes hold the same block',
    )

    for (const [self, other] of [
      [n0, n1],
      [n1, n0],
    ] as const) {
      const net = await getJson<NetView>(`${self.api}/v1/net`)
      assert.ok(net !== undefined, `${self.node} answers /v1/net`)
      const direct = net.addresses.filter((a) => !a.includes('/p2p-circuit'))
      assert.ok(direct.length > 0, `${self.node} listens`)
      for (const a of direct) assert.match(a, QUIC, `${self.node} listens on ${a}`)
      assert.ok(!net.addresses.some((a) => a.includes('/tcp/')), `${self.node} has no TCP address`)
      const peer = await peerOf(self, other)
      assert.ok(peer !== undefined, `${self.node} is connected to ${other.node}`)
      for (const a of peer.addresses) assert.match(a, QUIC, `${self.node} ↔ ${other.node} over ${a}`)
    }
    const ms = (from: number, to: number): string => `${Math.round(to - from)} ms`
    t.diagnostic(
      `nodes up in ${ms(started, up)}; transfer committed at height ${committed} in ${ms(up, transferred)}; ${ms(started, performance.now())} in all`,
    )
  } catch (err) {
    t.diagnostic(stderr.slice(-2_000))
    throw err
  } finally {
    devnet.kill('SIGINT')
    await exited(devnet)
    await rm(dir, { recursive: true, force: true })
  }
})
