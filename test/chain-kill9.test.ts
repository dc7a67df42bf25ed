// Kill -9 during consensus: a local chain of four validators runs in a child process; a
// transaction is committed; the process is killed with SIGKILL at a random moment and started
// again on the same directory. Nothing committed is lost, nobody double-signed (a double sign
// would be reported as evidence and slashed), and the chain goes on.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { BIN, runCli } from './helpers/cli.ts'
import { createRng, testSeed } from './helpers/random.ts'
import { waitFor } from './helpers/chain-net.ts'
import { getJson } from './helpers/processes.ts'

const PASSWORD = 'donghae-localnet-insecure'

function startLocalnet(dir: string, basePort: number): ChildProcess {
  return spawn(
    process.execPath,
    [BIN, 'localnet', '--dir', dir, '--base-port', String(basePort), '--poh', 'inline', '--json'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
    },
  )
}

/** Receives the transfers that keep the chain deciding while it is killed. */
const PULSE_SINK = 'did:key:z6Mkn3hpZFinkmW7qKdfcJyX1M22cag4WRembQytqhqEw7pf'

async function heightOf(api: string): Promise<number> {
  return (await getJson<{ height: number }>(`${api}/v1/status`))?.height ?? -1
}

function killed(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve()
    else child.on('exit', () => resolve())
  })
}

test('SIGKILL during consensus: committed transactions survive, no double sign, the chain resumes', async (t) => {
  const seed = testSeed()
  t.diagnostic(`seed ${seed}`)
  const rng = createRng(seed)
  const dir = await mkdtemp(join(tmpdir(), 'donghae-kill9-'))
  const basePort = 30_000 + rng.int(0, 600) * 4 // below the ephemeral range (32768+)
  const apis = [0, 1, 2, 3].map((i) => `http://127.0.0.1:${basePort + i}`)
  let child = startLocalnet(dir, basePort)
  try {
    // the chain makes no empty blocks: it waits for the first transaction
    await waitFor(
      'every node to answer',
      async () => (await Promise.all(apis.map(heightOf))).every((h) => h >= 0),
      60_000,
    )
    // A funded validator key (node0's keystore) sends a transfer through the real CLI.
    const to = 'did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp'
    const sent = await runCli(
      [
        '--home',
        join(dir, 'node0'),
        'tx',
        'transfer',
        '--to',
        to,
        '--amount',
        '777',
        '--wait',
        '--json',
        '--node',
        apis[1] as string,
      ],
      { DONGHAE_PASSWORD: PASSWORD },
    )
    assert.equal(sent.code, 0, sent.stderr)
    const { hash, height } = JSON.parse(sent.stdout) as { hash: string; height: number }
    assert.ok(height > 0)
    const validators = (
      (await getJson<{ validators: Array<{ did: string; power: string }> }>(`${apis[0]}/v1/status`))?.validators ?? []
    ).map((v) => v.did)
    assert.equal(validators.length, 4)

    // A transfer from node0's key through node1, without waiting (`--wait` adds a wait for the block).
    const pulse = (wait: boolean) =>
      runCli(
        [
          '--home',
          join(dir, 'node0'),
          'tx',
          'transfer',
          '--to',
          PULSE_SINK,
          '--amount',
          '1',
          ...(wait ? ['--wait'] : []),
          '--json',
          '--node',
          apis[1] as string,
        ],
        { DONGHAE_PASSWORD: PASSWORD },
      )
    for (let round = 0; round < 3; round++) {
      // An idle chain makes no blocks, so a transfer goes first: the kill lands while consensus
      // decides its block (or just after, at random).
      const inFlight = pulse(false)
      await sleep(rng.int(50, 1_500))
      child.kill('SIGKILL')
      await killed(child)
      await inFlight // it may have failed with the network it was talking to: that is the point
      child = startLocalnet(dir, basePort)
      await waitFor(`every node up after kill ${round + 1}`, async () => {
        for (const api of apis) if ((await heightOf(api)) < 0) return false
        return true
      })
      const after = await pulse(true)
      assert.equal(after.code, 0, `a transfer after kill ${round + 1} commits: ${after.stderr}`)
    }
    // The transaction is still committed at the same height, on every node.
    for (const api of apis) {
      await waitFor(
        `${api} to serve the tx`,
        async () => (await getJson<{ height: number }>(`${api}/v1/tx/${hash}`))?.height === height,
        30_000,
      )
      const account = await getJson<{ balance: string }>(`${api}/v1/accounts/${to}`)
      assert.equal(account?.balance, '777')
    }
    // Nobody was slashed: a double sign would have been reported and punished.
    for (const did of validators) {
      const account = await getJson<{ stake: { bonded: string; tombstoned: boolean } | null }>(
        `${apis[0]}/v1/accounts/${did}`,
      )
      assert.equal(account?.stake?.tombstoned, false, `${did} double-signed`)
      assert.equal(account?.stake?.bonded, '100000')
    }
    // And every node has the same blocks.
    const top = Math.min(...(await Promise.all(apis.map(heightOf))))
    for (let h = 1; h <= top; h += Math.max(1, Math.floor(top / 10))) {
      const hashes = await Promise.all(
        apis.map(async (api) => (await getJson<{ hash: string }>(`${api}/v1/chain/blocks/${h}`))?.hash),
      )
      assert.equal(new Set(hashes).size, 1, `nodes disagree at height ${h}`)
    }
  } finally {
    child.kill('SIGKILL')
    await killed(child)
    await rm(dir, { recursive: true, force: true })
  }
})
