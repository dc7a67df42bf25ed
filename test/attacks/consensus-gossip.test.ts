// Consensus gossip is validated before it is relayed. Four validators over real libp2p sockets in
// this process, two of them stopped so the height stays put (no quorum) while an attacker host,
// connected to one validator only, gossips: a proposal signed by a validator that is not the
// proposer of its round, an oversized proposal from the round's real proposer, votes signed by a
// non-validator, and a proposal for a later height. The first three are rejected at validation
// with the reasons below (each a penalty of the sender); the last is ignored (no penalty); none is
// relayed to the other validator, which does receive a valid vote sent after them. Then the
// attacker re-wraps that valid vote in 200 fresh gossip frames: relayed at most once a second.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { toHex } from '../../src/core/bytes.ts'
import { sha256 } from '../../src/core/hash.ts'
import { createLogger } from '../../src/core/logger.ts'
import { createHost, type DonghaeHost } from '../../src/net/host.ts'
import { gossipTopic } from '../../src/net/constants.ts'
import { Libp2pTransport } from '../../src/net/libp2p-transport.ts'
import { frameGossip } from '../../src/net/gossip.ts'
import { DonghaeNode } from '../../src/node/index.ts'
import { CONSENSUS_RELAY_GAP_MS, CONSENSUS_TOPIC, maxProposalBytes, proposerFor } from '../../src/chain/runtime.ts'
import { encodeConsensusMessage, signProposal, signVote } from '../../src/chain/bft/messages.ts'
import { actor, makeGenesis, type Actor } from '../helpers/chain.ts'
import { FAST_PARAMS, waitFor } from '../helpers/chain-net.ts'
import { bareHost, type BareHost } from '../helpers/bare-host.ts'
import { createRng, testSeed } from '../helpers/random.ts'

test('attack: proposals from a non-proposer, an oversized proposal, votes from a non-validator, proposals for another height — refused at gossip validation and never relayed', async (t) => {
  const rng = createRng(testSeed())
  t.diagnostic(`seed ${rng.seed} (DONGHAE_TEST_SEED replays it)`)
  const base = 19_000 + rng.int(0, 45) * 8 // 19000-19399: this test's range
  const dir = await mkdtemp(join(tmpdir(), 'donghae-gossip-'))
  const validators = [actor(), actor(), actor(), actor()]
  const genesis = makeGenesis(
    validators,
    validators.map((v) => [v, 1_000_000n] as [Actor, bigint]),
    { ...FAST_PARAMS, maxBlockTxs: 2 },
  )
  const hosts: DonghaeHost[] = []
  const transports: Libp2pTransport[] = []
  const nodes: DonghaeNode[] = []
  const reasons: string[] = []
  let attacker: BareHost | undefined
  try {
    for (const [i, v] of validators.entries()) {
      const host = await createHost({
        key: v.key,
        host: '127.0.0.1',
        port: base + i,
        quic: false,
        webSockets: false,
        mdns: false,
        bootstrap: hosts.map((h) => String(h.getMultiaddrs()[0])),
      })
      await host.start()
      hosts.push(host)
      const transport = new Libp2pTransport(host, { chainId: genesis.chainId })
      transport.start()
      transports.push(transport)
      // The target's log says why it refused each message.
      const logger =
        i === 0
          ? createLogger({
              level: 'debug',
              destination: {
                write: (line: string) => {
                  if (line.includes('invalid consensus gossip')) reasons.push(String(JSON.parse(line).reason))
                },
              },
            })
          : undefined
      const node = await DonghaeNode.create({
        dataDir: join(dir, `n${i}`),
        genesis,
        key: v.key,
        transport,
        poh: 'inline',
        ...(logger === undefined ? {} : { logger }),
      })
      node.start()
      nodes.push(node)
    }
    const [target, other] = nodes as [DonghaeNode, DonghaeNode]
    const cheat = validators[3] as Actor
    await waitFor('height 2', () => nodes.every((n) => n.app.head.height >= 2), 30_000)
    await (nodes[2] as DonghaeNode).stop()
    await (nodes[3] as DonghaeNode).stop()
    await waitFor('the two running validators at the same height', () => {
      const [a, b] = [target.runtime.consensus?.height, other.runtime.consensus?.height]
      return a !== undefined && a === b
    })

    // What the other validator hears from the target: relays.
    const topic = gossipTopic(genesis.chainId, CONSENSUS_TOPIC)
    const relayed = new Set<string>()
    const relays = new Map<string, number>()
    const targetDid = (validators[0] as Actor).did
    transports[1]?.subscribe(CONSENSUS_TOPIC, (data, from) => {
      if (from !== targetDid) return 'ignore'
      const id = toHex(sha256(data))
      relayed.add(id)
      relays.set(id, (relays.get(id) ?? 0) + 1)
      return 'ignore'
    })

    const outsider = actor()
    attacker = await bareHost(outsider.key, base + 5)
    await attacker.start()
    attacker.services.pubsub.subscribe(topic)
    await attacker.dial((hosts[0] as DonghaeHost).getMultiaddrs()[0] as never)
    await waitFor('the target to take the attacker’s consensus gossip', () =>
      (attacker as BareHost).services.pubsub.getSubscribers(topic).some((p) => p.equals(hosts[0]?.peerId)),
    )
    assert.equal(attacker.getConnections().length, 1, 'the attacker talks to the target only')

    const status = target.runtime.consensus
    assert.ok(status !== undefined)
    const { height, round } = status
    const set = target.app.validatorSet(height)
    const proposerOf = proposerFor(genesis)
    const roundWhere = (wanted: (did: string) => boolean): number => {
      for (let r = round; r < round + 200; r++) if (wanted(proposerOf(set, height, r))) return r
      throw new Error('no such round')
    }
    const proposal = (signer: Actor, h: number, r: number, block: Uint8Array): Uint8Array =>
      encodeConsensusMessage({
        kind: 'proposal',
        proposal: signProposal(signer.key, {
          chainId: genesis.chainId,
          height: h,
          round: r,
          blockId: sha256(block),
          validRound: -1,
          proposer: signer.did,
        }),
        block,
      })
    const notProposer = roundWhere((did) => did !== cheat.did)
    const cheatProposes = roundWhere((did) => did === cheat.did)
    const forged = [
      proposal(cheat, height, notProposer, randomBytes(200)),
      proposal(cheat, height, cheatProposes, randomBytes(maxProposalBytes(genesis, cheatProposes) + 100_000)),
      encodeConsensusMessage({
        kind: 'vote',
        vote: signVote(outsider.key, {
          chainId: genesis.chainId,
          height,
          round,
          type: 'prevote',
          blockId: null,
          validator: outsider.did,
        }),
      }),
      proposal(cheat, height + 5, 0, randomBytes(200)),
    ]
    // Sent after them: a well-formed vote of a validator (for a round far ahead, where its stopped
    // node never signed), which the target accepts and relays.
    const sentinel = encodeConsensusMessage({
      kind: 'vote',
      vote: signVote(cheat.key, {
        chainId: genesis.chainId,
        height,
        round: round + 500,
        type: 'prevote',
        blockId: null,
        validator: cheat.did,
      }),
    })
    for (const bytes of [...forged, sentinel]) await attacker.services.pubsub.publish(topic, frameGossip(bytes))
    await waitFor('the valid vote to be relayed to the other validator', () => relayed.has(toHex(sha256(sentinel))))
    for (const bytes of forged) assert.ok(!relayed.has(toHex(sha256(bytes))), 'a refused message was relayed')
    await waitFor('the target to give its three reasons', () => reasons.length >= 3)
    t.diagnostic(`the target's reasons: ${reasons.join(' | ')}`)
    for (const why of [
      new RegExp(`is not the proposer of height ${height} round ${notProposer}`),
      /over the block limit/,
      /vote from a validator outside the set/,
    ])
      assert.ok(
        reasons.some((r) => why.test(r)),
        String(why),
      )
    assert.equal(reasons.length, 3, 'the proposal for another height is ignored, not refused')
    const score = (transports[0] as Libp2pTransport).penaltyScore(outsider.did)
    assert.ok(score > 2.9 && score <= 3, `three penalties for the attacker (score ${score.toFixed(2)})`)
    assert.equal(target.app.head.height, height - 1, 'nothing the attacker sent moved the chain')

    // Gossip is unsigned, so the attacker can wrap the valid vote in fresh random frames, each a
    // new message id: the target relays a payload it already checked at most once a second (and
    // does not check it again), so a burst of 200 copies is no flood; a copy after the gap is
    // relayed again, as a vote re-sent after a round timeout must be.
    const id = toHex(sha256(sentinel))
    const before = relays.get(id) ?? 0
    const started = Date.now()
    for (let i = 0; i < 200; i++) await attacker.services.pubsub.publish(topic, frameGossip(sentinel))
    const burstMs = Date.now() - started
    await sleep(500)
    const copies = (relays.get(id) ?? 0) - before
    t.diagnostic(`200 copies in ${burstMs} ms: ${copies} relayed`)
    assert.ok(copies <= Math.ceil(burstMs / CONSENSUS_RELAY_GAP_MS) + 1, `${copies} copies relayed in ${burstMs} ms`)
    assert.ok((transports[0] as Libp2pTransport).penaltyScore(outsider.did) <= 3, 'copies are ignored, not punished')
    await sleep(CONSENSUS_RELAY_GAP_MS)
    await attacker.services.pubsub.publish(topic, frameGossip(sentinel))
    await waitFor('a copy after the gap to be relayed', () => (relays.get(id) ?? 0) > before + copies)
  } finally {
    await attacker?.stop()
    for (const node of nodes) await node.stop()
    for (const transport of transports) transport.stop()
    for (const host of hosts) await host.stop()
    await rm(dir, { recursive: true, force: true })
  }
})
