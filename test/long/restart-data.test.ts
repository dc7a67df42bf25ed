// A node stopped at any point restarts from its database and catches up (issue 17, part 4).
// A 4-process devnet over real libp2p sockets under steady load (transfers from node0 and node1,
// inference jobs through node1's gateway). node3 is killed with SIGKILL three times:
//  A. at a random moment of the load: what it committed is still there (same blocks as the
//     others), it catches up by sync to the others' height, and with its bootstrap list emptied
//     it finds its peers again from the peer book it persisted (read from disk while it is dead);
//  B. just after its gateway answered a job: the receipt is in its database's settlement journal
//     at the kill (read from disk), and after the restart the job is settled on chain;
//  C. holding a wallet envelope for node2, itself killed earlier (both down: the chain stalls):
//     restarted, node3 delivers it, node2 (restarted too) decrypts the memo, and node3 records
//     node2's signed receipt.
// At the end all four nodes have the same blocks and nobody double-signed.
// Restarted nodes log to <home>/restarted.log; DONGHAE_RESTART_LOG_LEVEL=debug makes them say more,
// and DONGHAE_KEEP_LOGS=<dir> copies node2's and node3's homes (without data) there at the end.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { BIN } from '../helpers/cli.ts'
import { createRng, testSeed } from '../helpers/random.ts'
import { exited, firstJsonLine, spawnDevnet } from '../helpers/processes.ts'
import {
  blockHash,
  get,
  heightOf,
  nodeRef,
  operatorInfer,
  operatorTransfer,
  peerBookHas,
  peersOf,
  readChainDb,
  settlementOf,
  until,
  walletPayment,
  walletSend,
  type NodeRef,
} from '../helpers/node-api.ts'
import { NODE_PROCESS_FLAGS, nodeProcessEnv } from '../../src/cli/node-process.ts'

interface DevnetInfo {
  password: string
  nodes: Array<{ node: string; did: string; api: string; home: string; pid: number }>
}

/** Receives the load's transfers. */
const LOAD_SINK = 'did:key:z6Mkn3hpZFinkmW7qKdfcJyX1M22cag4WRembQytqhqEw7pf'

/** Transfers from node0 and node1 and a job through node1's gateway every fifth step, until stopped. */
function startLoad(nodes: NodeRef[]): { stop(): Promise<{ transfers: number; jobs: number }> } {
  let running = true
  const counts = { transfers: 0, jobs: 0 }
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const node = nodes[i % 2] as NodeRef
      if ((await operatorTransfer(node, LOAD_SINK, 1n)).status === 202) counts.transfers++
      if (i % 5 === 4 && (await operatorInfer(nodes[1] as NodeRef)).status === 200) counts.jobs++
      await sleep(300)
    }
  })()
  return {
    async stop() {
      running = false
      await loop
      return counts
    },
  }
}

test('restart from the database: SIGKILL under load, mid-settlement and holding an envelope; same chain, caught up, peers, receipt settled, envelope delivered', async (t) => {
  const seed = testSeed()
  t.diagnostic(`seed ${seed}`)
  const rng = createRng(seed)
  const dir = await mkdtemp(join(tmpdir(), 'donghae-restart-data-'))
  const base = 46_000 + rng.int(0, 200) * 10
  const { child: devnet, stderr } = spawnDevnet(dir, 4, base, { ...process.env, DONGHAE_API_RATE_LIMIT: '1000000' })
  const restarted = new Map<string, ChildProcess>()
  let load: ReturnType<typeof startLoad> | undefined
  const start = (row: DevnetInfo['nodes'][number], password: string): ChildProcess => {
    const child = spawn(
      process.execPath,
      [...NODE_PROCESS_FLAGS, BIN, '--home', row.home, 'node', '--password-file', password, '--json'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...nodeProcessEnv(),
          DONGHAE_API_RATE_LIMIT: '1000000',
          DONGHAE_PASSWORD: undefined,
          DONGHAE_LOG_LEVEL: process.env.DONGHAE_RESTART_LOG_LEVEL ?? 'info',
        },
      },
    )
    child.stderr?.pipe(createWriteStream(join(row.home, 'restarted.log'), { flags: 'a' }))
    restarted.set(row.node, child)
    return child
  }
  const kill = async (row: DevnetInfo['nodes'][number]): Promise<void> => {
    const again = restarted.get(row.node)
    if (again !== undefined) {
      again.kill('SIGKILL')
      await exited(again)
    } else {
      process.kill(row.pid, 'SIGKILL')
      await until(`${row.node} gone`, async () => (await heightOf(row.api)) === -1, 20_000)
    }
  }
  try {
    const info = (await firstJsonLine(devnet)) as DevnetInfo
    const rows = info.nodes
    const [row2, row3] = [rows[2], rows[3]] as [DevnetInfo['nodes'][number], DevnetInfo['nodes'][number]]
    const nodes = await Promise.all(rows.map(nodeRef))
    const [n0, , n2, n3] = nodes as [NodeRef, NodeRef, NodeRef, NodeRef]
    const dids = rows.map((r) => r.did)
    await until('node3 connected to the three others', async () => (await peersOf(n3.api)).length >= 3, 90_000)
    await until(
      'digits-mlp served by the four workers',
      async () => {
        const models = await get<{ data: Array<{ id: string; workers?: number }> }>(`${n0.api}/v1/models`)
        return models?.data.some((m) => m.id === 'digits-mlp' && (m.workers ?? 0) >= 4) === true
      },
      90_000,
    )
    load = startLoad(nodes)
    const others = (): Promise<number> =>
      Promise.all([n0, nodes[1] as NodeRef, n2].map((n) => heightOf(n.api))).then((h) => Math.max(...h))

    // ---- A. a random moment of the load -----------------------------------------------------------
    await until('a few blocks of load', async () => (await heightOf(n3.api)) >= 4, 60_000)
    await sleep(rng.int(0, 3_000))
    const seenA = await heightOf(n3.api)
    await kill(row3)
    const atKillA = await readChainDb(join(row3.home, 'data'))
    assert.ok(atKillA.height >= seenA, `committed ${seenA} before the kill, ${atKillA.height} on disk`)
    const inBook = await peerBookHas(join(row3.home, 'data'), dids.slice(0, 3))
    assert.deepEqual(inBook, dids.slice(0, 3), 'the peer book on disk holds the three others')
    // the others go on (three of four validators)
    await until('blocks without node3', async () => (await others()) > atKillA.height + 1, 60_000)
    const configPath = join(row3.home, 'config.json')
    const config = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>
    await writeFile(configPath, JSON.stringify({ ...config, bootstrap: [] }))
    const backA = (await firstJsonLine(start(row3, info.password))) as { height: number }
    // at least: the node may already have synced a block or two before it prints its line
    assert.ok(backA.height >= atKillA.height, `restarted at ${backA.height}, ${atKillA.height} on disk`)
    await until(
      'node3 back among its peers without a bootstrap list',
      async () => (await peersOf(n3.api)).length >= 2,
      60_000,
    )
    const goalA = await others()
    await until('node3 caught up by sync', async () => (await heightOf(n3.api)) >= goalA, 90_000)
    for (const h of [1, Math.ceil(atKillA.height / 2), atKillA.height, goalA])
      assert.equal(await blockHash(n3.api, h), await blockHash(n0.api, h), `block ${h} after restart A`)
    t.diagnostic(`A: killed at ${atKillA.height}, the others reached ${goalA - 0}, caught up`)

    // ---- B. just after node3's gateway answered a job ----------------------------------------------
    // the first job tops up node3's deposit with itself (and waits for the workers' adverts)
    await until('a first job through node3', async () => (await operatorInfer(n3)).status === 200, 90_000)
    const job = await operatorInfer(n3)
    await kill(row3)
    assert.equal(job.status, 200)
    const jobId = job.jobId as string
    const atKillB = await readChainDb(join(row3.home, 'data'))
    const pendingAtKill = atKillB.pendingReceipts.includes(jobId)
    const settledBefore = await settlementOf(n0.api, jobId)
    assert.ok(
      pendingAtKill || settledBefore !== undefined,
      'the receipt is in the settlement journal at the kill (or already settled)',
    )
    start(row3, info.password)
    await firstJsonLine(restarted.get(row3.node) as ChildProcess)
    const restartedAt = await others()
    const restartedTime = Date.now()
    await until(
      'the receipt node3 held settled',
      async () => (await settlementOf(n0.api, jobId)) !== undefined,
      120_000,
    )
    const settled = await settlementOf(n0.api, jobId)
    t.diagnostic(
      `B: receipt ${pendingAtKill ? 'journaled' : 'not journaled'} at the kill; settled at ${settled?.height}, ${Date.now() - restartedTime} ms after the restart at ${restartedAt} (job ${jobId.slice(0, 12)})`,
    )

    // ---- C. holding an envelope for node2, itself down ---------------------------------------------
    await kill(row2)
    const memo = 'restart-data: kimchi jjigae, Tuesday'
    const sent = await walletSend(n3, n2.did, 77n, memo)
    assert.equal(sent.status, 202, JSON.stringify(sent.body))
    const paymentId = sent.body.id
    await until(
      'the payment committed',
      async () => (await walletPayment(n3, paymentId))?.status === 'committed',
      60_000,
    )
    await until(
      'node3 trying to deliver the envelope',
      async () => {
        const list = await get<{ deliveries: Array<{ id: string; attempts: number }> }>(
          `${n3.api}/v1/operator/wallet/deliveries`,
          n3.token,
        )
        return list?.deliveries.some((d) => d.id === paymentId && d.attempts > 0) === true
      },
      60_000,
    )
    await kill(row3) // two of four down: the chain stalls until node3 is back
    start(row3, info.password)
    await firstJsonLine(restarted.get(row3.node) as ChildProcess)
    start(row2, info.password)
    await firstJsonLine(restarted.get(row2.node) as ChildProcess)
    await until(
      'node2 to receive the payment node3 held',
      async () => (await walletPayment(n2, paymentId))?.memo === memo,
      120_000,
    )
    await until(
      "node2's receipt recorded by node3",
      async () => (await walletPayment(n3, paymentId))?.delivery === 'acknowledged',
      120_000,
    )
    t.diagnostic('C: delivered and acknowledged after both restarts')

    const counts = await load.stop()
    load = undefined
    t.diagnostic(`load: ${counts.transfers} transfers, ${counts.jobs} jobs accepted`)
    const goal = await others()
    await until(
      'every node at the same height',
      async () => {
        const heights = await Promise.all(nodes.map((n) => heightOf(n.api)))
        return Math.min(...heights) >= goal
      },
      90_000,
    )
    for (let h = 1; h <= goal; h += Math.max(1, Math.floor(goal / 8))) {
      const hashes = await Promise.all(nodes.map((n) => blockHash(n.api, h)))
      assert.equal(new Set(hashes).size, 1, `nodes disagree at height ${h}`)
    }
    for (const did of dids) {
      const account = await get<{ stake: { tombstoned: boolean } | null }>(`${n0.api}/v1/accounts/${did}`)
      assert.equal(account?.stake?.tombstoned, false, `${did} double-signed`)
    }
  } catch (err) {
    t.diagnostic(stderr().slice(-3000))
    throw err
  } finally {
    await load?.stop()
    for (const child of restarted.values()) child.kill('SIGTERM')
    devnet.kill('SIGINT')
    await Promise.all([exited(devnet), ...[...restarted.values()].map(exited)])
    if (process.env.DONGHAE_KEEP_LOGS !== undefined)
      for (const i of [2, 3])
        await cp(join(dir, `node${i}`), join(process.env.DONGHAE_KEEP_LOGS, `node${i}`), {
          recursive: true,
          filter: (p) => !p.includes('/data/'),
        })
    await rm(dir, { recursive: true, force: true })
  }
})
