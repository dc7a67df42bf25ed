// Databases written by earlier releases open in this one (issue 17, part 4). Each directory of
// test/fixtures/releases/ holds the homes of a stopped 2-node devnet written by one release
// (make-fixture.ts) and what was committed in it (expected.json). For each, on a copy, two real
// node processes of this checkout:
//  - open the chain database (an unversioned one is migrated: its format record is written),
//    at a height at least the fixture's, with the same blocks, balances, the settled job and the
//    wallet payment (its memo decrypted from the recipient's ledger);
//  - hold each other in their persisted peer books, and connect again;
//  - go on making blocks (a transfer commits on both).
// And a database whose format record is newer than this release is refused by `donghae node`
// with STORE_VERSION, naming both versions and what to do.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BIN, runCli } from './helpers/cli.ts'
import { exited, firstJsonLine } from './helpers/processes.ts'
import {
  balanceOf,
  blockHash,
  heightOf,
  nodeRef,
  operatorTransfer,
  peerBookHas,
  peersOf,
  readChainDb,
  settlementOf,
  until,
  walletPayment,
  type NodeRef,
} from './helpers/node-api.ts'
import type { FixtureExpectation } from './fixtures/releases/make-fixture.ts'
import { Store } from '../src/store/store.ts'
import { dagCborCodec, utf8Codec } from '../src/store/codecs.ts'
import type { FormatRecord } from '../src/store/format.ts'
import { CHAIN_DB_FORMAT, CHAIN_DB_VERSION } from '../src/chain/db-format.ts'

const RELEASES = fileURLToPath(new URL('./fixtures/releases/', import.meta.url))

async function fixtures(): Promise<string[]> {
  const names = await readdir(RELEASES, { withFileTypes: true })
  return names
    .filter((d) => d.isDirectory() && existsSync(join(RELEASES, d.name, 'expected.json')))
    .map((d) => d.name)
    .sort()
}

/** A copy of the fixture's homes; `emptyBootstrap`: the nodes can meet through their peer books only. */
async function unpack(name: string, emptyBootstrap = false): Promise<{ dir: string; expected: FixtureExpectation }> {
  const expected = JSON.parse(await readFile(join(RELEASES, name, 'expected.json'), 'utf8')) as FixtureExpectation
  const dir = await mkdtemp(join(tmpdir(), `donghae-fixture-${name}-`))
  execFileSync('tar', ['-xzf', join(RELEASES, name, 'homes.tar.gz'), '-C', dir])
  if (emptyBootstrap)
    for (const { node } of expected.nodes) {
      const path = join(dir, node, 'config.json')
      const config = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>
      await writeFile(path, `${JSON.stringify({ ...config, bootstrap: [] }, null, 2)}\n`)
    }
  return { dir, expected }
}

function startNode(dir: string, node: string): ChildProcess {
  return spawn(
    process.execPath,
    [BIN, '--home', join(dir, node), 'node', '--password-file', join(dir, 'password'), '--json'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH, HOME: process.env.HOME, DONGHAE_API_RATE_LIMIT: '1000000' },
    },
  )
}

async function checkFacts(nodes: NodeRef[], expected: FixtureExpectation): Promise<void> {
  const [sender, recipient] = nodes as [NodeRef, NodeRef]
  for (const node of nodes) {
    for (const [h, hash] of Object.entries(expected.blocks))
      assert.equal(await blockHash(node.api, Number(h)), hash, `${node.did}: block ${h}`)
    for (const [did, amount] of Object.entries(expected.balances))
      assert.equal(await balanceOf(node.api, did), BigInt(amount), `${node.did}: balance of ${did}`)
    const settled = await settlementOf(node.api, expected.job.id)
    assert.equal(settled?.height, expected.job.height, 'the job settled at the same height')
    assert.equal(settled?.worker, expected.job.worker)
  }
  const received = await walletPayment(recipient, expected.payment.id)
  assert.equal(received?.direction, 'received')
  assert.equal(received?.memo, expected.payment.memo, "the recipient's ledger decrypts the memo")
  assert.equal(received?.amount, expected.payment.amount)
  const sent = await walletPayment(sender, expected.payment.id)
  assert.equal(sent?.delivery, 'acknowledged')
}

async function openFixture(t: TestContext, name: string, emptyBootstrap: boolean): Promise<void> {
  {
    const { dir, expected } = await unpack(name, emptyBootstrap)
    t.diagnostic(
      `written by ${expected.release} (${expected.commit}) at height ≥ ${expected.minHeight}, chain format ${expected.chainFormat}`,
    )
    const children: ChildProcess[] = []
    const stderr: string[] = []
    try {
      const dids = expected.nodes.map((n) => n.did)
      for (const { node, did } of expected.nodes) {
        const data = join(dir, node, 'data')
        const db = await readChainDb(data)
        assert.equal(db.format?.version ?? 0, expected.chainFormat, `${node}: the fixture's chain format`)
        assert.ok(db.height >= expected.minHeight)
        const others = dids.filter((d) => d !== did)
        assert.deepEqual(await peerBookHas(data, others), others, `${node}: its peer book holds the other node`)
      }
      // The fixtures' ports (49700-49813) lie in Linux's ephemeral range, where another test's
      // outgoing connection or port-0 listener can hold one for a moment: a node that could not
      // listen is started again, up to three times.
      const startListening = async (i: number, node: string): Promise<unknown> => {
        for (let attempt = 1; ; attempt++) {
          const child = startNode(dir, node)
          children[i] = child
          stderr[i] = ''
          child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr[i] = (stderr[i] + c).slice(-4_000)))
          try {
            return await firstJsonLine(child)
          } catch (err) {
            if (attempt >= 3 || !(stderr[i] ?? '').includes('failed to be listened on')) throw err
            t.diagnostic(`${node}: a port of the fixture was in use; starting it again`)
            await sleep(2_000)
          }
        }
      }
      const started = (await Promise.all(expected.nodes.map(({ node }, i) => startListening(i, node)))) as Array<{
        api: string
        height: number
      }>
      for (const info of started) assert.ok(info.height >= expected.minHeight, `opened at ${info.height}`)
      const nodes = await Promise.all(
        expected.nodes.map((n, i) =>
          nodeRef({ did: n.did, api: (started[i] as { api: string }).api, home: join(dir, n.node) }),
        ),
      )
      await checkFacts(nodes, expected)
      await until(
        emptyBootstrap ? 'the nodes to reconnect from their peer books' : 'the nodes to reconnect',
        async () => (await peersOf(nodes[0]!.api)).includes(nodes[1]!.did),
        60_000,
      )
      const from = Math.max(...started.map((s) => s.height))
      const sink = Object.keys(expected.balances)[0] as string
      const sent = await operatorTransfer(nodes[0]!, sink, 5n)
      assert.equal(sent.status, 202, JSON.stringify(sent.body))
      const goal = BigInt(expected.balances[sink] as string) + 5n
      await until(
        'a new transfer committed on both nodes',
        async () => (await balanceOf(nodes[1]!.api, sink)) === goal && (await balanceOf(nodes[0]!.api, sink)) === goal,
        60_000,
      )
      const after = Math.min(...(await Promise.all(nodes.map((n) => heightOf(n.api)))))
      assert.ok(after > from, `blocks after the restart (${from} → ${after})`)
      t.diagnostic(`reopened at ${from}, made blocks to ${after}`)
      for (const child of children) child.kill('SIGTERM')
      await Promise.all(children.map(exited))
      for (const { node } of expected.nodes) {
        const db = await readChainDb(join(dir, node, 'data'))
        assert.deepEqual(db.format, {
          name: 'donghae-chain',
          version: CHAIN_DB_VERSION,
          release: CHAIN_DB_FORMAT.release,
        })
      }
    } catch (err) {
      t.diagnostic(stderr.join('\n---\n'))
      throw err
    } finally {
      for (const child of children) child.kill('SIGKILL')
      await Promise.all(children.map(exited))
      await rm(dir, { recursive: true, force: true })
    }
  }
}

for (const name of await fixtures())
  test(`release fixture ${name}: this release opens it, keeps its state and peer book, and goes on making blocks`, (t) =>
    openFixture(t, name, false))

// The peer book survives on disk (checked above), and libp2p's peer store used to drop addresses
// last seen more than maxAddressAge (1 h) ago when it read them: a node stopped for over an hour,
// with no bootstrap list, had nobody to dial. Every fixture is older than an hour.
test('nodes stopped for over an hour find each other from their peer books alone', async (t) => {
  const [name] = await fixtures()
  assert.ok(name !== undefined)
  await openFixture(t, name, true)
})

test('a chain database from a newer release is refused: STORE_VERSION, both versions, what to do', async () => {
  const [name] = await fixtures()
  assert.ok(name !== undefined, 'at least one release fixture')
  const { dir, expected } = await unpack(name)
  try {
    const node = (expected.nodes[0] as { node: string }).node
    const path = join(dir, node, 'data', 'chain')
    const store = await Store.open(path)
    const newer: FormatRecord = { name: 'donghae-chain', version: CHAIN_DB_VERSION + 1, release: '99.0.0' }
    await store.bucket('format', utf8Codec, dagCborCodec<FormatRecord>()).put('format', newer, { sync: true })
    await store.close()
    const out = await runCli(['--home', join(dir, node), 'node', '--password-file', join(dir, 'password'), '--json'])
    assert.equal(out.code, 1, out.stderr)
    assert.match(out.stderr, new RegExp(`format version ${CHAIN_DB_VERSION + 1} \\(written by Donghae 99\\.0\\.0\\)`))
    assert.match(out.stderr, new RegExp(`reads donghae-chain up to version ${CHAIN_DB_VERSION}`))
    assert.match(out.stderr, /Run Donghae 99\.0\.0 or later on it, or move .* away/)
    const db = await readChainDb(join(dir, node, 'data'))
    assert.deepEqual(db.format, newer, 'the refused database is left as it was')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
