// The spam demonstration: four validators over real libp2p sockets (in this process, so the CPU
// they spend is what process.cpuUsage measures), three attacker hosts in child processes (their
// key generation, signing and publishing are not counted), each connected to one validator and
// publishing to it 10,000 well-signed transactions in all, from fresh unfunded keys, offering
// the largest fee there is, on the transaction topic in full batches (256 to a gossip message),
// while a funded account sends 100 transfers.
//
// What it shows: all 100 transfers commit; no junk is in any block or any mempool, and no
// validator relays any (the fourth validator, which no attacker reaches, never sees any);
// admission spends no signature check on junk; each attacker is ignored until it exhausts its
// ignore budget, then rejected unread and penalized until its validator bans it and refuses its
// connections. The CPU it cost is printed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { peerIdFromString } from '@libp2p/peer-id'
import { didFromPeerId } from '../../src/identity/peer-id.ts'
import { createHost, type DonghaeHost } from '../../src/net/host.ts'
import { Libp2pTransport } from '../../src/net/libp2p-transport.ts'
import { VerifyPool } from '../../src/identity/verify-pool.ts'
import { DonghaeNode } from '../../src/node/index.ts'
import { TX_IGNORE_BUDGET, TX_TOPIC } from '../../src/chain/runtime.ts'
import { decodeTx, encodeTx, signTx } from '../../src/chain/tx.ts'
import { decodeTxBatch, MAX_TX_BATCH } from '../../src/chain/tx-batch.ts'
import { MempoolError } from '../../src/chain/errors.ts'
import { actor, makeGenesis, type Actor } from '../helpers/chain.ts'
import { FAST_PARAMS, waitFor } from '../helpers/chain-net.ts'
import { exited } from '../helpers/processes.ts'
import { createRng, testSeed } from '../helpers/random.ts'

const SPAMMER = fileURLToPath(new URL('../helpers/tx-spammer.ts', import.meta.url))
const ATTACKERS = 3
const JUNK = 10_000
const TRANSFERS = 100

interface Spammer {
  child: ChildProcess
  messages: Array<Record<string, unknown>>
}

function spawnSpammer(config: Record<string, unknown>): Spammer {
  const child = fork(SPAMMER, [JSON.stringify(config)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  const messages: Array<Record<string, unknown>> = []
  child.on('message', (m) => messages.push(m as Record<string, unknown>))
  return { child, messages }
}

const cpuMs = (): number => {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1000
}

test('attack: 10,000 unfunded max-fee transactions from many keys gossiped by 3 peers while a funded account sends 100 transfers — all 100 commit; the junk is ignored, never relayed, and its senders are cut off', async (t) => {
  const rng = createRng(testSeed())
  t.diagnostic(`seed ${rng.seed} (DONGHAE_TEST_SEED replays it)`)
  const base = 18_000 + rng.int(0, 120) * 8 // 18000-18999: this test's range (test/attacks/ uses 18000-19999)
  const dir = await mkdtemp(join(tmpdir(), 'donghae-spam-'))
  const validators = [actor(), actor(), actor(), actor()]
  const funded = actor()
  const genesis = makeGenesis(
    validators,
    [...validators, funded].map((a) => [a, 1_000_000n] as [Actor, bigint]),
    FAST_PARAMS,
  )
  const hosts: DonghaeHost[] = []
  const transports: Libp2pTransport[] = []
  const nodes: DonghaeNode[] = []
  const spammers: Spammer[] = []
  // One signature pool for the four in-process validators (it counts what they verify).
  const verifyPool = new VerifyPool()
  verifyPool.start()
  try {
    for (const [i, v] of validators.entries()) {
      const bootstrap = hosts.map((h) => String(h.getMultiaddrs()[0]))
      const host = await createHost({
        key: v.key,
        host: '127.0.0.1',
        port: base + i,
        quic: false,
        webSockets: false,
        mdns: false,
        bootstrap,
      })
      await host.start()
      hosts.push(host)
      const transport = new Libp2pTransport(host, { chainId: genesis.chainId })
      transport.start()
      transports.push(transport)
      const node = await DonghaeNode.create({
        dataDir: join(dir, `n${i}`),
        genesis,
        key: v.key,
        transport,
        poh: 'inline',
        verifyPool,
      })
      node.start()
      nodes.push(node)
    }
    const first = nodes[0] as DonghaeNode
    await waitFor('every validator to reach height 2', () => nodes.every((n) => n.app.head.height >= 2), 30_000)
    // Junk that a validator hands to another validator was relayed: count it everywhere.
    let relayedJunk = 0
    const validatorDids = new Set(validators.map((v) => v.did))
    for (const transport of transports)
      transport.subscribe(TX_TOPIC, (data, from) => {
        if (!validatorDids.has(from)) return 'ignore'
        for (const tx of decodeTxBatch(data)) if (decodeTx(tx).sender !== funded.did) relayedJunk++
        return 'ignore'
      })

    for (let j = 0; j < ATTACKERS; j++) {
      const target = hosts[j] as DonghaeHost
      spammers.push(
        spawnSpammer({
          target: String(target.getMultiaddrs()[0]),
          targetPeer: target.peerId.toString(),
          chainId: genesis.chainId,
          count: Math.ceil(JUNK / ATTACKERS),
          port: base + 4 + j,
        }),
      )
    }
    await waitFor(
      'the attackers to be connected and heard on the transaction topic',
      () => spammers.every((s) => s.messages.some((m) => m.ready === true)),
      30_000,
    )
    const attackers = spammers.map((s) => peerIdFromString(String(s.messages.find((m) => m.ready)?.peerId)))

    // Baseline: the same network for a second without spam.
    let wall = performance.now()
    let cpu = cpuMs()
    const startHeight = first.app.head.height
    await waitFor('one second', () => performance.now() - wall >= 1_000 && first.app.head.height > startHeight)
    const baseline = { cpu: cpuMs() - cpu, wall: performance.now() - wall }

    // The spam window: the junk, and 100 transfers through the first validator's runtime.
    const admitted = (): number => nodes.reduce((sum, n) => sum + n.runtime.stats.rejectedTxs, 0)
    const flooded = (): number => nodes.reduce((sum, n) => sum + n.runtime.stats.floodedTxs, 0)
    const admittedBefore = admitted()
    const floodedBefore = flooded()
    const verifiedBefore = verifyPool.stats.verified
    wall = performance.now()
    cpu = cpuMs()
    for (const s of spammers) s.child.send('go')
    const hashes: Uint8Array[] = []
    const recipient = actor().did
    for (let n = 0; n < TRANSFERS; n++) {
      const bytes = encodeTx(
        signTx(funded.key, {
          chainId: genesis.chainId,
          nonce: BigInt(n),
          fee: 1n,
          kind: 'bank.transfer',
          body: { to: recipient, amount: 10n },
        }),
      )
      for (;;) {
        try {
          hashes.push(await first.runtime.submitTx(bytes))
          break
        } catch (err) {
          // 64 pending per sender at most (and 64 nonces ahead): wait for a block to make room.
          if (!(err instanceof MempoolError && ['sender-limit', 'nonce-too-far'].includes(err.reason))) throw err
          const height = first.app.head.height
          await waitFor('a block to make room', () => first.app.head.height > height)
        }
      }
    }
    await waitFor('the attackers to finish publishing', () => spammers.every((s) => s.messages.some((m) => m.done)))
    await waitFor(
      'each attacker to be banned and disconnected by its validator',
      () =>
        attackers.every(
          (a, j) =>
            (transports[j] as Libp2pTransport).isBanned(didFromPeerId(a)) &&
            (hosts[j] as DonghaeHost).getConnections(a).length === 0,
        ),
      30_000,
    ).catch((err: unknown) => {
      // What each validator saw of its attacker, for the next person reading a CI log.
      t.diagnostic(
        JSON.stringify(
          attackers.map((a, j) => ({
            connections: (hosts[j] as DonghaeHost).getConnections(a).map((c) => `${c.status} ${c.direction}`),
            banned: transports[j]?.isBanned(didFromPeerId(a)),
            penaltyScore: transports[j]?.penaltyScore(didFromPeerId(a)),
            ignored: nodes[j]?.runtime.stats.rejectedTxs,
            flooded: nodes[j]?.runtime.stats.floodedTxs,
            published: spammers[j]?.messages.find((m) => m.done),
          })),
        ),
      )
      throw err
    })
    const spam = { cpu: cpuMs() - cpu, wall: performance.now() - wall }
    const verified = verifyPool.stats.verified - verifiedBefore
    const junkChecked = admitted() - admittedBefore
    const junkUnread = flooded() - floodedBefore
    await waitFor(
      'all 100 transfers to commit',
      async () => (await Promise.all(hashes.map((h) => first.app.txHeight(h)))).every((h) => h !== undefined),
      30_000,
    )

    const published = spammers.reduce((sum, s) => sum + Number(s.messages.find((m) => m.done)?.published ?? 0), 0)
    assert.ok(published >= JUNK, `${published} junk transactions published`)
    assert.equal(hashes.length, TRANSFERS)
    for (const node of nodes)
      for (let h = 1; h <= node.app.head.height; h++)
        for (const bytes of (await node.app.getBlock(h))?.txs ?? [])
          assert.equal(decodeTx(bytes).sender, funded.did, `height ${h} carries only the funded account's transfers`)
    assert.equal(relayedJunk, 0, 'no validator relayed junk to another')
    for (const node of nodes) assert.equal(node.mempool.size, 0, 'no junk waits in any mempool')
    // No signature check was spent on junk: the pool verified the transfers, at most twice per
    // validator (admission, and block validation of those it had not admitted yet).
    assert.ok(verified <= 2 * nodes.length * TRANSFERS, `${verified} signatures verified in the spam window`)
    // Admission checked at most each attacker's ignore budget (+ what refilled meanwhile), and the
    // rest of the batch that found the budget not yet spent.
    const refill = (spam.wall * TX_IGNORE_BUDGET.amount) / TX_IGNORE_BUDGET.perMs
    const bound = ATTACKERS * (TX_IGNORE_BUDGET.amount + refill + MAX_TX_BATCH)
    assert.ok(junkChecked <= bound, `${junkChecked} junk transactions reached admission (bound ${Math.round(bound)})`)
    assert.equal((nodes[3] as DonghaeNode).runtime.stats.rejectedTxs, 0, 'the fourth validator never saw junk')

    const share = spam.cpu / spam.wall
    t.diagnostic(
      `spam window ${spam.wall.toFixed(0)} ms: ${published} junk transactions published, ${junkChecked} checked by ` +
        `admission and ${junkUnread} rejected unread (over budget) until each attacker was cut off; ` +
        `the validators' process used ${(share * 100).toFixed(0)} % ` +
        `of one core (${((baseline.cpu / baseline.wall) * 100).toFixed(0)} % without spam, over ` +
        `${baseline.wall.toFixed(0)} ms); ${verified} signatures verified by admission in the window`,
    )
  } finally {
    for (const s of spammers) {
      if (s.child.connected) s.child.send('stop')
      await Promise.race([exited(s.child), new Promise((r) => setTimeout(r, 5_000))])
      s.child.kill('SIGKILL')
    }
    for (const node of nodes) await node.stop()
    for (const transport of transports) transport.stop()
    for (const host of hosts) await host.stop()
    await verifyPool.stop()
    await rm(dir, { recursive: true, force: true })
  }
})
