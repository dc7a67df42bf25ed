// A real devnet (two `donghae node` processes over libp2p): the peer count in /metrics and the
// `peer` events on /v1/events follow a node being killed and restarted; operator routes need the
// token printed by devnet.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ApiError, DonghaeClient, type EventMap, type NodeEvent } from '../src/api/client.ts'
import { BIN } from './helpers/cli.ts'
import { createRng, testSeed } from './helpers/random.ts'
import { waitFor } from './helpers/chain-net.ts'
import { exited, firstJsonLine, spawnDevnet } from './helpers/processes.ts'

interface DevnetInfo {
  password: string
  dashboard: string
  nodes: Array<{ node: string; did: string; api: string; home: string; pid: number }>
}

/** Event streams open on the node (donghae_event_streams). */
async function streamsOpen(client: DonghaeClient): Promise<number> {
  const text = await client.metrics().catch(() => '')
  const line = text.split('\n').find((l) => l.startsWith('donghae_event_streams '))
  return line === undefined ? -1 : Number(line.split(' ')[1])
}

async function peersMetric(client: DonghaeClient): Promise<number> {
  const text = await client.metrics().catch(() => '')
  const line = text.split('\n').find((l) => l.startsWith('donghae_peers '))
  return line === undefined ? -1 : Number(line.split(' ')[1])
}

test('devnet: killing a node drops donghae_peers and sends a peer event; its restart brings both back', async (t) => {
  const rng = createRng(testSeed())
  const dir = await mkdtemp(join(tmpdir(), 'donghae-api-devnet-'))
  const base = 23_000 + rng.int(0, 200) * 8
  const { child: devnet, stderr } = spawnDevnet(dir, 2, base)
  let restarted: ChildProcess | undefined
  let reading: Promise<void> | undefined
  const abort = new AbortController()
  try {
    const info = (await firstJsonLine(devnet)) as DevnetInfo
    const [n0, n1] = info.nodes as [DevnetInfo['nodes'][number], DevnetInfo['nodes'][number]]
    const token = (await readFile(join(n0.home, 'api-token'), 'utf8')).trim()
    assert.equal(info.dashboard, `${n0.api}/#token=${token}`, 'devnet prints node 0 dashboard with its token')
    const client = new DonghaeClient(n0.api, { token })
    await waitFor('node0 to see its peer', async () => (await peersMetric(client)) === 1, 60_000)

    const peerEvents: Array<EventMap['peer']> = []
    reading = (async () => {
      for await (const e of client.events({ types: ['peer'], signal: abort.signal }))
        peerEvents.push((e as NodeEvent<'peer'>).data)
    })()
    await waitFor('the event stream to open', async () => (await streamsOpen(client)) >= 1, 10_000)

    process.kill(n1.pid, 'SIGKILL')
    await waitFor('donghae_peers to drop to 0', async () => (await peersMetric(client)) === 0, 30_000)
    await waitFor(
      'a peer-disconnected event',
      async () => peerEvents.some((e) => !e.connected && e.did === n1.did),
      10_000,
    )
    const lost = peerEvents.find((e) => !e.connected) as EventMap['peer']
    assert.equal(lost.peers, 0)
    assert.match(lost.peerId, /^12D3KooW/)

    restarted = spawn(process.execPath, [BIN, '--home', n1.home, 'node', '--password-file', info.password, '--json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    await firstJsonLine(restarted)
    await waitFor('donghae_peers back to 1', async () => (await peersMetric(client)) === 1, 60_000)
    await waitFor('a peer-connected event', async () => peerEvents.some((e) => e.connected && e.did === n1.did), 10_000)

    // Operator routes on the real node: no token, no transfer; the token from the home works.
    // (That nothing is signed is checked in test/api-operator.test.ts, where no other transaction
    // can interleave: here node0 may sign transactions of its own at any moment.)
    await assert.rejects(
      new DonghaeClient(n0.api).transfer({ to: n1.did, amount: '7' }),
      (err) => err instanceof ApiError && err.status === 401 && err.code === 'UNAUTHORIZED',
    )
    const receiverBefore = BigInt((await client.account(n1.did)).balance)
    const sent = await client.transfer({ to: n1.did, amount: '7', memo: 'from the API test' })
    assert.equal(sent.from, n0.did)
    await client.waitForTx(sent.hash, { timeoutMs: 60_000 })
    assert.ok(BigInt((await client.account(n1.did)).balance) >= receiverBefore + 7n)
    t.diagnostic(`peer events seen: ${peerEvents.map((e) => (e.connected ? '+' : '-')).join('')}`)
  } catch (err) {
    t.diagnostic(stderr().slice(-2000))
    throw err
  } finally {
    abort.abort()
    await reading?.catch(() => undefined)
    restarted?.kill('SIGTERM')
    devnet.kill('SIGINT')
    await Promise.all([exited(devnet), ...(restarted === undefined ? [] : [exited(restarted)])])
    await rm(dir, { recursive: true, force: true })
  }
})
