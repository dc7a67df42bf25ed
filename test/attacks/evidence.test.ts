// Double signing while the honest nodes are busy: evidence goes through each node's single
// own-transaction queue, so a pending transaction of the reporter cannot make the mempool refuse
// it ("nonce-in-use"), and evidence that could not be submitted is retried on later heights.
// Real nodes (LevelDB, consensus engine, PoH, mempool) in one process over the in-memory network.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encodeConsensusMessage, signVote } from '../../src/chain/bft/messages.ts'
import { CONSENSUS_TOPIC } from '../../src/chain/runtime.ts'
import { MempoolError } from '../../src/chain/errors.ts'
import { validatorRecord } from '../../src/staking/staking.ts'
import type { DonghaeNode } from '../../src/node/index.ts'
import type { MemoryTransport } from '../../src/net/memory-transport.ts'
import { actor, type Actor } from '../helpers/chain.ts'
import { testNet, waitFor, type TestNet } from '../helpers/chain-net.ts'

/** The cheat's two conflicting prevotes for the height and round `node` is deciding. */
function doubleSign(net: TestNet, wire: MemoryTransport, node: DonghaeNode, cheat: Actor): void {
  const status = node.runtime.consensus
  if (status === undefined) return
  for (const fill of [1, 2]) {
    const vote = signVote(cheat.key, {
      chainId: net.genesis.chainId,
      height: status.height,
      round: status.round,
      type: 'prevote',
      blockId: new Uint8Array(32).fill(fill),
      validator: cheat.did,
    })
    wire.publish(CONSENSUS_TOPIC, encodeConsensusMessage({ kind: 'vote', vote }))
  }
}

test('attack: double sign while the reporter has a pending own transaction (its evidence used to be refused as nonce-in-use) — still reported and slashed', async () => {
  const validators = [actor(), actor(), actor(), actor()]
  const net = await testNet(validators)
  try {
    const [reporter, , stalled, cheat] = validators as [Actor, Actor, Actor, Actor]
    const node = net.nodes.get(reporter.did) as DonghaeNode
    await waitFor('height 2', () => node.app.head.height >= 2)
    // Two of four validators down: no quorum, no blocks, so the reporter's own transaction stays pending.
    await net.stop(stalled)
    await net.stop(cheat)
    await node.submitOwnTx('bank.transfer', { to: actor().did, amount: 5n })
    assert.equal(node.mempool.pendingFrom(reporter.did), 1)
    const wire = net.hub.join('byzantine-wire')
    await waitFor('the double sign to be seen and its evidence queued behind the pending transaction', () => {
      doubleSign(net, wire, node, cheat)
      return node.mempool.pendingFrom(reporter.did) === 2
    })
    assert.ok(node.runtime.stats.evidenceSeen > 0 && node.runtime.stats.evidenceSubmitted === 1)
    assert.equal(validatorRecord(node.app.state, cheat.did)?.tombstoned, false, 'not yet: no blocks')
    // Quorum again: the pending transfer (nonce n) and the evidence (nonce n + 1) commit.
    await net.start(stalled)
    await waitFor('the cheat to be slashed', () => validatorRecord(node.app.state, cheat.did)?.tombstoned === true)
    assert.equal(validatorRecord(node.app.state, cheat.did)?.bonded, 9_500n, '5% slashed')
    await waitFor('the reporter to see its evidence included', () => node.runtime.pendingEvidence === 0)
    assert.ok(node.runtime.stats.evidenceIncluded >= 1)
  } finally {
    await net.close()
  }
})

test('attack: double sign while the reporter’s mempool refuses its evidence (full) — retried on a later height until included', async () => {
  const validators = [actor(), actor(), actor(), actor()]
  const net = await testNet(validators)
  try {
    const [reporter, , , cheat] = validators as [Actor, Actor, Actor, Actor]
    const node = net.nodes.get(reporter.did) as DonghaeNode
    await waitFor('height 2', () => node.app.head.height >= 2)
    const submit = node.submitOwnTx.bind(node)
    const refusals: number[] = []
    node.submitOwnTx = async (kind, body, fee) => {
      if (kind === 'staking.evidence' && refusals.length < 2) {
        refusals.push(node.app.head.height)
        throw new MempoolError('full', 'the mempool is full; raise the fee', { action: 'ignore' })
      }
      return submit(kind, body, fee)
    }
    const wire = net.hub.join('byzantine-wire')
    await waitFor('the evidence to be refused twice', () => {
      if (refusals.length === 0) doubleSign(net, wire, node, cheat)
      return refusals.length === 2
    })
    assert.ok((refusals[1] as number) > (refusals[0] as number), 'the retry waited for a later height')
    await waitFor('the cheat to be slashed', () => validatorRecord(node.app.state, cheat.did)?.tombstoned === true)
    await waitFor('the evidence to be recorded as included', () => node.runtime.pendingEvidence === 0)
  } finally {
    await net.close()
  }
})
