// A devnet of four validator processes on loopback over real libp2p sockets: blocks commit; one
// validator killed with SIGKILL does not stop the chain; restarted, it catches up; every node
// has the same blocks and state roots.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BIN, runCli } from './helpers/cli.ts'
import { createRng, testSeed } from './helpers/random.ts'
import { waitFor } from './helpers/chain-net.ts'
import { exited, firstJsonLine, getJson, spawnDevnet } from './helpers/processes.ts'
import { findJemalloc } from '../src/cli/node-process.ts'

interface DevnetInfo {
  dir: string
  password: string
  nodes: Array<{ node: string; did: string; api: string; home: string; pid: number }>
}

async function height(api: string): Promise<number> {
  return (await getJson<{ height: number }>(`${api}/v1/status`))?.height ?? -1
}

test('devnet: 4 processes commit over libp2p; kill -9 one, the chain goes on; restarted, it catches up; all agree', async (t) => {
  const rng = createRng(testSeed())
  const dir = await mkdtemp(join(tmpdir(), 'donghae-devnet-'))
  const base = 20_000 + rng.int(0, 300) * 8
  const { child: devnet, stderr } = spawnDevnet(dir, 4, base)
  let restarted: ChildProcess | undefined
  try {
    const info = (await firstJsonLine(devnet)) as DevnetInfo
    const apis = info.nodes.map((n) => n.api)
    if (process.platform === 'linux') {
      // the node processes run on jemalloc where the machine has it (src/cli/node-process.ts), else on glibc's malloc
      const jemalloc = findJemalloc()
      for (const n of info.nodes) {
        const maps = await readFile(`/proc/${n.pid}/maps`, 'utf8')
        assert.equal(
          maps.includes('libjemalloc.so'),
          jemalloc !== undefined,
          `${n.node}: jemalloc ${jemalloc ?? 'absent'}`,
        )
      }
    }
    // The chain makes no empty blocks: transfers from node0's key (the real CLI, `--wait`) drive it.
    const sink = info.nodes[2]?.did as string
    const transfer = async (api: string): Promise<number> => {
      const sent = await runCli([
        '--home',
        (info.nodes[0] as DevnetInfo['nodes'][number]).home,
        'tx',
        'transfer',
        '--to',
        sink,
        '--amount',
        '1',
        '--wait',
        '--json',
        '--node',
        api,
        '--password-file',
        info.password,
      ])
      assert.equal(sent.code, 0, sent.stderr)
      return (JSON.parse(sent.stdout) as { height: number }).height
    }
    const first = await transfer(apis[0] as string)
    await waitFor(
      'every node to have the first transfer',
      async () => (await Promise.all(apis.map(height))).every((h) => h >= first),
      60_000,
    )

    const victim = info.nodes[3] as DevnetInfo['nodes'][number]
    process.kill(victim.pid, 'SIGKILL')
    const atKill = Math.max(...(await Promise.all(apis.slice(0, 3).map(height))))
    // three validators of four still make a quorum: each transfer commits without node3
    let last = atKill
    for (let i = 0; i < 3; i++) last = await transfer(apis[i % 3] as string)
    assert.ok(last > atKill, `blocks after the kill (${atKill} → ${last})`)
    assert.equal(await height(victim.api), -1, 'the killed node is gone')

    restarted = spawn(
      process.execPath,
      [BIN, '--home', victim.home, 'node', '--password-file', info.password, '--json'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    await firstJsonLine(restarted)
    const goal = Math.max(last, ...(await Promise.all(apis.slice(0, 3).map(height))))
    await waitFor('the restarted node to catch up', async () => (await height(victim.api)) >= goal, 60_000)

    const top = Math.min(...(await Promise.all(apis.map(height))))
    for (const h of [1, Math.floor(top / 2), atKill, top]) {
      const blocks = await Promise.all(
        apis.map((api) => getJson<{ hash: string; header: { stateRoot: string } }>(`${api}/v1/chain/blocks/${h}`)),
      )
      assert.equal(new Set(blocks.map((b) => b?.hash)).size, 1, `nodes disagree on block ${h}`)
      assert.equal(new Set(blocks.map((b) => b?.header.stateRoot)).size, 1, `nodes disagree on the state root at ${h}`)
    }
    // DID records in the DHT: node1's record, asked through node3, carries node1's API endpoint.
    const node1 = info.nodes[1] as DevnetInfo['nodes'][number]
    await waitFor(
      'node1 record in the DHT',
      async () => {
        const resolved = await runCli(['did', 'resolve', node1.did, '--node', victim.api])
        const doc = JSON.parse(resolved.stdout || '{}') as { service?: Array<{ serviceEndpoint: string }> }
        return doc.service?.some((s) => s.serviceEndpoint === node1.api) === true
      },
      30_000,
    )
    t.diagnostic(`height ${top} reached; killed at ${atKill}`)
  } catch (err) {
    t.diagnostic(stderr().slice(-2000))
    throw err
  } finally {
    restarted?.kill('SIGTERM')
    devnet.kill('SIGINT')
    await Promise.all([exited(devnet), ...(restarted === undefined ? [] : [exited(restarted)])])
    await rm(dir, { recursive: true, force: true })
  }
})
