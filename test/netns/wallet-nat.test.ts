/**
 * Issue 14's network demonstration in the NAT lab (lab.ts, `NatLab`): a payment with a memo
 * between two nodes in different network namespaces, one of them behind a home router.
 *
 *   b 10.77.0.2 (lan1) ── [rtr: masquerade + miniupnpd (NAT-PMP and UPnP)] 11.0.0.1 ── 11.0.0.2 (wan): a, c
 *
 * Three real `donghae node` processes (bin/donghae.js), each with its own home, keystore and
 * password, sharing one genesis made with `donghae init` and `donghae genesis`:
 * - a (wan, p2p port 4100): a validator and the payer, funded at genesis;
 * - c (wan, p2p port 4110): the other validator, and the mailbox holder (config walletMailbox,
 *   the default). a and c have equal stake: every block needs both (more than 2/3 of the power);
 * - b (lan1, behind the router, p2p port 4011): the payee, a full node that is not a validator
 *   and follows the chain by block sync. Its config says `nat: auto`: it maps its port on the
 *   router by NAT-PMP (the router's nftables table is read to show the forward, and a libp2p peer
 *   on the public side pings b at the router's address). No circuit relay is involved.
 *
 * The run:
 * 1. b has not started when a pays it (`donghae wallet send --memo … --wait`, run in a's
 *    namespace); the transfer commits;
 * 2. a cannot reach b, so it leaves the sealed envelope in c's mailbox: the file c keeps is read,
 *    decoded and shown (diagnostics); the memo's bytes are not in it, and the envelope in it is
 *    exactly the ciphertext a made;
 * 3. a stops: the payer goes offline, so the envelope can reach b only through c. The chain
 *    halts at its last block (c alone cannot commit), which is after the transfer;
 * 4. b starts behind the router, maps its port, syncs the chain from c and collects the envelope
 *    from c's mailbox: b's ledger (GET /v1/operator/wallet/payments) shows the payment with the
 *    memo decrypted, b's log says it came from c's mailbox, and c's copy is gone (b's receipt
 *    removed it);
 * 5. a comes back, the chain goes on, and a gets b's signed receipt: its payment becomes
 *    `delivery: 'acknowledged'`.
 *
 * The nodes' HTTP APIs listen on their namespaces' loopback, so the test calls them with a
 * `fetch` run inside the namespace (`ip netns exec`), with the operator token of the node's home.
 * Takes about 30-50 s (more on a loaded machine). Skips (with the reason) only without root,
 * network namespaces, nftables or miniupnpd; CI runs as root with those packages.
 */
import { test, type TestContext } from 'node:test'
import { execFile } from 'node:child_process'
import assert from 'node:assert/strict'
import { copyFile, readFile, writeFile, access } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { NatLab, labUnavailable, LAN1, PEER_WAN, ROUTER_WAN, type ExecResult, type NodeProcess } from './lab.ts'
import { BIN, runCli } from '../helpers/cli.ts'
import { decode } from '../../src/core/codec.ts'
import { peerIdFromDid } from '../../src/identity/peer-id.ts'
import type { DeliveryView, WalletPaymentView } from '../../src/api/wallet-api.ts'

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url))
const unavailable = await labUnavailable()

const CHAIN_ID = 'donghae-natlab'
const PORTS = { a: { p2p: 4100, api: 4200 }, c: { p2p: 4110, api: 4210 }, b: { p2p: 4011, api: 4220 } } as const
type Name = keyof typeof PORTS

interface Home {
  name: Name
  dir: string
  did: string
  ns: string
  api: string
  token: string
}

interface Answer {
  status: number
  body: unknown
}

/** A GET of a node's HTTP API with its operator token, made by a `fetch` inside the node's namespace. */
const FETCH = `
const [url, token] = process.argv.slice(1)
try {
  const res = await fetch(url, { headers: { authorization: 'Bearer ' + token } })
  const text = await res.text()
  let parsed
  try { parsed = JSON.parse(text) } catch { parsed = text }
  process.stdout.write(JSON.stringify({ status: res.status, body: parsed }))
} catch (err) {
  process.stdout.write(JSON.stringify({ status: 0, body: String(err) }))
}`

/**
 * Runs a command inside a namespace, like `lab.exec` but with a longer limit: on a loaded machine
 * (CI runs test files side by side) the CLI alone may take seconds to start.
 */
function execIn(ns: string, cmd: readonly string[], timeoutMs = 60_000): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(
      'ip',
      ['netns', 'exec', ns, ...cmd],
      { timeout: timeoutMs, maxBuffer: 4 << 20 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1
        resolve({ code, stdout, stderr: stderr || (err?.message ?? '') })
      },
    )
    child.stdin?.end()
  })
}

async function api(home: Home, path: string): Promise<Answer> {
  const r = await execIn(
    home.ns,
    [process.execPath, '--input-type=module', '-e', FETCH, `${home.api}${path}`, home.token],
    30_000,
  )
  try {
    return JSON.parse(r.stdout) as Answer
  } catch {
    return { status: 0, body: `${r.stdout} ${r.stderr}`.trim() }
  }
}

async function getOk<T>(home: Home, path: string): Promise<T | undefined> {
  const answer = await api(home, path)
  return answer.status === 200 ? (answer.body as T) : undefined
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = Date.now()
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) assert.fail(`${what}: not within ${timeoutMs} ms`)
    await sleep(300)
  }
  return Date.now() - started
}

/** The node's JSON log lines (stderr) whose message is `msg`. */
function logged(proc: NodeProcess, msg: string): Array<Record<string, unknown>> {
  const found: Array<Record<string, unknown>> = []
  for (const line of proc.stderr.split('\n')) {
    if (!line.includes(msg)) continue
    try {
      const entry = JSON.parse(line) as Record<string, unknown>
      if (entry.msg === msg) found.push(entry)
    } catch {
      // not a JSON log line
    }
  }
  return found
}

const p2pAddress = (name: Name, did: string): string =>
  `/ip4/${name === 'b' ? ROUTER_WAN : PEER_WAN}/tcp/${PORTS[name].p2p}/p2p/${peerIdFromDid(did).toString()}`

/** `donghae init` for each home, one genesis (`donghae genesis`) in each, and each node's config. */
async function makeHomes(lab: NatLab, password: string): Promise<Record<Name, Home>> {
  const dids = {} as Record<Name, string>
  await Promise.all(
    (['a', 'b', 'c'] as const).map(async (name) => {
      const out = await runCli(['--home', join(lab.dir, name), 'init', '--password-file', password, '--json'])
      assert.equal(out.code, 0, `donghae init (${name}): ${out.stderr}`)
      dids[name] = (JSON.parse(out.stdout) as { did: string }).did
    }),
  )
  const genesis = join(lab.dir, 'genesis.json')
  const made = await runCli([
    'genesis',
    '--chain-id',
    CHAIN_ID,
    // two validators of equal stake: every block needs both (more than 2/3 of the power), so
    // neither is jailed for downtime, and each proposes about half of the blocks
    '--validator',
    `${dids.a}:100000`,
    '--validator',
    `${dids.c}:100000`,
    '--account',
    `${dids.a}:1000000`,
    '--account',
    `${dids.c}:1000000`,
    '--out',
    genesis,
  ])
  assert.equal(made.code, 0, `donghae genesis: ${made.stderr}`)
  const homes = {} as Record<Name, Home>
  for (const name of ['a', 'b', 'c'] as const) {
    const dir = join(lab.dir, name)
    await copyFile(genesis, join(dir, 'genesis.json'))
    const initial = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>
    const config = {
      ...initial,
      moniker: name,
      listenHost: '0.0.0.0',
      p2pPort: PORTS[name].p2p,
      apiHost: '127.0.0.1',
      apiPort: PORTS[name].api,
      bootstrap:
        name === 'a'
          ? [p2pAddress('c', dids.c)]
          : name === 'c'
            ? [p2pAddress('a', dids.a)]
            : [p2pAddress('c', dids.c), p2pAddress('a', dids.a)],
      mdns: false,
      // b maps its port on the router (NAT-PMP, else UPnP); a and c have public addresses
      nat: name === 'b' ? 'auto' : 'off',
      worker: false,
      expertReplicas: 0,
    }
    await writeFile(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 })
    homes[name] = {
      name,
      dir,
      did: dids[name],
      ns: name === 'b' ? lab.ns.lan1 : lab.ns.wan,
      api: `http://127.0.0.1:${PORTS[name].api}`,
      token: (await readFile(join(dir, 'api-token'), 'utf8')).trim(),
    }
  }
  return homes
}

async function startNode(lab: NatLab, home: Home, password: string): Promise<NodeProcess> {
  const proc = lab.node(home.ns, BIN, [
    '--home',
    home.dir,
    // info: the wallet's log lines say how each envelope travelled (config.json's logLevel
    // reaches only --log-file; stderr follows --log-level or DONGHAE_LOG_LEVEL, default warn)
    '--log-level',
    'info',
    'node',
    '--password-file',
    password,
    '--json',
  ])
  const info = await proc.waitFor<{ did?: string }>((l) => typeof l.did === 'string', 60_000, `${home.name} running`)
  assert.equal(info.did, home.did)
  return proc
}

const unavailableSkip = (t: TestContext): boolean => {
  if (unavailable === undefined) return false
  // Justified skip: only when not root, network namespaces cannot be created, or miniupnpd or
  // nftables is missing; the reason is printed. CI runs as root with miniupnpd-nftables, so it runs there.
  t.skip(unavailable) // justified: no root, no network namespaces, no nft or no miniupnpd here (see above)
  return true
}

test(
  'wallet across the NAT lab: a pays b (behind a router, port mapped by NAT-PMP) with a memo while b is offline; c’s mailbox holds only ciphertext; b collects and reads the memo; a gets the receipt',
  { timeout: 300_000 },
  async (t) => {
    if (unavailableSkip(t)) return
    const started = Date.now()
    const lab = await NatLab.create()
    const procs: Partial<Record<Name, NodeProcess>> = {}
    let homes: Record<Name, Home> | undefined
    const mark = (what: string): void => t.diagnostic(`${((Date.now() - started) / 1000).toFixed(1)} s: ${what}`)
    try {
      await lab.startRouter('both')
      const password = join(lab.dir, 'password')
      await writeFile(password, `natlab-${lab.id}-wallet`, { mode: 0o600 })
      homes = await makeHomes(lab, password)
      const { a, b, c } = homes
      mark(`homes and genesis made: a ${a.did}, b ${b.did}, c ${c.did}`)

      procs.c = await startNode(lab, c, password)
      mark('c started')
      procs.a = await startNode(lab, a, password)
      mark('a started')
      await until(
        'a and c connected',
        async () => {
          // the chain makes no empty blocks (`donghae genesis`): it commits once a transaction comes
          const s = await getOk<{ height: number; peers: number }>(a, '/v1/status')
          return s !== undefined && s.peers >= 1
        },
        45_000,
      )
      mark('a and c run on the public side, connected')

      // 1. a pays b, which has not started yet: the transfer commits, the envelope waits
      const memo = `dinner at Jumunjin, Friday 19:00 (${lab.id})`
      const sendStarted = Date.now()
      /** `donghae wallet send … --wait --json` from a, inside its namespace. */
      const payB = (amount: string, extra: string[] = []) =>
        execIn(
          a.ns,
          [
            process.execPath,
            BIN,
            '--home',
            a.dir,
            'wallet',
            'send',
            '--to',
            b.did,
            '--amount',
            amount,
            ...extra,
          ].concat(['--wait', '--api', a.api, '--json']),
          90_000,
        )
      const send = await payB('250', ['--memo', memo])
      assert.equal(send.code, 0, `donghae wallet send: ${send.stderr}`)
      const sent = JSON.parse(send.stdout) as WalletPaymentView
      assert.equal(sent.status, 'committed', send.stdout)
      assert.equal(sent.memo, memo)
      mark(
        `a paid b 250 in ${Date.now() - sendStarted} ms (payment ${sent.id}, transfer ${sent.txHash ?? '?'} at height ${sent.height ?? '?'})`,
      )

      // 2. b is unreachable: a leaves the sealed envelope in c's mailbox
      let held: DeliveryView | undefined
      await until(
        "a to leave the envelope in c's mailbox",
        async () => {
          const d = await getOk<{ deliveries: DeliveryView[] }>(a, '/v1/operator/wallet/deliveries')
          held = d?.deliveries.find((x) => x.id === sent.id && x.storedWith.includes(c.did))
          return held !== undefined
        },
        45_000,
      )
      assert.ok(held !== undefined)
      mark(`envelope left with c after ${held.attempts} failed direct attempt(s): ${held.lastError ?? ''}`)
      const mailboxFile = join(c.dir, 'data', 'wallet', 'mailbox', `${held.envelopeHash}.cbor`)
      const stored = await readFile(mailboxFile)
      const item = decode<{ to: string; from: string; envelope: Uint8Array; tx: Uint8Array; expires: number }>(stored)
      assert.equal(stored.includes(Buffer.from(memo)), false, 'the holder must not see the memo')
      assert.equal(Buffer.from(item.envelope).includes(Buffer.from(memo)), false)
      assert.equal(item.to, b.did)
      assert.equal(Buffer.from(item.tx).toString('hex'), sent.txHash)
      const outbox = JSON.parse(await readFile(join(a.dir, 'data', 'wallet', 'outbox.json'), 'utf8')) as Array<{
        id: string
        envelope: string
      }>
      const sealed = Buffer.from(outbox.find((o) => o.id === sent.id)?.envelope ?? '', 'base64')
      assert.ok(sealed.equals(Buffer.from(item.envelope)), 'c holds exactly the sealed envelope a made')
      t.diagnostic(
        `what c held: ${mailboxFile} (${stored.length} bytes) = { to: ${item.to}, from: ${item.from}, ` +
          `tx: ${sent.txHash ?? ''}, expires: ${new Date(item.expires).toISOString()}, envelope: ${item.envelope.length} bytes ` +
          `of crypto_box_seal ciphertext, starting ${Buffer.from(item.envelope).subarray(0, 48).toString('hex')}… }`,
      )
      t.diagnostic(`the file's last 64 bytes: ${stored.subarray(-64).toString('hex')}`)

      // 3. a goes offline: the chain halts at its last block (c alone has half of the power),
      // which holds the transfer; c still serves its blocks and its mailbox
      assert.equal(await procs.a.stop('SIGTERM', 30_000), 0, procs.a.stderr.slice(-3000))
      const halted = (await getOk<{ height: number }>(c, '/v1/status'))?.height ?? 0
      assert.ok(sent.height !== undefined && halted >= sent.height)
      mark(`a stopped; the chain stands at height ${halted}`)

      // 4. b starts behind the router, maps its port, syncs, and collects the envelope from c
      procs.b = await startNode(lab, b, password)
      const bStarted = Date.now()
      const nat = await (async () => {
        let view: { method?: string; externalAddress?: string; reason?: string } | undefined
        await until(
          "b's port mapped on the router",
          async () => {
            view = await getOk(b, '/v1/net/nat')
            return view?.externalAddress === `${ROUTER_WAN}:${PORTS.b.p2p}`
          },
          20_000,
        )
        return view
      })()
      assert.equal(nat?.method, 'pmp', 'a router with NAT-PMP and UPnP: NAT-PMP is picked')
      const mappings = await lab.routerMappings()
      assert.ok(
        mappings.some(
          (m) =>
            m.protocol === 'tcp' &&
            m.externalPort === PORTS.b.p2p &&
            m.internalAddress === LAN1 &&
            m.internalPort === PORTS.b.p2p,
        ),
        `the router forwards ${ROUTER_WAN}:${PORTS.b.p2p} to b: ${JSON.stringify(mappings)}`,
      )
      mark(`b mapped its port: ${JSON.stringify(nat)}; the router holds ${JSON.stringify(mappings)}`)

      await until(
        "b's ledger to show the payment with its memo decrypted",
        async () => {
          const page = await getOk<{ payments: WalletPaymentView[] }>(b, '/v1/operator/wallet/payments')
          return page?.payments.some((p) => p.id === sent.id && p.memo === memo) === true
        },
        60_000,
      )
      const page = await getOk<{ payments: WalletPaymentView[] }>(b, '/v1/operator/wallet/payments')
      const received = page?.payments.find((p) => p.id === sent.id)
      assert.ok(received !== undefined)
      assert.equal(received.direction, 'received')
      assert.equal(received.from, a.did)
      assert.equal(received.amount, '250')
      assert.equal(received.status, 'committed')
      assert.equal(received.memo, memo)
      const via = logged(procs.b, 'payment received').find((l) => l.id === sent.id)?.via
      assert.equal(via, `mailbox ${c.did}`, 'b got the envelope from c (a is offline)')
      mark(`b received the payment ${Date.now() - bStarted} ms after it started, via ${String(via)}: memo "${memo}"`)
      await until(
        "c's copy to be removed by b's receipt",
        () =>
          access(mailboxFile).then(
            () => false,
            () => true,
          ),
        20_000,
      )
      const account = await getOk<{ balance: string }>(b, `/v1/accounts/${encodeURIComponent(b.did)}`)
      assert.equal(account?.balance, '250', `b's balance on its own copy of the chain: ${JSON.stringify(account)}`)

      // a peer on the public side reaches b at the router's address (the NAT-PMP forward)
      const dial = lab.node(lab.ns.wan, join(FIXTURES, 'libp2p-dial.ts'), [p2pAddress('b', b.did)])
      const dialed = await dial.waitFor<{ ok: boolean; rtt?: number; error?: string; remoteAddrs?: string[] }>(
        (l) => typeof l.ok === 'boolean',
        20_000,
        'dial result',
      )
      assert.equal(dialed.ok, true, dialed.error)
      assert.ok(
        dialed.remoteAddrs?.includes(`/ip4/${ROUTER_WAN}/tcp/${PORTS.b.p2p}`),
        `b announces the mapped address: ${JSON.stringify(dialed.remoteAddrs)}`,
      )
      mark(`a peer on the public side pinged b at ${ROUTER_WAN}:${PORTS.b.p2p} (${dialed.rtt ?? '?'} ms)`)

      // 5. a comes back and gets b's signed receipt
      procs.a = await startNode(lab, a, password)
      await until(
        "a's payment to be acknowledged by b's receipt",
        async () =>
          (await getOk<WalletPaymentView>(a, `/v1/operator/wallet/payments/${sent.id}`))?.delivery === 'acknowledged',
        60_000,
      )
      // the chain goes on with a back: a second payment commits (an idle chain makes no empty blocks)
      const again = await payB('1')
      assert.equal(again.code, 0, `donghae wallet send: ${again.stderr}`)
      await until(
        'the chain to go on with a back',
        async () => ((await getOk<{ height: number }>(c, '/v1/status'))?.height ?? 0) > halted,
        30_000,
      )
      const done = await getOk<WalletPaymentView>(a, `/v1/operator/wallet/payments/${sent.id}`)
      assert.ok(done?.receipt !== undefined, JSON.stringify(done))
      const ackVia = logged(procs.a, 'payment acknowledged by its recipient').find((l) => l.id === sent.id)?.via
      const net = await getOk<{ peers: Array<{ did?: string; addresses: string[] }> }>(a, '/v1/net')
      const toB = net?.peers.filter((p) => p.did === b.did).flatMap((p) => p.addresses) ?? []
      mark(`a's payment acknowledged (receipt via ${String(ackVia)}); a's connections to b: ${toB.join(', ')}`)
    } catch (err) {
      for (const [name, proc] of Object.entries(procs)) {
        if (proc.child.exitCode === null && homes !== undefined) {
          const status = await api(homes[name as Name], '/v1/status')
          t.diagnostic(`${name} status: ${JSON.stringify(status.body)}`)
        }
        const lines = proc.stderr.split('\n').filter((l) => /wallet|nat|sync|error/i.test(l))
        t.diagnostic(`${name} log:\n${lines.slice(-40).join('\n')}`)
      }
      t.diagnostic(`miniupnpd log: ${await lab.routerLog()}`)
      throw err
    } finally {
      await lab.teardown()
      mark('lab torn down')
    }
  },
)
