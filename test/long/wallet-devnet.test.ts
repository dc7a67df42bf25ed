// The wallet on a 4-process devnet over real libp2p sockets (issue 14):
// 1. node0 pays node1 with a memo through the CLI: the transfer commits, node1's ledger shows the
//    decrypted memo, node0's payment is acknowledged by node1's signed receipt;
// 2. node2 is stopped; node0 pays it; the envelope waits (and is left with a peer's mailbox,
//    which holds only ciphertext); node2 comes back 30 s later and receives it, and node0 gets
//    the receipt;
// 3. an entry of node1's ledger file is edited: `wallet verify` answers LEDGER_TAMPERED at index 0.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BIN, runCli } from '../helpers/cli.ts'
import { createRng, testSeed } from '../helpers/random.ts'
import { waitFor } from '../helpers/chain-net.ts'
import { exited, firstJsonLine, getJson, spawnDevnet } from '../helpers/processes.ts'
import type { DeliveryView, WalletPaymentView } from '../../src/api/wallet-api.ts'

interface DevnetInfo {
  password: string
  nodes: Array<{ node: string; did: string; api: string; home: string; pid?: number }>
}

test('wallet devnet: a payment with a memo, delivered and acknowledged; a recipient offline for 30 s receives it; a tampered ledger is reported', async (t) => {
  const rng = createRng(testSeed())
  const dir = await mkdtemp(join(tmpdir(), 'donghae-wallet-devnet-'))
  const base = 15_200 + rng.int(0, 120) * 8
  const { child: devnet, stderr } = spawnDevnet(dir, 4, base)
  let restarted: ChildProcess | undefined
  try {
    const info = (await firstJsonLine(devnet)) as DevnetInfo
    const [node0, node1, node2] = info.nodes as [DevnetInfo['nodes'][0], DevnetInfo['nodes'][0], DevnetInfo['nodes'][0]]
    const apiOf = new Map(info.nodes.map((n) => [n.home, n.api]))
    const wallet = async (home: string, args: string[]): Promise<unknown> => {
      const out = await runCli(['--home', home, 'wallet', ...args, '--api', apiOf.get(home) as string, '--json'])
      assert.equal(out.code, 0, `donghae wallet ${args.join(' ')}: ${out.stderr}`)
      return JSON.parse(out.stdout)
    }
    const payments = async (home: string): Promise<WalletPaymentView[]> =>
      ((await wallet(home, ['history'])) as { payments: WalletPaymentView[] }).payments

    await waitFor(
      'every node connected to another',
      async () =>
        (await Promise.all(info.nodes.map((n) => getJson<{ peers: unknown[] }>(`${n.api}/v1/net`)))).every(
          (net) => (net?.peers.length ?? 0) >= 1,
        ),
      30_000,
    )

    // 1. node0 → node1 with a memo
    const memo = 'naengmyeon at Gangneung, Friday 19:00'
    const sent = (await wallet(node0.home, [
      'send',
      '--to',
      node1.did,
      '--amount',
      '250',
      '--memo',
      memo,
      '--wait',
    ])) as WalletPaymentView
    assert.equal(sent.status, 'committed', JSON.stringify(sent))
    await waitFor(
      "node1's ledger to hold the payment with its memo decrypted",
      async () => (await payments(node1.home)).some((p) => p.id === sent.id && p.memo === memo),
      30_000,
    )
    const received = (await payments(node1.home)).find((p) => p.id === sent.id) as WalletPaymentView
    assert.equal(received.direction, 'received')
    assert.equal(received.amount, '250')
    assert.equal(received.from, node0.did)
    assert.equal(received.status, 'committed')
    await waitFor(
      "node1's signed receipt to reach node0",
      async () => ((await wallet(node0.home, ['show', sent.id])) as WalletPaymentView).delivery === 'acknowledged',
      30_000,
    )

    // 2. node2 offline: the payment commits, its envelope waits, node2 comes back 30 s later
    assert.ok(node2.pid !== undefined, 'the devnet reports its nodes’ pids')
    process.kill(node2.pid, 'SIGTERM')
    await waitFor('node2 to stop', async () => (await getJson(`${node2.api}/v1/status`)) === undefined, 20_000)
    const stoppedAt = Date.now()
    const offlineMemo = 'rent for March: see the invoice'
    const invoicePath = join(dir, 'invoice-0312.txt')
    const invoiceText = 'INVOICE 0312\nrent, March: 1200\n'
    await writeFile(invoicePath, invoiceText)
    const late = (await wallet(node0.home, [
      'send',
      '--to',
      node2.did,
      '--amount',
      '1200',
      '--memo',
      offlineMemo,
      '--invoice',
      invoicePath,
      '--wait',
    ])) as WalletPaymentView
    assert.equal(late.status, 'committed', JSON.stringify(late))
    await waitFor(
      "node0 to leave the envelope with a peer's mailbox",
      async () =>
        ((await wallet(node0.home, ['deliveries'])) as { deliveries: DeliveryView[] }).deliveries.some(
          (d) => d.id === late.id && d.storedWith.length > 0,
        ),
      30_000,
    )
    const deliveries = ((await wallet(node0.home, ['deliveries'])) as { deliveries: DeliveryView[] }).deliveries
    const held = deliveries.find((d) => d.id === late.id) as DeliveryView
    t.diagnostic(`stored with ${held.storedWith.join(', ')} after ${held.attempts} attempts (${held.lastError ?? ''})`)
    // what a holder saw: the sealed envelope only (neither the memo nor the invoice in clear)
    const holder = info.nodes.find((n) => n.did === held.storedWith[0])
    assert.ok(holder !== undefined, 'the holder is a devnet node')
    const mailboxDir = join(holder.home, 'data', 'wallet', 'mailbox')
    const files = (await readdir(mailboxDir)).filter((f) => f.endsWith('.cbor'))
    assert.ok(files.includes(`${held.envelopeHash}.cbor`), `${mailboxDir}: ${files.join(', ')}`)
    const stored = await readFile(join(mailboxDir, `${held.envelopeHash}.cbor`))
    assert.equal(stored.includes(Buffer.from(offlineMemo)), false, 'the holder must not see the memo')
    assert.equal(stored.includes(Buffer.from('INVOICE 0312')), false, 'the holder must not see the invoice')
    t.diagnostic(`the holder kept ${stored.length} bytes, e.g. ${stored.subarray(-48).toString('hex')}`)

    const wait = 30_000 - (Date.now() - stoppedAt)
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
    restarted = spawn(
      process.execPath,
      [BIN, '--home', node2.home, 'node', '--password-file', info.password, '--json'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, DONGHAE_PASSWORD: undefined },
      },
    )
    await firstJsonLine(restarted)
    const backAt = Date.now()
    await waitFor(
      'node2 to receive the payment sent while it was offline',
      async () => (await payments(node2.home)).some((p) => p.id === late.id && p.memo === offlineMemo),
      90_000,
    )
    t.diagnostic(
      `received ${Date.now() - backAt} ms after node2 came back (${Math.round((backAt - stoppedAt) / 1000)} s offline)`,
    )
    const got = (await payments(node2.home)).find((p) => p.id === late.id) as WalletPaymentView
    assert.deepEqual(got.invoice, { name: 'invoice-0312.txt', bytes: Buffer.byteLength(invoiceText) })
    await waitFor(
      'node2’s receipt to reach node0',
      async () => ((await wallet(node0.home, ['show', late.id])) as WalletPaymentView).delivery === 'acknowledged',
      90_000,
    )
    const verified = (await wallet(node2.home, ['verify'])) as { entries: number }
    assert.equal(verified.entries, 1)

    // 3. node1's ledger edited on disk: verify names entry 0
    const ledger = join(node1.home, 'data', 'wallet', 'ledger')
    const lines = (await readFile(ledger, 'utf8')).split('\n')
    const first = JSON.parse(lines[0] as string) as { i: number; n: string; c: string }
    const flipped = Buffer.from(first.c, 'base64')
    flipped[3] = (flipped[3] as number) ^ 1
    lines[0] = JSON.stringify({ ...first, c: flipped.toString('base64') })
    await writeFile(ledger, lines.join('\n'))
    const out = await runCli(['--home', node1.home, 'wallet', 'verify', '--api', node1.api])
    assert.notEqual(out.code, 0)
    assert.match(out.stderr, /LEDGER_TAMPERED|altered|entry 0/, out.stderr)
  } catch (err) {
    t.diagnostic(`devnet stderr: ${stderr().slice(-4000)}`)
    for (const i of [0, 1, 2]) {
      const log = await readFile(join(dir, `node${i}`, 'node.log'), 'utf8').catch(() => '')
      const lines = log.split('\n').filter((l) => l.includes('wallet'))
      t.diagnostic(`node${i} wallet log:\n${lines.slice(-30).join('\n')}`)
    }
    throw err
  } finally {
    restarted?.kill('SIGTERM')
    if (restarted !== undefined) await exited(restarted)
    devnet.kill('SIGINT')
    await exited(devnet)
    await rm(dir, { recursive: true, force: true })
  }
})
